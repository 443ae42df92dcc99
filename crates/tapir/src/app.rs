//! Applications and application chains (spec §2.5).
//!
//! An [`Application`] is a small state machine that runs one protocol on a connection (auth,
//! proof-of-work, tokens): it is started when it becomes active, is handed each payload the
//! peer sends while it is active, and says when it is done. A chain runs applications in
//! order on one connection, sharing the connection's transcript, and closes the connection
//! when an application finishes without granting the capability the chain requires of it.
//! After the last one the connection is *established* and payloads go to its owner.

use std::collections::VecDeque;
use std::sync::Arc;

use privacypass::Transcript;
use rand_core::CryptoRngCore;
use torv3::{Identity, Onion};

use crate::capability::{Capabilities, Capability};
use crate::connection::{Direction, Event};
use crate::packet::{self, SessionKey, NONCE_LEN};
use crate::Error;

/// What an application says after each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Waiting for the peer's next payload.
    Continue,
    /// Finished; the chain moves on.
    Done,
}

/// One protocol run on a connection. Implementations are state machines: no IO, no clock.
pub trait Application: Send {
    /// A short name for logs.
    fn name(&self) -> &'static str;
    /// Called once when the application becomes active.
    fn start(&mut self, cx: &mut AppContext<'_>) -> Result<Step, Error>;
    /// Called with each payload the peer sends while the application is active.
    fn receive(&mut self, cx: &mut AppContext<'_>, payload: &[u8]) -> Result<Step, Error>;
}

/// An ordered list of applications, each with the capability it must grant.
#[derive(Default)]
pub struct ApplicationChain {
    pub(crate) links: VecDeque<(Box<dyn Application>, Option<Capability>)>,
}

impl ApplicationChain {
    /// An empty chain: the connection is established as soon as it starts.
    pub fn new() -> ApplicationChain {
        ApplicationChain::default()
    }

    /// Append an application that must grant `requires` before the chain moves on.
    pub fn then(mut self, app: impl Application + 'static, requires: Capability) -> Self {
        self.links.push_back((Box::new(app), Some(requires)));
        self
    }

    /// Append an application whose completion alone lets the chain move on.
    pub fn then_unchecked(mut self, app: impl Application + 'static) -> Self {
        self.links.push_back((Box::new(app), None));
        self
    }

    /// The names of the applications, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.links.iter().map(|(a, _)| a.name()).collect()
    }
}

impl std::fmt::Debug for ApplicationChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ApplicationChain")
            .field(&self.names())
            .finish()
    }
}

/// The per-connection state applications act on.
pub(crate) struct Core {
    pub(crate) direction: Direction,
    pub(crate) identity: Arc<Identity>,
    pub(crate) transcript: Transcript,
    pub(crate) key: Option<SessionKey>,
    pub(crate) capabilities: Capabilities,
    pub(crate) remote: Option<Onion>,
    pub(crate) outbox: VecDeque<Vec<u8>>,
    pub(crate) events: VecDeque<Event>,
    pub(crate) rng: Box<dyn CryptoRngCore + Send>,
}

impl Core {
    /// Encode a payload with the current key state and queue the packet.
    pub(crate) fn send(&mut self, payload: &[u8]) -> Result<(), Error> {
        let packet = match &self.key {
            None => packet::encode_plain(payload)?,
            Some(key) => {
                let mut nonce = [0u8; NONCE_LEN];
                self.rng.fill_bytes(&mut nonce);
                packet::seal(key, &nonce, payload)?
            }
        };
        self.outbox.push_back(packet);
        Ok(())
    }
}

/// What an application may see and do on its connection.
pub struct AppContext<'a> {
    pub(crate) core: &'a mut Core,
}

impl AppContext<'_> {
    /// Whether we dialled this connection.
    pub fn is_outbound(&self) -> bool {
        matches!(self.core.direction, Direction::Outbound { .. })
    }

    /// The onion we dialled, on an outbound connection.
    pub fn dialled(&self) -> Option<&Onion> {
        match &self.core.direction {
            Direction::Outbound { remote } => Some(remote),
            Direction::Inbound => None,
        }
    }

    /// The local identity of this connection (long-term, or ephemeral for server connections).
    pub fn identity(&self) -> &Identity {
        &self.core.identity
    }

    /// The connection's shared transcript.
    pub fn transcript(&mut self) -> &mut Transcript {
        &mut self.core.transcript
    }

    /// The connection's RNG.
    pub fn rng(&mut self) -> &mut (dyn CryptoRngCore + Send) {
        &mut *self.core.rng
    }

    /// Transcript and RNG together (for protocols that need both at once).
    pub fn transcript_and_rng(&mut self) -> (&mut Transcript, &mut (dyn CryptoRngCore + Send)) {
        (&mut self.core.transcript, &mut *self.core.rng)
    }

    /// Send a payload: plaintext until a session key is set, encrypted after.
    pub fn send(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.core.send(payload)
    }

    /// Switch both directions to encryption under `key`, from the next packet on.
    pub fn set_session_key(&mut self, key: SessionKey) {
        self.core.key = Some(key);
    }

    /// Grant a capability.
    pub fn grant(&mut self, c: Capability) {
        self.core.capabilities.grant(c);
    }

    /// Whether a capability is held.
    pub fn has(&self, c: Capability) -> bool {
        self.core.capabilities.has(c)
    }

    /// Record the peer's proven identity.
    pub fn set_remote(&mut self, onion: Onion) {
        self.core.remote = Some(onion);
    }

    /// Report an event to the connection's owner.
    pub fn emit(&mut self, e: Event) {
        self.core.events.push_back(e);
    }
}
