//! `testnet up`: bring a private Tor network up on 127.0.0.1, print one JSON line describing
//! it, stay up until SIGINT/SIGTERM, then tear it down.

#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use testnet::{TestNet, TestNetConfig};

/// A private Tor network of real tor processes on 127.0.0.1, for development and tests.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bring the network up, print one JSON line (clients, torrc lines, pids), run until
    /// SIGINT or SIGTERM, then tear everything down.
    Up {
        /// Clients to start and bootstrap.
        #[arg(long, default_value_t = 2)]
        clients: usize,
        /// Non-authority relays (there are 3 authorities besides).
        #[arg(long, default_value_t = 2)]
        relays: usize,
        /// An existing directory in which to create the network's directory (default: the
        /// system temporary directory). Only the created subdirectory is removed.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The authorities' voting interval in seconds.
        #[arg(long, default_value_t = 10)]
        voting_interval: u64,
        /// The tor binary.
        #[arg(long, default_value = "tor")]
        tor: PathBuf,
        /// Give up bringing the network up after this many seconds.
        #[arg(long, default_value_t = 90)]
        timeout: u64,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "testnet=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("testnet: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("testnet: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Up {
            clients,
            relays,
            dir,
            voting_interval,
            tor,
            timeout,
        } => {
            let mut config = TestNetConfig::default()
                .clients(clients)
                .relays(relays)
                .tor_binary(tor)
                .voting_interval(Duration::from_secs(voting_interval))
                .startup_timeout(Duration::from_secs(timeout));
            if let Some(dir) = dir {
                config = config.base_dir(dir);
            }
            // Listen for signals before starting, so a signal during bring-up is not lost.
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            let net = tokio::select! {
                net = TestNet::start(config) => net?,
                _ = tokio::signal::ctrl_c() => return Ok(()),
                _ = term.recv() => return Ok(()),
            };
            println!("{}", describe(&net));
            tokio::select! {
                r = tokio::signal::ctrl_c() => r?,
                _ = term.recv() => {}
            }
            tracing::info!("tearing down");
            net.stop().await?;
            Ok(())
        }
    }
}

fn describe(net: &TestNet) -> serde_json::Value {
    let t = net.timings();
    serde_json::json!({
        "dir": net.dir(),
        "tor_version": net.tor_version(),
        "clients": net.clients().iter().map(|c| serde_json::json!({
            "name": c.name,
            "pid": c.pid,
            "socks_port": c.socks_port,
            "control_port": c.control_port,
            "cookie_path": c.cookie_path,
            "data_dir": c.data_dir,
        })).collect::<Vec<_>>(),
        "client_torrc_lines": net.client_torrc_lines(),
        "processes": net.processes().iter().map(|p| serde_json::json!({
            "role": p.role.to_string(),
            "name": p.name,
            "pid": p.pid,
            "data_dir": p.data_dir,
        })).collect::<Vec<_>>(),
        "timings_s": {
            "network": t.network.as_secs_f64(),
            "clients": t.clients.as_secs_f64(),
            "total": t.total.as_secs_f64(),
        },
    })
}
