//! Launch mode against the real `tor` binary (Debian's, on `PATH`), without network access:
//! it starts, authenticates with the cookie (SAFECOOKIE), reports its version and bootstrap
//! events, and never leaves a tor behind. It cannot finish bootstrapping here, so nothing
//! waits for 100%.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use connectivity::{
    Acn, ConfigProblem, Error, IsolationKey, Operation, TorAcn, TorConfig, TorTimeouts, CWTCH_PORT,
};
use torv3::Identity;

const WAIT: Duration = Duration::from_secs(30);

fn tor_available() {
    let ok = std::process::Command::new("tor")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "these tests need `tor` on PATH (scripts/setup installs it)"
    );
}

/// A launch configuration that keeps tor off the internet: its only "bridge" is a local TCP
/// listener that accepts connections and never speaks. Keep the listener alive.
fn offline(dir: &Path) -> (TorConfig, std::net::TcpListener) {
    let bridge = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = bridge.local_addr().unwrap().port();
    let config = TorConfig::launch(dir)
        .timeouts(timeouts())
        .extra_torrc_lines([
            "UseBridges 1".to_owned(),
            format!("Bridge 127.0.0.1:{port}"),
        ]);
    (config, bridge)
}

fn timeouts() -> TorTimeouts {
    let mut t = TorTimeouts::default();
    t.publish = Duration::from_secs(2);
    t.start = Duration::from_secs(30);
    t
}

/// Whether `pid` is a running (not zombie) process.
fn is_live(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next())
                .unwrap_or("");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}

async fn wait_dead(pid: u32) {
    let deadline = Instant::now() + WAIT;
    while is_live(pid) {
        assert!(Instant::now() < deadline, "tor {pid} still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn launch_authenticates_reports_version_and_bootstrap_events_then_closes() {
    tor_available();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tor data");
    // Tor reports connecting (5%) and connected (10%) to its silent bridge, then stalls.
    let (config, bridge) = offline(&dir);
    let bridge_port = bridge.local_addr().unwrap().port();
    let acn = TorAcn::new(config).await.unwrap();
    let pid = acn.pid().unwrap();
    assert!(is_live(pid));
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap()
            .trim(),
        "tor"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("tor.pid")).unwrap().trim(),
        pid.to_string()
    );
    assert!(acn.socks_addr().unwrap().ip().is_loopback());
    assert_eq!(acn.data_dir(), Some(dir.as_path()));

    let version = acn.version().await.unwrap();
    let expected = String::from_utf8(
        std::process::Command::new("tor")
            .arg("--version")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        expected.contains(&format!("Tor version {version}")),
        "{version} vs {expected}"
    );

    // The torrc we expect, private.
    let torrc = std::fs::read_to_string(dir.join("torrc")).unwrap();
    let d = dir.display();
    for line in [
        format!("DataDirectory \"{d}/data\""),
        "SocksPort auto OnionTrafficOnly ExtendedErrors IsolateSOCKSAuth".to_owned(),
        "ControlPort auto".to_owned(),
        format!("ControlPortWriteToFile \"{d}/control-port\""),
        "CookieAuthentication 1".to_owned(),
        format!("CookieAuthFile \"{d}/control_auth_cookie\""),
        format!("PidFile \"{d}/tor.pid\""),
        format!("__OwningControllerProcess {}", std::process::id()),
        "ClientOnly 1".to_owned(),
        format!("Log \"notice file {d}/notice.log\""),
    ] {
        assert!(
            torrc.lines().any(|l| l == line),
            "missing {line:?} in\n{torrc}"
        );
    }
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("torrc")), 0o600);
    assert_eq!(
        std::fs::read(dir.join("control_auth_cookie"))
            .unwrap()
            .len(),
        32
    );

    // Bootstrap progress arrives as events once the network is enabled (tor starts with
    // DisableNetwork 1 so that none is missed).
    let mut status = acn.status();
    tokio::time::timeout(
        WAIT,
        status.wait_for(|s| s.progress == 10 && s.summary == "Connected to a relay"),
    )
    .await
    .expect("no bootstrap event from tor")
    .unwrap();
    assert!(torrc.contains(&format!("\nBridge 127.0.0.1:{bridge_port}\n")));
    drop(bridge);

    acn.close().await;
    wait_dead(pid).await;
    assert!(status.changed().await.is_err(), "status channel closed");
    assert!(matches!(acn.version().await, Err(Error::Closed)));
}

#[tokio::test]
async fn dropping_the_acn_stops_tor() {
    tor_available();
    let tmp = tempfile::tempdir().unwrap();
    let (config, _bridge) = offline(&tmp.path().join("tor"));
    let acn = TorAcn::new(config).await.unwrap();
    let pid = acn.pid().unwrap();
    assert!(is_live(pid));
    drop(acn);
    wait_dead(pid).await;
}

#[tokio::test]
async fn insecure_data_dir_is_refused_before_use() {
    tor_available();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("open");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    let r = TorAcn::launch(&dir).await;
    assert!(
        matches!(&r, Err(Error::InsecureDirectory { mode: 0o750, path }) if *path == dir),
        "{r:?}"
    );
    assert!(
        !dir.join("torrc").exists(),
        "nothing written to an insecure directory"
    );
}

#[tokio::test]
async fn a_stale_tor_from_our_pid_file_is_killed_first() {
    tor_available();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tor");
    // A first run writes the torrc.
    let (config, _bridge) = offline(&dir);
    let first = TorAcn::new(config.clone()).await.unwrap();
    first.close().await;

    // An orphan of a "crashed" run: a tor on our data directory that nobody controls.
    let mut orphan = std::process::Command::new("tor")
        .arg("-f")
        .arg(dir.join("torrc"))
        .arg("--defaults-torrc")
        .arg(dir.join("torrc-defaults"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let orphan_pid = orphan.id();
    let deadline = Instant::now() + WAIT;
    while std::fs::read_to_string(dir.join("tor.pid"))
        .map(|p| p.trim() != orphan_pid.to_string())
        .unwrap_or(true)
    {
        assert!(
            Instant::now() < deadline,
            "orphan tor did not write its pid file"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Without the check, this tor would refuse to start: the orphan holds the data
    // directory's lock.
    let second = TorAcn::new(config).await.unwrap();
    assert!(!is_live(orphan_pid));
    assert!(orphan.try_wait().unwrap().is_some());
    assert_ne!(second.pid(), Some(orphan_pid));
    assert!(second.version().await.is_ok());
    let pid = second.pid().unwrap();
    second.close().await;
    wait_dead(pid).await;
}

#[tokio::test]
async fn a_bogus_binary_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let r =
        TorAcn::new(TorConfig::launch(tmp.path().join("a")).tor_binary("/nonexistent/tor")).await;
    match r {
        Err(e @ Error::TorSpawn { .. }) => {
            assert!(e.to_string().contains("/nonexistent/tor"), "{e}");
            let Error::TorSpawn { source, .. } = e else {
                unreachable!()
            };
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
    // A binary that runs but is not tor (exits at once).
    let r = TorAcn::new(TorConfig::launch(tmp.path().join("b")).tor_binary("false")).await;
    assert!(
        matches!(r, Err(Error::TorExited { code: Some(1) })),
        "{r:?}"
    );
    // A torrc line tor rejects: tor exits, and we say so.
    tor_available();
    let r = TorAcn::new(
        TorConfig::launch(tmp.path().join("c")).extra_torrc_lines(["NoSuchTorOption 1"]),
    )
    .await;
    assert!(matches!(r, Err(Error::TorExited { .. })), "{r:?}");
    // A torrc line with a newline never reaches tor.
    let r = TorAcn::new(
        TorConfig::launch(tmp.path().join("d")).extra_torrc_lines(["A 1\nControlPort 9051"]),
    )
    .await;
    assert!(
        matches!(
            r,
            Err(Error::InvalidConfig {
                problem: ConfigProblem::InvalidTorrcLine(0)
            })
        ),
        "{r:?}"
    );
}

#[tokio::test]
async fn real_tor_accepts_our_key_and_bounds_the_waits_without_a_network() {
    tor_available();
    let tmp = tempfile::tempdir().unwrap();
    let mut dial = connectivity::DialPolicy::default();
    dial.attempt_timeout = Duration::from_secs(2);
    dial.max_attempts = 1;
    let (config, _bridge) = offline(&tmp.path().join("tor"));
    let acn = TorAcn::new(config.dial_policy(dial)).await.unwrap();
    let alice = Identity::from_seed(&[1; 32]);
    // Tor accepts the expanded key and reports alice's onion (else: OnionMismatch), but
    // cannot upload a descriptor without a network: a bounded wait, then an error.
    let r = acn.listen(&alice, CWTCH_PORT).await;
    assert!(
        matches!(
            r,
            Err(Error::Timeout {
                operation: Operation::Listen
            })
        ),
        "{:?}",
        r.err()
    );
    let start = Instant::now();
    let r = acn
        .connect(&alice.onion(), CWTCH_PORT, &IsolationKey::new("k"))
        .await;
    // Tor holds the stream while it cannot bootstrap: our attempt timeout ends the wait.
    let e = r.err().unwrap();
    assert!(
        matches!(
            e,
            Error::Timeout {
                operation: Operation::Connect
            }
        ),
        "{e:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    acn.close().await;
}

#[tokio::test]
async fn restart_replaces_our_tor() {
    tor_available();
    let tmp = tempfile::tempdir().unwrap();
    let (config, _bridge) = offline(&tmp.path().join("tor"));
    let acn = TorAcn::new(config).await.unwrap();
    let first = acn.pid().unwrap();
    acn.restart().await.unwrap();
    let second = acn.pid().unwrap();
    assert_ne!(first, second);
    wait_dead(first).await;
    assert!(is_live(second));
    assert!(acn.version().await.is_ok());
    acn.close().await;
    wait_dead(second).await;
}
