//! A minimal SOCKS5 client (RFC 1928, RFC 1929 username/password) for Tor's SOCKS port, one
//! that shows Tor's extended error codes (socks-extensions.txt, `ExtendedErrors`).
//!
//! Only what dialing an onion needs: CONNECT to a domain name, username/password
//! authentication (Tor's stream isolation, `IsolateSOCKSAuth`).

use std::io;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use torv3::Onion;
use zeroize::Zeroizing;

use crate::acn::IsolationKey;
use crate::error::{DialRejection, Error, Operation, SocksProblem, UnreachableReason};

const VERSION: u8 = 5;
const AUTH_VERSION: u8 = 1;
const METHOD_USERPASS: u8 = 2;
const CMD_CONNECT: u8 = 1;
const ATYP_IPV4: u8 = 1;
const ATYP_DOMAIN: u8 = 3;
const ATYP_IPV6: u8 = 4;

/// RFC 1929 caps usernames and passwords at 255 bytes.
const MAX_CREDENTIAL: usize = 255;
/// The password of credentials that carry the isolation key itself.
const PASSWORD_RAW: &str = "cwtch-isolation";
/// The password of credentials that carry a SHA-256 of the isolation key (a key that is
/// empty or longer than 255 bytes). A different password keeps a raw key that happens to
/// equal some hash in a different isolation group.
const PASSWORD_HASHED: &str = "cwtch-isolation-sha256";

/// SOCKS5 username/password for an isolation key: the key itself if it fits (1..=255
/// bytes), else the hex SHA-256 of it. Distinct keys give distinct credentials, so Tor
/// (`IsolateSOCKSAuth`) never puts their streams on one circuit.
pub fn credentials(key: &IsolationKey) -> (Zeroizing<Vec<u8>>, &'static [u8]) {
    let raw = key.as_str().as_bytes();
    if (1..=MAX_CREDENTIAL).contains(&raw.len()) {
        (Zeroizing::new(raw.to_vec()), PASSWORD_RAW.as_bytes())
    } else {
        let hashed = hex::encode(Sha256::digest(raw));
        (
            Zeroizing::new(hashed.into_bytes()),
            PASSWORD_HASHED.as_bytes(),
        )
    }
}

/// How a SOCKS5 CONNECT failed.
#[derive(Debug)]
pub enum SocksFailure {
    /// The proxy answered with this non-zero reply code.
    Reply(u8),
    /// The proxy broke the protocol.
    Protocol(SocksProblem),
    /// I/O with the proxy failed.
    Io(io::Error),
}

impl From<io::Error> for SocksFailure {
    fn from(e: io::Error) -> Self {
        SocksFailure::Io(e)
    }
}

/// Negotiate a SOCKS5 CONNECT to `host:port` over `stream` (already connected to the proxy),
/// authenticating with `username`/`password`. On success the stream carries the tunnelled
/// bytes.
pub async fn connect<S>(
    stream: &mut S,
    host: &str,
    port: u16,
    username: &[u8],
    password: &[u8],
) -> Result<(), SocksFailure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (Ok(host_len), Ok(user_len), Ok(pass_len)) = (
        u8::try_from(host.len()),
        u8::try_from(username.len()),
        u8::try_from(password.len()),
    ) else {
        return Err(SocksFailure::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "SOCKS5 field longer than 255 bytes",
        )));
    };

    // Greeting: offer username/password only (Tor accepts it; it is what isolates).
    stream.write_all(&[VERSION, 1, METHOD_USERPASS]).await?;
    let mut choice = [0u8; 2];
    stream.read_exact(&mut choice).await?;
    if choice[0] != VERSION {
        return Err(SocksFailure::Protocol(SocksProblem::BadVersion(choice[0])));
    }
    if choice[1] != METHOD_USERPASS {
        // 0xff (no acceptable method) or a method we did not offer.
        return Err(SocksFailure::Protocol(SocksProblem::NoAcceptableMethod));
    }

    // RFC 1929 sub-negotiation. The buffer holds the isolation key: zeroize it.
    let mut auth = Zeroizing::new(Vec::with_capacity(3 + username.len() + password.len()));
    auth.push(AUTH_VERSION);
    auth.push(user_len);
    auth.extend_from_slice(username);
    auth.push(pass_len);
    auth.extend_from_slice(password);
    stream.write_all(&auth).await?;
    let mut status = [0u8; 2];
    stream.read_exact(&mut status).await?;
    if status[0] != AUTH_VERSION {
        return Err(SocksFailure::Protocol(SocksProblem::BadVersion(status[0])));
    }
    if status[1] != 0 {
        return Err(SocksFailure::Protocol(SocksProblem::AuthRejected));
    }

    // CONNECT to a domain name: Tor resolves `.onion` itself.
    let mut request = Vec::with_capacity(7 + host.len());
    request.extend_from_slice(&[VERSION, CMD_CONNECT, 0, ATYP_DOMAIN, host_len]);
    request.extend_from_slice(host.as_bytes());
    request.extend_from_slice(&port.to_be_bytes());
    stream.write_all(&request).await?;
    stream.flush().await?;

    let mut head = [0u8; 4];
    stream.read_exact(&mut head).await?;
    if head[0] != VERSION {
        return Err(SocksFailure::Protocol(SocksProblem::BadVersion(head[0])));
    }
    if head[1] != 0 {
        // Tor closes the connection after a failure reply; the bound address is moot.
        return Err(SocksFailure::Reply(head[1]));
    }
    // Skip the bound address and port.
    let skip = match head[3] {
        ATYP_IPV4 => 4 + 2,
        ATYP_IPV6 => 16 + 2,
        ATYP_DOMAIN => {
            let mut len = [0u8; 1];
            stream.read_exact(&mut len).await?;
            usize::from(len[0]) + 2
        }
        other => return Err(SocksFailure::Protocol(SocksProblem::BadAddressType(other))),
    };
    let mut rest = [0u8; 255 + 2];
    stream.read_exact(&mut rest[..skip]).await?;
    Ok(())
}

/// Whether Tor's reply `code` says that trying again (soon) can help.
///
/// - `0xF0` descriptor not found: the peer may have published a moment ago. (Tor queries
///   each responsible HSDir for a descriptor at most once per 15 minutes, so a quick retry
///   only helps while HSDirs remain untried; once none remain Tor answers `0x01`, which the
///   dialer then reports as not found without retrying.)
/// - `0xF2` introduction failed, `0xF7` introduction timed out, `0xF3` rendezvous failed:
///   Tor picks other introduction points and relays next time.
/// - `0x01` general failure, `0x06` TTL expired (Tor's stream timeout): a circuit failed.
///
/// Not retried: `0x05` refused (the service is up and says no), `0xF1` invalid descriptor,
/// and the rejections that need someone to act (`0x02`, `0x07`, `0x08`, `0xF4`–`0xF6`).
pub fn retry_helps(code: u8) -> bool {
    matches!(code, 0x01 | 0x06 | 0xF0 | 0xF2 | 0xF3 | 0xF7)
}

/// The typed error for Tor's SOCKS5 reply `code` when dialing `onion:port`.
pub fn reply_error(code: u8, onion: &Onion, port: u16) -> Error {
    let onion = onion.clone();
    let unreachable = |reason| Error::Unreachable {
        onion: onion.clone(),
        reason,
    };
    let rejected = |reason| Error::DialRejected {
        onion: onion.clone(),
        reason,
    };
    match code {
        0x01 | 0x03 | 0x04 => unreachable(UnreachableReason::CircuitFailed),
        0x02 => rejected(DialRejection::NotAllowed),
        0x05 => Error::ConnectionRefused {
            onion: onion.clone(),
            port,
        },
        0x06 => Error::Timeout {
            operation: Operation::Connect,
        },
        0x07 => rejected(DialRejection::CommandNotSupported),
        0x08 => rejected(DialRejection::AddressTypeNotSupported),
        0xF0 => Error::OnionNotFound {
            onion: onion.clone(),
        },
        0xF1 => unreachable(UnreachableReason::InvalidDescriptor),
        0xF2 => unreachable(UnreachableReason::IntroductionFailed),
        0xF3 => unreachable(UnreachableReason::RendezvousFailed),
        0xF4 => rejected(DialRejection::ClientAuthRequired),
        0xF5 => rejected(DialRejection::ClientAuthRejected),
        0xF6 => rejected(DialRejection::InvalidAddress),
        0xF7 => unreachable(UnreachableReason::IntroductionTimedOut),
        other => unreachable(UnreachableReason::UnknownReply(other)),
    }
}

/// The typed error for any [`SocksFailure`].
pub fn failure_error(failure: SocksFailure, onion: &Onion, port: u16) -> Error {
    match failure {
        SocksFailure::Reply(code) => reply_error(code, onion, port),
        SocksFailure::Protocol(problem) => Error::SocksProtocol { problem },
        SocksFailure::Io(e) => Error::io(Operation::Socks, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn onion() -> Onion {
        torv3::Identity::from_seed(&[9; 32]).onion()
    }

    #[test]
    fn credentials_are_distinct_and_bounded() {
        let keys = [
            IsolationKey::new(""),
            IsolationKey::new("a"),
            IsolationKey::new("b"),
            IsolationKey::new("x".repeat(255)),
            IsolationKey::new("x".repeat(256)),
            IsolationKey::new("x".repeat(10_000)),
            // A raw key equal to the hash form of another key.
            IsolationKey::new(hex::encode(Sha256::digest(b""))),
        ];
        let creds: Vec<_> = keys.iter().map(credentials).collect();
        for (i, (u, p)) in creds.iter().enumerate() {
            assert!((1..=255).contains(&u.len()), "{i}");
            assert!((1..=255).contains(&p.len()), "{i}");
            for (j, other) in creds.iter().enumerate().skip(i + 1) {
                assert_ne!(
                    (u.as_slice(), *p),
                    (other.0.as_slice(), other.1),
                    "{i} vs {j}"
                );
            }
        }
        assert_eq!(credentials(&IsolationKey::new("a")).0.as_slice(), b"a");
    }

    #[test]
    fn every_reply_code_maps_without_panicking() {
        let o = onion();
        for code in 1..=255u8 {
            let e = reply_error(code, &o, 9878);
            // Retrying is only ever suggested for retryable errors.
            if retry_helps(code) {
                assert!(e.is_retryable(), "{code:#x}: {e}");
            }
        }
        assert!(matches!(
            reply_error(0xF0, &o, 1),
            Error::OnionNotFound { .. }
        ));
        assert!(matches!(
            reply_error(0x05, &o, 7),
            Error::ConnectionRefused { port: 7, .. }
        ));
        assert!(!reply_error(0xF4, &o, 1).is_retryable());
        assert!(!reply_error(0xF6, &o, 1).is_retryable());
    }
}
