//! A small async client for Tor's control port: commands and their replies, and asynchronous
//! `650` events, multiplexed on one TCP connection.
//!
//! Shape (a handle and two tasks, like Arti's channel reactor):
//!
//! - [`Control`] is the handle. [`Control::command`] hands the command line to the *writer
//!   task* through a bounded channel (so a cancelled caller never leaves half a command on the
//!   wire) and waits, bounded by a timeout, for its reply.
//! - The writer task queues the caller's reply slot, then writes the line. Tor answers
//!   commands in order, so a FIFO of reply slots is all the bookkeeping needed.
//! - The *reader task* parses replies ([`super::reply::ReplyParser`]): a `650` reply is an
//!   event and goes to every [`EventStream`] (a bounded broadcast); any other reply completes
//!   the oldest reply slot. On EOF, an I/O error or a protocol error it fails every waiting
//!   command, closes the event streams and ends.
//!
//! Command lines may hold secrets (a cookie's HMAC, a password, an onion's private key): they
//! travel in [`Zeroizing`] strings and are never logged, only the command's keyword is.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};
use zeroize::Zeroizing;

use super::reply::{Reply, ReplyParser};
use crate::error::{Error, Operation, ProtocolProblem};

/// Commands accepted but not yet written.
const COMMAND_QUEUE: usize = 32;
/// Events buffered per subscriber before it lags (and loses the oldest).
const EVENT_QUEUE: usize = 256;
/// Read buffer size.
const READ_CHUNK: usize = 8192;

type ReplySlot = oneshot::Sender<Result<Reply, Error>>;

struct Request {
    line: Zeroizing<String>,
    reply: ReplySlot,
}

/// Why the connection ended; turned into an [`Error`] for every command that asks.
#[derive(Clone, Copy, Debug)]
enum CloseReason {
    Eof,
    Io(io::ErrorKind),
    Protocol(ProtocolProblem),
    Dropped,
}

impl CloseReason {
    fn error(self) -> Error {
        match self {
            CloseReason::Eof => Error::io(
                Operation::Control,
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "tor closed the control connection",
                ),
            ),
            CloseReason::Io(kind) => Error::io(Operation::Control, kind.into()),
            CloseReason::Protocol(problem) => Error::ControlProtocol { problem },
            CloseReason::Dropped => Error::Closed,
        }
    }
}

/// State shared by the handle and its two tasks.
struct Shared {
    pending: Mutex<VecDeque<ReplySlot>>,
    reason: Mutex<Option<CloseReason>>,
    /// Cancelled once the connection is finished, for whatever reason.
    closed: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Finish the connection: remember why (the first reason wins), wake everyone waiting.
    fn close(&self, reason: CloseReason) {
        let reason = *lock(&self.reason).get_or_insert(reason);
        self.closed.cancel();
        let pending: Vec<ReplySlot> = lock(&self.pending).drain(..).collect();
        for slot in pending {
            let _ = slot.send(Err(reason.error()));
        }
    }

    fn error(&self) -> Error {
        lock(&self.reason).unwrap_or(CloseReason::Dropped).error()
    }
}

/// A control-port connection. Dropping it closes the connection (and, for a tor that took
/// ownership from it, stops that tor).
pub(crate) struct Control {
    requests: mpsc::Sender<Request>,
    /// Never read: kept to make new subscribers with `resubscribe`. The reader task owns the
    /// only sender, so when it ends every subscriber sees the stream end.
    events: broadcast::Receiver<Arc<Reply>>,
    shared: Arc<Shared>,
    timeout: Duration,
    _stop: DropGuard,
}

/// Asynchronous events (`650` replies) from one control connection.
pub(crate) struct EventStream {
    rx: broadcast::Receiver<Arc<Reply>>,
}

impl EventStream {
    /// The next event; `None` once the connection has ended.
    pub(crate) async fn next(&mut self) -> Option<Arc<Reply>> {
        loop {
            match self.rx.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(lost = n, "tor control: event subscriber lagged");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

impl Control {
    /// Connect to a control port at `addr`, waiting at most `timeout`. An address, never a
    /// host name: a name would be looked up outside Tor.
    pub(crate) async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Control, Error> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(Error::Timeout {
                    operation: Operation::Control,
                })
            }
            Ok(Err(e)) => return Err(Error::io(Operation::Control, e)),
            Ok(Ok(stream)) => stream,
        };
        let _ = stream.set_nodelay(true);
        Ok(Control::from_stream(stream, timeout))
    }

    /// Run the control protocol over `stream`; each command waits at most `timeout`.
    pub(crate) fn from_stream<S>(stream: S, timeout: Duration) -> Control
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(stream);
        let (requests, rx) = mpsc::channel(COMMAND_QUEUE);
        let (events_tx, events) = broadcast::channel(EVENT_QUEUE);
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            pending: Mutex::new(VecDeque::new()),
            reason: Mutex::new(None),
            closed: CancellationToken::new(),
        });
        tokio::spawn(write_loop(write, rx, Arc::clone(&shared), stop.clone()));
        tokio::spawn(read_loop(
            read,
            events_tx,
            Arc::clone(&shared),
            stop.clone(),
        ));
        Control {
            requests,
            events,
            shared,
            timeout,
            _stop: stop.drop_guard(),
        }
    }

    /// Subscribe to asynchronous events (those enabled with `SETEVENTS`) from now on.
    pub(crate) fn events(&self) -> EventStream {
        EventStream {
            rx: self.events.resubscribe(),
        }
    }

    /// Whether the connection has ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled()
    }

    /// Resolves when the connection has ended.
    #[cfg(test)]
    pub(crate) async fn closed(&self) {
        self.shared.closed.cancelled().await;
    }

    /// Send `line` (without CRLF) and return Tor's reply, whatever its status code.
    /// `keyword` names the command in logs and errors; `line` is never logged.
    pub(crate) async fn raw(
        &self,
        keyword: &'static str,
        line: Zeroizing<String>,
    ) -> Result<Reply, Error> {
        if line.contains(['\r', '\n']) {
            return Err(Error::io(
                Operation::Control,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "control command contains a line break",
                ),
            ));
        }
        if self.is_closed() {
            return Err(self.shared.error());
        }
        let mut framed = Zeroizing::new(String::with_capacity(line.len() + 2));
        framed.push_str(&line);
        framed.push_str("\r\n");
        let (reply, rx) = oneshot::channel();
        let exchange = async {
            self.requests
                .send(Request {
                    line: framed,
                    reply,
                })
                .await
                .map_err(|_| self.shared.error())?;
            // Biased: a reply that arrived just before the connection closed (Tor answers
            // a failed AUTHENTICATE and hangs up) must win over the closure.
            tokio::select! {
                biased;
                r = rx => r.unwrap_or_else(|_| Err(self.shared.error())),
                () = self.shared.closed.cancelled() => Err(self.shared.error()),
            }
        };
        tracing::trace!(command = keyword, "tor control: sending");
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(reply)) => {
                tracing::trace!(command = keyword, code = reply.code, "tor control: reply");
                Ok(reply)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => {
                tracing::warn!(command = keyword, "tor control: no reply in time");
                Err(Error::Timeout {
                    operation: Operation::Control,
                })
            }
        }
    }

    /// Send `line` and return Tor's reply if it is a success (`2xx`), else
    /// [`Error::ControlRejected`].
    pub(crate) async fn command(
        &self,
        keyword: &'static str,
        line: impl Into<Zeroizing<String>>,
    ) -> Result<Reply, Error> {
        let reply = self.raw(keyword, line.into()).await?;
        if reply.is_ok() {
            Ok(reply)
        } else {
            Err(rejected(keyword, &reply))
        }
    }

    /// `GETINFO key`: the value.
    pub(crate) async fn getinfo(&self, key: &'static str) -> Result<String, Error> {
        let reply = self.command("GETINFO", format!("GETINFO {key}")).await?;
        reply.value(key).ok_or(Error::ControlProtocol {
            problem: ProtocolProblem::MissingField(key),
        })
    }
}

/// The error for a non-`2xx` reply to `keyword`.
pub(crate) fn rejected(keyword: &'static str, reply: &Reply) -> Error {
    Error::ControlRejected {
        command: keyword,
        code: reply.code,
        message: reply.first_text().to_owned(),
    }
}

async fn write_loop<W: AsyncWrite>(
    write: W,
    mut requests: mpsc::Receiver<Request>,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    tokio::pin!(write);
    loop {
        let request = tokio::select! {
            () = stop.cancelled() => break,
            () = shared.closed.cancelled() => break,
            r = requests.recv() => match r {
                Some(r) => r,
                None => break,
            },
        };
        // Queue the slot before writing: the reply cannot arrive before the command is sent.
        lock(&shared.pending).push_back(request.reply);
        let written = tokio::select! {
            () = stop.cancelled() => break,
            r = async {
                write.write_all(request.line.as_bytes()).await?;
                write.flush().await
            } => r,
        };
        if let Err(e) = written {
            tracing::debug!(error = %e, "tor control: write failed");
            shared.close(CloseReason::Io(e.kind()));
            break;
        }
    }
    shared.close(CloseReason::Dropped);
    let _ = write.shutdown().await;
}

async fn read_loop<R: AsyncRead>(
    read: R,
    events: broadcast::Sender<Arc<Reply>>,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    tokio::pin!(read);
    let mut parser = ReplyParser::new();
    let mut buf = vec![0u8; READ_CHUNK];
    let reason = 'conn: loop {
        let n = tokio::select! {
            () = stop.cancelled() => break CloseReason::Dropped,
            () = shared.closed.cancelled() => break CloseReason::Dropped,
            r = read.read(&mut buf) => match r {
                Ok(0) => break CloseReason::Eof,
                Ok(n) => n,
                Err(e) => break CloseReason::Io(e.kind()),
            },
        };
        parser.feed(&buf[..n]);
        loop {
            match parser.next_reply() {
                Ok(None) => break,
                Ok(Some(reply)) if reply.is_event() => {
                    // No subscribers is fine: nobody asked for this event.
                    let _ = events.send(Arc::new(reply));
                }
                Ok(Some(reply)) => {
                    let slot = lock(&shared.pending).pop_front();
                    match slot {
                        // The caller may have timed out and gone: fine.
                        Some(slot) => drop(slot.send(Ok(reply))),
                        None => {
                            tracing::warn!(code = reply.code, "tor control: unsolicited reply");
                            break 'conn CloseReason::Protocol(ProtocolProblem::UnexpectedReply);
                        }
                    }
                }
                Err(problem) => {
                    tracing::warn!(%problem, "tor control: protocol error, closing");
                    break 'conn CloseReason::Protocol(problem);
                }
            }
        }
    };
    tracing::debug!(?reason, "tor control: connection finished");
    shared.close(reason);
    drop(events);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};

    const T: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn replies_match_commands_in_order_and_events_fan_out() {
        let (ours, theirs) = tokio::io::duplex(1024);
        let control = Control::from_stream(ours, T);
        let mut events = control.events();
        let server = tokio::spawn(async move {
            let (r, mut w) = tokio::io::split(theirs);
            let mut lines = BufReader::new(r).lines();
            assert_eq!(lines.next_line().await.unwrap().unwrap(), "GETINFO version");
            // An event arrives before the reply, split across writes.
            w.write_all(b"650 STATUS_CLIENT NOTICE BOOT").await.unwrap();
            w.flush().await.unwrap();
            w.write_all(b"STRAP PROGRESS=5\r\n250-version=0.4.9.11\r")
                .await
                .unwrap();
            w.flush().await.unwrap();
            w.write_all(b"\n250 OK\r\n").await.unwrap();
            assert_eq!(lines.next_line().await.unwrap().unwrap(), "BAD");
            w.write_all(b"510 Unrecognized command \"BAD\"\r\n")
                .await
                .unwrap();
            w
        });
        assert_eq!(control.getinfo("version").await.unwrap(), "0.4.9.11");
        match control.command("BAD", "BAD".to_owned()).await {
            Err(Error::ControlRejected { command, code, .. }) => {
                assert_eq!((command, code), ("BAD", 510));
            }
            other => panic!("{other:?}"),
        }
        let event = events.next().await.unwrap();
        assert_eq!(
            event.first_text(),
            "STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=5"
        );
        let w = server.await.unwrap();
        drop(w);
    }

    #[tokio::test]
    async fn protocol_error_fails_commands_and_ends_events() {
        let (ours, theirs) = tokio::io::duplex(1024);
        let control = Control::from_stream(ours, T);
        let mut events = control.events();
        let (_r, mut w) = tokio::io::split(theirs);
        w.write_all(b"garbage\r\n").await.unwrap();
        assert!(events.next().await.is_none());
        assert!(control.is_closed());
        match control
            .command("GETINFO", "GETINFO version".to_owned())
            .await
        {
            Err(Error::ControlProtocol {
                problem: ProtocolProblem::MalformedLine,
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn unsolicited_reply_is_an_error() {
        let (ours, theirs) = tokio::io::duplex(1024);
        let control = Control::from_stream(ours, T);
        let (_r, mut w) = tokio::io::split(theirs);
        w.write_all(b"250 OK\r\n").await.unwrap();
        control.closed().await;
        assert!(matches!(
            control.command("X", "X".to_owned()).await,
            Err(Error::ControlProtocol {
                problem: ProtocolProblem::UnexpectedReply
            })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn silent_tor_times_out() {
        let (ours, _theirs) = tokio::io::duplex(1024);
        let control = Control::from_stream(ours, T);
        assert!(matches!(
            control
                .command("GETINFO", "GETINFO version".to_owned())
                .await,
            Err(Error::Timeout {
                operation: Operation::Control
            })
        ));
    }

    #[tokio::test]
    async fn line_breaks_in_commands_are_refused() {
        let (ours, _theirs) = tokio::io::duplex(1024);
        let control = Control::from_stream(ours, T);
        assert!(matches!(
            control
                .command("SETCONF", "SETCONF A=1\r\nSIGNAL HALT".to_owned())
                .await,
            Err(Error::Io { .. })
        ));
    }

    #[tokio::test]
    async fn a_reply_just_before_the_close_is_delivered() {
        // Like Tor after a failed AUTHENTICATE: answer, then hang up at once.
        for _ in 0..50 {
            let (ours, theirs) = tokio::io::duplex(1024);
            let control = Control::from_stream(ours, T);
            let server = tokio::spawn(async move {
                let (r, mut w) = tokio::io::split(theirs);
                let mut lines = BufReader::new(r).lines();
                lines.next_line().await.unwrap();
                w.write_all(b"515 Authentication failed\r\n").await.unwrap();
            });
            let reply = control
                .raw("AUTHENTICATE", Zeroizing::new("AUTHENTICATE 00".to_owned()))
                .await
                .unwrap();
            assert_eq!(reply.code, 515);
            server.await.unwrap();
        }
    }

    #[tokio::test]
    async fn eof_is_reported() {
        let (ours, theirs) = tokio::io::duplex(1024);
        let control = Control::from_stream(ours, T);
        drop(theirs);
        control.closed().await;
        match control.command("X", "X".to_owned()).await {
            Err(Error::Io { operation, .. }) => assert_eq!(operation, Operation::Control),
            other => panic!("{other:?}"),
        }
    }
}
