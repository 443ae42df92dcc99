#![allow(clippy::unwrap_used)]
//! The network comes up, every client reports bootstrap 100% on its own control port, a client
//! can be added, and `stop` leaves no tor alive and removes the directory.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use testnet::{Role, TestClient, TestNet, TestNetConfig};

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "testnet=debug".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Our own look at a client's control port (independent of the crate's): authenticate with
/// the cookie and ask for the bootstrap phase.
async fn bootstrap_phase(client: &TestClient) -> String {
    let cookie = std::fs::read(&client.cookie_path).unwrap();
    let stream = TcpStream::connect(client.control_addr()).await.unwrap();
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    let hex: String = cookie.iter().map(|b| format!("{b:02x}")).collect();
    w.write_all(format!("AUTHENTICATE {hex}\r\n").as_bytes())
        .await
        .unwrap();
    assert_eq!(lines.next_line().await.unwrap().unwrap(), "250 OK");
    w.write_all(b"GETINFO status/bootstrap-phase\r\n")
        .await
        .unwrap();
    let phase = lines.next_line().await.unwrap().unwrap();
    assert_eq!(lines.next_line().await.unwrap().unwrap(), "250 OK");
    phase
}

/// Whether `pid` is a live process whose command line mentions `dir` (so a recycled pid does
/// not count).
fn tor_alive_in(pid: u32, dir: &Path) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => String::from_utf8_lossy(&cmdline).contains(&*dir.to_string_lossy()),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comes_up_bootstraps_clients_adds_one_and_stops_cleanly() {
    init_tracing();
    let mut net = TestNet::start(TestNetConfig::default()).await.unwrap();
    let timings = net.timings();
    eprintln!("{timings:?}");
    assert!(timings.network > Duration::ZERO && timings.clients > Duration::ZERO);
    assert!(net.tor_version().starts_with("Tor version "));

    let processes = net.processes();
    let count = |role| processes.iter().filter(|p| p.role == role).count();
    assert_eq!(count(Role::Authority), 3);
    assert_eq!(count(Role::Relay), 2);
    assert_eq!(count(Role::Client), 2);
    for p in &processes {
        assert!(p.data_dir.starts_with(net.dir()));
        assert!(p.vm_rss_kib().unwrap() > 0, "{p:?}");
        assert!(tor_alive_in(p.pid, net.dir()), "{p:?}");
    }

    assert_eq!(net.clients().len(), 2);
    for client in net.clients() {
        let phase = bootstrap_phase(client).await;
        assert!(phase.contains("PROGRESS=100"), "{}: {phase}", client.name);
        // The SOCKS port is open.
        TcpStream::connect(client.socks_addr()).await.unwrap();
        assert!(client.data_dir.starts_with(net.dir()));
    }

    let lines = net.client_torrc_lines();
    assert!(lines.contains(&"TestingTorNetwork 1".to_owned()));
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("DirAuthority "))
            .count(),
        3
    );

    let added = net.add_client().await.unwrap().clone();
    assert_eq!(added.name, "client2");
    assert!(bootstrap_phase(&added).await.contains("PROGRESS=100"));
    assert_eq!(net.clients().len(), 3);
    net.check_running().unwrap();

    let dir = net.dir().to_owned();
    let pids: Vec<u32> = net.processes().iter().map(|p| p.pid).collect();
    assert_eq!(pids.len(), 8);
    net.stop().await.unwrap();
    for pid in pids {
        assert!(!tor_alive_in(pid, &dir), "tor {pid} survived stop");
    }
    assert!(!dir.exists(), "{} was not removed", dir.display());
}
