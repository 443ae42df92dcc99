//! `cwtch tui` end to end, in a real terminal: tmux runs it (send-keys types, capture-pane
//! reads the screen) over the loopback network, against Bob, a `cwtch run` driven by the
//! `cwtch` command, and a real server (in the test process) for a group.
//!
//! A request from Bob is accepted from the TUI; a message typed in the TUI arrives at Bob and
//! is acknowledged; Bob's messages appear with his name; hostile text (CSI, OSC 8 hyperlinks,
//! OSC 52 clipboard writes, OSC 0 titles, DCS, C1 controls, bidi overrides) is shown inert —
//! what tmux received is read back, and tmux's own clipboard buffers and the pane's title are
//! checked untouched; a group invite is accepted from the TUI and group messages flow both
//! ways; a `cwtch` command works through the TUI's control socket; Ctrl-C quits and restores
//! the terminal. An image a contact shares is drawn inline in the image's colours. A profile
//! taken offline from the compose line goes offline (its contact loses it) and comes back.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use cwtch_server::{Server, ServerConfig};

/// A tmux server of our own (its socket name is unique), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// A detached 100×30 session running `command`.
    fn start(name: &str, command: &str) -> Tmux {
        let socket = format!("cwtch-tui-{name}-{}", std::process::id());
        let t = Tmux { socket };
        // Accept OSC 52 from applications into tmux's buffers: if a hostile message's
        // clipboard write got through, a buffer would appear.
        t.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            "100",
            "-y",
            "30",
            command,
        ]);
        t.run(&["set-option", "-g", "set-clipboard", "on"]);
        t.run(&["set-option", "-g", "allow-rename", "on"]);
        t
    }

    fn run(&self, args: &[&str]) -> String {
        let o = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs (scripts/setup installs it)");
        assert!(
            o.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "0"])
    }

    /// Type text literally.
    fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "0", "-l", text]);
    }

    /// Press keys by tmux name (`Enter`, `Escape`, `C-c`).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "0"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Type a line and press Enter.
    fn line(&self, text: &str) {
        self.type_text(text);
        self.keys(&["Enter"]);
    }

    /// Poll the screen until `pred` holds; the screen then. Fails after `STEP`.
    #[track_caller]
    fn wait(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    #[track_caller]
    fn wait_for_text(&self, text: &str) -> String {
        self.wait(&format!("{text:?}"), |s| s.contains(text))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- the TUI's screen ----\n{}", self.screen());
        }
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

/// Alice and Bob, each a `cwtch run` over the loopback network under `root`, contacts of
/// each other (Alice added Bob, Bob accepted, Alice knows his name).
struct Pair {
    a_dir: std::path::PathBuf,
    b_dir: std::path::PathBuf,
    alice: String,
    bob: String,
    a: Daemon,
    b: Daemon,
}

async fn befriended_daemons(root: &Path) -> Pair {
    let net = root.join("net");
    let (a_dir, b_dir) = (root.join("a"), root.join("b"));
    let alice = acreate(&a_dir, "alice").await;
    let bob = acreate(&b_dir, "bob").await;
    let mut a = Daemon::loopback(&a_dir, &net, &alice).await;
    let mut b = Daemon::loopback(&b_dir, &net, &bob).await;
    ok(&acwtch(&a_dir, &["contact", "add", &bob]).await);
    b.wait_for(STEP, |e| {
        e["event"] == "ContactCreated" && e["contact"] == alice.as_str()
    })
    .await;
    ok(&acwtch(&b_dir, &["contact", "accept", &alice]).await);
    a.wait_for(STEP, |e| {
        e["event"] == "AttributeUpdated" && e["value"] == "bob"
    })
    .await;
    Pair {
        a_dir,
        b_dir,
        alice,
        bob,
        a,
        b,
    }
}

fn tmux_available() -> bool {
    Command::new("tmux").arg("-V").output().is_ok()
}

async fn start_server(dir: &Path, net: &Path) -> Server {
    cwtch_server::create_data_dir(dir).unwrap();
    ServerConfig::generate(&mut rand_core::OsRng)
        .save_new(dir)
        .unwrap();
    let acn = Arc::new(cwtch::LoopbackAcn::new(net).unwrap());
    Server::start(ServerConfig::load(dir).unwrap(), dir, acn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tui_over_loopback_request_messages_hostile_text_and_groups() {
    assert!(
        tmux_available(),
        "tmux is needed for this test: scripts/setup installs it"
    );
    let tmp = tempfile::tempdir().unwrap();
    let net = tmp.path().join("net");
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let alice = acreate(&a_dir, "alice").await;
    let bob = acreate(&b_dir, "bob").await;
    let mut b = Daemon::loopback(&b_dir, &net, &bob).await;

    let command = format!(
        "{BIN} --data-dir {} tui --network loopback --loopback-dir {}; echo \"tui exited $?\"; \
         sleep 600",
        a_dir.display(),
        net.display()
    );
    let t = Tmux::start("e2e", &command);
    t.wait_for_text("alice online");

    // Bob adds Alice: the request shows in the TUI, which accepts it.
    ok(&acwtch(&b_dir, &["contact", "add", &alice]).await);
    let short_bob = format!("{}…", &bob[..8]);
    t.wait_for_text(&format!("{short_bob} request"));
    t.keys(&["Enter"]); // the only conversation: open it (the list keeps the focus)
    t.wait_for_text("request: A accepts");
    t.keys(&["A"]); // as the title says; then the compose line has the focus
                    // Accepted, Alice answers Bob's name request: Bob learns it.
    b.wait_for(STEP, |e| {
        e["event"] == "AttributeUpdated" && e["value"] == "alice"
    })
    .await;
    t.wait_for_text("Contacts");

    // A message typed in the TUI arrives, and is acknowledged.
    t.line("hello from the tui");
    b.wait_for(STEP, |e| {
        e["event"] == "NewMessage" && e["text"] == "hello from the tui"
    })
    .await;
    t.wait_for_text("me: hello from the tui ✓✓");

    // Bob's message appears with his name (learned once accepted).
    ok(&acwtch(&b_dir, &["send", &alice, "hi alice, bob here"]).await);
    t.wait_for_text("bob: hi alice, bob here");

    // The TUI serves the control socket: a `cwtch` command on Alice's home goes through it.
    let o = acwtch(&a_dir, &["send", &bob, "sent by the command line"]).await;
    assert!(ok(&o).starts_with("acknowledged:"), "{}", ok(&o));
    t.wait_for_text("me: sent by the command line ✓✓");

    // Hostile text arrives inert: what tmux shows is the escape made visible.
    let hostile = [
        ("\x1b[31mred\x1b[0m\x1b[2J", "␛[31mred␛[0m␛[2J"),
        (
            "\x1b]8;;https://evil.example/\x07click me\x1b]8;;\x07",
            "␛]8;;https://evil.example/␇click me␛]8;;␇",
        ),
        ("\x1b]52;c;cHduZWQ=\x07", "␛]52;c;cHduZWQ=␇"),
        ("\x1b]0;pwned-title\x07", "␛]0;pwned-title␇"),
        ("\x1bP1$qm\x1b\\", "␛P1$qm␛\\"),
        ("\u{9b}31mc1", "<U+009B>31mc1"),
        ("file\u{202e}txt.exe", "file<U+202E>txt.exe"),
    ];
    for (text, _) in hostile {
        ok(&acwtch(&b_dir, &["send", &alice, text]).await);
    }
    let screen = t.wait_for_text("file<U+202E>txt.exe");
    for (_, shown) in hostile {
        assert!(screen.contains(shown), "{shown:?} not shown:\n{screen}");
    }
    assert!(
        t.run(&["list-buffers"]).trim().is_empty(),
        "an OSC 52 clipboard write reached tmux"
    );
    let title = t.run(&["display-message", "-p", "#{pane_title}"]);
    assert!(!title.contains("pwned"), "the title was set: {title}");

    // Groups: Bob creates one on a server and invites Alice; she accepts from the TUI.
    let server = start_server(&tmp.path().join("server"), &net).await;
    ok(&acwtch(&b_dir, &["server", "add", &server.bundle()]).await);
    let server_onion = server.onion().as_str().to_owned();
    ok(&acwtch(
        &b_dir,
        &["group", "create", "book club", "--server", &server_onion],
    )
    .await);
    ok(&acwtch(&b_dir, &["group", "invite", "book club", &alice]).await);
    t.wait_for_text("book club invite");
    // Tab to the list (not Escape: an Escape just before `/` reads as Alt-/).
    t.keys(&["Tab"]);
    t.type_text("/book");
    t.keys(&["Enter", "Enter"]); // end the filter; open the group
    t.wait_for_text("invite: A accepts");
    t.keys(&["A"]);
    t.wait_for_text("server synced");

    // A group message from Bob appears with his name; Alice's reaches Bob.
    let o = acwtch(
        &b_dir,
        &["send", "book club", "chapter 3 tonight?", "--wait", "60"],
    )
    .await;
    assert!(ok(&o).starts_with("sent:"), "{}", ok(&o));
    t.wait_for_text("bob: chapter 3 tonight?");
    t.line("yes, see you there");
    b.wait_for(STEP, |e| {
        e["event"] == "GroupMessage"
            && e["author"] == alice.as_str()
            && e["text"] == "yes, see you there"
    })
    .await;
    t.wait("our group post seen coming back", |s| {
        s.contains("me: yes, see you there ✓✓") || s.contains("me: yes, see you there ✓ sent")
    });

    // Ctrl-C quits cleanly, the terminal restored (the shell's line is on the normal screen).
    t.keys(&["C-c"]);
    t.wait_for_text("tui exited 0");
    drop(t);
    server.shutdown().await;
    b.stop().await;
}

/// With a `cwtch run` serving the data directory, the TUI is its client: requests through the
/// control socket, events through an `events.subscribe` stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tui_attaches_to_a_running_daemon() {
    assert!(
        tmux_available(),
        "tmux is needed for this test: scripts/setup installs it"
    );
    let tmp = tempfile::tempdir().unwrap();
    let Pair {
        a_dir,
        b_dir,
        alice,
        bob,
        a,
        mut b,
    } = befriended_daemons(tmp.path()).await;

    // No network flags: the daemon has the network.
    let command = format!(
        "{BIN} --data-dir {} tui --open {bob}; echo \"tui exited $?\"; sleep 600",
        a_dir.display()
    );
    let t = Tmux::start("attach", &command);
    t.wait_for_text("[attached]");
    t.wait_for_text(" bob · ");

    // An event streamed from the daemon: Bob's message appears.
    ok(&acwtch(&b_dir, &["send", &alice, "through the daemon"]).await);
    t.wait_for_text("bob: through the daemon");
    // A request through the socket: the compose line (focused by --open) sends; a typo is
    // mended in the middle of the line (← twice, type, → to the end).
    t.type_text("and bck");
    t.keys(&["Left", "Left"]);
    t.type_text("a");
    t.keys(&["C-e", "Enter"]);
    b.wait_for(STEP, |e| {
        e["event"] == "NewMessage" && e["text"] == "and back"
    })
    .await;
    t.wait_for_text("me: and back ✓✓");

    // Too small a window: said, and keys typed into it (which would act on nothing shown)
    // are ignored; back to a usable size, the compose line is as it was.
    t.run(&["resize-window", "-t", "0", "-x", "30", "-y", "6"]);
    t.wait_for_text("too small");
    t.line("unseen words");
    t.run(&["resize-window", "-t", "0", "-x", "100", "-y", "30"]);
    t.wait_for_text(" bob · ");
    t.type_text("seen");
    t.wait_for_text("│seen");
    t.keys(&["C-u"]);
    let s = t.wait("the compose line emptied", |s| !s.contains("│seen"));
    assert!(!s.contains("unseen words"), "{s}");

    // Search through the daemon: the results, then Enter opens the conversation there.
    t.line("/search THROUGH");
    t.wait_for_text("“THROUGH”: 1 found");
    t.wait_for_text("bob · bob: through the daemon");
    t.keys(&["Enter"]);
    t.wait("the results closed", |s| !s.contains("1 found"));
    // (Tab, not Esc, back to the compose line: an Esc just before typing reads as Alt.)
    t.keys(&["Tab"]);

    // Offline from the compose line: the daemon takes the profile down, Bob loses it, the
    // list says so; and back.
    t.line("/online off");
    b.wait_for(STEP, |e| {
        e["event"] == "PeerStateChanged"
            && e["contact"] == alice.as_str()
            && e["state"] == "Disconnected"
    })
    .await;
    t.wait_for_text("alice offline");
    t.line("/online on");
    b.wait_for(STEP, |e| {
        e["event"] == "PeerStateChanged"
            && e["contact"] == alice.as_str()
            && e["state"] == "Authenticated"
    })
    .await;
    t.wait(" alice online", |s| {
        s.contains("alice online") && !s.contains("alice offline")
    });

    // The daemon stops: the TUI says so and exits, the terminal restored.
    a.stop().await;
    t.wait_for_text("tui exited 1");
    t.wait_for_text("has stopped");
    drop(t);
    b.stop().await;
}

/// A first run offers to create a profile; a password-protected one is unlocked from inside,
/// the password never shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tui_creates_a_profile_and_unlocks_a_password_one() {
    assert!(
        tmux_available(),
        "tmux is needed for this test: scripts/setup installs it"
    );
    let tmp = tempfile::tempdir().unwrap();
    let net = tmp.path().join("net");
    let dir = tmp.path().join("home");
    let o = acwtch_stdin(
        &dir,
        &["profile", "create", "--name", "carol", "--password-stdin"],
        "correct horse\n",
    )
    .await;
    let carol = last_line(&o);
    let command = format!(
        "{BIN} --data-dir {} tui --network loopback --loopback-dir {}; echo \"tui exited $?\"; \
         sleep 600",
        dir.display(),
        net.display()
    );
    let t = Tmux::start("unlock", &command);
    // No profile opens without a password, one is locked: the unlock prompt.
    t.wait_for_text("Unlock profiles: password");
    t.type_text("wrong horse");
    let s = t.screen();
    assert!(!s.contains("wrong horse"), "the password was shown:\n{s}");
    t.keys(&["Enter"]);
    t.wait_for_text("no profile opens with this password");
    // The prompt asks again at once (no key to remember).
    t.wait_for_text("Unlock profiles: password");
    t.line("correct horse");
    t.wait_for_text("carol online");
    assert!(!t.screen().contains("correct horse"));
    // A second profile, created from the TUI, runs beside it.
    t.type_text("c");
    t.wait_for_text("New profile: its public name");
    t.line("dave");
    t.wait_for_text("New profile: its password");
    // What an empty password means is said in full (it was cut off in the title).
    t.wait_for_text("anyone who can use this computer");
    t.keys(&["Enter"]); // none
    t.wait_for_text("dave online");
    let o = acwtch(&dir, &["--json", "profile", "list"]).await;
    let v = json(&o);
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "dave" && p["running"] == true),
        "{v}"
    );
    // Carol is listed too: the TUI runs her (unlocked), as its status line shows.
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|p| p["onion"] == carol.as_str() && p["running"] == true),
        "{v}"
    );
    // Choose Dave with `p` (profiles are listed by name: Carol first) and delete him.
    t.type_text("p");
    t.wait_for_text("▸ dave");
    t.type_text("X");
    t.wait_for_text("Delete the profile dave");
    t.type_text("y");
    t.wait_for_text("Delete the profile: its password");
    t.keys(&["Enter"]); // he has none
    t.wait_for_text("profile deleted");
    t.wait("dave gone", |s| {
        !s.contains("dave online") && s.contains("▸ carol online")
    });
    let v = json(&acwtch(&dir, &["--json", "profile", "list"]).await);
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["name"], "carol", "{v}");
    t.keys(&["C-c"]);
    t.wait_for_text("tui exited 0");
    // Once nothing runs her, she needs her password to be listed again.
    let v = json(&acwtch(&dir, &["--json", "profile", "list"]).await);
    assert_eq!(v.as_array().unwrap().len(), 0, "{v}");
}

/// An image a contact shares, with image previews on, is described and drawn inline in a
/// colour terminal: half-block cells in the image's own colours (read back from tmux with
/// their colour escapes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tui_draws_an_image_a_contact_shared() {
    assert!(
        tmux_available(),
        "tmux is needed for this test: scripts/setup installs it"
    );
    let tmp = tempfile::tempdir().unwrap();
    let Pair {
        a_dir,
        b_dir,
        alice,
        bob,
        a,
        b,
    } = befriended_daemons(tmp.path()).await;

    // 64×32 pixels: the left half red, the right half blue.
    let png = tmp.path().join("red-blue.png");
    image::RgbImage::from_fn(64, 32, |x, _| {
        if x < 32 {
            image::Rgb([255, 0, 0])
        } else {
            image::Rgb([0, 0, 255])
        }
    })
    .save(&png)
    .unwrap();

    let command = format!(
        "COLORTERM=truecolor {BIN} --data-dir {} tui --open {bob}; echo \"tui exited $?\"; \
         sleep 600",
        a_dir.display()
    );
    let t = Tmux::start("image", &command);
    t.wait_for_text(" bob · ");
    // Image previews turned on from the compose line.
    t.line("/previews on");
    t.wait_for_text("image previews on");
    let settings = ok(&acwtch(&a_dir, &["profile", "show"]).await);
    assert!(settings.contains("image-previews\ton"), "{settings}");
    ok(&acwtch(&b_dir, &["file", "share", &alice, png.to_str().unwrap()]).await);
    t.wait_for_text("[image: red-blue.png, PNG image, 64×32");
    // 32×16 pixels: 8 rows of 32 cells.
    let s = t.wait("the thumbnail", |s| s.matches('▀').count() == 8 * 32);
    let rows: Vec<&str> = s.lines().filter(|l| l.contains('▀')).collect();
    assert_eq!(rows.len(), 8, "{s}");
    assert!(
        rows.iter().all(|r| r.contains(&"▀".repeat(32))),
        "not one block per row:\n{s}"
    );
    // The colours tmux was given: red over red on the left, blue over blue on the right.
    let coloured = t.run(&["capture-pane", "-e", "-p", "-t", "0"]);
    for (what, colour) in [("red", "255;0;0"), ("blue", "0;0;255")] {
        assert!(
            coloured.contains(&format!("38;2;{colour}"))
                && coloured.contains(&format!("48;2;{colour}")),
            "no {what} cells:\n{coloured:?}"
        );
    }
    t.keys(&["C-c"]);
    t.wait_for_text("tui exited 0");
    drop(t);

    // A TUI started later shows it too (from the messages, not an event).
    let t = Tmux::start("image-again", &command);
    t.wait_for_text("[image: red-blue.png, PNG image, 64×32");
    t.wait("the thumbnail again", |s| s.matches('▀').count() == 8 * 32);
    t.keys(&["C-c"]);
    t.wait_for_text("tui exited 0");
    drop(t);
    a.stop().await;
    b.stop().await;
}
