//! The peer protocol's state machine on one connection (`cwtch_model::peer::PeerSession`),
//! driven by a hostile peer: a sequence of payloads, interleaved with the library's own
//! calls (the end of the version wait, attribute requests, answers, acknowledgements).
//!
//! Input: byte 0 chooses legacy mode; the rest is split at 0xfe bytes into steps; a step's
//! first byte picks the library call made after it is received, the rest is the payload.
//!
//! Asserts: never panics; `Ready` comes once, first among a call's outputs, and only then is
//! the session ready; everything it frames fits one packet; a chat message has an ID;
//! replies are accepted only for requests made, at most once each, and the pending requests
//! stay capped.
#![no_main]

use cwtch_model::peer::{
    Output, PeerSession, MAX_PEER_PAYLOAD, MAX_PENDING_GETVALS, REQUESTED_PROFILE_ATTRIBUTES,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let legacy = mode & 1 == 1;
    let (mut s, first) = PeerSession::start(legacy);
    let mut readies = first
        .iter()
        .filter(|o| matches!(o, Output::Ready(_)))
        .count();
    assert_eq!(s.is_ready(), readies == 1);
    let mut n = 0u64;
    let mut new_id = || {
        n += 1;
        n.to_string()
    };
    let mut asked = 0usize;
    let mut answered = 0usize;
    for step in rest.split(|&b| b == 0xfe) {
        let (op, payload) = step.split_first().unwrap_or((&0, &[]));
        let out = s.receive(payload);
        assert!(s.is_ready());
        for (i, o) in out.iter().enumerate() {
            match o {
                Output::Ready(_) => {
                    readies += 1;
                    assert_eq!(i, 0);
                }
                Output::Chat(m) => {
                    assert!(!m.id.is_empty());
                    if let Ok(p) = s.acknowledge(&m.id) {
                        assert!(p.len() <= MAX_PEER_PAYLOAD);
                    }
                }
                Output::AttributeRequested { request_id, key } => {
                    if let Some(k) = key {
                        assert!(k.starts_with("public."));
                    }
                    let value =
                        (op & 2 == 2).then(|| String::from_utf8_lossy(payload).into_owned());
                    let before = s.pending_requests();
                    let answer = s.answer_attribute(request_id, value, op & 4 == 4, &mut new_id);
                    assert!(!answer.is_empty());
                    asked += s.pending_requests() - before;
                    for p in answer {
                        assert!(p.len() <= MAX_PEER_PAYLOAD);
                    }
                }
                Output::AttributeReceived { path, .. } => {
                    assert!(REQUESTED_PROFILE_ATTRIBUTES.contains(&path.as_str()));
                    answered += 1;
                }
                Output::Transmit(_) => panic!("receive never transmits by itself"),
                _ => {}
            }
        }
        if op & 8 == 8 {
            let _ = s.negotiation_timed_out();
        }
        if op & 16 == 16 {
            let before = s.pending_requests();
            for p in s.request_attributes(&mut new_id) {
                assert!(p.len() <= MAX_PEER_PAYLOAD);
            }
            asked += s.pending_requests() - before;
        }
        assert!(s.pending_requests() <= MAX_PENDING_GETVALS);
        assert!(answered <= asked);
    }
    assert!(readies <= 1);
});
