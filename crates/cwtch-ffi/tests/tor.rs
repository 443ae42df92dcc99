//! The C ABI over a private Tor network (`testnet`: real `tor` processes on 127.0.0.1): the
//! library attaches to the network's first client through its control port, as Go's settings
//! `UseExternalTor` / `CustomControlPort` ask; a peer made with the `cwtch` library attaches
//! to the second client. Contact request, a message, the bot's answer.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use cwtch::connectivity::{ControlAuth, DialPolicy, TorAcn, TorConfig, TorTimeouts};
use cwtch::{Acn, Config, Cwtch, Event, Password};
use testnet::{TestNet, TestNetConfig};

/// Publishing and reaching onion services on a fresh private network takes a while (a
/// deadlock guard: every wait ends at its event).
const TOR_GUARD: Duration = Duration::from_secs(300);

#[test]
fn the_c_abi_over_a_private_tor_network() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let net = rt
        .block_on(TestNet::start(TestNetConfig::default()))
        .expect("private Tor network");
    let tmp = tempfile::tempdir().expect("tempdir");

    // The bot's app directory, with Go's settings for an external tor.
    let app_dir = tmp.path().join("bot");
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&app_dir)
            .expect("mkdir");
    }
    let settings = serde_json::json!({
        "Locale": "en", "Theme": "dark", "ThemeMode": "dark", "PreviousPid": -1,
        "ExperimentsEnabled": false, "Experiments": {}, "BlockUnknownConnections": false,
        "StreamerMode": false, "StateRootPane": 0, "FirstTime": false,
        "UIColumnModePortrait": "DualpaneMode.Single",
        "UIColumnModeLandscape": "DualpaneMode.CopyPortrait", "DownloadPath": "",
        "UseExternalTor": true,
        "CustomControlPort": net.clients()[0].control_addr().port(),
    });
    std::fs::write(app_dir.join("libcwtch-settings.json"), settings.to_string()).expect("settings");

    let lib = Arc::new(Lib::load());
    let mut events = lib.events();
    std::env::remove_var("CWTCH_NETWORK");
    assert_eq!(lib.start(app_dir.to_str().expect("utf-8"), ""), 0);
    let started = events.wait_within(TOR_GUARD, "CwtchStarted", |_| true);
    assert!(started.data.is_empty());
    // Tor's version, as `tor --version` of the same binary says it.
    let version = events.wait_within(TOR_GUARD, "ACNVersion", |_| true);
    let said = std::process::Command::new("tor")
        .arg("--version")
        .output()
        .expect("tor --version");
    let said = String::from_utf8_lossy(&said.stdout);
    let v = version.get("Data");
    assert!(
        v.starts_with(|c: char| c.is_ascii_digit()) && said.contains(&format!("version {v}")),
        "ACNVersion {v:?}, tor says {said:?}"
    );
    let s = events.wait("UpdateGlobalSettings", |_| true);
    assert_eq!(json(s.get("Data"))["UseExternalTor"], true, "kept");
    lib.create_profile("torbot", DEFAULT_PASSWORD);
    let bot = events.wait("NewPeer", |_| true).get("Identity").to_owned();
    events.wait_within(TOR_GUARD, "NetworkError", |e| {
        e.get("ProfileOnion") == bot && e.get("Status") == "Success"
    });

    // The peer, on the second client.
    let (alice_app, alice, mut alice_events) = rt.block_on(async {
        let mut timeouts = TorTimeouts::default();
        timeouts.publish = Duration::from_secs(120);
        let mut dial = DialPolicy::default();
        dial.max_attempts = 4;
        dial.attempt_timeout = Duration::from_secs(60);
        let client = &net.clients()[1];
        let acn: Arc<dyn Acn> = Arc::new(
            TorAcn::new(
                TorConfig::attach(
                    client.control_addr().to_string(),
                    ControlAuth::Cookie(Some(client.cookie_path.clone())),
                )
                .timeouts(timeouts)
                .dial_policy(dial),
            )
            .await
            .expect("attach"),
        );
        let mut config = Config::default();
        config.dial_backoff_initial = Duration::from_millis(500);
        config.dial_backoff_max = Duration::from_secs(5);
        config.service.handshake_timeout = Duration::from_secs(120);
        let app = Cwtch::open_with_config(tmp.path().join("alice"), acn, config)
            .await
            .expect("open");
        let events = app.events();
        let info = app
            .create_profile("alice", &Password::Default)
            .await
            .expect("create");
        let alice = app
            .load_profile(info.profile_id.as_str(), &Password::Default)
            .await
            .expect("load");
        assert!(alice.wait_online(TOR_GUARD).await, "alice online over Tor");
        (app, alice, events)
    });
    let alice_onion = alice.onion().as_str().to_owned();
    let contact = rt.block_on(alice.add_contact(&bot)).expect("add the bot");
    rt.block_on(alice.send_text(&contact, "hello over tor"))
        .expect("send");

    let created = events.wait_within(TOR_GUARD, "ContactCreated", |e| {
        e.get("RemotePeer") == alice_onion
    });
    let cid: i32 = created.get("ConversationID").parse().expect("number");
    let m = events.wait_within(TOR_GUARD, "NewMessageFromPeer", |e| {
        e.get("RemotePeer") == alice_onion
    });
    assert_eq!(
        json(m.get("Data")),
        serde_json::json!({"o": 1, "d": "hello over tor"})
    );
    lib.void_conv("c_AcceptConversation", &bot, cid);
    let sent = lib.send_message(&bot, cid, r#"{"o":1,"d":"echo over tor"}"#);
    let sent_id = sent["ID"].as_i64().expect("ID");
    rt.block_on(async {
        loop {
            let e = tokio::time::timeout(TOR_GUARD, alice_events.recv())
                .await
                .expect("the echo arrives")
                .expect("event stream");
            if let Event::NewMessage { text: Some(t), .. } = e {
                assert_eq!(t, "echo over tor");
                break;
            }
        }
    });
    let ack = events.wait_within(TOR_GUARD, "IndexedAcknowledgement", |e| {
        e.get("ProfileOnion") == bot
    });
    assert_eq!(ack.get("Index"), sent_id.to_string());

    lib.void0("c_ShutdownCwtch");
    rt.block_on(async {
        alice_app.shutdown().await;
        alice_app.acn().close().await;
        net.stop().await.expect("stop the network");
    });
}
