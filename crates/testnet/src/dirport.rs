//! What a directory (authority or relay, over its DirPort: plain HTTP on 127.0.0.1) serves:
//! the microdescriptor consensus and microdescriptors.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A consensus of a small test network is a few KiB; refuse anything absurd.
const MAX_RESPONSE: u64 = 4 * 1024 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The microdescriptor-flavoured consensus (the one clients use).
pub(crate) const MICRODESC_CONSENSUS: &str = "/tor/status-vote/current/consensus-microdesc";

/// The flags every relay must have in the consensus before clients start. Onion-service
/// circuits need `Stable` and `Fast` relays, guards need `Guard`, descriptors need `HSDir`,
/// directory fetches `V2Dir`; a relay without one of them shrinks a 5-relay network to the
/// point where clients stall (see the authorities' torrc for how every relay gets them all
/// from the first consensus).
pub(crate) const REQUIRED_FLAGS: [&str; 7] = [
    "Running", "Valid", "Stable", "Fast", "Guard", "HSDir", "V2Dir",
];

/// `GET path` over plain HTTP/1.0. `Ok(None)` if the answer is not `200` or nothing listens
/// yet.
pub(crate) async fn fetch(addr: SocketAddr, path: &str) -> std::io::Result<Option<String>> {
    let fetch = async {
        let mut stream = match TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(None),
            Err(e) => return Err(e),
        };
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await?;
        let mut response = Vec::new();
        (&mut stream)
            .take(MAX_RESPONSE)
            .read_to_end(&mut response)
            .await?;
        Ok(parse_http_ok_body(&response))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, fetch)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer in time",
            ))
        })
}

/// The body of a `200` response, else `None`.
fn parse_http_ok_body(response: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.lines().next()?;
    let code = status.split_whitespace().nth(1)?;
    (code == "200").then(|| body.to_owned())
}

/// One relay of a consensus.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// RSA identity fingerprint, uppercase hex.
    pub(crate) id: String,
    pub(crate) flags: HashSet<String>,
    /// Microdescriptor digest (`m` line, microdesc flavour only), base64 as written.
    pub(crate) microdesc: Option<String>,
}

impl Entry {
    pub(crate) fn has_required_flags(&self) -> bool {
        REQUIRED_FLAGS.iter().all(|f| self.flags.contains(*f))
    }
}

/// The relays of a consensus (either flavour).
pub(crate) fn parse_consensus(consensus: &str) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    for line in consensus.lines() {
        if let Some(rest) = line.strip_prefix("r ") {
            // r <nickname> <identity, base64 without padding> ...
            let id = rest
                .split_whitespace()
                .nth(1)
                .and_then(|id| {
                    base64::engine::general_purpose::STANDARD_NO_PAD
                        .decode(id)
                        .ok()
                })
                .map(hex::encode_upper)
                .unwrap_or_default();
            entries.push(Entry {
                id,
                ..Entry::default()
            });
        } else if let (Some(flags), Some(entry)) = (line.strip_prefix("s "), entries.last_mut()) {
            entry.flags = flags.split_whitespace().map(str::to_owned).collect();
        } else if let (Some(digest), Some(entry)) = (line.strip_prefix("m "), entries.last_mut()) {
            entry.microdesc = digest.split_whitespace().next().map(str::to_owned);
        }
    }
    entries
}

/// The path that fetches these microdescriptors.
pub(crate) fn microdescs_path(digests: &[&str]) -> String {
    format!("/tor/micro/d/{}", digests.join("-"))
}

/// How many microdescriptors a `/tor/micro/d/` answer holds.
pub(crate) fn count_microdescs(body: &str) -> usize {
    body.lines()
        .filter(|l| l.starts_with("ntor-onion-key "))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http() {
        assert_eq!(
            parse_http_ok_body(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nbody\n"),
            Some("body\n".to_owned())
        );
        assert_eq!(
            parse_http_ok_body(b"HTTP/1.0 404 Consensus not signed yet\r\n\r\n"),
            None
        );
        assert_eq!(parse_http_ok_body(b"garbage"), None);
    }

    #[test]
    fn parses_consensus_entries() {
        // Identity 4B2B0B51968D8C77079AAC2B6DE980994D72A386 in base64 without padding.
        let id = base64::engine::general_purpose::STANDARD_NO_PAD
            .encode(hex::decode("4B2B0B51968D8C77079AAC2B6DE980994D72A386").unwrap());
        let consensus = format!(
            "network-status-version 3\n\
             r relay0 {id} AAAA 2026-01-01 00:00:00 127.0.0.1 5000 0\n\
             s Fast Guard HSDir Running Stable V2Dir Valid\n\
             m jELvQM8eSrlO9zOJHE1l5aq6ZzGaJo8ddqiW60itiHk\n\
             r relay1 AAAAAAAAAAAAAAAAAAAAAAAAAAA AAAA 2026-01-01 00:00:00 127.0.0.1 5001 0\n\
             s Fast\n"
        );
        let entries = parse_consensus(&consensus);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].id, "4B2B0B51968D8C77079AAC2B6DE980994D72A386");
        assert!(entries[0].flags.contains("Stable"));
        assert!(entries[0].has_required_flags());
        assert_eq!(
            entries[0].microdesc.as_deref(),
            Some("jELvQM8eSrlO9zOJHE1l5aq6ZzGaJo8ddqiW60itiHk")
        );
        assert_eq!(entries[1].id, "0".repeat(40));
        assert_eq!(entries[1].microdesc, None);
        assert!(!entries[1].has_required_flags());
        assert_eq!(microdescs_path(&["a", "b"]), "/tor/micro/d/a-b");
        assert_eq!(
            count_microdescs("onion-key\nntor-onion-key x\nid ed25519 y\nntor-onion-key z\n"),
            2
        );
    }
}
