//! The overlay parser of chat-message bodies (spec §7.5): `Content::parse` of whatever a peer
//! sends, and the content's JSON form (the CLI's output).
//!
//! Asserts: understood content (text, quoted reply, contact suggestion) re-encodes to a body
//! that parses to the same content and re-encodes to the same body, unless the text is over
//! the length limit, which is the only refusal; malformed content cannot be sent; the overlay
//! number survives; the serde form round-trips; any overlay number and data, wrapped, parse
//! back to that overlay.
#![no_main]

use cwtch::overlay::wrap;
use cwtch::{Content, Error, P2P_TEXT_MAX_CHARS};
use libfuzzer_sys::fuzz_target;

fn check(c: &Content) {
    let json = serde_json::to_string(c).expect("serialises");
    assert_eq!(
        &serde_json::from_str::<Content>(&json).expect("deserialises"),
        c
    );
    match c.to_body() {
        Ok(body) => {
            let again = Content::parse(&body);
            assert_eq!(&again, c, "{body}");
            assert_eq!(again.to_body().expect("encodes again"), body);
        }
        Err(Error::MessageTooLong { chars, max }) => {
            assert_eq!(max, P2P_TEXT_MAX_CHARS);
            assert!(chars > max);
            assert!(c.display_text().is_some_and(|t| t.chars().count() == chars));
        }
        Err(e) => {
            assert!(c.is_malformed(), "{e}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data);
    let c = Content::parse(&body);
    assert_eq!(c.is_malformed(), c.display_text().is_none());
    let _ = c.quoted_hash();
    check(&c);

    // Any overlay number and any data, wrapped as Go wraps them.
    if let Some((head, rest)) = data.split_first_chunk::<8>() {
        let overlay = i64::from_le_bytes(*head);
        let text = String::from_utf8_lossy(rest);
        let body = wrap(overlay, &text).expect("wraps");
        let c = Content::parse(&body);
        assert_eq!(c.overlay(), Some(overlay), "{body}");
        if overlay == cwtch::overlay::TEXT {
            assert_eq!(c, Content::text(text.as_ref()));
        }
        check(&c);
    }
});
