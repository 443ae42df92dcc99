//! `testvectors/go-golden.json` → `json`: Go 1.19 `encoding/json` output of the wire structs,
//! made by a Go program against the real Go libraries (see `testvectors/README.md`).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::collections::BTreeMap;

use base64::Engine as _;
use cwtch_model::gojson;
use cwtch_model::keybundle::{KEY_TYPE_PRIVACY_PASS, KEY_TYPE_SERVER_ONION, KEY_TYPE_TOKEN_ONION};
use cwtch_model::tokenboard::{
    NewMessage, PostRequest, PostResult, ReplayRequest, ReplayResult, SpentToken,
};
use cwtch_model::{DecryptedGroupMessage, EncryptedGroupMessage, KeyBundle, Message, Payload};
use serde_json::Value;

const GOLDEN: &str = include_str!("../../../testvectors/go-golden.json");

fn golden() -> Value {
    serde_json::from_str::<Value>(GOLDEN).unwrap()["json"].clone()
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

/// A Go `[]byte` field as serde_json sees it.
fn go_bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(b64(s)),
        other => panic!("not a []byte: {other}"),
    }
}

#[test]
fn dgm_cases_encode_byte_identically_from_text_bytes() {
    let cases = golden()["dgm"].as_array().unwrap().clone();
    assert_eq!(cases.len(), 6);
    for (n, case) in cases.iter().enumerate() {
        let expected = case["json"].as_str().unwrap();
        let text = hex::decode(case["text_hex"].as_str().unwrap()).unwrap();
        let fields: Value = serde_json::from_str(expected).unwrap();
        let dgm = DecryptedGroupMessage {
            text: text.clone(),
            onion: fields["Onion"].as_str().unwrap().to_string(),
            timestamp: fields["Timestamp"].as_u64().unwrap(),
            signed_group_id: go_bytes(&fields["SignedGroupID"]),
            previous_message_sig: go_bytes(&fields["PreviousMessageSig"]),
            padding: go_bytes(&fields["Padding"]),
        };
        assert_eq!(
            String::from_utf8(dgm.to_json()).unwrap(),
            expected,
            "case {n}: encoding differs from Go"
        );
        // Decoding gives Go's view of the text: the bytes, with what is not UTF-8 replaced.
        let decoded = DecryptedGroupMessage::from_json(expected.as_bytes()).unwrap();
        assert_eq!(
            decoded.text,
            gojson::go_lossy_utf8(&text).into_bytes(),
            "case {n}"
        );
        assert_eq!(decoded.onion, dgm.onion);
        assert_eq!(decoded.timestamp, dgm.timestamp);
        assert_eq!(decoded.signed_group_id, dgm.signed_group_id);
        assert_eq!(decoded.previous_message_sig, dgm.previous_message_sig);
        assert_eq!(decoded.padding, dgm.padding);
    }
}

#[test]
fn dgm_cases_decode_and_reencode_like_go() {
    let cases = golden()["dgm"].as_array().unwrap().clone();
    for (n, case) in cases.iter().enumerate() {
        let expected = case["json"].as_str().unwrap();
        let text = hex::decode(case["text_hex"].as_str().unwrap()).unwrap();
        let again = DecryptedGroupMessage::from_json(expected.as_bytes())
            .unwrap()
            .to_json();
        if std::str::from_utf8(&text).is_ok() {
            assert_eq!(String::from_utf8(again).unwrap(), expected, "case {n}");
        } else {
            // Case 4: Go writes each invalid byte as the escape `\ufffd`, but decoding that
            // escape gives a real U+FFFD, which Go (and we) then write as the character itself.
            // So neither Go nor this crate re-encodes it to the same bytes.
            assert_eq!(n, 4);
            assert_eq!(
                String::from_utf8(again).unwrap(),
                expected.replace("\\ufffd", "\u{fffd}"),
                "case {n}"
            );
        }
    }
}

#[test]
fn key_bundle_with_null_signature() {
    let expected = golden()["key_bundle"].as_str().unwrap().to_string();
    let mut keys = BTreeMap::new();
    // Inserted out of order: the encoding sorts.
    keys.insert(KEY_TYPE_TOKEN_ONION.to_string(), "b".to_string());
    keys.insert(KEY_TYPE_SERVER_ONION.to_string(), "a".to_string());
    keys.insert(KEY_TYPE_PRIVACY_PASS.to_string(), "c".to_string());
    let kb = KeyBundle {
        keys,
        signature: None,
    };
    assert_eq!(String::from_utf8(kb.to_json()).unwrap(), expected);
    assert_eq!(String::from_utf8(kb.signed_bytes()).unwrap(), expected);
    let decoded = KeyBundle::from_json(expected.as_bytes()).unwrap();
    assert_eq!(decoded, kb);
    assert_eq!(decoded.to_json(), expected.as_bytes());
}

/// The nine golden token-board strings, built independently of the decoder.
fn golden_messages() -> Vec<Vec<u8>> {
    let egm = || EncryptedGroupMessage {
        ciphertext: Some(b"ct".to_vec()),
        signature: Some(b"sig".to_vec()),
    };
    let msgs = [
        Payload::ReplayRequest(ReplayRequest { last_commit: None }),
        Payload::ReplayRequest(ReplayRequest {
            last_commit: Some(b"sig".to_vec()),
        }),
        Payload::ReplayResult(ReplayResult { num_messages: 3 }),
        Payload::PostRequest(PostRequest {
            token: SpentToken {
                t: Some(b"t".to_vec()),
                mac: Some(b"m".to_vec()),
            },
            egm: egm(),
        }),
        Payload::PostResult(PostResult { success: true }),
        Payload::PostResult(PostResult { success: false }),
        Payload::NewMessage(NewMessage { egm: egm() }),
    ];
    let mut out: Vec<Vec<u8>> = msgs
        .into_iter()
        .map(|p| Message::from(p).to_json())
        .collect();
    out.push(egm().to_bytes());
    out.push(EncryptedGroupMessage::default().to_bytes());
    out
}

#[test]
fn token_board_messages_encode_like_go() {
    let golden = golden()["messages"].as_array().unwrap().clone();
    let ours = golden_messages();
    assert_eq!(golden.len(), 9);
    for (n, (g, o)) in golden.iter().zip(&ours).enumerate() {
        assert_eq!(
            g.as_str().unwrap(),
            String::from_utf8(o.clone()).unwrap(),
            "message {n}"
        );
    }
}

#[test]
fn token_board_messages_decode_and_reencode() {
    let golden = golden()["messages"].as_array().unwrap().clone();
    let expected_types = [0, 0, 1, 2, 3, 3, 4];
    for (n, g) in golden.iter().enumerate() {
        let g = g.as_str().unwrap().as_bytes();
        if n < 7 {
            let m = Message::from_json(g).unwrap();
            assert_eq!(m.message_type.0, expected_types[n]);
            assert_eq!(m.to_json(), g, "message {n}");
            // Exactly the selected payload is present, and the typed view finds it.
            let p = m.clone().into_payload().unwrap();
            assert!(!matches!(p, Payload::Unknown(_)));
            assert_eq!(Message::from(p), m, "message {n}");
        } else {
            // The last two are bare EGMs, as sent during a replay.
            let egm = EncryptedGroupMessage::from_json(g).unwrap();
            assert_eq!(egm.to_bytes(), g, "message {n}");
        }
    }
}

#[test]
fn auth_message_with_the_gojson_helpers() {
    let expected = golden()["auth_message"].as_str().unwrap().to_string();
    let fields: Value = serde_json::from_str(&expected).unwrap();
    let long_term = b64(fields["LongTermPublicKey"].as_str().unwrap());
    let ephemeral = b64(fields["EphemeralPublicKey"].as_str().unwrap());
    assert_eq!((long_term.len(), ephemeral.len()), (32, 32));
    let mut out = Vec::new();
    gojson::object(&mut out, |o| {
        o.bytes("LongTermPublicKey", Some(&long_term))
            .bytes("EphemeralPublicKey", Some(&ephemeral));
    });
    assert_eq!(String::from_utf8(out).unwrap(), expected);
}
