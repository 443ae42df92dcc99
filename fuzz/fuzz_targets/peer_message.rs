//! Peer messages as they arrive from a contact (spec §7.2): the V1 (Go JSON) and V2
//! (`ID|Context|Data`) codecs, the framing detection of the receive path, and the Data of
//! getVal/retVal requests (§7.3).
//!
//! Asserts: whatever decodes re-encodes to something that decodes to the same message, and
//! V1 encoding is stable after one round; a V2 payload whose ID and context are UTF-8 is
//! re-encoded byte for byte; detection agrees with the codec it picks; what we send in either
//! framing is read back as sent (V2 IDs not starting with `{`, as every real one); getVal and
//! retVal round-trip through Go JSON.
#![no_main]

use cwtch::wire::{detect_framing, GetVal, PeerMessage, RetVal, WireVersion};
use libfuzzer_sys::fuzz_target;

fn check_sent(m: &PeerMessage) {
    let v1 = m.encode(WireVersion::V1);
    assert_eq!(detect_framing(&v1), Ok((m.clone(), WireVersion::V1)));
    let v2 = m.encode(WireVersion::V2);
    match m.encode_v2() {
        Ok(bytes) => {
            assert_eq!(v2, bytes);
            if !m.id.starts_with('{') {
                assert_eq!(detect_framing(&v2), Ok((m.clone(), WireVersion::V2)));
            }
        }
        // A `|` in the ID or context: sent as V1, which the receiver detects.
        Err(_) => {
            assert!(m.id.contains('|') || m.context.contains('|'));
            assert_eq!(v2, v1);
            assert_eq!(detect_framing(&v2), Ok((m.clone(), WireVersion::V1)));
        }
    }
    let _ = m.announced_version();
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = PeerMessage::decode_v1(data) {
        let once = m.encode_v1();
        let again = PeerMessage::decode_v1(&once).expect("our own V1 decodes");
        assert_eq!(again, m);
        assert_eq!(again.encode_v1(), once);
        check_sent(&m);
    }

    if let Ok(m) = PeerMessage::decode_v2(data) {
        let bytes = m
            .encode_v2()
            .expect("a decoded V2 message has no | in ID or context");
        assert_eq!(PeerMessage::decode_v2(&bytes), Ok(m.clone()));
        let mut parts = data.splitn(3, |&b| b == b'|');
        let (id, context) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        if std::str::from_utf8(id).is_ok() && std::str::from_utf8(context).is_ok() {
            assert_eq!(bytes, data);
        }
        check_sent(&m);
    }

    match detect_framing(data) {
        Ok((m, WireVersion::V1)) => {
            assert_eq!(data.first(), Some(&b'{'));
            assert_eq!(PeerMessage::decode_v1(data), Ok(m));
        }
        Ok((m, WireVersion::V2)) => assert_eq!(PeerMessage::decode_v2(data), Ok(m)),
        Err(_) => assert!(PeerMessage::decode_v2(data).is_err()),
    }

    // Messages with arbitrary fields (`|` included): the input split at 0xff bytes.
    let mut fields = data.split(|&b| b == 0xff);
    let id = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let context = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let rest = fields.next().unwrap_or_default().to_vec();
    check_sent(&PeerMessage::new(id, context, rest));

    if let Some(g) = GetVal::from_json(data) {
        let once = g.to_json();
        let again = GetVal::from_json(&once).expect("our own getVal decodes");
        assert_eq!(again, g);
        assert_eq!(again.to_json(), once);
        let _ = g.key();
    }
    if let Some(r) = RetVal::from_json(data) {
        let once = r.to_json();
        let again = RetVal::from_json(&once).expect("our own retVal decodes");
        assert_eq!(again, r);
        assert_eq!(again.to_json(), once);
    }
});
