//! Wrong passwords and damaged profiles: clear errors, and the files are left exactly as they
//! were.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::path::Path;

use common::*;
use cwtch_storage::{
    CorruptReason, CwtchHome, Error, NewConversation, Password, Profile, ProfileHome, ProfileId,
    ProfileStore,
};

/// A home with one profile (password "pw") holding a contact; returns its id and directory.
fn home_with_profile(root: &Path) -> (CwtchHome, ProfileId, std::path::PathBuf) {
    let home = CwtchHome::open(root.join("home")).unwrap();
    let mut p = home.create_profile("Alice", &Password::user("pw")).unwrap();
    for i in 0..40 {
        // Enough rows for several pages.
        p.create_conversation(&NewConversation::contact(
            format!("contact-{i:04}-{}", "x".repeat(300)),
            true,
        ))
        .unwrap();
    }
    let id = p.profile_id().clone();
    let dir = p.dir().to_path_buf();
    p.close().unwrap();
    (home, id, dir)
}

/// Open through the home and read-only, both must fail as `check` says; nothing may change.
fn assert_open_fails(
    home: &CwtchHome,
    id: &ProfileId,
    dir: &Path,
    password: &Password,
    check: impl Fn(&Error) -> bool,
) {
    let before = snapshot(dir);
    let e = home.open_profile(id, password).unwrap_err();
    assert!(check(&e), "open_profile: {e:?}");
    let e = Profile::open_read_only(dir, password).unwrap_err();
    assert!(check(&e), "open_read_only: {e:?}");
    assert_eq!(snapshot(dir), before, "files changed");
}

#[test]
fn wrong_password() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, id, dir) = home_with_profile(tmp.path());
    for pw in [
        Password::Default,
        Password::user("PW"),
        Password::user("pw "),
    ] {
        assert_open_fails(&home, &id, &dir, &pw, |e| matches!(e, Error::WrongPassword));
    }
    assert_eq!(
        Error::WrongPassword.to_string(),
        "wrong password (the profile database does not decrypt with it)"
    );
    // And the right one still works afterwards.
    home.open_profile(&id, &Password::user("pw")).unwrap();
}

#[test]
fn truncated_database() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, id, dir) = home_with_profile(tmp.path());
    let db = dir.join("db");
    let full = std::fs::read(&db).unwrap();
    assert!(full.len() >= 4 * 8192, "test needs a multi-page database");
    // Mid-page: caught by size.
    std::fs::write(&db, &full[..full.len() - 100]).unwrap();
    assert_open_fails(&home, &id, &dir, &Password::user("pw"), |e| {
        matches!(
            e,
            Error::Corrupt {
                reason: CorruptReason::Truncated(_),
                ..
            }
        )
    });
    // At a page boundary: caught by SQLite's structure check.
    std::fs::write(&db, &full[..full.len() - 8192]).unwrap();
    assert_open_fails(&home, &id, &dir, &Password::user("pw"), |e| {
        matches!(
            e,
            Error::Corrupt {
                reason: CorruptReason::Structure,
                ..
            }
        )
    });
    // Empty.
    std::fs::write(&db, b"").unwrap();
    assert_open_fails(&home, &id, &dir, &Password::user("pw"), |e| {
        matches!(
            e,
            Error::Corrupt {
                reason: CorruptReason::Truncated(0),
                ..
            }
        )
    });
}

#[test]
fn garbage_database() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, id, dir) = home_with_profile(tmp.path());
    let db = dir.join("db");
    let mut garbage = vec![0u8; 5 * 8192 + 17];
    rand_fill(&mut garbage);
    std::fs::write(&db, &garbage).unwrap();
    assert_open_fails(&home, &id, &dir, &Password::user("pw"), |e| {
        matches!(
            e,
            Error::Corrupt {
                reason: CorruptReason::Truncated(_),
                ..
            }
        )
    });
    // Whole pages of garbage are indistinguishable from a wrong key (documented).
    garbage.truncate(5 * 8192);
    std::fs::write(&db, &garbage).unwrap();
    assert_open_fails(&home, &id, &dir, &Password::user("pw"), |e| {
        matches!(e, Error::WrongPassword)
    });
}

#[test]
fn damaged_later_page() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, id, dir) = home_with_profile(tmp.path());
    let db = dir.join("db");
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[8192 + 1000] ^= 0x01; // page 2
    std::fs::write(&db, &bytes).unwrap();
    assert_open_fails(&home, &id, &dir, &Password::user("pw"), |e| {
        matches!(
            e,
            Error::Corrupt {
                reason: CorruptReason::PageAuthentication(2),
                ..
            }
        )
    });
    // The wrong password is still reported as such, not as damage.
    assert_open_fails(&home, &id, &dir, &Password::user("nope"), |e| {
        matches!(e, Error::WrongPassword)
    });
}

#[test]
fn plaintext_sqlite_database() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, id, dir) = home_with_profile(tmp.path());
    let db = dir.join("db");
    std::fs::remove_file(&db).unwrap();
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("PRAGMA page_size = 8192; CREATE TABLE profile_kv(a); VACUUM;")
            .unwrap();
    }
    assert_open_fails(&home, &id, &dir, &Password::user("pw"), |e| {
        matches!(
            e,
            Error::Corrupt {
                reason: CorruptReason::NotEncrypted,
                ..
            }
        )
    });
}

#[test]
fn damaged_salt_version_or_missing_db() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, id, dir) = home_with_profile(tmp.path());
    let salt = std::fs::read(dir.join("SALT")).unwrap();
    std::fs::write(dir.join("SALT"), &salt[..100]).unwrap();
    assert_open_fails(&home, &id, &dir, &Password::user("pw"), |e| {
        matches!(
            e,
            Error::Corrupt {
                reason: CorruptReason::SaltLength(100),
                ..
            }
        )
    });
    std::fs::write(dir.join("SALT"), &salt).unwrap();

    std::fs::write(dir.join("VERSION"), b"1").unwrap();
    assert_open_fails(
        &home,
        &id,
        &dir,
        &Password::user("pw"),
        |e| matches!(e, Error::UnsupportedVersion(v) if v == "1"),
    );
    std::fs::write(dir.join("VERSION"), b"2").unwrap();

    std::fs::rename(dir.join("db"), tmp.path().join("db.saved")).unwrap();
    assert_open_fails(&home, &id, &dir, &Password::user("pw"), |e| {
        matches!(
            e,
            Error::Corrupt {
                reason: CorruptReason::Missing("db"),
                ..
            }
        )
    });
    std::fs::rename(tmp.path().join("db.saved"), dir.join("db")).unwrap();
    home.open_profile(&id, &Password::user("pw")).unwrap();
}

#[test]
fn crash_during_a_transaction_is_rolled_back_by_a_read_write_open() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, id, dir) = home_with_profile(tmp.path());
    // Simulate a crash mid-transaction: with a tiny page cache SQLite writes changed pages to
    // the database before commit; copy db + hot journal at that moment.
    let crashed = tmp.path().join("crashed");
    {
        let salt = std::fs::read(dir.join("SALT")).unwrap();
        let mut key = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha3::Sha3_512>(b"pw", &salt, 4096, &mut key);
        let c = rusqlite::Connection::open(dir.join("db")).unwrap();
        c.execute_batch(&format!(
            "PRAGMA key = \"x'{}'\"; PRAGMA cipher_page_size = 8192; PRAGMA cache_size = 2; BEGIN; UPDATE conversations SET Attributes = randomblob(3000);",
            hex::encode(key)
        ))
        .unwrap();
        assert!(dir.join("db-journal").exists());
        copy_dir(&dir, &crashed);
        c.execute_batch("ROLLBACK").unwrap();
    }
    let crashed_db = std::fs::read(crashed.join("db")).unwrap();
    assert_ne!(
        crashed_db,
        std::fs::read(dir.join("db")).unwrap(),
        "db was written mid-transaction"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    copy_dir(&crashed, &dir);
    make_private(&dir);

    // Read-only refuses (it cannot roll back); a wrong password changes nothing.
    let before = snapshot(&dir);
    assert!(matches!(
        Profile::open_read_only(&dir, &Password::user("pw")),
        Err(Error::RecoveryPending(_))
    ));
    let e = home
        .open_profile(&id, &Password::user("wrong"))
        .unwrap_err();
    assert!(matches!(e, Error::WrongPassword), "{e:?}");
    assert_eq!(
        snapshot(&dir),
        before,
        "a wrong password must not touch a crashed profile"
    );
    // Nor does a damaged one (page 3 of the crashed db).
    let mut damaged = crashed_db.clone();
    damaged[2 * 8192 + 500] ^= 0x80;
    std::fs::write(dir.join("db"), &damaged).unwrap();
    let before_damaged = snapshot(&dir);
    let e = home.open_profile(&id, &Password::user("pw")).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
    assert_eq!(
        snapshot(&dir),
        before_damaged,
        "a damaged crashed profile must not be touched"
    );
    std::fs::write(dir.join("db"), &crashed_db).unwrap();
    assert_eq!(snapshot(&dir), before);

    // The right password rolls back to the last commit.
    let p = home.open_profile(&id, &Password::user("pw")).unwrap();
    let convs = p.conversations().unwrap();
    assert_eq!(convs.len(), 40);
    assert!(convs.iter().all(|c| c.attributes.is_empty()));
    assert!(!dir.join("db-journal").exists());
    // No scratch copies are left behind.
    let names: Vec<_> = std::fs::read_dir(home.path().join("profiles"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, [id.to_string()]);
}

fn rand_fill(buf: &mut [u8]) {
    use rand_core::RngCore;
    rand_core::OsRng.fill_bytes(buf);
}
