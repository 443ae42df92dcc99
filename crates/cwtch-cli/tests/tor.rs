//! The conversation over a private Tor network on 127.0.0.1 (`testnet`: real `tor`
//! processes): two `cwtch run` attached to the network's two clients through their control
//! ports, then contact request, acceptance, and acknowledged messages both ways.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use testnet::{TestClient, TestNet, TestNetConfig};

/// Publishing and reaching an onion service on a fresh testnet takes a while.
const TOR_STEP: Duration = Duration::from_secs(300);

fn tor_args(c: &TestClient) -> Vec<String> {
    vec![
        "--network".into(),
        "tor".into(),
        "--tor-control".into(),
        c.control_addr().to_string(),
        "--tor-cookie-file".into(),
        c.cookie_path.to_str().unwrap().into(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_daemons_talk_over_a_private_tor_network() {
    let t0 = Instant::now();
    let net = TestNet::start(TestNetConfig::default()).await.unwrap();
    let t_net = t0.elapsed();
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let alice = acreate(&a_dir, "alice").await;
    let bob = acreate(&b_dir, "bob").await;

    let a_args = tor_args(&net.clients()[0]);
    let b_args = tor_args(&net.clients()[1]);
    let mut a = Daemon::spawn(
        &a_dir,
        &a_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let mut b = Daemon::spawn(
        &b_dir,
        &b_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    a.wait_for(TOR_STEP, |e| {
        e["event"] == "ProfileOnline" && e["profile"] == alice.as_str()
    })
    .await;
    b.wait_for(TOR_STEP, |e| {
        e["event"] == "ProfileOnline" && e["profile"] == bob.as_str()
    })
    .await;
    let t_online = t0.elapsed();

    // Contact request over Tor, accepted through the control socket.
    ok(&acwtch(&a_dir, &["contact", "add", &bob]).await);
    b.wait_for(TOR_STEP, |e| {
        e["event"] == "ContactCreated" && e["contact"] == alice.as_str() && e["request"] == true
    })
    .await;
    ok(&acwtch(&b_dir, &["contact", "accept", &alice]).await);

    // Messages both ways, each acknowledged.
    let wait = TOR_STEP.as_secs().to_string();
    let s = json(
        &acwtch(
            &a_dir,
            &["--json", "send", &bob, "hello over tor", "--wait", &wait],
        )
        .await,
    );
    assert_eq!(s["delivery"], "acknowledged", "{s}");
    let m = b
        .wait_for(TOR_STEP, |e| {
            e["event"] == "NewMessage" && e["text"] == "hello over tor"
        })
        .await;
    assert_eq!(m["contact"], alice.as_str());
    let s = json(
        &acwtch(
            &b_dir,
            &["--json", "send", &alice, "and back", "--wait", &wait],
        )
        .await,
    );
    assert_eq!(s["delivery"], "acknowledged", "{s}");
    a.wait_for(TOR_STEP, |e| {
        e["event"] == "NewMessage" && e["text"] == "and back"
    })
    .await;
    b.wait_for(TOR_STEP, |e| {
        e["event"] == "Acknowledged" && e["message_id"] == s["message_id"]
    })
    .await;

    let am = messages(&a_dir, &bob).await;
    assert_eq!(count_text(&am, "hello over tor", true), 1);
    assert_eq!(count_text(&am, "and back", false), 1);
    assert!(am
        .iter()
        .filter(|m| m["outgoing"] == true)
        .all(|m| m["state"] == "acknowledged"));
    let bm = messages(&b_dir, &alice).await;
    assert_eq!(bm.len(), 2);

    assert!(a.stop().await.success());
    assert!(b.stop().await.success());
    eprintln!(
        "tor test: network up in {:.1?}, profiles online after {:.1?}, conversation done after {:.1?}",
        t_net,
        t_online,
        t0.elapsed()
    );
    net.stop().await.unwrap();
}
