//! Transcript vectors from real Go libraries (testvectors/go-golden.json) and Go tapir's tests.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use privacypass::transcript::{prng_seed, Transcript};
use serde_json::Value;

fn golden() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testvectors/go-golden.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The vector "from golang Tapir tests" (also in tapir-cwtch's transcript.rs).
#[test]
fn go_tapir_transcript_vector() {
    let mut t = Transcript::new("label");
    t.append("action", b"test data");
    t.commit("first commit");
    t.commit("second commit");
    t.append("action", b"test data");
    assert_eq!(
        hex::encode(t.commit("third commit")),
        golden()["merlin_tapir_third_commit"].as_str().unwrap()
    );
}

/// Merlin's own conformance vector, produced by gtank/merlin.
#[test]
fn merlin_conformance_vector() {
    let mut t = merlin::Transcript::new(b"test protocol");
    t.append_message(b"some label", b"some data");
    let mut out = [0u8; 32];
    t.challenge_bytes(b"challenge", &mut out);
    assert_eq!(
        hex::encode(out),
        golden()["merlin_simple_challenge32"].as_str().unwrap()
    );
}

/// The proof-of-work transcript and the `CommitToPRNG` scalar stream, as Go computes them.
#[test]
fn commit_to_prng_matches_go() {
    let g = &golden()["prng_scalars"];
    assert_eq!(g["transcript_label"], "tapir-transcript");
    let mut t = Transcript::new("tapir-transcript");
    t.new_protocol(g["protocol"].as_str().unwrap());
    t.append("pow-seed", g["pow_seed"].as_str().unwrap().as_bytes());
    assert_eq!(
        hex::encode(t.commit("pow-challenge")),
        g["pow_challenge"].as_str().unwrap()
    );
    let mut probe = t.clone();
    let commitment = probe.commit("pow-prng");
    assert_eq!(
        hex::encode(commitment),
        g["pow_prng_commit"].as_str().unwrap()
    );
    assert_eq!(
        prng_seed(&commitment).to_string(),
        g["seed_int64"].as_str().unwrap()
    );
    let mut prng = t.commit_prng("pow-prng");
    for want in g["scalars"].as_array().unwrap() {
        assert_eq!(
            hex::encode(prng.next_scalar().to_bytes()),
            want.as_str().unwrap()
        );
    }
}

/// ristretto255 `FromUniformBytes` for scalars and elements agrees with gtank/ristretto255.
#[test]
fn from_uniform_bytes_matches_go() {
    use curve25519_dalek::{RistrettoPoint, Scalar};
    let cases = golden()["uniform_bytes"].as_array().unwrap().clone();
    assert_eq!(cases.len(), 3);
    for c in cases {
        let input: [u8; 64] = hex::decode(c["in"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(
            hex::encode(Scalar::from_bytes_mod_order_wide(&input).to_bytes()),
            c["scalar"].as_str().unwrap()
        );
        assert_eq!(
            hex::encode(
                RistrettoPoint::from_uniform_bytes(&input)
                    .compress()
                    .to_bytes()
            ),
            c["element"].as_str().unwrap()
        );
    }
}
