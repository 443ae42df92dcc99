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
    /// A private directory (the loopback directory, or the managed tor's data directory)
    /// could not be created or read.
    #[error("directory {}: {source}", .path.display())]
    Directory {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A private directory is open to other users: the loopback directory is writable by
    /// group or others (who could then redirect our dials), or the managed tor's data
    /// directory is accessible to them at all (it holds the control-port cookie).
    #[error(
        "directory {} is accessible to group or others (mode {mode:o}); use a 0700 directory",
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
    /// The `tor` binary could not be started (not found, not executable...).
    #[error("could not start tor binary {}: {source}", .binary.display())]
    TorSpawn {
        /// The binary we tried to run.
        binary: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The `tor` process we launched exited (before it was ready, or while in use). Its last
    /// log lines are logged at `WARN`.
    #[error("tor exited unexpectedly (exit code {})", DisplayCode(*.code))]
    TorExited {
        /// Its exit code, if it exited normally (not by a signal).
        code: Option<i32>,
    },
    /// A file the Tor backend needs (cookie, torrc, control-port file, pid file) could not be
    /// read or written.
    #[error("file {}: {source}", .path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Tor's control port answered a command with an error status.
    #[error("tor rejected {command}: {code} {message}")]
    ControlRejected {
        /// The command (its keyword only: arguments may be secret).
        command: &'static str,
        /// Tor's status code (`5xx`).
        code: u16,
        /// Tor's explanation.
        message: String,
    },
    /// Tor's control port sent something that is not valid control-protocol syntax, or not
    /// what the command calls for. The control connection is closed.
    #[error("control-port protocol error: {problem}")]
    ControlProtocol {
        /// What was wrong.
        problem: ProtocolProblem,
    },
    /// Authenticating to Tor's control port failed.
    #[error("tor control-port authentication failed: {problem}")]
    Authentication {
        /// Why.
        problem: AuthProblem,
    },
    /// Tor hosts a different onion than the identity we gave it (the key is not what we
    /// think it is). The service was removed again.
    #[error(
        "tor reports onion {} for identity {}",
        torv3::safelog::Sensitive(.reported),
        .expected.redacted()
    )]
    OnionMismatch {
        /// The identity's onion.
        expected: Onion,
        /// What Tor reported in `ServiceID=`.
        reported: String,
    },
    /// Tor refused to dial for a reason that retrying will not fix.
    #[error("tor refused to dial {}: {reason}", .onion.redacted())]
    DialRejected {
        /// The onion dialed.
        onion: Onion,
        /// Why.
        reason: DialRejection,
    },
    /// The SOCKS proxy (Tor's SOCKS port) violated the SOCKS5 protocol.
    #[error("SOCKS5 protocol error: {problem}")]
    SocksProtocol {
        /// What was wrong.
        problem: SocksProblem,
    },
    /// The configuration is invalid (conflicting options, an unusable path...).
    #[error("invalid configuration: {problem}")]
    InvalidConfig {
        /// What is wrong.
        problem: ConfigProblem,
    },
}

/// Formats an optional exit code.
struct DisplayCode(Option<i32>);

impl fmt::Display for DisplayCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(code) => write!(f, "{code}"),
            None => f.write_str("none, killed by a signal"),
        }
    }
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
            | Error::InvalidServiceRecord { .. }
            | Error::TorSpawn { .. }
            | Error::TorExited { .. }
            | Error::File { .. }
            | Error::ControlRejected { .. }
            | Error::ControlProtocol { .. }
            | Error::Authentication { .. }
            | Error::OnionMismatch { .. }
            | Error::DialRejected { .. }
            | Error::SocksProtocol { .. }
            | Error::InvalidConfig { .. } => false,
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
    /// The network path failed (SOCKS general failure, network or host unreachable).
    CircuitFailed,
    /// Tor answered with a SOCKS5 reply code this version does not know.
    UnknownReply(u8),
}

impl fmt::Display for UnreachableReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnreachableReason::InvalidDescriptor => "invalid descriptor",
            UnreachableReason::IntroductionFailed => "introduction failed",
            UnreachableReason::RendezvousFailed => "rendezvous failed",
            UnreachableReason::IntroductionTimedOut => "introduction timed out",
            UnreachableReason::CircuitFailed => "circuit failed",
            UnreachableReason::UnknownReply(code) => return write!(f, "SOCKS5 reply {code:#04x}"),
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
    /// Starting or stopping the managed `tor` process.
    Launch,
    /// Talking to Tor's control port.
    Control,
    /// Talking to Tor's SOCKS port.
    Socks,
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
            Operation::Launch => "tor launch",
            Operation::Control => "tor control port",
            Operation::Socks => "tor SOCKS port",
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

/// Why Tor refused a dial for good (see [`Error::DialRejected`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DialRejection {
    /// The onion service requires client authorization we do not have (Tor `0xF4`).
    ClientAuthRequired,
    /// Our client authorization was rejected (Tor `0xF5`).
    ClientAuthRejected,
    /// Tor considers the address invalid (Tor `0xF6`).
    InvalidAddress,
    /// Tor's configuration forbids the connection (SOCKS5 `0x02`).
    NotAllowed,
    /// Tor does not support the command (SOCKS5 `0x07`).
    CommandNotSupported,
    /// Tor does not support the address type (SOCKS5 `0x08`).
    AddressTypeNotSupported,
}

impl fmt::Display for DialRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DialRejection::ClientAuthRequired => "client authorization required",
            DialRejection::ClientAuthRejected => "client authorization rejected",
            DialRejection::InvalidAddress => "invalid onion address",
            DialRejection::NotAllowed => "not allowed by tor's configuration",
            DialRejection::CommandNotSupported => "SOCKS command not supported",
            DialRejection::AddressTypeNotSupported => "SOCKS address type not supported",
        })
    }
}

/// What was wrong with a control-port reply (see [`Error::ControlProtocol`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProtocolProblem {
    /// A line longer than the limit.
    LineTooLong,
    /// A reply with more lines or bytes than the limit.
    ReplyTooLong,
    /// A line that is not UTF-8.
    NotUtf8,
    /// A line that does not start with a three-digit status code and a separator.
    MalformedLine,
    /// A line whose status code differs from the earlier lines of its reply.
    StatusCodeChanged,
    /// A reply nobody asked for (not an asynchronous `650` event).
    UnexpectedReply,
    /// A quoted string without its closing quote.
    UnterminatedQuote,
    /// A reply that lacks a field the command calls for.
    MissingField(&'static str),
    /// A field with a value that does not parse.
    InvalidField(&'static str),
}

impl fmt::Display for ProtocolProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolProblem::LineTooLong => f.write_str("line too long"),
            ProtocolProblem::ReplyTooLong => f.write_str("reply too long"),
            ProtocolProblem::NotUtf8 => f.write_str("line is not UTF-8"),
            ProtocolProblem::MalformedLine => f.write_str("malformed reply line"),
            ProtocolProblem::StatusCodeChanged => f.write_str("status code changed within a reply"),
            ProtocolProblem::UnexpectedReply => f.write_str("reply to no command"),
            ProtocolProblem::UnterminatedQuote => f.write_str("unterminated quoted string"),
            ProtocolProblem::MissingField(field) => write!(f, "missing {field}"),
            ProtocolProblem::InvalidField(field) => write!(f, "invalid {field}"),
        }
    }
}

/// Why control-port authentication failed (see [`Error::Authentication`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthProblem {
    /// Tor offers no method we can use with the credentials we have.
    NoUsableMethod,
    /// The cookie file does not hold exactly 32 bytes.
    BadCookieLength(u64),
    /// Tor's SAFECOOKIE server hash is wrong: whoever listens on that port does not know
    /// the cookie (it is not our tor).
    ServerHashMismatch,
    /// Tor rejected our credentials.
    Rejected,
    /// The password contains a NUL byte, which the control protocol cannot carry.
    UnencodablePassword,
}

impl fmt::Display for AuthProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthProblem::NoUsableMethod => f.write_str("no usable authentication method"),
            AuthProblem::BadCookieLength(n) => write!(f, "cookie file has {n} bytes, not 32"),
            AuthProblem::ServerHashMismatch => {
                f.write_str("SAFECOOKIE server hash mismatch (not our tor?)")
            }
            AuthProblem::Rejected => f.write_str("credentials rejected"),
            AuthProblem::UnencodablePassword => f.write_str("password contains a NUL byte"),
        }
    }
}

/// What the SOCKS5 proxy did wrong (see [`Error::SocksProtocol`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SocksProblem {
    /// A reply with a version other than 5 (or 1 for the username/password sub-negotiation).
    BadVersion(u8),
    /// The proxy accepts none of the authentication methods we offer (username/password).
    NoAcceptableMethod,
    /// The proxy rejected our (isolation) username and password.
    AuthRejected,
    /// A reply with an unknown address type.
    BadAddressType(u8),
}

impl fmt::Display for SocksProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocksProblem::BadVersion(v) => write!(f, "unexpected version {v}"),
            SocksProblem::NoAcceptableMethod => f.write_str("no acceptable authentication method"),
            SocksProblem::AuthRejected => f.write_str("username/password rejected"),
            SocksProblem::BadAddressType(t) => write!(f, "unknown address type {t}"),
        }
    }
}

/// What is wrong with a configuration (see [`Error::InvalidConfig`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigProblem {
    /// Two options that cannot be used together.
    Conflict {
        /// One option.
        first: &'static str,
        /// The other.
        second: &'static str,
    },
    /// An option that needs another one.
    Requires {
        /// The option given.
        option: &'static str,
        /// What it needs.
        needs: &'static str,
    },
    /// A path that cannot be written into a torrc (not UTF-8, or holds a newline or NUL).
    UnusablePath(PathBuf),
    /// An extra torrc line that holds a newline or NUL (line number, from 0).
    InvalidTorrcLine(usize),
    /// A control-port address that is not `IP:PORT` or `localhost:PORT` (a host name would be
    /// looked up outside Tor).
    InvalidControlAddress,
    /// A password that could not be read (empty stdin).
    MissingPassword,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigProblem::Conflict { first, second } => {
                write!(f, "{first} cannot be used with {second}")
            }
            ConfigProblem::Requires { option, needs } => write!(f, "{option} requires {needs}"),
            ConfigProblem::UnusablePath(p) => {
                write!(f, "path {} cannot be used in a torrc", p.display())
            }
            ConfigProblem::InvalidTorrcLine(n) => {
                write!(f, "extra torrc line {n} contains a newline or NUL")
            }
            ConfigProblem::InvalidControlAddress => f.write_str(
                "control-port address is not IP:PORT (such as 127.0.0.1:9051; a host name \
                     other than localhost would be looked up outside Tor)",
            ),
            ConfigProblem::MissingPassword => f.write_str("no control-port password given"),
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
