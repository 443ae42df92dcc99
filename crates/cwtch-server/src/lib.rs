#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod board;
pub mod client;
pub mod config;
pub mod encrypted;
mod error;
pub mod metrics;
pub mod store;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use connectivity::Acn;
use tapir::apps::pow::PowApp;
use tapir::apps::token::TokenServerApp;
use tapir::{AppContext, Application, ApplicationChain, Step, SUCCESSFUL_POW_CAPABILITY};
use tapir_service::{Service, ServiceConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use board::SYNCED_CAPABILITY;
pub use config::{Limits, ServerConfig, CONFIG_FILE};
pub use error::{ConfigError, ServerError, StoreError};
pub use metrics::{Metrics, Stats};

use board::Board;
use metrics::Gauge;
use store::{GroupCommit, MessageStore};

/// How often a running server rewrites `stats.json`.
pub const STATS_INTERVAL: Duration = Duration::from_secs(5);
/// How often a running server logs its metrics.
pub const LOG_INTERVAL: Duration = Duration::from_secs(60);
/// The lock file that stops two servers sharing a data directory.
pub const LOCK_FILE: &str = ".lock";

/// Check a data directory is a directory only we can access.
pub fn check_data_dir(dir: &Path) -> Result<(), ConfigError> {
    let meta = std::fs::metadata(dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ConfigError::Missing(dir.join(CONFIG_FILE))
        } else {
            ConfigError::Io {
                path: dir.to_path_buf(),
                source: e,
            }
        }
    })?;
    if !meta.is_dir() {
        return Err(ConfigError::NotADirectory(dir.to_path_buf()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(ConfigError::InsecureDirectory {
                path: dir.to_path_buf(),
                mode,
            });
        }
    }
    Ok(())
}

/// Create a data directory (0700) if it does not exist.
pub fn create_data_dir(dir: &Path) -> Result<(), ConfigError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(|e| ConfigError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    check_data_dir(dir)
}

/// The token service's token app, counting what it signs.
struct MeteredTokenApp {
    inner: TokenServerApp,
    metrics: Arc<Metrics>,
}

impl Application for MeteredTokenApp {
    fn name(&self) -> &'static str {
        "token-server"
    }
    fn start(&mut self, cx: &mut AppContext<'_>) -> Result<Step, tapir::Error> {
        self.inner.start(cx)
    }
    fn receive(&mut self, cx: &mut AppContext<'_>, payload: &[u8]) -> Result<Step, tapir::Error> {
        let step = self.inner.receive(cx, payload)?;
        if let Ok(b) = privacypass::blinded_batch_from_json(payload) {
            self.metrics
                .tokens_issued
                .fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(step)
    }
}

/// A running server. Stop it with [`Server::shutdown`].
pub struct Server {
    dir: PathBuf,
    config: Arc<ServerConfig>,
    store: Arc<MessageStore>,
    metrics: Arc<Metrics>,
    board: Service,
    tokens: Service,
    stop: CancellationToken,
    tasks: TaskTracker,
    _lock: std::fs::File,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("onion", &self.config.onion())
            .finish_non_exhaustive()
    }
}

fn lock(dir: &Path) -> Result<std::fs::File, ServerError> {
    let path = dir.join(LOCK_FILE);
    let f = std::os::unix::fs::OpenOptionsExt::mode(
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true),
        0o600,
    )
    .open(&path)
    .map_err(|e| ConfigError::Io {
        path: path.clone(),
        source: e,
    })?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(ServerError::Locked(path)),
        Err(std::fs::TryLockError::Error(e)) => Err(ConfigError::Io { path, source: e }.into()),
    }
}

impl Server {
    /// Open the stores in `dir`, wait for the network, and start both onion services.
    pub async fn start(
        config: ServerConfig,
        dir: &Path,
        acn: Arc<dyn Acn>,
    ) -> Result<Server, ServerError> {
        check_data_dir(dir)?;
        let lock = lock(dir)?;
        let store = {
            let d = dir.to_path_buf();
            let mbs = config.max_storage_mbs;
            tokio::task::spawn_blocking(move || MessageStore::open(&d, mbs))
                .await
                .map_err(|_| ConfigError::NotADirectory(dir.to_path_buf()))??
        };
        let config = Arc::new(config);
        let store = Arc::new(store);
        let metrics = Arc::new(Metrics::default());
        if !acn.is_anonymous() {
            warn!(
                network = acn.name(),
                "this server is NOT reachable anonymously: tests and development only"
            );
        }
        wait_for_network(&*acn).await?;

        // tapir-service owns the connection limits: admission (the oldest handshake makes
        // room when a service is full), deadlines, and what we ask of the network.
        let limits = config.limits.clone();
        // How long a token connection may stay once its tokens are issued.
        let linger = limits.handshake_timeout();
        let board = Service::new(
            Arc::new(config.identity.clone()),
            acn.clone(),
            ServiceConfig {
                max_inbound: limits.max_board_connections,
                handshake_reserve: limits.board_handshake_reserve,
                handshake_timeout: limits.handshake_timeout(),
                idle_timeout: limits.idle_timeout(),
                listen_options: limits.listen_options(),
                ..ServiceConfig::default()
            },
        );
        let tokens = Service::new(
            Arc::new(config.token_identity.clone()),
            acn.clone(),
            ServiceConfig {
                max_inbound: limits.max_token_connections,
                handshake_reserve: limits.token_handshake_reserve,
                handshake_timeout: limits.handshake_timeout(),
                // Issuance is over when the chain is: the client only has to close.
                idle_timeout: Some(limits.handshake_timeout()),
                listen_options: limits.listen_options(),
                ..ServiceConfig::default()
            },
        );
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();

        let ctx = Arc::new(Board {
            store: store.clone(),
            commits: GroupCommit::start(store.clone(), metrics.clone()),
            token_server: config.token_server.clone(),
            onion: config.onion(),
            metrics: metrics.clone(),
            replays: Arc::new(tokio::sync::Semaphore::new(
                limits.max_concurrent_replays.max(1),
            )),
            limits,
            service: board.clone(),
        });
        let mut board_listener = board.listen(ApplicationChain::authenticated).await?;
        let token_server = ctx.token_server.clone();
        let m = metrics.clone();
        let mut token_listener = tokens
            .listen(move || {
                ApplicationChain::new()
                    .then(PowApp::new(), SUCCESSFUL_POW_CAPABILITY)
                    .then_unchecked(MeteredTokenApp {
                        inner: TokenServerApp::new(token_server.clone()),
                        metrics: m.clone(),
                    })
            })
            .await?;

        let (t, s) = (tasks.clone(), stop.clone());
        tasks.spawn(async move {
            loop {
                let conn = tokio::select! {
                    _ = s.cancelled() => break,
                    c = board_listener.accept() => c,
                };
                let Some(conn) = conn else { break };
                t.spawn(ctx.clone().serve(conn));
            }
        });
        let (t, s, m) = (tasks.clone(), stop.clone(), metrics.clone());
        tasks.spawn(async move {
            loop {
                let conn = tokio::select! {
                    _ = s.cancelled() => break,
                    c = token_listener.accept() => c,
                };
                let Some(mut conn) = conn else { break };
                let m = m.clone();
                // Issuance is complete when the chain is: the client has its tokens and
                // closes. One that does not (it keeps sending, to hold one of the few token
                // slots) is closed after the handshake timeout, whatever it sends.
                t.spawn(async move {
                    let _g = Gauge::up(&m.token_connections);
                    let _ = tokio::time::timeout(linger, async {
                        while conn.recv().await.is_some() {}
                    })
                    .await;
                    conn.close();
                });
            }
        });
        let server = Server {
            dir: dir.to_path_buf(),
            config,
            store,
            metrics,
            board,
            tokens,
            stop,
            tasks,
            _lock: lock,
        };
        server.spawn_reporter();
        info!(
            onion = %server.config.onion().redacted(),
            messages = server.store.count(),
            "cwtch server running"
        );
        Ok(server)
    }

    fn spawn_reporter(&self) {
        let (dir, store, metrics, stop) = (
            self.dir.clone(),
            self.store.clone(),
            self.metrics.clone(),
            self.stop.clone(),
        );
        let (board, tokens) = (self.board.clone(), self.tokens.clone());
        let snapshot = move |running| {
            metrics
                .snapshot(store.count(), running)
                .with_inbound(&board.inbound_stats(), &tokens.inbound_stats())
        };
        let text = self.config.log_metrics_to_file;
        self.tasks.spawn(async move {
            let mut write = tokio::time::interval(STATS_INTERVAL);
            let mut log = tokio::time::interval(LOG_INTERVAL);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = write.tick() => {
                        let s = snapshot(true);
                        if let Err(e) = write_stats_blocking(&dir, s, text).await {
                            warn!(error = %e, "could not write stats");
                        }
                    }
                    _ = log.tick() => {
                        let s = snapshot(true);
                        info!(
                            messages = s.messages,
                            board_connections = s.board_connections,
                            token_connections = s.token_connections,
                            handshakes = s.handshakes,
                            handshakes_evicted = s.handshakes_evicted,
                            connections_refused = s.connections_refused,
                            posts_accepted = s.posts_accepted,
                            posts_rejected = s.posts_rejected,
                            tokens_issued = s.tokens_issued,
                            tokens_spent = s.tokens_spent,
                            "metrics"
                        );
                    }
                }
            }
        });
    }

    /// The server's onion (the token board).
    pub fn onion(&self) -> tapir::Onion {
        self.config.onion()
    }

    /// The server's configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The `server:` bundle string clients import.
    pub fn bundle(&self) -> String {
        self.config.server_bundle()
    }

    /// A snapshot of the metrics.
    pub fn stats(&self) -> Stats {
        self.snapshot(true)
    }

    fn snapshot(&self, running: bool) -> Stats {
        self.metrics
            .snapshot(self.store.count(), running)
            .with_inbound(&self.board.inbound_stats(), &self.tokens.inbound_stats())
    }

    /// Stop accepting, close every connection, let in-flight writes finish, write the final
    /// stats, and release the data directory.
    pub async fn shutdown(self) {
        info!("shutting down");
        self.stop.cancel();
        self.board.shutdown().await;
        self.tokens.shutdown().await;
        self.tasks.close();
        self.tasks.wait().await;
        let s = self.snapshot(false);
        if let Err(e) = write_stats_blocking(&self.dir, s, self.config.log_metrics_to_file).await {
            warn!(error = %e, "could not write final stats");
        }
        info!("stopped");
    }
}

async fn write_stats_blocking(dir: &Path, s: Stats, text: bool) -> std::io::Result<()> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || metrics::write_stats(&dir, &s, text))
        .await
        .map_err(std::io::Error::other)?
}

async fn wait_for_network(acn: &dyn Acn) -> Result<(), ServerError> {
    let mut status = acn.status();
    loop {
        let now = status.borrow_and_update().clone();
        if now.is_ready() {
            return Ok(());
        }
        info!(progress = now.progress, summary = %now.summary, "waiting for the network");
        if status.changed().await.is_err() {
            return Err(connectivity::Error::Closed.into());
        }
    }
}

/// Run a server until `shutdown` resolves (the library form of `cwtch-server run`).
pub async fn run(
    config: ServerConfig,
    dir: &Path,
    acn: Arc<dyn Acn>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let server = Server::start(config, dir, acn).await?;
    shutdown.await;
    server.shutdown().await;
    Ok(())
}
