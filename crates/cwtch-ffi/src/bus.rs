//! The app bus: a bounded queue of Go-shaped events that `c_GetAppBusEvent` pops, blocking
//! while it is empty (as Go's does).
//!
//! Producers are tasks on the runtime ([`Bus::push`] waits, asynchronously, for room: a client
//! that stops reading slows the forwarding of events down and, past the library's own
//! broadcast capacity, loses the oldest ones, logged). Exported functions never push
//! synchronously: a client usually calls them from its event thread, the only consumer, so a
//! push waiting for room there would deadlock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use tokio::sync::Semaphore;

use crate::json::{to_json, GoEvent};

/// Events held at most (each is one JSON string).
pub(crate) const BUS_CAPACITY: usize = 4096;

/// The queue.
pub(crate) struct Bus {
    queue: Mutex<VecDeque<String>>,
    ready: Condvar,
    room: Semaphore,
    next_id: AtomicU64,
}

impl Bus {
    pub(crate) fn new(capacity: usize) -> Bus {
        Bus {
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            room: Semaphore::new(capacity.max(1)),
            next_id: AtomicU64::new(1),
        }
    }

    fn queue(&self) -> MutexGuard<'_, VecDeque<String>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue an event (its `EventID` is assigned here), waiting for room.
    pub(crate) async fn push(&self, mut event: GoEvent) {
        match self.room.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => return, // never closed
        }
        event.event_id = self.next_id.fetch_add(1, Ordering::Relaxed).to_string();
        tracing::debug!(event = %event.event_type, "app bus");
        self.queue().push_back(to_json(&event));
        self.ready.notify_one();
    }

    /// The next event's JSON, blocking until there is one.
    pub(crate) fn pop_blocking(&self) -> String {
        let mut q = self.queue();
        loop {
            if let Some(e) = q.pop_front() {
                drop(q);
                self.room.add_permits(1);
                return e;
            }
            q = self.ready.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The next event's JSON if there is one (tests).
    #[cfg(test)]
    pub(crate) fn try_pop(&self) -> Option<String> {
        let e = self.queue().pop_front();
        if e.is_some() {
            self.room.add_permits(1);
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bounded_fifo_with_blocking_pop() {
        let bus = Arc::new(Bus::new(2));
        bus.push(GoEvent::new("A", [("k", "1")])).await;
        bus.push(GoEvent::new("B", [("k", "2")])).await;
        // Full: the third push waits until something is popped.
        let b2 = bus.clone();
        let third = tokio::spawn(async move { b2.push(GoEvent::new("C", [("k", "3")])).await });
        let first = tokio::task::spawn_blocking({
            let bus = bus.clone();
            move || bus.pop_blocking()
        })
        .await
        .expect("pop");
        assert!(first.contains(r#""EventType":"A""#), "{first}");
        assert!(first.contains(r#""EventID":"1""#), "{first}");
        third
            .await
            .expect("third push completes once there is room");
        let rest: Vec<String> = std::iter::from_fn(|| bus.try_pop()).collect();
        assert_eq!(rest.len(), 2);
        assert!(rest[0].contains(r#""EventType":"B""#));
        assert!(rest[1].contains(r#""EventType":"C""#));
    }
}
