//! The board-client machine driven in memory with the exact bytes a server sends.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use cwtch_board::{
    post_binding, Cursor, Error, Event, MachineConfig, Phase, PostId, ProtocolError, Received,
    Source, TokenId, MAX_SIGNATURE_LEN,
};
use cwtch_model::tokenboard::Payload;
use cwtch_model::{EncryptedGroupMessage, Message, MessageType};
use privacypass::{MemorySpentTokens, SpentToken};

fn msg(i: u32, source: Source) -> Event {
    Event::Message(Received {
        egm: egm(i),
        source,
    })
}

fn cur(i: u32) -> Event {
    Event::Cursor(Cursor::new(sig(i)).unwrap())
}

fn synced(m: &mut cwtch_board::BoardMachine) {
    m.connected().unwrap();
    m.request_replay().unwrap();
    m.handle(&replay_result(0)).unwrap();
    events(m);
    transmits(m);
}

#[test]
fn replay_from_nothing_delivers_everything_in_order_and_moves_the_cursor() {
    let mut m = machine(None);
    assert_eq!(m.phase(), Phase::Disconnected);
    m.connected().unwrap();
    m.request_replay().unwrap();
    assert_eq!(
        transmits(&mut m),
        vec![br#"{"MessageType":0,"ReplayRequest":{"LastCommit":null}}"#.to_vec()]
    );
    assert_eq!(m.phase(), Phase::Syncing { remaining: None });
    m.handle(&replay_result(3)).unwrap();
    assert_eq!(m.phase(), Phase::Syncing { remaining: Some(3) });
    for i in 0..3 {
        m.handle(&bare(&egm(i))).unwrap();
    }
    assert_eq!(m.phase(), Phase::Synced);
    assert_eq!(
        events(&mut m),
        vec![
            Event::Connected,
            Event::Syncing { count: 3 },
            msg(0, Source::Replay),
            cur(0),
            msg(1, Source::Replay),
            cur(1),
            msg(2, Source::Replay),
            cur(2),
            Event::Synced,
        ]
    );
    assert_eq!(m.cursor().unwrap().as_bytes(), sig(2));
    // Live messages follow.
    m.handle(&new_message(&egm(3))).unwrap();
    assert_eq!(events(&mut m), vec![msg(3, Source::Live), cur(3)]);
}

#[test]
fn an_inclusive_replay_collapses_the_cursor_message() {
    let mut m = machine(Some(&sig(3)));
    m.connected().unwrap();
    m.request_replay().unwrap();
    let sent = transmits(&mut m);
    let expect = format!(
        r#"{{"MessageType":0,"ReplayRequest":{{"LastCommit":"{}"}}}}"#,
        "c2lnbmF0dXJlIDAwMDAwMw=="
    );
    assert_eq!(sent, vec![expect.into_bytes()]);
    m.handle(&replay_result(3)).unwrap();
    for i in 3..6 {
        m.handle(&bare(&egm(i))).unwrap();
    }
    assert_eq!(
        events(&mut m),
        vec![
            Event::Connected,
            Event::Syncing { count: 3 },
            Event::Duplicate(egm(3)),
            msg(4, Source::Replay),
            cur(4),
            msg(5, Source::Replay),
            cur(5),
            Event::Synced,
        ]
    );
    // The repeat is remembered: the same message live again is a duplicate too.
    m.handle(&new_message(&egm(3))).unwrap();
    assert_eq!(events(&mut m), vec![Event::Duplicate(egm(3))]);
    assert_eq!(m.cursor().unwrap().as_bytes(), sig(5));
}

#[test]
fn an_unknown_cursor_replays_everything_and_says_so() {
    let mut m = machine(Some(b"pruned long ago"));
    m.connected().unwrap();
    m.request_replay().unwrap();
    m.handle(&replay_result(2)).unwrap();
    m.handle(&bare(&egm(0))).unwrap();
    m.handle(&bare(&egm(1))).unwrap();
    assert_eq!(
        events(&mut m),
        vec![
            Event::Connected,
            Event::Syncing { count: 2 },
            Event::CursorUnknown,
            msg(0, Source::Replay),
            cur(0),
            msg(1, Source::Replay),
            cur(1),
            Event::Synced,
        ]
    );
    // An empty replay from a cursor: the server holds nothing, so it did not know it either.
    let mut m = machine(Some(b"whatever"));
    m.connected().unwrap();
    m.request_replay().unwrap();
    m.handle(&replay_result(0)).unwrap();
    assert_eq!(
        events(&mut m),
        vec![
            Event::Connected,
            Event::Syncing { count: 0 },
            Event::CursorUnknown,
            Event::Synced
        ]
    );
    assert_eq!(m.cursor().unwrap().as_bytes(), b"whatever");
    // Without a cursor an empty replay is just empty.
    let mut m = machine(None);
    m.connected().unwrap();
    m.request_replay().unwrap();
    m.handle(&replay_result(0)).unwrap();
    assert_eq!(
        events(&mut m),
        vec![Event::Connected, Event::Syncing { count: 0 }, Event::Synced]
    );
    assert!(m.cursor().is_none());
}

#[test]
fn a_replay_of_messages_already_seen_still_moves_the_cursor() {
    // A fallback replay after a reconnection: the machine has seen 0 and 1 already.
    let mut m = machine(None);
    synced(&mut m);
    m.handle(&new_message(&egm(0))).unwrap();
    m.handle(&new_message(&egm(1))).unwrap();
    m.disconnected();
    events(&mut m);
    m.set_cursor(Some(Cursor::new(b"gone".to_vec()).unwrap()))
        .unwrap();
    m.connected().unwrap();
    m.request_replay().unwrap();
    m.handle(&replay_result(3)).unwrap();
    for i in 0..3 {
        m.handle(&bare(&egm(i))).unwrap();
    }
    assert_eq!(
        events(&mut m),
        vec![
            Event::Connected,
            Event::Syncing { count: 3 },
            Event::CursorUnknown,
            Event::Duplicate(egm(0)),
            cur(0),
            Event::Duplicate(egm(1)),
            cur(1),
            msg(2, Source::Replay),
            cur(2),
            Event::Synced,
        ]
    );
}

#[test]
fn a_live_repeat_collapses_and_does_not_move_the_cursor_back() {
    let mut m = machine(None);
    synced(&mut m);
    for i in [1, 2, 1] {
        m.handle(&new_message(&egm(i))).unwrap();
    }
    assert_eq!(
        events(&mut m),
        vec![
            msg(1, Source::Live),
            cur(1),
            msg(2, Source::Live),
            cur(2),
            Event::Duplicate(egm(1)),
        ]
    );
    assert_eq!(m.cursor().unwrap().as_bytes(), sig(2));
}

#[test]
fn the_dedup_window_is_bounded() {
    let mut m = cwtch_board::BoardMachine::new(
        onion(),
        None,
        MachineConfig {
            low_water: 0,
            dedup_window: 2,
        },
    );
    synced(&mut m);
    for i in [1, 2, 3, 1] {
        m.handle(&new_message(&egm(i))).unwrap();
    }
    // 1 fell out of the window: delivered again (the caller de-duplicates by signature).
    let got: Vec<Event> = events(&mut m)
        .into_iter()
        .filter(|e| !matches!(e, Event::Cursor(_)))
        .collect();
    assert_eq!(got.last(), Some(&msg(1, Source::Live)));
}

#[test]
fn posts_pair_with_results_in_order_and_their_tokens_verify() {
    let ts = token_server();
    let mut m = machine(None);
    m.connected().unwrap();
    assert_eq!(m.add_tokens(tokens(&ts, 3, 1)), 3);
    let a = m.prepare_post(egm(1)).unwrap();
    let b = m.prepare_post(egm(2)).unwrap();
    assert_ne!(a.token(), b.token());
    assert_eq!((a.id(), b.id()), (PostId(0), PostId(1)));
    // Nothing is handed out for sending before send_post.
    assert!(m.poll_transmit().is_none());
    m.send_post(a).unwrap();
    m.send_post(b).unwrap();
    assert_eq!(m.outstanding_posts(), 2);
    assert!(m.awaiting_reply());
    let store = MemorySpentTokens::new();
    for (i, bytes) in transmits(&mut m).into_iter().enumerate() {
        let Ok(Payload::PostRequest(p)) = Message::from_json(&bytes).unwrap().into_payload() else {
            panic!("not a post request")
        };
        assert_eq!(p.egm, egm(i as u32 + 1));
        let spent = SpentToken {
            t: p.token.t.unwrap().try_into().unwrap(),
            mac: p.token.mac.unwrap().try_into().unwrap(),
        };
        ts.redeem(&spent, &post_binding(&p.egm, &onion()), &store)
            .unwrap();
    }
    m.handle(&post_result(true)).unwrap();
    m.handle(&post_result(false)).unwrap();
    assert_eq!(
        events(&mut m)[1..],
        [
            Event::PostResult {
                id: PostId(0),
                accepted: true
            },
            Event::PostResult {
                id: PostId(1),
                accepted: false
            },
        ]
    );
    assert!(!m.awaiting_reply());
    // A third result has no post to pair with.
    assert!(matches!(
        m.handle(&post_result(true)),
        Err(Error::Protocol(ProtocolError::UnpairedPostResult))
    ));
    assert_eq!(m.phase(), Phase::Disconnected);
}

#[test]
fn the_exact_post_request_bytes() {
    let ts = token_server();
    let mut m = machine(None);
    m.connected().unwrap();
    m.add_tokens(tokens(&ts, 1, 2));
    let p = m.prepare_post(egm(1)).unwrap();
    m.send_post(p).unwrap();
    let sent = String::from_utf8(m.poll_transmit().unwrap()).unwrap();
    assert!(
        sent.starts_with(r#"{"MessageType":2,"PostRequest":{"Token":{"T":""#),
        "{sent}"
    );
    assert!(
        sent.ends_with(
            r#""},"EGM":{"Ciphertext":"Y2lwaGVydGV4dCAx","Signature":"c2lnbmF0dXJlIDAwMDAwMQ=="}}}"#
        ),
        "{sent}"
    );
}

#[test]
fn a_token_is_taken_out_before_its_post_exists_and_never_comes_back() {
    let ts = token_server();
    let toks = tokens(&ts, 2, 3);
    let first = TokenId::of(&toks[0]);
    let mut m = machine(None);
    m.connected().unwrap();
    m.add_tokens(toks.clone());
    let p = m.prepare_post(egm(1)).unwrap();
    assert_eq!(p.token(), first);
    assert_eq!(m.tokens_in_hand(), 1);
    // Dropped without sending: the token is still spent.
    drop(p);
    // Adding the same tokens again (a reload from storage): only the one never handed out
    // is in hand, once.
    assert_eq!(m.add_tokens(toks.clone()), 0);
    assert_eq!(m.tokens_in_hand(), 1);
    let q = m.prepare_post(egm(2)).unwrap();
    assert_ne!(q.token(), first);
    assert!(matches!(m.prepare_post(egm(3)), Err(Error::NoTokens)));
    assert_eq!(m.add_tokens(toks), 0);
}

#[test]
fn tokens_low_is_reported_once_until_refilled() {
    let ts = token_server();
    let mut m = cwtch_board::BoardMachine::new(
        onion(),
        None,
        MachineConfig {
            low_water: 2,
            ..MachineConfig::default()
        },
    );
    m.add_tokens(tokens(&ts, 3, 4));
    m.connected().unwrap();
    assert_eq!(events(&mut m), vec![Event::Connected]);
    m.prepare_post(egm(1)).unwrap();
    assert!(events(&mut m).is_empty(), "2 left: not below the mark");
    m.prepare_post(egm(2)).unwrap();
    assert_eq!(events(&mut m), vec![Event::TokensLow { in_hand: 1 }]);
    m.prepare_post(egm(3)).unwrap();
    assert!(matches!(m.prepare_post(egm(4)), Err(Error::NoTokens)));
    assert!(events(&mut m).is_empty(), "reported once");
    m.add_tokens(tokens(&ts, 2, 5));
    m.prepare_post(egm(5)).unwrap();
    assert_eq!(events(&mut m), vec![Event::TokensLow { in_hand: 1 }]);
    // A machine that starts short says so on connecting.
    let mut m = cwtch_board::BoardMachine::new(onion(), None, MachineConfig::default());
    m.connected().unwrap();
    assert_eq!(
        events(&mut m),
        vec![Event::Connected, Event::TokensLow { in_hand: 0 }]
    );
}

#[test]
fn unsendable_posts_are_refused_before_a_token_is_taken() {
    let ts = token_server();
    let mut m = machine(None);
    m.add_tokens(tokens(&ts, 1, 6));
    assert!(matches!(m.prepare_post(egm(1)), Err(Error::NotConnected)));
    m.connected().unwrap();
    for unsigned in [None, Some(Vec::new())] {
        let e = EncryptedGroupMessage {
            ciphertext: Some(b"x".to_vec()),
            signature: unsigned,
        };
        assert!(matches!(
            m.prepare_post(e.clone()),
            Err(Error::UnsignedPost)
        ));
        assert!(matches!(
            m.send_spent(vec![0; 32], vec![0; 64], e),
            Err(Error::UnsignedPost)
        ));
    }
    let big = EncryptedGroupMessage {
        ciphertext: Some(vec![0; 6000]),
        signature: Some(b"big".to_vec()),
    };
    assert!(matches!(
        m.prepare_post(big),
        Err(Error::PostTooLarge { max: 8150, .. })
    ));
    assert_eq!(m.tokens_in_hand(), 1);
    // The largest ciphertext that fits is accepted.
    let fits = EncryptedGroupMessage {
        ciphertext: Some(vec![0; 5800]),
        signature: Some(vec![1; 64]),
    };
    m.prepare_post(fits).unwrap();
}

#[test]
fn a_disconnection_leaves_posts_unknown_and_drops_what_was_queued() {
    let mut m = machine(None);
    m.connected().unwrap();
    let a = m.send_spent(vec![1; 32], vec![2; 64], egm(1)).unwrap();
    let b = m.send_spent(vec![3; 32], vec![4; 64], egm(2)).unwrap();
    m.handle(&post_result(true)).unwrap();
    m.request_replay().unwrap();
    m.disconnected();
    m.disconnected(); // idempotent
    assert_eq!(
        events(&mut m),
        vec![
            Event::Connected,
            Event::PostResult {
                id: a,
                accepted: true
            },
            Event::PostUnknown { id: b },
            Event::Disconnected,
        ]
    );
    assert!(m.poll_transmit().is_none());
    assert!(matches!(
        m.handle(&post_result(true)),
        Err(Error::NotConnected)
    ));
    assert!(matches!(m.request_replay(), Err(Error::NotConnected)));
    // The next connection starts clean, and may replay again.
    m.connected().unwrap();
    assert!(matches!(m.connected(), Err(Error::AlreadyConnected)));
    m.request_replay().unwrap();
    assert!(matches!(
        m.request_replay(),
        Err(Error::ReplayAlreadyRequested)
    ));
    assert!(matches!(
        m.set_cursor(None),
        Err(Error::ReplayAlreadyRequested)
    ));
    assert_eq!(transmits(&mut m).len(), 1);
}

/// Each case: how far to take the machine, what the server sends, what the error must be.
#[test]
fn malformed_server_input_is_a_typed_error_and_ends_the_connection() {
    #[derive(Clone, Copy, Debug)]
    enum At {
        Connected,
        AwaitingResult,
        Replaying,
        Synced,
    }
    let unexpected = |t: i64, phase: Phase| ProtocolError::Unexpected {
        message_type: MessageType(t),
        phase,
    };
    type Check = Box<dyn Fn(&ProtocolError) -> bool>;
    let awaiting = Phase::Syncing { remaining: None };
    let cases: Vec<(At, Vec<u8>, Check)> = vec![
        (
            At::Synced,
            b"not json".to_vec(),
            Box::new(|e| matches!(e, ProtocolError::Decode(_))),
        ),
        (
            At::Synced,
            b"".to_vec(),
            Box::new(|e| matches!(e, ProtocolError::Decode(_))),
        ),
        (
            At::Synced,
            br#"{"MessageType":3}"#.to_vec(),
            Box::new(|e| {
                matches!(
                    e,
                    ProtocolError::Decode(cwtch_model::Error::MissingPayload { .. })
                )
            }),
        ),
        (
            At::Synced,
            br#"{"MessageType":4,"NewMessage":7}"#.to_vec(),
            Box::new(|e| matches!(e, ProtocolError::Decode(_))),
        ),
        (
            At::Synced,
            replay_result(1),
            Box::new(move |e| *e == unexpected(1, Phase::Synced)),
        ),
        (
            At::Connected,
            new_message(&egm(1)),
            Box::new(move |e| *e == unexpected(4, Phase::Connected)),
        ),
        (
            At::AwaitingResult,
            new_message(&egm(1)),
            Box::new(move |e| *e == unexpected(4, awaiting)),
        ),
        (
            At::Synced,
            br#"{"MessageType":0,"ReplayRequest":{}}"#.to_vec(),
            Box::new(move |e| *e == unexpected(0, Phase::Synced)),
        ),
        (
            At::Synced,
            br#"{"MessageType":2,"PostRequest":{}}"#.to_vec(),
            Box::new(move |e| *e == unexpected(2, Phase::Synced)),
        ),
        (
            At::AwaitingResult,
            replay_result(-1),
            Box::new(|e| *e == ProtocolError::NegativeCount(-1)),
        ),
        (
            At::Connected,
            post_result(true),
            Box::new(|e| *e == ProtocolError::UnpairedPostResult),
        ),
        // During a replay, every payload must be a bare message.
        (
            At::Replaying,
            b"[1,2]".to_vec(),
            Box::new(|e| matches!(e, ProtocolError::Decode(_))),
        ),
        (
            At::Replaying,
            br#"{"Ciphertext":"not base64!","Signature":"c2ln"}"#.to_vec(),
            Box::new(|e| matches!(e, ProtocolError::Decode(_))),
        ),
    ];
    for (at, bytes, check) in cases {
        let mut m = machine(None);
        m.connected().unwrap();
        m.send_spent(vec![1; 32], vec![2; 64], egm(9)).unwrap();
        m.handle(&post_result(true)).unwrap();
        let open = m.send_spent(vec![3; 32], vec![4; 64], egm(10)).unwrap();
        match at {
            At::Connected => {
                m.handle(&post_result(true)).unwrap();
            }
            At::AwaitingResult => m.request_replay().unwrap(),
            At::Replaying => {
                m.request_replay().unwrap();
                m.handle(&post_result(true)).unwrap();
                m.handle(&replay_result(2)).unwrap();
            }
            At::Synced => {
                m.request_replay().unwrap();
                m.handle(&post_result(true)).unwrap();
                m.handle(&replay_result(0)).unwrap();
            }
        }
        events(&mut m);
        match m.handle(&bytes) {
            Err(Error::Protocol(e)) => assert!(
                check(&e),
                "{at:?} {:?}: {e:?}",
                String::from_utf8_lossy(&bytes)
            ),
            other => panic!("{at:?} {:?}: {other:?}", String::from_utf8_lossy(&bytes)),
        }
        assert_eq!(m.phase(), Phase::Disconnected);
        let ev = events(&mut m);
        assert_eq!(ev.last(), Some(&Event::Disconnected));
        if matches!(at, At::AwaitingResult) {
            assert!(ev.contains(&Event::PostUnknown { id: open }), "{ev:?}");
        }
    }
}

#[test]
fn junk_messages_are_skipped_without_moving_the_cursor() {
    let mut m = machine(Some(&sig(1)));
    m.connected().unwrap();
    m.request_replay().unwrap();
    m.handle(&replay_result(3)).unwrap();
    let long = EncryptedGroupMessage {
        ciphertext: Some(b"x".to_vec()),
        signature: Some(vec![7; MAX_SIGNATURE_LEN + 1]),
    };
    let unsigned = EncryptedGroupMessage {
        ciphertext: Some(b"y".to_vec()),
        signature: None,
    };
    m.handle(&bare(&egm(1))).unwrap();
    m.handle(&bare(&long)).unwrap();
    m.handle(&bare(&egm(2))).unwrap();
    m.handle(&new_message(&unsigned)).unwrap();
    assert_eq!(
        events(&mut m),
        vec![
            Event::Connected,
            Event::Syncing { count: 3 },
            Event::Duplicate(egm(1)),
            Event::Skipped(long),
            msg(2, Source::Replay),
            cur(2),
            Event::Synced,
            Event::Skipped(unsigned),
        ]
    );
    assert_eq!(m.phase(), Phase::Synced);
}

#[test]
fn unknown_message_types_are_ignored() {
    let mut m = machine(None);
    synced(&mut m);
    m.handle(br#"{"MessageType":99,"PostResult":{"Success":true}}"#)
        .unwrap();
    m.handle(br#"{"MessageType":-1}"#).unwrap();
    assert!(events(&mut m).is_empty());
    assert_eq!(m.phase(), Phase::Synced);
}

#[test]
fn cursors_are_signatures() {
    assert!(matches!(
        Cursor::new(Vec::new()),
        Err(Error::InvalidCursor { len: 0, .. })
    ));
    assert!(Cursor::new(vec![1; MAX_SIGNATURE_LEN]).is_ok());
    assert!(Cursor::new(vec![1; MAX_SIGNATURE_LEN + 1]).is_err());
    assert_eq!(
        format!("{:?}", Cursor::new(vec![1; 64]).unwrap()),
        "Cursor(64 bytes)"
    );
}
