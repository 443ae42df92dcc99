//! Errors of the tapir state machines. Each one closes only the connection it happened on,
//! and none is ever sent to the peer: the peer sees a silent close, as with Go.

use torv3::Onion;

use crate::capability::Capability;
use crate::packet::PacketError;

/// Why a tapir connection failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A packet could not be encoded or decoded (oversize payload, bad length, failed MAC).
    #[error(transparent)]
    Packet(#[from] PacketError),
    /// The peer's auth message was not the JSON object Go sends.
    #[error("malformed auth message: {0}")]
    MalformedAuthMessage(&'static str),
    /// A key in the auth message was not a usable Ed25519 key, or DH failed.
    #[error("unusable key from peer: {0}")]
    BadPeerKey(#[from] torv3::Error),
    /// We dialled one onion and the peer proved a different identity.
    #[error("dialled {} but the peer is {}", .expected.redacted(), .presented.redacted())]
    IdentityMismatch {
        /// The onion we dialled.
        expected: Onion,
        /// The identity the peer presented.
        presented: Onion,
    },
    /// The peer's auth challenge did not match ours: it does not hold the key it claims.
    #[error("auth challenge mismatch")]
    ChallengeMismatch,
    /// A proof-of-work solution that does not solve the puzzle.
    #[error("invalid proof-of-work solution")]
    InvalidPow,
    /// The token protocol failed (bad JSON, forged proof, batch size).
    #[error("token protocol: {0}")]
    Token(#[from] privacypass::Error),
    /// An application in the chain finished without granting the capability the chain needs.
    #[error("application finished without granting {0}")]
    CapabilityNotGranted(Capability),
    /// An application payload before the application chain completed.
    #[error("connection not established")]
    NotEstablished,
    /// The connection is closed.
    #[error("connection closed")]
    Closed,
}
