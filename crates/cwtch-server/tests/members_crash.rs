//! Real group members (the peer library) against the real server process, killed with SIGKILL in
//! the middle of a burst of posts and restarted: no post the server acknowledged is lost, every
//! post arrives exactly once, and no token is accepted twice.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use cwtch::{Acn, Cwtch, Event, LoopbackAcn, Password, ProfileHandle, ServerState};
use tokio::sync::broadcast;

const WAIT: Duration = Duration::from_secs(60);

async fn member(
    root: &std::path::Path,
    name: &str,
    acn: Arc<dyn Acn>,
) -> (Cwtch, ProfileHandle, broadcast::Receiver<Event>) {
    let mut config = cwtch::Config::default();
    config.dial_backoff_initial = Duration::from_millis(100);
    config.dial_backoff_max = Duration::from_millis(500);
    config.event_capacity = 1 << 14;
    let cwtch = Cwtch::open_with_config(&root.join(name), acn, config)
        .await
        .unwrap();
    let info = cwtch
        .create_profile(name, &Password::Default)
        .await
        .unwrap();
    let events = cwtch.events();
    let p = cwtch
        .load_profile(info.profile_id.as_str(), &Password::Default)
        .await
        .unwrap();
    (cwtch, p, events)
}

async fn next(events: &mut broadcast::Receiver<Event>, what: &str) -> Event {
    match tokio::time::timeout(WAIT, events.recv()).await {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => panic!("{what}: {e}"),
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_killed_mid_burst_loses_no_acknowledged_post_and_accepts_no_token_twice() {
    const POSTS: usize = 60;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path(), "srv");
    let net = tmp.path().join("net");
    let mut server = run(&dir, &net).await;
    let acn: Arc<dyn Acn> = Arc::new(LoopbackAcn::new(&net).unwrap());
    let (alice_app, alice, mut alice_events) = member(tmp.path(), "alice", acn.clone()).await;
    let (bob_app, bob, mut bob_events) = member(tmp.path(), "bob", acn.clone()).await;

    alice
        .add_server(&server.bundle.to_server_string())
        .await
        .unwrap();
    let g = alice
        .create_group("crash", server.bundle.server_onion().unwrap().as_str())
        .await
        .unwrap();
    let bg = bob.join_group(&g.invite).await.unwrap();
    loop {
        if let Event::ServerStateChanged {
            state: ServerState::Synced,
            ..
        } = next(&mut bob_events, "bob synced").await
        {
            break;
        }
    }

    // The burst: every post is stored by Alice first, then posted by her server task.
    for i in 0..POSTS {
        alice
            .send_group_text(g.conversation_id, &format!("burst {i:03}"))
            .await
            .unwrap();
    }
    // Kill the server once some posts were acknowledged, while the rest are in flight.
    let mut acked_before_kill = BTreeSet::new();
    let mut seen = BTreeSet::new();
    while acked_before_kill.len() < POSTS / 4 {
        match next(&mut alice_events, "posts acknowledged").await {
            Event::GroupMessageSent { message_id, .. } => {
                acked_before_kill.insert(message_id);
            }
            Event::GroupMessageSeen { message_id, .. } => {
                seen.insert(message_id);
            }
            _ => {}
        }
    }
    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();
    assert!(
        acked_before_kill.len() < POSTS,
        "the kill came mid-burst ({} of {POSTS} acknowledged)",
        acked_before_kill.len()
    );

    // Restart on the same data directory; the members reconnect on their own.
    let mut server = run(&dir, &net).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while seen.len() < POSTS {
        match tokio::time::timeout_at(deadline, alice_events.recv()).await {
            Ok(Ok(Event::GroupMessageSeen { message_id, .. })) => {
                seen.insert(message_id);
            }
            Ok(_) => {}
            Err(_) => {
                let mine = alice
                    .group_messages(g.conversation_id, 0, 1000)
                    .await
                    .unwrap();
                let theirs = bob
                    .group_messages(bg.conversation_id, 0, 1000)
                    .await
                    .unwrap();
                let c =
                    cwtch_server::client::ServerClient::new(&server.bundle, acn.clone()).unwrap();
                let mut b = c.connect().await.unwrap();
                let all = b.replay(None).await.unwrap();
                let on_server: BTreeSet<String> = all
                    .iter()
                    .map(|m| cwtch_model::gojson::base64_std(m.signature.as_deref().unwrap()))
                    .collect();
                for m in mine.iter().rev() {
                    eprintln!(
                        "DIAG id={} state={:?} acked_before_kill={} seen={} at_bob={} on_server={}",
                        m.message_id.0,
                        m.state,
                        acked_before_kill.contains(&m.message_id.0),
                        seen.contains(&m.message_id.0),
                        theirs.iter().any(|t| t.signature == m.signature),
                        on_server.contains(&m.signature)
                    );
                }
                panic!("timed out: {} of {POSTS} seen", seen.len());
            }
        }
    }
    let mut texts = BTreeSet::new();
    while texts.len() < POSTS {
        if let Event::GroupMessage { text: Some(t), .. } =
            next(&mut bob_events, "bob receives every post").await
        {
            assert!(texts.insert(t.clone()), "{t} delivered twice");
        }
    }
    // Every post once in Bob's conversation; every acknowledged post among them.
    let stored = bob
        .group_messages(bg.conversation_id, 0, 1000)
        .await
        .unwrap();
    assert_eq!(stored.len(), POSTS, "no duplicates, nothing lost");
    let alice_msgs = alice
        .group_messages(g.conversation_id, 0, 1000)
        .await
        .unwrap();
    for m in alice_msgs
        .iter()
        .filter(|m| acked_before_kill.contains(&m.message_id.0))
    {
        assert!(
            stored.iter().any(|s| s.signature == m.signature),
            "an acknowledged post was lost"
        );
        assert_eq!(m.state, cwtch::MessageState::Acknowledged);
    }

    // The restarted server never accepted a token twice: a reused token would have been
    // refused and counted. Stop it cleanly so that it writes its final figures.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(server.pid() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    server.child.wait().await.unwrap();
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("stats.json")).unwrap()).unwrap();
    assert_eq!(stats["posts_rejected"], 0, "{stats}");
    alice_app.shutdown().await;
    bob_app.shutdown().await;
}
