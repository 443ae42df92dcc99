//! The token protocol's messages: every decoder never panics; whatever decodes re-encodes to
//! something that decodes to the same value; a parsed batch can be signed and a parsed signed
//! batch verified without panicking.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use privacypass::{
    blind_batch, blinded_batch_from_json, blinded_batch_to_json, verify_batch_proof, BlindedToken,
    SignedBatchWithProof, SpentToken, TokenServer, Transcript,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn server() -> &'static TokenServer {
    static S: OnceLock<TokenServer> = OnceLock::new();
    S.get_or_init(|| TokenServer::generate(&mut ChaCha20Rng::seed_from_u64(1)))
}

fn blinded() -> &'static Vec<BlindedToken> {
    static B: OnceLock<Vec<BlindedToken>> = OnceLock::new();
    B.get_or_init(|| blind_batch(3, &mut ChaCha20Rng::seed_from_u64(2)).1)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = blinded_batch_from_json(data) {
        let json = blinded_batch_to_json(&b);
        assert_eq!(blinded_batch_from_json(&json).expect("re-parses"), b);
        let mut t = Transcript::new("tapir-transcript");
        let _ = server().sign_batch(&b, &mut t, &mut ChaCha20Rng::seed_from_u64(3));
    }
    if let Ok(s) = SignedBatchWithProof::from_json(data) {
        let json = s.to_json();
        assert_eq!(
            SignedBatchWithProof::from_json(&json)
                .expect("re-parses")
                .to_json(),
            json
        );
        let mut t = Transcript::new("tapir-transcript");
        let _ = verify_batch_proof(blinded(), &s, &server().public_key(), &mut t);
    }
    if let Ok(s) = SpentToken::from_json(data) {
        let json = s.to_json();
        let again = SpentToken::from_json(&json).expect("re-parses");
        assert_eq!((again.t, again.mac), (s.t, s.mac));
        let store = privacypass::MemorySpentTokens::new();
        assert!(server().redeem(&s, data, &store).is_err() || store.len() == 1);
    }
});
