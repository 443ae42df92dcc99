//! A member SIGKILLed in the middle of a group sync resumes from its saved position and stores
//! nothing twice.
//!
//! The member is a real `cwtch run` process; the server is the scripted board of the peer
//! library's hostile-server tests (`crates/cwtch/tests/common/hostile.rs`), so the test decides
//! exactly when the replay stalls: the kill always lands mid-sync, never after it.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;
#[path = "../../cwtch/tests/common/hostile.rs"]
mod hostile;

use std::sync::Arc;

use common::*;
use hostile::{seal, sig_b64, sig_bytes, HostileServer};
use rand_core::OsRng;
use serde_json::Value;
use tapir::Identity;

const MESSAGES: usize = 600;
/// Messages served before the replay stalls (more than one storage batch of 256, fewer than
/// two).
const BEFORE_STALL: usize = 300;

fn group_messages(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "GroupMessage")
        .map(|e| e["signature"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_killed_mid_sync_resumes_from_its_saved_position() {
    let tmp = tempfile::tempdir().unwrap();
    let net = tmp.path().join("net");
    let acn: Arc<dyn cwtch::Acn> = Arc::new(cwtch::LoopbackAcn::new(&net).unwrap());
    let mut server = HostileServer::start(acn).await;
    let group = server.group();
    let invite = server.invite(&group, "big");

    // What the server holds: MESSAGES posts by Alice, each naming the one before.
    let alice = Identity::generate(&mut OsRng);
    let mut msgs = Vec::with_capacity(MESSAGES);
    for i in 0..MESSAGES {
        let m = seal(&group, &alice, &format!("m{i:04}"), msgs.last());
        msgs.push(m);
    }

    let dir = tmp.path().join("bob");
    let onion = create(&dir, "bob");
    let mut daemon = Daemon::loopback(&dir, &net, &onion).await;
    let joined = acwtch(&dir, &["group", "join", &invite]).await;
    let group_conv = last_line(&joined);
    ok(&joined);

    // First run: a full replay is asked for; it stalls after BEFORE_STALL messages.
    let mut board = server.accept().await;
    assert_eq!(
        board.replay_request().await,
        None,
        "a new member replays everything"
    );
    board.replay_result(MESSAGES as i64).await;
    for m in &msgs[..BEFORE_STALL] {
        board.raw(m.to_json()).await;
    }
    // One storage batch (256) is stored and announced; the rest waits for the next batch.
    daemon
        .wait_for(STEP, |e| {
            e["event"] == "GroupMessage" && e["text"] == "m0255"
        })
        .await;
    let first = daemon.kill9().await;
    let stored_first = group_messages(&first);
    assert!(
        !stored_first.is_empty() && stored_first.len() < MESSAGES,
        "killed mid-sync ({} of {MESSAGES} stored)",
        stored_first.len()
    );
    assert!(
        !first
            .iter()
            .any(|e| e["event"] == "ServerStateChanged" && e["state"] == "Synced"),
        "the first run never finished its sync"
    );
    drop(board);

    // Second run: the replay resumes at the last message the first run stored, not from the
    // start and not past what it received without storing.
    let mut daemon = Daemon::loopback(&dir, &net, &onion).await;
    let mut board = server.accept().await;
    let cursor = board
        .replay_request()
        .await
        .expect("a restarted member resumes from a position");
    let k = stored_first.len();
    let at = msgs.iter().position(|m| sig_bytes(m) == cursor.as_slice());
    assert_eq!(
        at,
        Some(k - 1),
        "the position is the last message stored before the kill ({k} announced)"
    );
    // Go's server replays inclusively from the position.
    let rest: Vec<_> = msgs[k - 1..].iter().collect();
    board.replay(&rest).await;
    daemon
        .wait_for(STEP, |e| {
            e["event"] == "ServerStateChanged" && e["state"] == "Synced"
        })
        .await;
    let second = daemon.kill9().await;
    let stored_second = group_messages(&second);
    assert_eq!(
        stored_first.len() + stored_second.len(),
        MESSAGES,
        "every message announced exactly once across both runs"
    );
    let stored = messages(&dir, &group_conv).await;
    assert_eq!(stored.len(), MESSAGES, "every message stored once");
    let mut sigs: Vec<String> = stored
        .iter()
        .map(|m| m["signature"].as_str().unwrap().to_owned())
        .collect();
    sigs.sort();
    sigs.dedup();
    assert_eq!(sigs.len(), MESSAGES);
    assert!(sigs.contains(&sig_b64(&msgs[MESSAGES - 1])));
}
