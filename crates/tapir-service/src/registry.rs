//! Open connections, and the duplicate-connection rule (spec §2.6).
//!
//! Two peers can dial each other at the same moment and end up with two authenticated
//! connections. Go resolves it by having the side with the lexicographically smaller onion
//! close its outbound connection, i.e. keeping the connection *dialled by the larger onion*.
//! Both sides can compute that without talking, so they agree on which one survives. If
//! several connections were dialled by the same side (a peer reconnecting before we noticed
//! its old connection died), the newest wins.

use std::collections::HashMap;
use std::sync::Mutex;

use tapir::Onion;

use crate::conn::{ConnectionHandle, ConnectionId};

#[derive(Default)]
pub(crate) struct Registry {
    inner: Mutex<HashMap<ConnectionId, ConnectionHandle>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, ConnectionHandle>> {
        // A poisoned lock only means another task panicked mid-update of a plain map; the
        // map itself is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Register an established connection. Returns the connections the duplicate rule says
    /// must close (possibly including `new` itself).
    pub(crate) fn register(&self, me: &Onion, new: ConnectionHandle) -> Vec<ConnectionHandle> {
        let mut map = self.lock();
        let mut losers = Vec::new();
        if let Some(remote) = new.remote().cloned() {
            // Closed connections whose task has not yet removed them take no part.
            let mut same: Vec<ConnectionHandle> = map
                .values()
                .filter(|h| h.remote() == Some(&remote) && !h.is_closed())
                .cloned()
                .collect();
            if !same.is_empty() {
                same.push(new.clone());
                // Keep the connection dialled by the larger onion; among those, the newest.
                let larger_dials = |h: &ConnectionHandle| {
                    let dialled_by_me = h.is_outbound();
                    if *me > remote {
                        dialled_by_me
                    } else {
                        !dialled_by_me
                    }
                };
                let winner = same
                    .iter()
                    .max_by_key(|h| (larger_dials(h), h.id()))
                    .map(|h| h.id());
                for h in same {
                    if Some(h.id()) != winner {
                        map.remove(&h.id());
                        losers.push(h);
                    }
                }
            }
        }
        if !losers.iter().any(|h| h.id() == new.id()) {
            map.insert(new.id(), new);
        }
        losers
    }

    pub(crate) fn remove(&self, id: ConnectionId) {
        self.lock().remove(&id);
    }

    pub(crate) fn find(&self, onion: &Onion) -> Option<ConnectionHandle> {
        self.lock()
            .values()
            .find(|h| h.remote() == Some(onion) && !h.is_closed())
            .cloned()
    }

    /// Call `f` on every open connection, under the registry's lock (so `f` must not wait):
    /// no handle is cloned, which matters when a server broadcasts each post past thousands
    /// of connections.
    pub(crate) fn for_each_open(&self, mut f: impl FnMut(&ConnectionHandle)) {
        for h in self.lock().values().filter(|h| !h.is_closed()) {
            f(h);
        }
    }

    pub(crate) fn all(&self) -> Vec<ConnectionHandle> {
        self.lock()
            .values()
            .filter(|h| !h.is_closed())
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::tests::handle;

    fn onion(seed: u8) -> Onion {
        torv3::Identity::from_seed(&[seed; 32]).onion()
    }

    /// Both sides of a simultaneous dial, computed independently, keep the same connection.
    #[test]
    fn both_sides_keep_the_connection_the_larger_onion_dialled() {
        let (x, y) = (onion(1), onion(2));
        let (small, large) = if x < y { (x, y) } else { (y, x) };
        // Connection 1 is dialled by `small`, connection 2 by `large`.
        // On `small`'s side: 1 is outbound, 2 inbound.
        let r = Registry::default();
        assert!(r.register(&small, handle(1, &large, true)).is_empty());
        let losers = r.register(&small, handle(2, &large, false));
        assert_eq!(losers.iter().map(|h| h.id().0).collect::<Vec<_>>(), vec![1]);
        assert_eq!(r.find(&large).unwrap().id().0, 2);
        // On `large`'s side: 1 is inbound, 2 outbound; registration order reversed.
        let r = Registry::default();
        assert!(r.register(&large, handle(2, &small, true)).is_empty());
        let losers = r.register(&large, handle(1, &small, false));
        assert_eq!(losers.iter().map(|h| h.id().0).collect::<Vec<_>>(), vec![1]);
        assert_eq!(r.find(&small).unwrap().id().0, 2);
    }

    #[test]
    fn a_reconnecting_peer_replaces_its_old_connection() {
        let (me, peer) = (onion(1), onion(2));
        let r = Registry::default();
        r.register(&me, handle(1, &peer, false));
        let losers = r.register(&me, handle(2, &peer, false));
        assert_eq!(losers.iter().map(|h| h.id().0).collect::<Vec<_>>(), vec![1]);
        assert_eq!(r.find(&peer).unwrap().id().0, 2);
        assert_eq!(r.all().len(), 1);
    }

    /// A closed connection still in the registry (its task has not removed it yet, or died)
    /// must not win the duplicate rule against the peer's next connection.
    #[test]
    fn a_closed_stale_entry_takes_no_part_in_the_duplicate_rule() {
        let (x, y) = (onion(1), onion(2));
        let (small, large) = if x < y { (x, y) } else { (y, x) };
        let r = Registry::default();
        // On `small`'s side, an inbound connection from `large` (large dialled: it would win).
        let stale = handle(1, &large, false);
        r.register(&small, stale.clone());
        stale.close();
        // `small` dials `large` now: its own dial must be kept, not lose to the stale entry.
        let losers = r.register(&small, handle(2, &large, true));
        assert!(
            losers.iter().all(|h| h.id().0 != 2),
            "the live dial was closed"
        );
        assert_eq!(r.find(&large).unwrap().id().0, 2);
    }

    #[test]
    fn unauthenticated_connections_never_collide() {
        let me = onion(1);
        let r = Registry::default();
        let mut h1 = handle(1, &me, false);
        h1.clear_remote();
        let mut h2 = handle(2, &me, false);
        h2.clear_remote();
        assert!(r.register(&me, h1).is_empty());
        assert!(r.register(&me, h2).is_empty());
        assert_eq!(r.all().len(), 2);
    }
}
