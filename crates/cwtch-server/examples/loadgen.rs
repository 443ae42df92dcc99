//! The load generator: drive a real `cwtch-server` process over the loopback network and
//! print what it sustains, beside baselines measured in the same run.
//!
//! It starts its own server (a temporary data directory, the loopback network), so the
//! figures are reproducible: N concurrent clients acquire tokens, then post in rounds (each
//! client on its own connection, one post at a time, all clients at once), then replay; then it
//! opens many idle connections and reads the server's memory from /proc.
//!
//! Baselines: before every round of posts, single-row durable inserts into the same SQLite
//! setup as the server's (Go's `messages` table, WAL, `synchronous = FULL`, one transaction
//! per row, messages of the same size, on the same file system), so that each round's ratio
//! compares figures taken seconds apart on a machine whose disk and CPUs are shared; and the
//! raw token redemption rate (privacy pass verification with an in-memory spent set).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use connectivity::{Acn, LoopbackAcn};
use cwtch_model::{EncryptedGroupMessage, KeyBundle};
use cwtch_server::client::{post_binding, ServerClient};
use privacypass::{MemorySpentTokens, TokenServer};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Load-test a cwtch-server over the loopback network.
#[derive(Parser)]
#[command(name = "loadgen", version)]
struct Args {
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Posts per client per round.
    #[arg(long, default_value_t = 100)]
    posts: usize,
    /// Rounds of posts, each after its own SQLite baseline.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Rows the SQLite baseline inserts before each round.
    #[arg(long, default_value_t = 1000)]
    baseline_rows: usize,
    /// Concurrent replays of the whole store.
    #[arg(long, default_value_t = 8)]
    replays: usize,
    /// Idle connections to open for the memory measurement (0: skip).
    #[arg(long, default_value_t = 1000)]
    idle: usize,
    /// The cwtch-server binary (default: the one cargo built next to this example).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Ciphertext size per message, bytes (Go's group messages are about 2.5 kB).
    #[arg(long, default_value_t = 2500)]
    size: usize,
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Raw SQLite: single-row durable inserts, one transaction each, into Go's `messages` table
/// with the server's settings. Appends to the same file every round.
fn sqlite_baseline(path: &Path, n: usize, size: usize) -> Result<f64> {
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch("CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT, signature TEXT UNIQUE NOT NULL, ciphertext TEXT NOT NULL)")?;
    let first: i64 = conn.query_row("SELECT COALESCE(MAX(id), 0) FROM messages", [], |r| {
        r.get(0)
    })?;
    // Base64, as the server stores it.
    let body = "x".repeat(size.div_ceil(3) * 4);
    let t = Instant::now();
    for i in 0..n {
        conn.execute(
            "INSERT INTO messages (signature, ciphertext) VALUES (?1, ?2)",
            rusqlite::params![format!("{:064}", first + i as i64), body],
        )?;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// CPU time (user + system) a process has used so far, from /proc.
fn cpu_secs(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(ticks / 100.0)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Raw token redemption: issue tokens directly (no network, no PoW), then time redeeming.
fn redeem_baseline(n: usize) -> Result<f64> {
    let server = TokenServer::generate(&mut rand_core::OsRng);
    let mut tokens = Vec::new();
    while tokens.len() < n {
        let (u, b) = privacypass::blind_batch(100, &mut rand_core::OsRng);
        let mut ts = privacypass::Transcript::new("t");
        let batch = server.sign_batch(&b, &mut ts, &mut rand_core::OsRng)?;
        let mut tc = privacypass::Transcript::new("t");
        tokens.extend(privacypass::unblind_batch(
            u,
            &b,
            &batch,
            &server.public_key(),
            &mut tc,
        )?);
    }
    let spent: Vec<_> = tokens.iter().map(|t| t.spend(b"data")).collect();
    let store = MemorySpentTokens::new();
    let t = Instant::now();
    for s in &spent {
        server.redeem(s, b"data", &store)?;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

struct ServerProcess {
    child: tokio::process::Child,
    bundle: KeyBundle,
}

async fn start_server(bin: &Path, data: &Path, net: &Path) -> Result<ServerProcess> {
    let status = std::process::Command::new(bin)
        .args(["--data-dir"])
        .arg(data)
        .args(["--log-level", "warn", "init"])
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        return Err("cwtch-server init failed".into());
    }
    // A load test must not be throttled by the per-connection rate limit.
    let path = data.join(cwtch_server::CONFIG_FILE);
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    cfg["limits"]["requestsPerSecond"] = 100_000.into();
    cfg["limits"]["requestBurst"] = 100_000.into();
    cfg["limits"]["maxBoardConnections"] = 100_000.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&cfg)?)?;
    let mut child = tokio::process::Command::new(bin)
        .arg("--data-dir")
        .arg(data)
        .args([
            "--log-level",
            "warn",
            "run",
            "--network",
            "loopback",
            "--loopback-dir",
        ])
        .arg(net)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .map_err(|_| "server did not become ready")??
        .ok_or("server exited before it was ready")?;
    let bundle = KeyBundle::parse_server_string(line.trim())?;
    Ok(ServerProcess { child, bundle })
}

fn egm(client: usize, i: usize, size: usize) -> EncryptedGroupMessage {
    let mut sig = vec![0u8; 64];
    sig[..8].copy_from_slice(&(client as u64).to_be_bytes());
    sig[8..16].copy_from_slice(&(i as u64).to_be_bytes());
    EncryptedGroupMessage {
        ciphertext: Some(vec![0x5a; size]),
        signature: Some(sig),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let tmp = tempfile::tempdir()?;
    let bin = match args.server_bin.clone() {
        Some(b) => b,
        // target/<profile>/examples/loadgen -> target/<profile>/cwtch-server
        None => std::env::current_exe()?
            .parent()
            .and_then(Path::parent)
            .ok_or("no binary directory")?
            .join("cwtch-server"),
    };
    if !bin.exists() {
        return Err(format!(
            "{} not found: build it first (cargo build --release -p cwtch-server) or pass --server-bin",
            bin.display()
        )
        .into());
    }
    let rounds = args.rounds.max(1);
    let per_round = args.clients * args.posts;
    let total_posts = per_round * rounds;

    println!(
        "cwtch-server load test: {} clients × {} posts of {} bytes × {} rounds, {} replays, {} idle connections",
        args.clients, args.posts, args.size, rounds, args.replays, args.idle
    );
    println!("server: {}", bin.display());
    println!("load average at start: {}", loadavg());
    let redeem = tokio::task::spawn_blocking(|| redeem_baseline(2000)).await??;

    let data = tmp.path().join("server");
    let net = tmp.path().join("net");
    let mut server = start_server(&bin, &data, &net).await?;
    let pid = server.child.id().ok_or("server has no pid")?;
    let acn: Arc<dyn Acn> = Arc::new(LoopbackAcn::new(&net)?);
    let client = ServerClient::new(&server.bundle, acn.clone())?;

    // Tokens: each client buys what it needs for every round, concurrently (PoW included).
    let t = Instant::now();
    let mut jobs = Vec::new();
    for _ in 0..args.clients {
        let (c, n) = (client.clone(), args.posts * rounds);
        jobs.push(tokio::spawn(async move {
            let mut all = Vec::new();
            while all.len() < n {
                all.extend(
                    c.fetch_tokens((n - all.len()).min(privacypass::MAX_BATCH_SIZE))
                        .await?,
                );
            }
            Ok::<_, cwtch_server::client::ClientError>(all)
        }));
    }
    let mut wallets = Vec::new();
    for j in jobs {
        wallets.push(j.await??);
    }
    let token_secs = t.elapsed().as_secs_f64();

    // Every client on its own connection, opened before the clock starts.
    let mut boards = Vec::new();
    for _ in 0..args.clients {
        boards.push(client.connect().await?);
    }

    // Rounds: the SQLite baseline (the server idle), then every client posts its share, one
    // post at a time, all clients at once.
    let baseline_db = tmp.path().join("baseline.sqlite");
    let mut post_lat = Vec::new();
    let (mut rates, mut bases, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    println!();
    for round in 0..rounds {
        let sqlite = {
            let (p, n, size) = (baseline_db.clone(), args.baseline_rows, args.size);
            tokio::task::spawn_blocking(move || sqlite_baseline(&p, n, size)).await??
        };
        // Each client's posts, their tokens spent (bound to message and server) before the
        // clock starts: that work is the members', on their own machines.
        let onion = client.onion().clone();
        let prepared: Vec<Vec<_>> = wallets
            .iter_mut()
            .enumerate()
            .map(|(ci, wallet)| {
                wallet
                    .drain(..args.posts)
                    .enumerate()
                    .map(|(i, tok)| {
                        let m = egm(ci, round * args.posts + i, args.size);
                        let spent = tok.spend(&post_binding(&m, &onion));
                        (spent, m)
                    })
                    .collect()
            })
            .collect();
        let cpu0 = (cpu_secs(&pid.to_string()), cpu_secs("self"));
        let t = Instant::now();
        let mut jobs = Vec::new();
        for (ci, (mut board, posts)) in boards.drain(..).zip(prepared).enumerate() {
            jobs.push(tokio::spawn(async move {
                let mut lat = Vec::with_capacity(posts.len());
                for (i, (spent, m)) in posts.into_iter().enumerate() {
                    let s = Instant::now();
                    if !board
                        .post_spent(spent.t.to_vec(), spent.mac.to_vec(), &m)
                        .await?
                    {
                        return Err(format!("the server refused post {i} of client {ci}").into());
                    }
                    lat.push(s.elapsed());
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>((board, lat))
            }));
        }
        for j in jobs {
            let (board, lat) = j.await??;
            boards.push(board);
            post_lat.extend(lat);
        }
        let rate = per_round as f64 / t.elapsed().as_secs_f64();
        let us = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.0}", (b - a) * 1e6 / per_round as f64),
            _ => "?".into(),
        };
        println!(
            "round {}: posts {:>7.0}/s   baseline: single-row durable inserts {:>7.0}/s   ratio {:.2}×   CPU µs/post: server {} clients {}   (load {})",
            round + 1,
            rate,
            sqlite,
            rate / sqlite,
            us(cpu0.0, cpu_secs(&pid.to_string())),
            us(cpu0.1, cpu_secs("self")),
            loadavg()
        );
        rates.push(rate);
        bases.push(sqlite);
        ratios.push(rate / sqlite);
    }
    drop(boards);
    post_lat.sort();

    // Replays of the whole store, concurrently.
    let t = Instant::now();
    let mut jobs = Vec::new();
    for _ in 0..args.replays {
        let c = client.clone();
        jobs.push(tokio::spawn(async move {
            let mut board = c.connect().await?;
            let s = Instant::now();
            let n = board.replay(None).await?.len();
            Ok::<_, cwtch_server::client::ClientError>((n, s.elapsed()))
        }));
    }
    let mut replay_lat = Vec::new();
    let mut replayed = 0;
    for j in jobs {
        let (n, d) = j.await??;
        if n != total_posts {
            return Err(format!("a replay returned {n} of {total_posts} messages").into());
        }
        replayed += n;
        replay_lat.push(d);
    }
    let replay_secs = t.elapsed().as_secs_f64();
    replay_lat.sort();

    // Memory per idle connection.
    let mut per_conn = None;
    if args.idle > 0 {
        let before = rss_kib(pid).ok_or("cannot read the server's memory")?;
        let mut idle = Vec::with_capacity(args.idle);
        for _ in 0..args.idle {
            idle.push(client.connect().await?);
        }
        // Let the server finish registering them before reading its memory.
        let mut probe = client.connect().await?;
        probe.replay(Some(b"none")).await?;
        let after = rss_kib(pid).ok_or("cannot read the server's memory")?;
        per_conn = Some((
            before,
            after,
            after.saturating_sub(before) as f64 * 1024.0 / args.idle as f64,
        ));
        drop(idle);
    }

    // A graceful stop: SIGTERM, exit 0; the final stats.json says how posts were committed.
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    let status = tokio::time::timeout(Duration::from_secs(30), server.child.wait()).await??;
    if !status.success() {
        return Err(format!("server exited with {status}").into());
    }
    let stats = cwtch_server::metrics::read_stats(&data)?;

    println!();
    println!(
        "token acquisition   {:>10.0} tokens/s   ({} tokens, proof-of-work included, {:.1} s)",
        total_posts as f64 / token_secs,
        total_posts,
        token_secs
    );
    println!(
        "posts               {:>10.0} posts/s    median of {} rounds; p50 {}  p99 {}   ({} posts)",
        median(&rates),
        rounds,
        ms(pct(&post_lat, 0.5)),
        ms(pct(&post_lat, 0.99)),
        total_posts
    );
    println!(
        "  baseline: single-row durable inserts {:>8.0}/s   median; posts/baseline, median of the rounds' ratios: {:.2}× (range {:.2}–{:.2})",
        median(&bases),
        median(&ratios),
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(0.0, f64::max),
    );
    println!(
        "  baseline: raw token redemptions      {:>8.0}/s   → posts run at {:.2}× of it",
        redeem,
        median(&rates) / redeem
    );
    match stats.filter(|s| s.commits > 0) {
        Some(s) => println!(
            "  store commits: {} for {} posts (mean batch {:.1})",
            s.commits,
            s.committed_posts,
            s.mean_batch()
        ),
        None => println!("  store commits: not reported by this server"),
    }
    println!(
        "replay              {:>10.0} msgs/s     p50 {}  p99 {}   ({} replays of {} messages)",
        replayed as f64 / replay_secs,
        ms(pct(&replay_lat, 0.5)),
        ms(pct(&replay_lat, 0.99)),
        args.replays,
        total_posts
    );
    if let Some((b, a, per)) = per_conn {
        println!("memory              {:>10.1} KiB per idle connection   (server RSS {} → {} KiB with {} idle connections)", per / 1024.0, b, a, args.idle);
    }
    println!("load average at end: {}", loadavg());
    Ok(())
}
