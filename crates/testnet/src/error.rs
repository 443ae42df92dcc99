//! The crate's one error type.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Everything that can go wrong bringing up, extending or tearing down a [`TestNet`].
///
/// Errors about a tor process name the process (`auth0`, `relay1`, `client0`...) and carry
/// the last lines of its log, so a failing test says why without digging in the (already
/// removed) data directory.
///
/// [`TestNet`]: crate::TestNet
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The [`TestNetConfig`](crate::TestNetConfig) cannot work.
    #[error("invalid test network configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: &'static str,
    },
    /// A file or directory operation failed.
    #[error("{action} {}: {source}", .path.display())]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// No free TCP port could be reserved on 127.0.0.1.
    #[error("could not pick a free port on 127.0.0.1: {source}")]
    NoFreePort {
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A program (tor, tor-gencert) could not be started at all: typically not installed or a
    /// wrong path.
    #[error("could not run {}: {source}", .program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `tor --version` did not answer like tor.
    #[error("{} does not look like tor: `--version` printed {output:?}", .program.display())]
    NotTor {
        /// The program.
        program: PathBuf,
        /// What it printed (trimmed).
        output: String,
    },
    /// A helper command (tor-gencert, `tor --list-fingerprint`...) failed.
    #[error("{command} for {node} failed ({status}):\n{output}")]
    CommandFailed {
        /// Which command.
        command: &'static str,
        /// The node it was run for.
        node: String,
        /// How it exited.
        status: ExitStatus,
        /// Its output (trimmed).
        output: String,
    },
    /// A helper command produced something we could not understand.
    #[error("{command} for {node} produced unexpected output: {detail}")]
    UnexpectedOutput {
        /// Which command.
        command: &'static str,
        /// The node it was run for.
        node: String,
        /// What was wrong.
        detail: String,
    },
    /// A tor process exited while it should have been running.
    #[error("{node} (pid {pid}) exited unexpectedly ({status}); last log lines:\n{log_tail}")]
    ProcessExited {
        /// The process's name in the network.
        node: String,
        /// Its pid.
        pid: u32,
        /// How it exited.
        status: ExitStatus,
        /// The last lines of its log.
        log_tail: String,
    },
    /// A tor process could not bind one of the ports picked for it (another program took the
    /// port between our check and tor's bind). [`TestNet::start`](crate::TestNet::start)
    /// retries with fresh ports before returning this.
    #[error("{node} could not bind its port (already in use); last log lines:\n{log_tail}")]
    PortInUse {
        /// The process's name in the network.
        node: String,
        /// The last lines of its log.
        log_tail: String,
    },
    /// A bounded wait ran out.
    #[error(
        "timed out after {:.1} s waiting for {waiting_for} ({node}); last log lines:\n{log_tail}",
        .after.as_secs_f64()
    )]
    Timeout {
        /// What we were waiting for.
        waiting_for: &'static str,
        /// The process (or group of processes) we were waiting on.
        node: String,
        /// How long we waited.
        after: Duration,
        /// The last lines of the process's log (empty if it has none).
        log_tail: String,
    },
    /// A client's control port could not be used.
    #[error("control port of {node}: {source}")]
    ControlIo {
        /// The client.
        node: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A client's control port answered something unexpected.
    #[error("control port of {node} answered {reply:?}")]
    ControlReply {
        /// The client.
        node: String,
        /// The reply, as received.
        reply: String,
    },
    /// Some tor processes were still alive after SIGKILL during teardown.
    #[error("tor processes {pids:?} did not exit")]
    Survivors {
        /// Their pids.
        pids: Vec<u32>,
    },
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
