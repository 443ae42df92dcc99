//! Parsing the few replies and events the backend cares about (control-spec §4.1.10
//! `STATUS_CLIENT`, §4.1.25 `HS_DESC`, `GETINFO net/listeners/socks`, `ADD_ONION`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::reply::{pair, tokenize, words, Reply};
use crate::acn::AcnStatus;

/// The bootstrap phase in a `STATUS_CLIENT` event (`STATUS_CLIENT NOTICE BOOTSTRAP
/// PROGRESS=… TAG=… SUMMARY="…"`) or a `GETINFO status/bootstrap-phase` value (the same
/// without `STATUS_CLIENT`). Any severity (Tor repeats the phase at `WARN` with a problem).
/// `None` for other events or malformed ones.
pub fn bootstrap_phase(text: &str) -> Option<AcnStatus> {
    let tokens = tokenize(text).ok()?;
    let mut w = words(&tokens);
    let mut first = w.next()?;
    if first == "STATUS_CLIENT" {
        first = w.next()?;
    }
    if !matches!(first, "NOTICE" | "WARN" | "ERR") || w.next()? != "BOOTSTRAP" {
        return None;
    }
    let progress: u8 = pair(&tokens, "PROGRESS")?.parse().ok()?;
    if progress > 100 {
        return None;
    }
    let summary = pair(&tokens, "SUMMARY")
        .or_else(|| pair(&tokens, "TAG"))
        .unwrap_or("");
    Some(AcnStatus::new(progress, summary))
}

/// An `HS_DESC` event: its action (`UPLOADED`, `FAILED`, `UPLOAD`...) and onion address
/// (without `.onion`).
pub fn hs_desc(text: &str) -> Option<(String, String)> {
    let tokens = tokenize(text).ok()?;
    let mut w = words(&tokens);
    if w.next()? != "HS_DESC" {
        return None;
    }
    let action = w.next()?.to_owned();
    let address = w.next()?.to_owned();
    Some((action, address))
}

/// The address to dial Tor's SOCKS port at, from a `GETINFO net/listeners/socks` value (a
/// space-separated list of quoted addresses). Prefers IPv4; a wildcard listener is dialed
/// on loopback. `None` if Tor has no TCP SOCKS listener.
pub fn socks_listener(value: &str) -> Option<SocketAddr> {
    let tokens = tokenize(value).ok()?;
    let mut addrs: Vec<SocketAddr> = words(&tokens)
        .filter_map(|w| w.parse::<SocketAddr>().ok())
        .map(|mut a| {
            if a.ip().is_unspecified() {
                a.set_ip(match a.ip() {
                    IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
                });
            }
            a
        })
        .collect();
    addrs.sort_by_key(|a| !a.is_ipv4());
    addrs.first().copied()
}

/// The `ServiceID=` of an `ADD_ONION` reply.
pub fn service_id(reply: &Reply) -> Option<&str> {
    reply
        .lines
        .iter()
        .find_map(|l| l.text.strip_prefix("ServiceID="))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_events_and_phases_parse() {
        assert_eq!(
            bootstrap_phase(
                r#"STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=14 TAG=handshake SUMMARY="Handshaking with a relay""#
            ),
            Some(AcnStatus::new(14, "Handshaking with a relay"))
        );
        assert_eq!(
            bootstrap_phase(
                r#"WARN BOOTSTRAP PROGRESS=14 TAG=handshake SUMMARY="Handshaking" WARNING="DONE" REASON=DONE COUNT=6 RECOMMENDATION=ignore HOSTID="E3E4" HOSTADDR="216.218.219.41:443""#
            ),
            Some(AcnStatus::new(14, "Handshaking"))
        );
        assert_eq!(
            bootstrap_phase(r#"NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done""#),
            Some(AcnStatus::new(100, "Done"))
        );
        for bad in [
            "STATUS_CLIENT NOTICE CIRCUIT_ESTABLISHED",
            "STATUS_CLIENT NOTICE BOOTSTRAP",
            "STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=101",
            "STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=-1",
            "STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=x",
            "STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=5 SUMMARY=\"unterminated",
            "HS_DESC UPLOADED x",
            "",
        ] {
            assert_eq!(bootstrap_phase(bad), None, "{bad}");
        }
    }

    #[test]
    fn hs_desc_events_parse() {
        assert_eq!(
            hs_desc("HS_DESC UPLOADED abcd UNKNOWN $AAAA~relay"),
            Some(("UPLOADED".to_owned(), "abcd".to_owned()))
        );
        assert_eq!(hs_desc("HS_DESC UPLOADED"), None);
        assert_eq!(hs_desc("STATUS_CLIENT NOTICE X Y"), None);
    }

    #[test]
    fn socks_listeners_parse() {
        assert_eq!(
            socks_listener(r#""127.0.0.1:40651""#),
            Some("127.0.0.1:40651".parse().unwrap())
        );
        assert_eq!(
            socks_listener(r#""[::1]:9050" "127.0.0.1:9050""#),
            Some("127.0.0.1:9050".parse().unwrap())
        );
        assert_eq!(
            socks_listener(r#""0.0.0.0:9050""#),
            Some("127.0.0.1:9050".parse().unwrap())
        );
        assert_eq!(socks_listener(r#""unix:/run/tor/socks""#), None);
        assert_eq!(socks_listener(""), None);
    }
}
