//! The managed-`tor` backend: a C tor driven through its control port, dialing through its
//! SOCKS port. See the crate documentation for the two modes and the error mapping.

mod auth;
mod control;
pub(crate) mod events;
mod network;
pub(crate) mod process;
pub(crate) mod reply;
pub(crate) mod socks;

use std::path::PathBuf;
use std::time::Duration;

pub use auth::{ControlAuth, ControlPassword};
pub use network::{TorAcn, TorListener};

/// How [`TorAcn`] dials: retries, backoff, timeouts and concurrency.
///
/// Fields are public; start from [`DialPolicy::default`] and change what you need.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DialPolicy {
    /// Attempts per [`crate::Acn::connect`] call, the first included (at least 1). Only
    /// failures that Tor says a retry can help are retried (descriptor not found,
    /// introduction or rendezvous failed or timed out, general circuit failure).
    pub max_attempts: u32,
    /// Pause before the first retry; doubled before each further retry.
    pub initial_backoff: Duration,
    /// The longest pause between attempts.
    pub max_backoff: Duration,
    /// The longest one attempt (SOCKS handshake and Tor's circuit building) may take.
    pub attempt_timeout: Duration,
    /// Most SOCKS handshakes in flight at once, across all dials of this ACN (Tor builds
    /// at most 32 circuits at once; more only queue inside Tor).
    pub max_concurrent: usize,
}

impl Default for DialPolicy {
    fn default() -> Self {
        DialPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(8),
            attempt_timeout: Duration::from_secs(60),
            max_concurrent: 16,
        }
    }
}

/// Bounds on the waits of [`TorAcn`]'s life cycle.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TorTimeouts {
    /// From starting `tor` to its control port being up (launch mode), or to connect to
    /// the control port (attach mode).
    pub start: Duration,
    /// One control-port command and its reply.
    pub command: Duration,
    /// From `ADD_ONION` to Tor's first `HS_DESC UPLOADED` for the service. Includes the
    /// time to bootstrap if Tor has not finished yet.
    pub publish: Duration,
    /// From asking our tor to exit to killing it.
    pub stop: Duration,
}

impl Default for TorTimeouts {
    fn default() -> Self {
        TorTimeouts {
            start: Duration::from_secs(60),
            command: Duration::from_secs(30),
            publish: Duration::from_secs(180),
            stop: Duration::from_secs(5),
        }
    }
}

/// The configuration of a [`TorAcn`]: which tor to use, and its policies.
#[derive(Clone, Debug)]
pub struct TorConfig {
    pub(crate) mode: TorMode,
    /// Launch mode: the binary (`None`: `tor` on `PATH`).
    pub(crate) binary: Option<PathBuf>,
    /// Launch mode: extra torrc lines.
    pub(crate) extra_torrc: Vec<String>,
    pub(crate) dial: DialPolicy,
    pub(crate) timeouts: TorTimeouts,
}

#[derive(Clone, Debug)]
pub(crate) enum TorMode {
    Launch { data_dir: PathBuf },
    Attach { control: String, auth: ControlAuth },
}

impl TorConfig {
    fn new(mode: TorMode) -> TorConfig {
        TorConfig {
            mode,
            binary: None,
            extra_torrc: Vec::new(),
            dial: DialPolicy::default(),
            timeouts: TorTimeouts::default(),
        }
    }

    /// Launch our own `tor` (found on `PATH` unless [`TorConfig::tor_binary`] says
    /// otherwise) with its files in `data_dir`, a private (0700) directory that is created
    /// if missing and refused if group or others can access it.
    pub fn launch(data_dir: impl Into<PathBuf>) -> TorConfig {
        TorConfig::new(TorMode::Launch {
            data_dir: data_dir.into(),
        })
    }

    /// Attach to a running tor through its control port at `control` (`IP:PORT`).
    pub fn attach(control: impl Into<String>, auth: ControlAuth) -> TorConfig {
        TorConfig::new(TorMode::Attach {
            control: control.into(),
            auth,
        })
    }

    /// Launch mode: the `tor` binary to run. Setting it when attaching is an error
    /// ([`crate::ConfigProblem::Conflict`]).
    pub fn tor_binary(mut self, binary: impl Into<PathBuf>) -> TorConfig {
        self.binary = Some(binary.into());
        self
    }

    /// Launch mode: extra torrc lines, appended after ours (e.g. `TestingTorNetwork 1` and
    /// `DirAuthority ...` lines to join a private network). Lines may not contain newlines.
    /// Giving any when attaching is an error ([`crate::ConfigProblem::Conflict`]).
    pub fn extra_torrc_lines<I, S>(mut self, lines: I) -> TorConfig
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_torrc.extend(lines.into_iter().map(Into::into));
        self
    }

    /// The dial policy.
    pub fn dial_policy(mut self, policy: DialPolicy) -> TorConfig {
        self.dial = policy;
        self
    }

    /// The life-cycle timeouts.
    pub fn timeouts(mut self, timeouts: TorTimeouts) -> TorConfig {
        self.timeouts = timeouts;
        self
    }
}
