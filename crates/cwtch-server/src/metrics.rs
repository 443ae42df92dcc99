//! What an operator wants to know, without knowing anything about users: counts only.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tapir_service::InboundStats;

/// The stats file, rewritten every few seconds by a running server.
pub const STATS_FILE: &str = "stats.json";
/// Go's human-readable report, written when `serverReporting.logMetricsToFile` is set.
pub const REPORT_FILE: &str = "serverMonitorReport.txt";

/// Live counters.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    /// Open token-board connections.
    pub board_connections: AtomicU64,
    /// Open token-service connections.
    pub token_connections: AtomicU64,
    /// Posts stored and acknowledged.
    pub posts_accepted: AtomicU64,
    /// Posts acknowledged that were already stored (same signature).
    pub posts_duplicate: AtomicU64,
    /// Posts refused (bad or spent token, too large).
    pub posts_rejected: AtomicU64,
    /// Tokens signed by the token service.
    pub tokens_issued: AtomicU64,
    /// Tokens redeemed.
    pub tokens_spent: AtomicU64,
    /// Replays served.
    pub replays: AtomicU64,
    /// Connections closed for exceeding the request rate.
    pub closed_rate_limited: AtomicU64,
    /// Connections closed for sending something malformed.
    pub closed_malformed: AtomicU64,
    /// Connections closed for reading a replay too slowly.
    pub closed_slow: AtomicU64,
    /// Store transactions committed by the group commit (one WAL fsync each).
    pub commits: AtomicU64,
    /// Posts those transactions committed (divided by `commits`: the mean batch).
    pub committed_posts: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            board_connections: AtomicU64::new(0),
            token_connections: AtomicU64::new(0),
            posts_accepted: AtomicU64::new(0),
            posts_duplicate: AtomicU64::new(0),
            posts_rejected: AtomicU64::new(0),
            tokens_issued: AtomicU64::new(0),
            tokens_spent: AtomicU64::new(0),
            replays: AtomicU64::new(0),
            closed_rate_limited: AtomicU64::new(0),
            closed_malformed: AtomicU64::new(0),
            closed_slow: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            committed_posts: AtomicU64::new(0),
        }
    }
}

/// Increments a counter on creation and decrements it on drop (open-connection gauges).
pub(crate) struct Gauge<'a>(&'a AtomicU64);

impl<'a> Gauge<'a> {
    pub(crate) fn up(c: &'a AtomicU64) -> Gauge<'a> {
        c.fetch_add(1, Ordering::Relaxed);
        Gauge(c)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A snapshot, as `stats.json` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Whether the server was running when this was written.
    pub running: bool,
    /// Messages in the store.
    pub messages: u64,
    /// Open token-board connections.
    pub board_connections: u64,
    /// Open token-service connections.
    pub token_connections: u64,
    /// Posts stored and acknowledged.
    pub posts_accepted: u64,
    /// Posts acknowledged that were already stored.
    pub posts_duplicate: u64,
    /// Posts refused.
    pub posts_rejected: u64,
    /// Tokens signed.
    pub tokens_issued: u64,
    /// Tokens redeemed.
    pub tokens_spent: u64,
    /// Replays served.
    pub replays: u64,
    /// Connections closed for exceeding the request rate.
    pub closed_rate_limited: u64,
    /// Connections closed for malformed requests.
    pub closed_malformed: u64,
    /// Connections closed for reading a replay too slowly (`replayPageTimeoutSecs`).
    #[serde(default)]
    pub closed_slow: u64,
    /// Connections in their handshake now, both services (not yet authenticated, or not yet
    /// past the proof of work).
    #[serde(default)]
    pub handshakes: u64,
    /// Handshakes closed to make room for newer connections when a service was full.
    #[serde(default)]
    pub handshakes_evicted: u64,
    /// Connections refused because established connections filled their share.
    #[serde(default)]
    pub connections_refused: u64,
    /// Store transactions committed for posts (one WAL fsync each).
    #[serde(default)]
    pub commits: u64,
    /// Posts those transactions committed (`committed_posts / commits`: the mean batch).
    #[serde(default)]
    pub committed_posts: u64,
    /// Seconds since the server started.
    pub uptime_secs: u64,
    /// When this snapshot was taken (Unix seconds).
    pub updated_unix: u64,
}

impl Metrics {
    /// A snapshot with the store's message count.
    pub fn snapshot(&self, messages: u64, running: bool) -> Stats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            running,
            messages,
            board_connections: g(&self.board_connections),
            token_connections: g(&self.token_connections),
            posts_accepted: g(&self.posts_accepted),
            posts_duplicate: g(&self.posts_duplicate),
            posts_rejected: g(&self.posts_rejected),
            tokens_issued: g(&self.tokens_issued),
            tokens_spent: g(&self.tokens_spent),
            replays: g(&self.replays),
            closed_rate_limited: g(&self.closed_rate_limited),
            closed_malformed: g(&self.closed_malformed),
            closed_slow: g(&self.closed_slow),
            handshakes: 0,
            handshakes_evicted: 0,
            connections_refused: 0,
            commits: g(&self.commits),
            committed_posts: g(&self.committed_posts),
            uptime_secs: self.started.elapsed().as_secs(),
            updated_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }
}

impl Stats {
    /// With the admission counts of the token board's and the token service's connections.
    pub fn with_inbound(mut self, board: &InboundStats, tokens: &InboundStats) -> Stats {
        let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        self.handshakes = wide(board.handshaking) + wide(tokens.handshaking);
        self.handshakes_evicted = board.evicted + tokens.evicted;
        self.connections_refused = board.refused + tokens.refused;
        self
    }

    /// Posts per store commit (0 before the first commit).
    pub fn mean_batch(&self) -> f64 {
        if self.commits == 0 {
            0.0
        } else {
            self.committed_posts as f64 / self.commits as f64
        }
    }

    /// Human-readable lines (the `stats` subcommand and the metrics log).
    pub fn lines(&self) -> Vec<String> {
        vec![
            format!("running:             {}", self.running),
            format!("messages stored:     {}", self.messages),
            format!(
                "connections:         {} token board, {} token service",
                self.board_connections, self.token_connections
            ),
            format!(
                "posts:               {} accepted, {} duplicate, {} rejected",
                self.posts_accepted, self.posts_duplicate, self.posts_rejected
            ),
            format!(
                "tokens:              {} issued, {} spent",
                self.tokens_issued, self.tokens_spent
            ),
            format!("replays:             {}", self.replays),
            format!(
                "closed connections:  {} rate-limited, {} malformed, {} slow",
                self.closed_rate_limited, self.closed_malformed, self.closed_slow
            ),
            format!(
                "handshakes:          {} in progress, {} evicted, {} refused",
                self.handshakes, self.handshakes_evicted, self.connections_refused
            ),
            format!(
                "store commits:       {} for {} posts (mean batch {:.1})",
                self.commits,
                self.committed_posts,
                self.mean_batch()
            ),
            format!("uptime:              {} s", self.uptime_secs),
        ]
    }
}

fn stats_path(dir: &Path) -> PathBuf {
    dir.join(STATS_FILE)
}

/// Atomically replace `stats.json` (and Go's text report if asked).
pub fn write_stats(dir: &Path, stats: &Stats, text_report: bool) -> std::io::Result<()> {
    let tmp = dir.join(".stats.json.tmp");
    let json = serde_json::to_vec_pretty(stats).map_err(std::io::Error::other)?;
    write_private(&tmp, &json)?;
    std::fs::rename(&tmp, stats_path(dir))?;
    if text_report {
        let tmp = dir.join(".report.tmp");
        write_private(&tmp, (stats.lines().join("\n") + "\n").as_bytes())?;
        std::fs::rename(&tmp, dir.join(REPORT_FILE))?;
    }
    Ok(())
}

/// Write `data` to a new file readable by us only (0600, whatever the umask).
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}

/// Read the last `stats.json`, if any.
pub fn read_stats(dir: &Path) -> std::io::Result<Option<Stats>> {
    match std::fs::read(stats_path(dir)) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(std::io::Error::other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
