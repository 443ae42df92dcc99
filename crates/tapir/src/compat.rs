//! Every tapir choice we could not confirm against Go, in one place.
//!
//! Each item names the section of `docs/protocol.md` it comes from and is listed in
//! `docs/COMPATIBILITY.md`. The day a Go peer is at hand, flip the one that is wrong here and
//! nowhere else.

use sha3::{Digest, Sha3_256};

use crate::packet::SessionKey;

/// How a frame's length is written at offset 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthPrefix {
    /// Go's `binary.PutUvarint` into two bytes.
    Uvarint,
    /// A fixed little-endian `u16` (what the early Rust port writes for encrypted frames).
    U16LittleEndian,
}

/// Length prefix inside *encrypted* frames (spec §0.2 item 1, §2.2). UNCONFIRMED: the Go
/// recollection says varint (like plaintext frames); tapir-cwtch writes a little-endian u16.
/// They agree below 128 bytes, i.e. for the whole auth handshake.
pub const ENCRYPTED_LENGTH_PREFIX: LengthPrefix = LengthPrefix::Uvarint;

/// The Merlin label every connection transcript is created with (spec §3.1). UNCONFIRMED.
pub const TRANSCRIPT_LABEL: &str = "tapir-transcript";

/// `NewProtocol` name of the auth app (spec §3.3; confirmed by tapir-cwtch).
pub const AUTH_PROTOCOL: &str = "auth-app";
/// Auth transcript label: the outbound side's hostname (spec §3.3; confirmed by tapir-cwtch).
pub const AUTH_OUTBOUND_HOSTNAME: &str = "outbound-hostname";
/// Auth transcript label: the inbound side's hostname (spec §3.3; confirmed by tapir-cwtch).
pub const AUTH_INBOUND_HOSTNAME: &str = "inbound-hostname";
/// Auth transcript label: the outbound side's auth message (spec §3.3; confirmed by tapir-cwtch).
pub const AUTH_OUTBOUND_CHALLENGE: &str = "outbound-challenge";
/// Auth transcript label: the inbound side's auth message (spec §3.3; confirmed by tapir-cwtch).
pub const AUTH_INBOUND_CHALLENGE: &str = "inbound-challenge";
/// Auth transcript commitment label (spec §3.3; confirmed by tapir-cwtch).
pub const AUTH_CHALLENGE: &str = "3dh-auth-challenge";

/// Whether the auth challenge message is `challenge(64) || own hostname(56)` (true) or the
/// bare 64-byte challenge (false). Spec §0.2 item 2: UNCONFIRMED; we follow tapir-cwtch, the
/// only written evidence by the protocol's author.
pub const AUTH_CHALLENGE_INCLUDES_HOSTNAME: bool = true;

/// The session key from the 96 bytes of 3DH material: SHA3-256 (spec §3.2). UNCONFIRMED for
/// Go (recalled), confirmed for tapir-cwtch.
pub fn session_key_from_3dh(material: &[u8; 96]) -> SessionKey {
    SessionKey::from_bytes(Sha3_256::digest(material).into())
}

/// `NewProtocol` name of the proof-of-work app (spec §4.1). UNCONFIRMED.
pub const POW_PROTOCOL: &str = "pow-app";
/// PoW transcript label for the server's seed (spec §4.1). UNCONFIRMED.
pub const POW_SEED: &str = "pow-seed";
/// PoW transcript commitment the puzzle is derived from (spec §4.1). UNCONFIRMED.
pub const POW_CHALLENGE: &str = "pow-challenge";
/// PoW transcript `CommitToPRNG` label, made by both sides (spec §4.1). UNCONFIRMED.
pub const POW_PRNG: &str = "pow-prng";
/// PoW transcript label for the solution (spec §4.1). UNCONFIRMED.
pub const POW_SOLUTION: &str = "pow-solution";
/// Leading zero bytes required of `SHA3-256(solution || challenge)` (spec §4.1). UNCONFIRMED.
pub const POW_DIFFICULTY_BYTES: usize = 2;
/// Length of a PoW solution (spec §4.1). UNCONFIRMED.
pub const POW_SOLUTION_LEN: usize = 32;

/// `NewProtocol` name of the token app (spec §4.2). UNCONFIRMED.
pub const TOKEN_PROTOCOL: &str = "token-app";
