//! Tapir's `core.Transcript`: a Merlin transcript plus `CommitToPRNG`.
//!
//! Every tapir connection has one transcript that all its applications append to in turn
//! (auth, proof-of-work, tokens), so later proofs are bound to everything said before.
//! Labels are `&'static str` because Merlin requires static labels; every Cwtch label is a
//! constant.

use curve25519_dalek::Scalar;
use gorand::GoRand;

/// Merlin label under which `NewProtocol` appends a protocol name (spec §3.1).
/// UNCONFIRMED (recalled; corroborated by tapir-cwtch's `new_protocol`). See docs/COMPATIBILITY.md.
pub const NEW_PROTOCOL_LABEL: &str = "protocol";

/// Length of a transcript commitment (`CommitToTranscript`).
pub const COMMITMENT_LEN: usize = 64;

/// A Merlin transcript with tapir's operations.
#[derive(Clone)]
pub struct Transcript {
    inner: merlin::Transcript,
}

impl Transcript {
    /// Go's `NewTranscript(label)`.
    pub fn new(label: &'static str) -> Transcript {
        Transcript {
            inner: merlin::Transcript::new(label.as_bytes()),
        }
    }

    /// Go's `NewProtocol(name)`: append `name` under the label [`NEW_PROTOCOL_LABEL`].
    pub fn new_protocol(&mut self, name: &str) {
        self.inner
            .append_message(NEW_PROTOCOL_LABEL.as_bytes(), name.as_bytes());
    }

    /// Go's `AddToTranscript(label, data)`.
    pub fn append(&mut self, label: &'static str, data: &[u8]) {
        self.inner.append_message(label.as_bytes(), data);
    }

    /// Go's `CommitToTranscript(label)`: a 64-byte challenge.
    pub fn commit(&mut self, label: &'static str) -> [u8; COMMITMENT_LEN] {
        let mut out = [0u8; COMMITMENT_LEN];
        self.inner.challenge_bytes(label.as_bytes(), &mut out);
        out
    }

    /// Go's `CommitToTranscriptScalar(label)`: a 64-byte challenge reduced to a scalar
    /// (ristretto255 `FromUniformBytes`).
    pub fn commit_scalar(&mut self, label: &'static str) -> Scalar {
        Scalar::from_bytes_mod_order_wide(&self.commit(label))
    }

    /// Go's `CommitToPRNG(label)`: Go's `math/rand` seeded from a 64-byte challenge.
    pub fn commit_prng(&mut self, label: &'static str) -> Prng {
        Prng(GoRand::new(prng_seed(&self.commit(label))))
    }
}

impl std::fmt::Debug for Transcript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Transcript")
    }
}

/// How `CommitToPRNG` turns a commitment into a `math/rand` seed: the first 8 bytes as a
/// big-endian `int64` (spec §3.1). UNCONFIRMED (recalled). See docs/COMPATIBILITY.md.
pub fn prng_seed(commitment: &[u8; COMMITMENT_LEN]) -> i64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&commitment[..8]);
    i64::from_be_bytes(first)
}

/// Tapir's `core.PRNG`: a deterministic scalar stream derived from a transcript.
///
/// Not a source of secrets: anyone with the transcript can reproduce it.
#[derive(Debug, Clone)]
pub struct Prng(GoRand);

impl Prng {
    /// Go's `PRNG.Next()`: read 64 bytes from `math/rand` and reduce them to a scalar.
    pub fn next_scalar(&mut self) -> Scalar {
        let mut buf = [0u8; 64];
        self.0.read(&mut buf);
        Scalar::from_bytes_mod_order_wide(&buf)
    }
}
