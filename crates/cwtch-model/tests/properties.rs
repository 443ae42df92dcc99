//! Property tests: Go string escaping, encode∘decode identity for every type, decoders never
//! panic, and the decoder's syntax agrees with an independent parser.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::collections::BTreeMap;

use cwtch_model::gojson::{self, Decoder, GoDecode};
use cwtch_model::tokenboard::{
    NewMessage, PostRequest, PostResult, ReplayRequest, ReplayResult, SpentToken,
};
use cwtch_model::{
    DecryptedGroupMessage, EncryptedGroupMessage, Error, GroupInvite, KeyBundle, Message,
    MessageType, MessageWrapper, TofuBundle,
};
use proptest::prelude::*;
use torv3::Onion;

/// Go's replacement of invalid UTF-8, written independently of the crate: at each position,
/// copy the longest valid prefix; where the next sequence is invalid, Go's `DecodeRune`
/// consumes one byte and yields U+FFFD. (The start of an invalid sequence is the same under
/// Go's and Rust's definitions of well-formed UTF-8; only the amount consumed differs.)
fn reference_go_lossy(mut s: &[u8]) -> String {
    let mut out = String::new();
    loop {
        match std::str::from_utf8(s) {
            Ok(valid) => {
                out.push_str(valid);
                return out;
            }
            Err(e) => {
                let (valid, rest) = s.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap());
                out.push('\u{fffd}');
                s = &rest[1..];
            }
        }
    }
}

/// Bytes rich in UTF-8 edge cases: valid characters of every length, truncated sequences,
/// surrogates, overlongs, out-of-range lead bytes, HTML and control characters.
fn tricky_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        any::<u8>().prop_map(|b| vec![b]),
        any::<char>().prop_map(|c| c.to_string().into_bytes()),
        (any::<char>(), 1usize..4).prop_map(|(c, cut)| {
            let b = c.to_string().into_bytes();
            b[..cut.min(b.len())].to_vec()
        }),
        prop::sample::select(vec![
            b"<".to_vec(),
            b">".to_vec(),
            b"&".to_vec(),
            b"\"".to_vec(),
            b"\\".to_vec(),
            b"\x7f".to_vec(),
            b"\x00".to_vec(),
            b"\x1f".to_vec(),
            "\u{2028}".as_bytes().to_vec(),
            "\u{2029}".as_bytes().to_vec(),
            "\u{fffd}".as_bytes().to_vec(),
            b"\xe2\x82".to_vec(),
            b"\xed\xa0\x80".to_vec(),
            b"\xed\xbf\xbf".to_vec(),
            b"\xf4\x90\x80\x80".to_vec(),
            b"\xc0\xaf".to_vec(),
            b"\xe0\x80\xaf".to_vec(),
            b"\xf0\x80\x80\xaf".to_vec(),
            b"\xf8\x88\x80\x80\x80".to_vec(),
        ]),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

fn opt_bytes() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::of(prop::collection::vec(any::<u8>(), 0..80))
}

fn onion() -> impl Strategy<Value = Onion> {
    any::<[u8; 32]>().prop_map(|k| Onion::from_key_bytes(&k))
}

fn egm() -> impl Strategy<Value = EncryptedGroupMessage> {
    (opt_bytes(), opt_bytes()).prop_map(|(ciphertext, signature)| EncryptedGroupMessage {
        ciphertext,
        signature,
    })
}

fn message() -> impl Strategy<Value = Message> {
    let post_request = (opt_bytes(), opt_bytes(), egm()).prop_map(|(t, mac, egm)| PostRequest {
        token: SpentToken { t, mac },
        egm,
    });
    (
        prop_oneof![0i64..6, any::<i64>()],
        prop::option::of(post_request),
        prop::option::of(any::<bool>().prop_map(|success| PostResult { success })),
        prop::option::of(egm().prop_map(|egm| NewMessage { egm })),
        prop::option::of(opt_bytes().prop_map(|last_commit| ReplayRequest { last_commit })),
        prop::option::of(any::<i64>().prop_map(|num_messages| ReplayResult { num_messages })),
    )
        .prop_map(
            |(t, post_request, post_result, new_message, replay_request, replay_result)| Message {
                message_type: MessageType(t),
                post_request,
                post_result,
                new_message,
                replay_request,
                replay_result,
            },
        )
}

fn dgm(text: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = DecryptedGroupMessage> {
    (
        text,
        ".*",
        any::<u64>(),
        opt_bytes(),
        opt_bytes(),
        opt_bytes(),
    )
        .prop_map(
            |(text, onion, timestamp, signed_group_id, previous_message_sig, padding)| {
                DecryptedGroupMessage {
                    text,
                    onion,
                    timestamp,
                    signed_group_id,
                    previous_message_sig,
                    padding,
                }
            },
        )
}

fn key_bundle() -> impl Strategy<Value = KeyBundle> {
    (prop::collection::btree_map(".*", ".*", 0..5), opt_bytes())
        .prop_map(|(keys, signature)| KeyBundle { keys, signature })
}

fn invite() -> impl Strategy<Value = GroupInvite> {
    (".*", any::<[u8; 32]>(), onion(), opt_bytes(), any::<u64>()).prop_map(
        |(name, key, server, signed_group_id, timestamp)| {
            let mut i = GroupInvite::new(name, key, server);
            i.signed_group_id = signed_group_id;
            i.timestamp = timestamp;
            i
        },
    )
}

/// Tokens from which syntactically interesting near-JSON is assembled. No exponent is large
/// enough to overflow a float and no `\u` escape is a surrogate, so that `serde_json` (which
/// rejects both) and Go agree on every string made of these.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    " ",
    "\n",
    "\"a\"",
    "\"\"",
    "\"\\u00e9\\n\"",
    "\"\\x\"",
    "\"\\",
    "\"",
    "0",
    "-0",
    "12",
    "1.5",
    "2e3",
    "-1E-2",
    "01",
    "1.",
    "-",
    "+1",
    ".5",
    "true",
    "false",
    "null",
    "nul",
    "tru",
    "\"é\"",
    "\"\t\"",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The table-driven base64 encoder writes what the `base64` crate writes (Go's
    /// `StdEncoding`), appending after what is already there, and `[]byte` fields decode back.
    #[test]
    fn base64_encoder_matches_the_base64_crate(
        prefix in prop::collection::vec(any::<u8>(), 0..4),
        bytes in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        use base64::Engine as _;
        let mut out = prefix.clone();
        gojson::append_base64(&mut out, &bytes);
        let mut expected = prefix;
        expected.extend_from_slice(
            base64::engine::general_purpose::STANDARD.encode(&bytes).as_bytes(),
        );
        prop_assert_eq!(&out, &expected);
        let egm = EncryptedGroupMessage { ciphertext: Some(bytes.clone()), signature: None };
        prop_assert_eq!(
            EncryptedGroupMessage::from_json(&egm.to_json()).unwrap().ciphertext,
            Some(bytes)
        );
    }

    #[test]
    fn gojson_strings_parse_back_to_gos_lossy_text(s in tricky_bytes()) {
        let mut out = Vec::new();
        gojson::write_string(&mut out, &s);
        let text = std::str::from_utf8(&out).expect("output is UTF-8");
        prop_assert_eq!(serde_json::from_str::<String>(text).unwrap(), reference_go_lossy(&s));
        prop_assert_eq!(gojson::go_lossy_utf8(&s), reference_go_lossy(&s));
        for c in text.chars() {
            prop_assert!(!matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}'), "{text:?}");
            prop_assert!(c >= ' ', "{text:?}");
        }
    }

    #[test]
    fn gojson_strings_of_valid_text_decode_to_themselves(s in ".*") {
        let mut out = Vec::new();
        gojson::write_string(&mut out, s.as_bytes());
        let m = MessageWrapper::from_json(&[b"{\"d\":", out.as_slice(), b"}"].concat()).unwrap();
        prop_assert_eq!(m.data, s);
    }

    #[test]
    fn foreign_escapes_decode(s in ".*") {
        // serde_json's escaping, and every character as \u escapes (surrogate pairs included).
        let m = MessageWrapper::from_json(format!("{{\"d\":{}}}", serde_json::to_string(&s).unwrap()).as_bytes()).unwrap();
        prop_assert_eq!(&m.data, &s);
        let escaped: String = s.encode_utf16().map(|u| format!("\\u{u:04X}")).collect();
        let m = MessageWrapper::from_json(format!("{{\"d\":\"{escaped}\"}}").as_bytes()).unwrap();
        prop_assert_eq!(&m.data, &s);
    }

    #[test]
    fn dgm_round_trips(d in dgm(".*".prop_map(String::into_bytes))) {
        let json = d.to_json();
        prop_assert!(serde_json::from_slice::<serde_json::Value>(&json).is_ok());
        prop_assert_eq!(DecryptedGroupMessage::from_json(&json).unwrap(), d);
    }

    #[test]
    fn dgm_with_any_text_bytes_decodes_to_gos_view(d in dgm(tricky_bytes())) {
        let decoded = DecryptedGroupMessage::from_json(&d.to_json()).unwrap();
        prop_assert_eq!(decoded.text.clone(), reference_go_lossy(&d.text).into_bytes());
        prop_assert_eq!(decoded.text_lossy(), d.text_lossy());
        let mut fixed = d.clone();
        fixed.text = decoded.text.clone();
        prop_assert_eq!(decoded, fixed);
    }

    #[test]
    fn egm_round_trips(e in egm()) {
        prop_assert_eq!(EncryptedGroupMessage::from_json(&e.to_bytes()).unwrap(), e);
    }

    #[test]
    fn message_round_trips(m in message()) {
        let json = m.to_json();
        prop_assert!(serde_json::from_slice::<serde_json::Value>(&json).is_ok());
        let back = Message::from_json(&json).unwrap();
        prop_assert_eq!(&back, &m);
        // A message built from its payload carries only that payload and survives too.
        if let Ok(p) = m.into_payload() {
            let single = Message::from(p.clone());
            prop_assert_eq!(Message::from_json(&single.to_json()).unwrap().into_payload().unwrap(), p);
        }
    }

    #[test]
    fn key_bundle_round_trips(kb in key_bundle()) {
        let json = kb.to_json();
        prop_assert!(serde_json::from_slice::<serde_json::Value>(&json).is_ok());
        prop_assert_eq!(KeyBundle::from_json(&json).unwrap(), kb.clone());
        prop_assert_eq!(KeyBundle::parse_server_string(&kb.to_server_string()).unwrap(), kb);
    }

    #[test]
    fn signed_bundles_round_trip_and_verify(seed in any::<[u8; 32]>(), token in onion(), pp in any::<[u8; 32]>()) {
        let id = torv3::Identity::from_seed(&seed);
        let mut kb = KeyBundle::new_server_bundle(&id.onion(), &token, &pp);
        kb.sign(&id);
        let back = KeyBundle::parse_server_string(&kb.to_server_string()).unwrap();
        let keys = back.verify().unwrap();
        prop_assert_eq!(keys.privacy_pass_key_bytes().unwrap(), pp);
        prop_assert_eq!(keys.server, id.onion());
        prop_assert_eq!(keys.token_service, token);
    }

    #[test]
    fn wrapper_round_trips(overlay in any::<i64>(), data in ".*") {
        let m = MessageWrapper::new(overlay, data);
        prop_assert_eq!(MessageWrapper::from_json(&m.to_json()).unwrap(), m);
    }

    #[test]
    fn decoders_never_panic_on_bytes(b in prop::collection::vec(any::<u8>(), 0..300)) {
        exercise_every_decoder(&b);
    }

    #[test]
    fn syntax_agrees_with_serde_json(tokens in prop::collection::vec(prop::sample::select(TOKENS), 0..16)) {
        let s = tokens.concat();
        let ours = gojson::validate(s.as_bytes());
        let theirs = serde_json::from_str::<serde_json::Value>(&s);
        // serde_json also refuses numbers too large for an f64 (`2e312`), which is not syntax
        // (Go's `json.Valid` accepts them), and stops there: it says nothing about the rest.
        prop_assume!(!matches!(&theirs, Err(e) if e.to_string().starts_with("number out of range")));
        prop_assert_eq!(ours.is_ok(), theirs.is_ok(), "{:?}: {:?} vs {:?}", s, ours, theirs);
    }

    #[test]
    fn serde_json_documents_are_valid(v in json_value()) {
        let s = serde_json::to_string(&v).unwrap();
        prop_assert!(gojson::validate(s.as_bytes()).is_ok(), "{}", s);
        let pretty = serde_json::to_string_pretty(&v).unwrap();
        prop_assert!(gojson::validate(pretty.as_bytes()).is_ok(), "{}", pretty);
    }
}

// PBKDF2 (4096 rounds, unoptimised in test builds) dominates these: fewer cases.
proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn invite_round_trips(i in invite()) {
        prop_assert_eq!(GroupInvite::from_json(&i.to_json()).unwrap(), i.clone());
        prop_assert_eq!(GroupInvite::parse_invite_string(&i.to_invite_string()).unwrap(), i);
    }

    #[test]
    fn tofubundle_round_trips(kb in key_bundle(), i in invite()) {
        let t = TofuBundle { bundle: kb, invite: i };
        prop_assert_eq!(TofuBundle::parse(&t.to_string()).unwrap(), t);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn decoders_never_panic_on_damaged_encodings(
        m in message(), d in dgm(tricky_bytes()), kb in key_bundle(), i in invite(),
        cut in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), byte in any::<u8>(),
    ) {
        let t = TofuBundle { bundle: kb.clone(), invite: i.clone() }.to_string().into_bytes();
        for good in [m.to_json(), d.to_json(), kb.to_json(), i.to_json(), t] {
            exercise_every_decoder(&good[..cut.index(good.len() + 1)]);
            let mut changed = good.clone();
            if !changed.is_empty() {
                changed[at.index(good.len())] = byte;
            }
            exercise_every_decoder(&changed);
            let mut inserted = good.clone();
            inserted.insert(at.index(good.len() + 1), byte);
            exercise_every_decoder(&inserted);
        }
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".*".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((".*", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn exercise_every_decoder(b: &[u8]) {
    let _ = Message::from_json(b).map(Message::into_payload);
    let _ = EncryptedGroupMessage::from_json(b);
    let _ = DecryptedGroupMessage::from_json(b);
    let _ = KeyBundle::from_json(b).map(|kb| kb.verify());
    let _ = GroupInvite::from_json(b);
    let _ = MessageWrapper::from_json(b);
    let _ = gojson::validate(b);
    let _ = gojson::go_base64_decode(b, "fuzz");
    let _ = gojson::go_lossy_utf8(b);
    let s = String::from_utf8_lossy(b);
    let _ = GroupInvite::parse_invite_string(&s);
    let _ = KeyBundle::parse_server_string(&s);
    let _ = TofuBundle::parse(&s).map(|t| t.verify());
    // A generic struct through the public Decoder API.
    #[derive(Default)]
    struct Everything(
        String,
        Option<Vec<u8>>,
        i64,
        u64,
        bool,
        BTreeMap<String, String>,
    );
    impl GoDecode for Everything {
        fn decode_into(&mut self, d: &mut Decoder<'_>) -> Result<(), Error> {
            d.fields(&["s", "b", "i", "u", "t", "m"], |d, i| match i {
                0 => d.string(&mut self.0),
                1 => d.bytes(&mut self.1),
                2 => d.i64(&mut self.2),
                3 => d.u64(&mut self.3),
                4 => d.bool(&mut self.4),
                _ => d.string_map(&mut self.5),
            })
        }
    }
    let _ = gojson::decode::<Everything>(b);
}
