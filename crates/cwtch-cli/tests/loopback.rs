//! Two `cwtch run` processes over the loopback network (separate data directories, one
//! shared loopback directory), driven through the control socket by the `cwtch` command:
//! contact requests, acceptance, messages both ways with acknowledgements, blocking,
//! delivery after a restart, `send` without a daemon, profile settings seen by contacts,
//! strangers refused, contact deletion, and SIGKILL mid-conversation.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

struct World {
    _tmp: tempfile::TempDir,
    net: PathBuf,
    a_dir: PathBuf,
    b_dir: PathBuf,
    alice: String,
    bob: String,
}

impl World {
    async fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let net = tmp.path().join("net");
        let a_dir = tmp.path().join("a");
        let b_dir = tmp.path().join("b");
        let alice = acreate(&a_dir, "alice").await;
        let bob = acreate(&b_dir, "bob").await;
        World {
            _tmp: tmp,
            net,
            a_dir,
            b_dir,
            alice,
            bob,
        }
    }

    fn net(&self) -> &str {
        self.net.to_str().unwrap()
    }

    async fn run_a(&self) -> Daemon {
        Daemon::loopback(&self.a_dir, &self.net, &self.alice).await
    }

    async fn run_b(&self) -> Daemon {
        Daemon::loopback(&self.b_dir, &self.net, &self.bob).await
    }

    /// Alice adds Bob, Bob sees the request and accepts it (through the control sockets).
    async fn befriend(&self, a: &mut Daemon, b: &mut Daemon) {
        let o = acwtch(&self.a_dir, &["contact", "add", &self.bob]).await;
        assert!(
            ok(&o).starts_with(&format!("1\t{}\taccepted\t", self.bob)),
            "{}",
            ok(&o)
        );
        let req = b
            .wait_for(STEP, |e| {
                e["event"] == "ContactCreated" && e["contact"] == self.alice.as_str()
            })
            .await;
        assert_eq!(req["request"], true, "{req}");
        assert_eq!(req["accepted"], false, "{req}");
        let o = acwtch(&self.b_dir, &["contact", "list"]).await;
        assert!(
            ok(&o).starts_with(&format!("1\t{}\trequest\t", self.alice)),
            "{}",
            ok(&o)
        );
        let o = acwtch(&self.b_dir, &["contact", "accept", &self.alice]).await;
        assert!(ok(&o).contains("\taccepted\t"), "{}", ok(&o));
        b.wait_for(STEP, |e| {
            e["event"] == "ContactUpdated"
                && e["contact"] == self.alice.as_str()
                && e["accepted"] == true
        })
        .await;
        // Both sides learn each other's name once accepted.
        a.wait_for(STEP, |e| {
            e["event"] == "AttributeUpdated" && e["value"] == "bob"
        })
        .await;
    }
}

/// `cwtch send --json`: the parsed result.
async fn send(dir: &Path, contact: &str, text: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--json", "send", contact, text];
    args.extend_from_slice(extra);
    json(&acwtch(dir, &args).await)
}

fn is_new_message(e: &Value, text: &str) -> bool {
    e["event"] == "NewMessage" && e["text"] == text
}

fn is_ack(e: &Value, message_id: &Value) -> bool {
    e["event"] == "Acknowledged" && e["message_id"] == *message_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_daemons_add_accept_talk_block_and_deliver_after_restarts() {
    let w = World::new().await;
    let mut a = w.run_a().await;
    let mut b = w.run_b().await;

    // Only one `cwtch run` per data directory; the control socket is private.
    let o = acwtch(
        &w.a_dir,
        &["run", "--network", "loopback", "--loopback-dir", w.net()],
    )
    .await;
    fails(&o, 5, "already running");
    {
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(w.a_dir.join("cwtch.sock")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
    }
    // The daemon says which profiles it runs.
    let v = json(&acwtch(&w.a_dir, &["--json", "profile", "list"]).await);
    assert_eq!(v[0]["running"], true, "{v}");

    w.befriend(&mut a, &mut b).await;

    // Messages both ways, through the daemons; `send` waits for the acknowledgement.
    let o = acwtch(&w.a_dir, &["send", &w.bob, "hello bob"]).await;
    assert!(ok(&o).starts_with("acknowledged:"), "{}", ok(&o));
    let m = b.wait_for(STEP, |e| is_new_message(e, "hello bob")).await;
    assert_eq!(m["contact"], w.alice.as_str());
    a.wait_for(STEP, |e| {
        e["event"] == "Acknowledged" && e["contact"] == w.bob.as_str()
    })
    .await;
    let s = send(&w.b_dir, "1", "hello alice", &[]).await;
    assert_eq!(s["delivery"], "acknowledged", "{s}");
    assert_eq!(s["state"], "acknowledged", "{s}");
    a.wait_for(STEP, |e| is_new_message(e, "hello alice")).await;
    b.wait_for(STEP, |e| is_ack(e, &s["message_id"])).await;

    // Bob's reply is unread at Alice's until `messages` shows it.
    let o = acwtch(&w.a_dir, &["contact", "list"]).await;
    assert!(
        ok(&o).starts_with(&format!("1\t{}\taccepted\tAuthenticated\t1\tbob", w.bob)),
        "{}",
        ok(&o)
    );
    let text = ok(&acwtch(&w.a_dir, &["messages", &w.bob]).await);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let v = json(&acwtch(&w.a_dir, &["--json", "contact", "list"]).await);
    assert_eq!(v[0]["unread"], 0, "{v}");
    // Each line: id, direction, state, time, author, text.
    assert!(
        lines[0].starts_with("1\tout\tacknowledged\t") && lines[0].ends_with("\tme\thello bob"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("2\tin\treceived\t")
            && lines[1].ends_with(&format!("\t{}\thello alice", w.bob)),
        "{text}"
    );
    let bm = messages(&w.b_dir, &w.alice).await;
    assert_eq!(count_text(&bm, "hello bob", false), 1);
    assert_eq!(count_text(&bm, "hello alice", true), 1);

    // Blocking stops delivery: the message stays queued at Alice's.
    let o = acwtch(&w.b_dir, &["contact", "block", &w.alice]).await;
    assert!(ok(&o).contains("\tblocked\t"));
    b.wait_for(STEP, |e| e["event"] == "ContactBlocked").await;
    let s = send(&w.a_dir, &w.bob, "while blocked", &["--wait", "3"]).await;
    assert_eq!(s["delivery"], "queued", "{s}");
    let bm = messages(&w.b_dir, &w.alice).await;
    assert_eq!(count_text(&bm, "while blocked", false), 0);
    assert!(b
        .events("NewMessage")
        .iter()
        .all(|e| e["text"] != "while blocked"));
    let o = acwtch(&w.a_dir, &["contact", "list"]).await;
    assert!(ok(&o).contains(&format!("1\t{}\taccepted\t", w.bob)));
    // Unblocking lets it through.
    ok(&acwtch(&w.b_dir, &["contact", "unblock", &w.alice]).await);
    b.wait_for(STEP, |e| is_new_message(e, "while blocked"))
        .await;
    a.wait_for(STEP, |e| is_ack(e, &s["message_id"])).await;

    // Bob's process stops (cleanly: exit 0, socket removed); Alice's message waits for him.
    let status = b.stop().await;
    assert!(status.success(), "{status}");
    assert!(!w.b_dir.join("cwtch.sock").exists());
    let s = send(&w.a_dir, &w.bob, "while you were out", &["--wait", "0"]).await;
    assert_eq!(s["delivery"], "queued", "{s}");
    let mut b = w.run_b().await;
    b.wait_for(STEP, |e| is_new_message(e, "while you were out"))
        .await;
    a.wait_for(STEP, |e| is_ack(e, &s["message_id"])).await;

    // No daemon for Alice: `cwtch send` brings her online itself and waits for the ack.
    assert!(a.stop().await.success());
    let net = ["--network", "loopback", "--loopback-dir", w.net()];
    let o = acwtch(
        &w.a_dir,
        &[&["send", &w.bob, "direct"][..], &net[..]].concat(),
    )
    .await;
    assert!(ok(&o).starts_with("acknowledged:"), "{}", ok(&o));
    b.wait_for(STEP, |e| is_new_message(e, "direct")).await;
    // ... and with Bob offline too, it says the message is queued; the next run delivers it.
    assert!(b.stop().await.success());
    let o = acwtch(
        &w.a_dir,
        &[
            &["--json", "send", &w.bob, "direct, queued", "--wait", "1"][..],
            &net[..],
        ]
        .concat(),
    )
    .await;
    let s = json(&o);
    assert_eq!(s["delivery"], "queued", "{s}");
    let mut b = w.run_b().await;
    let mut a = w.run_a().await;
    b.wait_for(STEP, |e| is_new_message(e, "direct, queued"))
        .await;
    a.wait_for(STEP, |e| is_ack(e, &s["message_id"])).await;

    // Everything exactly once on both sides, every message of ours acknowledged.
    let texts = [
        ("hello bob", true),
        ("hello alice", false),
        ("while blocked", true),
        ("while you were out", true),
        ("direct", true),
        ("direct, queued", true),
    ];
    let am = messages(&w.a_dir, &w.bob).await;
    let bm = messages(&w.b_dir, &w.alice).await;
    assert_eq!(am.len(), texts.len(), "{am:?}");
    assert_eq!(bm.len(), texts.len(), "{bm:?}");
    for (t, from_alice) in texts {
        assert_eq!(count_text(&am, t, from_alice), 1, "{t} at Alice's");
        assert_eq!(count_text(&bm, t, !from_alice), 1, "{t} at Bob's");
    }
    for m in am.iter().chain(&bm).filter(|m| m["outgoing"] == true) {
        assert_eq!(m["state"], "acknowledged", "{m}");
    }

    // Search, through the daemon: newest first, with the position `messages --offset` takes.
    let found = json(&acwtch(&w.a_dir, &["--json", "search", "DIRECT"]).await);
    let texts: Vec<&Value> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["message"]["text"])
        .collect();
    assert_eq!(texts, ["direct, queued", "direct"], "{found}");
    assert_eq!(found[0]["conversation"], "bob", "{found}");
    assert_eq!(found[0]["position"], 0, "{found}");
    assert_eq!(found[1]["position"], 1, "{found}");
    let text = ok(&acwtch(&w.a_dir, &["search", "ALICE", "--in", &w.bob]).await);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].starts_with("1\tbob\t4\t2\tin\treceived\t")
            && lines[0].ends_with(&format!("\t{}\thello alice", w.bob)),
        "{text}"
    );
    let shown = ok(&acwtch(
        &w.a_dir,
        &["messages", &w.bob, "--offset", "4", "--limit", "1"],
    )
    .await);
    assert!(
        shown.starts_with("2\tin\t") && shown.trim_end().ends_with("\thello alice"),
        "{shown}"
    );
    let one = json(&acwtch(&w.a_dir, &["--json", "search", "direct", "--limit", "1"]).await);
    assert_eq!(one.as_array().unwrap().len(), 1, "{one}");
    assert_eq!(
        ok(&acwtch(&w.a_dir, &["search", "no such words"]).await),
        ""
    );
    fails(
        &acwtch(&w.a_dir, &["search", "  "]).await,
        2,
        "nothing to search",
    );
    fails(
        &acwtch(&w.a_dir, &["search", "direct", "--in", "42"]).await,
        3,
        "no contact or group",
    );
    assert!(a.stop().await.success());
    assert!(b.stop().await.success());
    // Without a daemon, the same answer from the data directory.
    let offline = json(&acwtch(&w.a_dir, &["--json", "search", "DIRECT"]).await);
    assert_eq!(offline, found);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_profile_goes_offline_and_online_and_can_load_offline() {
    let w = World::new().await;
    // Only a running daemon can take a profile online.
    fails(
        &acwtch(&w.b_dir, &["profile", "set", "--online", "on"]).await,
        2,
        "start one first",
    );
    let mut a = w.run_a().await;
    let mut b = w.run_b().await;
    w.befriend(&mut a, &mut b).await;
    let bob_gone = |e: &Value| {
        e["event"] == "PeerStateChanged"
            && e["contact"] == w.bob.as_str()
            && e["state"] == "Disconnected"
    };

    // Offline: Alice's connection closes, her message waits.
    let o = acwtch(&w.b_dir, &["profile", "set", "--online", "off"]).await;
    assert!(
        ok(&o).contains("\nautostart\ton\nonline\toff\n"),
        "{}",
        ok(&o)
    );
    a.wait_for(STEP, bob_gone).await;
    let s = send(&w.a_dir, &w.bob, "while offline", &["--wait", "1"]).await;
    assert_eq!(s["delivery"], "queued", "{s}");
    // Bob, offline, sends too: it is stored at once, and he is told why it waits (no 30 s
    // wait for an acknowledgement that cannot come).
    let o = acwtch(&w.b_dir, &["send", &w.alice, "from offline"]).await;
    assert!(
        ok(&o).contains("the profile is offline, so it is sent once it is back online"),
        "{}",
        ok(&o)
    );
    let s = send(&w.b_dir, &w.alice, "from offline, again", &[]).await;
    assert_eq!(
        (&s["offline"], s["waited_secs"].as_u64()),
        (&Value::Bool(true), Some(0)),
        "{s}"
    );
    // Online again: they arrive.
    ok(&acwtch(&w.b_dir, &["profile", "set", "--online", "on"]).await);
    b.wait_online(&w.bob).await;
    b.wait_for(STEP, |e| is_new_message(e, "while offline"))
        .await;
    a.wait_for(STEP, |e| is_new_message(e, "from offline, again"))
        .await;

    // Without autostart, the next `cwtch run` loads it offline until asked.
    let o = acwtch(&w.b_dir, &["profile", "set", "--autostart", "off"]).await;
    assert!(
        ok(&o).contains("\nautostart\toff\nonline\ton\n"),
        "{}",
        ok(&o)
    );
    assert!(b.stop().await.success());
    a.wait_for(STEP, bob_gone).await;
    let mut b = Daemon::spawn(
        &w.b_dir,
        &["--network", "loopback", "--loopback-dir", w.net()],
    );
    b.wait_for(STEP, |e| e["event"] == "ProfileLoaded").await;
    let o = acwtch(&w.b_dir, &["profile", "show"]).await;
    assert!(
        ok(&o).contains("\nautostart\toff\nonline\toff\n"),
        "{}",
        ok(&o)
    );
    assert!(b.events("ProfileOnline").is_empty());
    ok(&acwtch(&w.b_dir, &["profile", "set", "--online", "on"]).await);
    b.wait_online(&w.bob).await;
    b.wait_for(STEP, |e| {
        e["event"] == "PeerStateChanged"
            && e["contact"] == w.alice.as_str()
            && e["state"] == "Authenticated"
    })
    .await;
    assert!(a.stop().await.success());
    assert!(b.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn settings_reach_contacts_strangers_are_refused_and_deleted_contacts_are_gone() {
    let w = World::new().await;
    let carol_dir = w._tmp.path().join("c");
    let carol = acreate(&carol_dir, "carol").await;
    let mut a = w.run_a().await;
    let mut b = w.run_b().await;
    w.befriend(&mut a, &mut b).await;

    // Bob changes his status and refuses strangers, through his daemon.
    let o = acwtch(
        &w.b_dir,
        &[
            "profile",
            "set",
            "--status",
            "gone fishing",
            "--block-unknown",
            "on",
        ],
    )
    .await;
    assert!(
        ok(&o).ends_with(
            "status\tgone fishing\nblock-unknown\ton\nimage-previews\toff\nautostart\ton\n\
             online\ton\nimage\tnone\n"
        ),
        "{}",
        ok(&o)
    );
    // Alice fetches the new status on her next connection to him; the setting survives
    // Bob's restart.
    assert!(b.stop().await.success());
    let mut b = w.run_b().await;
    a.wait_for(STEP, |e| {
        e["event"] == "AttributeUpdated"
            && e["key"] == "public.profile.profile-status"
            && e["value"] == "gone fishing"
    })
    .await;
    let v = json(&acwtch(&w.b_dir, &["--json", "profile", "show"]).await);
    assert_eq!(v["block_unknown"], true, "{v}");
    // Alice lists him by the name he gives himself, but commands do not take it: he chose
    // it (only a nickname Alice gives him names him).
    let v = json(&acwtch(&w.a_dir, &["--json", "contact", "list"]).await);
    assert_eq!(v[0]["name"], "bob", "{v}");
    fails(&acwtch(&w.a_dir, &["messages", "bob"]).await, 3, "nickname");

    // Carol, a stranger, dials Bob: authenticated, then closed; nothing is stored at Bob's.
    ok(&acwtch(&carol_dir, &["contact", "add", &w.bob]).await);
    let mut c = Daemon::loopback(&carol_dir, &w.net, &carol).await;
    c.wait_for(STEP, |e| {
        e["event"] == "PeerStateChanged"
            && e["contact"] == w.bob.as_str()
            && (e["state"] == "Failed" || e["state"] == "Disconnected")
    })
    .await;
    let o = acwtch(&w.b_dir, &["contact", "list"]).await;
    assert_eq!(ok(&o).lines().count(), 1, "{}", ok(&o));
    assert!(!ok(&o).contains(&carol), "{}", ok(&o));
    assert!(b.events("ContactCreated").is_empty());
    // Letting strangers in again: Carol's next attempt becomes a contact request.
    let o = acwtch(&w.b_dir, &["profile", "set", "--block-unknown", "off"]).await;
    assert!(ok(&o).contains("\nblock-unknown\toff\n"), "{}", ok(&o));
    let req = b
        .wait_for(STEP, |e| {
            e["event"] == "ContactCreated" && e["contact"] == carol.as_str()
        })
        .await;
    assert_eq!(req["request"], true, "{req}");

    // Alice deletes Bob (confirmation required): the conversation is gone.
    let s = send(&w.a_dir, &w.bob, "last words", &[]).await;
    assert_eq!(s["delivery"], "acknowledged", "{s}");
    // Bob replies quoting it (by the content hash `messages --json` shows); a hash that is
    // not in the conversation is refused.
    let got = b.wait_for(STEP, |e| is_new_message(e, "last words")).await;
    let hash = got["content_hash"].as_str().unwrap().to_owned();
    let bm = messages(&w.b_dir, &w.alice).await;
    let stored = bm.iter().find(|m| m["text"] == "last words").unwrap();
    assert_eq!(stored["content_hash"], hash.as_str(), "{stored}");
    fails(
        &acwtch(&w.b_dir, &["send", &w.alice, "huh?", "--reply-to", "AAAA"]).await,
        3,
        "content hash",
    );
    let s = send(&w.b_dir, &w.alice, "noted", &["--reply-to", &hash]).await;
    assert_eq!(s["delivery"], "acknowledged", "{s}");
    let r = a.wait_for(STEP, |e| is_new_message(e, "noted")).await;
    assert_eq!(r["overlay"], 10, "{r}");
    assert_eq!(r["quoted_hash"], hash.as_str(), "{r}");
    // Alice's `messages` marks the reply, with the id of the message it quotes.
    let am = messages(&w.a_dir, &w.bob).await;
    let quoted = am.iter().find(|m| m["text"] == "last words").unwrap()["message_id"].clone();
    let reply = am.iter().find(|m| m["text"] == "noted").unwrap();
    assert_eq!(reply["reply_to"], quoted, "{reply}");
    let o = acwtch(&w.a_dir, &["messages", &w.bob]).await;
    assert!(
        ok(&o).contains(&format!("\t[reply to {quoted}] noted\n")),
        "{}",
        ok(&o)
    );
    // The same text again after the reply, and a page without the quoted one: the reply
    // still points at the message before it (not the newer one with that text).
    let s = send(&w.a_dir, &w.bob, "last words", &[]).await;
    assert_eq!(s["delivery"], "acknowledged", "{s}");
    let v = json(&acwtch(&w.a_dir, &["--json", "messages", &w.bob, "--limit", "2"]).await);
    let page = v.as_array().unwrap();
    assert_eq!(page.len(), 2, "{v}");
    let reply = page.iter().find(|m| m["text"] == "noted").unwrap();
    assert_eq!(reply["reply_to"], quoted, "{reply}");
    fails(
        &acwtch(&w.a_dir, &["contact", "delete", &w.bob]).await,
        2,
        "--yes",
    );
    let v = json(&acwtch(&w.a_dir, &["--json", "contact", "delete", &w.bob, "--yes"]).await);
    assert_eq!(v["onion"], w.bob.as_str(), "{v}");
    assert_eq!(v["message_count"], 3, "{v}");
    a.wait_for(STEP, |e| {
        e["event"] == "ContactDeleted" && e["contact"] == w.bob.as_str()
    })
    .await;
    fails(
        &acwtch(&w.a_dir, &["messages", &w.bob]).await,
        3,
        "no contact",
    );
    // Bob still has Alice as a contact and reconnects: to Alice he is a stranger now, so his
    // connection is a new contact request, in a new conversation with no history.
    let req = a
        .wait_for(STEP, |e| {
            e["event"] == "ContactCreated" && e["contact"] == w.bob.as_str()
        })
        .await;
    assert_eq!(req["request"], true, "{req}");
    assert_ne!(req["conversation_id"], 1, "{req}");
    assert!(messages(&w.a_dir, &w.bob).await.is_empty());
    for d in [a, b, c] {
        assert!(d.stop().await.success());
    }
}

/// Send `n` texts `"{prefix} {i}"` through `dir`'s daemon, without waiting for acks.
async fn send_many(dir: PathBuf, contact: String, prefix: String, n: usize) -> Vec<String> {
    let mut sent = Vec::new();
    for i in 0..n {
        let t = format!("{prefix} {i}");
        let s = send(&dir, &contact, &t, &["--wait", "0"]).await;
        assert!(
            s["delivery"] == "queued" || s["delivery"] == "acknowledged",
            "{s}"
        );
        sent.push(t);
    }
    sent
}

/// Wait until `cond` holds for `dir`'s stored conversation with `contact`, looking again
/// after every message or acknowledgement event of `d`.
async fn settle(d: &mut Daemon, dir: &Path, contact: &str, cond: impl Fn(&[Value]) -> bool) {
    let deadline = tokio::time::Instant::now() + 2 * STEP;
    loop {
        let msgs = messages(dir, contact).await;
        if cond(&msgs) {
            return;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let progress = d
            .try_wait_for(left, |e| {
                e["event"] == "NewMessage" || e["event"] == "Acknowledged"
            })
            .await;
        assert!(progress.is_some(), "no progress; stored: {msgs:?}");
    }
}

fn all_acked(msgs: &[Value], texts: &[String]) -> bool {
    texts.iter().all(|t| {
        msgs.iter().any(|m| {
            m["text"] == t.as_str() && m["outgoing"] == true && m["state"] == "acknowledged"
        })
    })
}

fn all_received(msgs: &[Value], texts: &[String]) -> bool {
    texts.iter().all(|t| count_text(msgs, t, false) >= 1)
}

/// Kill `victim` with SIGKILL while both sides are sending, keep the other side sending,
/// restart the victim, and check that nothing was lost or duplicated. Returns the restarted
/// victim.
async fn kill_mid_conversation(
    net: &Path,
    victim: Daemon,
    victim_onion: &str,
    other: &mut Daemon,
    other_onion: &str,
    tag: &str,
) -> Daemon {
    let vdir = victim.dir.clone();
    let odir = other.dir.clone();
    let v_before = messages(&vdir, other_onion).await;
    // The other side sends while the victim sends and dies...
    let during = tokio::spawn(send_many(
        odir.clone(),
        victim_onion.to_owned(),
        format!("{tag}: other, during"),
        8,
    ));
    // ... the victim sends a burst of messages at once, and is killed as soon as the first
    // of them is stored: the others are in every state from "not yet asked" to "sent, not
    // acknowledged". A send that finds no daemon any more sends by itself (the network
    // flags), one that loses its daemon mid-request fails, its message stored or not.
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (dir, contact) = (vdir.clone(), other_onion.to_owned());
        let net = net.to_str().unwrap().to_owned();
        let text = format!("{tag}: victim {i}");
        burst.spawn(async move {
            let netflags = ["--network", "loopback", "--loopback-dir", &net];
            let args = [
                &["--json", "send", &contact, &text, "--wait", "0"][..],
                &netflags[..],
            ]
            .concat();
            let o = acwtch(&dir, &args).await;
            (text, o)
        });
    }
    let mut outcomes = vec![burst.join_next().await.unwrap().unwrap()];
    let seen = victim.kill9().await;
    while let Some(r) = burst.join_next().await {
        outcomes.push(r.unwrap());
    }
    let mut other_sent = during.await.unwrap();
    // ... and while it is down.
    other_sent.extend(
        send_many(
            odir.clone(),
            victim_onion.to_owned(),
            format!("{tag}: other, after"),
            3,
        )
        .await,
    );
    let mut victim_ok = Vec::new();
    let mut victim_ids = Vec::new();
    let mut unknown = Vec::new();
    for (text, o) in &outcomes {
        if o.status.success() {
            victim_ids.push(json(o)["message_id"].as_i64().unwrap());
            victim_ok.push(text.clone());
        } else {
            fails(o, 1, "cwtch run");
            unknown.push(text.clone());
        }
    }
    assert!(!victim_ok.is_empty());

    // What the victim showed before it died.
    let received_before: BTreeSet<String> = seen
        .iter()
        .filter(|e| e["event"] == "NewMessage")
        .map(|e| e["text"].as_str().unwrap().to_owned())
        .collect();
    let acked_before: BTreeSet<i64> = seen
        .iter()
        .filter(|e| e["event"] == "Acknowledged")
        .map(|e| e["message_id"].as_i64().unwrap())
        .filter(|id| victim_ids.contains(id))
        .collect();
    let unseen = other_sent
        .iter()
        .filter(|t| !received_before.contains(*t))
        .count();
    eprintln!(
        "{tag}: at the kill, {} of the victim's {} stored messages were unacknowledged, {} sends \
         failed with the daemon, and {unseen} of the other's {} were not yet shown",
        victim_ids.len() - acked_before.len(),
        victim_ids.len(),
        unknown.len(),
        other_sent.len()
    );

    // Restart. Everything the victim stored arrives and is acknowledged.
    let mut victim = Daemon::loopback(&vdir, net, victim_onion).await;
    let round = |m: &Value| m["text"].as_str().is_some_and(|t| t.starts_with(tag));
    settle(&mut victim, &vdir, other_onion, |m| {
        all_acked(m, &victim_ok)
            && all_received(m, &other_sent)
            && m.iter()
                .filter(|m| m["outgoing"] == true)
                .all(|m| m["state"] == "acknowledged")
    })
    .await;
    let vm = messages(&vdir, other_onion).await;
    let victim_stored: Vec<String> = vm
        .iter()
        .filter(|m| m["outgoing"] == true && round(m))
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect();
    settle(other, &odir, victim_onion, |m| {
        all_acked(m, &other_sent) && all_received(m, &victim_stored)
    })
    .await;

    // Exactly once on both sides; nothing the victim had shown is gone.
    let om = messages(&odir, victim_onion).await;
    for t in &victim_ok {
        assert!(victim_stored.contains(t), "{t} was stored, then lost");
    }
    for t in &victim_stored {
        assert_eq!(count_text(&vm, t, true), 1, "{t} at the victim's");
        assert_eq!(count_text(&om, t, false), 1, "{t} at the other's");
    }
    for t in unknown.iter().filter(|t| !victim_stored.contains(*t)) {
        assert_eq!(
            count_text(&om, t, false),
            0,
            "{t} arrived but was never stored"
        );
    }
    for t in &other_sent {
        assert_eq!(count_text(&om, t, true), 1, "{t} at the other's");
        assert_eq!(count_text(&vm, t, false), 1, "{t} at the victim's");
    }
    for t in &received_before {
        assert!(
            vm.iter().any(|m| m["text"] == t.as_str()),
            "{t} was shown, then lost"
        );
    }
    for id in &acked_before {
        let m = vm.iter().find(|m| m["message_id"] == *id).unwrap();
        assert_eq!(m["state"], "acknowledged", "{m}");
    }
    let new = victim_stored.len() + other_sent.len();
    assert_eq!(vm.len(), v_before.len() + new, "no stray copies: {vm:?}");
    assert_eq!(om.len(), vm.len());
    // The side that kept running showed each message it received once.
    for t in &victim_stored {
        let n = other
            .events("NewMessage")
            .iter()
            .filter(|e| e["text"] == t.as_str())
            .count();
        assert_eq!(n, 1, "{t} shown {n} times");
    }
    victim
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_conversation_loses_and_duplicates_nothing() {
    let w = World::new().await;
    let mut a = w.run_a().await;
    let mut b = w.run_b().await;
    w.befriend(&mut a, &mut b).await;
    let s = send(&w.a_dir, &w.bob, "first", &[]).await;
    assert_eq!(s["delivery"], "acknowledged", "{s}");

    // Alice dies, then Bob.
    let mut a = kill_mid_conversation(&w.net, a, &w.alice, &mut b, &w.bob, "round 1").await;
    // The stale control socket of a killed daemon does not confuse anyone.
    let b = kill_mid_conversation(&w.net, b, &w.bob, &mut a, &w.alice, "round 2").await;

    assert!(a.stop().await.success());
    assert!(b.stop().await.success());
    // Without daemons, the stored conversation is the same from both sides.
    let am = messages(&w.a_dir, &w.bob).await;
    let bm = messages(&w.b_dir, &w.alice).await;
    assert_eq!(am.len(), bm.len());
    assert!(am.len() > 1 + 2 * (1 + 8 + 3), "{}", am.len());
    let sigs = |v: &[Value]| {
        v.iter()
            .map(|m| {
                (
                    m["signature"].as_str().unwrap().to_owned(),
                    m["text"].to_string(),
                )
            })
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(sigs(&am), sigs(&bm));
    assert_eq!(sigs(&am).len(), am.len(), "no duplicates");
}
