//! Measures the Tor backend over the private test network (`testnet`: 3 authorities,
//! 2 relays, 2 clients, all real `tor` processes on 127.0.0.1), one fresh network per run:
//!
//! - network bring-up and client bootstrap (`testnet::Timings`);
//! - onion service publish time: [`TorAcn`] (attached to client 0) `listen` until it returns,
//!   that is until every descriptor upload has finished;
//! - first-connection latency: the first `connect` to that onion from a [`TorAcn`] attached
//!   to client 1, descriptor fetch and rendezvous included;
//! - message round trips over that onion circuit (`--pings` ping-pongs of `--size` bytes:
//!   min / median / p99 / max). About one network in four has a steady ~88 ms round trip
//!   instead of ~1 ms (see the testnet README), so each run's median is shown on its own
//!   rather than averaged away;
//! - tor's resident memory (VmRSS) per process role.
//!
//! ```text
//! cargo run --release -p connectivity --example tor_measure -- --runs 5 [--pings 200] [--size 100]
//! ```
//!
//! Prints a table and one JSON line per run, then min / median / max over runs (a table and
//! one JSON line). Logs go to stderr (`RUST_LOG`, default `warn`).

#![forbid(unsafe_code)]
// A measuring tool: its output on stdout (and progress on stderr) is the point.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::error::Error;
use std::time::{Duration, Instant};

use connectivity::{Acn, ControlAuth, IsolationKey, TorAcn, TorConfig, TorTimeouts, CWTCH_PORT};
use testnet::{Role, TestClient, TestNet, TestNetConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use torv3::Identity;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The bound on each step after bring-up (bring-up has `TestNetConfig::startup_timeout`).
const STEP: Duration = Duration::from_secs(120);

struct Args {
    runs: usize,
    pings: usize,
    size: usize,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        runs: 5,
        pings: 200,
        size: 100,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let slot = match flag.as_str() {
            "--runs" => &mut args.runs,
            "--pings" => &mut args.pings,
            "--size" => &mut args.size,
            "-h" | "--help" => {
                println!(
                    "usage: tor_measure [--runs N (5)] [--pings N (200)] [--size BYTES (100)]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)").into()),
        };
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        *slot = value.parse().map_err(|e| format!("{flag} {value}: {e}"))?;
    }
    if args.runs == 0 || args.pings == 0 || args.size == 0 {
        return Err("--runs, --pings and --size must be at least 1".into());
    }
    Ok(args)
}

/// One figure: JSON key, label for the table, value, unit.
struct Sample {
    key: String,
    label: String,
    value: f64,
    unit: &'static str,
}

/// The figures of one run, in the order they are shown.
#[derive(Default)]
struct Run {
    samples: Vec<Sample>,
}

impl Run {
    fn add(&mut self, key: &str, label: &str, value: f64, unit: &'static str) {
        self.samples.push(Sample {
            key: key.to_owned(),
            label: label.to_owned(),
            value,
            unit,
        });
    }

    fn secs(&mut self, key: &str, label: &str, d: Duration) {
        self.add(key, label, d.as_secs_f64(), "s");
    }

    fn get(&self, key: &str) -> Option<f64> {
        self.samples.iter().find(|s| s.key == key).map(|s| s.value)
    }
}

/// Nearest-rank percentile of sorted values (`p` in 0..=100).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn fmt_value(value: f64, unit: &str) -> String {
    match unit {
        "ms" if value < 10.0 => format!("{value:.2} {unit}"),
        "ms" => format!("{value:.1} {unit}"),
        "s" if value < 1.0 => format!("{value:.3} {unit}"),
        "s" => format!("{value:.2} {unit}"),
        _ => format!("{value:.1} {unit}"),
    }
}

async fn attach(client: &TestClient) -> Result<TorAcn> {
    let mut timeouts = TorTimeouts::default();
    timeouts.publish = STEP;
    let acn = TorAcn::new(
        TorConfig::attach(
            client.control_addr().to_string(),
            ControlAuth::Cookie(Some(client.cookie_path.clone())),
        )
        .timeouts(timeouts),
    )
    .await?;
    tokio::time::timeout(STEP, acn.wait_until_bootstrapped()).await??;
    Ok(acn)
}

/// Brings a network up, measures, tears it down.
async fn one_run(args: &Args) -> Result<(Run, String)> {
    let mut run = Run::default();
    let net = TestNet::start(TestNetConfig::default()).await?;
    let version = net.tor_version().to_owned();
    let t = net.timings();
    run.secs(
        "network_s",
        "network bring-up (start to full consensus)",
        t.network,
    );
    run.secs("keys_s", "  of which keys and fingerprints", t.prepare);
    run.secs(
        "client_bootstrap_s",
        "client bootstrap (both clients, to 100%)",
        t.clients,
    );
    run.secs("start_total_s", "total TestNet::start", t.total);

    let (host_client, dial_client) = match net.clients() {
        [a, b, ..] => (a.clone(), b.clone()),
        _ => return Err("the test network has fewer than 2 clients".into()),
    };
    let host = attach(&host_client).await?;
    let dialer = attach(&dial_client).await?;
    let identity = Identity::generate(&mut rand_core::OsRng);

    let started = Instant::now();
    let mut listener = tokio::time::timeout(STEP, host.listen(&identity, CWTCH_PORT)).await??;
    run.secs(
        "publish_s",
        "onion publish (listen until descriptors uploaded)",
        started.elapsed(),
    );

    let started = Instant::now();
    let mut out = tokio::time::timeout(
        STEP,
        dialer.connect(
            &identity.onion(),
            CWTCH_PORT,
            &IsolationKey::new("tor_measure"),
        ),
    )
    .await??;
    run.secs(
        "first_connect_s",
        "first connection (descriptor fetch + rendezvous)",
        started.elapsed(),
    );
    let mut inbound = tokio::time::timeout(STEP, listener.accept()).await??;

    // The host echoes every message; the dialer times each round trip.
    let size = args.size;
    let echo = tokio::spawn(async move {
        let mut buf = vec![0; size];
        while inbound.read_exact(&mut buf).await.is_ok() {
            if inbound.write_all(&buf).await.is_err() {
                break;
            }
        }
    });
    let mut rtts = Vec::with_capacity(args.pings);
    let mut back = vec![0; size];
    for i in 0..args.pings {
        let msg: Vec<u8> = (0..size).map(|j| (i + j) as u8).collect();
        let started = Instant::now();
        out.write_all(&msg).await?;
        tokio::time::timeout(STEP, out.read_exact(&mut back)).await??;
        rtts.push(started.elapsed().as_secs_f64() * 1e3);
        if back != msg {
            return Err(format!("round trip {i}: the echo differs").into());
        }
    }
    drop(out);
    let _ = tokio::time::timeout(STEP, echo).await;
    let rtts = sorted(rtts);
    let label = format!("round trip, {} x {} B", args.pings, args.size);
    run.add("rtt_min_ms", &format!("{label}: min"), rtts[0], "ms");
    run.add(
        "rtt_median_ms",
        &format!("{label}: median"),
        percentile(&rtts, 50.0),
        "ms",
    );
    run.add(
        "rtt_p99_ms",
        &format!("{label}: p99"),
        percentile(&rtts, 99.0),
        "ms",
    );
    run.add(
        "rtt_max_ms",
        &format!("{label}: max"),
        rtts[rtts.len() - 1],
        "ms",
    );

    // Memory with the service hosted and the circuit in use.
    let mut by_role: BTreeMap<Role, Vec<u64>> = BTreeMap::new();
    for p in net.processes() {
        let rss = p.vm_rss_kib().ok_or("a tor process vanished")?;
        by_role.entry(p.role).or_default().push(rss);
    }
    let mib = |kib: u64| kib as f64 / 1024.0;
    let mut total = 0;
    for (role, rss) in &by_role {
        let sum: u64 = rss.iter().sum();
        total += sum;
        let max = rss.iter().copied().max().unwrap_or(0);
        run.add(
            &format!("rss_{role}_mean_mib"),
            &format!("tor RSS per {role} (x{}): mean", rss.len()),
            mib(sum / rss.len() as u64),
            "MiB",
        );
        run.add(
            &format!("rss_{role}_max_mib"),
            &format!("tor RSS per {role} (x{}): max", rss.len()),
            mib(max),
            "MiB",
        );
    }
    run.add("rss_total_mib", "tor RSS, all processes", mib(total), "MiB");

    drop(listener);
    host.close().await;
    dialer.close().await;
    let started = Instant::now();
    net.stop().await?;
    run.secs("teardown_s", "teardown (TestNet::stop)", started.elapsed());
    Ok((run, version))
}

/// A JSON number (4 decimals are plenty for seconds, milliseconds and MiB).
fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{}", (v * 1e4).round() / 1e4)
    } else {
        "null".to_owned()
    }
}

/// A JSON string.
fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `{"k": v, ...}` from already encoded values.
fn json_object(fields: &[(String, String)]) -> String {
    let fields: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", json_str(k)))
        .collect();
    format!("{{{}}}", fields.join(","))
}

fn json_line(run_no: usize, run: &Run) -> String {
    let mut fields = vec![("run".to_owned(), run_no.to_string())];
    for s in &run.samples {
        fields.push((s.key.clone(), json_num(s.value)));
    }
    json_object(&fields)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = parse_args()?;
    let mut runs = Vec::new();
    let mut tor_version = String::new();
    for i in 1..=args.runs {
        eprintln!("run {i}/{}: bringing a test network up...", args.runs);
        let (run, version) = one_run(&args).await?;
        tor_version = version;
        println!("\nrun {i}/{}", args.runs);
        for s in &run.samples {
            println!("  {:<52} {:>12}", s.label, fmt_value(s.value, s.unit));
        }
        println!("{}", json_line(i, &run));
        runs.push(run);
    }

    // Min / median / max of every figure over the runs.
    println!(
        "\nsummary over {} runs ({tor_version}; {} round trips of {} B per run)",
        runs.len(),
        args.pings,
        args.size
    );
    println!(
        "  {:<52} {:>12} {:>12} {:>12}",
        "figure", "min", "median", "max"
    );
    let mut aggregate = Vec::new();
    for s in &runs[0].samples {
        let values = sorted(runs.iter().filter_map(|r| r.get(&s.key)).collect());
        let (min, median, max) = (
            values[0],
            percentile(&values, 50.0),
            values[values.len() - 1],
        );
        println!(
            "  {:<52} {:>12} {:>12} {:>12}",
            s.label,
            fmt_value(min, s.unit),
            fmt_value(median, s.unit),
            fmt_value(max, s.unit)
        );
        let stats = [("min", min), ("median", median), ("max", max)]
            .map(|(k, v)| (k.to_owned(), json_num(v)));
        aggregate.push((s.key.clone(), json_object(&stats)));
    }
    // The round-trip mode of each network, not averaged: ~1 ms or a steady ~88 ms.
    let medians: Vec<f64> = runs.iter().filter_map(|r| r.get("rtt_median_ms")).collect();
    let shown: Vec<String> = medians.iter().map(|m| fmt_value(*m, "ms")).collect();
    let slow = medians.iter().filter(|m| **m >= 20.0).count();
    println!(
        "  round-trip median per run: {} ({slow} of {} runs in the slow mode, >= 20 ms)",
        shown.join(", "),
        medians.len()
    );
    let per_run: Vec<String> = medians.iter().map(|m| json_num(*m)).collect();
    let summary = json_object(&[
        ("summary".to_owned(), json_object(&aggregate)),
        ("runs".to_owned(), runs.len().to_string()),
        ("pings".to_owned(), args.pings.to_string()),
        ("size".to_owned(), args.size.to_string()),
        ("tor_version".to_owned(), json_str(&tor_version)),
        (
            "rtt_median_ms_per_run".to_owned(),
            format!("[{}]", per_run.join(",")),
        ),
    ]);
    println!("{summary}");
    Ok(())
}
