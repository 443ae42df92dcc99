//! The crate's one error type.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use torv3::Onion;

/// Everything that can go wrong hosting or dialing onion services.
///
/// Onion addresses inside errors are kept whole (callers may need them), but `Display` shows
/// them redacted (see [`torv3::safelog`]), so logging an error leaks no address.
///
/// Use [`Error::is_retryable`] to tell a peer that is offline now from a configuration that
/// will never work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No onion service with this address is published (Tor: the descriptor was not found,
    /// SOCKS5 extended error `0xF0`; loopback: no service record). The peer is probably
    /// offline.
    #[error("onion service {} not found (offline?)", .onion.redacted())]
    OnionNotFound {
        /// The onion dialed.
        onion: Onion,
    },
    /// The onion service is published but could not be reached.
    #[error("onion service {} unreachable: {reason}", .onion.redacted())]
    Unreachable {
        /// The onion dialed.
        onion: Onion,
        /// Why.
        reason: UnreachableReason,
    },
    /// The onion service was reached but refused the stream: nothing listens on that virtual
    /// port (Tor), or a stale service record of a crashed process (loopback).
    #[error("onion service {} refused a connection to port {port}", .onion.redacted())]
    ConnectionRefused {
        /// The onion dialed.
        onion: Onion,
        /// The virtual port dialed.
        port: u16,
    },
    /// An operation took too long.
    #[error("{operation} timed out")]
    Timeout {
        /// What timed out.
        operation: Operation,
    },
    /// The network has not finished bootstrapping.
    #[error("network not bootstrapped ({progress}%)")]
    NotBootstrapped {
        /// Bootstrap progress, percent.
        progress: u8,
    },
    /// The ACN (or this listener) was closed.
    #[error("network closed")]
    Closed,
    /// An I/O error during a network operation.
    #[error("{operation} failed: {source}")]
    Io {
        /// What failed.
        operation: Operation,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A required environment variable is not set (or is empty).
    #[error("environment variable {var} is not set")]
    NotConfigured {
        /// The variable.
        var: &'static str,
    },
    /// The loopback directory could not be created or read.
    #[error("loopback directory {}: {source}", .path.display())]
    Directory {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The loopback directory is writable by other users, who could then redirect our dials.
    #[error(
        "loopback directory {} is writable by group or others (mode {mode:o}); use a 0700 directory",
        .path.display()
    )]
    InsecureDirectory {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A loopback service record is corrupt or planted; it was not dialed.
    #[error("service record for {} is invalid, not dialing: {problem}", .onion.redacted())]
    InvalidServiceRecord {
        /// The onion whose record it is.
        onion: Onion,
        /// What is wrong with it.
        problem: RecordProblem,
    },
}

impl Error {
    /// Whether trying again later might succeed.
    ///
    /// True for conditions of the network or the peer (offline, unreachable, refused, timed
    /// out, still bootstrapping, transient I/O); false for closed networks and configuration
    /// problems, which need someone to act first.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::OnionNotFound { .. }
            | Error::Unreachable { .. }
            | Error::ConnectionRefused { .. }
            | Error::Timeout { .. }
            | Error::NotBootstrapped { .. } => true,
            Error::Io { source, .. } => !matches!(
                source.kind(),
                io::ErrorKind::PermissionDenied
                    | io::ErrorKind::InvalidInput
                    | io::ErrorKind::Unsupported
            ),
            Error::Closed
            | Error::NotConfigured { .. }
            | Error::Directory { .. }
            | Error::InsecureDirectory { .. }
            | Error::InvalidServiceRecord { .. } => false,
        }
    }

    pub(crate) fn io(operation: Operation, source: io::Error) -> Error {
        Error::Io { operation, source }
    }
}

/// Why a published onion service could not be reached. The Tor backend maps SOCKS5 replies
/// (including Tor's extended `0xF*` codes) onto these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnreachableReason {
    /// The descriptor could not be parsed or decrypted (Tor `0xF1`).
    InvalidDescriptor,
    /// Every introduction point failed (Tor `0xF2`).
    IntroductionFailed,
    /// The rendezvous circuit failed (Tor `0xF3`).
    RendezvousFailed,
    /// The introduction timed out (Tor `0xF7`).
    IntroductionTimedOut,
    /// The network path failed (SOCKS general failure, network or host unreachable, TTL).
    CircuitFailed,
}

impl fmt::Display for UnreachableReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnreachableReason::InvalidDescriptor => "invalid descriptor",
            UnreachableReason::IntroductionFailed => "introduction failed",
            UnreachableReason::RendezvousFailed => "rendezvous failed",
            UnreachableReason::IntroductionTimedOut => "introduction timed out",
            UnreachableReason::CircuitFailed => "circuit failed",
        })
    }
}

/// The operation an [`Error::Io`] or [`Error::Timeout`] belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Hosting an onion service.
    Listen,
    /// Accepting an inbound stream.
    Accept,
    /// Dialing an onion.
    Connect,
    /// Bootstrapping the network.
    Bootstrap,
    /// Restarting the network.
    Restart,
    /// Reading or writing a loopback service record.
    ServiceRecord,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Listen => "listen",
            Operation::Accept => "accept",
            Operation::Connect => "connect",
            Operation::Bootstrap => "bootstrap",
            Operation::Restart => "restart",
            Operation::ServiceRecord => "service record",
        })
    }
}

/// What is wrong with a loopback service record (see [`Error::InvalidServiceRecord`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecordProblem {
    /// The record is not a regular file (a directory, symlink, FIFO...).
    NotRegularFile,
    /// The record is longer than any valid record.
    TooLong,
    /// The record is not UTF-8.
    NotUtf8,
    /// The record is not exactly `127.0.0.1:PORT` (optionally followed by one newline).
    Syntax,
    /// The record names an address that is not `127.0.0.1`.
    NotLoopback(SocketAddr),
    /// The record names port 0.
    ZeroPort,
}

impl fmt::Display for RecordProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordProblem::NotRegularFile => f.write_str("not a regular file"),
            RecordProblem::TooLong => f.write_str("too long"),
            RecordProblem::NotUtf8 => f.write_str("not UTF-8"),
            RecordProblem::Syntax => f.write_str("not of the form 127.0.0.1:PORT"),
            RecordProblem::NotLoopback(addr) => write!(f, "{addr} is not 127.0.0.1"),
            RecordProblem::ZeroPort => f.write_str("port 0"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn onion() -> Onion {
        torv3::Identity::from_seed(&[7; 32]).onion()
    }

    #[test]
    fn retryable_classification() {
        let o = onion();
        assert!(Error::OnionNotFound { onion: o.clone() }.is_retryable());
        assert!(Error::ConnectionRefused {
            onion: o.clone(),
            port: 1
        }
        .is_retryable());
        assert!(Error::Unreachable {
            onion: o.clone(),
            reason: UnreachableReason::RendezvousFailed
        }
        .is_retryable());
        assert!(Error::Timeout {
            operation: Operation::Connect
        }
        .is_retryable());
        assert!(Error::NotBootstrapped { progress: 5 }.is_retryable());
        assert!(
            Error::io(Operation::Connect, io::ErrorKind::ConnectionReset.into()).is_retryable()
        );
        assert!(
            !Error::io(Operation::Listen, io::ErrorKind::PermissionDenied.into()).is_retryable()
        );
        assert!(!Error::Closed.is_retryable());
        assert!(!Error::NotConfigured { var: "X" }.is_retryable());
        assert!(!Error::InvalidServiceRecord {
            onion: o,
            problem: RecordProblem::Syntax
        }
        .is_retryable());
    }

    #[test]
    fn display_redacts_onions() {
        let o = onion();
        for e in [
            Error::OnionNotFound { onion: o.clone() },
            Error::ConnectionRefused {
                onion: o.clone(),
                port: crate::CWTCH_PORT,
            },
            Error::InvalidServiceRecord {
                onion: o.clone(),
                problem: RecordProblem::TooLong,
            },
        ] {
            let s = e.to_string();
            assert!(!s.contains(o.as_str()), "{s}");
            assert!(s.contains(&o.as_str()[..4]), "{s}");
        }
    }

    #[test]
    fn errors_are_send_sync_static() {
        fn check<T: Send + Sync + 'static + std::error::Error>() {}
        check::<Error>();
    }
}
