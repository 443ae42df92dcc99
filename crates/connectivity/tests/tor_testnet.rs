//! End to end over a private Tor network on 127.0.0.1 (`testnet`: 3 authorities, 2 relays,
//! 2 clients, all real `tor` processes): one `TorAcn` attached to a testnet client, one
//! launched by us as an extra client of the network.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use connectivity::{
    Acn, BoxStream, ControlAuth, DialPolicy, Error, IsolationKey, OnionListener, TorAcn, TorConfig,
    TorTimeouts, CWTCH_PORT,
};
use testnet::{TestNet, TestNetConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use torv3::Identity;

const STEP: Duration = Duration::from_secs(120);

fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "connectivity=debug,testnet=info,tor_testnet=info".into()),
        )
        .with_test_writer()
        .try_init();
}

fn timeouts() -> TorTimeouts {
    let mut t = TorTimeouts::default();
    t.publish = STEP;
    t
}

fn dial_policy() -> DialPolicy {
    let mut p = DialPolicy::default();
    p.max_attempts = 4;
    p.initial_backoff = Duration::from_millis(500);
    p.max_backoff = Duration::from_secs(2);
    p.attempt_timeout = Duration::from_secs(60);
    p
}

/// The network, a `TorAcn` attached to its first client, and one we launch ourselves.
async fn world(tmp: &tempfile::TempDir) -> (TestNet, TorAcn, TorAcn) {
    let net = TestNet::start(TestNetConfig::default()).await.unwrap();
    let client = &net.clients()[0];
    let attached = TorAcn::new(
        TorConfig::attach(
            client.control_addr().to_string(),
            ControlAuth::Cookie(Some(client.cookie_path.clone())),
        )
        .timeouts(timeouts())
        .dial_policy(dial_policy()),
    )
    .await
    .unwrap();
    let launched = TorAcn::new(
        TorConfig::launch(tmp.path().join("tor"))
            .extra_torrc_lines(net.client_torrc_lines())
            .timeouts(timeouts())
            .dial_policy(dial_policy()),
    )
    .await
    .unwrap();
    for acn in [&attached, &launched] {
        tokio::time::timeout(STEP, acn.wait_until_bootstrapped())
            .await
            .expect("bootstrap timed out")
            .unwrap();
    }
    (net, attached, launched)
}

async fn ping_pong(out: &mut BoxStream, inbound: &mut BoxStream, msg: &[u8]) {
    out.write_all(msg).await.unwrap();
    let mut buf = vec![0; msg.len()];
    tokio::time::timeout(STEP, inbound.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(buf, msg);
    let reply: Vec<u8> = msg.iter().rev().copied().collect();
    inbound.write_all(&reply).await.unwrap();
    let mut buf = vec![0; msg.len()];
    tokio::time::timeout(STEP, out.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(buf, reply);
}

async fn dial_and_talk(
    from: &TorAcn,
    listener: &mut Box<dyn OnionListener>,
    isolation: &str,
    msg: &[u8],
) -> Duration {
    let started = Instant::now();
    let mut out = tokio::time::timeout(
        STEP * 2,
        from.connect(listener.onion(), CWTCH_PORT, &IsolationKey::new(isolation)),
    )
    .await
    .expect("dial timed out")
    .unwrap();
    let took = started.elapsed();
    accept_and_talk(listener, &mut out, msg).await;
    took
}

/// The service side of a dial that connected: accept it, then one ping and pong.
async fn accept_and_talk(listener: &mut Box<dyn OnionListener>, out: &mut BoxStream, msg: &[u8]) {
    let mut inbound = tokio::time::timeout(STEP, listener.accept())
        .await
        .unwrap()
        .unwrap();
    ping_pong(out, &mut inbound, msg).await;
}

/// [`dial_and_talk`] after the service's tor restarted: the dialling tor may still hold the
/// old descriptor, and one attempt can sit for its whole limit on a circuit that went silent
/// (tor's own give-up timers on a test network are longer than ours). So: dial again, each
/// time on fresh circuits (a new isolation key), while the error is one a retry can cure,
/// until a deadline well past a descriptor's re-publication. Fails with the last error if
/// the service never comes back.
async fn dial_until_back(
    from: &TorAcn,
    listener: &mut Box<dyn OnionListener>,
    isolation: &str,
    msg: &[u8],
) -> Duration {
    let started = Instant::now();
    let deadline = started + STEP * 2;
    for attempt in 1.. {
        let key = IsolationKey::new(format!("{isolation}#{attempt}"));
        let left = deadline.saturating_duration_since(Instant::now());
        let e = match tokio::time::timeout(left, from.connect(listener.onion(), CWTCH_PORT, &key))
            .await
        {
            Ok(Ok(mut out)) => {
                let took = started.elapsed();
                accept_and_talk(listener, &mut out, msg).await;
                return took;
            }
            Ok(Err(e)) if e.is_retryable() && Instant::now() < deadline => e,
            Ok(Err(e)) => panic!("the service did not come back: {e:?}"),
            Err(_) => panic!("the service did not come back in {:?}", STEP * 2),
        };
        tracing::info!(attempt, error = ?e, "not back yet; dialling again on new circuits");
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onion_services_are_reachable_between_an_attached_and_a_launched_tor() {
    logs();
    let tmp = tempfile::tempdir().unwrap();
    let (net, attached, launched) = world(&tmp).await;
    let (alice, bob) = (Identity::from_seed(&[1; 32]), Identity::from_seed(&[2; 32]));

    // Hosted by the attached tor, dialled from ours.
    let published = Instant::now();
    let mut la = attached.listen(&alice, CWTCH_PORT).await.unwrap();
    let publish_a = published.elapsed();
    let dial_a = dial_and_talk(&launched, &mut la, "bob's profile", b"hello alice").await;

    // Hosted by ours, dialled from the attached one.
    let published = Instant::now();
    let mut lb = launched.listen(&bob, CWTCH_PORT).await.unwrap();
    let publish_b = published.elapsed();
    let dial_b = dial_and_talk(&attached, &mut lb, "alice's profile", b"hello bob").await;
    tracing::info!(?publish_a, ?dial_a, ?publish_b, ?dial_b, "e2e timings");

    // Stop hosting: the service goes away. Its descriptor stays cached at the dialer and on
    // the HSDirs, so tor keeps trying the dead introduction points until our attempt
    // timeout; 15 s without a connection is enough to tell.
    drop(la);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r = tokio::time::timeout(
        Duration::from_secs(15),
        launched.connect(&alice.onion(), CWTCH_PORT, &IsolationKey::new("another")),
    )
    .await;
    assert!(
        !matches!(r, Ok(Ok(_))),
        "a dropped listener must stop hosting"
    );
    tracing::info!(result = ?r.map(|r| r.err()), "dial after DEL_ONION");

    attached.close().await;
    launched.close().await;
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_onion_is_not_found() {
    logs();
    let tmp = tempfile::tempdir().unwrap();
    let (net, attached, launched) = world(&tmp).await;
    let nobody = Identity::from_seed(&[0x55; 32]).onion();
    for acn in [&launched, &attached] {
        let started = Instant::now();
        let r = tokio::time::timeout(
            STEP * 2,
            acn.connect(&nobody, CWTCH_PORT, &IsolationKey::new("k")),
        )
        .await
        .expect("dial timed out");
        match r {
            Err(Error::OnionNotFound { onion }) => assert_eq!(onion, nobody),
            Err(e) => panic!("expected OnionNotFound, got {e:?}"),
            Ok(_) => panic!("connected to nobody"),
        }
        tracing::info!(took = ?started.elapsed(), "not found");
    }
    attached.close().await;
    launched.close().await;
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_survives_a_restart_of_its_tor() {
    logs();
    let tmp = tempfile::tempdir().unwrap();
    let (net, attached, launched) = world(&tmp).await;
    let alice = Identity::from_seed(&[3; 32]);

    // Hosted by our launched tor, dialled from the attached one.
    let mut listener = launched.listen(&alice, CWTCH_PORT).await.unwrap();
    dial_and_talk(&attached, &mut listener, "before", b"before restart").await;
    let old_pid = launched.pid().unwrap();

    // Restart our tor: a new process, the service re-added with the same key.
    let restarted = Instant::now();
    launched.restart().await.unwrap();
    assert_ne!(launched.pid(), Some(old_pid));
    tokio::time::timeout(STEP, launched.wait_until_bootstrapped())
        .await
        .unwrap()
        .unwrap();
    let restart_took = restarted.elapsed();
    let dial = dial_until_back(&attached, &mut listener, "after", b"after restart").await;
    tracing::info!(?restart_took, ?dial, "restart timings");

    // The attached side's restart is a NEWNYM: it keeps working too.
    attached.restart().await.unwrap();
    let mut back = attached
        .listen(&Identity::from_seed(&[4; 32]), CWTCH_PORT)
        .await
        .unwrap();
    dial_and_talk(&launched, &mut back, "after newnym", b"and back").await;

    attached.close().await;
    launched.close().await;
    net.stop().await.unwrap();
}
