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

    // A server behind a password of the user's: its config is encrypted with it, and its
    // directory's name does not say which server it is.
    create_server(&lib, "hunter2", "secret", false);
    let secret = events.wait("NewServer", |e| e.get("Description") == "secret");
    let secret_onion = secret.get("Onion").to_owned();
    assert_eq!(secret.get("StorageType"), "storage-password");
    assert_eq!(secret.get("Autostart"), "false");
    assert_eq!(secret.get("Running"), "false");
    let servers_dir = tmp.path().join("app/servers");
    let secret_dir = only_server_dir(&servers_dir);
    let dir_name = secret_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    assert!(
        dir_name.len() == 32 && dir_name.chars().all(|c| c.is_ascii_hexdigit()),
        "{dir_name}"
    );
    let config = std::fs::read(secret_dir.join("serverConfig.json")).expect("config");
    assert!(
        !config.windows(10).any(|w| w == b"privateKey"),
        "the config is on disk in plain text"
    );
    assert_eq!(
        std::fs::read(secret_dir.join("SALT")).expect("salt").len(),
        128
    );
    assert_eq!(events.app_errors_so_far(&lib), Vec::<String>::new());

    create_server(&lib, DEFAULT_PASSWORD, "test server", true);
    let new = events.wait("NewServer", |e| e.get("Description") == "test server");
    let onion = new.get("Onion").to_owned();
    let bundle = new.get("ServerBundle").to_owned();
    assert!(bundle.starts_with("server:"), "{bundle}");
    assert_eq!(new.get("Autostart"), "true");
    assert_eq!(new.get("StorageType"), "storage-default-password");
    let up = events.wait("ServerIntentUpdate", |e| e.get("Identity") == onion);
    assert_eq!(up.get("Intent"), "running");
    // Statistics: at launch, then when they change.
    let stats = events.wait("ServerStatsUpdate", |e| e.get("Identity") == onion);
    assert_eq!(
        (stats.get("TotalMessages"), stats.get("Connections")),
        ("0", "0")
    );

    // Attributes persist; servers are forgotten and loaded again (autostart: launched), each
    // by its own password only.
    lib.void3("c_SetServerAttribute", &onion, "description", "renamed");
    lib.void0("c_DestroyServers");
    assert_eq!(events.app_errors_so_far(&lib), Vec::<String>::new());
    lib.void1("c_LaunchServer", &onion);
    let errors = events.app_errors_so_far(&lib);
    assert!(errors.len() == 1, "forgotten: {errors:?}");
    events.barrier(&lib);
    events.forget("NewServer");
    lib.void1("c_LoadServers", DEFAULT_PASSWORD);
    let again = events.wait("NewServer", |e| e.get("Onion") == onion);
    assert_eq!(again.get("Description"), "renamed");
    events.wait("ServerIntentUpdate", |e| {
        e.get("Identity") == onion && e.get("Intent") == "running"
    });
    events.barrier(&lib);
    assert_eq!(
        events.pending("NewServer"),
        0,
        "the secret server loaded without its password"
    );
    lib.void1("c_LoadServers", "wrong");
    lib.void1("c_LoadServers", "hunter2");
    let secret = events.wait("NewServer", |_| true);
    assert_eq!(secret.get("Onion"), secret_onion);
    assert_eq!(secret.get("Description"), "secret");
    // Deleting takes the server's password (Go's check).
    lib.void2("c_DeleteServer", &secret_onion, DEFAULT_PASSWORD);
    let refused = events.wait("ServerDeleted", |_| true);
    assert_eq!(refused.get("Status"), "error");
    assert!(
        refused.get("Error").contains("passwords do not match"),
        "{refused:?}"
    );
    assert!(secret_dir.exists());
    lib.void2("c_DeleteServer", &secret_onion, "hunter2");
    let deleted = events.wait("ServerDeleted", |_| true);
    assert_eq!(deleted.get("Status"), "success");
    assert!(!secret_dir.exists());
    assert_eq!(
        events.app_errors_so_far(&lib).len(),
        1,
        "the refused delete"
    );

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
    events.wait("ServerStatsUpdate", |e| {
        e.get("Identity") == onion && e.get("Connections") == "1"
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
    events.wait("ServerStatsUpdate", |e| {
        e.get("Identity") == onion && e.get("TotalMessages") == "1"
    });
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
    assert_eq!(
        std::fs::read_dir(&servers_dir).map(Iterator::count).ok(),
        Some(0)
    );
    lib.void0("c_ShutdownCwtch");
}

/// The one directory under `servers`.
fn only_server_dir(servers: &std::path::Path) -> std::path::PathBuf {
    let dirs: Vec<_> = std::fs::read_dir(servers)
        .expect("servers directory")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}
