//! No byte leaves through anything but Tor: the Tor backend's traffic, observed on
//! loopback, is only to its tor's SOCKS and control ports.
//!
//! The backend under observation runs in a child process (this test binary, re-run with
//! [`ROLE_ENV`] set) under `strace -f`, which records every network system call of every
//! thread of it. The child attaches a [`TorAcn`] to client 0 of a private Tor network
//! (`testnet`), so it starts no tor of its own; it hosts an onion service, dials an onion
//! that the parent hosts through client 1 and an onion that nobody hosts, exchanges bytes
//! both ways, and closes. The trace must then show:
//!
//! - every `connect` to 127.0.0.1 on client 0's control port or SOCKS port, and nowhere else
//!   (no other address or port, no IPv6, no AF_UNIX resolver sockets);
//! - every `socket` an IPv4 stream socket (no UDP, no IPv6, no AF_UNIX, no netlink); the only
//!   other sockets are `AF_UNIX` pairs made inside the process by `socketpair` (tokio's signal
//!   driver has one), which have no address and cannot reach another process;
//! - no `sendto`/`sendmsg`/`sendmmsg` with a destination address (no UDP, no DNS);
//! - every `bind` to 127.0.0.1 and the only listening socket bound to 127.0.0.1 (the onion
//!   service's local target), accepting only from 127.0.0.1;
//! - no `io_uring_setup` (io_uring operations are invisible to strace) and exactly one
//!   `execve`, the test binary itself (no helper program, no tor).
//!
//! Against a vacuous pass: the trace must contain connects to both ports, the listen and an
//! accept; the child must report success and exit cleanly; the parent checks that the bytes
//! really crossed both onion services; the child refuses to start with any socket already
//! open (an inherited one would be invisible to the trace); a line of the trace that does not
//! parse is a failure, not a skip; and `the_observation_sees_leaks` runs the same
//! observation over children that do leak (another loopback address, another port, IPv6, a
//! DNS lookup, UDP, a listener on every interface) and checks that each one is caught, and
//! over a clean child that is not. Needs `strace` on `PATH` (`scripts/setup` installs it).

#![forbid(unsafe_code)]
// Helpers outside #[test] functions unwrap too; the child reports to the parent on its
// stdout, as cross_process.rs does.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use connectivity::{
    Acn, ControlAuth, DialPolicy, IsolationKey, TorAcn, TorConfig, TorTimeouts, CWTCH_PORT,
};
use testnet::{TestClient, TestNet, TestNetConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use torv3::Identity;

/// Set in the child to select its role (`backend`, or `leak:<kind>` for the canaries).
const ROLE_ENV: &str = "CONNECTIVITY_NO_LEAK_ROLE";
/// The observed tor's control address and cookie file, for the `backend` child.
const CONTROL_ENV: &str = "CONNECTIVITY_NO_LEAK_CONTROL";
const COOKIE_ENV: &str = "CONNECTIVITY_NO_LEAK_COOKIE";
/// The name of the child's test function, which the parent runs with `--exact`.
const CHILD_TEST: &str = "traced_child";

/// The onion the child hosts, the one the parent hosts, and one that nobody hosts.
const CHILD_SEED: [u8; 32] = [0x11; 32];
const PEER_SEED: [u8; 32] = [0x22; 32];
const NOBODY_SEED: [u8; 32] = [0x55; 32];
/// Each side answers with the bytes it received, reversed.
const TO_PEER: &[u8] = b"from the traced child, through client 0";
const TO_CHILD: &[u8] = b"from the parent, through client 1";

/// What the child prints once it hosts its onion, and once it has finished cleanly.
const READY: &str = "<<NO-LEAK READY>>";
const DONE: &str = "<<NO-LEAK DONE>>";

/// The syscalls we record: every network one, plus the two ways around the observation.
const TRACE_SET: &str = "trace=%network,execve,io_uring_setup";
/// The bound on each step (bring-up has its own, `TestNetConfig::startup_timeout`).
const STEP: Duration = Duration::from_secs(60);
/// The bound on the whole child.
const CHILD_LIMIT: Duration = Duration::from_secs(150);
/// A port the canary children may connect to (nothing listens there; refused is fine).
const CANARY_PORT: u16 = 9;

fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "connectivity=info,testnet=info,tor_no_leak=info".into()),
        )
        .with_test_writer()
        .try_init();
}

fn reversed(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().rev().copied().collect()
}

fn dial_policy() -> DialPolicy {
    let mut p = DialPolicy::default();
    p.max_attempts = 3;
    p.initial_backoff = Duration::from_millis(500);
    p.max_backoff = Duration::from_secs(1);
    p.attempt_timeout = Duration::from_secs(30);
    p
}

async fn attach(control: SocketAddr, cookie: PathBuf) -> TorAcn {
    let mut timeouts = TorTimeouts::default();
    timeouts.publish = STEP;
    let acn = TorAcn::new(
        TorConfig::attach(control.to_string(), ControlAuth::Cookie(Some(cookie)))
            .timeouts(timeouts)
            .dial_policy(dial_policy()),
    )
    .await
    .unwrap();
    tokio::time::timeout(STEP, acn.wait_until_bootstrapped())
        .await
        .expect("bootstrap timed out")
        .unwrap();
    acn
}

// ---------------------------------------------------------------------------------------
// The child.

/// The child's roles. In a normal test run (no [`ROLE_ENV`]) it returns at once.
#[test]
fn traced_child() {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    refuse_inherited_sockets();
    match role.as_str() {
        "backend" => backend_child(),
        other => {
            let kind = other.strip_prefix("leak:").expect("unknown role");
            leak_child(kind);
        }
    }
    println!("{DONE}");
    std::io::stdout().flush().unwrap();
}

/// A socket open before the observation starts (inherited without close-on-exec) could
/// carry bytes without a single traced `socket` or `connect`: refuse to run with one.
fn refuse_inherited_sockets() {
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let path = entry.unwrap().path();
        if let Ok(target) = std::fs::read_link(&path) {
            let target = target.to_string_lossy();
            assert!(
                !target.starts_with("socket:"),
                "the observed child inherited a socket ({} -> {target}); its traffic would \
                 be invisible to the trace",
                path.display()
            );
        }
    }
}

/// If the parent goes away (its test failed and it dropped our stdin), stop.
fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        tracing::warn!("no-leak child: stdin closed, the parent is gone; exiting");
        std::process::exit(3);
    });
}

fn backend_child() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "connectivity=debug".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    exit_when_stdin_closes();
    // Several worker threads, so that the trace must follow threads (`-f`) to see anything.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(CHILD_LIMIT, backend_session())
            .await
            .expect("the observed child timed out");
    });
}

/// Attach to the observed tor, host, dial, dial nobody, exchange both ways, close.
async fn backend_session() {
    let control: SocketAddr = std::env::var(CONTROL_ENV).unwrap().parse().unwrap();
    let cookie = PathBuf::from(std::env::var_os(COOKIE_ENV).unwrap());
    let acn = attach(control, cookie).await;
    assert_eq!(acn.pid(), None, "attach mode must not run a tor of its own");
    let mut listener = acn
        .listen(&Identity::from_seed(&CHILD_SEED), CWTCH_PORT)
        .await
        .unwrap();
    println!("{READY}");
    std::io::stdout().flush().unwrap();

    let outbound = async {
        let peer = Identity::from_seed(&PEER_SEED).onion();
        let mut s = tokio::time::timeout(
            STEP,
            acn.connect(&peer, CWTCH_PORT, &IsolationKey::new("traced child")),
        )
        .await
        .expect("dial timed out")
        .unwrap();
        s.write_all(TO_PEER).await.unwrap();
        let mut buf = vec![0; TO_PEER.len()];
        tokio::time::timeout(STEP, s.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(buf, reversed(TO_PEER));
        drop(s);

        let nobody = Identity::from_seed(&NOBODY_SEED).onion();
        let r = tokio::time::timeout(
            STEP,
            acn.connect(&nobody, CWTCH_PORT, &IsolationKey::new("nobody")),
        )
        .await
        .expect("dial to an unknown onion timed out");
        match r {
            Ok(_) => panic!("connected to an onion that nobody hosts"),
            Err(e) => tracing::info!(error = %e, "no-leak child: the unknown onion failed"),
        }
    };
    let inbound = async {
        let mut s = tokio::time::timeout(STEP, listener.accept())
            .await
            .expect("nobody dialled the child")
            .unwrap();
        let mut buf = vec![0; TO_CHILD.len()];
        tokio::time::timeout(STEP, s.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(buf, TO_CHILD);
        s.write_all(&reversed(TO_CHILD)).await.unwrap();
        s.flush().await.unwrap();
        // Until the parent has read the reply and hung up.
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(STEP, s.read_to_end(&mut rest)).await;
    };
    tokio::join!(outbound, inbound);
    drop(listener);
    acn.close().await;
}

/// The canaries: each does one thing the observation must catch (or, `clean`, nothing).
fn leak_child(kind: &str) {
    use std::net::{TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
    let canary = (Ipv4Addr::LOCALHOST, CANARY_PORT);
    match kind {
        // Allowed: a connect to 127.0.0.1 on the allowed port, and a 127.0.0.1 listener.
        "clean" => {
            let _ = TcpStream::connect(canary);
            let _listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        }
        "other-address" => {
            let _ = TcpStream::connect((Ipv4Addr::new(127, 0, 0, 2), CANARY_PORT));
        }
        "other-port" => {
            let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, CANARY_PORT + 1));
        }
        "ipv6" => {
            let _ = TcpStream::connect(("::1", CANARY_PORT));
        }
        "dns" => {
            let _ = ("cwtch-no-leak-canary.invalid", CANARY_PORT).to_socket_addrs();
        }
        "udp" => {
            let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            let _ = udp.send_to(b"leak", canary);
        }
        "listen-everywhere" => {
            let _listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        }
        other => panic!("unknown canary {other}"),
    }
}

// ---------------------------------------------------------------------------------------
// Running a child under strace.

/// `strace` on `PATH`, or a failure that says how to get it.
fn strace() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("strace"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "strace is not on PATH: this test observes the Tor backend's system calls with \
             strace. Install it (Debian: `apt-get install strace`; scripts/setup does)."
        )
    })
}

/// This test binary, re-run as a child with `role`, under `strace`.
struct Traced {
    child: Child,
    /// Held open: the `backend` child exits when it closes.
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
    trace: PathBuf,
    stderr: PathBuf,
}

impl Traced {
    fn spawn(strace: &Path, dir: &Path, role: &str, env: &[(&str, &std::ffi::OsStr)]) -> Traced {
        let name = role.replace(':', "-");
        let trace = dir.join(format!("{name}.strace"));
        let stderr = dir.join(format!("{name}.stderr"));
        let mut cmd = Command::new(strace);
        cmd.args(["-f", "-qq", "-e", TRACE_SET, "-o"])
            .arg(&trace)
            .arg("--")
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
            .env(ROLE_ENV, role)
            // A canary's DNS lookup must not wait long for a nameserver.
            .env("RES_OPTIONS", "timeout:1 attempts:1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("cannot run strace");
        let stdin = child.stdin.take();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Traced {
            child,
            stdin,
            lines,
            trace,
            stderr,
        }
    }

    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The first line of the child's stdout that contains `marker` (libtest prints its own
    /// text around ours, sometimes on the same line).
    async fn wait_for(&mut self, marker: &str) {
        let deadline = tokio::time::Instant::now() + CHILD_LIMIT;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.next_line()).await {
                Ok(Ok(Some(line))) if line.contains(marker) => return,
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None)) | Ok(Err(_)) => panic!(
                    "the child ended without printing {marker}; its stderr:\n{}",
                    self.stderr_tail()
                ),
                Err(_) => panic!(
                    "the child did not print {marker} in time; its stderr:\n{}",
                    self.stderr_tail()
                ),
            }
        }
    }

    /// strace's exit status, which is the child's.
    async fn wait(&mut self) -> ExitStatus {
        let status = tokio::time::timeout(STEP, self.child.wait())
            .await
            .expect("the child did not exit")
            .unwrap();
        self.stdin = None;
        status
    }

    fn trace(&self) -> String {
        std::fs::read_to_string(&self.trace).unwrap()
    }
}

// ---------------------------------------------------------------------------------------
// Reading the trace.

/// What the trace shows.
#[derive(Debug, Default)]
struct Observed {
    /// Everything that is not allowed, with its trace line.
    violations: Vec<String>,
    /// Connects to 127.0.0.1, by (allowed) port.
    connects: BTreeMap<u16, usize>,
    /// `listen` calls on sockets bound to 127.0.0.1.
    listens: usize,
    /// Successful accepts of connections from 127.0.0.1.
    accepts: usize,
    /// In-process `AF_UNIX` socket pairs.
    socketpairs: usize,
    /// `execve` calls, and the first one.
    execves: usize,
    first_execve: Option<String>,
    /// Syscalls parsed.
    calls: usize,
}

/// A socket address as strace prints it.
#[derive(Debug, PartialEq, Eq)]
enum Addr {
    V4(Ipv4Addr, u16),
    /// Any other family (`AF_INET6`, `AF_UNIX`, `AF_UNSPEC`...).
    Other(String),
}

/// The first `{sa_family=...}` in `args`; `None` if strace printed none (a raw pointer).
fn sockaddr(args: &str) -> Option<Addr> {
    let start = args.find("{sa_family=")? + "{sa_family=".len();
    let rest = &args[start..];
    let family = &rest[..rest.find([',', '}'])?];
    if family != "AF_INET" {
        return Some(Addr::Other(family.to_owned()));
    }
    let port = between(rest, "sin_port=htons(", ")")?.parse().ok()?;
    let ip = between(rest, "sin_addr=inet_addr(\"", "\")")?
        .parse()
        .ok()?;
    Some(Addr::V4(ip, port))
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = s.find(open)? + open.len();
    let len = s[start..].find(close)?;
    Some(&s[start..start + len])
}

/// Joins strace's `<unfinished ...>` / `<... name resumed>` halves (per thread), drops
/// signal and exit notes, and returns whole syscall lines; lines it cannot read are errors.
fn syscall_lines(trace: &str) -> (Vec<String>, Vec<String>) {
    let mut pending: HashMap<&str, String> = HashMap::new();
    let (mut calls, mut unreadable) = (Vec::new(), Vec::new());
    for line in trace.lines().filter(|l| !l.trim().is_empty()) {
        let Some((pid, rest)) = line.split_once(' ') else {
            unreadable.push(line.to_owned());
            continue;
        };
        if pid.parse::<u32>().is_err() {
            unreadable.push(line.to_owned());
            continue;
        }
        let rest = rest.trim_start();
        if rest.starts_with("---") || rest.starts_with("+++") {
            continue; // a signal, or a thread's exit
        }
        if let Some(resumed) = rest.strip_prefix("<... ") {
            match (resumed.split_once(" resumed>"), pending.remove(pid)) {
                (Some((_, tail)), Some(head)) => calls.push(format!("{head}{tail}")),
                _ => unreadable.push(line.to_owned()),
            }
        } else if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
            pending.insert(pid, head.to_owned());
        } else {
            calls.push(rest.to_owned());
        }
    }
    // Calls cut short by the end of a thread: their arguments count all the same.
    calls.extend(pending.into_values().map(|head| format!("{head}) = ?")));
    (calls, unreadable)
}

/// Checks the trace against the rules in the module documentation; `allowed_ports` are the
/// ports on 127.0.0.1 that `connect` may reach.
fn check(trace: &str, allowed_ports: &[u16]) -> Observed {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Fd {
        Unbound,
        BoundLoopback,
        Accepted,
    }
    let mut obs = Observed::default();
    let (calls, unreadable) = syscall_lines(trace);
    for line in unreadable {
        obs.violations
            .push(format!("unreadable trace line: {line}"));
    }
    let mut fds: HashMap<i64, Fd> = HashMap::new();
    for line in calls {
        let parsed = line.rfind(" = ").and_then(|eq| {
            let call = line[..eq].trim_end();
            let open = call.find('(')?;
            let args = call[open + 1..].strip_suffix(')')?;
            let ret = line[eq + 3..]
                .split_whitespace()
                .next()?
                .parse::<i64>()
                .ok();
            Some((&call[..open], args, ret))
        });
        let Some((name, args, ret)) = parsed else {
            obs.violations.push(format!("unreadable syscall: {line}"));
            continue;
        };
        obs.calls += 1;
        let fd: Option<i64> = args.split(',').next().and_then(|a| a.trim().parse().ok());
        let violation: Option<&str> = match name {
            "socket" => {
                let mut parts = args.split(',').map(str::trim);
                let domain = parts.next().unwrap_or("");
                let kind = parts.next().unwrap_or("").split('|').next().unwrap_or("");
                if domain != "AF_INET" || kind != "SOCK_STREAM" {
                    Some("a socket other than IPv4 TCP")
                } else {
                    if let Some(fd) = ret.filter(|r| *r >= 0) {
                        fds.insert(fd, Fd::Unbound);
                    }
                    None
                }
            }
            // A connected pair of sockets inside this process (tokio's signal driver makes
            // one): no address, no way out, as no other program runs (one `execve`).
            "socketpair" if args.starts_with("AF_UNIX,") => {
                obs.socketpairs += 1;
                None
            }
            "socketpair" => Some("a socketpair other than AF_UNIX"),
            "connect" => match sockaddr(args) {
                Some(Addr::V4(ip, port))
                    if ip == Ipv4Addr::LOCALHOST && allowed_ports.contains(&port) =>
                {
                    *obs.connects.entry(port).or_default() += 1;
                    None
                }
                _ => Some("a connect to somewhere other than tor's SOCKS or control port"),
            },
            "bind" => match sockaddr(args) {
                Some(Addr::V4(ip, _)) if ip == Ipv4Addr::LOCALHOST => {
                    if let (Some(fd), Some(0)) = (fd, ret) {
                        fds.insert(fd, Fd::BoundLoopback);
                    }
                    None
                }
                _ => Some("a bind to an address other than 127.0.0.1"),
            },
            "listen" => {
                if fd.and_then(|fd| fds.get(&fd)) == Some(&Fd::BoundLoopback) {
                    obs.listens += 1;
                    None
                } else {
                    Some("a listening socket not bound to 127.0.0.1")
                }
            }
            "accept" | "accept4" => match (ret.filter(|r| *r >= 0), sockaddr(args)) {
                (None, _) => None, // failed (EAGAIN): no connection, no address
                (Some(new), Some(Addr::V4(ip, _))) if ip == Ipv4Addr::LOCALHOST => {
                    obs.accepts += 1;
                    fds.insert(new, Fd::Accepted);
                    None
                }
                _ => Some("an accepted connection from somewhere other than 127.0.0.1"),
            },
            "sendto" => {
                (!args.ends_with(", NULL, 0")).then_some("a sendto with a destination address")
            }
            "sendmsg" | "sendmmsg" => {
                let names = args.matches("msg_name=").count();
                (names == 0 || names != args.matches("msg_name=NULL").count())
                    .then_some("a sendmsg with a destination address")
            }
            "io_uring_setup" => Some("io_uring, whose operations strace cannot see"),
            "execve" => {
                obs.execves += 1;
                obs.first_execve.get_or_insert_with(|| line.clone());
                None
            }
            // getsockopt, setsockopt, getsockname, getpeername, recvfrom, recvmsg,
            // shutdown...: on sockets whose creation and destination are checked above.
            _ => None,
        };
        if let Some(why) = violation {
            obs.violations.push(format!("{why}: {line}"));
        }
    }
    obs
}

/// The rules every trace must pass, whatever the child did.
fn assert_one_execve_of_ourselves(obs: &Observed) {
    assert_eq!(
        obs.execves, 1,
        "the child ran another program: {:?}",
        obs.first_execve
    );
    let exe = std::env::current_exe().unwrap();
    let first = obs.first_execve.as_deref().unwrap_or("");
    assert!(
        first.contains(&format!("execve(\"{}\"", exe.display())),
        "the trace is not of this test binary: {first}"
    );
}

// ---------------------------------------------------------------------------------------
// The tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_talks_only_to_its_tors_socks_and_control_ports() {
    let strace = strace();
    logs();
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let net = TestNet::start(TestNetConfig::default()).await.unwrap();
    let observed: TestClient = net.clients()[0].clone();
    let peer_client: TestClient = net.clients()[1].clone();
    let allowed = [observed.control_port, observed.socks_port];
    let mut ports = vec![
        observed.control_port,
        observed.socks_port,
        peer_client.control_port,
        peer_client.socks_port,
    ];
    ports.sort_unstable();
    ports.dedup();
    assert!(ports.len() == 4 && !ports.contains(&0), "{ports:?}");

    // The parent hosts an onion through client 1 and answers one connection to it.
    let peer = attach(peer_client.control_addr(), peer_client.cookie_path.clone()).await;
    let mut peer_listener = peer
        .listen(&Identity::from_seed(&PEER_SEED), CWTCH_PORT)
        .await
        .unwrap();
    let served = tokio::spawn(async move {
        let mut s = tokio::time::timeout(CHILD_LIMIT, peer_listener.accept())
            .await
            .expect("the child never dialled the parent's onion")
            .unwrap();
        let mut buf = vec![0; TO_PEER.len()];
        tokio::time::timeout(STEP, s.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(buf, TO_PEER);
        s.write_all(&reversed(TO_PEER)).await.unwrap();
        s.flush().await.unwrap();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(STEP, s.read_to_end(&mut rest)).await;
        peer_listener
    });

    // The backend under observation.
    let mut child = Traced::spawn(
        &strace,
        tmp.path(),
        "backend",
        &[
            (CONTROL_ENV, observed.control_addr().to_string().as_ref()),
            (COOKIE_ENV, observed.cookie_path.as_os_str()),
        ],
    );
    child.wait_for(READY).await;
    let child_started = Instant::now();

    // Dial the child's onion from client 1; the child answers.
    let mut s = tokio::time::timeout(
        STEP,
        peer.connect(
            &Identity::from_seed(&CHILD_SEED).onion(),
            CWTCH_PORT,
            &IsolationKey::new("parent"),
        ),
    )
    .await
    .expect("dialling the child timed out")
    .unwrap();
    s.write_all(TO_CHILD).await.unwrap();
    let mut buf = vec![0; TO_CHILD.len()];
    tokio::time::timeout(STEP, s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(buf, reversed(TO_CHILD));
    drop(s);

    child.wait_for(DONE).await;
    let status = child.wait().await;
    assert!(
        status.success(),
        "the observed child failed ({status}); its stderr:\n{}",
        child.stderr_tail()
    );
    let _listener = tokio::time::timeout(STEP, served)
        .await
        .expect("the parent's onion did not finish serving the child")
        .unwrap();

    let trace = child.trace();
    let obs = check(&trace, &allowed);
    tracing::info!(
        calls = obs.calls,
        ?obs.connects,
        listens = obs.listens,
        accepts = obs.accepts,
        child_after_ready = ?child_started.elapsed(),
        "observed the backend"
    );
    assert!(
        obs.violations.is_empty(),
        "traffic outside tor's SOCKS and control ports ({allowed:?} on 127.0.0.1):\n{}\n\
         --- the whole trace ---\n{trace}",
        obs.violations.join("\n")
    );
    assert_one_execve_of_ourselves(&obs);
    // Not vacuous: the observation saw the control connection, the dials and the service.
    let to = |port| obs.connects.get(&port).copied().unwrap_or(0);
    assert!(
        to(observed.control_port) >= 1,
        "no connect to the control port seen: {obs:?}"
    );
    assert!(
        to(observed.socks_port) >= 2,
        "fewer than two connects to the SOCKS port (two dials) seen: {obs:?}"
    );
    assert_eq!(obs.listens, 1, "one onion service, one local listener");
    assert!(obs.accepts >= 1, "the child's accept was not seen: {obs:?}");

    peer.close().await;
    net.stop().await.unwrap();
    tracing::info!(took = ?started.elapsed(), "no-leak test done");
}

/// The observation itself: every kind of leak is caught, and a clean child passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_observation_sees_leaks() {
    let strace = strace();
    let tmp = tempfile::tempdir().unwrap();
    let allowed = [CANARY_PORT];
    // (canary, text that one of its violations must contain; "" for the clean one)
    let canaries = [
        ("clean", ""),
        ("other-address", "127.0.0.2"),
        ("other-port", &*format!("htons({})", CANARY_PORT + 1)),
        ("ipv6", "AF_INET6"),
        ("dns", ""),
        ("udp", "sendto("),
        ("listen-everywhere", "0.0.0.0"),
    ];
    for (kind, expected) in canaries {
        let mut child = Traced::spawn(&strace, tmp.path(), &format!("leak:{kind}"), &[]);
        child.stdin = None;
        child.wait_for(DONE).await;
        let status = child.wait().await;
        assert!(status.success(), "canary {kind}: {status}");
        let obs = check(&child.trace(), &allowed);
        assert_one_execve_of_ourselves(&obs);
        if kind == "clean" {
            assert!(obs.violations.is_empty(), "clean: {:?}", obs.violations);
            assert_eq!(obs.connects.get(&CANARY_PORT), Some(&1), "clean: {obs:?}");
            assert_eq!(obs.listens, 1, "clean: {obs:?}");
        } else {
            // (A `dns` canary that makes no network call at all would mean that this machine
            // resolves names from files only, e.g. `hosts: files` in /etc/nsswitch.conf.)
            assert!(
                !obs.violations.is_empty(),
                "canary {kind} was not caught:\n{}",
                child.trace()
            );
            assert!(
                obs.violations.iter().any(|v| v.contains(expected)),
                "canary {kind}: no violation mentions {expected:?}: {:?}",
                obs.violations
            );
        }
    }
}

#[test]
fn the_trace_parser_joins_interrupted_calls_and_refuses_what_it_cannot_read() {
    let trace = "\
10 socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK, IPPROTO_IP) = 7
11 connect(7, {sa_family=AF_INET, sin_port=htons(9050), sin_addr=inet_addr(\"127.0.0.1\")}, 16 <unfinished ...>
10 --- SIGCHLD {si_signo=SIGCHLD} ---
11 <... connect resumed>) = -1 EINPROGRESS (Operation now in progress)
10 sendto(7, \"GETINFO ...\", 12, MSG_NOSIGNAL, NULL, 0) = 12
10 bind(8, {sa_family=AF_INET, sin_port=htons(0), sin_addr=inet_addr(\"127.0.0.1\")}, 16) = 0
10 listen(8, 1024)                    = 0
10 listen(9, 1024)                    = 0
10 socketpair(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK, 0, [6, 7]) = 0
12 connect(9, {sa_family=AF_UNIX, sun_path=\"/var/run/nscd/socket\"}, 110 <unfinished ...>
garbage
";
    let obs = check(trace, &[9050]);
    assert_eq!(obs.connects.get(&9050), Some(&1));
    assert_eq!(obs.calls, 8);
    assert_eq!(obs.socketpairs, 1);
    // listen(8) is on a socket bound to 127.0.0.1; listen(9) on one never bound.
    assert_eq!(obs.listens, 1);
    let v = obs.violations.join("\n");
    assert!(!v.contains("listen(8"), "{v}");
    assert!(v.contains("listen(9"), "{v}");
    assert!(v.contains("AF_UNIX"), "{v}");
    assert!(v.contains("unreadable trace line: garbage"), "{v}");
}
