//! An unfinished download through the C ABI: started while its sharer does not serve it,
//! asked to resume while it runs (Go clients do; not an error), interrupted by a shutdown of
//! the library, resumed when the profile loads again, and finished; then announced again on
//! `c_VerifyOrResumeDownloadDefaultLimit`. Over the loopback network, the sharer a profile
//! of the `cwtch` library.

mod common;

use std::ffi::c_int;
use std::sync::Arc;

use common::*;

fn download(lib: &Lib, profile: &str, cid: c_int, target: &std::path::Path, key: &str) {
    let f: unsafe extern "C" fn(Str, c_int, c_int, Str, c_int, Str, c_int, Str, c_int) =
        lib.sym("c_DownloadFileDefaultLimit");
    let (p, path, manifest, k) = (
        s(profile),
        s(target.to_str().expect("utf-8")),
        s(""),
        s(key),
    );
    // SAFETY: the pairs describe live strings.
    unsafe {
        f(
            p.0, p.1, cid, path.0, path.1, manifest.0, manifest.1, k.0, k.1,
        )
    };
}

fn verify_or_resume(lib: &Lib, profile: &str, cid: c_int, key: &str) {
    let f: unsafe extern "C" fn(Str, c_int, c_int, Str, c_int) =
        lib.sym("c_VerifyOrResumeDownloadDefaultLimit");
    let (p, k) = (s(profile), s(key));
    // SAFETY: the pairs describe live strings.
    unsafe { f(p.0, p.1, cid, k.0, k.1) };
}

#[test]
fn an_unfinished_download_resumes_after_a_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (net, app_dir) = (tmp.path().join("net"), tmp.path().join("app"));
    let lib = Arc::new(Lib::load());
    let mut events = lib.events();
    start_on_loopback(&lib, &mut events, &app_dir, &net);
    lib.create_profile("bot", DEFAULT_PASSWORD);
    let bot = events.wait("NewPeer", |_| true).get("Identity").to_owned();

    // Alice, with the library, is the bot's contact and offers a file she stops serving.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (alice_app, alice) = library_peer(&rt, &net, "alice");
    let alice_onion = alice.onion().as_str().to_owned();
    let contact = rt.block_on(alice.add_contact(&bot)).expect("add");
    let cid: c_int = events
        .wait("ContactCreated", |e| e.get("RemotePeer") == alice_onion)
        .get("ConversationID")
        .parse()
        .expect("number");
    lib.void_conv("c_AcceptConversation", &bot, cid);
    let file = tmp.path().join("big.bin");
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&file, &content).expect("write");
    let (key, _) = rt
        .block_on(alice.share_file(&contact, &file))
        .expect("share");
    rt.block_on(alice.stop_sharing(&key)).expect("stop");
    events.wait("NewMessageFromPeer", |e| {
        e.get("RemotePeer") == alice_onion && json(e.get("Data"))["o"] == 200
    });

    // The bot starts it; nothing arrives. Asking to resume a running download is no error.
    let dl = tmp.path().join("downloads");
    std::fs::create_dir_all(&dl).expect("mkdir");
    download(&lib, &bot, cid, &dl.join("big.bin"), &key);
    verify_or_resume(&lib, &bot, cid, &key);
    assert_eq!(events.app_errors_so_far(&lib), Vec::<String>::new());
    assert_eq!(events.pending("FileDownloaded"), 0);
    // Its status: Go's "interrupted" report, progress -1 with where it is being saved.
    lib.void2("c_CheckDownloadStatus", &bot, &key);
    let status = events.wait("FileDownloadProgressUpdate", |e| {
        e.get("FileKey") == key && e.get("Progress") == "-1"
    });
    assert_eq!(status.get("FileSizeInChunks"), "-1");
    assert_eq!(status.get("NameSuggestion"), "big.bin");
    assert_eq!(
        status.get("FilePath"),
        dl.join("big.bin").to_str().expect("utf-8")
    );

    // The library stops with the download unfinished; alice serves again; the library
    // starts, the profile loads, the download resumes and finishes.
    lib.void0("c_ShutdownCwtch");
    rt.block_on(alice.restart_sharing(&key)).expect("restart");
    events.forget("NewPeer");
    assert_eq!(lib.start(app_dir.to_str().expect("utf-8"), ""), 0);
    events.wait("CwtchStarted", |_| true);
    lib.void1("c_LoadProfiles", DEFAULT_PASSWORD);
    events.wait("NewPeer", |e| e.get("Identity") == bot);
    verify_or_resume(&lib, &bot, cid, &key);
    let done = events.wait("FileDownloaded", |e| e.get("FileKey") == key);
    assert_eq!(std::fs::read(done.get("FilePath")).expect("read"), content);
    assert_eq!(events.app_errors_so_far(&lib), Vec::<String>::new());

    // Finished: announced again.
    verify_or_resume(&lib, &bot, cid, &key);
    let again = events.wait("FileDownloaded", |e| e.get("FileKey") == key);
    assert_eq!(again.get("FilePath"), done.get("FilePath"));
    lib.void0("c_ShutdownCwtch");
    rt.block_on(alice_app.shutdown());
}
