//! Load generator: a full group sync, and a resync after a restart, beside a baseline measured
//! in the same run.
//!
//! `cargo run --release -p cwtch --example group_sync_load [messages] [groups]`
//! (defaults: 10 000 messages across 10 groups).
//!
//! 1. A `cwtch-server` (in-process, loopback network, rate limits lifted) and a member profile
//!    that joins every group while the server is still empty; the member is then closed.
//! 2. A poster seals `messages` real group messages, round-robin across the groups, and posts
//!    them with tokens through the board client.
//! 3. Baseline: a bare board client replays every message from the server (no decryption, no
//!    storage) — what the network and the server cost.
//! 4. Subject: the member is opened again and syncs everything: trial decryption against its
//!    groups, signature checks, storage in its encrypted profile, events. Messages/s, and the
//!    ratio to the baseline.
//! 5. Resync: the member is closed and opened again; it replays from its saved position, so it
//!    stores nothing new and reports how long reaching "synced" took.

#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use cwtch::{Acn, Cwtch, Event, LoopbackAcn, Password, ServerState};
use cwtch_model::group::Group;
use cwtch_model::KeyBundle;
use cwtch_server::client::ServerClient;
use cwtch_server::{Server, ServerConfig};

const WAIT: Duration = Duration::from_secs(600);

async fn open_member(
    home: &std::path::Path,
    acn: Arc<dyn Acn>,
) -> (
    Cwtch,
    cwtch::ProfileHandle,
    tokio::sync::broadcast::Receiver<Event>,
) {
    let mut config = cwtch::Config::default();
    config.event_capacity = 1 << 16;
    let cwtch = Cwtch::open_with_config(home, acn, config).await.unwrap();
    let infos = cwtch.list_profiles(&Password::Default).await.unwrap();
    let events = cwtch.events();
    let p = cwtch
        .load_profile(infos[0].profile_id.as_str(), &Password::Default)
        .await
        .unwrap();
    (cwtch, p, events)
}

/// Wait until the member reports its server synced; count the group messages stored meanwhile.
async fn until_synced(events: &mut tokio::sync::broadcast::Receiver<Event>, want: usize) -> usize {
    let mut got = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut synced = false;
    while !(synced && got >= want) {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(Event::GroupMessage { .. })) => got += 1,
            Ok(Ok(Event::ServerStateChanged {
                state: ServerState::Synced,
                ..
            })) => synced = true,
            Ok(Ok(_)) => {}
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(n))) => {
                panic!("the event stream lagged by {n}: raise event_capacity")
            }
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!("not synced within {WAIT:?} ({got} messages)"),
        }
    }
    got
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let messages = args.first().copied().unwrap_or(10_000);
    let groups_n = args.get(1).copied().unwrap_or(10);
    let tmp = tempfile::tempdir().unwrap();
    let acn: Arc<dyn Acn> = Arc::new(LoopbackAcn::new(tmp.path().join("net")).unwrap());

    let dir = tmp.path().join("server");
    cwtch_server::create_data_dir(&dir).unwrap();
    let mut config = ServerConfig::generate(&mut rand_core::OsRng);
    config.limits.requests_per_second = 1_000_000;
    config.limits.request_burst = 1_000_000;
    config.save_new(&dir).unwrap();
    let server = Server::start(ServerConfig::load(&dir).unwrap(), &dir, acn.clone())
        .await
        .unwrap();
    let bundle = server.bundle();

    // The groups, and a member who joins them all while the server is empty.
    let groups: Vec<Group> = (0..groups_n)
        .map(|_| Group::generate(&mut rand_core::OsRng, server.onion()))
        .collect();
    let home = tmp.path().join("member");
    {
        let cwtch = Cwtch::open(&home, acn.clone()).await.unwrap();
        let info = cwtch
            .create_profile("member", &Password::Default)
            .await
            .unwrap();
        let p = cwtch
            .load_profile(info.profile_id.as_str(), &Password::Default)
            .await
            .unwrap();
        p.add_server(&bundle).await.unwrap();
        for (i, g) in groups.iter().enumerate() {
            p.join_group(&g.invite(format!("group {i}")).to_invite_string())
                .await
                .unwrap();
        }
        cwtch.shutdown().await;
    }

    // Post the messages.
    let kb = KeyBundle::parse_server_string(&bundle).unwrap();
    let mut client = ServerClient::new(&kb, acn.clone()).unwrap();
    client.timeout = Duration::from_secs(120);
    let poster = torv3::Identity::generate(&mut rand_core::OsRng);
    let t0 = Instant::now();
    let mut board = client.connect().await.unwrap();
    let mut tokens = Vec::new();
    let mut previous: Vec<Option<torv3::Signature>> = vec![None; groups.len()];
    for i in 0..messages {
        if tokens.is_empty() {
            tokens = client
                .fetch_tokens(privacypass::MAX_BATCH_SIZE)
                .await
                .unwrap();
        }
        let token = tokens.pop().unwrap();
        let gi = i % groups.len();
        let text = format!(r#"{{"o":1,"d":"message {i}"}}"#);
        let sealed = groups[gi]
            .seal(
                &poster,
                &text,
                previous[gi].as_ref(),
                1_700_000_000 + i as u64,
                &mut rand_core::OsRng,
            )
            .unwrap();
        previous[gi] = Some(*sealed.message.signature());
        assert!(board.post(&token, &sealed.egm).await.unwrap());
    }
    println!(
        "posted {messages} messages across {} groups in {:.1} s (setup, not a figure)",
        groups.len(),
        t0.elapsed().as_secs_f64()
    );

    // Baseline: a bare replay of everything.
    let mut bare = client.connect().await.unwrap();
    let t = Instant::now();
    let all = bare.replay(None).await.unwrap();
    let baseline = t.elapsed();
    assert_eq!(all.len(), messages);
    drop(bare);

    // Subject: the member's full sync.
    let t = Instant::now();
    let (cwtch, _p, mut events) = open_member(&home, acn.clone()).await;
    let got = until_synced(&mut events, messages).await;
    let full = t.elapsed();
    assert_eq!(got, messages, "every message stored once");
    cwtch.shutdown().await;

    // Resync after a restart.
    let t = Instant::now();
    let (cwtch, p, mut events) = open_member(&home, acn.clone()).await;
    let again = until_synced(&mut events, 0).await;
    let resync = t.elapsed();
    let stored: u64 = {
        let mut n = 0;
        for g in p.groups().await.unwrap() {
            n += g.messages;
        }
        n
    };
    cwtch.shutdown().await;
    server.shutdown().await;

    let rate = |d: Duration| messages as f64 / d.as_secs_f64();
    println!();
    println!(
        "group sync of {messages} messages across {} groups, one server, loopback:",
        groups.len()
    );
    println!(
        "  baseline  bare replay (no decryption, no storage)  {:>8.2} s  {:>9.0} messages/s",
        baseline.as_secs_f64(),
        rate(baseline)
    );
    println!(
        "  subject   member's full sync (trial-decrypt, verify, store, events)  {:>8.2} s  {:>9.0} messages/s  = {:.2} × baseline time",
        full.as_secs_f64(),
        rate(full),
        full.as_secs_f64() / baseline.as_secs_f64()
    );
    println!(
        "  resync    after a restart: {again} new messages stored, {stored} in the profile, synced in {:.2} s",
        resync.as_secs_f64()
    );
}
