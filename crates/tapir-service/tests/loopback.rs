//! Tapir services over the loopback network: real sockets, real tasks, real timeouts.
//!
//! Every rejection test keeps a *bystander* connection open to the same service and checks
//! it still works afterwards: a misbehaving peer closes only its own connection.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use connectivity::{Acn, BoxStream, IsolationKey, LoopbackAcn, CWTCH_PORT};
use privacypass::{MemorySpentTokens, TokenServer};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use tapir::apps::auth::{perform_3dh, AuthMessage};
use tapir::apps::pow::PowApp;
use tapir::packet::{self, PACKET_LEN};
use tapir::{
    AppContext, Application, ApplicationChain, Capability, Direction, Identity, Onion, Step,
    AUTHENTICATION_CAPABILITY,
};
use tapir_service::{Connection, Error, Service, ServiceConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct World {
    _dir: tempfile::TempDir,
    acn: Arc<dyn Acn>,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let acn: Arc<dyn Acn> = Arc::new(LoopbackAcn::new(dir.path().join("net")).unwrap());
    World { _dir: dir, acn }
}

fn identity(seed: u8) -> Arc<Identity> {
    Arc::new(Identity::from_seed(&[seed; 32]))
}

fn service(w: &World, seed: u8, config: ServiceConfig) -> Service {
    Service::new(identity(seed), w.acn.clone(), config)
}

/// A service that echoes every payload back, prefixed with "echo:".
async fn echo_service(w: &World, seed: u8, config: ServiceConfig) -> Service {
    let s = service(w, seed, config);
    let mut listener = s.listen(ApplicationChain::authenticated).await.unwrap();
    tokio::spawn(async move {
        while let Some(mut conn) = listener.accept().await {
            tokio::spawn(async move {
                while let Some(p) = conn.recv().await {
                    let mut reply = b"echo:".to_vec();
                    reply.extend_from_slice(&p);
                    if conn.send(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    s
}

async fn assert_echo(conn: &mut Connection, msg: &[u8]) {
    conn.send(msg.to_vec()).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(20), conn.recv())
        .await
        .expect("echo reply in time")
        .expect("connection open");
    assert_eq!(reply, [b"echo:", msg].concat());
}

/// Dial a service with a raw stream (no tapir-service on our side).
async fn raw_dial(w: &World, onion: &Onion) -> BoxStream {
    w.acn
        .connect(onion, CWTCH_PORT, &IsolationKey::new("raw"))
        .await
        .unwrap()
}

/// Read until the server closes the stream; returns how many bytes arrived before the close.
async fn read_until_closed(s: &mut BoxStream) -> usize {
    read_until_closed_within(s, Duration::from_secs(20)).await
}

async fn read_until_closed_within(s: &mut BoxStream, limit: Duration) -> usize {
    let mut total = 0;
    let mut buf = vec![0u8; PACKET_LEN];
    loop {
        match tokio::time::timeout(limit, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return total,
            Ok(Ok(n)) => total += n,
            Err(_) => panic!("server did not close the connection"),
        }
    }
}

/// Drive a sans-IO tapir connection over a raw stream until it is established or fails.
async fn drive(tc: &mut tapir::Connection, s: &mut BoxStream) -> Result<(), tapir::Error> {
    tc.start()?;
    let mut buf = vec![0u8; PACKET_LEN];
    loop {
        while let Some(p) = tc.poll_transmit() {
            s.write_all(&p).await.unwrap();
        }
        if tc.is_established() {
            return Ok(());
        }
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "peer closed during handshake");
        tc.receive(&buf[..n])?;
    }
}

fn rng() -> Box<rand_core::OsRng> {
    Box::new(rand_core::OsRng)
}

#[tokio::test]
async fn two_services_authenticate_in_both_directions_and_exchange_messages() {
    let w = world();
    let alice = echo_service(&w, 1, ServiceConfig::default()).await;
    let bob = echo_service(&w, 2, ServiceConfig::default()).await;

    let mut a2b = alice
        .connect(&bob.onion(), ApplicationChain::authenticated())
        .await
        .unwrap();
    assert_eq!(a2b.remote(), Some(&bob.onion()));
    assert_echo(&mut a2b, b"hello bob").await;
    assert_echo(&mut a2b, &vec![b'z'; packet::MAX_ENCRYPTED_PAYLOAD - 5]).await;
    // Bob sees Alice, authenticated.
    let bob_side = bob
        .connection_to(&alice.onion())
        .expect("bob holds a connection to alice");
    assert!(bob_side.has_capability(AUTHENTICATION_CAPABILITY));
    // A second dial to the same peer is refused while one is open.
    assert!(matches!(
        alice
            .connect(&bob.onion(), ApplicationChain::authenticated())
            .await,
        Err(Error::AlreadyConnected(_))
    ));
    drop(a2b);
    // Wait for both sides to forget the closed connection, then dial the other way.
    bob_side.closed().await;
    eventually(|| alice.connection_to(&bob.onion()).is_none()).await;
    let mut b2a = bob
        .connect(&alice.onion(), ApplicationChain::authenticated())
        .await
        .unwrap();
    assert_eq!(b2a.remote(), Some(&alice.onion()));
    assert_echo(&mut b2a, b"hello alice").await;
}

/// Poll a condition that has no readiness signal, for at most 20 s.
async fn eventually(mut cond: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in time");
}

#[tokio::test]
async fn oversize_payloads_are_refused_not_truncated() {
    let w = world();
    let bob = echo_service(&w, 2, ServiceConfig::default()).await;
    let alice = service(&w, 1, ServiceConfig::default());
    let mut c = alice
        .connect(&bob.onion(), ApplicationChain::authenticated())
        .await
        .unwrap();
    let err = c
        .send(vec![0u8; packet::MAX_ENCRYPTED_PAYLOAD + 1])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Tapir(tapir::Error::Packet(_))),
        "{err:?}"
    );
    assert_echo(&mut c, b"still fine").await;
}

async fn token_service(w: &World, server: Arc<TokenServer>) -> Service {
    let s = service(w, 40, ServiceConfig::default());
    let mut l = s
        .listen(move || ApplicationChain::token_server(server.clone()))
        .await
        .unwrap();
    // The token service has nothing to say after issuing: hold each connection until the
    // client closes it.
    tokio::spawn(async move {
        while let Some(mut c) = l.accept().await {
            tokio::spawn(async move { while c.recv().await.is_some() {} });
        }
    });
    s
}

#[tokio::test]
async fn a_token_client_obtains_tokens_through_pow_and_spends_them_once() {
    let w = world();
    let server = Arc::new(TokenServer::generate(&mut rand_core::OsRng));
    let tokens_svc = token_service(&w, server.clone()).await;
    // Server connections use a fresh ephemeral identity (spec §2.6).
    let client = Service::new(
        Arc::new(Identity::generate(&mut rand_core::OsRng)),
        w.acn.clone(),
        ServiceConfig::default(),
    );
    let mut conn = client
        .connect(
            &tokens_svc.onion(),
            ApplicationChain::token_client(server.public_key(), 10),
        )
        .await
        .unwrap();
    let tokens = conn.take_tokens();
    assert_eq!(tokens.len(), 10);
    drop(conn);

    let spent = MemorySpentTokens::new();
    let bound = |i: usize| format!("{{\"Ciphertext\":\"{i}\"}}{}", tokens_svc.onion());
    server
        .redeem(
            &tokens[0].spend(bound(0).as_bytes()),
            bound(0).as_bytes(),
            &spent,
        )
        .unwrap();
    // Spent twice: rejected.
    assert!(matches!(
        server.redeem(
            &tokens[0].spend(bound(0).as_bytes()),
            bound(0).as_bytes(),
            &spent
        ),
        Err(privacypass::Error::DoubleSpend)
    ));
    // Bound to other data (another message, or another server's onion): rejected, and the
    // token is not burnt by the failed attempt.
    let other_server = format!("{{\"Ciphertext\":\"1\"}}{}", identity(99).onion());
    assert!(matches!(
        server.redeem(
            &tokens[1].spend(other_server.as_bytes()),
            bound(1).as_bytes(),
            &spent
        ),
        Err(privacypass::Error::InvalidMac)
    ));
    server
        .redeem(
            &tokens[1].spend(bound(1).as_bytes()),
            bound(1).as_bytes(),
            &spent,
        )
        .unwrap();
}

/// A token server that swaps two signed tokens before proving.
struct ForgingServer(Arc<TokenServer>);
impl Application for ForgingServer {
    fn name(&self) -> &'static str {
        "forger"
    }
    fn start(&mut self, cx: &mut AppContext<'_>) -> Result<Step, tapir::Error> {
        cx.transcript().new_protocol(tapir::compat::TOKEN_PROTOCOL);
        Ok(Step::Continue)
    }
    fn receive(&mut self, cx: &mut AppContext<'_>, payload: &[u8]) -> Result<Step, tapir::Error> {
        let blinded = privacypass::blinded_batch_from_json(payload)?;
        let (t, r) = cx.transcript_and_rng();
        let mut batch = self.0.sign_batch(&blinded, t, r)?;
        batch.signed_tokens.swap(0, 1);
        cx.send(&batch.to_json())?;
        Ok(Step::Done)
    }
}

#[tokio::test]
async fn a_forged_batch_proof_fails_the_client_connection() {
    let w = world();
    let server = Arc::new(TokenServer::generate(&mut rand_core::OsRng));
    let forger = service(&w, 41, ServiceConfig::default());
    let srv = server.clone();
    let mut l = forger
        .listen(move || {
            ApplicationChain::new()
                .then(PowApp::new(), tapir::SUCCESSFUL_POW_CAPABILITY)
                .then_unchecked(ForgingServer(srv.clone()))
        })
        .await
        .unwrap();
    tokio::spawn(async move { while l.accept().await.is_some() {} });
    let client = service(&w, 42, ServiceConfig::default());
    let err = client
        .connect(
            &forger.onion(),
            ApplicationChain::token_client(server.public_key(), 5),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Tapir(tapir::Error::Token(privacypass::Error::BadProof))
        ),
        "{err:?}"
    );
}

/// An echo service, and a bystander connection to it from another service.
struct Bystander {
    bob: Service,
    _carol: Service,
    conn: Connection,
}

async fn with_bystander(w: &World) -> Bystander {
    let bob = echo_service(w, 2, ServiceConfig::default()).await;
    let carol = service(w, 3, ServiceConfig::default());
    let mut conn = carol
        .connect(&bob.onion(), ApplicationChain::authenticated())
        .await
        .unwrap();
    assert_echo(&mut conn, b"before").await;
    Bystander {
        bob,
        _carol: carol,
        conn,
    }
}

/// An attacker that presents a victim's long-term key without its secret.
struct Impersonator {
    victim: Arc<Identity>,
    ephemeral: Identity,
}
impl Application for Impersonator {
    fn name(&self) -> &'static str {
        "impersonator"
    }
    fn start(&mut self, cx: &mut AppContext<'_>) -> Result<Step, tapir::Error> {
        let m = AuthMessage {
            long_term: *self.victim.public_key().as_bytes(),
            ephemeral: *self.ephemeral.public_key().as_bytes(),
        };
        cx.send(&m.to_json())?;
        Ok(Step::Continue)
    }
    fn receive(&mut self, cx: &mut AppContext<'_>, payload: &[u8]) -> Result<Step, tapir::Error> {
        let m = AuthMessage::from_json(payload)?;
        let key = perform_3dh(
            cx.identity(),
            &self.ephemeral,
            &tapir::PublicKey::from_bytes(&m.long_term)?,
            &tapir::PublicKey::from_bytes(&m.ephemeral)?,
            true,
        )?;
        cx.set_session_key(key);
        cx.send(&[0u8; 120])?;
        // Pretend success so the raw driver returns; the server decides.
        cx.grant(AUTHENTICATION_CAPABILITY);
        Ok(Step::Done)
    }
}

#[tokio::test]
async fn a_peer_claiming_anothers_onion_is_closed_and_others_are_unaffected() {
    let w = world();
    let Bystander {
        bob,
        _carol,
        conn: mut bystander,
    } = with_bystander(&w).await;
    let victim = identity(9);
    let mut s = raw_dial(&w, &bob.onion()).await;
    let mut tc = tapir::Connection::new(
        identity(66),
        Direction::Outbound {
            remote: bob.onion(),
        },
        ApplicationChain::new().then(
            Impersonator {
                victim: victim.clone(),
                ephemeral: Identity::from_seed(&[67; 32]),
            },
            AUTHENTICATION_CAPABILITY,
        ),
        rng(),
    );
    drive(&mut tc, &mut s).await.unwrap();
    read_until_closed(&mut s).await;
    assert!(bob.connection_to(&victim.onion()).is_none());
    assert_echo(&mut bystander, b"after impersonation").await;
}

#[tokio::test]
async fn tampered_ciphertext_closes_only_that_connection() {
    let w = world();
    let Bystander {
        bob,
        _carol,
        conn: mut bystander,
    } = with_bystander(&w).await;
    let mut s = raw_dial(&w, &bob.onion()).await;
    let me = identity(50);
    let mut tc = tapir::Connection::new(
        me.clone(),
        Direction::Outbound {
            remote: bob.onion(),
        },
        ApplicationChain::authenticated(),
        rng(),
    );
    drive(&mut tc, &mut s).await.unwrap();
    eventually(|| bob.connection_to(&me.onion()).is_some()).await;
    tc.send(b"a payload").unwrap();
    let mut p = tc.poll_transmit().unwrap();
    p[4000] ^= 1;
    s.write_all(&p).await.unwrap();
    read_until_closed(&mut s).await;
    eventually(|| bob.connection_to(&me.onion()).is_none()).await;
    assert_echo(&mut bystander, b"after tampering").await;
}

#[tokio::test]
async fn truncated_oversize_and_garbage_handshakes_close_only_their_connection() {
    let w = world();
    let Bystander {
        bob,
        _carol,
        conn: mut bystander,
    } = with_bystander(&w).await;

    // Half a packet, then the client goes away.
    let mut s = raw_dial(&w, &bob.onion()).await;
    s.write_all(&vec![0u8; PACKET_LEN / 2]).await.unwrap();
    s.shutdown().await.unwrap();
    read_until_closed(&mut s).await;

    // A frame whose length prefix claims more than a packet holds.
    let mut s = raw_dial(&w, &bob.onion()).await;
    let mut p = vec![0u8; PACKET_LEN];
    p[0] = 0xff;
    p[1] = 0x7f;
    s.write_all(&p).await.unwrap();
    read_until_closed(&mut s).await;

    // Garbage JSON where the auth message belongs.
    let mut s = raw_dial(&w, &bob.onion()).await;
    s.write_all(&packet::encode_plain(b"{\"LongTermPublicKey\":42}").unwrap())
        .await
        .unwrap();
    read_until_closed(&mut s).await;

    assert_echo(&mut bystander, b"after garbage").await;
    assert_eq!(
        bob.connections().len(),
        1,
        "only the bystander is connected"
    );
}

#[tokio::test]
async fn a_wrong_pow_solution_closes_only_that_connection() {
    let w = world();
    let server = Arc::new(TokenServer::generate(&mut rand_core::OsRng));
    let tokens_svc = token_service(&w, server.clone()).await;
    let client = service(&w, 43, ServiceConfig::default());
    let mut good = client
        .connect(
            &tokens_svc.onion(),
            ApplicationChain::token_client(server.public_key(), 2),
        )
        .await
        .unwrap();

    let mut s = raw_dial(&w, &tokens_svc.onion()).await;
    let mut seed = vec![0u8; PACKET_LEN];
    s.read_exact(&mut seed).await.unwrap();
    let mut bogus = [0u8; 32];
    ChaCha20Rng::seed_from_u64(77).fill_bytes(&mut bogus);
    s.write_all(&packet::encode_plain(&bogus).unwrap())
        .await
        .unwrap();
    assert_eq!(
        read_until_closed(&mut s).await,
        0,
        "no tokens for a wrong solution"
    );

    // The honest client's connection is still open and its tokens are good.
    assert!(!good.handle().is_closed());
    let t = good.take_tokens();
    server
        .redeem(&t[0].spend(b"x"), b"x", &MemorySpentTokens::new())
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_handshake_that_stalls_is_closed_at_the_deadline() {
    let w = world();
    let config = ServiceConfig {
        handshake_timeout: Duration::from_secs(30),
        ..ServiceConfig::default()
    };
    let bob = echo_service(&w, 2, config).await;
    let mut s = raw_dial(&w, &bob.onion()).await;
    let start = tokio::time::Instant::now();
    // We say nothing. Bob sends his auth message, waits for ours, and gives up.
    assert_eq!(
        read_until_closed_within(&mut s, Duration::from_secs(600)).await,
        PACKET_LEN
    );
    assert!(
        start.elapsed() >= Duration::from_secs(30),
        "closed at the deadline, not before"
    );
}

/// The idle timeout counts whole packets: a peer that trickles a byte now and then (never
/// finishing a packet) is closed at the timeout, not kept open for ever.
#[tokio::test(start_paused = true)]
async fn a_trickle_of_bytes_does_not_keep_an_idle_connection_open() {
    let w = world();
    let config = ServiceConfig {
        idle_timeout: Some(Duration::from_secs(30)),
        ..ServiceConfig::default()
    };
    let bob = echo_service(&w, 2, config).await;
    let mut s = raw_dial(&w, &bob.onion()).await;
    let mut tc = tapir::Connection::new(
        identity(51),
        Direction::Outbound {
            remote: bob.onion(),
        },
        ApplicationChain::authenticated(),
        rng(),
    );
    drive(&mut tc, &mut s).await.unwrap();
    let start = tokio::time::Instant::now();
    let (mut r, mut wr) = tokio::io::split(s);
    let trickle = tokio::spawn(async move {
        // Half a packet, a byte every 10 s: 40 000 s if it were let.
        for _ in 0..PACKET_LEN / 2 {
            tokio::time::sleep(Duration::from_secs(10)).await;
            if wr.write_all(&[0]).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0u8; PACKET_LEN];
    loop {
        match tokio::time::timeout(Duration::from_secs(600), r.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => {}
            Err(_) => panic!("a trickling peer was kept open"),
        }
    }
    assert!(
        start.elapsed() >= Duration::from_secs(30),
        "closed before the timeout"
    );
    trickle.abort();
}

#[tokio::test]
async fn the_inbound_limit_drops_excess_connections() {
    let w = world();
    let config = ServiceConfig {
        max_inbound: 1,
        ..ServiceConfig::default()
    };
    let bob = echo_service(&w, 2, config).await;
    let alice = service(&w, 1, ServiceConfig::default());
    let mut first = alice
        .connect(&bob.onion(), ApplicationChain::authenticated())
        .await
        .unwrap();
    let mut s = raw_dial(&w, &bob.onion()).await;
    assert_eq!(
        read_until_closed(&mut s).await,
        0,
        "dropped on accept, before any packet"
    );
    assert_echo(&mut first, b"still served").await;
}

/// A raw connection that says nothing, returned once the service has taken it up (sent its
/// auth message).
async fn idle(w: &World, onion: &Onion) -> BoxStream {
    let mut s = raw_dial(w, onion).await;
    let mut first = [0u8; 1];
    assert_eq!(s.read(&mut first).await.unwrap(), 1, "admitted");
    s
}

/// When a service is full, the oldest handshake makes room; established connections are
/// never evicted, and may fill all but the handshake reserve (spec §7).
#[tokio::test]
async fn a_full_service_evicts_its_oldest_handshake_never_an_established_connection() {
    let w = world();
    let config = ServiceConfig {
        max_inbound: 4,
        handshake_reserve: 1,
        ..ServiceConfig::default()
    };
    let bob = echo_service(&w, 2, config).await;
    let alice = service(&w, 1, ServiceConfig::default());
    let mut first = alice
        .connect(&bob.onion(), ApplicationChain::authenticated())
        .await
        .unwrap();
    // Three idle handshakes fill the service; a fourth evicts the oldest of them.
    let mut idle1 = idle(&w, &bob.onion()).await;
    let _idle2 = idle(&w, &bob.onion()).await;
    let _idle3 = idle(&w, &bob.onion()).await;
    let _idle4 = idle(&w, &bob.onion()).await;
    assert_eq!(
        read_until_closed(&mut idle1).await,
        PACKET_LEN - 1,
        "evicted"
    );
    assert_echo(&mut first, b"still served").await;
    // Newcomers get in through the flood: each evicts the oldest idle handshake.
    let carol = service(&w, 3, ServiceConfig::default());
    let mut second = carol
        .connect(&bob.onion(), ApplicationChain::authenticated())
        .await
        .unwrap();
    let dave = service(&w, 4, ServiceConfig::default());
    let mut third = dave
        .connect(&bob.onion(), ApplicationChain::authenticated())
        .await
        .unwrap();
    // An echo means bob's side has established the connection too.
    assert_echo(&mut second, b"in").await;
    assert_echo(&mut third, b"in").await;
    let s = bob.inbound_stats();
    assert_eq!((s.established, s.handshaking, s.evicted), (3, 1, 3));
    // Established connections now fill their share (4 - 1 reserved): a fourth member's
    // handshake completes and is closed, while handshakes still find room.
    let eve = service(&w, 5, ServiceConfig::default());
    match eve
        .connect(&bob.onion(), ApplicationChain::authenticated())
        .await
    {
        Err(_) => {}
        Ok(mut c) => assert!(c.recv().await.is_none(), "closed by the full service"),
    }
    assert_eq!(bob.inbound_stats().refused, 1);
    let _idle5 = idle(&w, &bob.onion()).await;
    for c in [&mut first, &mut second, &mut third] {
        assert_echo(c, b"never evicted").await;
    }
    // When a member leaves, its slot is free for the next.
    drop(first);
    eventually(|| bob.inbound_stats().established == 2).await;
    let mut again = eve
        .connect(&bob.onion(), ApplicationChain::authenticated())
        .await
        .unwrap();
    assert_echo(&mut again, b"in").await;
}

#[tokio::test]
async fn simultaneous_dials_converge_on_one_connection_both_sides_agree_on() {
    let w = world();
    let alice = echo_service(&w, 1, ServiceConfig::default()).await;
    let bob = echo_service(&w, 2, ServiceConfig::default()).await;
    let (a_onion, b_onion) = (alice.onion(), bob.onion());
    let (ra, rb) = tokio::join!(
        alice.connect(&b_onion, ApplicationChain::authenticated()),
        bob.connect(&a_onion, ApplicationChain::authenticated())
    );
    // Whatever each dial returned, both sides end with exactly one connection to the other,
    // the same one (outbound on one side, inbound on the other), and of the connections that
    // were dialled exactly one is still open. Until the race is decided, each side may briefly
    // hold only its own dial, so wait for all three at once.
    let dialled: Vec<_> = [&ra, &rb]
        .into_iter()
        .filter_map(|r| r.as_ref().ok().map(|c| c.handle().clone()))
        .collect();
    eventually(|| {
        let (Some(a), Some(b)) = (alice.connection_to(&b_onion), bob.connection_to(&a_onion))
        else {
            return false;
        };
        alice.connections().len() == 1
            && bob.connections().len() == 1
            && a.is_outbound() != b.is_outbound()
            && dialled.iter().filter(|h| !h.is_closed()).count() == 1
    })
    .await;
    // When both dials completed (a true race), the survivor is the one the larger onion dialled.
    if let (Ok(a2b), Ok(b2a)) = (&ra, &rb) {
        let alice_dial_survived = !a2b.handle().is_closed();
        assert_eq!(alice_dial_survived, a_onion > b_onion);
        assert_eq!(b2a.handle().is_closed(), alice_dial_survived);
    }
    // The survivor carries messages: its dialler holds it as a `Connection`.
    let mut survivor = [ra, rb]
        .into_iter()
        .flatten()
        .find(|c| !c.handle().is_closed())
        .expect("the dialler of the surviving connection holds it");
    assert_echo(&mut survivor, b"one connection").await;
}

#[tokio::test]
async fn broadcast_reaches_only_connections_with_the_capability() {
    const SYNCED: Capability = Capability("TestSyncedCapability");
    let w = world();
    let hub = service(&w, 10, ServiceConfig::default());
    let mut l = hub.listen(ApplicationChain::authenticated).await.unwrap();
    let mut services = Vec::new();
    let mut clients = Vec::new();
    for seed in 11..14 {
        let c = service(&w, seed, ServiceConfig::default());
        clients.push(
            c.connect(&hub.onion(), ApplicationChain::authenticated())
                .await
                .unwrap(),
        );
        services.push(c);
    }
    let mut server_side = Vec::new();
    for _ in 0..3 {
        server_side.push(l.accept().await.unwrap());
    }
    // Mark the connections of clients 11 and 12 as synced; 13 is not.
    let synced = [identity(11).onion(), identity(12).onion()];
    for c in &server_side {
        if synced.contains(c.remote().unwrap()) {
            c.handle().grant(SYNCED);
        }
    }
    assert_eq!(hub.broadcast(b"news", SYNCED), 2);
    // Then a marker to everyone, directly. Queues are FIFO, so a synced client reads the news
    // first and an unsynced one reads the marker first.
    for c in &server_side {
        c.send(b"marker".to_vec()).await.unwrap();
    }
    for (seed, c) in (11u8..).zip(&mut clients) {
        let first = c.recv().await.unwrap();
        if seed < 13 {
            assert_eq!(first, b"news", "client {seed}");
            assert_eq!(c.recv().await.unwrap(), b"marker");
        } else {
            assert_eq!(first, b"marker", "client {seed} is not synced");
        }
    }
}

#[tokio::test]
async fn shutdown_closes_every_connection_and_stops_listening() {
    let w = world();
    let bob = echo_service(&w, 2, ServiceConfig::default()).await;
    let alice = service(&w, 1, ServiceConfig::default());
    let mut c = alice
        .connect(&bob.onion(), ApplicationChain::authenticated())
        .await
        .unwrap();
    assert_echo(&mut c, b"hi").await;
    tokio::time::timeout(Duration::from_secs(20), bob.shutdown())
        .await
        .expect("shutdown finishes");
    // Alice sees the close.
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(20), c.recv())
            .await
            .unwrap(),
        None
    );
    // Bob no longer accepts.
    let err = w
        .acn
        .connect(&bob.onion(), CWTCH_PORT, &IsolationKey::new("x"))
        .await
        .err();
    assert!(err.is_some(), "the listener is gone");
    assert!(matches!(
        bob.connect(&alice.onion(), ApplicationChain::authenticated())
            .await,
        Err(Error::Closed)
    ));
}

#[tokio::test]
async fn a_burst_larger_than_the_queues_is_delivered_in_order() {
    let w = world();
    let config = ServiceConfig {
        queue_len: 4,
        ..ServiceConfig::default()
    };
    let bob = service(&w, 2, config.clone());
    let mut l = bob.listen(ApplicationChain::authenticated).await.unwrap();
    let alice = service(&w, 1, config);
    let mut a = alice
        .connect(&bob.onion(), ApplicationChain::authenticated())
        .await
        .unwrap();
    let b = l.accept().await.unwrap();
    // Bob sends far more than any queue holds while Alice is not reading yet.
    let sender = tokio::spawn(async move {
        for i in 0u32..500 {
            b.send(i.to_be_bytes().to_vec()).await.unwrap();
        }
        b
    });
    for i in 0u32..500 {
        let p = tokio::time::timeout(Duration::from_secs(20), a.recv())
            .await
            .unwrap_or_else(|_| panic!("message {i} did not arrive"))
            .unwrap();
        assert_eq!(p, i.to_be_bytes());
    }
    let _b = sender.await.unwrap();
}

/// A network whose dials take a while (as a Tor dial that retries a failed circuit does)
/// before they succeed.
struct SlowDials {
    inner: Arc<dyn Acn>,
    delay: Duration,
}

#[async_trait::async_trait]
impl Acn for SlowDials {
    async fn listen(
        &self,
        identity: &Identity,
        port: u16,
    ) -> Result<Box<dyn connectivity::OnionListener>, connectivity::Error> {
        self.inner.listen(identity, port).await
    }
    async fn connect(
        &self,
        onion: &Onion,
        port: u16,
        isolation: &IsolationKey,
    ) -> Result<BoxStream, connectivity::Error> {
        tokio::time::sleep(self.delay).await;
        self.inner.connect(onion, port, isolation).await
    }
    fn status(&self) -> tokio::sync::watch::Receiver<connectivity::AcnStatus> {
        self.inner.status()
    }
    async fn restart(&self) -> Result<(), connectivity::Error> {
        self.inner.restart().await
    }
    async fn close(&self) {
        self.inner.close().await
    }
    fn is_anonymous(&self) -> bool {
        false
    }
    fn name(&self) -> &'static str {
        "slow"
    }
}

/// The dial belongs to the ACN, which bounds it by its own policy: a dial slower than the
/// handshake deadline still gets its full handshake time once the stream is open (the
/// deadline used to run from the start of the dial, cutting an ACN's retries short).
#[tokio::test]
async fn the_handshake_deadline_starts_when_the_dial_returns() {
    let w = world();
    let config = ServiceConfig {
        handshake_timeout: Duration::from_secs(2),
        ..ServiceConfig::default()
    };
    let server = echo_service(&w, 1, ServiceConfig::default()).await;
    let slow: Arc<dyn Acn> = Arc::new(SlowDials {
        inner: w.acn.clone(),
        delay: Duration::from_secs(3),
    });
    let client = Service::new(identity(2), slow, config);
    let mut conn = client
        .connect(&server.onion(), ApplicationChain::authenticated())
        .await
        .expect("a slow dial is not a handshake timeout");
    conn.send(b"hi".to_vec()).await.unwrap();
    assert_eq!(conn.recv().await.unwrap(), b"echo:hi");
}
