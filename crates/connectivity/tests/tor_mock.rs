//! `TorAcn` against a scripted fake Tor (control port and SOCKS port written in the test):
//! authentication, status, hosting, dialing, error mapping, retries and limits.

#![allow(clippy::unwrap_used)]

mod mock_tor;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use connectivity::{
    Acn, AuthProblem, ControlAuth, ControlPassword, DialPolicy, DialRejection, Error, IsolationKey,
    ListenOptions, Operation, PowDefense, ProtocolProblem, TorAcn, TorConfig, TorTimeouts,
    UnreachableReason, CWTCH_PORT,
};
use mock_tor::{AuthMode, MockTor};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use torv3::Identity;

const WAIT: Duration = Duration::from_secs(10);

fn identity(n: u8) -> Identity {
    Identity::from_seed(&[n; 32])
}

fn quick_timeouts() -> TorTimeouts {
    let mut t = TorTimeouts::default();
    t.command = Duration::from_secs(5);
    t.publish = Duration::from_secs(5);
    t.start = Duration::from_secs(5);
    t
}

fn policy(attempts: u32) -> DialPolicy {
    let mut p = DialPolicy::default();
    p.max_attempts = attempts;
    p.initial_backoff = Duration::from_millis(50);
    p.max_backoff = Duration::from_millis(80);
    p.attempt_timeout = Duration::from_secs(5);
    p
}

fn config(mock: &MockTor, auth: ControlAuth) -> TorConfig {
    TorConfig::attach(mock.control.to_string(), auth)
        .timeouts(quick_timeouts())
        .dial_policy(policy(1))
}

async fn attach(mock: &MockTor) -> TorAcn {
    TorAcn::new(config(mock, ControlAuth::Cookie(None)))
        .await
        .unwrap()
}

async fn attach_with(mock: &MockTor, dial: DialPolicy) -> TorAcn {
    TorAcn::new(config(mock, ControlAuth::Cookie(None)).dial_policy(dial))
        .await
        .unwrap()
}

async fn wait_until(mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "condition not reached in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn safecookie_attach_seeds_status_and_reports_version() {
    let mock = MockTor::start(AuthMode::SafeCookie).await;
    let acn = attach(&mock).await;
    assert_eq!(acn.version().await.unwrap(), "0.4.9.11 (mock)");
    assert_eq!(acn.socks_addr(), Some(mock.socks));
    assert_eq!(acn.pid(), None);
    assert!(acn.is_anonymous());
    assert_eq!(acn.name(), "tor");
    let status = acn.status().borrow().clone();
    assert_eq!(status.progress, 50);
    assert_eq!(status.summary, "Loading relay descriptors");
    let commands = mock.commands();
    assert!(commands
        .iter()
        .any(|c| c.starts_with("AUTHCHALLENGE SAFECOOKIE ")));
    assert!(commands.contains(&"SETEVENTS STATUS_CLIENT HS_DESC".to_owned()));
    // Attach mode never takes ownership of someone else's tor.
    assert_eq!(mock.count("TAKEOWNERSHIP"), 0);
}

#[tokio::test]
async fn explicit_cookie_file_and_plain_cookie_fallback() {
    let mock = MockTor::start(AuthMode::CookieOnly).await;
    let acn = TorAcn::new(config(
        &mock,
        ControlAuth::Cookie(Some(mock.cookie_path.clone())),
    ))
    .await
    .unwrap();
    assert!(acn.version().await.is_ok());
    assert_eq!(mock.count("AUTHCHALLENGE"), 0);
}

#[tokio::test]
async fn password_authentication_quotes_the_password() {
    let password = "p\"a ss\\word";
    let mock = MockTor::start(AuthMode::Password(password.to_owned())).await;
    let acn = TorAcn::new(config(
        &mock,
        ControlAuth::Password(ControlPassword::new(password)),
    ))
    .await
    .unwrap();
    assert!(acn.version().await.is_ok());

    let wrong = TorAcn::new(config(
        &mock,
        ControlAuth::Password(ControlPassword::new("wrong")),
    ))
    .await;
    assert!(
        matches!(
            wrong,
            Err(Error::Authentication {
                problem: AuthProblem::Rejected
            })
        ),
        "{wrong:?}"
    );
}

#[tokio::test]
async fn impostor_with_wrong_server_hash_is_refused() {
    let mock = MockTor::start(AuthMode::WrongServerHash).await;
    let r = TorAcn::new(config(&mock, ControlAuth::Cookie(None))).await;
    assert!(
        matches!(
            r,
            Err(Error::Authentication {
                problem: AuthProblem::ServerHashMismatch
            })
        ),
        "{r:?}"
    );
    // We never proved knowledge of the cookie to it.
    assert_eq!(mock.count("AUTHENTICATE"), 0);
}

#[tokio::test]
async fn malformed_control_reply_is_an_error_not_a_panic() {
    let mock = MockTor::start(AuthMode::SafeCookie).await;
    mock.state.garbage.store(true, Ordering::SeqCst);
    let r = TorAcn::new(config(&mock, ControlAuth::Cookie(None))).await;
    assert!(
        matches!(
            r,
            Err(Error::ControlProtocol {
                problem: ProtocolProblem::MalformedLine
            })
        ),
        "{r:?}"
    );
}

#[tokio::test]
async fn invalid_attach_configurations_are_refused() {
    for (cfg, what) in [
        (
            TorConfig::attach("127.0.0.1:1", ControlAuth::Cookie(None)).tor_binary("/usr/bin/tor"),
            "binary",
        ),
        (
            TorConfig::attach("127.0.0.1:1", ControlAuth::Cookie(None))
                .extra_torrc_lines(["TestingTorNetwork 1"]),
            "torrc",
        ),
        (
            TorConfig::attach("no-port", ControlAuth::Cookie(None)),
            "address",
        ),
        // A host name would be looked up outside Tor: refused before anything is resolved.
        (
            TorConfig::attach("tor.example.org:9051", ControlAuth::Cookie(None)),
            "host name",
        ),
        (
            TorConfig::attach("127.0.0.1:notaport", ControlAuth::Cookie(None)),
            "port",
        ),
    ] {
        let r = TorAcn::new(cfg).await;
        assert!(
            matches!(r, Err(Error::InvalidConfig { .. })),
            "{what}: {r:?}"
        );
    }
}

#[tokio::test]
async fn bootstrap_events_update_status() {
    let mock = MockTor::start(AuthMode::SafeCookie).await;
    let acn = attach(&mock).await;
    let mut status = acn.status();
    mock.event("STATUS_CLIENT NOTICE CIRCUIT_ESTABLISHED");
    mock.event(
        r#"STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=75 TAG=enough_dirinfo SUMMARY="Loaded enough directory info to build circuits""#,
    );
    tokio::time::timeout(WAIT, status.wait_for(|s| s.progress == 75))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        status.borrow().summary,
        "Loaded enough directory info to build circuits"
    );
    let ready = {
        let acn = acn.clone();
        tokio::spawn(async move { acn.wait_until_bootstrapped().await })
    };
    mock.event(r#"STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done""#);
    tokio::time::timeout(WAIT, ready)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(acn.status().borrow().is_ready());
}

#[tokio::test]
async fn listen_and_connect_through_the_fake_tor_and_drop_sends_del_onion() {
    let mock = MockTor::start(AuthMode::SafeCookie).await;
    let alice = identity(1);
    mock.know(&alice);
    let acn: Arc<dyn Acn> = Arc::new(attach(&mock).await);
    let mut listener = acn.listen(&alice, CWTCH_PORT).await.unwrap();
    assert_eq!(listener.onion(), &alice.onion());
    assert_eq!(listener.virtual_port(), CWTCH_PORT);
    let add = mock
        .commands()
        .into_iter()
        .find(|c| c.starts_with("ADD_ONION"))
        .unwrap();
    assert!(add.starts_with("ADD_ONION ED25519-V3:"), "{add}");
    assert!(add.contains(" Flags=DiscardPK"), "{add}");
    assert!(
        add.contains(&format!(" Port={CWTCH_PORT},127.0.0.1:")),
        "{add}"
    );
    assert!(mock.hosted(alice.onion().as_str()));

    let mut out = acn
        .connect(&alice.onion(), CWTCH_PORT, &IsolationKey::new("bob"))
        .await
        .unwrap();
    let mut inbound = tokio::time::timeout(WAIT, listener.accept())
        .await
        .unwrap()
        .unwrap();
    out.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    inbound.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    inbound.write_all(b"pong").await.unwrap();
    out.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
    let (_, _, host, port) = mock.state.socks_requests.lock().unwrap()[0].clone();
    assert_eq!(host, format!("{}.onion", alice.onion().as_str()));
    assert_eq!(port, CWTCH_PORT);

    // A port nobody hosts: refused.
    let refused = acn
        .connect(&alice.onion(), 80, &IsolationKey::new("bob"))
        .await;
    assert!(
        matches!(refused, Err(Error::ConnectionRefused { port: 80, .. })),
        "{:?}",
        refused.err()
    );

    drop(listener);
    wait_until(|| mock.count("DEL_ONION") == 1).await;
    assert!(!mock.hosted(alice.onion().as_str()));
    let gone = acn
        .connect(&alice.onion(), CWTCH_PORT, &IsolationKey::new("bob"))
        .await;
    assert!(
        matches!(gone, Err(Error::OnionNotFound { .. })),
        "{:?}",
        gone.err()
    );
}

#[tokio::test]
async fn listen_waits_for_the_upload_and_times_out_without_one() {
    let mock = MockTor::start(AuthMode::SafeCookie).await;
    mock.state.upload.store(false, Ordering::SeqCst);
    let alice = identity(2);
    mock.know(&alice);
    let mut timeouts = quick_timeouts();
    timeouts.publish = Duration::from_millis(300);
    let acn = TorAcn::new(config(&mock, ControlAuth::Cookie(None)).timeouts(timeouts))
        .await
        .unwrap();
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
    // The half-published service was removed again.
    assert_eq!(mock.count("DEL_ONION"), 1);
    assert!(!mock.hosted(alice.onion().as_str()));

    // A caller that gives up (drops the future) while we wait for the upload leaves
    // nothing hosted either.
    let gave_up =
        tokio::time::timeout(Duration::from_millis(100), acn.listen(&alice, CWTCH_PORT)).await;
    assert!(gave_up.is_err());
    assert!(mock.hosted(alice.onion().as_str()) || mock.count("DEL_ONION") == 2);
    wait_until(|| mock.count("DEL_ONION") == 2).await;
    assert!(!mock.hosted(alice.onion().as_str()));
}

#[tokio::test]
async fn hosting_an_onion_again_replaces_it() {
    let mock = MockTor::start(AuthMode::SafeCookie).await;
    let alice = identity(3);
    mock.know(&alice);
    let acn = attach(&mock).await;
    let mut first = acn.listen(&alice, CWTCH_PORT).await.unwrap();
    let second = acn.listen(&alice, CWTCH_PORT).await.unwrap();
    // Tor refuses a second ADD_ONION of a hosted key: we removed it first.
    let commands: Vec<String> = mock
        .commands()
        .into_iter()
        .filter(|c| c.starts_with("ADD_ONION") || c.starts_with("DEL_ONION"))
        .map(|c| c.split(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(commands, ["ADD_ONION", "DEL_ONION", "ADD_ONION"]);
    assert!(matches!(
        tokio::time::timeout(WAIT, first.accept()).await.unwrap(),
        Err(Error::Closed)
    ));
    // Dropping the replaced listener does not remove its successor.
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(mock.count("DEL_ONION"), 1);
    assert!(mock.hosted(alice.onion().as_str()));
    // A second virtual port of the same onion is added alongside.
    let other = acn.listen(&alice, 80).await.unwrap();
    let last_add = mock
        .commands()
        .into_iter()
        .rfind(|c| c.starts_with("ADD_ONION"))
        .unwrap();
    assert!(last_add.contains(" Port=80,") && last_add.contains(&format!(" Port={CWTCH_PORT},")));
    drop(other);
    wait_until(|| mock.count("DEL_ONION") == 3).await;
    // The remaining port is re-added.
    wait_until(|| mock.hosted(alice.onion().as_str())).await;
    drop(second);
}

#[tokio::test]
async fn onion_mismatch_is_detected() {
    let mock = MockTor::start(AuthMode::SafeCookie).await;
    // The fake does not know this key, so it reports a stranger's onion.
    let acn = attach(&mock).await;
    let r = acn.listen(&identity(4), CWTCH_PORT).await;
    match r {
        Err(Error::OnionMismatch { expected, reported }) => {
            assert_eq!(expected, identity(4).onion());
            assert_eq!(reported, mock_tor::stranger_onion());
        }
        other => panic!("{:?}", other.err()),
    }
    assert!(!mock.hosted(&mock_tor::stranger_onion()));
}

#[tokio::test]
async fn extended_socks_errors_map_to_typed_errors() {
    let mock = MockTor::start(AuthMode::SafeCookie).await;
    let acn = attach(&mock).await;
    let onion = identity(5).onion();
    let key = IsolationKey::new("k");
    type Check = fn(&Error) -> bool;
    let cases: &[(u8, Check)] = &[
        (0xF0, |e| matches!(e, Error::OnionNotFound { .. })),
        (0xF1, |e| {
            matches!(
                e,
                Error::Unreachable {
                    reason: UnreachableReason::InvalidDescriptor,
                    ..
                }
            )
        }),
        (0xF2, |e| {
            matches!(
                e,
                Error::Unreachable {
                    reason: UnreachableReason::IntroductionFailed,
                    ..
                }
            )
        }),
        (0xF3, |e| {
            matches!(
                e,
                Error::Unreachable {
                    reason: UnreachableReason::RendezvousFailed,
                    ..
                }
            )
        }),
        (0xF4, |e| {
            matches!(
                e,
                Error::DialRejected {
                    reason: DialRejection::ClientAuthRequired,
                    ..
                }
            )
        }),
        (0xF5, |e| {
            matches!(
                e,
                Error::DialRejected {
                    reason: DialRejection::ClientAuthRejected,
                    ..
                }
            )
        }),
        (0xF6, |e| {
            matches!(
                e,
                Error::DialRejected {
                    reason: DialRejection::InvalidAddress,
                    ..
                }
            )
        }),
        (0xF7, |e| {
            matches!(
                e,
                Error::Unreachable {
                    reason: UnreachableReason::IntroductionTimedOut,
                    ..
                }
            )
        }),
        (0x01, |e| {
            matches!(
                e,
                Error::Unreachable {
                    reason: UnreachableReason::CircuitFailed,
                    ..
                }
            )
        }),
        (0x02, |e| {
            matches!(
                e,
                Error::DialRejected {
                    reason: DialRejection::NotAllowed,
                    ..
                }
            )
        }),
        (0x04, |e| {
            matches!(
                e,
                Error::Unreachable {
                    reason: UnreachableReason::CircuitFailed,
                    ..
                }
            )
        }),
        (0x05, |e| matches!(e, Error::ConnectionRefused { .. })),
        (0x06, |e| {
            matches!(
                e,
                Error::Timeout {
                    operation: Operation::Connect
                }
            )
        }),
        (0x08, |e| {
            matches!(
                e,
                Error::DialRejected {
                    reason: DialRejection::AddressTypeNotSupported,
                    ..
                }
            )
        }),
        (0x42, |e| {
            matches!(
                e,
                Error::Unreachable {
                    reason: UnreachableReason::UnknownReply(0x42),
                    ..
                }
            )
        }),
    ];
    for (code, check) in cases {
        mock.script(&[*code]);
        let e = acn.connect(&onion, CWTCH_PORT, &key).await.err().unwrap();
        assert!(check(&e), "{code:#04x} gave {e:?}");
        // Display never shows the whole onion.
        assert!(!e.to_string().contains(onion.as_str()), "{e}");
    }
}

#[tokio::test]
async fn retries_back_off_and_stop_after_the_bound() {
    let mock = MockTor::start(AuthMode::SafeCookie).await;
    let acn = attach_with(&mock, policy(3)).await;
    let onion = identity(6).onion();
    let key = IsolationKey::new("k");

    // Descriptor never found: three attempts, then OnionNotFound.
    mock.script(&[0xF0; 10]);
    let start = Instant::now();
    let e = acn.connect(&onion, CWTCH_PORT, &key).await.err().unwrap();
    assert!(matches!(e, Error::OnionNotFound { .. }), "{e:?}");
    assert_eq!(mock.state.socks_total.load(Ordering::SeqCst), 3);
    // Backoff 50 ms, then 80 ms (capped).
    assert!(
        start.elapsed() >= Duration::from_millis(130),
        "{:?}",
        start.elapsed()
    );
    mock.state.socks_script.lock().unwrap().clear();

    // "Not found", then Tor's general failure once it has asked every HSDir: still not
    // found, and no point in asking again.
    mock.script(&[0xF0, 0x01, 0x01, 0x01]);
    let e = acn.connect(&onion, CWTCH_PORT, &key).await.err().unwrap();
    assert!(matches!(e, Error::OnionNotFound { .. }), "{e:?}");
    assert_eq!(mock.state.socks_total.load(Ordering::SeqCst), 5);
    mock.state.socks_script.lock().unwrap().clear();
    mock.state.socks_total.store(3, Ordering::SeqCst);

    // A non-retryable error is not retried.
    mock.script(&[0xF4, 0xF4]);
    let e = acn.connect(&onion, CWTCH_PORT, &key).await.err().unwrap();
    assert!(matches!(e, Error::DialRejected { .. }), "{e:?}");
    assert_eq!(mock.state.socks_total.load(Ordering::SeqCst), 4);
    mock.state.socks_script.lock().unwrap().clear();

    // Refused (the service is up and says no) is not retried either.
    mock.script(&[0x05, 0x05]);
    let e = acn.connect(&onion, CWTCH_PORT, &key).await.err().unwrap();
    assert!(matches!(e, Error::ConnectionRefused { .. }), "{e:?}");
    assert_eq!(mock.state.socks_total.load(Ordering::SeqCst), 5);
    mock.state.socks_script.lock().unwrap().clear();

    // A transient failure followed by success: connected on the second attempt.
    let alice = identity(6);
    mock.know(&alice);
    let _listener = acn.listen(&alice, CWTCH_PORT).await.unwrap();
    mock.script(&[0xF7]);
    acn.connect(&onion, CWTCH_PORT, &key).await.unwrap();
    assert_eq!(mock.state.socks_total.load(Ordering::SeqCst), 7);
}

#[tokio::test]
async fn concurrent_dials_are_bounded() {
    let mock = MockTor::start(AuthMode::SafeCookie).await;
    *mock.state.socks_delay.lock().unwrap() = Duration::from_millis(150);
    let mut p = policy(1);
    p.max_concurrent = 3;
    let acn = attach_with(&mock, p).await;
    let onion = identity(7).onion();
    let dials: Vec<_> = (0..12)
        .map(|i| {
            let (acn, onion) = (acn.clone(), onion.clone());
            tokio::spawn(async move {
                acn.connect(&onion, CWTCH_PORT, &IsolationKey::new(format!("k{i}")))
                    .await
            })
        })
        .collect();
    for d in dials {
        assert!(matches!(d.await.unwrap(), Err(Error::OnionNotFound { .. })));
    }
    assert_eq!(mock.state.socks_total.load(Ordering::SeqCst), 12);
    let max = mock.state.socks_max.load(Ordering::SeqCst);
    assert_eq!(
        max, 3,
        "at most 3 SOCKS handshakes at once (and the limit is reached)"
    );
}

#[tokio::test]
async fn isolation_keys_give_distinct_credentials() {
    let mock = MockTor::start(AuthMode::SafeCookie).await;
    let acn = attach(&mock).await;
    let onion = identity(8).onion();
    let long = "x".repeat(300);
    for key in ["alice", "bob", "alice", long.as_str(), ""] {
        let _ = acn
            .connect(&onion, CWTCH_PORT, &IsolationKey::new(key))
            .await;
    }
    let creds: Vec<(Vec<u8>, Vec<u8>)> = mock
        .state
        .socks_requests
        .lock()
        .unwrap()
        .iter()
        .map(|(u, p, _, _)| (u.clone(), p.clone()))
        .collect();
    assert_eq!(creds.len(), 5);
    assert_eq!(creds[0], creds[2], "same key, same credentials");
    assert_ne!(creds[0], creds[1]);
    assert_eq!(creds[0].0, b"alice");
    assert!(
        creds[3].0.len() <= 255 && !creds[3].0.is_empty(),
        "long keys are hashed"
    );
    assert_ne!(creds[3], creds[4]);
    for (i, a) in creds.iter().enumerate() {
        for b in creds.iter().skip(i + 1) {
            if a.0 != b"alice" {
                assert_ne!(a, b);
            }
        }
    }
}

#[tokio::test]
async fn replies_split_across_reads_work() {
    let mock = MockTor::start(AuthMode::SafeCookie).await;
    mock.state.split_writes.store(true, Ordering::SeqCst);
    let alice = identity(9);
    mock.know(&alice);
    let acn = attach(&mock).await;
    assert_eq!(acn.version().await.unwrap(), "0.4.9.11 (mock)");
    let _l = acn.listen(&alice, CWTCH_PORT).await.unwrap();
    mock.event(r#"STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done""#);
    tokio::time::timeout(WAIT, acn.wait_until_bootstrapped())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn close_removes_services_and_refuses_further_use() {
    let mock = MockTor::start(AuthMode::SafeCookie).await;
    let alice = identity(10);
    mock.know(&alice);
    let acn = attach(&mock).await;
    let mut listener = acn.listen(&alice, CWTCH_PORT).await.unwrap();
    let mut status = acn.status();
    acn.close().await;
    assert_eq!(mock.count("DEL_ONION"), 1);
    assert!(matches!(
        tokio::time::timeout(WAIT, listener.accept()).await.unwrap(),
        Err(Error::Closed)
    ));
    assert!(status.changed().await.is_err(), "status channel closes");
    assert!(matches!(
        acn.connect(&alice.onion(), CWTCH_PORT, &IsolationKey::new("k"))
            .await,
        Err(Error::Closed)
    ));
    assert!(matches!(
        acn.listen(&alice, CWTCH_PORT).await,
        Err(Error::Closed)
    ));
    assert!(matches!(acn.restart().await, Err(Error::Closed)));
    acn.close().await; // idempotent
    drop(listener);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(mock.count("DEL_ONION"), 1);
}

#[tokio::test]
async fn attach_restart_sends_newnym_or_reconnects_and_rehosts() {
    let mock = MockTor::start(AuthMode::SafeCookie).await;
    let alice = identity(11);
    mock.know(&alice);
    let acn = attach(&mock).await;
    let _listener = acn.listen(&alice, CWTCH_PORT).await.unwrap();

    acn.restart().await.unwrap();
    assert_eq!(mock.count("SIGNAL NEWNYM"), 1);
    assert_eq!(mock.state.control_connections.load(Ordering::SeqCst), 1);

    // The control connection dies (tor restarted under us): status drops, restart
    // reconnects and re-adds the service.
    let mut status = acn.status();
    mock.kill_connections();
    tokio::time::timeout(WAIT, status.wait_for(|s| s.progress == 0))
        .await
        .unwrap()
        .unwrap();
    assert!(!mock.hosted(alice.onion().as_str()));
    acn.restart().await.unwrap();
    assert_eq!(mock.state.control_connections.load(Ordering::SeqCst), 2);
    assert!(mock.hosted(alice.onion().as_str()));
    assert_eq!(mock.count("ADD_ONION"), 2);
    acn.connect(&alice.onion(), CWTCH_PORT, &IsolationKey::new("k"))
        .await
        .unwrap();
}

#[tokio::test]
async fn unreachable_control_port_is_an_io_error() {
    // Bind and drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = TorAcn::attach(format!("127.0.0.1:{port}"), ControlAuth::Cookie(None)).await;
    assert!(
        matches!(
            r,
            Err(Error::Io {
                operation: Operation::Control,
                ..
            })
        ),
        "{r:?}"
    );
}

/// The server's listen call turns on tor's proof-of-work defence: the exact `ADD_ONION` line.
/// A plain listen (peers) asks for nothing of the kind.
#[tokio::test]
async fn listen_with_the_pow_defense_sends_its_keywords_and_plain_listen_does_not() {
    let mock = MockTor::start(AuthMode::SafeCookie).await;
    let (server, peer) = (identity(20), identity(21));
    mock.know(&server);
    mock.know(&peer);
    let acn = attach(&mock).await;
    let options = ListenOptions::default().with_pow_defense(PowDefense::new(50, 500));
    let _listener = acn
        .listen_with(&server, CWTCH_PORT, &options)
        .await
        .unwrap();
    let _plain = acn.listen(&peer, CWTCH_PORT).await.unwrap();
    let adds: Vec<String> = mock
        .commands()
        .into_iter()
        .filter(|c| c.starts_with("ADD_ONION"))
        .collect();
    assert_eq!(adds.len(), 2, "{adds:?}");
    let key = base64::engine::general_purpose::STANDARD
        .encode(server.tor_expanded_secret_key().as_slice());
    let (head, local) = adds[0].rsplit_once(",127.0.0.1:").unwrap();
    assert!(local.parse::<u16>().is_ok(), "{}", adds[0]);
    assert_eq!(
        head,
        format!(
            "ADD_ONION ED25519-V3:{key} Flags=DiscardPK PoWDefensesEnabled=1 PoWQueueRate=50 \
             PoWQueueBurst=500 Port={CWTCH_PORT}"
        )
    );
    assert!(!adds[1].contains("PoW"), "{}", adds[1]);
    // Tor's own defaults unless told otherwise.
    assert_eq!(PowDefense::default(), PowDefense::new(250, 2500));
}

/// A tor before 0.4.9.5 refuses the keywords (`512`): the service is hosted without them,
/// and reachable.
#[tokio::test]
async fn a_tor_that_refuses_the_pow_defense_still_hosts_the_service_without_it() {
    let mock = MockTor::start(AuthMode::SafeCookie).await;
    mock.state.refuse_pow.store(true, Ordering::SeqCst);
    let server = identity(22);
    mock.know(&server);
    let acn = attach(&mock).await;
    let options = ListenOptions::default().with_pow_defense(PowDefense::default());
    let mut listener = acn
        .listen_with(&server, CWTCH_PORT, &options)
        .await
        .unwrap();
    let adds: Vec<String> = mock
        .commands()
        .into_iter()
        .filter(|c| c.starts_with("ADD_ONION"))
        .collect();
    assert_eq!(adds.len(), 2, "tried with, then without: {adds:?}");
    assert!(adds[0].contains(" PoWDefensesEnabled=1 PoWQueueRate=250 PoWQueueBurst=2500 "));
    assert!(!adds[1].contains("PoW"), "{}", adds[1]);
    assert!(mock.hosted(server.onion().as_str()));
    let mut out = acn
        .connect(&server.onion(), CWTCH_PORT, &IsolationKey::new("client"))
        .await
        .unwrap();
    let mut inbound = tokio::time::timeout(WAIT, listener.accept())
        .await
        .unwrap()
        .unwrap();
    out.write_all(b"hi").await.unwrap();
    let mut buf = [0u8; 2];
    inbound.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hi");
}

#[tokio::test]
async fn localhost_names_the_loopback_address() {
    let mock = MockTor::start(AuthMode::SafeCookie).await;
    let cfg = TorConfig::attach(
        format!("LocalHost:{}", mock.control.port()),
        ControlAuth::Cookie(None),
    )
    .timeouts(quick_timeouts())
    .dial_policy(policy(1));
    let acn = TorAcn::new(cfg).await.unwrap();
    assert_eq!(mock.state.control_connections.load(Ordering::SeqCst), 1);
    drop(acn);
}
