//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// `testvectors/aliceandbob1` (Go-made Cwtch home, see testvectors/README.md).
pub fn fixture_home() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testvectors/aliceandbob1")
}

/// `testvectors/vectors.json`.
pub fn vectors() -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testvectors/vectors.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

pub const ALICE: &str = "c39e0660a885b6000173ffea9d214b5c";
pub const BOB: &str = "aef99a4db367d0a06f8a351f4732e2db";
pub const CAROL: &str = "648b3aac5a139faadf74661983ab072e";

/// SHA-256 of every file under `dir` (recursively), by relative path: a snapshot to prove
/// nothing was written.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let ft = e.file_type().unwrap();
        let rel = p.strip_prefix(root).unwrap().to_path_buf();
        if ft.is_dir() {
            out.insert(rel.clone(), "dir".into());
            walk(root, &p, out);
        } else if ft.is_symlink() {
            out.insert(
                rel,
                format!("symlink:{}", std::fs::read_link(&p).unwrap().display()),
            );
        } else {
            out.insert(rel, hex::encode(Sha256::digest(std::fs::read(&p).unwrap())));
        }
    }
}

/// Copy a directory tree (regular files and directories only).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// Make a directory tree private (0700 directories), as a user's Cwtch home is.
pub fn make_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            make_private(&e.path());
        } else {
            std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
}

/// A copy of the Go fixture home in a temporary directory, with private permissions.
pub fn fixture_copy() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    copy_dir(&fixture_home(), &home);
    make_private(&home);
    (tmp, home)
}

/// Open a SQLCipher database with Go's settings, read-only, for raw inspection.
pub fn raw_open(profile_dir: &Path, password: &str) -> rusqlite::Connection {
    let salt = std::fs::read(profile_dir.join("SALT")).unwrap();
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha3::Sha3_512>(password.as_bytes(), &salt, 4096, &mut key);
    let c = rusqlite::Connection::open_with_flags(
        profile_dir.join("db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    c.execute_batch(&format!(
        "PRAGMA cipher_log_level = NONE; PRAGMA key = \"x'{}'\"; PRAGMA cipher_page_size = 8192;",
        hex::encode(key)
    ))
    .unwrap();
    c
}

/// `(type, name, tbl_name, sql)` of every `sqlite_master` row, in storage order.
pub fn master(c: &rusqlite::Connection) -> Vec<(String, String, String, Option<String>)> {
    let mut st = c
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Rows of a table as `(column, typeof, value as hex)` triples, for storage-class checks.
pub fn typed_rows(c: &rusqlite::Connection, table: &str) -> Vec<Vec<(String, String)>> {
    let mut st = c
        .prepare(&format!("SELECT * FROM {table} ORDER BY rowid"))
        .unwrap();
    let names: Vec<String> = st.column_names().iter().map(|s| s.to_string()).collect();
    let n = names.len();
    let mut rows = st.query([]).unwrap();
    let mut out = Vec::new();
    while let Some(r) = rows.next().unwrap() {
        let mut row = Vec::new();
        for (i, name) in names.iter().enumerate().take(n) {
            let t = match r.get_ref(i).unwrap() {
                rusqlite::types::ValueRef::Null => "null",
                rusqlite::types::ValueRef::Integer(_) => "integer",
                rusqlite::types::ValueRef::Real(_) => "real",
                rusqlite::types::ValueRef::Text(_) => "text",
                rusqlite::types::ValueRef::Blob(_) => "blob",
            };
            row.push((name.clone(), t.to_owned()));
        }
        out.push(row);
    }
    out
}
