//! Who gets an inbound slot when a service is full (spec `docs/specs/tapir.md` §7).
//!
//! A service has `max_inbound` slots. An inbound connection takes one on accept, as a
//! *handshake*; it becomes *established* once its application chain has proved something
//! (granted its first capability: the peer's identity, or a proof of work) or completed.
//!
//! - A new connection always gets a slot if one is free. If none is, the **oldest handshake**
//!   is closed to make room: a flood of idle connections then only pushes out the flooder's
//!   own older connections, and a member's handshake, which completes quickly, survives as
//!   long as fewer than the handshake slots' worth of connections arrive while it runs.
//! - **Established connections are never evicted.** They may fill at most
//!   `max_inbound - reserve` slots; a handshake completing when that share is full is closed.
//!   So `reserve` slots are always left to handshakes, and established members cannot starve
//!   newcomers either.
//! - If every slot is established (only possible with no reserve), a new connection is
//!   dropped on accept.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Inbound connection counts of a service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InboundStats {
    /// Inbound connections still in their handshake (these can be evicted).
    pub handshaking: usize,
    /// Inbound connections past their handshake's first proof (never evicted).
    pub established: usize,
    /// Handshakes closed to make room for a newer connection, since the service started.
    pub evicted: u64,
    /// Connections refused since the service started: dropped on accept because every slot
    /// was established, or closed after their proof because the established share was full.
    pub refused: u64,
}

pub(crate) struct Admission {
    max: usize,
    established_max: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next: u64,
    /// Handshakes by age (oldest first), each with the token that closes it.
    pending: BTreeMap<u64, CancellationToken>,
    established: usize,
    evicted: u64,
    refused: u64,
}

impl Admission {
    /// `reserve` is capped at half of `max`, so that both sides keep a share.
    pub(crate) fn new(max: usize, reserve: usize) -> Admission {
        Admission {
            max,
            established_max: max - reserve.min(max / 2),
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere mid-update of plain counters.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admit a new connection that `cancel` closes, evicting the oldest handshake if the
    /// service is full. `None`: every slot is established; drop the connection.
    pub(crate) fn admit(self: &Arc<Self>, cancel: CancellationToken) -> Option<Slot> {
        let mut st = self.lock();
        if st.pending.len() + st.established >= self.max {
            match st.pending.pop_first() {
                Some((_, oldest)) => {
                    oldest.cancel();
                    st.evicted += 1;
                    debug!("service full: evicted the oldest handshake");
                    if st.evicted.is_power_of_two() {
                        warn!(
                            evicted = st.evicted,
                            max = self.max,
                            "inbound connection limit reached: evicting the oldest handshakes"
                        );
                    }
                }
                None => {
                    st.refused += 1;
                    debug!("service full of established connections: dropping a connection");
                    if st.refused.is_power_of_two() {
                        warn!(
                            refused = st.refused,
                            max = self.max,
                            "inbound connection limit reached by established connections"
                        );
                    }
                    return None;
                }
            }
        }
        let seq = st.next;
        st.next += 1;
        st.pending.insert(seq, cancel);
        Some(Slot {
            admission: self.clone(),
            seq,
            established: false,
        })
    }

    pub(crate) fn stats(&self) -> InboundStats {
        let st = self.lock();
        InboundStats {
            handshaking: st.pending.len(),
            established: st.established,
            evicted: st.evicted,
            refused: st.refused,
        }
    }
}

/// An inbound connection's slot; released on drop.
pub(crate) struct Slot {
    admission: Arc<Admission>,
    seq: u64,
    established: bool,
}

impl Slot {
    /// The handshake proved something: from now on it cannot be evicted. False if it was
    /// evicted already, or if the established share is full; the caller closes it then.
    pub(crate) fn establish(&mut self) -> bool {
        if self.established {
            return true;
        }
        let a = &self.admission;
        let mut st = a.lock();
        if !st.pending.contains_key(&self.seq) {
            return false;
        }
        if st.established >= a.established_max {
            st.refused += 1;
            debug!(
                established = st.established,
                "established share full: closing a connection after its handshake"
            );
            if st.refused.is_power_of_two() {
                warn!(
                    refused = st.refused,
                    established = st.established,
                    "established connections fill their share of the inbound limit"
                );
            }
            return false;
        }
        st.pending.remove(&self.seq);
        st.established += 1;
        self.established = true;
        true
    }

    pub(crate) fn is_established(&self) -> bool {
        self.established
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut st = self.admission.lock();
        if self.established {
            st.established = st.established.saturating_sub(1);
        } else {
            st.pending.remove(&self.seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admit(a: &Arc<Admission>) -> (Slot, CancellationToken) {
        let t = CancellationToken::new();
        (a.admit(t.clone()).unwrap(), t)
    }

    #[test]
    fn a_full_service_evicts_its_oldest_handshake() {
        let a = Arc::new(Admission::new(3, 1));
        let (_s1, t1) = admit(&a);
        let (_s2, t2) = admit(&a);
        let (_s3, t3) = admit(&a);
        let (_s4, t4) = admit(&a);
        assert!(t1.is_cancelled(), "the oldest goes first");
        assert!(!t2.is_cancelled() && !t3.is_cancelled() && !t4.is_cancelled());
        let (_s5, _) = admit(&a);
        assert!(t2.is_cancelled());
        let s = a.stats();
        assert_eq!((s.handshaking, s.established, s.evicted), (3, 0, 2));
    }

    #[test]
    fn established_connections_are_never_evicted_and_keep_to_their_share() {
        let a = Arc::new(Admission::new(4, 2));
        let (mut s1, t1) = admit(&a);
        let (mut s2, t2) = admit(&a);
        assert!(s1.establish() && s2.establish());
        // A third may not establish: two slots stay reserved for handshakes.
        let (mut s3, t3) = admit(&a);
        assert!(!s3.establish());
        drop(s3);
        drop(t3);
        // A flood of handshakes only ever evicts handshakes.
        let mut flood = Vec::new();
        for _ in 0..100 {
            flood.push(admit(&a));
        }
        assert!(!t1.is_cancelled() && !t2.is_cancelled());
        let s = a.stats();
        assert_eq!((s.handshaking, s.established, s.refused), (2, 2, 1));
        assert_eq!(s.evicted, 98);
        // When an established connection ends, its slot is free again.
        drop(s1);
        let (mut s4, _t4) = admit(&a);
        assert!(s4.establish());
    }

    #[test]
    fn an_evicted_handshake_cannot_establish_and_releases_nothing_twice() {
        let a = Arc::new(Admission::new(1, 0));
        let (mut s1, t1) = admit(&a);
        let (s2, _t2) = admit(&a);
        assert!(t1.is_cancelled());
        assert!(!s1.establish());
        drop(s1);
        assert_eq!(a.stats().handshaking, 1);
        drop(s2);
        assert_eq!(a.stats().handshaking, 0);
    }

    #[test]
    fn with_no_reserve_a_service_full_of_established_connections_refuses() {
        let a = Arc::new(Admission::new(1, 0));
        let (mut s1, _t1) = admit(&a);
        assert!(s1.establish());
        assert!(a.admit(CancellationToken::new()).is_none());
        assert_eq!(a.stats().refused, 1);
        // The reserve is capped at half, so a one-slot service can still establish.
        let b = Arc::new(Admission::new(1, 100));
        let (mut s, _t) = admit(&b);
        assert!(s.establish());
    }
}
