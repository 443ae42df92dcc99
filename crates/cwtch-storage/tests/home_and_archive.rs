//! The home directory (permissions, deletion) and export/import, including hostile archives.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use cwtch_storage::{
    ArchiveError, CwtchHome, Error, ImportLimits, NewConversation, Password, ProfileHome,
    ProfileId, ProfileStore,
};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn new_home_and_profiles_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("a/b/home");
    let home = CwtchHome::open(&root).unwrap();
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&root.join("profiles")), 0o700);
    let p = home.create_profile("A", &Password::Default).unwrap();
    assert_eq!(mode(p.dir()), 0o700);
    for f in ["db", "SALT", "VERSION"] {
        assert_eq!(mode(&p.dir().join(f)), 0o600, "{f}");
    }
    // Reopening an existing private home works.
    drop(p);
    let again = CwtchHome::open(&root).unwrap();
    assert_eq!(again.list_profiles().unwrap().len(), 1);
}

#[test]
fn a_home_others_can_read_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("home");
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let e = CwtchHome::open(&root).unwrap_err();
    assert!(
        matches!(e, Error::InsecurePermissions { mode: 0o755, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("chmod 700"), "{e}");
    // Not "fixed" behind the user's back.
    assert_eq!(mode(&root), 0o755);
    assert!(!root.join("profiles").exists());

    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::create_dir(root.join("profiles")).unwrap();
    std::fs::set_permissions(
        root.join("profiles"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    assert!(matches!(
        CwtchHome::open(&root),
        Err(Error::InsecurePermissions { mode: 0o750, .. })
    ));

    let file = tmp.path().join("file");
    std::fs::write(&file, b"").unwrap();
    assert!(matches!(
        CwtchHome::open(&file),
        Err(Error::NotADirectory(_))
    ));
}

#[test]
fn delete_erases_and_an_interrupted_delete_is_finished() {
    let tmp = tempfile::tempdir().unwrap();
    let home = CwtchHome::open(tmp.path().join("home")).unwrap();
    let p = home.create_profile("A", &Password::user("pw")).unwrap();
    let id = p.profile_id().clone();
    let dir = p.dir().to_path_buf();
    drop(p);
    home.delete_profile(&id, &Password::user("pw")).unwrap();
    assert!(!dir.exists());
    assert_eq!(
        std::fs::read_dir(home.path().join("profiles"))
            .unwrap()
            .count(),
        0
    );

    // A crash after the rename but before the erase: the next open of the home finishes.
    let p = home.create_profile("B", &Password::Default).unwrap();
    let dir = p.dir().to_path_buf();
    let id = p.profile_id().clone();
    drop(p);
    let doomed = home.path().join("profiles").join(format!(".deleting-{id}"));
    std::fs::rename(&dir, &doomed).unwrap();
    assert!(home.list_profiles().unwrap().is_empty());
    let home = CwtchHome::open(home.path()).unwrap();
    assert!(!doomed.exists());
    assert!(home.list_profiles().unwrap().is_empty());
}

fn export(home: &CwtchHome, id: &ProfileId) -> Vec<u8> {
    let mut out = Vec::new();
    home.export_profile(id, &mut out).unwrap();
    out
}

#[test]
fn export_import_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let a = CwtchHome::open(tmp.path().join("a")).unwrap();
    let mut p = a.create_profile("Alice", &Password::user("pw")).unwrap();
    let id = p.profile_id().clone();
    let onion = p.identity().unwrap().onion();
    p.create_conversation(&NewConversation::contact("bob", true))
        .unwrap();
    // An open profile exports through its handle, and not through the home.
    let mut from_handle = Vec::new();
    p.export(&mut from_handle).unwrap();
    assert!(matches!(
        a.export_profile(&id, Vec::new()),
        Err(Error::ProfileInUse(_))
    ));
    drop(p);
    let archive = export(&a, &id);

    // Go's layout: <id>/db, <id>/SALT, <id>/VERSION.
    let mut names = Vec::new();
    let mut t = tar::Archive::new(flate2::read::GzDecoder::new(&archive[..]));
    for e in t.entries().unwrap() {
        let e = e.unwrap();
        names.push(e.path().unwrap().to_str().unwrap().to_owned());
        assert_eq!(e.header().entry_type(), tar::EntryType::Regular);
    }
    assert_eq!(
        names,
        [
            format!("{id}/db"),
            format!("{id}/SALT"),
            format!("{id}/VERSION")
        ]
    );

    for (n, bytes) in [&archive, &from_handle].into_iter().enumerate() {
        let b = CwtchHome::open(tmp.path().join(format!("b{n}"))).unwrap();
        let e = b
            .import_profile(&bytes[..], &Password::user("wrong"))
            .unwrap_err();
        assert!(matches!(e, Error::WrongPassword), "{e}");
        assert!(b.list_profiles().unwrap().is_empty());
        assert_eq!(
            std::fs::read_dir(b.path().join("profiles"))
                .unwrap()
                .count(),
            0
        );

        let p = b.import_profile(&bytes[..], &Password::user("pw")).unwrap();
        assert_eq!(p.profile_id(), &id);
        assert_eq!(p.identity().unwrap().onion(), onion);
        assert_eq!(p.conversations().unwrap().len(), 1);
        assert_eq!(mode(p.dir()), 0o700);
        assert_eq!(mode(&p.dir().join("db")), 0o600);
        drop(p);
        let e = b
            .import_profile(&bytes[..], &Password::user("pw"))
            .unwrap_err();
        assert!(matches!(e, Error::ProfileExists(_)), "{e}");
        assert_eq!(b.list_profiles().unwrap(), std::slice::from_ref(&id));
    }
}

#[test]
fn go_fixture_archive_imports() {
    // An archive in Go's layout made from the Go fixture files (with a directory entry, as
    // tar tools write): imports and opens with the default password.
    let mut out = Vec::new();
    {
        let mut t = tar::Builder::new(flate2::write::GzEncoder::new(
            &mut out,
            flate2::Compression::fast(),
        ));
        let src = fixture_home().join("profiles").join(ALICE);
        t.append_dir(ALICE, &src).unwrap();
        for f in ["db", "SALT", "VERSION"] {
            t.append_path_with_name(src.join(f), format!("{ALICE}/{f}"))
                .unwrap();
        }
        t.into_inner().unwrap().finish().unwrap();
    }
    let tmp = tempfile::tempdir().unwrap();
    let home = CwtchHome::open(tmp.path().join("home")).unwrap();
    let p = home.import_profile(&out[..], &Password::Default).unwrap();
    assert_eq!(
        p.attribute(cwtch_storage::keys::PUBLIC_PROFILE_NAME)
            .unwrap()
            .unwrap(),
        "Alice"
    );
}

// ---- hostile archives ----

/// A raw tar header with any name and type (the `tar` crate's safe setters refuse `..`).
fn raw_header(name: &[u8], kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    h
}

struct Member<'a> {
    name: &'a [u8],
    kind: tar::EntryType,
    data: &'a [u8],
    link: Option<&'a str>,
    /// Declared size, if different from `data.len()` (a lie).
    size: Option<u64>,
}

fn file<'a>(name: &'a [u8], data: &'a [u8]) -> Member<'a> {
    Member {
        name,
        kind: tar::EntryType::Regular,
        data,
        link: None,
        size: None,
    }
}

fn archive(members: &[Member<'_>]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for m in members {
        let mut h = raw_header(m.name, m.kind, m.size.unwrap_or(m.data.len() as u64));
        if let Some(l) = m.link {
            h.set_link_name(l).unwrap();
            h.set_cksum();
        }
        gz.write_all(h.as_bytes()).unwrap();
        gz.write_all(m.data).unwrap();
        let pad = (512 - m.data.len() % 512) % 512;
        gz.write_all(&vec![0u8; pad]).unwrap();
    }
    gz.write_all(&[0u8; 1024]).unwrap();
    gz.finish().unwrap()
}

/// Import must fail as `check` says and write nothing anywhere under `tmp`, except the
/// (still empty) home.
fn assert_refused(members: &[Member<'_>], limits: &ImportLimits, check: impl Fn(&Error) -> bool) {
    let bytes = archive(members);
    assert_refused_bytes(&bytes, limits, check);
}

fn assert_refused_bytes(bytes: &[u8], limits: &ImportLimits, check: impl Fn(&Error) -> bool) {
    let tmp = tempfile::tempdir().unwrap();
    let home = CwtchHome::open(tmp.path().join("x/home")).unwrap();
    let before = snapshot(tmp.path());
    let e = home
        .import_profile_with_limits(bytes, &Password::Default, limits)
        .unwrap_err();
    assert!(check(&e), "{e:?}");
    assert_eq!(snapshot(tmp.path()), before, "the import wrote something");
    // Nothing at the classic escape targets either.
    assert!(!tmp.path().join("x/evil").exists());
    assert!(!tmp.path().join("evil").exists());
}

const ID: &str = "0123456789abcdef0123456789abcdef";

fn valid_members(salt: &[u8]) -> [Member<'_>; 2] {
    [
        file(b"0123456789abcdef0123456789abcdef/SALT", salt),
        file(b"0123456789abcdef0123456789abcdef/VERSION", b"2"),
    ]
}

#[test]
fn hostile_paths_are_refused() {
    let salt = [1u8; 128];
    let limits = ImportLimits::default();
    let bad_path = |e: &Error| matches!(e, Error::Archive(ArchiveError::BadPath));
    for name in [
        &b"../evil"[..],
        b"0123456789abcdef0123456789abcdef/../../evil",
        b"../0123456789abcdef0123456789abcdef/db",
        b"/tmp/evil",
        b"/0123456789abcdef0123456789abcdef/db",
        b"./0123456789abcdef0123456789abcdef/db",
        b"0123456789abcdef0123456789abcdef/sub/db",
        b"not-a-profile-id/db",
        b"db",
    ] {
        let [s, v] = valid_members(&salt);
        assert_refused(&[s, v, file(name, b"x")], &limits, bad_path);
    }
}

#[test]
fn links_and_special_files_are_refused() {
    let salt = [1u8; 128];
    let limits = ImportLimits::default();
    let not_regular = |e: &Error| matches!(e, Error::Archive(ArchiveError::NotRegularFile));
    for (kind, link) in [
        (tar::EntryType::Symlink, Some("/etc/passwd")),
        (tar::EntryType::Symlink, Some("../../evil")),
        (
            tar::EntryType::Link,
            Some("0123456789abcdef0123456789abcdef/SALT"),
        ),
        (tar::EntryType::Char, None),
        (tar::EntryType::Fifo, None),
    ] {
        let [s, v] = valid_members(&salt);
        let m = Member {
            name: b"0123456789abcdef0123456789abcdef/db",
            kind,
            data: b"",
            link,
            size: None,
        };
        assert_refused(&[s, v, m], &limits, not_regular);
    }
}

#[test]
fn oversized_members_and_bombs_are_refused() {
    let salt = [1u8; 128];
    // A header claiming 1 TiB (nothing behind it).
    let [s, v] = valid_members(&salt);
    let huge = Member {
        name: b"0123456789abcdef0123456789abcdef/db",
        kind: tar::EntryType::Regular,
        data: b"",
        link: None,
        size: Some(1 << 40),
    };
    assert_refused(&[s, v, huge], &ImportLimits::default(), |e| {
        matches!(
            e,
            Error::Archive(ArchiveError::MemberTooLarge { name: "db", .. })
        )
    });
    // A real member over a (small) limit: a 2 MiB db of zeros compresses to ~2 KiB.
    let zeros = vec![0u8; 2 << 20];
    let [s, v] = valid_members(&salt);
    assert_refused(
        &[s, v, file(b"0123456789abcdef0123456789abcdef/db", &zeros)],
        &ImportLimits::default().with_max_db_bytes(1 << 20),
        |e| {
            matches!(
                e,
                Error::Archive(ArchiveError::MemberTooLarge { .. } | ArchiveError::TooLarge(_))
            )
        },
    );
    // A big SALT.
    let big_salt = [1u8; 129];
    assert_refused(
        &[file(b"0123456789abcdef0123456789abcdef/SALT", &big_salt)],
        &ImportLimits::default(),
        |e| {
            matches!(
                e,
                Error::Archive(ArchiveError::MemberTooLarge { name: "SALT", .. })
            )
        },
    );
    // Many members.
    let many: Vec<Member<'_>> = (0..20)
        .map(|_| Member {
            name: b"0123456789abcdef0123456789abcdef",
            kind: tar::EntryType::Directory,
            data: b"",
            link: None,
            size: None,
        })
        .collect();
    assert_refused(&many, &ImportLimits::default(), |e| {
        matches!(e, Error::Archive(ArchiveError::TooManyMembers(16)))
    });
    // A gzip bomb: 8 MiB of skipped extra file in a few KiB; decompression stops at the
    // total limit (db limit + 1 MiB slack).
    let filler = vec![0u8; 8 << 20];
    let [s, v] = valid_members(&salt);
    let bytes = archive(&[
        s,
        v,
        file(b"0123456789abcdef0123456789abcdef/filler", &filler),
    ]);
    assert!(bytes.len() < 64 * 1024, "{}", bytes.len());
    assert_refused_bytes(
        &bytes,
        &ImportLimits::default().with_max_db_bytes(1 << 20),
        |e| matches!(e, Error::Archive(ArchiveError::TooLarge(_))),
    );
}

#[test]
fn malformed_archives_are_refused() {
    let salt = [1u8; 128];
    let limits = ImportLimits::default();
    // Not gzip.
    assert_refused_bytes(b"this is not an archive", &limits, |e| {
        matches!(e, Error::Archive(ArchiveError::Format(_)))
    });
    // Missing db.
    let [s, v] = valid_members(&salt);
    assert_refused(&[s, v], &limits, |e| {
        matches!(e, Error::Archive(ArchiveError::Missing("db")))
    });
    // Duplicate.
    let [s, v] = valid_members(&salt);
    assert_refused(
        &[
            s,
            v,
            file(b"0123456789abcdef0123456789abcdef/VERSION", b"2"),
        ],
        &limits,
        |e| matches!(e, Error::Archive(ArchiveError::Duplicate("VERSION"))),
    );
    // Two profiles.
    let [s, v] = valid_members(&salt);
    assert_refused(
        &[s, v, file(b"ffffffffffffffffffffffffffffffff/db", b"x")],
        &limits,
        |e| matches!(e, Error::Archive(ArchiveError::MixedProfiles)),
    );
    // All files present but the db is not a database: refused by the open checks.
    let [s, v] = valid_members(&salt);
    let junk = vec![7u8; 8192];
    assert_refused(
        &[s, v, file(b"0123456789abcdef0123456789abcdef/db", &junk)],
        &limits,
        |e| matches!(e, Error::WrongPassword),
    );
    let _ = ID;
}

#[test]
fn unexpected_regular_files_are_skipped_not_written() {
    // A Go export of a profile directory holding an extra file still imports; the extra file
    // is not written.
    let tmp = tempfile::tempdir().unwrap();
    let a = CwtchHome::open(tmp.path().join("a")).unwrap();
    let p = a.create_profile("A", &Password::Default).unwrap();
    let id = p.profile_id().clone();
    let dir = p.dir().to_path_buf();
    drop(p);
    let salt = std::fs::read(dir.join("SALT")).unwrap();
    let db = std::fs::read(dir.join("db")).unwrap();
    let names: Vec<Vec<u8>> = ["db", "SALT", "VERSION", "notes.txt"]
        .iter()
        .map(|f| format!("{id}/{f}").into_bytes())
        .collect();
    let bytes = archive(&[
        file(&names[3], b"hello"),
        file(&names[0], &db),
        file(&names[1], &salt),
        file(&names[2], b"2"),
    ]);
    let b = CwtchHome::open(tmp.path().join("b")).unwrap();
    let p = b.import_profile(&bytes[..], &Password::Default).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(p.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["SALT", "VERSION", "db"]);
}
