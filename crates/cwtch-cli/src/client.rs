//! Running a request: through a running `cwtch run` if one answers on the control socket,
//! otherwise directly on the data directory.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cwtch::connectivity::{Acn, AcnArgs};
use cwtch::{Cwtch, Password};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::error::CliError;
use crate::offline::OfflineAcn;
use crate::protocol::{Reply, Request, Response, MAX_ANSWER, SOCKET_NAME};
use crate::session::{Mode, Session};

/// The lock file (in the data directory) of the processes that work on it directly.
pub(crate) const HOME_LOCK: &str = ".cwtch-cli.lock";

/// Held by a process that works on a data directory directly (a one-off command, or `cwtch
/// run` for its whole life).
///
/// One-off commands on the same home run one after the other: a second `cwtch send` started
/// by a script while the first is online waits for it, instead of failing because the
/// profile's own lock is held.
pub(crate) struct HomeLock {
    _file: std::fs::File,
}

impl HomeLock {
    pub(crate) async fn acquire(dir: &Path) -> Result<HomeLock, CliError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(HOME_LOCK);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| CliError::io(&format!("cannot open {}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => return Ok(HomeLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => {
                tracing::warn!(
                    "another cwtch command is working on {}; waiting for it to finish",
                    dir.display()
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(CliError::io(&format!("cannot lock {}", path.display()), e))
            }
        }
        let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
            .await
            .map_err(|e| CliError::Failed(format!("waiting for {}: {e}", path.display())))?
            .map_err(|e| CliError::io(&format!("cannot lock {}", path.display()), e))?;
        Ok(HomeLock { _file: file })
    }
}

/// How to run a request when no daemon answers.
pub(crate) struct Direct<'a> {
    /// A password to try besides the default one.
    pub(crate) extra: Option<Password>,
    /// The network to bring the profile online on (`send`); `None`: stay offline.
    pub(crate) acn: Option<&'a AcnArgs>,
    /// Create the data directory if it does not exist (`profile create`, `profile import`).
    pub(crate) create_home: bool,
}

/// Who executed the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    Daemon,
    Direct,
}

pub(crate) fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// How long to wait for the daemon's answer.
fn answer_timeout(req: &Request) -> Duration {
    let base = Duration::from_secs(300);
    match req {
        Request::Send { wait_secs, .. } | Request::GroupInvite { wait_secs, .. } => {
            base + Duration::from_secs(*wait_secs)
        }
        _ => base,
    }
}

/// Connect to the daemon's control socket; `None` if no daemon is there (no socket, or a
/// stale one nobody listens on).
pub(crate) async fn connect(data_dir: &Path) -> Result<Option<UnixStream>, CliError> {
    let path = socket_path(data_dir);
    match UnixStream::connect(&path).await {
        Ok(s) => Ok(Some(s)),
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
            Ok(None)
        }
        // The daemon died while our connection waited to be accepted.
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Err(CliError::Failed(format!(
            "the running `cwtch run` went away as we connected to {} ({e}); nothing was done, \
             run the command again",
            path.display()
        ))),
        Err(e) => Err(CliError::Failed(format!(
            "cannot connect to the control socket {}: {e}",
            path.display()
        ))),
    }
}

/// A subscription to a running `cwtch run`'s events (`events.subscribe`): one JSON line per
/// event. Dropping it ends the subscription.
pub(crate) struct Subscription {
    lines: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    // Kept open: closing it ends the subscription.
    _w: tokio::net::unix::OwnedWriteHalf,
}

/// What the next line of a [`Subscription`] is.
pub(crate) enum Next {
    Event(Box<cwtch::Event>),
    /// `EventsLost` (the reader was too slow), or an event this version does not know.
    Skipped,
    /// The `cwtch run` went away.
    Ended,
}

impl Subscription {
    pub(crate) async fn next(&mut self) -> Next {
        match self.lines.next_line().await {
            Ok(Some(l)) => match serde_json::from_str::<cwtch::Event>(&l) {
                Ok(e) => Next::Event(Box::new(e)),
                Err(_) => Next::Skipped,
            },
            Ok(None) | Err(_) => Next::Ended,
        }
    }
}

/// Subscribe to the events of the `cwtch run` serving `data_dir`; `None` if none runs.
/// Events from the moment this returns are delivered.
pub(crate) async fn subscribe(data_dir: &Path) -> Result<Option<Subscription>, CliError> {
    let Some(stream) = connect(data_dir).await? else {
        return Ok(None);
    };
    let (r, mut w) = stream.into_split();
    let mut line = Request::EventsSubscribe.to_line()?;
    line.push('\n');
    let lost =
        |e: std::io::Error| CliError::Failed(format!("the running `cwtch run` went away: {e}"));
    w.write_all(line.as_bytes()).await.map_err(lost)?;
    let mut lines = BufReader::new(r).lines();
    match lines.next_line().await.map_err(lost)? {
        Some(answer) => match Response::parse(answer.as_bytes())? {
            Reply::Subscribed => Ok(Some(Subscription { lines, _w: w })),
            other => Err(CliError::Failed(format!(
                "unexpected answer to events.subscribe: {other:?}"
            ))),
        },
        None => Err(CliError::Failed(
            "the running `cwtch run` closed the connection (is it older than this `cwtch`?)".into(),
        )),
    }
}

pub(crate) async fn execute(
    data_dir: &Path,
    req: Request,
    direct: Direct<'_>,
) -> Result<(Reply, Via), CliError> {
    if let Some(stream) = connect(data_dir).await? {
        tracing::debug!("a running `cwtch run` executes the request");
        let timeout = answer_timeout(&req);
        let reply = tokio::time::timeout(timeout, ask(stream, &req))
            .await
            .map_err(|_| {
                CliError::Failed("the running `cwtch run` did not answer in time".into())
            })??;
        return Ok((reply, Via::Daemon));
    }
    tracing::debug!("no `cwtch run` answers; working on the data directory");
    Ok((run_direct(data_dir, req, direct).await?, Via::Direct))
}

/// One request and its answer over the control socket.
pub(crate) async fn ask(stream: UnixStream, req: &Request) -> Result<Reply, CliError> {
    let (r, mut w) = stream.into_split();
    let mut line = req.to_line()?;
    line.push('\n');
    let lost =
        |e: std::io::Error| CliError::Failed(format!("the running `cwtch run` went away: {e}"));
    w.write_all(line.as_bytes()).await.map_err(lost)?;
    w.flush().await.map_err(lost)?;
    read_answer(r, MAX_ANSWER).await
}

/// One answer line, at most `max` bytes.
async fn read_answer(r: impl tokio::io::AsyncRead + Unpin, max: usize) -> Result<Reply, CliError> {
    let lost =
        |e: std::io::Error| CliError::Failed(format!("the running `cwtch run` went away: {e}"));
    let mut buf = Vec::new();
    let n = BufReader::new(r)
        .take(max as u64)
        .read_until(b'\n', &mut buf)
        .await
        .map_err(lost)?;
    if n == 0 {
        return Err(CliError::Failed(
            "the running `cwtch run` closed the connection without answering (did it stop?)".into(),
        ));
    }
    if n >= max && !buf.ends_with(b"\n") {
        return Err(CliError::Failed(format!(
            "the answer is longer than {} MiB: ask for less (`--limit`)",
            max >> 20
        )));
    }
    Response::parse(&buf)
}

async fn run_direct(data_dir: &Path, req: Request, d: Direct<'_>) -> Result<Reply, CliError> {
    if !d.create_home && !data_dir.exists() {
        return Err(CliError::NotFound(format!(
            "no Cwtch home at {} (create a profile with `cwtch profile create`, or choose \
             another with --data-dir)",
            data_dir.display()
        )));
    }
    let _home = HomeLock::acquire(data_dir).await?;
    let (acn, online): (Arc<dyn Acn>, bool) = match d.acn {
        Some(args) => (args.build(data_dir).await.map_err(CliError::acn)?, true),
        None => (Arc::new(OfflineAcn::new()), false),
    };
    let result = async {
        let app = Cwtch::open(data_dir, acn.clone())
            .await
            .map_err(CliError::lib)?;
        let session = Session::new(
            app.clone(),
            Mode::Direct {
                extra: d.extra,
                online,
            },
        );
        let r = session.execute(req).await;
        app.shutdown().await;
        r
    }
    .await;
    acn.close().await;
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::protocol::{MessageRow, MAX_LINE};

    /// An answer longer than a request may be (every message of a long conversation) is
    /// read whole; one longer than the limit is a clear error, not a parse failure.
    #[tokio::test]
    async fn long_answers_are_read_and_overlong_ones_refused() {
        let text = "x".repeat(2000);
        let row = MessageRow {
            conversation_id: 1,
            message_id: 1,
            signature: "s".into(),
            author: "a".into(),
            outgoing: false,
            state: cwtch::MessageState::Received,
            timestamp: None,
            text: Some(text.clone()),
            overlay: Some(1),
            content: cwtch::Content::text(&text),
            body: text.clone(),
            content_hash: "h".into(),
            image: None,
            file: None,
            reply_to: None,
        };
        let messages = vec![row; 1000];
        let mut line =
            serde_json::to_string(&Response::new(Ok(Reply::Messages { messages }))).unwrap();
        line.push('\n');
        assert!(line.len() > MAX_LINE, "{}", line.len());
        match read_answer(line.as_bytes(), MAX_ANSWER).await.unwrap() {
            Reply::Messages { messages } => assert_eq!(messages.len(), 1000),
            other => panic!("{other:?}"),
        }
        let e = read_answer(line.as_bytes(), 1 << 20).await.unwrap_err();
        assert!(e.to_string().contains("longer than 1 MiB"), "{e}");
    }
}
