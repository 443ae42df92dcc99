//! The backend-independent ACN interface.

use std::fmt;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use torv3::safelog::Sensitive;
use torv3::{Identity, Onion};

use crate::Error;

/// The onion-service virtual port tapir listens on and dials (spec §1 and §2.1).
///
/// UNCONFIRMED (recalled): tapir's `BaseOnionService.Init` uses 9878 and connectivity's
/// `Open()` dials `<hostname>.onion:9878`, inherited from Ricochet. Listed in
/// `docs/COMPATIBILITY.md`.
pub const CWTCH_PORT: u16 = 9878;

/// Bootstrap progress at which an ACN is ready to listen and dial.
pub const BOOTSTRAPPED: u8 = 100;

/// A bidirectional byte stream to or from an onion service.
///
/// Implemented for every type that qualifies (a `TcpStream`, a SOCKS-wrapped stream, an Arti
/// `DataStream`, a `Box<dyn AcnStream>`...).
pub trait AcnStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> AcnStream for T {}

/// A type-erased [`AcnStream`], as [`Acn::connect`] and [`OnionListener::accept`] return it.
pub type BoxStream = Box<dyn AcnStream>;

/// A stream-isolation group: streams dialled with different keys never share a circuit.
///
/// Tor maps the key to SOCKS5 username/password credentials (`IsolateSOCKSAuth`, on by default),
/// Arti to an isolation token. Give each local profile (and each ephemeral server or token
/// connection that must not be linkable to it) its own key. The key never leaves this machine,
/// but `Debug` hides it anyway (it may well be derived from a profile's address) unless unsafe
/// logging is on.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IsolationKey(String);

impl IsolationKey {
    /// An isolation key with this label.
    pub fn new(label: impl Into<String>) -> IsolationKey {
        IsolationKey(label.into())
    }

    /// The label.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for IsolationKey {
    fn from(label: &str) -> Self {
        IsolationKey::new(label)
    }
}

impl From<String> for IsolationKey {
    fn from(label: String) -> Self {
        IsolationKey(label)
    }
}

impl fmt::Debug for IsolationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IsolationKey({:?})", Sensitive(&self.0))
    }
}

/// Bootstrap progress of an ACN (Go connectivity's `GetBootstrapStatus() (int, string)`, and
/// the UI's `ACNStatus` event with `Progress` and `Status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcnStatus {
    /// Percent, `0..=100`; [`BOOTSTRAPPED`] (100) means ready.
    pub progress: u8,
    /// A human-readable summary, e.g. Tor's `SUMMARY="Done"`.
    pub summary: String,
}

impl AcnStatus {
    /// A status with this progress (capped at 100) and summary.
    pub fn new(progress: u8, summary: impl Into<String>) -> AcnStatus {
        AcnStatus {
            progress: progress.min(BOOTSTRAPPED),
            summary: summary.into(),
        }
    }

    /// Whether the network is ready (`progress == 100`).
    pub fn is_ready(&self) -> bool {
        self.progress >= BOOTSTRAPPED
    }
}

/// What an onion service asks of the network besides hosting it ([`Acn::listen_with`]).
///
/// Start from [`ListenOptions::default`] (nothing asked) and add what you need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenOptions {
    /// Make clients solve a proof of work to reach the service when it is under load; `None`:
    /// off. Servers turn it on; peers need not.
    pub pow_defense: Option<PowDefense>,
}

impl ListenOptions {
    /// These options with the proof-of-work defence on.
    pub fn with_pow_defense(mut self, pow: PowDefense) -> ListenOptions {
        self.pow_defense = Some(pow);
        self
    }
}

/// Tor's onion-service proof-of-work defence against introduction floods (proposal 327;
/// `ADD_ONION ... PoWDefensesEnabled=1 PoWQueueRate=N PoWQueueBurst=N`, tor 0.4.9.5 and
/// later). When the service's introduction queue backs up, tor raises the effort it asks of
/// clients, so a flooder pays per attempt and patient clients still get through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PowDefense {
    /// Introduction requests per second tor takes from its priority queue
    /// (`PoWQueueRate`; 0: as fast as it can).
    pub queue_rate: u32,
    /// Introduction requests tor may take in one burst (`PoWQueueBurst`).
    pub queue_burst: u32,
}

impl PowDefense {
    /// The defence with this queue rate and burst.
    pub fn new(queue_rate: u32, queue_burst: u32) -> PowDefense {
        PowDefense {
            queue_rate,
            queue_burst,
        }
    }
}

impl Default for PowDefense {
    /// Tor's own defaults (`HiddenServicePoWQueueRate 250`, `HiddenServicePoWQueueBurst 2500`).
    fn default() -> Self {
        PowDefense::new(250, 2500)
    }
}

/// An anonymous communication network: hosts onion services and dials onions.
///
/// Object safe: binaries choose a backend at run time and pass an `Arc<dyn Acn>` around.
/// Implementations are cheap handles onto shared state; all methods take `&self`.
#[async_trait]
pub trait Acn: Send + Sync + 'static {
    /// Host an onion service for `identity` on virtual `port`; resolves once it is reachable.
    ///
    /// Dropping the returned listener stops hosting. Hosting an onion that is already hosted
    /// replaces the earlier service (its owner is gone or is being replaced).
    async fn listen(&self, identity: &Identity, port: u16)
        -> Result<Box<dyn OnionListener>, Error>;

    /// [`Acn::listen`] with options for the network. A backend ignores what it cannot do
    /// (the loopback network has no proof-of-work defence); the default does just that.
    async fn listen_with(
        &self,
        identity: &Identity,
        port: u16,
        options: &ListenOptions,
    ) -> Result<Box<dyn OnionListener>, Error> {
        let _ = options;
        self.listen(identity, port).await
    }

    /// Dial `onion` on virtual `port`, isolated from streams with other isolation keys.
    async fn connect(
        &self,
        onion: &Onion,
        port: u16,
        isolation: &IsolationKey,
    ) -> Result<BoxStream, Error>;

    /// Bootstrap progress; 100 = ready. The channel closes when the ACN is closed.
    fn status(&self) -> watch::Receiver<AcnStatus>;

    /// The network's software version, if it has one to tell (tor's `GETINFO version`, Go's
    /// `GetVersion`); `None` by default and while it cannot be asked.
    async fn network_version(&self) -> Option<String> {
        None
    }

    /// Wait until bootstrap reaches 100 (Go's `WaitTillBootstrapped`). Fails with
    /// [`Error::Closed`] if the ACN is closed first. Callers add their own timeout.
    async fn wait_until_bootstrapped(&self) -> Result<(), Error> {
        let mut status = self.status();
        status
            .wait_for(AcnStatus::is_ready)
            .await
            .map(|_| ())
            .map_err(|_| Error::Closed)
    }

    /// Restart the network (Go's `Restart()`): drop circuits and re-bootstrap. Hosted services
    /// stay hosted: a restarted tor is given them again, and this waits until each descriptor
    /// is published or the publish timeout passes. `Ok` does not promise that every service
    /// is reachable yet: one still unpublished at the timeout is logged, and tor keeps
    /// publishing it.
    async fn restart(&self) -> Result<(), Error>;

    /// Close the network: stop every listener it handed out and refuse further use
    /// ([`Error::Closed`]). Idempotent.
    async fn close(&self);

    /// Whether this network hides who talks to whom. The loopback network returns false.
    fn is_anonymous(&self) -> bool;

    /// A short name for logs and the UI: `"loopback"`, `"tor"`.
    fn name(&self) -> &'static str;
}

/// A hosted onion service, accepting inbound streams. Dropping it stops hosting.
#[async_trait]
pub trait OnionListener: Send {
    /// The onion this listener hosts.
    fn onion(&self) -> &Onion;

    /// The virtual port this listener hosts.
    fn virtual_port(&self) -> u16;

    /// Wait for the next inbound stream.
    ///
    /// An error means this listener is finished (closed, or its backend failed): stop
    /// accepting, and listen again if appropriate. Transient failures (such as running out
    /// of file descriptors for a moment) are handled inside the backend.
    async fn accept(&mut self) -> Result<BoxStream, Error>;
}
