//! Tor processes: spawning, watching, and tearing down by pid.

use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::Error;

/// The file (in each node's data directory) that receives the node's stdout and stderr; tor
/// logs at `notice` level to stdout.
pub(crate) const LOG_FILE: &str = "tor.log";

/// How many log lines errors carry.
const LOG_TAIL_LINES: usize = 15;

/// How long we wait for a SIGKILLed process to be reaped before giving up on it.
const REAP_TIMEOUT: Duration = Duration::from_secs(3);

const POLL: Duration = Duration::from_millis(20);

/// What a tor process is in the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Role {
    /// A directory authority (also a relay).
    Authority,
    /// A non-authority relay (no exit).
    Relay,
    /// A client with a SOCKS port and a control port.
    Client,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Authority => "authority",
            Role::Relay => "relay",
            Role::Client => "client",
        })
    }
}

/// One tor process of a [`TestNet`](crate::TestNet), for inspection and measurement.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessInfo {
    /// What it is.
    pub role: Role,
    /// Its name in the network (`auth0`, `relay1`, `client0`...).
    pub name: String,
    /// Its pid.
    pub pid: u32,
    /// Its data directory (holds its `torrc` and its log, `tor.log`).
    pub data_dir: PathBuf,
}

impl ProcessInfo {
    /// The process's resident memory (`VmRSS` from `/proc/<pid>/status`) in KiB, or `None` if
    /// the process is gone or `/proc` is not available.
    pub fn vm_rss_kib(&self) -> Option<u64> {
        vm_rss_kib(self.pid)
    }

    /// The path of its log.
    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join(LOG_FILE)
    }
}

fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A running (or exited but not yet reaped) tor process that we started. Its pid is ours
/// until we reap it, so signalling it by pid cannot hit an unrelated process.
#[derive(Debug)]
pub(crate) struct TorProcess {
    info: ProcessInfo,
    child: Child,
    exit: Option<ExitStatus>,
}

impl TorProcess {
    /// Starts `tor --defaults-torrc <defaults> -f <torrc>`, output to `<dir>/tor.log`, in its
    /// own process group (so a terminal's Ctrl-C reaches us, and we tear down in order).
    pub(crate) fn spawn(
        tor: &Path,
        name: &str,
        role: Role,
        dir: &Path,
        torrc: &Path,
        defaults_torrc: &Path,
    ) -> Result<Self, Error> {
        let log_path = dir.join(LOG_FILE);
        let out = File::options()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log_path)
            .map_err(|e| Error::io("creating log file", &log_path, e))?;
        let err = out
            .try_clone()
            .map_err(|e| Error::io("creating log file", &log_path, e))?;
        let mut command = Command::new(tor);
        if role != Role::Client {
            // Directory caches (every relay here) compress consensuses and diffs in worker
            // threads; with glibc's per-thread arenas that memory is never returned, and each
            // relay sits at ~70 MiB instead of ~15-25 MiB. Clients are left alone so that their
            // figures stay representative of a real Cwtch tor.
            command.env("MALLOC_ARENA_MAX", "1");
        }
        let child = command
            .arg("--defaults-torrc")
            .arg(defaults_torrc)
            .arg("-f")
            .arg(torrc)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|source| Error::Spawn {
                program: tor.to_owned(),
                source,
            })?;
        let info = ProcessInfo {
            role,
            name: name.to_owned(),
            pid: child.id(),
            data_dir: dir.to_owned(),
        };
        tracing::debug!(name, pid = info.pid, %role, "started tor");
        Ok(TorProcess {
            info,
            child,
            exit: None,
        })
    }

    pub(crate) fn info(&self) -> &ProcessInfo {
        &self.info
    }

    pub(crate) fn name(&self) -> &str {
        &self.info.name
    }

    pub(crate) fn pid(&self) -> u32 {
        self.info.pid
    }

    /// `Some(status)` once the process has exited (it is reaped then).
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            match self.child.try_wait() {
                Ok(status) => self.exit = status,
                Err(e) => tracing::warn!(name = self.info.name, "waiting for tor: {e}"),
            }
        }
        self.exit
    }

    /// An error if the process has exited.
    pub(crate) fn check_running(&mut self) -> Result<(), Error> {
        match self.exited() {
            None => Ok(()),
            Some(status) => Err(self.exit_error(status)),
        }
    }

    fn exit_error(&self, status: ExitStatus) -> Error {
        let log_tail = self.log_tail();
        if log_tail.contains("Address already in use") {
            Error::PortInUse {
                node: self.info.name.clone(),
                log_tail,
            }
        } else {
            Error::ProcessExited {
                node: self.info.name.clone(),
                pid: self.info.pid,
                status,
                log_tail,
            }
        }
    }

    /// The last lines of the process's log.
    pub(crate) fn log_tail(&self) -> String {
        log_tail(&self.info.log_path(), LOG_TAIL_LINES)
    }

    fn sigkill(&mut self) {
        if self.exited().is_none() {
            if let Err(e) = self.child.kill() {
                tracing::warn!(name = self.info.name, "SIGKILL: {e}");
            }
        }
    }
}

impl Drop for TorProcess {
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.sigkill();
            let deadline = Instant::now() + REAP_TIMEOUT;
            while self.exited().is_none() && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
        }
    }
}

/// The last `n` lines of a log file (reads at most its last 16 KiB).
pub(crate) fn log_tail(path: &Path, n: usize) -> String {
    const MAX: u64 = 16 * 1024;
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len > MAX && f.seek(SeekFrom::Start(len - MAX)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Sends `signal` (`TERM`, `HUP`...) to every process still running, in one `kill` invocation
/// (no `unsafe`, no `nix`). Their pids are still ours: they have not been reaped.
pub(crate) fn send_signal(procs: &mut [&mut TorProcess], signal: &str) -> std::io::Result<()> {
    let pids: Vec<String> = procs
        .iter_mut()
        .filter_map(|p| p.exited().is_none().then(|| p.pid().to_string()))
        .collect();
    if pids.is_empty() {
        return Ok(());
    }
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .args(&pids)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "kill -{signal} {pids:?}: {status}"
        )))
    }
}

/// SIGTERM to every process still running; SIGKILL if `kill` cannot be run.
fn send_sigterm(procs: &mut [TorProcess]) {
    let mut all: Vec<&mut TorProcess> = procs.iter_mut().collect();
    if let Err(e) = send_signal(&mut all, "TERM") {
        tracing::warn!("{e}; sending SIGKILL instead");
        procs.iter_mut().for_each(TorProcess::sigkill);
    }
}

fn all_exited(procs: &mut [TorProcess]) -> bool {
    procs.iter_mut().all(|p| p.exited().is_some())
}

/// SIGKILL to the survivors, then reap; returns the pids that still did not exit.
fn kill_and_reap(procs: &mut [TorProcess]) -> Vec<u32> {
    for p in procs.iter_mut() {
        if p.exited().is_none() {
            tracing::warn!(
                name = p.name(),
                pid = p.pid(),
                "tor ignored SIGTERM; SIGKILL"
            );
            p.sigkill();
        }
    }
    let deadline = Instant::now() + REAP_TIMEOUT;
    while !all_exited(procs) && Instant::now() < deadline {
        std::thread::sleep(POLL);
    }
    procs
        .iter_mut()
        .filter_map(|p| p.exited().is_none().then(|| p.pid()))
        .collect()
}

/// Tears processes down: SIGTERM, wait up to `grace`, SIGKILL, reap. Returns the pids that
/// survived (none, unless something is badly wrong).
pub(crate) async fn terminate_all(procs: &mut [TorProcess], grace: Duration) -> Vec<u32> {
    send_sigterm(procs);
    let deadline = Instant::now() + grace;
    while !all_exited(procs) && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    kill_and_reap(procs)
}

/// [`terminate_all`] for `Drop`, which cannot `.await`.
pub(crate) fn terminate_all_blocking(procs: &mut [TorProcess], grace: Duration) -> Vec<u32> {
    send_sigterm(procs);
    let deadline = Instant::now() + grace;
    while !all_exited(procs) && Instant::now() < deadline {
        std::thread::sleep(POLL);
    }
    kill_and_reap(procs)
}

/// Runs a short-lived helper command to completion within `timeout` (killed on timeout),
/// feeding it `stdin`. Returns its stdout and stderr together.
pub(crate) async fn run_command(
    program: &Path,
    args: &[&OsStr],
    stdin: Option<&[u8]>,
    timeout: Duration,
    command: &'static str,
    node: &str,
) -> Result<String, Error> {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| Error::Spawn {
            program: program.to_owned(),
            source,
        })?;
    let run = async {
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A program that exits without reading its input is reported by its status.
            let _ = pipe.write_all(input).await;
        }
        child.wait_with_output().await
    };
    let output = match tokio::time::timeout(timeout, run).await {
        Ok(Ok(output)) => output,
        Ok(Err(source)) => {
            return Err(Error::Spawn {
                program: program.to_owned(),
                source,
            })
        }
        Err(_) => {
            return Err(Error::Timeout {
                waiting_for: command,
                node: node.to_owned(),
                after: timeout,
                log_tail: String::new(),
            })
        }
    };
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        return Err(Error::CommandFailed {
            command,
            node: node.to_owned(),
            status: output.status,
            output: last_lines(&text, LOG_TAIL_LINES),
        });
    }
    Ok(text)
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vm_rss() {
        let status = "Name:\ttor\nVmPeak:\t  200000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(12345));
        assert_eq!(parse_vm_rss("Name:\ttor\n"), None);
        assert!(vm_rss_kib(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn tails_logs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).unwrap();
        assert_eq!(log_tail(&path, 2), "line 98\nline 99");
        assert_eq!(log_tail(&dir.path().join("missing"), 2), "");
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
    }

    #[tokio::test]
    async fn helper_commands_are_bounded() {
        let sh = Path::new("sh");
        let out = run_command(
            sh,
            &[OsStr::new("-c"), OsStr::new("cat; echo err >&2")],
            Some(b"in\n"),
            Duration::from_secs(5),
            "sh",
            "test",
        )
        .await
        .unwrap();
        assert_eq!(out, "in\nerr\n");
        let started = Instant::now();
        let err = run_command(
            sh,
            &[OsStr::new("-c"), OsStr::new("sleep 30")],
            None,
            Duration::from_millis(200),
            "sleep",
            "test",
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let err = run_command(
            sh,
            &[OsStr::new("-c"), OsStr::new("exit 3")],
            None,
            Duration::from_secs(5),
            "x",
            "t",
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::CommandFailed { .. }), "{err}");
        let err = run_command(
            Path::new("/nonexistent/tor"),
            &[],
            None,
            Duration::from_secs(5),
            "x",
            "t",
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Spawn { .. }), "{err}");
    }
}
