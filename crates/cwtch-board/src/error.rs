//! The crate's one error type, and the typed reasons a server's input is refused.

use cwtch_model::MessageType;

use crate::machine::Phase;

/// Why a board-client operation failed.
///
/// [`Error::Protocol`] means the server broke the token-board protocol; the machine has then
/// gone to [`Phase::Disconnected`] and the connection must be dropped. [`Error::Timeout`] is a
/// report, not a failure: the connection is intact and the caller decides whether to wait
/// again. Everything else says what the caller asked for that could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server sent something the token-board protocol does not allow.
    #[error("server broke the token-board protocol: {0}")]
    Protocol(#[from] ProtocolError),
    /// No tokens in hand: fetch more ([`crate::Event::TokensLow`] said so earlier).
    #[error("no tokens in hand")]
    NoTokens,
    /// A message with an empty signature: Go's server drops it without a reply, which would
    /// break the pairing of posts and results, so it is never sent.
    #[error("a message without a signature cannot be posted")]
    UnsignedPost,
    /// The post would not fit in one tapir packet. No token was taken.
    #[error("a post of {len} bytes does not fit one packet (at most {max})")]
    PostTooLarge {
        /// The encoded `PostRequest`.
        len: usize,
        /// The largest payload of an encrypted packet.
        max: usize,
    },
    /// A cursor must be a signature of 1 to [`crate::MAX_SIGNATURE_LEN`] bytes.
    #[error("a replay cursor of {len} bytes (1 to {max} allowed)")]
    InvalidCursor {
        /// Its length.
        len: usize,
        /// [`crate::MAX_SIGNATURE_LEN`].
        max: usize,
    },
    /// The operation needs a connection and there is none.
    #[error("not connected")]
    NotConnected,
    /// The machine is already connected (call `disconnected` first).
    #[error("already connected")]
    AlreadyConnected,
    /// One replay per connection: a second would interleave with live messages.
    #[error("a replay was already requested on this connection")]
    ReplayAlreadyRequested,
    /// The server's key bundle did not verify.
    #[error("server bundle: {0}")]
    Bundle(#[from] cwtch_model::Error),
    /// The privacy-pass key in the bundle is not a valid point.
    #[error("server bundle: bad privacy pass key")]
    BadPrivacyPassKey,
    /// A machine for one server handed to a client for another.
    #[error("this board machine belongs to another server")]
    WrongServer,
    /// A token batch must hold 1 to `max` tokens.
    #[error("cannot fetch {n} tokens at once (1 to {max})")]
    BatchSize {
        /// Asked for.
        n: usize,
        /// [`privacypass::MAX_BATCH_SIZE`].
        max: usize,
    },
    /// Connecting or the tapir protocol failed.
    #[cfg(feature = "driver")]
    #[error(transparent)]
    Service(#[from] tapir_service::Error),
    /// The connection is closed (by the server, the network, or after a protocol error).
    #[error("server closed the connection")]
    Closed,
    /// Nothing arrived (or could be sent) within the timeout. The connection is intact.
    #[error("server did not answer within {0:?}")]
    Timeout(std::time::Duration),
}

/// The name the server crate's tests and load generator know the error by.
pub type ClientError = Error;

/// How a server broke the token-board protocol (`docs/specs/board-client.md` §4).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Not a token-board message (or, during a replay, not a bare message), or a known type
    /// without its payload.
    #[error("undecodable message: {0}")]
    Decode(cwtch_model::Error),
    /// A message type that cannot come from a server, or not now.
    #[error("unexpected message type {} while {phase:?}", .message_type.0)]
    Unexpected {
        /// The type received.
        message_type: MessageType,
        /// What the machine was doing.
        phase: Phase,
    },
    /// `ReplayResult` with a negative count.
    #[error("replay result announces {0} messages")]
    NegativeCount(i64),
    /// A `PostResult` with no post outstanding.
    #[error("a post result with no post outstanding")]
    UnpairedPostResult,
}
