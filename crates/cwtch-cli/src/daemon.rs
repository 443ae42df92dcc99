//! `cwtch run`: profiles online, events as JSON lines on stdout, requests on the control
//! socket, clean shutdown on SIGINT/SIGTERM.

use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cwtch::connectivity::AcnArgs;
use cwtch::{Cwtch, Event, Password};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};
use zeroize::Zeroizing;

use crate::client::{socket_path, HomeLock};
use crate::error::CliError;
use crate::protocol::{ProfileRow, Request, Response, MAX_LINE};
use crate::session::{select, Mode, Session};

/// What `cwtch run` runs.
pub(crate) struct RunPlan<'a> {
    pub(crate) data_dir: &'a Path,
    pub(crate) acn: &'a AcnArgs,
    /// Run the profiles without a password.
    pub(crate) default_profiles: bool,
    /// Run the profiles that open with this password.
    pub(crate) password: Option<Password>,
    /// Run only this profile.
    pub(crate) profile: Option<String>,
}

pub(crate) async fn run(plan: RunPlan<'_>) -> Result<(), CliError> {
    let sig = |k| signal(k).map_err(|e| CliError::io("cannot install a signal handler", e));
    let mut term = sig(SignalKind::terminate())?;
    let mut int = sig(SignalKind::interrupt())?;

    let dir = plan.data_dir;
    ensure_home(dir)?;
    let owner = std::fs::metadata(dir)
        .map_err(|e| CliError::io(&format!("cannot read {}", dir.display()), e))?
        .uid();
    let sock = socket_path(dir);
    let listener = claim_socket(&sock).await?;
    let _socket_file = SocketFile::new(&sock);
    // Wait for one-off commands still working on the directory (see `HomeLock`).
    let _home = tokio::select! {
        l = HomeLock::acquire(dir) => l?,
        _ = term.recv() => return Ok(()),
        _ = int.recv() => return Ok(()),
    };

    let acn = tokio::select! {
        r = plan.acn.build(dir) => r.map_err(CliError::acn)?,
        _ = term.recv() => return Ok(()),
        _ = int.recv() => return Ok(()),
    };
    let app = match Cwtch::open(dir, acn.clone()).await {
        Ok(app) => app,
        Err(e) => {
            acn.close().await;
            return Err(CliError::lib(e));
        }
    };
    let (stop_printer, stopped) = oneshot::channel();
    let printer = tokio::spawn(print_events(app.events(), stopped));

    let started = load_profiles(&app, &plan).await;
    let result = match started {
        Ok(()) => {
            info!(socket = %sock.display(), "serving the control socket");
            let stop = async {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            };
            serve(
                listener,
                Arc::new(Session::new(app.clone(), Mode::Daemon)),
                owner,
                stop,
            )
            .await;
            info!("shutting down (a second Ctrl-C stops at once)");
            Ok(())
        }
        Err(e) => Err(e),
    };
    // Closing connections and tor can take a while on a slow network: a second signal stops
    // at once. Nothing is lost: every message and state is stored as it happens.
    let closed = async {
        app.shutdown().await;
        acn.close().await;
    };
    tokio::select! {
        () = closed => {}
        _ = term.recv() => return Err(stopped_at_once()),
        _ = int.recv() => return Err(stopped_at_once()),
    }
    let _ = stop_printer.send(());
    let _ = printer.await;
    result
}

fn stopped_at_once() -> CliError {
    CliError::Interrupted("stopped at once, before the shutdown finished".into())
}

/// Serve control connections until `stop` completes; then end every connection. (`cwtch run`
/// stops on a signal; `cwtch tui` when it quits.)
pub(crate) async fn serve(
    listener: UnixListener,
    session: Arc<Session>,
    owner: u32,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut conns = JoinSet::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(serve_connection(stream, session.clone(), owner));
                }
                Err(e) => {
                    warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    conns.shutdown().await;
}

/// Requests on one control connection, answered in order, until it closes.
async fn serve_connection(stream: UnixStream, session: Arc<Session>, owner: u32) {
    match stream.peer_cred() {
        Ok(c) if c.uid() == owner => {}
        Ok(c) => {
            warn!(
                uid = c.uid(),
                "refused a control connection from another user"
            );
            return;
        }
        Err(e) => {
            warn!(error = %e, "cannot check a control connection's credentials");
            return;
        }
    }
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    loop {
        let mut buf = Zeroizing::new(Vec::new());
        match (&mut r)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let too_long = !buf.ends_with(b"\n") && buf.len() >= MAX_LINE;
        let resp = if too_long {
            Response::new(Err(CliError::Usage(format!(
                "request longer than {MAX_LINE} bytes"
            ))))
        } else {
            match Request::from_bytes(&buf) {
                Ok(None) => continue,
                Ok(Some(Request::EventsSubscribe)) => {
                    debug!("control request: events.subscribe");
                    // Subscribe before answering: no event falls between the two.
                    let events = session.events();
                    stream_events(r, w, events).await;
                    return;
                }
                Ok(Some(req)) => {
                    debug!(op = req.op(), "control request");
                    Response::new(session.execute(req).await)
                }
                Err(e) => Response::new(Err(e)),
            }
        };
        let mut line = match serde_json::to_string(&resp) {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "cannot encode an answer");
                return;
            }
        };
        line.push('\n');
        if w.write_all(line.as_bytes()).await.is_err() || too_long {
            return;
        }
    }
}

/// `events.subscribe`: answer, then write every event as a line until the client closes the
/// connection (or the library stops).
async fn stream_events(
    mut r: BufReader<tokio::net::unix::OwnedReadHalf>,
    mut w: tokio::net::unix::OwnedWriteHalf,
    mut events: broadcast::Receiver<Event>,
) {
    let answer = match serde_json::to_string(&Response::new(Ok(crate::protocol::Reply::Subscribed)))
    {
        Ok(l) => l,
        Err(_) => return,
    };
    if w.write_all(format!("{answer}\n").as_bytes()).await.is_err() {
        return;
    }
    let mut sink = [0u8; 512];
    loop {
        let line = tokio::select! {
            e = events.recv() => match e {
                Ok(e) => e.to_json(),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    serde_json::json!({"event": "EventsLost", "missed": n}).to_string()
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            // Anything the client sends now is ignored; its end closes the stream.
            n = r.read(&mut sink) => match n {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            },
        };
        if w.write_all(format!("{line}\n").as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Load the profiles the plan asks for. A profile that another process runs is an error.
async fn load_profiles(app: &Cwtch, plan: &RunPlan<'_>) -> Result<(), CliError> {
    let mut passwords = Vec::new();
    if plan.default_profiles {
        passwords.push(Password::Default);
    }
    if let Some(pw) = &plan.password {
        passwords.push(pw.clone());
    }
    let mut rows: Vec<(ProfileRow, Password)> = Vec::new();
    for pw in &passwords {
        let listed = app.list_profiles(pw).await.map_err(CliError::lib)?;
        if listed.is_empty() && !pw.is_default() {
            return Err(CliError::WrongPassword(
                "no profile opens with the password given on stdin".into(),
            ));
        }
        for info in listed {
            if rows
                .iter()
                .all(|(r, _)| r.profile_id != info.profile_id.as_str())
            {
                rows.push((ProfileRow::from_info(&info, false), pw.clone()));
            }
        }
    }
    if let Some(s) = plan.profile.as_deref() {
        let plain: Vec<ProfileRow> = rows.iter().map(|(r, _)| r.clone()).collect();
        let i = select(&plain, Some(s), "profile")?;
        rows = vec![rows.swap_remove(i)];
    }
    if rows.is_empty() {
        warn!(
            "no profile to run yet: create one with `cwtch profile create`; one with a \
             password runs once `cwtch profile unlock` is given it (or with run --password-stdin)"
        );
    }
    for (row, pw) in rows {
        app.load_profile(&row.profile_id, &pw)
            .await
            .map_err(CliError::lib)?;
    }
    Ok(())
}

/// Print every event as one JSON line (flushed), until told to stop; then what is left.
async fn print_events(mut rx: broadcast::Receiver<Event>, mut stop: oneshot::Receiver<()>) {
    let mut out = tokio::io::stdout();
    loop {
        let next = tokio::select! {
            biased;
            e = rx.recv() => e,
            _ = &mut stop => break,
        };
        match next {
            Ok(e) => write_line(&mut out, &e.to_json()).await,
            Err(broadcast::error::RecvError::Lagged(n)) => lost(&mut out, n).await,
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
    loop {
        match rx.try_recv() {
            Ok(e) => write_line(&mut out, &e.to_json()).await,
            Err(broadcast::error::TryRecvError::Lagged(n)) => lost(&mut out, n).await,
            Err(_) => return,
        }
    }
}

async fn lost(out: &mut tokio::io::Stdout, n: u64) {
    warn!(missed = n, "stdout is too slow: events were lost");
    write_line(
        out,
        &serde_json::json!({"event": "EventsLost", "missed": n}).to_string(),
    )
    .await;
}

async fn write_line(out: &mut tokio::io::Stdout, line: &str) {
    let mut b = Vec::with_capacity(line.len() + 1);
    b.extend_from_slice(line.as_bytes());
    b.push(b'\n');
    // A closed stdout is not a reason to stop running.
    let _ = out.write_all(&b).await;
    let _ = out.flush().await;
}

/// Create the data directory (0700) if it does not exist; the library checks it.
pub(crate) fn ensure_home(dir: &Path) -> Result<(), CliError> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| CliError::io(&format!("cannot create {}", dir.display()), e))
}

/// Bind the control socket (0600). A socket nobody answers on is stale and replaced; one
/// that answers means another `cwtch run` serves this data directory.
pub(crate) async fn claim_socket(path: &Path) -> Result<UnixListener, CliError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => {
            return Err(CliError::Failed(format!(
                "{} exists and is not a socket; move it away",
                path.display()
            )))
        }
        Ok(_) => match UnixStream::connect(path).await {
            Ok(_) => return Err(busy(path)),
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                info!(socket = %path.display(), "removing a stale control socket");
                std::fs::remove_file(path)
                    .map_err(|e| CliError::io(&format!("cannot remove {}", path.display()), e))?;
            }
            Err(e) => {
                return Err(CliError::Failed(format!(
                    "cannot check the control socket {}: {e}",
                    path.display()
                )))
            }
        },
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(CliError::io(&format!("cannot read {}", path.display()), e)),
    }
    let listener = UnixListener::bind(path).map_err(|e| {
        if e.kind() == ErrorKind::AddrInUse {
            busy(path)
        } else {
            CliError::Failed(format!("cannot listen on {}: {e}", path.display()))
        }
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| CliError::io(&format!("cannot chmod {}", path.display()), e))?;
    Ok(listener)
}

fn busy(path: &Path) -> CliError {
    CliError::Busy(format!(
        "another `cwtch run` or `cwtch tui` is already running on this data directory (its \
         control socket {} answers)",
        path.display()
    ))
}

/// Removes the control socket when `cwtch run` ends, if it is still ours.
pub(crate) struct SocketFile {
    path: PathBuf,
    ino: Option<u64>,
}

impl SocketFile {
    pub(crate) fn new(path: &Path) -> SocketFile {
        SocketFile {
            path: path.to_path_buf(),
            ino: std::fs::symlink_metadata(path).ok().map(|m| m.ino()),
        }
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let now = std::fs::symlink_metadata(&self.path).ok().map(|m| m.ino());
        if now.is_some() && now == self.ino {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
