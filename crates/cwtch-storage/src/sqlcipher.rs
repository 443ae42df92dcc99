//! The SQLCipher profile: opening (with checks that never write), and the [`ProfileStore`]
//! operations.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use zeroize::Zeroizing;

use crate::home::OpenGuard;
use crate::model::{
    acl_from_json, acl_to_json, attributes_from_json, attributes_to_json, Acl, Attributes,
    Conversation, ConversationId, KeyType, Message, MessageId, NewConversation, NewMessage,
    ProfileId,
};
use crate::password::{ProfileKey, SALT_LEN};
use crate::store::ProfileStore;
use crate::{keys, rekey, schema, CorruptReason, Error, Password};

/// File names inside a profile directory.
pub(crate) mod files {
    /// The SQLCipher database.
    pub(crate) const DB: &str = "db";
    /// 128 random bytes, the PBKDF2 salt.
    pub(crate) const SALT: &str = "SALT";
    /// ASCII storage version, `2`.
    pub(crate) const VERSION: &str = "VERSION";
    /// SQLite's rollback journal of `db` (exists only during, or after a crash in, a write).
    pub(crate) const DB_JOURNAL: &str = "db-journal";
    /// The re-keyed database being built by a password change.
    pub(crate) const DB_REKEY: &str = "db.rekey";
    /// SQLite's rollback journal of `db.rekey`.
    pub(crate) const DB_REKEY_JOURNAL: &str = "db.rekey-journal";
    /// The new salt while it is being written.
    pub(crate) const SALT_NEXT_TMP: &str = "SALT.next.tmp";
    /// The new salt; its existence is the commit point of a password change.
    pub(crate) const SALT_NEXT: &str = "SALT.next";
}

/// The storage version this crate reads and writes.
pub(crate) const STORAGE_VERSION: &[u8] = b"2";

/// SQLCipher page size Go uses (CONFIRMED).
pub(crate) const PAGE_SIZE: u64 = 8192;

/// An open Go Cwtch v2 profile (SQLCipher database), read-write or read-only.
///
/// Not `Sync`: one thread at a time (see the crate docs on threading).
pub struct Profile {
    id: ProfileId,
    dir: PathBuf,
    /// `None` only after a failed password change left the handle unusable.
    conn: Option<Connection>,
    key: ProfileKey,
    read_only: bool,
    guard: Option<OpenGuard>,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("id", &self.id)
            .field("dir", &self.dir)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

/// How to open the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    ReadOnly,
    ReadWrite,
}

/// Read and check `VERSION`.
pub(crate) fn check_version(dir: &Path) -> Result<(), Error> {
    let path = dir.join(files::VERSION);
    let v = match fs::read(&path) {
        Ok(v) => v,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::corrupt(path, CorruptReason::Missing(files::VERSION)))
        }
        Err(e) => return Err(Error::io("read", path)(e)),
    };
    if v.trim_ascii() == STORAGE_VERSION {
        Ok(())
    } else {
        let shown: String = String::from_utf8_lossy(&v).chars().take(16).collect();
        Err(Error::UnsupportedVersion(shown))
    }
}

/// Read and check `SALT`.
pub(crate) fn read_salt(dir: &Path) -> Result<Vec<u8>, Error> {
    read_salt_file(&dir.join(files::SALT))
}

pub(crate) fn read_salt_file(path: &Path) -> Result<Vec<u8>, Error> {
    let salt = match fs::read(path) {
        Ok(v) => v,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::corrupt(path, CorruptReason::Missing(files::SALT)))
        }
        Err(e) => return Err(Error::io("read", path)(e)),
    };
    if salt.len() != SALT_LEN {
        return Err(Error::corrupt(
            path,
            CorruptReason::SaltLength(salt.len() as u64),
        ));
    }
    Ok(salt)
}

/// Cheap checks on the database file before SQLCipher sees it: present, a whole number of
/// pages, not a plaintext SQLite file.
pub(crate) fn check_db_file(path: &Path) -> Result<(), Error> {
    let md = match fs::metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::corrupt(path, CorruptReason::Missing(files::DB)))
        }
        Err(e) => return Err(Error::io("inspect", path)(e)),
    };
    let len = md.len();
    if len == 0 || len % PAGE_SIZE != 0 {
        return Err(Error::corrupt(path, CorruptReason::Truncated(len)));
    }
    let mut head = [0u8; 16];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(Error::io("read", path))?;
    if &head == b"SQLite format 3\0" {
        return Err(Error::corrupt(path, CorruptReason::NotEncrypted));
    }
    Ok(())
}

/// Whether SQLite would consider `db-journal` hot (approximately: it exists and is not empty).
pub(crate) fn has_journal(dir: &Path) -> bool {
    fs::metadata(dir.join(files::DB_JOURNAL)).is_ok_and(|m| m.len() > 0)
}

/// Open a SQLCipher connection with Go's settings: `PRAGMA key = "x'<hex>'"` and
/// `PRAGMA cipher_page_size = 8192`, everything else SQLCipher 4's defaults. Reads nothing.
pub(crate) fn connect(path: &Path, key: &ProfileKey, access: Access) -> Result<Connection, Error> {
    let flags = match access {
        Access::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
        Access::ReadWrite => OpenFlags::SQLITE_OPEN_READ_WRITE,
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    // SQLCipher logs HMAC failures to stderr by default; a wrong password is an ordinary,
    // reported error here. (Process-wide setting.)
    conn.query_row("PRAGMA cipher_log_level = NONE", [], |_| Ok(()))
        .optional()?;
    let mut sql = Zeroizing::new(String::with_capacity(120));
    sql.push_str("PRAGMA key = ");
    sql.push_str(&key.sql_literal());
    sql.push_str("; PRAGMA cipher_page_size = 8192;");
    conn.execute_batch(&sql)?;
    Ok(conn)
}

/// Settings for our read-write connections (per connection, nothing stored in the file):
/// deleted rows are overwritten, temporary tables stay in memory (never plaintext on disk).
fn tune(conn: &Connection) -> Result<(), Error> {
    conn.execute_batch("PRAGMA secure_delete = ON; PRAGMA temp_store = MEMORY;")?;
    Ok(())
}

fn sqlite_code(e: &rusqlite::Error) -> Option<rusqlite::ErrorCode> {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    }
}

/// Check only that the key opens page 1 ([`Error::WrongPassword`] otherwise).
pub(crate) fn verify_key(conn: &Connection, path: &Path) -> Result<(), Error> {
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(_) => Ok(()),
        Err(e) => Err(match sqlite_code(&e) {
            Some(rusqlite::ErrorCode::NotADatabase) => Error::WrongPassword,
            Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
                Error::corrupt(path, CorruptReason::Structure)
            }
            _ => Error::from(e),
        }),
    }
}

/// Check a freshly keyed connection: the key opens page 1 (else [`Error::WrongPassword`]),
/// every page authenticates, SQLite's structure check passes, and the Cwtch tables exist.
/// Reads only.
pub(crate) fn verify(conn: &Connection, path: &Path) -> Result<(), Error> {
    let corrupt = |reason| Error::corrupt(path, reason);
    verify_key(conn, path)?;
    // Every page's HMAC (SQLCipher ≥ 4.?: one row per failing page, none when all is well).
    let mut first_bad: Option<String> = None;
    {
        let mut st = conn.prepare("PRAGMA cipher_integrity_check")?;
        let mut rows = st.query([])?;
        if let Some(row) = rows.next()? {
            first_bad = Some(row.get::<_, String>(0).unwrap_or_default());
        }
    }
    if let Some(msg) = first_bad {
        let page = msg
            .rsplit(' ')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        return Err(corrupt(CorruptReason::PageAuthentication(page)));
    }
    match conn.query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0)) {
        Ok(s) if s == "ok" => {}
        Ok(_) => return Err(corrupt(CorruptReason::Structure)),
        Err(e) => {
            return Err(match sqlite_code(&e) {
                Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
                    corrupt(CorruptReason::Structure)
                }
                _ => Error::from(e),
            })
        }
    }
    for table in ["profile_kv", "conversations"] {
        if !table_exists(conn, table)? {
            return Err(corrupt(CorruptReason::MissingTable(table)));
        }
    }
    Ok(())
}

fn table_exists(conn: &Connection, name: &str) -> Result<bool, Error> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Open and fully check the profile in `dir` with `password`, returning the key and a
/// verified connection. Writes nothing, except that with `Access::ReadWrite` SQLite rolls
/// back a hot journal left by a crash (its normal recovery, restoring the last commit).
pub(crate) fn open_checked(
    dir: &Path,
    password: &Password,
    access: Access,
) -> Result<(ProfileKey, Connection), Error> {
    check_version(dir)?;
    let salt = read_salt(dir)?;
    let db = dir.join(files::DB);
    check_db_file(&db)?;
    let key = ProfileKey::derive(password, &salt);
    let conn = connect(&db, &key, access)?;
    verify(&conn, &db)?;
    Ok((key, conn))
}

fn bytes_of(v: ValueRef<'_>) -> Vec<u8> {
    match v {
        ValueRef::Null => Vec::new(),
        ValueRef::Text(b) | ValueRef::Blob(b) => b.to_vec(),
        ValueRef::Integer(i) => i.to_string().into_bytes(),
        ValueRef::Real(f) => f.to_string().into_bytes(),
    }
}

fn string_of(v: ValueRef<'_>) -> String {
    String::from_utf8_lossy(&bytes_of(v)).into_owned()
}

fn json_of(v: ValueRef<'_>) -> Vec<u8> {
    match v {
        ValueRef::Null => b"null".to_vec(),
        v => bytes_of(v),
    }
}

fn bool_of(v: ValueRef<'_>) -> bool {
    match v {
        ValueRef::Integer(i) => i != 0,
        ValueRef::Real(f) => f != 0.0,
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            matches!(t.trim_ascii(), b"1" | b"true" | b"TRUE" | b"True")
        }
        ValueRef::Null => false,
    }
}

const CONVERSATION_COLUMNS: &str = "ID, Handle, Attributes, ACL, Accepted";

fn conversation_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Conversation, Error>> {
    let id = ConversationId(r.get(0)?);
    let handle = string_of(r.get_ref(1)?);
    let attributes = attributes_from_json(&json_of(r.get_ref(2)?));
    let acl = acl_from_json(&json_of(r.get_ref(3)?));
    let accepted = bool_of(r.get_ref(4)?);
    Ok((|| {
        Ok(Conversation {
            id,
            handle,
            attributes: attributes?,
            acl: acl?,
            accepted,
        })
    })())
}

const MESSAGE_COLUMNS: &str = "ID, Body, Attributes, Signature, ContentHash";

fn message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Message, Error>> {
    let id = MessageId(r.get(0)?);
    let body = string_of(r.get_ref(1)?);
    let attributes = attributes_from_json(&json_of(r.get_ref(2)?));
    let signature = string_of(r.get_ref(3)?);
    let content_hash = string_of(r.get_ref(4)?);
    Ok(attributes.map(|attributes| Message {
        id,
        body,
        attributes,
        signature,
        content_hash,
    }))
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::ConstraintViolation
            && f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

/// Create the schema and Go's creation-time rows in a new, empty database file.
pub(crate) fn initialise_db(
    path: &Path,
    key: &ProfileKey,
    rows: &[(KeyType, &'static str, Zeroizing<Vec<u8>>)],
) -> Result<(), Error> {
    let mut conn = connect(path, key, Access::ReadWrite)?;
    tune(&conn)?;
    let tx = conn.transaction()?;
    tx.execute_batch(schema::CREATE_PROFILE_KV)?;
    tx.execute_batch(schema::CREATE_CONVERSATIONS)?;
    for (kt, name, value) in rows {
        tx.execute(
            "insert or replace into profile_kv(KeyType, KeyName, KeyValue) values(?,?,?);",
            params![kt.as_str(), name, value.as_slice()],
        )?;
    }
    tx.commit()?;
    conn.close().map_err(|(_, e)| Error::from(e))?;
    Ok(())
}

impl Profile {
    /// Open a profile directory read-only, without a [`CwtchHome`](crate::CwtchHome): for
    /// inspecting a profile in place (e.g. a Go profile you must not modify). Nothing is
    /// written; writes fail with [`Error::ReadOnly`]. A profile that needs recovery (an
    /// interrupted password change or transaction) is refused with
    /// [`Error::RecoveryPending`].
    pub fn open_read_only(dir: impl AsRef<Path>, password: &Password) -> Result<Profile, Error> {
        let dir = dir.as_ref().to_path_buf();
        let id = dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or(Error::InvalidProfileId)
            .and_then(ProfileId::parse)?;
        if rekey::pending(&dir) || has_journal(&dir) {
            return Err(Error::RecoveryPending(dir));
        }
        Profile::checked(id, dir, password, Access::ReadOnly)
    }

    /// Open read-write. The caller holds the guard and has done recovery, including checking
    /// on a scratch copy that a hot journal's rollback is safe (see `CwtchHome::open_profile`).
    pub(crate) fn open_read_write(
        id: ProfileId,
        dir: PathBuf,
        password: &Password,
        guard: OpenGuard,
    ) -> Result<Profile, Error> {
        // Check with a read-only connection unless SQLite has a journal to roll back.
        let access = if has_journal(&dir) {
            Access::ReadWrite
        } else {
            Access::ReadOnly
        };
        let check = Profile::checked(id, dir, password, access)?;
        let Profile {
            id, dir, conn, key, ..
        } = check;
        drop(conn);
        let conn = connect(&dir.join(files::DB), &key, Access::ReadWrite)?;
        // Fully checked a moment ago; just confirm the key on the new connection.
        verify_key(&conn, &dir.join(files::DB))?;
        tune(&conn)?;
        tracing::debug!(profile = %id, "opened profile");
        Ok(Profile {
            id,
            dir,
            conn: Some(conn),
            key,
            read_only: false,
            guard: Some(guard),
        })
    }

    /// All the open checks (files, key, pages, structure, tables, identity) on `dir`, as an
    /// unguarded read-only handle.
    pub(crate) fn checked(
        id: ProfileId,
        dir: PathBuf,
        password: &Password,
        access: Access,
    ) -> Result<Profile, Error> {
        let (key, conn) = open_checked(&dir, password, access)?;
        let p = Profile {
            id,
            dir,
            conn: Some(conn),
            key,
            read_only: true,
            guard: None,
        };
        p.identity()?;
        Ok(p)
    }

    /// The profile's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the profile was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Write the profile as Go's export archive (a gzip'd tar of `<id>/db`, `<id>/SALT`,
    /// `<id>/VERSION`) to `out`.
    pub fn export(&self, out: impl Write) -> Result<(), Error> {
        self.conn()?;
        crate::archive::write_profile_archive(out, &self.id, &self.dir)
    }

    /// Close the database, reporting any error SQLite has closing it.
    pub fn close(mut self) -> Result<(), Error> {
        if let Some(conn) = self.conn.take() {
            conn.close().map_err(|(_, e)| Error::from(e))?;
        }
        Ok(())
    }

    /// Take the connection and guard apart (for deletion: close the db, keep the lock).
    pub(crate) fn into_guard(mut self) -> Option<OpenGuard> {
        drop(self.conn.take());
        self.guard.take()
    }

    fn conn(&self) -> Result<&Connection, Error> {
        self.conn
            .as_ref()
            .ok_or_else(|| Error::RecoveryPending(self.dir.clone()))
    }

    fn writable(&mut self) -> Result<&mut Connection, Error> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        let dir = &self.dir;
        self.conn
            .as_mut()
            .ok_or_else(|| Error::RecoveryPending(dir.clone()))
    }

    fn channel_exists(&self, id: ConversationId) -> Result<bool, Error> {
        table_exists(self.conn()?, &schema::channel_table(id))
    }

    fn conversation_exists(conn: &Connection, id: ConversationId) -> Result<bool, Error> {
        Ok(conn
            .query_row("SELECT 1 FROM conversations WHERE ID = ?1", [id.0], |_| {
                Ok(())
            })
            .optional()?
            .is_some())
    }

    fn query_message(
        &self,
        conversation: ConversationId,
        condition: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Option<Message>, Error> {
        if !self.channel_exists(conversation)? {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM {} WHERE {condition}",
            schema::channel_table(conversation)
        );
        self.conn()?
            .query_row(&sql, params, message_row)
            .optional()?
            .transpose()
    }

    // ---- password change internals (see rekey.rs) ----

    pub(crate) fn rekey_parts(&mut self) -> (&Path, &mut Option<Connection>, &mut ProfileKey) {
        (&self.dir, &mut self.conn, &mut self.key)
    }

    pub(crate) fn key(&self) -> &ProfileKey {
        &self.key
    }

    pub(crate) fn tune_connection(conn: &Connection) -> Result<(), Error> {
        tune(conn)
    }

    #[cfg(test)]
    pub(crate) fn change_password_crashing(
        &mut self,
        old: &Password,
        new: &Password,
        crash: rekey::CrashPoint,
    ) -> Result<(), Error> {
        rekey::change_password(self, old, new, Some(crash))
    }
}

impl ProfileStore for Profile {
    fn profile_id(&self) -> &ProfileId {
        &self.id
    }

    fn value(&self, key_type: &KeyType, name: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .conn()?
            .query_row(
                "SELECT KeyValue FROM profile_kv WHERE KeyType = ?1 AND KeyName = ?2",
                params![key_type.as_str(), name],
                |r| Ok(bytes_of(r.get_ref(0)?)),
            )
            .optional()?)
    }

    fn set_value(&mut self, key_type: &KeyType, name: &str, value: &[u8]) -> Result<(), Error> {
        // Go's statement; the value is bound as a blob, as Go binds []byte.
        self.writable()?.execute(
            "insert or replace into profile_kv(KeyType, KeyName, KeyValue) values(?,?,?);",
            params![key_type.as_str(), name, value],
        )?;
        Ok(())
    }

    fn delete_value(&mut self, key_type: &KeyType, name: &str) -> Result<bool, Error> {
        let n = self.writable()?.execute(
            "DELETE FROM profile_kv WHERE KeyType = ?1 AND KeyName = ?2",
            params![key_type.as_str(), name],
        )?;
        Ok(n > 0)
    }

    fn values(&self, key_type: &KeyType) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT KeyName, KeyValue FROM profile_kv WHERE KeyType = ?1 ORDER BY KeyName",
        )?;
        let rows = st.query_map([key_type.as_str()], |r| {
            Ok((string_of(r.get_ref(0)?), bytes_of(r.get_ref(1)?)))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn change_password(&mut self, old: &Password, new: &Password) -> Result<(), Error> {
        rekey::change_password(self, old, new, None)
    }

    fn create_conversation(&mut self, new: &NewConversation) -> Result<ConversationId, Error> {
        if new.handle.is_empty() {
            return Err(Error::EmptyHandle);
        }
        let conn = self.writable()?;
        let tx = conn.transaction()?;
        let existing: Option<i64> = tx
            .query_row(
                "SELECT ID FROM conversations WHERE Handle = ?1 ORDER BY ID LIMIT 1",
                [&new.handle],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = existing {
            return Err(Error::ConversationExists(ConversationId(id)));
        }
        tx.execute(
            "insert into conversations(Handle, Attributes, ACL, Accepted) values(?,?,?,?);",
            params![
                new.handle,
                attributes_to_json(&new.attributes),
                acl_to_json(&new.acl),
                new.accepted
            ],
        )?;
        let id = ConversationId(tx.last_insert_rowid());
        // Go has the (empty) message table for every conversation in the fixtures, with no
        // `sqlite_sequence` row for it, i.e. created with the conversation rather than on the
        // first message: do the same, so Go never meets a conversation without one.
        tx.execute_batch(&schema::create_channel(id))?;
        tx.commit()?;
        Ok(id)
    }

    fn conversation(&self, id: ConversationId) -> Result<Option<Conversation>, Error> {
        self.conn()?
            .query_row(
                &format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE ID = ?1"),
                [id.0],
                conversation_row,
            )
            .optional()?
            .transpose()
    }

    fn conversation_by_handle(&self, handle: &str) -> Result<Option<Conversation>, Error> {
        self.conn()?
            .query_row(
                &format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE Handle = ?1 ORDER BY ID LIMIT 1"
                ),
                [handle],
                conversation_row,
            )
            .optional()?
            .transpose()
    }

    fn conversations(&self) -> Result<Vec<Conversation>, Error> {
        let conn = self.conn()?;
        let mut st = conn.prepare(&format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations ORDER BY ID"
        ))?;
        let rows = st.query_map([], conversation_row)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r??);
        }
        Ok(out)
    }

    fn set_conversation_attributes(
        &mut self,
        id: ConversationId,
        attributes: &Attributes,
    ) -> Result<(), Error> {
        let n = self.writable()?.execute(
            "update conversations set Attributes=(?) where ID=(?) ;",
            params![attributes_to_json(attributes), id.0],
        )?;
        if n == 0 {
            return Err(Error::ConversationNotFound(id));
        }
        Ok(())
    }

    fn set_conversation_acl(&mut self, id: ConversationId, acl: &Acl) -> Result<(), Error> {
        let n = self.writable()?.execute(
            "update conversations set ACL=(?) where ID=(?) ;",
            params![acl_to_json(acl), id.0],
        )?;
        if n == 0 {
            return Err(Error::ConversationNotFound(id));
        }
        Ok(())
    }

    fn accept_conversation(&mut self, id: ConversationId) -> Result<(), Error> {
        let n = self.writable()?.execute(
            "update conversations set Accepted=true where ID=(?);",
            [id.0],
        )?;
        if n == 0 {
            return Err(Error::ConversationNotFound(id));
        }
        Ok(())
    }

    fn delete_conversation(&mut self, id: ConversationId) -> Result<(), Error> {
        let conn = self.writable()?;
        let tx = conn.transaction()?;
        if !Self::conversation_exists(&tx, id)? {
            return Err(Error::ConversationNotFound(id));
        }
        tx.execute_batch(&format!(
            "DROP TABLE IF EXISTS {};",
            schema::channel_table(id)
        ))?;
        tx.execute("delete from conversations where ID=(?);", [id.0])?;
        tx.commit()?;
        Ok(())
    }

    fn insert_message(
        &mut self,
        conversation: ConversationId,
        message: &NewMessage<'_>,
    ) -> Result<MessageId, Error> {
        let conn = self.writable()?;
        let tx = conn.transaction()?;
        if !Self::conversation_exists(&tx, conversation)? {
            return Err(Error::ConversationNotFound(conversation));
        }
        tx.execute_batch(&schema::create_channel(conversation))?;
        let r = tx.execute(
            &format!(
                "insert into {} (Body, Attributes, Signature, ContentHash) values(?,?,?,?);",
                schema::channel_table(conversation)
            ),
            params![
                message.body,
                attributes_to_json(message.attributes),
                message.signature,
                message.content_hash
            ],
        );
        match r {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(Error::DuplicateSignature(conversation))
            }
            Err(e) => return Err(e.into()),
        }
        let id = MessageId(tx.last_insert_rowid());
        tx.commit()?;
        Ok(id)
    }

    fn insert_messages(
        &mut self,
        messages: &[(ConversationId, NewMessage<'_>)],
    ) -> Result<Vec<Option<MessageId>>, Error> {
        let conn = self.writable()?;
        let tx = conn.transaction()?;
        let mut ready = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(messages.len());
        for (conversation, message) in messages {
            if ready.insert(*conversation) {
                if !Self::conversation_exists(&tx, *conversation)? {
                    return Err(Error::ConversationNotFound(*conversation));
                }
                tx.execute_batch(&schema::create_channel(*conversation))?;
            }
            // A unique violation aborts only its own statement; the transaction goes on.
            let r = tx.execute(
                &format!(
                    "insert into {} (Body, Attributes, Signature, ContentHash) values(?,?,?,?);",
                    schema::channel_table(*conversation)
                ),
                params![
                    message.body,
                    attributes_to_json(message.attributes),
                    message.signature,
                    message.content_hash
                ],
            );
            match r {
                Ok(_) => out.push(Some(MessageId(tx.last_insert_rowid()))),
                Err(e) if is_unique_violation(&e) => out.push(None),
                Err(e) => return Err(e.into()),
            }
        }
        tx.commit()?;
        Ok(out)
    }

    fn message(
        &self,
        conversation: ConversationId,
        id: MessageId,
    ) -> Result<Option<Message>, Error> {
        self.query_message(conversation, "ID = ?1", &[&id.0])
    }

    fn message_by_signature(
        &self,
        conversation: ConversationId,
        signature: &str,
    ) -> Result<Option<Message>, Error> {
        self.query_message(conversation, "Signature = ?1", &[&signature])
    }

    fn message_by_content_hash(
        &self,
        conversation: ConversationId,
        content_hash: &str,
    ) -> Result<Option<Message>, Error> {
        self.query_message(
            conversation,
            "ContentHash = ?1 ORDER BY ID DESC LIMIT 1",
            &[&content_hash],
        )
    }

    fn message_by_content_hash_before(
        &self,
        conversation: ConversationId,
        content_hash: &str,
        before: MessageId,
    ) -> Result<Option<Message>, Error> {
        self.query_message(
            conversation,
            "ContentHash = ?1 AND ID < ?2 ORDER BY ID DESC LIMIT 1",
            &[&content_hash, &before.0],
        )
    }

    fn messages(
        &self,
        conversation: ConversationId,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<Message>, Error> {
        if !self.channel_exists(conversation)? {
            return Ok(Vec::new());
        }
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let conn = self.conn()?;
        let mut st = conn.prepare(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM {} ORDER BY ID DESC LIMIT ?1 OFFSET ?2",
            schema::channel_table(conversation)
        ))?;
        let rows = st.query_map(params![i64::from(limit), offset], message_row)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r??);
        }
        Ok(out)
    }

    fn message_count(&self, conversation: ConversationId) -> Result<u64, Error> {
        if !self.channel_exists(conversation)? {
            return Ok(0);
        }
        let n: i64 = self.conn()?.query_row(
            &format!(
                "SELECT count(*) FROM {}",
                schema::channel_table(conversation)
            ),
            [],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn authors(
        &self,
        conversation: ConversationId,
        key: &str,
        except: &str,
        after: MessageId,
    ) -> Result<crate::store::Authors, Error> {
        // A key that a JSON path cannot quote simply: read the messages instead.
        if key.contains(['"', '\\']) || key.chars().any(char::is_control) {
            return crate::store::authors_by_reading(self, conversation, key, except, after);
        }
        let mut out = crate::store::Authors::default();
        if !self.channel_exists(conversation)? {
            return Ok(out);
        }
        // One pass in SQLite, nothing read out but the authors. Attributes are Go's JSON
        // object of strings, stored as bytes; a row whose attributes are not JSON has no
        // author (as a row whose attributes do not parse has none for the default).
        let conn = self.conn()?;
        let mut st = conn.prepare(&format!(
            "SELECT a, sum(ID > ?3) FROM (SELECT ID, CASE WHEN json_valid(CAST(Attributes AS TEXT)) \
             THEN json_extract(CAST(Attributes AS TEXT), ?1) END AS a FROM {}) \
             WHERE typeof(a) = 'text' AND a != ?2 GROUP BY a",
            schema::channel_table(conversation)
        ))?;
        let rows = st.query_map(params![format!("$.\"{key}\""), except, after.0], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        for r in rows {
            let (name, n) = r?;
            out.after += u64::try_from(n).unwrap_or(0);
            out.names.insert(name);
        }
        Ok(out)
    }

    fn messages_where(
        &self,
        conversation: ConversationId,
        filter: &[crate::store::AttributeCondition<'_>],
    ) -> Result<Vec<Message>, Error> {
        use crate::store::AttributeCondition as C;
        // Keys a JSON path cannot quote simply: read the messages instead.
        if filter
            .iter()
            .any(|c| c.key().contains(['"', '\\']) || c.key().chars().any(char::is_control))
        {
            return crate::store::messages_where_by_reading(self, conversation, filter);
        }
        if !self.channel_exists(conversation)? {
            return Ok(Vec::new());
        }
        // Attributes are Go's JSON object of strings; a row whose attributes are not JSON
        // satisfies nothing. Absent is NULL: `IS`/`IS NOT` compare it as unequal to any value.
        let mut conds = vec!["j IS NOT NULL".to_owned()];
        let mut params: Vec<String> = Vec::new();
        for c in filter {
            let path_param = params.len() + 1;
            params.push(format!("$.\"{}\"", c.key()));
            let value = |params: &mut Vec<String>, v: &str| {
                params.push(v.to_owned());
                params.len()
            };
            conds.push(match *c {
                C::Equals(_, v) => {
                    let n = value(&mut params, v);
                    format!("json_extract(j, ?{path_param}) IS ?{n}")
                }
                C::NotEquals(_, v) => {
                    let n = value(&mut params, v);
                    format!("json_extract(j, ?{path_param}) IS NOT ?{n}")
                }
                C::NonEmpty(_) => format!("coalesce(json_extract(j, ?{path_param}), '') != ''"),
                C::Empty(_) => format!("coalesce(json_extract(j, ?{path_param}), '') = ''"),
            });
        }
        let conn = self.conn()?;
        let mut st = conn.prepare(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM (SELECT *, CASE WHEN \
             json_valid(CAST(Attributes AS TEXT)) THEN CAST(Attributes AS TEXT) END AS j FROM {}) \
             WHERE {} ORDER BY ID DESC",
            schema::channel_table(conversation),
            conds.join(" AND ")
        ))?;
        let rows = st.query_map(rusqlite::params_from_iter(params.iter()), message_row)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r??);
        }
        Ok(out)
    }

    fn messages_containing(
        &self,
        conversation: ConversationId,
        needle: &str,
    ) -> Result<Vec<Message>, Error> {
        if !self.channel_exists(conversation)? {
            return Ok(Vec::new());
        }
        // SQLite looks; only the rows that match are read out. (`instr` of an empty needle
        // is 1: every row, as `str::contains("")`.)
        let conn = self.conn()?;
        let mut st = conn.prepare(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM {} WHERE instr(CAST(Body AS TEXT), ?1) > 0 \
             ORDER BY ID DESC",
            schema::channel_table(conversation)
        ))?;
        let rows = st.query_map(params![needle], message_row)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r??);
        }
        Ok(out)
    }

    fn scan_containing_ignore_ascii_case(
        &self,
        conversation: ConversationId,
        needles: &[&str],
        each: &mut dyn FnMut(u64, Message) -> std::ops::ControlFlow<()>,
    ) -> Result<(), Error> {
        if needles.is_empty() || !self.channel_exists(conversation)? {
            return Ok(());
        }
        // SQLite looks (its `lower` folds ASCII letters only, as `to_ascii_lowercase`); only
        // the rows that match are read out. A row's position counts the rows after it: each
        // match's is the previous one's plus the rows between them (one pass over the keys).
        let conds: Vec<String> = (1..=needles.len())
            .map(|n| format!("instr(lower(CAST(Body AS TEXT)), ?{n}) > 0"))
            .collect();
        let table = schema::channel_table(conversation);
        let conn = self.conn()?;
        let mut st = conn.prepare(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM {table} WHERE {} ORDER BY ID DESC",
            conds.join(" OR ")
        ))?;
        let mut between = conn.prepare(&format!(
            "SELECT count(*) FROM {table} WHERE ID > ?1 AND ID < ?2"
        ))?;
        let lowered: Vec<String> = needles.iter().map(|n| n.to_ascii_lowercase()).collect();
        let mut rows = st.query(rusqlite::params_from_iter(lowered.iter()))?;
        // (the previous match's key, its position)
        let mut previous: Option<(i64, u64)> = None;
        while let Some(r) = rows.next()? {
            let message = message_row(r)??;
            let (upper, base) = previous.map_or((i64::MAX, 0), |(id, at)| (id, at + 1));
            let n: i64 = between.query_row(params![message.id.0, upper], |r| r.get(0))?;
            let index = base + u64::try_from(n).unwrap_or(0);
            previous = Some((message.id.0, index));
            if each(index, message).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn count_after(
        &self,
        conversation: ConversationId,
        key: &str,
        except: &str,
        after: MessageId,
    ) -> Result<u64, Error> {
        if key.contains(['"', '\\']) || key.chars().any(char::is_control) {
            return crate::store::count_after_by_reading(self, conversation, key, except, after);
        }
        if !self.channel_exists(conversation)? {
            return Ok(0);
        }
        // Only the rows after `after` (a range of the table's integer key), as `authors`
        // reads each one's author.
        let n: i64 = self.conn()?.query_row(
            &format!(
                "SELECT count(*) FROM (SELECT CASE WHEN json_valid(CAST(Attributes AS TEXT)) \
                 THEN json_extract(CAST(Attributes AS TEXT), ?1) END AS a FROM {} WHERE ID > ?3) \
                 WHERE typeof(a) = 'text' AND a != ?2",
                schema::channel_table(conversation)
            ),
            params![format!("$.\"{key}\""), except, after.0],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn message_index(
        &self,
        conversation: ConversationId,
        id: MessageId,
    ) -> Result<Option<u64>, Error> {
        if self.message(conversation, id)?.is_none() {
            return Ok(None);
        }
        let n: i64 = self.conn()?.query_row(
            &format!(
                "SELECT count(*) FROM {} WHERE ID > ?1",
                schema::channel_table(conversation)
            ),
            [id.0],
            |r| r.get(0),
        )?;
        Ok(Some(u64::try_from(n).unwrap_or(0)))
    }

    fn set_message_attributes(
        &mut self,
        conversation: ConversationId,
        id: MessageId,
        attributes: &Attributes,
    ) -> Result<(), Error> {
        self.writable()?;
        let not_found = Error::MessageNotFound {
            conversation,
            message: id,
        };
        if !self.channel_exists(conversation)? {
            return Err(not_found);
        }
        let n = self.writable()?.execute(
            &format!(
                "update {} set Attributes=(?) where ID=(?);",
                schema::channel_table(conversation)
            ),
            params![attributes_to_json(attributes), id.0],
        )?;
        if n == 0 {
            return Err(not_found);
        }
        Ok(())
    }

    fn delete_messages(&mut self, conversation: ConversationId) -> Result<(), Error> {
        let conn = self.writable()?;
        if !Self::conversation_exists(conn, conversation)? {
            return Err(Error::ConversationNotFound(conversation));
        }
        if table_exists(conn, &schema::channel_table(conversation))? {
            conn.execute_batch(&format!(
                "delete from {};",
                schema::channel_table(conversation)
            ))?;
        }
        Ok(())
    }
}

/// The `profile_kv` rows Go writes when it creates a profile (CONFIRMED by the fixtures;
/// `public.profile.picture` and `local.profile.peer-online` are added later by the UI layer).
pub(crate) fn creation_rows(
    name: &str,
    password: &Password,
    identity: &torv3::Identity,
) -> Vec<(KeyType, &'static str, Zeroizing<Vec<u8>>)> {
    vec![
        (
            KeyType::ATTRIBUTE,
            keys::PUBLIC_PROFILE_NAME,
            name.as_bytes().to_vec().into(),
        ),
        (
            KeyType::ATTRIBUTE,
            keys::PUBLIC_PROFILE_ONION,
            identity.onion().as_str().as_bytes().to_vec().into(),
        ),
        (
            KeyType::PRIVATE_KEY,
            keys::ED25519_PRIVATE_KEY,
            identity.to_go_private_key().to_vec().into(),
        ),
        (
            KeyType::PUBLIC_KEY,
            keys::ED25519_PUBLIC_KEY,
            identity.public_key().as_bytes().to_vec().into(),
        ),
        (
            KeyType::ATTRIBUTE,
            keys::LOCAL_PROFILE_NAME,
            name.as_bytes().to_vec().into(),
        ),
        (
            KeyType::ATTRIBUTE,
            keys::LOCAL_PROFILE_TAG,
            password.tag().as_bytes().to_vec().into(),
        ),
    ]
}
