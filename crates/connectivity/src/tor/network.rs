//! [`TorAcn`]: the [`Acn`] over a C tor.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use torv3::{Identity, Onion};
use zeroize::Zeroizing;

use super::auth::{authenticate, ControlAuth};
use super::control::{Control, EventStream};
use super::events::{bootstrap_phase, hs_desc, service_id, socks_listener};
use super::process::{self, TorPaths, TorProcess};
use super::socks::{self, SocksFailure};
use super::{TorConfig, TorMode};
use crate::acn::{
    Acn, AcnStatus, BoxStream, IsolationKey, ListenOptions, OnionListener, PowDefense,
};
use crate::error::{ConfigProblem, Error, Operation, ProtocolProblem};

/// Pause after a failed local `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The [`Acn`] over a C `tor`: onion services through its control port (`ADD_ONION`),
/// dials through its SOCKS port, bootstrap progress from its events.
///
/// Two modes (see [`TorConfig`]): *launch* our own tor, or *attach* to a running one.
/// Cloning gives another handle onto the same network. Dropping the last handle stops a
/// launched tor (hosted services of an attached tor end with our control connection).
#[derive(Clone)]
pub struct TorAcn {
    inner: Arc<Inner>,
}

struct Inner {
    config: TorConfig,
    /// Cancelled by `close` or when the last handle is dropped; every listener's token is
    /// a child of it.
    shutdown: CancellationToken,
    /// `None` once closed, so that status receivers see the channel close.
    status: Mutex<Option<watch::Sender<AcnStatus>>>,
    /// The control connection and SOCKS address in use; replaced by `restart`.
    current: Mutex<Option<Current>>,
    /// Serialises hosting changes, restarts and closing.
    state: tokio::sync::Mutex<State>,
    /// Bounds SOCKS handshakes in flight.
    dial_limit: Arc<Semaphore>,
    next_id: AtomicU64,
}

#[derive(Clone)]
struct Current {
    control: Arc<Control>,
    socks: SocketAddr,
    pid: Option<u32>,
}

#[derive(Default)]
struct State {
    /// Our tor (launch mode).
    process: Option<TorProcess>,
    /// Everything we host, by onion: what `restart` re-adds.
    services: HashMap<Onion, Service>,
    /// The task turning control-port events into status updates.
    pump: Option<AbortOnDropHandle<()>>,
    closed: bool,
}

/// One hosted onion: its key (to re-add it after a restart), its virtual ports, and the
/// proof-of-work defence its last listener asked for.
struct Service {
    /// Tor's expanded secret key; zeroized on drop.
    key: Zeroizing<[u8; 64]>,
    ports: BTreeMap<u16, Mapping>,
    pow: Option<PowDefense>,
}

struct Mapping {
    local: u16,
    /// Which listener owns the mapping (a replaced listener must not remove its successor).
    id: u64,
    /// Cancelled when the listener is replaced or the network closed.
    stop: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown.cancel();
        // `state` drops next: the process is killed (`kill_on_drop`), the pump aborted, and
        // the control connection closes (a tor that took ownership from it exits).
    }
}

impl TorAcn {
    /// Start the network: launch our tor or attach to one, authenticate, subscribe to its
    /// events and learn its SOCKS port. Returns without waiting for bootstrap: watch
    /// [`Acn::status`] or call [`Acn::wait_until_bootstrapped`].
    pub async fn new(config: TorConfig) -> Result<TorAcn, Error> {
        validate(&config)?;
        let (status, _) = watch::channel(AcnStatus::new(0, "starting tor"));
        let inner = Arc::new(Inner {
            dial_limit: Arc::new(Semaphore::new(config.dial.max_concurrent.max(1))),
            config,
            shutdown: CancellationToken::new(),
            status: Mutex::new(Some(status)),
            current: Mutex::new(None),
            state: tokio::sync::Mutex::new(State::default()),
            next_id: AtomicU64::new(0),
        });
        {
            let mut state = inner.state.lock().await;
            inner.establish(&mut state).await?;
        }
        Ok(TorAcn { inner })
    }

    /// Launch our own tor with its files in `data_dir` (default policies).
    pub async fn launch(data_dir: impl Into<PathBuf>) -> Result<TorAcn, Error> {
        TorAcn::new(TorConfig::launch(data_dir)).await
    }

    /// Attach to the tor whose control port is at `control` (`IP:PORT`).
    pub async fn attach(control: impl Into<String>, auth: ControlAuth) -> Result<TorAcn, Error> {
        TorAcn::new(TorConfig::attach(control, auth)).await
    }

    /// Tor's version (`GETINFO version`), e.g. `0.4.9.11` (Go's `GetVersion`).
    pub async fn version(&self) -> Result<String, Error> {
        self.inner.control()?.getinfo("version").await
    }

    /// The SOCKS port dials go through.
    pub fn socks_addr(&self) -> Option<SocketAddr> {
        lock(&self.inner.current).as_ref().map(|c| c.socks)
    }

    /// The process id of our tor (launch mode; Go's `GetPID`).
    pub fn pid(&self) -> Option<u32> {
        lock(&self.inner.current).as_ref().and_then(|c| c.pid)
    }

    /// The data directory of our tor (launch mode).
    pub fn data_dir(&self) -> Option<&Path> {
        match &self.inner.config.mode {
            TorMode::Launch { data_dir } => Some(data_dir),
            TorMode::Attach { .. } => None,
        }
    }

    /// [`Acn::listen`], returning the concrete listener type.
    pub async fn listen_tor(&self, identity: &Identity, port: u16) -> Result<TorListener, Error> {
        self.listen_tor_with(identity, port, &ListenOptions::default())
            .await
    }

    /// [`Acn::listen_with`], returning the concrete listener type. With
    /// [`ListenOptions::pow_defense`], `ADD_ONION` turns on tor's proof-of-work defence for
    /// the onion; a tor too old for it (before 0.4.9.5) refuses the keywords, and the service
    /// is then hosted without it (logged as a warning).
    pub async fn listen_tor_with(
        &self,
        identity: &Identity,
        port: u16,
        options: &ListenOptions,
    ) -> Result<TorListener, Error> {
        let inner = &self.inner;
        if inner.shutdown.is_cancelled() {
            return Err(Error::Closed);
        }
        let onion = identity.onion();
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| Error::io(Operation::Listen, e))?;
        let local = tcp
            .local_addr()
            .map_err(|e| Error::io(Operation::Listen, e))?
            .port();
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let stop = inner.shutdown.child_token();
        // Made first, so that if this future is dropped half way, dropping the listener
        // removes whatever was registered (its `Drop` is a no-op if nothing was).
        let listener = TorListener {
            onion: onion.clone(),
            port,
            tcp,
            stop: stop.clone(),
            id,
            inner: Arc::downgrade(inner),
        };

        let mut events = {
            let mut state = inner.state.lock().await;
            if state.closed {
                return Err(Error::Closed);
            }
            let control = inner.control()?;
            let replaced = state.services.contains_key(&onion);
            let service = state
                .services
                .entry(onion.clone())
                .or_insert_with(|| Service {
                    key: identity.tor_expanded_secret_key(),
                    ports: BTreeMap::new(),
                    pow: None,
                });
            service.pow = options.pow_defense;
            if let Some(old) = service.ports.insert(
                port,
                Mapping {
                    local,
                    id,
                    stop: stop.clone(),
                },
            ) {
                tracing::info!(onion = %onion.redacted(), port, "tor: replacing a hosted service");
                old.stop.cancel();
            }
            // Subscribe before ADD_ONION so that the upload event cannot be missed.
            let events = control.events();
            let added = async {
                if replaced {
                    // Tor refuses to add an onion it hosts: remove it first.
                    del_onion(&control, &onion).await?;
                }
                add_onion(&control, &onion, service).await
            }
            .await;
            if let Err(e) = added {
                remove_mapping(&mut state, &onion, port, id);
                if let Some(service) = state.services.get(&onion) {
                    // Best effort: put back the ports that were hosted before.
                    if let Err(e) = add_onion(&control, &onion, service).await {
                        tracing::warn!(onion = %onion.redacted(), error = %e, "tor: could not re-add the other ports");
                    }
                }
                return Err(e);
            }
            events
        };

        tracing::info!(onion = %onion.redacted(), port, local, "tor: publishing onion service");
        let published = tokio::select! {
            () = stop.cancelled() => Err(Error::Closed),
            r = wait_uploaded(&mut events, &onion, inner.config.timeouts.publish) => r,
        };
        if let Err(e) = published {
            inner.unhost(&onion, port, id).await;
            return Err(e);
        }
        tracing::info!(onion = %onion.redacted(), port, "tor: onion service published");
        Ok(listener)
    }
}

/// The control port's address: `IP:PORT` (`[::1]:9051` for IPv6), or `localhost:PORT` for
/// `127.0.0.1:PORT`. Never a host name, which would be looked up (DNS) outside Tor.
fn control_addr(control: &str) -> Result<SocketAddr, Error> {
    let invalid = || Error::InvalidConfig {
        problem: ConfigProblem::InvalidControlAddress,
    };
    if let Ok(addr) = control.parse::<SocketAddr>() {
        return Ok(addr);
    }
    match control.rsplit_once(':') {
        Some((host, port)) if host.eq_ignore_ascii_case("localhost") => port
            .parse::<u16>()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .map_err(|_| invalid()),
        _ => Err(invalid()),
    }
}

/// Refuse configurations that cannot work.
fn validate(config: &TorConfig) -> Result<(), Error> {
    let conflict = |first, second| {
        Err(Error::InvalidConfig {
            problem: ConfigProblem::Conflict { first, second },
        })
    };
    match &config.mode {
        TorMode::Attach { control, .. } => {
            if config.binary.is_some() {
                return conflict("a tor binary", "attaching to a running tor");
            }
            if !config.extra_torrc.is_empty() {
                return conflict("extra torrc lines", "attaching to a running tor");
            }
            control_addr(control)?;
        }
        TorMode::Launch { data_dir } => {
            // Checked again when the torrc is written; fail early with a clear error.
            process::torrc(&TorPaths::new(data_dir), 0, &config.extra_torrc)?;
        }
    }
    Ok(())
}

impl Inner {
    fn control(&self) -> Result<Arc<Control>, Error> {
        if self.shutdown.is_cancelled() {
            return Err(Error::Closed);
        }
        lock(&self.current)
            .as_ref()
            .map(|c| Arc::clone(&c.control))
            .ok_or_else(|| self.not_ready())
    }

    fn not_ready(&self) -> Error {
        Error::NotBootstrapped {
            progress: lock(&self.status)
                .as_ref()
                .map_or(0, |s| s.borrow().progress),
        }
    }

    fn set_status(&self, new: AcnStatus) {
        if let Some(tx) = lock(&self.status).as_ref() {
            tx.send_if_modified(|s| {
                if *s == new {
                    false
                } else {
                    tracing::debug!(progress = new.progress, summary = %new.summary, "tor: bootstrap");
                    *s = new;
                    true
                }
            });
        }
    }

    /// Launch or attach, authenticate, subscribe, and make the result current. The caller
    /// holds the state lock.
    async fn establish(self: &Arc<Self>, state: &mut State) -> Result<(), Error> {
        let timeouts = &self.config.timeouts;
        let (control, process, take_ownership) = match &self.config.mode {
            TorMode::Launch { data_dir } => {
                let paths = TorPaths::new(data_dir);
                process::prepare_private_dir(data_dir)?;
                process::kill_stale(&paths, timeouts.stop).await;
                let torrc = process::torrc(&paths, std::process::id(), &self.config.extra_torrc)?;
                process::write_private(&paths.torrc, &torrc)?;
                process::write_private(&paths.defaults, "")?;
                let binary = self
                    .config
                    .binary
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("tor"));
                let (process, addr) = TorProcess::spawn(&binary, &paths, timeouts.start).await?;
                let control = Control::connect(addr, timeouts.command).await?;
                authenticate(&control, &ControlAuth::Cookie(Some(paths.cookie.clone()))).await?;
                (control, Some(process), true)
            }
            TorMode::Attach { control, auth } => {
                let addr = control_addr(control)?;
                if !addr.ip().is_loopback() {
                    tracing::warn!(
                        "the tor control port is not on this machine: its password or cookie \
                         and every command (our onion services' keys among them) cross the \
                         network unencrypted"
                    );
                }
                let control =
                    tokio::time::timeout(timeouts.start, Control::connect(addr, timeouts.command))
                        .await
                        .map_err(|_| Error::Timeout {
                            operation: Operation::Control,
                        })??;
                authenticate(&control, auth).await?;
                (control, None, false)
            }
        };
        if take_ownership {
            // Tor exits when this connection closes: when we close, crash or are killed.
            control
                .command("TAKEOWNERSHIP", "TAKEOWNERSHIP".to_owned())
                .await?;
        }
        let events = control.events();
        control
            .command("SETEVENTS", "SETEVENTS STATUS_CLIENT HS_DESC".to_owned())
            .await?;
        let phase = control.getinfo("status/bootstrap-phase").await?;
        match bootstrap_phase(&phase) {
            Some(status) => self.set_status(status),
            None => tracing::debug!("tor: unparsable bootstrap phase"),
        }
        if take_ownership {
            // Our torrc starts tor with the network off, so that we see every event.
            control
                .command("SETCONF", "SETCONF DisableNetwork=0".to_owned())
                .await?;
        }
        let socks_value = control.getinfo("net/listeners/socks").await?;
        let socks = socks_listener(&socks_value).ok_or(Error::ControlProtocol {
            problem: ProtocolProblem::MissingField("SOCKS listener"),
        })?;
        let version = control.getinfo("version").await.unwrap_or_default();
        let pid = process.as_ref().and_then(TorProcess::pid);
        tracing::info!(%version, %socks, ?pid, "tor: connected");

        let control = Arc::new(control);
        state.pump = Some(AbortOnDropHandle::new(tokio::spawn(pump(
            Arc::downgrade(self),
            events,
            Arc::downgrade(&control),
        ))));
        state.process = process;
        *lock(&self.current) = Some(Current {
            control,
            socks,
            pid,
        });
        Ok(())
    }

    /// Stop using the current tor: halt ours (launch mode) and drop the control connection.
    async fn teardown(&self, state: &mut State) {
        state.pump = None;
        let current = lock(&self.current).take();
        if let Some(current) = &current {
            if state.process.is_some() {
                // Ask our tor to exit at once; it would also exit when the connection
                // closes (TAKEOWNERSHIP).
                let _ = current
                    .control
                    .raw("SIGNAL", Zeroizing::new("SIGNAL HALT".to_owned()))
                    .await;
            }
        }
        drop(current);
        if let Some(process) = state.process.take() {
            process.stop(self.config.timeouts.stop).await;
        }
    }

    /// Re-add every hosted service on the current control connection and wait (bounded)
    /// for their descriptors to be uploaded. Failures are logged: the services stay
    /// registered for the next restart.
    async fn rehost(&self, state: &mut State) {
        let Ok(control) = self.control() else { return };
        let mut waits = Vec::new();
        for (onion, service) in &state.services {
            let events = control.events();
            match add_onion(&control, onion, service).await {
                Ok(()) => waits.push((onion.clone(), events)),
                Err(e) => {
                    tracing::warn!(onion = %onion.redacted(), error = %e, "tor: could not re-add onion service");
                }
            }
        }
        let publish = self.config.timeouts.publish;
        let results = futures_join_all(waits.into_iter().map(|(onion, mut events)| async move {
            let r = wait_uploaded(&mut events, &onion, publish).await;
            (onion, r)
        }))
        .await;
        for (onion, r) in results {
            if let Err(e) = r {
                tracing::warn!(onion = %onion.redacted(), error = %e, "tor: re-added onion service not yet published");
            }
        }
    }

    /// Stop hosting `port` of `onion` if listener `id` still owns it.
    async fn unhost(&self, onion: &Onion, port: u16, id: u64) {
        let mut state = self.state.lock().await;
        if state.closed || !remove_mapping(&mut state, onion, port, id) {
            return;
        }
        let Ok(control) = self.control() else { return };
        if let Err(e) = del_onion(&control, onion).await {
            tracing::warn!(onion = %onion.redacted(), error = %e, "tor: DEL_ONION failed");
        }
        if let Some(service) = state.services.get(onion) {
            // Other virtual ports of the same onion stay hosted.
            if let Err(e) = add_onion(&control, onion, service).await {
                tracing::warn!(onion = %onion.redacted(), error = %e, "tor: could not re-add remaining ports");
            }
        }
        tracing::info!(onion = %onion.redacted(), port, "tor: stopped hosting");
    }
}

/// Run the futures concurrently and collect their outputs (a tiny `join_all`).
async fn futures_join_all<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}

/// Remove the mapping of `port` on `onion` if listener `id` owns it (and the service if it
/// has no ports left). Returns whether it did.
fn remove_mapping(state: &mut State, onion: &Onion, port: u16, id: u64) -> bool {
    let Some(service) = state.services.get_mut(onion) else {
        return false;
    };
    if service.ports.get(&port).map(|m| m.id) != Some(id) {
        return false;
    }
    service.ports.remove(&port);
    if service.ports.is_empty() {
        state.services.remove(onion);
    }
    true
}

/// Whether an `ADD_ONION` refusal may be a tor that does not know the proof-of-work
/// keywords: `512` (tor's argument parser: "Unrecognized keyword argument"), `513` (older
/// tors: "Invalid argument"), `552` (unrecognised entity). Retrying without them is cheap: if
/// the refusal had another cause, the retry reports it.
fn pow_keywords_refused(code: u16) -> bool {
    matches!(code, 512 | 513 | 552)
}

/// `ADD_ONION` with the service's key, all its ports and its proof-of-work defence; a tor
/// that refuses the defence gets the command again without it. Checks the reported onion.
async fn add_onion(control: &Control, onion: &Onion, service: &Service) -> Result<(), Error> {
    let Some(pow) = service.pow else {
        return add_onion_once(control, onion, service, None).await;
    };
    match add_onion_once(control, onion, service, Some(pow)).await {
        Err(Error::ControlRejected { code, message, .. }) if pow_keywords_refused(code) => {
            tracing::warn!(
                onion = %onion.redacted(),
                code,
                reply = %message,
                "tor: ADD_ONION with the proof-of-work defence refused (it needs tor 0.4.9.5 \
                 or later); hosting the onion service WITHOUT it"
            );
            add_onion_once(control, onion, service, None).await
        }
        r => {
            if r.is_ok() {
                tracing::info!(
                    onion = %onion.redacted(),
                    queue_rate = pow.queue_rate,
                    queue_burst = pow.queue_burst,
                    "tor: onion-service proof-of-work defence on"
                );
            }
            r
        }
    }
}

/// The `ADD_ONION` command line (secret: it holds the key).
fn add_onion_line(
    key: &[u8; 64],
    ports: impl IntoIterator<Item = (u16, u16)>,
    pow: Option<PowDefense>,
) -> Zeroizing<String> {
    let mut line = Zeroizing::new(String::with_capacity(256));
    line.push_str("ADD_ONION ED25519-V3:");
    base64::engine::general_purpose::STANDARD.encode_string(key.as_slice(), &mut line);
    line.push_str(" Flags=DiscardPK");
    if let Some(pow) = pow {
        line.push_str(&format!(
            " PoWDefensesEnabled=1 PoWQueueRate={} PoWQueueBurst={}",
            pow.queue_rate, pow.queue_burst
        ));
    }
    for (virtual_port, local) in ports {
        line.push_str(&format!(" Port={virtual_port},127.0.0.1:{local}"));
    }
    line
}

async fn add_onion_once(
    control: &Control,
    onion: &Onion,
    service: &Service,
    pow: Option<PowDefense>,
) -> Result<(), Error> {
    let ports = service.ports.iter().map(|(v, m)| (*v, m.local));
    let line = add_onion_line(&service.key, ports, pow);
    let reply = control.command("ADD_ONION", line).await?;
    let reported = service_id(&reply).ok_or(Error::ControlProtocol {
        problem: ProtocolProblem::MissingField("ServiceID"),
    })?;
    if reported != onion.as_str() {
        let reported = reported.to_owned();
        if let Ok(other) = Onion::parse(&reported) {
            let _ = del_onion(control, &other).await;
        }
        return Err(Error::OnionMismatch {
            expected: onion.clone(),
            reported,
        });
    }
    Ok(())
}

/// `DEL_ONION`; an onion Tor does not know (`552`) counts as removed.
async fn del_onion(control: &Control, onion: &Onion) -> Result<(), Error> {
    match control
        .command("DEL_ONION", format!("DEL_ONION {}", onion.as_str()))
        .await
    {
        Err(Error::ControlRejected { code: 552, .. }) | Ok(_) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Wait until the descriptor of `onion` is on at least one HSDir (`HS_DESC UPLOADED`) and
/// every upload Tor has started so far (`HS_DESC UPLOAD`) has finished (`UPLOADED` or
/// `FAILED`). Returning at the first `UPLOADED` is not enough: a client may then ask an
/// HSDir that does not have it yet, get "descriptor not found", and (Tor asks each HSDir at
/// most once per 15 minutes for a descriptor) have nobody left to ask on its retry.
async fn wait_uploaded(
    events: &mut EventStream,
    onion: &Onion,
    limit: Duration,
) -> Result<(), Error> {
    let wait = async {
        let (mut started, mut uploaded, mut failed) = (0usize, 0usize, 0usize);
        while let Some(event) = events.next().await {
            let Some((action, address)) = hs_desc(event.first_text()) else {
                continue;
            };
            if address != onion.as_str() {
                continue;
            }
            match action.as_str() {
                "UPLOAD" => started += 1,
                "UPLOADED" => uploaded += 1,
                "FAILED" => {
                    failed += 1;
                    tracing::debug!(onion = %onion.redacted(), "tor: a descriptor upload failed");
                }
                _ => continue,
            }
            if uploaded > 0 && uploaded + failed >= started {
                tracing::debug!(onion = %onion.redacted(), uploaded, failed, "tor: descriptor uploads done");
                return Ok(());
            }
        }
        Err(Error::io(
            Operation::Listen,
            io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "tor control connection closed while publishing",
            ),
        ))
    };
    tokio::time::timeout(limit, wait)
        .await
        .map_err(|_| Error::Timeout {
            operation: Operation::Listen,
        })?
}

/// Turn events into status updates until the control connection ends.
async fn pump(inner: Weak<Inner>, mut events: EventStream, control: Weak<Control>) {
    while let Some(event) = events.next().await {
        if let Some(status) = bootstrap_phase(event.first_text()) {
            match inner.upgrade() {
                Some(inner) => inner.set_status(status),
                None => return,
            }
        }
    }
    let Some(inner) = inner.upgrade() else { return };
    if inner.shutdown.is_cancelled() {
        return;
    }
    // Only if the connection that ended is still the current one.
    let current = lock(&inner.current)
        .as_ref()
        .is_some_and(|c| Weak::ptr_eq(&Arc::downgrade(&c.control), &control));
    if current {
        tracing::warn!("tor: control connection lost; restart the network to recover");
        inner.set_status(AcnStatus::new(0, "tor control connection lost"));
    }
}

#[async_trait]
impl Acn for TorAcn {
    async fn network_version(&self) -> Option<String> {
        TorAcn::version(self).await.ok()
    }

    async fn listen(
        &self,
        identity: &Identity,
        port: u16,
    ) -> Result<Box<dyn OnionListener>, Error> {
        Ok(Box::new(self.listen_tor(identity, port).await?))
    }

    async fn listen_with(
        &self,
        identity: &Identity,
        port: u16,
        options: &ListenOptions,
    ) -> Result<Box<dyn OnionListener>, Error> {
        Ok(Box::new(
            self.listen_tor_with(identity, port, options).await?,
        ))
    }

    async fn connect(
        &self,
        onion: &Onion,
        port: u16,
        isolation: &IsolationKey,
    ) -> Result<BoxStream, Error> {
        let inner = &self.inner;
        let policy = &inner.config.dial;
        let host = format!("{}.onion", onion.as_str());
        let (username, password) = socks::credentials(isolation);
        let mut backoff = policy.initial_backoff;
        let attempts = policy.max_attempts.max(1);
        let mut attempt = 1;
        let mut not_found = false;
        loop {
            if inner.shutdown.is_cancelled() {
                return Err(Error::Closed);
            }
            let socks_addr = lock(&inner.current)
                .as_ref()
                .map(|c| c.socks)
                .ok_or_else(|| inner.not_ready())?;
            let permit = tokio::select! {
                () = inner.shutdown.cancelled() => return Err(Error::Closed),
                p = Arc::clone(&inner.dial_limit).acquire_owned() => p.map_err(|_| Error::Closed)?,
            };
            tracing::debug!(onion = %onion.redacted(), port, attempt, "tor: dialing");
            let dial = async {
                let mut stream = TcpStream::connect(socks_addr)
                    .await
                    .map_err(SocksFailure::Io)?;
                socks::connect(&mut stream, &host, port, &username, password).await?;
                Ok::<_, SocksFailure>(stream)
            };
            let result = tokio::select! {
                () = inner.shutdown.cancelled() => return Err(Error::Closed),
                r = tokio::time::timeout(policy.attempt_timeout, dial) => r,
            };
            drop(permit);
            let failure = match result {
                Err(_) => {
                    return Err(Error::Timeout {
                        operation: Operation::Connect,
                    })
                }
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    tracing::debug!(onion = %onion.redacted(), port, "tor: connected");
                    return Ok(Box::new(stream));
                }
                Ok(Err(failure)) => failure,
            };
            let code = match failure {
                SocksFailure::Reply(code) => Some(code),
                _ => None,
            };
            if code == Some(0xF0) {
                not_found = true;
            }
            // After "descriptor not found", Tor answers a retry with a general failure when
            // it has asked every responsible HSDir recently: the onion is still not found.
            let error = if not_found && code == Some(0x01) {
                Error::OnionNotFound {
                    onion: onion.clone(),
                }
            } else {
                socks::failure_error(failure, onion, port)
            };
            let retry = code.is_some_and(socks::retry_helps) && !(not_found && code == Some(0x01));
            if !retry || attempt >= attempts {
                tracing::debug!(onion = %onion.redacted(), port, attempt, error = %error, "tor: dial failed");
                return Err(error);
            }
            tracing::debug!(
                onion = %onion.redacted(), port, attempt, error = %error, ?backoff,
                "tor: dial failed, retrying"
            );
            tokio::select! {
                () = inner.shutdown.cancelled() => return Err(Error::Closed),
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(policy.max_backoff);
            attempt += 1;
        }
    }

    fn status(&self) -> watch::Receiver<AcnStatus> {
        match &*lock(&self.inner.status) {
            Some(tx) => tx.subscribe(),
            None => watch::channel(AcnStatus::new(0, "closed")).1,
        }
    }

    /// Launch mode: restart our tor and re-add every hosted onion service (waiting, bounded,
    /// for their descriptors). Attach mode: `SIGNAL NEWNYM` (new circuits for new streams),
    /// or, if the control connection was lost, reconnect and re-add the services.
    async fn restart(&self) -> Result<(), Error> {
        let inner = &self.inner;
        if inner.shutdown.is_cancelled() {
            return Err(Error::Closed);
        }
        let mut state = inner.state.lock().await;
        if state.closed {
            return Err(Error::Closed);
        }
        let alive = lock(&inner.current)
            .as_ref()
            .map(|c| Arc::clone(&c.control))
            .filter(|c| !c.is_closed());
        match (&inner.config.mode, alive) {
            (TorMode::Attach { .. }, Some(control)) => {
                tracing::info!("tor: restart: new circuits (SIGNAL NEWNYM)");
                control
                    .command("SIGNAL", "SIGNAL NEWNYM".to_owned())
                    .await?;
                // Its SOCKS port may have moved (a configuration reload).
                let value = control.getinfo("net/listeners/socks").await?;
                if let Some(socks) = socks_listener(&value) {
                    if let Some(current) = lock(&inner.current).as_mut() {
                        current.socks = socks;
                    }
                }
                Ok(())
            }
            _ => {
                tracing::info!("tor: restarting");
                inner.set_status(AcnStatus::new(0, "restarting tor"));
                inner.teardown(&mut state).await;
                inner.establish(&mut state).await?;
                inner.rehost(&mut state).await;
                Ok(())
            }
        }
    }

    async fn close(&self) {
        let inner = &self.inner;
        inner.shutdown.cancel();
        let mut state = inner.state.lock().await;
        if !state.closed {
            state.closed = true;
            let control = lock(&inner.current)
                .as_ref()
                .map(|c| Arc::clone(&c.control));
            if let Some(control) = control.filter(|c| !c.is_closed()) {
                for onion in state.services.keys() {
                    if let Err(e) = del_onion(&control, onion).await {
                        tracing::debug!(onion = %onion.redacted(), error = %e, "tor: DEL_ONION on close failed");
                    }
                }
            }
            for service in state.services.values() {
                for mapping in service.ports.values() {
                    mapping.stop.cancel();
                }
            }
            state.services.clear();
            inner.teardown(&mut state).await;
            tracing::info!("tor network closed");
        }
        lock(&inner.status).take();
    }

    fn is_anonymous(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "tor"
    }
}

impl fmt::Debug for TorAcn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match &self.inner.config.mode {
            TorMode::Launch { .. } => "launch",
            TorMode::Attach { .. } => "attach",
        };
        f.debug_struct("TorAcn")
            .field("mode", &mode)
            .field("socks", &self.socks_addr())
            .field("pid", &self.pid())
            .field("closed", &self.inner.shutdown.is_cancelled())
            .finish()
    }
}

/// An onion service hosted through Tor: Tor forwards its virtual port to a local TCP
/// listener on `127.0.0.1`. Dropping it sends `DEL_ONION` (other virtual ports of the same
/// onion stay hosted).
pub struct TorListener {
    onion: Onion,
    port: u16,
    tcp: TcpListener,
    stop: CancellationToken,
    id: u64,
    inner: Weak<Inner>,
}

impl TorListener {
    /// The local address Tor forwards inbound streams to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

impl fmt::Debug for TorListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TorListener")
            .field("onion", &self.onion)
            .field("port", &self.port)
            .field("local", &self.tcp.local_addr().ok())
            .finish()
    }
}

#[async_trait]
impl OnionListener for TorListener {
    fn onion(&self) -> &Onion {
        &self.onion
    }

    fn virtual_port(&self) -> u16 {
        self.port
    }

    async fn accept(&mut self) -> Result<BoxStream, Error> {
        loop {
            let accepted = tokio::select! {
                biased;
                () = self.stop.cancelled() => return Err(Error::Closed),
                r = self.tcp.accept() => r,
            };
            match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(Box::new(stream));
                }
                Err(e) => {
                    tracing::warn!(onion = %self.onion.redacted(), error = %e, "tor: accept failed, retrying");
                    tokio::select! {
                        () = self.stop.cancelled() => return Err(Error::Closed),
                        () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => {}
                    }
                }
            }
        }
    }
}

impl Drop for TorListener {
    fn drop(&mut self) {
        self.stop.cancel();
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(onion = %self.onion.redacted(), "tor: listener dropped outside a runtime; service stays until close");
            return;
        };
        let (onion, port, id) = (self.onion.clone(), self.port, self.id);
        runtime.spawn(async move { inner.unhost(&onion, port, id).await });
    }
}
