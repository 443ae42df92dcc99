//! [`Cwtch`]: a home of profiles on one network, and the event stream.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

use connectivity::Acn;
use cwtch_storage::{
    keys, AttributeCondition, Conversation, CwtchHome, MemoryHome, MessageId, Password, Profile,
    ProfileHome, ProfileId, ProfileStore,
};
use tapir_service::Service;
use tokio::sync::{broadcast, watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use torv3::{Identity, Onion};
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::lock::ProfileLock;
use crate::profile::ProfileHandle;
use crate::runtime::{
    ContactEntry, Outgoing, PasswordCheck, Runtime, State, BLOCK_UNKNOWN_ATTRIBUTE,
};
use crate::store::{Backend, StoreHandle};
use crate::types::ProfileInfo;

/// Where profiles live.
#[derive(Clone, Debug)]
enum Home {
    Disk(CwtchHome),
    Memory(MemoryHome),
}

pub(crate) struct AppInner {
    home: Home,
    acn: Arc<dyn Acn>,
    config: Arc<Config>,
    events: broadcast::Sender<Event>,
    profiles: Mutex<HashMap<ProfileId, ProfileHandle>>,
    dial_limit: Arc<Semaphore>,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl AppInner {
    fn profiles(&self) -> MutexGuard<'_, HashMap<ProfileId, ProfileHandle>> {
        self.profiles.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn forget(&self, id: &ProfileId) {
        self.profiles().remove(id);
    }
}

/// The Cwtch library: a home of profiles, one network, one event stream.
///
/// Cheap to clone. Create one with [`Cwtch::open`] (a Cwtch home directory, Go's layout) or
/// [`Cwtch::in_memory`] (tests); [`Cwtch::load_profile`] brings a profile online and returns
/// its [`ProfileHandle`]; [`Cwtch::events`] subscribes to everything that happens;
/// [`Cwtch::shutdown`] stops everything. The network (`Arc<dyn Acn>`) belongs to the caller
/// and is not closed.
#[derive(Clone)]
pub struct Cwtch {
    inner: Arc<AppInner>,
}

impl std::fmt::Debug for Cwtch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cwtch")
            .field("home", &self.inner.home)
            .field("network", &self.inner.acn.name())
            .finish_non_exhaustive()
    }
}

impl Cwtch {
    /// Open (creating if needed, 0700) the Cwtch home at `path` with default settings.
    pub async fn open(path: impl AsRef<Path>, acn: Arc<dyn Acn>) -> Result<Cwtch> {
        Cwtch::open_with_config(path, acn, Config::default()).await
    }

    /// Open the Cwtch home at `path`.
    pub async fn open_with_config(
        path: impl AsRef<Path>,
        acn: Arc<dyn Acn>,
        config: Config,
    ) -> Result<Cwtch> {
        let path = path.as_ref().to_path_buf();
        let home = blocking(move || CwtchHome::open(path).map_err(Error::from)).await?;
        Ok(Cwtch::start(Home::Disk(home), acn, config))
    }

    /// An in-memory home (tests, ephemeral bots) with default settings.
    pub async fn in_memory(home: MemoryHome, acn: Arc<dyn Acn>) -> Cwtch {
        Cwtch::in_memory_with_config(home, acn, Config::default()).await
    }

    /// An in-memory home.
    pub async fn in_memory_with_config(
        home: MemoryHome,
        acn: Arc<dyn Acn>,
        config: Config,
    ) -> Cwtch {
        Cwtch::start(Home::Memory(home), acn, config)
    }

    fn start(home: Home, acn: Arc<dyn Acn>, config: Config) -> Cwtch {
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let inner = Arc::new(AppInner {
            home,
            acn,
            dial_limit: Arc::new(Semaphore::new(config.max_concurrent_dials.max(1))),
            config: Arc::new(config),
            events,
            profiles: Mutex::new(HashMap::new()),
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        // Report the network's bootstrap status.
        let mut status = inner.acn.status();
        let tx = inner.events.clone();
        let cancel = inner.cancel.clone();
        inner.tasks.spawn(async move {
            loop {
                let s = status.borrow_and_update().clone();
                let _ = tx.send(Event::AcnStatus {
                    progress: s.progress,
                    summary: s.summary,
                });
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = status.changed() => if r.is_err() { return },
                }
            }
        });
        Cwtch { inner }
    }

    /// Subscribe to events. A receiver that falls more than
    /// [`Config::event_capacity`] events behind loses the oldest ones.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// The network's bootstrap status now (changes arrive as [`Event::AcnStatus`]; the
    /// first of those may be sent before a receiver subscribes).
    pub fn acn_status(&self) -> connectivity::AcnStatus {
        self.inner.acn.status().borrow().clone()
    }

    /// The network.
    pub fn acn(&self) -> &Arc<dyn Acn> {
        &self.inner.acn
    }

    /// The home directory (`None` for an in-memory home).
    pub fn home_path(&self) -> Option<PathBuf> {
        match &self.inner.home {
            Home::Disk(h) => Some(h.path().to_path_buf()),
            Home::Memory(_) => None,
        }
    }

    /// Create a profile (a fresh identity). It is not loaded. Its name is trimmed; empty,
    /// multi-line or longer than [`LOCAL_NAME_MAX_CHARS`](crate::LOCAL_NAME_MAX_CHARS)
    /// characters is [`Error::Invalid`].
    pub async fn create_profile(&self, name: &str, password: &Password) -> Result<ProfileInfo> {
        self.create_profile_inner(name, password, None, true).await
    }

    /// Create a profile whose engine starts when it loads (`autostart`, as
    /// [`create_profile`](Self::create_profile)) or stays deactivated until asked
    /// ([`AUTOSTART_ATTRIBUTE`](crate::AUTOSTART_ATTRIBUTE)). It is not loaded.
    pub async fn create_profile_with_autostart(
        &self,
        name: &str,
        password: &Password,
        autostart: bool,
    ) -> Result<ProfileInfo> {
        self.create_profile_inner(name, password, None, autostart)
            .await
    }

    /// Create a profile with a given identity (tests, vanity addresses). It is not loaded.
    pub async fn create_profile_with_identity(
        &self,
        name: &str,
        password: &Password,
        identity: &Identity,
    ) -> Result<ProfileInfo> {
        self.create_profile_inner(name, password, Some(identity.to_go_private_key()), true)
            .await
    }

    async fn create_profile_inner(
        &self,
        name: &str,
        password: &Password,
        key: Option<zeroize::Zeroizing<[u8; 64]>>,
        autostart: bool,
    ) -> Result<ProfileInfo> {
        let name = crate::names::check_local_name(name)?;
        let (home, password) = (self.inner.home.clone(), password.clone());
        blocking(move || {
            let identity = match &key {
                Some(k) => Identity::from_go_private_key(k.as_ref())
                    .map_err(|_| Error::Invalid { what: "identity" })?,
                None => Identity::generate(&mut rand_core::OsRng),
            };
            let mut backend = match &home {
                Home::Disk(h) => {
                    Backend::Disk(h.create_profile_with_identity(&name, &password, &identity)?)
                }
                Home::Memory(h) => {
                    Backend::Memory(h.create_profile_with_identity(&name, &password, &identity)?)
                }
            };
            if !autostart {
                backend
                    .store()
                    .set_attribute(crate::AUTOSTART_ATTRIBUTE, keys::FALSE)?;
            }
            let info = profile_info(backend.store_ref(), false)?;
            close_backend(backend);
            Ok(info)
        })
        .await
    }

    /// Every profile that opens with `password`, by id. Loaded profiles are included (with
    /// `loaded: true`) if the password is theirs.
    pub async fn list_profiles(&self, password: &Password) -> Result<Vec<ProfileInfo>> {
        let loaded: Vec<ProfileHandle> = self.inner.profiles().values().cloned().collect();
        let mut out = BTreeMap::new();
        for p in loaded {
            let matches =
                p.rt.password
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .matches(password);
            if !matches {
                continue;
            }
            if let Ok(name) = p.name().await {
                out.insert(
                    p.profile_id().clone(),
                    ProfileInfo {
                        profile_id: p.profile_id().clone(),
                        onion: p.onion().clone(),
                        name,
                        loaded: true,
                    },
                );
            }
        }
        let (home, pw) = (self.inner.home.clone(), password.clone());
        let skip: Vec<ProfileId> = out.keys().cloned().collect();
        let found = blocking(move || list_unloaded(&home, &pw, &skip)).await?;
        for info in found {
            out.entry(info.profile_id.clone()).or_insert(info);
        }
        Ok(out.into_values().collect())
    }

    /// The loaded profile with this id, if any.
    pub fn profile(&self, id: &ProfileId) -> Option<ProfileHandle> {
        self.inner.profiles().get(id).cloned()
    }

    /// Every loaded profile.
    pub fn loaded_profiles(&self) -> Vec<ProfileHandle> {
        self.inner.profiles().values().cloned().collect()
    }

    /// Load (unlock) a profile, named by its id or its onion, and bring it online: host its
    /// onion service, connect to its contacts. Fails with [`Error::ProfileLocked`] if another
    /// process runs it, [`Error::ProfileLoaded`] if this one does.
    pub async fn load_profile(&self, which: &str, password: &Password) -> Result<ProfileHandle> {
        if self.inner.cancel.is_cancelled() {
            return Err(Error::ShutDown);
        }
        let id = self.resolve_profile(which, password).await?;
        if self.inner.profiles().contains_key(&id) {
            return Err(Error::ProfileLoaded(id));
        }
        let (home, pw, pid) = (self.inner.home.clone(), password.clone(), id.clone());
        let (backend, lock, snapshot) = blocking(move || open_for_engine(&home, &pid, &pw)).await?;
        let store = StoreHandle::spawn(&id, backend, lock, self.inner.config.storage_queue)?;
        let rt = self.build_runtime(id.clone(), store, snapshot, password);
        let handle = ProfileHandle {
            rt: rt.clone(),
            app: Arc::downgrade(&self.inner),
        };
        let raced = {
            let mut profiles = self.inner.profiles();
            if profiles.contains_key(&id) {
                true
            } else {
                profiles.insert(id.clone(), handle.clone());
                false
            }
        };
        if raced {
            // Lost a race with a concurrent load of the same profile.
            handle.shutdown().await;
            return Err(Error::ProfileLoaded(id));
        }
        if self.inner.cancel.is_cancelled() {
            // `Cwtch::shutdown` ran meanwhile.
            handle.shutdown().await;
            return Err(Error::ShutDown);
        }
        info!(profile = %rt.onion.redacted(), "profile loaded");
        let name = handle.name().await.unwrap_or_default();
        rt.emit(Event::ProfileLoaded {
            profile: rt.profile(),
            profile_id: id.as_str().to_owned(),
            name,
        });
        // Shares first: a contact that connects at once asks for them (unanswered, its
        // download would wait for its timer). Downloads resumed here ask when connected.
        rt.restore_files().await;
        rt.start_listening();
        let dial: Vec<Onion> = rt.state().contacts.keys().cloned().collect();
        for onion in dial {
            rt.ensure_dialer(&onion);
        }
        let servers: Vec<Onion> = rt.state().groups.servers.keys().cloned().collect();
        for server in servers {
            rt.start_server(&server);
        }
        Ok(handle)
    }

    fn build_runtime(
        &self,
        profile_id: ProfileId,
        store: StoreHandle,
        snapshot: Snapshot,
        password: &Password,
    ) -> Arc<Runtime> {
        let identity = Arc::new(snapshot.identity);
        let onion = identity.onion();
        let service = Service::new(
            identity.clone(),
            self.inner.acn.clone(),
            self.inner.config.service.clone(),
        );
        let mut state = State::default();
        // A profile that does not start on its own loads deactivated: nothing goes online.
        state.policy.active = snapshot.autostart;
        for (onion, c) in snapshot.contacts {
            state.by_conversation.insert(c.id, onion.clone());
            let blocked = c.is_blocked();
            state
                .contacts
                .insert(onion, ContactEntry::new(c.id, c.accepted, blocked));
        }
        for (onion, id, out) in snapshot.outbox {
            if let Some(e) = state.contacts.get_mut(&onion) {
                e.outbox.insert(id, out);
            }
        }
        for (c, bundle) in snapshot.groups.servers {
            match cwtch_board::ServerClient::new(&bundle, self.inner.acn.clone()) {
                Ok(client) => {
                    state.groups.servers.insert(
                        client.onion().clone(),
                        crate::groups::ServerEntry {
                            conversation: c.id,
                            client,
                            state: crate::event::ServerState::Disconnected,
                            tokens: 0,
                            last_sync: None,
                            task: None,
                            finished: None,
                        },
                    );
                }
                Err(e) => warn!(error = %e, "a stored server cannot be used"),
            }
        }
        for (c, group, latest) in snapshot.groups.groups {
            let name = c
                .attribute(keys::GROUP_NAME)
                .map(str::to_owned)
                .unwrap_or_else(|| group.id().to_string());
            state.groups.groups.insert(
                c.id,
                crate::groups::GroupEntry {
                    conversation: c.id,
                    group,
                    name,
                    accepted: c.accepted,
                    latest,
                    missing: Default::default(),
                },
            );
        }
        let (online, _) = watch::channel(false);
        let images_dir = match &self.inner.home {
            Home::Disk(h) => Some(h.profile_dir(&profile_id).join(IMAGES_DIR)),
            Home::Memory(_) => None,
        };
        Arc::new(Runtime {
            profile_id,
            onion,
            identity: identity.clone(),
            acn_handle: self.inner.acn.clone(),
            store,
            events: self.inner.events.clone(),
            config: self.inner.config.clone(),
            service,
            dial_limit: self.inner.dial_limit.clone(),
            cancel: self.inner.cancel.child_token(),
            tasks: TaskTracker::new(),
            spawner: tokio::runtime::Handle::current(),
            acn_status: self.inner.acn.status(),
            state: Mutex::new(state),
            contact_ops: tokio::sync::Mutex::new(()),
            stranger_slots: Arc::new(Semaphore::new(self.inner.config.max_stranger_connections)),
            requests_full_warned: AtomicBool::new(false),
            block_unknown: AtomicBool::new(snapshot.block_unknown),
            image_previews: AtomicBool::new(snapshot.image_previews),
            images_dir,
            online,
            password: Mutex::new(PasswordCheck::new(password)),
            shutdown_done: tokio::sync::Mutex::new(false),
        })
    }

    async fn resolve_profile(&self, which: &str, password: &Password) -> Result<ProfileId> {
        let which = which.trim();
        if let Ok(id) = ProfileId::parse(which) {
            return Ok(id);
        }
        let onion = Onion::parse(which).map_err(|_| Error::ProfileNotFound {
            what: "(neither a profile id nor an address)".into(),
        })?;
        self.list_profiles(password)
            .await?
            .into_iter()
            .find(|p| p.onion == onion)
            .map(|p| p.profile_id)
            .ok_or_else(|| Error::ProfileNotFound {
                what: onion.redacted().to_string(),
            })
    }

    /// Change a profile's password. A loaded profile is changed in place.
    pub async fn change_password(
        &self,
        id: &ProfileId,
        old: &Password,
        new: &Password,
    ) -> Result<()> {
        if let Some(p) = self.profile(id) {
            return p.change_password(old, new).await;
        }
        let (home, id, old, new) = (
            self.inner.home.clone(),
            id.clone(),
            old.clone(),
            new.clone(),
        );
        blocking(move || {
            let _lock = lock_if_disk(&home, &id)?;
            let mut b = open_backend(&home, &id, &old)?;
            b.store().change_password(&old, &new)?;
            close_backend(b);
            Ok(())
        })
        .await
    }

    /// Export a profile (Go's archive format) to a new file at `path`. A loaded profile is
    /// exported through its open database.
    pub async fn export_profile(&self, id: &ProfileId, path: &Path) -> Result<()> {
        if let Some(p) = self.profile(id) {
            return p.export(path).await;
        }
        let Home::Disk(home) = self.inner.home.clone() else {
            return Err(Error::Unsupported("export of an in-memory profile"));
        };
        let (id, path) = (id.clone(), path.to_path_buf());
        blocking(move || {
            let _lock = ProfileLock::acquire(&home.profile_dir(&id), &id)?;
            let f = create_new_file(&path)?;
            home.export_profile(&id, std::io::BufWriter::new(f))?;
            Ok(())
        })
        .await
    }

    /// Import a profile archive (Go's export format); it must open with `password`. It is
    /// not loaded.
    pub async fn import_profile(&self, archive: &Path, password: &Password) -> Result<ProfileInfo> {
        let Home::Disk(home) = self.inner.home.clone() else {
            return Err(Error::Unsupported("import into an in-memory home"));
        };
        let (path, pw) = (archive.to_path_buf(), password.clone());
        blocking(move || {
            let f = File::open(&path).map_err(|source| Error::Io {
                op: "open",
                path: path.clone(),
                source,
            })?;
            let p = home.import_profile(std::io::BufReader::new(f), &pw)?;
            let info = profile_info(&p, false)?;
            close_backend(Backend::Disk(p));
            Ok(info)
        })
        .await
    }

    /// Delete a profile (the password must open it). A loaded profile is shut down first.
    pub async fn delete_profile(&self, id: &ProfileId, password: &Password) -> Result<()> {
        if let Some(p) = self.profile(id) {
            let ok =
                p.rt.password
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .matches(password);
            if !ok {
                return Err(cwtch_storage::Error::WrongPassword.into());
            }
            p.shutdown().await;
        }
        let (home, id, pw) = (self.inner.home.clone(), id.clone(), password.clone());
        blocking(move || {
            match &home {
                Home::Disk(h) => {
                    let _lock = ProfileLock::acquire(&h.profile_dir(&id), &id)?;
                    h.delete_profile(&id, &pw)?;
                }
                Home::Memory(h) => h.delete_profile(&id, &pw)?,
            }
            Ok(())
        })
        .await
    }

    /// Shut down every loaded profile and stop. The network is left to its owner.
    pub async fn shutdown(&self) {
        let profiles: Vec<ProfileHandle> = self.inner.profiles().values().cloned().collect();
        for p in profiles {
            p.shutdown().await;
        }
        self.inner.cancel.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }
}

/// Run blocking work (storage, PBKDF2) off the executor.
async fn blocking<R: Send + 'static>(f: impl FnOnce() -> Result<R> + Send + 'static) -> Result<R> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| Error::StorageClosed)?
}

fn open_backend(home: &Home, id: &ProfileId, password: &Password) -> Result<Backend> {
    Ok(match home {
        Home::Disk(h) => Backend::Disk(h.open_profile(id, password)?),
        Home::Memory(h) => Backend::Memory(h.open_profile(id, password)?),
    })
}

fn close_backend(b: Backend) {
    if let Backend::Disk(p) = b {
        if let Err(e) = p.close() {
            warn!(error = %e, "closing a profile failed");
        }
    }
}

fn lock_if_disk(home: &Home, id: &ProfileId) -> Result<Option<ProfileLock>> {
    match home {
        Home::Disk(h) => Ok(Some(ProfileLock::acquire(&h.profile_dir(id), id)?)),
        Home::Memory(_) => Ok(None),
    }
}

fn profile_info(store: &dyn ProfileStore, loaded: bool) -> Result<ProfileInfo> {
    let identity = store.identity()?;
    let name = store
        .attribute(keys::PUBLIC_PROFILE_NAME)?
        .unwrap_or_default();
    Ok(ProfileInfo {
        profile_id: store.profile_id().clone(),
        onion: identity.onion(),
        name,
        loaded,
    })
}

/// The profiles (not in `skip`) that open with `password`. Disk profiles are opened
/// read-only in place (nothing is written, and it works while another process runs them);
/// one that needs crash recovery is opened read-write, if no other process holds it.
fn list_unloaded(home: &Home, password: &Password, skip: &[ProfileId]) -> Result<Vec<ProfileInfo>> {
    let ids = match home {
        Home::Disk(h) => h.list_profiles()?,
        Home::Memory(h) => h.list_profiles()?,
    };
    let mut out = Vec::new();
    for id in ids.iter().filter(|id| !skip.contains(id)) {
        let info = match home {
            Home::Disk(h) => list_disk_profile(h, id, password),
            Home::Memory(h) => h
                .open_profile(id, password)
                .map_err(Error::from)
                .and_then(|p| profile_info(&p, false)),
        };
        match info {
            Ok(i) => out.push(i),
            Err(Error::Storage(cwtch_storage::Error::WrongPassword)) => {}
            Err(e) => debug!(profile = %id, error = %e, "profile not listed"),
        }
    }
    Ok(out)
}

/// How often listing retries a profile whose database is in the middle of a write by
/// another process (its journal exists while a transaction runs), and how long it waits.
const LIST_BUSY_RETRIES: u32 = 50;
const LIST_BUSY_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

fn list_disk_profile(h: &CwtchHome, id: &ProfileId, password: &Password) -> Result<ProfileInfo> {
    let dir = h.profile_dir(id);
    let mut tries = 0;
    loop {
        match Profile::open_read_only(&dir, password) {
            Ok(p) => return profile_info(&p, false),
            Err(cwtch_storage::Error::RecoveryPending(_)) if !ProfileLock::is_held(&dir, id) => {
                // A crash left a journal (or an unfinished password change): a read-write
                // open recovers it.
                return h
                    .open_profile(id, password)
                    .map_err(Error::from)
                    .and_then(|p| profile_info(&p, false));
            }
            // Another process is writing right now: its journal goes away when the write
            // commits.
            Err(cwtch_storage::Error::RecoveryPending(_)) if tries < LIST_BUSY_RETRIES => {
                tries += 1;
                std::thread::sleep(LIST_BUSY_WAIT);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The folder, in a profile's folder, where images downloaded automatically go (contacts'
/// profile pictures, previews). Removed with the profile.
pub const IMAGES_DIR: &str = "images";

/// What the engine needs from storage to start.
struct Snapshot {
    identity: Identity,
    block_unknown: bool,
    image_previews: bool,
    autostart: bool,
    contacts: Vec<(Onion, Conversation)>,
    outbox: Vec<(Onion, MessageId, Outgoing)>,
    groups: crate::groups::Loaded,
}

fn open_for_engine(
    home: &Home,
    id: &ProfileId,
    password: &Password,
) -> Result<(Backend, Option<ProfileLock>, Snapshot)> {
    let lock = lock_if_disk(home, id)?;
    let backend = open_backend(home, id, password)?;
    let store = backend.store_ref();
    let identity = store.identity()?;
    let me = identity.onion();
    let block_unknown = store.attribute(BLOCK_UNKNOWN_ATTRIBUTE)?.as_deref() == Some(keys::TRUE);
    let image_previews = store
        .attribute(crate::images::IMAGE_PREVIEWS_ATTRIBUTE)?
        .as_deref()
        == Some(keys::TRUE);
    let autostart = store.attribute(crate::AUTOSTART_ATTRIBUTE)?.as_deref() != Some(keys::FALSE);
    let mut contacts = Vec::new();
    let mut outbox = Vec::new();
    let conversations = store.conversations()?;
    let groups = crate::groups::load(store, &conversations)?;
    for c in conversations {
        if c.kind() != cwtch_storage::ConversationKind::Contact {
            continue; // groups and servers are not peers
        }
        let Ok(onion) = Onion::parse(&c.handle) else {
            continue;
        };
        if onion == me {
            continue;
        }
        // Every message of ours that was never acknowledged (and did not fail) is sent
        // again (crash safety: a message is stored before it is sent).
        let unacknowledged = store.messages_where(
            c.id,
            &[
                AttributeCondition::Equals(keys::MESSAGE_AUTHOR, me.as_str()),
                AttributeCondition::NotEquals(keys::MESSAGE_ACK, keys::TRUE),
                AttributeCondition::Empty(keys::MESSAGE_ERROR),
            ],
        )?;
        for m in unacknowledged {
            outbox.push((
                onion.clone(),
                m.id,
                Outgoing {
                    signature: m.signature,
                    body: m.body,
                    sent: false,
                },
            ));
        }
        contacts.push((onion, c));
    }
    Ok((
        backend,
        lock,
        Snapshot {
            identity,
            block_unknown,
            image_previews,
            autostart,
            contacts,
            outbox,
            groups,
        },
    ))
}

/// Create a new file, 0600, refusing to overwrite.
pub(crate) fn create_new_file(path: &Path) -> Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path).map_err(|source| Error::Io {
        op: "create",
        path: path.to_path_buf(),
        source,
    })
}
