//! Load generator: a file download between two profiles over the loopback network, beside the
//! raw throughput of tapir packets on the same kind of connection, measured in the same run.
//!
//! `cargo run --release -p cwtch --example file_transfer_load [MiB…]` (default: 100).
//!
//! For each size:
//! 1. Baselines: two bare tapir services on the loopback network; one sends the same number
//!    of bytes to the other in payloads of 8 150 bytes (a full packet) and of 4 096 bytes (one
//!    file chunk per packet, as file sharing sends them); MB/s of each.
//! 2. Subject: Alice shares a file of that size with Bob; Bob downloads it (manifest, chunk
//!    requests, every chunk checked and written, the whole file hashed, renamed). MB/s from
//!    the download call to `FileDownloaded`, and its ratio to each baseline.
//! 3. Memory: the process's peak RSS (VmHWM) reset just before the download, and its peak
//!    during it. Both profiles run in this process, so this is an upper bound for the
//!    downloader's.

#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use cwtch::{Acn, ConnectionState, Cwtch, Event, LoopbackAcn, Password};
use tapir::ApplicationChain;
use tapir_service::{Service, ServiceConfig};

const WAIT: Duration = Duration::from_secs(1800);

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// MB/s of `total` bytes sent in payloads of `payload` bytes between two tapir services.
async fn raw_baseline(acn: Arc<dyn Acn>, total: u64, payload: usize) -> f64 {
    let a = Service::new(
        Arc::new(tapir::Identity::generate(&mut rand_core::OsRng)),
        acn.clone(),
        ServiceConfig::default(),
    );
    let b = Service::new(
        Arc::new(tapir::Identity::generate(&mut rand_core::OsRng)),
        acn,
        ServiceConfig::default(),
    );
    let mut listener = a.listen(ApplicationChain::authenticated).await.unwrap();
    let received = tokio::spawn(async move {
        let mut conn = listener.accept().await.unwrap();
        let mut got = 0u64;
        while got < total {
            match conn.recv().await {
                Some(p) => got += p.len() as u64,
                None => break,
            }
        }
        got
    });
    let conn = b
        .connect(&a.onion(), ApplicationChain::authenticated())
        .await
        .unwrap();
    let start = Instant::now();
    let chunk = vec![0x5au8; payload];
    let mut sent = 0u64;
    while sent < total {
        let n = (total - sent).min(payload as u64) as usize;
        conn.send(chunk[..n].to_vec()).await.unwrap();
        sent += n as u64;
    }
    let got = received.await.unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(got, total);
    a.shutdown().await;
    b.shutdown().await;
    total as f64 / secs / 1e6
}

async fn profile(
    home: &std::path::Path,
    acn: Arc<dyn Acn>,
    name: &str,
) -> (
    Cwtch,
    cwtch::ProfileHandle,
    tokio::sync::broadcast::Receiver<Event>,
) {
    let mut config = cwtch::Config::default();
    config.event_capacity = 1 << 14;
    let cwtch = Cwtch::open_with_config(home, acn, config).await.unwrap();
    let info = cwtch
        .create_profile(name, &Password::Default)
        .await
        .unwrap();
    let events = cwtch.events();
    let p = cwtch
        .load_profile(info.profile_id.as_str(), &Password::Default)
        .await
        .unwrap();
    assert!(p.wait_online(WAIT).await);
    (cwtch, p, events)
}

async fn until(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    what: &str,
    pred: impl Fn(&Event) -> bool,
) -> Event {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(e)) if pred(&e) => return e,
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(e)) => panic!("{what}: {e}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

#[tokio::main]
async fn main() {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("sizes in MiB"))
        .collect();
    let sizes = if sizes.is_empty() { vec![100] } else { sizes };
    let dir = tempfile::tempdir().unwrap();
    let acn: Arc<dyn Acn> = Arc::new(LoopbackAcn::new(dir.path().join("net")).unwrap());

    let (alice_cwtch, alice, mut alice_events) =
        profile(&dir.path().join("alice"), acn.clone(), "alice").await;
    let (bob_cwtch, bob, mut bob_events) =
        profile(&dir.path().join("bob"), acn.clone(), "bob").await;
    let (a, b) = (alice.onion().clone(), bob.onion().clone());
    alice.add_contact(b.as_str()).await.unwrap();
    let req = until(&mut bob_events, "contact request", |e| {
        matches!(e, Event::ContactCreated { request: true, .. })
    })
    .await;
    let Event::ContactCreated {
        conversation_id, ..
    } = req
    else {
        unreachable!()
    };
    bob.accept(cwtch::ConversationId(conversation_id))
        .await
        .unwrap();
    until(&mut alice_events, "connected", |e| {
        matches!(
            e,
            Event::PeerStateChanged {
                state: ConnectionState::Authenticated,
                ..
            }
        )
    })
    .await;

    println!("| file | raw 8150 B payloads | raw 4096 B payloads | download | ratio (8150 / 4096) | RSS at start → peak during the download |");
    println!("|---|---|---|---|---|---|");
    for mib in sizes {
        let total = mib * 1024 * 1024;
        let full = raw_baseline(acn.clone(), total, 8150).await;
        let chunked = raw_baseline(acn.clone(), total, 4096).await;

        let path = dir.path().join(format!("file-{mib}.bin"));
        {
            use std::io::Write;
            let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
            let mut x: u64 = mib ^ 0x9e37_79b9_7f4a_7c15;
            let mut buf = vec![0u8; 1 << 20];
            for _ in 0..mib {
                for b in buf.iter_mut() {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    *b = x as u8;
                }
                f.write_all(&buf).unwrap();
            }
        }
        let (key, _) = alice.share_file(&b, &path).await.unwrap();
        until(&mut bob_events, "the offer", |e| {
            matches!(
                e,
                Event::NewMessage {
                    overlay: Some(200),
                    ..
                }
            )
        })
        .await;
        let out = dir.path().join(format!("out-{mib}"));
        // Reset the peak (Linux: 5 > clear_refs), so that the peak below is the download's.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let before = vm_hwm_kib();
        let start = Instant::now();
        bob.download_file(&a, &key, &out).await.unwrap();
        let done = until(&mut bob_events, "downloaded", |e| {
            matches!(e, Event::FileDownloaded { file_key, .. } if *file_key == key)
                || matches!(e, Event::FileDownloadFailed { .. })
        })
        .await;
        let secs = start.elapsed().as_secs_f64();
        let after = vm_hwm_kib();
        let Event::FileDownloaded { path: got, .. } = done else {
            panic!("download failed: {done:?}")
        };
        assert_eq!(
            std::fs::metadata(&got).unwrap().len(),
            total,
            "downloaded size"
        );
        let rate = total as f64 / secs / 1e6;
        println!(
            "| {mib} MiB | {full:.1} MB/s | {chunked:.1} MB/s | {rate:.1} MB/s ({secs:.1} s) | {:.2}× / {:.2}× | {} → {} MiB |",
            rate / full,
            rate / chunked,
            before / 1024,
            after / 1024
        );
        std::fs::remove_file(&got).unwrap();
    }
    alice_cwtch.shutdown().await;
    bob_cwtch.shutdown().await;
}
