//! One task per connection: it owns the stream and the tapir state machine.
//!
//! Phase 1 runs the application chain under the handshake deadline. Phase 2 carries payloads
//! between the stream and the owner through bounded queues: when the owner stops reading, the
//! task stops reading the stream (back-pressure reaches the peer through TCP); a separate
//! writer task means a peer that stops reading cannot stop us reading.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connectivity::BoxStream;
use rand_core::OsRng;
use tapir::packet::{PacketError, MAX_ENCRYPTED_PAYLOAD, MAX_PLAINTEXT_PAYLOAD};
use tapir::{ApplicationChain, Capabilities, Capability, Direction, Event, Onion};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, trace};

use crate::admission::Slot;
use crate::{Error, Inner};

const READ_BUF: usize = 2 * tapir::packet::PACKET_LEN;

/// Identifies a connection within its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// A cloneable handle on an established connection: send, grant capabilities, close.
#[derive(Clone)]
pub struct ConnectionHandle {
    id: ConnectionId,
    remote: Option<Onion>,
    outbound: bool,
    encrypted: bool,
    tx: mpsc::Sender<Vec<u8>>,
    caps: Arc<Mutex<Capabilities>>,
    cancel: CancellationToken,
}

impl ConnectionHandle {
    /// The connection's id within its service.
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// The peer's proven identity, if the chain authenticated it.
    pub fn remote(&self) -> Option<&Onion> {
        self.remote.as_ref()
    }

    /// Whether we dialled this connection.
    pub fn is_outbound(&self) -> bool {
        self.outbound
    }

    fn check_size(&self, payload: &[u8]) -> Result<(), Error> {
        let max = if self.encrypted {
            MAX_ENCRYPTED_PAYLOAD
        } else {
            MAX_PLAINTEXT_PAYLOAD
        };
        if payload.len() > max {
            return Err(tapir::Error::Packet(PacketError::PayloadTooLarge {
                len: payload.len(),
                max,
            })
            .into());
        }
        Ok(())
    }

    /// Queue a payload, waiting while the queue is full. A payload too large for one packet
    /// is refused here, never truncated.
    pub async fn send(&self, payload: Vec<u8>) -> Result<(), Error> {
        self.check_size(&payload)?;
        tokio::select! {
            _ = self.cancel.cancelled() => Err(Error::Closed),
            r = self.tx.send(payload) => r.map_err(|_| Error::Closed),
        }
    }

    /// Queue a payload if there is room now.
    pub fn try_send(&self, payload: Vec<u8>) -> Result<(), Error> {
        self.check_size(&payload)?;
        if self.cancel.is_cancelled() {
            return Err(Error::Closed);
        }
        self.tx.try_send(payload).map_err(|_| Error::Closed)
    }

    fn caps(&self) -> std::sync::MutexGuard<'_, Capabilities> {
        self.caps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Grant a capability (e.g. a server marking a client as synced, for broadcasts).
    pub fn grant(&self, c: Capability) {
        self.caps().grant(c);
    }

    /// Whether the connection holds a capability.
    pub fn has_capability(&self, c: Capability) -> bool {
        self.caps().has(c)
    }

    /// Close the connection. Payloads already queued are still written.
    pub fn close(&self) {
        self.cancel.cancel();
    }

    /// Whether the connection is closed or closing.
    pub fn is_closed(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Resolves when the connection closes.
    pub async fn closed(&self) {
        self.cancel.cancelled().await;
    }
}

impl std::fmt::Debug for ConnectionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionHandle")
            .field("id", &self.id.0)
            .field("remote", &self.remote)
            .field("outbound", &self.outbound)
            .finish_non_exhaustive()
    }
}

/// The owner's end of an established connection. Dropping it closes the connection.
pub struct Connection {
    handle: ConnectionHandle,
    rx: mpsc::Receiver<Vec<u8>>,
    events: Vec<Event>,
    _guard: DropGuard,
}

impl Connection {
    /// A cloneable handle for sending and closing from elsewhere.
    pub fn handle(&self) -> &ConnectionHandle {
        &self.handle
    }

    /// The peer's proven identity, if the chain authenticated it.
    pub fn remote(&self) -> Option<&Onion> {
        self.handle.remote()
    }

    /// The next payload from the peer; `None` once the connection is closed.
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        self.rx.recv().await
    }

    /// Queue a payload for the peer.
    pub async fn send(&self, payload: Vec<u8>) -> Result<(), Error> {
        self.handle.send(payload).await
    }

    /// What the application chain reported (authentication, tokens obtained...).
    pub fn chain_events(&self) -> &[Event] {
        &self.events
    }

    /// Take the tokens a token client chain obtained, if any.
    pub fn take_tokens(&mut self) -> Vec<privacypass::Token> {
        let mut out = Vec::new();
        for e in &mut self.events {
            if let Event::Tokens(t) = e {
                out.append(t);
            }
        }
        out
    }

    /// Close the connection.
    pub fn close(&self) {
        self.handle.close();
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Connection").field(&self.handle).finish()
    }
}

/// Where an established connection goes.
pub(crate) enum Deliver {
    Accept(mpsc::Sender<Connection>),
    Dialled(oneshot::Sender<Result<Connection, Error>>),
}

impl Deliver {
    fn fail(self, e: Error) {
        if let Deliver::Dialled(tx) = self {
            let _ = tx.send(Err(e));
        }
    }
}

/// Run the application chain on a fresh stream. Returns the chain's events and any
/// payloads that arrived right behind the last handshake packet.
///
/// An inbound connection's `slot` is established (no longer evictable) as soon as the chain
/// grants its first capability, or completes; if the service has no room for it then, the
/// handshake fails with [`Error::Full`].
async fn handshake(
    tc: &mut tapir::Connection,
    stream: &mut BoxStream,
    deadline: Duration,
    cancel: &CancellationToken,
    mut slot: Option<&mut Slot>,
) -> Result<(Vec<Event>, VecDeque<Vec<u8>>), Error> {
    let mut establish = |tc: &tapir::Connection| match slot.as_deref_mut() {
        Some(s) if !s.is_established() => {
            let proved = tc.is_established() || tc.capabilities().iter().next().is_some();
            if proved && !s.establish() {
                return Err(Error::Full);
            }
            Ok(())
        }
        _ => Ok(()),
    };
    let run = async {
        tc.start()?;
        let mut buf = vec![0u8; READ_BUF];
        loop {
            establish(tc)?;
            while let Some(p) = tc.poll_transmit() {
                stream.write_all(&p).await?;
            }
            if tc.is_established() {
                stream.flush().await?;
                return Ok::<(), Error>(());
            }
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err(Error::ClosedDuringHandshake);
            }
            tc.receive(&buf[..n])?;
        }
    };
    tokio::select! {
        _ = cancel.cancelled() => return Err(Error::Closed),
        r = tokio::time::timeout(deadline, run) => r.map_err(|_| Error::HandshakeTimeout(deadline))??,
    }
    let mut events = Vec::new();
    let mut early = VecDeque::new();
    while let Some(e) = tc.poll_event() {
        match e {
            Event::Payload(p) => early.push_back(p),
            other => events.push(other),
        }
    }
    Ok((events, early))
}

/// One connection's task. `cancel` (a child of the service's shutdown token) closes it; an
/// inbound connection holds its admission `slot` until the task ends.
pub(crate) async fn run(
    svc: Arc<Inner>,
    mut stream: BoxStream,
    direction: Direction,
    chain: ApplicationChain,
    deliver: Deliver,
    cancel: CancellationToken,
    mut slot: Option<Slot>,
) {
    let id = svc.next_id();
    let outbound = matches!(direction, Direction::Outbound { .. });
    let mut tc = tapir::Connection::new(svc.identity.clone(), direction, chain, Box::new(OsRng));
    let deadline = svc.config.handshake_timeout;
    let shaken = handshake(&mut tc, &mut stream, deadline, &cancel, slot.as_mut()).await;
    let (events, early) = match shaken {
        Ok(r) => r,
        Err(e) => {
            debug!(id = id.0, outbound, error = %e, "handshake failed; closing");
            deliver.fail(e);
            return;
        }
    };

    let (cmd_tx, cmd_rx) = mpsc::channel(svc.config.queue_len);
    let (in_tx, in_rx) = mpsc::channel(svc.config.queue_len);
    let handle = ConnectionHandle {
        id,
        remote: tc.remote().cloned(),
        outbound,
        encrypted: tc.is_encrypted(),
        tx: cmd_tx,
        caps: Arc::new(Mutex::new(tc.capabilities().clone())),
        cancel: cancel.clone(),
    };
    let losers = svc.registry.register(&svc.identity.onion(), handle.clone());
    // From here on, however this task ends (a return, or a panic unwinding it), the
    // connection leaves the registry and is closed: a stale entry would otherwise win the
    // duplicate rule against the peer's next connection.
    let _registered = Registered {
        svc: &svc,
        id,
        cancel: cancel.clone(),
    };
    for loser in losers {
        debug!(id = loser.id.0, "closing duplicate connection");
        loser.close();
        if loser.id == id {
            deliver.fail(Error::Duplicate);
            return;
        }
    }
    let conn = Connection {
        handle: handle.clone(),
        rx: in_rx,
        events,
        _guard: cancel.clone().drop_guard(),
    };
    match deliver {
        Deliver::Accept(tx) => {
            tokio::select! {
                _ = cancel.cancelled() => {}
                r = tx.send(conn) => if r.is_err() { cancel.cancel(); }
            }
        }
        Deliver::Dialled(tx) => {
            if tx.send(Ok(conn)).is_err() {
                cancel.cancel();
            }
        }
    }
    if !cancel.is_cancelled() {
        established(&svc, tc, stream, cmd_rx, in_tx, early, &cancel).await;
    }
    trace!(id = id.0, "connection task finished");
}

/// Removes a registered connection and closes it when dropped (see [`run`]).
struct Registered<'a> {
    svc: &'a Inner,
    id: ConnectionId,
    cancel: CancellationToken,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.svc.registry.remove(self.id);
        self.cancel.cancel();
    }
}

async fn writer(
    mut wr: WriteHalf<BoxStream>,
    mut rx: mpsc::Receiver<Vec<u8>>,
    shutdown: CancellationToken,
    write_timeout: Duration,
) {
    loop {
        let p = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = rx.recv() => p,
        };
        let Some(p) = p else { break };
        match tokio::time::timeout(write_timeout, wr.write_all(&p)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
    let _ = tokio::time::timeout(write_timeout, wr.shutdown()).await;
}

#[allow(clippy::too_many_arguments)]
async fn established(
    svc: &Inner,
    mut tc: tapir::Connection,
    stream: BoxStream,
    mut cmd_rx: mpsc::Receiver<Vec<u8>>,
    in_tx: mpsc::Sender<Vec<u8>>,
    mut pending_in: VecDeque<Vec<u8>>,
    cancel: &CancellationToken,
) {
    let (mut rd, wr): (ReadHalf<BoxStream>, WriteHalf<BoxStream>) = tokio::io::split(stream);
    let (wtx, wrx) = mpsc::channel::<Vec<u8>>(svc.config.queue_len);
    let writer_task = tokio::spawn(writer(
        wr,
        wrx,
        svc.shutdown.clone(),
        svc.config.write_timeout,
    ));
    let mut pending_out: VecDeque<Vec<u8>> = VecDeque::new();
    let mut buf = vec![0u8; READ_BUF];
    let idle = svc.config.idle_timeout;
    let mut last_rx = Instant::now();

    'main: loop {
        // Hand queued packets to the writer as far as it has room.
        while let Some(p) = pending_out.pop_front() {
            match wtx.try_send(p) {
                Ok(()) => {}
                Err(TrySendError::Full(p)) => {
                    pending_out.push_front(p);
                    break;
                }
                Err(TrySendError::Closed(_)) => break 'main,
            }
        }
        let idle_deadline = async {
            match idle {
                Some(d) => tokio::time::sleep_until(last_rx + d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            permit = in_tx.reserve(), if !pending_in.is_empty() => {
                match (permit, pending_in.pop_front()) {
                    (Ok(permit), Some(p)) => permit.send(p),
                    _ => break, // the owner dropped its receiver
                }
            }
            n = rd.read(&mut buf), if pending_in.is_empty() => {
                let n = match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                // Idle means no whole packet: a byte at a time does not keep it open.
                let packets = tc.packets_received();
                if let Err(e) = tc.receive(&buf[..n]) {
                    debug!(error = %e, "closing connection");
                    break;
                }
                if tc.packets_received() != packets {
                    last_rx = Instant::now();
                }
                while let Some(e) = tc.poll_event() {
                    if let Event::Payload(p) = e {
                        pending_in.push_back(p);
                    }
                }
                pending_out.extend(std::iter::from_fn(|| tc.poll_transmit()));
            }
            cmd = cmd_rx.recv(), if pending_out.is_empty() && wtx.capacity() > 0 => {
                let Some(p) = cmd else { break };
                if tc.send(&p).is_err() {
                    break;
                }
                pending_out.extend(std::iter::from_fn(|| tc.poll_transmit()));
            }
            // Wake when the writer frees space: to flush `pending_out`, or to take commands
            // again (their branch is disabled while the writer is full).
            _ = wtx.reserve(), if !pending_out.is_empty() || wtx.capacity() == 0 => {}
            _ = idle_deadline => {
                debug!("closing idle connection");
                break;
            }
        }
    }
    // A close by the owner (not a service shutdown) still delivers what was queued.
    if !svc.shutdown.is_cancelled() {
        while let Ok(p) = cmd_rx.try_recv() {
            if tc.send(&p).is_ok() {
                pending_out.extend(std::iter::from_fn(|| tc.poll_transmit()));
            }
        }
        for p in pending_out {
            if wtx.send(p).await.is_err() {
                break;
            }
        }
    }
    drop(wtx);
    let _ = writer_task.await;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A handle not attached to any task, for registry tests.
    pub(crate) fn handle(id: u64, remote: &Onion, outbound: bool) -> ConnectionHandle {
        let (tx, _rx) = mpsc::channel(1);
        ConnectionHandle {
            id: ConnectionId(id),
            remote: Some(remote.clone()),
            outbound,
            encrypted: true,
            tx,
            caps: Arc::default(),
            cancel: CancellationToken::new(),
        }
    }

    impl ConnectionHandle {
        pub(crate) fn clear_remote(&mut self) {
            self.remote = None;
        }
    }
}
