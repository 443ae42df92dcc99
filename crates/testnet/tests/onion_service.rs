#![allow(clippy::unwrap_used)]
//! The network carries onion services: client A publishes one with raw control commands
//! (`ADD_ONION`), client B reaches it through SOCKS5 and bytes flow both ways.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

use testnet::{TestClient, TestNet, TestNetConfig};

const STEP: Duration = Duration::from_secs(60);

/// A bare control connection: command/reply, with asynchronous `650` events set aside.
struct Control {
    lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
    w: OwnedWriteHalf,
    /// Asynchronous events read while waiting for a command's reply.
    events: Vec<String>,
}

impl Control {
    async fn connect(client: &TestClient) -> Control {
        let stream = TcpStream::connect(client.control_addr()).await.unwrap();
        let (r, w) = stream.into_split();
        let mut c = Control {
            lines: BufReader::new(r).lines(),
            w,
            events: Vec::new(),
        };
        let cookie = std::fs::read(&client.cookie_path).unwrap();
        let hex: String = cookie.iter().map(|b| format!("{b:02x}")).collect();
        c.command(&format!("AUTHENTICATE {hex}")).await;
        c
    }

    async fn line(&mut self) -> String {
        timeout(STEP, self.lines.next_line())
            .await
            .expect("control port silent")
            .unwrap()
            .expect("control connection closed")
    }

    /// Sends a command, returns its (250) reply lines.
    async fn command(&mut self, cmd: &str) -> Vec<String> {
        self.w
            .write_all(format!("{cmd}\r\n").as_bytes())
            .await
            .unwrap();
        let mut reply = Vec::new();
        loop {
            let line = self.line().await;
            if line.starts_with("650") {
                self.events.push(line);
                continue;
            }
            assert!(line.starts_with("250"), "{cmd:?} -> {line:?}");
            let last = line.as_bytes()[3] == b' ';
            reply.push(line);
            if last {
                return reply;
            }
        }
    }

    /// Waits until every descriptor upload of `service_id` that tor has started so far has
    /// finished (`UPLOADED` or `FAILED`), and at least one succeeded. Waiting for the first
    /// `UPLOADED` only is not enough: the dialling client may ask an HSDir that has not got
    /// the descriptor yet (0xF0), and then, having asked every responsible HSDir recently,
    /// fails with 0x01 on the retry.
    async fn wait_for_uploads(&mut self, service_id: &str) -> (usize, usize) {
        let (mut started, mut uploaded, mut failed) = (0, 0, 0);
        let mut pending = std::mem::take(&mut self.events).into_iter();
        loop {
            let line = match pending.next() {
                Some(l) => l,
                None => self.line().await,
            };
            let words: Vec<&str> = line.split(' ').collect();
            if words.len() < 4 || words[1] != "HS_DESC" || words[3] != service_id {
                continue;
            }
            match words[2] {
                "UPLOAD" => started += 1,
                "UPLOADED" => uploaded += 1,
                "FAILED" => failed += 1,
                _ => {}
            }
            if started > 0 && uploaded + failed >= started {
                assert!(uploaded > 0, "every descriptor upload failed");
                return (uploaded, failed);
            }
        }
    }
}

/// SOCKS5 CONNECT to `host:port` through `proxy`; the reply code on failure (with
/// `ExtendedErrors`, 0xF0-0xF7 are onion-service errors).
async fn socks_connect(proxy: SocketAddr, host: &str, port: u16) -> Result<TcpStream, u8> {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(&[5, 1, 0]).await.unwrap();
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice).await.unwrap();
    assert_eq!(choice, [5, 0]);
    let mut req = vec![5, 1, 0, 3, u8::try_from(host.len()).unwrap()];
    req.extend_from_slice(host.as_bytes());
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).await.unwrap();
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await.unwrap();
    let addr_len = match head[3] {
        1 => 4,
        4 => 16,
        3 => usize::from(s.read_u8().await.unwrap()),
        other => panic!("bad SOCKS address type {other}"),
    };
    let mut rest = vec![0u8; addr_len + 2];
    s.read_exact(&mut rest).await.unwrap();
    match head[1] {
        0 => Ok(s),
        code => Err(code),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reaches_another_clients_onion_service() {
    let net = TestNet::start(TestNetConfig::default()).await.unwrap();
    let (a, b) = (&net.clients()[0], &net.clients()[1]);

    // The service's backend: an echo server on loopback.
    let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_port = backend.local_addr().unwrap().port();
    let echo = tokio::spawn(async move {
        let (mut s, _) = backend.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let mut total = 0;
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                return total;
            }
            total += n;
            s.write_all(&buf[..n]).await.unwrap();
        }
    });

    // Client A publishes the service and we wait for the descriptor upload.
    let mut control = Control::connect(a).await;
    control.command("SETEVENTS HS_DESC").await;
    let published = Instant::now();
    let reply = control
        .command(&format!(
            "ADD_ONION NEW:ED25519-V3 Flags=DiscardPK Port=80,127.0.0.1:{backend_port}"
        ))
        .await;
    let service_id = reply
        .iter()
        .find_map(|l| l.strip_prefix("250-ServiceID="))
        .unwrap()
        .to_owned();
    assert_eq!(service_id.len(), 56);
    let (uploaded, failed) = control.wait_for_uploads(&service_id).await;
    let upload_time = published.elapsed();

    // Client B dials it, once: with every upload done, the first dial must work (no
    // "descriptor not found", 0xF0).
    let onion = format!("{service_id}.onion");
    let dialled = Instant::now();
    let dial = timeout(STEP, socks_connect(b.socks_addr(), &onion, 80))
        .await
        .expect("SOCKS CONNECT timed out");
    let mut stream = match dial {
        Ok(s) => s,
        Err(code) => {
            for c in net.clients() {
                let log = std::fs::read_to_string(c.data_dir.join("tor.log")).unwrap();
                eprintln!("==== {}\n{log}", c.name);
            }
            panic!("SOCKS reply {code:#04x}")
        }
    };
    let connect_time = dialled.elapsed();

    let mut rtts = Vec::new();
    for i in 0..10u8 {
        let msg = [i; 100];
        let sent = Instant::now();
        stream.write_all(&msg).await.unwrap();
        let mut back = [0u8; 100];
        timeout(STEP, stream.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        rtts.push(sent.elapsed());
        assert_eq!(back, msg);
    }
    drop(stream);
    assert_eq!(timeout(STEP, echo).await.unwrap().unwrap(), 1000);
    rtts.sort();
    eprintln!(
        "descriptor uploads done after {upload_time:?} ({uploaded} uploaded, {failed} failed); \
         connected after {connect_time:?}; round trips {rtts:?}"
    );

    control.command(&format!("DEL_ONION {service_id}")).await;
    net.stop().await.unwrap();
}
