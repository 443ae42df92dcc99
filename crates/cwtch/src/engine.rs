//! The peer engine's tasks: the listener, one dialler per contact, one handler per
//! connection (protocol.md §7).

use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use cwtch_model::peer::{Output, PeerSession};
use cwtch_storage::{content_hash, keys, Attributes, ConversationId, NewMessage};
use tapir::ApplicationChain;
use tapir_service::{Connection, ConnectionHandle};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use torv3::safelog::Sensitive;
use torv3::Onion;
use tracing::{debug, error, info, warn};

use crate::error::{Error, Result};
use crate::event::{ConnectionState, Event};
use crate::overlay::Content;
use crate::runtime::Runtime;
use crate::util::{new_wire_id, now_rfc3339, Backoff};
use crate::wire::{PeerMessage, SCOPE_PUBLIC};

/// How long a send may wait for room in a connection's queue before the connection is
/// considered dead and closed.
const PEER_SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// One connection to a contact: the tapir connection's send side, and the peer protocol's
/// state machine ([`PeerSession`]), which frames everything sent on it.
pub(crate) struct PeerConn {
    pub(crate) handle: ConnectionHandle,
    /// Locked only to feed it or ask it for a payload, never across an await.
    session: Mutex<PeerSession>,
    /// A stranger's connection holds one of the few strangers' slots
    /// ([`Config::max_stranger_connections`](crate::Config)) until it ends, or until the user
    /// accepts the stranger ([`PeerConn::release_stranger_slot`]).
    stranger_slot: Mutex<Option<OwnedSemaphorePermit>>,
}

impl PeerConn {
    fn new(
        handle: ConnectionHandle,
        session: PeerSession,
        stranger_slot: Option<OwnedSemaphorePermit>,
    ) -> Self {
        PeerConn {
            handle,
            session: Mutex::new(session),
            stranger_slot: Mutex::new(stranger_slot),
        }
    }

    /// The peer was accepted: its connection no longer takes a stranger's slot.
    pub(crate) fn release_stranger_slot(&self) {
        let permit = self
            .stranger_slot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(permit);
    }

    fn session(&self) -> MutexGuard<'_, PeerSession> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Frame `m` for this peer and queue it. Too large is an error (never truncated).
    pub(crate) async fn send(&self, m: &PeerMessage) -> Result<()> {
        let payload = self
            .session()
            .encode(m)
            .map_err(|e| Error::PayloadTooLarge {
                len: e.len,
                max: e.max,
            })?;
        self.transmit(payload).await
    }

    /// Queue a framed payload (from the session).
    async fn transmit(&self, payload: Vec<u8>) -> Result<()> {
        match tokio::time::timeout(PEER_SEND_TIMEOUT, self.handle.send(payload)).await {
            Ok(r) => r.map_err(Error::from),
            Err(_) => {
                // The peer has not read for a long time: give up on this connection (the
                // outbox is sent again on the next one).
                debug!("send timed out; closing the connection");
                self.handle.close();
                Err(Error::Connection(tapir_service::Error::Closed))
            }
        }
    }

    /// Queue the session's payloads in order; stop at the first failure.
    async fn transmit_all(&self, payloads: Vec<Vec<u8>>) -> Result<()> {
        for p in payloads {
            self.transmit(p).await?;
        }
        Ok(())
    }
}

// ---- the listener ----

/// Host the profile's onion service (retrying with backoff until it works) and hand every
/// authenticated inbound connection to a handler, until `cancel` (a child of the profile's
/// token: listening turned off, or shutdown). Returning drops the listener, which takes the
/// onion service down.
pub(crate) async fn listen_loop(rt: Arc<Runtime>, cancel: CancellationToken) {
    let mut backoff = Backoff::new(rt.config.dial_backoff_initial, rt.config.dial_backoff_max);
    loop {
        let listening = tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            l = rt.service.listen(ApplicationChain::authenticated) => l,
        };
        let mut listener = match listening {
            Ok(l) => l,
            // Shutting down: the service refuses to host, which is not worth a warning.
            Err(_) if cancel.is_cancelled() || rt.service.is_shut_down() => return,
            Err(e) => {
                warn!(profile = %rt.onion.redacted(), error = %e, "could not host the onion service; retrying");
                rt.emit(Event::NetworkError {
                    profile: rt.profile(),
                    error: e.to_string(),
                });
                if backoff_sleep(&rt, &cancel, &mut backoff).await {
                    return;
                }
                continue;
            }
        };
        if cancel.is_cancelled() {
            return; // turned off while the service came up
        }
        info!(profile = %rt.onion.redacted(), "online");
        backoff.reset();
        rt.online.send_replace(true);
        rt.emit(Event::ProfileOnline {
            profile: rt.profile(),
        });
        loop {
            let conn = tokio::select! {
                _ = cancel.cancelled() => {
                    rt.online.send_replace(false);
                    return;
                }
                c = listener.accept() => c,
            };
            let Some(conn) = conn else {
                // The service shut down, or the network stopped hosting us: host again.
                rt.online.send_replace(false);
                if rt.service.is_shut_down() || cancel.is_cancelled() {
                    return;
                }
                warn!(profile = %rt.onion.redacted(), "the onion service stopped; hosting it again");
                rt.emit(Event::NetworkError {
                    profile: rt.profile(),
                    error: "the onion service stopped".into(),
                });
                if backoff_sleep(&rt, &cancel, &mut backoff).await {
                    return;
                }
                break;
            };
            let rt2 = rt.clone();
            rt.spawn(async move {
                run_connection(rt2, conn).await;
            });
        }
    }
}

// ---- the dialler ----

/// Keep a connection to an accepted, unblocked contact: dial with capped exponential
/// backoff with jitter, wait while a connection (ours or theirs) is open, and dial again
/// when it drops. Stops when `cancel` fires (blocked, deleted, disconnected, shut down).
///
/// Not `persistent` (a dial the user asked for, `connections.rs`): one attempt, whose
/// connection is served until it closes; then `cancel` is fired, which marks the dialler
/// done, and the contact's dialler is started if the engine may now dial it on its own.
pub(crate) async fn dialer(
    rt: Arc<Runtime>,
    onion: Onion,
    cancel: CancellationToken,
    persistent: bool,
) {
    dial(rt.clone(), onion.clone(), cancel.clone(), persistent).await;
    if !persistent {
        cancel.cancel();
        rt.ensure_dialer(&onion);
    }
}

/// [`dialer`]'s loop (one pass if not `persistent`).
async fn dial(rt: Arc<Runtime>, onion: Onion, cancel: CancellationToken, persistent: bool) {
    let mut backoff = Backoff::new(rt.config.dial_backoff_initial, rt.config.dial_backoff_max);
    loop {
        if cancel.is_cancelled() {
            return;
        }
        if let Some(h) = rt.service.connection_to(&onion) {
            if !persistent {
                return; // connected already
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = h.closed() => {}
            }
            if sleep_or_cancel(&cancel, backoff.short()).await {
                return;
            }
            continue;
        }
        let permit = tokio::select! {
            _ = cancel.cancelled() => return,
            p = rt.dial_limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        if rt.service.connection_to(&onion).is_some() {
            continue;
        }
        rt.set_dial_state(&onion, ConnectionState::Connecting);
        debug!(contact = %onion.redacted(), "dialling");
        let dialled = tokio::select! {
            _ = cancel.cancelled() => return,
            r = rt.service.connect(&onion, ApplicationChain::authenticated()) => r,
        };
        drop(permit);
        match dialled {
            Ok(conn) => {
                let served = run_connection(rt.clone(), conn).await;
                if !persistent {
                    if !served {
                        rt.set_dial_state(&onion, ConnectionState::Failed);
                    }
                    return;
                }
                if served {
                    backoff.reset();
                    if sleep_or_cancel(&cancel, backoff.short()).await {
                        return;
                    }
                } else {
                    rt.set_dial_state(&onion, ConnectionState::Failed);
                    if backoff_sleep(&rt, &cancel, &mut backoff).await {
                        return;
                    }
                }
            }
            Err(tapir_service::Error::AlreadyConnected(_) | tapir_service::Error::Duplicate) => {
                // Their connection won the duplicate rule; wait on it.
                if !persistent || sleep_or_cancel(&cancel, Duration::from_millis(50)).await {
                    return;
                }
            }
            Err(e) => {
                debug!(contact = %onion.redacted(), error = %e, "dial failed");
                rt.set_dial_state(&onion, ConnectionState::Failed);
                if !persistent || backoff_sleep(&rt, &cancel, &mut backoff).await {
                    return;
                }
            }
        }
    }
}

/// Sleep for the next backoff delay; true if cancelled first. If the network is not ready
/// now and becomes ready meanwhile (Tor finished bootstrapping), wake at once with the
/// backoff reset, rather than leave contacts waiting out a long delay.
pub(crate) async fn backoff_sleep(
    rt: &Runtime,
    cancel: &CancellationToken,
    backoff: &mut Backoff,
) -> bool {
    let mut status = rt.acn_status.clone();
    let was_ready = status.borrow_and_update().is_ready();
    let became_ready = async {
        if was_ready || status.wait_for(|s| s.is_ready()).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = cancel.cancelled() => true,
        _ = tokio::time::sleep(backoff.next_delay()) => false,
        _ = became_ready => {
            backoff.reset();
            false
        }
    }
}

/// Sleep; true if cancelled first.
async fn sleep_or_cancel(cancel: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

// ---- a connection ----

/// Run the peer protocol on an authenticated connection until it closes. Returns whether it
/// got as far as being ready (admitted and negotiated) and ended without a panic.
///
/// This is the panic boundary for a peer's input: everything a connection's payloads reach
/// (decoding, negotiation, [`dispatch`], storage calls, acknowledgements) runs inside it. A
/// panic there is a bug (no input may cause one), and it costs this connection only: the
/// connection is closed and unregistered as if the peer had gone, an error is logged
/// (redacted), and the profile's other connections, diallers, listener and event stream go
/// on. Without it, a panic on an accepted connection would leave the contact shown as
/// connected, and on a dialled one would end the contact's dialler for good (it runs the
/// connection inline).
pub(crate) async fn run_connection(rt: Arc<Runtime>, mut conn: Connection) -> bool {
    let Some(remote) = conn.remote().cloned() else {
        conn.close();
        return false;
    };
    let outbound = conn.handle().is_outbound();
    let mut registered = None;
    // Unwind safety: what a panic can leave half-done is this connection's own state (`conn`,
    // the `PeerConn` in `registered` with its pending getVals, the message being handled),
    // and all of it is discarded below with the connection. The profile's shared state
    // stays consistent: `Runtime::state` is only changed by complete assignments under its
    // lock (whose poisoning is ignored), storage runs on its own thread behind its own
    // boundary and answers a failed job with an error, events are a channel, and
    // `contact_ops` is an async mutex (released on unwind, never poisoned).
    let outcome = catch_panic(serve(&rt, &mut conn, &remote, &mut registered)).await;
    conn.close();
    if let Some(pc) = &registered {
        if let Some(other) = rt.unregister_conn(&remote, pc) {
            // Messages written to this connection may be lost with it.
            rt.flush_outbox(&remote, &other).await;
        }
    }
    match outcome {
        Ok(()) => registered.is_some(),
        Err(panic) => {
            error!(
                contact = %remote.redacted(),
                outbound,
                panic = %Sensitive(panic_message(&*panic)),
                "handling a connection panicked (a bug); closed that connection"
            );
            // Counted as a failure: a dialler backs off rather than redial at once.
            false
        }
    }
}

/// The peer protocol on one connection, inside [`run_connection`]'s panic boundary: the
/// driver of the connection's [`PeerSession`]. It feeds the session what arrives and acts on
/// what the session returns, in order. Sets `registered` once the connection is registered
/// with the profile.
async fn serve(
    rt: &Arc<Runtime>,
    conn: &mut Connection,
    remote: &Onion,
    registered: &mut Option<Arc<PeerConn>>,
) {
    let outbound = conn.handle().is_outbound();
    // Peers we have not accepted share a few inbound slots; the rest stay free for contacts.
    // Taken first: a stranger with no slot is not even made a contact request.
    let stranger_slot = if outbound || rt.lookup(remote).is_some_and(|r| r.accepted) {
        None
    } else {
        match rt.stranger_slots.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                debug!(contact = %remote.redacted(), "too many connections from strangers; refusing");
                return;
            }
        }
    };
    // Blocked peers, and strangers while blocking unknown contacts, are closed right after
    // authentication: nothing is read from them, nothing is stored.
    if rt.admit(remote, outbound).await.is_none() {
        debug!(contact = %remote.redacted(), outbound, "refusing connection");
        return;
    }
    let (session, first) = PeerSession::start(rt.config.legacy_v1_only);
    let pc = Arc::new(PeerConn::new(conn.handle().clone(), session, stranger_slot));
    let mut outputs = VecDeque::from(first);
    // Until the session is ready it waits for the peer's version message, at most this long.
    let negotiation_deadline = tokio::time::Instant::now() + rt.config.version_wait;
    // An accepted contact's public attributes are asked for again now and then.
    let every = rt.config.attribute_refresh;
    let mut refresh = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        while let Some(o) = outputs.pop_front() {
            if !act(rt, remote, &pc, registered, o).await {
                return;
            }
        }
        let ready = registered.is_some();
        let payload = tokio::select! {
            _ = rt.cancel.cancelled() => return,
            p = conn.recv() => p,
            _ = tokio::time::sleep_until(negotiation_deadline), if !ready => {
                debug!(contact = %remote.redacted(), "no version message: V1");
                outputs.extend(pc.session().negotiation_timed_out());
                continue;
            }
            _ = refresh.tick(), if ready => {
                if rt.lookup(remote).is_some_and(|r| r.accepted && !r.blocked) {
                    request_attributes(&pc).await;
                }
                continue;
            }
        };
        let Some(payload) = payload else {
            if !ready {
                debug!(contact = %remote.redacted(), "closed before negotiation");
            }
            return;
        };
        outputs.extend(pc.session().receive(&payload));
    }
}

/// Act on one of the session's outputs. False: end the connection.
async fn act(
    rt: &Arc<Runtime>,
    remote: &Onion,
    pc: &Arc<PeerConn>,
    registered: &mut Option<Arc<PeerConn>>,
    o: Output,
) -> bool {
    match o {
        Output::Transmit(p) => return pc.transmit(p).await.is_ok(),
        Output::Ready(version) => {
            if !rt.register_conn(remote, pc.clone()) {
                return false;
            }
            *registered = Some(pc.clone());
            debug!(contact = %remote.redacted(), ?version, "connection ready");
            if rt.lookup(remote).is_some_and(|r| r.accepted) {
                request_attributes(pc).await;
            }
            rt.flush_outbox(remote, pc).await;
            return true;
        }
        _ => {}
    }
    let Some(contact) = rt.lookup(remote) else {
        return true;
    };
    if contact.blocked {
        return true;
    }
    match o {
        Output::Chat(m) => {
            #[cfg(test)]
            crate::fault::on_dispatch(&m);
            // A contact request keeps at most so many messages.
            let limit = (!contact.accepted).then_some(rt.config.max_request_messages);
            on_chat(rt, remote, contact.conversation, limit, pc, m).await;
        }
        Output::Acknowledged(id) => rt.on_ack(remote, &id).await,
        Output::AttributeRequested { request_id, key } => {
            on_get_val(
                rt,
                contact.conversation,
                contact.accepted,
                pc,
                &request_id,
                key,
            )
            .await;
        }
        Output::AttributeReceived { path, value } => {
            on_ret_val(rt, remote, contact.conversation, path, value).await;
        }
        Output::File(m) => {
            rt.on_file_message(remote, contact.conversation, contact.accepted, pc, m)
                .await;
        }
        Output::Ignored(why) => debug!(?why, "ignoring a peer message"),
        Output::Transmit(_) | Output::Ready(_) => {}
        _ => debug!("ignoring an unknown output of the peer session"),
    }
    true
}

/// Await `fut`, turning a panic while it runs into `Err` with the panic's payload (as
/// [`std::panic::catch_unwind`] does for a closure). The future is dropped after a panic and
/// never polled again.
///
/// This asserts unwind safety for everything `fut` touches: the caller says why that holds.
pub(crate) fn catch_panic<F: Future>(fut: F) -> CatchPanic<F> {
    CatchPanic(Box::pin(fut))
}

pub(crate) struct CatchPanic<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchPanic<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// A panic's message, if it has one (it may quote what was being handled: log it only as
/// [`Sensitive`]).
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Ask the contact for its public profile attributes.
pub(crate) async fn request_attributes(pc: &PeerConn) {
    let asks = pc.session().request_attributes(new_wire_id);
    let _ = pc.transmit_all(asks).await;
}

/// A getVal: answer public attributes we have, only to accepted contacts; `Exists:false`
/// otherwise (the session decided which requests may be answered at all: `key`).
async fn on_get_val(
    rt: &Arc<Runtime>,
    conv: ConversationId,
    accepted: bool,
    pc: &Arc<PeerConn>,
    request_id: &str,
    key: Option<String>,
) {
    let mut value = None;
    // A file shared in a group is asked for by members who may not be our contacts: its
    // manifest size goes to whoever knows its key (as its chunks do).
    let key = match key {
        Some(k) if !accepted => {
            value = rt.group_share_attribute(&k);
            None
        }
        k => k,
    };
    if let (true, Some(key)) = (accepted, key) {
        // Conversation-scoped attributes (a shared file's manifest size) are the requester's
        // conversation's; the rest are the profile's.
        let read = rt
            .store
            .call(move |s| {
                if key.starts_with("conversation.") {
                    let theirs = s
                        .conversation(conv)?
                        .and_then(|c| c.attribute(&key).map(str::to_owned));
                    // A share with every contact (our profile picture) keeps its manifest
                    // in the profile's attributes.
                    match theirs {
                        None if key.starts_with("conversation.filesharing.") => s.attribute(&key),
                        v => Ok(v),
                    }
                } else {
                    s.attribute(&key)
                }
            })
            .await;
        match read {
            Ok(v) => value = v,
            Err(e) => warn!(error = %e, "could not read an attribute"),
        }
    }
    let answer = pc
        .session()
        .answer_attribute(request_id, value, accepted, new_wire_id);
    if let Err(e) = pc.transmit_all(answer).await {
        debug!(error = %e, "could not answer a getVal");
    }
}

/// The reply to one of our requests: store it as the conversation attribute
/// `public.<path>`.
async fn on_ret_val(
    rt: &Arc<Runtime>,
    onion: &Onion,
    conv: ConversationId,
    path: String,
    value: String,
) {
    let key = format!("{SCOPE_PUBLIC}.{path}");
    let (k, v) = (key.clone(), value.clone());
    let changed = rt
        .store
        .call(move |s| {
            let c = s
                .conversation(conv)?
                .ok_or(cwtch_storage::Error::ConversationNotFound(conv))?;
            if c.attribute(&k) == Some(v.as_str()) {
                return Ok(false);
            }
            s.set_conversation_attribute(conv, &k, &v)?;
            Ok(true)
        })
        .await;
    match changed {
        Ok(true) => rt.emit(Event::AttributeUpdated {
            profile: rt.profile(),
            conversation_id: conv.0,
            contact: onion.as_str().to_owned(),
            key: key.clone(),
            value: value.clone(),
        }),
        Ok(false) => {}
        Err(e) => {
            debug!(error = %e, "could not store a contact attribute");
            return;
        }
    }
    // Changed or not: a profile picture not fetched yet (previews turned on since, or the
    // last attempt failed) is fetched now.
    if key == crate::images::PROFILE_IMAGE_ATTRIBUTE {
        rt.on_profile_image_attribute(onion, &value).await;
    }
}

enum Stored {
    New(cwtch_storage::MessageId),
    Duplicate,
    /// The id is one of our own messages' (a collision, or a peer replaying our id).
    Collision,
    /// The conversation holds as many messages as it may (a contact request).
    Full,
}

/// A chat message: store it (de-duplicated by the sender's id), then acknowledge it. With a
/// `limit`, a conversation that holds that many messages already stores and acknowledges no
/// more (its sender sees them as not delivered).
async fn on_chat(
    rt: &Arc<Runtime>,
    onion: &Onion,
    conv: ConversationId,
    limit: Option<u64>,
    pc: &Arc<PeerConn>,
    m: PeerMessage,
) {
    let body = cwtch_model::gojson::go_lossy_utf8(&m.data);
    let content = Content::parse(&body);
    let author = onion.as_str().to_owned();
    let hash = content_hash(&author, &body);
    let timestamp = now_rfc3339();
    let me = rt.profile();
    let (sig, b, h, a, ts) = (
        m.id.clone(),
        body.clone(),
        hash.clone(),
        author.clone(),
        timestamp.clone(),
    );
    let stored = rt
        .store
        .call(move |s| {
            if let Some(existing) = s.message_by_signature(conv, &sig)? {
                let theirs = existing.attributes.get(keys::MESSAGE_AUTHOR) == Some(&a);
                return Ok(if theirs {
                    Stored::Duplicate
                } else {
                    Stored::Collision
                });
            }
            if let Some(limit) = limit {
                // Theirs (every author but us): what we wrote to the request does not count.
                let mine = me.as_str();
                let theirs = s.count_after(
                    conv,
                    keys::MESSAGE_AUTHOR,
                    mine,
                    cwtch_storage::MessageId(0),
                )?;
                if theirs >= limit {
                    return Ok(Stored::Full);
                }
            }
            let mut attrs = Attributes::new();
            attrs.insert(keys::MESSAGE_AUTHOR.into(), a);
            attrs.insert(keys::MESSAGE_SENT.into(), ts);
            match s.insert_message(
                conv,
                &NewMessage {
                    body: &b,
                    attributes: &attrs,
                    signature: &sig,
                    content_hash: &h,
                },
            ) {
                Ok(id) => Ok(Stored::New(id)),
                Err(cwtch_storage::Error::DuplicateSignature(_)) => Ok(Stored::Duplicate),
                Err(e) => Err(e),
            }
        })
        .await;
    let id = match stored {
        Ok(Stored::New(id)) => Some(id),
        Ok(Stored::Duplicate) => {
            debug!(contact = %onion.redacted(), "message already stored; acknowledging again");
            None
        }
        Ok(Stored::Full) => {
            if let Some(e) = rt.state().contacts.get_mut(onion) {
                e.held_back = true;
            }
            debug!(
                contact = %onion.redacted(),
                "a contact request holds as many messages as it may; not stored, not acknowledged"
            );
            return;
        }
        Ok(Stored::Collision) => {
            warn!(contact = %onion.redacted(), "a contact's message id collides with one of ours; dropped");
            return;
        }
        Err(e) => {
            // Not acknowledged: the sender will try again.
            warn!(error = %e, "could not store a message");
            return;
        }
    };
    // Stored (or already stored): now acknowledge.
    let ack = pc.session().acknowledge(&m.id);
    match ack {
        Ok(p) => {
            if let Err(e) = pc.transmit(p).await {
                debug!(error = %e, "could not acknowledge");
            }
        }
        Err(e) => debug!(error = %e, "could not acknowledge"),
    }
    if let (Some(_), Content::GroupInvite { invite }) = (id, &content) {
        // An invite from an accepted contact becomes a group to accept or decline; from
        // anyone else it stays a message only.
        let accepted = rt.lookup(onion).is_some_and(|r| r.accepted && !r.blocked);
        if accepted {
            let _ = rt.on_group_invite(onion, invite).await;
        }
    }
    let offered = match (&id, &content) {
        (
            Some(_),
            Content::FileShare {
                name,
                file_key,
                size,
            },
        ) => Some((name.clone(), file_key.clone(), *size)),
        _ => None,
    };
    if let Some(id) = id {
        rt.emit(Event::NewMessage {
            profile: rt.profile(),
            conversation_id: conv.0,
            contact: author,
            message_id: id.0,
            signature: m.id,
            overlay: content.overlay(),
            text: content.display_text().map(str::to_owned),
            quoted_hash: content.quoted_hash().map(str::to_owned),
            malformed: content.is_malformed(),
            body,
            content_hash: hash,
            timestamp,
        });
    }
    // An image offered by an accepted contact is previewed (if previews are on).
    if let Some((name, file_key, size)) = offered {
        rt.on_file_offered(onion, conv, &name, &file_key, size)
            .await;
    }
}
