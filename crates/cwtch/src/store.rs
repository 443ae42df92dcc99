//! The storage actor: one dedicated thread per loaded profile owns its [`ProfileStore`];
//! async callers send it closures over a bounded channel and await the result on a oneshot.
//!
//! SQLCipher calls block (file IO, fsync, PBKDF2 on password change), so they never run on
//! the async executor. The thread also owns the profile's process lock ([`ProfileLock`]),
//! released only after the database is closed.

use std::panic::AssertUnwindSafe;

use cwtch_storage::{MemoryProfile, Profile, ProfileId, ProfileStore};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, warn};

use crate::error::{Error, Result};
use crate::lock::ProfileLock;

/// An open profile of either kind of home.
pub(crate) enum Backend {
    Disk(Profile),
    Memory(MemoryProfile),
}

impl Backend {
    pub(crate) fn store(&mut self) -> &mut dyn ProfileStore {
        match self {
            Backend::Disk(p) => p,
            Backend::Memory(p) => p,
        }
    }

    pub(crate) fn store_ref(&self) -> &dyn ProfileStore {
        match self {
            Backend::Disk(p) => p,
            Backend::Memory(p) => p,
        }
    }

    fn close(self) {
        if let Backend::Disk(p) = self {
            if let Err(e) = p.close() {
                warn!(error = %e, "closing the profile database failed");
            }
        }
    }
}

type Job = Box<dyn FnOnce(&mut Backend) + Send>;

enum Msg {
    Job(Job),
    Close,
}

/// A cheap handle on a profile's storage thread.
#[derive(Clone)]
pub(crate) struct StoreHandle {
    tx: mpsc::Sender<Msg>,
    closed: watch::Receiver<bool>,
}

impl StoreHandle {
    /// Start the storage thread for `backend`.
    pub(crate) fn spawn(
        id: &ProfileId,
        mut backend: Backend,
        lock: Option<ProfileLock>,
        queue: usize,
    ) -> Result<StoreHandle> {
        let (tx, mut rx) = mpsc::channel::<Msg>(queue.max(1));
        let (closed_tx, closed) = watch::channel(false);
        let name = format!(
            "cwtch-store-{}",
            id.as_str().get(..8).unwrap_or(id.as_str())
        );
        std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                while let Some(msg) = rx.blocking_recv() {
                    match msg {
                        Msg::Job(job) => {
                            // A panicking job (a bug) must not take the profile down with it:
                            // its caller sees its reply channel closed.
                            if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut backend)))
                                .is_err()
                            {
                                error!("a storage job panicked");
                            }
                        }
                        Msg::Close => break,
                    }
                }
                backend.close();
                drop(lock);
                debug!("storage thread finished");
                let _ = closed_tx.send(true);
            })
            .map_err(|source| Error::Io {
                op: "spawn storage thread for",
                path: id.as_str().into(),
                source,
            })?;
        Ok(StoreHandle { tx, closed })
    }

    /// Run `f` on the storage thread with the open backend.
    pub(crate) async fn with_backend<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut Backend) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |b| {
            let _ = tx.send(f(b));
        });
        self.tx
            .send(Msg::Job(job))
            .await
            .map_err(|_| Error::StorageClosed)?;
        rx.await.map_err(|_| Error::StorageClosed)?
    }

    /// Run `f` on the storage thread with the profile store.
    pub(crate) async fn call<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut dyn ProfileStore) -> Result<R, cwtch_storage::Error> + Send + 'static,
        R: Send + 'static,
    {
        self.with_backend(move |b| f(b.store()).map_err(Error::from))
            .await
    }

    /// Finish the queued jobs, close the database, release the lock, and wait for the
    /// thread to finish.
    pub(crate) async fn close(&self) {
        let _ = self.tx.send(Msg::Close).await;
        let mut closed = self.closed.clone();
        let _ = closed.wait_for(|c| *c).await;
    }
}
