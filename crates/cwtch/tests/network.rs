//! The engine and the network's bootstrap status: `AcnStatus` events, and dialers that wake
//! up as soon as the network becomes ready instead of waiting out a long backoff.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use connectivity::{BoxStream, IsolationKey, OnionListener};
use cwtch::{Acn, AcnStatus, Event, Identity, LoopbackAcn, Onion};
use tokio::sync::watch;

/// The loopback network, but "bootstrapping": dials fail until `ready()` is called.
struct SlowStart {
    inner: LoopbackAcn,
    status: watch::Sender<AcnStatus>,
}

impl SlowStart {
    fn new(w: &World) -> Arc<SlowStart> {
        let (status, _) = watch::channel(AcnStatus::new(10, "Connecting to a relay"));
        Arc::new(SlowStart {
            inner: LoopbackAcn::new(w.net_dir()).unwrap(),
            status,
        })
    }

    fn ready(&self) {
        self.status.send_replace(AcnStatus::new(100, "Done"));
    }
}

#[async_trait]
impl Acn for SlowStart {
    async fn listen(
        &self,
        identity: &Identity,
        port: u16,
    ) -> Result<Box<dyn OnionListener>, connectivity::Error> {
        self.inner.listen(identity, port).await
    }

    async fn connect(
        &self,
        onion: &Onion,
        port: u16,
        isolation: &IsolationKey,
    ) -> Result<BoxStream, connectivity::Error> {
        let progress = self.status.borrow().progress;
        if progress < 100 {
            return Err(connectivity::Error::NotBootstrapped { progress });
        }
        self.inner.connect(onion, port, isolation).await
    }

    fn status(&self) -> watch::Receiver<AcnStatus> {
        self.status.subscribe()
    }

    async fn restart(&self) -> Result<(), connectivity::Error> {
        Ok(())
    }

    async fn close(&self) {
        self.inner.close().await
    }

    fn is_anonymous(&self) -> bool {
        false
    }

    fn name(&self) -> &'static str {
        "slow-start"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dialers_wake_when_the_network_becomes_ready() {
    let w = World::new();
    let mut bob = peer(&w, "bob", fast_config()).await;
    let b = bob.onion();

    // Alice's network is still bootstrapping, and her backoff is long.
    let acn = SlowStart::new(&w);
    let mut config = fast_config();
    config.dial_backoff_initial = Duration::from_secs(60);
    config.dial_backoff_max = Duration::from_secs(300);
    let cwtch = cwtch::Cwtch::open_with_config(w.home("alice"), acn.clone(), config)
        .await
        .unwrap();
    let mut events = Events::new(cwtch.events());
    let info = cwtch
        .create_profile("alice", &cwtch::Password::Default)
        .await
        .unwrap();
    let alice = cwtch
        .load_profile(info.profile_id.as_str(), &cwtch::Password::Default)
        .await
        .unwrap();
    assert_eq!(cwtch.acn_status().progress, 10);
    let c = alice.add_contact(&b).await.unwrap();
    alice.send_text(&c, "as soon as we can").await.unwrap();
    events
        .expect("a failed dial", |e| {
            matches!(
                e,
                Event::PeerStateChanged {
                    state: cwtch::ConnectionState::Failed,
                    ..
                }
            )
        })
        .await;

    // Bootstrap completes: the message goes out long before the 30-60 s backoff ends.
    acn.ready();
    events
        .expect(
            "ready",
            |e| matches!(e, Event::AcnStatus { progress: 100, summary } if summary == "Done"),
        )
        .await;
    let started = tokio::time::Instant::now();
    bob.expect("delivered", |e| matches!(e, Event::NewMessage { .. }))
        .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    cwtch.shutdown().await;
    bob.shutdown().await;
}
