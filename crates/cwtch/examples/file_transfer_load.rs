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
//! 3. Memory: the downloader's peak RSS (VmHWM) reset just before the download, and its peak
//!    during it. The sharer runs in a child process (this program, `--sharer`, driven over
//!    its stdin and stdout), so the figure is the downloader's alone.
//! 4. CPU: what each process of the download used, and what the 4 096-byte baseline used (both
//!    its ends are in this process), with their ratio. Where both ends share the cores and
//!    keep them busy, throughput follows CPU: the download's ratio to the baseline is about
//!    that CPU ratio at best.

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

/// CPU seconds (user + system) that process `pid` has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks as f64 / 100.0
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

/// The sharer's side, in its own process: a profile that accepts every contact request,
/// prints `onion <its onion>`, then for each line `share <onion> <path>` shares the file with
/// that contact and prints `key <file key>`; ends at `quit` or the end of its input.
async fn sharer(net: &std::path::Path, home: &std::path::Path) {
    let acn: Arc<dyn Acn> = Arc::new(LoopbackAcn::new(net).unwrap());
    let (cwtch, alice, mut events) = profile(home, acn, "alice").await;
    println!("onion {}", alice.onion());
    let accepting = alice.clone();
    tokio::spawn(async move {
        while let Ok(e) = events.recv().await {
            if let Event::ContactCreated {
                request: true,
                conversation_id,
                ..
            } = e
            {
                let _ = accepting
                    .accept(cwtch::ConversationId(conversation_id))
                    .await;
            }
        }
    });
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(4);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = rx.recv().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["share", onion, path] => {
                let onion: torv3::Onion = onion.parse().unwrap();
                let (key, _) = alice
                    .share_file(&onion, std::path::Path::new(path))
                    .await
                    .unwrap();
                println!("key {key}");
            }
            _ => break,
        }
    }
    cwtch.shutdown().await;
}

/// The sharer child process: its stdin, and its stdout's lines.
struct Child {
    process: std::process::Child,
    input: std::process::ChildStdin,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl Child {
    fn spawn(net: &std::path::Path, home: &std::path::Path) -> Child {
        let mut process = std::process::Command::new(std::env::current_exe().unwrap())
            .arg("--sharer")
            .arg(net)
            .arg(home)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let input = process.stdin.take().unwrap();
        let out = process.stdout.take().unwrap();
        use std::io::BufRead;
        let lines = std::io::BufReader::new(out).lines();
        Child {
            process,
            input,
            lines,
        }
    }

    /// The next line that starts with `word `, without it (blocking).
    fn expect(&mut self, word: &str) -> String {
        for line in self.lines.by_ref() {
            if let Some(rest) = line.unwrap().strip_prefix(&format!("{word} ")) {
                return rest.to_owned();
            }
        }
        panic!("the sharer ended before `{word}`");
    }

    fn send(&mut self, line: &str) {
        use std::io::Write;
        writeln!(self.input, "{line}").unwrap();
        self.input.flush().unwrap();
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--sharer") {
        let [_, net, home] = &args[..] else {
            panic!("--sharer NET HOME")
        };
        return sharer(net.as_ref(), home.as_ref()).await;
    }
    let sizes: Vec<u64> = args
        .iter()
        .map(|a| a.parse().expect("sizes in MiB"))
        .collect();
    let sizes = if sizes.is_empty() { vec![100] } else { sizes };
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let acn: Arc<dyn Acn> = Arc::new(LoopbackAcn::new(&net).unwrap());

    let mut child = Child::spawn(&net, &dir.path().join("alice"));
    let (bob_cwtch, bob, mut bob_events) =
        profile(&dir.path().join("bob"), acn.clone(), "bob").await;
    let a: torv3::Onion = tokio::task::block_in_place(|| child.expect("onion"))
        .parse()
        .unwrap();
    let b = bob.onion().clone();
    bob.add_contact(a.as_str()).await.unwrap();
    until(&mut bob_events, "connected", |e| {
        matches!(
            e,
            Event::PeerStateChanged {
                state: ConnectionState::Authenticated,
                ..
            }
        )
    })
    .await;

    println!("| file | raw 8150 B payloads | raw 4096 B payloads | download | ratio (8150 / 4096) | downloader RSS at start → peak during the download | CPU s: downloader / sharer | CPU s: raw 4096 B (both ends) / download (both) |");
    println!("|---|---|---|---|---|---|---|---|");
    for mib in sizes {
        let total = mib * 1024 * 1024;
        let full = raw_baseline(acn.clone(), total, 8150).await;
        // Both ends of the baseline run in this process: its CPU time is theirs.
        let cpu_raw = cpu_seconds(std::process::id());
        let chunked = raw_baseline(acn.clone(), total, 4096).await;
        let cpu_raw = cpu_seconds(std::process::id()) - cpu_raw;

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
        child.send(&format!("share {b} {}", path.display()));
        let key = tokio::task::block_in_place(|| child.expect("key"));
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
        let (me, sharer_pid) = (std::process::id(), child.process.id());
        let (cpu_me, cpu_sharer) = (cpu_seconds(me), cpu_seconds(sharer_pid));
        let start = Instant::now();
        bob.download_file(&a, &key, &out).await.unwrap();
        let done = until(&mut bob_events, "downloaded", |e| {
            matches!(e, Event::FileDownloaded { file_key, .. } if *file_key == key)
                || matches!(e, Event::FileDownloadFailed { .. })
        })
        .await;
        let secs = start.elapsed().as_secs_f64();
        let after = vm_hwm_kib();
        let (cpu_me, cpu_sharer) = (
            cpu_seconds(me) - cpu_me,
            cpu_seconds(sharer_pid) - cpu_sharer,
        );
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
            "| {mib} MiB | {full:.1} MB/s | {chunked:.1} MB/s | {rate:.1} MB/s ({secs:.1} s) | {:.2}× / {:.2}× | {} → {} MiB | {cpu_me:.1} / {cpu_sharer:.1} | {cpu_raw:.1} / {:.1} ({:.2}×) |",
            rate / full,
            rate / chunked,
            before / 1024,
            after / 1024,
            cpu_me + cpu_sharer,
            cpu_raw / (cpu_me + cpu_sharer)
        );
        std::fs::remove_file(&got).unwrap();
    }
    child.send("quit");
    bob_cwtch.shutdown().await;
    let _ = child.process.wait();
}
