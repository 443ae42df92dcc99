//! The process-wide state behind the C functions: one tokio runtime, the app bus, and the
//! running app (a [`cwtch::Cwtch`] on one network) once `c_StartCwtch` has run.
//!
//! Everything here is safe Rust; `crate::ffi` converts C arguments and calls these.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use cwtch::connectivity::{AcnArgs, NetworkKind};
use cwtch::{Acn, Cwtch, Password, ProfileHandle};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::bus::{Bus, BUS_CAPACITY};
use crate::events;
use crate::json::{to_json, GlobalSettings, GoEvent};

/// `CWTCH_NETWORK`: `loopback` selects the loopback network (no anonymity, tests);
/// `tor` or unset, Tor.
pub const NETWORK_ENV: &str = "CWTCH_NETWORK";
/// `IP:PORT` of a running tor's control port to attach to (cookie authentication), whatever
/// the settings say: for bots beside a system tor, whose programs start the library with an
/// app directory they create afresh (no settings file yet), and for tests on a private Tor
/// network. Ours; Go has no such variable.
pub const TOR_CONTROL_ENV: &str = "CWTCH_TOR_CONTROL";
/// `CWTCH_LOG`: a `tracing` filter for the library's log on stderr (default `warn`).
pub const LOG_ENV: &str = "CWTCH_LOG";
/// `CWTCH_UNSAFE_LOGGING=1`: logs show onion addresses, paths and error texts (off by
/// default: logs get shared). The `cwtch` command's `--unsafe-logging`. Ours.
pub const UNSAFE_LOGGING_ENV: &str = "CWTCH_UNSAFE_LOGGING";
/// Where the settings live, under the app directory (ours: Go keeps an encrypted
/// `ui.globals`).
pub(crate) const SETTINGS_FILE: &str = "libcwtch-settings.json";

/// A failed call, as a message for the client (already redacted).
pub(crate) type CallResult<T> = Result<T, String>;

pub(crate) const NOT_STARTED: &str = "Cwtch is not started: call c_StartCwtch first";

/// The app once started.
pub(crate) struct Running {
    pub(crate) app: Cwtch,
    acn: Arc<dyn Acn>,
    dir: PathBuf,
    pub(crate) settings: Mutex<GlobalSettings>,
    /// Profiles created by `c_CreateProfile` whose `NewPeer` has not been sent yet
    /// (`Created: "true"`).
    pub(crate) created: Mutex<HashSet<String>>,
    forwarder: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Servers hosted by this app.
    pub(crate) servers: crate::servers::Servers,
}

impl Running {
    pub(crate) fn settings(&self) -> GlobalSettings {
        self.settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The app directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The network.
    pub(crate) fn acn(&self) -> Arc<dyn Acn> {
        self.acn.clone()
    }

    /// The loaded profile with this onion.
    pub(crate) fn profile(&self, onion: &str) -> CallResult<ProfileHandle> {
        self.app
            .loaded_profiles()
            .into_iter()
            .find(|p| p.onion().as_str() == onion)
            .ok_or_else(|| "no loaded profile with that onion".to_owned())
    }
}

enum Phase {
    Stopped,
    /// `c_StartCwtch` is at work in the background; `stop`: `c_ShutdownCwtch` was called
    /// meanwhile (the start then tears down what it brought up, instead of running).
    Starting {
        stop: bool,
    },
    Running(Arc<Running>),
    /// `c_ShutdownCwtch` is tearing down: a `c_StartCwtch` waits until it is done (it would
    /// open the same directory and tor while the old ones close).
    Stopping,
}

/// The process-wide state.
pub(crate) struct Global {
    pub(crate) runtime: Runtime,
    pub(crate) bus: Arc<Bus>,
    phase: Mutex<Phase>,
    /// Signalled whenever `phase` becomes `Stopped` or `Running` (what `Starting` and
    /// `Stopping` are waited out with).
    phase_settled: Condvar,
    /// Events produced by calls, pushed onto the bus in order by one task (so that a call
    /// never waits for room on the bus: the caller may be the bus's only reader).
    call_events: mpsc::UnboundedSender<GoEvent>,
}

static GLOBAL: OnceLock<Option<Global>> = OnceLock::new();

/// Stop what a start brought up: hosted servers, profiles, the event forwarder, the network.
async fn teardown(running: &Running) {
    running.servers.destroy_all().await;
    running.app.shutdown().await;
    if let Some(f) = running
        .forwarder
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        f.abort();
    }
    running.acn.close().await;
}

/// The global state, created on first use. `None` only if the runtime cannot be created
/// (out of threads or memory), which every call reports as an error.
pub(crate) fn global() -> Option<&'static Global> {
    GLOBAL
        .get_or_init(|| {
            // A panic's message may quote an address or a message: print where it happened,
            // not what it says. The hook is this library's own (a cdylib carries its own
            // `std`): the host's panics, if it has any, are its business.
            cwtch::install_redacting_panic_hook();
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("libcwtch")
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    error!("libCwtch: cannot create the runtime: {e}");
                    return None;
                }
            };
            let bus = Arc::new(Bus::new(BUS_CAPACITY));
            let (tx, mut rx) = mpsc::unbounded_channel::<GoEvent>();
            let b = bus.clone();
            runtime.spawn(async move {
                while let Some(e) = rx.recv().await {
                    b.push(e).await;
                }
            });
            Some(Global {
                runtime,
                bus,
                phase: Mutex::new(Phase::Stopped),
                phase_settled: Condvar::new(),
                call_events: tx,
            })
        })
        .as_ref()
}

impl Global {
    fn phase(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue an event produced by a call (never blocks).
    pub(crate) fn emit(&self, e: GoEvent) {
        // The receiving task lives as long as the runtime, i.e. the process.
        let _ = self.call_events.send(e);
    }

    /// The running app, or the not-started error.
    pub(crate) fn running(&self) -> CallResult<Arc<Running>> {
        match &*self.phase() {
            Phase::Running(r) => Ok(r.clone()),
            _ => Err(NOT_STARTED.to_owned()),
        }
    }

    pub(crate) fn started(&self) -> bool {
        matches!(&*self.phase(), Phase::Running(_))
    }

    /// `c_StartCwtch`: start in the background (events `ACNStatus`, `UpdateGlobalSettings`,
    /// `CwtchStarted`, or `CwtchStartError`). Returns 0 when starting, 1 if already started or
    /// starting (UNCONFIRMED Go values).
    pub(crate) fn start(&'static self, app_dir: String, tor_path: String) -> i32 {
        {
            let mut phase = self.phase();
            // A shutdown still at work is waited for.
            while matches!(&*phase, Phase::Stopping) {
                phase = self
                    .phase_settled
                    .wait(phase)
                    .unwrap_or_else(|e| e.into_inner());
            }
            if !matches!(&*phase, Phase::Stopped) {
                warn!("c_StartCwtch: already started");
                return 1;
            }
            *phase = Phase::Starting { stop: false };
        }
        init_logging();
        self.runtime.spawn(async move {
            match start_app(self, PathBuf::from(app_dir), &tor_path).await {
                Ok(running) => {
                    let settings = running.settings();
                    let acn = running.acn();
                    let stop = {
                        let mut phase = self.phase();
                        let stop = matches!(&*phase, Phase::Starting { stop: true });
                        if stop {
                            *phase = Phase::Stopping;
                        }
                        stop
                    };
                    if stop {
                        // Shut down while it started: bring it down again, and let the
                        // waiting c_ShutdownCwtch return.
                        info!("libCwtch started after c_ShutdownCwtch: stopping it");
                        teardown(&running).await;
                        self.settle(Phase::Stopped);
                        return;
                    }
                    self.settle(Phase::Running(running));
                    self.bus
                        .push(events::update_global_settings(&settings))
                        .await;
                    self.bus
                        .push(GoEvent::new::<&str, &str>("CwtchStarted", []))
                        .await;
                    info!("libCwtch started");
                    // Go's `ACNVersion {Data}`: tor's version, for the client to show.
                    if let Some(version) = acn.network_version().await {
                        self.bus
                            .push(GoEvent::new("ACNVersion", [("Data", version)]))
                            .await;
                    }
                }
                Err(e) => {
                    error!(error = %cwtch::Sensitive(&e), "c_StartCwtch failed");
                    self.settle(Phase::Stopped);
                    self.bus
                        .push(GoEvent::new("CwtchStartError", [("Error", e.as_str())]))
                        .await;
                }
            }
        });
        0
    }

    /// `c_ShutdownCwtch`: stop every profile and the network; a later `c_StartCwtch` starts
    /// afresh. Synchronous: called while `c_StartCwtch` is still at work, it waits for that
    /// start and brings it down.
    pub(crate) fn shutdown(&self) {
        let running = {
            let mut phase = self.phase();
            let mut waited_for_start = false;
            loop {
                match std::mem::replace(&mut *phase, Phase::Stopping) {
                    Phase::Running(r) => break r,
                    Phase::Starting { .. } => {
                        *phase = Phase::Starting { stop: true };
                        waited_for_start = true;
                        info!("c_ShutdownCwtch while starting: stopping once started");
                    }
                    Phase::Stopped => {
                        *phase = Phase::Stopped;
                        if !waited_for_start {
                            warn!("c_ShutdownCwtch: not running");
                        }
                        return;
                    }
                    // Another thread's shutdown: wait for it like the start.
                    Phase::Stopping => {}
                }
                phase = self
                    .phase_settled
                    .wait(phase)
                    .unwrap_or_else(|e| e.into_inner());
            }
        };
        self.runtime.block_on(teardown(&running));
        self.settle(Phase::Stopped);
        info!("libCwtch shut down");
    }

    /// Set the phase to a settled one (`Stopped` or `Running`) and wake those waiting.
    fn settle(&self, to: Phase) {
        *self.phase() = to;
        self.phase_settled.notify_all();
    }

    /// Run a call's future to completion on the runtime.
    pub(crate) fn call<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(f)
    }
}

/// Log to stderr through `tracing` (filter `CWTCH_LOG`, default `warn`), unless the host
/// already installed a subscriber; redacted unless `CWTCH_UNSAFE_LOGGING=1`.
fn init_logging() {
    if std::env::var(UNSAFE_LOGGING_ENV).is_ok_and(|v| v == "1") {
        cwtch::set_unsafe_logging(true);
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env(LOG_ENV)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Choose and build the network: `CWTCH_NETWORK=loopback` (with `CWTCH_LOOPBACK_DIR`); else a
/// running tor named by `CWTCH_TOR_CONTROL`; else, as Go's settings say, a running tor attached through its control port (`UseExternalTor`,
/// `CustomControlPort`; cookie authentication, the cookie file named by tor); else Tor
/// launched from `tor_path` (or `tor` on PATH when empty) with its files in `<app_dir>/tor`.
/// The choice is made by `connectivity::AcnArgs`, shared with the `cwtch` command.
async fn build_acn(
    app_dir: &Path,
    tor_path: &str,
    settings: &GlobalSettings,
) -> CallResult<Arc<dyn Acn>> {
    let mut args = AcnArgs::default();
    match std::env::var(NETWORK_ENV).ok().as_deref() {
        Some("loopback") => {
            args.network = NetworkKind::Loopback;
            warn!(
                "{NETWORK_ENV}=loopback: the LOOPBACK network has NO ANONYMITY. For tests and \
                 local development only."
            );
        }
        None | Some("") | Some("tor") => match (
            std::env::var(TOR_CONTROL_ENV)
                .ok()
                .filter(|c| !c.is_empty()),
            settings.external_tor_control(),
        ) {
            (Some(control), _) => {
                info!("attaching to a running tor ({TOR_CONTROL_ENV})");
                args.tor_control = Some(control);
            }
            (None, Some(control)) => {
                info!("attaching to a running tor (settings: UseExternalTor)");
                args.tor_control = Some(control);
            }
            (None, None) => {
                if !tor_path.is_empty() {
                    args.tor_binary = Some(PathBuf::from(tor_path));
                }
            }
        },
        Some(other) => return Err(format!("{NETWORK_ENV}={other}: expected tor or loopback")),
    }
    args.build(app_dir)
        .await
        .map_err(|e| format!("network: {e}"))
}

async fn start_app(g: &'static Global, dir: PathBuf, tor_path: &str) -> CallResult<Arc<Running>> {
    if dir.as_os_str().is_empty() {
        return Err("empty app directory".into());
    }
    private_dir(&dir).await?;
    let settings = load_settings(&dir).await;
    let acn = build_acn(&dir, tor_path, &settings).await?;
    let app = match Cwtch::open(&dir, acn.clone()).await {
        Ok(app) => app,
        Err(e) => {
            acn.close().await;
            return Err(format!("cannot open the Cwtch home: {e}"));
        }
    };
    // Subscribe before anything can happen, so that no event is missed.
    let rx = app.events();
    let running = Arc::new(Running {
        app,
        acn,
        dir,
        settings: Mutex::new(settings),
        created: Mutex::new(HashSet::new()),
        forwarder: Mutex::new(None),
        servers: Default::default(),
    });
    let task = g
        .runtime
        .spawn(events::forward(rx, Arc::downgrade(&running), g.bus.clone()));
    *running.forwarder.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
    Ok(running)
}

/// Create the app directory (0700), or tighten an existing one to 0700: the Cwtch home
/// refuses a directory other users can read, and Go's clients (e.g. libcwtch's echobot)
/// create it with the default 0755. Go itself does not check (see docs/COMPATIBILITY.md).
async fn private_dir(dir: &Path) -> CallResult<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let d = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&d)
            .map_err(|e| format!("cannot create the app directory: {e}"))?;
        let mode = std::fs::metadata(&d)
            .map_err(|e| format!("app directory: {e}"))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            warn!(
                "the app directory was accessible by other users (mode {:o}); now 0700",
                mode & 0o777
            );
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("cannot make the app directory private: {e}"))?;
        }
        Ok(())
    })
    .await
    .map_err(|e| format!("app directory: {e}"))?
}

async fn load_settings(dir: &Path) -> GlobalSettings {
    match tokio::fs::read(dir.join(SETTINGS_FILE)).await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            warn!(error = %cwtch::Sensitive(&e), "settings file unreadable; using defaults");
            GlobalSettings::default()
        }),
        Err(_) => GlobalSettings::default(),
    }
}

impl Running {
    /// Save settings and apply what this library acts on to every loaded profile (see
    /// [`apply_settings`](Self::apply_settings)). Returns whether they changed (nothing is
    /// done if not).
    pub(crate) async fn update_settings(&self, settings: GlobalSettings) -> CallResult<bool> {
        if settings == self.settings() {
            return Ok(false);
        }
        let json = to_json(&settings);
        tokio::fs::write(self.dir.join(SETTINGS_FILE), json)
            .await
            .map_err(|e| format!("cannot save settings: {e}"))?;
        *self.settings.lock().unwrap_or_else(|e| e.into_inner()) = settings;
        for p in self.app.loaded_profiles() {
            self.apply_settings(&p).await;
        }
        Ok(true)
    }

    /// Apply what this library acts on in the settings to a profile: `BlockUnknownConnections`,
    /// and the image previews experiment (`ExperimentsEnabled` and `filesharing-images`),
    /// which turns the profile's image previews and profile pictures on or off.
    pub(crate) async fn apply_settings(&self, p: &ProfileHandle) {
        let settings = self.settings();
        let block = settings.BlockUnknownConnections;
        if p.block_unknown() != block {
            if let Err(e) = p.set_block_unknown(block).await {
                warn!("cannot apply BlockUnknownConnections to a profile: {e}");
            }
        }
        let previews = settings.image_previews();
        if p.image_previews() != previews {
            if let Err(e) = p.set_image_previews(previews).await {
                warn!("cannot apply the image previews experiment to a profile: {e}");
            }
        }
    }
}

/// Go's password string: the default password is Go's "no password".
pub(crate) fn password(s: &str) -> Password {
    if s == cwtch_default_password() {
        Password::Default
    } else {
        Password::user(s)
    }
}

pub(crate) fn cwtch_default_password() -> &'static str {
    // Go's `DefactoPasswordForUnencryptedProfiles`.
    "be gay do crime"
}
