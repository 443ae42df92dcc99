#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod admission;
mod conn;
mod registry;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use connectivity::{Acn, IsolationKey, ListenOptions, CWTCH_PORT};
use tapir::{ApplicationChain, Capability, Direction, Identity, Onion};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

pub use admission::InboundStats;
pub use conn::{Connection, ConnectionHandle, ConnectionId};

use admission::Admission;
use registry::Registry;

/// Limits and timeouts of a service. The defaults suit a peer or a small server.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Most inbound connections open at once. When all are taken, a new connection evicts
    /// the oldest connection still in its handshake (one that has not yet proved anything:
    /// no capability granted); established connections are never evicted.
    pub max_inbound: usize,
    /// Inbound slots that established connections may not take, so that handshakes always
    /// have room (capped at half of `max_inbound`). A handshake that completes when the
    /// other slots are all established is closed.
    pub handshake_reserve: usize,
    /// How long a connection may take from its stream being open (accepted, or returned by
    /// the ACN's dial, which bounds itself) to completing its application chain. Stalled
    /// handshakes are closed when it expires.
    pub handshake_timeout: Duration,
    /// How long an established connection may go without receiving a packet before it is
    /// closed. `None`: forever (peers keep connections open; Go has no idle timeout).
    pub idle_timeout: Option<Duration>,
    /// How long writing one packet to an established connection may take before the
    /// connection is closed (a peer that stops reading).
    pub write_timeout: Duration,
    /// What the network should do for our onion service (e.g. Tor's proof-of-work defence).
    pub listen_options: ListenOptions,
    /// Capacity of each connection's inbound and outbound payload queues.
    pub queue_len: usize,
    /// How many established inbound connections may wait for the owner to accept them.
    pub accept_backlog: usize,
    /// The virtual port to listen on and dial.
    pub port: u16,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            max_inbound: 1024,
            handshake_reserve: 256,
            handshake_timeout: Duration::from_secs(60),
            idle_timeout: None,
            write_timeout: Duration::from_secs(60),
            listen_options: ListenOptions::default(),
            queue_len: 64,
            accept_backlog: 64,
            port: CWTCH_PORT,
        }
    }
}

/// Why a service operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The network failed to host or dial.
    #[error(transparent)]
    Acn(#[from] connectivity::Error),
    /// The tapir protocol failed on this connection.
    #[error(transparent)]
    Tapir(#[from] tapir::Error),
    /// The stream failed.
    #[error("connection I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the stream before the application chain completed.
    #[error("peer closed the connection during the handshake")]
    ClosedDuringHandshake,
    /// The application chain did not complete in time.
    #[error("handshake did not complete within {0:?}")]
    HandshakeTimeout(Duration),
    /// We already hold an authenticated connection to this peer.
    #[error("already connected to {}", .0.redacted())]
    AlreadyConnected(Onion),
    /// The connection lost the duplicate-connection tie-break and was closed.
    #[error("duplicate connection closed")]
    Duplicate,
    /// Established connections fill their share of the service's inbound slots.
    #[error("no room for another established connection")]
    Full,
    /// The connection or the service is closed.
    #[error("closed")]
    Closed,
}

/// Constructs a fresh application chain for each inbound connection.
pub type ChainFactory = Arc<dyn Fn() -> ApplicationChain + Send + Sync>;

pub(crate) struct Inner {
    pub(crate) identity: Arc<Identity>,
    pub(crate) acn: Arc<dyn Acn>,
    pub(crate) config: ServiceConfig,
    pub(crate) registry: Registry,
    admission: Arc<Admission>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tasks: TaskTracker,
    next_id: AtomicU64,
}

impl Inner {
    pub(crate) fn next_id(&self) -> ConnectionId {
        ConnectionId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }
}

/// A tapir service: one identity, listening and dialling over one ACN.
///
/// Cheap to clone; all clones are the same service.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

/// Established inbound connections, as they complete their application chain.
///
/// Dropping it stops listening: the onion service is no longer hosted (connections already
/// established stay open).
pub struct Listener {
    onion: Onion,
    rx: mpsc::Receiver<Connection>,
}

impl Listener {
    /// The next established inbound connection; `None` once the service shuts down.
    pub async fn accept(&mut self) -> Option<Connection> {
        self.rx.recv().await
    }

    /// The onion this listener serves.
    pub fn onion(&self) -> &Onion {
        &self.onion
    }
}

impl Service {
    /// A service for `identity` over `acn`.
    pub fn new(identity: Arc<Identity>, acn: Arc<dyn Acn>, config: ServiceConfig) -> Service {
        Service {
            inner: Arc::new(Inner {
                identity,
                acn,
                admission: Arc::new(Admission::new(config.max_inbound, config.handshake_reserve)),
                config,
                registry: Registry::default(),
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// This service's onion.
    pub fn onion(&self) -> Onion {
        self.inner.identity.onion()
    }

    /// The service's configuration.
    pub fn config(&self) -> &ServiceConfig {
        &self.inner.config
    }

    /// How many inbound connections are in their handshake or established, and how many
    /// were evicted or refused so far.
    pub fn inbound_stats(&self) -> InboundStats {
        self.inner.admission.stats()
    }

    /// Host the onion service and accept connections, running a fresh chain from `chain` on
    /// each. Returns once the service is reachable.
    pub async fn listen(
        &self,
        chain: impl Fn() -> ApplicationChain + Send + Sync + 'static,
    ) -> Result<Listener, Error> {
        let inner = &self.inner;
        if inner.shutdown.is_cancelled() {
            return Err(Error::Closed);
        }
        let mut acn_listener = inner
            .acn
            .listen_with(
                &inner.identity,
                inner.config.port,
                &inner.config.listen_options,
            )
            .await?;
        let onion = acn_listener.onion().clone();
        info!(onion = %onion.redacted(), network = inner.acn.name(), "listening");
        let (tx, rx) = mpsc::channel(inner.config.accept_backlog);
        let chain: ChainFactory = Arc::new(chain);
        let svc = self.inner.clone();
        inner.tasks.spawn(async move {
            loop {
                let stream = tokio::select! {
                    _ = svc.shutdown.cancelled() => break,
                    // The owner dropped its `Listener`: stop hosting.
                    _ = tx.closed() => break,
                    s = acn_listener.accept() => s,
                };
                let stream = match stream {
                    Ok(s) => s,
                    Err(e) => {
                        warn!(error = %e, "listener failed; no longer accepting");
                        break;
                    }
                };
                // Evicting the oldest handshake if the service is full; its task closes it.
                let cancel = svc.shutdown.child_token();
                let Some(slot) = svc.admission.admit(cancel.clone()) else {
                    continue;
                };
                let tx = tx.clone();
                let chain = chain();
                svc.tasks.spawn(conn::run(
                    svc.clone(),
                    stream,
                    Direction::Inbound,
                    chain,
                    conn::Deliver::Accept(tx),
                    cancel,
                    Some(slot),
                ));
            }
            debug!("accept loop finished");
        });
        Ok(Listener { onion, rx })
    }

    /// Dial `onion` and run `chain` on the connection; returns once the chain completes.
    ///
    /// Refuses if an authenticated connection to `onion` already exists (checked before and
    /// after dialling, as Go does); use [`Service::connection_to`] to reuse it.
    pub async fn connect(
        &self,
        onion: &Onion,
        chain: ApplicationChain,
    ) -> Result<Connection, Error> {
        let inner = &self.inner;
        if inner.shutdown.is_cancelled() {
            return Err(Error::Closed);
        }
        if inner.registry.find(onion).is_some() {
            return Err(Error::AlreadyConnected(onion.clone()));
        }
        let isolation = IsolationKey::new(inner.identity.onion().to_string());
        // The dial is the ACN's: its own policy bounds it (attempts, per-attempt timeout,
        // backoff between attempts). Timing it here too would cut its retries short at an
        // arbitrary point; `handshake_timeout` starts once the stream is open.
        let stream = tokio::select! {
            _ = inner.shutdown.cancelled() => return Err(Error::Closed),
            r = inner.acn.connect(onion, inner.config.port, &isolation) => r?,
        };
        let (tx, rx) = oneshot::channel();
        let svc = self.inner.clone();
        let direction = Direction::Outbound {
            remote: onion.clone(),
        };
        inner.tasks.spawn(conn::run(
            svc,
            stream,
            direction,
            chain,
            conn::Deliver::Dialled(tx),
            inner.shutdown.child_token(),
            None,
        ));
        rx.await.map_err(|_| Error::Closed)?
    }

    /// An open, authenticated connection to `onion`, if there is one.
    pub fn connection_to(&self, onion: &Onion) -> Option<ConnectionHandle> {
        self.inner.registry.find(onion)
    }

    /// Every open, established connection.
    pub fn connections(&self) -> Vec<ConnectionHandle> {
        self.inner.registry.all()
    }

    /// Send `payload` to every established connection holding `capability`; returns how many
    /// it was queued for. A connection whose queue is full is too slow to keep up and is
    /// closed (its peer can reconnect and catch up) rather than allowed to stall the others.
    pub fn broadcast(&self, payload: &[u8], capability: Capability) -> usize {
        self.broadcast_with(capability, || payload.to_vec())
    }

    /// [`Service::broadcast`] of a payload made only if some connection holds `capability`
    /// (nothing is encoded for nobody).
    pub fn broadcast_with(
        &self,
        capability: Capability,
        payload: impl FnOnce() -> Vec<u8>,
    ) -> usize {
        let mut make = Some(payload);
        let mut bytes = Vec::new();
        let mut sent = 0;
        self.inner.registry.for_each_open(|h| {
            if !h.has_capability(capability) {
                return;
            }
            if let Some(make) = make.take() {
                bytes = make();
            }
            match h.try_send(bytes.clone()) {
                Ok(()) => sent += 1,
                Err(_) => {
                    debug!(id = h.id().0, "closing a connection too slow for broadcast");
                    h.close();
                }
            }
        });
        sent
    }

    /// Stop listening, close every connection, and wait for their tasks to finish.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    /// Whether [`Service::shutdown`] has been called.
    pub fn is_shut_down(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("onion", &self.inner.identity.onion())
            .field("network", &self.inner.acn.name())
            .finish_non_exhaustive()
    }
}
