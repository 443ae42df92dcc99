//! Helpers shared by the integration tests: a world (a temp dir with a loopback network
//! directory), peers (a Cwtch home with one loaded profile), and waiting for events.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cwtch::{Acn, Config, Cwtch, Event, LoopbackAcn, Password, ProfileHandle};
use tokio::sync::broadcast;

/// How long any single expected event may take.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct World {
    pub dir: tempfile::TempDir,
}

impl World {
    pub fn new() -> World {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        World {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn net_dir(&self) -> PathBuf {
        self.dir.path().join("net")
    }

    pub fn acn(&self) -> Arc<dyn Acn> {
        Arc::new(LoopbackAcn::new(self.net_dir()).unwrap())
    }

    pub fn home(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Short delays for tests.
pub fn fast_config() -> Config {
    let mut c = Config::default();
    c.dial_backoff_initial = Duration::from_millis(100);
    c.dial_backoff_max = Duration::from_millis(800);
    c.version_wait = Duration::from_secs(2);
    c.service.handshake_timeout = Duration::from_secs(15);
    c
}

/// A Cwtch home with one loaded profile, and an event receiver subscribed before loading.
pub struct Peer {
    pub cwtch: Cwtch,
    pub profile: ProfileHandle,
    pub events: Events,
    pub home: PathBuf,
}

/// An event receiver that remembers the events a wait skipped, so that a later wait for an
/// earlier event still finds it (the order in which two peers' events arrive is not fixed).
pub struct Events {
    rx: broadcast::Receiver<Event>,
    pending: Vec<Event>,
}

impl Events {
    pub fn new(rx: broadcast::Receiver<Event>) -> Events {
        Events {
            rx,
            pending: Vec::new(),
        }
    }

    /// The first event matching `pred`, seen earlier or arriving within [`WAIT`].
    pub async fn expect(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        self.expect_within(WAIT, what, pred).await
    }

    /// The first event matching `pred`, seen earlier or arriving within `wait`.
    pub async fn expect_within(
        &mut self,
        wait: Duration,
        what: &str,
        pred: impl Fn(&Event) -> bool,
    ) -> Event {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Ok(e)) if pred(&e) => return e,
                Ok(Ok(e)) => self.pending.push(e),
                Ok(Err(broadcast::error::RecvError::Lagged(n))) => panic!("lagged {n} events"),
                Ok(Err(broadcast::error::RecvError::Closed)) => panic!("events closed: {what}"),
                Err(_) => panic!("timed out waiting for {what}; seen: {:#?}", self.pending),
            }
        }
    }

    /// Assert that no event matching `pred` was seen or arrives within `d`.
    pub async fn expect_none(&mut self, d: Duration, what: &str, pred: impl Fn(&Event) -> bool) {
        if let Some(e) = self.pending.iter().find(|e| pred(e)) {
            panic!("unexpected {what}: {e:?}");
        }
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Ok(e)) if pred(&e) => panic!("unexpected {what}: {e:?}"),
                Ok(Ok(e)) => self.pending.push(e),
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => return,
            }
        }
    }

    /// Forget everything seen so far.
    pub fn clear(&mut self) {
        self.pending.clear();
        while self.rx.try_recv().is_ok() {}
    }
}

impl Peer {
    pub fn onion(&self) -> String {
        self.profile.onion().as_str().to_owned()
    }

    /// Wait for the first event matching `pred` (others are skipped).
    pub async fn expect(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        self.events.expect(what, pred).await
    }

    pub async fn expect_none(&mut self, d: Duration, what: &str, pred: impl Fn(&Event) -> bool) {
        self.events.expect_none(d, what, pred).await
    }

    pub async fn shutdown(self) {
        self.cwtch.shutdown().await;
    }
}

/// Create a profile named `name` in the home `home` (in the world) and load it.
pub async fn peer(w: &World, name: &str, config: Config) -> Peer {
    let home = w.home(name);
    let cwtch = Cwtch::open_with_config(&home, w.acn(), config)
        .await
        .unwrap();
    let info = cwtch
        .create_profile(name, &Password::Default)
        .await
        .unwrap();
    let events = Events::new(cwtch.events());
    let profile = cwtch
        .load_profile(info.profile_id.as_str(), &Password::Default)
        .await
        .unwrap();
    assert!(profile.wait_online(WAIT).await, "{name} online");
    Peer {
        cwtch,
        profile,
        events,
        home,
    }
}

/// Reopen the home at `home` and load its only profile.
pub async fn reopen(w: &World, home: &Path, config: Config) -> Peer {
    let cwtch = Cwtch::open_with_config(home, w.acn(), config)
        .await
        .unwrap();
    let infos = cwtch.list_profiles(&Password::Default).await.unwrap();
    assert_eq!(infos.len(), 1);
    let events = Events::new(cwtch.events());
    let profile = load_retrying(&cwtch, infos[0].profile_id.as_str()).await;
    assert!(profile.wait_online(WAIT).await, "online again");
    Peer {
        cwtch,
        profile,
        events,
        home: home.to_path_buf(),
    }
}

/// Load, retrying while a crashed run's storage thread still holds the profile lock.
pub async fn load_retrying(cwtch: &Cwtch, id: &str) -> ProfileHandle {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match cwtch.load_profile(id, &Password::Default).await {
            Ok(p) => return p,
            Err(cwtch::Error::ProfileLocked { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("load: {e}"),
        }
    }
}

/// Make `a` and `b` mutual, connected contacts: `a` adds `b`, `b` accepts the request.
pub async fn befriend(a: &mut Peer, b: &mut Peer) {
    let b_onion = b.onion();
    let a_onion = a.onion();
    a.profile.add_contact(&b_onion).await.unwrap();
    let req = b
        .expect("contact request", |e| {
            matches!(e, Event::ContactCreated { contact, request: true, .. } if *contact == a_onion)
        })
        .await;
    let Event::ContactCreated {
        conversation_id, ..
    } = req
    else {
        unreachable!()
    };
    b.profile
        .accept(cwtch::ConversationId(conversation_id))
        .await
        .unwrap();
    a.expect("connected", |e| {
        matches!(e, Event::PeerStateChanged { contact, state: cwtch::ConnectionState::Authenticated, .. } if *contact == b_onion)
    })
    .await;
}

pub fn onion(s: &str) -> cwtch::Onion {
    cwtch::Onion::parse(s).unwrap()
}
