//! The load generator: drive a real `cwtch-server` process over the loopback network and
//! print what it sustains, beside baselines measured in the same run.
//!
//! It starts its own server (a temporary data directory, the loopback network), so the
//! figures are reproducible: N concurrent clients acquire tokens, post, and replay; then it
//! opens many idle connections and reads the server's memory from /proc.
//!
//! Baselines: the raw SQLite insert rate with the server's durability settings (WAL,
//! `synchronous = FULL`, one transaction per message), and the raw token redemption rate
//! (privacy pass verification with an in-memory spent set).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use connectivity::{Acn, LoopbackAcn};
use cwtch_model::{EncryptedGroupMessage, KeyBundle};
use cwtch_server::client::ServerClient;
use privacypass::{MemorySpentTokens, TokenServer};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Load-test a cwtch-server over the loopback network.
#[derive(Parser)]
#[command(name = "loadgen", version)]
struct Args {
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Posts per client.
    #[arg(long, default_value_t = 100)]
    posts: usize,
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

/// Raw SQLite: one durable insert per transaction, as the store does.
fn sqlite_baseline(dir: &Path, n: usize, size: usize) -> Result<f64> {
    let conn = rusqlite::Connection::open(dir.join("baseline.sqlite"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch("CREATE TABLE m (id INTEGER PRIMARY KEY AUTOINCREMENT, s TEXT UNIQUE NOT NULL, c TEXT NOT NULL)")?;
    let body = "x".repeat(size * 4 / 3);
    let t = Instant::now();
    for i in 0..n {
        conn.execute(
            "INSERT INTO m (s, c) VALUES (?1, ?2)",
            rusqlite::params![format!("sig{i}"), body],
        )?;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
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
    let total_posts = args.clients * args.posts;

    println!("cwtch-server load test: {} clients × {} posts of {} bytes, {} replays, {} idle connections", args.clients, args.posts, args.size, args.replays, args.idle);
    let sqlite = {
        let d = tmp.path().to_path_buf();
        let (n, size) = (total_posts.clamp(200, 2000), args.size);
        tokio::task::spawn_blocking(move || sqlite_baseline(&d, n, size)).await??
    };
    let redeem = tokio::task::spawn_blocking(|| redeem_baseline(2000)).await??;

    let data = tmp.path().join("server");
    let net = tmp.path().join("net");
    let mut server = start_server(&bin, &data, &net).await?;
    let pid = server.child.id().ok_or("server has no pid")?;
    let acn: Arc<dyn Acn> = Arc::new(LoopbackAcn::new(&net)?);
    let client = ServerClient::new(&server.bundle, acn.clone())?;

    // Tokens: each client buys what it needs, concurrently (PoW included).
    let t = Instant::now();
    let mut jobs = Vec::new();
    for _ in 0..args.clients {
        let (c, n) = (client.clone(), args.posts);
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

    // Posts: every client on its own connection, sequentially, all clients at once.
    let t = Instant::now();
    let mut jobs = Vec::new();
    for (ci, wallet) in wallets.into_iter().enumerate() {
        let (c, size) = (client.clone(), args.size);
        jobs.push(tokio::spawn(async move {
            let mut board = c.connect().await?;
            let mut lat = Vec::with_capacity(wallet.len());
            for (i, tok) in wallet.iter().enumerate() {
                let s = Instant::now();
                if !board.post(tok, &egm(ci, i, size)).await? {
                    return Err(format!("the server refused post {i} of client {ci}").into());
                }
                lat.push(s.elapsed());
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(lat)
        }));
    }
    let mut post_lat = Vec::new();
    for j in jobs {
        post_lat.extend(j.await??);
    }
    let post_secs = t.elapsed().as_secs_f64();
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

    let posts_per_s = total_posts as f64 / post_secs;
    println!();
    println!(
        "token acquisition   {:>10.0} tokens/s   ({} tokens, proof-of-work included, {:.1} s)",
        total_posts as f64 / token_secs,
        total_posts,
        token_secs
    );
    println!(
        "posts               {:>10.0} posts/s    p50 {}  p99 {}   ({} posts)",
        posts_per_s,
        ms(pct(&post_lat, 0.5)),
        ms(pct(&post_lat, 0.99)),
        total_posts
    );
    println!(
        "  baseline: raw SQLite durable inserts  {:>8.0}/s   → posts run at {:.2}× of it",
        sqlite,
        posts_per_s / sqlite
    );
    println!(
        "  baseline: raw token redemptions       {:>8.0}/s   → posts run at {:.2}× of it",
        redeem,
        posts_per_s / redeem
    );
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

    // A graceful stop: SIGTERM, exit 0.
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    let status = tokio::time::timeout(Duration::from_secs(30), server.child.wait()).await??;
    if !status.success() {
        return Err(format!("server exited with {status}").into());
    }
    Ok(())
}
