//! Crash safety at the library level: each engine runs on its own tokio runtime, and a
//! "crash" drops that runtime (and every handle) in the middle of a conversation, with no
//! shutdown. The profile is then reopened from disk. No message we sent may be lost (it is
//! retried until acknowledged), and no message we received may be lost or stored twice.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use cwtch::{ContactId, Event, MessageState};
use tokio::runtime::Runtime;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Drop a peer and its runtime without any shutdown: tasks are dropped wherever they are.
fn crash(p: Peer, rt: Runtime) {
    drop(p);
    drop(rt);
}

/// Bodies of the messages `from` wrote in `p`'s conversation with `contact`, with counts.
fn bodies_by_author(
    rt: &Runtime,
    p: &Peer,
    contact: &ContactId,
    from: &str,
) -> BTreeMap<String, usize> {
    let msgs = rt
        .block_on(p.profile.messages(contact.clone(), 0, 1000))
        .unwrap();
    let mut out = BTreeMap::new();
    for m in msgs.into_iter().filter(|m| m.author == from) {
        *out.entry(m.content.display_text().unwrap_or_default().to_owned())
            .or_insert(0) += 1;
    }
    out
}

/// Wait (on `rt`) until every one of `p`'s messages to `contact` is acknowledged.
fn wait_all_acknowledged(rt: &Runtime, p: &Peer, contact: &ContactId) {
    rt.block_on(async {
        let deadline = tokio::time::Instant::now() + WAIT * 2;
        loop {
            let msgs = p.profile.messages(contact.clone(), 0, 1000).await.unwrap();
            let pending = msgs
                .iter()
                .filter(|m| m.outgoing && m.state != MessageState::Acknowledged)
                .count();
            if pending == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{pending} messages never acknowledged"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

#[test]
fn crashes_on_either_side_lose_and_duplicate_nothing() {
    let w = World::new();
    let (rt_a, rt_b) = (runtime(), runtime());
    let alice = rt_a.block_on(peer(&w, "alice", fast_config()));
    let mut bob = rt_b.block_on(peer(&w, "bob", fast_config()));
    let (a, b) = (alice.onion(), bob.onion());
    let (alice_home, bob_home) = (alice.home.clone(), bob.home.clone());
    let to_bob = ContactId::Onion(onion(&b));
    let to_alice = ContactId::Onion(onion(&a));

    // Befriend (each side's calls on its own runtime).
    rt_a.block_on(alice.profile.add_contact(&b)).unwrap();
    let req = rt_b.block_on(bob.expect("request", |e| matches!(e, Event::ContactCreated { .. })));
    let Event::ContactCreated {
        conversation_id, ..
    } = req
    else {
        unreachable!()
    };
    rt_b.block_on(bob.profile.accept(cwtch::ConversationId(conversation_id)))
        .unwrap();
    rt_a.block_on(alice.profile.send_text(to_bob.clone(), "hello"))
        .unwrap();
    rt_b.block_on(bob.expect("hello", |e| matches!(e, Event::NewMessage { .. })));
    wait_all_acknowledged(&rt_a, &alice, &to_bob);

    // 0. The receiver is down (crashed); the sender stores messages it cannot deliver, then
    //    crashes too. Both come back: the messages are found on disk and delivered.
    crash(bob, rt_b);
    let offline: Vec<String> = (0..4).map(|i| format!("offline {i}")).collect();
    rt_a.block_on(async {
        for m in &offline {
            let s = alice.profile.send_text(to_bob.clone(), m).await.unwrap();
            assert_eq!(s.state, MessageState::Sending);
        }
    });
    crash(alice, rt_a);
    let (rt_a, rt_b) = (runtime(), runtime());
    let mut alice = rt_a.block_on(reopen(&w, &alice_home, fast_config()));
    let mut bob = rt_b.block_on(reopen(&w, &bob_home, fast_config()));
    wait_all_acknowledged(&rt_a, &alice, &to_bob);
    let got = bodies_by_author(&rt_b, &bob, &to_alice, &a);
    for m in &offline {
        assert_eq!(got.get(m), Some(&1), "{m} delivered exactly once: {got:?}");
    }
    rt_a.block_on(alice.expect("sent after restart", |e| {
        matches!(e, Event::MessageSent { .. })
    }));

    // 1. The sender crashes right after storing a burst of messages.
    let burst: Vec<String> = (0..8).map(|i| format!("burst {i}")).collect();
    rt_a.block_on(async {
        for m in &burst {
            alice.profile.send_text(to_bob.clone(), m).await.unwrap();
        }
    });
    crash(alice, rt_a);
    let rt_a = runtime();
    let alice = rt_a.block_on(reopen(&w, &alice_home, fast_config()));
    wait_all_acknowledged(&rt_a, &alice, &to_bob);
    let got = bodies_by_author(&rt_b, &bob, &to_alice, &a);
    for m in &burst {
        assert_eq!(got.get(m), Some(&1), "{m} delivered exactly once: {got:?}");
    }

    // 2. The receiver crashes as soon as the first message of a burst is stored.
    let burst2: Vec<String> = (0..8).map(|i| format!("second {i}")).collect();
    rt_b.block_on(
        bob.events
            .expect_none(Duration::from_millis(10), "-", |_| false),
    );
    rt_a.block_on(async {
        for m in &burst2 {
            alice.profile.send_text(to_bob.clone(), m).await.unwrap();
        }
    });
    rt_b.block_on(bob.expect(
        "first of the burst",
        |e| matches!(e, Event::NewMessage { text: Some(t), .. } if t.starts_with("second")),
    ));
    crash(bob, rt_b);
    let rt_b = runtime();
    let bob = rt_b.block_on(reopen(&w, &bob_home, fast_config()));
    wait_all_acknowledged(&rt_a, &alice, &to_bob);
    let got = bodies_by_author(&rt_b, &bob, &to_alice, &a);
    let hello = "hello".to_owned();
    for m in burst
        .iter()
        .chain(&burst2)
        .chain(&offline)
        .chain(std::iter::once(&hello))
    {
        assert_eq!(got.get(m), Some(&1), "{m} stored exactly once: {got:?}");
    }
    assert_eq!(got.len(), 21);

    // 3. Both directions at once, then both crash; after restarting, everything arrives.
    rt_b.block_on(bob.profile.send_text(to_alice.clone(), "from bob"))
        .unwrap();
    rt_a.block_on(alice.profile.send_text(to_bob.clone(), "from alice"))
        .unwrap();
    crash(alice, rt_a);
    crash(bob, rt_b);
    let (rt_a, rt_b) = (runtime(), runtime());
    let alice = rt_a.block_on(reopen(&w, &alice_home, fast_config()));
    let bob = rt_b.block_on(reopen(&w, &bob_home, fast_config()));
    wait_all_acknowledged(&rt_a, &alice, &to_bob);
    wait_all_acknowledged(&rt_b, &bob, &to_alice);
    assert_eq!(
        bodies_by_author(&rt_a, &alice, &to_bob, &b).get("from bob"),
        Some(&1)
    );
    assert_eq!(
        bodies_by_author(&rt_b, &bob, &to_alice, &a).get("from alice"),
        Some(&1)
    );
    rt_a.block_on(alice.shutdown());
    rt_b.block_on(bob.shutdown());
}

#[test]
fn a_clean_shutdown_keeps_unsent_messages_for_next_time() {
    let w = World::new();
    let rt = runtime();
    let alice = rt.block_on(peer(&w, "alice", fast_config()));
    let bob = rt.block_on(peer(&w, "bob", fast_config()));
    let b = bob.onion();
    let (alice_home, bob_home) = (alice.home.clone(), bob.home.clone());
    rt.block_on(bob.shutdown());
    let to_bob = ContactId::Onion(onion(&b));
    rt.block_on(alice.profile.add_contact(&b)).unwrap();
    rt.block_on(alice.profile.send_text(to_bob.clone(), "later"))
        .unwrap();
    rt.block_on(alice.shutdown());
    // Both restart; the message stored before the shutdown is delivered.
    let alice = rt.block_on(reopen(&w, &alice_home, fast_config()));
    let mut bob = rt.block_on(reopen(&w, &bob_home, fast_config()));
    rt.block_on(bob.expect(
        "later",
        |e| matches!(e, Event::NewMessage { text: Some(t), .. } if t == "later"),
    ));
    wait_all_acknowledged(&rt, &alice, &to_bob);
    rt.block_on(alice.shutdown());
    rt.block_on(bob.shutdown());
}
