//! Crash-safe password change, and recovery from an interrupted one.
//!
//! A profile's key depends on `SALT` and the password, and `db` is encrypted with it; the two
//! files cannot be replaced together atomically. The change is therefore a small
//! write-ahead protocol in the profile directory:
//!
//! 1. `db.rekey` ← `sqlcipher_export` of the open database under the new key (with
//!    `local.profile.tag` updated), flushed and then checked by opening it with the new key.
//! 2. `SALT.next.tmp` ← the new salt, flushed; the directory is flushed.
//! 3. **Commit**: rename `SALT.next.tmp` → `SALT.next`, flush the directory. The existence of
//!    `SALT.next` means "`db.rekey` is complete; roll forward".
//! 4. Roll forward: close the old database, overwrite it with zeros (best effort), rename
//!    `db.rekey` → `db`, flush the directory, rename `SALT.next` → `SALT`, flush the directory.
//!
//! Recovery ([`recover`], run before every read-write open): if `SALT.next` exists, finish
//! step 4 (each rename is skipped once done, so recovery is idempotent and may itself be
//! interrupted); otherwise delete `db.rekey`, its journal and `SALT.next.tmp`. Before the
//! commit the old files are untouched, so the old password opens the profile; after it,
//! recovery completes the switch, so the new one does.

use std::path::Path;

use rusqlite::params;
use zeroize::Zeroizing;

use crate::password::{ProfileKey, SALT_LEN};
use crate::sqlcipher::{
    connect, files, read_salt, read_salt_file, verify, verify_key, Access, Profile,
};
use crate::{fsutil, keys, Error, Password};

/// Points at which the tests simulate a crash (the process stops; nothing is cleaned up).
/// Outside tests the crash argument is always `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) enum CrashPoint {
    /// Part-way through writing `db.rekey` (simulated by a torn file).
    DuringExport,
    /// `db.rekey` written and flushed.
    AfterExport,
    /// Part-way through writing `SALT.next.tmp`.
    DuringSaltWrite,
    /// `SALT.next` renamed into place (committed).
    AfterCommit,
    /// Old `db` overwritten, `db.rekey` not yet renamed.
    AfterErase,
    /// `db.rekey` renamed to `db`, `SALT.next` not yet renamed.
    AfterDbSwitch,
}

/// Whether a password change left files that [`recover`] must deal with.
pub(crate) fn pending(dir: &Path) -> bool {
    [
        files::SALT_NEXT,
        files::SALT_NEXT_TMP,
        files::DB_REKEY,
        files::DB_REKEY_JOURNAL,
    ]
    .iter()
    .any(|f| fsutil::exists(&dir.join(f)))
}

/// Finish or undo an interrupted password change. Never touches `db` or `SALT` unless the
/// change had committed.
pub(crate) fn recover(dir: &Path) -> Result<(), Error> {
    if fsutil::exists(&dir.join(files::SALT_NEXT)) {
        tracing::info!("completing an interrupted password change");
        roll_forward(dir, None)
    } else if pending(dir) {
        tracing::info!("discarding an interrupted password change");
        roll_back(dir)
    } else {
        Ok(())
    }
}

fn roll_back(dir: &Path) -> Result<(), Error> {
    for f in [
        files::DB_REKEY,
        files::DB_REKEY_JOURNAL,
        files::SALT_NEXT_TMP,
    ] {
        fsutil::erase_file(&dir.join(f))?;
    }
    fsutil::sync_dir(dir)
}

fn roll_forward(dir: &Path, crash: Option<CrashPoint>) -> Result<(), Error> {
    let salt_next = dir.join(files::SALT_NEXT);
    // A committed SALT.next is always complete; check anyway rather than install a bad salt.
    read_salt_file(&salt_next)?;
    let rekey = dir.join(files::DB_REKEY);
    let db = dir.join(files::DB);
    if fsutil::exists(&rekey) {
        // Its journal was deleted by the commit of the export, which happened before the
        // commit point; a leftover directory entry is stale.
        fsutil::remove_if_exists(&dir.join(files::DB_REKEY_JOURNAL))?;
        // The old database (old key) is no longer needed: erase it before replacing it.
        if let Ok(md) = std::fs::metadata(&db) {
            fsutil::overwrite_with_zeros(&db, md.len())?;
        }
        fsutil::erase_file(&dir.join(files::DB_JOURNAL))?;
        if crash == Some(CrashPoint::AfterErase) {
            return Ok(());
        }
        fsutil::rename(&rekey, &db)?;
        fsutil::sync_dir(dir)?;
    }
    if crash == Some(CrashPoint::AfterDbSwitch) {
        return Ok(());
    }
    fsutil::rename(&salt_next, &dir.join(files::SALT))?;
    fsutil::remove_if_exists(&dir.join(files::SALT_NEXT_TMP))?;
    fsutil::sync_dir(dir)
}

/// Change the password of an open profile (see the module docs).
pub(crate) fn change_password(
    profile: &mut Profile,
    old: &Password,
    new: &Password,
    crash: Option<CrashPoint>,
) -> Result<(), Error> {
    if profile.is_read_only() {
        return Err(Error::ReadOnly);
    }
    new.check_new()?;
    let dir = profile.dir().to_path_buf();
    let salt = read_salt(&dir)?;
    if !ProfileKey::derive(old, &salt).ct_eq(profile.key()) {
        return Err(Error::WrongPassword);
    }
    // Leftovers of an attempt that failed with an error (not a crash) are uncommitted.
    if fsutil::exists(&dir.join(files::SALT_NEXT)) {
        return Err(Error::RecoveryPending(dir));
    }
    roll_back(&dir)?;

    let mut new_salt = Zeroizing::new([0u8; SALT_LEN]);
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, new_salt.as_mut());
    let new_key = ProfileKey::derive(new, new_salt.as_ref());

    // 1. Export under the new key.
    let rekey_path = dir.join(files::DB_REKEY);
    if let Err(e) = export(profile, &rekey_path, &new_key, new.tag(), crash) {
        // An export that failed is not committed: remove it. (A simulated crash leaves it.)
        if !matches!(e, Stop::Crash) {
            let _ = roll_back(&dir);
        }
        return e.into_result();
    }
    if crash == Some(CrashPoint::AfterExport) {
        return Ok(());
    }

    // 2. The new salt, durably, under a temporary name.
    let tmp = dir.join(files::SALT_NEXT_TMP);
    if crash == Some(CrashPoint::DuringSaltWrite) {
        fsutil::write_new_file(&tmp, &new_salt[..SALT_LEN / 2])?;
        return Ok(());
    }
    let r = fsutil::write_new_file(&tmp, new_salt.as_ref()).and_then(|()| fsutil::sync_dir(&dir));
    if let Err(e) = r {
        let _ = roll_back(&dir);
        return Err(e);
    }

    // 3. Commit.
    if let Err(e) = fsutil::rename(&tmp, &dir.join(files::SALT_NEXT)) {
        let _ = roll_back(&dir);
        return Err(e);
    }
    fsutil::sync_dir(&dir)?;
    tracing::debug!(profile = %dir.display(), "password change committed");
    if crash == Some(CrashPoint::AfterCommit) {
        return Ok(());
    }

    // 4. Switch: close the old database, roll forward, reopen under the new key. If anything
    // fails from here on, the handle stays closed and the next open finishes the switch.
    let (_, conn, key) = profile.rekey_parts();
    if let Some(c) = conn.take() {
        let _ = c.close();
    }
    roll_forward(&dir, crash)?;
    if matches!(
        crash,
        Some(CrashPoint::AfterErase | CrashPoint::AfterDbSwitch)
    ) {
        return Ok(());
    }
    let db = dir.join(files::DB);
    let c = connect(&db, &new_key, Access::ReadWrite)?;
    // `db.rekey` was fully verified before the commit.
    verify_key(&c, &db)?;
    Profile::tune_connection(&c)?;
    *conn = Some(c);
    *key = new_key;
    tracing::info!("profile password changed");
    Ok(())
}

enum Stop {
    Crash,
    Err(Error),
}

impl Stop {
    fn into_result(self) -> Result<(), Error> {
        match self {
            Stop::Crash => Ok(()),
            Stop::Err(e) => Err(e),
        }
    }
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Err(e)
    }
}

impl From<rusqlite::Error> for Stop {
    fn from(e: rusqlite::Error) -> Self {
        Stop::Err(e.into())
    }
}

/// Write `db.rekey`: the open database re-encrypted under `new_key`, with the new tag.
fn export(
    profile: &mut Profile,
    path: &Path,
    new_key: &ProfileKey,
    tag: &str,
    crash: Option<CrashPoint>,
) -> Result<(), Stop> {
    // Create it ourselves so that it is 0600 (and so that ATTACH, which cannot create files on
    // a connection opened without SQLITE_OPEN_CREATE, finds it).
    fsutil::write_new_file(path, b"")?;
    if crash == Some(CrashPoint::DuringExport) {
        // A torn file: what a crash in the middle of the export leaves.
        std::fs::write(path, vec![0x5a; 3 * 8192 + 100]).map_err(Error::io("write", path))?;
        return Err(Stop::Crash);
    }
    let (_, conn, _) = profile.rekey_parts();
    let conn = conn
        .as_mut()
        .ok_or_else(|| Error::RecoveryPending(path.to_path_buf()))?;
    let path_str = path
        .to_str()
        .ok_or_else(|| Error::io("attach", path)(std::io::Error::other("path is not UTF-8")))?;
    conn.execute(
        "ATTACH DATABASE ?1 AS rekey KEY ?2",
        params![path_str, new_key.raw_key_string().as_str()],
    )?;
    let r = (|| -> Result<(), Error> {
        conn.execute_batch("PRAGMA rekey.cipher_page_size = 8192;")?;
        conn.query_row("SELECT sqlcipher_export('rekey')", [], |_| Ok(()))?;
        conn.execute(
            "insert or replace into rekey.profile_kv(KeyType, KeyName, KeyValue) values(?,?,?);",
            params!["Attribute", keys::LOCAL_PROFILE_TAG, tag.as_bytes()],
        )?;
        Ok(())
    })();
    let detached = conn.execute_batch("DETACH DATABASE rekey");
    r?;
    detached?;
    fsutil::sync_file(path)?;
    // Check what we wrote opens with the new key before committing to it.
    let check = connect(path, new_key, Access::ReadOnly)?;
    verify(&check, path)?;
    drop(check);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{content_hash, Attributes, NewConversation, NewMessage};
    use crate::store::{ProfileHome, ProfileStore};
    use crate::CwtchHome;

    const ALL: [CrashPoint; 6] = [
        CrashPoint::DuringExport,
        CrashPoint::AfterExport,
        CrashPoint::DuringSaltWrite,
        CrashPoint::AfterCommit,
        CrashPoint::AfterErase,
        CrashPoint::AfterDbSwitch,
    ];

    fn committed(p: CrashPoint) -> bool {
        matches!(
            p,
            CrashPoint::AfterCommit | CrashPoint::AfterErase | CrashPoint::AfterDbSwitch
        )
    }

    fn file_names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn every_crash_point_leaves_a_profile_that_opens_with_old_or_new() {
        for (old, new) in [
            (Password::Default, Password::user("correct horse")),
            (
                Password::user("correct horse"),
                Password::user("battery staple"),
            ),
            (Password::user("correct horse"), Password::Default),
        ] {
            for point in ALL {
                let tmp = tempfile::tempdir().unwrap();
                let home = CwtchHome::open(tmp.path().join("home")).unwrap();
                let mut p = home.create_profile("Alice", &old).unwrap();
                let id = p.profile_id().clone();
                let onion = p.identity().unwrap().onion();
                let c = p
                    .create_conversation(&NewConversation::contact("bob", true))
                    .unwrap();
                let attrs = Attributes::new();
                p.insert_message(
                    c,
                    &NewMessage {
                        body: "{\"o\":1,\"d\":\"hi\"}",
                        attributes: &attrs,
                        signature: "sig",
                        content_hash: &content_hash("x", "y"),
                    },
                )
                .unwrap();
                p.change_password_crashing(&old, &new, point).unwrap();
                drop(p); // the "crash"

                let (works, fails) = if committed(point) {
                    (&new, &old)
                } else {
                    (&old, &new)
                };
                assert!(
                    matches!(home.open_profile(&id, fails), Err(Error::WrongPassword)),
                    "{point:?}: the other password must not open"
                );
                let p = home
                    .open_profile(&id, works)
                    .unwrap_or_else(|e| panic!("{point:?}: {e}"));
                assert_eq!(p.identity().unwrap().onion(), onion, "{point:?}");
                assert_eq!(p.message_count(c).unwrap(), 1, "{point:?}");
                assert_eq!(
                    p.attribute(keys::LOCAL_PROFILE_TAG).unwrap().as_deref(),
                    Some(works.tag()),
                    "{point:?}"
                );
                assert_eq!(
                    file_names(p.dir()),
                    ["SALT", "VERSION", "db"],
                    "{point:?}: recovery leaves no temporary files"
                );
            }
        }
    }

    #[test]
    fn recovery_is_idempotent_when_interrupted_itself() {
        // Crash after the commit, then crash again in the middle of recovery (after the
        // erase): the next open still completes the change.
        let tmp = tempfile::tempdir().unwrap();
        let home = CwtchHome::open(tmp.path().join("home")).unwrap();
        let mut p = home.create_profile("Alice", &Password::Default).unwrap();
        let id = p.profile_id().clone();
        let new = Password::user("new");
        p.change_password_crashing(&Password::Default, &new, CrashPoint::AfterCommit)
            .unwrap();
        let dir = p.dir().to_path_buf();
        drop(p);
        roll_forward(&dir, Some(CrashPoint::AfterErase)).unwrap();
        assert!(pending(&dir));
        let p = home.open_profile(&id, &new).unwrap();
        assert_eq!(
            p.attribute(keys::PUBLIC_PROFILE_NAME).unwrap().unwrap(),
            "Alice"
        );
    }

    #[test]
    fn read_only_open_refuses_pending_recovery() {
        let tmp = tempfile::tempdir().unwrap();
        let home = CwtchHome::open(tmp.path().join("home")).unwrap();
        let mut p = home.create_profile("Alice", &Password::Default).unwrap();
        let new = Password::user("new");
        p.change_password_crashing(&Password::Default, &new, CrashPoint::AfterExport)
            .unwrap();
        let dir = p.dir().to_path_buf();
        drop(p);
        assert!(matches!(
            crate::Profile::open_read_only(&dir, &Password::Default),
            Err(Error::RecoveryPending(_))
        ));
    }
}
