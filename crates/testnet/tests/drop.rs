#![allow(clippy::unwrap_used)]
//! Dropping a `TestNet` (as a panicking test does), or the future of `start` mid-way, kills its
//! tor processes and removes its directory, and nothing else in the base directory.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use testnet::{TestNet, TestNetConfig};

/// Pids of live processes whose command line mentions `dir`: tor daemons (`-f <dir>/../torrc`)
/// and the helpers that prepare them (`tor-gencert`, `tor --list-fingerprint`).
fn tors_under(dir: &Path) -> Vec<u32> {
    processes_mentioning(&dir.to_string_lossy())
}

/// Pids of live tor daemons started under `dir`.
fn daemons_under(dir: &Path) -> Vec<u32> {
    tors_under(dir)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains("/torrc"))
                .unwrap_or(false)
        })
        .collect()
}

fn processes_mentioning(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

/// A base directory holding things that are not the network's.
fn populated_base() -> tempfile::TempDir {
    let base = tempfile::tempdir().unwrap();
    std::fs::write(base.path().join("keep.txt"), b"mine").unwrap();
    std::fs::create_dir(base.path().join("keep-dir")).unwrap();
    std::fs::write(base.path().join("keep-dir/inner"), b"also mine").unwrap();
    base
}

fn assert_only_ours_left(base: &Path) {
    let names: BTreeSet<String> = std::fs::read_dir(base)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["keep-dir".to_owned(), "keep.txt".to_owned()])
    );
    assert_eq!(std::fs::read(base.join("keep.txt")).unwrap(), b"mine");
    assert_eq!(
        std::fs::read(base.join("keep-dir/inner")).unwrap(),
        b"also mine"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_running_network_kills_its_tors_and_removes_only_its_directory() {
    let base = populated_base();
    let net = TestNet::start(TestNetConfig::default().clients(1).base_dir(base.path()))
        .await
        .unwrap();
    let dir = net.dir().to_owned();
    assert_eq!(dir.parent(), Some(base.path()));
    let pids: BTreeSet<u32> = net.processes().iter().map(|p| p.pid).collect();
    assert_eq!(pids.len(), 6);
    assert_eq!(tors_under(&dir).into_iter().collect::<BTreeSet<_>>(), pids);

    drop(net);

    assert!(tors_under(&dir).is_empty(), "tor survived the drop");
    assert!(!dir.exists(), "{} was not removed", dir.display());
    assert_only_ours_left(base.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_start_midway_kills_what_it_started() {
    let base = populated_base();
    let start = TestNet::start(TestNetConfig::default().base_dir(base.path()));
    // Cancel `start` once its 5 relays are running (a readiness signal, not a fixed delay: on
    // a loaded machine they take longer), which is before any consensus exists, so the test
    // cannot pass vacuously.
    let watched = base.path().to_owned();
    let relays_running = async move {
        loop {
            if daemons_under(&watched).len() >= 5 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        r = start => panic!("the network came up before its 5 relays were seen running: {}", r.is_ok()),
        seen = tokio::time::timeout(Duration::from_secs(120), relays_running) => {
            assert!(seen.is_ok(), "the 5 relays never ran");
        }
    }
    // `start` was dropped midway by the select.
    // The daemons were killed and reaped by the drop itself.
    assert!(daemons_under(base.path()).is_empty(), "tor survived");
    // A helper still running (SIGKILLed by tokio's `kill_on_drop`) dies a moment later.
    for _ in 0..20 {
        if tors_under(base.path()).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(tors_under(base.path()).is_empty(), "a helper survived");
    assert_only_ours_left(base.path());
}
