//! Which connections a loaded profile's engine makes on its own, and connecting or
//! disconnecting one contact or one server on request (libCwtch's `ConfigureConnections`,
//! `ActivatePeerEngine` / `DeactivatePeerEngine`, `PeerWithOnion`, `DisconnectFromPeer`,
//! `QueueJoinServer`, `DisconnectFromServer`; `docs/specs/libcwtch.md`).
//!
//! One owner: the [`Policy`] in the profile's state says what the engine may do on its own.
//! Every automatic start (the listener, a contact's dialler, a server's task) asks it first,
//! and every change of it is applied here ([`Runtime::apply_policy`]). Only whether the
//! engine starts at all is stored ([`AUTOSTART_ATTRIBUTE`]): a profile loads active (unless
//! that says no) with everything allowed, and what a client changes lasts until the profile
//! is shut down.

use std::collections::HashSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tapir_service::ConnectionHandle;
use tokio_util::sync::CancellationToken;
use torv3::Onion;
use tracing::debug;

use crate::engine;
use crate::error::{Error, Result};
use crate::event::ConnectionState;
use crate::profile::ProfileHandle;
use crate::runtime::Runtime;
use crate::types::ContactId;

/// The profile attribute saying whether the profile's engine starts when it loads: `false`
/// keeps it deactivated (nothing goes online) until
/// [`ProfileHandle::set_engine_active`]; absent or anything else: it starts. Set by
/// [`Cwtch::create_profile_with_autostart`](crate::Cwtch::create_profile_with_autostart) and
/// [`ProfileHandle::set_autostart`]. Go's `c_CreateProfile` takes the same choice; where Go
/// keeps it is UNCONFIRMED. Local scope: never disclosed.
pub const AUTOSTART_ATTRIBUTE: &str = "local.profile.autostart";

/// What a profile's engine does on its own (Go's `ConfigureConnections(onion, listen, peers,
/// servers)`). Everything is on when a profile loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Connections {
    /// Host the profile's onion service: contacts (and strangers' contact requests) can reach
    /// us. Off: the onion service is taken down and the connections contacts made to us are
    /// closed.
    pub listen: bool,
    /// Dial accepted contacts, and keep dialling them while they are unreachable. Off: the
    /// diallers stop and the connections we dialled are closed.
    pub peers: bool,
    /// Connect to the servers of accepted groups (to sync and post). Off: every server
    /// connection is closed; posts wait, stored, until a server is joined again.
    pub servers: bool,
}

impl Connections {
    /// Everything on (how a profile loads).
    pub const ALL: Connections = Connections {
        listen: true,
        peers: true,
        servers: true,
    };
    /// Nothing on.
    pub const NONE: Connections = Connections {
        listen: false,
        peers: false,
        servers: false,
    };
}

impl Default for Connections {
    fn default() -> Self {
        Connections::ALL
    }
}

/// What the engine may do: part of the profile's [`State`](crate::runtime::State).
pub(crate) struct Policy {
    /// False while the engine is deactivated: no listener, no connections at all.
    pub(crate) active: bool,
    /// What the engine does on its own while active.
    pub(crate) allowed: Connections,
    /// Contacts the user disconnected from: not dialled on our own until asked again.
    pub(crate) held_peers: HashSet<Onion>,
    /// Servers the user disconnected from: not joined on our own until asked again.
    pub(crate) held_servers: HashSet<Onion>,
    /// Servers whose whole history must be replayed when their task next starts (a group
    /// was joined while the server could not be connected to).
    pub(crate) replay_from_start: HashSet<Onion>,
    /// Stops the listener task running now, if any.
    pub(crate) listener: Option<CancellationToken>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            active: true,
            allowed: Connections::ALL,
            held_peers: HashSet::new(),
            held_servers: HashSet::new(),
            replay_from_start: HashSet::new(),
            listener: None,
        }
    }
}

impl Policy {
    /// Whether the onion service may be hosted (and contacts' connections accepted).
    pub(crate) fn may_listen(&self) -> bool {
        self.active && self.allowed.listen
    }

    /// Whether `contact` may be dialled on our own.
    pub(crate) fn may_dial(&self, contact: &Onion) -> bool {
        self.active && self.allowed.peers && !self.held_peers.contains(contact)
    }

    /// Whether `server` may be connected to on our own.
    pub(crate) fn may_join(&self, server: &Onion) -> bool {
        self.active && self.allowed.servers && !self.held_servers.contains(server)
    }
}

impl Runtime {
    /// Start the listener task if listening is allowed and none runs.
    pub(crate) fn start_listening(self: &Arc<Self>) {
        if self.cancel.is_cancelled() {
            return;
        }
        let token = {
            let mut st = self.state();
            if !st.policy.may_listen()
                || st
                    .policy
                    .listener
                    .as_ref()
                    .is_some_and(|t| !t.is_cancelled())
            {
                return;
            }
            let t = self.cancel.child_token();
            st.policy.listener = Some(t.clone());
            t
        };
        self.spawn(engine::listen_loop(self.clone(), token));
    }

    /// Stop hosting the onion service and close the connections contacts made to us.
    fn stop_listening(&self) {
        let listener = self.state().policy.listener.take();
        if let Some(t) = listener {
            debug!(profile = %self.onion.redacted(), "no longer listening");
            t.cancel();
        }
        self.online.send_replace(false);
        self.close_connections(|h| !h.is_outbound());
    }

    /// Close the contact connections `which` selects; a contact left with no connection is
    /// announced `Disconnected`.
    fn close_connections(&self, which: impl Fn(&ConnectionHandle) -> bool) {
        let mut closed = Vec::new();
        for h in self.service.connections() {
            if which(&h) {
                h.close();
                closed.extend(h.remote().cloned());
            }
        }
        for onion in closed {
            self.set_dial_state(&onion, ConnectionState::Disconnected);
        }
    }

    /// Stop the contact's dialler and close our connections to it: all of them, or only
    /// those we dialled. Announced `Disconnected` if none is left.
    fn stop_dialling(&self, onion: &Onion, outbound_only: bool) {
        let conns = {
            let mut st = self.state();
            let Some(e) = st.contacts.get_mut(onion) else {
                return;
            };
            if let Some(t) = e.dialer.take() {
                t.cancel();
            }
            e.conns.clone()
        };
        for c in conns {
            if !outbound_only || c.handle.is_outbound() {
                c.handle.close();
            }
        }
        if let Some(h) = self.service.connection_to(onion) {
            if !outbound_only || h.is_outbound() {
                h.close();
            }
        }
        self.set_dial_state(onion, ConnectionState::Disconnected);
    }

    /// Make the engine do what the policy says: start what it allows, stop what it does not.
    pub(crate) fn apply_policy(self: &Arc<Self>) {
        let active = self.state().policy.active;
        if self.state().policy.may_listen() {
            self.start_listening();
        } else {
            self.stop_listening();
        }
        let contacts: Vec<Onion> = self.state().contacts.keys().cloned().collect();
        for onion in contacts {
            let may = self.state().policy.may_dial(&onion);
            if may {
                self.ensure_dialer(&onion);
            } else {
                // Deactivated: nothing stays; otherwise connections contacts made to us stay
                // (they are the listener's to keep or close).
                self.stop_dialling(&onion, active);
            }
        }
        let servers: Vec<Onion> = self.state().groups.servers.keys().cloned().collect();
        for server in servers {
            let may = self.state().policy.may_join(&server);
            if may {
                self.start_server(&server);
            } else {
                self.stop_server(&server);
            }
        }
    }

    fn configure(self: &Arc<Self>, c: Connections) -> Result<()> {
        self.check_running()?;
        {
            let mut st = self.state();
            st.policy.allowed = c;
            st.policy.active = true;
        }
        debug!(profile = %self.onion.redacted(), ?c, "connections configured");
        self.apply_policy();
        Ok(())
    }

    fn set_active(self: &Arc<Self>, active: bool) -> Result<()> {
        self.check_running()?;
        self.state().policy.active = active;
        debug!(profile = %self.onion.redacted(), active, "engine");
        self.apply_policy();
        Ok(())
    }

    /// Dial a contact now. Accepted contacts that may be dialled get their dialler started
    /// afresh (no backoff left to wait); others get one attempt.
    fn peer_with(self: &Arc<Self>, c: &ContactId) -> Result<()> {
        self.check_running()?;
        let r = self.resolve(c)?;
        if r.blocked {
            return Err(Error::ContactBlocked);
        }
        let (token, persistent) = {
            let mut st = self.state();
            if !st.policy.active {
                return Err(Error::EngineDeactivated);
            }
            st.policy.held_peers.remove(&r.onion);
            let persistent = r.accepted && st.policy.may_dial(&r.onion);
            let Some(e) = st.contacts.get_mut(&r.onion) else {
                return Err(Error::ContactNotFound);
            };
            if e.ready_conn().is_some() {
                return Ok(()); // connected already
            }
            if let Some(t) = e.dialer.take() {
                t.cancel();
            }
            let t = self.cancel.child_token();
            e.dialer = Some(t.clone());
            (t, persistent)
        };
        debug!(contact = %r.onion.redacted(), persistent, "dialling on request");
        self.spawn(engine::dialer(self.clone(), r.onion, token, persistent));
        Ok(())
    }

    /// Close every connection to a contact and stop dialling it until asked again.
    fn disconnect_peer(&self, c: &ContactId) -> Result<()> {
        self.check_running()?;
        let r = self.resolve(c)?;
        self.state().policy.held_peers.insert(r.onion.clone());
        self.stop_dialling(&r.onion, false);
        Ok(())
    }

    fn known_server(&self, server: &str) -> Result<Onion> {
        let onion = Onion::parse(server.trim()).map_err(Error::InvalidAddress)?;
        if !self.state().groups.servers.contains_key(&onion) {
            return Err(Error::ServerNotFound);
        }
        Ok(onion)
    }

    /// Connect to a server now (and stay connected), whatever the policy says of servers.
    fn join_server(self: &Arc<Self>, server: &str) -> Result<()> {
        self.check_running()?;
        let onion = self.known_server(server)?;
        {
            let mut st = self.state();
            if !st.policy.active {
                return Err(Error::EngineDeactivated);
            }
            if st.groups.accepted_on(&onion).is_empty() {
                return Err(Error::Invalid {
                    what: "server to join (no accepted group uses it)",
                });
            }
            st.policy.held_servers.remove(&onion);
        }
        self.join_server_on_request(&onion);
        Ok(())
    }

    /// Close the connection to a server and stay away until asked again.
    fn disconnect_server(&self, server: &str) -> Result<()> {
        self.check_running()?;
        let onion = self.known_server(server)?;
        self.state().policy.held_servers.insert(onion.clone());
        self.stop_server(&onion);
        Ok(())
    }
}

/// Connections on demand (libCwtch's `ConfigureConnections`, `ActivatePeerEngine`,
/// `DeactivatePeerEngine`, `PeerWithOnion`, `DisconnectFromPeer`, `QueueJoinServer`,
/// `DisconnectFromServer`). What is set here is not stored: a profile loads active with
/// [`Connections::ALL`].
impl ProfileHandle {
    /// What the engine does on its own.
    pub fn connections(&self) -> Connections {
        self.rt.state().policy.allowed
    }

    /// Whether the engine is active (see [`ProfileHandle::set_engine_active`]).
    pub fn engine_active(&self) -> bool {
        self.rt.state().policy.active
    }

    /// Whether the engine starts when the profile loads ([`AUTOSTART_ATTRIBUTE`]).
    pub async fn autostart(&self) -> Result<bool> {
        let v = self
            .rt
            .store
            .call(|s| s.attribute(AUTOSTART_ATTRIBUTE))
            .await?;
        Ok(v.as_deref() != Some(cwtch_storage::keys::FALSE))
    }

    /// Set whether the engine starts when the profile next loads (the running engine is
    /// left as it is: see [`ProfileHandle::set_engine_active`]).
    pub async fn set_autostart(&self, on: bool) -> Result<()> {
        let v = if on {
            cwtch_storage::keys::TRUE
        } else {
            cwtch_storage::keys::FALSE
        };
        self.rt
            .store
            .call(move |s| s.set_attribute(AUTOSTART_ATTRIBUTE, v))
            .await
    }

    /// Set what the engine does on its own, and activate it (as Go's `ConfigureConnections`
    /// does). What is turned off stops now: see [`Connections`].
    pub async fn configure_connections(&self, connections: Connections) -> Result<()> {
        self.rt.configure(connections)
    }

    /// Deactivate the engine (no listener, every connection closed, nothing dialled or
    /// joined, also on request), or activate it again: it then does what
    /// [`ProfileHandle::connections`] says. The profile stays loaded: its messages, contacts
    /// and settings are usable; messages sent meanwhile wait, stored.
    pub async fn set_engine_active(&self, active: bool) -> Result<()> {
        self.rt.set_active(active)
    }

    /// Connect to a contact now, and undo [`ProfileHandle::disconnect_from_peer`]. An
    /// accepted contact the engine may dial ([`Connections::peers`]) is dialled at once and
    /// kept connected; any other unblocked contact (a pending request, or with dialling off)
    /// gets one attempt. Fails for blocked and unknown contacts, and while deactivated.
    pub async fn connect_to_peer(&self, contact: impl Into<ContactId>) -> Result<()> {
        self.rt.peer_with(&contact.into())
    }

    /// Close every connection to a contact (it is announced `Disconnected`) and stop
    /// dialling it until [`ProfileHandle::connect_to_peer`] (or the profile is loaded
    /// again). The contact may still connect to us.
    pub async fn disconnect_from_peer(&self, contact: impl Into<ContactId>) -> Result<()> {
        self.rt.disconnect_peer(&contact.into())
    }

    /// Connect to a server (its onion) now and stay connected, even with
    /// [`Connections::servers`] off; undoes [`ProfileHandle::disconnect_from_server`]. The
    /// server must be known and used by an accepted group.
    pub async fn join_server(&self, server: &str) -> Result<()> {
        self.rt.join_server(server)
    }

    /// Close the connection to a server (announced `Disconnected`) and stay away from it
    /// until [`ProfileHandle::join_server`] (or the profile is loaded again). Posts to its
    /// groups are stored and go out once it is joined again.
    pub async fn disconnect_from_server(&self, server: &str) -> Result<()> {
        self.rt.disconnect_server(server)
    }
}
