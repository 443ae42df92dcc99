//! The token server: key, batch signing, redemption.

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::Scalar;
use rand_core::CryptoRngCore;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::element::Element;
use crate::proof::{batch_commitments, canonical_scalar, dleq_prove, SignedBatchWithProof};
use crate::store::SpentTokenStore;
use crate::token::{hash_to_group, spend_key, spend_mac, BlindedToken, SignedToken, SpentToken};
use crate::wire::b64;
use crate::{Error, Transcript, MAX_BATCH_SIZE};

/// The server's public key `Y = k·B` (published as `privacy_pass_public_key` in a Cwtch
/// server's key bundle).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub(crate) Element);

impl PublicKey {
    /// The canonical 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.enc
    }

    /// Decode a canonical encoding; anything else is [`Error::InvalidPoint`].
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey, Error> {
        Element::from_bytes(bytes).map(PublicKey)
    }

    /// Go's `MarshalText`/`String()`: standard base64 with padding of the encoding.
    pub fn to_base64(&self) -> String {
        b64::encode(&self.0.enc)
    }

    /// Go's `UnmarshalText`.
    pub fn from_base64(text: &str) -> Result<PublicKey, Error> {
        PublicKey::from_bytes(&b64::decode_array(text, "Y")?)
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

/// A Privacy Pass token server: the secret scalar `k` (zeroized on drop) and `Y = k·B`.
pub struct TokenServer {
    k: Scalar,
    y: PublicKey,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.k.zeroize();
    }
}

impl std::fmt::Debug for TokenServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenServer")
            .field("k", &"[redacted]")
            .field("y", &self.y)
            .finish()
    }
}

impl TokenServer {
    fn from_scalar(k: Scalar) -> TokenServer {
        TokenServer {
            y: PublicKey(Element::from_point(RistrettoPoint::mul_base(&k))),
            k,
        }
    }

    /// A fresh key: `k = FromUniformBytes(64 random bytes)`, as Go's server config does.
    pub fn generate<R: CryptoRngCore + ?Sized>(rng: &mut R) -> TokenServer {
        let mut wide = Zeroizing::new([0u8; 64]);
        loop {
            rng.fill_bytes(&mut wide[..]);
            let k = Scalar::from_bytes_mod_order_wide(&wide);
            if k != Scalar::ZERO {
                return TokenServer::from_scalar(k);
            }
        }
    }

    /// Load a key from its canonical 32-byte encoding. Non-canonical encodings and zero are
    /// [`Error::InvalidScalar`].
    pub fn from_secret_bytes(k: &[u8; 32]) -> Result<TokenServer, Error> {
        let k = canonical_scalar(k)?;
        if k == Scalar::ZERO {
            return Err(Error::InvalidScalar);
        }
        Ok(TokenServer::from_scalar(k))
    }

    /// Load a key from Go's text form (`tokenServiceK` in a Go server config: standard base64
    /// of the canonical encoding).
    pub fn from_secret_base64(text: &str) -> Result<TokenServer, Error> {
        let k = Zeroizing::new(b64::decode_array(text, "k")?);
        TokenServer::from_secret_bytes(&k)
    }

    /// The canonical encoding of `k`, for persisting the key.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.k.to_bytes())
    }

    /// Go's text form of `k` (standard base64 of [`TokenServer::secret_bytes`]).
    pub fn secret_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(b64::encode(&self.secret_bytes()[..]))
    }

    /// The public key `Y = k·B`.
    pub fn public_key(&self) -> PublicKey {
        self.y
    }

    /// Sign a batch of blinded tokens and prove it (Go `SignBlindedTokenBatchWithConstraint`
    /// → `constructBatchProof`), on the connection's `transcript`.
    ///
    /// Reads exactly 64 bytes from `rng` (the DLEQ nonce). [`Error::BatchSize`] if the batch
    /// is empty or longer than [`MAX_BATCH_SIZE`].
    pub fn sign_batch<R: CryptoRngCore + ?Sized>(
        &self,
        blinded: &[BlindedToken],
        transcript: &mut Transcript,
        rng: &mut R,
    ) -> Result<SignedBatchWithProof, Error> {
        if blinded.is_empty() || blinded.len() > MAX_BATCH_SIZE {
            return Err(Error::BatchSize {
                size: blinded.len(),
                max: MAX_BATCH_SIZE,
            });
        }
        let signed_tokens: Vec<SignedToken> = blinded
            .iter()
            .map(|p| SignedToken(Element::from_point(self.k * p.0.point)))
            .collect();
        let (m, z) = batch_commitments(transcript, &self.y, blinded, &signed_tokens);
        let mut wide = Zeroizing::new([0u8; 64]);
        rng.fill_bytes(&mut wide[..]);
        let mut t = Scalar::from_bytes_mod_order_wide(&wide);
        let proof = dleq_prove(&self.k, &self.y, &m, &z, &t, transcript);
        t.zeroize();
        Ok(SignedBatchWithProof {
            signed_tokens,
            proof,
        })
    }

    /// Check a spent token's MAC over `data`, and nothing else: whether `t` was spent before
    /// is the caller's to decide, atomically with recording it (a server that records the
    /// spend in the same transaction as what the token pays for, as the Cwtch server does).
    ///
    /// [`Error::InvalidMac`] if the MAC is wrong. Costs one hash to the group, one scalar
    /// multiplication, and the HMAC over `data`.
    pub fn verify(&self, spent: &SpentToken, data: &[u8]) -> Result<(), Error> {
        let mut w = self.k * hash_to_group(&spent.t);
        let key = spend_key(&spent.t, &w);
        w.zeroize();
        let expected = spend_mac(&key, data);
        if bool::from(expected.ct_eq(&spent.mac)) {
            Ok(())
        } else {
            Err(Error::InvalidMac)
        }
    }

    /// Redeem a spent token bound to `data` (Go `SpendToken`).
    ///
    /// [`Error::DoubleSpend`] if `store` already holds `t`; [`Error::InvalidMac`] if the MAC
    /// is wrong, in which case the token is **not** marked spent (otherwise anyone who saw `t`
    /// could burn it); otherwise `t` is recorded as spent, and a concurrent redemption that
    /// recorded it first also yields [`Error::DoubleSpend`].
    pub fn redeem(
        &self,
        spent: &SpentToken,
        data: &[u8],
        store: &dyn SpentTokenStore,
    ) -> Result<(), Error> {
        if store.is_spent(&spent.t)? {
            return Err(Error::DoubleSpend);
        }
        self.verify(spent, data)?;
        if store.mark_spent(&spent.t)? {
            Ok(())
        } else {
            Err(Error::DoubleSpend)
        }
    }
}
