//! Running the real `cwtch` binary in tests: one-shot subcommands, and `cwtch run` daemons
//! whose JSON event lines are collected as they arrive.

#![allow(dead_code, clippy::unwrap_used, unreachable_pub, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

pub const BIN: &str = env!("CARGO_BIN_EXE_cwtch");

/// How long any single wait may take before the test fails.
pub const STEP: Duration = Duration::from_secs(60);

fn command(dir: &Path, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(BIN);
    c.arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("CWTCH_HOME")
        .env_remove("CWTCH_LOG")
        .env_remove("CWTCH_LOOPBACK_DIR");
    c
}

/// Run a subcommand to completion, stdin empty.
pub fn cwtch(dir: &Path, args: &[&str]) -> Output {
    command(dir, args).stdin(Stdio::null()).output().unwrap()
}

/// Run a subcommand to completion with `input` on stdin.
pub fn cwtch_stdin(dir: &Path, args: &[&str], input: &str) -> Output {
    let mut child = command(dir, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(input.as_bytes());
    }
    child.wait_with_output().unwrap()
}

/// The async version (for tests that also follow daemons).
pub async fn acwtch(dir: &Path, args: &[&str]) -> Output {
    acwtch_stdin(dir, args, "").await
}

pub async fn acwtch_stdin(dir: &Path, args: &[&str], input: &str) -> Output {
    let mut child = tokio::process::Command::from(command(dir, args))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(input.as_bytes()).await;
    drop(stdin);
    tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .expect("command finished")
        .unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A successful command's stdout.
#[track_caller]
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "command failed ({}): {}{}",
        o.status,
        stdout(o),
        stderr(o)
    );
    assert!(!stderr(o).contains("panicked"), "{}", stderr(o));
    stdout(o)
}

/// A failed command: this exit code, an `error:` line mentioning `needle`, no panic.
#[track_caller]
pub fn fails(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "exit code; stderr: {err}");
    assert!(err.contains("error:"), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// The last line of stdout.
pub fn last_line(o: &Output) -> String {
    ok(o).lines().last().unwrap_or_default().trim().to_owned()
}

/// Create a profile without a password; its onion.
pub fn create(dir: &Path, name: &str) -> String {
    let onion = last_line(&cwtch(
        dir,
        &["profile", "create", "--name", name, "--no-password"],
    ));
    assert_eq!(onion.len(), 56, "{onion}");
    onion
}

pub async fn acreate(dir: &Path, name: &str) -> String {
    let o = acwtch(dir, &["profile", "create", "--name", name, "--no-password"]).await;
    let onion = last_line(&o);
    assert_eq!(onion.len(), 56, "{onion}");
    onion
}

/// Parse a `--json` command's stdout.
#[track_caller]
pub fn json(o: &Output) -> Value {
    let s = ok(o);
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// Copy a directory tree; directories 0700 (a Cwtch home must be private).
pub fn copy_private(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_private(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

fn log_path(dir: &Path) -> PathBuf {
    let mut p = dir.as_os_str().to_owned();
    p.push(".log");
    PathBuf::from(p)
}

/// A running `cwtch run`, with its stdout parsed into events as they arrive.
pub struct Daemon {
    pub dir: PathBuf,
    pub child: tokio::process::Child,
    rx: mpsc::UnboundedReceiver<Value>,
    /// Every event line printed so far (also the ones `wait_for` skipped).
    pub seen: Arc<Mutex<Vec<Value>>>,
    reader: Option<tokio::task::JoinHandle<()>>,
}

impl Daemon {
    /// `cwtch run` with these extra arguments (network flags).
    pub fn spawn(dir: &Path, args: &[&str]) -> Daemon {
        Daemon::spawn_stdin(dir, args, "")
    }

    /// `cwtch run` with `input` on its stdin (then closed).
    pub fn spawn_stdin(dir: &Path, args: &[&str], input: &str) -> Daemon {
        let mut full = vec!["run"];
        full.extend_from_slice(args);
        Daemon::spawn_command(dir, &full, input)
    }

    /// Any `cwtch` command that prints JSON lines (`full`: its whole argument list), with
    /// `input` on its stdin. `cwtch run` prints nothing else (a line that is not JSON fails
    /// the test); another command's other lines become `{"line": …}`.
    pub fn spawn_command(dir: &Path, full: &[&str], input: &str) -> Daemon {
        let only_json = full.first() == Some(&"run");
        // Its log goes to a file next to the data directory, shown if the test fails.
        let log_path = log_path(dir);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let mut child = tokio::process::Command::from(command(dir, full))
            .env("CWTCH_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_owned();
        tokio::spawn(async move {
            let _ = stdin.write_all(input.as_bytes()).await;
        });
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(out).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let v: Value = match serde_json::from_str(&line) {
                    Ok(v) => v,
                    Err(e) if only_json => panic!("stdout line is not JSON ({e}): {line}"),
                    Err(_) => serde_json::json!({ "line": line }),
                };
                seen2.lock().unwrap().push(v.clone());
                let _ = tx.send(v);
            }
        });
        Daemon {
            dir: dir.to_path_buf(),
            child,
            rx,
            seen,
            reader: Some(reader),
        }
    }

    /// `cwtch run` on the loopback network `net`; returns once `onion` is online.
    pub async fn loopback(dir: &Path, net: &Path, onion: &str) -> Daemon {
        let mut d = Daemon::spawn(
            dir,
            &[
                "--network",
                "loopback",
                "--loopback-dir",
                net.to_str().unwrap(),
            ],
        );
        d.wait_online(onion).await;
        d
    }

    pub async fn wait_online(&mut self, onion: &str) {
        self.wait_for(STEP, |e| {
            e["event"] == "ProfileOnline" && e["profile"] == onion
        })
        .await;
    }

    /// The next event that satisfies `pred` (events before it are skipped, but stay in
    /// `seen`). Fails the test after `timeout`.
    pub async fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        self.try_wait_for(timeout, pred)
            .await
            .unwrap_or_else(|| panic!("timed out waiting for an event in {}", self.dir.display()))
    }

    /// Like `wait_for`, `None` on timeout.
    pub async fn try_wait_for(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(e)) if pred(&e) => return Some(e),
                Ok(Some(_)) => {}
                Ok(None) => panic!("cwtch run in {} exited", self.dir.display()),
                Err(_) => return None,
            }
        }
    }

    /// Every event so far with this `"event"` name.
    pub fn events(&self, name: &str) -> Vec<Value> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == name)
            .cloned()
            .collect()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(log_path(&self.dir)).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    fn signal(&self, sig: &str) {
        let s = std::process::Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(s.success());
    }

    /// SIGTERM; the exit status.
    pub async fn stop(self) -> std::process::ExitStatus {
        self.stop_with("-TERM").await
    }

    /// Stop with this signal (`-TERM`, `-INT`); the exit status.
    pub async fn stop_with(mut self, sig: &str) -> std::process::ExitStatus {
        self.signal(sig);
        tokio::time::timeout(STEP, self.child.wait())
            .await
            .expect("cwtch run stopped after SIGTERM")
            .unwrap()
    }

    /// SIGKILL: no chance to clean up.
    pub async fn kill9(mut self) -> Vec<Value> {
        self.signal("-KILL");
        let _ = tokio::time::timeout(STEP, self.child.wait()).await.unwrap();
        // Every line it printed before dying.
        if let Some(r) = self.reader.take() {
            tokio::time::timeout(STEP, r).await.unwrap().unwrap();
        }
        let seen = self.seen.lock().unwrap().clone();
        seen
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- log of cwtch run in {} ----\n{}",
                self.dir.display(),
                self.log()
            );
        }
    }
}

/// `cwtch messages --json` of a conversation, oldest first.
pub async fn messages(dir: &Path, contact: &str) -> Vec<Value> {
    let o = acwtch(dir, &["--json", "messages", "--limit", "100000", contact]).await;
    match json(&o) {
        Value::Array(v) => v,
        v => panic!("not an array: {v}"),
    }
}

/// How many stored messages of a conversation have this text.
pub fn count_text(msgs: &[Value], text: &str, outgoing: bool) -> usize {
    msgs.iter()
        .filter(|m| m["text"] == text && m["outgoing"] == outgoing)
        .count()
}
