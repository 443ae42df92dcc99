//! `cwtch run` and its control socket: the raw protocol, password-protected profiles
//! (unlock, passwd, `run --password-stdin`), and profile management through the daemon.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// One raw request line on the control socket; the answer.
async fn raw(dir: &Path, line: &str) -> Value {
    let s = UnixStream::connect(dir.join("cwtch.sock")).await.unwrap();
    let (r, mut w) = s.into_split();
    w.write_all(format!("{line}\n").as_bytes()).await.unwrap();
    let mut answer = String::new();
    BufReader::new(r).read_line(&mut answer).await.unwrap();
    serde_json::from_str(&answer).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_control_protocol_is_versioned_json_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("home");
    let onion = acreate(&dir, "alice").await;
    let d = Daemon::loopback(&dir, &tmp.path().join("net"), &onion).await;

    let v = raw(&dir, r#"{"v":1,"op":"ping"}"#).await;
    assert_eq!(v["v"], 1);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["result"]["kind"], "pong");
    assert_eq!(v["result"]["pid"], d.pid());
    assert_eq!(v["result"]["profiles"][0]["onion"], onion.as_str());
    assert_eq!(v["result"]["profiles"][0]["running"], true);

    let v = raw(&dir, r#"{"v":1,"op":"contact.list","profile":"alice"}"#).await;
    assert_eq!(v["result"]["kind"], "contacts", "{v}");
    assert_eq!(v["result"]["contacts"], serde_json::json!([]));
    let v = raw(&dir, r#"{"v":1,"op":"group.list","profile":null}"#).await;
    assert_eq!(v["result"]["kind"], "groups", "{v}");
    assert_eq!(v["result"]["groups"], serde_json::json!([]));
    let v = raw(&dir, r#"{"v":1,"op":"server.list","profile":null}"#).await;
    assert_eq!(v["result"]["kind"], "servers", "{v}");

    for (line, code) in [
        (r#"{"v":2,"op":"ping"}"#, "usage"),
        (r#"{"op":"ping"}"#, "usage"),
        (r#"{"v":1,"op":"launch.missiles"}"#, "usage"),
        ("definitely not json", "usage"),
        (
            r#"{"v":1,"op":"contact.list","profile":"bob"}"#,
            "not_found",
        ),
        (
            r#"{"v":1,"op":"messages","profile":null,"contact":"7","offset":0,"limit":10}"#,
            "not_found",
        ),
        (
            r#"{"v":1,"op":"contact.add","profile":null,"contact":"nope"}"#,
            "usage",
        ),
        (
            r#"{"v":1,"op":"group.accept","profile":null,"group":"nope"}"#,
            "not_found",
        ),
        (
            r#"{"v":1,"op":"server.add","profile":null,"bundle":"server:bm9wZQ=="}"#,
            "usage",
        ),
        (
            r#"{"v":1,"op":"group.join","profile":null,"invite":"torv3bm9wZQ=="}"#,
            "usage",
        ),
    ] {
        let v = raw(&dir, line).await;
        assert_eq!(v["ok"], false, "{line}: {v}");
        assert_eq!(v["error"]["code"], code, "{line}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().len() > 5, "{v}");
    }
    // Several requests on one connection, answered in order.
    let s = UnixStream::connect(dir.join("cwtch.sock")).await.unwrap();
    let (r, mut w) = s.into_split();
    w.write_all(
        b"{\"v\":1,\"op\":\"ping\"}\n\n{\"v\":1,\"op\":\"profile.list\",\"password\":null}\n",
    )
    .await
    .unwrap();
    let mut lines = BufReader::new(r).lines();
    let first: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    let second: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(first["result"]["kind"], "pong");
    assert_eq!(second["result"]["kind"], "profiles");

    // SIGINT (Ctrl-C) is a clean shutdown too.
    assert!(d.stop_with("-INT").await.success());
    assert!(!dir.join("cwtch.sock").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn password_profiles_are_unlocked_and_managed_through_the_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("home");
    let net = tmp.path().join("net");
    let open = acreate(&dir, "open").await;
    let o = acwtch_stdin(
        &dir,
        &["profile", "create", "--name", "secret", "--password-stdin"],
        "pw1\n",
    )
    .await;
    let secret = last_line(&o);

    // Without a password only the open profile runs.
    let mut d = Daemon::loopback(&dir, &net, &open).await;
    let o = acwtch(&dir, &["--profile", "secret", "contact", "list"]).await;
    fails(&o, 3, "unlock");
    assert!(d
        .events("ProfileLoaded")
        .iter()
        .all(|e| e["name"] != "secret"));

    // Unlock: a wrong password changes nothing; the right one brings it online.
    fails(
        &acwtch_stdin(&dir, &["profile", "unlock"], "nope\n").await,
        4,
        "password",
    );
    let o = acwtch_stdin(&dir, &["profile", "unlock"], "pw1\n").await;
    assert_eq!(ok(&o), format!("secret\t{secret}\n"));
    assert!(
        stderr(&o).contains("running in `cwtch run`"),
        "{}",
        stderr(&o)
    );
    d.wait_online(&secret).await;
    ok(&acwtch(&dir, &["--profile", "secret", "contact", "add", &open]).await);
    // Both run now: a profile-scoped command needs --profile.
    fails(&acwtch(&dir, &["contact", "list"]).await, 2, "--profile");
    // Unlocking again is harmless.
    let v = json(&acwtch_stdin(&dir, &["--json", "profile", "unlock"], "pw1\n").await);
    assert_eq!(v[0]["running"], true);

    // Change the password of the running profile, in place.
    let o = acwtch_stdin(
        &dir,
        &["--profile", "secret", "profile", "passwd"],
        "pw1\npw2\n",
    )
    .await;
    assert!(ok(&o).contains(&secret));
    fails(
        &acwtch_stdin(&dir, &["profile", "unlock"], "pw1\n").await,
        4,
        "password",
    );
    ok(&acwtch_stdin(&dir, &["profile", "unlock"], "pw2\n").await);

    // Create and import through the daemon: they run at once.
    let o = acwtch(
        &dir,
        &["profile", "create", "--name", "fresh", "--no-password"],
    )
    .await;
    let fresh = last_line(&o);
    assert!(stderr(&o).contains("now running"), "{}", stderr(&o));
    d.wait_online(&fresh).await;
    let archive = tmp.path().join("secret.tar.gz");
    let a = archive.to_str().unwrap();
    let o = acwtch_stdin(
        &dir,
        &[
            "--profile",
            "secret",
            "profile",
            "export",
            a,
            "--password-stdin",
        ],
        "pw2\n",
    )
    .await;
    ok(&o);
    // Delete the running profile: it stops first.
    let o = acwtch_stdin(
        &dir,
        &[
            "--profile",
            &secret,
            "profile",
            "delete",
            "--yes",
            "--password-stdin",
        ],
        "pw2\n",
    )
    .await;
    ok(&o);
    d.wait_for(STEP, |e| {
        e["event"] == "ProfileShutdown" && e["profile"] == secret.as_str()
    })
    .await;
    fails(
        &acwtch_stdin(&dir, &["profile", "unlock"], "pw2\n").await,
        4,
        "password",
    );
    let o = acwtch_stdin(&dir, &["profile", "import", a, "--password-stdin"], "pw2\n").await;
    assert_eq!(last_line(&o), secret);
    d.wait_online(&secret).await;
    // The imported copy kept its contact.
    let v = json(&acwtch(&dir, &["--json", "--profile", "secret", "contact", "list"]).await);
    assert_eq!(v[0]["onion"], open.as_str(), "{v}");
    assert!(d.stop().await.success());

    // `run --password-stdin --no-default-profiles`: only the password profiles.
    let netflag = net.to_str().unwrap();
    let mut d = Daemon::spawn_stdin(
        &dir,
        &[
            "--password-stdin",
            "--no-default-profiles",
            "--network",
            "loopback",
            "--loopback-dir",
            netflag,
        ],
        "pw2\n",
    );
    d.wait_online(&secret).await;
    let v = json(&acwtch(&dir, &["--json", "profile", "list"]).await);
    let running: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["running"] == true)
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        running,
        ["secret"],
        "what the daemon runs is listed without its password (ping shows it too): {v}"
    );
    // A password that opens nothing is an error, not a shorter list.
    fails(
        &acwtch_stdin(&dir, &["profile", "list", "--password-stdin"], "nope\n").await,
        4,
        "no profile opens with this password",
    );
    let o = acwtch_stdin(
        &dir,
        &["--json", "profile", "list", "--password-stdin"],
        "pw2\n",
    )
    .await;
    let v = json(&o);
    let running: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["running"] == true)
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(running, ["secret"], "{v}");
    // What the daemon runs is exported without its password again (the archive stays
    // encrypted with it).
    let archive = dir.parent().unwrap().join("secret-running.tar.gz");
    let o = acwtch(
        &dir,
        &[
            "--profile",
            "secret",
            "profile",
            "export",
            archive.to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok(&o).starts_with("exported secret\t"), "{}", ok(&o));
    assert!(archive.exists());
    assert!(d.stop().await.success());

    // A wrong password for `run` is an error, and nothing keeps running.
    let o = acwtch_stdin(
        &dir,
        &[
            "run",
            "--password-stdin",
            "--network",
            "loopback",
            "--loopback-dir",
            netflag,
        ],
        "wrong\n",
    )
    .await;
    fails(&o, 4, "password");
    assert!(!dir.join("cwtch.sock").exists());
    // `run --profile` runs just that one.
    let mut d = Daemon::spawn(
        &dir,
        &[
            "--profile",
            "fresh",
            "--network",
            "loopback",
            "--loopback-dir",
            netflag,
        ],
    );
    d.wait_online(&fresh).await;
    let v = json(&acwtch(&dir, &["--json", "profile", "list"]).await);
    for p in v.as_array().unwrap() {
        assert_eq!(p["running"], p["name"] == "fresh", "{v}");
    }
    assert!(d.stop().await.success());
}

/// `events.subscribe`: the answer, then the daemon's events as lines on the same connection,
/// until the client closes it; `ping` reports the network's status.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_stream_on_a_subscribed_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("home");
    let onion = acreate(&dir, "alice").await;
    let d = Daemon::loopback(&dir, &tmp.path().join("net"), &onion).await;

    let v = raw(&dir, r#"{"v":1,"op":"ping"}"#).await;
    assert_eq!(v["result"]["acn"]["progress"], 100, "{v}");

    let s = UnixStream::connect(dir.join("cwtch.sock")).await.unwrap();
    let (r, mut w) = s.into_split();
    w.write_all(b"{\"v\":1,\"op\":\"events.subscribe\"}\n")
        .await
        .unwrap();
    let mut lines = BufReader::new(r).lines();
    let answer: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(answer["result"]["kind"], "subscribed", "{answer}");
    // A change made through another connection arrives as an event line.
    let bob = "pjurzypqui3dnpxj6aemk6cqz22yx6zfr5lq4jzu7muwe2yyx2zrnzyd";
    ok(&acwtch(&dir, &["contact", "add", bob]).await);
    let event = tokio::time::timeout(STEP, async {
        loop {
            let l = lines
                .next_line()
                .await
                .unwrap()
                .expect("the stream stays open");
            let e: Value = serde_json::from_str(&l).unwrap();
            if e["event"] == "ContactCreated" {
                return e;
            }
        }
    })
    .await
    .expect("the event arrived");
    assert_eq!(event["contact"], bob, "{event}");
    assert_eq!(event["profile"], onion.as_str(), "{event}");
    // Closing our side ends the subscription; the daemon keeps serving.
    drop(w);
    drop(lines);
    let v = raw(&dir, r#"{"v":1,"op":"ping"}"#).await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(d.stop().await.code(), Some(0));
}
