//! Groups through the `cwtch` command, over the loopback network with a real server (the
//! `cwtch_server` library, run in the test process): three profiles in separate homes and
//! processes import the server, create a group, invite over P2P, accept, join from the printed
//! invite, post and read with the right authors; `send` to a group without a daemon (sent, and
//! queued then posted by the next run); and the errors (bad bundle, unknown server, unknown
//! group, ambiguous name, a server in use), with and without a daemon.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use cwtch_server::{Server, ServerConfig};
use serde_json::Value;

/// A server's data directory (created with a fresh identity on first use) on the loopback
/// network `net`; returns once both of its onion services are hosted.
async fn start_server(dir: &Path, net: &Path) -> Server {
    if !dir.exists() {
        cwtch_server::create_data_dir(dir).unwrap();
        ServerConfig::generate(&mut rand_core::OsRng)
            .save_new(dir)
            .unwrap();
    }
    let acn = Arc::new(cwtch::LoopbackAcn::new(net).unwrap());
    Server::start(ServerConfig::load(dir).unwrap(), dir, acn)
        .await
        .unwrap()
}

/// A `server:` bundle of a server that never runs (for the tests that need no network).
fn offline_bundle() -> (String, String) {
    let c = ServerConfig::generate(&mut rand_core::OsRng);
    (c.server_bundle(), c.onion().as_str().to_owned())
}

struct World {
    tmp: tempfile::TempDir,
    net: PathBuf,
}

impl World {
    fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let net = tmp.path().join("net");
        World { tmp, net }
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn net(&self) -> &str {
        self.net.to_str().unwrap()
    }

    /// The network flags of a command that goes online without a daemon.
    fn netflags(&self) -> [&str; 4] {
        ["--network", "loopback", "--loopback-dir", self.net()]
    }
}

/// `a` adds `b`, `b` accepts (through their daemons); both see the other connected.
async fn befriend(a: &mut Daemon, a_onion: &str, b: &mut Daemon, b_onion: &str) {
    ok(&acwtch(&a.dir, &["contact", "add", b_onion]).await);
    b.wait_for(STEP, |e| {
        e["event"] == "ContactCreated" && e["contact"] == a_onion
    })
    .await;
    ok(&acwtch(&b.dir, &["contact", "accept", a_onion]).await);
    a.wait_for(STEP, |e| {
        e["event"] == "PeerStateChanged" && e["contact"] == b_onion && e["state"] == "Authenticated"
    })
    .await;
}

fn is_group_message(e: &Value, author: &str, text: &str) -> bool {
    e["event"] == "GroupMessage" && e["author"] == author && e["text"] == text
}

/// (author, text, outgoing) of every stored message of a group, oldest first.
async fn group_texts(dir: &Path, group: &str) -> Vec<(String, String, bool)> {
    messages(dir, group)
        .await
        .iter()
        .map(|m| {
            (
                m["author"].as_str().unwrap().to_owned(),
                m["text"].as_str().unwrap_or_default().to_owned(),
                m["outgoing"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// `cwtch --json send` to a group: the result.
async fn post(dir: &Path, group: &str, text: &str, wait: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--json", "send", group, text, "--wait", wait];
    args.extend_from_slice(extra);
    json(&acwtch(dir, &args).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_members_invite_accept_join_post_and_read() {
    let w = World::new();
    let server = start_server(&w.dir("server"), &w.net).await;
    let bundle = server.bundle();
    let server_onion = server.onion().as_str().to_owned();
    let (a_dir, b_dir, c_dir) = (w.dir("a"), w.dir("b"), w.dir("c"));
    let alice = acreate(&a_dir, "alice").await;
    let bob = acreate(&b_dir, "bob").await;
    let carol = acreate(&c_dir, "carol").await;
    let mut a = Daemon::loopback(&a_dir, &w.net, &alice).await;
    let mut b = Daemon::loopback(&b_dir, &w.net, &bob).await;
    let mut c = Daemon::loopback(&c_dir, &w.net, &carol).await;

    // Alice imports the server: its onion is the last line.
    let o = acwtch(&a_dir, &["server", "add", &bundle]).await;
    assert_eq!(last_line(&o), server_onion);
    a.wait_for(STEP, |e| {
        e["event"] == "ServerAdded" && e["server"] == server_onion.as_str()
    })
    .await;
    let o = acwtch(&a_dir, &["server", "list"]).await;
    assert!(
        ok(&o).starts_with(&format!("1\t{server_onion}\t")),
        "{}",
        ok(&o)
    );

    // She creates a group: its conversation id, then its invite as the last line.
    let o = acwtch(
        &a_dir,
        &["group", "create", "book club", "--server", &server_onion],
    )
    .await;
    let out = ok(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let a_group = lines[0].to_owned();
    let invite = lines[1].to_owned();
    assert!(a_group.parse::<i64>().is_ok(), "{out}");
    assert!(invite.starts_with("tofubundle:server:"), "{invite}");
    assert!(invite.contains("||torv3"), "{invite}");
    a.wait_for(STEP, |e| {
        e["event"] == "GroupCreated" && e["name"] == "book club" && e["accepted"] == true
    })
    .await;

    // Over P2P: Alice invites Bob; he sees the invite, unaccepted, and accepts it.
    befriend(&mut a, &alice, &mut b, &bob).await;
    // (The group by its conversation id: the reply names it.)
    let groups = json(&acwtch(&a_dir, &["--json", "group", "list"]).await);
    let club = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "book club")
        .unwrap()["conversation_id"]
        .to_string();
    let o = acwtch(&a_dir, &["group", "invite", &club, &bob]).await;
    assert!(
        ok(&o).starts_with("acknowledged: the invite to book club reached"),
        "{}",
        ok(&o)
    );
    let inv = b
        .wait_for(STEP, |e| {
            e["event"] == "GroupInvite" && e["from"] == alice.as_str()
        })
        .await;
    assert_eq!(inv["name"], "book club", "{inv}");
    assert_eq!(inv["server"], server_onion.as_str(), "{inv}");
    let b_group = inv["conversation_id"].to_string();
    let v = json(&acwtch(&b_dir, &["--json", "group", "list"]).await);
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["accepted"], false, "{v}");
    assert_eq!(v[0]["name"], "book club", "{v}");
    assert!(
        v[0].get("invite").is_none(),
        "the list shows no secrets: {v}"
    );
    let o = acwtch(&b_dir, &["group", "list"]).await;
    assert!(
        ok(&o).starts_with(&format!("{b_group}\t")) && ok(&o).contains("\tinvite\t"),
        "{}",
        ok(&o)
    );
    // Posting before accepting is refused.
    fails(
        &acwtch(&b_dir, &["send", "book club", "too early"]).await,
        1,
        "group accept",
    );
    let o = acwtch(&b_dir, &["group", "accept", "book club"]).await;
    assert!(ok(&o).contains("\taccepted\t"), "{}", ok(&o));
    b.wait_for(STEP, |e| {
        e["event"] == "GroupUpdated" && e["accepted"] == true
    })
    .await;

    // Both post (by name and by conversation id): the server accepts each post.
    let s = post(&a_dir, "book club", "hello from alice", "60", &[]).await;
    assert_eq!(s["delivery"], "sent", "{s}");
    assert_eq!(s["group"], "book club", "{s}");
    assert_eq!(s["server"], server_onion.as_str(), "{s}");
    let o = acwtch(
        &b_dir,
        &["send", &b_group, "hello from bob", "--wait", "60"],
    )
    .await;
    assert!(ok(&o).starts_with("sent:"), "{}", ok(&o));
    a.wait_for(STEP, |e| is_group_message(e, &bob, "hello from bob"))
        .await;
    b.wait_for(STEP, |e| is_group_message(e, &alice, "hello from alice"))
        .await;

    // Both read both, with the right authors (the member's onion).
    let mut both = vec![
        (alice.clone(), "hello from alice".to_owned()),
        (bob.clone(), "hello from bob".to_owned()),
    ];
    both.sort();
    for (dir, me, group) in [(&a_dir, &alice, &a_group), (&b_dir, &bob, &b_group)] {
        let got = group_texts(dir, group).await;
        let mut pairs: Vec<(String, String)> =
            got.iter().map(|(a, t, _)| (a.clone(), t.clone())).collect();
        pairs.sort();
        assert_eq!(pairs, both, "{}", dir.display());
        for (author, _, outgoing) in &got {
            assert_eq!(*outgoing, author == me, "{got:?}");
        }
    }
    let text = ok(&acwtch(&a_dir, &["messages", "book club"]).await);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("\tout\t") && l.ends_with("\thello from alice")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("\tin\treceived\t")
                && l.ends_with(&format!("\t{bob}\thello from bob"))),
        "{text}"
    );

    // Carol joins from the printed invite (the server comes with it) and catches up.
    let o = acwtch(&c_dir, &["group", "join", &invite]).await;
    let c_group = last_line(&o);
    assert!(c_group.parse::<i64>().is_ok(), "{c_group}");
    c.wait_for(STEP, |e| is_group_message(e, &alice, "hello from alice"))
        .await;
    c.wait_for(STEP, |e| is_group_message(e, &bob, "hello from bob"))
        .await;
    let s = post(&c_dir, &c_group, "hello from carol", "60", &[]).await;
    assert_eq!(s["delivery"], "sent", "{s}");
    a.wait_for(STEP, |e| is_group_message(e, &carol, "hello from carol"))
        .await;
    b.wait_for(STEP, |e| is_group_message(e, &carol, "hello from carol"))
        .await;
    let mut got: Vec<(String, String)> = group_texts(&c_dir, &c_group)
        .await
        .into_iter()
        .map(|(a, t, _)| (a, t))
        .collect();
    got.sort();
    let mut all = both.clone();
    all.push((carol.clone(), "hello from carol".to_owned()));
    all.sort();
    assert_eq!(got, all);
    // The server saw Carol's server import too.
    let v = json(&acwtch(&c_dir, &["--json", "server", "list"]).await);
    assert_eq!(v[0]["onion"], server_onion.as_str(), "{v}");

    // Alice's list: two other members seen; Carol's message unread until shown.
    let v = json(&acwtch(&a_dir, &["--json", "group", "list"]).await);
    let g = &v[0];
    assert_eq!(g["accepted"], true, "{g}");
    assert_eq!(g["server"], server_onion.as_str(), "{g}");
    assert_eq!(g["server_state"], "Synced", "{g}");
    assert_eq!(g["messages"], 3, "{g}");
    let mut members: Vec<&str> = g["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    members.sort();
    let mut expected = vec![bob.as_str(), carol.as_str()];
    expected.sort();
    assert_eq!(members, expected, "{g}");
    assert_eq!(g["unread"], 1, "{g}");
    assert_eq!(g["missing"], 0, "{g}");
    ok(&acwtch(&a_dir, &["messages", &a_group]).await);
    let v = json(&acwtch(&a_dir, &["--json", "group", "list"]).await);
    assert_eq!(v[0]["unread"], 0, "{v}");
    // The server as the daemon sees it: synced, a sync time, its group.
    let v = json(&acwtch(&a_dir, &["--json", "server", "list"]).await);
    assert_eq!(v[0]["state"], "Synced", "{v}");
    assert!(v[0]["last_sync"].is_string(), "{v}");
    assert_eq!(v[0]["groups"], 1, "{v}");

    // Carol replies to Alice's message: shown alone (`--limit 1`), the reply still names the
    // message it quotes, found in the group by its hash.
    let cm = json(&acwtch(&c_dir, &["--json", "messages", &c_group]).await);
    let quoted = cm
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["text"] == "hello from alice")
        .unwrap()
        .clone();
    let hash = quoted["content_hash"].as_str().unwrap();
    let s = post(&c_dir, &c_group, "welcome!", "60", &["--reply-to", hash]).await;
    assert_eq!(s["delivery"], "sent", "{s}");
    let o = acwtch(&c_dir, &["messages", &c_group, "--limit", "1"]).await;
    assert!(
        ok(&o)
            .trim_end()
            .ends_with(&format!("[reply to {}] welcome!", quoted["message_id"])),
        "{}",
        ok(&o)
    );

    // A second invite on a server Bob knows already; he declines it (`leave`).
    let o = acwtch(
        &a_dir,
        &["group", "create", "poker night", "--server", &server_onion],
    )
    .await;
    ok(&o);
    // (Bob by his conversation id this time.)
    let v = json(&acwtch(&a_dir, &["--json", "contact", "list"]).await);
    let bob_conv = v[0]["conversation_id"].to_string();
    let o = acwtch(&a_dir, &["group", "invite", "poker night", &bob_conv]).await;
    assert!(ok(&o).starts_with("acknowledged:"), "{}", ok(&o));
    let inv = b
        .wait_for(STEP, |e| {
            e["event"] == "GroupInvite" && e["name"] == "poker night"
        })
        .await;
    let o = acwtch(&b_dir, &["group", "list"]).await;
    assert_eq!(ok(&o).lines().count(), 2, "{}", ok(&o));
    // Leaving deletes: without a terminal to ask on, it needs --yes.
    fails(
        &acwtch(&b_dir, &["group", "leave", "poker night"]).await,
        2,
        "without --yes",
    );
    let o = acwtch(&b_dir, &["group", "leave", "poker night", "--yes"]).await;
    assert!(
        ok(&o).starts_with(&format!("left: {}\t", inv["conversation_id"])),
        "{}",
        ok(&o)
    );
    assert!(ok(&o).contains("\tinvite\t"), "{}", ok(&o));

    // Bob leaves: the group is gone from his list, and its messages with it.
    let o = acwtch(&b_dir, &["group", "leave", &b_group, "--yes"]).await;
    assert!(ok(&o).starts_with("left: "), "{}", ok(&o));
    b.wait_for(STEP, |e| e["event"] == "GroupLeft").await;
    let v = json(&acwtch(&b_dir, &["--json", "group", "list"]).await);
    assert_eq!(v, serde_json::json!([]));
    fails(
        &acwtch(&b_dir, &["messages", "book club"]).await,
        3,
        "no contact or group",
    );

    for d in [a, b, c] {
        assert!(d.stop().await.success());
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn send_to_a_group_without_a_daemon_posts_or_queues() {
    let w = World::new();
    let server_dir = w.dir("server");
    let server = start_server(&server_dir, &w.net).await;
    let bundle = server.bundle();
    let server_onion = server.onion().as_str().to_owned();
    let a_dir = w.dir("a");
    let b_dir = w.dir("b");
    let alice = acreate(&a_dir, "alice").await;
    let bob = acreate(&b_dir, "bob").await;
    let net = w.netflags();

    // Everything without a daemon: import, create, post (online just for the post).
    assert_eq!(
        last_line(&acwtch(&a_dir, &["server", "add", &bundle]).await),
        server_onion
    );
    let o = acwtch(
        &a_dir,
        &["group", "create", "direct", "--server", &server_onion],
    )
    .await;
    let invite = last_line(&o);
    let o = acwtch(
        &a_dir,
        &[
            &["send", "direct", "posted directly", "--wait", "60"][..],
            &net[..],
        ]
        .concat(),
    )
    .await;
    assert!(ok(&o).starts_with("sent:"), "{}", ok(&o));
    let got = group_texts(&a_dir, "direct").await;
    assert_eq!(
        got,
        [(alice.clone(), "posted directly".to_owned(), true)],
        "{got:?}"
    );

    // The server is down: the post is stored, `queued`, exit 0 ...
    server.shutdown().await;
    let s = post(&a_dir, "direct", "posted later", "2", &net).await;
    assert_eq!(s["delivery"], "queued", "{s}");
    assert_eq!(s["state"], "sending", "{s}");
    // ... and the next run posts it once the server is back.
    let server = start_server(&server_dir, &w.net).await;
    let mut a = Daemon::loopback(&a_dir, &w.net, &alice).await;
    a.wait_for(STEP, |e| {
        e["event"] == "GroupMessageSeen" && e["message_id"] == s["message_id"]
    })
    .await;
    let m = messages(&a_dir, "direct").await;
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(m.iter().all(|m| m["state"] == "acknowledged"), "{m:?}");
    assert!(a.stop().await.success());

    // Bob joins offline from the invite (from stdin); his first run fetches both posts.
    let o = acwtch_stdin(&b_dir, &["group", "join", "-"], &format!("{invite}\n")).await;
    let b_group = last_line(&o);
    let v = json(&acwtch(&b_dir, &["--json", "group", "list"]).await);
    assert_eq!(v[0]["accepted"], true, "{v}");
    assert_eq!(v[0]["server_state"], "Disconnected", "{v}");
    let mut b = Daemon::loopback(&b_dir, &w.net, &bob).await;
    for t in ["posted directly", "posted later"] {
        b.wait_for(STEP, |e| is_group_message(e, &alice, t)).await;
    }
    assert!(b.stop().await.success());
    let got = group_texts(&b_dir, &b_group).await;
    assert_eq!(
        got,
        [
            (alice.clone(), "posted directly".to_owned(), false),
            (alice.clone(), "posted later".to_owned(), false),
        ],
        "{got:?}"
    );
    server.shutdown().await;
}

/// The same mistakes without and with a daemon: one `error:` line, the right exit code.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_and_server_errors_are_clear() {
    let w = World::new();
    let net = w.netflags();
    let stranger = acreate(&w.dir("stranger"), "stranger").await;
    for with_daemon in [false, true] {
        let dir = w.dir(if with_daemon { "daemon" } else { "direct" });
        let me = acreate(&dir, "me").await;
        let mut d = None;
        if with_daemon {
            d = Some(Daemon::loopback(&dir, &w.net, &me).await);
        }
        let run = |args: Vec<&str>| {
            let dir = dir.clone();
            let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
            async move {
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                acwtch(&dir, &a).await
            }
        };
        let mode = if with_daemon { "daemon" } else { "direct" };
        eprintln!("---- {mode} ----");

        // Bundles.
        fails(
            &run(vec!["server", "add", "garbage"]).await,
            2,
            "not a server bundle",
        );
        fails(
            &run(vec!["server", "add", "server:bm90IGEgYnVuZGxl"]).await,
            2,
            "not a valid server bundle",
        );
        let (bundle, server) = offline_bundle();
        // Servers: unknown, invalid.
        fails(
            &run(vec!["group", "create", "g", "--server", &stranger]).await,
            3,
            "no server",
        );
        fails(
            &run(vec!["group", "create", "g", "--server", "nope"]).await,
            2,
            "not a valid",
        );
        // Names: one line, not too long (as every name), and one commands can name it by.
        let long = "n".repeat(257);
        for (bad, why) in [
            ("two\nlines", "line break"),
            (long.as_str(), "longer than 256"),
            ("42", "digits only"),
            (stranger.as_str(), "onion address"),
        ] {
            fails(
                &run(vec!["group", "create", bad, "--server", &server]).await,
                2,
                why,
            );
        }
        fails(
            &run(vec!["server", "remove", &server]).await,
            3,
            "no server",
        );
        assert_eq!(
            last_line(&run(vec!["server", "add", &bundle]).await),
            server
        );
        // Importing it again is harmless.
        assert_eq!(
            last_line(&run(vec!["server", "add", &bundle]).await),
            server
        );
        let v = json(&run(vec!["--json", "server", "list"]).await);
        assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
        fails(
            &run(vec!["group", "create", "  ", "--server", &server]).await,
            2,
            "empty",
        );

        // Two groups with one name: ambiguous by name, fine by conversation id or group id.
        let o = run(vec!["group", "create", "twin", "--server", &server]).await;
        let first = ok(&o).lines().next().unwrap().to_owned();
        let invite = last_line(&o);
        let o = run(vec![
            "--json", "group", "create", "twin", "--server", &server,
        ])
        .await;
        let second = json(&o);
        assert!(second["invite"]
            .as_str()
            .unwrap()
            .starts_with("tofubundle:"));
        let second_id = second["group_id"].as_str().unwrap().to_owned();
        fails(&run(vec!["messages", "twin"]).await, 2, "several groups");
        fails(
            &run([&["send", "twin", "hi"][..], &net[..]].concat()).await,
            2,
            "several groups",
        );
        fails(
            &run(vec!["group", "accept", "twin"]).await,
            2,
            "several groups",
        );
        fails(
            &run(vec!["group", "leave", "twin", "--yes"]).await,
            2,
            "several groups",
        );
        assert!(json(&run(vec!["--json", "messages", &first]).await)
            .as_array()
            .unwrap()
            .is_empty());
        assert!(json(&run(vec!["--json", "messages", &second_id]).await)
            .as_array()
            .unwrap()
            .is_empty());

        // A group renamed (ours alone): the name no longer ambiguous; bad names refused.
        fails(
            &run(vec!["group", "rename", "twin", "x"]).await,
            2,
            "several groups",
        );
        fails(
            &run(vec!["group", "rename", &first, "  "]).await,
            2,
            "empty",
        );
        fails(
            &run(vec!["group", "rename", &first, "two\nlines"]).await,
            2,
            "line break",
        );
        fails(
            &run(vec!["group", "rename", "99", "x"]).await,
            3,
            "no group",
        );
        let o = run(vec!["group", "rename", &first, " first twin "]).await;
        assert!(ok(&o).starts_with("renamed: "), "{}", ok(&o));
        assert!(ok(&o).trim_end().ends_with("\tfirst twin"), "{}", ok(&o));
        let v = json(&run(vec!["--json", "group", "list"]).await);
        let mut names: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["first twin", "twin"], "{v}");
        assert!(json(&run(vec!["--json", "messages", "twin"]).await)
            .as_array()
            .unwrap()
            .is_empty());
        // A contact named by us, then not.
        ok(&run(vec!["contact", "add", &stranger]).await);
        let o = run(vec!["contact", "rename", &stranger, "Mr X"]).await;
        assert!(ok(&o).trim_end().ends_with("\tMr X"), "{}", ok(&o));
        let v = json(&run(vec!["--json", "contact", "list"]).await);
        assert_eq!(v[0]["name"], "Mr X", "{v}");
        fails(
            &run(vec!["contact", "rename", &stranger, "a\u{7}b"]).await,
            2,
            "control character",
        );
        ok(&run(vec!["contact", "rename", &stranger]).await);
        let v = json(&run(vec!["--json", "contact", "list"]).await);
        assert_eq!(v[0]["name"], Value::Null, "{v}");
        ok(&run(vec!["contact", "delete", &stranger, "--yes"]).await);

        // Unknown groups and contacts.
        fails(
            &run(vec!["messages", "book club"]).await,
            3,
            "no contact or group",
        );
        fails(
            &run(vec!["messages", "99"]).await,
            3,
            "no contact or group with conversation id 99",
        );
        fails(
            &run([&["send", "nosuch", "hi"][..], &net[..]].concat()).await,
            3,
            "no contact or group",
        );
        fails(&run(vec!["group", "accept", "nosuch"]).await, 3, "no group");
        fails(
            &run(vec!["group", "leave", "99", "--yes"]).await,
            3,
            "no group",
        );
        fails(
            &run([&["group", "invite", "nosuch", &stranger][..], &net[..]].concat()).await,
            3,
            "no group",
        );
        fails(
            &run([&["group", "invite", &first, &stranger][..], &net[..]].concat()).await,
            3,
            "no contact",
        );
        fails(
            &run([&["group", "invite", &first, "zzz"][..], &net[..]].concat()).await,
            3,
            "no contact \"zzz\"",
        );

        // Invites: garbage, a bare invite for a server this profile does not know.
        fails(
            &run(vec!["group", "join", "garbage"]).await,
            2,
            "not a group invite",
        );
        fails(
            &run(vec!["group", "join", "torv3AAAA"]).await,
            2,
            "not a valid group invite",
        );
        let bare = invite.split("||").nth(1).unwrap().to_owned();
        let other = w.dir(&format!("other-{mode}"));
        acreate(&other, "other").await;
        fails(
            &acwtch(&other, &["group", "join", &bare]).await,
            3,
            "server is unknown",
        );
        // Joining a group we created already is harmless: the same conversation.
        assert_eq!(last_line(&run(vec!["group", "join", &invite]).await), first);

        // A server in use cannot be removed; once its groups are left, it can.
        fails(
            &run(vec!["server", "remove", &server]).await,
            1,
            "leave them first",
        );
        ok(&run(vec!["group", "leave", &first, "--yes"]).await);
        ok(&run(vec!["group", "leave", "twin", "--yes"]).await);
        let o = run(vec!["server", "remove", &server]).await;
        assert!(ok(&o).starts_with("removed: "), "{}", ok(&o));
        assert_eq!(
            json(&run(vec!["--json", "server", "list"]).await),
            serde_json::json!([])
        );
        assert_eq!(
            json(&run(vec!["--json", "group", "list"]).await),
            serde_json::json!([])
        );

        if let Some(mut d) = d {
            for name in [
                "ServerAdded",
                "GroupCreated",
                "GroupRenamed",
                "GroupLeft",
                "ServerRemoved",
            ] {
                d.wait_for(STEP, |e| e["event"] == name).await;
            }
            assert!(d.stop().await.success());
        }
    }
}

/// `cwtch file share GROUP PATH` posts the offer to the group; a member who is the sharer's
/// contact downloads it with `cwtch file download GROUP KEY` (from the sharer, over P2P);
/// a member who is not is told to add the sharer first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_shared_in_a_group_is_downloaded_by_a_member() {
    let w = World::new();
    let server = start_server(&w.dir("server"), &w.net).await;
    let bundle = server.bundle();
    let server_onion = server.onion().as_str().to_owned();
    let (a_dir, b_dir, c_dir) = (w.dir("a"), w.dir("b"), w.dir("c"));
    let alice = acreate(&a_dir, "alice").await;
    let bob = acreate(&b_dir, "bob").await;
    let carol = acreate(&c_dir, "carol").await;
    let mut a = Daemon::loopback(&a_dir, &w.net, &alice).await;
    let mut b = Daemon::loopback(&b_dir, &w.net, &bob).await;
    let mut c = Daemon::loopback(&c_dir, &w.net, &carol).await;
    ok(&acwtch(&a_dir, &["server", "add", &bundle]).await);
    let o = acwtch(
        &a_dir,
        &["group", "create", "papers", "--server", &server_onion],
    )
    .await;
    let invite = last_line(&o);
    befriend(&mut a, &alice, &mut b, &bob).await;
    ok(&acwtch(&a_dir, &["group", "invite", "papers", &bob]).await);
    b.wait_for(STEP, |e| {
        e["event"] == "GroupInvite" && e["from"] == alice.as_str()
    })
    .await;
    ok(&acwtch(&b_dir, &["group", "accept", "papers"]).await);
    // Carol joins from the pasted invite; she and Alice are not contacts.
    ok(&acwtch(&c_dir, &["group", "join", &invite]).await);

    let src = w.dir("src");
    std::fs::create_dir_all(&src).unwrap();
    let path = src.join("minutes.txt");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let o = acwtch(
        &a_dir,
        &[
            "file",
            "share",
            "papers",
            path.to_str().unwrap(),
            "--wait",
            "60",
        ],
    )
    .await;
    let out = ok(&o);
    assert!(out.starts_with("sent:"), "{out}");
    let key = last_line(&o);
    assert_eq!(key.len(), 128 + 1 + 48, "{out}");
    for d in [&mut b, &mut c] {
        d.wait_for(STEP, |e| {
            e["event"] == "GroupMessage" && e["author"] == alice.as_str() && e["overlay"] == 200
        })
        .await;
    }
    // The offer is listed in the group's files.
    let v = json(&acwtch(&b_dir, &["--json", "file", "list", "papers"]).await);
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["file_key"], key.as_str(), "{v}");
    assert_eq!(v[0]["state"], "offered", "{v}");

    // Bob downloads it through his daemon.
    let to = w.dir("downloads");
    let v = json(
        &acwtch(
            &b_dir,
            &[
                "--json",
                "file",
                "download",
                "papers",
                &key,
                "--to",
                to.to_str().unwrap(),
            ],
        )
        .await,
    );
    assert_eq!(v["state"], "downloading", "{v}");
    let done = b
        .wait_for(STEP, |e| {
            e["event"] == "FileDownloaded" && e["file_key"] == key.as_str()
        })
        .await;
    let got = PathBuf::from(done["path"].as_str().unwrap());
    assert_eq!(got, to.join("minutes.txt"));
    assert_eq!(std::fs::read(&got).unwrap(), data);

    // Carol is told what to do.
    fails(
        &acwtch(
            &c_dir,
            &[
                "file",
                "download",
                "papers",
                &key,
                "--to",
                to.to_str().unwrap(),
            ],
        )
        .await,
        1,
        &format!("cwtch contact add {alice}"),
    );
    drop((a, b, c));
    server.shutdown().await;
}
