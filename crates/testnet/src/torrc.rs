//! The torrc of every kind of node (pure functions: no IO).

use std::path::Path;
use std::time::Duration;

/// What every node needs to know about one directory authority.
#[derive(Debug, Clone)]
pub(crate) struct AuthorityInfo {
    pub(crate) name: String,
    pub(crate) or_port: u16,
    pub(crate) dir_port: u16,
    /// The `fingerprint` line of its `authority_certificate` (v3 identity), hex.
    pub(crate) v3ident: String,
    /// Its relay identity (RSA) fingerprint, hex.
    pub(crate) fingerprint: String,
}

impl AuthorityInfo {
    fn dir_authority_line(&self) -> String {
        format!(
            "DirAuthority {} orport={} no-v2 v3ident={} 127.0.0.1:{} {}",
            self.name, self.or_port, self.v3ident, self.dir_port, self.fingerprint
        )
    }
}

/// Quotes a path as a torrc string value (tor parses a leading `"` as a C-style string).
pub(crate) fn quote_path(path: &Path) -> String {
    let mut out = String::from("\"");
    for c in path.to_string_lossy().chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The lines any tor needs to join the network as a client (no ports, no data directory).
pub(crate) fn client_network_lines(authorities: &[AuthorityInfo], geoip: &Path) -> Vec<String> {
    let mut lines = vec!["TestingTorNetwork 1".to_owned()];
    lines.extend(authorities.iter().map(AuthorityInfo::dir_authority_line));
    lines.extend(
        [
            "UseDefaultFallbackDirs 0",
            "PathsNeededToBuildCircuits 0.25",
            "KISTSchedRunInterval 1 msec",
        ]
        .map(str::to_owned),
    );
    // An empty GeoIP database saves ~35 MB per process.
    lines.push(format!("GeoIPFile {}", quote_path(geoip)));
    lines.push(format!("GeoIPv6File {}", quote_path(geoip)));
    lines
}

/// What every process we run has in common.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Common<'a> {
    pub(crate) authorities: &'a [AuthorityInfo],
    pub(crate) geoip: &'a Path,
    /// Our pid: tor exits by itself (within ~15 s) if this process dies without cleaning up.
    pub(crate) owner_pid: u32,
}

impl Common<'_> {
    fn lines(&self, data_dir: &Path) -> Vec<String> {
        let mut lines = client_network_lines(self.authorities, self.geoip);
        lines.push(format!("DataDirectory {}", quote_path(data_dir)));
        lines.extend(
            ["Log notice stdout", "SafeLogging 0", "ShutdownWaitLength 0"].map(str::to_owned),
        );
        lines.push(format!("__OwningControllerProcess {}", self.owner_pid));
        lines
    }
}

/// Relay settings shared by authorities and relays: loopback only, no exits.
/// Every relay has a DirPort (plain HTTP), so that we can check what it serves as a directory
/// cache before starting clients.
fn relay_lines(nickname: &str, or_port: u16, dir_port: u16) -> Vec<String> {
    let mut lines = vec![
        format!("Nickname {nickname}"),
        format!("ContactInfo {nickname}@testnet.invalid"),
        "Address 127.0.0.1".to_owned(),
        format!("ORPort 127.0.0.1:{or_port}"),
        format!("DirPort 127.0.0.1:{dir_port}"),
    ];
    lines.extend(
        [
            "AddressDisableIPv6 1",
            "AssumeReachable 1",
            "SocksPort 0",
            "ExitRelay 0",
            "ExitPolicy reject *:*",
        ]
        .map(str::to_owned),
    );
    lines
}

/// How the authorities vote.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Voting<'a> {
    /// `V3AuthVotingInterval`.
    pub(crate) interval: Duration,
    /// `TestingV3AuthVotingStartOffset`, see [`voting_offset`].
    pub(crate) offset_secs: u64,
    /// The bandwidth file, see [`bandwidth_file`].
    pub(crate) bandwidths: &'a Path,
}

/// The voting interval before the first consensus. With [`voting_offset`], the first vote
/// falls 3-4 s after the authorities start.
pub(crate) const INITIAL_VOTING_INTERVAL_SECS: u64 = 10;
/// A vote happens `vote delay + dist delay` before the interval it is for.
const VOTE_LEAD_SECS: u64 = 4;
/// Relays upload their descriptors about 1.2 s after they start; the first vote should come
/// comfortably after that.
const FIRST_VOTE_AFTER_SECS: f64 = 3.0;

/// The `TestingV3AuthVotingStartOffset` that puts the first vote 3-4 s after `now` (seconds
/// since the Unix epoch, when the tors are started).
///
/// Authorities vote on wall-clock boundaries. Started at a random moment, the first vote can
/// come before the relays have uploaded their descriptors (tor votes late rather than not
/// at all); the first consensus then misses relays and a complete one only comes a whole
/// voting interval later. Aligning the schedule on our start makes the first consensus
/// complete, about 7.5 s after start.
pub(crate) fn voting_offset(now: f64) -> u64 {
    let first_interval_start = (now + FIRST_VOTE_AFTER_SECS).ceil() as u64 + VOTE_LEAD_SECS;
    first_interval_start % INITIAL_VOTING_INTERVAL_SECS
}

/// A bandwidth file (version 1.0.0 format) that "measures" every relay at 0.
///
/// Why: tor weighs every path position by the consensus bandwidth. Left alone, that is each
/// relay's self-observed bandwidth, 0 to a few dozen KB/s at random, so one or two relays get
/// nearly every pick. Tor picks the last hop of an onion-service circuit without excluding
/// the guard (vanguards rules), so when the heavy relay is also a client's guard, the middle
/// refuses to "extend back to the previous hop", again and again, and bootstrap or onion
/// connections stall for 5-20 s. Equal weights fix it. Measured values cannot make them equal
/// (authorities ignore measurements of authorities: `MeasuredButAuthority`), but 0 can:
/// relays are measured at 0, authorities (unmeasured) are capped at 0 by the consensus
/// parameter `maxunmeasuredbw=0`, and with every weight 0 tor picks uniformly.
pub(crate) fn bandwidth_file(now_unix_secs: u64, fingerprints: &[&str]) -> String {
    let mut s = format!("{now_unix_secs}\n");
    for fp in fingerprints {
        s.push_str(&format!("node_id=${fp} bw=0\n"));
    }
    s
}

pub(crate) fn authority_torrc(
    common: Common<'_>,
    data_dir: &Path,
    me: &AuthorityInfo,
    voting: Voting<'_>,
) -> String {
    let mut lines = common.lines(data_dir);
    lines.extend(relay_lines(&me.name, me.or_port, me.dir_port));
    lines.push(format!(
        "TestingV3AuthInitialVotingInterval {INITIAL_VOTING_INTERVAL_SECS}"
    ));
    lines.push(format!(
        "TestingV3AuthVotingStartOffset {}",
        voting.offset_secs
    ));
    lines.push(format!(
        "V3BandwidthsFile {}",
        quote_path(voting.bandwidths)
    ));
    lines.extend(
        [
            "AuthoritativeDirectory 1",
            "V3AuthoritativeDirectory 1",
            "TestingV3AuthInitialVoteDelay 2",
            "TestingV3AuthInitialDistDelay 2",
            "V3AuthVoteDelay 2",
            "V3AuthDistDelay 2",
            "V3AuthNIntervalsValid 2",
            "TestingDirAuthVoteExit *",
            "TestingDirAuthVoteGuard *",
            "TestingDirAuthVoteHSDir *",
            "TestingMinExitFlagThreshold 0",
            // Every relay Stable and Fast from the first consensus. Otherwise Stable goes only
            // to the relays above the median uptime, onion-service circuits (which need a
            // Stable last hop) have one or two candidates, and a client whose guard is one of
            // them builds guard-middle-guard paths that fail (see `bandwidth_file`).
            "AuthDirVoteStableGuaranteeMinUptime 0",
            "AuthDirFastGuarantee 0",
            // Equal (zero) weights for every relay: see `bandwidth_file`.
            "ConsensusParams maxunmeasuredbw=0",
        ]
        .map(str::to_owned),
    );
    lines.push(format!(
        "V3AuthVotingInterval {}",
        voting.interval.as_secs()
    ));
    join(lines)
}

pub(crate) fn relay_torrc(
    common: Common<'_>,
    data_dir: &Path,
    nickname: &str,
    or_port: u16,
    dir_port: u16,
) -> String {
    let mut lines = common.lines(data_dir);
    lines.extend(relay_lines(nickname, or_port, dir_port));
    // Fetch each new consensus (and its microdescriptors) as soon as the authorities publish
    // it, not up to half a voting interval later: clients fetch microdescriptors from their
    // guards, and a cache that lacks some makes a client wait 10 s before retrying.
    lines.extend(["FetchDirInfoEarly 1", "FetchDirInfoExtraEarly 1"].map(str::to_owned));
    join(lines)
}

/// File names inside a client's data directory.
pub(crate) const CONTROL_PORT_FILE: &str = "control-port";
pub(crate) const COOKIE_FILE: &str = "control_auth_cookie";

pub(crate) fn client_torrc(common: Common<'_>, data_dir: &Path) -> String {
    let mut lines = common.lines(data_dir);
    lines.extend(
        [
            // `auto`: tor picks free ports itself, so clients never race for one; we read them
            // back through the control port.
            "SocksPort 127.0.0.1:auto ExtendedErrors",
            "ControlPort 127.0.0.1:auto",
            "CookieAuthentication 1",
        ]
        .map(str::to_owned),
    );
    lines.push(format!(
        "ControlPortWriteToFile {}",
        quote_path(&data_dir.join(CONTROL_PORT_FILE))
    ));
    lines.push(format!(
        "CookieAuthFile {}",
        quote_path(&data_dir.join(COOKIE_FILE))
    ));
    join(lines)
}

fn join(lines: Vec<String>) -> String {
    let mut s = lines.join("\n");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn auths() -> Vec<AuthorityInfo> {
        (0..3)
            .map(|i| AuthorityInfo {
                name: format!("auth{i}"),
                or_port: 5000 + i,
                dir_port: 6000 + i,
                v3ident: "A".repeat(40),
                fingerprint: "B".repeat(40),
            })
            .collect()
    }

    #[test]
    fn first_vote_comes_3_to_4_s_after_start() {
        for tenths in 0..200 {
            let now = 1_700_000_000.0 + f64::from(tenths) / 10.0;
            let offset = voting_offset(now);
            assert!(offset < INITIAL_VOTING_INTERVAL_SECS);
            // The next interval start (valid-after) after `now` with this offset, and its vote.
            let mut start = (now as u64 / 10) * 10 + offset;
            while (start as f64) <= now {
                start += INITIAL_VOTING_INTERVAL_SECS;
            }
            let vote = (start - VOTE_LEAD_SECS) as f64;
            assert!(
                vote - now >= 3.0 && vote - now < 4.0,
                "now {now} offset {offset}"
            );
        }
    }

    #[test]
    fn bandwidth_file_format() {
        assert_eq!(
            bandwidth_file(1_700_000_000, &["AA", "BB"]),
            "1700000000\nnode_id=$AA bw=0\nnode_id=$BB bw=0\n"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_path(Path::new("/tmp/a b")), "\"/tmp/a b\"");
        assert_eq!(quote_path(Path::new("/x\"y\\z")), "\"/x\\\"y\\\\z\"");
    }

    #[test]
    fn client_lines_join_the_network_only() {
        let a = auths();
        let lines = client_network_lines(&a, Path::new("/g"));
        assert_eq!(lines[0], "TestingTorNetwork 1");
        assert_eq!(
            lines[1],
            format!(
                "DirAuthority auth0 orport=5000 no-v2 v3ident={} 127.0.0.1:6000 {}",
                "A".repeat(40),
                "B".repeat(40)
            )
        );
        assert!(lines.contains(&"UseDefaultFallbackDirs 0".to_owned()));
        assert!(!lines.iter().any(|l| l.starts_with("DataDirectory")
            || l.starts_with("SocksPort")
            || l.starts_with("ControlPort")));
    }

    #[test]
    fn every_torrc_is_loopback_only_without_exits() {
        let a = auths();
        let g = PathBuf::from("/g");
        let common = Common {
            authorities: &a,
            geoip: &g,
            owner_pid: 42,
        };
        let voting = Voting {
            interval: Duration::from_secs(10),
            offset_secs: 7,
            bandwidths: Path::new("/bw"),
        };
        let auth = authority_torrc(common, Path::new("/d"), &a[0], voting);
        let relay = relay_torrc(common, Path::new("/d"), "relay0", 7000, 7001);
        let client = client_torrc(common, Path::new("/d"));
        for torrc in [&auth, &relay, &client] {
            assert!(torrc.contains("TestingTorNetwork 1\n"));
            assert!(torrc.contains("__OwningControllerProcess 42\n"));
            assert!(torrc.contains("DataDirectory \"/d\"\n"));
        }
        for torrc in [&auth, &relay] {
            assert!(torrc.contains("ExitRelay 0\n"));
            assert!(torrc.contains("ExitPolicy reject *:*\n"));
            assert!(torrc.contains("SocksPort 0\n"));
        }
        assert!(auth.contains("ORPort 127.0.0.1:5000\n"));
        assert!(auth.contains("DirPort 127.0.0.1:6000\n"));
        assert!(auth.contains("V3AuthVotingInterval 10\n"));
        assert!(auth.contains("TestingV3AuthVotingStartOffset 7\n"));
        assert!(auth.contains("V3BandwidthsFile \"/bw\"\n"));
        assert!(relay.contains("ORPort 127.0.0.1:7000\n"));
        assert!(relay.contains("DirPort 127.0.0.1:7001\n"));
        assert!(client.contains("SocksPort 127.0.0.1:auto ExtendedErrors\n"));
        assert!(client.contains("CookieAuthentication 1\n"));
        assert!(!client.contains("ORPort"));
    }
}
