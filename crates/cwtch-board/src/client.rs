//! The thin tokio driver: token acquisition on the token service, and a token-board connection
//! that runs a [`BoardMachine`].
//!
//! Every connection uses a fresh ephemeral identity (protocol.md §2.6): the server cannot link
//! a client's connections to each other or to a profile. Every wait is bounded by a timeout.
//! Nothing here retries, reconnects or spawns a task: errors and events are reported, and the
//! caller owns retries, backoff and concurrency.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use connectivity::Acn;
use cwtch_model::{EncryptedGroupMessage, KeyBundle, ServerKeys};
use privacypass::{Token, MAX_BATCH_SIZE};
use tapir::{ApplicationChain, Identity, Onion};
use tapir_service::{Connection, Service, ServiceConfig};
use tracing::debug;

use crate::error::Error;
use crate::machine::{
    post_binding, BoardMachine, Cursor, Event, MachineConfig, PostId, PreparedPost,
};

/// A server, as known from its verified key bundle.
#[derive(Clone)]
pub struct ServerClient {
    acn: Arc<dyn Acn>,
    keys: ServerKeys,
    y: privacypass::PublicKey,
    /// How long any single wait may take: a dial and handshake, a token batch, a send, or
    /// one payload from the board. Copied into each [`BoardClient`].
    pub timeout: Duration,
}

impl std::fmt::Debug for ServerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerClient")
            .field("server", &self.keys.server)
            .finish_non_exhaustive()
    }
}

fn ephemeral(acn: &Arc<dyn Acn>, timeout: Duration) -> Service {
    Service::new(
        Arc::new(Identity::generate(&mut rand_core::OsRng)),
        acn.clone(),
        ServiceConfig {
            handshake_timeout: timeout,
            ..ServiceConfig::default()
        },
    )
}

async fn within<T>(
    timeout: Duration,
    f: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(timeout, f)
        .await
        .unwrap_or(Err(Error::Timeout(timeout)))
}

impl ServerClient {
    /// A client for the server whose bundle this is (verified first).
    pub fn new(bundle: &KeyBundle, acn: Arc<dyn Acn>) -> Result<ServerClient, Error> {
        let keys = bundle.verify()?;
        let y = privacypass::PublicKey::from_bytes(&keys.privacy_pass_key_bytes()?)
            .map_err(|_| Error::BadPrivacyPassKey)?;
        Ok(ServerClient {
            acn,
            keys,
            y,
            timeout: Duration::from_secs(120),
        })
    }

    /// The server's token-board onion.
    pub fn onion(&self) -> &Onion {
        &self.keys.server
    }

    /// The server's verified keys.
    pub fn keys(&self) -> &ServerKeys {
        &self.keys
    }

    /// Obtain `n` (1 to [`MAX_BATCH_SIZE`]) tokens from the token service: proof-of-work,
    /// then a batch whose proof verifies against the bundle's key. One attempt, within
    /// [`ServerClient::timeout`].
    pub async fn fetch_tokens(&self, n: usize) -> Result<Vec<Token>, Error> {
        if n == 0 || n > MAX_BATCH_SIZE {
            return Err(Error::BatchSize {
                n,
                max: MAX_BATCH_SIZE,
            });
        }
        let svc = ephemeral(&self.acn, self.timeout);
        let r = within(self.timeout, async {
            let mut conn = svc
                .connect(
                    &self.keys.token_service,
                    ApplicationChain::token_client(self.y, n),
                )
                .await?;
            Ok(conn.take_tokens())
        })
        .await;
        // The connection is dropped (closed) by now; let its task finish.
        let _ = tokio::time::timeout(self.timeout, svc.shutdown()).await;
        r
    }

    /// A fresh machine for this server (no tokens), resuming from `cursor`.
    pub fn machine(&self, cursor: Option<Cursor>) -> BoardMachine {
        BoardMachine::new(self.keys.server.clone(), cursor, MachineConfig::default())
    }

    /// Open an authenticated token-board connection with a fresh machine (no cursor, no
    /// tokens).
    pub async fn connect(&self) -> Result<BoardClient, Error> {
        self.connect_with(self.machine(None))
            .await
            .map_err(|(e, _)| e)
    }

    /// Open an authenticated token-board connection that runs `machine` (its cursor, its
    /// tokens): how a caller resumes after a disconnection ([`BoardClient::into_machine`]).
    /// On failure the machine comes back with the error, so its tokens and cursor survive for
    /// the caller's next attempt.
    pub async fn connect_with(
        &self,
        mut machine: BoardMachine,
    ) -> Result<BoardClient, (Error, BoardMachine)> {
        if machine.server() != &self.keys.server {
            return Err((Error::WrongServer, machine));
        }
        if machine.phase() != crate::Phase::Disconnected {
            return Err((Error::AlreadyConnected, machine));
        }
        let svc = ephemeral(&self.acn, self.timeout);
        let dial = within(self.timeout, async {
            Ok(svc
                .connect(&self.keys.server, ApplicationChain::authenticated())
                .await?)
        })
        .await;
        let conn = match dial {
            Ok(c) => c,
            Err(e) => return Err((e, machine)),
        };
        if let Err(e) = machine.connected() {
            return Err((e, machine));
        }
        Ok(BoardClient {
            _svc: svc,
            conn,
            machine,
            set_aside: VecDeque::new(),
            unsent: None,
            closed: false,
            timeout: self.timeout,
        })
    }
}

/// An authenticated connection to a server's token board, running a [`BoardMachine`].
///
/// [`BoardClient::next_event`] is the stream of what happens (messages, cursor moves, post
/// results, state changes); it is cancel-safe, so it can sit in a `tokio::select!` beside the
/// caller's own work. After the connection ends it yields the remaining events (each
/// outstanding post's [`Event::PostUnknown`], then [`Event::Disconnected`]) and then
/// [`Error::Closed`].
pub struct BoardClient {
    _svc: Service,
    conn: Connection,
    machine: BoardMachine,
    /// Events the waiting helpers (`post`, `replay`) read past, for `next_event`.
    set_aside: VecDeque<Event>,
    /// A payload taken from the machine and not yet queued on the connection (cancel safety).
    unsent: Option<Vec<u8>>,
    closed: bool,
    /// How long any single wait may take (a send, or one payload from the board).
    pub timeout: Duration,
}

impl std::fmt::Debug for BoardClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoardClient")
            .field("machine", &self.machine)
            .finish_non_exhaustive()
    }
}

impl BoardClient {
    /// The machine: cursor, tokens in hand, phase, outstanding posts.
    pub fn machine(&self) -> &BoardMachine {
        &self.machine
    }

    /// Close the connection and take the machine back (with its cursor, its tokens and the
    /// events not yet read), to reconnect later with [`ServerClient::connect_with`].
    pub fn into_machine(mut self) -> BoardMachine {
        self.conn.close();
        self.machine.disconnected();
        let mut machine = self.machine;
        machine.unpoll(self.set_aside.into_iter());
        machine
    }

    /// Add tokens to the machine's wallet (see [`BoardMachine::add_tokens`]).
    pub fn add_tokens(&mut self, tokens: impl IntoIterator<Item = Token>) -> usize {
        self.machine.add_tokens(tokens)
    }

    /// Take a token and spend it on `egm` (see [`BoardMachine::prepare_post`]): record
    /// [`PreparedPost::token`] as spent before [`BoardClient::send_post`].
    pub fn prepare_post(&mut self, egm: EncryptedGroupMessage) -> Result<PreparedPost, Error> {
        self.machine.prepare_post(egm)
    }

    /// Send a prepared post. Its result arrives through [`BoardClient::next_event`] as
    /// [`Event::PostResult`] with [`PreparedPost::id`]. A [`Error::Timeout`] leaves it queued:
    /// it goes out with the next send or `next_event`.
    pub async fn send_post(&mut self, post: PreparedPost) -> Result<(), Error> {
        self.machine.send_post(post)?;
        self.flush().await
    }

    /// Ask for the replay from the machine's cursor; then read [`BoardClient::next_event`].
    pub async fn request_replay(&mut self) -> Result<(), Error> {
        self.machine.request_replay()?;
        self.flush().await
    }

    /// The next event. Waits at most [`BoardClient::timeout`] for the server;
    /// [`Error::Timeout`] leaves the connection intact.
    pub async fn next_event(&mut self) -> Result<Event, Error> {
        if let Some(e) = self.set_aside.pop_front() {
            return Ok(e);
        }
        self.machine_event().await
    }

    /// The next event from the machine, reading from the connection as needed.
    async fn machine_event(&mut self) -> Result<Event, Error> {
        loop {
            if let Some(e) = self.machine.poll_event() {
                return Ok(e);
            }
            if self.closed {
                return Err(Error::Closed);
            }
            self.flush().await?;
            let payload = tokio::time::timeout(self.timeout, self.conn.recv()).await;
            match payload {
                Err(_) => return Err(Error::Timeout(self.timeout)),
                Ok(None) => self.lost(),
                Ok(Some(p)) => {
                    if let Err(e) = self.machine.handle(&p) {
                        debug!(error = %e, "closing a token-board connection");
                        self.conn.close();
                        self.closed = true;
                        return Err(e);
                    }
                }
            }
        }
    }

    fn lost(&mut self) {
        self.conn.close();
        self.closed = true;
        self.unsent = None;
        self.machine.disconnected();
    }

    /// Queue what the machine has to send on the connection. Cancel-safe: a payload leaves
    /// `unsent` only once the connection has taken it.
    async fn flush(&mut self) -> Result<(), Error> {
        loop {
            if self.closed {
                return Err(Error::Closed);
            }
            if self.unsent.is_none() {
                self.unsent = self.machine.poll_transmit();
            }
            let Some(payload) = &self.unsent else {
                return Ok(());
            };
            match tokio::time::timeout(self.timeout, self.conn.send(payload.clone())).await {
                Err(_) => return Err(Error::Timeout(self.timeout)),
                Ok(Err(e)) => {
                    self.lost();
                    return Err(e.into());
                }
                Ok(Ok(())) => self.unsent = None,
            }
        }
    }

    /// Wait for the result of post `id`, setting other events aside.
    async fn wait_post(&mut self, id: PostId) -> Result<bool, Error> {
        loop {
            match self.machine_event().await? {
                Event::PostResult { id: got, accepted } if got == id => return Ok(accepted),
                e => self.set_aside.push_back(e),
            }
        }
    }

    /// Post `egm` paying with `token` (the caller's, outside the wallet), bound to this server,
    /// and wait for the server's verdict.
    pub async fn post(
        &mut self,
        token: &Token,
        egm: &EncryptedGroupMessage,
    ) -> Result<bool, Error> {
        let spent = token.spend(&post_binding(egm, self.machine.server()));
        self.post_spent(spent.t.to_vec(), spent.mac.to_vec(), egm)
            .await
    }

    /// Post with an explicit spent token (tests: tokens bound elsewhere, replays) and wait for
    /// the server's verdict.
    pub async fn post_spent(
        &mut self,
        t: Vec<u8>,
        mac: Vec<u8>,
        egm: &EncryptedGroupMessage,
    ) -> Result<bool, Error> {
        let id = self.machine.send_spent(t, mac, egm.clone())?;
        self.flush().await?;
        self.wait_post(id).await
    }

    /// Replay from `last_commit` (a signature; `None` for everything) and return what the
    /// server replayed, as it sent it: from `last_commit`'s own message (inclusive) when the
    /// server has it, everything otherwise. Other events are kept for
    /// [`BoardClient::next_event`]; afterwards the connection is synced.
    pub async fn replay(
        &mut self,
        last_commit: Option<&[u8]>,
    ) -> Result<Vec<EncryptedGroupMessage>, Error> {
        let cursor = match last_commit {
            None | Some([]) => None,
            Some(c) => Some(Cursor::new(c.to_vec())?),
        };
        self.machine.set_cursor(cursor)?;
        self.request_replay().await?;
        let mut out = Vec::new();
        loop {
            match self.machine_event().await? {
                Event::Message(r) => out.push(r.egm),
                Event::Duplicate(egm) | Event::Skipped(egm) => out.push(egm),
                Event::Synced => return Ok(out),
                e => self.set_aside.push_back(e),
            }
        }
    }

    /// The next new message (replayed or live), skipping every other event.
    pub async fn next_message(&mut self) -> Result<EncryptedGroupMessage, Error> {
        loop {
            if let Event::Message(r) = self.next_event().await? {
                return Ok(r.egm);
            }
        }
    }

    /// Send raw bytes, bypassing the machine (tests: malformed requests).
    pub async fn send_raw(&self, payload: Vec<u8>) -> Result<(), Error> {
        Ok(self.conn.send(payload).await?)
    }

    /// Receive raw bytes, bypassing the machine (tests). Waits at most the timeout.
    pub async fn recv_raw(&mut self) -> Result<Vec<u8>, Error> {
        match tokio::time::timeout(self.timeout, self.conn.recv()).await {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(Error::Closed),
            Err(_) => Err(Error::Timeout(self.timeout)),
        }
    }

    /// Whether the server closed the connection, reading raw payloads until it does (tests).
    /// `false` if it stays open for the timeout.
    pub async fn closed_by_server(&mut self) -> bool {
        loop {
            match self.recv_raw().await {
                Err(Error::Closed) => return true,
                Err(_) => return false,
                Ok(_) => continue,
            }
        }
    }
}
