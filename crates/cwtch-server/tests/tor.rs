//! The server over real onion services: a private Tor network of real `tor` processes
//! (crates/testnet). The server's two onion services are hosted through one tor client, the
//! Cwtch client dials them through another.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use connectivity::{Acn, ControlAuth, DialPolicy, TorAcn, TorConfig, TorTimeouts};
use cwtch_model::{EncryptedGroupMessage, KeyBundle};
use cwtch_server::client::ServerClient;
use cwtch_server::{Server, ServerConfig};
use testnet::{TestClient, TestNet, TestNetConfig};

async fn attach(client: &TestClient) -> Arc<dyn Acn> {
    let mut timeouts = TorTimeouts::default();
    timeouts.publish = Duration::from_secs(120);
    let mut dial = DialPolicy::default();
    dial.max_attempts = 4;
    dial.attempt_timeout = Duration::from_secs(60);
    Arc::new(
        TorAcn::new(
            TorConfig::attach(
                client.control_addr().to_string(),
                ControlAuth::Cookie(Some(client.cookie_path.clone())),
            )
            .timeouts(timeouts)
            .dial_policy(dial),
        )
        .await
        .unwrap(),
    )
}

fn egm(i: u8) -> EncryptedGroupMessage {
    EncryptedGroupMessage {
        ciphertext: Some(vec![i; 2000]),
        signature: Some(vec![i; 64]),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_posts_replay_and_broadcast_over_onion_services() {
    let net = TestNet::start(TestNetConfig::default()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("server");
    cwtch_server::create_data_dir(&dir).unwrap();
    let config = ServerConfig::generate(&mut rand_core::OsRng);
    config.save_new(&dir).unwrap();

    let server_acn = attach(&net.clients()[0]).await;
    assert!(server_acn.is_anonymous());
    // Returns once both onion services' descriptors are uploaded.
    let server = Server::start(ServerConfig::load(&dir).unwrap(), &dir, server_acn.clone())
        .await
        .unwrap();
    let bundle = KeyBundle::parse_server_string(&server.bundle()).unwrap();

    let client_acn = attach(&net.clients()[1]).await;
    let mut client = ServerClient::new(&bundle, client_acn.clone()).unwrap();
    client.timeout = Duration::from_secs(120);
    // Proof-of-work and a verified batch through the token service's onion.
    let tokens = client.fetch_tokens(3).await.unwrap();
    assert_eq!(tokens.len(), 3);
    // Two token-board connections through the board's onion: one synced listener, one poster.
    let mut listener = client.connect().await.unwrap();
    assert!(listener.replay(None).await.unwrap().is_empty());
    let mut poster = client.connect().await.unwrap();
    assert!(poster.post(&tokens[0], &egm(1)).await.unwrap());
    assert_eq!(listener.next_message().await.unwrap(), egm(1));
    // Spent once, refused twice.
    assert!(!poster.post(&tokens[0], &egm(2)).await.unwrap());
    assert!(poster.post(&tokens[1], &egm(3)).await.unwrap());
    assert_eq!(
        poster.replay(Some(&[1u8; 64])).await.unwrap(),
        vec![egm(1), egm(3)]
    );
    let stats = server.stats();
    assert_eq!(
        (stats.messages, stats.tokens_issued, stats.tokens_spent),
        (2, 3, 2)
    );

    drop((listener, poster));
    server.shutdown().await;
    client_acn.close().await;
    server_acn.close().await;
    net.stop().await.unwrap();
}
