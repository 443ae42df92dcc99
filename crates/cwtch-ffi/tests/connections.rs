//! Connections on demand through the C ABI, against a peer made with the `cwtch` library over
//! the loopback network: `c_DisconnectFromPeer`, `c_PeerWithOnion`, `c_ConfigureConnections`,
//! `c_DeactivatePeerEngine` / `c_ActivatePeerEngine`, and their bad input. The library peer
//! never dials on its own (its peers connections are off), so the bot's calls alone decide
//! whether the two are connected. (A separate process: the library has one global state.)

mod common;

use std::ffi::{c_char, c_int};
use std::sync::Arc;

use common::*;
use cwtch::Connections;

fn configure(lib: &Lib, profile: &str, listen: bool, peers: bool, servers: bool) {
    let f: unsafe extern "C" fn(Str, c_int, c_char, c_char, c_char) =
        lib.sym("c_ConfigureConnections");
    let p = s(profile);
    // SAFETY: the pair describes a live string.
    unsafe {
        f(
            p.0,
            p.1,
            c_char::from(listen),
            c_char::from(peers),
            c_char::from(servers),
        )
    }
}

/// The contact's `status` in `ContactsJson`, as `c_ReconnectCwtchForeground` sends it.
fn status_of(lib: &Lib, events: &mut Events, bot: &str, contact: &str) -> String {
    events.forget("NewPeer");
    lib.void0("c_ReconnectCwtchForeground");
    let again = events.wait("NewPeer", |e| {
        e.get("Identity") == bot && e.data.contains_key("Reload")
    });
    let contacts = json(again.get("ContactsJson"));
    contacts
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["onion"] == contact))
        .and_then(|c| c["status"].as_str())
        .unwrap_or_else(|| panic!("{contact} among {contacts}"))
        .to_owned()
}

#[test]
fn connections_on_demand_through_the_c_abi() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let net = tmp.path().join("net");
    let lib = Arc::new(Lib::load());
    let mut events = lib.events();
    start_on_loopback(&lib, &mut events, &tmp.path().join("app"), &net);
    lib.create_profile("bot", DEFAULT_PASSWORD);
    let bot = events.wait("NewPeer", |_| true).get("Identity").to_owned();
    events.wait("NetworkError", |e| {
        e.get("ProfileOnion") == bot && e.get("Status") == "Success"
    });

    // Alice (the library) does not dial on her own; she asks once, to send a request.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (alice_app, p) = library_peer(&rt, &net, "alice");
    let alice = rt.block_on(async {
        p.configure_connections(Connections {
            peers: false,
            ..Connections::ALL
        })
        .await
        .expect("configure");
        let c = p.add_contact(&bot).await.expect("add the bot");
        p.connect_to_peer(&c).await.expect("dial once");
        p
    });
    let a = alice.onion().as_str().to_owned();
    let created = events.wait("ContactCreated", |e| e.get("RemotePeer") == a);
    let cid: c_int = created.get("ConversationID").parse().expect("number");
    lib.void_conv("c_AcceptConversation", &bot, cid);
    let connected =
        |e: &GoEvent| e.get("RemotePeer") == a && e.get("ConnectionState") == "Authenticated";
    let disconnected =
        |e: &GoEvent| e.get("RemotePeer") == a && e.get("ConnectionState") == "Disconnected";
    events.wait("PeerStateChange", connected);

    // ---- c_DisconnectFromPeer: closed, and nobody dials again ----
    events.forget("PeerStateChange");
    lib.void2("c_DisconnectFromPeer", &bot, &a);
    let e = events.wait("PeerStateChange", disconnected);
    assert_eq!(e.get("ConversationID"), cid.to_string());
    assert_eq!(status_of(&lib, &mut events, &bot, &a), "Disconnected");

    // ---- c_PeerWithOnion: dialled at once ----
    lib.void2("c_PeerWithOnion", &bot, &a);
    events.wait("PeerStateChange", connected);
    assert_eq!(status_of(&lib, &mut events, &bot, &a), "Authenticated");
    assert_eq!(events.app_errors_so_far(&lib), Vec::<String>::new());

    // ---- c_ConfigureConnections: peers off closes what the bot dialled ----
    events.forget("PeerStateChange");
    configure(&lib, &bot, true, false, true);
    events.wait("PeerStateChange", disconnected);
    assert_eq!(status_of(&lib, &mut events, &bot, &a), "Disconnected");
    // Asked for, a contact is still dialled (once).
    lib.void2("c_PeerWithOnion", &bot, &a);
    events.wait("PeerStateChange", connected);

    // ---- c_DeactivatePeerEngine: everything closed, nothing dialled, not even on request ----
    events.forget("PeerStateChange");
    lib.void1("c_DeactivatePeerEngine", &bot);
    events.wait("PeerStateChange", disconnected);
    lib.void2("c_PeerWithOnion", &bot, &a);
    let errors = events.app_errors_so_far(&lib);
    assert!(
        errors.len() == 1
            && errors[0].starts_with("c_PeerWithOnion:")
            && errors[0].contains("deactivated"),
        "{errors:?}"
    );
    // The profile itself stays usable.
    let queued = lib.send_message(&bot, cid, r#"{"o":1,"d":"while away"}"#);
    assert!(queued["ID"].is_i64(), "{queued}");

    // ---- c_ActivatePeerEngine: listening again, with peers still off: no dial ----
    events.forget("NetworkError");
    lib.void1("c_ActivatePeerEngine", &bot);
    events.wait("NetworkError", |e| {
        e.get("ProfileOnion") == bot && e.get("Status") == "Success"
    });
    assert_eq!(status_of(&lib, &mut events, &bot, &a), "Disconnected");
    // Everything on again: the bot dials, and the waiting message goes out.
    configure(&lib, &bot, true, true, true);
    events.wait("PeerStateChange", connected);
    let queued_id = queued["ID"].as_i64().expect("ID").to_string();
    events.wait("IndexedAcknowledgement", |e| e.get("Index") == queued_id);

    // ---- bad input: errors, never a crash ----
    lib.void2("c_PeerWithOnion", &bot, "not an onion");
    lib.void2("c_DisconnectFromPeer", &bot, "not an onion");
    let stranger = cwtch::Identity::generate(&mut rand_core::OsRng).onion();
    lib.void2("c_PeerWithOnion", &bot, stranger.as_str());
    lib.void2("c_DisconnectFromPeer", "nobody", &a);
    lib.void1("c_DeactivatePeerEngine", "nobody");
    lib.void1("c_ActivatePeerEngine", "nobody");
    configure(&lib, "nobody", true, true, true);
    {
        let f: unsafe extern "C" fn(Str, c_int, Str, c_int) = lib.sym("c_PeerWithOnion");
        let p = s(&bot);
        let bad = b"\xff\xfe";
        // SAFETY: invalid UTF-8, then a null pointer with a length: refused before use.
        unsafe { f(p.0, p.1, bad.as_ptr() as Str, 2) };
        // SAFETY: as above.
        unsafe { f(p.0, p.1, std::ptr::null_mut(), 56) };
    }
    let errors = events.app_errors_so_far(&lib);
    let names = [
        "c_PeerWithOnion:",
        "c_DisconnectFromPeer:",
        "c_PeerWithOnion:",
        "c_DisconnectFromPeer:",
        "c_DeactivatePeerEngine:",
        "c_ActivatePeerEngine:",
        "c_ConfigureConnections:",
        "c_PeerWithOnion:",
        "c_PeerWithOnion:",
    ];
    assert_eq!(errors.len(), names.len(), "{errors:?}");
    for (e, n) in errors.iter().zip(names) {
        assert!(e.starts_with(n), "{errors:?}");
    }
    assert!(
        !errors[2].contains(stranger.as_str()),
        "no onion in errors: {errors:?}"
    );

    // ---- c_CreateProfile without autostart: loaded, but nothing goes online ----
    events.forget("NewPeer");
    events.forget("NetworkError");
    lib.create_profile_autostart("quiet", DEFAULT_PASSWORD, false);
    let quiet = events.wait("NewPeer", |e| e.get("name") == "quiet");
    assert_eq!(quiet.get("autostart"), "false");
    assert_eq!(quiet.get("Online"), "false");
    let q = quiet.get("Identity").to_owned();
    events.expect_none(std::time::Duration::from_millis(800), "NetworkError", |e| {
        e.data.get("ProfileOnion").map(String::as_str) == Some(q.as_str())
    });
    lib.void1("c_ActivatePeerEngine", &q);
    events.wait("NetworkError", |e| {
        e.get("ProfileOnion") == q && e.get("Status") == "Success"
    });
    // The bot, created with autostart, says so.
    events.forget("NewPeer");
    lib.void0("c_ReconnectCwtchForeground");
    let again = events.wait("NewPeer", |e| e.get("Identity") == bot);
    assert_eq!(again.get("autostart"), "true");

    lib.void0("c_ShutdownCwtch");
    rt.block_on(alice_app.shutdown());
}
