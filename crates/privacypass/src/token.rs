//! Client-side tokens: blinding, unblinding and spending.

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::Scalar;
use hmac::{Hmac, Mac};
use rand_core::CryptoRngCore;
use sha3::{Digest, Sha3_256, Sha3_512};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::element::Element;
use crate::proof::{verify_batch_proof, SignedBatchWithProof};
use crate::wire::b64;
use crate::{Error, PublicKey, Transcript};

/// Length of a token preimage `t`.
pub const TOKEN_PREIMAGE_LEN: usize = 32;
/// Length of a spend MAC (HMAC-SHA3-512).
pub const SPEND_MAC_LEN: usize = 64;

/// A blinded token `P = r·T`, as sent to the server (Go `BlindedToken{P}`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BlindedToken(pub(crate) Element);

/// A signed blinded token `Q = k·P`, as returned by the server (Go `SignedToken{Q}`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SignedToken(pub(crate) Element);

macro_rules! point_wrapper {
    ($ty:ident, $name:literal) => {
        impl $ty {
            /// The canonical 32-byte encoding.
            pub fn to_bytes(&self) -> [u8; 32] {
                self.0.enc
            }

            /// Decode a canonical 32-byte encoding; anything else is [`Error::InvalidPoint`].
            pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, Error> {
                Element::from_bytes(bytes).map($ty)
            }

            /// Standard base64 (with padding) of the encoding, as Go's `String()`/`MarshalText`.
            pub fn to_base64(&self) -> String {
                b64::encode(&self.0.enc)
            }
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!($name, "({})"), self.to_base64())
            }
        }
    };
}

point_wrapper!(BlindedToken, "BlindedToken");
point_wrapper!(SignedToken, "SignedToken");

/// Hash a token preimage to the group: `T = FromUniformBytes(SHA3-512(t))` (spec §4.2,
/// UNCONFIRMED recalled `GenBlindedToken`; the golden vector fixes only the primitives).
pub fn hash_to_group(t: &[u8; TOKEN_PREIMAGE_LEN]) -> RistrettoPoint {
    let digest: Zeroizing<[u8; 64]> = Zeroizing::new(Sha3_512::digest(t).into());
    RistrettoPoint::from_uniform_bytes(&digest)
}

/// The key that binds a spend to a token: `SHA3-256(t || Encode(W))` (spec §4.3, UNCONFIRMED
/// recalled `SpendToken`).
pub fn spend_key(t: &[u8; TOKEN_PREIMAGE_LEN], w: &RistrettoPoint) -> Zeroizing<[u8; 32]> {
    let mut w_enc = w.compress().to_bytes();
    let mut h = Sha3_256::new();
    h.update(t);
    h.update(w_enc);
    w_enc.zeroize();
    Zeroizing::new(h.finalize().into())
}

/// The spend MAC: `HMAC-SHA3-512(key, data)` (spec §4.3, UNCONFIRMED recalled).
pub fn spend_mac(key: &[u8; 32], data: &[u8]) -> [u8; SPEND_MAC_LEN] {
    #[allow(clippy::expect_used)]
    let mut mac = <Hmac<Sha3_512> as Mac>::new_from_slice(key)
        .expect("invariant: HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// A client's secret for one token before the server has signed it: the preimage `t` and
/// the blinding factor `r`. Zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct UnsignedToken {
    t: [u8; TOKEN_PREIMAGE_LEN],
    r: Scalar,
}

impl std::fmt::Debug for UnsignedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnsignedToken([redacted])")
    }
}

impl UnsignedToken {
    /// Go's `GenBlindedToken`: `t` = 32 random bytes, `r` = `FromUniformBytes(64 random
    /// bytes)`, `P = r·HashToGroup(t)`.
    fn generate<R: CryptoRngCore + ?Sized>(rng: &mut R) -> (UnsignedToken, BlindedToken) {
        let mut t = [0u8; TOKEN_PREIMAGE_LEN];
        rng.fill_bytes(&mut t);
        let mut wide = Zeroizing::new([0u8; 64]);
        let r = loop {
            rng.fill_bytes(&mut wide[..]);
            let r = Scalar::from_bytes_mod_order_wide(&wide);
            // r = 0 would make P the identity and r non-invertible; probability 2^-252.
            if r != Scalar::ZERO {
                break r;
            }
        };
        let p = Element::from_point(r * hash_to_group(&t));
        (UnsignedToken { t, r }, BlindedToken(p))
    }
}

/// Make `n` fresh tokens: the secrets to keep, and the blinded tokens to send to the server.
pub fn blind_batch<R: CryptoRngCore + ?Sized>(
    n: usize,
    rng: &mut R,
) -> (Vec<UnsignedToken>, Vec<BlindedToken>) {
    (0..n).map(|_| UnsignedToken::generate(rng)).unzip()
}

/// Verify the server's batch proof and unblind its signatures: `W_i = r_i⁻¹·Q_i`.
///
/// `transcript` must be the connection's transcript in the same state as the server's when
/// it signed (the batch-proof protocol is appended here, as in Go's `verifyBatchProof`).
/// Nothing is returned unless the proof verifies.
pub fn unblind_batch(
    unsigned: Vec<UnsignedToken>,
    blinded: &[BlindedToken],
    batch: &SignedBatchWithProof,
    y: &PublicKey,
    transcript: &mut Transcript,
) -> Result<Vec<Token>, Error> {
    if unsigned.len() != blinded.len() || blinded.len() != batch.signed_tokens.len() {
        return Err(Error::CountMismatch {
            unsigned: unsigned.len(),
            blinded: blinded.len(),
            signed: batch.signed_tokens.len(),
        });
    }
    verify_batch_proof(blinded, batch, y, transcript)?;

    let mut inverses: Zeroizing<Vec<Scalar>> =
        Zeroizing::new(unsigned.iter().map(|u| u.r).collect());
    // Every r is non-zero by construction (see `UnsignedToken::generate`).
    Scalar::batch_invert(&mut inverses);
    Ok(unsigned
        .iter()
        .zip(inverses.iter())
        .zip(&batch.signed_tokens)
        .map(|((u, r_inv), q)| Token {
            t: u.t,
            w: r_inv * q.0.point,
        })
        .collect())
}

/// A signed, unblinded token `(t, W = k·HashToGroup(t))`: spendable once. Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Token {
    t: [u8; TOKEN_PREIMAGE_LEN],
    w: RistrettoPoint,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token([redacted])")
    }
}

impl Token {
    /// Spend the token on `data` (Go `SpendToken`): reveals `t` and a MAC over `data` keyed by
    /// `SHA3-256(t || W)`, so the spend cannot be replayed on other data.
    pub fn spend(&self, data: &[u8]) -> SpentToken {
        let key = spend_key(&self.t, &self.w);
        SpentToken {
            t: self.t,
            mac: spend_mac(&key, data),
        }
    }

    /// `t || Encode(W)`, for persisting a token pool.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 64]> {
        let mut out = Zeroizing::new([0u8; 64]);
        out[..32].copy_from_slice(&self.t);
        let mut w = self.w.compress();
        out[32..].copy_from_slice(w.as_bytes());
        w.0.zeroize();
        out
    }

    /// Inverse of [`Token::to_bytes`]; [`Error::InvalidPoint`] if `W` is not a canonical point.
    pub fn from_bytes(bytes: &[u8; 64]) -> Result<Token, Error> {
        let mut t = [0u8; TOKEN_PREIMAGE_LEN];
        t.copy_from_slice(&bytes[..32]);
        let mut w_enc = CompressedRistretto([0u8; 32]);
        w_enc.0.copy_from_slice(&bytes[32..]);
        let w = w_enc.decompress();
        w_enc.0.zeroize();
        match w {
            Some(w) => Ok(Token { t, w }),
            None => {
                t.zeroize();
                Err(Error::InvalidPoint)
            }
        }
    }
}

/// A spent token as sent to the server (Go `SpentToken{T, MAC}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpentToken {
    /// The token preimage `t`.
    pub t: [u8; TOKEN_PREIMAGE_LEN],
    /// `HMAC-SHA3-512(SHA3-256(t || W), data)`.
    pub mac: [u8; SPEND_MAC_LEN],
}
