//! The loopback network across processes: this test binary re-runs itself as a child that
//! hosts an onion service, and the parent dials it.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use connectivity::{Acn, Error, IsolationKey, LoopbackAcn, CWTCH_PORT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use torv3::Identity;

/// Set in the child to select its role; unset in a normal test run.
const HELPER_ENV: &str = "CONNECTIVITY_CROSS_PROCESS_HELPER";
const SEED: [u8; 32] = [42; 32];
const WAIT: Duration = Duration::from_secs(20);

/// The child's role: host `Identity::from_seed(SEED)` in `$CWTCH_LOOPBACK_DIR`, answer each
/// connection with the bytes it received reversed, and exit cleanly (dropping the listener)
/// after `$HELPER_ENV` connections. In a normal test run it returns at once.
#[tokio::test]
async fn helper_child_process() {
    let Ok(count) = std::env::var(HELPER_ENV) else {
        return;
    };
    let count: usize = count.parse().unwrap();
    let acn = LoopbackAcn::from_env().unwrap();
    let mut listener = acn
        .listen(&Identity::from_seed(&SEED), CWTCH_PORT)
        .await
        .unwrap();
    println!("<<READY>>");
    for _ in 0..count {
        let mut s = listener.accept().await.unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).await.unwrap();
        buf.reverse();
        s.write_all(&buf).await.unwrap();
        s.flush().await.unwrap();
    }
    drop(listener);
    println!("<<DONE>>");
}

/// A child process, killed if the test fails before it exits.
struct ChildProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ChildProcess {
    fn spawn(dir: &Path, connections: usize) -> ChildProcess {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "helper_child_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HELPER_ENV, connections.to_string())
            .env("CWTCH_LOOPBACK_DIR", dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ChildProcess { child, lines }
    }

    /// Wait for a line of the child's stdout containing `want` (the test harness prints its
    /// own text around ours, on the same line too: `test helper_child_process ... READY`).
    fn wait_for_line(&self, want: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(want) => return,
                Ok(_) => {}
                Err(e) => panic!("child never printed {want}: {e}"),
            }
        }
    }

    fn wait_for_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "child did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

async fn exchange(acn: &LoopbackAcn) {
    let onion = Identity::from_seed(&SEED).onion();
    let mut s = acn
        .connect(&onion, CWTCH_PORT, &IsolationKey::new("parent"))
        .await
        .unwrap();
    s.write_all(b"hello").await.unwrap();
    let mut buf = [0u8; 5];
    tokio::time::timeout(WAIT, s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"olleh");
}

#[tokio::test]
async fn a_child_process_hosts_and_we_dial_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("acn");
    let acn = LoopbackAcn::new(&dir).unwrap();
    let onion = Identity::from_seed(&SEED).onion();
    let record = acn.record_path(&onion, CWTCH_PORT);

    // A clean child: serves two connections, then drops its listener and exits.
    let mut child = ChildProcess::spawn(&dir, 2);
    child.wait_for_line("<<READY>>");
    assert!(record.is_file());
    exchange(&acn).await;
    exchange(&acn).await;
    child.wait_for_line("<<DONE>>");
    assert!(child.wait_for_exit().success());
    assert!(!record.exists(), "clean exit left its record behind");
    let e = acn
        .connect(&onion, CWTCH_PORT, &IsolationKey::new("parent"))
        .await
        .err()
        .unwrap();
    assert!(matches!(e, Error::OnionNotFound { .. }), "{e:?}");

    // A crashing child: killed while hosting, so its record goes stale.
    let mut child = ChildProcess::spawn(&dir, 1);
    child.wait_for_line("<<READY>>");
    child.child.kill().unwrap();
    child.wait_for_exit();
    assert!(record.is_file(), "a killed process cannot clean up");
    let e = acn
        .connect(&onion, CWTCH_PORT, &IsolationKey::new("parent"))
        .await
        .err()
        .unwrap();
    assert!(matches!(e, Error::ConnectionRefused { .. }), "{e:?}");

    // We take the onion over from the crashed process and are reachable.
    let id = Identity::from_seed(&SEED);
    let mut listener = acn.listen(&id, CWTCH_PORT).await.unwrap();
    let key = IsolationKey::new("parent");
    let dial = acn.connect(&onion, CWTCH_PORT, &key);
    let (dialed, accepted) = tokio::join!(dial, listener.accept());
    dialed.unwrap();
    accepted.unwrap();
}
