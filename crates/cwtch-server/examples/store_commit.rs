//! The store alone, without network or crypto: posts (spent token + message) committed in
//! batches by `MessageStore::commit`, beside the baseline measured in the same run and on the
//! same file system: single-row durable inserts into the same SQLite setup (Go's `messages`
//! table, WAL, `synchronous = FULL`, one transaction per row). Rounds alternate baseline and
//! subject so that both see the same disk.
//!
//! `cargo run --release -p cwtch-server --example store_commit -- [rounds] [posts per round]`

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use cwtch_server::store::{MessageStore, Outcome, Post};

fn cpu_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let Some(i) = s.rfind(')') else { return 0.0 };
    let f: Vec<&str> = s[i + 2..].split_whitespace().collect();
    let t = |k: usize| f.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1024);
    let tmp = tempfile::tempdir().expect("temporary directory");
    let ciphertext = vec![0x5au8; 2500];
    let mut next = 0u64;
    let mut post = |sig_len: usize| {
        next += 1;
        let mut t = [0u8; 32];
        t[..8].copy_from_slice(&next.to_be_bytes());
        let mut sig = vec![0u8; sig_len];
        sig[..8].copy_from_slice(&next.to_be_bytes());
        (t, sig)
    };

    // The baseline: its own file, one row per transaction.
    let base = MessageStore::open(&tmp.path().join("baseline").tap_mkdir(), -1).expect("open");
    let store = MessageStore::open(&tmp.path().join("store").tap_mkdir(), -1).expect("open");
    println!("store commit: {n} posts of 2500 bytes per measurement, {rounds} rounds");
    for round in 1..=rounds {
        let (c, t) = (cpu_secs(), Instant::now());
        for _ in 0..n {
            let (_, sig) = post(64);
            base.add(&sig, &ciphertext).expect("insert");
        }
        let base_rate = n as f64 / t.elapsed().as_secs_f64();
        let base_cpu = (cpu_secs() - c) * 1e6 / n as f64;
        print!("round {round}: single-row durable inserts {base_rate:>7.0}/s ({base_cpu:.0} µs CPU each)");
        for batch in [1usize, 16, 64] {
            let (c, t) = (cpu_secs(), Instant::now());
            for _ in 0..n / batch {
                let posts: Vec<Post> = (0..batch)
                    .map(|_| {
                        let (tok, sig) = post(64);
                        Post::new(tok, &sig, &ciphertext)
                    })
                    .collect();
                let out = store.commit(&posts).expect("commit");
                assert!(out.iter().all(|o| *o == Outcome::Stored));
            }
            let m = (n / batch * batch) as f64;
            let rate = m / t.elapsed().as_secs_f64();
            let cpu = (cpu_secs() - c) * 1e6 / m;
            print!(
                " | batch {batch}: {rate:>7.0} posts/s ({cpu:.0} µs CPU each) {:.2}×",
                rate / base_rate
            );
        }
        println!();
    }
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for std::path::PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).expect("mkdir");
        self
    }
}
