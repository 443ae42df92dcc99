//! File sharing with contacts (protocol.md §9; `docs/specs/file-sharing.md`): sharing a file,
//! serving its manifest and chunks to the contact it was shared with, and downloading files
//! offered to us. The protocol is `cwtch_model::files` (sans IO: manifests, chunk specs, the
//! [`Download`] machine); this module is its driver: files on disk, the connection, storage
//! and events.
//!
//! Storage (attributes of the contact's conversation, keys after Go's where known):
//! `conversation.filesharing.<key>.manifest` (the manifest JSON) and `….manifest.size` (its
//! parts), `local.filesharing.<key>.path` (the shared file, or where a download goes),
//! `local.filesharing.<key>.ts`; ours: `local.filesharing.<key>.state` (`sharing`, `stopped`,
//! `downloading`, `downloaded`, `failed`).

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cwtch_model::files::{
    manifest_parts, numbered_file_name, safe_file_name, ChunkSpec, Download, DownloadConfig,
    DownloadOutput, FileKey, FileMessage, Manifest, ManifestBuilder, MAX_FILE_SIZE, NONCE_LEN,
};
use cwtch_model::gojson::GoJson;
use cwtch_storage::ConversationId;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha512};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use torv3::Onion;
use tracing::{debug, info, warn};

use crate::engine::PeerConn;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::overlay::Content;
use crate::runtime::Runtime;
use crate::types::{ContactId, SentMessage};
use crate::util::now_rfc3339;

/// How many chunks a sharer reads from disk at a time.
const READ_BATCH: u64 = 64;
/// Queue of file messages from the connection to one download.
const DOWNLOAD_QUEUE: usize = 256;

fn attr(scope: &str, key: &FileKey, what: &str) -> String {
    format!("{scope}.filesharing.{key}.{what}")
}

/// A file we share.
#[derive(Clone)]
pub(crate) struct Share {
    pub(crate) path: PathBuf,
    pub(crate) conversation: ConversationId,
    pub(crate) manifest: Arc<Manifest>,
    pub(crate) json: Arc<Vec<u8>>,
    pub(crate) active: bool,
    /// The file's size and modification time when it was hashed: a file that no longer has
    /// them has changed and is not served.
    pub(crate) stamp: Option<FileStamp>,
}

/// What tells a file changed on disk, cheaply: its length and modification time.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct FileStamp {
    len: u64,
    modified_ns: i128,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let m = std::fs::metadata(path).ok()?;
        let modified = m.modified().ok()?;
        let ns = match modified.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(e) => -(e.duration().as_nanos() as i128),
        };
        Some(FileStamp {
            len: m.len(),
            modified_ns: ns,
        })
    }

    fn to_attr(self) -> String {
        format!("{}:{}", self.len, self.modified_ns)
    }

    fn from_attr(s: &str) -> Option<FileStamp> {
        let (l, m) = s.split_once(':')?;
        Some(FileStamp {
            len: l.parse().ok()?,
            modified_ns: m.parse().ok()?,
        })
    }
}

/// One chunk stream: what is left to send, and its stop switch.
#[derive(Clone)]
struct Serving {
    pending: Arc<std::sync::Mutex<ChunkSpec>>,
    cancel: CancellationToken,
}

/// A running download.
pub(crate) struct Running {
    contact: Onion,
    tx: mpsc::Sender<FileMessage>,
}

/// The profile's shares and downloads.
#[derive(Default)]
pub(crate) struct Files {
    pub(crate) shares: HashMap<FileKey, Share>,
    downloads: HashMap<FileKey, Running>,
    /// Chunk streams being served: one per contact and file. A new request adds its chunks
    /// to the stream's pending set (a chunk asked for twice before it is sent goes once).
    serving: HashMap<(Onion, FileKey), Serving>,
}

/// What a file we share or download looks like to a client.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileInfo {
    /// The conversation it was shared in.
    pub conversation_id: i64,
    /// The file key.
    pub file_key: String,
    /// Whether we share it (else it was offered to us).
    pub ours: bool,
    /// Our file (shares) or where it is downloaded to.
    pub path: Option<String>,
    /// `sharing`, `stopped`, `offered`, `downloading`, `downloaded` or `failed: <reason>`.
    pub state: String,
    /// The file's name as offered.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Io { op, path, source }
}

/// Hash a file into its manifest (blocking).
fn build_manifest(path: &Path) -> Result<Manifest> {
    let mut f = std::fs::File::open(path).map_err(io_err("open", path))?;
    let meta = f.metadata().map_err(io_err("read", path))?;
    if !meta.is_file() {
        return Err(Error::Invalid {
            what: "file to share (not a regular file)",
        });
    }
    if meta.len() > MAX_FILE_SIZE {
        return Err(Error::FileTooLarge {
            size: meta.len(),
            limit: MAX_FILE_SIZE,
        });
    }
    let mut b = ManifestBuilder::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io_err("read", path))?;
        if n == 0 {
            break;
        }
        b.update(&buf[..n]).map_err(Error::Bundle)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(b.finish(name))
}

impl Runtime {
    /// Share the file at `path` with a contact: hash it, remember it, and send the offer.
    pub(crate) async fn share_file(
        self: &Arc<Self>,
        c: &ContactId,
        path: &Path,
    ) -> Result<(FileKey, SentMessage)> {
        self.check_running()?;
        let r = self.resolve(c)?;
        if r.blocked {
            return Err(Error::ContactBlocked);
        }
        let path = std::fs::canonicalize(path).map_err(io_err("open", path))?;
        let p = path.clone();
        let (manifest, stamp) = tokio::task::spawn_blocking(move || {
            let before = FileStamp::of(&p);
            let m = build_manifest(&p)?;
            // Changed while being hashed: the manifest may describe no version of it.
            if FileStamp::of(&p) != before {
                return Err(Error::Invalid {
                    what: "file to share (it changed while being read)",
                });
            }
            Ok((m, before))
        })
        .await
        .map_err(|_| Error::Invalid { what: "file" })??;
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let key = FileKey {
            root_hash: manifest.root_hash,
            nonce,
        };
        let json = manifest.to_go_json();
        let parts = manifest_parts(&json).len();
        let conv = r.conversation;
        let values = vec![
            (
                attr("conversation", &key, "manifest"),
                String::from_utf8_lossy(&json).into_owned(),
            ),
            (
                attr("conversation", &key, "manifest.size"),
                parts.to_string(),
            ),
            (
                attr("local", &key, "path"),
                path.to_string_lossy().into_owned(),
            ),
            (attr("local", &key, "ts"), now_rfc3339()),
            (attr("local", &key, "state"), "sharing".to_owned()),
            (
                attr("local", &key, "stamp"),
                stamp.map(FileStamp::to_attr).unwrap_or_default(),
            ),
        ];
        self.store
            .call(move |s| {
                for (k, v) in &values {
                    s.set_conversation_attribute(conv, k, v)?;
                }
                Ok(())
            })
            .await?;
        let content = Content::FileShare {
            name: manifest.file_name.clone(),
            file_key: key.to_string(),
            size: manifest.file_size,
        };
        self.state().files.shares.insert(
            key,
            Share {
                path,
                conversation: conv,
                manifest: Arc::new(manifest),
                json: Arc::new(json),
                active: true,
                stamp,
            },
        );
        info!(contact = %r.onion.redacted(), "sharing a file");
        let sent = self.send_body(c, content.to_body()?).await?;
        Ok((key, sent))
    }

    /// Stop or restart serving a file we share.
    pub(crate) async fn set_sharing(&self, key: &FileKey, active: bool) -> Result<()> {
        let conv = {
            let mut st = self.state();
            let share = st.files.shares.get_mut(key).ok_or(Error::FileNotFound)?;
            share.active = active;
            let conv = share.conversation;
            if !active {
                st.files.serving.retain(|(_, k), serving| {
                    if k == key {
                        serving.cancel.cancel();
                    }
                    k != key
                });
            }
            conv
        };
        let (k, v) = (
            attr("local", key, "state"),
            if active { "sharing" } else { "stopped" },
        );
        self.store
            .call(move |s| s.set_conversation_attribute(conv, &k, v))
            .await?;
        Ok(())
    }

    /// Load the profile's shares, and resume its unfinished downloads (at profile start).
    pub(crate) async fn restore_files(self: &Arc<Self>) {
        let convs = match self.store.call(|s| s.conversations()).await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "could not read file shares");
                return;
            }
        };
        for c in convs {
            for (k, state) in &c.attributes {
                let Some(key) = k
                    .strip_prefix("local.filesharing.")
                    .and_then(|rest| rest.strip_suffix(".state"))
                    .and_then(|key| FileKey::parse(key).ok())
                else {
                    continue;
                };
                let path = c.attribute(&attr("local", &key, "path")).map(PathBuf::from);
                match (state.as_str(), path) {
                    ("sharing" | "stopped", Some(path)) => {
                        let json = c
                            .attribute(&attr("conversation", &key, "manifest"))
                            .unwrap_or_default()
                            .as_bytes()
                            .to_vec();
                        match Manifest::parse(&json) {
                            Ok(m) => {
                                let stamp = c
                                    .attribute(&attr("local", &key, "stamp"))
                                    .and_then(FileStamp::from_attr);
                                self.state().files.shares.insert(
                                    key,
                                    Share {
                                        path,
                                        conversation: c.id,
                                        manifest: Arc::new(m),
                                        json: Arc::new(json),
                                        active: state == "sharing",
                                        stamp,
                                    },
                                );
                            }
                            Err(e) => warn!(error = %e, "a stored manifest does not parse"),
                        }
                    }
                    ("downloading", Some(path)) => {
                        if let Ok(onion) = Onion::parse(&c.handle) {
                            self.start_download(onion, c.id, key, path);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Download a file a contact offered us, into `dir`. Returns where it will be.
    pub(crate) async fn download_file(
        self: &Arc<Self>,
        c: &ContactId,
        key: &FileKey,
        dir: &Path,
    ) -> Result<PathBuf> {
        self.check_running()?;
        let r = self.resolve(c)?;
        if r.blocked {
            return Err(Error::ContactBlocked);
        }
        if self.state().files.downloads.contains_key(key) {
            return Err(Error::DownloadRunning);
        }
        let conv = r.conversation;
        let wanted = key.to_string();
        let me = self.onion.as_str().to_owned();
        // The offer: a file message from the contact with this key.
        let offer = self
            .store
            .call(move |s| {
                let mut found = None;
                for m in s.messages(conv, 0, u32::MAX)? {
                    let theirs = m.attributes.get(cwtch_storage::keys::MESSAGE_AUTHOR) != Some(&me);
                    if let (
                        true,
                        Content::FileShare {
                            name,
                            file_key,
                            size,
                        },
                    ) = (theirs, Content::parse(&m.body))
                    {
                        if file_key == wanted {
                            found = Some((name, size));
                            break;
                        }
                    }
                }
                Ok(found)
            })
            .await?;
        let (name, size) = offer.ok_or(Error::FileNotFound)?;
        if size > self.config.max_download_size {
            return Err(Error::FileTooLarge {
                size,
                limit: self.config.max_download_size,
            });
        }
        std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        let path = unused_path(dir, &safe_file_name(&name));
        // Reserve the name: an empty partial file.
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(partial_path(&path))
            .map_err(io_err("create", &path))?;
        let values = vec![
            (
                attr("local", key, "path"),
                path.to_string_lossy().into_owned(),
            ),
            (attr("local", key, "ts"), now_rfc3339()),
            (attr("local", key, "state"), "downloading".to_owned()),
        ];
        self.store
            .call(move |s| {
                for (k, v) in &values {
                    s.set_conversation_attribute(conv, k, v)?;
                }
                Ok(())
            })
            .await?;
        self.start_download(r.onion, conv, *key, path.clone());
        Ok(path)
    }

    fn start_download(
        self: &Arc<Self>,
        contact: Onion,
        conv: ConversationId,
        key: FileKey,
        path: PathBuf,
    ) {
        let (tx, rx) = mpsc::channel(DOWNLOAD_QUEUE);
        let cancel = self.cancel.child_token();
        self.state().files.downloads.insert(
            key,
            Running {
                contact: contact.clone(),
                tx,
            },
        );
        let rt = self.clone();
        self.spawn(async move {
            rt.run_download(contact, conv, key, path, rx, cancel).await;
            rt.state().files.downloads.remove(&key);
        });
    }

    /// The files shared with us and by us in a conversation (all conversations: `None`).
    pub(crate) async fn files(&self, conv: Option<ConversationId>) -> Result<Vec<FileInfo>> {
        let me = self.onion.as_str().to_owned();
        self.store
            .call(move |s| {
                let mut out = Vec::new();
                for c in s.conversations()? {
                    if conv.is_some_and(|id| id != c.id) {
                        continue;
                    }
                    for m in s.messages(c.id, 0, u32::MAX)? {
                        let Content::FileShare {
                            name,
                            file_key,
                            size,
                        } = Content::parse(&m.body)
                        else {
                            continue;
                        };
                        let Ok(key) = FileKey::parse(&file_key) else {
                            continue;
                        };
                        let ours =
                            m.attributes.get(cwtch_storage::keys::MESSAGE_AUTHOR) == Some(&me);
                        let state = c
                            .attribute(&attr("local", &key, "state"))
                            .unwrap_or(if ours { "stopped" } else { "offered" })
                            .to_owned();
                        out.push(FileInfo {
                            conversation_id: c.id.0,
                            file_key,
                            ours,
                            path: c.attribute(&attr("local", &key, "path")).map(str::to_owned),
                            state,
                            name,
                            size,
                        });
                    }
                }
                Ok(out)
            })
            .await
    }

    /// A file-sharing message from a contact (the engine's [`cwtch_model::peer::Output::File`]).
    pub(crate) async fn on_file_message(
        self: &Arc<Self>,
        remote: &Onion,
        conv: ConversationId,
        accepted: bool,
        pc: &Arc<PeerConn>,
        m: FileMessage,
    ) {
        match m {
            FileMessage::RequestManifest { key } => {
                let Some(share) = self.servable(&key, conv, accepted) else {
                    debug!("a manifest request for no file we share with this contact");
                    return;
                };
                for (i, part) in manifest_parts(&share.json).into_iter().enumerate() {
                    let msg = FileMessage::ManifestPart {
                        key,
                        index: i as u64,
                        data: part.to_vec(),
                    };
                    if pc.send(&msg.to_peer_message()).await.is_err() {
                        return;
                    }
                }
            }
            FileMessage::RequestChunks { key, spec } => {
                let Some(share) = self.servable(&key, conv, accepted) else {
                    debug!("a chunk request for no file we share with this contact");
                    return;
                };
                let Ok(spec) = ChunkSpec::parse(&spec, share.manifest.chunk_count()) else {
                    debug!("ignoring an invalid chunk request");
                    return;
                };
                let new = {
                    let mut st = self.state();
                    match st.files.serving.get(&(remote.clone(), key)) {
                        Some(serving) => {
                            lock(&serving.pending).extend(&spec);
                            None
                        }
                        None => {
                            let serving = Serving {
                                pending: Arc::new(std::sync::Mutex::new(spec)),
                                cancel: self.cancel.child_token(),
                            };
                            st.files
                                .serving
                                .insert((remote.clone(), key), serving.clone());
                            Some(serving)
                        }
                    }
                };
                if let Some(serving) = new {
                    let (rt, pc, remote) = (self.clone(), pc.clone(), remote.clone());
                    self.spawn(async move {
                        rt.serve_chunks(share, key, &remote, serving, pc).await;
                    });
                }
            }
            m @ (FileMessage::ManifestPart { .. } | FileMessage::Chunk { .. }) => {
                let tx = {
                    let st = self.state();
                    st.files
                        .downloads
                        .get(m.key())
                        .filter(|d| &d.contact == remote)
                        .map(|d| d.tx.clone())
                };
                match tx {
                    // Waiting here holds this connection's reader: the sharer slows down
                    // to the pace of our disk.
                    Some(tx) => {
                        let _ = tx.send(m).await;
                    }
                    None => debug!("a file part for no download of ours"),
                }
            }
        }
    }

    /// The share `key`, if it may be served in `conv` now.
    fn servable(&self, key: &FileKey, conv: ConversationId, accepted: bool) -> Option<Share> {
        let st = self.state();
        st.files
            .shares
            .get(key)
            .filter(|s| accepted && s.active && s.conversation == conv)
            .cloned()
    }

    /// Drive one download until it completes, fails, or the profile stops.
    async fn run_download(
        self: &Arc<Self>,
        contact: Onion,
        conv: ConversationId,
        key: FileKey,
        path: PathBuf,
        mut rx: mpsc::Receiver<FileMessage>,
        cancel: CancellationToken,
    ) {
        let config = DownloadConfig {
            max_file_size: self.config.max_download_size,
            ..DownloadConfig::default()
        };
        let (mut d, mut outputs) = Download::start(key, config);
        let part = partial_path(&path);
        let mut file: Option<std::fs::File> = None;
        let mut last_progress = 0u64;
        loop {
            for o in std::mem::take(&mut outputs) {
                match o {
                    DownloadOutput::Send(m) => {
                        let conn = self
                            .state()
                            .contacts
                            .get(&contact)
                            .and_then(|e| e.ready_conn());
                        // Not connected: the next tick asks again.
                        if let Some(pc) = conn {
                            let _ = pc.send(&m.to_peer_message()).await;
                        }
                    }
                    DownloadOutput::ManifestReady(m) => {
                        let (p, mf) = (part.clone(), m.clone());
                        let opened = tokio::task::spawn_blocking(move || open_partial(&p, &mf))
                            .await
                            .map_err(|_| std::io::Error::other("task failed"))
                            .and_then(|r| r);
                        match opened {
                            Ok((f, have)) => {
                                file = Some(f);
                                outputs.extend(d.manifest_accepted(Some(have)));
                            }
                            Err(e) => {
                                return self.download_failed(conv, &key, e.to_string()).await;
                            }
                        }
                    }
                    DownloadOutput::Write { offset, data, .. } => {
                        let Some(f) = file.as_mut() else { continue };
                        let written = f
                            .seek(SeekFrom::Start(offset))
                            .and_then(|_| f.write_all(&data));
                        if let Err(e) = written {
                            // Disk full and the like: fail cleanly, keep what is verified.
                            return self
                                .download_failed(conv, &key, format!("writing the file: {e}"))
                                .await;
                        }
                    }
                    // About every percent, and at the end.
                    DownloadOutput::Progress { done, total }
                        if done == total
                            || done.saturating_sub(last_progress) >= (total / 100).max(1 << 20)
                            || last_progress == 0 =>
                    {
                        last_progress = done.max(1);
                        self.emit(Event::FileDownloadProgress {
                            profile: self.profile(),
                            conversation_id: conv.0,
                            file_key: key.to_string(),
                            done,
                            total,
                        });
                    }
                    DownloadOutput::VerifyFile => {
                        let Some(mut f) = file.take() else { continue };
                        let root = key.root_hash;
                        let ok = tokio::task::spawn_blocking(move || {
                            f.sync_all()?;
                            f.seek(SeekFrom::Start(0))?;
                            let mut h = Sha512::new();
                            std::io::copy(&mut f, &mut h)?;
                            Ok::<_, std::io::Error>(h.finalize().as_slice() == root)
                        })
                        .await
                        .ok()
                        .and_then(|r| r.ok())
                        .unwrap_or(false);
                        outputs.extend(d.file_verified(ok));
                    }
                    DownloadOutput::Complete => {
                        return self.download_complete(conv, &key, &path).await;
                    }
                    DownloadOutput::Failed(e) => {
                        return self.download_failed(conv, &key, e.to_string()).await;
                    }
                    _ => {}
                }
            }
            if !outputs.is_empty() {
                continue;
            }
            if d.is_finished() {
                return;
            }
            outputs = tokio::select! {
                _ = cancel.cancelled() => return,
                m = rx.recv() => match m {
                    Some(m) => d.receive(m),
                    None => return,
                },
                _ = tokio::time::sleep(self.config.download_stall) => d.tick(),
            };
        }
    }

    async fn download_complete(&self, conv: ConversationId, key: &FileKey, path: &Path) {
        let part = partial_path(path);
        // Never overwrite: if a file of that name appeared meanwhile, take another name.
        let final_path = if path.exists() {
            let dir = path.parent().unwrap_or(Path::new("."));
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            unused_path(dir, &name)
        } else {
            path.to_owned()
        };
        if let Err(e) = std::fs::rename(&part, &final_path) {
            return self
                .download_failed(conv, key, format!("renaming the file: {e}"))
                .await;
        }
        let values = vec![
            (
                attr("local", key, "path"),
                final_path.to_string_lossy().into_owned(),
            ),
            (attr("local", key, "state"), "downloaded".to_owned()),
        ];
        let _ = self
            .store
            .call(move |s| {
                for (k, v) in &values {
                    s.set_conversation_attribute(conv, k, v)?;
                }
                Ok(())
            })
            .await;
        info!("download complete");
        self.emit(Event::FileDownloaded {
            profile: self.profile(),
            conversation_id: conv.0,
            file_key: key.to_string(),
            path: final_path.to_string_lossy().into_owned(),
        });
    }

    async fn download_failed(&self, conv: ConversationId, key: &FileKey, reason: String) {
        warn!(reason = %reason, "download failed");
        let (k, v) = (attr("local", key, "state"), format!("failed: {reason}"));
        let _ = self
            .store
            .call(move |s| s.set_conversation_attribute(conv, &k, &v))
            .await;
        self.emit(Event::FileDownloadFailed {
            profile: self.profile(),
            conversation_id: conv.0,
            file_key: key.to_string(),
            reason,
        });
    }
}

/// Where a download is written until it is verified: `<final name>.part`.
fn partial_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".part");
    PathBuf::from(p)
}

/// `dir/name`, or `dir/name (n).ext` for the first `n` such that neither it nor its partial
/// file exists.
fn unused_path(dir: &Path, name: &str) -> PathBuf {
    let free = |p: &Path| !p.exists() && !partial_path(p).exists();
    let first = dir.join(name);
    if free(&first) {
        return first;
    }
    (1u32..)
        .map(|n| dir.join(numbered_file_name(name, n)))
        .find(|p| free(p))
        .unwrap_or(first)
}

/// Open (or create) the partial file, sized to the manifest, and check which chunks it
/// already holds (blocking).
fn open_partial(path: &Path, m: &Manifest) -> std::io::Result<(std::fs::File, Vec<bool>)> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let len = f.metadata()?.len();
    let mut have = vec![false; m.chunks.len()];
    let mut buf = vec![0u8; m.chunk_size as usize];
    for (i, h) in have.iter_mut().enumerate() {
        let Some((start, clen)) = m.chunk_range(i as u64) else {
            break;
        };
        if start + clen as u64 > len {
            break;
        }
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf[..clen])?;
        *h = m.verify_chunk(i as u64, &buf[..clen]);
    }
    f.set_len(m.file_size)?;
    Ok((f, have))
}

fn lock(m: &std::sync::Mutex<ChunkSpec>) -> std::sync::MutexGuard<'_, ChunkSpec> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Runtime {
    /// Stream the pending chunks to the contact, lowest first, reading them in batches; a
    /// file whose length or modification time changed since it was hashed is not served (the
    /// downloader checks every chunk anyway). Ends when nothing is pending, the stream is
    /// stopped, or the connection fails.
    async fn serve_chunks(
        &self,
        share: Share,
        key: FileKey,
        remote: &Onion,
        serving: Serving,
        pc: Arc<PeerConn>,
    ) {
        let end = |rt: &Self| {
            let mut st = rt.state();
            let ours = st
                .files
                .serving
                .get(&(remote.clone(), key))
                .is_some_and(|s| Arc::ptr_eq(&s.pending, &serving.pending));
            if ours {
                st.files.serving.remove(&(remote.clone(), key));
            }
        };
        loop {
            if serving.cancel.is_cancelled() {
                return end(self);
            }
            let batch = {
                // Under the state lock, so that a request arriving now either finds this
                // stream (and is served by it) or finds it gone (and starts another).
                let _st = self.state();
                let batch = lock(&serving.pending).take_first(READ_BATCH as usize);
                if batch.is_empty() {
                    drop(_st);
                    return end(self);
                }
                batch
            };
            let (path, manifest, stamp) = (share.path.clone(), share.manifest.clone(), share.stamp);
            let read =
                tokio::task::spawn_blocking(move || -> std::io::Result<Vec<(u64, Vec<u8>)>> {
                    let mut f = std::fs::File::open(&path)?;
                    // Changed since it was hashed (length or time): its chunks are not the
                    // manifest's; serve nothing rather than garbage.
                    if stamp.is_some() && FileStamp::of(&path) != stamp {
                        return Err(std::io::Error::other("the shared file changed on disk"));
                    }
                    let mut out = Vec::with_capacity(batch.len());
                    for i in batch {
                        let Some((start, len)) = manifest.chunk_range(i) else {
                            continue;
                        };
                        let mut buf = vec![0u8; len];
                        f.seek(SeekFrom::Start(start))?;
                        f.read_exact(&mut buf)?;
                        out.push((i, buf));
                    }
                    Ok(out)
                })
                .await;
            let chunks = match read {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    warn!(error = %e, "cannot serve a shared file");
                    return end(self);
                }
                Err(_) => return end(self),
            };
            for (index, data) in chunks {
                let m = FileMessage::Chunk { key, index, data }.to_peer_message();
                let sent = tokio::select! {
                    _ = serving.cancel.cancelled() => return end(self),
                    r = pc.send(&m) => r,
                };
                if sent.is_err() {
                    return end(self);
                }
            }
        }
    }
}
