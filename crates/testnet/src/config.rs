//! What network to bring up.

use std::path::PathBuf;
use std::time::Duration;

use crate::Error;

/// How many directory authorities every network has. Authorities relay traffic too, so a
/// network has `AUTHORITIES + relays` relays in all.
pub const AUTHORITIES: usize = 3;

/// Onion services with vanguards-lite build 4-hop circuits on distinct relays: fewer relays in
/// total (authorities included) and they never work.
pub const MIN_TOTAL_RELAYS: usize = 4;

/// What network [`TestNet::start`](crate::TestNet::start) brings up.
///
/// `TestNetConfig::default()` is 3 authorities + 2 relays + 2 clients in a fresh temporary
/// directory, using `tor` and `tor-gencert` from `PATH`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TestNetConfig {
    /// Non-authority relays (default 2, so 5 relays in total). The total (with the
    /// [`AUTHORITIES`]) must be at least [`MIN_TOTAL_RELAYS`].
    pub relays: usize,
    /// Clients started and bootstrapped by `start` (default 2; 0 is allowed, see
    /// [`TestNet::add_client`](crate::TestNet::add_client)).
    pub clients: usize,
    /// Where to create the network's directory. `None` (default): the system temporary
    /// directory. Either way a fresh subdirectory is created, and only that one is removed on
    /// teardown. The base directory must exist.
    pub base_dir: Option<PathBuf>,
    /// The tor binary (default `tor`, looked up in `PATH`).
    pub tor_binary: PathBuf,
    /// The tor-gencert binary (default `tor-gencert`, looked up in `PATH`).
    pub tor_gencert_binary: PathBuf,
    /// The authorities' `V3AuthVotingInterval` (default 10 s; whole seconds, at least 10 s,
    /// dividing a day).
    /// Tor's onion-service time period in a testing network is 24 voting intervals; use 15-20
    /// s if Arti takes part (it accepts periods of 5 min or more).
    pub voting_interval: Duration,
    /// Bound on all of `start` (and on each `add_client`), default 90 s.
    pub startup_timeout: Duration,
    /// How long teardown waits after SIGTERM before sending SIGKILL (default 5 s).
    pub shutdown_grace: Duration,
}

impl Default for TestNetConfig {
    fn default() -> Self {
        TestNetConfig {
            relays: 2,
            clients: 2,
            base_dir: None,
            tor_binary: PathBuf::from("tor"),
            tor_gencert_binary: PathBuf::from("tor-gencert"),
            voting_interval: Duration::from_secs(10),
            startup_timeout: Duration::from_secs(90),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl TestNetConfig {
    /// Sets [`relays`](Self::relays).
    pub fn relays(mut self, relays: usize) -> Self {
        self.relays = relays;
        self
    }

    /// Sets [`clients`](Self::clients).
    pub fn clients(mut self, clients: usize) -> Self {
        self.clients = clients;
        self
    }

    /// Sets [`base_dir`](Self::base_dir).
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = Some(dir.into());
        self
    }

    /// Sets [`tor_binary`](Self::tor_binary).
    pub fn tor_binary(mut self, tor: impl Into<PathBuf>) -> Self {
        self.tor_binary = tor.into();
        self
    }

    /// Sets [`voting_interval`](Self::voting_interval).
    pub fn voting_interval(mut self, interval: Duration) -> Self {
        self.voting_interval = interval;
        self
    }

    /// Sets [`startup_timeout`](Self::startup_timeout).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if AUTHORITIES + self.relays < MIN_TOTAL_RELAYS {
            return Err(Error::InvalidConfig {
                reason: "onion services need at least 4 relays in total: use relays >= 1",
            });
        }
        if self.relays > 50 || self.clients > 50 {
            return Err(Error::InvalidConfig {
                reason: "more than 50 relays or clients is not what this crate is for",
            });
        }
        if self.voting_interval.subsec_nanos() != 0 || self.voting_interval.as_secs() < 10 {
            return Err(Error::InvalidConfig {
                reason: "voting_interval must be whole seconds, at least 10",
            });
        }
        if 86_400 % self.voting_interval.as_secs() != 0 {
            return Err(Error::InvalidConfig {
                reason: "voting_interval must divide a day evenly",
            });
        }
        if self.startup_timeout.is_zero() {
            return Err(Error::InvalidConfig {
                reason: "startup_timeout must not be zero",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        TestNetConfig::default().validate().unwrap();
    }

    #[test]
    fn rejects_too_few_relays_and_bad_intervals() {
        assert!(TestNetConfig::default().relays(0).validate().is_err());
        assert!(TestNetConfig::default().relays(1).validate().is_ok());
        for bad in [
            Duration::from_millis(10_500),
            Duration::from_secs(5),
            Duration::from_secs(7),
        ] {
            assert!(TestNetConfig::default()
                .voting_interval(bad)
                .validate()
                .is_err());
        }
        assert!(TestNetConfig::default()
            .voting_interval(Duration::from_secs(20))
            .validate()
            .is_ok());
    }
}
