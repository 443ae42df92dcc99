//! A loaded profile's shared state: contacts, connections, the outbox, and the operations on
//! them. The public face is [`ProfileHandle`](crate::ProfileHandle); the network side is in
//! `engine.rs`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use cwtch_storage::{
    content_hash, keys, Attributes, ConversationId, MessageId, NewConversation, NewMessage,
    ProfileId,
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tapir_service::Service;
use tokio::sync::{broadcast, watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use torv3::Onion;
use tracing::{debug, warn};
use zeroize::Zeroizing;

use crate::config::Config;
use crate::engine::{self, PeerConn};
use crate::error::{Error, Result};
use crate::event::{ConnectionState, Event, MessageState};
use crate::store::StoreHandle;
use crate::types::{ContactId, SentMessage};
use crate::util::{new_wire_id, now_rfc3339};
use crate::wire::{PeerMessage, CONTEXT_RAW, MAX_PEER_PAYLOAD};

/// The profile attribute holding the "block unknown contacts" setting, `true`/`false`.
/// Our own key (Go keeps `BlockUnknownConnections` in the app-wide `ui.globals`; whether v0.27
/// also stores a per-profile setting is UNCONFIRMED). Local scope: never disclosed.
pub const BLOCK_UNKNOWN_ATTRIBUTE: &str = "local.profile.block-unknown-contacts";

/// One of our messages not yet acknowledged.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) signature: String,
    pub(crate) body: String,
    /// Written to a connection at least once in this session.
    pub(crate) sent: bool,
}

/// What the engine knows about a contact.
pub(crate) struct ContactEntry {
    pub(crate) conversation: ConversationId,
    pub(crate) accepted: bool,
    pub(crate) blocked: bool,
    pub(crate) conn_state: ConnectionState,
    /// Connections that finished negotiation, oldest first.
    pub(crate) conns: Vec<Arc<PeerConn>>,
    pub(crate) dialer: Option<CancellationToken>,
    pub(crate) outbox: BTreeMap<MessageId, Outgoing>,
    /// A contact request's messages were left unacknowledged (it held as many as it may):
    /// on acceptance its connections are closed, so that its next one sends them again.
    pub(crate) held_back: bool,
}

impl ContactEntry {
    pub(crate) fn new(conversation: ConversationId, accepted: bool, blocked: bool) -> Self {
        ContactEntry {
            conversation,
            accepted,
            blocked,
            conn_state: ConnectionState::Disconnected,
            conns: Vec::new(),
            dialer: None,
            outbox: BTreeMap::new(),
            held_back: false,
        }
    }

    /// The connection to send on: the newest open one (the duplicate rule keeps the newest).
    pub(crate) fn ready_conn(&self) -> Option<Arc<PeerConn>> {
        self.conns
            .iter()
            .rev()
            .find(|c| !c.handle.is_closed())
            .cloned()
    }
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) contacts: HashMap<Onion, ContactEntry>,
    pub(crate) by_conversation: HashMap<ConversationId, Onion>,
    pub(crate) groups: crate::groups::Groups,
    pub(crate) files: crate::files::Files,
    /// What the engine may do on its own (`connections.rs`).
    pub(crate) policy: crate::connections::Policy,
}

/// Verifies a password without keeping it: SHA-256 of a random salt and the password.
pub(crate) struct PasswordCheck {
    salt: [u8; 16],
    hash: Zeroizing<[u8; 32]>,
}

impl PasswordCheck {
    pub(crate) fn new(password: &cwtch_storage::Password) -> Self {
        let mut salt = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut salt);
        let hash = Self::digest(&salt, password);
        PasswordCheck { salt, hash }
    }

    fn digest(salt: &[u8], password: &cwtch_storage::Password) -> Zeroizing<[u8; 32]> {
        let mut h = Sha256::new();
        h.update(salt);
        h.update(password.as_bytes());
        Zeroizing::new(h.finalize().into())
    }

    pub(crate) fn matches(&self, password: &cwtch_storage::Password) -> bool {
        let h = Self::digest(&self.salt, password);
        h.as_slice().ct_eq(self.hash.as_slice()).into()
    }
}

/// A loaded profile.
pub(crate) struct Runtime {
    pub(crate) profile_id: ProfileId,
    pub(crate) onion: Onion,
    /// The profile's identity (group posts are signed with it).
    pub(crate) identity: Arc<torv3::Identity>,
    /// The network (servers are reached over it with ephemeral identities).
    pub(crate) acn_handle: Arc<dyn connectivity::Acn>,
    pub(crate) store: StoreHandle,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) config: Arc<Config>,
    pub(crate) service: Service,
    pub(crate) dial_limit: Arc<Semaphore>,
    pub(crate) cancel: CancellationToken,
    pub(crate) tasks: TaskTracker,
    /// The runtime that loaded the profile: every engine task runs there, whoever calls.
    pub(crate) spawner: tokio::runtime::Handle,
    /// The network's bootstrap status (dialling waits less once it is ready).
    pub(crate) acn_status: watch::Receiver<connectivity::AcnStatus>,
    pub(crate) state: Mutex<State>,
    /// Serialises contact creation, acceptance, blocking and deletion.
    pub(crate) contact_ops: tokio::sync::Mutex<()>,
    /// One permit per open inbound connection from a peer we have not accepted
    /// ([`Config::max_stranger_connections`](crate::Config)).
    pub(crate) stranger_slots: Arc<Semaphore>,
    /// Set once the user has been told that contact requests are full (until they are not).
    pub(crate) requests_full_warned: AtomicBool,
    pub(crate) block_unknown: AtomicBool,
    /// Image previews and profile pictures: off unless the user turns them on
    /// ([`crate::images::IMAGE_PREVIEWS_ATTRIBUTE`]).
    pub(crate) image_previews: AtomicBool,
    /// Where automatically downloaded images go: `<profile folder>/images` (`None` for an
    /// in-memory profile: no automatic downloads).
    pub(crate) images_dir: Option<std::path::PathBuf>,
    pub(crate) online: watch::Sender<bool>,
    pub(crate) password: Mutex<PasswordCheck>,
    /// Held by the one caller performing shutdown; `true` once done.
    pub(crate) shutdown_done: tokio::sync::Mutex<bool>,
}

/// Where to find a contact.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) onion: Onion,
    pub(crate) conversation: ConversationId,
    pub(crate) accepted: bool,
    pub(crate) blocked: bool,
}

impl Runtime {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // Every update is a complete assignment under the lock; a panic elsewhere cannot
        // leave the state half-written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn acn(&self) -> Arc<dyn connectivity::Acn> {
        self.acn_handle.clone()
    }

    pub(crate) fn profile(&self) -> String {
        self.onion.as_str().to_owned()
    }

    pub(crate) fn emit(&self, e: Event) {
        // No receiver is not an error.
        let _ = self.events.send(e);
    }

    /// Spawn an engine task on the profile's runtime, tracked for shutdown.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn_on(task, &self.spawner);
    }

    pub(crate) fn check_running(&self) -> Result<()> {
        if self.cancel.is_cancelled() {
            Err(Error::ShutDown)
        } else {
            Ok(())
        }
    }

    pub(crate) fn lookup(&self, onion: &Onion) -> Option<Resolved> {
        let st = self.state();
        st.contacts.get(onion).map(|e| Resolved {
            onion: onion.clone(),
            conversation: e.conversation,
            accepted: e.accepted,
            blocked: e.blocked,
        })
    }

    pub(crate) fn resolve(&self, c: &ContactId) -> Result<Resolved> {
        let onion = match c {
            ContactId::Onion(o) => o.clone(),
            ContactId::Conversation(id) => self
                .state()
                .by_conversation
                .get(id)
                .cloned()
                .ok_or(Error::ContactNotFound)?,
        };
        self.lookup(&onion).ok_or(Error::ContactNotFound)
    }

    // ---- connection state ----

    /// A connection finished negotiation. Returns false if the contact is gone or blocked
    /// (the caller closes it).
    pub(crate) fn register_conn(&self, onion: &Onion, conn: Arc<PeerConn>) -> bool {
        let event = {
            let mut st = self.state();
            let Some(e) = st.contacts.get_mut(onion) else {
                return false;
            };
            if e.blocked {
                return false;
            }
            e.conns.push(conn);
            self.transition(onion, e, ConnectionState::Authenticated)
        };
        if let Some(ev) = event {
            self.emit(ev);
        }
        self.downloads_connected(onion);
        true
    }

    /// A connection ended. Returns another open connection to the contact, if any, on which
    /// the unacknowledged messages should be sent again.
    pub(crate) fn unregister_conn(&self, onion: &Onion, conn: &PeerConn) -> Option<Arc<PeerConn>> {
        let (event, other) = {
            let mut st = self.state();
            let e = st.contacts.get_mut(onion)?;
            e.conns
                .retain(|c| !std::ptr::eq(c.as_ref(), conn) && !c.handle.is_closed());
            match e.ready_conn() {
                Some(c) => (None, Some(c)),
                None => (
                    self.transition(onion, e, ConnectionState::Disconnected),
                    None,
                ),
            }
        };
        if let Some(ev) = event {
            self.emit(ev);
        }
        other
    }

    /// A dialler's state (Connecting, Failed): reported only while no connection is ready.
    pub(crate) fn set_dial_state(&self, onion: &Onion, state: ConnectionState) {
        let event = {
            let mut st = self.state();
            let Some(e) = st.contacts.get_mut(onion) else {
                return;
            };
            if e.ready_conn().is_some() {
                return;
            }
            self.transition(onion, e, state)
        };
        if let Some(ev) = event {
            self.emit(ev);
        }
    }

    fn transition(
        &self,
        onion: &Onion,
        e: &mut ContactEntry,
        state: ConnectionState,
    ) -> Option<Event> {
        if e.conn_state == state {
            return None;
        }
        debug!(contact = %onion.redacted(), ?state, "peer state");
        e.conn_state = state;
        Some(Event::PeerStateChanged {
            profile: self.profile(),
            conversation_id: e.conversation.0,
            contact: onion.as_str().to_owned(),
            state,
        })
    }

    // ---- dialling ----

    /// Start the contact's dialler if it is accepted, unblocked, has none running, and the
    /// engine may dial it on its own (`connections.rs`).
    pub(crate) fn ensure_dialer(self: &Arc<Self>, onion: &Onion) {
        if self.cancel.is_cancelled() {
            return;
        }
        let token = {
            let mut st = self.state();
            if !st.policy.may_dial(onion) {
                return;
            }
            let Some(e) = st.contacts.get_mut(onion) else {
                return;
            };
            // A dialler's token is cancelled when it is stopped or, dialling once, done.
            let running = e.dialer.as_ref().is_some_and(|t| !t.is_cancelled());
            if !e.accepted || e.blocked || running {
                return;
            }
            let t = self.cancel.child_token();
            e.dialer = Some(t.clone());
            t
        };
        self.spawn(engine::dialer(self.clone(), onion.clone(), token, true));
    }

    /// Stop the dialler and close every connection to the contact.
    pub(crate) fn disconnect(&self, onion: &Onion) {
        let mut st = self.state();
        if let Some(e) = st.contacts.get_mut(onion) {
            if let Some(t) = e.dialer.take() {
                t.cancel();
            }
            for c in &e.conns {
                c.handle.close();
            }
        }
        drop(st);
        if let Some(h) = self.service.connection_to(onion) {
            h.close();
        }
    }

    // ---- contacts ----

    /// Admit an authenticated connection: the contact's conversation, or `None` to close it
    /// (blocked; unknown and we dialled it; unknown while blocking unknown contacts). An
    /// unknown peer that connected to us becomes a contact request.
    pub(crate) async fn admit(&self, remote: &Onion, outbound: bool) -> Option<ConversationId> {
        if *remote == self.onion {
            return None;
        }
        {
            // Deactivated, or no longer listening: nothing is admitted that we did not dial.
            let st = self.state();
            if !st.policy.active || (!outbound && !st.policy.may_listen()) {
                return None;
            }
        }
        if let Some(r) = self.lookup(remote) {
            return (!r.blocked).then_some(r.conversation);
        }
        if outbound || self.block_unknown.load(Ordering::Relaxed) {
            return None;
        }
        let _g = self.contact_ops.lock().await;
        if let Some(r) = self.lookup(remote) {
            return (!r.blocked).then_some(r.conversation);
        }
        if self.block_unknown.load(Ordering::Relaxed) || self.cancel.is_cancelled() {
            return None;
        }
        let waiting = self
            .state()
            .contacts
            .values()
            .filter(|e| !e.accepted && !e.blocked)
            .count();
        if waiting >= self.config.max_contact_requests {
            if !self.requests_full_warned.swap(true, Ordering::Relaxed) {
                warn!(
                    waiting,
                    "contact requests are full: new strangers are closed until some are accepted, blocked or deleted"
                );
            }
            debug!(contact = %remote.redacted(), "contact requests full; refusing a stranger");
            return None;
        }
        self.requests_full_warned.store(false, Ordering::Relaxed);
        let handle = remote.as_str().to_owned();
        let id = match self
            .store
            .call(move |s| s.create_conversation(&NewConversation::contact(handle, false)))
            .await
        {
            Ok(id) => id,
            Err(e) => {
                warn!(error = %e, "could not store a contact request");
                return None;
            }
        };
        {
            let mut st = self.state();
            st.contacts
                .insert(remote.clone(), ContactEntry::new(id, false, false));
            st.by_conversation.insert(id, remote.clone());
        }
        debug!(contact = %remote.redacted(), "contact request");
        self.emit(Event::ContactCreated {
            profile: self.profile(),
            conversation_id: id.0,
            contact: remote.as_str().to_owned(),
            accepted: false,
            blocked: false,
            request: true,
        });
        Some(id)
    }

    pub(crate) async fn add_contact(self: &Arc<Self>, address: &str) -> Result<Resolved> {
        self.check_running()?;
        let onion = Onion::parse(address.trim()).map_err(Error::InvalidAddress)?;
        if onion == self.onion {
            return Err(Error::SelfContact);
        }
        let _g = self.contact_ops.lock().await;
        if let Some(r) = self.lookup(&onion) {
            // Adding a pending request accepts it; anything else is returned as it is.
            if !r.accepted && !r.blocked {
                self.accept_locked(&r).await?;
                return self.lookup(&onion).ok_or(Error::ContactNotFound);
            }
            return Ok(r);
        }
        let handle = onion.as_str().to_owned();
        let id = self
            .store
            .call(move |s| s.create_conversation(&NewConversation::contact(handle, true)))
            .await?;
        {
            let mut st = self.state();
            st.contacts
                .insert(onion.clone(), ContactEntry::new(id, true, false));
            st.by_conversation.insert(id, onion.clone());
        }
        self.emit(Event::ContactCreated {
            profile: self.profile(),
            conversation_id: id.0,
            contact: onion.as_str().to_owned(),
            accepted: true,
            blocked: false,
            request: false,
        });
        self.ensure_dialer(&onion);
        self.lookup(&onion).ok_or(Error::ContactNotFound)
    }

    pub(crate) async fn accept(self: &Arc<Self>, c: &ContactId) -> Result<()> {
        self.check_running()?;
        let _g = self.contact_ops.lock().await;
        let r = self.resolve(c)?;
        self.accept_locked(&r).await
    }

    async fn accept_locked(self: &Arc<Self>, r: &Resolved) -> Result<()> {
        let conv = r.conversation;
        self.store
            .call(move |s| s.accept_conversation(conv))
            .await?;
        let (conns, held_back) = {
            let mut st = self.state();
            match st.contacts.get_mut(&r.onion) {
                Some(e) => {
                    e.accepted = true;
                    (e.conns.clone(), std::mem::take(&mut e.held_back))
                }
                None => (Vec::new(), false),
            }
        };
        self.emit(Event::ContactUpdated {
            profile: self.profile(),
            conversation_id: conv.0,
            contact: r.onion.as_str().to_owned(),
            accepted: true,
            blocked: r.blocked,
        });
        for c in &conns {
            c.release_stranger_slot();
        }
        if held_back {
            // Messages it sent were not acknowledged: a sender sends them again on a new
            // connection, which our dialler (or theirs) makes now.
            for c in &conns {
                c.handle.close();
            }
        }
        self.ensure_dialer(&r.onion);
        // Now that they may see our attributes, ask for theirs (in the background: a slow
        // connection must not hold up contact operations).
        for c in conns.into_iter().filter(|_| !held_back) {
            self.spawn(async move { engine::request_attributes(&c).await });
        }
        Ok(())
    }

    pub(crate) async fn set_blocked(self: &Arc<Self>, c: &ContactId, blocked: bool) -> Result<()> {
        self.check_running()?;
        let _g = self.contact_ops.lock().await;
        let r = self.resolve(c)?;
        let conv = r.conversation;
        self.store
            .call(move |s| s.set_blocked(conv, blocked))
            .await?;
        if let Some(e) = self.state().contacts.get_mut(&r.onion) {
            e.blocked = blocked;
        }
        let contact = r.onion.as_str().to_owned();
        if blocked {
            self.disconnect(&r.onion);
            self.emit(Event::ContactBlocked {
                profile: self.profile(),
                conversation_id: conv.0,
                contact,
            });
        } else {
            self.emit(Event::ContactUpdated {
                profile: self.profile(),
                conversation_id: conv.0,
                contact,
                accepted: r.accepted,
                blocked: false,
            });
            self.ensure_dialer(&r.onion);
        }
        Ok(())
    }

    pub(crate) async fn set_permissions(
        self: &Arc<Self>,
        c: &ContactId,
        p: crate::Permissions,
    ) -> Result<()> {
        self.check_running()?;
        let _g = self.contact_ops.lock().await;
        let conv = self.resolve(c)?.conversation;
        self.store
            .call(move |s| {
                let mut c = s
                    .conversation(conv)?
                    .ok_or(cwtch_storage::Error::ConversationNotFound(conv))?;
                let entry = c
                    .acl
                    .entry(c.handle.clone())
                    .or_insert(cwtch_storage::AccessControl::DEFAULT_P2P);
                entry.share_files = p.share_files;
                entry.render_images = p.render_images;
                s.set_conversation_acl(conv, &c.acl)
            })
            .await?;
        Ok(())
    }

    /// A contact's permissions, as stored.
    pub(crate) async fn permissions(&self, conv: ConversationId) -> Result<crate::Permissions> {
        let c = self.store.call(move |s| s.conversation(conv)).await?;
        Ok(crate::Permissions::from_access(
            c.as_ref().and_then(|c| c.own_access()),
        ))
    }

    pub(crate) async fn delete_contact(self: &Arc<Self>, c: &ContactId) -> Result<()> {
        self.check_running()?;
        let _g = self.contact_ops.lock().await;
        let r = self.resolve(c)?;
        self.disconnect(&r.onion);
        {
            let mut st = self.state();
            st.contacts.remove(&r.onion);
            st.by_conversation.remove(&r.conversation);
            st.policy.held_peers.remove(&r.onion);
        }
        let conv = r.conversation;
        self.store
            .call(move |s| s.delete_conversation(conv))
            .await?;
        self.emit(Event::ContactDeleted {
            profile: self.profile(),
            conversation_id: conv.0,
            contact: r.onion.as_str().to_owned(),
        });
        Ok(())
    }

    // ---- messages ----

    /// The attributes of a message of ours as it is stored, before it is sent: author, not
    /// acknowledged, the time.
    pub(crate) fn own_message_attributes(&self) -> Attributes {
        let mut attrs = Attributes::new();
        attrs.insert(keys::MESSAGE_AUTHOR.into(), self.profile());
        attrs.insert(keys::MESSAGE_ACK.into(), keys::FALSE.into());
        attrs.insert(keys::MESSAGE_SENT.into(), now_rfc3339());
        attrs
    }

    /// Store a message for `c`, then send it if a connection is ready (store before send).
    pub(crate) async fn send_body(
        self: &Arc<Self>,
        c: &ContactId,
        body: String,
    ) -> Result<SentMessage> {
        self.check_running()?;
        let r = self.resolve(c)?;
        if r.blocked {
            return Err(Error::ContactBlocked);
        }
        let me = self.onion.as_str().to_owned();
        let hash = content_hash(&me, &body);
        let mut attempt = 0;
        let (id, signature) = loop {
            let signature = new_wire_id();
            check_fits(&PeerMessage::new(
                signature.clone(),
                CONTEXT_RAW,
                body.clone().into_bytes(),
            ))?;
            let attrs = self.own_message_attributes();
            let (b, s, h, conv) = (
                body.clone(),
                signature.clone(),
                hash.clone(),
                r.conversation,
            );
            let res = self
                .store
                .call(move |st| {
                    st.insert_message(
                        conv,
                        &NewMessage {
                            body: &b,
                            attributes: &attrs,
                            signature: &s,
                            content_hash: &h,
                        },
                    )
                })
                .await;
            match res {
                Ok(id) => break (id, signature),
                // A random id already in the conversation (or planted by the peer): new id.
                Err(Error::Storage(cwtch_storage::Error::DuplicateSignature(_))) if attempt < 3 => {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        };
        let conn = {
            let mut st = self.state();
            match st.contacts.get_mut(&r.onion) {
                Some(e) => {
                    e.outbox.insert(
                        id,
                        Outgoing {
                            signature: signature.clone(),
                            body,
                            sent: false,
                        },
                    );
                    e.ready_conn()
                }
                None => None,
            }
        };
        let mut sent = false;
        if let Some(conn) = conn {
            self.send_outgoing(&r.onion, id, &conn).await;
            sent = self
                .state()
                .contacts
                .get(&r.onion)
                .and_then(|e| e.outbox.get(&id).map(|o| o.sent))
                .unwrap_or(true);
        }
        Ok(SentMessage {
            conversation_id: r.conversation,
            message_id: id,
            signature,
            content_hash: hash,
            state: if sent {
                MessageState::Sent
            } else {
                MessageState::Sending
            },
        })
    }

    /// Write one outbox message to `conn`. Returns false if the connection is unusable.
    pub(crate) async fn send_outgoing(
        &self,
        onion: &Onion,
        id: MessageId,
        conn: &PeerConn,
    ) -> bool {
        let Some((conv, out)) = ({
            let st = self.state();
            st.contacts
                .get(onion)
                .and_then(|e| e.outbox.get(&id).map(|o| (e.conversation, o.clone())))
        }) else {
            return true; // acknowledged (or deleted) meanwhile
        };
        let msg = PeerMessage::new(out.signature.clone(), CONTEXT_RAW, out.body.into_bytes());
        match conn.send(&msg).await {
            Ok(()) => {
                let first = {
                    let mut st = self.state();
                    match st
                        .contacts
                        .get_mut(onion)
                        .and_then(|e| e.outbox.get_mut(&id))
                    {
                        Some(o) if !o.sent => {
                            o.sent = true;
                            true
                        }
                        _ => false,
                    }
                };
                if first {
                    self.emit(Event::MessageSent {
                        profile: self.profile(),
                        conversation_id: conv.0,
                        contact: onion.as_str().to_owned(),
                        message_id: id.0,
                        signature: out.signature,
                    });
                }
                true
            }
            Err(Error::PayloadTooLarge { len, max }) => {
                // Fits V2 (checked when stored) but not this peer's V1 framing.
                let reason = format!(
                    "message encodes to {len} bytes in this contact's wire format (V1), more than a packet carries ({max})"
                );
                self.fail_message(onion, conv, id, out.signature, reason)
                    .await;
                true
            }
            Err(_) => false, // closed: sent again on the next connection
        }
    }

    /// Send every unacknowledged message to `conn`, oldest first.
    pub(crate) async fn flush_outbox(&self, onion: &Onion, conn: &PeerConn) {
        let ids: Vec<MessageId> = {
            let st = self.state();
            match st.contacts.get(onion) {
                Some(e) => e.outbox.keys().copied().collect(),
                None => return,
            }
        };
        for id in ids {
            if !self.send_outgoing(onion, id, conn).await {
                break;
            }
        }
    }

    async fn fail_message(
        &self,
        onion: &Onion,
        conv: ConversationId,
        id: MessageId,
        signature: String,
        reason: String,
    ) {
        let r = reason.clone();
        if let Err(e) = self
            .store
            .call(move |s| s.set_message_attribute(conv, id, keys::MESSAGE_ERROR, &r))
            .await
        {
            warn!(error = %e, "could not store a message failure");
        }
        let removed = self
            .state()
            .contacts
            .get_mut(onion)
            .and_then(|e| e.outbox.remove(&id))
            .is_some();
        if removed {
            self.emit(Event::MessageFailed {
                profile: self.profile(),
                conversation_id: conv.0,
                contact: onion.as_str().to_owned(),
                message_id: id.0,
                signature,
                reason,
            });
        }
    }

    /// An acknowledgement of our message `signature` arrived: store it, then forget it.
    pub(crate) async fn on_ack(&self, onion: &Onion, signature: &str) {
        let found = {
            let st = self.state();
            st.contacts.get(onion).and_then(|e| {
                e.outbox
                    .iter()
                    .find(|(_, o)| o.signature == signature)
                    .map(|(id, _)| (e.conversation, *id))
            })
        };
        let Some((conv, id)) = found else {
            return; // already acknowledged, or not ours
        };
        if let Err(e) = self
            .store
            .call(move |s| s.set_message_attribute(conv, id, keys::MESSAGE_ACK, keys::TRUE))
            .await
        {
            warn!(error = %e, "could not store an acknowledgement; the message will be sent again");
            return;
        }
        let removed = self
            .state()
            .contacts
            .get_mut(onion)
            .and_then(|e| e.outbox.remove(&id))
            .is_some();
        if removed {
            self.emit(Event::Acknowledged {
                profile: self.profile(),
                conversation_id: conv.0,
                contact: onion.as_str().to_owned(),
                message_id: id.0,
                signature: signature.to_owned(),
            });
        }
    }
}

/// Refuse a peer message that would not fit one packet in the more compact framing (V2).
/// The V1 size is checked when it is sent to a V1 peer.
pub(crate) fn check_fits(m: &PeerMessage) -> Result<()> {
    let len = m.id.len() + m.context.len() + m.data.len() + 2;
    if len > MAX_PEER_PAYLOAD {
        return Err(Error::PayloadTooLarge {
            len,
            max: MAX_PEER_PAYLOAD,
        });
    }
    Ok(())
}
