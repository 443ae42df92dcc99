//! Profile management through the C ABI: a password-protected profile is created, its
//! password changed, exported, deleted and imported again; contacts unblocked and deleted;
//! error paths of the group and server calls. (A separate process from `c_abi.rs`: the
//! library has one global state per process.)

mod common;

use std::sync::Arc;

use common::*;

#[test]
fn profiles_through_the_c_abi() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lib = Arc::new(Lib::load());
    let mut events = lib.events();
    std::env::set_var("CWTCH_NETWORK", "loopback");
    std::env::set_var("CWTCH_LOOPBACK_DIR", tmp.path().join("net"));
    let app_dir = tmp.path().join("app");
    assert_eq!(lib.start(app_dir.to_str().expect("utf-8"), ""), 0);
    events.wait("CwtchStarted", |_| true);

    lib.create_profile("guarded", "hunter2");
    let peer = events.wait("NewPeer", |_| true);
    assert_eq!(peer.get("tag"), "v1-userPassword");
    let onion = peer.get("Identity").to_owned();

    // Engines always run: activating a loaded profile is not an error; an unknown one is.
    lib.void1("c_ActivatePeerEngine", &onion);
    assert_eq!(events.app_errors_so_far(&lib), Vec::<String>::new());
    lib.void1("c_ActivatePeerEngine", "not-a-profile");
    let errors = events.app_errors_so_far(&lib);
    assert!(
        errors.len() == 1 && errors[0].starts_with("c_ActivatePeerEngine:"),
        "{errors:?}"
    );

    // Password change: the two new passwords must match; then the old one stops working.
    lib.void4("c_ChangePassword", &onion, "hunter2", "new-pass", "other");
    let errors = events.app_errors_so_far(&lib);
    assert!(
        errors.len() == 1 && errors[0].contains("differ"),
        "{errors:?}"
    );
    lib.void4(
        "c_ChangePassword",
        &onion,
        "hunter2",
        "new-pass",
        "new-pass",
    );
    assert_eq!(events.app_errors_so_far(&lib), Vec::<String>::new());

    // Export, then delete (the old password is refused), then import and load again.
    let export = tmp.path().join("guarded.tar.gz");
    let export = export.to_str().expect("utf-8");
    lib.void2("c_ExportProfile", &onion, export);
    assert_eq!(events.app_errors_so_far(&lib), Vec::<String>::new());
    assert!(std::path::Path::new(export).exists());
    lib.void2("c_ExportProfile", &onion, export);
    let errors = events.app_errors_so_far(&lib);
    assert!(errors.len() == 1, "the file exists: {errors:?}");
    lib.void2("c_DeleteProfile", &onion, "hunter2");
    let errors = events.app_errors_so_far(&lib);
    assert!(
        errors.len() == 1 && errors[0].starts_with("c_DeleteProfile:"),
        "{errors:?}"
    );
    lib.void2("c_DeleteProfile", &onion, "new-pass");
    let deleted = events.wait("PeerDeleted", |_| true);
    assert_eq!(deleted.get("Identity"), onion);
    let debug = json(&{
        let f: unsafe extern "C" fn() -> Str = lib.sym("c_GetDebugInfo");
        // SAFETY: no arguments.
        lib.take(unsafe { f() })
    });
    assert_eq!(debug["LoadedProfiles"], 0, "{debug}");
    assert_eq!(lib.string2("c_ImportProfile", export, "new-pass"), "");
    let back = events.wait("NewPeer", |_| true);
    assert_eq!(back.get("Identity"), onion);
    assert_eq!(back.get("Created"), "false");
    let missing = tmp.path().join("nothing-here");
    let err = lib.string2("c_ImportProfile", missing.to_str().expect("utf-8"), "x");
    assert!(!err.is_empty(), "importing a missing file fails");

    // A contact: blocked, unblocked, deleted.
    lib.create_profile("other", DEFAULT_PASSWORD);
    let other = events.wait("NewPeer", |e| e.get("name") == "other");
    let other = other.get("Identity");
    assert_eq!(
        lib.string2("c_ImportBundle", &onion, other),
        "importBundle.success"
    );
    let created = events.wait("ContactCreated", |e| {
        e.get("RemotePeer") == other && e.get("ProfileOnion") == onion
    });
    let cid: i32 = created.get("ConversationID").parse().expect("number");
    lib.void_conv("c_BlockConversation", &onion, cid);
    assert_eq!(lib.acl(&onion, cid)[other]["Blocked"], true);
    lib.void_conv("c_UnblockConversation", &onion, cid);
    let acl = lib.acl(&onion, cid);
    assert_eq!(
        (acl[other]["Blocked"].clone(), acl[other]["Read"].clone()),
        (false.into(), true.into())
    );
    // The ACL: blocked, accepted, and the contact's file and image permissions.
    let update_acl = |acl: serde_json::Value| lib.update_acl(&onion, cid, &acl);
    let mut acl = lib.acl(&onion, cid);
    acl[other]["Blocked"] = true.into();
    update_acl(acl.clone());
    assert_eq!(events.app_errors_so_far(&lib), Vec::<String>::new());
    assert_eq!(lib.acl(&onion, cid)[other]["Blocked"], true);
    acl[other]["Blocked"] = false.into();
    update_acl(acl.clone());
    assert_eq!(lib.acl(&onion, cid)[other]["Blocked"], false);
    // Files and images: allowed by default, refused and allowed again; stored with the
    // contact (the library's permissions say the same).
    let perms = |acl: &serde_json::Value| {
        (
            acl[other]["ShareFiles"].as_bool().expect("bool"),
            acl[other]["RenderImages"].as_bool().expect("bool"),
        )
    };
    assert_eq!(perms(&lib.acl(&onion, cid)), (true, true));
    acl[other]["RenderImages"] = false.into();
    update_acl(acl.clone());
    assert_eq!(perms(&lib.acl(&onion, cid)), (true, false));
    acl[other]["ShareFiles"] = false.into();
    update_acl(acl.clone());
    assert_eq!(perms(&lib.acl(&onion, cid)), (false, false));
    assert_eq!(lib.acl(&onion, cid)[other]["Read"], true, "still accepted");
    acl[other]["ShareFiles"] = true.into();
    acl[other]["RenderImages"] = true.into();
    update_acl(acl);
    assert_eq!(perms(&lib.acl(&onion, cid)), (true, true));
    assert_eq!(events.app_errors_so_far(&lib), Vec::<String>::new());
    update_acl(serde_json::json!({"someoneelse": {
        "Blocked": false, "Read": true, "Append": true, "AutoConnect": true,
        "ExchangeAttributes": true, "ShareFiles": false, "RenderImages": false
    }}));
    update_acl(serde_json::json!({other: {"Blocked": "no"}}));
    let errors = events.app_errors_so_far(&lib);
    assert!(
        errors.len() == 2
            && errors[0].contains("only the contact's entry")
            && errors[1].contains("not an access control list"),
        "{errors:?}"
    );
    lib.void_conv("c_DeleteConversation", &onion, cid);
    assert_eq!(events.app_errors_so_far(&lib), Vec::<String>::new());
    assert!(lib.acl(&onion, cid)["error"].is_string(), "deleted");

    // Groups and servers: errors are reported, not swallowed.
    lib.void3("c_StartGroup", &onion, "club", "notaserver");
    lib.void2("c_DeleteServerInfo", &onion, "notaserver");
    let errors = events.app_errors_so_far(&lib);
    assert!(
        errors.len() == 2
            && errors[0].starts_with("c_StartGroup:")
            && errors[1].starts_with("c_DeleteServerInfo:"),
        "{errors:?}"
    );

    lib.void0("c_ShutdownCwtch");
    assert_eq!(lib.started(), 0);
    // Started again on the same directory: the imported profile loads with its new password.
    assert_eq!(lib.start(app_dir.to_str().expect("utf-8"), ""), 0);
    events.wait("CwtchStarted", |_| true);
    lib.void1("c_LoadProfiles", "new-pass");
    let again = events.wait("NewPeer", |_| true);
    assert_eq!(again.get("Identity"), onion);
    lib.void0("c_ShutdownCwtch");
}
