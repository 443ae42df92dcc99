//! Hosting a server through the C ABI (`c_CreateServer`, `c_LaunchServer`, …, onto the
//! `cwtch-server` library) and using it from a profile of the same library: import its
//! bundle, start a group on it, sync, leave the server and join it again, post. Over the
//! loopback network.

mod common;

use std::ffi::c_int;
use std::sync::Arc;

use common::*;

#[test]
fn hosting_a_server_and_a_group_on_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lib = Arc::new(Lib::load());
    let mut events = lib.events();
    start_on_loopback(
        &lib,
        &mut events,
        &tmp.path().join("app"),
        &tmp.path().join("net"),
    );

    // Encrypted server storage is not pretended.
    create_server(&lib, "hunter2", "secret", true);
    let errors = events.app_errors_so_far(&lib);
    assert!(
        errors.len() == 1 && errors[0].contains("not yet"),
        "{errors:?}"
    );
    assert_eq!(events.pending("NewServer"), 0);

    create_server(&lib, DEFAULT_PASSWORD, "test server", true);
    let new = events.wait("NewServer", |_| true);
    let onion = new.get("Onion").to_owned();
    let bundle = new.get("ServerBundle").to_owned();
    assert!(bundle.starts_with("server:"), "{bundle}");
    assert_eq!(new.get("Description"), "test server");
    assert_eq!(new.get("Autostart"), "true");
    assert_eq!(new.get("StorageType"), "storage-default-password");
    let up = events.wait("ServerIntentUpdate", |e| e.get("Identity") == onion);
    assert_eq!(up.get("Intent"), "running");

    // Attributes persist; servers are forgotten and loaded again (autostart: launched).
    lib.void3("c_SetServerAttribute", &onion, "description", "renamed");
    lib.void0("c_DestroyServers");
    assert_eq!(events.app_errors_so_far(&lib), Vec::<String>::new());
    lib.void1("c_LaunchServer", &onion);
    let errors = events.app_errors_so_far(&lib);
    assert!(errors.len() == 1, "forgotten: {errors:?}");
    lib.void1("c_LoadServers", DEFAULT_PASSWORD);
    let again = events.wait("NewServer", |e| e.get("Onion") == onion);
    assert_eq!(again.get("Description"), "renamed");
    events.wait("ServerIntentUpdate", |e| {
        e.get("Identity") == onion && e.get("Intent") == "running"
    });

    // A profile uses it: bundle, group, sync, post.
    lib.create_profile("member", DEFAULT_PASSWORD);
    let member = events.wait("NewPeer", |_| true).get("Identity").to_owned();
    assert_eq!(
        lib.string2("c_ImportBundle", &member, &bundle),
        "importBundle.success"
    );
    lib.void3("c_StartGroup", &member, "club", &onion);
    let group = events.wait("GroupCreated", |e| e.get("GroupServer") == onion);
    assert_eq!(group.get("GroupName"), "club");
    let gid: c_int = group.get("ConversationID").parse().expect("number");
    events.wait("ServerStateChange", |e| {
        e.get("GroupServer") == onion && e.get("ConnectionState") == "Synced"
    });

    // Leaving the server, and joining it again.
    events.barrier(&lib);
    events.forget("ServerStateChange");
    lib.void2("c_DisconnectFromServer", &member, &onion);
    events.wait("ServerStateChange", |e| {
        e.get("GroupServer") == onion && e.get("ConnectionState") == "Disconnected"
    });
    events.barrier(&lib);
    events.forget("ServerStateChange");
    lib.void2("c_QueueJoinServer", &member, &onion);
    events.wait("ServerStateChange", |e| {
        e.get("GroupServer") == onion && e.get("ConnectionState") == "Synced"
    });
    lib.void2("c_QueueJoinServer", &member, "garbage");
    lib.void2("c_DisconnectFromServer", &member, "garbage");
    lib.void2("c_QueueJoinServer", "nobody", &onion);
    let errors = events.app_errors_so_far(&lib);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[0].starts_with("c_QueueJoinServer:"), "{errors:?}");
    assert!(
        errors[1].starts_with("c_DisconnectFromServer:"),
        "{errors:?}"
    );

    let sent = lib.send_message(&member, gid, r#"{"o":1,"d":"hi club"}"#);
    assert_eq!(sent["Message"], r#"{"o":1,"d":"hi club"}"#, "{sent}");
    let list = lib.get_messages(&member, gid, 0, 10);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    lib.void1("c_GetServerInfoList", &member);
    let info = events.wait("UpdateServerInfo", |_| true);
    let servers = json(info.get("ServerList"));
    assert_eq!(servers[0]["onion"], onion.as_str(), "{servers}");

    // Stop, delete.
    lib.void1("c_StopServer", &onion);
    events.wait("ServerIntentUpdate", |e| {
        e.get("Identity") == onion && e.get("Intent") == "stopped"
    });
    lib.void2("c_DeleteServer", &onion, DEFAULT_PASSWORD);
    let deleted = events.wait("ServerDeleted", |_| true);
    assert_eq!(
        (deleted.get("Identity"), deleted.get("Status")),
        (onion.as_str(), "success")
    );
    assert!(!tmp.path().join("app/servers").join(&onion).exists());
    lib.void0("c_ShutdownCwtch");
}
