//! The batch DLEQ proof (Go `constructBatchProof` / `verifyBatchProof` and `dlogeq.go`).
//!
//! The server proves, without revealing `k`, that every `Q_i = k·P_i` with the same `k` as its
//! public key `Y = k·B`. The batch is folded into one pair `(M, Z)` with weights drawn from the
//! transcript, then a single Chaum–Pedersen proof shows `log_B(Y) = log_M(Z)`.

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_COMPRESSED;
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::traits::VartimeMultiscalarMul;
use curve25519_dalek::Scalar;

use crate::token::{BlindedToken, SignedToken};
use crate::wire::{b64, go_fmt_v_blinded, go_fmt_v_signed};
use crate::{
    Error, PublicKey, Transcript, BATCH_PRNG_LABEL, BATCH_PROOF_PROTOCOL, BATCH_P_VECTOR_LABEL,
    BATCH_Q_VECTOR_LABEL, BATCH_X_LABEL, BATCH_Y_LABEL, DLEQ_A_LABEL, DLEQ_B_LABEL,
    DLEQ_CHALLENGE_LABEL, DLEQ_P_LABEL, DLEQ_Q_LABEL, DLEQ_X_LABEL, DLEQ_Y_LABEL,
};

/// A discrete-log-equivalence proof `(c, s)` (Go `DLProof{C, S}`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DleqProof {
    pub(crate) c: Scalar,
    pub(crate) s: Scalar,
}

impl DleqProof {
    /// Build a proof from the canonical encodings of `c` and `s`.
    pub fn from_bytes(c: &[u8; 32], s: &[u8; 32]) -> Result<DleqProof, Error> {
        Ok(DleqProof {
            c: canonical_scalar(c)?,
            s: canonical_scalar(s)?,
        })
    }

    /// The challenge `c`, canonically encoded.
    pub fn c_bytes(&self) -> [u8; 32] {
        self.c.to_bytes()
    }

    /// The response `s`, canonically encoded.
    pub fn s_bytes(&self) -> [u8; 32] {
        self.s.to_bytes()
    }
}

impl std::fmt::Debug for DleqProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DleqProof {{ c: {}, s: {} }}",
            b64::encode(self.c.as_bytes()),
            b64::encode(self.s.as_bytes())
        )
    }
}

/// Decode a canonical scalar (Go `Scalar.Decode`).
pub(crate) fn canonical_scalar(bytes: &[u8; 32]) -> Result<Scalar, Error> {
    Option::<Scalar>::from(Scalar::from_canonical_bytes(*bytes)).ok_or(Error::InvalidScalar)
}

/// The server's reply: the signed tokens, in request order, and the batch proof
/// (Go `SignedBatchWithProof`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedBatchWithProof {
    /// `Q_i = k·P_i`.
    pub signed_tokens: Vec<SignedToken>,
    /// Proof that every `Q_i` was made with the key behind the server's public key.
    pub proof: DleqProof,
}

/// The DLEQ response: `s = t − c·k` (spec §4.2; the sign convention is UNCONFIRMED recalled,
/// the golden vector only fixes it for vectors made with the same convention).
fn dleq_response(t: &Scalar, c: &Scalar, k: &Scalar) -> Scalar {
    t - c * k
}

/// Append the batch to the transcript and fold it: returns `(M, Z) = (Σ c_i·P_i, Σ c_i·Q_i)`
/// with `c_i` drawn from `CommitToPRNG("w")`. Callers check `p.len() == q.len()`.
pub(crate) fn batch_commitments(
    transcript: &mut Transcript,
    y: &PublicKey,
    p: &[BlindedToken],
    q: &[SignedToken],
) -> (RistrettoPoint, RistrettoPoint) {
    transcript.new_protocol(BATCH_PROOF_PROTOCOL);
    transcript.append(BATCH_X_LABEL, RISTRETTO_BASEPOINT_COMPRESSED.as_bytes());
    transcript.append(BATCH_Y_LABEL, &y.0.enc);
    transcript.append(BATCH_P_VECTOR_LABEL, go_fmt_v_blinded(p).as_bytes());
    transcript.append(BATCH_Q_VECTOR_LABEL, go_fmt_v_signed(q).as_bytes());
    let mut prng = transcript.commit_prng(BATCH_PRNG_LABEL);
    let weights: Vec<Scalar> = p.iter().map(|_| prng.next_scalar()).collect();
    // All inputs are public, so variable time is fine.
    let m = RistrettoPoint::vartime_multiscalar_mul(&weights, p.iter().map(|p| p.0.point));
    let z = RistrettoPoint::vartime_multiscalar_mul(&weights, q.iter().map(|q| q.0.point));
    (m, z)
}

/// The Fiat–Shamir challenge of the DLEQ proof with `X = B`.
fn dleq_challenge(
    transcript: &mut Transcript,
    y: &PublicKey,
    m: &RistrettoPoint,
    z: &RistrettoPoint,
    a: &RistrettoPoint,
    b: &RistrettoPoint,
) -> Scalar {
    transcript.append(DLEQ_X_LABEL, RISTRETTO_BASEPOINT_COMPRESSED.as_bytes());
    transcript.append(DLEQ_Y_LABEL, &y.0.enc);
    transcript.append(DLEQ_P_LABEL, m.compress().as_bytes());
    transcript.append(DLEQ_Q_LABEL, z.compress().as_bytes());
    transcript.append(DLEQ_A_LABEL, a.compress().as_bytes());
    transcript.append(DLEQ_B_LABEL, b.compress().as_bytes());
    transcript.commit_scalar(DLEQ_CHALLENGE_LABEL)
}

/// Prover side (Go `DiscreteLogEquivalenceProof` with `X = B`): `t` is the secret nonce.
pub(crate) fn dleq_prove(
    k: &Scalar,
    y: &PublicKey,
    m: &RistrettoPoint,
    z: &RistrettoPoint,
    t: &Scalar,
    transcript: &mut Transcript,
) -> DleqProof {
    let a = RistrettoPoint::mul_base(t);
    let b = t * m;
    let c = dleq_challenge(transcript, y, m, z, &a, &b);
    DleqProof {
        c,
        s: dleq_response(t, &c, k),
    }
}

/// Verifier side (Go `VerifyDiscreteLogEquivalenceProof` with `X = B`):
/// `A' = s·B + c·Y`, `B' = s·M + c·Z`, accept iff the recomputed challenge equals `c`.
fn dleq_verify(
    proof: &DleqProof,
    y: &PublicKey,
    m: &RistrettoPoint,
    z: &RistrettoPoint,
    transcript: &mut Transcript,
) -> bool {
    let a = RistrettoPoint::vartime_double_scalar_mul_basepoint(&proof.c, &y.0.point, &proof.s);
    let b = RistrettoPoint::vartime_multiscalar_mul([proof.s, proof.c], [*m, *z]);
    dleq_challenge(transcript, y, m, z, &a, &b) == proof.c
}

/// Client side of Go's `verifyBatchProof`: check that `batch` signs exactly `blinded` under
/// `y`, on `transcript` (which is advanced exactly as the server's was).
///
/// [`Error::CountMismatch`] if the batch has a different number of tokens, [`Error::BatchSize`]
/// if it is empty, [`Error::BadProof`] if the proof fails.
pub fn verify_batch_proof(
    blinded: &[BlindedToken],
    batch: &SignedBatchWithProof,
    y: &PublicKey,
    transcript: &mut Transcript,
) -> Result<(), Error> {
    if blinded.len() != batch.signed_tokens.len() {
        return Err(Error::CountMismatch {
            unsigned: blinded.len(),
            blinded: blinded.len(),
            signed: batch.signed_tokens.len(),
        });
    }
    if blinded.is_empty() {
        return Err(Error::BatchSize {
            size: 0,
            max: crate::MAX_BATCH_SIZE,
        });
    }
    let (m, z) = batch_commitments(transcript, y, blinded, &batch.signed_tokens);
    if dleq_verify(&batch.proof, y, &m, &z, transcript) {
        Ok(())
    } else {
        Err(Error::BadProof)
    }
}
