//! Kill the server with SIGKILL while clients post; restart it. Every post that was
//! acknowledged `PostResult{Success:true}` must be in the replay afterwards, and no token
//! spent before the crash may be accepted again.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use connectivity::{Acn, LoopbackAcn};
use cwtch_model::EncryptedGroupMessage;
use cwtch_server::client::ServerClient;
use privacypass::Token;

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

    // Acknowledged posts, with the token each one spent.
    let acked: Arc<Mutex<Vec<(EncryptedGroupMessage, Token)>>> = Arc::default();
    let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut jobs = Vec::new();
    for ci in 0..CLIENTS {
        let (c, acked, progress) = (client.clone(), acked.clone(), progress_tx.clone());
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
                    // The crash: the connection dies mid-request.
                    _ => return,
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
    for (m, _) in &acked {
        assert!(
            stored.contains(m),
            "acknowledged {:?} lost",
            String::from_utf8_lossy(m.signature.as_ref().unwrap())
        );
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
