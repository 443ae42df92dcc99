#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod element;
mod error;
mod proof;
mod server;
mod store;
mod token;
pub mod transcript;
mod wire;

pub use error::{Error, StoreError};
pub use proof::{verify_batch_proof, DleqProof, SignedBatchWithProof};
pub use server::{PublicKey, TokenServer};
pub use store::{MemorySpentTokens, SpentTokenStore};
pub use token::{
    blind_batch, hash_to_group, spend_key, spend_mac, unblind_batch, BlindedToken, SignedToken,
    SpentToken, Token, UnsignedToken, SPEND_MAC_LEN, TOKEN_PREIMAGE_LEN,
};
pub use transcript::{Prng, Transcript};
pub use wire::{
    blinded_batch_from_json, blinded_batch_json_len, blinded_batch_to_json, go_fmt_v_blinded,
    go_fmt_v_signed, signed_batch_json_len,
};

/// The largest tapir payload (spec §2.3: 8192-byte packet − 24-byte nonce − 16-byte tag −
/// 2-byte length). Token connections are not encrypted and could carry 8189 bytes; we size
/// batches for the smaller, encrypted limit.
pub const MAX_TAPIR_PAYLOAD: usize = 8150;

/// The largest batch a [`TokenServer`] signs.
///
/// Chosen so that both messages of an issuance fit in one tapir payload
/// ([`MAX_TAPIR_PAYLOAD`] = 8150 bytes): the request `[{"P":"…"},…]` is `53·n + 1` bytes
/// (7951 for 150) and the reply `{"st":[…],"dp":{…}}` is `53·n + 117` bytes (8067 for 150);
/// 151 would still fit, 152 would not. Go's server is not known to have a cap
/// (UNCONFIRMED, spec §4.2); Go's client asks for [`DEFAULT_BATCH_SIZE`].
pub const MAX_BATCH_SIZE: usize = 150;

const _: () = assert!(blinded_batch_json_len(MAX_BATCH_SIZE) <= MAX_TAPIR_PAYLOAD);
const _: () = assert!(signed_batch_json_len(MAX_BATCH_SIZE) <= MAX_TAPIR_PAYLOAD);

/// How many tokens Go's client asks for in one issuance (spec §4.2, UNCONFIRMED recalled).
pub const DEFAULT_BATCH_SIZE: usize = 10;

/// `NewProtocol` name of the batch proof (Go `constructBatchProof`/`verifyBatchProof`;
/// spec §4.2 step 4, UNCONFIRMED recalled).
pub const BATCH_PROOF_PROTOCOL: &str = "privacy-pass-batch-proof";
/// Transcript label of the generator `X = B` in the batch proof (spec §4.2, UNCONFIRMED).
pub const BATCH_X_LABEL: &str = "X-batch";
/// Transcript label of the public key `Y` in the batch proof (spec §4.2, UNCONFIRMED).
pub const BATCH_Y_LABEL: &str = "Y-batch";
/// Transcript label of the `%v` rendering of the blinded tokens (spec §4.2, UNCONFIRMED).
pub const BATCH_P_VECTOR_LABEL: &str = "P-vector";
/// Transcript label of the `%v` rendering of the signed tokens (spec §4.2, UNCONFIRMED).
pub const BATCH_Q_VECTOR_LABEL: &str = "Q-vector";
/// `CommitToPRNG` label whose scalars weight the batch (spec §4.2, UNCONFIRMED).
pub const BATCH_PRNG_LABEL: &str = "w";
/// DLEQ transcript label of the first generator (spec §4.2, UNCONFIRMED).
pub const DLEQ_X_LABEL: &str = "X";
/// DLEQ transcript label of `Y = k·X` (spec §4.2, UNCONFIRMED).
pub const DLEQ_Y_LABEL: &str = "Y";
/// DLEQ transcript label of the second generator (the folded `M`) (spec §4.2, UNCONFIRMED).
pub const DLEQ_P_LABEL: &str = "P";
/// DLEQ transcript label of `Q = k·P` (the folded `Z`) (spec §4.2, UNCONFIRMED).
pub const DLEQ_Q_LABEL: &str = "Q";
/// DLEQ transcript label of the commitment `A = t·X` (spec §4.2, UNCONFIRMED).
pub const DLEQ_A_LABEL: &str = "A";
/// DLEQ transcript label of the commitment `B = t·P` (spec §4.2, UNCONFIRMED).
pub const DLEQ_B_LABEL: &str = "B";
/// DLEQ challenge label (`CommitToTranscriptScalar`) (spec §4.2, UNCONFIRMED).
pub const DLEQ_CHALLENGE_LABEL: &str = "c";

/// JSON tag of `SignedBatchWithProof.SignedTokens` (spec §4.2, UNCONFIRMED recalled
/// `json:"st"`). Emitted; decoding also accepts [`SIGNED_BATCH_TOKENS_GO_NAME`].
pub const SIGNED_BATCH_TOKENS_TAG: &str = "st";
/// JSON tag of `SignedBatchWithProof.Proof` (spec §4.2, UNCONFIRMED recalled `json:"dp"`).
/// Emitted; decoding also accepts [`SIGNED_BATCH_PROOF_GO_NAME`].
pub const SIGNED_BATCH_PROOF_TAG: &str = "dp";
/// The Go field name `SignedTokens`, accepted when decoding in case Go has no tag.
pub const SIGNED_BATCH_TOKENS_GO_NAME: &str = "SignedTokens";
/// The Go field name `Proof`, accepted when decoding in case Go has no tag.
pub const SIGNED_BATCH_PROOF_GO_NAME: &str = "Proof";
