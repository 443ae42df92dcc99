//! Several `Cwtch` values (or processes) on one home: opening a home must not remove the
//! staging directories another user of it is working in (found while building the `cwtch`
//! command: two `cwtch send` started together broke each other's profile opening).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use cwtch::{Acn, Cwtch, LoopbackAcn, Password};

/// `cwtch` lets several processes share a home (per-profile locks; listing "works while
/// another process runs them"), but `cwtch_storage::CwtchHome::open` (called by every
/// `Cwtch::open`) removes every `.creating-`, `.importing-` and `.checking-` staging directory
/// it finds, including the ones another live process (or another `Cwtch` on the same home) is
/// working in right now: that creation, import or crash-recovery check then fails, or the
/// opener fails removing a directory that vanished under it (`remove …/.checking-…: No such
/// file or directory` — seen when two `cwtch send` started together after a `cwtch run` was
/// killed). Staging directories should be locked by their owner and only cleaned when
/// unlocked. Workaround in the command: a home-wide lock file (`.cwtch-cli.lock`) serialises
/// the processes that work on a data directory directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opening_a_home_does_not_break_a_concurrent_profile_creation() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let acn: Arc<dyn Acn> = Arc::new(LoopbackAcn::new(tmp.path().join("net")).unwrap());
    let app = Cwtch::open(&home, acn.clone()).await.unwrap();
    let creator = tokio::spawn(async move {
        let mut failures = Vec::new();
        for i in 0..30 {
            if let Err(e) = app
                .create_profile(&format!("p{i}"), &Password::Default)
                .await
            {
                failures.push(e.to_string());
            }
        }
        failures
    });
    let mut open_failures = Vec::new();
    while !creator.is_finished() {
        if let Err(e) = Cwtch::open(&home, acn.clone()).await {
            open_failures.push(e.to_string());
        }
    }
    let mut create_failures = creator.await.unwrap();
    create_failures.truncate(3);
    open_failures.truncate(3);
    assert!(
        create_failures.is_empty() && open_failures.is_empty(),
        "creations that failed: {create_failures:?}; opens that failed: {open_failures:?}"
    );
}
