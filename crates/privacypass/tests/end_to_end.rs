//! Issuance and redemption end to end, and the ways they must fail.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::sync::Arc;

use privacypass::{
    blind_batch, blinded_batch_from_json, blinded_batch_to_json, unblind_batch, verify_batch_proof,
    BlindedToken, DleqProof, Error, MemorySpentTokens, PublicKey, SignedBatchWithProof,
    SignedToken, SpentToken, SpentTokenStore, StoreError, Token, TokenServer, Transcript,
    DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// The connection transcript as both sides hold it when the token app starts.
fn transcript() -> Transcript {
    let mut t = Transcript::new("tapir-transcript");
    t.new_protocol("pow-app");
    t.append("pow-seed", b"some seed");
    t.new_protocol("token-app");
    t
}

/// One issuance over the wire (JSON both ways), returning the client's tokens.
fn issue(server: &TokenServer, n: usize, rng: &mut ChaCha20Rng) -> Vec<Token> {
    let (unsigned, blinded) = blind_batch(n, rng);
    let request = blinded_batch_to_json(&blinded);
    let received = blinded_batch_from_json(&request).unwrap();
    let reply = server
        .sign_batch(&received, &mut transcript(), rng)
        .unwrap()
        .to_json();
    let batch = SignedBatchWithProof::from_json(&reply).unwrap();
    unblind_batch(
        unsigned,
        &blinded,
        &batch,
        &server.public_key(),
        &mut transcript(),
    )
    .unwrap()
}

#[test]
fn issue_spend_redeem() {
    let mut rng = rng(1);
    let server = TokenServer::generate(&mut rng);
    let store = MemorySpentTokens::new();
    let tokens = issue(&server, DEFAULT_BATCH_SIZE, &mut rng);
    assert_eq!(tokens.len(), DEFAULT_BATCH_SIZE);
    for (i, token) in tokens.iter().enumerate() {
        let data = format!("message {i}");
        let spent = SpentToken::from_json(&token.spend(data.as_bytes()).to_json()).unwrap();
        server.redeem(&spent, data.as_bytes(), &store).unwrap();
    }
    assert_eq!(store.len(), DEFAULT_BATCH_SIZE);
}

#[test]
fn double_spend_is_rejected() {
    let mut rng = rng(2);
    let server = TokenServer::generate(&mut rng);
    let store = MemorySpentTokens::new();
    let token = issue(&server, 1, &mut rng).remove(0);
    server.redeem(&token.spend(b"a"), b"a", &store).unwrap();
    assert!(matches!(
        server.redeem(&token.spend(b"a"), b"a", &store),
        Err(Error::DoubleSpend)
    ));
    assert!(matches!(
        server.redeem(&token.spend(b"b"), b"b", &store),
        Err(Error::DoubleSpend)
    ));
}

#[test]
fn wrong_data_is_invalid_mac_and_does_not_burn_the_token() {
    let mut rng = rng(3);
    let server = TokenServer::generate(&mut rng);
    let store = MemorySpentTokens::new();
    let token = issue(&server, 1, &mut rng).remove(0);
    let spent = token.spend(b"the real post");
    assert!(matches!(
        server.redeem(&spent, b"another post", &store),
        Err(Error::InvalidMac)
    ));
    // An attacker who saw t cannot burn it with a made-up MAC either.
    let forged = SpentToken {
        t: spent.t,
        mac: [0u8; 64],
    };
    assert!(matches!(
        server.redeem(&forged, b"the real post", &store),
        Err(Error::InvalidMac)
    ));
    assert!(store.is_empty());
    server.redeem(&spent, b"the real post", &store).unwrap();
}

#[test]
fn verify_checks_the_mac_only() {
    let mut rng = rng(8);
    let server = TokenServer::generate(&mut rng);
    let other = TokenServer::generate(&mut rng);
    let token = issue(&server, 1, &mut rng).remove(0);
    let spent = token.spend(b"post");
    server.verify(&spent, b"post").unwrap();
    // Remembers nothing: the caller records the spend (and refuses the second one).
    server.verify(&spent, b"post").unwrap();
    assert!(matches!(
        server.verify(&spent, b"another post"),
        Err(Error::InvalidMac)
    ));
    assert!(matches!(
        other.verify(&spent, b"post"),
        Err(Error::InvalidMac)
    ));
    let forged = SpentToken {
        t: spent.t,
        mac: [0u8; 64],
    };
    assert!(matches!(
        server.verify(&forged, b"post"),
        Err(Error::InvalidMac)
    ));
}

#[test]
fn token_from_another_server_is_invalid_mac() {
    let mut rng = rng(4);
    let a = TokenServer::generate(&mut rng);
    let b = TokenServer::generate(&mut rng);
    let store = MemorySpentTokens::new();
    let token = issue(&a, 1, &mut rng).remove(0);
    assert!(matches!(
        b.redeem(&token.spend(b"x"), b"x", &store),
        Err(Error::InvalidMac)
    ));
    assert!(store.is_empty());
}

/// Sign with `server`, then let `tamper` change the reply before the client sees it.
fn tampered(
    seed: u64,
    tamper: impl FnOnce(&mut SignedBatchWithProof, &[BlindedToken]),
) -> Result<Vec<Token>, Error> {
    let mut rng = rng(seed);
    let server = TokenServer::generate(&mut rng);
    let (unsigned, blinded) = blind_batch(4, &mut rng);
    let mut batch = server
        .sign_batch(&blinded, &mut transcript(), &mut rng)
        .unwrap();
    tamper(&mut batch, &blinded);
    unblind_batch(
        unsigned,
        &blinded,
        &batch,
        &server.public_key(),
        &mut transcript(),
    )
}

fn flip_low_bit(b: [u8; 32]) -> [u8; 32] {
    let mut b = b;
    b[0] ^= 1;
    b
}

#[test]
fn untampered_reply_is_accepted() {
    assert_eq!(tampered(5, |_, _| {}).unwrap().len(), 4);
}

#[test]
fn forged_proofs_are_rejected() {
    let flip_c = |b: &mut SignedBatchWithProof, _: &[BlindedToken]| {
        b.proof =
            DleqProof::from_bytes(&flip_low_bit(b.proof.c_bytes()), &b.proof.s_bytes()).unwrap();
    };
    let flip_s = |b: &mut SignedBatchWithProof, _: &[BlindedToken]| {
        b.proof =
            DleqProof::from_bytes(&b.proof.c_bytes(), &flip_low_bit(b.proof.s_bytes())).unwrap();
    };
    // One Q signed with a different key: the tagging attack the proof exists to stop.
    let swap_q = |b: &mut SignedBatchWithProof, p: &[BlindedToken]| {
        let other = TokenServer::generate(&mut rng(99));
        let q = other
            .sign_batch(&p[2..3], &mut transcript(), &mut rng(98))
            .unwrap();
        b.signed_tokens[2] = q.signed_tokens[0];
    };
    let reorder = |b: &mut SignedBatchWithProof, _: &[BlindedToken]| b.signed_tokens.swap(0, 3);
    let echo_p = |b: &mut SignedBatchWithProof, p: &[BlindedToken]| {
        b.signed_tokens[1] = SignedToken::from_bytes(&p[1].to_bytes()).unwrap();
    };
    assert!(matches!(tampered(6, flip_c), Err(Error::BadProof)));
    assert!(matches!(tampered(6, flip_s), Err(Error::BadProof)));
    assert!(matches!(tampered(6, swap_q), Err(Error::BadProof)));
    assert!(matches!(tampered(6, reorder), Err(Error::BadProof)));
    assert!(matches!(tampered(6, echo_p), Err(Error::BadProof)));
}

#[test]
fn whole_batch_from_another_server_is_rejected() {
    let mut rng = rng(7);
    let server = TokenServer::generate(&mut rng);
    let impostor = TokenServer::generate(&mut rng);
    let (unsigned, blinded) = blind_batch(3, &mut rng);
    let batch = impostor
        .sign_batch(&blinded, &mut transcript(), &mut rng)
        .unwrap();
    assert!(matches!(
        unblind_batch(
            unsigned,
            &blinded,
            &batch,
            &server.public_key(),
            &mut transcript()
        ),
        Err(Error::BadProof)
    ));
}

#[test]
fn transcript_mismatch_is_bad_proof() {
    let mut rng = rng(8);
    let server = TokenServer::generate(&mut rng);
    let (unsigned, blinded) = blind_batch(3, &mut rng);
    let batch = server
        .sign_batch(&blinded, &mut transcript(), &mut rng)
        .unwrap();
    let mut client = Transcript::new("tapir-transcript");
    client.new_protocol("pow-app");
    client.append("pow-seed", b"another seed");
    client.new_protocol("token-app");
    assert!(matches!(
        unblind_batch(
            unsigned,
            &blinded,
            &batch,
            &server.public_key(),
            &mut client
        ),
        Err(Error::BadProof)
    ));
}

#[test]
fn count_mismatch_is_an_error() {
    let mut rng = rng(9);
    let server = TokenServer::generate(&mut rng);
    let (unsigned, blinded) = blind_batch(3, &mut rng);
    let mut batch = server
        .sign_batch(&blinded, &mut transcript(), &mut rng)
        .unwrap();
    batch.signed_tokens.pop();
    assert!(matches!(
        unblind_batch(
            unsigned,
            &blinded,
            &batch,
            &server.public_key(),
            &mut transcript()
        ),
        Err(Error::CountMismatch {
            unsigned: 3,
            blinded: 3,
            signed: 2
        })
    ));
    let (mut unsigned, blinded) = blind_batch(3, &mut rng);
    let batch = server
        .sign_batch(&blinded, &mut transcript(), &mut rng)
        .unwrap();
    unsigned.pop();
    assert!(matches!(
        unblind_batch(
            unsigned,
            &blinded,
            &batch,
            &server.public_key(),
            &mut transcript()
        ),
        Err(Error::CountMismatch { unsigned: 2, .. })
    ));
    let empty = SignedBatchWithProof {
        signed_tokens: vec![],
        proof: batch.proof,
    };
    assert!(matches!(
        verify_batch_proof(&[], &empty, &server.public_key(), &mut transcript()),
        Err(Error::BatchSize { size: 0, .. })
    ));
}

#[test]
fn batch_size_limits() {
    let mut rng = rng(10);
    let server = TokenServer::generate(&mut rng);
    assert!(matches!(
        server.sign_batch(&[], &mut transcript(), &mut rng),
        Err(Error::BatchSize { size: 0, max }) if max == MAX_BATCH_SIZE
    ));
    let (_, blinded) = blind_batch(MAX_BATCH_SIZE + 1, &mut rng);
    assert!(matches!(
        server.sign_batch(&blinded, &mut transcript(), &mut rng),
        Err(Error::BatchSize { size, .. }) if size == MAX_BATCH_SIZE + 1
    ));
    let batch = server
        .sign_batch(&blinded[..MAX_BATCH_SIZE], &mut transcript(), &mut rng)
        .unwrap();
    assert_eq!(batch.signed_tokens.len(), MAX_BATCH_SIZE);
}

#[test]
fn concurrent_redemptions_spend_once() {
    let mut rng = rng(11);
    let server = Arc::new(TokenServer::generate(&mut rng));
    let store = Arc::new(MemorySpentTokens::new());
    let token = issue(&server, 1, &mut rng).remove(0);
    let spent = token.spend(b"post");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (server, store, spent) = (server.clone(), store.clone(), spent.clone());
            std::thread::spawn(move || server.redeem(&spent, b"post", &*store))
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results
        .iter()
        .all(|r| matches!(r, Ok(()) | Err(Error::DoubleSpend))));
}

/// A store that loses a race (or fails) is reported, never treated as success.
struct FlakyStore {
    mark_result: Result<bool, &'static str>,
}

impl SpentTokenStore for FlakyStore {
    fn is_spent(&self, _: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(false)
    }
    fn mark_spent(&self, _: &[u8; 32]) -> Result<bool, StoreError> {
        self.mark_result.map_err(StoreError::new)
    }
}

#[test]
fn store_results_are_respected() {
    let mut rng = rng(12);
    let server = TokenServer::generate(&mut rng);
    let token = issue(&server, 1, &mut rng).remove(0);
    let spent = token.spend(b"d");
    let lost_race = FlakyStore {
        mark_result: Ok(false),
    };
    assert!(matches!(
        server.redeem(&spent, b"d", &lost_race),
        Err(Error::DoubleSpend)
    ));
    let broken = FlakyStore {
        mark_result: Err("disk full"),
    };
    match server.redeem(&spent, b"d", &broken) {
        Err(Error::Store(e)) => assert_eq!(e.inner().to_string(), "disk full"),
        other => panic!("expected a store error, got {other:?}"),
    }
}

#[test]
fn persisted_tokens_still_spend() {
    let mut rng = rng(13);
    let server = TokenServer::generate(&mut rng);
    let store = MemorySpentTokens::new();
    let token = issue(&server, 1, &mut rng).remove(0);
    let restored = Token::from_bytes(&token.to_bytes()).unwrap();
    assert_eq!(*restored.to_bytes(), *token.to_bytes());
    assert_eq!(restored.spend(b"z"), token.spend(b"z"));
    server.redeem(&restored.spend(b"z"), b"z", &store).unwrap();
    let mut bad = *token.to_bytes();
    bad[32..].fill(0xff);
    assert!(matches!(Token::from_bytes(&bad), Err(Error::InvalidPoint)));
}

#[test]
fn server_keys_round_trip_and_reject_bad_scalars() {
    let mut rng = rng(14);
    let server = TokenServer::generate(&mut rng);
    let again = TokenServer::from_secret_bytes(&server.secret_bytes()).unwrap();
    assert_eq!(again.public_key(), server.public_key());
    let again = TokenServer::from_secret_base64(&server.secret_base64()).unwrap();
    assert_eq!(again.public_key(), server.public_key());
    assert!(matches!(
        TokenServer::from_secret_bytes(&[0u8; 32]),
        Err(Error::InvalidScalar)
    ));
    assert!(matches!(
        TokenServer::from_secret_bytes(&[0xff; 32]),
        Err(Error::InvalidScalar)
    ));
    let y = server.public_key();
    assert_eq!(PublicKey::from_base64(&y.to_base64()).unwrap(), y);
    assert_eq!(y.to_string(), y.to_base64());
    assert_eq!(PublicKey::from_bytes(&y.to_bytes()).unwrap(), y);
    // Debug output never shows the secret.
    let dbg = format!("{server:?}");
    assert!(!dbg.contains(&*server.secret_base64()));
}

/// The real Cwtch server key bundles (testvectors/vectors.json, cwtch v0.20.3) publish Y
/// in Go's text form; it must parse and re-encode identically.
#[test]
fn real_bundle_public_keys_parse() {
    for y in [
        "MIX/w/eJxt8M6LEnS6u51+EA5T4UYcuHgwzLIkbHdyY=",
        "ivRsR9Ci0gjXxcNNKIUj97pAMkvwaWUmknV2yNSyVCg=",
    ] {
        assert_eq!(PublicKey::from_base64(y).unwrap().to_base64(), y);
    }
}

#[test]
fn decoders_report_typed_errors() {
    let p = "3Bw7Z7MsUsvmtft+9nzNqQx7PHu+gnM742A04IUnBEY=";
    type Check = fn(&Error) -> bool;
    let cases: Vec<(String, Check)> = vec![
        ("[{\"P\":\"!!!\"}]".into(), |e| {
            matches!(e, Error::InvalidBase64 { field: "P" })
        }),
        ("[{\"P\":\"AAAA\"}]".into(), |e| {
            matches!(
                e,
                Error::InvalidLength {
                    field: "P",
                    expected: 32,
                    actual: 3
                }
            )
        }),
        (format!("[{{\"P\":\"{}\"}}]", "/".repeat(43) + "="), |e| {
            matches!(e, Error::InvalidBase64 { .. } | Error::InvalidPoint)
        }),
        (
            // 32 bytes of 0xff: not a canonical field element.
            "[{\"P\":\"//////////////////////////////////////////8=\"}]".into(),
            |e| matches!(e, Error::InvalidPoint),
        ),
        ("[{\"X\":\"y\"}]".into(), |e| {
            matches!(e, Error::MissingField { field: "P" })
        }),
        ("[{\"P\":null}]".into(), |e| {
            matches!(e, Error::MissingField { field: "P" })
        }),
        ("[null]".into(), |e| matches!(e, Error::BadJson(_))),
        ("{}".into(), |e| matches!(e, Error::BadJson(_))),
        (format!("[{{\"P\":\"{p}\"}}] x"), |e| {
            matches!(e, Error::BadJson(_))
        }),
    ];
    for (input, ok) in cases {
        let err = blinded_batch_from_json(input.as_bytes()).unwrap_err();
        assert!(ok(&err), "{input}: {err:?}");
    }
    // Unknown keys are ignored and the last occurrence wins, as in Go.
    let two = format!("[{{\"x\":[1,{{}}],\"P\":\"AAAA\",\"p\":\"{p}\"}}]");
    assert_eq!(blinded_batch_from_json(two.as_bytes()).unwrap().len(), 1);

    let bad_scalar = "{\"st\":[],\"dp\":{\"C\":\"//////////////////////////////////////////8=\",\"S\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}}";
    assert!(matches!(
        SignedBatchWithProof::from_json(bad_scalar.as_bytes()),
        Err(Error::InvalidScalar)
    ));
    assert!(matches!(
        SignedBatchWithProof::from_json(b"{\"st\":[]}"),
        Err(Error::MissingField { field: "dp" })
    ));
    assert!(matches!(
        SignedBatchWithProof::from_json(b"{\"dp\":{}}"),
        Err(Error::MissingField { field: "st" })
    ));
    assert!(matches!(
        SpentToken::from_json(b"{\"T\":\"AAAA\",\"MAC\":\"AAAA\"}"),
        Err(Error::InvalidLength {
            field: "T",
            expected: 32,
            actual: 3
        })
    ));
    assert!(matches!(
        SpentToken::from_json(b"{\"T\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}"),
        Err(Error::MissingField { field: "MAC" })
    ));
}

#[test]
fn spent_token_json_is_go_shaped() {
    let spent = SpentToken {
        t: [1u8; 32],
        mac: [2u8; 64],
    };
    let json = String::from_utf8(spent.to_json()).unwrap();
    assert_eq!(
        json,
        "{\"T\":\"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\",\"MAC\":\"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg==\"}"
    );
    assert_eq!(SpentToken::from_json(json.as_bytes()).unwrap(), spent);
}
