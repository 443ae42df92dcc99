//! The tokio driver over the loopback network, against small scripted servers built from
//! tapir-service: token fetching, the event stream, timeouts, closes and protocol errors.
//! (The real server is exercised through this client by `cwtch-server`'s tests.)

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use connectivity::{Acn, LoopbackAcn};
use cwtch_board::{
    BoardClient, BoardMachine, Error, Event, MachineConfig, Phase, ProtocolError, ServerClient,
};
use cwtch_model::tokenboard::{Payload, PostResult, ReplayResult};
use cwtch_model::{KeyBundle, Message};
use privacypass::{MemorySpentTokens, SpentToken, TokenServer};
use tapir::{ApplicationChain, Identity};
use tapir_service::{Connection, Service, ServiceConfig};
use tokio::sync::mpsc;

struct World {
    _dir: tempfile::TempDir,
    acn: Arc<dyn Acn>,
    client: ServerClient,
    tokens: Arc<TokenServer>,
    /// Each board connection the client opens, as the server sees it.
    boards: mpsc::Receiver<Connection>,
    _services: (Service, Service),
}

async fn world(timeout: Duration) -> World {
    let dir = tempfile::tempdir().unwrap();
    let acn: Arc<dyn Acn> = Arc::new(LoopbackAcn::new(dir.path().join("net")).unwrap());
    let board_id = Arc::new(Identity::from_seed(&[7; 32]));
    let token_id = Arc::new(Identity::from_seed(&[8; 32]));
    let tokens = Arc::new(token_server());
    let board = Service::new(board_id.clone(), acn.clone(), ServiceConfig::default());
    let mut listener = board.listen(ApplicationChain::authenticated).await.unwrap();
    let token_svc = Service::new(token_id.clone(), acn.clone(), ServiceConfig::default());
    let ts = tokens.clone();
    let _token_listener = token_svc
        .listen(move || ApplicationChain::token_server(ts.clone()))
        .await
        .unwrap();
    // Token-service connections complete inside the chain; nobody needs to accept them.
    tokio::spawn(async move {
        let mut l = _token_listener;
        while l.accept().await.is_some() {}
    });
    let (tx, boards) = mpsc::channel(8);
    tokio::spawn(async move {
        while let Some(c) = listener.accept().await {
            if tx.send(c).await.is_err() {
                break;
            }
        }
    });
    let mut bundle = KeyBundle::new_server_bundle(
        &board_id.onion(),
        &token_id.onion(),
        &tokens.public_key().to_bytes(),
    );
    bundle.sign(&board_id);
    let mut client = ServerClient::new(&bundle, acn.clone()).unwrap();
    client.timeout = timeout;
    World {
        _dir: dir,
        acn,
        client,
        tokens,
        boards,
        _services: (board, token_svc),
    }
}

async fn recv_payload(conn: &mut Connection) -> Payload {
    let bytes = tokio::time::timeout(Duration::from_secs(30), conn.recv())
        .await
        .unwrap()
        .unwrap();
    Message::from_json(&bytes)
        .and_then(Message::into_payload)
        .unwrap()
}

async fn send(conn: &Connection, p: Payload) {
    conn.send(Message::from(p).to_json()).await.unwrap();
}

async fn next(b: &mut BoardClient) -> Event {
    b.next_event().await.unwrap()
}

#[tokio::test]
async fn fetch_tokens_then_replay_post_and_read_the_echo() {
    let mut w = world(Duration::from_secs(60)).await;
    assert!(matches!(
        w.client.fetch_tokens(0).await,
        Err(Error::BatchSize { n: 0, max: 150 })
    ));
    let tokens = w.client.fetch_tokens(3).await.unwrap();
    assert_eq!(tokens.len(), 3);
    let mut machine = BoardMachine::new(
        w.client.onion().clone(),
        None,
        MachineConfig {
            low_water: 0,
            ..MachineConfig::default()
        },
    );
    machine.add_tokens(tokens);
    let mut b = w.client.connect_with(machine).await.unwrap();
    let mut server = w.boards.recv().await.unwrap();
    assert_eq!(next(&mut b).await, Event::Connected);
    b.request_replay().await.unwrap();
    assert!(matches!(
        recv_payload(&mut server).await,
        Payload::ReplayRequest(r) if r.last_commit.is_none()
    ));
    send(
        &server,
        Payload::ReplayResult(ReplayResult { num_messages: 1 }),
    )
    .await;
    server.send(egm(1).to_json()).await.unwrap();
    assert_eq!(next(&mut b).await, Event::Syncing { count: 1 });
    assert!(matches!(next(&mut b).await, Event::Message(r) if r.egm == egm(1)));
    assert!(matches!(next(&mut b).await, Event::Cursor(_)));
    assert_eq!(next(&mut b).await, Event::Synced);
    // Post: the server sees a token bound to this message and its onion.
    let p = b.prepare_post(egm(2)).unwrap();
    let id = p.id();
    b.send_post(p).await.unwrap();
    let Payload::PostRequest(req) = recv_payload(&mut server).await else {
        panic!("not a post")
    };
    let spent = SpentToken {
        t: req.token.t.unwrap().try_into().unwrap(),
        mac: req.token.mac.unwrap().try_into().unwrap(),
    };
    w.tokens
        .redeem(
            &spent,
            &cwtch_board::post_binding(&req.egm, w.client.onion()),
            &MemorySpentTokens::new(),
        )
        .unwrap();
    send(&server, Payload::PostResult(PostResult { success: true })).await;
    assert_eq!(next(&mut b).await, Event::PostResult { id, accepted: true });
    assert_eq!(b.machine().tokens_in_hand(), 2);
}

#[tokio::test]
async fn a_timeout_is_a_report_and_the_connection_survives_it() {
    let mut w = world(Duration::from_millis(300)).await;
    let mut b = w.client.connect().await.unwrap();
    let mut server = w.boards.recv().await.unwrap();
    b.request_replay().await.unwrap();
    let _ = recv_payload(&mut server).await;
    // Drain the events the machine had before the wait (Connected, TokensLow).
    while !matches!(b.next_event().await, Err(Error::Timeout(_))) {}
    assert!(b.machine().awaiting_reply());
    send(
        &server,
        Payload::ReplayResult(ReplayResult { num_messages: 0 }),
    )
    .await;
    assert_eq!(next(&mut b).await, Event::Syncing { count: 0 });
    assert_eq!(next(&mut b).await, Event::Synced);
    assert_eq!(b.machine().phase(), Phase::Synced);
    // Waiting on a quiet synced connection times out too, and stays usable.
    assert!(matches!(b.next_event().await, Err(Error::Timeout(_))));
    assert_eq!(b.machine().phase(), Phase::Synced);
}

#[tokio::test]
async fn a_closed_connection_reports_open_posts_unknown_and_the_machine_reconnects() {
    let mut w = world(Duration::from_secs(30)).await;
    let mut b = w.client.connect().await.unwrap();
    let mut server = w.boards.recv().await.unwrap();
    let id = b.machine().outstanding_posts();
    assert_eq!(id, 0);
    let spent = vec![1u8; 32];
    // A post the server never answers: it reads it and hangs up.
    let post = tokio::spawn(async move {
        let r = b.post_spent(spent, vec![2; 64], &egm(1)).await;
        (b, r)
    });
    let _ = recv_payload(&mut server).await;
    drop(server);
    let (mut b, r) = post.await.unwrap();
    assert!(matches!(r, Err(Error::Closed)), "{r:?}");
    let mut rest = Vec::new();
    loop {
        match b.next_event().await {
            Ok(e) => rest.push(e),
            Err(Error::Closed) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        matches!(
            &rest[..],
            [
                Event::Connected,
                Event::TokensLow { .. },
                Event::PostUnknown { .. },
                Event::Disconnected
            ]
        ),
        "{rest:?}"
    );
    assert!(matches!(b.next_event().await, Err(Error::Closed)));
    // The machine (cursor, tokens) goes on to a new connection.
    let machine = b.into_machine();
    assert_eq!(machine.phase(), Phase::Disconnected);
    let mut b = w.client.connect_with(machine).await.unwrap();
    let _server = w.boards.recv().await.unwrap();
    assert_eq!(next(&mut b).await, Event::Connected);
}

#[tokio::test]
async fn a_malformed_reply_is_a_typed_error_and_closes_the_connection() {
    let mut w = world(Duration::from_secs(30)).await;
    let mut b = w.client.connect().await.unwrap();
    let mut server = w.boards.recv().await.unwrap();
    b.request_replay().await.unwrap();
    let _ = recv_payload(&mut server).await;
    server.send(b"{\"MessageType\":1}".to_vec()).await.unwrap();
    let err = loop {
        match b.next_event().await {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(err, Error::Protocol(ProtocolError::Decode(_))),
        "{err}"
    );
    assert_eq!(b.next_event().await.unwrap(), Event::Disconnected);
    assert!(matches!(b.next_event().await, Err(Error::Closed)));
    // The server sees the close.
    let closed = tokio::time::timeout(Duration::from_secs(30), server.recv()).await;
    assert!(matches!(closed, Ok(None)));
}

#[tokio::test]
async fn a_machine_for_another_server_is_handed_back() {
    let w = world(Duration::from_secs(30)).await;
    let other = Identity::from_seed(&[1; 32]).onion();
    let m = BoardMachine::new(other.clone(), None, MachineConfig::default());
    let Err((e, m)) = w.client.connect_with(m).await else {
        panic!("connected to the wrong server")
    };
    assert!(matches!(e, Error::WrongServer));
    assert_eq!(m.server(), &other);
    let _ = &w.acn;
}
