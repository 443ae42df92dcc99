//! The message store and the spent-token store (spec §5.4).
//!
//! Messages live in SQLite file `cwtch.messages` with Go's schema (so an operator can move a
//! Go server's store to ours): `messages(id INTEGER PRIMARY KEY AUTOINCREMENT, signature TEXT
//! UNIQUE NOT NULL, ciphertext TEXT NOT NULL)`, both columns std base64. WAL mode with
//! `synchronous = FULL`: an insert is on disk before it returns, so a post is durable before it
//! is acknowledged. Spent tokens live in `tokens.sqlite` (Go uses a bbolt file; see
//! docs/COMPATIBILITY.md), also fsynced before a spend is accepted.
//!
//! All calls block: callers run them on tokio's blocking pool.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cwtch_model::EncryptedGroupMessage;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension};

use crate::error::StoreError;

/// Go's message database file name.
pub const MESSAGES_FILE: &str = "cwtch.messages";
/// Our spent-token database file name.
pub const TOKENS_FILE: &str = "tokens.sqlite";
/// Go's estimate of messages per MB of `maxStorageMBs` ("messages are ~4kb").
pub const MESSAGES_PER_MB: u64 = 250;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT, signature TEXT UNIQUE NOT NULL, ciphertext TEXT NOT NULL);";

fn open(path: &Path) -> Result<Connection, StoreError> {
    let err = |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open(path).map_err(err)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(err)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(err)?;
    Ok(conn)
}

/// A stored message with its row id (which defines server order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Row id.
    pub id: i64,
    /// The message as posted.
    pub egm: EncryptedGroupMessage,
}

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// A new message, now on disk.
    Stored,
    /// A message with this signature was already stored.
    Duplicate,
}

struct Writer {
    conn: Connection,
    count: u64,
}

/// The message store.
pub struct MessageStore {
    path: PathBuf,
    writer: Mutex<Writer>,
    cap: Option<u64>,
}

impl std::fmt::Debug for MessageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageStore")
            .field("path", &self.path)
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

fn decode_row(path: &Path, id: i64, sig: String, ct: String) -> Result<StoredMessage, StoreError> {
    let corrupt = || StoreError::CorruptRow {
        path: path.to_path_buf(),
        row: id,
    };
    Ok(StoredMessage {
        id,
        egm: EncryptedGroupMessage {
            signature: Some(B64.decode(sig).map_err(|_| corrupt())?),
            ciphertext: Some(B64.decode(ct).map_err(|_| corrupt())?),
        },
    })
}

impl MessageStore {
    /// Open (or create) `cwtch.messages` in `dir`. `max_storage_mbs` < 0 means unlimited.
    pub fn open(dir: &Path, max_storage_mbs: i64) -> Result<MessageStore, StoreError> {
        let path = dir.join(MESSAGES_FILE);
        let conn = open(&path)?;
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        conn.execute_batch(SCHEMA).map_err(err)?;
        let count: i64 = conn
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
            .map_err(err)?;
        let cap = u64::try_from(max_storage_mbs)
            .ok()
            .map(|mb| mb.saturating_mul(MESSAGES_PER_MB));
        Ok(MessageStore {
            path,
            writer: Mutex::new(Writer {
                conn,
                count: u64::try_from(count).unwrap_or(0),
            }),
            cap,
        })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Store a message durably. A duplicate signature is not an error (Go logs and ignores).
    /// Prunes the oldest messages when over the cap, as Go does: when `count > cap`, delete
    /// `(count − cap) + cap/10`.
    pub fn add(&self, signature: &[u8], ciphertext: &[u8]) -> Result<Added, StoreError> {
        let mut w = self.writer();
        let r = w.conn.execute(
            "INSERT INTO messages (signature, ciphertext) VALUES (?1, ?2)",
            params![B64.encode(signature), B64.encode(ciphertext)],
        );
        match r {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == ErrorCode::ConstraintViolation =>
            {
                return Ok(Added::Duplicate)
            }
            Err(e) => return Err(self.err(e)),
        }
        w.count += 1;
        if let Some(cap) = self.cap {
            if w.count > cap {
                let n = (w.count - cap) + cap / 10;
                let deleted = w
                    .conn
                    .execute(
                        "DELETE FROM messages WHERE id IN (SELECT id FROM messages ORDER BY id LIMIT ?1)",
                        params![i64::try_from(n).unwrap_or(i64::MAX)],
                    )
                    .map_err(|e| self.err(e))?;
                w.count = w.count.saturating_sub(deleted as u64);
            }
        }
        Ok(Added::Stored)
    }

    /// How many messages are stored.
    pub fn count(&self) -> u64 {
        self.writer().count
    }

    /// Start a replay (Go's `FetchMessagesFrom`): every message from the one whose signature
    /// is `last_commit` (inclusive) on, or every message if `last_commit` is empty or unknown
    /// (e.g. pruned). The replay reads one consistent snapshot, however long it takes.
    pub fn replay(&self, last_commit: Option<&[u8]>) -> Result<Replay, StoreError> {
        let conn = open(&self.path)?;
        let err = |e| self.err(e);
        conn.execute_batch("BEGIN").map_err(err)?;
        let end: i64 = conn
            .query_row("SELECT COALESCE(MAX(id), 0) FROM messages", [], |r| {
                r.get(0)
            })
            .map_err(err)?;
        let start = match last_commit.filter(|c| !c.is_empty()) {
            None => 0,
            Some(sig) => conn
                .query_row(
                    "SELECT id FROM messages WHERE signature = ?1",
                    params![B64.encode(sig)],
                    |r| r.get(0),
                )
                .optional()
                .map_err(err)?
                .unwrap_or(0),
        };
        let count: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM messages WHERE id >= ?1 AND id <= ?2",
                params![start, end],
                |r| r.get(0),
            )
            .map_err(err)?;
        Ok(Replay {
            path: self.path.clone(),
            conn,
            next: start,
            end,
            count: u64::try_from(count).unwrap_or(0),
        })
    }

    /// Messages with ids greater than `id`, oldest first, at most `limit`.
    pub fn after(&self, id: i64, limit: usize) -> Result<Vec<StoredMessage>, StoreError> {
        let w = self.writer();
        let mut stmt = w
            .conn
            .prepare_cached(
                "SELECT id, signature, ciphertext FROM messages WHERE id > ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![id, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, s, c) = row.map_err(|e| self.err(e))?;
            out.push(decode_row(&self.path, id, s, c)?);
        }
        Ok(out)
    }

    /// The highest row id stored (0 if empty).
    pub fn last_id(&self) -> Result<i64, StoreError> {
        self.writer()
            .conn
            .query_row("SELECT COALESCE(MAX(id), 0) FROM messages", [], |r| {
                r.get(0)
            })
            .map_err(|e| self.err(e))
    }
}

/// A replay in progress: a read snapshot of the store.
pub struct Replay {
    path: PathBuf,
    conn: Connection,
    next: i64,
    end: i64,
    /// How many messages the replay will yield (Go's `ReplayResult.NumMessages`).
    pub count: u64,
}

impl Replay {
    /// The highest row id in the snapshot: messages after it arrived during or after the
    /// replay began.
    pub fn snapshot_end(&self) -> i64 {
        self.end
    }

    /// The next page of at most `n` messages; empty when done.
    pub fn next_page(&mut self, n: usize) -> Result<Vec<StoredMessage>, StoreError> {
        let err = |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        };
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, signature, ciphertext FROM messages WHERE id >= ?1 AND id <= ?2 ORDER BY id LIMIT ?3",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map(params![self.next, self.end, n as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(err)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, s, c) = row.map_err(err)?;
            out.push(decode_row(&self.path, id, s, c)?);
        }
        if let Some(last) = out.last() {
            self.next = last.id + 1;
        }
        Ok(out)
    }
}

/// Spent tokens, durably (implements the Privacy Pass double-spend check).
pub struct SqliteSpentTokens {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteSpentTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteSpentTokens")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteSpentTokens {
    /// Open (or create) `tokens.sqlite` in `dir`.
    pub fn open(dir: &Path) -> Result<SqliteSpentTokens, StoreError> {
        let path = dir.join(TOKENS_FILE);
        let conn = open(&path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS spent_tokens (t BLOB PRIMARY KEY) WITHOUT ROWID;",
        )
        .map_err(|source| StoreError::Sqlite {
            path: path.clone(),
            source,
        })?;
        Ok(SqliteSpentTokens {
            path,
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many tokens have been spent.
    pub fn count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn()
            .query_row("SELECT COUNT(*) FROM spent_tokens", [], |r| r.get(0))
            .map_err(|source| StoreError::Sqlite {
                path: self.path.clone(),
                source,
            })?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

fn store_error(e: rusqlite::Error) -> privacypass::StoreError {
    privacypass::StoreError::new(e)
}

impl privacypass::SpentTokenStore for SqliteSpentTokens {
    fn is_spent(&self, t: &[u8; 32]) -> Result<bool, privacypass::StoreError> {
        self.conn()
            .query_row(
                "SELECT 1 FROM spent_tokens WHERE t = ?1",
                params![&t[..]],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
            .map_err(store_error)
    }

    fn mark_spent(&self, t: &[u8; 32]) -> Result<bool, privacypass::StoreError> {
        self.conn()
            .execute(
                "INSERT OR IGNORE INTO spent_tokens (t) VALUES (?1)",
                params![&t[..]],
            )
            .map(|n| n == 1)
            .map_err(store_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use privacypass::SpentTokenStore;

    /// Go's message_store_test.go: signature "Hello world" || uvarint(i) in a 4-byte buffer.
    fn go_sig(i: u64) -> Vec<u8> {
        let mut buf = [0u8; 4];
        let mut v = i;
        let mut n = 0;
        while v >= 0x80 {
            buf[n] = (v as u8) | 0x80;
            v >>= 7;
            n += 1;
        }
        buf[n] = v as u8;
        [b"Hello world".as_slice(), &buf].concat()
    }

    fn drain(mut r: Replay) -> Vec<StoredMessage> {
        let mut all = Vec::new();
        loop {
            let page = r.next_page(7).unwrap();
            if page.is_empty() {
                return all;
            }
            all.extend(page);
        }
    }

    #[test]
    fn go_fetch_from_semantics() {
        let dir = tempfile::tempdir().unwrap();
        let s = MessageStore::open(dir.path(), -1).unwrap();
        for i in 0..100 {
            assert_eq!(s.add(&go_sig(i), b"Hello world").unwrap(), Added::Stored);
        }
        assert_eq!(s.count(), 100);
        // From message 50: 50 messages, the referenced one included (Go's test).
        let r = s.replay(Some(&go_sig(50))).unwrap();
        assert_eq!(r.count, 50);
        let got = drain(r);
        assert_eq!(got.len(), 50);
        assert_eq!(got[0].egm.signature.as_deref(), Some(&go_sig(50)[..]));
        // Empty or unknown: everything.
        assert_eq!(drain(s.replay(None).unwrap()).len(), 100);
        assert_eq!(s.replay(Some(b"")).unwrap().count, 100);
        assert_eq!(s.replay(Some(b"pruned long ago")).unwrap().count, 100);
        // `after` is strict.
        let last = got.last().unwrap().id;
        assert!(s.after(last, 10).unwrap().is_empty());
        assert_eq!(s.after(last - 3, 10).unwrap().len(), 3);
    }

    #[test]
    fn duplicates_are_not_stored_twice() {
        let dir = tempfile::tempdir().unwrap();
        let s = MessageStore::open(dir.path(), -1).unwrap();
        assert_eq!(s.add(b"sig", b"one").unwrap(), Added::Stored);
        assert_eq!(s.add(b"sig", b"two").unwrap(), Added::Duplicate);
        assert_eq!(s.count(), 1);
        let all = drain(s.replay(None).unwrap());
        assert_eq!(all[0].egm.ciphertext.as_deref(), Some(&b"one"[..]));
    }

    #[test]
    fn a_replay_is_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let s = MessageStore::open(dir.path(), -1).unwrap();
        for i in 0..10 {
            s.add(&go_sig(i), b"x").unwrap();
        }
        let mut r = s.replay(None).unwrap();
        let first = r.next_page(3).unwrap();
        // Writes during the replay are not part of it.
        for i in 10..20 {
            s.add(&go_sig(i), b"x").unwrap();
        }
        let rest = drain(r);
        assert_eq!(first.len() + rest.len(), 10);
        assert_eq!(s.count(), 20);
    }

    #[test]
    fn pruning_follows_go_rule() {
        let dir = tempfile::tempdir().unwrap();
        // 1 MB = 250 messages; on the 251st, delete (251-250) + 25 = 26 oldest.
        let s = MessageStore::open(dir.path(), 1).unwrap();
        for i in 0..251 {
            s.add(&go_sig(i), b"x").unwrap();
        }
        assert_eq!(s.count(), 225);
        let all = drain(s.replay(None).unwrap());
        assert_eq!(all.len(), 225);
        assert_eq!(all[0].egm.signature.as_deref(), Some(&go_sig(26)[..]));
        // Reopening recounts from disk.
        drop(s);
        assert_eq!(MessageStore::open(dir.path(), 1).unwrap().count(), 225);
    }

    #[test]
    fn spent_tokens_persist_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let t = [7u8; 32];
        {
            let s = SqliteSpentTokens::open(dir.path()).unwrap();
            assert!(!s.is_spent(&t).unwrap());
            assert!(s.mark_spent(&t).unwrap());
            assert!(!s.mark_spent(&t).unwrap());
        }
        let s = SqliteSpentTokens::open(dir.path()).unwrap();
        assert!(s.is_spent(&t).unwrap());
        assert_eq!(s.count().unwrap(), 1);
    }

    #[test]
    fn the_schema_is_gos() {
        let dir = tempfile::tempdir().unwrap();
        let _ = MessageStore::open(dir.path(), -1).unwrap();
        let conn = Connection::open(dir.path().join(MESSAGES_FILE)).unwrap();
        let sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'messages'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            sql,
            "CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, signature TEXT UNIQUE NOT NULL, ciphertext TEXT NOT NULL)"
        );
    }
}
