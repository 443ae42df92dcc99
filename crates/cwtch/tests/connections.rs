//! Connections on demand over the loopback network: disconnecting from a contact and dialling
//! it again, what the engine may do on its own (listen, dial contacts, join servers),
//! deactivating and activating the engine, joining and leaving a server; and message search
//! and message attributes (libCwtch's `DisconnectFromPeer`, `PeerWithOnion`,
//! `ConfigureConnections`, `DeactivatePeerEngine`, `QueueJoinServer`, `DisconnectFromServer`,
//! `SearchConversations`, `UpdateMessageAttribute`).

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use common::*;
use cwtch::{ConnectionState, Connections, ConversationId, Event, MessageId, ServerState};
use cwtch_server::{Server, ServerConfig};

/// How long a negative check waits for something that must not happen (it cannot fail
/// spuriously on a slow machine: a slow machine only makes it check less).
const QUIET: Duration = Duration::from_secs(2);

fn state_of<'a>(contact: &'a str, state: ConnectionState) -> impl Fn(&Event) -> bool + 'a {
    move |e| matches!(e, Event::PeerStateChanged { contact: c, state: s, .. } if c == contact && *s == state)
}

async fn conversation_of(p: &Peer, contact: &str) -> ConversationId {
    p.profile
        .contact(onion(contact))
        .await
        .unwrap()
        .conversation_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disconnect_from_a_peer_and_dial_it_again() {
    let w = World::new();
    let mut alice = peer(&w, "alice", fast_config()).await;
    let mut bob = peer(&w, "bob", fast_config()).await;
    // Bob does not dial on his own: whoever disconnects stays disconnected.
    bob.profile
        .configure_connections(Connections {
            peers: false,
            ..Connections::ALL
        })
        .await
        .unwrap();
    assert_eq!(
        bob.profile.connections(),
        Connections {
            listen: true,
            peers: false,
            servers: true
        }
    );
    befriend(&mut alice, &mut bob).await;
    let (a, b) = (alice.onion(), bob.onion());
    let b_conv = conversation_of(&alice, &b).await;
    // Asking to connect while connected changes nothing.
    alice.profile.connect_to_peer(onion(&b)).await.unwrap();
    bob.expect("connected", state_of(&a, ConnectionState::Authenticated))
        .await;

    alice.profile.disconnect_from_peer(onion(&b)).await.unwrap();
    alice
        .expect("disconnected", state_of(&b, ConnectionState::Disconnected))
        .await;
    bob.expect("disconnected", state_of(&a, ConnectionState::Disconnected))
        .await;
    alice.events.clear();
    // Nobody dials: they stay apart.
    alice
        .expect_none(
            QUIET,
            "a reconnection",
            state_of(&b, ConnectionState::Authenticated),
        )
        .await;
    assert_eq!(
        alice.profile.connection_states()[&b_conv],
        ConnectionState::Disconnected
    );
    // A message waits, stored.
    let sent = alice
        .profile
        .send_text(onion(&b), "after the break")
        .await
        .unwrap();
    assert_eq!(sent.state, cwtch::MessageState::Sending);

    // Dialling on request connects again, and the message goes out.
    alice.profile.connect_to_peer(onion(&b)).await.unwrap();
    alice
        .expect("reconnected", state_of(&b, ConnectionState::Authenticated))
        .await;
    bob.expect(
        "the waiting message",
        |e| matches!(e, Event::NewMessage { text: Some(t), .. } if t == "after the break"),
    )
    .await;

    // Unknown and invalid contacts are errors.
    let stranger = cwtch::Identity::generate(&mut rand_core::OsRng).onion();
    assert!(matches!(
        alice.profile.connect_to_peer(stranger.clone()).await,
        Err(cwtch::Error::ContactNotFound)
    ));
    assert!(alice.profile.disconnect_from_peer(stranger).await.is_err());
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn configured_connections_prevent_dialling_and_listening() {
    let w = World::new();
    let mut alice = peer(&w, "alice", fast_config()).await;
    let mut bob = peer(&w, "bob", fast_config()).await;
    let b = bob.onion();
    // Alice may not dial: adding Bob reaches nobody.
    alice
        .profile
        .configure_connections(Connections {
            peers: false,
            ..Connections::ALL
        })
        .await
        .unwrap();
    alice.profile.add_contact(&b).await.unwrap();
    alice.profile.send_text(onion(&b), "hi bob").await.unwrap();
    bob.expect_none(QUIET, "a contact request", |e| {
        matches!(e, Event::ContactCreated { request: true, .. })
    })
    .await;
    alice
        .expect_none(QUIET, "dialling", state_of(&b, ConnectionState::Connecting))
        .await;

    // Bob stops listening: even allowed to dial, Alice cannot reach him.
    bob.profile
        .configure_connections(Connections {
            listen: false,
            ..Connections::ALL
        })
        .await
        .unwrap();
    assert!(!bob.profile.is_online());
    alice
        .profile
        .configure_connections(Connections::ALL)
        .await
        .unwrap();
    alice
        .expect("a failed dial", state_of(&b, ConnectionState::Failed))
        .await;
    bob.expect_none(QUIET, "a contact request", |e| {
        matches!(e, Event::ContactCreated { request: true, .. })
    })
    .await;

    // Bob listens again: the request and the message arrive.
    bob.profile
        .configure_connections(Connections::ALL)
        .await
        .unwrap();
    assert!(bob.profile.wait_online(WAIT).await);
    bob.expect("the contact request", |e| {
        matches!(e, Event::ContactCreated { request: true, .. })
    })
    .await;
    bob.expect(
        "the message",
        |e| matches!(e, Event::NewMessage { text: Some(t), .. } if t == "hi bob"),
    )
    .await;
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dial_on_request_hands_over_to_the_dialler() {
    let w = World::new();
    let mut alice = peer(&w, "alice", fast_config()).await;
    let mut bob = peer(&w, "bob", fast_config()).await;
    let (a, b) = (alice.onion(), bob.onion());
    alice
        .profile
        .configure_connections(Connections {
            peers: false,
            ..Connections::ALL
        })
        .await
        .unwrap();
    alice.profile.add_contact(&b).await.unwrap();
    // Dialling is off: asked for, Bob is dialled once.
    alice.profile.connect_to_peer(onion(&b)).await.unwrap();
    alice
        .expect("connected", state_of(&b, ConnectionState::Authenticated))
        .await;
    bob.expect("the request", |e| {
        matches!(e, Event::ContactCreated { request: true, .. })
    })
    .await;
    // Dialling on again while that connection lasts; when Bob (who has not accepted, so does
    // not dial) drops it, Alice's own dialler takes over.
    alice
        .profile
        .configure_connections(Connections::ALL)
        .await
        .unwrap();
    bob.profile.disconnect_from_peer(onion(&a)).await.unwrap();
    alice
        .expect("disconnected", state_of(&b, ConnectionState::Disconnected))
        .await;
    alice
        .expect("redialled", state_of(&b, ConnectionState::Authenticated))
        .await;
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deactivated_engine_makes_no_connections_until_activated() {
    let w = World::new();
    let mut alice = peer(&w, "alice", fast_config()).await;
    let mut bob = peer(&w, "bob", fast_config()).await;
    befriend(&mut alice, &mut bob).await;
    let b = bob.onion();
    alice.profile.set_engine_active(false).await.unwrap();
    assert!(!alice.profile.engine_active());
    alice
        .expect("disconnected", state_of(&b, ConnectionState::Disconnected))
        .await;
    alice.events.clear();
    assert!(!alice.profile.is_online());
    assert!(matches!(
        alice.profile.connect_to_peer(onion(&b)).await,
        Err(cwtch::Error::EngineDeactivated)
    ));
    // The profile itself stays usable.
    alice.profile.send_text(onion(&b), "queued").await.unwrap();
    alice
        .expect_none(
            QUIET,
            "a connection",
            state_of(&b, ConnectionState::Authenticated),
        )
        .await;

    alice.profile.set_engine_active(true).await.unwrap();
    assert!(alice.profile.wait_online(WAIT).await);
    alice
        .expect(
            "connected again",
            state_of(&b, ConnectionState::Authenticated),
        )
        .await;
    bob.expect(
        "the queued message",
        |e| matches!(e, Event::NewMessage { text: Some(t), .. } if t == "queued"),
    )
    .await;
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_profile_without_autostart_loads_offline_until_activated() {
    let w = World::new();
    let mut alice = peer(&w, "alice", fast_config()).await;
    let mut bob = peer(&w, "bob", fast_config()).await;
    befriend(&mut alice, &mut bob).await;
    let (a, b) = (alice.onion(), bob.onion());
    assert!(bob.profile.autostart().await.unwrap());
    bob.profile.set_autostart(false).await.unwrap();
    // The running engine is left alone.
    assert!(bob.profile.engine_active() && bob.profile.is_online());
    let bob_home = bob.home.clone();
    bob.shutdown().await;
    alice
        .expect("bob gone", state_of(&b, ConnectionState::Disconnected))
        .await;

    // Loaded again: deactivated, nothing listens or dials; alice cannot reach it.
    let cwtch = cwtch::Cwtch::open_with_config(&bob_home, w.acn(), fast_config())
        .await
        .unwrap();
    let id = cwtch
        .list_profiles(&cwtch::Password::Default)
        .await
        .unwrap()[0]
        .profile_id
        .clone();
    let mut events = Events::new(cwtch.events());
    let profile = load_retrying(&cwtch, id.as_str()).await;
    assert!(!profile.engine_active());
    assert!(!profile.autostart().await.unwrap());
    alice.profile.connect_to_peer(onion(&b)).await.unwrap();
    events
        .expect_none(QUIET, "going online or a connection", |e| {
            matches!(
                e,
                Event::ProfileOnline { .. }
                    | Event::PeerStateChanged {
                        state: ConnectionState::Authenticated,
                        ..
                    }
            )
        })
        .await;
    assert!(!profile.is_online());

    // Activated by hand: online, and alice's contact connects.
    profile.set_engine_active(true).await.unwrap();
    assert!(profile.wait_online(WAIT).await);
    events
        .expect(
            "alice connected",
            state_of(&a, ConnectionState::Authenticated),
        )
        .await;
    cwtch.shutdown().await;

    // A profile created without autostart never goes online on its own, from its first load.
    let home = w.home("carol");
    let cwtch = cwtch::Cwtch::open_with_config(&home, w.acn(), fast_config())
        .await
        .unwrap();
    let info = cwtch
        .create_profile_with_autostart("carol", &cwtch::Password::Default, false)
        .await
        .unwrap();
    let mut events = Events::new(cwtch.events());
    let carol = cwtch
        .load_profile(info.profile_id.as_str(), &cwtch::Password::Default)
        .await
        .unwrap();
    assert!(!carol.engine_active());
    events
        .expect_none(QUIET, "going online", |e| {
            matches!(e, Event::ProfileOnline { .. })
        })
        .await;
    carol.set_autostart(true).await.unwrap();
    assert!(carol.autostart().await.unwrap());
    cwtch.shutdown().await;
    alice.shutdown().await;
}

async fn start_server(w: &World, name: &str) -> Server {
    let dir = w.home(name);
    cwtch_server::create_data_dir(&dir).unwrap();
    let c = ServerConfig::generate(&mut rand_core::OsRng);
    c.save_new(&dir).unwrap();
    Server::start(ServerConfig::load(&dir).unwrap(), &dir, w.acn())
        .await
        .unwrap()
}

fn server_state(server: &str, state: ServerState) -> impl Fn(&Event) -> bool + '_ {
    move |e| matches!(e, Event::ServerStateChanged { server: s, state: st, .. } if s == server && *st == state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leaving_and_joining_a_server() {
    let w = World::new();
    let server = start_server(&w, "server").await;
    let s = server.onion().as_str().to_owned();
    let mut alice = peer(&w, "alice", fast_config()).await;
    alice.profile.add_server(&server.bundle()).await.unwrap();
    // No group uses it yet: nothing to join.
    assert!(alice.profile.join_server(&s).await.is_err());
    let g = alice.profile.create_group("club", &s).await.unwrap();
    alice
        .expect("synced", server_state(&s, ServerState::Synced))
        .await;

    alice.profile.disconnect_from_server(&s).await.unwrap();
    alice
        .expect("disconnected", server_state(&s, ServerState::Disconnected))
        .await;
    alice.events.clear();
    // A post waits, stored, and does not bring the connection back.
    alice
        .profile
        .send_group_text(g.conversation_id, "while away")
        .await
        .unwrap();
    alice
        .expect_none(
            QUIET,
            "a reconnection",
            server_state(&s, ServerState::Connecting),
        )
        .await;

    alice.profile.join_server(&s).await.unwrap();
    alice
        .expect("synced again", server_state(&s, ServerState::Synced))
        .await;
    alice
        .expect("the post seen on the server", |e| {
            matches!(e, Event::GroupMessageSeen { .. })
        })
        .await;

    // With servers off, the server is left; joining on request still works.
    alice
        .profile
        .configure_connections(Connections {
            servers: false,
            ..Connections::ALL
        })
        .await
        .unwrap();
    alice
        .expect("disconnected", server_state(&s, ServerState::Disconnected))
        .await;
    alice.profile.join_server(&s).await.unwrap();
    alice
        .expect("synced on request", server_state(&s, ServerState::Synced))
        .await;
    let unknown = cwtch::Identity::generate(&mut rand_core::OsRng).onion();
    assert!(matches!(
        alice.profile.join_server(unknown.as_str()).await,
        Err(cwtch::Error::ServerNotFound)
    ));
    assert!(alice
        .profile
        .disconnect_from_server("garbage")
        .await
        .is_err());
    alice.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_finds_matching_messages_only() {
    let w = World::new();
    let mut alice = peer(&w, "alice", fast_config()).await;
    let mut bob = peer(&w, "bob", fast_config()).await;
    befriend(&mut alice, &mut bob).await;
    let b = bob.onion();
    let apples = alice
        .profile
        .send_text(onion(&b), "I like Apples")
        .await
        .unwrap();
    alice
        .profile
        .send_text(onion(&b), "and bananas")
        .await
        .unwrap();
    let hits = alice.profile.search_messages("apple").await.unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].conversation_id, apples.conversation_id);
    assert_eq!(hits[0].message_id, apples.message_id);
    assert_eq!(hits[0].row_index, 1, "the second newest");
    let listed = alice
        .profile
        .messages(onion(&b), hits[0].row_index, 1)
        .await
        .unwrap();
    assert_eq!(listed[0].message_id, apples.message_id);
    assert!(alice
        .profile
        .search_messages("cherries")
        .await
        .unwrap()
        .is_empty());
    // The overlay's JSON is not searched, only the text.
    assert!(alice
        .profile
        .search_messages("\"d\"")
        .await
        .unwrap()
        .is_empty());
    assert!(alice.profile.search_messages("  ").await.is_err());
    // Received messages are searched too.
    bob.expect(
        "the message",
        |e| matches!(e, Event::NewMessage { text: Some(t), .. } if t == "and bananas"),
    )
    .await;
    let hits = bob.profile.search_messages("BANANA").await.unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    // `search` reads them out: the text, and who wrote it.
    let found = bob.profile.search("BANANA").await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].hit, hits[0]);
    assert_eq!(found[0].message.content.display_text(), Some("and bananas"));
    assert_eq!(found[0].message.author, alice.onion());
    assert!(!found[0].message.outgoing);
    let found = alice.profile.search("apple").await.unwrap();
    assert_eq!(found[0].message.message_id, apples.message_id);
    assert!(found[0].message.outgoing);
    // In one conversation: the same there, an error for a conversation that is none.
    let only = alice
        .profile
        .search_conversation(apples.conversation_id, "APPLE")
        .await
        .unwrap();
    // The same hits and messages (not the same state: an acknowledgement may land between
    // the two searches).
    let key = |f: &[cwtch::Found]| {
        f.iter()
            .map(|f| (f.hit, f.message.message_id, f.message.body.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(key(&only), key(&found));
    assert!(alice
        .profile
        .search_conversation(cwtch::ConversationId(999), "apple")
        .await
        .is_err());
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn message_attributes_persist_across_a_reload() {
    let w = World::new();
    let alice = peer(&w, "alice", fast_config()).await;
    let bob = cwtch::Identity::generate(&mut rand_core::OsRng).onion();
    alice.profile.add_contact(bob.as_str()).await.unwrap();
    let sent = alice
        .profile
        .send_text(bob.clone(), "keep me")
        .await
        .unwrap();
    let (conv, id) = (sent.conversation_id, sent.message_id);
    alice
        .profile
        .set_message_attribute(conv, id, "starred", "true")
        .await
        .unwrap();
    // The library's own keys, unknown conversations and messages are refused.
    for key in cwtch::LIBRARY_MESSAGE_ATTRIBUTES {
        assert!(alice
            .profile
            .set_message_attribute(conv, id, key, "x")
            .await
            .is_err());
    }
    assert!(alice
        .profile
        .set_message_attribute(conv, id, "", "x")
        .await
        .is_err());
    assert!(alice
        .profile
        .set_message_attribute(ConversationId(4242), id, "starred", "x")
        .await
        .is_err());
    assert!(alice
        .profile
        .set_message_attribute(conv, MessageId(4242), "starred", "x")
        .await
        .is_err());
    let m = alice.profile.message(conv, id).await.unwrap().unwrap();
    assert_eq!(
        m.attributes.get("starred").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        m.attributes.get("author").map(String::as_str),
        Some(alice.onion().as_str())
    );

    let home = alice.home.clone();
    alice.shutdown().await;
    let alice = reopen(&w, &home, fast_config()).await;
    let m = alice.profile.message(conv, id).await.unwrap().unwrap();
    assert_eq!(
        m.attributes.get("starred").map(String::as_str),
        Some("true")
    );
    assert_eq!(m.content.display_text(), Some("keep me"));
    alice.shutdown().await;
}
