//! `cwtch tui`: the terminal client.
//!
//! * `app.rs` — the state ([`app::App`]): keys, library events and request results go in,
//!   [`app::Action`]s come out. No IO.
//! * `view.rs` — `render(&App, &mut Frame)`, a pure function of the state.
//! * `line.rs` — editing the compose line at a cursor, a pure function.
//! * `sanitize.rs` — the one function remote text passes through before any widget.
//! * this file — the thin driver: it owns the terminal, the key reader, and the connection to
//!   the library (in-process, or a running `cwtch run` through the control socket), and
//!   carries out the actions.

mod app;
mod fixture;
mod line;
pub(crate) mod sanitize;
mod view;

/// A long conversation open in the TUI, for `benches/tui.rs`.
pub(crate) mod bench {
    use super::app::{App, Ctx, What};
    use super::fixture;
    use crate::protocol::{MessageRow, Reply};
    use cwtch::{ConnectionState, Content, MessageState};

    const ME: &str = "vbmmtsfg3h6wxwpmsrg53fgdiuosbcscs5a5ni7ffuy4tkrvp7nzpbyd";
    const BOB: &str = "pjurzypqui3dnpxj6aemk6cqz22yx6zfr5lq4jzu7muwe2yyx2zrnzyd";

    /// `n` messages with a contact, open, every 7th a reply quoting the 3rd before it.
    pub struct History {
        app: App,
    }

    impl History {
        /// The history, open in a TUI whose profile has that contact.
        pub fn new(n: usize) -> History {
            let mut app = App::new(false, 0, None);
            let ctx = |what| Ctx {
                profile: ME.into(),
                conv: None,
                what,
            };
            app.handle_reply(
                ctx(What::Profiles),
                Ok(fixture::pong(vec![fixture::profile(ME)])),
            );
            app.handle_reply(
                ctx(What::Contacts),
                Ok(Reply::Contacts {
                    contacts: vec![fixture::contact(
                        1,
                        BOB,
                        Some("bob"),
                        true,
                        ConnectionState::Authenticated,
                    )],
                }),
            );
            app.open = Some(1);
            app.messages = (0..n)
                .map(|i| {
                    let content = if i % 7 == 3 {
                        Content::QuotedReply {
                            quoted_hash: format!("hash-{}", i - 3),
                            body: "a reply to that".into(),
                        }
                    } else {
                        Content::text("a message of some length that may wrap once or twice in a narrow window")
                    };
                    MessageRow {
                        conversation_id: 1,
                        message_id: i64::try_from(i).unwrap_or(i64::MAX),
                        signature: String::new(),
                        author: BOB.into(),
                        outgoing: false,
                        state: MessageState::Received,
                        timestamp: Some(format!("2025-01-{:02}T09:00:00Z", 1 + (i / 1000) % 28)),
                        text: content.display_text().map(str::to_owned),
                        overlay: Some(1),
                        content,
                        body: String::new(),
                        content_hash: format!("hash-{i}"),
                        image: None,
                        file: None,
                        reply_to: None,
                    }
                })
                .collect();
            History { app }
        }

        /// The conversation's lines for a window `rows` high and `width` wide: only the
        /// messages shown (what the TUI draws), or, with `whole`, every message (what it drew
        /// before: the baseline). The number of lines made.
        pub fn lines(&self, width: usize, rows: usize, whole: bool) -> usize {
            let need = if whole { usize::MAX } else { rows };
            super::view::message_lines(&self.app, width, need).0.len()
        }
    }
}

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cwtch::connectivity::{Acn, AcnArgs};
use cwtch::{Cwtch, Event, Password};
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{
    self as term_event, DisableBracketedPaste, EnableBracketedPaste, Event as TermEvent,
};
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::crossterm::{cursor, execute};
use ratatui::Terminal;
use tokio::sync::{broadcast, mpsc};

use crate::client::{self, HomeLock};
use crate::error::CliError;
use crate::protocol::{Reply, Request};
use crate::session::{Mode, Session};
use app::{Action, App, Colours, Ctx};

/// What `cwtch tui` was asked to do.
pub(crate) struct Plan<'a> {
    pub(crate) data_dir: &'a Path,
    pub(crate) acn: &'a AcnArgs,
    /// `--open`.
    pub(crate) open: Option<String>,
    /// `--profile`: the profile shown first.
    pub(crate) profile: Option<String>,
    /// `--bell`.
    pub(crate) bell: bool,
}

/// Send logs to `D/tui.log` (the terminal is the TUI's).
pub(crate) fn log_to_file(dir: &Path, level: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    if crate::daemon::ensure_home(dir).is_err() {
        return;
    }
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(dir.join("tui.log"))
    else {
        return;
    };
    // A log left by an older version may be readable by others (`mode` sets new files only).
    use std::os::unix::fs::PermissionsExt;
    let _ = file.set_permissions(std::fs::Permissions::from_mode(0o600));
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .init();
}

/// Who answers the TUI's requests.
#[derive(Clone)]
enum Backend {
    /// The library in this process.
    Local(Arc<Session>),
    /// A running `cwtch run` (its data directory).
    Daemon(PathBuf),
}

/// What an attached TUI says when what it was attached to stops: a `cwtch run`, or the
/// first `cwtch tui`, which serves the data directory while it runs.
const ATTACHED_STOPPED: &str = "the `cwtch run` or `cwtch tui` this TUI was attached to has \
     stopped: start `cwtch tui` again to run the profiles here";

impl Backend {
    async fn execute(&self, req: Request) -> Result<Reply, CliError> {
        match self {
            Backend::Local(s) => s.execute(req).await,
            Backend::Daemon(dir) => match client::connect(dir).await? {
                Some(stream) => client::ask(stream, &req).await,
                None => Err(CliError::Failed(ATTACHED_STOPPED.into())),
            },
        }
    }
}

/// What the driver waits for.
enum Input {
    Key(TermEvent),
    Event(Event),
    /// The event stream lost events (or ended: `true`).
    Lost(bool),
    Reply(Ctx, Result<Reply, String>),
    /// A thumbnail that [`Action::Thumbnail`] asked for.
    Thumbnail(String, Result<cwtch::images::Thumbnail, String>),
    /// SIGTERM, SIGHUP or SIGINT: leave as Ctrl-C does.
    Quit,
}

/// Restores the terminal when dropped (also on an early return or an error).
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> Result<TerminalGuard, CliError> {
        enable_raw_mode().map_err(|e| CliError::io("cannot set up the terminal", e))?;
        let guard = TerminalGuard;
        execute!(
            std::io::stdout(),
            EnterAlternateScreen,
            EnableBracketedPaste,
            cursor::Hide
        )
        .map_err(|e| CliError::io("cannot set up the terminal", e))?;
        Ok(guard)
    }
}

fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(
        std::io::stdout(),
        DisableBracketedPaste,
        LeaveAlternateScreen,
        cursor::Show
    );
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Restore the terminal before a panic's message is printed, then chain to the previous
/// hook (which prints it).
fn install_panic_hook() {
    chain_panic_hook(restore_terminal);
}

/// Run `first`, then the hook that was installed before.
fn chain_panic_hook(first: impl Fn() + Send + Sync + 'static) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        first();
        previous(info);
    }));
}

/// Read the terminal's events on a thread of their own until `stop`.
fn spawn_key_reader(tx: mpsc::Sender<Input>, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match term_event::poll(Duration::from_millis(100)) {
                Ok(true) => match term_event::read() {
                    Ok(ev) => {
                        if tx.blocking_send(Input::Key(ev)).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                },
                Ok(false) => {}
                Err(_) => return,
            }
        }
    });
}

/// SIGTERM, SIGHUP (the terminal went away) and SIGINT end the TUI cleanly.
fn forward_signals(tx: mpsc::Sender<Input>) -> Result<(), CliError> {
    use tokio::signal::unix::{signal, SignalKind};
    let sig = |k| signal(k).map_err(|e| CliError::io("cannot install a signal handler", e));
    let mut term = sig(SignalKind::terminate())?;
    let mut hup = sig(SignalKind::hangup())?;
    let mut int = sig(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = hup.recv() => {}
            _ = int.recv() => {}
        }
        let _ = tx.send(Input::Quit).await;
    });
    Ok(())
}

/// Forward the library's events.
fn forward_events(mut rx: broadcast::Receiver<Event>, tx: mpsc::Sender<Input>) {
    tokio::spawn(async move {
        loop {
            let input = match rx.recv().await {
                Ok(e) => Input::Event(e),
                Err(broadcast::error::RecvError::Lagged(_)) => Input::Lost(false),
                Err(broadcast::error::RecvError::Closed) => {
                    let _ = tx.send(Input::Lost(true)).await;
                    return;
                }
            };
            if tx.send(input).await.is_err() {
                return;
            }
        }
    });
}

/// Run requests one after the other (their answers arrive in order).
fn spawn_worker(
    backend: Backend,
    tx: mpsc::Sender<Input>,
) -> mpsc::UnboundedSender<(Request, Ctx)> {
    let (calls, mut rx) = mpsc::unbounded_channel::<(Request, Ctx)>();
    tokio::spawn(async move {
        while let Some((req, ctx)) = rx.recv().await {
            let r = backend.execute(req).await.map_err(|e| e.to_string());
            if tx.send(Input::Reply(ctx, r)).await.is_err() {
                return;
            }
        }
    });
    calls
}

/// Profiles in the data directory (opened or not).
fn profile_dirs(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("profiles"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .count()
        })
        .unwrap_or(0)
}

/// BEL: the terminal (or tmux) marks the window; some beep or flash.
fn ring_bell() {
    let mut out = std::io::stdout();
    let _ = out.write_all(b"\x07");
    let _ = out.flush();
}

/// OSC 52: put our own text on the clipboard (terminals that allow it).
fn copy_to_clipboard(text: &str) {
    let seq = format!("\x1b]52;c;{}\x07", base64(text.as_bytes()));
    let mut out = std::io::stdout();
    let _ = out.write_all(seq.as_bytes());
    let _ = out.flush();
}

fn base64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &x)| n | (u32::from(x) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// `cwtch tui`.
pub(crate) async fn run(plan: Plan<'_>) -> Result<(), CliError> {
    let dir = plan.data_dir;
    if let Some(stream) = client::connect(dir).await? {
        drop(stream);
        return attached(&plan).await;
    }
    crate::daemon::ensure_home(dir)?;
    // Like `cwtch run`, the TUI serves the control socket: other `cwtch` commands (and
    // another `cwtch tui`) work through it while it runs.
    let sock = client::socket_path(dir);
    let listener = crate::daemon::claim_socket(&sock).await?;
    let _socket_file = crate::daemon::SocketFile::new(&sock);
    let owner = std::fs::metadata(dir)
        .map_err(|e| CliError::io(&format!("cannot read {}", dir.display()), e))?
        .uid();
    let _home = HomeLock::acquire(dir).await?;

    install_panic_hook();
    let _guard = TerminalGuard::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))
        .map_err(|e| CliError::io("cannot set up the terminal", e))?;
    let (tx, mut rx) = mpsc::channel::<Input>(1024);
    let stop = Arc::new(AtomicBool::new(false));
    spawn_key_reader(tx.clone(), stop.clone());
    forward_signals(tx.clone())?;

    let mut app = App::new(false, 0, plan.open.clone());
    app.inline_images = terminal_colours();
    app.bell = plan.bell;
    draw(&mut terminal, &app)?;

    // The network first (launching tor can take a while); Ctrl-C still works.
    let acn: Arc<dyn Acn> = tokio::select! {
        r = plan.acn.build(dir) => r.map_err(CliError::acn)?,
        () = wait_for_quit(&mut rx, &mut app) => {
            stop.store(true, Ordering::Relaxed);
            return Ok(());
        }
    };
    let result = async {
        let lib = Cwtch::open(dir, acn.clone()).await.map_err(CliError::lib)?;
        forward_events(lib.events(), tx.clone());
        {
            let s = lib.acn_status();
            app.acn = Some((s.progress, s.summary.clone()));
        }
        let r = async {
            let opened = load_default_profiles(&lib).await?;
            app.locked = profile_dirs(dir).saturating_sub(opened);
            let session = Arc::new(Session::new(lib.clone(), Mode::Daemon));
            let (stop_serving, serving) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(crate::daemon::serve(
                listener,
                session.clone(),
                owner,
                async {
                    let _ = serving.await;
                },
            ));
            let calls = spawn_worker(Backend::Local(session), tx.clone());
            let r = main_loop(
                &mut terminal,
                &mut app,
                &mut rx,
                &tx,
                &calls,
                plan.profile.as_deref(),
            )
            .await;
            let _ = stop_serving.send(());
            let _ = server.await;
            r
        }
        .await;
        // Closing connections (and tor, below) can take a while on a slow network: say so,
        // and let a second Ctrl-C stop at once (everything is stored as it happens).
        app.notice = Some(app::Notice {
            text: "closing connections… (Ctrl-C again stops at once)".into(),
            error: false,
        });
        let _ = draw(&mut terminal, &app);
        tokio::select! {
            () = lib.shutdown() => Ok((r, false)),
            () = wait_for_quit(&mut rx, &mut app) => Ok((r, true)),
        }
    }
    .await;
    let (result, at_once) = match result {
        Ok((r, at_once)) => (r, at_once),
        Err(e) => (Err(e), false),
    };
    if !at_once {
        tokio::select! {
            () = acn.close() => {}
            () = wait_for_quit(&mut rx, &mut app) => {}
        }
    }
    stop.store(true, Ordering::Relaxed);
    result
}

/// Run the profiles that open without a password (all of them: `--profile` only chooses the
/// one shown first); how many opened.
async fn load_default_profiles(lib: &Cwtch) -> Result<usize, CliError> {
    let listed = lib
        .list_profiles(&Password::Default)
        .await
        .map_err(CliError::lib)?;
    let n = listed.len();
    for info in listed {
        lib.load_profile(info.profile_id.as_str(), &Password::Default)
            .await
            .map_err(CliError::lib)?;
    }
    Ok(n)
}

/// Until Ctrl-C (or the input ends): keys before the network is up.
async fn wait_for_quit(rx: &mut mpsc::Receiver<Input>, app: &mut App) {
    while let Some(input) = rx.recv().await {
        if let Input::Quit = input {
            return;
        }
        if let Input::Key(TermEvent::Key(k)) = input {
            if app.handle_key(k).iter().any(|a| matches!(a, Action::Quit)) {
                return;
            }
        }
    }
}

/// What this terminal can draw images in (from `COLORTERM`, `TERM`, `NO_COLOR`).
fn terminal_colours() -> Option<Colours> {
    let var = |k: &str| std::env::var(k).ok();
    Colours::detect(
        var("COLORTERM").as_deref(),
        var("TERM").as_deref(),
        var("NO_COLOR").is_some_and(|v| !v.is_empty()),
    )
}

/// Columns and rows of a thumbnail in the conversation (each row shows two rows of pixels).
pub(crate) const THUMBNAIL_COLUMNS: u16 = 32;
pub(crate) const THUMBNAIL_ROWS: u16 = 12;

/// Decode the checked image at `path` and shrink it, off the UI's thread; the thumbnail comes
/// back as an input.
fn make_thumbnail(file_key: String, path: String, tx: mpsc::Sender<Input>) {
    tokio::spawn(async move {
        let made = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            // The library checked the image; it is read again within the same size limit.
            let mut data = Vec::new();
            std::fs::File::open(&path)
                .and_then(|f| {
                    f.take(cwtch::images::MAX_IMAGE_SIZE + 1)
                        .read_to_end(&mut data)
                })
                .map_err(|e| e.to_string())?;
            cwtch::images::thumbnail(
                &data,
                u32::from(THUMBNAIL_COLUMNS),
                2 * u32::from(THUMBNAIL_ROWS),
            )
            .map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        let _ = tx.send(Input::Thumbnail(file_key, made)).await;
    });
}

type Term = Terminal<CrosstermBackend<std::io::Stdout>>;

fn draw(terminal: &mut Term, app: &App) -> Result<(), CliError> {
    terminal
        .draw(|f| view::render(app, f))
        .map(drop)
        .map_err(|e| CliError::io("cannot draw", e))
}

/// Whether the window is below [`view::MIN_SIZE`] (the TUI then only says so).
fn too_small(terminal: &Term) -> bool {
    terminal
        .size()
        .is_ok_and(|s| s.width < view::MIN_SIZE.0 || s.height < view::MIN_SIZE.1)
}

async fn main_loop(
    terminal: &mut Term,
    app: &mut App,
    rx: &mut mpsc::Receiver<Input>,
    tx: &mpsc::Sender<Input>,
    calls: &mpsc::UnboundedSender<(Request, Ctx)>,
    first: Option<&str>,
) -> Result<(), CliError> {
    let mut pending = app.start();
    let mut chose_first = first.is_none();
    loop {
        for a in pending.drain(..) {
            match a {
                Action::Call { req, ctx } => {
                    let _ = calls.send((req, ctx));
                }
                Action::Copy(text) => copy_to_clipboard(&text),
                Action::Bell => ring_bell(),
                Action::Thumbnail { file_key, path } => make_thumbnail(file_key, path, tx.clone()),
                Action::Quit => return Ok(()),
            }
        }
        if app.quit {
            return Ok(());
        }
        if let Ok(s) = terminal.size() {
            app.size = (s.width, s.height);
        }
        draw(terminal, app)?;
        let Some(input) = rx.recv().await else {
            return Ok(());
        };
        pending = match input {
            // Too small a window shows none of what keys act on: only quitting works.
            Input::Key(TermEvent::Key(k)) if too_small(terminal) && !view::is_quit(&k) => {
                Vec::new()
            }
            Input::Key(TermEvent::Key(k)) => app.handle_key(k),
            Input::Key(TermEvent::Paste(text)) => {
                app.handle_paste(&text);
                Vec::new()
            }
            Input::Key(_) => Vec::new(), // a resize: drawn again below
            Input::Event(e) => app.handle_event(e),
            Input::Lost(false) => app.resync(),
            Input::Lost(true) => {
                return Err(CliError::Failed(if app.attached {
                    ATTACHED_STOPPED.into()
                } else {
                    "the library's event stream ended".into()
                }))
            }
            Input::Reply(ctx, r) => app.handle_reply(ctx, r),
            Input::Thumbnail(key, t) => {
                app.handle_thumbnail(key, t);
                Vec::new()
            }
            Input::Quit => return Ok(()),
        };
        if !chose_first {
            if let Some(sel) = first {
                if let Some(i) = app
                    .profiles
                    .iter()
                    .position(|p| p.onion == sel.trim_end_matches(".onion") || p.name == sel)
                {
                    app.active = i;
                    chose_first = true;
                }
            }
        }
    }
}

/// Subscribe to a running `cwtch run`'s events (`events.subscribe`) and forward them.
async fn subscribe(dir: &Path, tx: mpsc::Sender<Input>) -> Result<(), CliError> {
    let mut sub = client::subscribe(dir).await?.ok_or_else(|| {
        CliError::Failed("the `cwtch run` serving this data directory has stopped".into())
    })?;
    tokio::spawn(async move {
        loop {
            let input = match sub.next().await {
                client::Next::Event(e) => Input::Event(*e),
                client::Next::Skipped => Input::Lost(false),
                client::Next::Ended => Input::Lost(true),
            };
            let end = matches!(input, Input::Lost(true));
            if tx.send(input).await.is_err() || end {
                return;
            }
        }
    });
    Ok(())
}

/// The TUI as the client of a running `cwtch run`.
async fn attached(plan: &Plan<'_>) -> Result<(), CliError> {
    let dir = plan.data_dir.to_path_buf();
    let (tx, mut rx) = mpsc::channel::<Input>(1024);
    subscribe(&dir, tx.clone()).await?;
    install_panic_hook();
    let _guard = TerminalGuard::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))
        .map_err(|e| CliError::io("cannot set up the terminal", e))?;
    let stop = Arc::new(AtomicBool::new(false));
    spawn_key_reader(tx.clone(), stop.clone());
    forward_signals(tx.clone())?;
    let mut app = App::new(true, 0, plan.open.clone());
    app.inline_images = terminal_colours();
    app.bell = plan.bell;
    let calls = spawn_worker(Backend::Daemon(dir), tx.clone());
    let r = main_loop(
        &mut terminal,
        &mut app,
        &mut rx,
        &tx,
        &calls,
        plan.profile.as_deref(),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    r
}

#[cfg(test)]
mod tests;
