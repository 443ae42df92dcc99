//! The `cwtch-server` command line: every subcommand, and every way it can be misused.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use connectivity::{Acn, LoopbackAcn};
use cwtch_model::{EncryptedGroupMessage, KeyBundle, TofuBundle};
use cwtch_server::client::ServerClient;

#[test]
fn init_creates_a_private_identity_and_refuses_to_overwrite_it() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("srv");
    let o = cli(
        &dir,
        &[
            "init",
            "--max-storage-mb",
            "5",
            "--description",
            "test server",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let bundle = KeyBundle::parse_server_string(stdout(&o).trim()).unwrap();
    let keys = bundle.verify().unwrap();
    let config = dir.join("serverConfig.json");
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let before = std::fs::read(&config).unwrap();
    let c = cwtch_server::ServerConfig::load(&dir).unwrap();
    assert_eq!(c.onion(), keys.server);
    assert_eq!(c.max_storage_mbs, 5);
    assert_eq!(c.attributes["description"], "test server");

    let again = cli(&dir, &["init"]);
    assert_clean_failure(&again, "refusing to overwrite");
    assert_eq!(
        std::fs::read(&config).unwrap(),
        before,
        "identity untouched"
    );
}

#[test]
fn bundle_prints_the_server_bundle_and_a_tofu_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path(), "srv");
    let o = cli(&dir, &["bundle"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "one line");
    let keys = KeyBundle::parse_server_string(out.trim())
        .unwrap()
        .verify()
        .unwrap();
    let o = cli(&dir, &["bundle", "--tofu", "--group-name", "Friends"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let tofu = TofuBundle::parse(stdout(&o).trim()).unwrap();
    assert_eq!(tofu.verify().unwrap().server, keys.server);
    assert_eq!(tofu.invite.group_name, "Friends");
    // Each tofubundle invites to a fresh group.
    let o2 = cli(&dir, &["bundle", "--tofu"]);
    let tofu2 = TofuBundle::parse(stdout(&o2).trim()).unwrap();
    assert_ne!(tofu.invite.group_id, tofu2.invite.group_id);
}

#[test]
fn a_missing_corrupt_or_exposed_data_directory_is_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let net = tmp.path().join("net");
    let net = net.to_str().unwrap();
    // Missing.
    let missing = tmp.path().join("nope");
    for args in [
        &["bundle"][..],
        &["stats"],
        &["run", "--network", "loopback", "--loopback-dir", net],
    ] {
        assert_clean_failure(&cli(&missing, args), "init");
    }
    assert!(!missing.exists(), "nothing was created");
    // Corrupt JSON.
    let dir = init(tmp.path(), "corrupt");
    std::fs::write(dir.join("serverConfig.json"), b"{\"publicKey\": [").unwrap();
    assert_clean_failure(&cli(&dir, &["bundle"]), "corrupt");
    assert_clean_failure(
        &cli(
            &dir,
            &["run", "--network", "loopback", "--loopback-dir", net],
        ),
        "corrupt",
    );
    // Bad keys: the public key does not match the private key.
    let dir = init(tmp.path(), "badkeys");
    let p = dir.join("serverConfig.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let other = cwtch_server::ServerConfig::generate(&mut rand_core::OsRng);
    let other: serde_json::Value = serde_json::from_slice(&other.to_json()).unwrap();
    v["publicKey"] = other["publicKey"].clone();
    let tampered = serde_json::to_vec(&v).unwrap();
    std::fs::write(&p, &tampered).unwrap();
    assert_clean_failure(
        &cli(
            &dir,
            &["run", "--network", "loopback", "--loopback-dir", net],
        ),
        "publicKey",
    );
    assert_eq!(std::fs::read(&p).unwrap(), tampered, "never regenerated");
    // A directory others can read.
    let dir = init(tmp.path(), "exposed");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_clean_failure(
        &cli(
            &dir,
            &["run", "--network", "loopback", "--loopback-dir", net],
        ),
        "chmod 700",
    );
    // A file where the directory should be.
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert_clean_failure(&cli(&file, &["bundle"]), "not a directory");
}

#[tokio::test]
async fn run_serves_until_sigterm_then_stats_report_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(tmp.path(), "srv");
    let net = tmp.path().join("net");
    let mut server = run(&dir, &net).await;
    // Serves: a client obtains a token and posts.
    let acn: Arc<dyn Acn> = Arc::new(LoopbackAcn::new(&net).unwrap());
    let c = ServerClient::new(&server.bundle, acn).unwrap();
    let t = c.fetch_tokens(2).await.unwrap();
    let mut board = c.connect().await.unwrap();
    let m = EncryptedGroupMessage {
        ciphertext: Some(b"hello".to_vec()),
        signature: Some(b"sig".to_vec()),
    };
    assert!(board.post(&t[0], &m).await.unwrap());
    // A second server on the same directory is refused while this one runs.
    let second = cli(
        &dir,
        &[
            "run",
            "--network",
            "loopback",
            "--loopback-dir",
            net.to_str().unwrap(),
        ],
    );
    assert_clean_failure(&second, "already running");
    // Its log, written to a pipe (a file, a journal), carries no colour codes.
    let log = stderr(&second);
    assert!(log.contains("WARN"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a log: {log:?}");
    // SIGTERM: graceful, exit 0.
    std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), server.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    // The connection was closed by the shutdown.
    assert!(board.closed_by_server().await);
    let o = cli(&dir, &["stats", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s: cwtch_server::Stats = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(!s.running);
    assert_eq!(
        (
            s.messages,
            s.posts_accepted,
            s.tokens_issued,
            s.tokens_spent
        ),
        (1, 1, 2, 1)
    );
    let text = stdout(&cli(&dir, &["stats"]));
    assert!(text.contains("messages stored:     1"), "{text}");
    // Every file the server wrote is ours alone (the store, its WAL, the stats, the lock).
    use std::os::unix::fs::PermissionsExt;
    let mut names = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let mode = e.metadata().unwrap().permissions().mode();
        let name = e.file_name().to_string_lossy().into_owned();
        assert_eq!(mode & 0o077, 0, "{name} is {mode:o}");
        names.push(name);
    }
    assert!(names.iter().any(|n| n == "stats.json"), "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("cwtch.messages")),
        "{names:?}"
    );
}

#[test]
fn help_explains_every_subcommand() {
    let o = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .unwrap();
    let h = stdout(&o);
    for word in ["init", "bundle", "run", "stats", "--data-dir"] {
        assert!(h.contains(word), "{word} in {h}");
    }
    let o = std::process::Command::new(BIN)
        .args(["run", "--help"])
        .output()
        .unwrap();
    let h = stdout(&o);
    for word in [
        "--network",
        "--loopback-dir",
        "--tor-binary",
        "--tor-control",
    ] {
        assert!(h.contains(word), "{word} in {h}");
    }
}
