//! The message store, the spent tokens, and the writer that commits posts in groups
//! (spec §5.4).
//!
//! Both live in one SQLite file, `cwtch.messages`:
//!
//! - `messages(id INTEGER PRIMARY KEY AUTOINCREMENT, signature TEXT UNIQUE NOT NULL, ciphertext
//!   TEXT NOT NULL)`, both columns std base64: Go's table, unchanged, so a Go server reads this
//!   file and an operator can move a Go server's file to ours.
//! - `spent_tokens(t BLOB PRIMARY KEY) WITHOUT ROWID`: ours (Go keeps spent tokens in a bbolt
//!   file; docs/COMPATIBILITY.md row 24). Go's server never looks at it.
//!
//! A post's token and its message are written in **one transaction**, so after a crash either
//! both are on disk or neither is. WAL mode with `synchronous = FULL`: a commit is on disk
//! before it returns, so a post is durable before it is acknowledged.
//!
//! [`GroupCommit`] is the one writer: posts from every connection queue to a blocking task,
//! which takes everything queued (up to [`MAX_BATCH`]) and commits it as one transaction
//! ([`MessageStore::commit`]), then answers each post. Under load many posts share a commit
//! (and its fsync); alone, a post is committed at once, without waiting for company.
//!
//! Servers before the group commit kept spent tokens in `tokens.sqlite`; opening the store
//! imports them (in one durable transaction) and then renames that file
//! `tokens.sqlite.imported`.
//!
//! All [`MessageStore`] calls block: callers run them on tokio's blocking pool.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cwtch_model::EncryptedGroupMessage;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use crate::error::StoreError;
use crate::metrics::{inc, Metrics};
use torv3::safelog::Sensitive;

/// Go's message database file name (which also holds our spent tokens).
pub const MESSAGES_FILE: &str = "cwtch.messages";
/// Where servers before the group commit kept spent tokens; imported on open.
pub const LEGACY_TOKENS_FILE: &str = "tokens.sqlite";
/// What an imported [`LEGACY_TOKENS_FILE`] is renamed to (kept for the operator to delete).
pub const IMPORTED_TOKENS_FILE: &str = "tokens.sqlite.imported";
/// Go's estimate of messages per MB of `maxStorageMBs` ("messages are ~4kb").
pub const MESSAGES_PER_MB: u64 = 250;
/// The most posts one transaction commits.
pub const MAX_BATCH: usize = 512;
/// Posts waiting for the writer, across all connections (a full queue makes posters wait).
pub const QUEUE_LEN: usize = 4096;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT, signature TEXT UNIQUE NOT NULL, ciphertext TEXT NOT NULL);";
const TOKENS_SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS spent_tokens (t BLOB PRIMARY KEY) WITHOUT ROWID;";
const INSERT_MESSAGE: &str =
    "INSERT INTO messages (signature, ciphertext) VALUES (?1, ?2) ON CONFLICT (signature) DO NOTHING";
const INSERT_TOKEN: &str = "INSERT INTO spent_tokens (t) VALUES (?1) ON CONFLICT (t) DO NOTHING";
const PRUNE: &str =
    "DELETE FROM messages WHERE id IN (SELECT id FROM messages ORDER BY id LIMIT ?1)";

fn open(path: &Path) -> Result<Connection, StoreError> {
    let err = |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    // Readable by us only, and so are the -wal and -shm files SQLite creates beside it (they
    // take the database file's mode), whatever the umask.
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let io = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
    }
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

/// A post for [`MessageStore::commit`]: the token preimage it spends and the message it
/// stores, already in the columns' base64.
#[derive(Clone)]
pub struct Post {
    token: [u8; 32],
    signature: String,
    ciphertext: String,
}

impl Post {
    /// A post spending `token` (the preimage `t`) for a message. An empty `signature` spends
    /// the token and stores nothing (Go drops such messages).
    pub fn new(token: [u8; 32], signature: &[u8], ciphertext: &[u8]) -> Post {
        Post {
            token,
            signature: B64.encode(signature),
            ciphertext: B64.encode(ciphertext),
        }
    }
}

impl std::fmt::Debug for Post {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Contents stay out of logs.
        f.debug_struct("Post")
            .field("signature_len", &self.signature.len())
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// What committing a post did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The token is spent and the message stored, both on disk.
    Stored,
    /// The token is spent, on disk; a message with this signature was already stored.
    Duplicate,
    /// The token is spent, on disk; the message had no signature and is not stored.
    SpentOnly,
    /// The token was already spent (before, or by an earlier post in the same batch): nothing
    /// was written for this post.
    DoubleSpend,
    /// Nothing was written: the store failed (logged), or the writer has stopped.
    Failed,
}

struct Writer {
    conn: Connection,
    count: u64,
}

/// The message store and the spent tokens: one SQLite file, one writer connection and one
/// reader connection (WAL: reads never wait for a commit).
pub struct MessageStore {
    path: PathBuf,
    writer: Mutex<Writer>,
    reader: Mutex<Connection>,
    count: AtomicU64,
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

/// Insert one message inside the caller's transaction, pruning as Go does: when `count >
/// cap`, delete `(count − cap) + cap/10` oldest. `Ok(false)`: the signature was already
/// stored.
fn insert_message(
    conn: &Connection,
    count: &mut u64,
    cap: Option<u64>,
    signature: &str,
    ciphertext: &str,
) -> rusqlite::Result<bool> {
    if conn
        .prepare_cached(INSERT_MESSAGE)?
        .execute(params![signature, ciphertext])?
        == 0
    {
        return Ok(false);
    }
    *count += 1;
    if let Some(cap) = cap {
        if *count > cap {
            let n = (*count - cap) + cap / 10;
            let deleted = conn
                .prepare_cached(PRUNE)?
                .execute(params![i64::try_from(n).unwrap_or(i64::MAX)])?;
            *count = count.saturating_sub(deleted as u64);
        }
    }
    Ok(true)
}

/// Import the spent tokens of a server from before the group commit, durably, then rename
/// its file out of the way. Any crash is safe: the import is one transaction, and a file left
/// behind is imported again (tokens already present are skipped).
fn import_legacy_tokens(conn: &mut Connection, dir: &Path) -> Result<u64, StoreError> {
    let legacy = dir.join(LEGACY_TOKENS_FILE);
    if !legacy.exists() {
        return Ok(0);
    }
    let lerr = |source| StoreError::Sqlite {
        path: legacy.clone(),
        source,
    };
    let merr = |source| StoreError::Sqlite {
        path: dir.join(MESSAGES_FILE),
        source,
    };
    let imported = {
        let old = Connection::open(&legacy).map_err(lerr)?;
        old.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(lerr)?;
        let mut rows = old.prepare("SELECT t FROM spent_tokens").map_err(lerr)?;
        let mut rows = rows.query([]).map_err(lerr)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(merr)?;
        let mut n = 0u64;
        {
            let mut insert = tx.prepare_cached(INSERT_TOKEN).map_err(merr)?;
            while let Some(row) = rows.next().map_err(lerr)? {
                let t: Vec<u8> = row.get(0).map_err(lerr)?;
                n += insert.execute(params![t]).map_err(merr)? as u64;
            }
        }
        tx.commit().map_err(merr)?;
        n
    };
    // Committed: the old file is no longer needed. If renaming fails it is imported again
    // next time, which changes nothing.
    for suffix in ["-wal", "-shm", ""] {
        let from = dir.join(format!("{LEGACY_TOKENS_FILE}{suffix}"));
        if from.exists() {
            let to = dir.join(format!("{IMPORTED_TOKENS_FILE}{suffix}"));
            if let Err(e) = std::fs::rename(&from, &to) {
                warn!(error = %Sensitive(&e), file = %Sensitive(from.display()), "could not rename an imported token store");
            }
        }
    }
    tracing::info!(
        tokens = imported,
        "imported spent tokens from {LEGACY_TOKENS_FILE}"
    );
    Ok(imported)
}

impl MessageStore {
    /// Open (or create) `cwtch.messages` in `dir`, importing the spent tokens of an older
    /// `tokens.sqlite` if there is one. `max_storage_mbs` < 0 means unlimited.
    pub fn open(dir: &Path, max_storage_mbs: i64) -> Result<MessageStore, StoreError> {
        let path = dir.join(MESSAGES_FILE);
        let mut conn = open(&path)?;
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        conn.execute_batch(SCHEMA).map_err(err)?;
        conn.execute_batch(TOKENS_SCHEMA).map_err(err)?;
        import_legacy_tokens(&mut conn, dir)?;
        let count: i64 = conn
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
            .map_err(err)?;
        let cap = u64::try_from(max_storage_mbs)
            .ok()
            .map(|mb| mb.saturating_mul(MESSAGES_PER_MB));
        let count = u64::try_from(count).unwrap_or(0);
        let reader = open(&path)?;
        Ok(MessageStore {
            path,
            writer: Mutex::new(Writer { conn, count }),
            reader: Mutex::new(reader),
            count: AtomicU64::new(count),
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

    fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Commit `posts` in one transaction, in order: for each, record its token spent, then
    /// (if the token was not spent already, even by an earlier post of the batch) store its
    /// message. Returns one [`Outcome`] per post, all on disk when this returns `Ok`; on
    /// `Err` nothing at all was written.
    pub fn commit(&self, posts: &[Post]) -> Result<Vec<Outcome>, StoreError> {
        let mut guard = self.writer();
        let Writer { conn, count } = &mut *guard;
        let mut n = *count;
        let outcomes = (|| -> rusqlite::Result<Vec<Outcome>> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut out = Vec::with_capacity(posts.len());
            for p in posts {
                let spent = tx
                    .prepare_cached(INSERT_TOKEN)?
                    .execute(params![&p.token[..]])?;
                out.push(if spent == 0 {
                    Outcome::DoubleSpend
                } else if p.signature.is_empty() {
                    Outcome::SpentOnly
                } else if insert_message(&tx, &mut n, self.cap, &p.signature, &p.ciphertext)? {
                    Outcome::Stored
                } else {
                    Outcome::Duplicate
                });
            }
            tx.commit()?;
            Ok(out)
        })()
        .map_err(|e| self.err(e))?;
        *count = n;
        self.count.store(n, Ordering::Relaxed);
        Ok(outcomes)
    }

    /// Store one message durably in its own transaction, spending no token (tools and
    /// tests; the server commits posts with [`MessageStore::commit`]). A duplicate signature
    /// is not an error (Go logs and ignores). Prunes as Go does.
    pub fn add(&self, signature: &[u8], ciphertext: &[u8]) -> Result<Added, StoreError> {
        let mut guard = self.writer();
        let Writer { conn, count } = &mut *guard;
        let mut n = *count;
        let stored = (|| -> rusqlite::Result<bool> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let stored = insert_message(
                &tx,
                &mut n,
                self.cap,
                &B64.encode(signature),
                &B64.encode(ciphertext),
            )?;
            tx.commit()?;
            Ok(stored)
        })()
        .map_err(|e| self.err(e))?;
        *count = n;
        self.count.store(n, Ordering::Relaxed);
        Ok(if stored {
            Added::Stored
        } else {
            Added::Duplicate
        })
    }

    /// How many messages are stored (never waits for a commit).
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether token preimage `t` has been spent (committed).
    pub fn is_spent(&self, t: &[u8; 32]) -> Result<bool, StoreError> {
        self.reader()
            .query_row(
                "SELECT 1 FROM spent_tokens WHERE t = ?1",
                params![&t[..]],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
            .map_err(|e| self.err(e))
    }

    /// How many tokens have been spent.
    pub fn spent_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .reader()
            .query_row("SELECT COUNT(*) FROM spent_tokens", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(u64::try_from(n).unwrap_or(0))
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
        let r = self.reader();
        let mut stmt = r
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
        self.reader()
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

struct Job {
    post: Post,
    done: oneshot::Sender<Outcome>,
}

/// The group commit: one writer for the posts of every connection (see the module docs).
/// Cloning shares the writer; it stops when the last clone is dropped and its queue is empty.
#[derive(Clone)]
pub struct GroupCommit {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Start the writer on tokio's blocking pool (call from within a runtime).
    pub fn start(store: Arc<MessageStore>, metrics: Arc<Metrics>) -> GroupCommit {
        let (tx, rx) = mpsc::channel(QUEUE_LEN);
        tokio::task::spawn_blocking(move || write_batches(&store, &metrics, rx));
        GroupCommit { tx }
    }

    /// Queue `post` and wait until it is committed (with whatever else was queued). The
    /// outcome is durable when this returns; [`Outcome::Failed`] means nothing was written.
    pub async fn submit(&self, post: Post) -> Outcome {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Job { post, done }).await.is_err() {
            return Outcome::Failed;
        }
        rx.await.unwrap_or(Outcome::Failed)
    }
}

/// The writer: block for one post, take whatever else has queued meanwhile, commit it all in
/// one transaction, answer each, repeat. No timer: a post alone is committed at once; posts
/// that arrive during a commit make up the next batch.
fn write_batches(store: &MessageStore, metrics: &Metrics, mut rx: mpsc::Receiver<Job>) {
    let mut posts = Vec::with_capacity(MAX_BATCH);
    let mut waiting = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        let mut job = Some(first);
        while let Some(j) = job {
            posts.push(j.post);
            waiting.push(j.done);
            job = if posts.len() < MAX_BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        let outcomes = match store.commit(&posts) {
            Ok(o) => {
                inc(&metrics.commits);
                metrics
                    .committed_posts
                    .fetch_add(posts.len() as u64, Ordering::Relaxed);
                o
            }
            Err(e) => {
                warn!(error = %e, posts = posts.len(), "commit failed; refusing its posts");
                vec![Outcome::Failed; posts.len()]
            }
        };
        posts.clear();
        for (done, o) in waiting.drain(..).zip(outcomes) {
            // The poster may have gone; its post is committed all the same.
            let _ = done.send(o);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn tok(i: u8) -> [u8; 32] {
        [i; 32]
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
    fn a_batch_spends_each_token_once_and_stores_each_signature_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = MessageStore::open(dir.path(), -1).unwrap();
        assert_eq!(
            s.commit(&[Post::new(tok(9), b"earlier", b"x")]).unwrap(),
            [Outcome::Stored]
        );
        let batch = [
            Post::new(tok(1), b"a", b"one"),
            Post::new(tok(1), b"b", b"double spend inside the batch"),
            Post::new(tok(2), b"a", b"same signature inside the batch"),
            Post::new(tok(3), b"", b"no signature"),
            Post::new(tok(9), b"c", b"spent by an earlier batch"),
            Post::new(tok(4), b"earlier", b"same signature as an earlier batch"),
            Post::new(tok(5), b"d", b"four"),
        ];
        assert_eq!(
            s.commit(&batch).unwrap(),
            [
                Outcome::Stored,
                Outcome::DoubleSpend,
                Outcome::Duplicate,
                Outcome::SpentOnly,
                Outcome::DoubleSpend,
                Outcome::Duplicate,
                Outcome::Stored,
            ]
        );
        // Spent: every token whose post was not a double spend; stored: a, d and earlier.
        for t in [1, 2, 3, 4, 5, 9] {
            assert!(s.is_spent(&tok(t)).unwrap(), "token {t}");
        }
        assert!(!s.is_spent(&tok(6)).unwrap());
        assert_eq!(s.spent_count().unwrap(), 6);
        assert_eq!(s.count(), 3);
        let sigs: Vec<_> = drain(s.replay(None).unwrap())
            .into_iter()
            .map(|m| (m.egm.signature.unwrap(), m.egm.ciphertext.unwrap()))
            .collect();
        assert_eq!(
            sigs,
            [
                (b"earlier".to_vec(), b"x".to_vec()),
                (b"a".to_vec(), b"one".to_vec()),
                (b"d".to_vec(), b"four".to_vec()),
            ]
        );
        // Both survive reopening.
        drop(s);
        let s = MessageStore::open(dir.path(), -1).unwrap();
        assert_eq!((s.count(), s.spent_count().unwrap()), (3, 6));
    }

    #[test]
    fn a_failed_batch_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = MessageStore::open(dir.path(), -1).unwrap();
        // Make the second insert fail mid-batch with something other than a conflict.
        s.writer()
            .conn
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.signature = 'Yg==' \
                 BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            )
            .unwrap();
        let batch = [Post::new(tok(1), b"a", b"x"), Post::new(tok(2), b"b", b"y")];
        assert!(s.commit(&batch).is_err());
        assert_eq!(s.count(), 0);
        assert_eq!(s.spent_count().unwrap(), 0);
        assert!(drain(s.replay(None).unwrap()).is_empty());
        // The writer is usable afterwards.
        assert_eq!(
            s.commit(&batch[..1]).unwrap(),
            [Outcome::Stored],
            "the first post alone"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn group_commit_answers_every_post_and_shares_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MessageStore::open(dir.path(), -1).unwrap());
        let metrics = Arc::new(Metrics::default());
        let gc = GroupCommit::start(store.clone(), metrics.clone());
        let mut jobs = Vec::new();
        for i in 0..200u32 {
            let gc = gc.clone();
            jobs.push(tokio::spawn(async move {
                let mut t = [0u8; 32];
                // Every fourth post reuses a token: exactly one of each pair is accepted.
                let k = if i % 4 == 3 { i - 1 } else { i };
                t[..4].copy_from_slice(&k.to_be_bytes());
                gc.submit(Post::new(t, format!("sig {i}").as_bytes(), b"x"))
                    .await
            }));
        }
        let mut outcomes = Vec::new();
        for j in jobs {
            outcomes.push(j.await.unwrap());
        }
        let stored = outcomes.iter().filter(|o| **o == Outcome::Stored).count();
        let double = outcomes
            .iter()
            .filter(|o| **o == Outcome::DoubleSpend)
            .count();
        assert_eq!((stored, double), (150, 50));
        assert_eq!(store.count(), 150);
        assert_eq!(store.spent_count().unwrap(), 150);
        let commits = metrics.commits.load(Ordering::Relaxed);
        assert_eq!(metrics.committed_posts.load(Ordering::Relaxed), 200);
        assert!((1..=200).contains(&commits));
        // The writer stops when the last handle is gone.
        drop(gc);
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
    fn pruning_in_a_batch_is_the_same_as_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = MessageStore::open(dir.path(), 1).unwrap();
        let batch: Vec<_> = (0..300u64)
            .map(|i| {
                let mut t = [0u8; 32];
                t[..8].copy_from_slice(&i.to_be_bytes());
                Post::new(t, &go_sig(i), b"x")
            })
            .collect();
        s.commit(&batch).unwrap();
        let one = tempfile::tempdir().unwrap();
        let o = MessageStore::open(one.path(), 1).unwrap();
        for i in 0..300 {
            o.add(&go_sig(i), b"x").unwrap();
        }
        assert_eq!(s.count(), o.count());
        assert_eq!(
            drain(s.replay(None).unwrap())
                .into_iter()
                .map(|m| m.egm)
                .collect::<Vec<_>>(),
            drain(o.replay(None).unwrap())
                .into_iter()
                .map(|m| m.egm)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn spent_tokens_persist_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let t = tok(7);
        {
            let s = MessageStore::open(dir.path(), -1).unwrap();
            assert!(!s.is_spent(&t).unwrap());
            assert_eq!(
                s.commit(&[Post::new(t, b"", b"")]).unwrap(),
                [Outcome::SpentOnly]
            );
        }
        let s = MessageStore::open(dir.path(), -1).unwrap();
        assert!(s.is_spent(&t).unwrap());
        assert_eq!(s.spent_count().unwrap(), 1);
        assert_eq!(
            s.commit(&[Post::new(t, b"sig", b"x")]).unwrap(),
            [Outcome::DoubleSpend]
        );
    }

    #[test]
    fn tokens_spent_before_the_group_commit_are_imported() {
        let dir = tempfile::tempdir().unwrap();
        {
            // The spent-token store as servers before the group commit wrote it.
            let old = open(&dir.path().join(LEGACY_TOKENS_FILE)).unwrap();
            old.execute_batch(
                "CREATE TABLE IF NOT EXISTS spent_tokens (t BLOB PRIMARY KEY) WITHOUT ROWID;",
            )
            .unwrap();
            for i in 1..=3 {
                old.execute("INSERT INTO spent_tokens (t) VALUES (?1)", [&tok(i)[..]])
                    .unwrap();
            }
        }
        let s = MessageStore::open(dir.path(), -1).unwrap();
        assert_eq!(s.spent_count().unwrap(), 3);
        assert_eq!(
            s.commit(&[Post::new(tok(2), b"sig", b"x")]).unwrap(),
            [Outcome::DoubleSpend]
        );
        assert!(!dir.path().join(LEGACY_TOKENS_FILE).exists());
        assert!(dir.path().join(IMPORTED_TOKENS_FILE).exists());
        // A legacy file left behind (a crash before the rename) is imported again: harmless.
        drop(s);
        std::fs::rename(
            dir.path().join(IMPORTED_TOKENS_FILE),
            dir.path().join(LEGACY_TOKENS_FILE),
        )
        .unwrap();
        let s = MessageStore::open(dir.path(), -1).unwrap();
        assert_eq!(s.spent_count().unwrap(), 3);
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
        // Go's store (storage/message_store.go) only ever queries `messages`, as it does
        // here: our `spent_tokens` table is invisible to it.
        conn.execute(
            "INSERT INTO messages (signature, ciphertext) VALUES (?1, ?2)",
            ["c2ln", "Y3Q="],
        )
        .unwrap();
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }
}
