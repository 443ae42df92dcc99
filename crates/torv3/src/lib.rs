#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod identity;
mod onion;
pub mod safelog;

pub use identity::{Identity, PublicKey, Signature, GO_PRIVATE_KEY_LEN};
pub use onion::{Onion, ONION_LEN};

/// Everything that can go wrong turning bytes or text into keys and addresses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An input had the wrong length.
    #[error("{what}: expected {expected} bytes, got {actual}")]
    InvalidLength {
        /// What was being decoded.
        what: &'static str,
        /// The length it must have.
        expected: usize,
        /// The length it had.
        actual: usize,
    },
    /// An onion address was not 56 characters of the base32 alphabet.
    #[error("not a v3 onion address: expected 56 base32 characters, got {0} characters")]
    OnionSyntax(usize),
    /// An onion address's version byte was not 3.
    #[error("not a v3 onion address: version byte {0}, expected 3")]
    OnionVersion(u8),
    /// An onion address's checksum did not match its key.
    #[error("onion address checksum mismatch (mistyped address?)")]
    OnionChecksum,
    /// 32 bytes that are not a valid Ed25519 public key (not a curve point).
    #[error("not a valid Ed25519 public key")]
    InvalidPublicKey,
    /// A Go private key whose public half does not belong to its seed.
    #[error("private key's public half does not match its seed")]
    KeyMismatch,
    /// A signature did not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// A Diffie-Hellman exchange produced the all-zero output (low-order point).
    #[error("Diffie-Hellman with a low-order point")]
    NonContributoryDh,
}
