//! Engine settings.

use std::time::Duration;

pub use tapir_service::ServiceConfig;

/// How long to wait, after authentication, for the peer's version message before deciding
/// it is an old (V1-only) peer (UNCONFIRMED policy, spec §7.2; see the crate docs).
pub const DEFAULT_VERSION_WAIT: Duration = Duration::from_secs(2);
/// First reconnection delay; doubles after each failed attempt.
pub const DEFAULT_DIAL_BACKOFF_INITIAL: Duration = Duration::from_secs(2);
/// Largest reconnection delay.
pub const DEFAULT_DIAL_BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Most dials in flight at once, over all loaded profiles.
pub const DEFAULT_MAX_CONCURRENT_DIALS: usize = 8;
/// Most contact requests (strangers not yet accepted, blocked or deleted) a profile keeps.
pub const DEFAULT_MAX_CONTACT_REQUESTS: usize = 500;
/// Most messages stored from one contact request before it is accepted.
pub const DEFAULT_MAX_REQUEST_MESSAGES: u64 = 100;
/// Most connections from contacts that are not accepted open at once, per profile.
pub const DEFAULT_MAX_STRANGER_CONNECTIONS: usize = 64;

/// Settings of a [`Cwtch`](crate::Cwtch) and the engines of its profiles. The defaults suit
/// a client on Tor; tests shorten the delays.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Limits and timeouts of each profile's tapir service (handshake timeout, inbound
    /// connection limit, queue sizes).
    pub service: ServiceConfig,
    /// First reconnection delay (jittered to 50–100 %).
    pub dial_backoff_initial: Duration,
    /// Cap of the reconnection delay.
    pub dial_backoff_max: Duration,
    /// Most dials in flight at once over all profiles.
    pub max_concurrent_dials: usize,
    /// How long to wait for a peer's version message ([`DEFAULT_VERSION_WAIT`]).
    pub version_wait: Duration,
    /// Capacity of the event channel; a receiver that falls further behind loses the oldest
    /// events (it sees `RecvError::Lagged`).
    pub event_capacity: usize,
    /// Capacity of each profile's storage request queue.
    pub storage_queue: usize,
    /// Behave like an old Go peer that predates wire version 2: never send the version
    /// message, send and accept only V1 (JSON). For interoperability tests.
    pub legacy_v1_only: bool,
    /// The largest file a download accepts (at most 10 GiB, the protocol's limit).
    pub max_download_size: u64,
    /// How long a download waits without receiving anything before it asks again (and,
    /// after a few such waits, fails as stalled).
    pub download_stall: Duration,
    /// How long an automatic image download (a preview or a profile picture, at most 20 MiB)
    /// may take in all before it fails: a sharer sending a little now and then must not hold
    /// one of the few automatic downloads for ever.
    pub image_download_deadline: Duration,
    /// Most contact requests kept at once ([`DEFAULT_MAX_CONTACT_REQUESTS`]). A stranger who
    /// connects while that many wait is closed right after authentication (as while blocking
    /// unknown contacts) until the user accepts, blocks or deletes some.
    pub max_contact_requests: usize,
    /// How often an open connection to an accepted contact asks again for its public
    /// attributes (name, status, picture), so that a change reaches us without waiting for
    /// the next connection.
    pub attribute_refresh: Duration,
    /// Most messages stored from one contact request ([`DEFAULT_MAX_REQUEST_MESSAGES`]).
    /// Further messages are neither stored nor acknowledged (the sender sees them as not
    /// delivered, and sends them again once accepted).
    pub max_request_messages: u64,
    /// Most inbound connections open at once from peers we have not accepted
    /// ([`DEFAULT_MAX_STRANGER_CONNECTIONS`]); the service's other inbound slots stay free
    /// for contacts.
    pub max_stranger_connections: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            service: ServiceConfig::default(),
            dial_backoff_initial: DEFAULT_DIAL_BACKOFF_INITIAL,
            dial_backoff_max: DEFAULT_DIAL_BACKOFF_MAX,
            max_concurrent_dials: DEFAULT_MAX_CONCURRENT_DIALS,
            version_wait: DEFAULT_VERSION_WAIT,
            event_capacity: 1024,
            storage_queue: 64,
            legacy_v1_only: false,
            max_download_size: cwtch_model::files::MAX_FILE_SIZE,
            download_stall: Duration::from_secs(30),
            image_download_deadline: Duration::from_secs(600),
            attribute_refresh: Duration::from_secs(600),
            max_contact_requests: DEFAULT_MAX_CONTACT_REQUESTS,
            max_request_messages: DEFAULT_MAX_REQUEST_MESSAGES,
            max_stranger_connections: DEFAULT_MAX_STRANGER_CONNECTIONS,
        }
    }
}
