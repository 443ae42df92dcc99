//! A group through the C ABI from both sides, two profiles of one library on a server it
//! hosts (loopback): `c_LaunchServers`, `c_SendInviteMessage` with a group (overlay 101),
//! `NewGroup`, `c_AcceptConversation` of a group, a message across it (and
//! `c_GetMessageById` of it), a file shared in it (`c_ShareFile`, `c_DownloadFileDefaultLimit`
//! of a group), `c_DeleteConversation` of a group (left), `c_DeleteServerInfo`,
//! `c_StopServers`.

mod common;

use std::ffi::c_int;
use std::sync::Arc;

use common::*;

fn send_invite(lib: &Lib, profile: &str, c: c_int, target: c_int) -> serde_json::Value {
    let f: unsafe extern "C" fn(Str, c_int, c_int, c_int) -> Str = lib.sym("c_SendInviteMessage");
    let p = s(profile);
    // SAFETY: the pair describes a live string.
    json(&lib.take(unsafe { f(p.0, p.1, c, target) }))
}

fn server_list(lib: &Lib, events: &mut Events, profile: &str) -> serde_json::Value {
    lib.void1("c_GetServerInfoList", profile);
    let info = events.wait("UpdateServerInfo", |e| e.get("ProfileOnion") == profile);
    json(info.get("ServerList"))
}

#[test]
fn a_group_invite_accepted_used_and_left() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lib = Arc::new(Lib::load());
    let mut events = lib.events();
    start_on_loopback(
        &lib,
        &mut events,
        &tmp.path().join("app"),
        &tmp.path().join("net"),
    );

    // A server that does not start on its own; c_LaunchServers starts it.
    create_server(&lib, DEFAULT_PASSWORD, "club server", false);
    let new = events.wait("NewServer", |_| true);
    let (server, bundle) = (
        new.get("Onion").to_owned(),
        new.get("ServerBundle").to_owned(),
    );
    assert_eq!(new.get("Autostart"), "false");
    events.barrier(&lib);
    assert_eq!(events.pending("ServerIntentUpdate"), 0, "not autostarted");
    lib.void0("c_LaunchServers");
    events.wait("ServerIntentUpdate", |e| {
        e.get("Identity") == server && e.get("Intent") == "running"
    });

    // Two profiles; alice knows the server and bob.
    lib.create_profile("alice", DEFAULT_PASSWORD);
    let alice = events.wait("NewPeer", |_| true).get("Identity").to_owned();
    lib.create_profile("bob", DEFAULT_PASSWORD);
    let bob = events
        .wait("NewPeer", |e| e.get("Identity") != alice)
        .get("Identity")
        .to_owned();
    assert_eq!(
        lib.string2("c_ImportBundle", &alice, &bundle),
        "importBundle.success"
    );
    assert_eq!(
        lib.string2("c_ImportBundle", &alice, &bob),
        "importBundle.success"
    );
    let alice_bob: c_int = events
        .wait("ContactCreated", |e| {
            e.get("ProfileOnion") == alice && e.get("RemotePeer") == bob
        })
        .get("ConversationID")
        .parse()
        .expect("number");
    let bob_alice: c_int = events
        .wait("ContactCreated", |e| {
            e.get("ProfileOnion") == bob && e.get("RemotePeer") == alice
        })
        .get("ConversationID")
        .parse()
        .expect("number");
    lib.void_conv("c_AcceptConversation", &bob, bob_alice);

    // Alice's group; she invites bob.
    lib.void3("c_StartGroup", &alice, "club", &server);
    let created = events.wait("GroupCreated", |e| e.get("ProfileOnion") == alice);
    let gid: c_int = created.get("ConversationID").parse().expect("number");
    // Go's default picture of the group, chosen by its id.
    assert_default_picture(
        created.get("picture"),
        &default_group_picture_prefix(created.get("GroupID")),
    );
    // A group's name is a conversation attribute too: renaming it (for alice alone).
    let a = lib.get_conversation_attribute(&alice, gid, "profile.name");
    assert_eq!(
        (&a["Exists"], &a["Value"]),
        (&true.into(), &"club".into()),
        "{a}"
    );
    lib.set_conversation_attribute(&alice, gid, "profile.name", "the club");
    let a = lib.get_conversation_attribute(&alice, gid, "local.profile.name");
    assert_eq!(a["Value"], "the club", "{a}");
    // What makes the group is not an attribute to change.
    lib.set_conversation_attribute(&alice, gid, "legacy.groupkey", "AAAA");
    assert_eq!(
        events.app_errors_so_far(&lib),
        ["c_SetConversationAttribute: invalid group attribute key (the group's own)"]
    );
    let a = lib.get_conversation_attribute(&alice, gid, "legacy.groupkey");
    assert_ne!(a["Value"], "AAAA", "{a}");
    let sent = send_invite(&lib, &alice, alice_bob, gid);
    let overlay = json(sent["Message"].as_str().expect("Message"));
    assert_eq!(overlay["o"], 101, "a group invite: {sent}");
    assert!(
        overlay["d"]
            .as_str()
            .is_some_and(|d| d.starts_with("tofubundle:")),
        "{sent}"
    );

    // Bob gets it as NewGroup (named as alice names it now), not yet joined; accepts it
    // through c_AcceptConversation.
    let invited = events.wait("NewGroup", |e| e.get("ProfileOnion") == bob);
    assert_eq!(
        (invited.get("GroupServer"), invited.get("GroupName")),
        (server.as_str(), "the club")
    );
    assert!(invited.get("GroupInvite").starts_with("tofubundle:"));
    let bob_gid: c_int = invited.get("ConversationID").parse().expect("number");
    lib.void_conv("c_AcceptConversation", &bob, bob_gid);
    events.wait("ServerStateChange", |e| {
        e.get("ProfileOnion") == bob
            && e.get("GroupServer") == server
            && e.get("ConnectionState") == "Synced"
    });
    events.wait("ServerStateChange", |e| {
        e.get("ProfileOnion") == alice
            && e.get("GroupServer") == server
            && e.get("ConnectionState") == "Synced"
    });

    // A message across the group.
    lib.send_message(&alice, gid, r#"{"o":1,"d":"welcome bob"}"#);
    let got = events.wait("NewMessageFromGroup", |e| e.get("ProfileOnion") == bob);
    assert_eq!(got.get("ConversationID"), bob_gid.to_string());
    assert_eq!(got.get("RemotePeer"), alice);
    assert_eq!(got.get("Data"), r#"{"o":1,"d":"welcome bob"}"#);
    // The author's picture: alice's default (no image previews here).
    assert_default_picture(got.get("picture"), &default_profile_picture_prefix(&alice));
    let list = lib.get_messages(&bob, bob_gid, 0, 10);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let index: c_int = got.get("Index").parse().expect("number");
    let by_id = lib.get_message_by_id(&bob, bob_gid, index);
    assert_eq!(by_id["Message"], r#"{"o":1,"d":"welcome bob"}"#, "{by_id}");
    assert_eq!(by_id["PeerID"], alice.as_str(), "{by_id}");

    // The group's ACL: its members' entries; blocking alice's messages and unblocking them.
    assert_eq!(lib.acl(&bob, bob_gid), serde_json::json!({}));
    let blocked = serde_json::json!({&alice: {"Blocked": true, "Read": false, "Append": false,
        "AutoConnect": false, "ExchangeAttributes": false, "ShareFiles": false,
        "RenderImages": false}});
    lib.update_acl(&bob, bob_gid, &blocked);
    assert_eq!(events.app_errors_so_far(&lib), Vec::<String>::new());
    assert_eq!(lib.acl(&bob, bob_gid), blocked);
    lib.update_acl(
        &bob,
        bob_gid,
        &serde_json::json!({&alice: {"Blocked": false}}),
    );
    lib.update_acl(
        &bob,
        bob_gid,
        &serde_json::json!({"notanonion": {"Blocked": true}}),
    );
    let errors = events.app_errors_so_far(&lib);
    assert!(
        errors.len() == 1 && errors[0].contains("notanonion"),
        "{errors:?}"
    );
    assert_eq!(lib.acl(&bob, bob_gid), serde_json::json!({}));

    // A file shared in the group (c_ShareFile of a group) downloads from alice.
    let file = tmp.path().join("minutes.txt");
    let content = b"the club's minutes\n".repeat(700);
    std::fs::write(&file, &content).expect("write");
    let shared = {
        let f: unsafe extern "C" fn(Str, c_int, c_int, Str, c_int) -> Str = lib.sym("c_ShareFile");
        let (p, path) = (s(&alice), s(file.to_str().expect("utf-8")));
        // SAFETY: the pairs describe live strings.
        json(&lib.take(unsafe { f(p.0, p.1, gid, path.0, path.1) }))
    };
    let overlay = json(shared["Message"].as_str().expect("Message"));
    assert_eq!(overlay["o"], 200, "a file message: {shared}");
    let offer = events.wait("NewMessageFromGroup", |e| {
        e.get("ProfileOnion") == bob && json(e.get("Data"))["o"] == 200
    });
    let share = json(json(offer.get("Data"))["d"].as_str().expect("d"));
    let key = format!(
        "{}.{}",
        share["h"].as_str().expect("h"),
        share["n"].as_str().expect("n")
    );
    let dl = tmp.path().join("bob-downloads");
    std::fs::create_dir_all(&dl).expect("mkdir");
    {
        let f: unsafe extern "C" fn(Str, c_int, c_int, Str, c_int, Str, c_int, Str, c_int) =
            lib.sym("c_DownloadFileDefaultLimit");
        let target = dl.join("minutes.txt");
        let (p, path, manifest, k) = (s(&bob), s(target.to_str().expect("utf-8")), s(""), s(&key));
        // SAFETY: the pairs describe live strings.
        unsafe {
            f(
                p.0, p.1, bob_gid, path.0, path.1, manifest.0, manifest.1, k.0, k.1,
            )
        };
    }
    let done = events.wait("FileDownloaded", |e| {
        e.get("ProfileOnion") == bob && e.get("FileKey") == key
    });
    assert_eq!(std::fs::read(done.get("FilePath")).expect("read"), content);
    assert_eq!(events.app_errors_so_far(&lib), Vec::<String>::new());

    // The group in bob's ContactsJson: its default picture, its messages.
    lib.void0("c_ReconnectCwtchForeground");
    let again = events.wait("NewPeer", |e| {
        e.get("Identity") == bob && e.data.contains_key("Reload")
    });
    let conversations = json(again.get("ContactsJson"));
    let group = conversations
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["isGroup"] == true))
        .unwrap_or_else(|| panic!("the group among {conversations}"));
    let picture = group["picture"].as_str().unwrap_or_default();
    assert_default_picture(
        picture,
        &default_group_picture_prefix(created.get("GroupID")),
    );
    assert_eq!(group["defaultPicture"].as_str(), Some(picture), "{group}");
    assert_eq!(group["numMessages"], 2, "{group}");
    assert!(
        group["lastMsgTime"]
            .as_str()
            .and_then(|t| t.parse::<u64>().ok())
            .is_some_and(|t| t > 1_700_000_000),
        "{group}"
    );

    // Bob leaves: the group and its messages are gone from his profile.
    lib.void_conv("c_DeleteConversation", &bob, bob_gid);
    assert_eq!(events.app_errors_so_far(&lib), Vec::<String>::new());
    let after = lib.get_messages(&bob, bob_gid, 0, 10);
    assert!(
        after.as_array().is_none_or(Vec::is_empty),
        "left, yet: {after}"
    );

    // Bob forgets the server the invite brought.
    let before = server_list(&lib, &mut events, &bob);
    assert!(
        before
            .as_array()
            .is_some_and(|l| l.iter().any(|s| s["onion"] == server.as_str())),
        "{before}"
    );
    lib.void2("c_DeleteServerInfo", &bob, &server);
    assert_eq!(events.app_errors_so_far(&lib), Vec::<String>::new());
    let gone = server_list(&lib, &mut events, &bob);
    assert!(
        gone.as_array()
            .is_some_and(|l| l.iter().all(|s| s["onion"] != server.as_str())),
        "{gone}"
    );

    lib.void0("c_StopServers");
    events.wait("ServerIntentUpdate", |e| {
        e.get("Identity") == server && e.get("Intent") == "stopped"
    });
    lib.void0("c_ShutdownCwtch");
}
