//! Our engine against a hand-rolled peer (a bare tapir service speaking the peer protocol
//! byte by byte): negotiation and framing on the wire, de-duplication of retried messages,
//! blocked and unknown peers closed right after authentication, getVal access rules, and
//! garbage input.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use cwtch::wire::{
    PeerMessage, WireVersion, CONTEXT_ACK, CONTEXT_GET_VAL, CONTEXT_RAW, CONTEXT_RET_VAL,
};
use cwtch::{ConnectionState, ConversationId, Event, Identity, Onion};
use tapir::ApplicationChain;
use tapir_service::{Connection, Service, ServiceConfig};

struct RawPeer {
    service: Service,
    onion: Onion,
}

impl RawPeer {
    fn new(w: &World, seed: u8) -> RawPeer {
        let id = Arc::new(Identity::from_seed(&[seed; 32]));
        let onion = id.onion();
        RawPeer {
            service: Service::new(id, w.acn(), ServiceConfig::default()),
            onion,
        }
    }

    /// Connect to `to`. A connection of ours that the other side just closed may not have
    /// left our service yet (`AlreadyConnected`): asked again until it has.
    async fn connect(&self, to: &str) -> Connection {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match self
                .service
                .connect(&onion(to), ApplicationChain::authenticated())
                .await
            {
                Ok(c) => return c,
                Err(tapir_service::Error::AlreadyConnected(_))
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("connecting: {e:?}"),
            }
        }
    }
}

async fn recv(conn: &mut Connection) -> Option<Vec<u8>> {
    tokio::time::timeout(WAIT, conn.recv())
        .await
        .expect("a payload in time")
}

/// Receive until a message with `context` arrives (skipping getVals etc.).
async fn recv_context(conn: &mut Connection, context: &str) -> (PeerMessage, WireVersion, Vec<u8>) {
    loop {
        let p = recv(conn).await.expect("open connection");
        let (m, v) = PeerMessage::decode(&p).unwrap();
        if m.context == context && m.announced_version().is_none() {
            return (m, v, p);
        }
    }
}

async fn nothing_for(conn: &mut Connection, d: Duration) {
    if let Ok(p) = tokio::time::timeout(d, conn.recv()).await {
        panic!(
            "unexpected payload: {:?}",
            p.map(|p| String::from_utf8_lossy(&p).into_owned())
        );
    }
}

const VERSION_V1: &[u8] = br#"{"ID":"im.cwtch.version","Context":"im.cwtch.getVal","Data":"Ag=="}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_modern_peer_is_answered_in_v2_only_after_its_version_message() {
    let w = World::new();
    let mut bob = peer(&w, "bob", fast_config()).await;
    let raw = RawPeer::new(&w, 7);
    // Bob knows and accepts the raw peer, so he will ask for its attributes.
    bob.profile.add_contact(raw.onion.as_str()).await.unwrap();
    let mut conn = raw.connect(&bob.onion()).await;

    // First, exactly Go's V1 version message; then nothing until we send ours.
    assert_eq!(recv(&mut conn).await.unwrap(), VERSION_V1);
    nothing_for(&mut conn, Duration::from_millis(500)).await;
    conn.send(VERSION_V1.to_vec()).await.unwrap();

    // Now his attribute requests arrive in V2.
    let (m, v, bytes) = recv_context(&mut conn, CONTEXT_GET_VAL).await;
    assert_eq!(v, WireVersion::V2);
    assert!(bytes.starts_with(
        format!(
            "{}|im.cwtch.getVal|{{\"Scope\":\"public\",\"Path\":\"profile.",
            m.id
        )
        .as_bytes()
    ));
    // Answer the name request (and only that one).
    let mut name_id = None;
    if m.data.ends_with(br#""profile.name"}"#) {
        name_id = Some(m.id.clone());
    }
    while name_id.is_none() {
        let (m, _, _) = recv_context(&mut conn, CONTEXT_GET_VAL).await;
        if m.data.ends_with(br#""profile.name"}"#) {
            name_id = Some(m.id);
        }
    }
    let reply = format!(
        "{}|im.cwtch.retVal|{{\"Val\":\"Raw\",\"Exists\":true}}",
        name_id.unwrap()
    );
    conn.send(reply.into_bytes()).await.unwrap();
    bob.expect("raw's name", |e| {
        matches!(e, Event::AttributeUpdated { key, value, .. } if key == "public.profile.name" && value == "Raw")
    })
    .await;
    // A reply to a request never made is ignored.
    conn.send(b"999|im.cwtch.retVal|{\"Val\":\"Mallory\",\"Exists\":true}".to_vec())
        .await
        .unwrap();

    // A V2 chat message is stored and acknowledged in V2, exactly.
    conn.send(br#"4242|im.cwtch.raw|{"o":1,"d":"v2 | with bars"}"#.to_vec())
        .await
        .unwrap();
    let (_, v, bytes) = recv_context(&mut conn, CONTEXT_ACK).await;
    assert_eq!(
        (v, bytes.as_slice()),
        (WireVersion::V2, &b"4242|im.cwtch.acknowledgement|"[..])
    );
    bob.expect("v2 message", |e| {
        matches!(e, Event::NewMessage { text: Some(t), signature, .. } if t == "v2 | with bars" && signature == "4242")
    })
    .await;
    // V1 from the same peer is read too (receiving auto-detects).
    let v1 = PeerMessage::new("4343", CONTEXT_RAW, br#"{"o":1,"d":"v1 too"}"#.to_vec());
    conn.send(v1.encode_v1()).await.unwrap();
    let (m, _, _) = recv_context(&mut conn, CONTEXT_ACK).await;
    assert_eq!(m.id, "4343");
    let c = bob.profile.contact(&raw.onion).await.unwrap();
    assert_eq!(c.name.as_deref(), Some("Raw"));
    assert_eq!(c.message_count, 2);
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_old_peer_that_sends_no_version_message_gets_v1() {
    let w = World::new();
    let bob = peer(&w, "bob", fast_config()).await;
    let raw = RawPeer::new(&w, 8);
    bob.profile.add_contact(raw.onion.as_str()).await.unwrap();
    let mut conn = raw.connect(&bob.onion()).await;
    assert_eq!(recv(&mut conn).await.unwrap(), VERSION_V1);
    // We stay silent (an old peer ignores the probe): after the wait, V1.
    let (m, v, bytes) = recv_context(&mut conn, CONTEXT_GET_VAL).await;
    assert_eq!(v, WireVersion::V1);
    assert_eq!(
        bytes,
        PeerMessage::new(m.id.clone(), CONTEXT_GET_VAL, m.data.clone()).encode_v1()
    );
    let msg = PeerMessage::new("77", CONTEXT_RAW, br#"{"o":1,"d":"old"}"#.to_vec());
    conn.send(msg.encode_v1()).await.unwrap();
    let (_, v, bytes) = recv_context(&mut conn, CONTEXT_ACK).await;
    assert_eq!(v, WireVersion::V1);
    assert_eq!(
        bytes,
        br#"{"ID":"77","Context":"im.cwtch.acknowledgement","Data":""}"#
    );
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_message_is_stored_once_and_acknowledged_again() {
    let w = World::new();
    let mut bob = peer(&w, "bob", fast_config()).await;
    let raw = RawPeer::new(&w, 9);
    let msg = PeerMessage::new("31337", CONTEXT_RAW, br#"{"o":1,"d":"once"}"#.to_vec());
    let bob_home = bob.home.clone();
    for round in 0..3 {
        if round == 2 {
            // Across a restart of the receiver too.
            bob.shutdown().await;
            bob = reopen(&w, &bob_home, fast_config()).await;
        }
        let mut conn = raw.connect(&bob.onion()).await;
        recv(&mut conn).await.unwrap();
        conn.send(VERSION_V1.to_vec()).await.unwrap();
        // Sent twice per connection, as a sender whose ack was lost would.
        for _ in 0..2 {
            conn.send(msg.encode(WireVersion::V2)).await.unwrap();
            let (ack, _, _) = recv_context(&mut conn, CONTEXT_ACK).await;
            assert_eq!(ack.id, "31337", "round {round}");
        }
        conn.close();
        if round == 0 {
            bob.expect("the message", |e| matches!(e, Event::NewMessage { .. }))
                .await;
        }
        // Wait for Bob to notice the close before reconnecting.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bob.expect_none(Duration::from_millis(500), "a second copy", |e| {
        matches!(e, Event::NewMessage { .. })
    })
    .await;
    let c = bob.profile.contact(&raw.onion).await.unwrap();
    assert_eq!(c.message_count, 1);
    assert!(!c.accepted, "a contact request");
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blocked_peer_is_closed_right_after_auth() {
    let w = World::new();
    let mut bob = peer(&w, "bob", fast_config()).await;
    let raw = RawPeer::new(&w, 10);
    bob.profile.add_contact(raw.onion.as_str()).await.unwrap();
    bob.profile.block(&raw.onion).await.unwrap();
    let mut conn = raw.connect(&bob.onion()).await;
    // Authenticated (connect returned), then closed without a word (no version message).
    let _ = conn
        .send(
            PeerMessage::new("1", CONTEXT_RAW, br#"{"o":1,"d":"let me in"}"#.to_vec()).encode_v1(),
        )
        .await;
    assert_eq!(recv(&mut conn).await, None);
    bob.expect_none(
        Duration::from_millis(500),
        "a message from a blocked peer",
        |e| matches!(e, Event::NewMessage { .. }),
    )
    .await;
    assert_eq!(
        bob.profile.contact(&raw.onion).await.unwrap().message_count,
        0
    );
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strangers_are_closed_while_blocking_unknown_contacts() {
    let w = World::new();
    let mut bob = peer(&w, "bob", fast_config()).await;
    bob.profile.set_block_unknown(true).await.unwrap();
    let raw = RawPeer::new(&w, 11);
    let mut conn = raw.connect(&bob.onion()).await;
    assert_eq!(recv(&mut conn).await, None);
    bob.expect_none(Duration::from_millis(300), "a contact request", |e| {
        matches!(e, Event::ContactCreated { .. })
    })
    .await;
    assert!(bob.profile.contacts().await.unwrap().is_empty());
    // A known contact still gets in.
    bob.profile.add_contact(raw.onion.as_str()).await.unwrap();
    let mut conn = raw.connect(&bob.onion()).await;
    assert_eq!(recv(&mut conn).await.unwrap(), VERSION_V1);
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn get_val_is_answered_only_to_accepted_contacts_and_only_for_public_attributes() {
    let w = World::new();
    let mut bob = peer(&w, "bob", fast_config()).await;
    bob.profile
        .set_attribute("local.profile.secret", "s3cret")
        .await
        .unwrap();
    let raw = RawPeer::new(&w, 12);
    let mut conn = raw.connect(&bob.onion()).await;
    recv(&mut conn).await.unwrap();
    conn.send(VERSION_V1.to_vec()).await.unwrap();
    let ask = |id: &str, scope: &str, path: &str| {
        format!("{id}|im.cwtch.getVal|{{\"Scope\":\"{scope}\",\"Path\":\"{path}\"}}").into_bytes()
    };
    // A contact request: nothing disclosed.
    conn.send(ask("1", "public", "profile.name")).await.unwrap();
    let (m, _, bytes) = recv_context(&mut conn, CONTEXT_RET_VAL).await;
    assert_eq!(m.id, "1");
    assert_eq!(bytes, br#"1|im.cwtch.retVal|{"Val":"","Exists":false}"#);
    // A getVal that does not parse (like the version probe) is ignored.
    conn.send(b"2|im.cwtch.getVal|\x02".to_vec()).await.unwrap();
    let req = bob
        .expect("request", |e| matches!(e, Event::ContactCreated { .. }))
        .await;
    let Event::ContactCreated {
        conversation_id, ..
    } = req
    else {
        unreachable!()
    };
    bob.profile
        .accept(ConversationId(conversation_id))
        .await
        .unwrap();
    conn.send(ask("3", "public", "profile.name")).await.unwrap();
    let (m, _, _) = recv_context(&mut conn, CONTEXT_RET_VAL).await;
    assert_eq!(m.id, "3", "no reply to the unparseable getVal");
    assert_eq!(m.data, br#"{"Val":"bob","Exists":true}"#);
    // Local attributes are never disclosed; missing ones do not exist.
    conn.send(ask("4", "local", "profile.secret"))
        .await
        .unwrap();
    let (m, _, _) = recv_context(&mut conn, CONTEXT_RET_VAL).await;
    assert_eq!(
        (m.id.as_str(), m.data.as_slice()),
        ("4", &br#"{"Val":"","Exists":false}"#[..])
    );
    conn.send(ask("5", "public", "profile.nothing"))
        .await
        .unwrap();
    let (m, _, _) = recv_context(&mut conn, CONTEXT_RET_VAL).await;
    assert_eq!(
        (m.id.as_str(), m.data.as_slice()),
        ("5", &br#"{"Val":"","Exists":false}"#[..])
    );
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_never_hurts() {
    let w = World::new();
    let mut bob = peer(&w, "bob", fast_config()).await;
    let raw = RawPeer::new(&w, 13);
    let mut conn = raw.connect(&bob.onion()).await;
    recv(&mut conn).await.unwrap();
    for junk in [
        &b""[..],
        b"{",
        b"{\"ID\":1}",
        b"no separators",
        b"|",
        b"\xff\xfe|\x00|\x01",
        b"|im.cwtch.raw|{\"o\":1,\"d\":\"no id\"}",
        b"5|im.cwtch.acknowledgement|",
        b"6|im.cwtch.retVal|{{{",
        b"7|im.cwtch.file.request.chunk|0:1",
        b"im.cwtch.version|im.cwtch.getVal|\x09",
    ] {
        conn.send(junk.to_vec()).await.unwrap();
    }
    // Still alive: an invalid-UTF-8, non-JSON body is stored as a malformed message.
    conn.send(b"8|im.cwtch.raw|\xff not json".to_vec())
        .await
        .unwrap();
    // (The junk with context "\0" was a chat message with an unknown context: acknowledged
    // and stored as malformed too.)
    loop {
        let (m, _, _) = recv_context(&mut conn, CONTEXT_ACK).await;
        if m.id == "8" {
            break;
        }
        assert_eq!(m.id, "\u{fffd}\u{fffd}");
    }
    let ev = bob
        .expect("malformed", |e| {
            matches!(e, Event::NewMessage { malformed: true, signature, .. } if signature == "8")
        })
        .await;
    assert!(matches!(
        ev,
        Event::NewMessage {
            overlay: None,
            text: None,
            ..
        }
    ));
    // An unknown context is a chat message too (spec §7.3).
    conn.send(br#"9|im.cwtch.future|{"o":1,"d":"from the future"}"#.to_vec())
        .await
        .unwrap();
    let (m, _, _) = recv_context(&mut conn, CONTEXT_ACK).await;
    assert_eq!(m.id, "9");
    assert_eq!(
        bob.profile.contact(&raw.onion).await.unwrap().message_count,
        3
    );
    bob.shutdown().await;
}

/// Connect and say whether Bob let us in: he sends his version message first, or closes.
async fn let_in(raw: &RawPeer, bob: &Peer) -> Option<Connection> {
    let mut conn = raw.connect(&bob.onion()).await;
    match recv(&mut conn).await {
        Some(p) => {
            assert_eq!(p, VERSION_V1);
            Some(conn)
        }
        None => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contact_requests_are_capped_until_the_user_deals_with_some() {
    let w = World::new();
    let mut config = fast_config();
    config.max_contact_requests = 2;
    let bob = peer(&w, "bob", config).await;
    let (a, b, c) = (
        RawPeer::new(&w, 21),
        RawPeer::new(&w, 22),
        RawPeer::new(&w, 23),
    );
    for raw in [&a, &b] {
        let conn = let_in(raw, &bob)
            .await
            .expect("a contact request while there is room");
        conn.close();
    }
    // Two requests wait: the third stranger is closed right after authentication.
    assert!(let_in(&c, &bob).await.is_none(), "a third request");
    assert_eq!(bob.profile.contacts().await.unwrap().len(), 2);
    assert!(bob.profile.contact(&c.onion).await.is_err());
    // Accepted contacts and blocked peers are not waiting requests: room again.
    bob.profile.accept(&a.onion).await.unwrap();
    let conn = let_in(&c, &bob).await.expect("room after one was accepted");
    conn.close();
    let req = bob.profile.contact(&c.onion).await.unwrap();
    assert!(!req.accepted, "a contact request");
    // A request that exists already still gets in while the list is full.
    let conn = let_in(&b, &bob).await.expect("a known request");
    conn.close();
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_contact_request_keeps_only_so_many_messages() {
    let w = World::new();
    let mut config = fast_config();
    config.max_request_messages = 3;
    let bob = peer(&w, "bob", config).await;
    let raw = RawPeer::new(&w, 24);
    let mut conn = let_in(&raw, &bob).await.unwrap();
    conn.send(VERSION_V1.to_vec()).await.unwrap();
    let msg = |i: u32| {
        PeerMessage::new(
            i.to_string(),
            CONTEXT_RAW,
            format!(r#"{{"o":1,"d":"hello {i}"}}"#).into_bytes(),
        )
        .encode(WireVersion::V2)
    };
    // What Bob writes to the request does not count towards its limit.
    bob.profile
        .send_text(raw.onion.clone(), "who are you?")
        .await
        .unwrap();
    for i in 0..3 {
        conn.send(msg(i)).await.unwrap();
        let (ack, _, _) = recv_context(&mut conn, CONTEXT_ACK).await;
        assert_eq!(ack.id, i.to_string());
    }
    // The fourth is neither stored nor acknowledged.
    conn.send(msg(3)).await.unwrap();
    nothing_for(&mut conn, Duration::from_millis(500)).await;
    assert_eq!(
        bob.profile.contact(&raw.onion).await.unwrap().message_count,
        4
    );
    // A retried message that is stored already is still acknowledged.
    conn.send(msg(1)).await.unwrap();
    let (ack, _, _) = recv_context(&mut conn, CONTEXT_ACK).await;
    assert_eq!(ack.id, "1");
    // Accepting closes the connection (messages were held back), so that the sender's
    // next connection sends them again; that retry is stored.
    bob.profile.accept(&raw.onion).await.unwrap();
    while recv(&mut conn).await.is_some() {}
    let mut conn = let_in(&raw, &bob).await.expect("an accepted contact");
    conn.send(VERSION_V1.to_vec()).await.unwrap();
    conn.send(msg(3)).await.unwrap();
    let (ack, _, _) = recv_context(&mut conn, CONTEXT_ACK).await;
    assert_eq!(ack.id, "3");
    assert_eq!(
        bob.profile.contact(&raw.onion).await.unwrap().message_count,
        5
    );
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strangers_share_a_few_connection_slots_and_contacts_still_get_in() {
    let w = World::new();
    let mut config = fast_config();
    config.max_stranger_connections = 2;
    let bob = peer(&w, "bob", config).await;
    let (a, b, c, friend) = (
        RawPeer::new(&w, 25),
        RawPeer::new(&w, 26),
        RawPeer::new(&w, 27),
        RawPeer::new(&w, 28),
    );
    bob.profile
        .add_contact(friend.onion.as_str())
        .await
        .unwrap();
    let held_a = let_in(&a, &bob).await.expect("a first stranger");
    let _held_b = let_in(&b, &bob).await.expect("a second stranger");
    assert!(let_in(&c, &bob).await.is_none(), "a third stranger at once");
    assert!(
        bob.profile.contact(&c.onion).await.is_err(),
        "a stranger refused a slot is not made a contact request"
    );
    let _friend = let_in(&friend, &bob).await.expect("an accepted contact");
    // A slot is freed when a stranger's connection ends.
    held_a.close();
    let mut tries = 0;
    let held_c = loop {
        if let Some(conn) = let_in(&c, &bob).await {
            break conn;
        }
        tries += 1;
        assert!(tries < 50, "the slot was never freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // A slot is freed too when the user accepts the stranger, though its connection stays.
    let d = RawPeer::new(&w, 29);
    assert!(let_in(&d, &bob).await.is_none(), "the slots are full again");
    let held_b = _held_b;
    held_b.send(VERSION_V1.to_vec()).await.unwrap();
    let mut tries = 0;
    while !bob
        .profile
        .contact(&b.onion)
        .await
        .is_ok_and(|c| c.state == ConnectionState::Authenticated)
    {
        tries += 1;
        assert!(tries < 50, "the stranger's connection never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bob.profile.accept(&b.onion).await.unwrap();
    assert!(
        !held_b.handle().is_closed(),
        "accepting kept the connection"
    );
    let _held_d = let_in(&d, &bob)
        .await
        .expect("a stranger gets the slot an accepted one left");
    drop(held_c);
    bob.shutdown().await;
}

/// A profile whose messages a contact request held back (over its limit) sees every one of
/// them acknowledged once the request is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_held_back_by_a_request_arrive_once_it_is_accepted() {
    let w = World::new();
    let mut alice = peer(&w, "alice", fast_config()).await;
    let mut config = fast_config();
    config.max_request_messages = 2;
    let bob = peer(&w, "bob", config).await;
    alice.profile.add_contact(&bob.onion()).await.unwrap();
    let b = onion(&bob.onion());
    for i in 0..5 {
        alice
            .profile
            .send_text(b.clone(), &format!("hello {i}"))
            .await
            .unwrap();
    }
    for _ in 0..2 {
        alice
            .expect("an acknowledgement", |e| {
                matches!(e, Event::Acknowledged { .. })
            })
            .await;
    }
    alice
        .expect_none(Duration::from_millis(500), "a third acknowledgement", |e| {
            matches!(e, Event::Acknowledged { .. })
        })
        .await;
    let a = onion(&alice.onion());
    assert_eq!(
        bob.profile.contact(a.clone()).await.unwrap().message_count,
        2
    );
    bob.profile.accept(a.clone()).await.unwrap();
    for _ in 0..3 {
        alice
            .expect("the held-back messages acknowledged", |e| {
                matches!(e, Event::Acknowledged { .. })
            })
            .await;
    }
    assert_eq!(bob.profile.contact(a).await.unwrap().message_count, 5);
    alice.shutdown().await;
    bob.shutdown().await;
}
