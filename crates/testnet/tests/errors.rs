#![allow(clippy::unwrap_used)]
//! Failures are quick, bounded, say what went wrong, and leave nothing behind.

use std::time::{Duration, Instant};

use testnet::{Error, TestNet, TestNetConfig};

fn empty(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

#[tokio::test]
async fn a_missing_tor_binary_fails_at_once() {
    let base = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let err = TestNet::start(
        TestNetConfig::default()
            .tor_binary("/nonexistent/bin/tor")
            .base_dir(base.path()),
    )
    .await
    .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, Error::Spawn { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/bin/tor"), "{err}");
    assert!(empty(base.path()));
}

#[tokio::test]
async fn a_binary_that_is_not_tor_is_refused() {
    let base = tempfile::tempdir().unwrap();
    let err = TestNet::start(
        TestNetConfig::default()
            .tor_binary("true")
            .base_dir(base.path()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NotTor { .. }), "{err:?}");
    assert!(empty(base.path()));
}

#[tokio::test]
async fn bad_configurations_are_refused() {
    let err = TestNet::start(TestNetConfig::default().relays(0))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err:?}");
    let err = TestNet::start(TestNetConfig::default().voting_interval(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err:?}");
    let base = tempfile::tempdir().unwrap();
    let missing = base.path().join("missing");
    let err = TestNet::start(TestNetConfig::default().base_dir(&missing))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(!missing.exists(), "a base directory must not be created");
}

/// A start that cannot finish in time stops at the deadline with an error naming what it
/// waited for, and leaves no tor and no directory behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_is_bounded_by_its_timeout() {
    let base = tempfile::tempdir().unwrap();
    let timeout = Duration::from_secs(4);
    let started = Instant::now();
    let err = TestNet::start(
        TestNetConfig::default()
            .startup_timeout(timeout)
            .base_dir(base.path()),
    )
    .await
    .unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(5),
        "{took:?}"
    );
    eprintln!("{err}");
    assert!(empty(base.path()));
}
