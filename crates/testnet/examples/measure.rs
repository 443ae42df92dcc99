//! Measures the test network: bring-up time, client bootstrap time, teardown time and tor's
//! resident memory per role, over several runs.
//!
//! ```text
//! cargo run -p testnet --example measure -- [--runs 5] [--relays 2] [--clients 2]
//! ```
//!
//! Each run brings a fresh network up, calls every function in [`STEPS`] (each records named
//! samples into the run's [`Run`]), and tears the network down. To measure something more
//! (onion-service publish time, round trips over the Tor backend...), write an
//! `async fn(&mut TestNet, &mut Run) -> Result<(), Box<dyn Error>>` and add it to `STEPS`;
//! the summary (min / median / max over runs) picks it up by name.

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use clap::Parser;
use testnet::{Role, TestNet, TestNetConfig};

#[derive(Debug, Parser)]
struct Args {
    /// How many networks to bring up, one after the other.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Non-authority relays.
    #[arg(long, default_value_t = 2)]
    relays: usize,
    /// Clients.
    #[arg(long, default_value_t = 2)]
    clients: usize,
}

/// The samples of one run: metric name -> (value, unit).
#[derive(Debug, Default)]
struct Run {
    samples: BTreeMap<String, (f64, &'static str)>,
}

impl Run {
    fn secs(&mut self, name: &str, d: Duration) {
        self.samples.insert(name.to_owned(), (d.as_secs_f64(), "s"));
    }

    fn mib(&mut self, name: &str, kib: u64) {
        self.samples
            .insert(name.to_owned(), (kib as f64 / 1024.0, "MiB"));
    }
}

type StepFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Box<dyn Error>>> + 'a>>;
type Step = for<'a> fn(&'a mut TestNet, &'a mut Run) -> StepFuture<'a>;

/// What is measured on each network once it is up, in order.
const STEPS: &[Step] = &[|net, run| Box::pin(memory(net, run))];

/// Resident memory (VmRSS) of the tor processes, per role: mean and max.
async fn memory(net: &mut TestNet, run: &mut Run) -> Result<(), Box<dyn Error>> {
    let mut by_role: BTreeMap<Role, Vec<u64>> = BTreeMap::new();
    for p in net.processes() {
        let rss = p.vm_rss_kib().ok_or("a tor process vanished")?;
        by_role.entry(p.role).or_default().push(rss);
    }
    let mut total = 0;
    for (role, rss) in by_role {
        let sum: u64 = rss.iter().sum();
        total += sum;
        run.mib(&format!("rss {role} mean"), sum / rss.len() as u64);
        run.mib(
            &format!("rss {role} max"),
            rss.iter().copied().max().unwrap_or(0),
        );
    }
    run.mib("rss all tor total", total);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "testnet=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut runs = Vec::new();
    for i in 0..args.runs {
        let config = TestNetConfig::default()
            .relays(args.relays)
            .clients(args.clients);
        let mut run = Run::default();
        let mut net = TestNet::start(config).await?;
        let t = net.timings();
        run.secs("network bring-up (to full consensus)", t.network);
        run.secs("  of which keys and fingerprints", t.prepare);
        run.secs("client bootstrap (all clients)", t.clients);
        run.secs("total start", t.total);
        for step in STEPS {
            step(&mut net, &mut run).await?;
        }
        let stopping = Instant::now();
        net.stop().await?;
        run.secs("teardown", stopping.elapsed());
        eprintln!(
            "run {}: network {:.1} s, clients {:.1} s, total {:.1} s",
            i + 1,
            t.network.as_secs_f64(),
            t.clients.as_secs_f64(),
            t.total.as_secs_f64()
        );
        runs.push(run);
    }

    println!(
        "{} run(s), 3 authorities + {} relays + {} clients",
        runs.len(),
        args.relays,
        args.clients
    );
    println!("{:<40} {:>9} {:>9} {:>9}", "metric", "min", "median", "max");
    let names: Vec<String> = runs
        .first()
        .map(|r| r.samples.keys().cloned().collect())
        .unwrap_or_default();
    let mut summary = serde_json::Map::new();
    for name in names {
        let mut values: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.samples.get(&name))
            .map(|s| s.0)
            .collect();
        let unit = runs[0].samples[&name].1;
        values.sort_by(f64::total_cmp);
        let (min, median, max) = (
            values[0],
            values[values.len() / 2],
            values[values.len() - 1],
        );
        println!(
            "{:<40} {:>9.2} {:>9.2} {:>9.2} {unit}",
            name, min, median, max
        );
        summary.insert(
            name,
            serde_json::json!({ "unit": unit, "min": min, "median": median, "max": max }),
        );
    }
    println!("{}", serde_json::Value::Object(summary));
    Ok(())
}
