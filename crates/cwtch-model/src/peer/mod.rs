//! The peer protocol: what two Cwtch profiles say to each other over one authenticated tapir
//! connection (protocol.md §7).
//!
//! * [`wire`]: the messages and their two framings (Go's `PeerMessage`, getVal/retVal);
//! * [`session`]: the protocol on one connection as a sans-IO state machine
//!   ([`PeerSession`]): version negotiation, which payload is a chat message, an
//!   acknowledgement or an attribute request, and the getVal requests awaiting replies.
//!
//! No IO and no policy: the peer library's driver (`cwtch::engine`) feeds the session the
//! payloads it receives, transmits what it returns, and decides (who is accepted, what is
//! stored) with the events it returns.

pub mod session;
pub mod wire;

pub use session::{
    Ignored, Output, PeerSession, TooLarge, FILE_SHARING_ZONE, MAX_ATTRIBUTE_PATH,
    MAX_PENDING_GETVALS, SCOPE_CONVERSATION,
};
pub use wire::*;
