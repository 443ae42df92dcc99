//! Running the real `cwtch-server` binary in tests.

#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use cwtch_model::KeyBundle;
use tokio::io::{AsyncBufReadExt, BufReader};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_cwtch-server");

/// Run a subcommand to completion.
pub(crate) fn cli(dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("CWTCH_SERVER_HOME")
        .output()
        .unwrap()
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failed command: non-zero exit, an `error:` line, and no panic.
pub(crate) fn assert_clean_failure(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "should fail: {err}");
    assert!(err.contains("error:"), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A running server process.
pub(crate) struct Running {
    pub(crate) child: tokio::process::Child,
    pub(crate) bundle: KeyBundle,
}

impl Running {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }
}

/// `run` over the loopback network; returns once the server printed its bundle (ready).
pub(crate) async fn run(dir: &Path, net: &Path) -> Running {
    let mut child = tokio::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args([
            "--log-level",
            "warn",
            "run",
            "--network",
            "loopback",
            "--loopback-dir",
        ])
        .arg(net)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("server ready within a minute")
        .unwrap()
        .expect("server printed its bundle");
    Running {
        child,
        bundle: KeyBundle::parse_server_string(line.trim()).unwrap(),
    }
}

pub(crate) fn init(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    let o = cli(&dir, &["init"]);
    assert!(o.status.success(), "{}", stderr(&o));
    dir
}
