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
//! `downloading`, `downloaded`, `failed: <reason>`, and for automatic image downloads
//! `refused: <reason>`), `local.filesharing.<key>.kind` (`profile-image`, `preview`; absent for
//! files the user asked for) and `local.filesharing.<key>.image` (the checked image's
//! [`ImageInfo`] as JSON).
//!
//! A share not tied to a conversation (our profile picture: [`Share::conversation`] is
//! `None`) keeps the same keys as profile attributes, and is served to every accepted contact
//! (the key, with its random nonce, is what a contact needs to know).

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cwtch_model::files::{
    chunk_peer_message, manifest_parts, numbered_file_name, safe_file_name, ChunkHashes, ChunkSet,
    ChunkSpec, Download, DownloadConfig, DownloadError, DownloadOutput, FileKey, FileMessage,
    Manifest, ManifestBuilder, ManifestInfo, CHUNK_HASH_LEN, MAX_CHUNK_SPEC_RANGES, MAX_FILE_SIZE,
    NONCE_LEN,
};
use cwtch_model::gojson::GoJson;
use cwtch_storage::{ConversationId, KeyType};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha512};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use torv3::safelog::Sensitive;
use torv3::Onion;
use tracing::{debug, info, warn};

use crate::engine::PeerConn;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::groups::GroupRef;
use crate::images::{
    check_image, is_image_name, ImageError, ImageInfo, MAX_IMAGE_SIZE, PROFILE_IMAGE_ATTRIBUTE,
};
use crate::overlay::Content;
use crate::runtime::Runtime;
use crate::types::{ContactId, SentMessage};
use crate::util::now_rfc3339;
use std::sync::atomic::Ordering;

/// The name our profile picture has in its manifest (with its format as extension).
const PROFILE_IMAGE_NAME: &str = "profile-image";
/// How many chunks a sharer reads from disk at a time.
const READ_BATCH: u64 = 64;
/// Queue of file messages from the connection to one download.
const DOWNLOAD_QUEUE: usize = 256;
/// How far back in a conversation turning image previews on looks for images offered
/// while they were off (messages, newest first).
const PREVIEW_LOOKBACK: u32 = 100;
/// What every file offer's body contains (its overlay number, 200, in whatever JSON spells
/// it): the store searches bodies for it rather than handing every message over.
const OFFER_NEEDLE: &str = "200";

fn attr(scope: &str, key: &FileKey, what: &str) -> String {
    format!("{scope}.filesharing.{key}.{what}")
}

/// Why a download runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum DownloadKind {
    /// The user asked for it.
    File,
    /// A contact's profile picture (automatic, with image previews on).
    ProfileImage,
    /// An image file offered in a conversation (automatic, with image previews on).
    Preview,
}

impl DownloadKind {
    fn is_image(self) -> bool {
        self != DownloadKind::File
    }

    fn to_attr(self) -> &'static str {
        match self {
            DownloadKind::File => "file",
            DownloadKind::ProfileImage => "profile-image",
            DownloadKind::Preview => "preview",
        }
    }

    fn from_attr(s: Option<&str>) -> DownloadKind {
        match s {
            Some("profile-image") => DownloadKind::ProfileImage,
            Some("preview") => DownloadKind::Preview,
            _ => DownloadKind::File,
        }
    }
}

/// A file we share.
#[derive(Clone)]
pub(crate) struct Share {
    pub(crate) path: PathBuf,
    /// The conversation it was shared in; `None`: every accepted contact (a profile picture).
    pub(crate) conversation: Option<ConversationId>,
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

impl Share {
    /// Whether the file changed on disk since it was hashed (its length or time): its chunks
    /// are no longer the manifest's.
    async fn changed(&self) -> bool {
        let (path, stamp) = (self.path.clone(), self.stamp);
        // A file that cannot be read now (missing, an unmounted disk) is unavailable, not
        // changed: serving it fails, and it may come back.
        stamp.is_some()
            && tokio::task::spawn_blocking(move || {
                FileStamp::of(&path).is_some_and(|now| Some(now) != stamp)
            })
            .await
            .unwrap_or(false)
    }
}

/// The state of a share whose file changed on disk after it was shared.
pub(crate) const CHANGED: &str =
    "stopped: the file changed on disk since it was shared (share it again to offer the new one)";

/// One chunk stream: what is left to send, and its stop switch.
#[derive(Clone)]
struct Serving {
    pending: Arc<std::sync::Mutex<ChunkSpec>>,
    cancel: CancellationToken,
}

/// A running download.
pub(crate) struct Running {
    /// Which attempt (a retry of the same file is another).
    id: u64,
    contact: Onion,
    tx: mpsc::Sender<DownloadInput>,
    kind: DownloadKind,
    cancel: CancellationToken,
}

/// What a running download hears from the rest of the profile.
#[derive(Debug)]
enum DownloadInput {
    /// A file message from the sharer.
    Message(FileMessage),
    /// A connection to the sharer is ready (what was asked before may have been lost).
    Connected,
    /// The user stops the download: answered once its state says so.
    Stop(tokio::sync::oneshot::Sender<()>),
}

/// The profile's shares and downloads.
#[derive(Default)]
pub(crate) struct Files {
    pub(crate) shares: HashMap<FileKey, Share>,
    downloads: HashMap<FileKey, Running>,
    /// Automatic image downloads being set up (not yet in `downloads`), and from whom.
    starting: HashMap<FileKey, Onion>,
    /// Conversations where an offered image was left waiting because the automatic downloads
    /// were at their bound: looked at again when an automatic download ends.
    deferred: std::collections::BTreeSet<ConversationId>,
    /// Chunk streams being served: one per contact and file. A new request adds its chunks
    /// to the stream's pending set (a chunk asked for twice before it is sent goes once).
    serving: HashMap<(Onion, FileKey), Serving>,
}

/// What a file we share or download looks like to a client.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileInfo {
    /// The conversation it was shared in; -1 for a file shared with no conversation (our
    /// profile picture, served to every accepted contact; libCwtch's `c_ShareFile` with -1).
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

/// Open a file to read, non-blocking: opening a FIFO (or a device) must not wait for a writer
/// before it is found not to be a regular file; reads of a regular file are not affected.
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let nonblock = rustix::fs::OFlags::NONBLOCK.bits();
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(i32::try_from(nonblock).unwrap_or(0))
        .open(path)
}

/// Hash a file into its manifest (blocking).
fn build_manifest(path: &Path) -> Result<Manifest> {
    let mut f = open_nonblocking(path).map_err(io_err("open", path))?;
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
        let (key, content) = self.register_share(r.conversation, path).await?;
        info!(contact = %r.onion.redacted(), "sharing a file");
        let sent = self.send_body(c, content.to_body()?).await?;
        Ok((key, sent))
    }

    /// Share the file at `path` in a group: the offer is posted to the group, and any
    /// member who asks for its key (which only the group's messages carry) may download it
    /// from us over P2P, as from a contact.
    pub(crate) async fn share_file_in_group(
        self: &Arc<Self>,
        g: &GroupRef,
        path: &Path,
    ) -> Result<(FileKey, SentMessage)> {
        self.check_running()?;
        let conv = self.resolve_group(g)?;
        {
            let st = self.state();
            let e = st.groups.groups.get(&conv).ok_or(Error::GroupNotFound)?;
            if !e.accepted {
                return Err(Error::GroupNotAccepted);
            }
        }
        let (key, content) = self.register_share(conv, path).await?;
        info!("sharing a file in a group");
        let sent = self.send_group_body(g, content.to_body()?).await?;
        Ok((key, sent))
    }

    /// Hash the file at `path`, store its share in conversation `conv`'s attributes and
    /// serve it from now on. Returns its key and the offer to send.
    async fn register_share(
        &self,
        conv: ConversationId,
        path: &Path,
    ) -> Result<(FileKey, Content)> {
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
        let (name, size) = (manifest.file_name.clone(), manifest.file_size);
        let key = self.store_share(Some(conv), path, manifest, stamp).await?;
        let content = Content::FileShare {
            name,
            file_key: key.to_string(),
            size,
        };
        Ok((key, content))
    }

    /// Give a hashed file its key (a fresh nonce), store its share in `owner`'s attributes
    /// (a conversation's, or the profile's: `None`) and serve it from now on.
    async fn store_share(
        &self,
        owner: Option<ConversationId>,
        path: PathBuf,
        manifest: Manifest,
        stamp: Option<FileStamp>,
    ) -> Result<FileKey> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let key = FileKey {
            root_hash: manifest.root_hash,
            nonce,
        };
        let json = manifest.to_go_json();
        let parts = manifest_parts(&json).len();
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
        self.set_file_attrs(owner, values).await?;
        self.state().files.shares.insert(
            key,
            Share {
                path,
                conversation: owner,
                manifest: Arc::new(manifest),
                json: Arc::new(json),
                active: true,
                stamp,
            },
        );
        Ok(key)
    }

    /// Stop or restart serving a file we share.
    /// A shared file changed on disk: stop sharing it (its chunks would not match the
    /// manifest), and say so in its state, which `files` lists.
    async fn share_changed(&self, key: &FileKey) {
        let conv = {
            let mut st = self.state();
            let Some(share) = st.files.shares.get_mut(key).filter(|s| s.active) else {
                return;
            };
            share.active = false;
            share.conversation
        };
        warn!(
            file = %hex_prefix(key),
            "a shared file changed on disk since it was shared: sharing it stopped (share it \
             again to offer the new one)"
        );
        let state = vec![(attr("local", key, "state"), CHANGED.to_owned())];
        if let Err(e) = self.set_file_attrs(conv, state).await {
            warn!(error = %e, "could not mark a changed share stopped");
        }
    }

    pub(crate) async fn set_sharing(&self, key: &FileKey, active: bool) -> Result<()> {
        if active {
            let share = self.state().files.shares.get(key).cloned();
            if let Some(share) = share {
                if share.changed().await {
                    return Err(Error::SharedFileChanged);
                }
            }
        }
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
        let state = if active { "sharing" } else { "stopped" };
        self.set_file_attrs(conv, vec![(attr("local", key, "state"), state.to_owned())])
            .await
    }

    /// Store attributes of a share or a download: on its conversation, or (`None`) on the
    /// profile.
    async fn set_file_attrs(
        &self,
        owner: Option<ConversationId>,
        values: Vec<(String, String)>,
    ) -> Result<()> {
        self.store
            .call(move |s| {
                for (k, v) in &values {
                    match owner {
                        Some(c) => s.set_conversation_attribute(c, k, v)?,
                        None => s.set_attribute(k, v)?,
                    }
                }
                Ok(())
            })
            .await
    }

    /// Load the profile's shares, and resume its unfinished downloads (at profile start).
    pub(crate) async fn restore_files(self: &Arc<Self>) {
        let read = self
            .store
            .call(|s| {
                let profile: BTreeMap<String, String> = s
                    .values(&KeyType::ATTRIBUTE)?
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                    .collect();
                Ok((profile, s.conversations()?))
            })
            .await;
        let (profile, convs) = match read {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "could not read file shares");
                return;
            }
        };
        self.restore_shares(None, &profile);
        for c in convs {
            self.restore_shares(Some(c.id), &c.attributes);
            for (k, state) in &c.attributes {
                let Some(key) = state_key(k) else { continue };
                let path = c.attribute(&attr("local", &key, "path")).map(PathBuf::from);
                let kind = DownloadKind::from_attr(c.attribute(&attr("local", &key, "kind")));
                // A contact's conversation, or a group's (the sharer is stored).
                let sharer = Onion::parse(&c.handle).ok().or_else(|| {
                    c.attribute(&attr("local", &key, "sharer"))
                        .and_then(|o| Onion::parse(o).ok())
                });
                let (Some(onion), "downloading", Some(path)) = (sharer, state.as_str(), path)
                else {
                    continue;
                };
                // Automatic downloads resume only while image previews are on, and from
                // contacts still accepted, unblocked and allowed to show us images.
                let wanted = !kind.is_image()
                    || (self.image_previews.load(Ordering::Relaxed)
                        && crate::Permissions::from_access(c.own_access()).renders_images()
                        && self
                            .lookup(&onion)
                            .is_some_and(|r| r.accepted && !r.blocked));
                if wanted {
                    self.start_download(onion, c.id, key, path, kind);
                }
            }
        }
    }

    /// The shares stored in one set of attributes (a conversation's, or the profile's).
    fn restore_shares(&self, owner: Option<ConversationId>, attrs: &BTreeMap<String, String>) {
        let get = |k: String| attrs.get(&k).map(String::as_str);
        for (k, state) in attrs {
            let Some(key) = state_key(k) else { continue };
            if state != "sharing" && !state.starts_with("stopped") {
                continue;
            }
            let Some(path) = get(attr("local", &key, "path")).map(PathBuf::from) else {
                continue;
            };
            let json = get(attr("conversation", &key, "manifest"))
                .unwrap_or_default()
                .as_bytes()
                .to_vec();
            match Manifest::parse(&json) {
                Ok(m) => {
                    let stamp = get(attr("local", &key, "stamp")).and_then(FileStamp::from_attr);
                    self.state().files.shares.insert(
                        key,
                        Share {
                            path,
                            conversation: owner,
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
        self.download_in(r.conversation, Some(r.onion), key, dir)
            .await
    }

    /// Download a file offered in a group, from the member who shared it (over P2P: they
    /// must be an accepted contact of ours), into `dir`. Returns where it will be.
    pub(crate) async fn download_group_file(
        self: &Arc<Self>,
        g: &GroupRef,
        key: &FileKey,
        dir: &Path,
    ) -> Result<PathBuf> {
        self.check_running()?;
        let conv = self.resolve_group(g)?;
        self.download_in(conv, None, key, dir).await
    }

    /// Download the file `key` offered in conversation `conv` by `contact` (a contact's
    /// conversation) or by its author (a group's: `None`).
    async fn download_in(
        self: &Arc<Self>,
        conv: ConversationId,
        contact: Option<Onion>,
        key: &FileKey,
        dir: &Path,
    ) -> Result<PathBuf> {
        if self.state().files.downloads.contains_key(key) {
            return Err(Error::DownloadRunning);
        }
        let wanted = key.to_string();
        let path_attr = attr("local", key, "path");
        let state_attr = attr("local", key, "state");
        let me = self.onion.as_str().to_owned();
        // The offer: a file message from the contact with this key.
        let offer = self
            .store
            .call(move |s| {
                let mut found = None;
                for m in s.messages_containing(conv, OFFER_NEEDLE)? {
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
                            let author = m
                                .attributes
                                .get(cwtch_storage::keys::MESSAGE_AUTHOR)
                                .cloned();
                            found = Some((name, size, author));
                            break;
                        }
                    }
                }
                // An earlier attempt's target (to resume what it verified) and its state.
                let c = s.conversation(conv)?;
                let before = c.as_ref().and_then(|c| {
                    let path = c.attribute(&path_attr).map(PathBuf::from)?;
                    Some((path, c.attribute(&state_attr) == Some("downloaded")))
                });
                Ok(found.map(|f| (f, before)))
            })
            .await?;
        let ((name, size, author), before) = offer.ok_or(Error::FileNotFound)?;
        // Downloaded into this folder before and still there, whole: that is the answer
        // (a second click is not a second copy). Moved, deleted or changed: downloaded anew.
        if let Some((path, true)) = &before {
            let whole = std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == size);
            if path.parent() == Some(dir) && whole {
                self.emit(Event::FileDownloaded {
                    profile: self.profile(),
                    conversation_id: conv.0,
                    file_key: key.to_string(),
                    path: path.to_string_lossy().into_owned(),
                });
                return Ok(path.clone());
            }
        }
        let before = before.map(|(path, _)| path);
        let sharer = match contact {
            Some(onion) => onion,
            None => {
                let onion = author
                    .and_then(|a| Onion::parse(&a).ok())
                    .ok_or(Error::FileNotFound)?;
                match self.lookup(&onion) {
                    Some(r) if r.accepted && !r.blocked => onion,
                    _ => return Err(Error::SharerNotContact(onion)),
                }
            }
        };
        // What the user allows the sharer (kept in the sharer's own conversation).
        if let Some(r) = self.lookup(&sharer) {
            if !self.permissions(r.conversation).await?.shares_files() {
                return Err(Error::NotPermitted {
                    contact: sharer.clone(),
                    what: "share files",
                });
            }
        }
        if size > self.config.max_download_size {
            return Err(Error::FileTooLarge {
                size,
                limit: self.config.max_download_size,
            });
        }
        std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        // The same download into the same folder again (after a failure): resume its
        // partial file, whose verified chunks are kept.
        let resumed =
            before.filter(|p| p.parent() == Some(dir) && !p.exists() && partial_path(p).is_file());
        let path = resumed.unwrap_or_else(|| unused_path(dir, &safe_file_name(&name)));
        // Refuse what cannot fit (the partial file's blocks are already ours).
        let have = std::fs::metadata(partial_path(&path))
            .map(|m| std::os::unix::fs::MetadataExt::blocks(&m).saturating_mul(512))
            .unwrap_or(0);
        let needed = size.saturating_sub(have);
        if let Some(available) = free_space(dir).filter(|a| *a < needed) {
            return Err(Error::NotEnoughSpace { needed, available });
        }
        // Reserve the name: an empty partial file.
        partial_options()
            .open(partial_path(&path))
            .map_err(io_err("create", &path))?;
        let values = vec![
            (
                attr("local", key, "path"),
                path.to_string_lossy().into_owned(),
            ),
            (attr("local", key, "ts"), now_rfc3339()),
            (attr("local", key, "state"), "downloading".to_owned()),
            (attr("local", key, "sharer"), sharer.as_str().to_owned()),
        ];
        self.store
            .call(move |s| {
                for (k, v) in &values {
                    s.set_conversation_attribute(conv, k, v)?;
                }
                Ok(())
            })
            .await?;
        if !self.start_download(sharer, conv, *key, path.clone(), DownloadKind::File) {
            return Err(Error::DownloadRunning);
        }
        Ok(path)
    }

    /// Start a download task; false if one of this file runs already.
    fn start_download(
        self: &Arc<Self>,
        contact: Onion,
        conv: ConversationId,
        key: FileKey,
        path: PathBuf,
        kind: DownloadKind,
    ) -> bool {
        static ATTEMPTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = ATTEMPTS.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(DOWNLOAD_QUEUE);
        let cancel = self.cancel.child_token();
        {
            let mut st = self.state();
            if st.files.downloads.contains_key(&key) {
                return false;
            }
            st.files.downloads.insert(
                key,
                Running {
                    id,
                    contact: contact.clone(),
                    tx,
                    kind,
                    cancel: cancel.clone(),
                },
            );
        }
        let rt = self.clone();
        self.spawn(async move {
            let d = DownloadTask {
                id,
                contact,
                conv,
                key,
                path,
                kind,
            };
            rt.run_download(&d, rx, cancel).await;
            rt.download_ended(&d);
            if d.kind.is_image() {
                // A place among the automatic downloads is free: for the images left waiting
                // in this conversation, and in those that waited for a place.
                let own = (d.kind == DownloadKind::Preview).then_some(d.conv);
                rt.clone().previews_freed(own).await;
            }
        });
        true
    }

    /// A place among the automatic downloads is free: look again at the conversations whose
    /// offered images waited for one, and at `also`. Boxed: it leads back to
    /// [`Self::auto_download_image`], which calls it.
    fn previews_freed(
        self: Arc<Self>,
        also: Option<ConversationId>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move {
            let mut convs = std::mem::take(&mut self.state().files.deferred);
            convs.extend(also);
            for conv in convs {
                self.preview_waiting(conv).await;
            }
        })
    }

    /// An automatic download ended: the images offered in `conv` that were left waiting (the
    /// automatic downloads were at their bound) and never tried start now, within the bound.
    /// One that failed is not tried again here (it would be again and again against a sharer
    /// who fails it); it is when previews are turned on or the profile starts.
    async fn preview_waiting(self: &Arc<Self>, conv: ConversationId) {
        let Ok(offers) = self.recent_offers(conv).await else {
            return;
        };
        if offers.is_empty() {
            return;
        }
        let keys: Vec<String> = offers.iter().map(|o| o.2.clone()).collect();
        // The keys with no state in the conversation: never tried.
        let untried = self
            .store
            .call(move |s| {
                let c = s.conversation(conv)?;
                Ok(keys
                    .into_iter()
                    .filter(|k| {
                        FileKey::parse(k).is_ok_and(|k| {
                            c.as_ref()
                                .is_none_or(|c| c.attribute(&attr("local", &k, "state")).is_none())
                        })
                    })
                    .collect::<Vec<String>>())
            })
            .await
            .unwrap_or_default();
        // Oldest first; what is not an image within the limits is passed over there.
        for (author, name, key, size) in offers.into_iter().rev() {
            if untried.contains(&key) {
                self.on_file_offered(&author, conv, &name, &key, size).await;
            }
        }
    }

    /// The files shared with us and by us in a conversation (all conversations: `None`).
    pub(crate) async fn files(&self, conv: Option<ConversationId>) -> Result<Vec<FileInfo>> {
        let me = self.onion.as_str().to_owned();
        // Ours with no conversation (the profile picture) are listed with all of them.
        let mut unbound: Vec<FileInfo> = if conv.is_some() {
            Vec::new()
        } else {
            let st = self.state();
            let mut v: Vec<FileInfo> = st
                .files
                .shares
                .iter()
                .filter(|(_, s)| s.conversation.is_none())
                .map(|(key, s)| FileInfo {
                    conversation_id: -1,
                    file_key: key.to_string(),
                    ours: true,
                    path: Some(s.path.display().to_string()),
                    state: if s.active { "sharing" } else { "stopped" }.to_owned(),
                    name: s.manifest.file_name.clone(),
                    size: s.manifest.file_size,
                })
                .collect();
            v.sort_by(|a, b| a.file_key.cmp(&b.file_key));
            v
        };
        let mut listed = self
            .store
            .call(move |s| {
                let mut out = Vec::new();
                for c in s.conversations()? {
                    if conv.is_some_and(|id| id != c.id) {
                        continue;
                    }
                    for m in s.messages_containing(c.id, OFFER_NEEDLE)? {
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
            .await?;
        listed.append(&mut unbound);
        Ok(listed)
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
                if share.changed().await {
                    return self.share_changed(&key).await;
                }
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
                            // Bounded: a contact cannot grow the set (and the cost of every
                            // merge and take, under this lock) without end; an honest
                            // downloader asks again for what it still misses.
                            if !lock(&serving.pending).extend_bounded(&spec, MAX_PENDING_RANGES) {
                                debug!("ignoring a chunk request: too many ranges pending");
                            }
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
                        let _ = tx.send(DownloadInput::Message(m)).await;
                    }
                    None => debug!("a file part for no download of ours"),
                }
            }
        }
    }

    /// The value of `conversation.filesharing.<key>.manifest.size` for a file we share in
    /// a group and serve now (for a peer that is not an accepted contact); `None` otherwise.
    pub(crate) fn group_share_attribute(&self, attribute: &str) -> Option<String> {
        let key = attribute
            .strip_prefix("conversation.filesharing.")?
            .strip_suffix(".manifest.size")?;
        let key = FileKey::parse(key).ok()?;
        let st = self.state();
        let share = st.files.shares.get(&key).filter(|s| {
            s.active
                && s.conversation
                    .is_some_and(|c| st.groups.groups.contains_key(&c))
        })?;
        Some(manifest_parts(&share.json).len().to_string())
    }

    /// The share `key`, if it may be served now to the peer whose conversation is `conv`:
    /// shared with that contact (accepted), or with every accepted contact (our profile
    /// picture), or in a group. A group's share goes to whoever asks for its key, accepted
    /// or not (blocked peers never get this far): the key, with its random nonce, was only
    /// ever in the group's messages, and the members are who we would serve.
    fn servable(&self, key: &FileKey, conv: ConversationId, accepted: bool) -> Option<Share> {
        let st = self.state();
        st.files
            .shares
            .get(key)
            .filter(|s| {
                s.active
                    && match s.conversation {
                        None => accepted,
                        Some(c) if st.groups.groups.contains_key(&c) => true,
                        Some(c) => accepted && c == conv,
                    }
            })
            .cloned()
    }

    /// Drive one download until it completes, fails, or the profile stops.
    async fn run_download(
        self: &Arc<Self>,
        task: &DownloadTask,
        mut rx: mpsc::Receiver<DownloadInput>,
        cancel: CancellationToken,
    ) {
        let (contact, conv, key, path, kind) =
            (&task.contact, task.conv, task.key, &task.path, task.kind);
        let max_file_size = if kind.is_image() {
            MAX_IMAGE_SIZE.min(self.config.max_download_size)
        } else {
            self.config.max_download_size
        };
        let config = DownloadConfig {
            max_file_size,
            ..DownloadConfig::default()
        };
        let (mut d, mut outputs) = Download::start(key, config);
        let part = partial_path(path);
        let mut file: Option<std::fs::File> = None;
        // The manifest's chunk hashes, on disk: memory does not grow with the file.
        let hashes = match HashFile::create(path.parent().unwrap_or(Path::new("."))) {
            Ok(h) => Arc::new(h),
            Err(e) => {
                let reason = format!("keeping the manifest's hashes: {e}");
                return self.download_failed(task, reason, false).await;
            }
        };
        // The whole file's SHA-512 over the chunks written in order (most arrive in order),
        // on its own thread: only the rest is read back and hashed at the end.
        let mut root = RootHasher::start();
        let mut last_progress = 0u64;
        // Verified chunks to write, written a run at a time (before anything that needs them),
        // and the progress to report once they are on disk.
        let mut writes: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut progress: Option<(u64, u64)> = None;
        // The silence timer: the model ticks when nothing useful arrived for a while (what
        // answers nothing does not put it off). An automatic download also has a deadline.
        let stall = self.config.download_stall;
        let mut quiet_until = tokio::time::Instant::now() + stall;
        let mut useful = d.useful();
        let deadline = kind
            .is_image()
            .then(|| tokio::time::Instant::now() + self.config.image_download_deadline);
        loop {
            for o in std::mem::take(&mut outputs) {
                if !batchable(&o) {
                    if let Err(e) = flush_writes(file.as_ref(), &mut writes, &mut root) {
                        // Disk full and the like: fail cleanly, keep what is verified.
                        let reason = format!("writing the file: {e}");
                        return self.download_failed(task, reason, false).await;
                    }
                    self.report_progress(conv, &key, progress.take());
                }
                match o {
                    DownloadOutput::Send(m) => {
                        let conn = self
                            .state()
                            .contacts
                            .get(contact)
                            .and_then(|e| e.ready_conn());
                        // Not connected: the next tick asks again.
                        if let Some(pc) = conn {
                            let _ = pc.send(&m.to_peer_message()).await;
                        }
                    }
                    DownloadOutput::Hashes { first, hashes: h } => {
                        if let Err(e) = hashes.store(first, &h) {
                            let reason = format!("keeping the manifest's hashes: {e}");
                            return self.download_failed(task, reason, false).await;
                        }
                    }
                    DownloadOutput::ManifestReady(m) => {
                        let (p, mf, hf) = (part.clone(), m.clone(), hashes.clone());
                        let opened =
                            tokio::task::spawn_blocking(move || open_partial(&p, &mf, &hf))
                                .await
                                .map_err(|_| std::io::Error::other("task failed"))
                                .and_then(|r| r);
                        match opened {
                            Ok((f, have)) => {
                                file = Some(f);
                                self.emit(Event::FileManifestReceived {
                                    profile: self.profile(),
                                    conversation_id: conv.0,
                                    contact: contact.as_str().to_owned(),
                                    file_key: key.to_string(),
                                    path: path.to_string_lossy().into_owned(),
                                    size: m.file_size,
                                });
                                outputs.extend(d.manifest_accepted(Some(have)));
                            }
                            Err(e) => {
                                return self.download_failed(task, e.to_string(), false).await;
                            }
                        }
                    }
                    DownloadOutput::Write { offset, data, .. } if file.is_some() => {
                        writes.push((offset, data));
                    }
                    // About every percent, and at the end.
                    DownloadOutput::Progress { done, total }
                        if done == total
                            || done.saturating_sub(last_progress) >= (total / 100).max(1 << 20)
                            || last_progress == 0 =>
                    {
                        last_progress = done.max(1);
                        progress = Some((done, total));
                    }
                    DownloadOutput::VerifyFile => {
                        let Some(mut f) = file.take() else { continue };
                        let want = key.root_hash;
                        let root = std::mem::replace(&mut root, RootHasher::NONE);
                        let ok = tokio::task::spawn_blocking(move || {
                            let (mut h, from) = root.finish();
                            f.sync_all()?;
                            f.seek(SeekFrom::Start(from))?;
                            std::io::copy(&mut f, &mut h)?;
                            Ok::<_, std::io::Error>(h.finalize().as_slice() == want)
                        })
                        .await
                        .ok()
                        .and_then(|r| r.ok())
                        .unwrap_or(false);
                        outputs.extend(d.file_verified(ok));
                    }
                    DownloadOutput::Complete => {
                        return self.download_complete(task).await;
                    }
                    DownloadOutput::Failed(e) => {
                        // An automatic image download that the sharer could not make
                        // acceptable (too large, lying, corrupt) is not tried again.
                        let refused = kind.is_image()
                            && !matches!(e, DownloadError::Stalled | DownloadError::NotShared);
                        return self.download_failed(task, e.to_string(), refused).await;
                    }
                    _ => {}
                }
            }
            if let Err(e) = flush_writes(file.as_ref(), &mut writes, &mut root) {
                let reason = format!("writing the file: {e}");
                return self.download_failed(task, reason, false).await;
            }
            self.report_progress(conv, &key, progress.take());
            if !outputs.is_empty() {
                continue;
            }
            if d.is_finished() {
                return;
            }
            // After acting on it (writing, opening the partial file): a full quiet period.
            if d.useful() != useful {
                useful = d.useful();
                quiet_until = tokio::time::Instant::now() + stall;
            }
            // A new connection asks again at once: its answers get a full quiet period.
            let mut asked_again = false;
            let mut stopped = None;
            let mut feed = |d: &mut Download, input: DownloadInput| match input {
                DownloadInput::Message(m) => d.receive(m, &*hashes),
                DownloadInput::Connected => {
                    asked_again = true;
                    d.reconnected()
                }
                DownloadInput::Stop(done) => {
                    stopped = Some(done);
                    Vec::new()
                }
            };
            outputs = tokio::select! {
                _ = cancel.cancelled() => return,
                m = rx.recv() => match m {
                    Some(input) => {
                        let mut out = feed(&mut d, input);
                        // What else is queued already, while the download only writes, reports
                        // and asks: one wake-up and one write per batch rather than per chunk.
                        for _ in 1..RECV_BATCH {
                            if !out.iter().all(batchable) {
                                break;
                            }
                            let Ok(input) = rx.try_recv() else { break };
                            out.extend(feed(&mut d, input));
                        }
                        out
                    }
                    None => return,
                },
                _ = tokio::time::sleep_until(quiet_until) => {
                    quiet_until = tokio::time::Instant::now() + stall;
                    // A sharer that is away is waited for (its new connection asks again at
                    // once); only silence on a connection counts towards a stall. One that
                    // is blocked or deleted will not come back.
                    match self.lookup(contact) {
                        None => {
                            let reason = "the sharer is no longer a contact".to_owned();
                            return self.download_failed(task, reason, false).await;
                        }
                        Some(r) if r.blocked => {
                            let reason = "the sharer is blocked".to_owned();
                            return self.download_failed(task, reason, false).await;
                        }
                        Some(_) if self.connected(contact) => d.tick(),
                        Some(_) => Vec::new(),
                    }
                }
                _ = sleep_until_some(deadline) => {
                    let secs = self.config.image_download_deadline.as_secs();
                    let reason = format!("the image did not arrive within {secs} s");
                    return self.download_failed(task, reason, false).await;
                }
            };
            if let Some(done) = stopped {
                // What is verified and not yet on disk is asked for again on a resume.
                self.download_failed(task, STOPPED.to_owned(), kind.is_image())
                    .await;
                let _ = done.send(());
                return;
            }
            if asked_again {
                quiet_until = tokio::time::Instant::now() + stall;
            }
        }
    }

    /// Report a download's progress (bytes verified and on disk), if there is any to report.
    fn report_progress(&self, conv: ConversationId, key: &FileKey, progress: Option<(u64, u64)>) {
        let Some((done, total)) = progress else {
            return;
        };
        self.emit(Event::FileDownloadProgress {
            profile: self.profile(),
            conversation_id: conv.0,
            file_key: key.to_string(),
            done,
            total,
        });
    }

    async fn download_complete(&self, task: &DownloadTask) {
        let (conv, key, path) = (task.conv, &task.key, task.path.as_path());
        let part = partial_path(path);
        // An image is decoded before it gets its final name: one that does not decode is
        // deleted and never reported as an image.
        let mut image = None;
        if task.kind.is_image() {
            let p = part.clone();
            let checked = tokio::task::spawn_blocking(move || read_image(&p))
                .await
                .unwrap_or(Err(ImageError::NotAnImage));
            match checked {
                Ok(info) => image = Some(info),
                Err(e) => {
                    let _ = std::fs::remove_file(&part);
                    return self
                        .download_failed(task, format!("not a valid image: {e}"), true)
                        .await;
                }
            }
        }
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
                .download_failed(task, format!("renaming the file: {e}"), false)
                .await;
        }
        let mut values = vec![
            (
                attr("local", key, "path"),
                final_path.to_string_lossy().into_owned(),
            ),
            (attr("local", key, "state"), "downloaded".to_owned()),
        ];
        if let Some(info) = &image {
            values.push((
                attr("local", key, "image"),
                serde_json::to_string(info).unwrap_or_default(),
            ));
        }
        let _ = self.set_file_attrs(Some(conv), values).await;
        self.download_ended(task);
        info!("download complete");
        let path = final_path.to_string_lossy().into_owned();
        self.emit(Event::FileDownloaded {
            profile: self.profile(),
            conversation_id: conv.0,
            file_key: key.to_string(),
            path: path.clone(),
        });
        if task.kind == DownloadKind::ProfileImage {
            self.drop_older_profile_images(conv, Some(key)).await;
        }
        if let Some(info) = image {
            self.emit(Event::ImagePreview {
                profile: self.profile(),
                conversation_id: conv.0,
                contact: task.contact.as_str().to_owned(),
                file_key: key.to_string(),
                profile_image: task.kind == DownloadKind::ProfileImage,
                format: info.format,
                width: info.width,
                height: info.height,
                bytes: info.bytes,
                path,
            });
        }
    }

    /// A contact's new profile picture arrived (`newest`), or it has none any more (`None`):
    /// the other ones downloaded from it are deleted from the images folder (nothing outside
    /// it is touched) and marked `replaced` (not shown, not fetched again).
    async fn drop_older_profile_images(&self, conv: ConversationId, newest: Option<&FileKey>) {
        let Some(dir) = self.images_dir.clone() else {
            return;
        };
        let Ok(Some(c)) = self.store.call(move |s| s.conversation(conv)).await else {
            return;
        };
        let older: Vec<(FileKey, Option<PathBuf>)> = c
            .attributes
            .iter()
            .filter(|(_, v)| v.as_str() == DownloadKind::ProfileImage.to_attr())
            .filter_map(|(k, _)| {
                let text = k
                    .strip_prefix("local.filesharing.")?
                    .strip_suffix(".kind")?;
                FileKey::parse(text).ok()
            })
            .filter(|k| Some(k) != newest)
            .filter(|k| c.attribute(&attr("local", k, "state")) == Some("downloaded"))
            .map(|k| {
                let path = c.attribute(&attr("local", &k, "path")).map(PathBuf::from);
                (k, path)
            })
            .collect();
        for (k, path) in older {
            if let Some(p) = path.filter(|p| p.starts_with(&dir)) {
                if let Err(e) = std::fs::remove_file(&p) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        warn!(error = %Sensitive(&e), "could not delete a replaced profile picture");
                        continue;
                    }
                }
            }
            let replaced = vec![(attr("local", &k, "state"), "replaced".to_owned())];
            if let Err(e) = self.set_file_attrs(Some(conv), replaced).await {
                warn!(error = %e, "could not mark a profile picture replaced");
            }
        }
    }

    /// Stop downloading `key`: a running download ends (`FileDownloadFailed` with the reason
    /// [`STOPPED`]), and one that would resume when the profile next runs will not. What was
    /// verified stays on disk: downloading it again resumes.
    pub(crate) async fn stop_download(&self, key: &FileKey) -> Result<()> {
        let running = self.state().files.downloads.get(key).map(|r| r.tx.clone());
        if let Some(tx) = running {
            // Answered once the stop is stored; dropped unanswered if the download ended
            // first (completed or failed: nothing left to stop).
            let (done, stored) = tokio::sync::oneshot::channel();
            if tx.send(DownloadInput::Stop(done)).await.is_ok() {
                return stored.await.map_err(|_| Error::NotDownloading);
            }
        }
        // Not running here: one that is only marked downloading is marked stopped.
        let waiting = self
            .files(None)
            .await?
            .into_iter()
            .find(|f| !f.ours && f.state == "downloading" && f.file_key == key.to_string())
            .ok_or(Error::NotDownloading)?;
        let conv = ConversationId(waiting.conversation_id);
        let state = format!("failed: {STOPPED}");
        self.set_file_attrs(Some(conv), vec![(attr("local", key, "state"), state)])
            .await?;
        self.emit(Event::FileDownloadFailed {
            profile: self.profile(),
            conversation_id: conv.0,
            file_key: key.to_string(),
            reason: STOPPED.to_owned(),
        });
        Ok(())
    }

    /// Whether a connection to `contact` is ready.
    fn connected(&self, contact: &Onion) -> bool {
        self.state()
            .contacts
            .get(contact)
            .is_some_and(|e| e.ready_conn().is_some())
    }

    /// A connection to `contact` is ready: its downloads ask again for what they wait for
    /// (a request made while it was coming up went nowhere).
    pub(crate) fn downloads_connected(&self, contact: &Onion) {
        let st = self.state();
        for d in st
            .files
            .downloads
            .values()
            .filter(|d| &d.contact == contact)
        {
            // A full queue means data is flowing: nothing to ask again.
            let _ = d.tx.try_send(DownloadInput::Connected);
        }
    }

    /// The attempt `task` is over: forget it (not a later attempt at the same file).
    fn download_ended(&self, task: &DownloadTask) {
        let mut st = self.state();
        if st
            .files
            .downloads
            .get(&task.key)
            .is_some_and(|r| r.id == task.id)
        {
            st.files.downloads.remove(&task.key);
        }
    }

    /// A download failed; `refused`: it is not tried again automatically (state `refused`).
    async fn download_failed(&self, task: &DownloadTask, reason: String, refused: bool) {
        warn!(reason = %reason, "download failed");
        let (conv, key) = (task.conv, &task.key);
        let state = if refused { "refused" } else { "failed" };
        let (k, v) = (attr("local", key, "state"), format!("{state}: {reason}"));
        let _ = self.set_file_attrs(Some(conv), vec![(k, v)]).await;
        // Before the event: whoever hears it may try again at once.
        self.download_ended(task);
        self.emit(Event::FileDownloadFailed {
            profile: self.profile(),
            conversation_id: conv.0,
            file_key: key.to_string(),
            reason,
        });
    }
}

/// A checked image we downloaded, for a client to show.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Image {
    /// The conversation it came from.
    pub conversation_id: i64,
    /// Its file key.
    pub file_key: String,
    /// Where it is.
    pub path: String,
    /// What it is (checked by decoding it).
    pub info: ImageInfo,
}

impl Runtime {
    // ---- images (previews and profile pictures) ----

    /// Share the image at `path` as our profile picture: check it (decode it, at most
    /// [`MAX_IMAGE_SIZE`]), share it with every accepted contact, and publish its key as
    /// [`PROFILE_IMAGE_ATTRIBUTE`]. The previous profile picture is no longer served.
    pub(crate) async fn set_profile_image(
        self: &Arc<Self>,
        path: &Path,
    ) -> Result<(FileKey, ImageInfo)> {
        self.check_running()?;
        let path = std::fs::canonicalize(path).map_err(io_err("open", path))?;
        let p = path.clone();
        let (manifest, stamp, info) = tokio::task::spawn_blocking(move || {
            let before = FileStamp::of(&p);
            let meta = std::fs::metadata(&p).map_err(io_err("read", &p))?;
            if !meta.is_file() {
                return Err(Error::Invalid {
                    what: "image (not a regular file)",
                });
            }
            if meta.len() > MAX_IMAGE_SIZE {
                return Err(Error::FileTooLarge {
                    size: meta.len(),
                    limit: MAX_IMAGE_SIZE,
                });
            }
            let mut data = Vec::new();
            std::fs::File::open(&p)
                .and_then(|f| f.take(MAX_IMAGE_SIZE + 1).read_to_end(&mut data))
                .map_err(io_err("read", &p))?;
            let info = check_image(&data)?;
            let mut b = ManifestBuilder::new();
            b.update(&data).map_err(Error::Bundle)?;
            // Every contact gets the manifest: it names the format, not the user's file.
            let name = format!("{PROFILE_IMAGE_NAME}.{}", info.format);
            if FileStamp::of(&p) != before {
                return Err(Error::Invalid {
                    what: "image (it changed while being read)",
                });
            }
            Ok((b.finish(name), before, info))
        })
        .await
        .map_err(|_| Error::Invalid { what: "image" })??;
        let key = self.store_share(None, path, manifest, stamp).await?;
        let value = key.to_string();
        let previous = self
            .store
            .call(move |s| {
                let previous = s.attribute(PROFILE_IMAGE_ATTRIBUTE)?;
                s.set_attribute(PROFILE_IMAGE_ATTRIBUTE, &value)?;
                Ok(previous)
            })
            .await?;
        // The old picture is no longer ours to show: stop serving it.
        if let Some(old) = previous.as_deref().and_then(|k| FileKey::parse(k).ok()) {
            let ours = self
                .state()
                .files
                .shares
                .get(&old)
                .is_some_and(|s| s.conversation.is_none());
            if ours && old != key {
                self.set_sharing(&old, false).await?;
            }
        }
        info!("profile image set");
        Ok((key, info))
    }

    /// Remove our profile picture: its key is published as empty (contacts who ask next drop
    /// the picture they have) and it is no longer served. False if there was none.
    pub(crate) async fn remove_profile_image(self: &Arc<Self>) -> Result<bool> {
        self.check_running()?;
        let previous = self
            .store
            .call(move |s| {
                let previous = s.attribute(PROFILE_IMAGE_ATTRIBUTE)?;
                if previous.as_deref().is_some_and(|p| !p.is_empty()) {
                    s.set_attribute(PROFILE_IMAGE_ATTRIBUTE, "")?;
                }
                Ok(previous)
            })
            .await?;
        let Some(old) = previous.as_deref().and_then(|k| FileKey::parse(k).ok()) else {
            return Ok(false);
        };
        let ours = self
            .state()
            .files
            .shares
            .get(&old)
            .is_some_and(|s| s.conversation.is_none());
        if ours {
            self.set_sharing(&old, false).await?;
        }
        info!("profile image removed");
        Ok(true)
    }

    /// Turn image previews on or off. On: fetch the profile pictures accepted contacts
    /// have published. Off: stop the automatic downloads running.
    pub(crate) async fn set_image_previews(self: &Arc<Self>, on: bool) -> Result<()> {
        let v = if on {
            cwtch_storage::keys::TRUE
        } else {
            cwtch_storage::keys::FALSE
        };
        self.store
            .call(move |s| s.set_attribute(crate::images::IMAGE_PREVIEWS_ATTRIBUTE, v))
            .await?;
        self.image_previews.store(on, Ordering::Relaxed);
        if !on {
            let st = self.state();
            for d in st.files.downloads.values().filter(|d| d.kind.is_image()) {
                d.cancel.cancel();
            }
            return Ok(());
        }
        let contacts: Vec<(Onion, ConversationId)> = {
            let st = self.state();
            st.contacts
                .iter()
                .filter(|(_, e)| e.accepted && !e.blocked)
                .map(|(o, e)| (o.clone(), e.conversation))
                .collect()
        };
        for (onion, conv) in &contacts {
            let conv = *conv;
            let value = self
                .store
                .call(move |s| {
                    Ok(s.conversation(conv)?
                        .and_then(|c| c.attribute(PROFILE_IMAGE_ATTRIBUTE).map(str::to_owned)))
                })
                .await?;
            if let Some(v) = value {
                self.on_profile_image_attribute(onion, &v).await;
            }
        }
        // Images offered while previews were off: the recent ones are previewed now.
        let groups: Vec<ConversationId> = self.state().groups.groups.keys().copied().collect();
        let convs = contacts.iter().map(|(_, c)| *c).chain(groups);
        for conv in convs {
            for (author, name, key, size) in self.recent_offers(conv).await? {
                self.on_file_offered(&author, conv, &name, &key, size).await;
            }
        }
        Ok(())
    }

    /// The files others offered in the newest [`PREVIEW_LOOKBACK`] messages of a
    /// conversation, newest first: (author, name, key, size). Not a group member's the user
    /// has blocked in that group since.
    async fn recent_offers(
        &self,
        conv: ConversationId,
    ) -> Result<Vec<(Onion, String, String, u64)>> {
        let me = self.onion.as_str().to_owned();
        self.store
            .call(move |s| {
                let Some(c) = s.conversation(conv)? else {
                    return Ok(Vec::new());
                };
                let mut out = Vec::new();
                for m in s.messages(conv, 0, PREVIEW_LOOKBACK)? {
                    let Some(author) = m
                        .attributes
                        .get(cwtch_storage::keys::MESSAGE_AUTHOR)
                        .filter(|a| **a != me)
                        .and_then(|a| Onion::parse(a).ok())
                        .filter(|a| !crate::groups::member_blocked(&c, a))
                    else {
                        continue;
                    };
                    if let Content::FileShare {
                        name,
                        file_key,
                        size,
                    } = Content::parse(&m.body)
                    {
                        out.push((author, name, file_key, size));
                    }
                }
                Ok(out)
            })
            .await
    }

    /// A contact's published profile picture key arrived (a retVal of
    /// `profile.custom-profile-image`, stored as [`PROFILE_IMAGE_ATTRIBUTE`]): fetch it if
    /// image previews are on and the contact is accepted.
    pub(crate) async fn on_profile_image_attribute(self: &Arc<Self>, contact: &Onion, value: &str) {
        let Ok(key) = FileKey::parse(value) else {
            if !value.is_empty() {
                debug!("a contact's profile image is not a file key");
            }
            // No picture any more: the ones downloaded from it go.
            if let Some(r) = self.lookup(contact) {
                self.drop_older_profile_images(r.conversation, None).await;
            }
            return;
        };
        // No offer names it: the name is ours (the format is known only once decoded).
        let name = format!("{}.img", &hex_prefix(&key));
        self.auto_download_image(contact, None, key, DownloadKind::ProfileImage, &name, None)
            .await;
    }

    /// A contact offered a file in a conversation (overlay 200; theirs, or a group's): if it
    /// is an image within the limits, preview it (when image previews are on and the
    /// contact is accepted).
    pub(crate) async fn on_file_offered(
        self: &Arc<Self>,
        contact: &Onion,
        conv: ConversationId,
        name: &str,
        file_key: &str,
        size: u64,
    ) {
        if !is_image_name(name) || size > MAX_IMAGE_SIZE {
            return;
        }
        let Ok(key) = FileKey::parse(file_key) else {
            return;
        };
        self.auto_download_image(
            contact,
            Some(conv),
            key,
            DownloadKind::Preview,
            &safe_file_name(name),
            Some(size),
        )
        .await;
    }

    /// Download an image into the profile's images folder, unless image previews are off,
    /// the contact is not accepted (or blocked), the profile has no folder (in memory), it
    /// is too large, or it was downloaded (or refused) before. A download that failed (the
    /// contact went away) is tried again; one that was interrupted resumes. Its state is
    /// kept in `conv` (where it was offered: the contact's conversation by default, or a
    /// group's).
    async fn auto_download_image(
        self: &Arc<Self>,
        contact: &Onion,
        conv: Option<ConversationId>,
        key: FileKey,
        kind: DownloadKind,
        name: &str,
        size: Option<u64>,
    ) {
        if !self.image_previews.load(Ordering::Relaxed) || self.cancel.is_cancelled() {
            return;
        }
        let Some(r) = self.lookup(contact).filter(|r| r.accepted && !r.blocked) else {
            return;
        };
        if !self
            .permissions(r.conversation)
            .await
            .is_ok_and(|p| p.renders_images())
        {
            debug!("the contact's images are not previewed (its permissions)");
            return;
        }
        let Some(dir) = self.images_dir.clone() else {
            debug!("no images folder (an in-memory profile): no previews");
            return;
        };
        if size.is_some_and(|s| s > MAX_IMAGE_SIZE) {
            return;
        }
        {
            let mut st = self.state();
            if st.files.downloads.contains_key(&key) || st.files.starting.contains_key(&key) {
                return;
            }
            // Bounded: each download holds a file, a hashing thread and, at the end, an image
            // decode; a contact offering a thousand images at once gets a few previews, and the
            // rest stay offered (downloaded when asked for).
            let automatic = st
                .files
                .downloads
                .values()
                .filter(|d| d.kind.is_image())
                .map(|d| &d.contact)
                .chain(st.files.starting.values());
            let (all, theirs) = automatic.fold((0, 0), |(all, theirs), c| {
                (all + 1, theirs + usize::from(*c == r.onion))
            });
            if all >= MAX_AUTO_DOWNLOADS || theirs >= MAX_AUTO_DOWNLOADS_PER_CONTACT {
                debug!("enough images are being downloaded already: this one stays offered");
                if kind == DownloadKind::Preview {
                    st.files.deferred.insert(conv.unwrap_or(r.conversation));
                }
                return;
            }
            st.files.starting.insert(key, r.onion.clone());
        }
        let conv = conv.unwrap_or(r.conversation);
        let started = self
            .start_image_download(&r.onion, conv, key, kind, name, &dir)
            .await;
        let freed = {
            let mut st = self.state();
            st.files.starting.remove(&key);
            // Its place was held and no download took it (downloaded before, refused, or an
            // error): whatever waited for a place looks again.
            !st.files.downloads.contains_key(&key) && !st.files.deferred.is_empty()
        };
        if freed {
            self.spawn(self.clone().previews_freed(None));
        }
        if let Err(e) = started {
            warn!(error = %Sensitive(&e), "could not start an image download");
        }
    }

    async fn start_image_download(
        self: &Arc<Self>,
        contact: &Onion,
        conv: ConversationId,
        key: FileKey,
        kind: DownloadKind,
        name: &str,
        dir: &Path,
    ) -> Result<()> {
        let (state_k, path_k) = (attr("local", &key, "state"), attr("local", &key, "path"));
        let (state, path) = self
            .store
            .call(move |s| {
                let c = s.conversation(conv)?;
                let get = |k: &str| c.as_ref().and_then(|c| c.attribute(k)).map(str::to_owned);
                Ok((get(&state_k), get(&path_k)))
            })
            .await?;
        let path = match (state.as_deref(), path) {
            (None, _) => None,
            // Interrupted, or the contact went away: resume into the same file.
            (Some(s), Some(p)) if s == "downloading" || s.starts_with("failed") => {
                Some(PathBuf::from(p))
            }
            // Downloaded, refused, or ours.
            _ => return Ok(()),
        };
        let path = match path {
            Some(p) => p,
            None => {
                create_private_dir(&dir.to_path_buf())?;
                let path = unused_path(dir, name);
                partial_options()
                    .open(partial_path(&path))
                    .map_err(io_err("create", &path))?;
                path
            }
        };
        let values = vec![
            (
                attr("local", &key, "path"),
                path.to_string_lossy().into_owned(),
            ),
            (attr("local", &key, "ts"), now_rfc3339()),
            (attr("local", &key, "state"), "downloading".to_owned()),
            (attr("local", &key, "kind"), kind.to_attr().to_owned()),
            // Whom to resume from (a group's conversation does not say).
            (attr("local", &key, "sharer"), contact.as_str().to_owned()),
        ];
        self.set_file_attrs(Some(conv), values).await?;
        debug!(?kind, "downloading an image automatically");
        self.start_download(contact.clone(), conv, key, path, kind);
        Ok(())
    }

    /// A checked image we downloaded from a conversation, if it is still there.
    pub(crate) async fn image(&self, conv: ConversationId, key: FileKey) -> Result<Option<Image>> {
        let c = self.store.call(move |s| s.conversation(conv)).await?;
        let Some(c) = c else { return Ok(None) };
        if c.attribute(&attr("local", &key, "state")) != Some("downloaded") {
            return Ok(None);
        }
        let info = c
            .attribute(&attr("local", &key, "image"))
            .and_then(|j| serde_json::from_str::<ImageInfo>(j).ok());
        let path = c.attribute(&attr("local", &key, "path"));
        Ok(match (info, path) {
            (Some(info), Some(path)) if Path::new(path).is_file() => Some(Image {
                conversation_id: conv.0,
                file_key: key.to_string(),
                path: path.to_owned(),
                info,
            }),
            _ => None,
        })
    }

    /// Our profile picture's file, if we have one and it is still there (it is served from
    /// where it was when we set it).
    pub(crate) async fn our_profile_image(&self) -> Result<Option<PathBuf>> {
        let value = self
            .store
            .call(move |s| s.attribute(PROFILE_IMAGE_ATTRIBUTE))
            .await?;
        let Some(Ok(key)) = value.as_deref().map(FileKey::parse) else {
            return Ok(None);
        };
        let path = self
            .state()
            .files
            .shares
            .get(&key)
            .filter(|s| s.conversation.is_none())
            .map(|s| s.path.clone());
        Ok(path.filter(|p| p.is_file()))
    }

    /// A contact's profile picture, if it was downloaded and checked.
    pub(crate) async fn profile_image(&self, conv: ConversationId) -> Result<Option<Image>> {
        let value = self
            .store
            .call(move |s| {
                Ok(s.conversation(conv)?
                    .and_then(|c| c.attribute(PROFILE_IMAGE_ATTRIBUTE).map(str::to_owned)))
            })
            .await?;
        match value.as_deref().map(FileKey::parse) {
            Some(Ok(key)) => self.image(conv, key).await,
            _ => Ok(None),
        }
    }
}

/// The reason a download the user stopped gives.
pub const STOPPED: &str = "stopped (download it again to resume)";

/// Sleep until `deadline`; for ever without one.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The first 16 hex digits of a file's root hash (a name for it that says little).
fn hex_prefix(key: &FileKey) -> String {
    key.to_string().chars().take(16).collect()
}

/// Create a folder (and its parents) readable by us only.
fn create_private_dir(dir: &PathBuf) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(io_err("create", dir))
}

/// What a download task works on.
pub(crate) struct DownloadTask {
    /// Its [`Running::id`].
    id: u64,
    contact: Onion,
    conv: ConversationId,
    key: FileKey,
    /// Its final name (it is written to `<path>.part` until verified).
    path: PathBuf,
    kind: DownloadKind,
}

/// Read (at most [`MAX_IMAGE_SIZE`] bytes) and check an image file (blocking).
fn read_image(path: &Path) -> std::result::Result<ImageInfo, ImageError> {
    let f = std::fs::File::open(path).map_err(|_| ImageError::NotAnImage)?;
    let mut data = Vec::new();
    f.take(MAX_IMAGE_SIZE + 1)
        .read_to_end(&mut data)
        .map_err(|_| ImageError::NotAnImage)?;
    check_image(&data)
}

/// The file key of a `local.filesharing.<key>.state` attribute.
fn state_key(k: &str) -> Option<FileKey> {
    k.strip_prefix("local.filesharing.")
        .and_then(|rest| rest.strip_suffix(".state"))
        .and_then(|key| FileKey::parse(key).ok())
}

/// Bytes available to us on the file system of `dir` (`None` if it cannot be told).
fn free_space(dir: &Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
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

/// The SHA-512 of a file being downloaded, over its chunks as they are written in order, on
/// a thread of its own (the download task only checks and writes). A chunk out of order, or
/// a hasher that falls behind, ends it: what it has not hashed is read back from the file.
/// Chunks go to the thread [`ROOT_BATCH`] at a time (one hand-over, not one per chunk).
struct RootHasher {
    tx: Option<std::sync::mpsc::SyncSender<Vec<Vec<u8>>>>,
    thread: Option<std::thread::JoinHandle<Sha512>>,
    /// Bytes handed to the thread (the offset of the next chunk it can take).
    next: u64,
    /// Chunks that follow `next`, not yet handed over, and their length.
    batch: Vec<Vec<u8>>,
    batched: u64,
}

/// How many chunks are handed to the [`RootHasher`]'s thread at a time.
const ROOT_BATCH: usize = 32;
/// How many batches may wait for the [`RootHasher`]'s thread (4 MiB of 4 KiB chunks).
const ROOT_QUEUE: usize = 1024 / ROOT_BATCH;

impl RootHasher {
    const NONE: RootHasher = RootHasher {
        tx: None,
        thread: None,
        next: 0,
        batch: Vec::new(),
        batched: 0,
    };

    fn start() -> RootHasher {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Vec<u8>>>(ROOT_QUEUE);
        let thread = std::thread::Builder::new()
            .name("cwtch-root-hash".into())
            .spawn(move || {
                let mut h = Sha512::new();
                for batch in rx {
                    for data in batch {
                        h.update(&data);
                    }
                }
                h
            });
        match thread {
            Ok(t) => RootHasher {
                tx: Some(tx),
                thread: Some(t),
                ..RootHasher::NONE
            },
            Err(_) => RootHasher::NONE,
        }
    }

    /// `data` was written at `offset`: hash it if it is next (never blocks).
    fn written(&mut self, offset: u64, data: Vec<u8>) {
        if self.tx.is_none() {
            return;
        }
        if offset != self.next + self.batched {
            return self.stop();
        }
        self.batched += data.len() as u64;
        self.batch.push(data);
        if self.batch.len() >= ROOT_BATCH {
            let Some(tx) = &self.tx else { return };
            match tx.try_send(std::mem::take(&mut self.batch)) {
                Ok(()) => self.next += std::mem::take(&mut self.batched),
                Err(_) => self.stop(),
            }
        }
    }

    /// Hash nothing more on the thread (what it has not hashed is read back at the end).
    fn stop(&mut self) {
        self.tx = None;
        self.batch = Vec::new();
        self.batched = 0;
    }

    /// The hash so far and how many bytes of the file it covers (blocking).
    fn finish(mut self) -> (Sha512, u64) {
        if let Some(tx) = self.tx.take() {
            if !self.batch.is_empty() && tx.send(std::mem::take(&mut self.batch)).is_ok() {
                self.next += self.batched;
            }
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(h)) => (h, self.next),
            _ => (Sha512::new(), 0),
        }
    }
}

/// How many queued file messages a download takes at once.
const RECV_BATCH: usize = 64;

/// Whether a download output may wait behind the next queued message's: chunks to write,
/// progress and requests. Anything else (manifest hashes, which the next message may be
/// checked against; the manifest is complete, the file is complete, failed) is handled before
/// the download hears anything more.
fn batchable(o: &DownloadOutput) -> bool {
    matches!(
        o,
        DownloadOutput::Write { .. } | DownloadOutput::Progress { .. } | DownloadOutput::Send(_)
    )
}

/// Write the verified chunks waiting in `writes` to the partial file (if open), and hand them
/// to the root hasher.
fn flush_writes(
    file: Option<&std::fs::File>,
    writes: &mut Vec<(u64, Vec<u8>)>,
    root: &mut RootHasher,
) -> std::io::Result<()> {
    if writes.is_empty() {
        return Ok(());
    }
    if let Some(f) = file {
        if let Err(e) = write_chunks(f, writes) {
            writes.clear();
            return Err(e);
        }
    }
    for (offset, data) in writes.drain(..) {
        root.written(offset, data);
    }
    Ok(())
}

/// Write `chunks` (offset, bytes; most follow one another) to `f`: one `pwritev` per run of
/// consecutive chunks rather than a seek and a write per chunk.
fn write_chunks(f: &std::fs::File, chunks: &[(u64, Vec<u8>)]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut rest = chunks;
    while let Some(&(start, _)) = rest.first() {
        // The run of chunks that follow one another from `start` (at most IOV_MAX's floor).
        let mut end = start;
        let mut n = 0;
        for (offset, data) in rest.iter().take(1024) {
            if *offset != end {
                break;
            }
            end += data.len() as u64;
            n += 1;
        }
        let (run, after) = rest.split_at(n);
        let slices: Vec<std::io::IoSlice<'_>> =
            run.iter().map(|(_, d)| std::io::IoSlice::new(d)).collect();
        let written = rustix::io::pwritev(f, &slices, start).map_err(std::io::Error::from)?;
        // A short write: the rest of the run one chunk at a time.
        let mut done = start + written as u64;
        for (offset, data) in run {
            let chunk_end = offset + data.len() as u64;
            if chunk_end > done {
                let skip = done.saturating_sub(*offset) as usize;
                f.write_all_at(&data[skip..], offset + skip as u64)?;
                done = chunk_end;
            }
        }
        rest = after;
    }
    Ok(())
}

/// The chunk hashes of a download's manifest, 32 bytes each by index, in an unnamed
/// temporary file beside the download (the OS deletes it when it is closed, or the process
/// dies): 8 MiB per GiB of file that need not be in memory. They are read back
/// [`HASH_BLOCK`] at a time (chunks mostly arrive in order): one read per block, not per
/// chunk.
struct HashFile {
    file: std::fs::File,
    /// The block last read: the index of its first hash, and the hashes.
    block: std::sync::Mutex<(u64, Vec<[u8; CHUNK_HASH_LEN]>)>,
}

/// How many chunk hashes a [`HashFile`] reads at a time (4 KiB).
const HASH_BLOCK: usize = 128;

impl HashFile {
    fn create(dir: &Path) -> std::io::Result<HashFile> {
        Ok(HashFile {
            file: tempfile::tempfile_in(dir)?,
            block: std::sync::Mutex::new((0, Vec::new())),
        })
    }

    fn block(&self) -> std::sync::MutexGuard<'_, (u64, Vec<[u8; CHUNK_HASH_LEN]>)> {
        self.block.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keep `hashes`, the first being chunk `first`'s (replacing what was there).
    fn store(&self, first: u64, hashes: &[[u8; CHUNK_HASH_LEN]]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        // What was read before may be what this replaces.
        self.block().1.clear();
        self.file
            .write_all_at(hashes.as_flattened(), first * CHUNK_HASH_LEN as u64)
    }
}

impl ChunkHashes for HashFile {
    fn chunk_hash(&self, index: u64) -> std::io::Result<[u8; CHUNK_HASH_LEN]> {
        use std::os::unix::fs::FileExt;
        let mut block = self.block();
        let (first, hashes) = &mut *block;
        if let Some(h) = index
            .checked_sub(*first)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| hashes.get(i))
        {
            return Ok(*h);
        }
        // Read the block from `index` on: as many whole hashes as the file holds, up to
        // HASH_BLOCK (at least `index`'s, or it is an error, as a short read is).
        let mut buf = [0u8; HASH_BLOCK * CHUNK_HASH_LEN];
        let at = index * CHUNK_HASH_LEN as u64;
        let mut got = 0;
        while got < buf.len() {
            match self.file.read_at(&mut buf[got..], at + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    hashes.clear();
                    return Err(e);
                }
            }
        }
        hashes.clear();
        hashes.extend(
            buf[..got - got % CHUNK_HASH_LEN]
                .chunks_exact(CHUNK_HASH_LEN)
                .filter_map(|h| <[u8; CHUNK_HASH_LEN]>::try_from(h).ok()),
        );
        *first = index;
        hashes.first().copied().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "no such chunk hash (the manifest did not list it)",
            )
        })
    }
}

/// How a partial download is opened (read and write; created if missing, never truncated):
/// what a contact sent is for us alone, so a file created is readable by us only (0600).
fn partial_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Open (or create) the partial file, sized to the manifest, and check which chunks it
/// already holds against the manifest's `hashes` (blocking).
fn open_partial(
    path: &Path,
    m: &ManifestInfo,
    hashes: &HashFile,
) -> std::io::Result<(std::fs::File, ChunkSet)> {
    let mut f = partial_options().open(path)?;
    let len = f.metadata()?.len();
    let count = usize::try_from(m.chunk_count).map_err(std::io::Error::other)?;
    let mut have = ChunkSet::new(count);
    let mut buf = vec![0u8; m.chunk_size as usize];
    for i in 0..count {
        let Some((start, clen)) = m.chunk_range(i as u64) else {
            break;
        };
        if start + clen as u64 > len {
            break;
        }
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf[..clen])?;
        if m.verify_chunk(i as u64, &hashes.chunk_hash(i as u64)?, &buf[..clen]) {
            have.insert(i);
        }
    }
    f.set_len(m.file_size)?;
    Ok((f, have))
}

/// Read chunks `batch` (ascending, mostly consecutive) of the file `m` describes: one `preadv`
/// per run of consecutive chunks, straight into each chunk's buffer (blocking).
fn read_chunks(
    f: &std::fs::File,
    m: &Manifest,
    batch: &[u64],
) -> std::io::Result<Vec<(u64, Vec<u8>)>> {
    let mut out: Vec<(u64, Vec<u8>)> = Vec::with_capacity(batch.len());
    // The run being gathered: its first chunk in `out`, where it starts and ends in the file.
    let (mut run, mut run_start, mut run_end) = (0, 0, 0);
    for &i in batch {
        let Some((start, len)) = m.chunk_range(i) else {
            continue;
        };
        if start != run_end || out.len() - run >= 1024 {
            read_run(f, run_start, &mut out[run..])?;
            (run, run_start) = (out.len(), start);
        }
        run_end = start + len as u64;
        out.push((i, vec![0u8; len]));
    }
    read_run(f, run_start, &mut out[run..])?;
    Ok(out)
}

/// Fill `run` (consecutive chunks' buffers) from `offset` on: one `preadv`, then, if it came
/// short, chunk by chunk from where it stopped; a file that ends early is an error.
fn read_run(f: &std::fs::File, offset: u64, run: &mut [(u64, Vec<u8>)]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    if run.is_empty() {
        return Ok(());
    }
    let read = {
        let mut slices: Vec<std::io::IoSliceMut<'_>> = run
            .iter_mut()
            .map(|(_, d)| std::io::IoSliceMut::new(d))
            .collect();
        rustix::io::preadv(f, &mut slices, offset).map_err(std::io::Error::from)?
    };
    let mut done = offset + read as u64;
    let mut at = offset;
    for (_, data) in run.iter_mut() {
        let end = at + data.len() as u64;
        if end > done {
            let skip = done.saturating_sub(at) as usize;
            f.read_exact_at(&mut data[skip..], at + skip as u64)?;
            done = end;
        }
        at = end;
    }
    Ok(())
}

/// The most automatic image downloads (previews, profile pictures) at once, and from one
/// contact.
const MAX_AUTO_DOWNLOADS: usize = 8;
const MAX_AUTO_DOWNLOADS_PER_CONTACT: usize = 2;

/// The most disjoint chunk ranges waiting to be sent to one contact for one file: two
/// requests' worth ([`MAX_CHUNK_SPEC_RANGES`] each).
const MAX_PENDING_RANGES: usize = 2 * MAX_CHUNK_SPEC_RANGES;

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
        // The key as text, once (every chunk's ID starts with it).
        let key_text = key.to_string();
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
                    let f = open_nonblocking(&path)?;
                    if !f.metadata()?.is_file() {
                        return Err(std::io::Error::other("no longer a regular file"));
                    }
                    // Changed since it was hashed (length or time): its chunks are not the
                    // manifest's; serve nothing rather than garbage.
                    if stamp.is_some() && FileStamp::of(&path).is_some_and(|now| Some(now) != stamp)
                    {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            "the shared file changed on disk",
                        ));
                    }
                    read_chunks(&f, &manifest, &batch)
                })
                .await;
            let chunks = match read {
                Ok(Ok(c)) => c,
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                    end(self);
                    return self.share_changed(&key).await;
                }
                Ok(Err(e)) => {
                    warn!(error = %Sensitive(&e), "cannot serve a shared file");
                    return end(self);
                }
                Err(_) => return end(self),
            };
            for (index, data) in chunks {
                let m = chunk_peer_message(&key_text, index, data);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of `len` bytes that differ from chunk to chunk.
    fn file_bytes(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 131 % 251) as u8).collect()
    }

    #[test]
    fn chunks_are_written_and_read_back_in_runs() {
        use std::os::unix::fs::FileExt;
        // 40 chunks and a short last one.
        let data = file_bytes(40 * 4096 + 100);
        let mut b = ManifestBuilder::new();
        b.update(&data).unwrap();
        let m = b.finish("f");
        assert_eq!(m.chunk_count(), 41);
        let chunk = |i: u64| {
            let (start, len) = m.chunk_range(i).unwrap();
            (start, data[start as usize..start as usize + len].to_vec())
        };
        // Runs, gaps, one alone, the short last chunk; more than one write call's worth.
        let order: Vec<u64> = [0, 1, 2, 3, 7, 8, 20, 33, 34, 35, 36, 37, 38, 39, 40].into();
        let writes: Vec<(u64, Vec<u8>)> = order.iter().map(|&i| chunk(i)).collect();
        let f = tempfile::tempfile().unwrap();
        write_chunks(&f, &writes).unwrap();
        let mut back = vec![0u8; data.len()];
        f.read_exact_at(&mut back, 0).unwrap();
        for i in 0..41 {
            let (start, len) = m.chunk_range(i).unwrap();
            let range = start as usize..start as usize + len;
            if order.contains(&i) {
                assert_eq!(back[range.clone()], data[range], "chunk {i}");
            } else {
                assert!(back[range].iter().all(|&x| x == 0), "chunk {i} written");
            }
        }
        // The sharer's side: the same chunks read back, in the order asked.
        let f = tempfile::tempfile().unwrap();
        f.write_all_at(&data, 0).unwrap();
        let read = read_chunks(&f, &m, &order).unwrap();
        let want: Vec<(u64, Vec<u8>)> = order.iter().map(|&i| (i, chunk(i).1)).collect();
        assert!(read == want, "not the chunks asked for");
        // Past the end of the manifest: skipped; a file shorter than the manifest: an error.
        let last = read_chunks(&f, &m, &[40, 41]).unwrap();
        assert!(last == vec![(40, chunk(40).1)], "not the last chunk");
        f.set_len(30 * 4096).unwrap();
        assert!(read_chunks(&f, &m, &[28, 29, 30]).is_err());
        assert!(read_chunks(&f, &m, &[35]).is_err());
    }

    #[test]
    fn chunk_hashes_come_back_from_the_hash_file_whatever_the_order() {
        let dir = tempfile::tempdir().unwrap();
        let h = HashFile::create(dir.path()).unwrap();
        let hash = |i: u64| {
            let mut x = [0u8; CHUNK_HASH_LEN];
            x[..8].copy_from_slice(&i.to_le_bytes());
            x[31] = 0xAA;
            x
        };
        let n = 3 * HASH_BLOCK as u64 + 5;
        let all: Vec<_> = (0..n).map(hash).collect();
        h.store(0, &all[..100]).unwrap();
        h.store(100, &all[100..]).unwrap();
        for i in (0..n).chain((0..n).rev()).chain([5, 300, 7, n - 1, 0]) {
            assert_eq!(h.chunk_hash(i).unwrap(), hash(i), "chunk {i}");
        }
        assert!(h.chunk_hash(n).is_err());
        // A store replaces what was read before.
        assert_eq!(h.chunk_hash(10).unwrap(), hash(10));
        h.store(10, &[[7u8; CHUNK_HASH_LEN]]).unwrap();
        assert_eq!(h.chunk_hash(10).unwrap(), [7u8; CHUNK_HASH_LEN]);
        assert_eq!(h.chunk_hash(11).unwrap(), hash(11));
    }

    /// What the download does with a [`RootHasher`]: the hash so far, then the rest of the
    /// file from where it stopped.
    fn root_of(file: &[u8], writes: &[(u64, usize)]) -> Vec<u8> {
        let mut r = RootHasher::start();
        for &(offset, len) in writes {
            let o = offset as usize;
            r.written(offset, file[o..o + len].to_vec());
        }
        let (mut h, from) = r.finish();
        h.update(&file[from as usize..]);
        h.finalize().to_vec()
    }

    #[test]
    fn the_root_hash_is_the_file_s_whatever_the_order_of_writes() {
        let file: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let whole = Sha512::digest(&file).to_vec();
        let chunks: Vec<(u64, usize)> = (0..file.len())
            .step_by(4096)
            .map(|o| (o as u64, 4096.min(file.len() - o)))
            .collect();
        // In order; reversed; one out of place; a prefix only (a resumed download).
        assert_eq!(root_of(&file, &chunks), whole);
        let rev: Vec<_> = chunks.iter().rev().copied().collect();
        assert_eq!(root_of(&file, &rev), whole);
        let mut swapped = chunks.clone();
        swapped.swap(3, 4);
        assert_eq!(root_of(&file, &swapped), whole);
        assert_eq!(root_of(&file, &chunks[5..]), whole);
        assert_eq!(root_of(&file, &[]), whole);
        // More writes than the channel holds, faster than it may be drained.
        let many: Vec<u8> = (0..3000 * 64u32).map(|i| (i % 7) as u8).collect();
        let small: Vec<(u64, usize)> = (0..3000).map(|i| (i * 64, 64)).collect();
        assert_eq!(root_of(&many, &small), Sha512::digest(&many).to_vec());
        // No thread at all.
        let (mut h, from) = RootHasher::NONE.finish();
        assert_eq!(from, 0);
        h.update(&file);
        assert_eq!(h.finalize().to_vec(), whole);
    }
}
