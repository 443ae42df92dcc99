//! Command-line options shared by the binaries to choose and configure the ACN
//! (feature `cli`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::acn::{Acn, AcnStatus};
use crate::error::{ConfigProblem, Error, Operation};
use crate::loopback::{LoopbackAcn, LOOPBACK_DIR_ENV};
use crate::tor::{ControlAuth, ControlPassword, TorAcn, TorConfig};

/// Longest control-port password read from stdin.
const MAX_PASSWORD: u64 = 4096;

/// Which network carries the traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
#[non_exhaustive]
pub enum NetworkKind {
    /// Tor: our own `tor`, or a running one through its control port.
    #[default]
    Tor,
    /// The loopback network: NO ANONYMITY, for tests and local development only.
    Loopback,
}

/// The ACN options every binary takes. Flatten into a `clap::Parser` with
/// `#[command(flatten)] acn: AcnArgs`, then call [`AcnArgs::build`].
///
/// - default: launch `tor` from `PATH` with its files in `<data dir>/tor`;
/// - `--tor-binary PATH`, `--tor-data-dir DIR`: launch this tor, with its files there;
/// - `--tor-control IP:PORT` [`--tor-cookie-file F` | `--tor-password-stdin`]: attach to
///   a running tor (cookie file from Tor's `PROTOCOLINFO` if neither is given);
/// - `--network loopback` [`--loopback-dir L`, default `$CWTCH_LOOPBACK_DIR`]: no anonymity.
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
#[non_exhaustive]
pub struct AcnArgs {
    /// Network to use. `loopback` has NO ANONYMITY: tests and local development only.
    #[arg(long, value_enum, default_value_t = NetworkKind::Tor)]
    pub network: NetworkKind,
    /// Launch this tor binary (default: `tor` on PATH).
    #[arg(long, value_name = "PATH")]
    pub tor_binary: Option<PathBuf>,
    /// Attach to a running tor's control port instead of launching one: an IP address and
    /// port (or localhost:PORT), never a host name, which would be looked up outside Tor.
    #[arg(long, value_name = "IP:PORT")]
    pub tor_control: Option<String>,
    /// With --tor-control: authenticate with the cookie in this file.
    #[arg(long, value_name = "FILE")]
    pub tor_cookie_file: Option<PathBuf>,
    /// With --tor-control: read the control-port password from the first line of stdin.
    #[arg(long)]
    pub tor_password_stdin: bool,
    /// Data directory of the tor we launch (default: `tor` under the program's data dir).
    #[arg(long, value_name = "DIR")]
    pub tor_data_dir: Option<PathBuf>,
    /// Directory of the loopback network's service records (default: $CWTCH_LOOPBACK_DIR).
    #[arg(long, value_name = "DIR")]
    pub loopback_dir: Option<PathBuf>,
}

impl AcnArgs {
    /// Refuse combinations that make no sense (each is a clear [`Error::InvalidConfig`]).
    pub fn check(&self) -> Result<(), Error> {
        let conflict = |first, second| {
            Err(Error::InvalidConfig {
                problem: ConfigProblem::Conflict { first, second },
            })
        };
        let requires = |option, needs| {
            Err(Error::InvalidConfig {
                problem: ConfigProblem::Requires { option, needs },
            })
        };
        match self.network {
            NetworkKind::Loopback => {
                let tor_flags = [
                    (self.tor_binary.is_some(), "--tor-binary"),
                    (self.tor_control.is_some(), "--tor-control"),
                    (self.tor_cookie_file.is_some(), "--tor-cookie-file"),
                    (self.tor_password_stdin, "--tor-password-stdin"),
                    (self.tor_data_dir.is_some(), "--tor-data-dir"),
                ];
                if let Some((_, flag)) = tor_flags.iter().find(|(set, _)| *set) {
                    return conflict(*flag, "--network loopback");
                }
            }
            NetworkKind::Tor => {
                if self.loopback_dir.is_some() {
                    return conflict("--loopback-dir", "--network tor");
                }
                if self.tor_control.is_some() {
                    if self.tor_binary.is_some() {
                        return conflict("--tor-binary", "--tor-control");
                    }
                    if self.tor_data_dir.is_some() {
                        return conflict("--tor-data-dir", "--tor-control");
                    }
                    if self.tor_cookie_file.is_some() && self.tor_password_stdin {
                        return conflict("--tor-cookie-file", "--tor-password-stdin");
                    }
                } else {
                    if self.tor_cookie_file.is_some() {
                        return requires("--tor-cookie-file", "--tor-control");
                    }
                    if self.tor_password_stdin {
                        return requires("--tor-password-stdin", "--tor-control");
                    }
                }
            }
        }
        Ok(())
    }

    /// Build the chosen network. `default_data_dir` is the program's data directory; a
    /// launched tor keeps its files in `<default_data_dir>/tor` unless `--tor-data-dir`
    /// says otherwise. For loopback this logs the no-anonymity warning.
    pub async fn build(&self, default_data_dir: &Path) -> Result<Arc<dyn Acn>, Error> {
        self.check()?;
        match self.network {
            NetworkKind::Loopback => {
                let acn = match &self.loopback_dir {
                    Some(dir) => LoopbackAcn::new(dir)?,
                    None => LoopbackAcn::from_env()?,
                };
                tracing::warn!(
                    dir = %acn.dir().display(),
                    "--network loopback: NO ANONYMITY. Peers see who you are; for tests and \
                     development only (records in the directory named by --loopback-dir or {LOOPBACK_DIR_ENV})"
                );
                Ok(Arc::new(acn))
            }
            NetworkKind::Tor => {
                let config = match &self.tor_control {
                    Some(control) => {
                        let auth = if self.tor_password_stdin {
                            ControlAuth::Password(read_password(tokio::io::stdin()).await?)
                        } else {
                            ControlAuth::Cookie(self.tor_cookie_file.clone())
                        };
                        TorConfig::attach(control.clone(), auth)
                    }
                    None => {
                        let dir = self
                            .tor_data_dir
                            .clone()
                            .unwrap_or_else(|| default_data_dir.join("tor"));
                        let config = TorConfig::launch(dir);
                        match &self.tor_binary {
                            Some(binary) => config.tor_binary(binary),
                            None => config,
                        }
                    }
                };
                let acn = Arc::new(TorAcn::new(config).await?);
                // Bootstrapping can take a minute: say how far it is.
                tokio::spawn(follow_bootstrap(acn.status(), |s| {
                    if s.is_ready() {
                        tracing::info!("tor: bootstrapped");
                    } else {
                        tracing::info!("tor: bootstrapping {}% ({})", s.progress, s.summary);
                    }
                }));
                Ok(acn)
            }
        }
    }
}

/// The first line of `input` (without its line ending), as a password.
async fn read_password<R: tokio::io::AsyncRead + Unpin>(
    input: R,
) -> Result<ControlPassword, Error> {
    let mut reader = BufReader::new(input.take(MAX_PASSWORD));
    let mut line = Zeroizing::new(String::new());
    reader
        .read_line(&mut line)
        .await
        .map_err(|e| Error::io(Operation::Control, e))?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(Error::InvalidConfig {
            problem: ConfigProblem::MissingPassword,
        });
    }
    Ok(ControlPassword::new(password))
}

/// Follow the bootstrap status until the network is ready (or the ACN is gone), calling
/// `report` for the first status and then once per change of percentage.
async fn follow_bootstrap(mut rx: watch::Receiver<AcnStatus>, mut report: impl FnMut(&AcnStatus)) {
    let mut last = None;
    loop {
        let status = rx.borrow_and_update().clone();
        if last != Some(status.progress) {
            report(&status);
            last = Some(status.progress);
        }
        if status.is_ready() || rx.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        acn: AcnArgs,
    }

    #[tokio::test]
    async fn bootstrap_progress_is_reported_once_per_step_until_ready() {
        let (tx, rx) = watch::channel(AcnStatus::new(0, "Starting"));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let task = tokio::spawn(follow_bootstrap(rx, move |s| {
            s2.lock().map(|mut v| v.push(s.progress)).ok();
        }));
        tokio::task::yield_now().await; // it reports the status it starts with
        for (p, summary) in [
            (10, "Connecting"),
            (10, "Still connecting"),
            (50, "Loading"),
        ] {
            tx.send(AcnStatus::new(p, summary)).ok();
            tokio::task::yield_now().await;
        }
        tx.send(AcnStatus::new(100, "Done")).ok();
        tokio::time::timeout(std::time::Duration::from_secs(10), task)
            .await
            .expect("the follower stops at ready")
            .ok();
        let v = seen.lock().map(|v| v.clone()).unwrap_or_default();
        // Every step at most once, in order, ending with ready (a step may be skipped when
        // two changes arrive between looks).
        assert_eq!(v.first(), Some(&0));
        assert_eq!(v.last(), Some(&100));
        assert!(v.windows(2).all(|w| w[0] < w[1]), "{v:?}");
        // It stops after ready; a network that goes away before that ends it too.
        assert!(
            tx.send(AcnStatus::new(5, "again")).is_err(),
            "the follower stopped at ready"
        );
        let (tx, rx) = watch::channel(AcnStatus::new(20, "Half"));
        let task = tokio::spawn(follow_bootstrap(rx, |_| {}));
        drop(tx);
        tokio::time::timeout(std::time::Duration::from_secs(10), task)
            .await
            .ok()
            .and_then(Result::ok)
            .expect("ends when the sender is gone");
    }

    fn parse(args: &[&str]) -> AcnArgs {
        let mut full = vec!["prog"];
        full.extend_from_slice(args);
        Cli::try_parse_from(full).unwrap().acn
    }

    fn problem(args: &[&str]) -> ConfigProblem {
        match parse(args).check() {
            Err(Error::InvalidConfig { problem }) => problem,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn defaults_launch_tor() {
        let args = parse(&[]);
        assert_eq!(args.network, NetworkKind::Tor);
        args.check().unwrap();
        parse(&["--tor-binary", "/usr/sbin/tor", "--tor-data-dir", "/x"])
            .check()
            .unwrap();
        parse(&["--tor-control", "127.0.0.1:9051"]).check().unwrap();
        parse(&["--tor-control", "127.0.0.1:9051", "--tor-cookie-file", "/c"])
            .check()
            .unwrap();
        parse(&["--tor-control", "localhost:9051", "--tor-password-stdin"])
            .check()
            .unwrap();
        parse(&["--network", "loopback", "--loopback-dir", "/l"])
            .check()
            .unwrap();
    }

    #[test]
    fn conflicts_are_clear_errors() {
        assert_eq!(
            problem(&["--network", "loopback", "--tor-control", "h:1"]),
            ConfigProblem::Conflict {
                first: "--tor-control",
                second: "--network loopback"
            }
        );
        assert_eq!(
            problem(&["--loopback-dir", "/l"]),
            ConfigProblem::Conflict {
                first: "--loopback-dir",
                second: "--network tor"
            }
        );
        assert_eq!(
            problem(&["--tor-control", "h:1", "--tor-binary", "/t"]),
            ConfigProblem::Conflict {
                first: "--tor-binary",
                second: "--tor-control"
            }
        );
        assert_eq!(
            problem(&["--tor-control", "h:1", "--tor-data-dir", "/d"]),
            ConfigProblem::Conflict {
                first: "--tor-data-dir",
                second: "--tor-control"
            }
        );
        assert_eq!(
            problem(&[
                "--tor-control",
                "h:1",
                "--tor-cookie-file",
                "/c",
                "--tor-password-stdin"
            ]),
            ConfigProblem::Conflict {
                first: "--tor-cookie-file",
                second: "--tor-password-stdin"
            }
        );
        assert_eq!(
            problem(&["--tor-cookie-file", "/c"]),
            ConfigProblem::Requires {
                option: "--tor-cookie-file",
                needs: "--tor-control"
            }
        );
        assert_eq!(
            problem(&["--tor-password-stdin"]),
            ConfigProblem::Requires {
                option: "--tor-password-stdin",
                needs: "--tor-control"
            }
        );
        // The message names both flags.
        let msg = parse(&["--tor-control", "h:1", "--tor-binary", "/t"])
            .check()
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("--tor-binary") && msg.contains("--tor-control"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn password_is_the_first_line() {
        let p = read_password(&b"s3cret \"x\"\r\nsecond line\n"[..])
            .await
            .unwrap();
        let debug = format!("{p:?}");
        assert!(!debug.contains("s3cret"));
        assert!(matches!(
            read_password(&b"\n"[..]).await,
            Err(Error::InvalidConfig {
                problem: ConfigProblem::MissingPassword
            })
        ));
    }

    #[tokio::test]
    async fn loopback_builds_and_conflicts_fail_before_doing_anything() {
        let dir = tempfile::tempdir().unwrap();
        let l = dir.path().join("l");
        let args = parse(&[
            "--network",
            "loopback",
            "--loopback-dir",
            l.to_str().unwrap(),
        ]);
        let acn = args.build(dir.path()).await.unwrap();
        assert_eq!(acn.name(), "loopback");
        assert!(!acn.is_anonymous());
        acn.close().await;

        let bad = parse(&["--tor-control", "h:1", "--tor-data-dir", "/nonexistent/x"]);
        assert!(matches!(
            bad.build(dir.path()).await,
            Err(Error::InvalidConfig { .. })
        ));
    }
}
