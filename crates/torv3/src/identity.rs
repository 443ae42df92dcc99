//! Ed25519 identities and their X25519 / Tor forms.

use std::fmt;

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use crate::{Error, Onion};

/// Length of Go's `ed25519.PrivateKey`: `seed(32) || public key(32)`.
pub const GO_PRIVATE_KEY_LEN: usize = 64;

/// An Ed25519 signature (64 bytes).
pub type Signature = [u8; 64];

/// An Ed25519 public key that is a valid curve point.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Decode 32 bytes; fails if they are not a valid point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey, Error> {
        VerifyingKey::from_bytes(bytes)
            .map(PublicKey)
            .map_err(|_| Error::InvalidPublicKey)
    }

    /// Decode a slice that must be 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<PublicKey, Error> {
        let arr: &[u8; 32] = bytes.try_into().map_err(|_| Error::InvalidLength {
            what: "Ed25519 public key",
            expected: 32,
            actual: bytes.len(),
        })?;
        PublicKey::from_bytes(arr)
    }

    /// The 32-byte encoding.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// This key's onion address.
    pub fn onion(&self) -> Onion {
        Onion::from_public_key(self)
    }

    /// Verify a signature over `msg` (cofactorless, as Go's `ed25519.Verify`).
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), Error> {
        let sig: &[u8; 64] = sig.try_into().map_err(|_| Error::BadSignature)?;
        self.0
            .verify(msg, &ed25519_dalek::Signature::from_bytes(sig))
            .map_err(|_| Error::BadSignature)
    }

    /// The birationally equivalent X25519 public key (`u = (1+y)/(1-y)`).
    pub fn to_x25519(&self) -> x25519_dalek::PublicKey {
        x25519_dalek::PublicKey::from(self.0.to_montgomery().to_bytes())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.onion().redacted())
    }
}

/// A long-term or ephemeral Ed25519 identity.
///
/// The secret is zeroized on drop and never shown by `Debug`.
#[derive(Clone)]
pub struct Identity {
    key: SigningKey,
}

impl Identity {
    /// A fresh identity from a cryptographic RNG (Go's `InitializeEphemeralIdentity`).
    pub fn generate<R: CryptoRngCore + ?Sized>(rng: &mut R) -> Identity {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Identity::from_seed(&seed)
    }

    /// The identity with this 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Identity {
        Identity {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// Import Go's 64-byte `ed25519.PrivateKey` (`seed || public key`).
    ///
    /// The public half must be the one the seed derives: a mismatch means a corrupt key.
    pub fn from_go_private_key(bytes: &[u8]) -> Result<Identity, Error> {
        let arr: &[u8; GO_PRIVATE_KEY_LEN] =
            bytes.try_into().map_err(|_| Error::InvalidLength {
                what: "Go Ed25519 private key",
                expected: GO_PRIVATE_KEY_LEN,
                actual: bytes.len(),
            })?;
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&arr[..32]);
        let id = Identity::from_seed(&seed);
        if id.public_key().as_bytes()[..] != arr[32..] {
            return Err(Error::KeyMismatch);
        }
        Ok(id)
    }

    /// Export as Go's 64-byte `ed25519.PrivateKey` (`seed || public key`).
    pub fn to_go_private_key(&self) -> Zeroizing<[u8; GO_PRIVATE_KEY_LEN]> {
        Zeroizing::new(self.key.to_keypair_bytes())
    }

    /// The 32-byte seed.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.key.to_bytes())
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.key.verifying_key())
    }

    /// This identity's onion address.
    pub fn onion(&self) -> Onion {
        Onion::from_public_key(&self.public_key())
    }

    /// Sign `msg`.
    pub fn sign(&self, msg: &[u8]) -> Signature {
        self.key.sign(msg).to_bytes()
    }

    /// The X25519 secret for Diffie-Hellman: `SHA-512(seed)[0..32]`, clamped on use.
    pub fn x25519_secret(&self) -> x25519_dalek::StaticSecret {
        x25519_dalek::StaticSecret::from(self.key.to_scalar_bytes())
    }

    /// X25519 Diffie-Hellman between this identity and a remote Ed25519 public key, both
    /// mapped to Montgomery form. Fails on a low-order remote key (Go's `curve25519.X25519`
    /// returns an error for the all-zero output).
    pub fn diffie_hellman(&self, remote: &PublicKey) -> Result<Zeroizing<[u8; 32]>, Error> {
        let shared = self.x25519_secret().diffie_hellman(&remote.to_x25519());
        if !shared.was_contributory() {
            return Err(Error::NonContributoryDh);
        }
        Ok(Zeroizing::new(shared.to_bytes()))
    }

    /// The 64-byte expanded secret key Tor takes in `ADD_ONION ED25519-V3:<base64>`:
    /// `clamp(SHA-512(seed)[0..32]) || SHA-512(seed)[32..64]`, as Tor's
    /// `ed25519_secret_key_from_seed` makes it.
    pub fn tor_expanded_secret_key(&self) -> Zeroizing<[u8; 64]> {
        let seed = self.seed();
        let mut out = Zeroizing::new([0u8; 64]);
        out.copy_from_slice(&Sha512::digest(seed.as_ref()));
        out[0] &= 248;
        out[31] &= 63;
        out[31] |= 64;
        out
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Identity({}, secret: [scrubbed])",
            self.onion().redacted()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    fn rng() -> rand_chacha::ChaCha20Rng {
        rand_chacha::ChaCha20Rng::seed_from_u64(7)
    }

    #[test]
    fn go_private_key_round_trip_and_mismatch() {
        let id = Identity::generate(&mut rng());
        let go = id.to_go_private_key();
        assert_eq!(&go[32..], id.public_key().as_bytes());
        let back = Identity::from_go_private_key(go.as_ref()).unwrap();
        assert_eq!(back.onion(), id.onion());

        let mut bad = *go;
        bad[40] ^= 1;
        assert_eq!(
            Identity::from_go_private_key(&bad).unwrap_err(),
            Error::KeyMismatch
        );
        assert!(matches!(
            Identity::from_go_private_key(&go[..63]),
            Err(Error::InvalidLength { actual: 63, .. })
        ));
    }

    #[test]
    fn signatures_verify_and_reject_tampering() {
        let id = Identity::generate(&mut rng());
        let sig = id.sign(b"hello");
        id.public_key().verify(b"hello", &sig).unwrap();
        assert_eq!(
            id.public_key().verify(b"hellp", &sig),
            Err(Error::BadSignature)
        );
        assert_eq!(
            id.public_key().verify(b"hello", &sig[..63]),
            Err(Error::BadSignature)
        );
    }

    /// X25519 public keys of the golden 3DH seeds, computed by Go (testvectors/go-golden.json).
    #[test]
    fn x25519_conversion_matches_go() {
        let cases = [
            (
                "302859eb6b4045e8555027b33b387f383f1f1a79c0b9eb2eda32b74295954804",
                "1dece76348a91bc87d1d913daa4941ca923b1e9ab7e4da7e91eddd7a2633f20b",
            ),
            (
                "0bd98bc5d2d0627c8466fe2d0eab4364a2ef867fd40abfbc2b371f68e897b305",
                "ab75266e798d35fcdb09e263a0514fb543483b7423cdf0741eb66dfe8f9c7a6e",
            ),
        ];
        for (seed, want) in cases {
            let seed: [u8; 32] = hex::decode(seed).unwrap().try_into().unwrap();
            let id = Identity::from_seed(&seed);
            // The secret-side map and the public-side map must agree...
            let from_secret = x25519_dalek::PublicKey::from(&id.x25519_secret());
            assert_eq!(from_secret, id.public_key().to_x25519());
            // ...and agree with Go.
            assert_eq!(hex::encode(from_secret.as_bytes()), want);
        }
    }

    #[test]
    fn dh_agrees_and_rejects_low_order() {
        let a = Identity::generate(&mut rng());
        let b = Identity::from_seed(&[9u8; 32]);
        assert_eq!(
            *a.diffie_hellman(&b.public_key()).unwrap(),
            *b.diffie_hellman(&a.public_key()).unwrap()
        );
        // The Edwards identity point (y = 1) maps to u = 0: a low-order point.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        let low = PublicKey::from_bytes(&ident).unwrap();
        assert_eq!(
            a.diffie_hellman(&low).unwrap_err(),
            Error::NonContributoryDh
        );
    }

    #[test]
    fn expanded_key_is_clamped_and_derives_the_public_key() {
        use curve25519_dalek::EdwardsPoint;
        let id = Identity::generate(&mut rng());
        let ek = id.tor_expanded_secret_key();
        assert_eq!(ek[0] & 7, 0);
        assert_eq!(ek[31] & 0xc0, 0x40);
        let a: [u8; 32] = ek[..32].try_into().unwrap();
        // Clamping is idempotent, so this multiplies by exactly the bytes Tor receives.
        let point = EdwardsPoint::mul_base_clamped(a);
        assert_eq!(point.compress().as_bytes(), id.public_key().as_bytes());
    }

    #[test]
    fn debug_shows_no_secret() {
        let id = Identity::from_seed(&[0x41; 32]);
        let s = format!("{id:?}");
        assert!(s.contains("scrubbed"));
        assert!(!s.contains(id.onion().as_str()));
    }
}
