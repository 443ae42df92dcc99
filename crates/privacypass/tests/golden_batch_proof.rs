//! The batch DLEQ proof produced by the real Go libraries (testvectors/go-golden.json,
//! key `batch_proof`; made by tools/golden/main.go against gtank/ristretto255 and
//! gtank/merlin, with the labels of docs/protocol.md §4.2).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use curve25519_dalek::{RistrettoPoint, Scalar};
use privacypass::{
    blinded_batch_from_json, blinded_batch_to_json, go_fmt_v_blinded, go_fmt_v_signed,
    verify_batch_proof, BlindedToken, Error, PublicKey, SignedBatchWithProof, SignedToken,
    TokenServer, Transcript,
};
use rand_chacha::rand_core::{self, CryptoRng, RngCore};
use serde_json::Value;

fn golden() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testvectors/go-golden.json"
    );
    let all: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    all["batch_proof"].clone()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

fn hex32(v: &Value) -> [u8; 32] {
    hex::decode(s(v)).unwrap().try_into().unwrap()
}

fn hex64(v: &Value) -> [u8; 64] {
    hex::decode(s(v)).unwrap().try_into().unwrap()
}

/// An RNG that replays fixed bytes, then refuses to give more.
struct ReplayRng {
    bytes: Vec<u8>,
    pos: usize,
}

impl RngCore for ReplayRng {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let end = self.pos + dest.len();
        assert!(end <= self.bytes.len(), "ReplayRng exhausted");
        dest.copy_from_slice(&self.bytes[self.pos..end]);
        self.pos = end;
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for ReplayRng {}

/// The transcript as the token app leaves it before the batch proof.
fn prefix() -> Transcript {
    let mut t = Transcript::new("tapir-transcript");
    t.new_protocol("token-app");
    t
}

fn server(g: &Value) -> TokenServer {
    let k = Scalar::from_bytes_mod_order_wide(&hex64(&g["k_uniform_in"]));
    TokenServer::from_secret_bytes(&k.to_bytes()).unwrap()
}

fn blinded(g: &Value) -> Vec<BlindedToken> {
    g["P"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| BlindedToken::from_bytes(&hex32(p)).unwrap())
        .collect()
}

#[test]
fn go_golden_batch_proof_is_reproduced() {
    let g = golden();
    assert_eq!(
        s(&g["transcript_ops"]),
        "new(tapir-transcript); protocol=token-app; protocol=privacy-pass-batch-proof; X-batch; \
         Y-batch; P-vector; Q-vector; extract w -> math/rand; X,Y,P=M,Q=Z,A,B; extract c"
    );
    let server = server(&g);
    assert_eq!(hex::encode(server.public_key().to_bytes()), s(&g["Y"]));

    let p = blinded(&g);
    let mut rng = ReplayRng {
        bytes: hex::decode(s(&g["t_uniform_in"])).unwrap(),
        pos: 0,
    };
    let mut transcript = prefix();
    let batch = server.sign_batch(&p, &mut transcript, &mut rng).unwrap();
    assert_eq!(
        rng.pos, 64,
        "sign_batch must draw exactly the 64-byte DLEQ nonce"
    );

    let q: Vec<String> = batch
        .signed_tokens
        .iter()
        .map(|q| hex::encode(q.to_bytes()))
        .collect();
    let want_q: Vec<&str> = g["Q"].as_array().unwrap().iter().map(s).collect();
    assert_eq!(q, want_q);
    assert_eq!(hex::encode(batch.proof.c_bytes()), s(&g["c"]));
    assert_eq!(hex::encode(batch.proof.s_bytes()), s(&g["s"]));

    assert_eq!(go_fmt_v_blinded(&p), s(&g["fmt_v_blinded"]));
    assert_eq!(go_fmt_v_signed(&batch.signed_tokens), s(&g["fmt_v_signed"]));
    assert_eq!(go_fmt_v_blinded(&[]), s(&g["fmt_v_empty"]));
    assert_eq!(go_fmt_v_signed(&[]), s(&g["fmt_v_empty"]));
    assert_eq!(
        String::from_utf8(blinded_batch_to_json(&p)).unwrap(),
        s(&g["json_blinded"])
    );
    assert_eq!(
        String::from_utf8(batch.to_json()).unwrap(),
        s(&g["json_signed_batch_short_tags"])
    );
}

/// `M = Σ c_i·P_i` and `Z = Σ c_i·Q_i` with `c_i` from `CommitToPRNG("w")`, recomputed here
/// from the public primitives, so the folding step is checked on its own.
#[test]
fn go_golden_batch_folding() {
    let g = golden();
    let y = PublicKey::from_bytes(&hex32(&g["Y"])).unwrap();
    let p = blinded(&g);
    let q: Vec<SignedToken> = g["Q"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| SignedToken::from_bytes(&hex32(q)).unwrap())
        .collect();
    let mut t = prefix();
    t.new_protocol("privacy-pass-batch-proof");
    t.append(
        "X-batch",
        curve25519_dalek::constants::RISTRETTO_BASEPOINT_COMPRESSED.as_bytes(),
    );
    t.append("Y-batch", &y.to_bytes());
    t.append("P-vector", go_fmt_v_blinded(&p).as_bytes());
    t.append("Q-vector", go_fmt_v_signed(&q).as_bytes());
    let mut prng = t.commit_prng("w");
    let mut m = RistrettoPoint::default();
    let mut z = RistrettoPoint::default();
    for (p, q) in p.iter().zip(&q) {
        let c = prng.next_scalar();
        let pp = curve25519_dalek::ristretto::CompressedRistretto(p.to_bytes())
            .decompress()
            .unwrap();
        let qq = curve25519_dalek::ristretto::CompressedRistretto(q.to_bytes())
            .decompress()
            .unwrap();
        m += c * pp;
        z += c * qq;
    }
    assert_eq!(hex::encode(m.compress().to_bytes()), s(&g["M"]));
    assert_eq!(hex::encode(z.compress().to_bytes()), s(&g["Z"]));
}

/// The Go-made proof verifies on the client path, from the Go JSON bytes.
#[test]
fn go_golden_proof_verifies_on_client_path() {
    let g = golden();
    let y = PublicKey::from_bytes(&hex32(&g["Y"])).unwrap();
    let p = blinded_batch_from_json(s(&g["json_blinded"]).as_bytes()).unwrap();
    assert_eq!(p, blinded(&g));
    let batch =
        SignedBatchWithProof::from_json(s(&g["json_signed_batch_short_tags"]).as_bytes()).unwrap();
    verify_batch_proof(&p, &batch, &y, &mut prefix()).unwrap();

    // A different transcript prefix, key, or token order fails.
    let mut other = Transcript::new("tapir-transcript");
    other.new_protocol("token-app ");
    assert!(matches!(
        verify_batch_proof(&p, &batch, &y, &mut other),
        Err(Error::BadProof)
    ));
    let wrong_y = PublicKey::from_bytes(&p[0].to_bytes()).unwrap();
    assert!(matches!(
        verify_batch_proof(&p, &batch, &wrong_y, &mut prefix()),
        Err(Error::BadProof)
    ));
    let mut swapped = batch.clone();
    swapped.signed_tokens.swap(0, 1);
    assert!(matches!(
        verify_batch_proof(&p, &swapped, &y, &mut prefix()),
        Err(Error::BadProof)
    ));
}

/// The untagged Go field names decode to the same batch.
#[test]
fn go_field_names_are_accepted() {
    let g = golden();
    let short = s(&g["json_signed_batch_short_tags"]);
    let long = short
        .replace("\"st\":", "\"SignedTokens\":")
        .replace("\"dp\":", "\"Proof\":");
    let lower = short
        .replace("\"st\":", "\"signedtokens\":")
        .replace("\"dp\":", "\"PROOF\":")
        .replace("\"Q\":", "\"q\":");
    let want = SignedBatchWithProof::from_json(short.as_bytes()).unwrap();
    assert_eq!(
        SignedBatchWithProof::from_json(long.as_bytes()).unwrap(),
        want
    );
    assert_eq!(
        SignedBatchWithProof::from_json(lower.as_bytes()).unwrap(),
        want
    );
    // Re-encoding always uses the short tags.
    assert_eq!(want.to_json(), short.as_bytes());
}
