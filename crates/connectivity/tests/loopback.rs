//! The loopback network through the `Acn` trait, as the rest of the project uses it.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use connectivity::{
    Acn, BoxStream, Error, IsolationKey, LoopbackAcn, OnionListener, RecordProblem, CWTCH_PORT,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use torv3::Identity;

const WAIT: Duration = Duration::from_secs(10);

fn identity(n: u8) -> Identity {
    Identity::from_seed(&[n; 32])
}

fn iso() -> IsolationKey {
    IsolationKey::new("test")
}

fn network() -> (tempfile::TempDir, LoopbackAcn) {
    let dir = tempfile::tempdir().unwrap();
    let acn = LoopbackAcn::new(dir.path().join("acn")).unwrap();
    (dir, acn)
}

async fn accept(listener: &mut Box<dyn OnionListener>) -> BoxStream {
    tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("accept timed out")
        .unwrap()
}

/// Send `msg` from `a` to `b` and back, checking both directions.
async fn ping_pong(a: &mut BoxStream, b: &mut BoxStream, msg: &[u8]) {
    a.write_all(msg).await.unwrap();
    let mut buf = vec![0; msg.len()];
    b.read_exact(&mut buf).await.unwrap();
    assert_eq!(buf, msg);
    let reply: Vec<u8> = msg.iter().rev().copied().collect();
    b.write_all(&reply).await.unwrap();
    let mut buf = vec![0; msg.len()];
    a.read_exact(&mut buf).await.unwrap();
    assert_eq!(buf, reply);
}

#[tokio::test]
async fn two_listeners_connect_both_ways_and_bytes_flow() {
    let (_tmp, net) = network();
    let acn: Arc<dyn Acn> = Arc::new(net);
    let (alice, bob) = (identity(1), identity(2));
    let mut la = acn.listen(&alice, CWTCH_PORT).await.unwrap();
    let mut lb = acn.listen(&bob, CWTCH_PORT).await.unwrap();
    assert_eq!(la.onion(), &alice.onion());
    assert_eq!(lb.onion(), &bob.onion());
    assert_eq!(la.virtual_port(), CWTCH_PORT);

    // alice -> bob
    let mut out = acn.connect(&bob.onion(), CWTCH_PORT, &iso()).await.unwrap();
    let mut inb = accept(&mut lb).await;
    ping_pong(&mut out, &mut inb, b"hello bob").await;

    // bob -> alice
    let mut out = acn
        .connect(&alice.onion(), CWTCH_PORT, &iso())
        .await
        .unwrap();
    let mut inb = accept(&mut la).await;
    ping_pong(&mut out, &mut inb, &[0xA5; 8192]).await;
}

#[tokio::test]
async fn unknown_onion_is_onion_not_found() {
    let (_tmp, acn) = network();
    let e = acn
        .connect(&identity(9).onion(), CWTCH_PORT, &iso())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(e, Error::OnionNotFound { ref onion } if *onion == identity(9).onion()),
        "{e:?}"
    );
    assert!(e.is_retryable());
}

#[tokio::test]
async fn stale_record_is_connection_refused() {
    let (_tmp, acn) = network();
    let onion = identity(3).onion();
    // A port that was just free: bind, note it, close.
    let port = {
        let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        l.local_addr().unwrap().port()
    };
    std::fs::write(
        acn.record_path(&onion, CWTCH_PORT),
        format!("127.0.0.1:{port}"),
    )
    .unwrap();
    let e = acn.connect(&onion, CWTCH_PORT, &iso()).await.err().unwrap();
    assert!(
        matches!(
            e,
            Error::ConnectionRefused {
                port: CWTCH_PORT,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.is_retryable());
}

#[tokio::test]
async fn dropping_the_listener_removes_the_record_and_dials_fail() {
    let (_tmp, acn) = network();
    let id = identity(4);
    let listener = acn.listen_loopback(&id, CWTCH_PORT).await.unwrap();
    let record = acn.record_path(&id.onion(), CWTCH_PORT);
    let local = listener.local_addr();
    assert_eq!(std::fs::read_to_string(&record).unwrap(), local.to_string());
    // Reachable while hosted.
    acn.connect(&id.onion(), CWTCH_PORT, &iso()).await.unwrap();

    drop(listener);
    assert!(!record.exists());
    let e = acn
        .connect(&id.onion(), CWTCH_PORT, &iso())
        .await
        .err()
        .unwrap();
    assert!(matches!(e, Error::OnionNotFound { .. }), "{e:?}");
    // The socket itself is closed too (the accept task notices the drop).
    wait_refused(local).await;
}

/// Wait until nothing accepts on `addr` any more.
async fn wait_refused(addr: SocketAddrV4) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            _ if tokio::time::Instant::now() > deadline => panic!("{addr} still accepts"),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

#[tokio::test]
async fn listening_again_replaces_the_record_and_the_old_listener_leaves_it() {
    let (_tmp, acn) = network();
    let id = identity(5);
    let old = acn.listen_loopback(&id, CWTCH_PORT).await.unwrap();
    let new = acn.listen_loopback(&id, CWTCH_PORT).await.unwrap();
    assert_ne!(old.local_addr(), new.local_addr());
    let record = acn.record_path(&id.onion(), CWTCH_PORT);
    assert_eq!(
        std::fs::read_to_string(&record).unwrap(),
        new.local_addr().to_string()
    );

    // Dropping the replaced listener must not remove its successor's record.
    drop(old);
    assert_eq!(
        std::fs::read_to_string(&record).unwrap(),
        new.local_addr().to_string()
    );
    let mut new: Box<dyn OnionListener> = Box::new(new);
    let mut out = acn.connect(&id.onion(), CWTCH_PORT, &iso()).await.unwrap();
    let mut inb = accept(&mut new).await;
    ping_pong(&mut out, &mut inb, b"still here").await;
}

#[tokio::test]
async fn record_of_another_process_is_left_alone_on_drop() {
    let (_tmp, acn) = network();
    let id = identity(6);
    let listener = acn.listen_loopback(&id, CWTCH_PORT).await.unwrap();
    let record = acn.record_path(&id.onion(), CWTCH_PORT);
    // Another process takes the onion over.
    std::fs::write(&record, "127.0.0.1:1").unwrap();
    drop(listener);
    assert_eq!(std::fs::read_to_string(&record).unwrap(), "127.0.0.1:1");
}

/// A planted record naming another address must be refused without connecting. We listen
/// on that address to prove no connection arrives.
#[tokio::test]
async fn non_loopback_record_is_refused_without_dialing() {
    let (_tmp, acn) = network();
    let onion = identity(7).onion();
    let record = acn.record_path(&onion, CWTCH_PORT);
    // 127.0.0.2 is routed to the loopback interface on Linux, not elsewhere.
    // Not every OS routes 127.0.0.2; without the trap the parse check still runs below.
    let trap = tokio::net::TcpListener::bind((Ipv4Addr::new(127, 0, 0, 2), 0))
        .await
        .ok();
    let trap_addr = trap
        .as_ref()
        .map(|l| l.local_addr().unwrap().to_string())
        .unwrap_or_else(|| "127.0.0.2:9".into());
    std::fs::write(&record, &trap_addr).unwrap();
    let e = acn.connect(&onion, CWTCH_PORT, &iso()).await.err().unwrap();
    match &e {
        Error::InvalidServiceRecord {
            problem: RecordProblem::NotLoopback(addr),
            ..
        } => assert_eq!(addr.to_string(), trap_addr),
        other => panic!("{other:?}"),
    }
    assert!(!e.is_retryable());
    if let Some(trap) = trap {
        let r = tokio::time::timeout(Duration::from_millis(200), trap.accept()).await;
        assert!(r.is_err(), "the planted address was dialled");
    }

    for (contents, want) in [
        ("0.0.0.0:80", None),
        ("[::1]:80", None),
        ("8.8.8.8:53", None),
        ("garbage", Some(RecordProblem::Syntax)),
        ("127.0.0.1:0", Some(RecordProblem::ZeroPort)),
        ("127.0.0.1:80 127.0.0.2:80", Some(RecordProblem::Syntax)),
    ] {
        std::fs::write(&record, contents).unwrap();
        let e = acn.connect(&onion, CWTCH_PORT, &iso()).await.err().unwrap();
        match (e, want) {
            (Error::InvalidServiceRecord { problem, .. }, Some(want)) => {
                assert_eq!(problem, want, "{contents}")
            }
            (
                Error::InvalidServiceRecord {
                    problem: RecordProblem::NotLoopback(_),
                    ..
                },
                None,
            ) => {}
            (e, _) => panic!("{contents}: {e:?}"),
        }
    }

    std::fs::write(&record, [0xffu8; 10]).unwrap();
    let e = acn.connect(&onion, CWTCH_PORT, &iso()).await.err().unwrap();
    assert!(
        matches!(
            e,
            Error::InvalidServiceRecord {
                problem: RecordProblem::NotUtf8,
                ..
            }
        ),
        "{e:?}"
    );
    std::fs::write(&record, vec![b'1'; 1 << 20]).unwrap();
    let e = acn.connect(&onion, CWTCH_PORT, &iso()).await.err().unwrap();
    assert!(
        matches!(
            e,
            Error::InvalidServiceRecord {
                problem: RecordProblem::TooLong,
                ..
            }
        ),
        "{e:?}"
    );
    std::fs::remove_file(&record).unwrap();
    std::fs::create_dir(&record).unwrap();
    let e = acn.connect(&onion, CWTCH_PORT, &iso()).await.err().unwrap();
    assert!(
        matches!(
            e,
            Error::InvalidServiceRecord {
                problem: RecordProblem::NotRegularFile,
                ..
            }
        ),
        "{e:?}"
    );
}

/// A symlink is refused even if it points at a valid record (it could point at a FIFO or
/// at a device).
#[cfg(unix)]
#[tokio::test]
async fn symlinked_record_is_refused() {
    let (_tmp, acn) = network();
    let host = identity(8);
    let _listener = acn.listen_loopback(&host, CWTCH_PORT).await.unwrap();
    let onion = identity(10).onion();
    std::os::unix::fs::symlink(
        acn.record_path(&host.onion(), CWTCH_PORT),
        acn.record_path(&onion, CWTCH_PORT),
    )
    .unwrap();
    let e = acn.connect(&onion, CWTCH_PORT, &iso()).await.err().unwrap();
    assert!(
        matches!(
            e,
            Error::InvalidServiceRecord {
                problem: RecordProblem::NotRegularFile,
                ..
            }
        ),
        "{e:?}"
    );
}

/// A `listen` abandoned half-way (here: while its record is being written) must not leave a
/// record behind pointing at a port nobody serves.
#[tokio::test]
async fn cancelled_listen_leaves_no_record() {
    let (_tmp, acn) = network();
    let id = identity(17);
    let record = acn.record_path(&id.onion(), CWTCH_PORT);
    for _ in 0..20 {
        // Polled once (that reaches the blocking write), then dropped.
        let mut listen = acn.listen(&id, CWTCH_PORT);
        std::future::poll_fn(|cx| {
            let _ = listen.as_mut().poll(cx);
            std::task::Poll::Ready(())
        })
        .await;
        drop(listen);
        // The write may still be running in the background: wait for its cleanup to finish
        // (the registration is released only after the record is removed).
        let deadline = tokio::time::Instant::now() + WAIT;
        while acn.hosted_count() > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "a cancelled listen never finished cleaning up"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!record.exists(), "stale record left behind");
    }
    let e = acn
        .connect(&id.onion(), CWTCH_PORT, &iso())
        .await
        .err()
        .unwrap();
    assert!(matches!(e, Error::OnionNotFound { .. }), "{e:?}");
}

#[tokio::test]
async fn virtual_ports_are_separate() {
    let (_tmp, acn) = network();
    let id = identity(11);
    let onion = id.onion();
    let listener = acn.listen_loopback(&id, 80).await.unwrap();
    let record = acn.record_path(&onion, 80);
    assert_eq!(
        record.file_name().unwrap().to_str().unwrap(),
        format!("{}.80", onion.as_str())
    );
    assert!(record.exists());
    assert!(!acn.record_path(&onion, CWTCH_PORT).exists());

    acn.connect(&onion, 80, &iso()).await.unwrap();
    // Published, but not on this port: refused, as Tor would.
    let e = acn.connect(&onion, CWTCH_PORT, &iso()).await.err().unwrap();
    assert!(
        matches!(
            e,
            Error::ConnectionRefused {
                port: CWTCH_PORT,
                ..
            }
        ),
        "{e:?}"
    );
    drop(listener);
    let e = acn.connect(&onion, 80, &iso()).await.err().unwrap();
    assert!(matches!(e, Error::OnionNotFound { .. }), "{e:?}");
}

#[tokio::test]
async fn close_stops_everything() {
    let (_tmp, acn) = network();
    let other = LoopbackAcn::new(acn.dir()).unwrap();
    let (a, b) = (identity(12), identity(13));
    let la = acn.listen_loopback(&a, CWTCH_PORT).await.unwrap();
    let lb = acn.listen_loopback(&b, CWTCH_PORT).await.unwrap();
    let (addr_a, addr_b) = (la.local_addr(), lb.local_addr());
    let mut la: Box<dyn OnionListener> = Box::new(la);
    let mut lb: Box<dyn OnionListener> = Box::new(lb);
    // An accept that is already waiting when the network closes.
    let pending = tokio::spawn(async move {
        let r = la.accept().await.err();
        (la, r)
    });
    let mut status = acn.status();
    assert!(status.borrow().is_ready());

    acn.close().await;

    let (_la, r) = tokio::time::timeout(WAIT, pending).await.unwrap().unwrap();
    assert!(matches!(r, Some(Error::Closed)), "{r:?}");
    assert!(matches!(lb.accept().await.err(), Some(Error::Closed)));
    // Records removed: other processes see the onions as offline.
    assert!(!acn.record_path(&a.onion(), CWTCH_PORT).exists());
    assert!(!acn.record_path(&b.onion(), CWTCH_PORT).exists());
    let e = other
        .connect(&a.onion(), CWTCH_PORT, &iso())
        .await
        .err()
        .unwrap();
    assert!(matches!(e, Error::OnionNotFound { .. }), "{e:?}");
    // Ports freed even though the listeners are still alive.
    wait_refused(addr_a).await;
    wait_refused(addr_b).await;
    // Further use refused.
    assert!(matches!(
        acn.listen(&a, CWTCH_PORT).await.err(),
        Some(Error::Closed)
    ));
    assert!(matches!(
        acn.connect(&b.onion(), CWTCH_PORT, &iso()).await.err(),
        Some(Error::Closed)
    ));
    assert!(matches!(acn.restart().await, Err(Error::Closed)));
    assert!(matches!(
        acn.wait_until_bootstrapped().await,
        Err(Error::Closed)
    ));
    assert!(status.changed().await.is_err(), "status channel still open");
    assert!(!acn.status().borrow().is_ready());
    acn.close().await; // idempotent

    // The other handle on the same directory is unaffected.
    let _l = other.listen(&a, CWTCH_PORT).await.unwrap();
    other.connect(&a.onion(), CWTCH_PORT, &iso()).await.unwrap();
}

#[tokio::test]
async fn status_and_properties() {
    let (_tmp, acn) = network();
    let status = acn.status().borrow().clone();
    assert_eq!(status.progress, 100);
    assert!(status.is_ready());
    tokio::time::timeout(WAIT, acn.wait_until_bootstrapped())
        .await
        .unwrap()
        .unwrap();
    assert!(!acn.is_anonymous());
    assert_eq!(acn.name(), "loopback");
    acn.restart().await.unwrap();
    // Still works after a restart.
    let id = identity(14);
    let _l = acn.listen(&id, CWTCH_PORT).await.unwrap();
    acn.connect(&id.onion(), CWTCH_PORT, &iso()).await.unwrap();
}

#[cfg(unix)]
#[test]
fn directory_is_created_0700() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a").join("b");
    let _acn = LoopbackAcn::new(&dir).unwrap();
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{mode:o}");
}

#[cfg(unix)]
#[test]
fn directory_writable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shared");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = LoopbackAcn::new(&dir).err().unwrap();
    assert!(
        matches!(e, Error::InsecureDirectory { mode, .. } if mode & 0o777 == 0o777),
        "{e:?}"
    );
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    LoopbackAcn::new(&dir).unwrap();
}

#[test]
fn a_file_is_not_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let e = LoopbackAcn::new(&file).err().unwrap();
    assert!(matches!(e, Error::Directory { .. }), "{e:?}");
}

#[test]
fn isolation_key_debug_is_scrubbed() {
    let onion = identity(15).onion();
    let key = IsolationKey::new(onion.as_str());
    assert_eq!(key.as_str(), onion.as_str());
    let dbg = format!("{key:?}");
    assert!(!dbg.contains(onion.as_str()), "{dbg}");
    assert_ne!(key, IsolationKey::from("other"));
}

#[tokio::test]
async fn many_concurrent_dials_are_all_accepted() {
    let (_tmp, acn) = network();
    let id = identity(16);
    let mut listener = acn.listen(&id, CWTCH_PORT).await.unwrap();
    let onion = id.onion();
    let dials: Vec<_> = (0..32u8)
        .map(|i| {
            let (acn, onion) = (acn.clone(), onion.clone());
            tokio::spawn(async move {
                let mut s = acn.connect(&onion, CWTCH_PORT, &iso()).await.unwrap();
                s.write_all(&[i]).await.unwrap();
                let mut b = [0u8];
                s.read_exact(&mut b).await.unwrap();
                assert_eq!(b[0], i.wrapping_add(1));
            })
        })
        .collect();
    for _ in 0..32 {
        let mut s = accept(&mut listener).await;
        let mut b = [0u8];
        s.read_exact(&mut b).await.unwrap();
        s.write_all(&[b[0].wrapping_add(1)]).await.unwrap();
        // keep the stream alive until the dialer has read
        tokio::spawn(async move {
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest).await;
        });
    }
    for d in dials {
        tokio::time::timeout(WAIT, d).await.unwrap().unwrap();
    }
}

/// The warning the issue requires whenever the loopback network is selected.
#[test]
fn construction_warns_about_no_anonymity() {
    use std::io::Write;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let tmp = tempfile::tempdir().unwrap();
    tracing::subscriber::with_default(subscriber, || {
        LoopbackAcn::new(tmp.path().join("acn")).unwrap();
    });
    let logged = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("WARN"), "{logged}");
    assert!(logged.contains("NO anonymity"), "{logged}");
}
