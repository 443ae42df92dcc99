//! A scripted fake Tor for tests: a control port (PROTOCOLINFO, SAFECOOKIE/COOKIE/password
//! authentication, GETINFO, SETEVENTS, ADD_ONION/DEL_ONION with HS_DESC events) and a SOCKS5
//! port (Tor's extended error codes, or a proxy to the services "hosted" via ADD_ONION).

#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use torv3::Identity;

pub const COOKIE: [u8; 32] = [0x42; 32];

/// How the fake authenticates controllers.
#[derive(Clone, Debug)]
pub enum AuthMode {
    /// `METHODS=COOKIE,SAFECOOKIE`.
    SafeCookie,
    /// `METHODS=COOKIE`.
    CookieOnly,
    /// `METHODS=HASHEDPASSWORD` with this password.
    Password(String),
    /// SAFECOOKIE, but the server hash is wrong (an impostor).
    WrongServerHash,
}

/// (username, password, host, port) of a SOCKS CONNECT.
pub type SocksRequest = (Vec<u8>, Vec<u8>, String, u16);

#[derive(Default)]
pub struct State {
    /// onion -> [(virtual port, local port)]
    pub services: Mutex<HashMap<String, Vec<(u16, u16)>>>,
    /// base64 expanded key -> onion, for the identities the test uses.
    pub known_keys: Mutex<HashMap<String, String>>,
    /// Every command line received (keyword and arguments; AUTHENTICATE arguments elided).
    pub commands: Mutex<Vec<String>>,
    /// Whether ADD_ONION is followed by HS_DESC UPLOADED.
    pub upload: AtomicBool,
    /// Write replies a few bytes at a time.
    pub split_writes: AtomicBool,
    /// Reply to PROTOCOLINFO with garbage.
    pub garbage: AtomicBool,
    /// SOCKS reply codes for the next CONNECTs (else: 0 if hosted, 0xF0 if not).
    pub socks_script: Mutex<VecDeque<u8>>,
    /// How long the fake SOCKS server thinks before replying.
    pub socks_delay: Mutex<Duration>,
    pub socks_active: AtomicUsize,
    pub socks_max: AtomicUsize,
    pub socks_total: AtomicUsize,
    /// (username, password, host, port) of every CONNECT.
    pub socks_requests: Mutex<Vec<SocksRequest>>,
    /// Control connections accepted.
    pub control_connections: AtomicUsize,
    /// Refuse ADD_ONION's proof-of-work keywords, as a tor before 0.4.9.5 does.
    pub refuse_pow: AtomicBool,
}

pub struct MockTor {
    pub control: SocketAddr,
    pub socks: SocketAddr,
    pub cookie_path: PathBuf,
    pub state: Arc<State>,
    events: broadcast::Sender<String>,
    kill: broadcast::Sender<()>,
    _dir: tempfile::TempDir,
}

impl MockTor {
    pub async fn start(auth: AuthMode) -> MockTor {
        let dir = tempfile::tempdir().unwrap();
        let cookie_path = dir.path().join("control_auth_cookie");
        std::fs::write(&cookie_path, COOKIE).unwrap();
        let control_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let socks_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let control = control_listener.local_addr().unwrap();
        let socks = socks_listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        state.upload.store(true, Ordering::SeqCst);
        let (events, _) = broadcast::channel(64);
        let (kill, _) = broadcast::channel(4);
        {
            let (state, events, kill, cookie_path) = (
                Arc::clone(&state),
                events.clone(),
                kill.clone(),
                cookie_path.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let (stream, _) = control_listener.accept().await.unwrap();
                    state.control_connections.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(control_conn(
                        stream,
                        Arc::clone(&state),
                        auth.clone(),
                        socks,
                        cookie_path.clone(),
                        events.subscribe(),
                        kill.subscribe(),
                    ));
                }
            });
        }
        {
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                loop {
                    let (stream, _) = socks_listener.accept().await.unwrap();
                    tokio::spawn(socks_conn(stream, Arc::clone(&state)));
                }
            });
        }
        MockTor {
            control,
            socks,
            cookie_path,
            state,
            events,
            kill,
            _dir: dir,
        }
    }

    /// Make the fake report `identity`'s onion for its key (as Tor would).
    pub fn know(&self, identity: &Identity) {
        let b64 = base64::engine::general_purpose::STANDARD
            .encode(identity.tor_expanded_secret_key().as_slice());
        self.state
            .known_keys
            .lock()
            .unwrap()
            .insert(b64, identity.onion().as_str().to_owned());
    }

    /// Send `650 <text>` to every control connection.
    pub fn event(&self, text: &str) {
        let _ = self.events.send(text.to_owned());
    }

    /// Drop every control connection.
    pub fn kill_connections(&self) {
        let _ = self.kill.send(());
    }

    pub fn commands(&self) -> Vec<String> {
        self.state.commands.lock().unwrap().clone()
    }

    pub fn count(&self, prefix: &str) -> usize {
        self.commands()
            .iter()
            .filter(|c| c.starts_with(prefix))
            .count()
    }

    pub fn hosted(&self, onion: &str) -> bool {
        self.state.services.lock().unwrap().contains_key(onion)
    }

    pub fn script(&self, codes: &[u8]) {
        self.state
            .socks_script
            .lock()
            .unwrap()
            .extend(codes.iter().copied());
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Unquote a control-protocol quoted string (enough for passwords).
fn unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next()? {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                other => out.push(other),
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// An onion that is not any test identity's.
pub fn stranger_onion() -> String {
    Identity::from_seed(&[0xEE; 32]).onion().as_str().to_owned()
}

async fn control_conn(
    stream: TcpStream,
    state: Arc<State>,
    auth: AuthMode,
    socks: SocketAddr,
    cookie_path: PathBuf,
    mut events: broadcast::Receiver<String>,
    mut kill: broadcast::Receiver<()>,
) {
    let (read, mut write_half) = stream.into_split();
    // Writes go through one task so events and replies never interleave mid-line.
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let writer_state = Arc::clone(&state);
    let writer = tokio::spawn(async move {
        // Reunite is not needed: write through the owned half.
        while let Some(text) = out_rx.recv().await {
            let mut buf = Vec::new();
            buf.extend_from_slice(text.as_bytes());
            if writer_state.split_writes.load(Ordering::SeqCst) {
                for chunk in buf.chunks(3) {
                    if write_half.write_all(chunk).await.is_err() {
                        return;
                    }
                    let _ = write_half.flush().await;
                    tokio::task::yield_now().await;
                }
            } else if write_half.write_all(&buf).await.is_err() {
                return;
            }
        }
    });
    let mut lines = BufReader::new(read).lines();
    let mut client_nonce = Vec::new();
    let mut server_nonce = Vec::new();
    let mut events_on = false;
    loop {
        let line = tokio::select! {
            _ = kill.recv() => break,
            e = events.recv() => {
                if let Ok(e) = e {
                    if events_on {
                        let _ = out_tx.send(format!("650 {e}\r\n"));
                    }
                }
                continue;
            }
            l = lines.next_line() => match l {
                Ok(Some(l)) => l,
                _ => break,
            },
        };
        let (keyword, args) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let logged = if keyword == "AUTHENTICATE" {
            "AUTHENTICATE".to_owned()
        } else {
            line.clone()
        };
        state.commands.lock().unwrap().push(logged);
        let reply = match keyword {
            "PROTOCOLINFO" if state.garbage.load(Ordering::SeqCst) => {
                "this is not the control protocol\r\n".to_owned()
            }
            "PROTOCOLINFO" => {
                let methods = match &auth {
                    AuthMode::SafeCookie | AuthMode::WrongServerHash => "COOKIE,SAFECOOKIE",
                    AuthMode::CookieOnly => "COOKIE",
                    AuthMode::Password(_) => "HASHEDPASSWORD",
                };
                format!(
                    "250-PROTOCOLINFO 1\r\n250-AUTH METHODS={methods} COOKIEFILE=\"{}\"\r\n250-VERSION Tor=\"0.4.9.11\"\r\n250 OK\r\n",
                    cookie_path.display()
                )
            }
            "AUTHCHALLENGE" => {
                let nonce_hex = args.strip_prefix("SAFECOOKIE ").unwrap_or("");
                client_nonce = hex::decode(nonce_hex).unwrap_or_default();
                server_nonce = vec![0x77; 32];
                let mut server_hash = hmac(
                    b"Tor safe cookie authentication server-to-controller hash",
                    &[&COOKIE, &client_nonce, &server_nonce],
                );
                if matches!(auth, AuthMode::WrongServerHash) {
                    server_hash[0] ^= 1;
                }
                format!(
                    "250 AUTHCHALLENGE SERVERHASH={} SERVERNONCE={}\r\n",
                    hex::encode_upper(server_hash),
                    hex::encode_upper(&server_nonce)
                )
            }
            "AUTHENTICATE" => {
                let ok = match &auth {
                    AuthMode::SafeCookie | AuthMode::WrongServerHash => {
                        let want = hmac(
                            b"Tor safe cookie authentication controller-to-server hash",
                            &[&COOKIE, &client_nonce, &server_nonce],
                        );
                        hex::decode(args).ok() == Some(want)
                    }
                    AuthMode::CookieOnly => hex::decode(args).ok() == Some(COOKIE.to_vec()),
                    AuthMode::Password(p) => unquote(args).as_deref() == Some(p.as_str()),
                };
                if ok {
                    "250 OK\r\n".to_owned()
                } else {
                    let _ = out_tx.send("515 Authentication failed\r\n".to_owned());
                    break;
                }
            }
            "SETEVENTS" => {
                events_on = args.contains("STATUS_CLIENT");
                "250 OK\r\n".to_owned()
            }
            "TAKEOWNERSHIP" | "SETCONF" | "SIGNAL" => "250 OK\r\n".to_owned(),
            "GETINFO" => match args {
                "version" => "250-version=0.4.9.11 (mock)\r\n250 OK\r\n".to_owned(),
                "status/bootstrap-phase" => "250-status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=50 TAG=loading_descriptors SUMMARY=\"Loading relay descriptors\"\r\n250 OK\r\n".to_owned(),
                "net/listeners/socks" => format!("250-net/listeners/socks=\"{socks}\"\r\n250 OK\r\n"),
                other => format!("552 Unrecognized key \"{other}\"\r\n"),
            },
            "ADD_ONION"
                if state.refuse_pow.load(Ordering::SeqCst) && args.contains(" PoW") =>
            {
                // Tor's argument parser, for a keyword it does not know.
                "512 Bad arguments to ADD_ONION: Unrecognized keyword argument \"PoWDefensesEnabled\"\r\n"
                    .to_owned()
            }
            "ADD_ONION" => {
                let mut parts = args.split(' ');
                let key = parts.next().unwrap_or("");
                let b64 = key.strip_prefix("ED25519-V3:").unwrap_or("");
                let onion = state
                    .known_keys
                    .lock()
                    .unwrap()
                    .get(b64)
                    .cloned()
                    .unwrap_or_else(stranger_onion);
                let ports: Vec<(u16, u16)> = parts
                    .filter_map(|p| p.strip_prefix("Port="))
                    .filter_map(|p| {
                        let (v, target) = p.split_once(',')?;
                        let local = target.strip_prefix("127.0.0.1:")?;
                        Some((v.parse().ok()?, local.parse().ok()?))
                    })
                    .collect();
                let mut services = state.services.lock().unwrap();
                if services.contains_key(&onion) {
                    "550 Onion address collision\r\n".to_owned()
                } else {
                    services.insert(onion.clone(), ports);
                    if state.upload.load(Ordering::SeqCst) {
                        let out = out_tx.clone();
                        let onion = onion.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            let _ = out.send(format!(
                                "650 HS_DESC UPLOAD {onion} UNKNOWN $AAAA~hsdir1 DESCID\r\n650 HS_DESC FAILED {onion} UNKNOWN $BBBB~hsdir2 REASON=UPLOAD_REJECTED\r\n650 HS_DESC UPLOADED {onion} UNKNOWN $AAAA~hsdir1\r\n"
                            ));
                        });
                    }
                    format!("250-ServiceID={onion}\r\n250 OK\r\n")
                }
            }
            "DEL_ONION" => {
                if state.services.lock().unwrap().remove(args).is_some() {
                    "250 OK\r\n".to_owned()
                } else {
                    "552 Unknown Onion Service id\r\n".to_owned()
                }
            }
            _ => format!("510 Unrecognized command \"{keyword}\"\r\n"),
        };
        if out_tx.send(reply).is_err() {
            break;
        }
    }
    // Like Tor: ephemeral services die with the connection that made them... for simplicity
    // the fake forgets them all.
    state.services.lock().unwrap().clear();
    drop(out_tx);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
}

async fn socks_conn(mut stream: TcpStream, state: Arc<State>) {
    let mut greeting = [0u8; 2];
    if stream.read_exact(&mut greeting).await.is_err() {
        return;
    }
    let mut methods = vec![0u8; usize::from(greeting[1])];
    stream.read_exact(&mut methods).await.unwrap();
    assert!(methods.contains(&2), "client must offer username/password");
    stream.write_all(&[5, 2]).await.unwrap();
    let mut ver_ulen = [0u8; 2];
    stream.read_exact(&mut ver_ulen).await.unwrap();
    let mut user = vec![0u8; usize::from(ver_ulen[1])];
    stream.read_exact(&mut user).await.unwrap();
    let mut plen = [0u8; 1];
    stream.read_exact(&mut plen).await.unwrap();
    let mut pass = vec![0u8; usize::from(plen[0])];
    stream.read_exact(&mut pass).await.unwrap();
    stream.write_all(&[1, 0]).await.unwrap();
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(&head[..4], &[5, 1, 0, 3], "CONNECT to a domain name");
    let mut host = vec![0u8; usize::from(head[4])];
    stream.read_exact(&mut host).await.unwrap();
    let mut port = [0u8; 2];
    stream.read_exact(&mut port).await.unwrap();
    let host = String::from_utf8(host).unwrap();
    let port = u16::from_be_bytes(port);
    state
        .socks_requests
        .lock()
        .unwrap()
        .push((user, pass, host.clone(), port));

    let active = state.socks_active.fetch_add(1, Ordering::SeqCst) + 1;
    state.socks_max.fetch_max(active, Ordering::SeqCst);
    state.socks_total.fetch_add(1, Ordering::SeqCst);
    let delay = *state.socks_delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let scripted = state.socks_script.lock().unwrap().pop_front();
    let onion = host.strip_suffix(".onion").unwrap_or(&host).to_owned();
    let target = state
        .services
        .lock()
        .unwrap()
        .get(&onion)
        .map(|ports| ports.iter().find(|(v, _)| *v == port).map(|(_, l)| *l));
    let (code, local) = match (scripted, target) {
        (Some(code), target) if code != 0 => (code, target.flatten()),
        (_, Some(Some(local))) => (0, Some(local)),
        // Hosted, but not on this port: Tor's "connection refused".
        (_, Some(None)) => (5, None),
        (_, None) => (0xF0, None),
    };
    state.socks_active.fetch_sub(1, Ordering::SeqCst);
    if code != 0 {
        let _ = stream.write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0]).await;
        return;
    }
    let Some(local) = local else { return };
    let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", local)).await else {
        let _ = stream.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await;
        return;
    };
    // Reply with a domain-name bound address, to exercise that path of the client.
    let mut reply = vec![5, 0, 0, 3, 4];
    reply.extend_from_slice(b"mock");
    reply.extend_from_slice(&[0, 0]);
    stream.write_all(&reply).await.unwrap();
    let _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await;
}
