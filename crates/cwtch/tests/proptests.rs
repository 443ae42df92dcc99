//! Property tests of the wire codecs (PeerMessage V1 and V2, getVal/retVal) and the overlay
//! parser: encode∘decode is the identity, and arbitrary bytes never panic.
#![allow(clippy::unwrap_used, missing_docs)]

use cwtch::overlay::{self, Content};
use cwtch::wire::{detect_framing, GetVal, PeerMessage, RetVal, WireVersion};
use proptest::prelude::*;

/// Strings with the characters that matter: JSON escapes, HTML-escaped characters,
/// U+2028/9, separators, non-ASCII.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        r#"[<>&"\\|{}\x{2028}\x{2029}a-z0-9é€\x00-\x1f]{0,24}"#,
    ]
}

/// Strings without `|` (V2 IDs and contexts).
fn field() -> impl Strategy<Value = String> {
    text().prop_map(|s| s.replace('|', ""))
}

fn message() -> impl Strategy<Value = PeerMessage> {
    (
        text(),
        text(),
        proptest::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|(id, context, data)| PeerMessage { id, context, data })
}

proptest! {
    #[test]
    fn v1_round_trips(m in message()) {
        let enc = m.encode_v1();
        prop_assert_eq!(PeerMessage::decode_v1(&enc).unwrap(), m.clone());
        // Auto-detection reads it as V1.
        prop_assert_eq!(detect_framing(&enc).unwrap(), (m, WireVersion::V1));
        // Valid JSON that serde_json agrees with.
        let v: serde_json::Value = serde_json::from_slice(&enc).unwrap();
        prop_assert!(v.is_object());
    }

    #[test]
    fn v2_round_trips(id in field(), context in field(), data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let m = PeerMessage { id, context, data };
        let enc = m.encode_v2().unwrap();
        prop_assert_eq!(PeerMessage::decode_v2(&enc).unwrap(), m.clone());
        // Auto-detection reads it back whatever it looks like.
        prop_assert_eq!(PeerMessage::decode(&enc).unwrap().0, m);
    }

    #[test]
    fn encode_for_either_version_decodes(m in message(), v2 in any::<bool>()) {
        let v = if v2 { WireVersion::V2 } else { WireVersion::V1 };
        prop_assert_eq!(PeerMessage::decode(&m.encode(v)).unwrap().0, m);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = PeerMessage::decode(&b);
        let _ = PeerMessage::decode_v1(&b);
        let _ = PeerMessage::decode_v2(&b);
        let _ = GetVal::from_json(&b);
        let _ = RetVal::from_json(&b);
        let s = String::from_utf8_lossy(&b);
        let c = Content::parse(&s);
        let _ = (c.overlay(), c.display_text(), c.is_malformed());
    }

    #[test]
    fn json_looking_bytes_never_panic(s in r#"[{}\[\]":,|a-zA-Z0-9=\\ ]{0,80}"#) {
        let _ = PeerMessage::decode(s.as_bytes());
        let _ = Content::parse(&s);
        let _ = GetVal::from_json(s.as_bytes());
    }

    #[test]
    fn getval_and_retval_round_trip(scope in text(), path in text(), val in text(), exists in any::<bool>()) {
        let g = GetVal { scope, path };
        prop_assert_eq!(GetVal::from_json(&g.to_json()), Some(g));
        let r = RetVal { val, exists };
        prop_assert_eq!(RetVal::from_json(&r.to_json()), Some(r));
    }

    #[test]
    fn overlays_round_trip(t in text(), h in text()) {
        let t: String = t.chars().take(overlay::P2P_TEXT_MAX_CHARS).collect();
        for c in [
            Content::text(t.clone()),
            Content::QuotedReply { quoted_hash: h.clone(), body: t.clone() },
        ] {
            let body = c.to_body().unwrap();
            prop_assert_eq!(Content::parse(&body), c);
        }
        // Any overlay number other than the three known ones is malformed, never dropped.
        let body = overlay::wrap(1000 + t.len() as i64, &t).unwrap();
        let parsed = Content::parse(&body);
        prop_assert!(parsed.is_malformed());
        prop_assert_eq!(parsed.overlay(), Some(1000 + t.len() as i64));
    }
}
