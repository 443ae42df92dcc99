//! `libCwtch.so` driven through its C ABI (loaded with `libloading`, called the way the
//! `libcwtch` bindings call it), against a peer made with the `cwtch` library over the
//! loopback network: bad input and calls before start, start, profiles, a contact request,
//! messages both ways with acknowledgement, message attributes (kept across a restart),
//! search, attributes, settings, reconnect, shutdown.
//!
//! One test function: the library has one global state per process.

mod common;

use std::ffi::c_int;
use std::sync::Arc;

use common::*;
use cwtch::{Cwtch, Event, LoopbackAcn, MemoryHome, Password};

/// The fields `libcwtch::structs::Settings` requires.
const SETTINGS_KEYS: [&str; 13] = [
    "Locale",
    "Theme",
    "ThemeMode",
    "PreviousPid",
    "ExperimentsEnabled",
    "Experiments",
    "BlockUnknownConnections",
    "StreamerMode",
    "StateRootPane",
    "FirstTime",
    "UIColumnModePortrait",
    "UIColumnModeLandscape",
    "DownloadPath",
];

#[test]
fn the_c_abi_end_to_end() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let net = tmp.path().join("net");
    let app_dir = tmp.path().join("bot");
    let lib = Arc::new(Lib::load());
    let mut events = lib.events();

    // ---- before c_StartCwtch: error values, no crash ----
    assert_eq!(lib.started(), 0);
    let a = lib.get_profile_attribute_raw(s("x"), s("profile.name"));
    assert_eq!(a["Exists"], false);
    assert!(
        a["Error"].as_str().expect("Error").contains("not started"),
        "{a}"
    );
    let m = lib.send_message("x", 1, r#"{"o":1,"d":"hi"}"#);
    assert!(
        m["error"].as_str().expect("error").contains("not started"),
        "{m}"
    );
    let b = lib.string2("c_ImportBundle", "x", "y");
    assert!(
        b.starts_with("importBundle.") && b.contains("not started"),
        "{b}"
    );
    // Null pointer with a length, negative length, invalid UTF-8.
    let a = lib.get_profile_attribute_raw((std::ptr::null_mut(), 5), s("k"));
    assert!(
        a["Error"].as_str().expect("Error").contains("null pointer"),
        "{a}"
    );
    let a = lib.get_profile_attribute_raw(s("p"), (b"k".as_ptr() as Str, -3));
    assert!(
        a["Error"]
            .as_str()
            .expect("Error")
            .contains("negative length"),
        "{a}"
    );
    let bad = b"\xff\xfe";
    let a = lib.get_profile_attribute_raw(s("p"), (bad.as_ptr() as Str, 2));
    assert!(a["Error"].as_str().expect("Error").contains("UTF-8"), "{a}");
    {
        let f: unsafe extern "C" fn(Str, c_int, Str, c_int) -> c_int = lib.sym("c_StartCwtch");
        // SAFETY: a null pointer with a length: refused before any read.
        let r = unsafe { f(std::ptr::null_mut(), 4, std::ptr::null_mut(), 0) };
        assert_eq!(r, -1);
    }
    assert_eq!(lib.started(), 0, "a refused start does not start");
    let e = events.wait("AppError", |e| e.get("Error").starts_with("c_StartCwtch:"));
    assert!(e.get("Error").contains("null pointer"), "{e:?}");
    // c_FreePointer: null and foreign pointers are ignored.
    let free: unsafe extern "C" fn(Str) = lib.sym("c_FreePointer");
    let mut foreign = *b"not ours\0";
    // SAFETY: the library must ignore both (it frees only pointers it handed out).
    unsafe {
        free(std::ptr::null_mut());
    }
    // SAFETY: as above.
    unsafe { free(foreign.as_mut_ptr().cast()) };
    // A void call before start reports an AppError on the bus.
    lib.void1("c_LoadProfiles", DEFAULT_PASSWORD);
    let e = events.wait("AppError", |e| e.get("Error").starts_with("c_LoadProfiles"));
    assert!(e.get("Error").contains("not started"), "{e:?}");

    // ---- start on the loopback network ----
    std::env::set_var("CWTCH_NETWORK", "loopback");
    std::env::set_var("CWTCH_LOOPBACK_DIR", &net);
    assert_eq!(lib.start(app_dir.to_str().expect("utf-8 path"), ""), 0);
    let settings = events.wait("UpdateGlobalSettings", |_| true);
    let sv = json(settings.get("Data"));
    for k in SETTINGS_KEYS {
        assert!(sv.get(k).is_some(), "settings lack {k}: {sv}");
    }
    events.wait("CwtchStarted", |_| true);
    assert_eq!(lib.started(), 1);
    assert_eq!(
        lib.start(app_dir.to_str().expect("utf-8 path"), ""),
        1,
        "already started"
    );

    // No profile yet: Go's "Loaded 0 profiles" (cwtch-imp creates its profile on it).
    lib.void1("c_LoadProfiles", DEFAULT_PASSWORD);
    events.wait("AppError", |e| e.get("Error") == "Loaded 0 profiles");

    lib.create_profile("echobot", DEFAULT_PASSWORD);
    let peer = events.wait("NewPeer", |_| true);
    assert_parsable(&peer);
    assert_eq!(peer.get("Created"), "true");
    assert_eq!(peer.get("name"), "echobot");
    assert_eq!(peer.get("tag"), "v1-defaultPassword");
    assert_eq!(json(peer.get("ContactsJson")), serde_json::json!([]));
    let bot = peer.get("Identity").to_owned();
    assert_eq!(bot.len(), 56, "an onion: {bot}");
    // No picture of its own yet: Go's default for its onion, twice.
    assert_default_picture(
        peer.get("defaultPicture"),
        &default_profile_picture_prefix(&bot),
    );
    assert_eq!(peer.get("picture"), peer.get("defaultPicture"));
    events.wait("NetworkError", |e| {
        e.get("ProfileOnion") == bot && e.get("Status") == "Success"
    });

    // ---- a peer made with the cwtch library sends a contact request and a message ----
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let acn = Arc::new(LoopbackAcn::new(&net).expect("loopback"));
    let alice_app = rt.block_on(Cwtch::in_memory(MemoryHome::new(), acn));
    let mut alice_events = alice_app.events();
    let alice = rt.block_on(async {
        let info = alice_app
            .create_profile("alice", &Password::Default)
            .await
            .expect("create");
        alice_app
            .load_profile(info.profile_id.as_str(), &Password::Default)
            .await
            .expect("load")
    });
    let alice_onion = alice.onion().as_str().to_owned();
    // Alice has a profile picture (the bot learns its key when it accepts her, and fetches
    // it once the image previews experiment is on, below).
    let png = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=")
            .expect("base64")
    };
    let alice_png = tmp.path().join("alice.png");
    std::fs::write(&alice_png, &png).expect("write");
    let (alice_picture_key, _) = rt
        .block_on(alice.set_profile_image(&alice_png))
        .expect("alice's picture");
    let contact = rt
        .block_on(alice.add_contact(&bot))
        .expect("alice adds the bot");
    rt.block_on(alice.send_text(&contact, "hello bot"))
        .expect("send");

    let created = events.wait("ContactCreated", |e| e.get("RemotePeer") == alice_onion);
    assert_parsable(&created);
    assert_eq!(created.get("ProfileOnion"), bot);
    assert_eq!(created.get("accepted"), "false", "a contact request");
    let alice_default = created.get("defaultPicture").to_owned();
    assert_default_picture(
        &alice_default,
        &default_profile_picture_prefix(&alice_onion),
    );
    assert_eq!(created.get("picture"), alice_default);
    let acl = json(created.get("accessControlList"));
    assert_eq!(acl[&alice_onion]["Blocked"], false, "{acl}");
    let cid: c_int = created.get("ConversationID").parse().expect("number");
    let msg = events.wait("NewMessageFromPeer", |e| e.get("RemotePeer") == alice_onion);
    assert_parsable(&msg);
    assert_eq!(msg.get("ConversationID"), cid.to_string());
    assert_eq!(
        json(msg.get("Data")),
        serde_json::json!({"o": 1, "d": "hello bot"})
    );
    assert!(msg.get("TimestampReceived").ends_with('Z'), "{msg:?}");
    assert_eq!(
        msg.get("picture"),
        alice_default,
        "previews off: the default"
    );

    // ---- the bot accepts and answers; the answer arrives and is acknowledged ----
    lib.void_conv("c_AcceptConversation", &bot, cid);
    let sent = lib.send_message(&bot, cid, r#"{"o":1,"d":"echo: hello bot"}"#);
    assert_eq!(
        sent["Message"], r#"{"o":1,"d":"echo: hello bot"}"#,
        "{sent}"
    );
    assert_eq!(sent["PeerID"], bot.as_str());
    let sent_id = sent["ID"].as_i64().expect("ID");
    rt.block_on(async {
        loop {
            let e = tokio::time::timeout(GUARD, alice_events.recv())
                .await
                .expect("alice gets the echo")
                .expect("event stream");
            if let Event::NewMessage { text: Some(t), .. } = e {
                assert_eq!(t, "echo: hello bot");
                break;
            }
        }
    });
    let ack = events.wait("IndexedAcknowledgement", |e| e.get("ProfileOnion") == bot);
    assert_parsable(&ack);
    assert_eq!(ack.get("ConversationID"), cid.to_string());
    assert_eq!(ack.get("Index"), sent_id.to_string());
    let state = events.wait("PeerStateChange", |e| {
        e.get("RemotePeer") == alice_onion && e.get("ConnectionState") == "Authenticated"
    });
    assert_parsable(&state);

    // ---- messages read back ----
    let list = lib.get_messages(&bot, cid, 0, 10);
    let list = list.as_array().expect("an array");
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0]["ID"].as_i64(), Some(sent_id), "newest first");
    assert_eq!(list[0]["Acknowledged"], true);
    assert_eq!(list[1]["PeerID"], alice_onion.as_str());
    assert_eq!(list[1]["Message"], r#"{"o":1,"d":"hello bot"}"#);
    let by_id = lib.get_message_by_id(&bot, cid, sent_id as c_int);
    assert_eq!(by_id["ContentHash"], list[0]["ContentHash"]);
    let hash = list[1]["ContentHash"].as_str().expect("hash").to_owned();
    let by_hash = lib.get_message_by_hash(&bot, cid, &hash);
    assert_eq!(by_hash["ID"], list[1]["ID"]);
    let missing = lib.get_message_by_id(&bot, cid, 999);
    assert!(missing["error"].is_string(), "{missing}");
    let older = lib.get_messages(&bot, cid, 1, 10);
    assert_eq!(
        older.as_array().map(Vec::len),
        Some(1),
        "index skips the newest"
    );
    let bad_conv = lib.send_message(&bot, 4242, r#"{"o":1,"d":"x"}"#);
    assert!(bad_conv["error"].is_string(), "{bad_conv}");
    let not_overlay = lib.send_message(&bot, cid, "plain text");
    assert!(not_overlay["error"]
        .as_str()
        .expect("error")
        .contains("overlay"));

    // ---- message attributes: set, shown in the message, refused for bad input ----
    let alice_msg_id = list[1]["ID"].as_i64().expect("ID") as c_int;
    update_message_attribute(&lib, &bot, cid, 0, alice_msg_id, "starred", "yes");
    let m = lib.get_message_by_id(&bot, cid, alice_msg_id);
    assert_eq!(m["Attributes"]["starred"], "yes", "{m}");
    assert_eq!(m["Attributes"]["author"], alice_onion.as_str(), "{m}");
    assert_eq!(events.app_errors_so_far(&lib), Vec::<String>::new());
    update_message_attribute(&lib, &bot, cid, 1, alice_msg_id, "starred", "x"); // channel 1
    update_message_attribute(&lib, &bot, cid, 0, alice_msg_id, "ack", "true"); // the library's
    update_message_attribute(&lib, &bot, cid, 0, alice_msg_id, "rs.x", "y"); // the library's
    update_message_attribute(&lib, &bot, 4242, 0, alice_msg_id, "starred", "x");
    update_message_attribute(&lib, &bot, cid, 0, 4242, "starred", "x");
    update_message_attribute(&lib, "not-a-profile", cid, 0, alice_msg_id, "starred", "x");
    {
        let f: unsafe extern "C" fn(Str, c_int, c_int, c_int, c_int, Str, c_int, Str, c_int) =
            lib.sym("c_UpdateMessageAttribute");
        let (p, v) = (s(&bot), s("x"));
        let bad = b"\xff";
        // SAFETY: a key of invalid UTF-8, then a null key with a length: refused before use.
        unsafe {
            f(
                p.0,
                p.1,
                cid,
                0,
                alice_msg_id,
                bad.as_ptr() as Str,
                1,
                v.0,
                v.1,
            )
        };
        // SAFETY: as above.
        unsafe {
            f(
                p.0,
                p.1,
                cid,
                0,
                alice_msg_id,
                std::ptr::null_mut(),
                3,
                v.0,
                v.1,
            )
        };
    }
    let errors = events.app_errors_so_far(&lib);
    assert_eq!(errors.len(), 8, "{errors:?}");
    assert!(
        errors
            .iter()
            .all(|e| e.starts_with("c_UpdateMessageAttribute:")),
        "{errors:?}"
    );
    let m = lib.get_message_by_id(&bot, cid, alice_msg_id);
    assert_eq!(m["Attributes"]["ack"], "false", "unchanged: {m}");

    // ---- search: the matching message, not the others ----
    let id = lib.string2("c_SearchConversations", &bot, "HELLO BOT");
    assert!(!id.is_empty(), "a search id");
    let hit = events.wait("SearchResult", |e| {
        e.get("SearchID") == id && e.get("Index") == alice_msg_id.to_string()
    });
    assert_eq!(hit.get("ProfileOnion"), bot);
    assert_eq!(hit.get("ConversationID"), cid.to_string());
    assert_eq!(hit.get("RowIndex"), "1", "the second newest");
    // "echo: hello bot" matches too; "plain text" was refused, never stored.
    let hit2 = events.wait("SearchResult", |e| {
        e.get("SearchID") == id && e.get("Index") == sent_id.to_string()
    });
    assert_eq!(hit2.get("RowIndex"), "0", "the newest");
    let done = events.wait("SearchFinished", |e| e.get("SearchID") == id);
    assert_eq!(done.get("NumResults"), "2", "{:?}", events.seen);
    let none = lib.string2("c_SearchConversations", &bot, "nothing like this");
    let done = events.wait("SearchFinished", |e| e.get("SearchID") == none);
    assert_eq!(done.get("NumResults"), "0");
    assert_eq!(events.pending("SearchResult"), 0);
    assert_eq!(
        lib.string2("c_SearchConversations", &bot, ""),
        "",
        "empty pattern"
    );
    assert_eq!(lib.string2("c_SearchConversations", "nobody", "x"), "");
    {
        let f: unsafe extern "C" fn(Str, c_int, Str, c_int) -> Str =
            lib.sym("c_SearchConversations");
        let p = s(&bot);
        let bad = b"\xff\xfe";
        // SAFETY: a pattern of invalid UTF-8, then a null one with a length: refused.
        let r = lib.take(unsafe { f(p.0, p.1, bad.as_ptr() as Str, 2) });
        assert_eq!(r, "");
        // SAFETY: as above.
        let r = lib.take(unsafe { f(p.0, p.1, std::ptr::null_mut(), 4) });
        assert_eq!(r, "");
    }

    // ---- files, both ways ----
    let files = tmp.path().join("files");
    std::fs::create_dir_all(&files).expect("mkdir");
    let from_bot = files.join("from-bot.txt");
    std::fs::write(&from_bot, b"a file the bot shares\n".repeat(500)).expect("write");
    let share = {
        let f: unsafe extern "C" fn(Str, c_int, c_int, Str, c_int) -> Str = lib.sym("c_ShareFile");
        let (p, path) = (s(&bot), s(from_bot.to_str().expect("utf-8")));
        // SAFETY: the pairs describe live strings.
        json(&lib.take(unsafe { f(p.0, p.1, cid, path.0, path.1) }))
    };
    let overlay = json(share["Message"].as_str().expect("Message"));
    assert_eq!(overlay["o"], 200, "a file message: {share}");
    // Conversation -1: the profile's picture (checked as an image; its key published).
    {
        let f: unsafe extern "C" fn(Str, c_int, c_int, Str, c_int) -> Str = lib.sym("c_ShareFile");
        let share_as = |conversation: c_int, path: &std::path::Path| {
            let (p, path) = (s(&bot), s(path.to_str().expect("utf-8")));
            // SAFETY: the pairs describe live strings.
            json(&lib.take(unsafe { f(p.0, p.1, conversation, path.0, path.1) }))
        };
        let picture = files.join("me.png");
        std::fs::write(&picture, &png).expect("write");
        let r = share_as(-1, &picture);
        let key = r["FileKey"].as_str().unwrap_or_default().to_owned();
        assert!(key.len() == 128 + 1 + 48 && key.contains('.'), "{r}");
        let attr = json(&lib.string2(
            "c_GetProfileAttribute",
            &bot,
            "public.profile.custom-profile-image",
        ));
        assert_eq!(
            (attr["Exists"].as_bool(), attr["Value"].as_str()),
            (Some(true), Some(key.as_str())),
            "{attr}"
        );
        // Not an image; another negative conversation: error JSON, the picture unchanged.
        let r = share_as(-1, &from_bot);
        assert!(
            r.get("FileKey").is_none() && r.to_string().contains("image"),
            "{r}"
        );
        let r = share_as(-2, &picture);
        assert!(
            r.get("FileKey").is_none() && r.to_string().contains("no such conversation"),
            "{r}"
        );
        let attr = json(&lib.string2(
            "c_GetProfileAttribute",
            &bot,
            "public.profile.custom-profile-image",
        ));
        assert_eq!(attr["Value"].as_str(), Some(key.as_str()), "{attr}");
    }
    let shared = |lib: &Lib| {
        let f: unsafe extern "C" fn(Str, c_int, c_int) -> Str = lib.sym("c_GetSharedFiles");
        let p = s(&bot);
        // SAFETY: the pair describes a live string.
        json(&lib.take(unsafe { f(p.0, p.1, cid) }))
    };
    let list = shared(&lib);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["Active"], true);
    assert_eq!(list[0]["Path"], from_bot.to_str().expect("utf-8"));
    let key = list[0]["FileKey"].as_str().expect("FileKey").to_owned();
    lib.void2("c_StopFileShare", &bot, &key);
    assert_eq!(shared(&lib)[0]["Active"], false);
    lib.void2("c_RestartFileShare", &bot, &key);
    assert_eq!(shared(&lib)[0]["Active"], true);
    // Alice downloads it with the library.
    let alice_dl = tmp.path().join("alice-downloads");
    std::fs::create_dir_all(&alice_dl).expect("mkdir");
    rt.block_on(async {
        // Once the offer (the file message) has arrived.
        loop {
            let e = tokio::time::timeout(GUARD, alice_events.recv())
                .await
                .expect("the offer arrives")
                .expect("event stream");
            if let Event::NewMessage {
                overlay: Some(200), ..
            } = e
            {
                break;
            }
        }
        alice
            .download_file(&contact, &key, &alice_dl)
            .await
            .expect("download starts");
        loop {
            let e = tokio::time::timeout(GUARD, alice_events.recv())
                .await
                .expect("download finishes")
                .expect("event stream");
            match e {
                Event::FileDownloaded { path, .. } => {
                    assert_eq!(
                        std::fs::read(path).expect("read"),
                        std::fs::read(&from_bot).expect("read")
                    );
                    break;
                }
                Event::FileDownloadFailed { reason, .. } => panic!("download failed: {reason}"),
                _ => {}
            }
        }
    });
    // Alice shares one; the bot downloads it through the C ABI.
    let from_alice = files.join("from-alice.bin");
    std::fs::write(&from_alice, vec![7u8; 10_000]).expect("write");
    let (alice_key, _) = rt
        .block_on(alice.share_file(&contact, &from_alice))
        .expect("alice shares");
    let offer = events.wait("NewMessageFromPeer", |e| {
        e.get("RemotePeer") == alice_onion && json(e.get("Data"))["o"] == 200
    });
    assert_eq!(offer.get("ConversationID"), cid.to_string());
    let bot_dl = tmp.path().join("bot-downloads");
    std::fs::create_dir_all(&bot_dl).expect("mkdir");
    {
        let f: unsafe extern "C" fn(Str, c_int, c_int, Str, c_int, Str, c_int, Str, c_int) =
            lib.sym("c_DownloadFileDefaultLimit");
        let target = bot_dl.join("from-alice.bin");
        let (p, path, manifest, k) = (
            s(&bot),
            s(target.to_str().expect("utf-8")),
            s(""),
            s(&alice_key),
        );
        // SAFETY: the pairs describe live strings.
        unsafe {
            f(
                p.0, p.1, cid, path.0, path.1, manifest.0, manifest.1, k.0, k.1,
            )
        };
    }
    let saved = events.wait("ManifestSaved", |e| e.get("FileKey") == alice_key);
    assert_eq!(saved.get("Handle"), alice_onion);
    assert_eq!(saved.get("NameSuggestion"), "from-alice.bin");
    assert_eq!(
        saved.get("TempFile"),
        format!("{}.part", bot_dl.join("from-alice.bin").display())
    );
    let progress = events.wait("FileDownloadProgressUpdate", |e| {
        e.get("FileKey") == alice_key
    });
    assert_eq!(progress.get("NameSuggestion"), "from-alice.bin");
    let done = events.wait("FileDownloaded", |e| e.get("FileKey") == alice_key);
    assert_eq!(
        std::fs::read(done.get("FilePath")).expect("read"),
        vec![7u8; 10_000]
    );
    let progress = events.wait("FileDownloadProgressUpdate", |e| {
        e.get("FileKey") == alice_key
    });
    assert_eq!(
        progress.get("FileSizeInChunks"),
        "3",
        "10000 bytes in 4096-byte chunks"
    );

    // The download is announced again on request.
    lib.void2("c_CheckDownloadStatus", &bot, &alice_key);
    let again = events.wait("FileDownloaded", |e| e.get("FileKey") == alice_key);
    assert_eq!(again.get("FilePath"), done.get("FilePath"));
    {
        let f: unsafe extern "C" fn(Str, c_int, c_int, Str, c_int) =
            lib.sym("c_VerifyOrResumeDownloadDefaultLimit");
        let (p, k) = (s(&bot), s(&alice_key));
        // SAFETY: the pairs describe live strings.
        unsafe { f(p.0, p.1, cid, k.0, k.1) };
    }
    events.wait("FileDownloaded", |e| e.get("FileKey") == alice_key);
    lib.void2("c_CheckDownloadStatus", &bot, "nokey");
    let errors = events.app_errors_so_far(&lib);
    assert!(
        errors.len() == 1 && errors[0].starts_with("c_CheckDownloadStatus:"),
        "{errors:?}"
    );

    // ---- a contact suggestion (the bot suggests alice to alice: target = cid) ----
    {
        let f: unsafe extern "C" fn(Str, c_int, c_int, c_int) -> Str =
            lib.sym("c_SendInviteMessage");
        let p = s(&bot);
        // SAFETY: the pair describes a live string.
        let m = json(&lib.take(unsafe { f(p.0, p.1, cid, cid) }));
        let overlay = json(m["Message"].as_str().expect("Message"));
        assert_eq!(overlay["o"], 100, "a contact suggestion: {m}");
        assert_eq!(overlay["d"], alice_onion.as_str());
        // SAFETY: as above.
        let none = json(&lib.take(unsafe { f(p.0, p.1, cid, 4242) }));
        assert!(none["error"].is_string(), "{none}");
    }

    // No server imported: an empty list.
    lib.void1("c_GetServerInfoList", &bot);
    let info = events.wait("UpdateServerInfo", |e| e.get("ProfileOnion") == bot);
    assert_eq!(json(info.get("ServerList")), serde_json::json!([]));
    lib.void1("c_PublishServerUpdate", &bot);
    events.wait("UpdateServerInfo", |e| e.get("ProfileOnion") == bot);

    // ---- attributes ----
    lib.set_profile_attribute(&bot, "profile.name", "Echo Bot");
    let a = lib.get_profile_attribute_raw(s(&bot), s("profile.name"));
    assert_eq!(
        (a["Exists"].clone(), a["Value"].clone()),
        (true.into(), "Echo Bot".into())
    );
    let a = lib.get_profile_attribute_raw(s(&bot), s("profile.nothing-here"));
    assert_eq!(a["Exists"], false);
    assert!(a.get("Error").is_none(), "absent is not an error: {a}");
    lib.set_conversation_attribute(&bot, cid, "profile.name", "Alice A.");
    let a = lib.get_conversation_attribute(&bot, cid, "local.profile.name");
    assert_eq!(a["Value"], "Alice A.", "{a}");

    lib.void_conv("c_ArchiveConversation", &bot, cid);
    // ---- settings, then reconnect: NewPeer again with the accepted contact ----
    let mut new_settings = sv.clone();
    new_settings["BlockUnknownConnections"] = true.into();
    new_settings["CustomField"] = "kept".into();
    // The image previews experiment: the bot fetches alice's picture.
    new_settings["ExperimentsEnabled"] = true.into();
    new_settings["Experiments"]["filesharing-images"] = true.into();
    lib.void1("c_UpdateSettings", &new_settings.to_string());
    let updated = events.wait("UpdateGlobalSettings", |_| true);
    let uv = json(updated.get("Data"));
    assert_eq!(uv["BlockUnknownConnections"], true);
    assert_eq!(uv["CustomField"], "kept");
    let fetched = events.wait("FileDownloaded", |e| e.get("FileKey") == alice_picture_key);
    let alice_picture = fetched.get("FilePath").to_owned();
    assert!(
        std::path::Path::new(&alice_picture).is_absolute()
            && std::fs::read(&alice_picture).ok().as_deref() == Some(png.as_slice()),
        "alice's picture at {alice_picture:?}"
    );
    rt.block_on(alice.send_text(&contact, "now with a face"))
        .expect("send");
    let msg = events.wait("NewMessageFromPeer", |e| {
        e.get("RemotePeer") == alice_onion && e.get("Data").contains("now with a face")
    });
    assert_eq!(
        msg.get("picture"),
        alice_picture,
        "her picture, not the default"
    );
    // Messages read back name their author's picture: hers, and the bot's own.
    let me = std::fs::canonicalize(files.join("me.png")).expect("me.png");
    let me = me.to_str().expect("utf-8");
    let index: c_int = msg.get("Index").parse().expect("number");
    let m = lib.get_message_by_id(&bot, cid, index);
    assert_eq!(m["ContactImage"], alice_picture.as_str(), "{m}");
    let list = lib.get_messages(&bot, cid, 0, 100);
    let list = list.as_array().expect("messages");
    assert!(list.iter().any(|m| m["PeerID"] == bot.as_str()), "{list:?}");
    for m in list {
        let expected = if m["PeerID"] == alice_onion.as_str() {
            alice_picture.as_str()
        } else {
            me
        };
        assert_eq!(m["ContactImage"], expected, "{m}");
    }
    // Saving the same settings again announces nothing (cwtch-imp saves on every
    // UpdateGlobalSettings: an announcement would loop forever).
    lib.void1("c_UpdateSettings", &new_settings.to_string());
    events.barrier(&lib);
    assert_eq!(events.pending("UpdateGlobalSettings"), 0);
    lib.void1("c_UpdateSettings", "{not json");
    events.wait("AppError", |e| {
        e.get("Error").starts_with("c_UpdateSettings")
    });
    lib.void0("c_ReconnectCwtchForeground");
    let again = events.wait("NewPeer", |e| e.data.contains_key("Reload"));
    assert_parsable(&again);
    assert_eq!(again.get("Created"), "false");
    let contacts = json(again.get("ContactsJson"));
    let c = contacts
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["onion"] == alice_onion.as_str()))
        .unwrap_or_else(|| panic!("alice among {contacts}"));
    assert_eq!(c["identifier"].as_i64(), Some(i64::from(cid)));
    assert_eq!(c["accepted"], true);
    assert_eq!(c["isGroup"], false);
    assert_eq!(c["isArchived"], true, "archived above");
    // Its newest message's time, in seconds since 1970 (the UI's `int.parse`): today's.
    let last: u64 = c["lastMsgTime"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("lastMsgTime in seconds: {c}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(last + 24 * 3600 > now && last <= now, "{last} vs {now}");
    assert_eq!(
        (c["picture"].as_str(), c["defaultPicture"].as_str()),
        (Some(alice_picture.as_str()), Some(alice_default.as_str())),
        "{c}"
    );
    // The bot's own picture (set with c_ShareFile -1 above): its file, by absolute path.
    assert_eq!(again.get("picture"), me);
    assert_default_picture(
        again.get("defaultPicture"),
        &default_profile_picture_prefix(&bot),
    );
    assert!(c["accessControlList"][&alice_onion]["Read"] == true, "{c}");

    // ---- bundles, block, not-yet functions ----
    let other = rt.block_on(async {
        let info = alice_app
            .create_profile("carol", &Password::Default)
            .await
            .expect("create");
        info.onion.as_str().to_owned()
    });
    assert_eq!(
        lib.string2("c_ImportBundle", &bot, &other),
        "importBundle.success"
    );
    let created = events.wait("ContactCreated", |e| e.get("RemotePeer") == other);
    assert_eq!(created.get("accepted"), "true");
    let garbage = lib.string2("c_ImportBundle", &bot, "garbage");
    assert!(garbage.starts_with("importBundle.") && garbage != "importBundle.success");
    assert!(!garbage.contains("c_ImportBundle"), "{garbage}");
    lib.void_conv("c_BlockConversation", &bot, cid);
    {
        let f: unsafe extern "C" fn(Str, c_int, c_int) -> Str =
            lib.sym("c_GetConversationAccessControlList");
        let p = s(&bot);
        // SAFETY: the pair describes a live string.
        let acl = json(&lib.take(unsafe { f(p.0, p.1, cid) }));
        assert_eq!(acl[&alice_onion]["Blocked"], true, "{acl}");
        // SAFETY: as above.
        let none = json(&lib.take(unsafe { f(p.0, p.1, 4242) }));
        assert!(none["error"].is_string(), "no conversation 4242: {none}");
    }
    lib.void2("c_QueueJoinServer", &bot, "x");
    let e = events.wait("AppError", |e| {
        e.get("Error").starts_with("c_QueueJoinServer")
    });
    assert!(e.get("Error").contains("address"), "{e:?}");
    // The network restarts (the loopback network's restart is immediate) without error.
    lib.void0("c_ResetTor");
    assert_eq!(events.app_errors_so_far(&lib), Vec::<String>::new());
    let debug = json(&{
        let f: unsafe extern "C" fn() -> Str = lib.sym("c_GetDebugInfo");
        // SAFETY: no arguments.
        lib.take(unsafe { f() })
    });
    assert_eq!(debug["LoadedProfiles"], 1);

    // ---- shutdown ----
    lib.void0("c_ShutdownCwtch");
    assert_eq!(lib.started(), 0);
    let m = lib.send_message(&bot, cid, r#"{"o":1,"d":"after"}"#);
    assert!(
        m["error"].as_str().expect("error").contains("not started"),
        "{m}"
    );

    // ---- started again: the message attribute was kept ----
    assert_eq!(lib.start(app_dir.to_str().expect("utf-8 path"), ""), 0);
    events.wait("CwtchStarted", |_| true);
    lib.void1("c_LoadProfiles", DEFAULT_PASSWORD);
    events.wait("NewPeer", |e| e.get("Identity") == bot);
    let m = lib.get_message_by_id(&bot, cid, alice_msg_id);
    assert_eq!(m["Attributes"]["starred"], "yes", "{m}");
    lib.void0("c_ShutdownCwtch");

    // ---- shut down while starting: it stays down, and starts again ----
    assert_eq!(lib.start(app_dir.to_str().expect("utf-8 path"), ""), 0);
    lib.void0("c_ShutdownCwtch");
    assert_eq!(
        lib.started(),
        0,
        "a start the host shut down came up anyway"
    );
    events.barrier(&lib);
    assert_eq!(lib.started(), 0);
    assert_eq!(lib.start(app_dir.to_str().expect("utf-8 path"), ""), 0);
    // (A CwtchStarted of the start that was shut down may still be queued.)
    let mut started = false;
    for _ in 0..2 {
        events.wait("CwtchStarted", |_| true);
        if lib.started() == 1 {
            started = true;
            break;
        }
    }
    assert!(started, "the library did not start again");
    lib.void0("c_ShutdownCwtch");
    rt.block_on(alice_app.shutdown());
}

#[allow(clippy::too_many_arguments)]
fn update_message_attribute(
    lib: &Lib,
    profile: &str,
    conversation: c_int,
    channel: c_int,
    message: c_int,
    key: &str,
    value: &str,
) {
    let f: unsafe extern "C" fn(Str, c_int, c_int, c_int, c_int, Str, c_int, Str, c_int) =
        lib.sym("c_UpdateMessageAttribute");
    let (p, k, v) = (s(profile), s(key), s(value));
    // SAFETY: the pairs describe live strings.
    unsafe { f(p.0, p.1, conversation, channel, message, k.0, k.1, v.0, v.1) }
}
