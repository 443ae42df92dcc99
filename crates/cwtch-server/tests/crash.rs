//! Kill the server with SIGKILL while clients post; restart it. Every post that was
//! acknowledged `PostResult{Success:true}` must be in the replay afterwards, once, and no token
//! spent before the crash may be accepted again.
//!
//! Posts are committed in groups (a spent token and its message in one transaction, then the
//! replies), so a kill can also fall between a commit and its replies: the poster saw no
//! result and may post again. Then the token must be refused and the message kept once; and
//! since token and message are one transaction, a token is spent exactly when its message is
//! stored.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use connectivity::{Acn, LoopbackAcn};
use cwtch_model::EncryptedGroupMessage;
use cwtch_server::client::{post_binding, ServerClient};
use cwtch_server::store::{MessageStore, Outcome, Post};
use privacypass::Token;

/// Each signature in `stored` at most once.
fn assert_no_duplicates(stored: &[EncryptedGroupMessage]) {
    let mut sigs: Vec<_> = stored.iter().map(|m| m.signature.clone()).collect();
    sigs.sort();
    let n = sigs.len();
    sigs.dedup();
    assert_eq!(sigs.len(), n, "a message stored twice");
}

fn egm(client: usize, i: usize) -> EncryptedGroupMessage {
    EncryptedGroupMessage {
        ciphertext: Some(vec![client as u8; 1500]),
        signature: Some(format!("client {client} message {i:04}").into_bytes()),
    }
}

#[tokio::test]
async fn acknowledged_posts_survive_sigkill_and_spent_tokens_stay_spent() {
    const CLIENTS: usize = 4;
    const POSTS: usize = 40;
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path(), "srv");
    let net = tmp.path().join("net");
    let mut server = run(&dir, &net).await;
    let acn: Arc<dyn Acn> = Arc::new(LoopbackAcn::new(&net).unwrap());
    let client = ServerClient::new(&server.bundle, acn.clone()).unwrap();

    // Acknowledged posts, with the token each one spent; and the post each client had sent
    // without an answer when the server died (it may or may not have been committed).
    let acked: Arc<Mutex<Vec<(EncryptedGroupMessage, Token)>>> = Arc::default();
    let unanswered: Arc<Mutex<Vec<(EncryptedGroupMessage, Token)>>> = Arc::default();
    let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut jobs = Vec::new();
    for ci in 0..CLIENTS {
        let (c, acked, unanswered, progress) = (
            client.clone(),
            acked.clone(),
            unanswered.clone(),
            progress_tx.clone(),
        );
        let tokens = c.fetch_tokens(POSTS).await.unwrap();
        jobs.push(tokio::spawn(async move {
            let Ok(mut board) = c.connect().await else {
                return;
            };
            for (i, t) in tokens.into_iter().enumerate() {
                let m = egm(ci, i);
                match board.post(&t, &m).await {
                    Ok(true) => {
                        acked.lock().unwrap().push((m, t));
                        let _ = progress.send(());
                    }
                    Ok(false) => panic!("post {i} of client {ci} refused"),
                    // The crash: the connection dies mid-request.
                    Err(_) => {
                        unanswered.lock().unwrap().push((m, t));
                        return;
                    }
                }
            }
        }));
    }
    // Kill the server hard once a good number of posts have been acknowledged, while the
    // clients are still posting.
    for _ in 0..(CLIENTS * POSTS / 3) {
        progress_rx.recv().await.unwrap();
    }
    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();
    for j in jobs {
        j.await.unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(acked.len() >= CLIENTS * POSTS / 3);
    assert!(
        acked.len() < CLIENTS * POSTS,
        "the kill interrupted the clients"
    );

    // Restart on the same directory: the lock of the dead process is gone.
    let server = run(&dir, &net).await;
    let client = ServerClient::new(&server.bundle, acn).unwrap();
    let mut board = client.connect().await.unwrap();
    let stored = board.replay(None).await.unwrap();
    assert_no_duplicates(&stored);
    for (m, _) in &acked {
        assert!(
            stored.contains(m),
            "acknowledged {:?} lost",
            String::from_utf8_lossy(m.signature.as_ref().unwrap())
        );
    }
    // The posts cut off by the kill: posted again with the same token, the spend is refused
    // exactly when the message was committed before the kill (token and message are one
    // transaction), and either way the message ends up stored once.
    let unanswered = std::mem::take(&mut *unanswered.lock().unwrap());
    let mut reposter = client.connect().await.unwrap();
    for (m, t) in &unanswered {
        let committed = stored.contains(m);
        assert_eq!(
            reposter.post(t, m).await.unwrap(),
            !committed,
            "{:?}: committed before the kill: {committed}",
            String::from_utf8_lossy(m.signature.as_ref().unwrap())
        );
    }
    let after = client.connect().await.unwrap().replay(None).await.unwrap();
    assert_no_duplicates(&after);
    for (m, _) in &unanswered {
        assert!(after.contains(m));
    }
    // Every token spent before the crash is refused now, even for a brand-new message.
    for (i, (_, t)) in acked.iter().enumerate() {
        assert!(
            !board.post(t, &egm(99, i)).await.unwrap(),
            "token {i} accepted twice"
        );
        if i % 30 == 29 {
            // Stay under the per-connection request rate.
            board = client.connect().await.unwrap();
        }
    }
}

/// The window a group commit adds, made certain: the server committed a batch (each token
/// spent, each message stored) and died before any reply left. The posters re-post.
#[tokio::test]
async fn a_kill_between_commit_and_reply_refuses_the_second_spend_and_keeps_the_message_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path(), "srv");
    let net = tmp.path().join("net");
    let mut server = run(&dir, &net).await;
    let acn: Arc<dyn Acn> = Arc::new(LoopbackAcn::new(&net).unwrap());
    let client = ServerClient::new(&server.bundle, acn.clone()).unwrap();
    let mut tokens = client.fetch_tokens(8).await.unwrap();
    let fresh = tokens.split_off(4);
    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();

    // What the dead server's writer had committed: four posts in one transaction.
    let onion = client.onion().clone();
    let posts: Vec<_> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (egm(7, i), t))
        .collect();
    {
        let store = MessageStore::open(&dir, -1).unwrap();
        let batch: Vec<_> = posts
            .iter()
            .map(|(m, t)| {
                let spent = t.spend(&post_binding(m, &onion));
                Post::new(
                    spent.t,
                    m.signature.as_deref().unwrap(),
                    m.ciphertext.as_deref().unwrap(),
                )
            })
            .collect();
        assert_eq!(store.commit(&batch).unwrap(), [Outcome::Stored; 4]);
    }

    let _server = run(&dir, &net).await;
    let client = ServerClient::new(&server.bundle, acn).unwrap();
    let mut board = client.connect().await.unwrap();
    for ((m, t), fresh) in posts.iter().zip(&fresh) {
        // The same post again, same token: the token is spent.
        assert!(!board.post(t, m).await.unwrap());
        // With a fresh token: acknowledged, as an already stored message is (Go's rule).
        assert!(board.post(fresh, m).await.unwrap());
    }
    let stored = board.replay(None).await.unwrap();
    assert_no_duplicates(&stored);
    assert_eq!(
        stored,
        posts.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>()
    );
}
