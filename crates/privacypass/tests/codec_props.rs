//! Property tests for the wire codecs: encode∘decode is the identity, and no input panics.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use curve25519_dalek::{RistrettoPoint, Scalar};
use privacypass::{
    blinded_batch_from_json, blinded_batch_json_len, blinded_batch_to_json, go_fmt_v_blinded,
    signed_batch_json_len, BlindedToken, DleqProof, PublicKey, SignedBatchWithProof, SignedToken,
    SpentToken, Token, TokenServer,
};
use proptest::prelude::*;

fn wide() -> impl Strategy<Value = [u8; 64]> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
        let mut w = [0u8; 64];
        w[..32].copy_from_slice(&a);
        w[32..].copy_from_slice(&b);
        w
    })
}

fn point_bytes() -> impl Strategy<Value = [u8; 32]> {
    wide().prop_map(|w| RistrettoPoint::from_uniform_bytes(&w).compress().to_bytes())
}

fn scalar_bytes() -> impl Strategy<Value = [u8; 32]> {
    wide().prop_map(|w| Scalar::from_bytes_mod_order_wide(&w).to_bytes())
}

fn blinded_batch() -> impl Strategy<Value = Vec<BlindedToken>> {
    prop::collection::vec(point_bytes(), 0..12).prop_map(|v| {
        v.iter()
            .map(|b| BlindedToken::from_bytes(b).unwrap())
            .collect()
    })
}

fn signed_batch() -> impl Strategy<Value = SignedBatchWithProof> {
    (
        prop::collection::vec(point_bytes(), 0..12),
        scalar_bytes(),
        scalar_bytes(),
    )
        .prop_map(|(q, c, s)| SignedBatchWithProof {
            signed_tokens: q
                .iter()
                .map(|b| SignedToken::from_bytes(b).unwrap())
                .collect(),
            proof: DleqProof::from_bytes(&c, &s).unwrap(),
        })
}

fn spent_token() -> impl Strategy<Value = SpentToken> {
    (any::<[u8; 32]>(), wide()).prop_map(|(t, mac)| SpentToken { t, mac })
}

/// Strings shaped like the messages, with arbitrary field contents, to reach the value
/// checks rather than stop at the JSON parser.
fn json_like() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("P"),
        Just("Q"),
        Just("C"),
        Just("S"),
        Just("T"),
        Just("MAC"),
        Just("st"),
        Just("dp"),
        Just("SignedTokens"),
        Just("proof"),
    ];
    let value = prop_oneof![
        "[A-Za-z0-9+/=]{0,90}".prop_map(|s| format!("\"{s}\"")),
        Just("null".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
    ];
    let field = (key, value).prop_map(|(k, v)| format!("\"{k}\":{v}"));
    let object = prop::collection::vec(field, 0..4).prop_map(|f| format!("{{{}}}", f.join(",")));
    let leaf = prop_oneof![object.clone(), object.prop_map(|o| format!("[{o}]"))];
    leaf.prop_recursive(2, 8, 3, |inner| {
        (inner.clone(), inner).prop_map(|(a, b)| format!("{{\"st\":[{a}],\"dp\":{b}}}"))
    })
}

fn decode_all(bytes: &[u8]) {
    let _ = blinded_batch_from_json(bytes);
    let _ = SignedBatchWithProof::from_json(bytes);
    let _ = SpentToken::from_json(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = PublicKey::from_base64(text);
        let _ = TokenServer::from_secret_base64(text);
    }
}

proptest! {
    #[test]
    fn blinded_batch_round_trips(batch in blinded_batch()) {
        let json = blinded_batch_to_json(&batch);
        prop_assert_eq!(json.len(), blinded_batch_json_len(batch.len()));
        prop_assert_eq!(blinded_batch_from_json(&json).unwrap(), batch.clone());
        // %v is the same list in Go's other syntax.
        let fmt = go_fmt_v_blinded(&batch);
        prop_assert_eq!(fmt.matches('{').count(), batch.len());
    }

    #[test]
    fn signed_batch_round_trips(batch in signed_batch()) {
        let json = batch.to_json();
        prop_assert_eq!(json.len(), signed_batch_json_len(batch.signed_tokens.len()));
        prop_assert_eq!(SignedBatchWithProof::from_json(&json).unwrap(), batch);
    }

    #[test]
    fn spent_token_round_trips(spent in spent_token()) {
        prop_assert_eq!(SpentToken::from_json(&spent.to_json()).unwrap(), spent);
    }

    #[test]
    fn token_bytes_round_trip(t in any::<[u8; 32]>(), w in point_bytes()) {
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(&t);
        bytes[32..].copy_from_slice(&w);
        let token = Token::from_bytes(&bytes).unwrap();
        prop_assert_eq!(*token.to_bytes(), bytes);
    }

    #[test]
    fn arbitrary_token_bytes_never_panic(a in any::<[u8; 32]>(), b in any::<[u8; 32]>()) {
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(&a);
        bytes[32..].copy_from_slice(&b);
        if let Ok(token) = Token::from_bytes(&bytes) {
            prop_assert_eq!(*token.to_bytes(), bytes);
        }
        let _ = BlindedToken::from_bytes(&a);
        let _ = SignedToken::from_bytes(&a);
        let _ = PublicKey::from_bytes(&a);
        let _ = DleqProof::from_bytes(&a, &b);
        let _ = TokenServer::from_secret_bytes(&a);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&bytes);
    }

    #[test]
    fn json_like_input_never_panics(text in json_like()) {
        decode_all(text.as_bytes());
    }
}
