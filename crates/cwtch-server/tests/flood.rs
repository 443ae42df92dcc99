//! Issue 10, "the server under a flood": thousands of idle connections opened by one client
//! must not lock the members out of the token service or the token board.
//!
//! Each test floods one service with 5 000 connections that never send a byte, holds them all
//! open, and then has real clients obtain tokens, post and replay. The handshake deadline is set
//! far beyond the test's length, so only the admission policy (the oldest unauthenticated
//! handshake makes room for a new connection) can let the members in: with the old policy
//! (excess connections dropped on accept) the members' connections are dropped and these
//! tests fail at once.
//!
//! No timing is asserted. The one wait is a readiness signal: every flood connection has been
//! taken up by the server (it sent its first handshake bytes, or closed the stream), so each
//! member connection opened afterwards is newer than the whole flood.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use connectivity::{Acn, BoxStream, IsolationKey, LoopbackAcn, CWTCH_PORT};
use cwtch_model::{EncryptedGroupMessage, KeyBundle};
use cwtch_server::client::ServerClient;
use cwtch_server::{Limits, Server, ServerConfig};
use tapir::Onion;
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;

/// Idle connections per flood.
const FLOOD: usize = 5_000;
/// Dials in flight at once while flooding (well under the listen backlog).
const FLOOD_CONCURRENCY: usize = 64;
/// Far beyond the test: a flood connection never expires while the test runs.
const NEVER_SECS: u64 = 3_600;

/// Make sure this process may hold a flood (both ends of every connection live here).
///
/// `cargo test` runs this file's tests as threads of one process, so ask for room for two
/// floods at once if the hard limit allows it, and for one at the very least.
fn ensure_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let one = (FLOOD + 2 * Limits::default().max_board_connections + 1_024) as u64;
    let lim = getrlimit(Resource::Nofile);
    let current = lim.current.unwrap_or(u64::MAX);
    let maximum = lim.maximum.unwrap_or(u64::MAX);
    assert!(
        maximum >= one,
        "this test holds {FLOOD} connections and needs {one} open files, but the hard limit \
         is {maximum}: raise it (`ulimit -Hn {one}` as root, or LimitNOFILE=) and run again"
    );
    let want = (2 * one).min(maximum);
    if current >= want {
        return;
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(want),
            maximum: lim.maximum,
        },
    )
    .unwrap_or_else(|e| {
        panic!("could not raise the soft limit of open files from {current} to {want}: {e}")
    });
}

struct World {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    acn: Arc<dyn Acn>,
}

fn world() -> World {
    ensure_fd_limit();
    let tmp = tempfile::tempdir().unwrap();
    let acn: Arc<dyn Acn> = Arc::new(LoopbackAcn::new(tmp.path().join("net")).unwrap());
    World {
        root: tmp.path().to_path_buf(),
        _tmp: tmp,
        acn,
    }
}

/// A server with default limits, except that handshakes never time out during the test.
async fn server(w: &World) -> Server {
    let dir = w.root.join("server");
    cwtch_server::create_data_dir(&dir).unwrap();
    let mut c = ServerConfig::generate(&mut rand_core::OsRng);
    c.limits = Limits {
        handshake_timeout_secs: NEVER_SECS,
        ..Limits::default()
    };
    c.save_new(&dir).unwrap();
    Server::start(ServerConfig::load(&dir).unwrap(), &dir, w.acn.clone())
        .await
        .unwrap()
}

fn client(w: &World, s: &Server) -> ServerClient {
    let kb = KeyBundle::parse_server_string(&s.bundle()).unwrap();
    let mut c = ServerClient::new(&kb, w.acn.clone()).unwrap();
    // Only a guard against hanging: the old policy fails at once, not by timing out.
    c.timeout = Duration::from_secs(120);
    c
}

fn egm(i: u32) -> EncryptedGroupMessage {
    EncryptedGroupMessage {
        ciphertext: Some(format!("ciphertext {i}").into_bytes()),
        signature: Some(format!("signature {i:06}").into_bytes()),
    }
}

/// One flood connection, returned once the server has taken it up: it has sent the first
/// bytes of its handshake, or closed the stream (dropped or already evicted).
async fn dial_idle(acn: &Arc<dyn Acn>, onion: &Onion) -> BoxStream {
    let mut s = acn
        .connect(onion, CWTCH_PORT, &IsolationKey::new("flooder"))
        .await
        .unwrap();
    let mut first = [0u8; 1];
    // Data, end of stream or a reset: whichever it is, the server has accepted the stream.
    let _ = s.read(&mut first).await;
    s
}

/// Open `FLOOD` idle connections to `onion` and hold them. The first is opened alone, so it is
/// the oldest the server knows of.
async fn flood(acn: &Arc<dyn Acn>, onion: &Onion) -> (BoxStream, Vec<BoxStream>) {
    let oldest = dial_idle(acn, onion).await;
    let limit = Arc::new(Semaphore::new(FLOOD_CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 1..FLOOD {
        let permit = limit.clone().acquire_owned().await.unwrap();
        let (acn, onion) = (acn.clone(), onion.clone());
        tasks.spawn(async move {
            let s = dial_idle(&acn, &onion).await;
            drop(permit);
            s
        });
    }
    let mut held = Vec::with_capacity(FLOOD);
    while let Some(s) = tasks.join_next().await {
        held.push(s.unwrap());
    }
    (oldest, held)
}

/// Whether the server closed a flood connection (reads until the end of the stream).
async fn closed_by_server(s: &mut BoxStream) -> bool {
    let mut buf = vec![0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(120), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_connections_does_not_lock_members_out_of_the_token_service() {
    let w = world();
    let s = server(&w).await;
    let c = client(&w, &s);
    let token_onion = s.config().token_onion();

    let (mut oldest, _held) = flood(&w.acn, &token_onion).await;

    // While all 5 000 are held open: a member obtains tokens, posts, and replays.
    let tokens = c
        .fetch_tokens(10)
        .await
        .expect("a member obtains tokens during the flood");
    assert_eq!(tokens.len(), 10);
    let mut board = c.connect().await.unwrap();
    assert!(board.post(&tokens[0], &egm(1)).await.unwrap());
    let mut reader = c.connect().await.unwrap();
    assert_eq!(reader.replay(None).await.unwrap(), vec![egm(1)]);
    // And again: the service keeps serving while the flood is held.
    let more = c.fetch_tokens(5).await.unwrap();
    assert!(board.post(&more[0], &egm(2)).await.unwrap());

    // The flood paid: its oldest connection was evicted to make room, and so were all but
    // the newest that fit.
    assert!(
        closed_by_server(&mut oldest).await,
        "the oldest handshake is evicted"
    );
    let st = s.stats();
    let max = Limits::default().max_token_connections;
    assert!(st.handshakes_evicted >= (FLOOD - max) as u64, "{st:?}");
    assert_eq!(st.connections_refused, 0, "{st:?}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_connections_does_not_lock_members_out_of_the_token_board() {
    let w = world();
    let s = server(&w).await;
    let c = client(&w, &s);
    let tokens = c.fetch_tokens(10).await.unwrap();

    // A member already connected and synced before the flood.
    let mut member = c.connect().await.unwrap();
    assert!(member.replay(None).await.unwrap().is_empty());

    let (mut oldest, _held) = flood(&w.acn, &s.onion()).await;

    // While all 5 000 are held open: a newcomer authenticates, posts and replays.
    let mut newcomer = c
        .connect()
        .await
        .expect("a member reaches the token board during the flood");
    assert!(newcomer.post(&tokens[0], &egm(1)).await.unwrap());
    assert_eq!(newcomer.replay(None).await.unwrap(), vec![egm(1)]);
    // The established member was never evicted: it receives the broadcast.
    assert_eq!(member.next_message().await.unwrap(), egm(1));
    assert!(member.post(&tokens[1], &egm(2)).await.unwrap());
    assert_eq!(newcomer.next_message().await.unwrap(), egm(2));

    assert!(
        closed_by_server(&mut oldest).await,
        "the oldest handshake is evicted"
    );
    let st = s.stats();
    let max = Limits::default().max_board_connections;
    assert!(st.handshakes_evicted >= (FLOOD - max) as u64, "{st:?}");
    assert_eq!(st.connections_refused, 0, "{st:?}");
    s.shutdown().await;
}
