//! The TUI's model and views: keys and events in, requests out; every view drawn on ratatui's
//! `TestBackend` and compared with a snapshot file under `tests/snapshots/` (run with
//! `UPDATE_SNAPSHOTS=1` to rewrite them after a deliberate change, then review the diff).

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use cwtch::{ConnectionState, Content, Event, MessageState, ServerState};
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::Color;
use ratatui::Terminal;
use unicode_width::UnicodeWidthStr;

use super::app::{self, Action, App, Ask, Ctx, Focus, Overlay, What};
use super::fixture::{self, contact};
use super::sanitize::dangerous_in;
use super::view;
use crate::protocol::{GroupRow, MessageRow, Reply, Request, ServerRow};

const ALICE: &str = "vbmmtsfg3h6wxwpmsrg53fgdiuosbcscs5a5ni7ffuy4tkrvp7nzpbyd";
const BOB: &str = "pjurzypqui3dnpxj6aemk6cqz22yx6zfr5lq4jzu7muwe2yyx2zrnzyd";
const CAROL: &str = "ylcetmdlqyiycxghgvdppdb5rrt4ey3tksefqstnqw3kiuh6qgwv3zid";
const SERVER: &str = "bjwjiryxc6wlq76thhr7fcydkeyy5z7l7uuhfl23glcuwuq2pajg46yd";

fn key(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

fn ch(c: char) -> KeyEvent {
    key(KeyCode::Char(c))
}

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

fn typing(app: &mut App, s: &str) -> Vec<Action> {
    let mut out = Vec::new();
    for c in s.chars() {
        out.extend(app.handle_key(ch(c)));
    }
    out
}

fn group(id: i64, name: &str, accepted: bool, unread: u64, missing: u64) -> GroupRow {
    GroupRow {
        conversation_id: id,
        group_id: format!("b90aa186cbae4182c17d117a1646fe{id:02}"),
        name: name.into(),
        server: SERVER.into(),
        accepted,
        server_state: ServerState::Synced,
        messages: 3,
        members: vec![BOB.into()],
        unread,
        missing,
        invite: None,
    }
}

fn msg(
    conv: i64,
    id: i64,
    author: &str,
    outgoing: bool,
    state: MessageState,
    time: &str,
    content: Content,
) -> MessageRow {
    let text = content.display_text().map(str::to_owned);
    MessageRow {
        conversation_id: conv,
        message_id: id,
        signature: format!("sig{id}"),
        author: author.into(),
        outgoing,
        state,
        timestamp: Some(format!("2025-01-02T{time}:05Z")),
        text,
        overlay: Some(1),
        content,
        body: String::new(),
        content_hash: format!("hash{conv}-{id}"),
        image: None,
        file: None,
        reply_to: None,
    }
}

fn ctx(profile: &str, conv: Option<i64>, what: What) -> Ctx {
    Ctx {
        profile: profile.into(),
        conv,
        what,
    }
}

/// Alice, online over a bootstrapped network, with Bob (online, named), a request from Carol,
/// a group with unread messages and a gap, and an invite.
fn world() -> App {
    let mut app = App::new(false, 1, None);
    app.acn = Some((100, "Done".into()));
    let start = app.start();
    assert!(matches!(
        &start[..],
        [Action::Call {
            req: Request::Ping,
            ..
        }]
    ));
    app.handle_reply(
        ctx("", None, What::Profiles),
        Ok(fixture::pong(vec![fixture::profile(ALICE)])),
    );
    app.handle_event(Event::ProfileOnline {
        profile: ALICE.into(),
    });
    app.handle_reply(
        ctx(ALICE, None, What::Contacts),
        Ok(Reply::Contacts {
            contacts: vec![
                contact(1, BOB, Some("bob"), true, ConnectionState::Authenticated),
                contact(2, CAROL, None, false, ConnectionState::Connecting),
            ],
        }),
    );
    app.handle_reply(
        ctx(ALICE, None, What::Groups),
        Ok(Reply::Groups {
            groups: vec![
                group(3, "book club", true, 2, 1),
                group(4, "poker night", false, 0, 0),
            ],
        }),
    );
    app.handle_reply(
        ctx(ALICE, None, What::Servers),
        Ok(Reply::Servers {
            servers: vec![ServerRow {
                conversation_id: 5,
                onion: SERVER.into(),
                token_service: SERVER.into(),
                state: ServerState::Synced,
                tokens: 10,
                last_sync: None,
                groups: 2,
            }],
        }),
    );
    app
}

/// Open conversation `id`: the request it makes, answered with `messages`.
fn open_with(app: &mut App, id: i64, messages: Vec<MessageRow>) {
    let pos = app.visible().iter().position(|c| c.id == id).unwrap();
    app.selected = pos;
    let actions = app.handle_key(key(KeyCode::Enter));
    match &actions[..] {
        [Action::Call {
            req: Request::Messages {
                contact, offset: 0, ..
            },
            ctx: c,
        }] => {
            assert_eq!(contact, &id.to_string());
            let c = c.clone();
            app.handle_reply(c, Ok(Reply::Messages { messages }));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(app.open, Some(id));
    // A request keeps the list's focus (A accepts, x declines); anything else the compose line.
    let request = app
        .profile()
        .and_then(|p| p.convs.iter().find(|c| c.id == id))
        .is_some_and(|c| c.request);
    let want = if request { Focus::List } else { Focus::Compose };
    assert_eq!(app.focus, want);
}

fn bob_messages() -> Vec<MessageRow> {
    vec![
        msg(
            1,
            1,
            BOB,
            false,
            MessageState::Received,
            "09:00",
            Content::text("hi Alice! are we still on for tonight?"),
        ),
        msg(
            1,
            2,
            ALICE,
            true,
            MessageState::Acknowledged,
            "09:01",
            Content::text("yes, 8pm"),
        ),
        msg(
            1,
            3,
            ALICE,
            true,
            MessageState::Sent,
            "09:02",
            Content::text("I'll bring the book"),
        ),
        msg(
            1,
            4,
            BOB,
            false,
            MessageState::Received,
            "09:05",
            Content::QuotedReply {
                quoted_hash: "hash1-3".into(),
                body: "great, see you there".into(),
            },
        ),
        msg(
            1,
            5,
            ALICE,
            true,
            MessageState::Sending,
            "09:06",
            Content::text("on my way"),
        ),
        msg(
            1,
            7,
            BOB,
            false,
            MessageState::Received,
            "09:08",
            Content::text("a long one, to wrap: 你好你好你好 the quick brown fox jumps over the lazy dog and keeps running"),
        ),
        msg(
            1,
            6,
            ALICE,
            true,
            MessageState::Failed {
                error: "blocked".into(),
            },
            "09:07",
            Content::text("this one failed"),
        ),
    ]
}

/// The screen as text, one line per row (wide characters take their two cells).
fn screen(app: &App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| view::render(app, f)).unwrap();
    let buf = t.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..h {
        let mut x = 0;
        let mut line = String::new();
        while x < w {
            let sym = buf[(x, y)].symbol();
            if let Some(c) = dangerous_in(sym) {
                panic!("{c:?} reached the terminal at ({x},{y})");
            }
            line.push_str(sym);
            x += u16::try_from(sym.width().max(1)).unwrap();
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Compare with `tests/snapshots/tui_<name>.txt` (written with UPDATE_SNAPSHOTS=1).
#[track_caller]
fn snapshot(name: &str, text: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("tui_{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "no snapshot {} ({e}); run with UPDATE_SNAPSHOTS=1 to create it:\n{text}",
            path.display()
        )
    });
    assert!(
        want == text,
        "{name}: the screen differs from {}\n--- want\n{want}\n--- got\n{text}",
        path.display()
    );
}

#[test]
fn conversation_list_shows_sections_states_unread_and_sync() {
    let app = world();
    let s = screen(&app, 80, 24);
    assert!(s.contains("Requests"), "{s}");
    assert!(s.contains("● bob"), "{s}");
    assert!(s.contains("◌ ylcetmdl… request"), "{s}");
    assert!(s.contains("# book club (2) ⚠1 synced"), "{s}");
    assert!(s.contains("# poker night invite"), "{s}");
    assert!(s.contains("# poker night"), "{s}");
    assert!(s.contains("1 locked (U unlocks)"), "{s}");
    assert!(s.contains("network ready"), "{s}");
    snapshot("list_80x24", &s);
}

#[test]
fn open_conversation_shows_authors_ticks_quotes_and_failures() {
    let mut app = world();
    open_with(&mut app, 1, bob_messages());
    let s = screen(&app, 100, 30);
    assert!(s.contains("09:00 bob: hi Alice!"), "{s}");
    assert!(s.contains("09:01 me: yes, 8pm ✓✓"), "{s}");
    assert!(s.contains("I'll bring the book ✓ sent"), "{s}");
    assert!(s.contains("┃ me: I'll bring the book"), "{s}");
    assert!(s.contains("on my way ◷ queued"), "{s}");
    assert!(s.contains("this one failed ✗ failed"), "{s}");
    // A long message wraps at a space, its continuation under its text; wide characters
    // take two cells.
    assert!(
        s.contains("09:08 bob: a long one, to wrap: 你好你好你好 the quick brown fox │"),
        "{s}"
    );
    assert!(
        s.contains("││      jumps over the lazy dog and keeps running"),
        "{s}"
    );
    snapshot("conversation_100x30", &s);
    // Down to 80×24, nothing breaks and the newest message is shown.
    let s = screen(&app, 80, 24);
    assert!(s.contains("this one failed"), "{s}");
    snapshot("conversation_80x24", &s);
}

#[test]
fn group_shows_members_missing_marker_and_accepted_posts() {
    let mut app = world();
    let ms = vec![
        msg(
            3,
            1,
            BOB,
            false,
            MessageState::Received,
            "10:00",
            Content::text("chapter 3?"),
        ),
        msg(
            3,
            2,
            CAROL,
            false,
            MessageState::Received,
            "10:02",
            Content::text("I missed something"),
        ),
        msg(
            3,
            3,
            ALICE,
            true,
            MessageState::Sending,
            "10:03",
            Content::text("tonight"),
        ),
    ];
    app.handle_event(Event::MissingMessages {
        profile: ALICE.into(),
        conversation_id: 3,
        group_id: "g".into(),
        member: CAROL.into(),
        message_id: 2,
        previous_signature: "x".into(),
    });
    open_with(&mut app, 3, ms);
    // The server accepted our post: "sent" although the store still says sending.
    let a = app.handle_event(Event::GroupMessageSent {
        profile: ALICE.into(),
        conversation_id: 3,
        group_id: "g".into(),
        message_id: 3,
        signature: "s".into(),
    });
    assert!(matches!(
        &a[..],
        [Action::Call {
            req: Request::Messages { .. },
            ..
        }]
    ));
    let s = screen(&app, 80, 24);
    assert!(s.contains("missing messages"), "{s}");
    assert!(s.contains("bob: chapter 3?"), "{s}");
    assert!(s.contains("ylcetmdl…: I missed"), "{s}");
    assert!(s.contains("me: tonight ✓ sent"), "{s}");
    assert!(s.contains("server synced"), "{s}");
    snapshot("group_80x24", &s);
}

#[test]
fn request_view_and_accepting_it() {
    let mut app = world();
    open_with(
        &mut app,
        2,
        vec![msg(
            2,
            1,
            CAROL,
            false,
            MessageState::Received,
            "11:00",
            Content::text("hello, it's Carol"),
        )],
    );
    let s = screen(&app, 80, 24);
    assert!(
        s.contains("ylcetmdl… · request: A accepts, x declines"),
        "{s}"
    );
    snapshot("request_80x24", &s);
    // The list keeps the focus: A accepts it, as the title says (not typed into a line).
    assert_eq!(app.focus, Focus::List);
    let a = app.handle_key(ch('A'));
    assert!(
        matches!(&a[..], [Action::Call { req: Request::ContactAccept { contact, .. }, .. }] if contact == "2"),
        "{a:?}"
    );
    // The compose line then has the focus; `/accept` there accepts the open request too.
    assert_eq!(app.focus, Focus::Compose);
    let a = typing(&mut app, "/accept");
    assert!(a.is_empty());
    let a = app.handle_key(key(KeyCode::Enter));
    match &a[..] {
        [Action::Call {
            req: Request::ContactAccept { profile, contact },
            ..
        }] => {
            assert_eq!(profile.as_deref(), Some(ALICE));
            assert_eq!(contact, "2");
        }
        other => panic!("{other:?}"),
    }
    // `A` in the list does the same; `x` declines (deletes the request); `b` blocks.
    app.handle_key(key(KeyCode::Esc));
    assert_eq!(app.focus, Focus::List);
    let sel = app.visible().iter().position(|c| c.id == 2).unwrap();
    app.selected = sel;
    assert!(matches!(
        &app.handle_key(ch('A'))[..],
        [Action::Call {
            req: Request::ContactAccept { .. },
            ..
        }]
    ));
    // (Accepted where it is open: on to the compose line; Tab back to the list.)
    assert_eq!(app.focus, Focus::Compose);
    app.handle_key(key(KeyCode::Tab));
    // x asks first (it deletes what the request sent); y declines.
    assert!(app.handle_key(ch('x')).is_empty());
    assert!(matches!(app.overlay, Overlay::Confirm(_)));
    assert!(matches!(
        &app.handle_key(ch('y'))[..],
        [Action::Call {
            req: Request::ContactDelete { .. },
            ..
        }]
    ));
    app.selected = app.visible().iter().position(|c| c.id == 2).unwrap_or(0);
    assert!(matches!(
        &app.handle_key(ch('b'))[..],
        [Action::Call {
            req: Request::ContactBlock { .. },
            ..
        }]
    ));
}

#[test]
fn help_screen_lists_every_key() {
    let mut app = world();
    app.handle_key(ch('?'));
    assert_eq!(app.overlay, Overlay::Help(0));
    let s = screen(&app, 80, 24);
    for (k, what) in view::KEYS {
        assert!(s.contains(&format!("{k} {what}")), "{k} missing:\n{s}");
    }
    for c in view::COMMANDS {
        assert!(s.contains(c), "{c} missing:\n{s}");
    }
    snapshot("help_80x24", &s);
    app.handle_key(ch('z'));
    assert_eq!(app.overlay, Overlay::None);
}

/// In a small window the help scrolls (it was cut), and says how; every key and command can
/// be read by scrolling down.
#[test]
fn the_help_scrolls_in_a_small_window() {
    let mut app = world();
    app.size = (50, 15);
    app.handle_key(ch('?'));
    let s = screen(&app, 50, 15);
    assert!(s.contains("↓ more · any other key closes"), "{s}");
    let mut seen = s.clone();
    for _ in 0..60 {
        app.handle_key(key(KeyCode::Down));
        seen.push_str(&screen(&app, 50, 15));
    }
    assert!(matches!(app.overlay, Overlay::Help(t) if t > 0));
    let last = screen(&app, 50, 15);
    assert!(last.contains("↑ back · any other key closes"), "{last}");
    for c in view::COMMANDS.iter().flat_map(|c| c.split_whitespace()) {
        assert!(seen.contains(c), "{c} never shown");
    }
    for (k, _) in view::KEYS {
        assert!(seen.contains(k), "{k} never shown");
    }
    // Back up at once: scrolling down past the end did not pile up.
    app.handle_key(key(KeyCode::PageUp));
    app.handle_key(key(KeyCode::PageUp));
    app.handle_key(key(KeyCode::PageUp));
    assert_eq!(app.overlay, Overlay::Help(0));
    app.handle_key(ch('z'));
    assert_eq!(app.overlay, Overlay::None);
}

#[test]
fn password_prompt_never_echoes() {
    let mut app = App::new(false, 2, None);
    app.acn = Some((100, "Done".into()));
    // No profile opens without a password, and two are locked: the unlock prompt.
    app.handle_reply(ctx("", None, What::Profiles), Ok(fixture::pong(vec![])));
    assert!(matches!(
        &app.overlay,
        Overlay::Prompt {
            ask: Ask::Unlock,
            ..
        }
    ));
    typing(&mut app, "hunter2 secret");
    let s = screen(&app, 80, 24);
    assert!(
        !s.contains("hunter2") && !s.contains("secret") && !s.contains("••"),
        "{s}"
    );
    assert!(s.contains("Unlock profiles: password"), "{s}");
    snapshot("unlock_80x24", &s);
    let a = app.handle_key(key(KeyCode::Enter));
    match &a[..] {
        [Action::Call {
            req: Request::ProfileUnlock { password, .. },
            ..
        }] => {
            assert_eq!(password.0.as_str(), "hunter2 secret");
            assert!(!format!("{a:?}").contains("hunter2"));
        }
        other => panic!("{other:?}"),
    }
    // A wrong password: the error, and the prompt again, empty.
    let Some(Action::Call { ctx: c, .. }) = a.into_iter().next() else {
        unreachable!()
    };
    app.handle_reply(c, Err("no locked profile opens with that password".into()));
    assert!(
        matches!(&app.overlay, Overlay::Prompt { ask: Ask::Unlock, input } if input.is_empty()),
        "{:?}",
        app.overlay
    );
    let s = screen(&app, 80, 24);
    assert!(
        s.contains("no locked profile opens with that password"),
        "{s}"
    );
    assert!(s.contains("Unlock profiles: password"), "{s}");
}

#[test]
fn first_run_offers_to_create_a_profile() {
    let mut app = App::new(false, 0, None);
    app.handle_reply(ctx("", None, What::Profiles), Ok(fixture::pong(vec![])));
    assert!(matches!(
        &app.overlay,
        Overlay::Prompt {
            ask: Ask::NewProfileName,
            ..
        }
    ));
    typing(&mut app, "alice");
    assert!(app.handle_key(key(KeyCode::Enter)).is_empty());
    assert!(matches!(
        &app.overlay,
        Overlay::Prompt {
            ask: Ask::NewProfilePassword { .. },
            ..
        }
    ));
    let a = app.handle_key(key(KeyCode::Enter));
    assert!(
        matches!(&a[..], [Action::Call { req: Request::ProfileCreate { name, password: None }, .. }] if name == "alice"),
        "{a:?}"
    );
}

#[test]
fn status_bar_shows_bootstrap_progress() {
    let mut app = world();
    app.handle_event(Event::AcnStatus {
        progress: 45,
        summary: "Loading relay descriptors".into(),
    });
    let s = screen(&app, 80, 24);
    assert!(s.contains("Tor ▕████░░░░░░▏  45%"), "{s}");
    assert!(s.contains("Loading relay"), "{s}");
    snapshot("bootstrap_80x24", &s);
    assert_eq!(view::progress_bar(0, 4), "▕░░░░▏   0%");
    assert_eq!(view::progress_bar(100, 4), "▕████▏ 100%");
}

#[test]
fn compose_sends_to_the_open_conversation_and_replies_quote() {
    let mut app = world();
    open_with(&mut app, 1, bob_messages());
    typing(&mut app, "hello there");
    let a = app.handle_key(key(KeyCode::Enter));
    match &a[..] {
        [Action::Call {
            req:
                Request::Send {
                    profile,
                    contact,
                    text,
                    reply_to,
                    ..
                },
            ctx,
        }] => {
            assert_eq!(
                (profile.as_deref(), contact.as_str(), text.as_str()),
                (Some(ALICE), "1", "hello there")
            );
            assert_eq!(reply_to, &None);
            assert_eq!(ctx.what, What::Sent);
        }
        other => panic!("{other:?}"),
    }
    assert!(app.compose.is_empty());
    // ↑ on the empty line chooses the newest message; ↑ again the ones before; r replies.
    app.handle_key(key(KeyCode::Up));
    assert_eq!(app.focus, Focus::Messages);
    for _ in 0..4 {
        app.handle_key(key(KeyCode::Up));
    }
    let s = screen(&app, 80, 24);
    snapshot("choose_message_80x24", &s);
    app.handle_key(ch('r'));
    assert_eq!(app.focus, Focus::Compose);
    typing(&mut app, "me too");
    let s = screen(&app, 80, 24);
    assert!(s.contains("Reply to “I'll bring the book”"), "{s}");
    let a = app.handle_key(key(KeyCode::Enter));
    assert!(
        matches!(&a[..], [Action::Call { req: Request::Send { reply_to: Some(h), text, .. }, .. }] if h == "hash1-3" && text == "me too"),
        "{a:?}"
    );
    // `//` sends a text starting with `/`.
    typing(&mut app, "//shrug");
    let a = app.handle_key(key(KeyCode::Enter));
    assert!(
        matches!(&a[..], [Action::Call { req: Request::Send { text, .. }, .. }] if text == "/shrug"),
        "{a:?}"
    );
}

#[test]
fn failed_messages_can_be_retried() {
    let mut app = world();
    open_with(&mut app, 1, bob_messages());
    app.handle_key(key(KeyCode::Up)); // the newest: the failed one
    let a = app.handle_key(ch('R'));
    assert!(
        matches!(&a[..], [Action::Call { req: Request::Send { text, .. }, .. }] if text == "this one failed"),
        "{a:?}"
    );
    // A received message cannot be retried.
    app.handle_key(key(KeyCode::Up));
    for _ in 0..5 {
        app.handle_key(key(KeyCode::Up));
    }
    assert!(app.handle_key(ch('R')).is_empty());
    assert!(app.notice.as_ref().is_some_and(|n| n.error));
}

#[test]
fn compose_commands() {
    let mut app = world();
    open_with(&mut app, 3, vec![]);
    fn submit(app: &mut App, line: &str) -> Vec<Action> {
        typing(app, line);
        app.handle_key(key(KeyCode::Enter))
    }
    let app = &mut app;
    assert!(
        matches!(&submit(app, &format!("/add {BOB}"))[..], [Action::Call { req: Request::ContactAdd { contact, .. }, .. }] if contact == BOB)
    );
    assert!(submit(app, "/add not-an-onion").is_empty());
    assert!(
        matches!(&submit(app, "/join tofubundle:server:abc||torv3def")[..], [Action::Call { req: Request::GroupJoin { invite, .. }, .. }] if invite.0.as_str() == "tofubundle:server:abc||torv3def")
    );
    assert!(
        matches!(&submit(app, "/invite 1")[..], [Action::Call { req: Request::GroupInvite { group, contact, .. }, .. }] if group == "3" && contact == "1")
    );
    // By the name the list shows (the TUI shows no ids); a request is not a contact to
    // invite, and is passed on for the daemon to refuse.
    assert!(
        matches!(&submit(app, "/invite Bob")[..], [Action::Call { req: Request::GroupInvite { contact, .. }, .. }] if contact == "1")
    );
    let carol = app.visible().iter().find(|c| c.id == 2).unwrap().label();
    assert!(
        matches!(&submit(app, &format!("/invite {carol}"))[..], [Action::Call { req: Request::GroupInvite { contact, .. }, .. }] if *contact == carol)
    );
    // Two contacts listed under one name: refused (the invite is the group's secret).
    let mut twin = app.profiles[0]
        .convs
        .iter()
        .find(|c| c.id == 1)
        .unwrap()
        .clone();
    twin.id = 9;
    twin.address = SERVER.into();
    app.profiles[0].convs.push(twin);
    assert!(submit(app, "/invite bob").is_empty());
    assert!(screen(app, 100, 24).contains("2 contacts are listed as \"bob\""));
    app.profiles[0].convs.retain(|c| c.id != 9);
    assert!(
        matches!(&submit(app, &format!("/group book club 2 {SERVER}"))[..], [Action::Call { req: Request::GroupCreate { name, server, .. }, .. }] if name == "book club 2" && server == SERVER)
    );
    assert!(matches!(&submit(app, "/block")[..], []));
    assert!(submit(app, "/nope").is_empty());
    assert!(matches!(&submit(app, "/quit")[..], [Action::Quit]));
    app.quit = false;
    submit(app, "/help");
    assert_eq!(app.overlay, Overlay::Help(0));
}

#[test]
fn open_flag_opens_by_onion_name_or_id() {
    for want in [BOB, "1", "book club"] {
        let mut app = App::new(false, 0, Some(want.to_owned()));
        app.handle_reply(
            ctx("", None, What::Profiles),
            Ok(fixture::pong(vec![fixture::profile(ALICE)])),
        );
        app.handle_reply(
            ctx(ALICE, None, What::Contacts),
            Ok(Reply::Contacts {
                contacts: vec![contact(
                    1,
                    BOB,
                    Some("bob"),
                    true,
                    ConnectionState::Authenticated,
                )],
            }),
        );
        let a = app.handle_reply(
            ctx(ALICE, None, What::Groups),
            Ok(Reply::Groups {
                groups: vec![group(3, "book club", true, 0, 0)],
            }),
        );
        let want_id = if want == "book club" { 3 } else { 1 };
        assert_eq!(app.open, Some(want_id), "{want}");
        assert_eq!(app.focus, Focus::Compose);
        // The messages were asked for (by the first list that named it).
        let _ = a;
    }
    // A name neither list holds: said once both were read, not silently ignored.
    let mut app = App::new(false, 0, Some("nosuch".to_owned()));
    app.handle_reply(
        ctx("", None, What::Profiles),
        Ok(fixture::pong(vec![fixture::profile(ALICE)])),
    );
    app.handle_reply(
        ctx(ALICE, None, What::Contacts),
        Ok(Reply::Contacts { contacts: vec![] }),
    );
    assert!(!screen(&app, 100, 30).contains("no such contact or group"));
    app.handle_reply(
        ctx(ALICE, None, What::Groups),
        Ok(Reply::Groups { groups: vec![] }),
    );
    assert_eq!(app.open, None);
    assert!(
        screen(&app, 100, 30).contains("--open nosuch: no such contact or group"),
        "{}",
        screen(&app, 100, 30)
    );
    // A name two groups have: said, nothing opened at random.
    let mut app = App::new(false, 0, Some("twin".to_owned()));
    app.handle_reply(
        ctx("", None, What::Profiles),
        Ok(fixture::pong(vec![fixture::profile(ALICE)])),
    );
    app.handle_reply(
        ctx(ALICE, None, What::Groups),
        Ok(Reply::Groups {
            groups: vec![group(3, "twin", true, 0, 0), group(4, "twin", true, 0, 0)],
        }),
    );
    assert_eq!(app.open, None);
    let s = screen(&app, 100, 30);
    assert!(s.contains("several conversations have that name"), "{s}");
}

#[test]
fn contacts_unread_comes_from_the_daemon_except_the_open_one() {
    let mut app = world();
    let with_unread = |n: u64| {
        let mut bob = contact(1, BOB, Some("bob"), true, ConnectionState::Authenticated);
        bob.unread = n;
        let mut carol = contact(2, CAROL, None, false, ConnectionState::Connecting);
        carol.unread = 2;
        Ok(Reply::Contacts {
            contacts: vec![bob, carol],
        })
    };
    // Unread while the TUI was closed: shown as the daemon counts them.
    app.handle_reply(ctx(ALICE, None, What::Contacts), with_unread(3));
    let unread = |app: &App, id: i64| app.visible().iter().find(|c| c.id == id).unwrap().unread;
    assert_eq!((unread(&app, 1), unread(&app, 2)), (3, 2));
    assert!(screen(&app, 80, 24).contains("● bob (3)"));
    // Opened: read; a list answered before the daemon marked it stays read.
    open_with(&mut app, 1, bob_messages());
    assert_eq!(unread(&app, 1), 0);
    app.handle_reply(ctx(ALICE, None, What::Contacts), with_unread(3));
    assert_eq!((unread(&app, 1), unread(&app, 2)), (0, 2));
}

#[test]
fn events_update_the_list() {
    let mut app = world();
    // A message in a conversation that is not open: unread.
    let a = app.handle_event(Event::NewMessage {
        profile: ALICE.into(),
        conversation_id: 1,
        contact: BOB.into(),
        message_id: 9,
        signature: "1".into(),
        overlay: Some(1),
        body: String::new(),
        text: Some("x".into()),
        quoted_hash: None,
        content_hash: "h".into(),
        malformed: false,
        timestamp: "2025-01-02T03:04:05Z".into(),
    });
    assert!(a.is_empty());
    assert_eq!(app.visible().iter().find(|c| c.id == 1).unwrap().unread, 1);
    app.handle_event(Event::PeerStateChanged {
        profile: ALICE.into(),
        conversation_id: 1,
        contact: BOB.into(),
        state: ConnectionState::Disconnected,
    });
    assert_eq!(
        app.visible().iter().find(|c| c.id == 1).unwrap().peer,
        ConnectionState::Disconnected
    );
    // A new request: the lists are read again.
    let a = app.handle_event(Event::ContactCreated {
        profile: ALICE.into(),
        conversation_id: 7,
        contact: SERVER.into(),
        accepted: false,
        blocked: false,
        request: true,
    });
    assert!(a.iter().any(|a| matches!(
        a,
        Action::Call {
            req: Request::ContactList { .. },
            ..
        }
    )));
    // Ctrl-C quits from anywhere, even a prompt.
    app.handle_key(ch('a'));
    assert!(matches!(&app.handle_key(ctrl('c'))[..], [Action::Quit]));
}

/// Hostile names, statuses and messages are drawn inert: no control character reaches the
/// terminal (checked cell by cell in `screen`), and what they were is visible.
#[test]
fn hostile_text_is_drawn_inert() {
    let mut app = world();
    let mut evil = contact(
        1,
        BOB,
        Some("bob\x1b[2J\u{202e}evil"),
        true,
        ConnectionState::Authenticated,
    );
    evil.attributes.insert(
        cwtch::PUBLIC_PROFILE_STATUS.into(),
        "\x1b]0;owned\x07away".into(),
    );
    app.handle_reply(
        ctx(ALICE, None, What::Contacts),
        Ok(Reply::Contacts {
            contacts: vec![evil],
        }),
    );
    let hostile = [
        "\x1b[31mred\x1b[0m",
        "\x1b]8;;https://evil.example/\x07link\x1b]8;;\x07",
        "\x1b]52;c;cm0gLXJm\x07",
        "\x1bP1$qm\x1b\\",
        "\u{9b}2J",
        "abc\u{202e}txt.exe",
    ];
    let ms: Vec<MessageRow> = hostile
        .iter()
        .enumerate()
        .map(|(i, t)| {
            msg(
                1,
                i as i64 + 1,
                BOB,
                false,
                MessageState::Received,
                "12:00",
                Content::text(*t),
            )
        })
        .collect();
    let mut ms: Vec<MessageRow> = ms;
    ms.push(msg(
        1,
        99,
        BOB,
        false,
        MessageState::Received,
        "12:01",
        Content::FileShare {
            name: "cat\u{202e}gpj.exe\x1b[8m".into(),
            file_key: "00.11".into(),
            size: 1234,
        },
    ));
    open_with(&mut app, 1, ms);
    let s = screen(&app, 100, 30);
    assert!(
        s.contains("[shares a file: cat<U+202E>gpj.exe␛[8m") && s.contains("(1.2 KiB)"),
        "{s}"
    );
    assert!(s.contains("␛[31mred␛[0m"), "{s}");
    assert!(s.contains("␛]8;;https://evil.example/␇link␛]8;;␇"), "{s}");
    assert!(s.contains("␛]52;c;cm0gLXJm␇"), "{s}");
    assert!(s.contains("␛P1$qm␛\\"), "{s}");
    assert!(s.contains("<U+009B>2J"), "{s}");
    assert!(s.contains("abc<U+202E>txt.exe"), "{s}");
    assert!(s.contains("bob␛[2J<U+202E>evil"), "{s}");
    assert!(s.contains("online · “␛]0;owned␇away”"), "{s}");
    snapshot("hostile_100x30", &s);
}

#[test]
fn wrapping_breaks_at_spaces_and_counts_wide_characters() {
    assert_eq!(view::wrap("aaa bbb ccc", 7), vec!["aaa bbb", "ccc"]);
    assert_eq!(view::wrap("aaa bbbb ccc", 7), vec!["aaa", "bbbb", "ccc"]);
    assert_eq!(view::wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
    assert_eq!(view::wrap("你好你", 4), vec!["你好", "你"]);
    assert_eq!(view::wrap("", 4), vec![""]);
}

proptest::proptest! {
    #[test]
    fn wrapped_rows_fit_and_lose_nothing_but_spaces(s in "[a-z 你]{0,80}", w in 1usize..30) {
        let rows = view::wrap(&s, w);
        for r in &rows {
            proptest::prop_assert!(r.width() <= w.max(2), "{:?} wider than {}", r, w);
        }
        let squeeze = |t: &str| t.chars().filter(|c| *c != ' ').collect::<String>();
        proptest::prop_assert_eq!(squeeze(&rows.concat()), squeeze(&s));
    }
}

#[test]
fn history_scrolls_with_page_keys_home_and_end() {
    let mut app = world();
    let ms: Vec<MessageRow> = (1..=60)
        .map(|i| {
            msg(
                1,
                i,
                BOB,
                false,
                MessageState::Received,
                "08:00",
                Content::text(format!("line {i}")),
            )
        })
        .collect();
    open_with(&mut app, 1, ms);
    let s = screen(&app, 80, 24);
    assert!(
        s.contains("bob: line 60") && !s.contains("bob: line 1\n") && !s.contains("line 30 "),
        "{s}"
    );
    app.handle_key(key(KeyCode::PageUp));
    let s = screen(&app, 80, 24);
    assert!(
        s.contains("bob: line 50") && !s.contains("bob: line 60"),
        "{s}"
    );
    app.handle_key(key(KeyCode::PageDown));
    assert!(screen(&app, 80, 24).contains("bob: line 60"));
    // Home: the oldest (all 60 are read: fewer than a page were asked for).
    assert!(app.handle_key(key(KeyCode::Home)).is_empty());
    let s = screen(&app, 80, 24);
    assert!(
        s.contains("bob: line 1 ") || s.contains("bob: line 1│") || s.contains("bob: line 1\n"),
        "{s}"
    );
    assert!(!s.contains("bob: line 60"), "{s}");
    app.handle_key(key(KeyCode::End));
    assert!(screen(&app, 80, 24).contains("bob: line 60"));
}

/// Scrolled back, messages that arrive do not move the text being read: they go below, and
/// a marker on the conversation's border counts them until End.
#[test]
fn scrolled_back_new_messages_stay_below_and_are_counted() {
    let mut app = world();
    let line = |i: i64| {
        msg(
            1,
            i,
            BOB,
            false,
            MessageState::Received,
            "08:00",
            Content::text(format!("line {i}")),
        )
    };
    open_with(&mut app, 1, (1..=60).map(line).collect());
    app.handle_key(key(KeyCode::PageUp));
    let before = screen(&app, 80, 24);
    assert!(before.contains("bob: line 50") && !before.contains("new message"));
    let arrive = |app: &mut App, ids: std::ops::RangeInclusive<i64>| {
        app.handle_reply(
            ctx(ALICE, Some(1), What::Recent),
            Ok(Reply::Messages {
                messages: ids.map(line).collect(),
            }),
        );
    };
    arrive(&mut app, 61..=62);
    let s = screen(&app, 80, 24);
    let rows = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.contains("bob: line"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(rows(&s), rows(&before), "the text moved:\n{s}");
    assert!(s.contains("↓ 2 new messages · End"), "{s}");
    // Further back and forth keeps it so; PgDn to where scrolling began still counts them.
    app.handle_key(key(KeyCode::PageDown));
    let s = screen(&app, 80, 24);
    assert!(
        s.contains("bob: line 60") && !s.contains("bob: line 61"),
        "{s}"
    );
    assert!(s.contains("↓ 2 new messages"), "{s}");
    // End: the newest, and no marker.
    app.handle_key(key(KeyCode::End));
    let s = screen(&app, 80, 24);
    assert!(
        s.contains("bob: line 62") && !s.contains("new message"),
        "{s}"
    );
    // At the newest, what arrives is shown at once (no marker).
    arrive(&mut app, 63..=63);
    let s = screen(&app, 80, 24);
    assert!(
        s.contains("bob: line 63") && !s.contains("new message"),
        "{s}"
    );
}

#[test]
fn scrolling_past_the_oldest_read_reads_more() {
    let mut app = world();
    let n = i64::from(super::app::FIRST_PAGE);
    let ms: Vec<MessageRow> = (1..=n)
        .map(|i| {
            msg(
                1,
                i,
                BOB,
                false,
                MessageState::Received,
                "08:00",
                Content::text("x"),
            )
        })
        .collect();
    open_with(&mut app, 1, ms);
    let mut asked = None;
    for _ in 0..(n / 10 + 2) {
        for a in app.handle_key(key(KeyCode::PageUp)) {
            if let Action::Call {
                req: Request::Messages { limit, .. },
                ..
            } = a
            {
                asked = Some(limit);
            }
        }
    }
    assert_eq!(asked, Some(super::app::FIRST_PAGE * 2));
}

#[test]
fn own_profile_and_a_new_groups_invite_are_shown_and_copied() {
    let mut app = world();
    app.handle_reply(
        ctx(ALICE, None, What::Settings),
        Ok(alice_settings("reading", true, Some(true))),
    );
    let a = app.handle_key(ch('y'));
    assert!(matches!(&a[..], [Action::Copy(o)] if o == ALICE), "{a:?}");
    let s = screen(&app, 80, 24);
    assert!(
        s.contains(ALICE) && s.contains("status: reading") && s.contains("block unknown peers: on"),
        "{s}"
    );
    snapshot("profile_80x24", &s);
    app.handle_key(ch('z'));
    // `B` toggles blocking unknown peers (it is on: turn it off); the answer says so.
    let a = app.handle_key(ch('B'));
    assert!(
        matches!(
            &a[..],
            [Action::Call {
                req: Request::ProfileSettings {
                    block_unknown: Some(false),
                    name: None,
                    status: None,
                    ..
                },
                ..
            }]
        ),
        "{a:?}"
    );
    let Some(Action::Call { ctx: c, .. }) = a.into_iter().next() else {
        unreachable!()
    };
    app.handle_reply(c, Ok(alice_settings("reading", false, Some(true))));
    assert!(
        app.notice
            .as_ref()
            .is_some_and(|n| n.text == "unknown peers may now send contact requests"),
        "{:?}",
        app.notice
    );
    // `g`: a group's name, then its server (the first one added is offered).
    app.handle_key(ch('g'));
    typing(&mut app, "book club 2");
    app.handle_key(key(KeyCode::Enter));
    assert!(
        matches!(&app.overlay, Overlay::Prompt { ask: Ask::GroupServer { name }, input } if name == "book club 2" && input.as_str() == SERVER)
    );
    let a = app.handle_key(key(KeyCode::Enter));
    let Some(Action::Call {
        req: Request::GroupCreate { name, server, .. },
        ctx: c,
    }) = a.into_iter().next()
    else {
        panic!("no group.create");
    };
    assert_eq!((name.as_str(), server.as_str()), ("book club 2", SERVER));
    let mut g = group(9, "book club 2", true, 0, 0);
    g.invite = Some("tofubundle:server:eyJLZXlz||torv3eyJHcm91cElE".into());
    let a = app.handle_reply(c, Ok(Reply::Group { group: g }));
    assert!(
        a.iter()
            .any(|a| matches!(a, Action::Copy(i) if i.starts_with("tofubundle:"))),
        "{a:?}"
    );
    let s = screen(&app, 80, 24);
    assert!(
        s.contains("tofubundle:server:eyJLZXlz||torv3eyJHcm91cElE"),
        "{s}"
    );
    snapshot("group_created_80x24", &s);
    // In a small window the invite is wrapped to the popup, and shown whole.
    let long = format!(
        "tofubundle:server:{}||torv3{}",
        "A".repeat(120),
        "B".repeat(120)
    );
    app.overlay = Overlay::Invite(long.clone().into());
    let s = screen(&app, 50, 15);
    let shown: String = s
        .lines()
        .map(|l| l.trim_matches(|c: char| c == '│' || c.is_whitespace()))
        .collect();
    assert!(shown.contains(&long), "{s}");
    assert!(s.contains("whoever has it"), "{s}");
}

/// Smaller than 80×24 is not supported, but must not panic, whatever is shown.
#[test]
fn tiny_terminals_do_not_panic() {
    let mut app = world();
    open_with(&mut app, 1, bob_messages());
    for overlay in [
        Overlay::None,
        Overlay::Help(0),
        Overlay::Help(99),
        Overlay::Address,
    ] {
        app.overlay = overlay;
        for (w, h) in [(1, 1), (2, 2), (10, 3), (20, 5), (40, 10), (79, 23)] {
            screen(&app, w, h);
        }
    }
    app.handle_key(ch('z'));
    app.handle_key(key(KeyCode::Esc));
    app.handle_key(ch('a'));
    for (w, h) in [(1, 1), (5, 4), (30, 8)] {
        screen(&app, w, h);
    }
}

#[test]
fn the_panic_hook_restores_then_chains() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static ORDER: AtomicUsize = AtomicUsize::new(0);
    static RESTORED: AtomicUsize = AtomicUsize::new(0);
    static PREVIOUS: AtomicUsize = AtomicUsize::new(0);
    std::panic::set_hook(Box::new(|_| {
        PREVIOUS.store(ORDER.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
    }));
    super::chain_panic_hook(|| {
        RESTORED.store(ORDER.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
    });
    let r = std::panic::catch_unwind(|| panic!("boom"));
    let _ = std::panic::take_hook();
    assert!(r.is_err());
    assert_eq!(RESTORED.load(Ordering::SeqCst), 1, "restored first");
    assert_eq!(PREVIOUS.load(Ordering::SeqCst), 2, "then the previous hook");
}

#[test]
fn a_chosen_message_stays_in_view_and_pastes_land_where_typing_would() {
    let mut app = world();
    let ms: Vec<MessageRow> = (1..=60)
        .map(|i| {
            msg(
                1,
                i,
                BOB,
                false,
                MessageState::Received,
                "08:00",
                Content::text(format!("line {i}")),
            )
        })
        .collect();
    open_with(&mut app, 1, ms);
    for _ in 0..40 {
        app.handle_key(key(KeyCode::Up));
    }
    assert_eq!(app.cursor, Some(20));
    let s = screen(&app, 80, 24);
    assert!(
        s.contains("bob: line 21"),
        "the chosen message is not shown:\n{s}"
    );
    // A paste goes to the compose line (line breaks kept: a multi-line message) ...
    app.handle_paste("two\r\nlines");
    assert_eq!(
        (app.focus, app.compose.as_str()),
        (Focus::Compose, "two\nlines")
    );
    let a = app.handle_key(key(KeyCode::Enter));
    assert!(
        matches!(&a[..], [Action::Call { req: Request::Send { text, .. }, .. }] if text == "two\nlines"),
        "{a:?}"
    );
    // ... or into a prompt, on one line.
    app.handle_key(key(KeyCode::Esc));
    app.handle_key(ch('a'));
    app.handle_paste(&format!("{BOB}\n"));
    let a = app.handle_key(key(KeyCode::Enter));
    assert!(
        matches!(&a[..], [Action::Call { req: Request::ContactAdd { contact, .. }, .. }] if contact == BOB),
        "{a:?}"
    );
}

/// An answer read before a state change can arrive after its event: the event wins.
#[test]
fn states_from_events_outlive_stale_answers() {
    let mut app = world();
    app.handle_event(Event::ServerStateChanged {
        profile: ALICE.into(),
        conversation_id: 5,
        server: SERVER.into(),
        state: ServerState::Syncing,
        tokens: 0,
    });
    app.handle_event(Event::PeerStateChanged {
        profile: ALICE.into(),
        conversation_id: 1,
        contact: BOB.into(),
        state: ConnectionState::Failed,
    });
    // Stale lists: bob authenticated, the group synced.
    app.handle_reply(
        ctx(ALICE, None, What::Contacts),
        Ok(Reply::Contacts {
            contacts: vec![contact(
                1,
                BOB,
                Some("bob"),
                true,
                ConnectionState::Authenticated,
            )],
        }),
    );
    app.handle_reply(
        ctx(ALICE, None, What::Groups),
        Ok(Reply::Groups {
            groups: vec![group(3, "book club", true, 0, 0)],
        }),
    );
    let c = |id: i64| {
        app.visible()
            .into_iter()
            .find(|c| c.id == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(c(1).peer, ConnectionState::Failed);
    assert_eq!(c(3).server_state, ServerState::Syncing);
}

#[test]
fn deleting_asks_first() {
    let mut app = world();
    // A conversation: `D`, then anything but `y` keeps it.
    app.selected = app.visible().iter().position(|c| c.id == 1).unwrap();
    app.handle_key(ch('D'));
    let s = screen(&app, 80, 24);
    assert!(
        s.contains("Delete the contact bob and the whole conversation?"),
        "{s}"
    );
    snapshot("confirm_delete_80x24", &s);
    assert!(app.handle_key(ch('n')).is_empty());
    app.handle_key(ch('D'));
    let a = app.handle_key(ch('y'));
    assert!(
        matches!(&a[..], [Action::Call { req: Request::ContactDelete { contact, .. }, .. }] if contact == "1"),
        "{a:?}"
    );
    // The profile: `X`, `y`, then its password (never shown).
    app.handle_key(ch('X'));
    let s = screen(&app, 80, 24);
    assert!(s.contains("Delete the profile alice"), "{s}");
    // The question takes two lines: the key hint still shows, at any width.
    for w in [80, 50, 120] {
        let s = screen(&app, w, 24);
        assert!(s.contains("y: yes · any other key: no"), "{w}:\n{s}");
    }
    assert!(app.handle_key(ch('y')).is_empty());
    typing(&mut app, "pw");
    assert!(!screen(&app, 80, 24).contains("pw▏"));
    let a = app.handle_key(key(KeyCode::Enter));
    assert!(
        matches!(&a[..], [Action::Call { req: Request::ProfileDelete { profile: Some(p), password: Some(pw) }, .. }] if p == ALICE && pw.0.as_str() == "pw"),
        "{a:?}"
    );
    // Once it is gone, the list no longer has it, and nothing of it stays open.
    open_with(&mut app, 1, bob_messages());
    app.handle_reply(ctx("", None, What::Profiles), Ok(fixture::pong(vec![])));
    assert!(app.profiles.is_empty() && app.open.is_none() && app.messages.is_empty());
}

#[test]
fn a_long_error_is_shown_whole_below_the_status_line() {
    let mut app = world();
    open_with(&mut app, 1, bob_messages());
    typing(&mut app, "hello");
    let a = app.handle_key(key(KeyCode::Enter));
    let Some(Action::Call { ctx: c, .. }) = a.into_iter().next() else {
        panic!("no send");
    };
    let long = "the file was shared by someone who is not your contact: files in a group come \
                from their sharer over a direct connection; add them first";
    app.handle_reply(c, Err(long.into()));
    let s = screen(&app, 50, 15);
    // Every word of it is on the screen, in order, across the rows below the status line.
    let shown: String = s
        .lines()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join(" ");
    let words: Vec<&str> = long.split_whitespace().collect();
    let mut at = 0;
    for w in &words {
        let found = shown[at..]
            .find(w)
            .unwrap_or_else(|| panic!("{w:?} missing:\n{s}"));
        at += found + w.len();
    }
    // In the smallest windows it takes only the rows there are: the compose line stays.
    for h in [8, 9, 10] {
        let s = screen(&app, 40, h);
        assert!(s.contains("Message bob"), "40x{h}:\n{s}");
    }
    let s = screen(&app, 40, 8);
    assert!(s.contains('…'), "what is cut says so:\n{s}");
    // A short one stays on the status line itself.
    app.notice = Some(super::app::Notice {
        text: "saved".into(),
        error: false,
    });
    let s = screen(&app, 80, 24);
    assert!(s.lines().last().unwrap().contains("saved"), "{s}");
}

#[test]
fn a_refused_message_goes_back_on_the_compose_line() {
    let mut app = world();
    open_with(&mut app, 1, bob_messages());
    typing(&mut app, "far too long");
    let a = app.handle_key(key(KeyCode::Enter));
    let Some(Action::Call { ctx: c, .. }) = a.into_iter().next() else {
        panic!("no send");
    };
    assert!(app.compose.is_empty());
    app.handle_reply(c, Err("message too long".into()));
    assert_eq!(app.compose, "far too long");
    assert!(app
        .notice
        .as_ref()
        .is_some_and(|n| n.error && n.text == "message too long"));
}

#[test]
fn files_are_shared_with_a_command_and_downloaded_with_a_key() {
    let mut app = world();
    let key_str = format!("{}.{}", "ab".repeat(64), "cd".repeat(24));
    let ms = vec![
        msg(
            1,
            1,
            BOB,
            false,
            MessageState::Received,
            "08:00",
            Content::text("hi"),
        ),
        msg(
            1,
            2,
            BOB,
            false,
            MessageState::Received,
            "08:01",
            Content::FileShare {
                name: "cat.jpg".into(),
                file_key: key_str.clone(),
                size: 10,
            },
        ),
    ];
    open_with(&mut app, 1, ms);
    typing(&mut app, "/share /tmp/report.pdf");
    let a = app.handle_key(key(KeyCode::Enter));
    assert!(
        matches!(&a[..], [Action::Call { req: Request::FileShare { contact, path, .. }, .. }] if contact == "1" && path == "/tmp/report.pdf"),
        "{a:?}"
    );
    // Choose the file message (the newest) and press d.
    app.handle_key(key(KeyCode::Up));
    assert_eq!(app.cursor, Some(1));
    let a = app.handle_key(ch('d'));
    assert!(
        matches!(&a[..], [Action::Call { req: Request::FileDownload { contact, file_key, wait: false, .. }, .. }] if contact == "1" && *file_key == key_str),
        "{a:?}"
    );
    // A line break in a file's name is shown, not made.
    let mut odd = app.messages[1].clone();
    odd.content = Content::FileShare {
        name: "two\nlines.txt".into(),
        file_key: key_str.clone(),
        size: 1,
    };
    app.messages[1] = odd;
    let s = screen(&app, 80, 24);
    assert!(s.contains("two␊lines.txt (1 byte)"), "{s}");
    // s stops it: theirs, so its download (never a share of ours with the same key).
    let a = app.handle_key(ch('s'));
    assert!(
        matches!(&a[..], [Action::Call { req: Request::FileStop { file_key, download: Some(true), .. }, .. }] if *file_key == key_str),
        "{a:?}"
    );
    // A text message is not a file.
    app.handle_key(key(KeyCode::Up));
    assert!(app.handle_key(ch('s')).is_empty());
    assert!(app.handle_key(ch('d')).is_empty());
    assert!(app.notice.as_ref().is_some_and(|n| n.error));
    // Progress and completion show in the status line.
    app.handle_event(Event::FileDownloadProgress {
        profile: ALICE.into(),
        conversation_id: 1,
        file_key: key_str.clone(),
        done: 5,
        total: 10,
    });
    assert!(app.notice.as_ref().is_some_and(|n| n.text.contains("50%")));
    // Once the manifest is in, the status line names the file and says sizes as people do.
    app.handle_event(Event::FileManifestReceived {
        profile: ALICE.into(),
        conversation_id: 1,
        contact: BOB.into(),
        file_key: key_str.clone(),
        path: "/home/alice/Downloads/cat (1).jpg".into(),
        size: 3_000_000,
    });
    app.handle_event(Event::FileDownloadProgress {
        profile: ALICE.into(),
        conversation_id: 1,
        file_key: key_str.clone(),
        done: 1_500_000,
        total: 3_000_000,
    });
    let said = app
        .notice
        .as_ref()
        .map(|n| n.text.clone())
        .unwrap_or_default();
    assert_eq!(said, "downloading cat (1).jpg: 50% of 2.9 MiB");
    app.handle_event(Event::FileDownloadFailed {
        profile: ALICE.into(),
        conversation_id: 1,
        file_key: key_str.clone(),
        reason: "the sharer went away".into(),
    });
    let n = app.notice.clone().unwrap();
    assert!(
        n.error
            && n.text
                .contains("of cat (1).jpg failed: the sharer went away"),
        "{}",
        n.text
    );
    assert!(app.downloads.is_empty());
    // /share and /download need their argument.
    app.handle_key(key(KeyCode::Esc));
    typing(&mut app, "/share");
    assert!(app.handle_key(key(KeyCode::Enter)).is_empty());
    assert!(app.notice.as_ref().is_some_and(|n| n.error));
}

#[test]
fn an_image_that_arrived_is_described_not_shown() {
    let mut app = world();
    let key_str = format!("{}.{}", "ef".repeat(64), "01".repeat(24));
    let ms = vec![msg(
        1,
        1,
        BOB,
        false,
        MessageState::Received,
        "08:00",
        Content::FileShare {
            name: "cat.jpg".into(),
            file_key: key_str.clone(),
            size: 12_288,
        },
    )];
    open_with(&mut app, 1, ms);
    assert!(screen(&app, 100, 24).contains("[shares a file: cat.jpg (12.0 KiB)"));
    app.handle_event(Event::ImagePreview {
        profile: ALICE.into(),
        conversation_id: 1,
        contact: BOB.into(),
        file_key: key_str.clone(),
        profile_image: false,
        format: "jpeg".into(),
        width: 640,
        height: 480,
        bytes: 12_288,
        path: "/tmp/x/cat.jpg".into(),
    });
    let s = screen(&app, 100, 24);
    assert!(
        s.contains("[image: cat.jpg, JPEG image, 640×480, 12.0 KiB]"),
        "{s}"
    );
    assert!(app
        .notice
        .as_ref()
        .is_some_and(|n| !n.error && n.text.contains("image from") && n.text.contains("640×480")));
    assert_eq!(
        crate::tui::app::image_description("png", 1, 1, 5 * 1024 * 1024),
        "PNG image, 1×1, 5.0 MiB"
    );
}

#[test]
fn an_image_that_arrived_is_drawn_inline_where_the_terminal_can() {
    use crate::tui::app::Colours;
    let mut app = world();
    app.inline_images = Some(Colours::True);
    let key_str = format!("{}.{}", "ab".repeat(64), "02".repeat(24));
    let ms = vec![msg(
        1,
        1,
        BOB,
        false,
        MessageState::Received,
        "08:00",
        Content::FileShare {
            name: "dot.png".into(),
            file_key: key_str.clone(),
            size: 100,
        },
    )];
    open_with(&mut app, 1, ms);
    let preview = |profile_image: bool| Event::ImagePreview {
        profile: ALICE.into(),
        conversation_id: 1,
        contact: BOB.into(),
        file_key: key_str.clone(),
        profile_image,
        format: "png".into(),
        width: 3,
        height: 3,
        bytes: 100,
        path: "/tmp/x/dot.png".into(),
    };
    // A profile picture is not drawn in the conversation.
    assert!(!app
        .handle_event(preview(true))
        .iter()
        .any(|a| matches!(a, Action::Thumbnail { .. })));
    let actions = app.handle_event(preview(false));
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Thumbnail { file_key, path }
            if *file_key == key_str && path == "/tmp/x/dot.png")),
        "{actions:?}"
    );
    // 3×3 pixels: two rows of cells, the second with only its upper half.
    let red = [255, 0, 0];
    let blue = [0, 0, 255];
    let green = [0, 255, 0];
    app.handle_thumbnail(
        key_str.clone(),
        Ok(cwtch::images::Thumbnail {
            width: 3,
            height: 3,
            pixels: vec![red, red, red, blue, blue, blue, green, green, green],
        }),
    );
    let mut t = Terminal::new(TestBackend::new(100, 24)).unwrap();
    t.draw(|f| view::render(&app, f)).unwrap();
    let buf = t.backend().buffer().clone();
    let cells: Vec<_> = (0..24u16)
        .flat_map(|y| (0..100u16).map(move |x| (x, y)))
        .filter(|&(x, y)| buf[(x, y)].symbol() == "▀")
        .map(|(x, y)| (x, y, buf[(x, y)].fg, buf[(x, y)].bg))
        .collect();
    assert_eq!(cells.len(), 6, "{cells:?}");
    let (x0, y0) = (cells[0].0, cells[0].1);
    for (x, y, fg, bg) in &cells {
        assert!((x0..x0 + 3).contains(x), "{cells:?}");
        if *y == y0 {
            assert_eq!((*fg, *bg), (Color::Rgb(255, 0, 0), Color::Rgb(0, 0, 255)));
        } else {
            assert_eq!(*y, y0 + 1);
            assert_eq!(*fg, Color::Rgb(0, 255, 0));
        }
    }
    // The description stays, above the picture.
    let s = screen(&app, 100, 24);
    assert!(s.contains("[image: dot.png, PNG image, 3×3"), "{s}");

    // A terminal without colour gets the description only.
    app.inline_images = None;
    let s = screen(&app, 100, 24);
    assert!(!s.contains('▀'), "{s}");
    app.inline_images = Some(Colours::Palette256);
    let s = screen(&app, 100, 24);
    assert_eq!(s.matches('▀').count(), 6, "{s}");
}

#[test]
fn terminals_and_palettes() {
    use crate::tui::app::Colours;
    use crate::tui::view::palette256;
    assert_eq!(
        Colours::detect(Some("truecolor"), Some("xterm"), false),
        Some(Colours::True)
    );
    assert_eq!(
        Colours::detect(None, Some("xterm-256color"), false),
        Some(Colours::Palette256)
    );
    assert_eq!(Colours::detect(None, Some("xterm"), false), None);
    assert_eq!(Colours::detect(None, None, false), None);
    assert_eq!(Colours::detect(Some("truecolor"), None, true), None);
    assert_eq!(palette256([0, 0, 0]), 16);
    assert_eq!(palette256([255, 255, 255]), 231);
    assert_eq!(palette256([255, 0, 0]), 196);
    assert_eq!(palette256([95, 135, 175]), 16 + 36 + 12 + 3);
    assert_eq!(palette256([47, 48, 114]), 16 + 6 + 1);
}

#[test]
fn permissions_are_shown_and_changed_with_a_command() {
    use crate::cli::Permission;
    let mut app = world();
    let run = |app: &mut App, line: &str| {
        app.compose.clear();
        typing(app, line);
        app.handle_key(key(KeyCode::Enter))
    };
    // Conversation 1 is Bob's.
    open_with(&mut app, 1, Vec::new());
    let a = run(&mut app, "/permissions");
    assert!(
        matches!(&a[..], [Action::Call { req: Request::ContactPermissions { contact, files: None, images: None, .. }, ctx }]
            if contact == BOB && ctx.what == What::Permissions),
        "{a:?}"
    );
    let a = run(&mut app, "/permissions files refuse");
    assert!(
        matches!(
            &a[..],
            [Action::Call {
                req: Request::ContactPermissions {
                    files: Some(Permission::Refuse),
                    images: None,
                    ..
                },
                ..
            }]
        ),
        "{a:?}"
    );
    let a = run(&mut app, "/permissions images default");
    assert!(
        matches!(
            &a[..],
            [Action::Call {
                req: Request::ContactPermissions {
                    files: None,
                    images: Some(Permission::Default),
                    ..
                },
                ..
            }]
        ),
        "{a:?}"
    );
    for bad in [
        "/permissions files",
        "/permissions files maybe",
        "/permissions cats allow",
        "/permissions files allow extra",
    ] {
        app.notice = None;
        assert!(run(&mut app, bad).is_empty(), "{bad}");
        assert!(
            app.notice
                .as_ref()
                .is_some_and(|n| n.error && n.text.contains("usage: /permissions")),
            "{bad}: {:?}",
            app.notice
        );
    }
    // The answer: what they are now.
    let mut row = contact(1, BOB, Some("bob"), true, ConnectionState::Authenticated);
    row.permissions = cwtch::Permissions {
        share_files: None,
        render_images: Some(false),
    };
    app.handle_reply(
        ctx(ALICE, Some(1), What::Permissions),
        Ok(Reply::Contact { contact: row }),
    );
    let n = app.notice.as_ref().expect("a notice");
    assert!(!n.error, "{n:?}");
    assert!(
        n.text.contains("files: allow (default)  images: refuse"),
        "{n:?}"
    );
}

#[test]
fn images_that_arrived_before_are_described_and_drawn_from_the_messages() {
    use crate::tui::app::Colours;
    let mut app = world();
    app.inline_images = Some(Colours::Palette256);
    let key_str = format!("{}.{}", "cd".repeat(64), "03".repeat(24));
    let mut m = image_message(&key_str, "old.gif", "gif", (10, 20), 2048);
    open_with(&mut app, 1, vec![m.clone()]);
    let s = screen(&app, 100, 24);
    assert!(s.contains("[image: old.gif, GIF image, 10×20"), "{s}");
    // Its thumbnail is asked for once: a reload asks no more.
    let reload = ctx(ALICE, Some(1), What::Messages);
    let a = app.handle_reply(
        reload.clone(),
        Ok(Reply::Messages {
            messages: vec![m.clone()],
        }),
    );
    assert!(a.is_empty(), "asked twice: {a:?}");
    // Without colours: described, no thumbnail asked for.
    let mut plain = world();
    let key2 = format!("{}.{}", "ce".repeat(64), "03".repeat(24));
    m.content = Content::FileShare {
        name: "old.gif".into(),
        file_key: key2.clone(),
        size: 2048,
    };
    if let Some(i) = m.image.as_mut() {
        i.file_key = key2;
    }
    open_with(&mut plain, 1, vec![m]);
    assert!(screen(&plain, 100, 24).contains("[image: old.gif, GIF image, 10×20"));
    assert!(plain.thumbnails_asked.is_empty());
}

#[test]
fn a_thumbnail_is_asked_for_when_the_messages_arrive() {
    use crate::tui::app::Colours;
    let mut app = world();
    app.inline_images = Some(Colours::True);
    let key_str = format!("{}.{}", "cf".repeat(64), "03".repeat(24));
    let m = image_message(&key_str, "new.png", "png", (1, 1), 99);
    let a = app.handle_reply(
        ctx(ALICE, Some(1), What::Messages),
        Ok(Reply::Messages {
            messages: vec![m.clone()],
        }),
    );
    // Not the open conversation: nothing.
    assert!(a.is_empty(), "{a:?}");
    open_with(&mut app, 1, Vec::new());
    let a = app.handle_reply(
        ctx(ALICE, Some(1), What::Messages),
        Ok(Reply::Messages { messages: vec![m] }),
    );
    assert!(
        matches!(&a[..], [Action::Thumbnail { file_key, path }] if *file_key == key_str && path == "/tmp/x/new.png"),
        "{a:?}"
    );
}

#[test]
fn previews_and_the_profile_picture_are_set_with_commands() {
    let mut app = world();
    let run = |app: &mut App, line: &str| {
        app.compose.clear();
        app.focus = Focus::Compose;
        typing(app, line);
        app.handle_key(key(KeyCode::Enter))
    };
    for (line, want) in [("/previews on", true), ("/previews off", false)] {
        let a = run(&mut app, line);
        assert!(
            matches!(&a[..], [Action::Call { req: Request::ProfileSettings { image_previews: Some(on), image: None, name: None, .. }, ctx }]
                if *on == want && matches!(ctx.what, What::Changed(_))),
            "{line}: {a:?}"
        );
    }
    app.notice = None;
    assert!(run(&mut app, "/previews maybe").is_empty());
    assert!(app
        .notice
        .as_ref()
        .is_some_and(|n| n.error && n.text.contains("usage: /previews on|off")));
    let a = run(&mut app, "/picture /tmp/me.png");
    assert!(
        matches!(&a[..], [Action::Call { req: Request::ProfileSettings { image: Some(p), image_previews: None, .. }, .. }]
            if p == "/tmp/me.png"),
        "{a:?}"
    );
    for (line, want) in [("/online off", false), ("/online on", true)] {
        let a = run(&mut app, line);
        assert!(
            matches!(&a[..], [Action::Call { req: Request::ProfileSettings { online: Some(on), image: None, image_previews: None, .. }, .. }]
                if *on == want),
            "{line}: {a:?}"
        );
    }
    app.notice = None;
    assert!(run(&mut app, "/online maybe").is_empty());
    assert!(app
        .notice
        .as_ref()
        .is_some_and(|n| n.error && n.text.contains("usage: /online on|off")));
    let a = run(&mut app, "/picture none");
    assert!(
        matches!(
            &a[..],
            [Action::Call {
                req: Request::ProfileSettings {
                    image: None,
                    remove_image: true,
                    ..
                },
                ..
            }]
        ),
        "{a:?}"
    );
    let a = run(&mut app, "/picture ./none");
    assert!(
        matches!(&a[..], [Action::Call { req: Request::ProfileSettings { image: Some(p), remove_image: false, .. }, .. }]
            if p.ends_with("/none")),
        "{a:?}"
    );
    app.notice = None;
    assert!(run(&mut app, "/picture").is_empty());
    assert!(app.notice.as_ref().is_some_and(|n| n.error));
}

/// Bob's file message (conversation 1, message 1) sharing `name`, an image that arrived and
/// was checked (at `/tmp/x/<name>`).
fn image_message(
    file_key: &str,
    name: &str,
    format: &str,
    (width, height): (u32, u32),
    bytes: u64,
) -> MessageRow {
    let mut m = msg(
        1,
        1,
        BOB,
        false,
        MessageState::Received,
        "08:00",
        Content::FileShare {
            name: name.into(),
            file_key: file_key.into(),
            size: bytes,
        },
    );
    m.image = Some(cwtch::Image {
        conversation_id: 1,
        file_key: file_key.into(),
        path: format!("/tmp/x/{name}"),
        info: cwtch::ImageInfo {
            format: format.into(),
            width,
            height,
            bytes,
        },
    });
    m
}

#[test]
fn a_profile_taken_offline_says_so() {
    let mut app = world();
    assert!(screen(&app, 80, 24).contains("online"));
    let settings = |online: Option<bool>| crate::protocol::SettingsRow {
        profile_id: "c39e0660a885b6000173ffea9d214b5c".into(),
        onion: ALICE.into(),
        name: "alice".into(),
        status: String::new(),
        block_unknown: false,
        image_previews: false,
        image: None,
        autostart: false,
        online,
    };
    app.handle_reply(
        ctx(ALICE, None, What::Settings),
        Ok(Reply::Settings {
            settings: settings(Some(false)),
        }),
    );
    let s = screen(&app, 80, 24);
    assert!(s.contains("alice offline"), "{s}");
    // Back online: the profile's own event says so.
    app.handle_event(Event::ProfileOnline {
        profile: ALICE.into(),
    });
    let s = screen(&app, 80, 24);
    assert!(!s.contains("offline") && s.contains("online"), "{s}");
}

fn found(conversation: &str, position: u64, m: MessageRow) -> crate::protocol::FoundRow {
    crate::protocol::FoundRow {
        conversation: conversation.into(),
        position,
        message: m,
    }
}

#[test]
fn search_lists_what_was_found_and_opens_it_at_the_message() {
    let mut app = world();
    app.focus = Focus::Compose;
    typing(&mut app, "/search BOOK");
    let actions = app.handle_key(key(KeyCode::Enter));
    let c = match &actions[..] {
        [Action::Call {
            req:
                Request::Search {
                    profile,
                    pattern,
                    conversation: None,
                    ..
                },
            ctx: c,
        }] => {
            assert_eq!(profile.as_deref(), Some(ALICE));
            assert_eq!(pattern, "BOOK");
            c.clone()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(c.what, What::Search);
    // Found: one message of Bob's conversation (the 5th newest), one of a group's.
    let in_bob = bob_messages()[2].clone();
    let mut in_group = msg(
        3,
        9,
        BOB,
        false,
        MessageState::Received,
        "10:30",
        Content::text("next book: \u{1b}[31mDune\nchapter 1"),
    );
    in_group.timestamp = Some("2025-01-03T10:30:00Z".into());
    app.handle_reply(
        c.clone(),
        Ok(Reply::Found {
            found: vec![
                found("book club", 0, in_group),
                found("bob", 4, in_bob.clone()),
            ],
        }),
    );
    assert!(matches!(&app.overlay, Overlay::Search { found, selected: 0, .. } if found.len() == 2));
    let s = screen(&app, 80, 24);
    snapshot("search_results", &s);
    assert!(s.contains("“BOOK”: 2 found"), "{s}");
    assert!(s.contains("2025-01-03 10:30 book club"), "{s}");
    assert!(s.contains("I'll bring the book"), "{s}");
    // Down, Enter: Bob's conversation opens, read back at least as far as the message.
    assert!(app.handle_key(key(KeyCode::Down)).is_empty());
    let actions = app.handle_key(key(KeyCode::Enter));
    let c = match &actions[..] {
        [Action::Call {
            req:
                Request::Messages {
                    contact,
                    offset: 0,
                    limit,
                    ..
                },
            ctx: c,
        }] => {
            assert_eq!(contact, "1");
            assert!(*limit >= 5, "{limit}");
            c.clone()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(app.overlay, Overlay::None);
    assert_eq!(app.open, Some(1));
    app.handle_reply(
        c,
        Ok(Reply::Messages {
            messages: bob_messages(),
        }),
    );
    // The message is chosen: r quotes it, as any chosen message.
    assert_eq!(app.focus, Focus::Messages);
    assert_eq!(app.cursor, Some(2));
    app.handle_key(ch('r'));
    assert_eq!(
        app.reply_to.as_ref().map(|(h, _)| h.as_str()),
        Some(in_bob.content_hash.as_str())
    );
    app.reply_to = None;
    // Moved on (Tab to the compose line) before the messages arrive: nothing is chosen,
    // the focus stays where the user put it.
    app.focus = Focus::Compose;
    app.handle_reply(
        ctx(ALICE, None, What::Search),
        Ok(Reply::Found {
            found: vec![found("bob", 4, in_bob.clone())],
        }),
    );
    let a = app.handle_key(key(KeyCode::Enter));
    let [Action::Call { ctx: c, .. }] = &a[..] else {
        panic!("{a:?}")
    };
    let c = c.clone();
    assert_eq!(app.focus, Focus::Messages);
    app.handle_key(key(KeyCode::Tab));
    assert_eq!(app.focus, Focus::Compose);
    app.handle_reply(
        c,
        Ok(Reply::Messages {
            messages: bob_messages(),
        }),
    );
    assert_eq!(app.focus, Focus::Compose);
    assert_eq!(app.cursor, None);

    // Nothing found: said on the status line. Esc closes the results.
    app.focus = Focus::Compose;
    typing(&mut app, "/search zebra");
    let actions = app.handle_key(key(KeyCode::Enter));
    let [Action::Call { ctx: c, .. }] = &actions[..] else {
        panic!("{actions:?}")
    };
    app.handle_reply(c.clone(), Ok(Reply::Found { found: vec![] }));
    assert_eq!(app.overlay, Overlay::None);
    assert!(screen(&app, 80, 24).contains("nothing found for “zebra”"));
    typing(&mut app, "/search");
    let actions = app.handle_key(key(KeyCode::Enter));
    assert!(actions.is_empty());
    assert!(screen(&app, 80, 24).contains("/search needs an argument"));
    app.handle_reply(
        ctx(ALICE, None, What::Search),
        Ok(Reply::Found {
            found: vec![found("bob", 4, bob_messages()[2].clone())],
        }),
    );
    assert!(matches!(app.overlay, Overlay::Search { .. }));
    assert!(app.handle_key(key(KeyCode::Esc)).is_empty());
    assert_eq!(app.overlay, Overlay::None);
    // Small terminals do not panic.
    app.handle_reply(
        ctx(ALICE, None, What::Search),
        Ok(Reply::Found {
            found: vec![found("bob", 4, bob_messages()[2].clone())],
        }),
    );
    for (w, h) in [(1, 1), (10, 3), (20, 6), (200, 60)] {
        screen(&app, w, h);
    }
    // The profile goes away (deleted elsewhere): its results go with it.
    app.handle_reply(ctx("", None, What::Profiles), Ok(fixture::pong(vec![])));
    assert!(!matches!(app.overlay, Overlay::Search { .. }));
}

/// The text of the compose box's row on the screen (between its borders).
fn compose_row(app: &App) -> String {
    let s = screen(app, 80, 24);
    let row = s.lines().nth(21).unwrap();
    row.trim_start_matches('│')
        .trim_end()
        .trim_end_matches('│')
        .trim_end()
        .to_owned()
}

#[test]
fn the_compose_line_edits_at_a_cursor() {
    let mut app = world();
    open_with(&mut app, 1, bob_messages());
    typing(&mut app, "hello world");
    assert_eq!(compose_row(&app), "hello world▏");
    // Ctrl-← (or Alt-b) to the word before, and type there.
    app.handle_key(KeyEvent::new(KeyCode::Left, KeyModifiers::CONTROL));
    typing(&mut app, "big ");
    assert_eq!(app.compose, "hello big world");
    assert_eq!(compose_row(&app), "hello big ▏world");
    // ← → Delete Backspace, one character at a time (not bytes).
    app.handle_key(key(KeyCode::Right));
    app.handle_key(key(KeyCode::Delete));
    app.handle_key(key(KeyCode::Backspace));
    assert_eq!(app.compose, "hello big rld");
    typing(&mut app, "wö");
    assert_eq!(app.compose, "hello big wörld");
    app.handle_key(key(KeyCode::Left));
    app.handle_key(key(KeyCode::Backspace));
    assert_eq!(app.compose, "hello big örld");
    // Ctrl-A to the start, Ctrl-K cuts the rest; Ctrl-E to the end; Ctrl-W a word.
    app.handle_key(ctrl('a'));
    typing(&mut app, ">");
    assert_eq!(compose_row(&app), ">▏hello big örld");
    app.handle_key(ctrl('e'));
    app.handle_key(ctrl('w'));
    assert_eq!(app.compose, ">hello big ");
    app.handle_key(KeyEvent::new(KeyCode::Char('b'), KeyModifiers::ALT));
    app.handle_key(ctrl('k'));
    assert_eq!(app.compose, ">hello ");
    app.handle_key(ctrl('u'));
    assert_eq!(app.compose, "");
    // Alt-Enter breaks the line (shown as ␊ on the one-line box), and it is sent.
    typing(&mut app, "two");
    app.handle_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::ALT));
    typing(&mut app, "lines");
    assert_eq!(app.compose, "two\nlines");
    assert_eq!(compose_row(&app), "two␊lines▏");
    let a = app.handle_key(key(KeyCode::Enter));
    assert!(
        matches!(&a[..], [Action::Call { req: Request::Send { text, .. }, .. }] if text == "two\nlines"),
        "{a:?}"
    );
    // A paste lands at the cursor; Enter sends the whole line and starts a new one.
    typing(&mut app, "ab");
    app.handle_key(key(KeyCode::Left));
    app.handle_paste("XY");
    assert_eq!(compose_row(&app), "aXY▏b");
    let a = app.handle_key(key(KeyCode::Enter));
    assert!(
        matches!(&a[..], [Action::Call { req: Request::Send { text, .. }, .. }] if text == "aXYb"),
        "{a:?}"
    );
    assert_eq!(compose_row(&app), "▏");
    typing(&mut app, "next");
    assert_eq!(app.compose, "next");
    // A long line shows the row the cursor is on.
    app.handle_key(ctrl('u'));
    let long = "word ".repeat(40);
    typing(&mut app, &long);
    app.handle_key(ctrl('a'));
    assert!(
        compose_row(&app).starts_with("▏word word"),
        "{}",
        compose_row(&app)
    );
    assert!(compose_row(&app).ends_with('…'), "{}", compose_row(&app));
}

/// A long history: only the messages the window shows are drawn, and they are drawn exactly
/// as when every message is (date lines from the message before, quotes of messages out of
/// sight, the chosen message's range).
#[test]
fn only_the_shown_messages_are_drawn_and_they_are_drawn_the_same() {
    let mut app = world();
    let mut ms = Vec::new();
    for i in 0..3000i64 {
        let content = if i % 7 == 3 {
            Content::QuotedReply {
                quoted_hash: format!("hash1-{}", i - 3),
                body: format!("replying to {}", i - 3),
            }
        } else {
            Content::text("word ".repeat(usize::try_from(i % 23).unwrap()))
        };
        let mut m = msg(
            1,
            i,
            if i % 2 == 0 { BOB } else { ALICE },
            i % 2 == 1,
            MessageState::Received,
            "09:00",
            content,
        );
        m.timestamp = if i % 11 == 5 {
            None
        } else {
            Some(format!("2025-01-{:02}T09:00:00Z", 1 + i / 100))
        };
        ms.push(m);
    }
    app.missing.insert((ALICE.into(), 1, 2990));
    open_with(&mut app, 1, ms);
    let (all, _, _) = view::message_lines(&app, 60, usize::MAX);
    assert!(all.len() > 5000, "{}", all.len());
    for need in [0, 1, 10, 45, 500] {
        let (some, chosen, _) = view::message_lines(&app, 60, need);
        assert!(some.len() >= need, "{need}");
        // Whole messages only: at most one (of at most 8 lines here) beyond what is needed.
        assert!(some.len() < need + 10, "{need}: {}", some.len());
        assert_eq!(some[..], all[all.len() - some.len()..], "{need}");
        assert_eq!(chosen, None);
    }
    // A chosen message far back is drawn, and so is everything after it.
    app.cursor = Some(100);
    let (all, all_chosen, _) = view::message_lines(&app, 60, usize::MAX);
    let (some, chosen, _) = view::message_lines(&app, 60, 40);
    assert_eq!(some[..], all[all.len() - some.len()..]);
    let (a, b) = all_chosen.unwrap();
    let off = all.len() - some.len();
    assert_eq!(chosen, Some((a - off, b - off)));
    assert!(
        some.len() < all.len(),
        "the messages before it are not drawn"
    );
}

/// A reply quotes the nearest message before it with that content hash (one author's equal
/// texts share one).
#[test]
fn a_quote_shows_the_nearest_message_before_it() {
    let mut app = world();
    let mut first = msg(
        1,
        1,
        BOB,
        false,
        MessageState::Received,
        "09:00",
        Content::text("ok (the first)"),
    );
    let mut second = msg(
        1,
        2,
        BOB,
        false,
        MessageState::Received,
        "09:01",
        Content::text("ok (the second)"),
    );
    first.content_hash = "same".into();
    second.content_hash = "same".into();
    let reply = msg(
        1,
        3,
        ALICE,
        true,
        MessageState::Acknowledged,
        "09:02",
        Content::QuotedReply {
            quoted_hash: "same".into(),
            body: "good".into(),
        },
    );
    open_with(&mut app, 1, vec![first, second, reply]);
    let s = screen(&app, 80, 24);
    assert!(s.contains("┃ bob: ok (the second)"), "{s}");
}

/// A long quote takes two rows, each with the quote's bar, and is cut with `…`.
#[test]
fn a_long_quote_keeps_its_bar_on_both_rows() {
    let mut app = world();
    let long = msg(
        1,
        1,
        BOB,
        false,
        MessageState::Received,
        "09:00",
        Content::text("the quick brown fox jumps over the lazy dog ".repeat(4)),
    );
    let reply = msg(
        1,
        2,
        ALICE,
        true,
        MessageState::Acknowledged,
        "09:02",
        Content::QuotedReply {
            quoted_hash: "hash1-1".into(),
            body: "indeed".into(),
        },
    );
    open_with(&mut app, 1, vec![long, reply]);
    let s = screen(&app, 80, 24);
    let quote: Vec<&str> = s.lines().filter(|l| l.contains('┃')).collect();
    assert_eq!(quote.len(), 2, "{s}");
    assert!(quote[0].contains("┃ bob: the quick brown fox"), "{s}");
    assert!(quote[1].contains("┃ ") && quote[1].contains('…'), "{s}");
}

/// Opening a conversation with unread messages draws a "new" line above the oldest of them,
/// where it stays while the conversation is open, whatever arrives after.
#[test]
fn unread_messages_are_marked_new_when_the_conversation_opens() {
    let mut app = world();
    // The group has 2 unread: Bob's last two (ours in between is not counted).
    let ms = vec![
        msg(
            3,
            1,
            BOB,
            false,
            MessageState::Received,
            "09:00",
            Content::text("read before"),
        ),
        msg(
            3,
            2,
            BOB,
            false,
            MessageState::Received,
            "09:01",
            Content::text("first new"),
        ),
        msg(
            3,
            3,
            ALICE,
            true,
            MessageState::Acknowledged,
            "09:02",
            Content::text("mine"),
        ),
        msg(
            3,
            4,
            BOB,
            false,
            MessageState::Received,
            "09:03",
            Content::text("second new"),
        ),
    ];
    open_with(&mut app, 3, ms.clone());
    assert_eq!(app.new_from, Some(2));
    let s = screen(&app, 80, 24);
    let lines: Vec<&str> = s.lines().collect();
    let at = |t: &str| lines.iter().position(|l| l.contains(t)).unwrap();
    assert!(s.contains("─ new ─"), "{s}");
    assert_eq!(at("─ new ─") + 1, at("first new"), "{s}");
    assert!(at("read before") < at("─ new ─"), "{s}");
    // A message arriving (the conversation re-read) does not move it.
    let mut more = ms.clone();
    more.push(msg(
        3,
        5,
        BOB,
        false,
        MessageState::Received,
        "09:04",
        Content::text("newest"),
    ));
    app.handle_reply(
        ctx(ALICE, Some(3), What::Messages),
        Ok(Reply::Messages { messages: more }),
    );
    assert_eq!(app.new_from, Some(2));
    // Opened again later (nothing unread): no line.
    app.focus = Focus::List;
    open_with(&mut app, 1, bob_messages());
    assert_eq!(app.new_from, None, "Bob's conversation had nothing unread");
    app.focus = Focus::List;
    open_with(&mut app, 3, ms);
    assert!(!screen(&app, 80, 24).contains("─ new ─"));
}

/// `/rename NAME` names the open contact or group for us alone; `/rename` alone removes our
/// name for a contact (a group must have one).
#[test]
fn rename_names_the_open_conversation() {
    let mut app = world();
    open_with(&mut app, 1, bob_messages());
    typing(&mut app, "/rename Bobby T");
    let a = app.handle_key(key(KeyCode::Enter));
    let c = match &a[..] {
        [Action::Call {
            req:
                Request::ContactRename {
                    contact,
                    name: Some(n),
                    ..
                },
            ctx,
        }] if contact == "1" && n == "Bobby T" => ctx.clone(),
        other => panic!("{other:?}"),
    };
    app.handle_reply(
        c,
        Ok(Reply::Contact {
            contact: contact(
                1,
                BOB,
                Some("Bobby T"),
                true,
                ConnectionState::Authenticated,
            ),
        }),
    );
    assert!(screen(&app, 80, 24).contains("renamed (for you alone)"));
    typing(&mut app, "/rename");
    let a = app.handle_key(key(KeyCode::Enter));
    assert!(
        matches!(
            &a[..],
            [Action::Call {
                req: Request::ContactRename { name: None, .. },
                ..
            }]
        ),
        "{a:?}"
    );
    app.focus = Focus::List;
    open_with(&mut app, 3, vec![]);
    typing(&mut app, "/rename");
    assert!(app.handle_key(key(KeyCode::Enter)).is_empty());
    assert!(screen(&app, 80, 24).contains("a group needs a name"));
    typing(&mut app, "/rename readers");
    let a = app.handle_key(key(KeyCode::Enter));
    assert!(
        matches!(&a[..], [Action::Call { req: Request::GroupRename { group, name, .. }, .. }] if group == "3" && name == "readers"),
        "{a:?}"
    );
    // The library's event re-reads the lists.
    let a = app.handle_event(Event::GroupRenamed {
        profile: ALICE.into(),
        conversation_id: 3,
        name: "readers".into(),
    });
    assert!(
        a.iter().any(|x| matches!(
            x,
            Action::Call {
                req: Request::GroupList { .. },
                ..
            }
        )),
        "{a:?}"
    );
}

/// `--bell`: a message in a conversation that is not open rings the terminal's bell; one in
/// the open conversation, or without `--bell`, does not.
#[test]
fn the_bell_rings_for_messages_elsewhere_when_asked() {
    let new_message = |conv: i64| Event::NewMessage {
        profile: ALICE.into(),
        conversation_id: conv,
        contact: BOB.into(),
        message_id: 99,
        signature: "1".into(),
        overlay: Some(1),
        body: String::new(),
        text: Some("hi".into()),
        quoted_hash: None,
        content_hash: "h".into(),
        malformed: false,
        timestamp: "2025-01-02T03:04:05Z".into(),
    };
    let rings = |a: &[Action]| a.iter().any(|x| matches!(x, Action::Bell));
    let mut app = world();
    open_with(&mut app, 1, bob_messages());
    assert!(!rings(&app.handle_event(new_message(3))), "not asked for");
    app.bell = true;
    assert!(rings(&app.handle_event(new_message(3))));
    assert!(
        rings(&app.handle_event(new_message(42))),
        "a conversation not listed yet"
    );
    assert!(!rings(&app.handle_event(new_message(1))), "the open one");
}

/// With a long history read back, an event in the open conversation re-reads only the newest
/// page and merges it in; a change to a message older than that page re-reads everything.
#[test]
fn a_long_history_is_not_read_again_for_each_event() {
    let mut app = world();
    let history = |n: i64, acked_upto: i64| -> Vec<MessageRow> {
        (1..=n)
            .map(|i| {
                let state = if i <= acked_upto {
                    MessageState::Acknowledged
                } else {
                    MessageState::Sending
                };
                msg(
                    1,
                    i,
                    ALICE,
                    true,
                    state,
                    "09:00",
                    Content::text(format!("m{i}")),
                )
            })
            .collect()
    };
    open_with(&mut app, 1, history(500, 0));
    app.limit = 1000;
    let ack = |id: i64| Event::Acknowledged {
        profile: ALICE.into(),
        conversation_id: 1,
        contact: BOB.into(),
        message_id: id,
        signature: String::new(),
    };
    // A recent message acknowledged: the newest page only, merged.
    let a = app.handle_event(ack(450));
    let c = match &a[..] {
        [Action::Call {
            req: Request::Messages {
                limit, offset: 0, ..
            },
            ctx,
        }] => {
            assert_eq!(*limit, app::FIRST_PAGE);
            assert_eq!(ctx.what, What::Recent);
            ctx.clone()
        }
        other => panic!("{other:?}"),
    };
    let mut newest = history(501, 500);
    let newest = newest.split_off(501 - app::FIRST_PAGE as usize);
    app.handle_reply(c, Ok(Reply::Messages { messages: newest }));
    assert_eq!(app.messages.len(), 501);
    let ids: Vec<i64> = app.messages.iter().map(|m| m.message_id).collect();
    assert_eq!(ids, (1..=501).collect::<Vec<_>>());
    assert_eq!(app.messages[449].state, MessageState::Acknowledged);
    assert_eq!(
        app.messages[0].state,
        MessageState::Sending,
        "older ones as read"
    );
    // One older than the page: everything again.
    let a = app.handle_event(ack(5));
    assert!(
        matches!(&a[..], [Action::Call { req: Request::Messages { limit: 1000, .. }, ctx }] if ctx.what == What::Messages),
        "{a:?}"
    );
}

/// Ctrl-F, from the list or the messages, puts a search on the compose line.
#[test]
fn ctrl_f_starts_a_search() {
    let mut app = world();
    assert_eq!(app.focus, Focus::List);
    app.handle_key(ctrl('f'));
    assert_eq!(app.focus, Focus::Compose);
    assert_eq!(app.compose, "/search ");
    typing(&mut app, "book");
    let a = app.handle_key(key(KeyCode::Enter));
    assert!(
        matches!(&a[..], [Action::Call { req: Request::Search { pattern, .. }, .. }] if pattern == "book"),
        "{a:?}"
    );
    // Twice: one prefix.
    app.handle_key(ctrl('f'));
    app.handle_key(ctrl('f'));
    assert_eq!(app.compose, "/search ");
}

/// `y` on a chosen message copies its text (OSC 52 by the driver); a message without text
/// (not understood) says so.
#[test]
fn a_chosen_message_is_copied_with_y() {
    let mut app = world();
    let mut ms = bob_messages();
    ms.push(msg(
        1,
        8,
        BOB,
        false,
        MessageState::Received,
        "09:09",
        Content::Malformed {
            overlay: Some(7),
            reason: cwtch::MalformedReason::UnknownOverlay,
        },
    ));
    ms[7].text = None;
    open_with(&mut app, 1, ms);
    app.handle_key(key(KeyCode::Up));
    assert!(app.handle_key(ch('y')).is_empty());
    assert!(screen(&app, 80, 24).contains("no text to copy"));
    app.handle_key(key(KeyCode::Up));
    app.handle_key(key(KeyCode::Up));
    let a = app.handle_key(ch('y'));
    assert!(
        matches!(&a[..], [Action::Copy(t)] if t == "a long one, to wrap: 你好你好你好 the quick brown fox jumps over the lazy dog and keeps running"),
        "{a:?}"
    );
}

/// Every prompt's title is read whole: it fits in the prompt (a cut title hid the
/// no-password warning of a new profile); what does not fit is its hint, shown whole.
#[test]
fn prompt_titles_fit_and_hints_show_whole() {
    let asks = [
        Ask::Unlock,
        Ask::NewProfileName,
        Ask::NewProfilePassword { name: "a".into() },
        Ask::NewProfilePasswordAgain {
            name: "a".into(),
            password: crate::protocol::Secret::new(String::from("pw").into()),
        },
        Ask::AddContact,
        Ask::JoinGroup,
        Ask::AddServer,
        Ask::GroupName,
        Ask::GroupServer { name: "g".into() },
        Ask::InviteContact,
        Ask::SetName,
        Ask::SetStatus,
        Ask::DeleteProfile {
            onion: ALICE.into(),
        },
    ];
    for ask in asks {
        let title = ask.title();
        assert!(
            title.width() + 4 <= usize::from(view::PROMPT_WIDTH),
            "{title:?} does not fit"
        );
        let mut app = world();
        app.overlay = Overlay::Prompt {
            ask: ask.clone(),
            input: String::new().into(),
        };
        let s = screen(&app, 100, 30);
        assert!(s.contains(title), "{title:?} cut:\n{s}");
        if let Some(hint) = ask.hint() {
            // The prompt's inside: columns 18..82 of a 100-wide screen (66 wide, centred).
            let inside: Vec<String> = s
                .lines()
                .map(|l| l.chars().skip(18).take(64).collect::<String>())
                .map(|l| l.trim().to_owned())
                .collect();
            let shown = inside.join(" ");
            assert!(shown.contains(hint), "hint {hint:?} not whole:\n{s}");
        }
    }
}

#[test]
fn sizes_read_as_people_say_them() {
    for (bytes, said) in [
        (0, "0 bytes"),
        (1023, "1023 bytes"),
        (1024, "1.0 KiB"),
        (3_000_000, "2.9 MiB"),
        (10 * 1024 * 1024 * 1024, "10.0 GiB"),
    ] {
        assert_eq!(app::human_size(bytes), said);
    }
}

/// Our own file offer says we share it, not that we could download it.
#[test]
fn our_own_file_offer_is_not_offered_to_us() {
    let mut app = world();
    let offer = |outgoing| {
        msg(
            1,
            if outgoing { 2 } else { 1 },
            if outgoing { ALICE } else { BOB },
            outgoing,
            MessageState::Acknowledged,
            "08:00",
            Content::FileShare {
                name: "notes.txt".into(),
                file_key: "00.11".into(),
                size: 3_000_000,
            },
        )
    };
    open_with(&mut app, 1, vec![offer(false), offer(true)]);
    let s = screen(&app, 100, 24);
    assert!(s.contains("[you share a file: notes.txt (2.9 MiB)]"), "{s}");
    assert_eq!(s.matches("press d to download").count(), 1, "{s}");
}

/// A download shows in the conversation, on its file message: offered, running with its
/// percentage (live, from the events), then where it went, or why it failed.
#[test]
fn a_download_shows_its_progress_on_its_file_message() {
    use crate::protocol::FileStateRow;
    let mut app = world();
    let key = format!("{}.{}", "ab".repeat(64), "cd".repeat(24));
    let offer = |state: &str, path: Option<&str>| {
        let mut m = msg(
            1,
            1,
            BOB,
            false,
            MessageState::Received,
            "08:00",
            Content::FileShare {
                name: "cat.jpg".into(),
                file_key: key.clone(),
                size: 12_288,
            },
        );
        m.file = Some(FileStateRow {
            state: state.into(),
            path: path.map(Into::into),
        });
        m
    };
    open_with(&mut app, 1, vec![offer("offered", None)]);
    let s = screen(&app, 140, 24);
    assert!(
        s.contains("[shares a file: cat.jpg (12.0 KiB); choose it"),
        "{s}"
    );
    // The manifest is in: the conversation is read again; progress shows as it comes.
    let a = app.handle_event(Event::FileManifestReceived {
        profile: ALICE.into(),
        conversation_id: 1,
        contact: BOB.into(),
        file_key: key.clone(),
        path: "/dl/cat.jpg".into(),
        size: 12_288,
    });
    assert!(
        matches!(
            &a[..],
            [Action::Call {
                req: Request::Messages { .. },
                ..
            }]
        ),
        "{a:?}"
    );
    for done in [4096, 8192] {
        let a = app.handle_event(Event::FileDownloadProgress {
            profile: ALICE.into(),
            conversation_id: 1,
            file_key: key.clone(),
            done,
            total: 12_288,
        });
        assert!(a.is_empty(), "progress alone reads nothing again: {a:?}");
    }
    let s = screen(&app, 140, 24);
    assert!(
        s.contains("[file: cat.jpg (12.0 KiB): downloading, 66%]"),
        "{s}"
    );
    // Done: read again, it says where the file is.
    let a = app.handle_event(Event::FileDownloaded {
        profile: ALICE.into(),
        conversation_id: 1,
        file_key: key.clone(),
        path: "/dl/cat.jpg".into(),
    });
    let [Action::Call { ctx, .. }] = &a[..] else {
        panic!("{a:?}")
    };
    app.handle_reply(
        ctx.clone(),
        Ok(Reply::Messages {
            messages: vec![offer("downloaded", Some("/dl/cat.jpg"))],
        }),
    );
    let s = screen(&app, 140, 24);
    assert!(
        s.contains("[file: cat.jpg (12.0 KiB): downloaded to /dl/cat.jpg]"),
        "{s}"
    );
    // A failed one says why, and how to go on.
    app.focus = Focus::List;
    open_with(&mut app, 1, vec![offer("failed: gone", None)]);
    let s = screen(&app, 140, 24);
    assert!(
        s.contains("[file: cat.jpg (12.0 KiB): failed: gone; press d to resume]"),
        "{s}"
    );
}

/// A group invite in a conversation says where it stands: waiting in Requests, joined, or
/// not joined (declined or left); ours says whom it invited to what.
#[test]
fn an_invite_says_where_it_stands() {
    use cwtch_model::group::Group;
    let mut app = world();
    let g = Group::generate(&mut rand_core::OsRng, torv3::Onion::parse(SERVER).unwrap());
    let invite = g.invite("chess".into()).to_invite_string();
    let mut row = group(6, "chess", false, 0, 0);
    row.group_id = g.id().to_string();
    let set_groups = |app: &mut App, groups: Vec<GroupRow>| {
        app.handle_reply(ctx(ALICE, None, What::Groups), Ok(Reply::Groups { groups }));
    };
    set_groups(&mut app, vec![row.clone()]);
    let invite_msg = |id, author, outgoing| {
        let mut m = msg(
            1,
            id,
            author,
            outgoing,
            MessageState::Received,
            "12:00",
            Content::GroupInvite {
                invite: invite.clone(),
            },
        );
        m.overlay = Some(101);
        m
    };
    open_with(
        &mut app,
        1,
        vec![invite_msg(1, BOB, false), invite_msg(2, ALICE, true)],
    );
    let s = screen(&app, 100, 30);
    assert!(
        s.contains("[an invite to the group chess: see Requests]"),
        "{s}"
    );
    assert!(s.contains("[you invite them to the group chess]"), "{s}");
    // Accepted: it says so (it used to send her to Requests still).
    row.accepted = true;
    set_groups(&mut app, vec![row]);
    let s = screen(&app, 100, 30);
    assert!(s.contains("[an invite to the group chess: joined]"), "{s}");
    // Declined or left: the group is gone.
    set_groups(&mut app, vec![]);
    let s = screen(&app, 100, 30);
    assert!(s.contains("[an invite to a group: not joined]"), "{s}");
    assert!(s.contains("[you invite them to a group]"), "{s}");
}

/// A profile that stops running (deleted by another command, through the `cwtch run` the TUI
/// is attached to) leaves the list: the TUI asks what runs now, and drops what does not.
#[test]
fn a_profile_that_stops_leaves_the_list() {
    let mut app = world();
    assert_eq!(app.profiles.len(), 1);
    let actions = app.handle_event(Event::ProfileShutdown {
        profile: ALICE.into(),
    });
    assert!(
        actions.iter().any(|a| matches!(
            a,
            Action::Call {
                req: Request::Ping,
                ..
            }
        )),
        "{actions:?}"
    );
    app.handle_reply(ctx("", None, What::Profiles), Ok(fixture::pong(vec![])));
    assert!(app.profiles.is_empty());
}

/// A new profile's password is typed twice: a typo in the hidden field would lock the profile
/// for good. Two that differ start over; two that match create it.
#[test]
fn a_new_password_is_typed_twice() {
    let mut app = App::new(false, 0, None);
    app.handle_reply(ctx("", None, What::Profiles), Ok(fixture::pong(vec![])));
    typing(&mut app, "alice");
    app.handle_key(key(KeyCode::Enter));
    typing(&mut app, "correct horse");
    assert!(app.handle_key(key(KeyCode::Enter)).is_empty());
    assert!(matches!(
        &app.overlay,
        Overlay::Prompt {
            ask: Ask::NewProfilePasswordAgain { .. },
            ..
        }
    ));
    typing(&mut app, "correct hose");
    assert!(app.handle_key(key(KeyCode::Enter)).is_empty());
    assert!(matches!(
        &app.overlay,
        Overlay::Prompt {
            ask: Ask::NewProfilePassword { name },
            ..
        } if name == "alice"
    ));
    assert!(screen(&app, 100, 30).contains("passwords differ"));
    typing(&mut app, "correct horse");
    app.handle_key(key(KeyCode::Enter));
    typing(&mut app, "correct horse");
    let a = app.handle_key(key(KeyCode::Enter));
    assert!(
        matches!(&a[..], [Action::Call { req: Request::ProfileCreate { name, password: Some(p) }, .. }]
            if name == "alice" && p.0.as_str() == "correct horse"),
        "{a:?}"
    );
}

#[test]
fn a_small_window_says_so_and_a_narrow_one_shows_one_pane() {
    let mut app = world();
    // Too small to keep the compose line: said, with the size needed.
    for (w, h) in [(36, 6), (39, 24), (80, 7)] {
        let s = screen(&app, w, h);
        assert!(s.contains("too small"), "{w}x{h}:\n{s}");
        assert!(!s.contains("Compose"), "{w}x{h}:\n{s}");
    }
    let s = screen(&app, 40, 8);
    assert!(s.contains("Compose"), "{s}");
    // Narrow: the list, until a conversation is open and has the focus.
    let s = screen(&app, 50, 12);
    assert!(s.contains("Conversations") && !s.contains("Cwtch ─"), "{s}");
    open_with(&mut app, 1, bob_messages());
    assert!(
        app.focus != Focus::List,
        "opening a conversation moves the focus"
    );
    let s = screen(&app, 50, 12);
    assert!(!s.contains("Conversations"), "{s}");
    assert!(s.contains("bob"), "{s}");
    assert!(s.contains("Enter sends"), "the compose line:\n{s}");
    // Tab goes back to the list, which is shown instead.
    app.handle_key(key(KeyCode::Tab));
    assert_eq!(app.focus, Focus::List);
    let s = screen(&app, 50, 12);
    assert!(s.contains("Conversations"), "{s}");
    // Wide: both.
    let s = screen(&app, 80, 24);
    assert!(
        s.contains("Conversations") && s.contains("Message bob"),
        "{s}"
    );
    assert!(s.contains("see you there"), "{s}");
}

#[test]
fn ctrl_letters_in_the_list_do_nothing_and_pasted_crs_are_line_breaks() {
    let mut app = world();
    let pos = app.visible().iter().position(|c| c.id == 1).unwrap();
    app.selected = pos;
    app.focus = Focus::List;
    // Ctrl-B, Ctrl-X, Ctrl-U (editing keys pressed in the wrong place): no block, no decline.
    for c in ['b', 'x', 'u', 'D'] {
        let k = KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL);
        assert!(app.handle_key(k).is_empty(), "Ctrl-{c}");
        let k = KeyEvent::new(KeyCode::Char(c), KeyModifiers::ALT);
        assert!(app.handle_key(k).is_empty(), "Alt-{c}");
    }
    assert!(!app.handle_key(ch('b')).is_empty(), "b itself still blocks");
    // A paste's CR and CRLF line breaks are line breaks.
    open_with(&mut app, 1, bob_messages());
    app.handle_paste("one\rtwo\r\nthree");
    assert_eq!(app.compose, "one\ntwo\nthree");
}

#[test]
fn a_line_sent_with_no_conversation_open_is_kept() {
    let mut app = world();
    assert!(app.open.is_none());
    app.focus = Focus::Compose;
    typing(&mut app, "my unsent draft");
    assert!(app.handle_key(key(KeyCode::Enter)).is_empty());
    assert_eq!(app.compose, "my unsent draft");
    assert!(app.notice.as_ref().is_some_and(|n| n.error));
}

#[test]
fn esc_clears_a_kept_filter_and_d_shares_our_stopped_file_again() {
    let mut app = world();
    app.handle_key(ch('/'));
    typing(&mut app, "bob");
    app.handle_key(key(KeyCode::Enter));
    assert_eq!((app.focus, app.filter.as_str()), (Focus::List, "bob"));
    app.handle_key(key(KeyCode::Esc));
    assert!(app.filter.is_empty(), "Esc in the list clears the filter");
    // Our own file message: d shares it again.
    let key_str = format!("{}.{}", "ab".repeat(64), "cd".repeat(24));
    open_with(
        &mut app,
        1,
        vec![msg(
            1,
            1,
            ALICE,
            true,
            MessageState::Acknowledged,
            "08:00",
            Content::FileShare {
                name: "notes.txt".into(),
                file_key: key_str.clone(),
                size: 10,
            },
        )],
    );
    app.handle_key(key(KeyCode::Up));
    let a = app.handle_key(ch('d'));
    assert!(
        matches!(&a[..], [Action::Call { req: Request::FileRestart { file_key, .. }, .. }] if *file_key == key_str),
        "{a:?}"
    );
}

#[test]
fn a_long_name_is_cut_before_its_unread_count_and_state() {
    let mut app = world();
    app.handle_reply(
        ctx(ALICE, None, What::Groups),
        Ok(Reply::Groups {
            groups: vec![group(3, "A very long group name that goes on", true, 2, 0)],
        }),
    );
    let s = screen(&app, 80, 24);
    let row = s
        .lines()
        .find(|l| l.contains("A very long"))
        .unwrap_or_else(|| panic!("{s}"));
    assert!(
        row.contains('…') && row.contains("(2)") && row.contains("synced"),
        "{row}"
    );
}

#[test]
fn a_profile_taken_offline_says_so_in_the_status_bar() {
    let mut app = world();
    let s = screen(&app, 80, 24);
    assert!(s.lines().last().unwrap().contains("network ready"), "{s}");
    app.handle_reply(
        ctx(ALICE, None, What::Settings),
        Ok(alice_settings("", false, Some(false))),
    );
    let s = screen(&app, 80, 24);
    let last = s.lines().last().unwrap();
    assert!(
        last.contains("offline (/online on)") && !last.contains("network ready"),
        "{s}"
    );
}

/// Alice's settings as the daemon answers them (autostart on).
fn alice_settings(status: &str, block_unknown: bool, online: Option<bool>) -> Reply {
    Reply::Settings {
        settings: crate::protocol::SettingsRow {
            profile_id: "c39e0660a885b6000173ffea9d214b5c".into(),
            onion: ALICE.into(),
            name: "alice".into(),
            status: status.into(),
            block_unknown,
            image_previews: false,
            image: None,
            autostart: true,
            online,
        },
    }
}

/// The highlight follows its conversation when the list changes under it: a request that
/// arrives while Bob is highlighted sorts above him, and `b` still blocks Bob, not the row
/// that moved into his place.
#[test]
fn the_highlight_stays_on_its_conversation_when_the_list_changes() {
    let mut app = world();
    app.selected = app.visible().iter().position(|c| c.id == 1).unwrap();
    let before = app.selected;
    app.handle_reply(
        ctx(ALICE, None, What::Contacts),
        Ok(Reply::Contacts {
            contacts: vec![
                contact(1, BOB, Some("bob"), true, ConnectionState::Authenticated),
                contact(2, CAROL, None, false, ConnectionState::Connecting),
                contact(7, SERVER, None, false, ConnectionState::Connecting),
            ],
        }),
    );
    assert_eq!(app.selected, before + 1, "the new request sorts above Bob");
    let a = app.handle_key(ch('b'));
    assert!(
        matches!(&a[..], [Action::Call { req: Request::ContactBlock { contact, .. }, .. }] if contact == "1"),
        "{a:?}"
    );
    // The highlighted conversation is deleted elsewhere: the highlight stays in the list.
    app.selected = app.visible().len() - 1;
    assert_eq!(app.visible()[app.selected].id, 3);
    app.handle_event(Event::GroupLeft {
        profile: ALICE.into(),
        conversation_id: 3,
        group_id: "00".repeat(16),
    });
    assert!(app.visible().iter().all(|c| c.id != 3));
    assert_eq!(app.selected, app.visible().len() - 1);
}

/// With a message chosen, a letter that is no command there starts a message: it goes to the
/// compose line, and the rest of what is typed follows it (it used to be dropped, and the
/// command letters among it, such as `s` or `d`, acted on the chosen message).
#[test]
fn typing_with_a_message_chosen_writes_a_message() {
    let mut app = world();
    open_with(&mut app, 1, bob_messages());
    app.handle_key(key(KeyCode::Up));
    assert_eq!(app.focus, Focus::Messages);
    assert!(typing(&mut app, "hello sister").is_empty());
    assert_eq!(app.focus, Focus::Compose);
    assert_eq!(app.cursor, None);
    assert_eq!(app.compose, "hello sister");
}
