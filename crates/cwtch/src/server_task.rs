//! One task per server with accepted groups: the thin driver between a `cwtch_board`
//! connection and the profile (`docs/specs/groups.md`).
//!
//! It owns, for its server, the only retry loop and backoff, the token wallet (persisted before
//! a token is used), the replay cursor (persisted after the messages before it are stored) and
//! the posts in flight. What arrives flows one way: trial decryption against the profile's
//! groups on that server, then the store, then the event stream.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use cwtch_board::{BoardClient, Cursor, Event as BoardEvent, PostId, ServerClient};
use cwtch_model::group::{first_previous_message_sig, VerifiedGroupMessage};
use cwtch_model::{gojson, EncryptedGroupMessage};
use cwtch_storage::{content_hash, keys, Attributes, ConversationId, MessageId, NewMessage};
use privacypass::Token;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use torv3::Onion;
use tracing::{debug, info, warn};

use crate::engine::backoff_sleep;
use crate::event::{Event, ServerState};
use crate::groups::{member_blocked, MESSAGE_POST};
use crate::overlay::Content;
use crate::runtime::Runtime;
use crate::util::{rfc3339_secs, Backoff};

/// A post for the server: an own message already stored with its post.
#[derive(Debug, Clone)]
pub(crate) struct PostJob {
    pub(crate) conversation: ConversationId,
    pub(crate) message: MessageId,
    pub(crate) egm: EncryptedGroupMessage,
    /// How many times the server refused it (its token); at [`MAX_POST_REFUSALS`] it fails.
    pub(crate) refused: u32,
}

/// Refusals of one post after which it fails (the user may send it again): a server that
/// refuses every post otherwise costs a token, a write and a round trip per try, and a token
/// fetch (a proof of work) every batch, for as long as the post is pending.
const MAX_POST_REFUSALS: u32 = 5;

/// Tokens fetched per batch (the server caps a batch; Go's client asks for 10 at a time, ours
/// more, so that a burst of posts does not wait for a proof of work after every tenth).
const TOKEN_BATCH: usize = 50;

/// During a replay, messages are stored in batches of this many (one durable write each),
/// and the cursor after each batch; live messages are stored one by one as they come.
const REPLAY_BATCH: usize = 256;
/// Live messages none of which is ours after which the replay position is written anyway.
const UNSAVED_LIVE_FLUSHES: usize = 256;

/// How long a connection may stay silent before we check it is still there (the board client
/// reports a timeout, not a failure; an idle synced connection is normal).
const IDLE_WAIT: Duration = Duration::from_secs(30);

/// What a server task is started with.
pub(crate) struct Start {
    pub(crate) server: Onion,
    pub(crate) conv: ConversationId,
    pub(crate) client: ServerClient,
    /// Stops the task.
    pub(crate) cancel: CancellationToken,
    /// Posts handed over while the task runs.
    pub(crate) posts: mpsc::Receiver<PostJob>,
    /// The previous task of this server: wait until it has ended (it may still be storing
    /// tokens or the cursor), so that one task at a time owns them.
    pub(crate) after: Option<CancellationToken>,
    /// Fired when this task ends, however it ends.
    pub(crate) done: CancellationToken,
    /// Replay the server's whole history: clear the stored cursor first.
    pub(crate) from_start: bool,
}

/// Run a server's task until it is stopped or fails. However it ends (a panic included: a
/// bug must cost this server's connection, not leave its groups unsynced until a restart),
/// its stop switch is thrown, so that the task can be started again.
pub(crate) async fn run(rt: Arc<Runtime>, start: Start) {
    let _stopped = start.cancel.clone().drop_guard();
    // Unwind safety: what the task shares (the runtime's state and storage) is behind locks
    // and channels that a panic leaves consistent (a poisoned state lock is recovered).
    if let Err(panic) = crate::engine::catch_panic(run_task(rt, start)).await {
        tracing::error!(
            panic = %crate::Sensitive(crate::engine::panic_message(&*panic)),
            "a server's task panicked (a bug); it stopped and can be started again"
        );
    }
}

async fn run_task(rt: Arc<Runtime>, start: Start) {
    let Start {
        server,
        conv,
        mut client,
        cancel,
        mut posts,
        after,
        done,
        from_start,
    } = start;
    let _done = done.drop_guard();
    if let Some(previous) = after {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = previous.cancelled() => {}
        }
    }
    if from_start {
        let cleared = rt
            .store
            .call(move |s| s.set_conversation_attribute(conv, keys::SERVER_LAST_COMMIT, ""))
            .await;
        if let Err(e) = cleared {
            warn!(error = %e, "could not reset a server's replay cursor");
        }
    }
    client.timeout = rt
        .config
        .service
        .handshake_timeout
        .max(Duration::from_secs(30));
    let (cursor, tokens) = match load_server_state(&rt, conv).await {
        Some(x) => x,
        None => return,
    };
    // Replaying from the start even if the cursor could not be cleared.
    let cursor = if from_start { None } else { cursor };
    // The cursor as stored: only ever past messages that are stored too. Each connection
    // resumes from it, not from the machine's own cursor, which moves as soon as a message is
    // received, stored or not.
    let mut stored_cursor = cursor.clone();
    let mut machine = client.machine(cursor);
    let mut wallet: Vec<Token> = tokens;
    machine.add_tokens(wallet.iter().cloned());
    let mut pending: VecDeque<PostJob> = match rt.pending_posts(&server).await {
        Ok(p) => p.into(),
        Err(e) => {
            warn!(error = %e, "could not read pending group posts");
            VecDeque::new()
        }
    };
    let mut backoff = Backoff::new(rt.config.dial_backoff_initial, rt.config.dial_backoff_max);
    let mut fetch: Option<oneshot::Receiver<Result<Vec<Token>, cwtch_board::Error>>> = None;
    loop {
        if cancel.is_cancelled() {
            break;
        }
        rt.set_server_state(&server, ServerState::Connecting, wallet.len());
        if machine.cursor() != stored_cursor.as_ref() {
            // Messages were received but not stored (a storage error): start a fresh machine
            // from the stored position, so that their replay is not taken for repeats.
            machine = client.machine(stored_cursor.clone());
            machine.add_tokens(wallet.iter().cloned());
        }
        let conn = tokio::select! {
            _ = cancel.cancelled() => break,
            c = client.connect_with(machine) => c,
        };
        let mut bc = match conn {
            Ok(bc) => bc,
            Err((e, m)) => {
                machine = m;
                debug!(server = %server.redacted(), error = %e, "could not reach a server");
                rt.set_server_state(&server, ServerState::Failed, wallet.len());
                if backoff_sleep(&rt, &cancel, &mut backoff).await {
                    break;
                }
                continue;
            }
        };
        backoff.reset();
        let mut session = Session {
            rt: &rt,
            server: &server,
            conv,
            client: &client,
            wallet: &mut wallet,
            in_flight: HashMap::new(),
            batch: Vec::new(),
            live: false,
            pending_cursor: None,
            stored_cursor: &mut stored_cursor,
            unsaved: None,
            unsaved_flushes: 0,
        };
        let outcome = session
            .drive(&mut bc, &cancel, &mut posts, &mut pending, &mut fetch)
            .await;
        // What the machine received but the session did not handle before the connection
        // ended (messages, post results) is handled now, not dropped.
        machine = bc.into_machine();
        while let Some(ev) = machine.poll_event() {
            session.on_event(ev).await;
        }
        session.flush().await;
        session.save_cursor().await;
        let in_flight: Vec<PostJob> = session.in_flight.into_values().collect();
        // Posts whose result never came: posted again on the next connection (the server
        // de-duplicates by signature).
        for job in in_flight.into_iter().rev() {
            pending.push_front(job);
        }
        rt.set_server_state(&server, ServerState::Disconnected, wallet.len());
        if outcome == Outcome::Cancelled {
            break;
        }
        if backoff_sleep(&rt, &cancel, &mut backoff).await {
            break;
        }
    }
    rt.set_server_state(&server, ServerState::Disconnected, wallet.len());
}

async fn load_server_state(
    rt: &Runtime,
    conv: ConversationId,
) -> Option<(Option<Cursor>, Vec<Token>)> {
    let stored = rt.store.call(move |s| s.conversation(conv)).await;
    let c = match stored {
        Ok(Some(c)) => c,
        Ok(None) => return None,
        Err(e) => {
            warn!(error = %e, "could not read a server's state");
            return None;
        }
    };
    let cursor = c
        .attribute(keys::SERVER_LAST_COMMIT)
        .filter(|s| !s.is_empty())
        .and_then(|s| gojson::go_base64_decode(s.as_bytes(), "cursor").ok())
        .and_then(|b| Cursor::new(b).ok());
    let tokens = c
        .attribute(keys::SERVER_TOKENS)
        .map(|s| {
            s.split(',')
                .filter(|t| !t.is_empty())
                .filter_map(|t| gojson::go_base64_decode(t.as_bytes(), "token").ok())
                .filter_map(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
                .filter_map(|b| Token::from_bytes(&b).ok())
                .collect()
        })
        .unwrap_or_default();
    Some((cursor, tokens))
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Cancelled,
    Lost,
}

struct Session<'a> {
    rt: &'a Arc<Runtime>,
    server: &'a Onion,
    conv: ConversationId,
    client: &'a ServerClient,
    wallet: &'a mut Vec<Token>,
    in_flight: HashMap<PostId, PostJob>,
    /// Received messages not yet stored (a replay's batch).
    batch: Vec<EncryptedGroupMessage>,
    /// The last message received was live (not replayed).
    live: bool,
    pending_cursor: Option<Cursor>,
    stored_cursor: &'a mut Option<Cursor>,
    /// The position past messages none of which was ours (other groups' on this server, or
    /// junk), not yet written: see [`Session::flush`].
    unsaved: Option<String>,
    /// How many such flushes since the position was last written.
    unsaved_flushes: usize,
}

impl Session<'_> {
    async fn drive(
        &mut self,
        bc: &mut BoardClient,
        cancel: &CancellationToken,
        posts: &mut mpsc::Receiver<PostJob>,
        pending: &mut VecDeque<PostJob>,
        fetch: &mut Option<oneshot::Receiver<Result<Vec<Token>, cwtch_board::Error>>>,
    ) -> Outcome {
        if bc.request_replay().await.is_err() {
            return Outcome::Lost;
        }
        self.rt
            .set_server_state(self.server, ServerState::Syncing, self.wallet.len());
        debug!(
            server = %self.server.redacted(),
            pending = pending.len(),
            tokens = self.wallet.len(),
            "connected"
        );
        loop {
            // Post what waits, while tokens last.
            while !pending.is_empty() && !self.wallet.is_empty() {
                let Some(job) = pending.pop_front() else {
                    break;
                };
                match self.post(bc, job).await {
                    Ok(()) => {}
                    Err(job) => {
                        pending.push_front(job);
                        return Outcome::Lost;
                    }
                }
            }
            if (self.wallet.len() < TOKEN_BATCH / 2 || !pending.is_empty()) && fetch.is_none() {
                *fetch = Some(self.start_fetch(cancel));
            }
            tokio::select! {
                _ = cancel.cancelled() => {
                    self.flush().await;
                    return Outcome::Cancelled;
                }
                job = posts.recv() => match job {
                    Some(job) => pending.push_back(job),
                    None => return Outcome::Cancelled,
                },
                got = async { fetch.as_mut().expect("checked").await }, if fetch.is_some() => {
                    *fetch = None;
                    match got {
                        Ok(Ok(tokens)) => {
                            debug!(server = %self.server.redacted(), n = tokens.len(), "tokens fetched");
                            self.add_tokens(bc, tokens).await;
                        }
                        Ok(Err(e)) => {
                            debug!(server = %self.server.redacted(), error = %e, "token fetch failed");
                            // Try again after a pause rather than at once.
                            tokio::select! {
                                _ = cancel.cancelled() => return Outcome::Cancelled,
                                _ = tokio::time::sleep(self.rt.config.dial_backoff_initial) => {}
                            }
                        }
                        Err(_) => {}
                    }
                }
                ev = tokio::time::timeout(IDLE_WAIT, bc.next_event()) => match ev {
                    Err(_) | Ok(Err(cwtch_board::Error::Timeout(_))) => {}
                    Ok(Err(e)) => {
                        debug!(server = %self.server.redacted(), error = %e, "server connection ended");
                        self.flush().await;
                        return Outcome::Lost;
                    }
                    Ok(Ok(ev)) => {
                        if !self.on_event(ev).await {
                            self.flush().await;
                            return Outcome::Lost;
                        }
                    }
                }
            }
        }
    }

    /// Fetch a batch of tokens in the background (a proof of work and a round trip over the
    /// network), abandoned if the server's task stops first.
    fn start_fetch(
        &self,
        cancel: &CancellationToken,
    ) -> oneshot::Receiver<Result<Vec<Token>, cwtch_board::Error>> {
        let (tx, rx) = oneshot::channel();
        let client = self.client.clone();
        let cancel = cancel.clone();
        self.rt.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                r = client.fetch_tokens(TOKEN_BATCH) => {
                    let _ = tx.send(r);
                }
            }
        });
        rx
    }

    async fn add_tokens(&mut self, bc: &mut BoardClient, tokens: Vec<Token>) {
        let mut all = self.wallet.clone();
        all.extend(tokens.iter().cloned());
        // Persist before use: a crash after this point keeps them.
        if let Err(e) = self.rt.store_tokens(self.conv, &all).await {
            warn!(error = %e, "could not store tokens; not using them");
            return;
        }
        *self.wallet = all;
        bc.add_tokens(tokens);
        self.rt
            .set_server_state(self.server, self.state_of(bc), self.wallet.len());
    }

    fn state_of(&self, bc: &BoardClient) -> ServerState {
        match bc.machine().phase() {
            cwtch_board::Phase::Synced => ServerState::Synced,
            cwtch_board::Phase::Disconnected => ServerState::Disconnected,
            _ => ServerState::Syncing,
        }
    }

    /// Spend a token on a post: the token is removed from the stored wallet before the post
    /// is sent, so it is never offered twice, even across a crash.
    async fn post(&mut self, bc: &mut BoardClient, job: PostJob) -> Result<(), PostJob> {
        let prepared = match bc.prepare_post(job.egm.clone()) {
            Ok(p) => p,
            Err(cwtch_board::Error::NoTokens) => return Err(job),
            Err(e) => {
                warn!(error = %e, "a group post cannot be sent");
                self.rt
                    .fail_group_post(job.conversation, job.message, e.to_string())
                    .await;
                return Ok(());
            }
        };
        let spent = prepared.token();
        self.wallet.retain(|t| cwtch_board::TokenId::of(t) != spent);
        if let Err(e) = self.rt.store_tokens(self.conv, self.wallet).await {
            // Not persisted as spent: do not send (the token is gone from memory anyway).
            warn!(error = %e, "could not record a spent token; the post waits");
            return Err(job);
        }
        let id = prepared.id();
        self.in_flight.insert(id, job.clone());
        if bc.send_post(prepared).await.is_err() {
            return Err(job);
        }
        Ok(())
    }

    /// Handle one event; false when the connection is over.
    async fn on_event(&mut self, ev: BoardEvent) -> bool {
        match ev {
            BoardEvent::Connected => {}
            BoardEvent::Syncing { count } => {
                debug!(server = %self.server.redacted(), count, "replaying");
            }
            BoardEvent::CursorUnknown => {
                info!(server = %self.server.redacted(), "the server no longer has our position; replaying everything it holds");
            }
            BoardEvent::Synced => {
                self.flush().await;
                self.save_cursor().await;
                self.rt
                    .set_server_state(self.server, ServerState::Synced, self.wallet.len());
            }
            BoardEvent::Message(r) => {
                // Stored when its cursor event (which follows it) arrives, with that cursor.
                self.live = r.source == cwtch_board::Source::Live;
                self.batch.push(r.egm);
            }
            BoardEvent::Duplicate(_) | BoardEvent::Skipped(_) => {}
            BoardEvent::Cursor(c) => {
                // Stored with the messages before it (see `flush`): a live message at once, a
                // replay in batches.
                self.pending_cursor = Some(c);
                if self.live || self.batch.len() >= REPLAY_BATCH || self.state_is_synced() {
                    self.flush().await;
                }
            }
            BoardEvent::PostResult { id, accepted } => {
                if let Some(mut job) = self.in_flight.remove(&id) {
                    if accepted {
                        self.rt.group_post_sent(job.conversation, job.message).await;
                    } else {
                        job.refused += 1;
                        if job.refused >= MAX_POST_REFUSALS {
                            let reason =
                                format!("the server refused the post {} times", job.refused);
                            self.rt
                                .fail_group_post(job.conversation, job.message, reason)
                                .await;
                        } else {
                            // The token was refused (spent elsewhere, or the server lost
                            // its record): post again with another.
                            debug!("a post's token was refused; posting again");
                            self.rt.queue_post(self.server, job);
                        }
                    }
                }
            }
            BoardEvent::PostUnknown { .. } => {}
            BoardEvent::TokensLow { .. } => {}
            BoardEvent::Disconnected => return false,
            #[allow(unreachable_patterns)]
            _ => {}
        }
        true
    }

    fn state_is_synced(&self) -> bool {
        self.rt
            .state()
            .groups
            .servers
            .get(self.server)
            .map(|s| s.state)
            == Some(ServerState::Synced)
    }

    /// Store the received messages, then persist the cursor that follows them: a crash in
    /// between replays them again (and they are de-duplicated), never skips them.
    async fn flush(&mut self) {
        let cursor = self.pending_cursor.take();
        let value = cursor.as_ref().map(|c| gojson::base64_std(c.as_bytes()));
        if !self.batch.is_empty() {
            let batch = std::mem::take(&mut self.batch);
            let with = value.clone().map(|v| (self.conv, v));
            match self
                .rt
                .receive_group_messages(self.server, batch, with)
                .await
            {
                // Not stored: do not move the cursor past them (the next connection replays).
                None => return,
                // Stored, and the cursor with them (before anything was announced).
                Some(true) => {
                    *self.stored_cursor = cursor;
                    self.unsaved = None;
                    self.unsaved_flushes = 0;
                    return;
                }
                Some(false) => {}
            }
        }
        let (Some(c), Some(value)) = (cursor, value) else {
            return;
        };
        // Nothing of ours: skipping these messages again is harmless, so the position moves
        // on at once for this task, and is written once per replay batch, once per
        // UNSAVED_LIVE_FLUSHES live messages, at the end of a replay and of the connection.
        // (One durable write per live message cost a busy server's members, or a hostile
        // server's, a transaction for every other group's message.) A crash replays at most
        // those, and skips them again.
        *self.stored_cursor = Some(c);
        self.unsaved = Some(value);
        self.unsaved_flushes += 1;
        if !self.live || self.unsaved_flushes >= UNSAVED_LIVE_FLUSHES {
            self.save_cursor().await;
        }
    }

    /// Write the position not yet written, if any.
    async fn save_cursor(&mut self) {
        let Some(value) = self.unsaved.take() else {
            return;
        };
        self.unsaved_flushes = 0;
        let conv = self.conv;
        if let Err(e) = self
            .rt
            .store
            .call(move |s| s.set_conversation_attribute(conv, keys::SERVER_LAST_COMMIT, &value))
            .await
        {
            warn!(error = %e, "could not store a server's replay position");
        }
    }
}

enum Stored {
    New(MessageId, bool),
    /// One of our own posts came back (`true` the first time).
    Ours(MessageId, bool),
    Skipped,
}

/// A verified message on its way to the store.
#[derive(Clone)]
struct Incoming {
    conv: ConversationId,
    group_id: String,
    sender: Onion,
    signature: String,
    body: String,
    hash: String,
    when: String,
    /// `PreviousMessageSig` (std base64), unless it is the first-message marker.
    previous: Option<String>,
    latest: torv3::Signature,
}

impl Runtime {
    /// Messages from a server, in its order: each tried against every accepted group on it;
    /// stored once (one durable write for the whole batch) if it opens and its signature
    /// verifies; dropped otherwise. `cursor` (the server's conversation and the position after
    /// these messages) is stored right after them, before anything is announced, so that an
    /// announced message is never replayed as new after a crash.
    ///
    /// `None` if the store failed (nothing is announced); `Some(true)` if the cursor was
    /// stored with the messages; `Some(false)` if there was nothing to store (the caller
    /// stores the cursor).
    pub(crate) async fn receive_group_messages(
        self: &Arc<Self>,
        server: &Onion,
        egms: Vec<EncryptedGroupMessage>,
        cursor: Option<(ConversationId, String)>,
    ) -> Option<bool> {
        let with_cursor = cursor.is_some();
        let groups = self.state().groups.accepted_on(server);
        if groups.is_empty() {
            return Some(false);
        }
        let first_marker = first_previous_message_sig(server);
        let mut incoming = Vec::new();
        for egm in &egms {
            let m: VerifiedGroupMessage = match egm.open(groups.iter().map(|(_, g)| g)) {
                Ok(m) => m,
                Err(cwtch_model::Error::NotForAnyGroup) => continue,
                Err(e) => {
                    debug!(error = %e, "dropping a group message that does not verify");
                    continue;
                }
            };
            let Some(conv) = groups
                .iter()
                .find(|(_, g)| g.id() == m.group_id())
                .map(|(c, _)| *c)
            else {
                continue;
            };
            let sender = m.sender().as_str().to_owned();
            let body = m.text().to_owned();
            incoming.push(Incoming {
                conv,
                group_id: m.group_id().to_string(),
                sender: m.sender().clone(),
                signature: gojson::base64_std(m.signature().as_slice()),
                hash: content_hash(&sender, &body),
                body,
                // The sender's choice, any u64: clamped, never a panic.
                when: rfc3339_secs(m.timestamp()),
                previous: m
                    .previous_message_sig()
                    .filter(|p| *p != first_marker.as_slice())
                    .map(gojson::base64_std),
                latest: *m.signature(),
            });
        }
        if incoming.is_empty() {
            return Some(false);
        }
        let me = self.onion.as_str().to_owned();
        let records = incoming.clone();
        let stored = self
            .store
            .call(move |st| {
                let mut outcome: Vec<Option<Stored>> = Vec::with_capacity(records.len());
                let mut in_batch: std::collections::HashSet<(ConversationId, String)> =
                    std::collections::HashSet::new();
                let mut acls = HashMap::new();
                let mut to_insert = Vec::new();
                let mut attrs_store = Vec::new();
                // A message named by another in the same batch arrives in the same write: it
                // is not missing, whatever the order.
                let arriving: std::collections::HashSet<(ConversationId, &str)> = records
                    .iter()
                    .map(|r| (r.conv, r.signature.as_str()))
                    .collect();
                for r in &records {
                    let (conv, sig, prev, sender) = (&r.conv, &r.signature, &r.previous, &r.sender);
                    let missing = match prev {
                        Some(p) => {
                            !arriving.contains(&(*conv, p.as_str()))
                                && st.message_by_signature(*conv, p)?.is_none()
                        }
                        None => false,
                    };
                    if in_batch.contains(&(*conv, sig.clone())) {
                        outcome.push(Some(Stored::Skipped));
                        continue;
                    }
                    if let Some(existing) = st.message_by_signature(*conv, sig)? {
                        if existing.attributes.get(keys::MESSAGE_AUTHOR) == Some(&me) {
                            let first = existing
                                .attributes
                                .get(keys::MESSAGE_ACK)
                                .map(String::as_str)
                                != Some(keys::TRUE);
                            if first {
                                let mut attrs = existing.attributes.clone();
                                attrs.insert(keys::MESSAGE_ACK.into(), keys::TRUE.into());
                                attrs.remove(MESSAGE_POST);
                                st.set_message_attributes(*conv, existing.id, &attrs)?;
                            }
                            outcome.push(Some(Stored::Ours(existing.id, first)));
                        } else {
                            outcome.push(Some(Stored::Skipped));
                        }
                        continue;
                    }
                    if !acls.contains_key(conv) {
                        let acl = st.conversation(*conv)?;
                        acls.insert(*conv, acl);
                    }
                    let blocked = acls
                        .get(conv)
                        .and_then(|c| c.as_ref())
                        .is_some_and(|c| member_blocked(c, sender));
                    if blocked {
                        outcome.push(Some(Stored::Skipped));
                        continue;
                    }
                    in_batch.insert((*conv, sig.clone()));
                    let mut attrs = Attributes::new();
                    attrs.insert(keys::MESSAGE_AUTHOR.into(), sender.as_str().to_owned());
                    attrs.insert(keys::MESSAGE_SENT.into(), r.when.clone());
                    attrs_store.push(attrs);
                    to_insert.push((outcome.len(), missing));
                    outcome.push(None);
                }
                let batch: Vec<(ConversationId, NewMessage<'_>)> = to_insert
                    .iter()
                    .zip(&attrs_store)
                    .map(|((i, _), attrs)| {
                        let r = &records[*i];
                        (
                            r.conv,
                            NewMessage {
                                body: &r.body,
                                attributes: attrs,
                                signature: &r.signature,
                                content_hash: &r.hash,
                            },
                        )
                    })
                    .collect();
                let ids = st.insert_messages(&batch)?;
                for ((i, missing), id) in to_insert.iter().zip(ids) {
                    outcome[*i] = Some(match id {
                        Some(id) => Stored::New(id, *missing),
                        None => Stored::Skipped,
                    });
                }
                if let Some((server_conv, value)) = &cursor {
                    st.set_conversation_attribute(*server_conv, keys::SERVER_LAST_COMMIT, value)?;
                }
                Ok(outcome)
            })
            .await;
        let outcome = match stored {
            Ok(o) => o,
            Err(e) => {
                warn!(error = %e, "could not store group messages");
                return None;
            }
        };
        debug!(
            received = egms.len(),
            opened = outcome.len(),
            new = outcome
                .iter()
                .filter(|o| matches!(o, Some(Stored::New(..))))
                .count(),
            ours = outcome
                .iter()
                .filter(|o| matches!(o, Some(Stored::Ours(..))))
                .count(),
            "group messages handled"
        );
        for (i, o) in incoming.into_iter().zip(outcome) {
            match o {
                None | Some(Stored::Skipped) => {}
                Some(Stored::Ours(id, first)) => {
                    if first {
                        self.emit(Event::GroupMessageSeen {
                            profile: self.profile(),
                            conversation_id: i.conv.0,
                            group_id: i.group_id,
                            message_id: id.0,
                            signature: i.signature,
                        });
                    }
                }
                Some(Stored::New(id, missing)) => {
                    let mut report = false;
                    if let Some(e) = self.state().groups.groups.get_mut(&i.conv) {
                        e.latest = Some(i.latest);
                        // It arrived after all (reordered): no longer missing.
                        e.missing.arrived(&i.signature);
                        if missing {
                            if let Some(p) = &i.previous {
                                report = e.missing.note(p);
                            }
                        }
                    }
                    if report {
                        self.emit(Event::MissingMessages {
                            profile: self.profile(),
                            conversation_id: i.conv.0,
                            group_id: i.group_id.clone(),
                            member: i.sender.as_str().to_owned(),
                            message_id: id.0,
                            previous_signature: i.previous.clone().unwrap_or_default(),
                        });
                    }
                    let content = Content::parse(&i.body);
                    // An image offered by a member who is an accepted contact is previewed
                    // (if previews are on), downloaded from them; not on this task.
                    if let Content::FileShare {
                        name,
                        file_key,
                        size,
                    } = &content
                    {
                        let (rt, sender, conv) = (self.clone(), i.sender.clone(), i.conv);
                        let (name, file_key, size) = (name.clone(), file_key.clone(), *size);
                        self.spawn(async move {
                            rt.on_file_offered(&sender, conv, &name, &file_key, size)
                                .await;
                        });
                    }
                    self.emit(Event::GroupMessage {
                        profile: self.profile(),
                        conversation_id: i.conv.0,
                        group_id: i.group_id,
                        author: i.sender.as_str().to_owned(),
                        message_id: id.0,
                        signature: i.signature,
                        overlay: content.overlay(),
                        text: content.display_text().map(str::to_owned),
                        quoted_hash: content.quoted_hash().map(str::to_owned),
                        malformed: content.is_malformed(),
                        body: i.body,
                        content_hash: i.hash,
                        timestamp: i.when,
                    });
                }
            }
        }
        Some(with_cursor)
    }

    /// The server accepted one of our posts.
    pub(crate) async fn group_post_sent(&self, conv: ConversationId, id: MessageId) {
        let signature = self
            .store
            .call(move |s| Ok(s.message(conv, id)?.map(|m| m.signature)))
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let group_id = self.group_id_of(conv);
        self.emit(Event::GroupMessageSent {
            profile: self.profile(),
            conversation_id: conv.0,
            group_id,
            message_id: id.0,
            signature,
        });
    }

    /// The group id (hex) of a group conversation; empty if it is gone.
    fn group_id_of(&self, conv: ConversationId) -> String {
        self.state()
            .groups
            .groups
            .get(&conv)
            .map(|g| g.group.id().to_string())
            .unwrap_or_default()
    }

    /// One of our posts cannot be sent, ever.
    pub(crate) async fn fail_group_post(
        &self,
        conv: ConversationId,
        id: MessageId,
        reason: String,
    ) {
        let r = reason.clone();
        let signature = self
            .store
            .call(move |s| {
                let Some(m) = s.message(conv, id)? else {
                    return Ok(String::new());
                };
                let mut attrs = m.attributes;
                attrs.insert(keys::MESSAGE_ERROR.into(), r);
                attrs.remove(MESSAGE_POST);
                s.set_message_attributes(conv, id, &attrs)?;
                Ok(m.signature)
            })
            .await
            .unwrap_or_default();
        let group_id = self.group_id_of(conv);
        // For a group, `contact` names the group (its id).
        self.emit(Event::MessageFailed {
            profile: self.profile(),
            conversation_id: conv.0,
            contact: group_id,
            message_id: id.0,
            signature,
            reason,
        });
    }
}
