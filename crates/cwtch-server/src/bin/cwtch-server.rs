//! `cwtch-server`: run an untrusted Cwtch server.

// Printing is this binary's interface (libraries log through tracing instead).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use connectivity::Acn;
use cwtch_server::{metrics, Server, ServerConfig};

/// An untrusted, discardable Cwtch server: it stores fixed-size encrypted group messages it
/// cannot read or attribute, hands out blinded anti-spam tokens, and serves every message to
/// every client. Wire-compatible with Go's cwtch-server; its `serverConfig.json` can be moved
/// between the two.
#[derive(Parser)]
#[command(name = "cwtch-server", version)]
struct Cli {
    /// The server's data directory (identity, configuration, message store).
    #[arg(long, env = "CWTCH_SERVER_HOME", default_value_os_t = default_dir(), global = true)]
    data_dir: PathBuf,
    /// Log level filter (error, warn, info, debug, trace, or a tracing directive).
    #[arg(long, env = "CWTCH_LOG", default_value = "info", global = true)]
    log_level: String,
    /// Show onion addresses and keys in logs (off by default: logs get shared).
    #[arg(long, global = true)]
    unsafe_logging: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the server's identity and configuration (refuses to overwrite an existing one).
    Init {
        /// Cap the message store at this many MB (Go keeps 250 messages per MB); -1: no cap.
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        max_storage_mb: i64,
        /// A description for operators' tools (Go's `description` attribute).
        #[arg(long)]
        description: Option<String>,
    },
    /// Print the server's key bundle as one line, for clients to import.
    Bundle {
        /// Print a `tofubundle:` with an invite to a fresh group on this server instead.
        #[arg(long)]
        tofu: bool,
        /// The name of that group.
        #[arg(long, default_value = "", requires = "tofu")]
        group_name: String,
    },
    /// Serve until SIGINT or SIGTERM. Prints the `server:` bundle on stdout once reachable.
    Run {
        #[command(flatten)]
        network: connectivity::AcnArgs,
    },
    /// Show the server's counters (from the running server, or the last run).
    Stats {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn default_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cwtch-server")
}

fn init_logging(cli: &Cli) {
    torv3::safelog::set_unsafe_logging(cli.unsafe_logging);
    torv3::safelog::install_redacting_panic_hook();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours for a person at a terminal; none in a log file or a journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = e.source();
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> Result<()> {
    let dir = cli.data_dir;
    match cli.command {
        Command::Init {
            max_storage_mb,
            description,
        } => init(&dir, max_storage_mb, description),
        Command::Bundle { tofu, group_name } => {
            cwtch_server::check_data_dir(&dir)?;
            let config = ServerConfig::load(&dir)?;
            let line = if tofu {
                config.tofu_bundle(&group_name, &mut rand_core::OsRng)
            } else {
                config.server_bundle()
            };
            println!("{line}");
            Ok(())
        }
        Command::Run { network } => run(&dir, network).await,
        Command::Stats { json } => stats(&dir, json),
    }
}

fn init(dir: &Path, max_storage_mb: i64, description: Option<String>) -> Result<()> {
    cwtch_server::create_data_dir(dir)?;
    let mut config = ServerConfig::generate(&mut rand_core::OsRng);
    config.max_storage_mbs = max_storage_mb;
    if let Some(d) = description {
        config.attributes.insert("description".into(), d);
    }
    let path = config.save_new(dir)?;
    eprintln!("created {}", path.display());
    eprintln!("server onion: {}", config.onion());
    println!("{}", config.server_bundle());
    Ok(())
}

async fn run(dir: &Path, network: connectivity::AcnArgs) -> Result<()> {
    cwtch_server::check_data_dir(dir)?;
    let config = ServerConfig::load(dir)?;
    // Listen for SIGINT/SIGTERM from the start: waiting for Tor to bootstrap can take a while,
    // and a signal then must still mean a clean exit.
    let signal = wait_for_signal();
    tokio::pin!(signal);
    let acn: Arc<dyn Acn> = tokio::select! {
        acn = network.build(dir) => acn?,
        r = &mut signal => return r,
    };
    let server = tokio::select! {
        s = Server::start(config, dir, acn.clone()) => s?,
        r = &mut signal => {
            eprintln!("interrupted before the server was reachable");
            acn.close().await;
            return r;
        }
    };
    // The readiness signal for scripts: the bundle, on stdout, once reachable.
    println!("{}", server.bundle());
    signal.await?;
    server.shutdown().await;
    acn.close().await;
    Ok(())
}

async fn wait_for_signal() -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

fn stats(dir: &Path, json: bool) -> Result<()> {
    cwtch_server::check_data_dir(dir)?;
    let Some(mut s) = metrics::read_stats(dir)? else {
        return Err(format!(
            "no stats in {} yet (the server has never run)",
            dir.display()
        )
        .into());
    };
    // A stale file from a server that crashed still says running; trust the lock instead.
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(cwtch_server::LOCK_FILE))?;
    if lock.try_lock().is_ok() {
        s.running = false;
        s.board_connections = 0;
        s.token_connections = 0;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        for l in s.lines() {
            println!("{l}");
        }
    }
    Ok(())
}
