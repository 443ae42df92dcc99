//! The server over the loopback network, driven by a client built from our own crates.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use connectivity::{Acn, LoopbackAcn};
use cwtch_model::{EncryptedGroupMessage, KeyBundle, Message};
use cwtch_server::client::{post_binding, ServerClient};
use cwtch_server::{Limits, Server, ServerConfig};

struct World {
    _tmp: tempfile::TempDir,
    net: std::path::PathBuf,
    root: std::path::PathBuf,
    acn: Arc<dyn Acn>,
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let net = tmp.path().join("net");
    let acn: Arc<dyn Acn> = Arc::new(LoopbackAcn::new(&net).unwrap());
    World {
        root: tmp.path().to_path_buf(),
        net,
        _tmp: tmp,
        acn,
    }
}

async fn server(w: &World, name: &str, tweak: impl FnOnce(&mut ServerConfig)) -> Server {
    let dir = w.root.join(name);
    cwtch_server::create_data_dir(&dir).unwrap();
    let mut c = ServerConfig::generate(&mut rand_core::OsRng);
    tweak(&mut c);
    c.save_new(&dir).unwrap();
    Server::start(ServerConfig::load(&dir).unwrap(), &dir, w.acn.clone())
        .await
        .unwrap()
}

fn client(w: &World, s: &Server) -> ServerClient {
    let kb = KeyBundle::parse_server_string(&s.bundle()).unwrap();
    let mut c = ServerClient::new(&kb, w.acn.clone()).unwrap();
    c.timeout = Duration::from_secs(30);
    c
}

fn egm(i: u32) -> EncryptedGroupMessage {
    EncryptedGroupMessage {
        ciphertext: Some(format!("ciphertext {i}").into_bytes()),
        signature: Some(format!("signature {i:06}").into_bytes()),
    }
}

fn sigs(v: &[EncryptedGroupMessage]) -> Vec<Vec<u8>> {
    v.iter().map(|m| m.signature.clone().unwrap()).collect()
}

#[tokio::test]
async fn post_with_a_token_then_replay_from_empty_and_from_a_last_commit() {
    let w = world();
    let s = server(&w, "s", |_| {}).await;
    let c = client(&w, &s);
    let tokens = c.fetch_tokens(10).await.unwrap();
    assert_eq!(tokens.len(), 10);
    let mut board = c.connect().await.unwrap();
    for (i, t) in tokens.iter().take(5).enumerate() {
        let r = board.post(t, &egm(i as u32)).await;
        assert!(r.as_ref().is_ok_and(|ok| *ok), "post {i}: {r:?}");
    }
    // From empty: all five, in order.
    let mut reader = c.connect().await.unwrap();
    let all = reader.replay(None).await.unwrap();
    assert_eq!(
        sigs(&all),
        (0..5)
            .map(|i| sigs(&[egm(i)])[0].clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(all[2], egm(2));
    // From a LastCommit: that message (inclusive, as Go) and everything after.
    let mut again = c.connect().await.unwrap();
    let from3 = again
        .replay(Some(&egm(3).signature.unwrap()))
        .await
        .unwrap();
    assert_eq!(from3, vec![egm(3), egm(4)]);
    // An unknown LastCommit (e.g. pruned) replays everything, as Go does.
    let mut third = c.connect().await.unwrap();
    assert_eq!(
        third
            .replay(Some(b"no such signature"))
            .await
            .unwrap()
            .len(),
        5
    );
    let st = s.stats();
    assert_eq!((st.messages, st.posts_accepted, st.tokens_spent), (5, 5, 5));
    assert_eq!(st.tokens_issued, 10);
    // The server counts a replay before answering it, so all three are counted by now.
    assert_eq!(st.replays, 3);
    s.shutdown().await;
}

#[tokio::test]
async fn new_posts_are_broadcast_to_synced_connections_only() {
    let w = world();
    let s = server(&w, "s", |_| {}).await;
    let c = client(&w, &s);
    let tokens = c.fetch_tokens(3).await.unwrap();
    let mut synced_a = c.connect().await.unwrap();
    let mut synced_b = c.connect().await.unwrap();
    let mut unsynced = c.connect().await.unwrap();
    assert!(synced_a.replay(None).await.unwrap().is_empty());
    assert!(synced_b.replay(None).await.unwrap().is_empty());
    let mut poster = c.connect().await.unwrap();
    assert!(poster.post(&tokens[0], &egm(1)).await.unwrap());
    assert_eq!(synced_a.next_message().await.unwrap(), egm(1));
    assert_eq!(synced_b.next_message().await.unwrap(), egm(1));
    // The unsynced connection got nothing: its first reply is to its own replay request,
    // which now includes the message.
    let replayed = unsynced.replay(None).await.unwrap();
    assert_eq!(replayed, vec![egm(1)]);
    // A synced poster receives its own message back.
    assert!(synced_a.post(&tokens[1], &egm(2)).await.unwrap());
    assert_eq!(synced_a.next_message().await.unwrap(), egm(2));
    s.shutdown().await;
}

#[tokio::test]
async fn double_spends_and_tokens_bound_elsewhere_are_rejected() {
    let w = world();
    let a = server(&w, "a", |_| {}).await;
    let b = server(&w, "b", |_| {}).await;
    let ca = client(&w, &a);
    let cb = client(&w, &b);
    let tokens = ca.fetch_tokens(4).await.unwrap();
    let mut board_a = ca.connect().await.unwrap();
    assert!(board_a.post(&tokens[0], &egm(1)).await.unwrap());
    // The same token again, even for another message: rejected.
    assert!(!board_a.post(&tokens[0], &egm(2)).await.unwrap());
    // A's token at server B: B never signed it.
    let mut board_b = cb.connect().await.unwrap();
    assert!(!board_b.post(&tokens[1], &egm(3)).await.unwrap());
    // A token of A bound to B's onion, posted to A: the binding does not match A.
    let spent = tokens[2].spend(&post_binding(&egm(4), &b.onion()));
    assert!(!board_a
        .post_spent(spent.t.to_vec(), spent.mac.to_vec(), &egm(4))
        .await
        .unwrap());
    // Bound to another message than the one posted: rejected.
    let spent = tokens[3].spend(&post_binding(&egm(5), &a.onion()));
    assert!(!board_a
        .post_spent(spent.t.to_vec(), spent.mac.to_vec(), &egm(6))
        .await
        .unwrap());
    // ...and that failed attempt did not burn the token: bound correctly, it works.
    assert!(board_a.post(&tokens[3], &egm(5)).await.unwrap());
    let st = a.stats();
    assert_eq!(
        (st.posts_accepted, st.posts_rejected, st.messages),
        (2, 3, 2)
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn malformed_requests_close_only_their_connection() {
    let w = world();
    let s = server(&w, "s", |_| {}).await;
    let c = client(&w, &s);
    let tokens = c.fetch_tokens(2).await.unwrap();
    let mut bystander = c.connect().await.unwrap();
    assert!(bystander.replay(None).await.unwrap().is_empty());
    for bad in [
        &b"this is not json"[..],
        b"{\"MessageType\":2}", // PostRequest type without payload
        b"{\"MessageType\":0,\"ReplayRequest\":7}", // wrong payload shape
        b"{\"MessageType\":\"two\"}",
    ] {
        let mut victim = c.connect().await.unwrap();
        victim.send_raw(bad.to_vec()).await.unwrap();
        assert!(
            victim.closed_by_server().await,
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    // Unknown message types are ignored, not fatal (Go).
    let mut other = c.connect().await.unwrap();
    other
        .send_raw(b"{\"MessageType\":99}".to_vec())
        .await
        .unwrap();
    assert!(other.replay(None).await.unwrap().is_empty());
    // The bystander still works.
    assert!(bystander.post(&tokens[0], &egm(1)).await.unwrap());
    assert_eq!(bystander.next_message().await.unwrap(), egm(1));
    assert!(s.stats().closed_malformed >= 4);
    s.shutdown().await;
}

#[tokio::test]
async fn an_empty_signature_is_dropped_silently_and_oversize_posts_are_refused() {
    let w = world();
    let s = server(&w, "s", |c| c.limits.max_ciphertext_bytes = 100).await;
    let c = client(&w, &s);
    let tokens = c.fetch_tokens(3).await.unwrap();
    let mut board = c.connect().await.unwrap();
    // Go drops a valid-token post with an empty signature without replying: the next reply
    // on the connection answers the next request.
    let unsigned = EncryptedGroupMessage {
        ciphertext: Some(b"x".to_vec()),
        signature: Some(Vec::new()),
    };
    let spent = tokens[0].spend(&post_binding(&unsigned, &s.onion()));
    let m = Message::from(cwtch_model::Payload::PostRequest(
        cwtch_model::tokenboard::PostRequest {
            token: cwtch_model::tokenboard::SpentToken {
                t: Some(spent.t.to_vec()),
                mac: Some(spent.mac.to_vec()),
            },
            egm: unsigned,
        },
    ));
    board.send_raw(m.to_json()).await.unwrap();
    assert!(
        board.replay(None).await.unwrap().is_empty(),
        "first reply is the replay's"
    );
    // Too large: refused before the token is spent.
    let big = EncryptedGroupMessage {
        ciphertext: Some(vec![1u8; 101]),
        signature: Some(b"big".to_vec()),
    };
    assert!(!board.post(&tokens[1], &big).await.unwrap());
    assert!(
        board.post(&tokens[1], &egm(1)).await.unwrap(),
        "the token was not burnt"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn the_store_cap_prunes_the_oldest_messages() {
    let w = world();
    // 1 MB = 250 messages.
    let s = server(&w, "s", |c| c.max_storage_mbs = 1).await;
    let c = client(&w, &s);
    let mut tokens = c.fetch_tokens(150).await.unwrap();
    tokens.extend(c.fetch_tokens(150).await.unwrap());
    let mut board = c.connect().await.unwrap();
    // Stay under the request rate: a fresh connection every 40 posts.
    for (i, t) in tokens.iter().take(260).enumerate() {
        if i % 40 == 0 {
            board = c.connect().await.unwrap();
        }
        let r = board.post(t, &egm(i as u32)).await;
        assert!(r.as_ref().is_ok_and(|ok| *ok), "post {i}: {r:?}");
    }
    // The 251st post pruned 26 (Go: (count − cap) + cap/10); nine more since.
    let mut reader = c.connect().await.unwrap();
    let all = reader.replay(None).await.unwrap();
    assert_eq!(all.len(), 234);
    assert_eq!(all[0], egm(26));
    assert_eq!(all.last().unwrap(), &egm(259));
    s.shutdown().await;
}

#[tokio::test]
async fn a_connection_over_the_request_rate_is_closed() {
    let w = world();
    let s = server(&w, "s", |c| {
        c.limits = Limits {
            requests_per_second: 1,
            request_burst: 3,
            ..Limits::default()
        }
    })
    .await;
    let c = client(&w, &s);
    let mut greedy = c.connect().await.unwrap();
    for _ in 0..10 {
        let _ = greedy.send_raw(b"{\"MessageType\":99}".to_vec()).await;
    }
    assert!(greedy.closed_by_server().await);
    assert_eq!(s.stats().closed_rate_limited, 1);
    // Others are unaffected.
    let mut fine = c.connect().await.unwrap();
    assert!(fine.replay(None).await.unwrap().is_empty());
    s.shutdown().await;
}

#[tokio::test]
async fn spent_tokens_and_messages_survive_a_restart() {
    let w = world();
    let dir = w.root.join("s");
    let s = server(&w, "s", |_| {}).await;
    let c = client(&w, &s);
    let tokens = c.fetch_tokens(2).await.unwrap();
    let mut board = c.connect().await.unwrap();
    assert!(board.post(&tokens[0], &egm(1)).await.unwrap());
    drop(board);
    s.shutdown().await;
    // A second server on the same directory while... (none running now) starts fine.
    let s = Server::start(ServerConfig::load(&dir).unwrap(), &dir, w.acn.clone())
        .await
        .unwrap();
    let mut board = c.connect().await.unwrap();
    assert!(
        !board.post(&tokens[0], &egm(2)).await.unwrap(),
        "spent before the restart"
    );
    assert!(board.post(&tokens[1], &egm(3)).await.unwrap());
    assert_eq!(board.replay(None).await.unwrap(), vec![egm(1), egm(3)]);
    // Two servers cannot share a data directory.
    let err = Server::start(ServerConfig::load(&dir).unwrap(), &dir, w.acn.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, cwtch_server::ServerError::Locked(_)), "{err}");
    s.shutdown().await;
    let _ = &w.net;
}

/// A client that asks for a replay and then reads slower than a page per
/// `replayPageTimeoutSecs` is closed; replays beyond `maxConcurrentReplays` wait their turn
/// rather than fail, and run once the slow one is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_read_too_slowly_is_closed_and_the_next_one_runs() {
    use cwtch_model::tokenboard::{Payload, ReplayRequest};
    let w = world();
    let dir = w.root.join("s");
    cwtch_server::create_data_dir(&dir).unwrap();
    let mut config = ServerConfig::generate(&mut rand_core::OsRng);
    config.limits = Limits {
        replay_page_timeout_secs: 5,
        max_concurrent_replays: 1,
        ..Limits::default()
    };
    config.save_new(&dir).unwrap();
    // More full-size messages than the connection's queues and socket buffers hold.
    const N: u32 = 1500;
    {
        let store = cwtch_server::store::MessageStore::open(&dir, -1).unwrap();
        let body = vec![b'x'; 5800];
        let posts: Vec<_> = (0..N)
            .map(|i| {
                let mut token = [0u8; 32];
                token[..4].copy_from_slice(&i.to_be_bytes());
                cwtch_server::store::Post::new(token, format!("sig {i:06}").as_bytes(), &body)
            })
            .collect();
        for batch in posts.chunks(500) {
            store.commit(batch).unwrap();
        }
    }
    let s = Server::start(ServerConfig::load(&dir).unwrap(), &dir, w.acn.clone())
        .await
        .unwrap();
    let c = client(&w, &s);
    // Asks for everything, then reads nothing.
    let mut slow = c.connect().await.unwrap();
    let ask = Message::from(Payload::ReplayRequest(ReplayRequest::default()));
    slow.send_raw(ask.to_json()).await.unwrap();
    // Waits for the slow one's turn to end, then gets everything.
    let mut fine = c.connect().await.unwrap();
    let all = fine.replay(None).await.unwrap();
    assert_eq!(all.len(), N as usize);
    assert_eq!(s.stats().closed_slow, 1);
    assert!(slow.closed_by_server().await);
    s.shutdown().await;
}

/// A token client that does not close once it has its tokens, and keeps sending to hold its
/// slot (the token service has few), is closed after the handshake timeout all the same.
#[tokio::test]
async fn a_token_connection_is_closed_after_issuance_whatever_the_client_sends() {
    let w = world();
    let s = server(&w, "s", |c| c.limits.handshake_timeout_secs = 2).await;
    let keys = KeyBundle::parse_server_string(&s.bundle())
        .unwrap()
        .verify()
        .unwrap();
    let svc = tapir_service::Service::new(
        Arc::new(tapir::Identity::generate(&mut rand_core::OsRng)),
        w.acn.clone(),
        tapir_service::ServiceConfig::default(),
    );
    let y = privacypass::PublicKey::from_bytes(&keys.privacy_pass_key_bytes().unwrap()).unwrap();
    let mut conn = svc
        .connect(
            &keys.token_service,
            tapir::ApplicationChain::token_client(y, 5),
        )
        .await
        .unwrap();
    assert_eq!(conn.take_tokens().len(), 5);
    let start = std::time::Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if conn.send(b"still here".to_vec()).await.is_err() {
                return;
            }
            tokio::select! {
                r = conn.recv() => if r.is_none() { return },
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the token service kept the connection open");
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "closed too early"
    );
    s.shutdown().await;
}
