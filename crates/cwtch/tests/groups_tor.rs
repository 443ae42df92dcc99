//! A three-member group over real onion services: a private Tor network of real `tor`
//! processes (crates/testnet). The server's onion services are hosted through one tor client;
//! the three profiles host theirs, and dial the server and each other, through a second one.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Events, World};
use cwtch::connectivity::{ControlAuth, DialPolicy, TorAcn, TorConfig, TorTimeouts};
use cwtch::{Acn, Config, Cwtch, Event, Password, ProfileHandle};
use cwtch_server::{Server, ServerConfig};
use testnet::{TestClient, TestNet, TestNetConfig};

/// Onion-service steps (descriptor upload, first circuits) take seconds on a loaded machine.
const WAIT: Duration = Duration::from_secs(180);

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

struct Member {
    cwtch: Cwtch,
    profile: ProfileHandle,
    events: Events,
}

impl Member {
    async fn expect(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        self.events.expect_within(WAIT, what, pred).await
    }
}

async fn member(w: &World, name: &str, acn: Arc<dyn Acn>) -> Member {
    let mut config = Config::default();
    config.dial_backoff_initial = Duration::from_millis(500);
    config.dial_backoff_max = Duration::from_secs(5);
    config.service.handshake_timeout = Duration::from_secs(120);
    let cwtch = Cwtch::open_with_config(&w.home(name), acn, config)
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
    assert!(profile.wait_online(WAIT).await, "{name} online over Tor");
    Member {
        cwtch,
        profile,
        events,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_members_over_onion_services() {
    let net = TestNet::start(TestNetConfig::default()).await.unwrap();
    let w = World::new();
    let dir = w.home("server");
    cwtch_server::create_data_dir(&dir).unwrap();
    ServerConfig::generate(&mut rand_core::OsRng)
        .save_new(&dir)
        .unwrap();
    let server_acn = attach(&net.clients()[0]).await;
    let server = Server::start(ServerConfig::load(&dir).unwrap(), &dir, server_acn)
        .await
        .unwrap();
    let acn = attach(&net.clients()[1]).await;
    assert!(acn.is_anonymous());
    let mut alice = member(&w, "alice", acn.clone()).await;
    let mut bob = member(&w, "bob", acn.clone()).await;
    let mut carol = member(&w, "carol", acn.clone()).await;

    alice.profile.add_server(&server.bundle()).await.unwrap();
    let g = alice
        .profile
        .create_group("over tor", server.onion().as_str())
        .await
        .unwrap();
    // Bob joins from the pasted invite; Carol through an invite sent over P2P.
    let bg = bob.profile.join_group(&g.invite).await.unwrap();
    let carol_onion = carol.profile.onion().clone();
    alice
        .profile
        .add_contact(carol_onion.as_str())
        .await
        .unwrap();
    let alice_onion = alice.profile.onion().as_str().to_owned();
    let req = carol
        .expect("contact request", |e| {
            matches!(e, Event::ContactCreated { contact, request: true, .. } if *contact == alice_onion)
        })
        .await;
    let Event::ContactCreated {
        conversation_id, ..
    } = req
    else {
        unreachable!()
    };
    carol
        .profile
        .accept(cwtch::ConversationId(conversation_id))
        .await
        .unwrap();
    alice
        .profile
        .invite_to_group(g.conversation_id, carol_onion.clone())
        .await
        .unwrap();
    let inv = carol
        .expect("group invite", |e| matches!(e, Event::GroupInvite { .. }))
        .await;
    let Event::GroupInvite {
        conversation_id: cg,
        ..
    } = inv
    else {
        unreachable!()
    };
    carol
        .profile
        .accept_group(cwtch::ConversationId(cg))
        .await
        .unwrap();

    alice
        .profile
        .send_group_text(g.conversation_id, "alice over tor")
        .await
        .unwrap();
    bob.profile
        .send_group_text(bg.conversation_id, "bob over tor")
        .await
        .unwrap();
    carol
        .profile
        .send_group_text(cwtch::ConversationId(cg), "carol over tor")
        .await
        .unwrap();
    let is = |text: &'static str| move |e: &Event| matches!(e, Event::GroupMessage { text: Some(t), .. } if t == text);
    for (m, texts) in [
        (&mut alice, ["bob over tor", "carol over tor"]),
        (&mut bob, ["alice over tor", "carol over tor"]),
        (&mut carol, ["alice over tor", "bob over tor"]),
    ] {
        for t in texts {
            m.expect(t, is(t)).await;
        }
    }
    for (m, id) in [
        (&alice, g.conversation_id),
        (&bob, bg.conversation_id),
        (&carol, cwtch::ConversationId(cg)),
    ] {
        let n = m.profile.group_messages(id, 0, 100).await.unwrap().len();
        assert_eq!(n, 3, "each member has the three messages once");
    }
    for m in [alice, bob, carol] {
        m.cwtch.shutdown().await;
    }
    server.shutdown().await;
}
