//! Two engines (two profiles, two homes, one loopback network): contact requests,
//! acceptance, messages both ways, acknowledgements and message states, attributes over
//! getVal, blocking, block-unknown, offline delivery, limits, malformed overlays, and an
//! old (V1-only) peer.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use common::*;
use cwtch::{
    ConnectionState, ContactId, Content, Error, Event, MessageState, Password, P2P_TEXT_MAX_CHARS,
};

fn is_new_message_from<'a>(from: &'a str, text: &'a str) -> impl Fn(&Event) -> bool + 'a {
    move |e| matches!(e, Event::NewMessage { contact, text: Some(t), .. } if contact == from && t == text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contact_request_acceptance_and_messages_both_ways() {
    let w = World::new();
    let mut alice = peer(&w, "alice", fast_config()).await;
    let mut bob = peer(&w, "bob", fast_config()).await;
    let (a, b) = (alice.onion(), bob.onion());

    // Alice adds Bob: accepted on her side.
    let c = alice.profile.add_contact(&b).await.unwrap();
    assert!(c.accepted && !c.blocked);
    assert_eq!(c.onion.as_str(), b);
    // Adding twice returns the same contact.
    let again = alice.profile.add_contact(&b).await.unwrap();
    assert_eq!(again.conversation_id, c.conversation_id);
    // Invalid and own addresses are errors.
    assert!(matches!(
        alice.profile.add_contact("nope").await,
        Err(Error::InvalidAddress(_))
    ));
    assert!(matches!(
        alice.profile.add_contact(&a).await,
        Err(Error::SelfContact)
    ));

    // Bob sees a contact request once Alice's engine connects.
    let req = bob
        .expect("contact request", |e| {
            matches!(e, Event::ContactCreated { contact, request: true, accepted: false, .. } if *contact == a)
        })
        .await;
    let Event::ContactCreated {
        conversation_id: bob_conv,
        profile,
        ..
    } = req
    else {
        unreachable!()
    };
    assert_eq!(profile, b);
    let contacts = bob.profile.contacts().await.unwrap();
    assert_eq!(contacts.len(), 1);
    assert!(!contacts[0].accepted);

    // A message from Alice is delivered to the (unaccepted) request and acknowledged.
    let sent = alice.profile.send_text(&c, "hello bob").await.unwrap();
    bob.expect("alice's message", is_new_message_from(&a, "hello bob"))
        .await;
    alice
        .expect("ack", |e| {
            matches!(e, Event::Acknowledged { message_id, .. } if *message_id == sent.message_id.0)
        })
        .await;

    // Bob accepts and replies.
    bob.profile
        .accept(cwtch::ConversationId(bob_conv))
        .await
        .unwrap();
    let reply = bob
        .profile
        .send_text(cwtch::ConversationId(bob_conv), "hi alice <3")
        .await
        .unwrap();
    let ev = alice
        .expect("bob's reply", is_new_message_from(&b, "hi alice <3"))
        .await;
    let Event::NewMessage {
        overlay,
        body,
        content_hash,
        malformed,
        ..
    } = ev
    else {
        unreachable!()
    };
    assert_eq!(overlay, Some(1));
    assert_eq!(body, r#"{"o":1,"d":"hi alice \u003c3"}"#);
    assert!(!malformed);
    // The content hash is computed over the sender's onion and the raw body, on both sides.
    assert_eq!(content_hash, reply.content_hash);
    bob.expect("ack of the reply", |e| {
        matches!(e, Event::Acknowledged { message_id, .. } if *message_id == reply.message_id.0)
    })
    .await;

    // Unread: the other's messages since the last read; our own never count.
    let bc = cwtch::ConversationId(bob_conv);
    assert_eq!(alice.profile.contact(&c).await.unwrap().unread, 1);
    assert_eq!(bob.profile.contact(bc).await.unwrap().unread, 1);
    bob.profile.mark_read(bc).await.unwrap();
    assert_eq!(bob.profile.contact(bc).await.unwrap().unread, 0);
    assert_eq!(bob.profile.contacts().await.unwrap()[0].unread, 0);
    alice.profile.mark_read(&c).await.unwrap();
    assert_eq!(alice.profile.contacts().await.unwrap()[0].unread, 0);

    // Both sides stored both messages, with states.
    let msgs = alice.profile.messages(&c, 0, 10).await.unwrap();
    assert_eq!(msgs.len(), 2);
    assert!(!msgs[0].outgoing && msgs[0].state == MessageState::Received);
    assert_eq!(msgs[0].content, Content::text("hi alice <3"));
    assert!(msgs[1].outgoing && msgs[1].state == MessageState::Acknowledged);
    let msgs = bob
        .profile
        .messages(cwtch::ConversationId(bob_conv), 0, 10)
        .await
        .unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1].author, a);
    assert_eq!(msgs[1].signature, sent.signature);

    // A quoted reply and a contact suggestion round-trip.
    alice
        .profile
        .send_quoted_reply(&c, &content_hash, "quoted for you")
        .await
        .unwrap();
    let ev = bob
        .expect("quoted reply", is_new_message_from(&a, "quoted for you"))
        .await;
    assert!(
        matches!(ev, Event::NewMessage { overlay: Some(10), quoted_hash: Some(h), .. } if h == content_hash)
    );
    // Only what came after the last read is unread.
    assert_eq!(bob.profile.contact(bc).await.unwrap().unread, 1);
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn message_states_and_offline_delivery() {
    let w = World::new();
    let mut alice = peer(&w, "alice", fast_config()).await;
    let bob = peer(&w, "bob", fast_config()).await;
    let (a, b) = (alice.onion(), bob.onion());
    let bob_home = bob.home.clone();
    // Bob goes offline before Alice knows him.
    bob.shutdown().await;

    let c = alice.profile.add_contact(&b).await.unwrap();
    let sent = alice
        .profile
        .send_text(&c, "while you were out")
        .await
        .unwrap();
    assert_eq!(sent.state, MessageState::Sending);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = alice
        .profile
        .message(&c, sent.message_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.state, MessageState::Sending);
    assert_eq!(alice.profile.contact(&c).await.unwrap().unacknowledged, 1);

    // Bob comes back: the stored message is delivered (sending → sent → acknowledged).
    let mut bob = reopen(&w, &bob_home, fast_config()).await;
    alice
        .expect("sent", |e| {
            matches!(e, Event::MessageSent { message_id, .. } if *message_id == sent.message_id.0)
        })
        .await;
    alice
        .expect("acknowledged", |e| {
            matches!(e, Event::Acknowledged { message_id, .. } if *message_id == sent.message_id.0)
        })
        .await;
    bob.expect("delivered", is_new_message_from(&a, "while you were out"))
        .await;
    let m = alice
        .profile
        .message(&c, sent.message_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.state, MessageState::Acknowledged);
    assert_eq!(alice.profile.contact(&c).await.unwrap().unacknowledged, 0);
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attributes_are_disclosed_only_after_acceptance() {
    let w = World::new();
    let mut alice = peer(&w, "alice", fast_config()).await;
    let mut bob = peer(&w, "bob", fast_config()).await;
    let (a, b) = (alice.onion(), bob.onion());
    alice.profile.set_status("busy").await.unwrap();
    bob.profile.set_name("  Robert ").await.unwrap();
    // A name contacts fetch is one line of at most 256 characters, not empty: anything else
    // is refused and the name kept, as is a profile created with such a name.
    let long = "n".repeat(cwtch::LOCAL_NAME_MAX_CHARS + 1);
    for bad in ["", "  ", "Rob\nert", "Rob\u{1b}[2Jert", long.as_str()] {
        assert!(
            matches!(bob.profile.set_name(bad).await, Err(Error::Invalid { .. })),
            "{bad:?}"
        );
        assert!(
            matches!(
                bob.cwtch.create_profile(bad, &Password::Default).await,
                Err(Error::Invalid { .. })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(bob.profile.name().await.unwrap(), "Robert");
    assert_eq!(
        bob.cwtch
            .list_profiles(&Password::Default)
            .await
            .unwrap()
            .len(),
        1
    );

    let c = alice.profile.add_contact(&b).await.unwrap();
    let req = bob
        .expect("request", |e| {
            matches!(e, Event::ContactCreated { request: true, .. })
        })
        .await;
    let Event::ContactCreated {
        conversation_id, ..
    } = req
    else {
        unreachable!()
    };
    let bob_conv = cwtch::ConversationId(conversation_id);
    // Let the connection settle: Alice asked for Bob's attributes, Bob (who has not accepted
    // her) answered Exists:false; Bob asked nothing.
    alice
        .expect("connected", |e| {
            matches!(
                e,
                Event::PeerStateChanged {
                    state: ConnectionState::Authenticated,
                    ..
                }
            )
        })
        .await;
    alice
        .expect_none(Duration::from_secs(1), "attribute before acceptance", |e| {
            matches!(e, Event::AttributeUpdated { .. })
        })
        .await;
    assert!(alice.profile.contact(&c).await.unwrap().name.is_none());
    assert!(bob.profile.contact(bob_conv).await.unwrap().name.is_none());

    // Bob accepts: he fetches Alice's attributes, and she (asked by him) fetches his.
    bob.profile.accept(bob_conv).await.unwrap();
    bob.expect("alice's name", |e| {
        matches!(e, Event::AttributeUpdated { key, value, contact, .. }
            if key == "public.profile.name" && value == "alice" && *contact == a)
    })
    .await;
    alice
        .expect("bob's name", |e| {
            matches!(e, Event::AttributeUpdated { key, value, contact, .. }
                if key == "public.profile.name" && value == "Robert" && *contact == b)
        })
        .await;
    let bc = bob.profile.contact(bob_conv).await.unwrap();
    assert_eq!(bc.name.as_deref(), Some("alice"));
    // Her status too (it is set); unset attributes are not stored.
    for _ in 0..50 {
        if bob
            .profile
            .contact(bob_conv)
            .await
            .unwrap()
            .attributes
            .get("public.profile.profile-status")
            == Some(&"busy".to_owned())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bc = bob.profile.contact(bob_conv).await.unwrap();
    assert_eq!(
        bc.attributes.get("public.profile.profile-status").unwrap(),
        "busy"
    );
    assert!(!bc
        .attributes
        .contains_key("public.profile.profile-attribute-1"));
    assert_eq!(
        alice.profile.contact(&c).await.unwrap().name.as_deref(),
        Some("Robert")
    );
    // A local nickname wins over the public name.
    alice
        .profile
        .set_contact_attribute(&c, "local.profile.name", "Bobby")
        .await
        .unwrap();
    assert_eq!(
        alice.profile.contact(&c).await.unwrap().name.as_deref(),
        Some("Bobby")
    );
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn block_stops_delivery_and_unblock_restores_it() {
    let w = World::new();
    let mut alice = peer(&w, "alice", fast_config()).await;
    let mut bob = peer(&w, "bob", fast_config()).await;
    let (a, b) = (alice.onion(), bob.onion());
    befriend(&mut alice, &mut bob).await;
    let ac = ContactId::Onion(onion(&b));
    let bc = ContactId::Onion(onion(&a));
    alice.profile.send_text(ac.clone(), "before").await.unwrap();
    bob.expect("before", is_new_message_from(&a, "before"))
        .await;

    // Bob blocks Alice: her connection is closed, and every reconnection is closed after auth.
    bob.profile.block(bc.clone()).await.unwrap();
    bob.expect(
        "blocked",
        |e| matches!(e, Event::ContactBlocked { contact, .. } if *contact == a),
    )
    .await;
    alice
        .expect("disconnected", |e| {
            matches!(
                e,
                Event::PeerStateChanged {
                    state: ConnectionState::Disconnected,
                    ..
                }
            )
        })
        .await;
    assert!(matches!(
        bob.profile.send_text(bc.clone(), "x").await,
        Err(Error::ContactBlocked)
    ));
    let during = alice.profile.send_text(ac.clone(), "during").await.unwrap();
    bob.expect_none(Duration::from_secs(2), "message while blocked", |e| {
        matches!(e, Event::NewMessage { .. })
    })
    .await;
    assert_eq!(
        bob.profile.contact(bc.clone()).await.unwrap().message_count,
        1
    );
    let m = alice
        .profile
        .message(ac.clone(), during.message_id)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        m.state,
        MessageState::Sending | MessageState::Sent
    ));
    assert!(bob.profile.contact(bc.clone()).await.unwrap().blocked);

    // Unblock: Alice's retried message arrives.
    bob.profile.unblock(bc.clone()).await.unwrap();
    bob.expect("during, after unblock", is_new_message_from(&a, "during"))
        .await;
    alice
        .expect("ack", |e| {
            matches!(e, Event::Acknowledged { message_id, .. } if *message_id == during.message_id.0)
        })
        .await;
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn block_unknown_refuses_strangers() {
    let w = World::new();
    let mut alice = peer(&w, "alice", fast_config()).await;
    let mut bob = peer(&w, "bob", fast_config()).await;
    let b = bob.onion();
    bob.profile.set_block_unknown(true).await.unwrap();
    assert!(bob.profile.block_unknown());
    alice.profile.add_contact(&b).await.unwrap();
    alice
        .expect("dial attempt", |e| {
            matches!(
                e,
                Event::PeerStateChanged {
                    state: ConnectionState::Connecting,
                    ..
                }
            )
        })
        .await;
    bob.expect_none(Duration::from_secs(2), "contact request", |e| {
        matches!(e, Event::ContactCreated { .. })
    })
    .await;
    assert!(bob.profile.contacts().await.unwrap().is_empty());
    // Turned off (and persisted): the request comes through.
    bob.profile.set_block_unknown(false).await.unwrap();
    assert_eq!(
        bob.profile
            .attribute(cwtch::BLOCK_UNKNOWN_ATTRIBUTE)
            .await
            .unwrap()
            .as_deref(),
        Some("false")
    );
    bob.expect("request", |e| {
        matches!(e, Event::ContactCreated { request: true, .. })
    })
    .await;
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_and_malformed_overlays() {
    let w = World::new();
    let mut alice = peer(&w, "alice", fast_config()).await;
    let mut bob = peer(&w, "bob", fast_config()).await;
    let a = alice.onion();
    befriend(&mut alice, &mut bob).await;
    let ac = ContactId::Onion(onion(&bob.onion()));

    // Over 7000 characters: refused, nothing stored.
    let long = "a".repeat(P2P_TEXT_MAX_CHARS + 1);
    assert!(matches!(
        alice.profile.send_text(ac.clone(), &long).await,
        Err(Error::MessageTooLong {
            chars: 7001,
            max: 7000
        })
    ));
    // 7000 multi-byte characters fit the limit but not a packet: refused, never truncated.
    let wide = "€".repeat(P2P_TEXT_MAX_CHARS);
    assert!(matches!(
        alice.profile.send_text(ac.clone(), &wide).await,
        Err(Error::PayloadTooLarge { .. })
    ));
    assert_eq!(
        alice
            .profile
            .contact(ac.clone())
            .await
            .unwrap()
            .message_count,
        0
    );
    // Exactly 7000 ASCII characters go through (V2 framing).
    let max = "b".repeat(P2P_TEXT_MAX_CHARS);
    alice.profile.send_text(ac.clone(), &max).await.unwrap();
    bob.expect("7000 characters", is_new_message_from(&a, &max))
        .await;

    // An unknown overlay is stored and surfaced as malformed.
    let odd = alice
        .profile
        .send_overlay(ac.clone(), 999, "mystery")
        .await
        .unwrap();
    let ev = bob
        .expect("malformed", |e| {
            matches!(
                e,
                Event::NewMessage {
                    malformed: true,
                    ..
                }
            )
        })
        .await;
    let Event::NewMessage {
        overlay,
        text,
        body,
        message_id,
        ..
    } = ev
    else {
        unreachable!()
    };
    assert_eq!((overlay, text), (Some(999), None));
    assert_eq!(body, r#"{"o":999,"d":"mystery"}"#);
    let stored = bob
        .profile
        .message(ContactId::Onion(onion(&a)), cwtch::MessageId(message_id))
        .await
        .unwrap()
        .unwrap();
    assert!(stored.content.is_malformed());
    alice
        .expect("ack of malformed", |e| {
            matches!(e, Event::Acknowledged { message_id, .. } if *message_id == odd.message_id.0)
        })
        .await;
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_old_v1_only_peer_still_talks() {
    let w = World::new();
    let mut alice = peer(&w, "alice", fast_config()).await;
    let mut old = fast_config();
    old.legacy_v1_only = true;
    let mut bob = peer(&w, "bob", old).await;
    let (a, b) = (alice.onion(), bob.onion());
    befriend(&mut alice, &mut bob).await;
    let ac = ContactId::Onion(onion(&b));
    let bc = ContactId::Onion(onion(&a));

    alice
        .profile
        .send_text(ac.clone(), "to the old peer")
        .await
        .unwrap();
    bob.expect("from new", is_new_message_from(&a, "to the old peer"))
        .await;
    alice
        .expect("ack from old", |e| matches!(e, Event::Acknowledged { .. }))
        .await;
    bob.profile
        .send_text(bc.clone(), "from the old peer")
        .await
        .unwrap();
    alice
        .expect("from old", is_new_message_from(&b, "from the old peer"))
        .await;
    bob.expect("ack from new", |e| matches!(e, Event::Acknowledged { .. }))
        .await;
    // Attributes flow too (getVal/retVal in V1).
    bob.expect(
        "alice's name",
        |e| matches!(e, Event::AttributeUpdated { value, .. } if value == "alice"),
    )
    .await;

    // 7000 characters do not fit V1 (base64): stored, then failed for this peer, not cut.
    let max = "c".repeat(P2P_TEXT_MAX_CHARS);
    let big = alice.profile.send_text(ac.clone(), &max).await.unwrap();
    let ev = alice
        .expect("failed", |e| {
            matches!(e, Event::MessageFailed { message_id, .. } if *message_id == big.message_id.0)
        })
        .await;
    assert!(matches!(ev, Event::MessageFailed { reason, .. } if reason.contains("V1")));
    let m = alice
        .profile
        .message(ac.clone(), big.message_id)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(m.state, MessageState::Failed { .. }));
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_contact_and_profile_lock() {
    let w = World::new();
    let mut alice = peer(&w, "alice", fast_config()).await;
    let mut bob = peer(&w, "bob", fast_config()).await;
    let b = bob.onion();
    befriend(&mut alice, &mut bob).await;
    let ac = ContactId::Onion(onion(&b));
    alice.profile.send_text(ac.clone(), "bye").await.unwrap();
    alice.profile.delete_contact(ac.clone()).await.unwrap();
    alice
        .expect(
            "deleted",
            |e| matches!(e, Event::ContactDeleted { contact, .. } if *contact == b),
        )
        .await;
    assert!(alice.profile.contacts().await.unwrap().is_empty());
    assert!(matches!(
        alice.profile.send_text(ac.clone(), "x").await,
        Err(Error::ContactNotFound)
    ));

    // A second Cwtch on the same home cannot run the loaded profile: a clear error.
    let other = cwtch::Cwtch::open_with_config(&alice.home, w.acn(), fast_config())
        .await
        .unwrap();
    let id = alice.profile.profile_id().clone();
    assert!(matches!(
        other.load_profile(id.as_str(), &Password::Default).await,
        Err(Error::ProfileLocked { .. })
    ));
    // The first Cwtch refuses to load it twice.
    assert!(matches!(
        alice
            .cwtch
            .load_profile(id.as_str(), &Password::Default)
            .await,
        Err(Error::ProfileLoaded(_))
    ));
    // Listing works meanwhile (read-only), with the right password only.
    let listed = other.list_profiles(&Password::Default).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(other
        .list_profiles(&Password::user("wrong"))
        .await
        .unwrap()
        .is_empty());
    alice.shutdown().await;
    // Released.
    let p = other
        .load_profile(id.as_str(), &Password::Default)
        .await
        .unwrap();
    p.shutdown().await;
    bob.shutdown().await;
}

/// A name (or status, or picture) changed while connected reaches a contact without a new
/// connection: open connections ask for an accepted contact's public attributes now and then.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_name_reaches_a_connected_contact() {
    let w = World::new();
    let mut config = fast_config();
    config.attribute_refresh = Duration::from_millis(300);
    let mut alice = peer(&w, "alice", config.clone()).await;
    let mut bob = peer(&w, "bob", config).await;
    befriend(&mut alice, &mut bob).await;
    let a = alice.onion();
    bob.expect("Alice's name", |e| {
        matches!(e, Event::AttributeUpdated { contact, key, value, .. }
            if *contact == a && key == "public.profile.name" && value == "alice")
    })
    .await;
    alice.profile.set_name("Alicia").await.unwrap();
    bob.expect("Alice's new name, on the same connection", |e| {
        matches!(e, Event::AttributeUpdated { contact, key, value, .. }
            if *contact == a && key == "public.profile.name" && value == "Alicia")
    })
    .await;
    assert_eq!(
        bob.profile
            .contact(onion(&a))
            .await
            .unwrap()
            .name
            .as_deref(),
        Some("Alicia")
    );
    alice.shutdown().await;
    bob.shutdown().await;
}
