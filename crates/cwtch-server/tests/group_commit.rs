//! Posts from many connections share commits (the group commit, `store::GroupCommit`); what
//! members see must not change: one accepted spend per token however the posts are batched,
//! results in request order on each connection, one broadcast per stored message, and every
//! acknowledged post on disk.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use connectivity::{Acn, LoopbackAcn};
use cwtch_model::tokenboard::{Payload, PostRequest, SpentToken};
use cwtch_model::{EncryptedGroupMessage, KeyBundle, Message};
use cwtch_server::client::{post_binding, BoardClient, ServerClient};
use cwtch_server::{Server, ServerConfig};

struct World {
    tmp: tempfile::TempDir,
    acn: Arc<dyn Acn>,
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let acn: Arc<dyn Acn> = Arc::new(LoopbackAcn::new(tmp.path().join("net")).unwrap());
    World { tmp, acn }
}

async fn server(w: &World) -> Server {
    let dir = w.tmp.path().join("s");
    cwtch_server::create_data_dir(&dir).unwrap();
    let mut c = ServerConfig::generate(&mut rand_core::OsRng);
    c.limits.requests_per_second = 10_000;
    c.limits.request_burst = 10_000;
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

fn egm(i: usize) -> EncryptedGroupMessage {
    EncryptedGroupMessage {
        ciphertext: Some(vec![i as u8; 2000]),
        signature: Some(format!("message {i:05}").into_bytes()),
    }
}

fn post_request(t: &[u8], mac: &[u8], m: &EncryptedGroupMessage) -> Vec<u8> {
    Message::from(Payload::PostRequest(PostRequest {
        token: SpentToken {
            t: Some(t.to_vec()),
            mac: Some(mac.to_vec()),
        },
        egm: m.clone(),
    }))
    .to_json()
}

/// The next `PostResult` on a raw connection.
async fn result(board: &mut BoardClient) -> bool {
    loop {
        let m = Message::from_json(&board.recv_raw().await.unwrap()).unwrap();
        if let Ok(Payload::PostResult(r)) = m.into_payload() {
            return r.success;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_posted_on_many_connections_at_once_is_accepted_once() {
    let w = world();
    let s = server(&w).await;
    let c = client(&w, &s);
    let tokens = c.fetch_tokens(4).await.unwrap();
    // For each token, 8 connections post (each its own message) at the same moment, so that
    // the spends land in one batch or several, as it happens.
    for (k, token) in tokens.iter().enumerate() {
        let mut boards = Vec::new();
        for _ in 0..8 {
            boards.push(c.connect().await.unwrap());
        }
        let go = Arc::new(tokio::sync::Barrier::new(boards.len()));
        let mut jobs = Vec::new();
        for (i, mut b) in boards.into_iter().enumerate() {
            let m = egm(k * 100 + i);
            let spent = token.spend(&post_binding(&m, &s.onion()));
            let go = go.clone();
            jobs.push(tokio::spawn(async move {
                go.wait().await;
                b.post_spent(spent.t.to_vec(), spent.mac.to_vec(), &m)
                    .await
                    .unwrap()
            }));
        }
        let mut accepted = 0;
        for j in jobs {
            accepted += usize::from(j.await.unwrap());
        }
        assert_eq!(accepted, 1, "token {k}");
    }
    let st = s.stats();
    assert_eq!((st.messages, st.tokens_spent), (4, 4));
    assert_eq!((st.posts_accepted, st.posts_rejected), (4, 28));
    assert_eq!(st.committed_posts, 32);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_come_in_request_order_on_each_connection() {
    let w = world();
    let s = server(&w).await;
    let c = client(&w, &s);
    let tokens = c.fetch_tokens(6).await.unwrap();
    let mut board = c.connect().await.unwrap();
    let spend = |i: usize, m: &EncryptedGroupMessage| tokens[i].spend(&post_binding(m, &s.onion()));
    // A post that waits for a commit, then one refused at once (bad MAC), then one that waits
    // again, then a double spend of the first token: sent back to back, answered in order.
    let (a, b, d) = (egm(1), egm(2), egm(3));
    let (sa, sd) = (spend(0, &a), spend(1, &d));
    let bad = spend(2, &a); // bound to another message than the one posted
    for req in [
        post_request(&sa.t, &sa.mac, &a),
        post_request(&bad.t, &bad.mac, &b),
        post_request(&sd.t, &sd.mac, &d),
        post_request(&sa.t, &sa.mac, &a),
    ] {
        board.send_raw(req).await.unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(result(&mut board).await);
    }
    assert_eq!(got, [true, false, true, false]);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_posted_twice_at_once_is_stored_and_broadcast_once() {
    let w = world();
    let s = server(&w).await;
    let c = client(&w, &s);
    let tokens = c.fetch_tokens(8).await.unwrap();
    let mut listener = c.connect().await.unwrap();
    assert!(listener.replay(None).await.unwrap().is_empty());
    // The same message from 8 connections at once, each with its own token: every post is
    // acknowledged (Go's rule for a stored signature), the message is stored once, and synced
    // connections see it once.
    let m = egm(7);
    let go = Arc::new(tokio::sync::Barrier::new(tokens.len()));
    let mut jobs = Vec::new();
    for t in tokens {
        let mut b = c.connect().await.unwrap();
        let (m, go) = (m.clone(), go.clone());
        jobs.push(tokio::spawn(async move {
            go.wait().await;
            b.post(&t, &m).await.unwrap()
        }));
    }
    for j in jobs {
        assert!(j.await.unwrap());
    }
    assert_eq!(listener.next_message().await.unwrap(), m);
    // A marker posted afterwards is the next thing the listener sees: no second copy of `m`.
    let marker = egm(8);
    let t = c.fetch_tokens(1).await.unwrap().pop().unwrap();
    assert!(c.connect().await.unwrap().post(&t, &marker).await.unwrap());
    assert_eq!(listener.next_message().await.unwrap(), marker);
    let st = s.stats();
    assert_eq!(
        (st.messages, st.posts_accepted, st.posts_duplicate),
        (2, 2, 7)
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posts_are_all_stored_and_share_commits() {
    let w = world();
    let s = server(&w).await;
    let c = client(&w, &s);
    const CLIENTS: usize = 12;
    const POSTS: usize = 20;
    let mut jobs = Vec::new();
    for ci in 0..CLIENTS {
        let c = c.clone();
        let tokens = c.fetch_tokens(POSTS).await.unwrap();
        jobs.push(tokio::spawn(async move {
            let mut b = c.connect().await.unwrap();
            for (i, t) in tokens.iter().enumerate() {
                assert!(b.post(t, &egm(ci * POSTS + i)).await.unwrap());
            }
        }));
    }
    for j in jobs {
        j.await.unwrap();
    }
    let mut reader = c.connect().await.unwrap();
    let mut all: Vec<_> = reader
        .replay(None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.signature.unwrap())
        .collect();
    all.sort();
    let mut want: Vec<_> = (0..CLIENTS * POSTS)
        .map(|i| egm(i).signature.unwrap())
        .collect();
    want.sort();
    assert_eq!(all, want);
    let st = s.stats();
    assert_eq!(st.committed_posts, (CLIENTS * POSTS) as u64);
    assert!(st.commits >= 1 && st.commits <= st.committed_posts);
    s.shutdown().await;
}
