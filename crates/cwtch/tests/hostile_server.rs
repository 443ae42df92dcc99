//! A member of a group against a hostile server (issue 10), over the loopback network.
//!
//! The server (`common/hostile.rs`) is a real tapir board and token service whose every
//! answer the test scripts: it drops, reorders, repeats and replays messages, injects garbage,
//! forgeries and other groups' messages, and breaks the token-board protocol. The member is a
//! `cwtch` profile that joined the group from a `tofubundle` invite naming that server. What
//! the member stores and announces must not depend on the server's honesty: forgeries and
//! garbage are dropped, duplicates collapse, dropped messages are reported missing, and a
//! protocol violation costs one connection, after which the member reconnects and syncs.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;
#[path = "common/hostile.rs"]
mod hostile;

use common::*;
use cwtch::{ConversationId, Event, ServerState};
use cwtch_model::tokenboard::{Payload, PostResult};
use cwtch_model::{DecryptedGroupMessage, EncryptedGroupMessage, Error as ModelError};
use hostile::*;
use rand_core::OsRng;
use tapir::Identity;

/// Every message in a group, oldest first: (author, text).
async fn stored(p: &Peer, conv: ConversationId) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = p
        .profile
        .group_messages(conv, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|m| {
            (
                m.author.clone(),
                m.content.display_text().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    v.reverse();
    v
}

fn texts(v: &[(String, String)]) -> Vec<&str> {
    v.iter().map(|(_, t)| t.as_str()).collect()
}

/// A member (Bob) who joined a group on a hostile server, and the server's first connection
/// from him, whose replay request is read (a full replay: he just joined).
struct Setup {
    w: World,
    server: HostileServer,
    group: cwtch_model::Group,
    bob: Peer,
    events: Recorder,
    conv: ConversationId,
    conn: BoardConn,
}

async fn setup() -> Setup {
    let w = World::new();
    let mut server = HostileServer::start(w.acn()).await;
    let bob = peer(&w, "bob", fast_config()).await;
    let events = Recorder::new(bob.cwtch.events());
    let group = server.group();
    let info = bob
        .profile
        .join_group(&server.invite(&group, "hostile"))
        .await
        .unwrap();
    assert_eq!(info.group_id, group.id().to_string());
    assert_eq!(info.server, server.onion());
    let mut conn = server.accept().await;
    assert_eq!(
        conn.replay_request().await,
        None,
        "a new member replays all"
    );
    Setup {
        w,
        server,
        group,
        bob,
        events,
        conv: info.conversation_id,
        conn,
    }
}

fn identities() -> (Identity, Identity, Identity) {
    (
        Identity::generate(&mut OsRng),
        Identity::generate(&mut OsRng),
        Identity::generate(&mut OsRng),
    )
}

/// The forgeries are what the tests say they are: each fails to open for the reason named,
/// and the test cipher is NaCl's secretbox (it opens `Group::seal`'s output and seals what
/// opens).
#[test]
fn the_forgery_kit_makes_what_it_claims() {
    let server = Identity::generate(&mut OsRng).onion();
    let group = cwtch_model::Group::generate(&mut OsRng, server);
    let (alice, mallory, _) = identities();
    let genuine = seal(&group, &alice, "hi", None);
    // Our secretbox opens a real sealed message, to Go's plaintext.
    let plain = secretbox::open(&key_of(&group), genuine.ciphertext.as_deref().unwrap())
        .expect("the test cipher opens Group::seal");
    let dgm = DecryptedGroupMessage::from_json(&plain).unwrap();
    assert_eq!(dgm.onion, alice.onion().as_str());
    assert_eq!(dgm.text, overlay("hi").into_bytes());
    assert!(genuine.open([&group]).is_ok());
    // What it seals opens: a member signing as itself is a genuine message.
    let honest = impersonation(&group, &mallory, &mallory.onion(), "me");
    let m = honest.open([&group]).unwrap();
    assert_eq!(m.sender(), &mallory.onion());
    // Forgeries.
    let bad = ModelError::BadGroupSignature {
        group_id: group.id(),
    };
    assert_eq!(
        impersonation(&group, &mallory, &alice.onion(), "alice?").open([&group]),
        Err(bad.clone())
    );
    assert_eq!(resigned(&genuine).open([&group]), Err(bad));
    assert_eq!(
        seal(&same_key_elsewhere(&group), &alice, "fwd", None).open([&group]),
        Err(ModelError::WrongGroupBinding {
            group_id: group.id()
        })
    );
    assert!(matches!(
        sealed_junk(&group).open([&group]),
        Err(ModelError::MalformedGroupMessage { .. })
    ));
    assert_eq!(garbage().open([&group]), Err(ModelError::NotForAnyGroup));
    let other = cwtch_model::Group::generate(&mut OsRng, group.server().clone());
    assert_eq!(
        seal(&other, &alice, "other", None).open([&group]),
        Err(ModelError::NotForAnyGroup)
    );
}

/// Garbage, forgeries and other groups' messages, replayed and live, are never stored or
/// announced, and none of them costs the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forgeries_garbage_and_other_groups_messages_are_never_stored() {
    let Setup {
        w: _w,
        server,
        group,
        bob,
        mut events,
        conv,
        conn,
    } = setup().await;
    let (alice, carol, mallory) = identities();
    let m1 = seal(&group, &alice, "one", None);
    let m2 = seal(&group, &carol, "two", Some(&m1));
    let m3 = seal(&group, &alice, "three", Some(&m2));
    let other_group = server.group();
    let hostile = |n: usize| -> Vec<EncryptedGroupMessage> {
        let tag = format!("bad{n}");
        vec![
            // random bytes under a random signature
            garbage(),
            // a genuine ciphertext under a changed signature
            resigned(&m1),
            // a member signs with its own key a message whose Onion claims Alice
            impersonation(&group, &mallory, &alice.onion(), &tag),
            // a message of another group on this server
            seal(&other_group, &alice, &tag, None),
            // our group's key, signed for another server (forwarded)
            seal(&same_key_elsewhere(&group), &alice, &tag, None),
            // the group key opens it, but it is not a group message
            sealed_junk(&group),
            // a genuine ciphertext without a signature, and with a signature too long
            EncryptedGroupMessage {
                ciphertext: m2.ciphertext.clone(),
                signature: Some(Vec::new()),
            },
            EncryptedGroupMessage {
                ciphertext: m2.ciphertext.clone(),
                signature: Some([sig_bytes(&m2), &[0]].concat()),
            },
            EncryptedGroupMessage::default(),
        ]
    };
    let replayed = hostile(1);
    let mut replay: Vec<&EncryptedGroupMessage> = vec![&replayed[0], &m1];
    replay.extend(&replayed[1..]);
    replay.push(&m2);
    conn.replay(&replay).await;
    events
        .until("synced", server_state(ServerState::Synced))
        .await;
    for m in &hostile(2) {
        conn.live(m).await;
    }
    conn.live(&m3).await;
    events.until("three", group_text("three")).await;

    assert_eq!(events.group_texts(), ["one", "two", "three"]);
    let got = stored(&bob, conv).await;
    let (a, c) = (alice.onion(), carol.onion());
    assert_eq!(
        got,
        [
            (a.as_str().to_owned(), "one".to_owned()),
            (c.as_str().to_owned(), "two".to_owned()),
            (a.as_str().to_owned(), "three".to_owned()),
        ]
    );
    let info = bob.profile.group(conv).await.unwrap();
    assert_eq!(info.messages, 3);
    let mut members = info.members.clone();
    members.sort();
    let mut expected = vec![a.as_str().to_owned(), c.as_str().to_owned()];
    expected.sort();
    assert_eq!(members, expected, "the impersonator is no member");
    assert_eq!(info.missing, 0);
    assert!(events.missing().is_empty());
    // All of it on one connection: nothing hostile in a message costs the session.
    assert_eq!(events.server_states(ServerState::Disconnected), 0);
    drop(conn);
    bob.shutdown().await;
}

/// The same message served twice (in one replay, in the replay and live, live twice, across a
/// reconnection and across a restart, in any order) is stored and announced once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicates_are_stored_once() {
    let Setup {
        w,
        mut server,
        group,
        bob,
        mut events,
        conv,
        conn,
    } = setup().await;
    let (alice, carol, _) = identities();
    let m1 = seal(&group, &alice, "one", None);
    let m2 = seal(&group, &carol, "two", Some(&m1));
    let m3 = seal(&group, &alice, "three", Some(&m2));
    let m4 = seal(&group, &carol, "four", Some(&m3));
    let m5 = seal(&group, &alice, "five", Some(&m4));
    let m6 = seal(&group, &carol, "six", Some(&m5));

    // One connection: a repeat inside the replay, replayed then live, live twice.
    conn.replay(&[&m1, &m2, &m1]).await;
    conn.live(&m2).await;
    conn.live(&m3).await;
    conn.live(&m3).await;
    conn.live(&m1).await;
    conn.live(&m4).await;
    events.until("four", group_text("four")).await;
    assert_eq!(events.group_texts(), ["one", "two", "three", "four"]);
    conn.close();
    events
        .until("disconnected", server_state(ServerState::Disconnected))
        .await;

    // A reconnection: the cursor is the last new message; the server ignores it and serves
    // everything again, then repeats one live.
    let mut conn = server.accept().await;
    assert_eq!(
        conn.replay_request().await.as_deref(),
        Some(sig_bytes(&m4)),
        "the cursor is the last new message received"
    );
    conn.replay(&[&m1, &m2, &m3, &m4]).await;
    conn.live(&m2).await;
    conn.live(&m5).await;
    events.until("five", group_text("five")).await;
    assert_eq!(
        events.group_texts(),
        ["one", "two", "three", "four", "five"]
    );

    // A restart (a fresh board machine, nothing remembered but the store): everything again,
    // reordered, and a repeat live.
    let home = bob.home.clone();
    drop(conn);
    bob.shutdown().await;
    let bob = reopen(&w, &home, fast_config()).await;
    let mut events = Recorder::new(bob.cwtch.events());
    let mut conn = server.accept().await;
    // The stored cursor: the last message, or an earlier one if the shutdown came between
    // storing that message and storing the cursor (replaying more is the safe direction).
    let cursor = conn.replay_request().await.unwrap();
    let received = [&m1, &m2, &m3, &m4, &m5];
    let at = received.iter().position(|m| sig_bytes(m) == cursor);
    assert!(at.is_some(), "the stored cursor is a message received");
    conn.replay(&[&m3, &m1, &m5, &m2, &m4]).await;
    conn.live(&m4).await;
    conn.live(&m6).await;
    events.until("six", group_text("six")).await;
    assert_eq!(
        events.group_texts(),
        ["six"],
        "nothing old is announced again"
    );

    let got = stored(&bob, conv).await;
    assert_eq!(
        texts(&got),
        ["one", "two", "three", "four", "five", "six"],
        "each stored once"
    );
    assert_eq!(bob.profile.group(conv).await.unwrap().missing, 0);
    drop(conn);
    bob.shutdown().await;
}

/// Messages the server never serves are reported missing when a later message, from the same
/// member or another, names one as its `PreviousMessageSig`; reordered messages are all
/// stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropped_messages_are_reported_missing_and_reordering_loses_nothing() {
    let Setup {
        w: _w,
        mut server,
        group,
        bob,
        mut events,
        conv,
        conn,
    } = setup().await;
    let (alice, carol, _) = identities();
    let a1 = seal(&group, &alice, "a1", None);
    let a2 = seal(&group, &alice, "a2", Some(&a1)); // dropped
    let c1 = seal(&group, &carol, "c1", Some(&a2)); // Carol saw a2
    let a3 = seal(&group, &alice, "a3", Some(&c1));
    let a4 = seal(&group, &alice, "a4", Some(&a3)); // dropped
    let a5 = seal(&group, &alice, "a5", Some(&a4)); // Alice's own gap

    // Dropped in a replay (another member reveals it), and live (the same member does).
    conn.replay(&[&a1, &c1, &a3]).await;
    events
        .until("synced", server_state(ServerState::Synced))
        .await;
    conn.live(&a5).await;
    events.until("a5", group_text("a5")).await;

    let id_of = |events: &Recorder, text: &str| -> i64 {
        events
            .seen
            .iter()
            .find_map(|e| match e {
                Event::GroupMessage {
                    text: Some(t),
                    message_id,
                    ..
                } if t == text => Some(*message_id),
                _ => None,
            })
            .unwrap()
    };
    assert_eq!(
        events.missing(),
        [
            (
                carol.onion().as_str().to_owned(),
                id_of(&events, "c1"),
                sig_b64(&a2)
            ),
            (
                alice.onion().as_str().to_owned(),
                id_of(&events, "a5"),
                sig_b64(&a4)
            ),
        ]
    );
    // Exactly these two: a1's first-message marker is no gap, a3 follows c1, which we have.
    let info = bob.profile.group(conv).await.unwrap();
    assert_eq!(info.missing, 2);
    assert_eq!(texts(&stored(&bob, conv).await), ["a1", "c1", "a3", "a5"]);

    // Reordered live: r2 before r1. (Only that nothing is lost is asserted from here on.)
    let r1 = seal(&group, &carol, "r1", Some(&a5));
    let r2 = seal(&group, &alice, "r2", Some(&r1));
    conn.live(&r2).await;
    conn.live(&r1).await;
    events.until("r1", group_text("r1")).await;
    // Reordered in a replay, after a reconnection: q2 before q1.
    conn.close();
    let q1 = seal(&group, &carol, "q1", Some(&r2));
    let q2 = seal(&group, &alice, "q2", Some(&q1));
    let mut conn = server.accept().await;
    assert_eq!(conn.replay_request().await.as_deref(), Some(sig_bytes(&r1)));
    conn.replay(&[&r1, &q2, &q1]).await;
    events.until("q1", group_text("q1")).await;
    assert_eq!(
        texts(&stored(&bob, conv).await),
        ["a1", "c1", "a3", "a5", "r2", "r1", "q2", "q1"]
    );
    assert_eq!(
        events.group_texts(),
        ["a1", "c1", "a3", "a5", "r2", "r1", "q2", "q1"]
    );
    drop(conn);
    bob.shutdown().await;
}

/// A server that breaks the protocol costs only that connection: the member closes it,
/// reconnects (its server state says so) and keeps syncing from where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn protocol_garbage_costs_only_the_connection() {
    let Setup {
        w: _w,
        mut server,
        group,
        bob,
        mut events,
        conv,
        conn,
    } = setup().await;
    let (alice, carol, _) = identities();
    let m1 = seal(&group, &alice, "one", None);
    let m2 = seal(&group, &carol, "two", Some(&m1));
    let m3 = seal(&group, &alice, "three", Some(&m2));
    // Tokens come from the token service once; no state change but the connection's after.
    events
        .until(
            "tokens",
            |e| matches!(e, Event::ServerStateChanged { tokens, .. } if *tokens > 0),
        )
        .await;

    // 1. A live message before the replay's result.
    conn.live(&m1).await;
    conn.closed_by_member().await;
    events
        .until("disconnected 1", server_state(ServerState::Disconnected))
        .await;

    // 2. A negative count.
    let mut conn = server.accept().await;
    assert_eq!(conn.replay_request().await, None);
    conn.replay_result(-1).await;
    conn.closed_by_member().await;
    events
        .until("disconnected 2", server_state(ServerState::Disconnected))
        .await;

    // 3. Bytes that are not a message, in the middle of a replay: what came before is kept.
    let mut conn = server.accept().await;
    assert_eq!(conn.replay_request().await, None);
    conn.replay_result(3).await;
    conn.raw(m1.to_json()).await;
    conn.raw(b"\x00\xff not a message".to_vec()).await;
    conn.closed_by_member().await;
    events.until("one", group_text("one")).await;
    events
        .until("disconnected 3", server_state(ServerState::Disconnected))
        .await;

    // 4. A known type without its payload, once synced.
    let mut conn = server.accept().await;
    assert_eq!(
        conn.replay_request().await.as_deref(),
        Some(sig_bytes(&m1)),
        "the cursor survived the broken replay"
    );
    conn.replay(&[&m1, &m2]).await;
    conn.raw(br#"{"MessageType":4}"#.to_vec()).await;
    conn.closed_by_member().await;
    events.until("two", group_text("two")).await;
    events
        .until("disconnected 4", server_state(ServerState::Disconnected))
        .await;

    // 5. A post result for a post never sent.
    let mut conn = server.accept().await;
    assert_eq!(conn.replay_request().await.as_deref(), Some(sig_bytes(&m2)));
    conn.replay(&[&m2]).await;
    conn.send(Payload::PostResult(PostResult { success: true }))
        .await;
    conn.closed_by_member().await;
    events
        .until("disconnected 5", server_state(ServerState::Disconnected))
        .await;

    // 6. A second replay result once synced.
    let mut conn = server.accept().await;
    assert_eq!(conn.replay_request().await.as_deref(), Some(sig_bytes(&m2)));
    conn.replay(&[&m2]).await;
    conn.replay_result(5).await;
    conn.closed_by_member().await;
    events
        .until("disconnected 6", server_state(ServerState::Disconnected))
        .await;

    // Tolerated, not fatal: a message type we do not know, and a live message where a
    // replayed one belongs (it decodes as a message with no signature: skipped). Then the
    // real stream goes on, on this connection.
    let mut conn = server.accept().await;
    assert_eq!(conn.replay_request().await.as_deref(), Some(sig_bytes(&m2)));
    conn.replay_result(2).await;
    conn.raw(m2.to_json()).await;
    conn.live(&m3).await;
    events
        .until("synced", server_state(ServerState::Synced))
        .await;
    conn.raw(br#"{"MessageType":99}"#.to_vec()).await;
    conn.live(&m3).await;
    events.until("three", group_text("three")).await;

    assert_eq!(events.group_texts(), ["one", "two", "three"]);
    assert_eq!(texts(&stored(&bob, conv).await), ["one", "two", "three"]);
    assert_eq!(events.server_states(ServerState::Disconnected), 6);
    // The first connection, and one after each broken one: no more.
    assert_eq!(events.server_states(ServerState::Connecting), 7);
    drop(conn);
    bob.shutdown().await;
}

/// A member chooses its messages' timestamps: one far past year 9999 (2^63 seconds and more
/// made adding it to the epoch panic, which killed the server's task for good and replayed the
/// same message into the same panic at every restart) is stored at 9999's last second, and
/// the group goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_timestamp_from_the_far_future_is_a_time_not_a_crash() {
    let Setup {
        w: _w,
        server: _server,
        group,
        bob,
        mut events,
        conv,
        conn,
    } = setup().await;
    let (alice, _, _) = identities();
    let seal_at = |text: &str, previous: Option<&EncryptedGroupMessage>, when: u64| {
        let previous: Option<torv3::Signature> = previous.map(|p| sig_bytes(p).try_into().unwrap());
        group
            .seal(&alice, &overlay(text), previous.as_ref(), when, &mut OsRng)
            .unwrap()
            .egm
    };
    let m1 = seal_at("from the far future", None, u64::MAX);
    let m2 = seal_at("and one from 2^63", Some(&m1), 1 << 63);
    let m3 = seal_at("and now", Some(&m2), now());
    conn.replay(&[&m1]).await;
    events
        .until("synced", server_state(ServerState::Synced))
        .await;
    conn.live(&m2).await;
    conn.live(&m3).await;
    events.until("and now", group_text("and now")).await;
    assert_eq!(
        events.group_texts(),
        ["from the far future", "and one from 2^63", "and now"]
    );
    let mut got = bob.profile.group_messages(conv, 0, 10).await.unwrap();
    got.reverse();
    let times: Vec<Option<&str>> = got.iter().map(|m| m.timestamp.as_deref()).collect();
    assert_eq!(
        &times[..2],
        [Some("9999-12-31T23:59:59Z"), Some("9999-12-31T23:59:59Z")]
    );
    assert_eq!(events.server_states(ServerState::Disconnected), 0);
    drop(conn);
    bob.shutdown().await;
}

/// Messages of other groups on the server (or junk) move the replay position without a write
/// for each one: it is written at the end of the connection, so the next one resumes past
/// them; a message of ours is stored with its position at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn other_groups_messages_move_the_position_and_it_is_kept() {
    let Setup {
        w,
        mut server,
        group,
        bob,
        mut events,
        conv: _,
        conn,
    } = setup().await;
    let (alice, _, _) = identities();
    let other = server.group();
    let m1 = seal(&group, &alice, "one", None);
    conn.replay(&[&m1]).await;
    events
        .until("synced", server_state(ServerState::Synced))
        .await;
    let theirs: Vec<EncryptedGroupMessage> = (0..300)
        .map(|i| seal(&other, &alice, &format!("not ours {i}"), None))
        .collect();
    for m in &theirs {
        conn.live(m).await;
    }
    // A message of ours after them: once it arrived, all of them were handled.
    let m2 = seal(&group, &alice, "two", Some(&m1));
    let m3 = seal(&group, &alice, "three", Some(&m2));
    conn.live(&m2).await;
    events.until("two", group_text("two")).await;
    // More of theirs, new ones (a repeat does not move the position).
    let more: Vec<EncryptedGroupMessage> = (0..5)
        .map(|i| seal(&other, &alice, &format!("not ours either {i}"), None))
        .collect();
    for m in theirs[..10].iter().chain(&more) {
        conn.live(m).await;
    }
    // Handled once something after them is: a message of our group's we have (a repeat).
    conn.live(&m2).await;
    conn.close();
    events
        .until("disconnected", server_state(ServerState::Disconnected))
        .await;
    // The next connection resumes past everything received.
    let mut conn = server.accept().await;
    assert_eq!(
        conn.replay_request().await.as_deref(),
        Some(sig_bytes(&more[4]))
    );
    conn.replay(&[]).await;
    conn.live(&m3).await;
    events.until("three", group_text("three")).await;
    // A restart resumes from what was written: our last message (stored with its position).
    let home = bob.home.clone();
    drop(conn);
    bob.shutdown().await;
    let bob = reopen(&w, &home, fast_config()).await;
    let mut conn = server.accept().await;
    assert_eq!(conn.replay_request().await.as_deref(), Some(sig_bytes(&m3)));
    drop(conn);
    bob.shutdown().await;
}

/// A server that refuses every post (its token) gets it five times, then the post fails with
/// that reason, rather than a repost, a token and a write per round trip for as long as the
/// message is pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_post_the_server_keeps_refusing_fails() {
    let Setup {
        w: _w,
        server: _server,
        group: _,
        bob,
        mut events,
        conv,
        mut conn,
    } = setup().await;
    conn.replay(&[]).await;
    events
        .until("synced", server_state(ServerState::Synced))
        .await;
    let sent = bob.profile.send_group_text(conv, "hello?").await.unwrap();
    let mut refused = 0;
    while refused < 5 {
        match conn.request().await {
            Payload::PostRequest(_) => {
                refused += 1;
                conn.send(Payload::PostResult(PostResult { success: false }))
                    .await;
            }
            p => panic!("expected a post, got {p:?}"),
        }
    }
    let failed = events
        .until("the post fails", |e| {
            matches!(e, Event::MessageFailed { .. })
        })
        .await;
    let Event::MessageFailed {
        message_id, reason, ..
    } = failed
    else {
        unreachable!()
    };
    assert_eq!(message_id, sent.message_id.0);
    assert!(reason.contains("refused the post 5 times"), "{reason}");
    drop(conn);
    bob.shutdown().await;
}
