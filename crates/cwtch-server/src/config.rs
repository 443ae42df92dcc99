//! The server's configuration, compatible with Go's `serverConfig.json` (spec §5.6).
//!
//! Same file name, field names and key encodings as the Go server, so an operator can move a
//! Go server's identity to ours (and back: Go ignores our `limits` section). The file holds
//! the server's secrets; it is written 0600 in a 0700 directory, and never regenerated
//! silently: a missing or unreadable config is an error, not a new identity.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use connectivity::{ListenOptions, PowDefense};
use cwtch_model::{GroupInvite, KeyBundle};
use privacypass::TokenServer;
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use torv3::{Identity, Onion};

use crate::error::ConfigError;

/// The configuration file's name in the data directory (Go's).
pub const CONFIG_FILE: &str = "serverConfig.json";

/// Limits a public server needs. Not in Go's config: stored under `limits`, which Go ignores.
///
/// When a service's connections are all taken, a new connection evicts the oldest one still
/// in its handshake (not yet authenticated on the token board, not yet past the proof of work
/// on the token service); established connections are never evicted, and may fill all but
/// the service's handshake reserve (`docs/specs/tapir.md` §7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Limits {
    /// Most simultaneous connections to the token board.
    pub max_board_connections: usize,
    /// Most simultaneous connections to the token service.
    pub max_token_connections: usize,
    /// Token-board connections kept for handshakes: authenticated clients may hold at most
    /// `maxBoardConnections` minus this many (capped at half).
    pub board_handshake_reserve: usize,
    /// Token-service connections kept for handshakes (as `boardHandshakeReserve`).
    pub token_handshake_reserve: usize,
    /// Sustained requests per second one token-board connection may make.
    pub requests_per_second: u32,
    /// Requests a connection may burst above the sustained rate.
    pub request_burst: u32,
    /// Largest ciphertext a post may carry, in bytes.
    pub max_ciphertext_bytes: usize,
    /// Largest `LastCommit` a replay request may carry, in bytes (an Ed25519 signature is 64).
    pub max_last_commit_bytes: usize,
    /// Seconds a new connection may take to authenticate (token board), or to solve the
    /// proof of work and take its tokens (token service). Counted from accept, separately
    /// from the idle timeout; it allows for several Tor round trips and a few seconds of
    /// proof of work on a slow phone. Also how long a token-service connection is kept open
    /// after issuance, for the client to close it.
    pub handshake_timeout_secs: u64,
    /// Seconds an established token-board connection may stay silent before it is closed
    /// (0: never). Cwtch clients reconnect and replay from their last message when closed.
    pub idle_timeout_secs: u64,
    /// Most replays served at once; more wait their turn. Each holds a read snapshot of the
    /// store (which keeps its write-ahead log from being checkpointed) and a page of messages.
    pub max_concurrent_replays: usize,
    /// Seconds a replay may take to send one page (256 messages, up to about 2 MB) before the
    /// connection is closed (0: no limit): a client reading slower than about 16 KB/s cannot
    /// hold a replay, and the store's snapshot, for hours. Closed clients reconnect and resume
    /// from their last message.
    pub replay_page_timeout_secs: u64,
    /// Over Tor, turn on tor's onion-service proof-of-work defence for both services
    /// (tor 0.4.9.5 or later; an older tor hosts them without it, with a warning).
    pub tor_pow_defense: bool,
    /// Introduction requests per second tor dequeues under the defence (tor's default 250).
    pub tor_pow_queue_rate: u32,
    /// Introduction requests tor may dequeue in one burst (tor's default 2500).
    pub tor_pow_queue_burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_board_connections: 2048,
            max_token_connections: 256,
            board_handshake_reserve: 512,
            token_handshake_reserve: 64,
            requests_per_second: 10,
            request_burst: 50,
            max_ciphertext_bytes: 6000,
            max_last_commit_bytes: 64,
            handshake_timeout_secs: 30,
            idle_timeout_secs: 3600,
            max_concurrent_replays: 64,
            replay_page_timeout_secs: 120,
            tor_pow_defense: true,
            tor_pow_queue_rate: 250,
            tor_pow_queue_burst: 2500,
        }
    }
}

impl Limits {
    /// The handshake deadline.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs.max(1))
    }

    /// How long a replay may take to send one page, if limited.
    pub fn replay_page_timeout(&self) -> Option<Duration> {
        (self.replay_page_timeout_secs > 0)
            .then(|| Duration::from_secs(self.replay_page_timeout_secs))
    }

    /// The idle deadline, if any.
    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.idle_timeout_secs > 0).then(|| Duration::from_secs(self.idle_timeout_secs))
    }

    /// What both services ask of the network: tor's proof-of-work defence, if on.
    pub fn listen_options(&self) -> ListenOptions {
        let options = ListenOptions::default();
        if self.tor_pow_defense {
            options.with_pow_defense(PowDefense::new(
                self.tor_pow_queue_rate,
                self.tor_pow_queue_burst,
            ))
        } else {
            options
        }
    }
}

/// Go's `serverConfig.json`, as read and written on disk.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    public_key: String,
    private_key: String,
    token_server_public_key: String,
    token_server_private_key: String,
    #[serde(rename = "tokenServiceK")]
    token_service_k: String,
    #[serde(default)]
    server_reporting: Reporting,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(rename = "maxStorageMBs", default = "unlimited")]
    max_storage_mbs: i64,
    #[serde(default)]
    limits: Limits,
}

/// The private keys and the token secret, as text, are wiped when the file's form of the
/// config is dropped (after every load and save).
impl Drop for ConfigFile {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.private_key.zeroize();
        self.token_server_private_key.zeroize();
        self.token_service_k.zeroize();
    }
}

/// Counts what is written (to size a buffer that must never grow: a grown buffer leaves the
/// old one, secrets included, unwiped).
struct Counter(usize);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn unlimited() -> i64 {
    -1
}

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Reporting {
    #[serde(default)]
    log_metrics_to_file: bool,
}

/// A loaded, validated server configuration.
pub struct ServerConfig {
    /// The token board's identity (config `publicKey`/`privateKey`).
    pub identity: Identity,
    /// The token service's identity (config `tokenServerPublicKey`/`tokenServerPrivateKey`).
    pub token_identity: Identity,
    /// The Privacy Pass key `k` (config `tokenServiceK`), shared with the token service.
    pub token_server: std::sync::Arc<TokenServer>,
    /// Go's `serverReporting.logMetricsToFile`: also write a human-readable report.
    pub log_metrics_to_file: bool,
    /// Go's free-form attributes (`description`, `autostart`, `storageType`...).
    pub attributes: BTreeMap<String, String>,
    /// Message store cap in MB, −1 for unlimited (Go keeps 250 messages per MB).
    pub max_storage_mbs: i64,
    /// Limits (our extension).
    pub limits: Limits,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("onion", &self.onion())
            .field("token_onion", &self.token_onion())
            .field("max_storage_mbs", &self.max_storage_mbs)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

fn decode_key(field: &'static str, text: &str, len: usize) -> Result<Vec<u8>, ConfigError> {
    let bytes = B64
        .decode(text.as_bytes())
        .map_err(|_| ConfigError::BadKey {
            field,
            problem: "not base64",
        })?;
    if bytes.len() != len {
        return Err(ConfigError::BadKey {
            field,
            problem: "wrong length",
        });
    }
    Ok(bytes)
}

fn identity_from(
    pub_field: &'static str,
    pub_text: &str,
    priv_field: &'static str,
    priv_text: &str,
) -> Result<Identity, ConfigError> {
    let public = decode_key(pub_field, pub_text, 32)?;
    let private = zeroize::Zeroizing::new(decode_key(priv_field, priv_text, 64)?);
    let id = Identity::from_go_private_key(&private).map_err(|_| ConfigError::BadKey {
        field: priv_field,
        problem: "private key does not match its embedded public key",
    })?;
    if id.public_key().as_bytes()[..] != public[..] {
        return Err(ConfigError::BadKey {
            field: pub_field,
            problem: "does not match the private key",
        });
    }
    Ok(id)
}

impl ServerConfig {
    /// A fresh configuration: two identities and a Privacy Pass key, as Go's
    /// `initDefaultConfig` makes them.
    pub fn generate<R: CryptoRngCore + ?Sized>(rng: &mut R) -> ServerConfig {
        ServerConfig {
            identity: Identity::generate(rng),
            token_identity: Identity::generate(rng),
            token_server: std::sync::Arc::new(TokenServer::generate(rng)),
            log_metrics_to_file: false,
            attributes: BTreeMap::new(),
            max_storage_mbs: -1,
            limits: Limits::default(),
        }
    }

    /// The token board's onion (the server's address).
    pub fn onion(&self) -> Onion {
        self.identity.onion()
    }

    /// The token service's onion.
    pub fn token_onion(&self) -> Onion {
        self.token_identity.onion()
    }

    /// The signed key bundle, as Go's `KeyBundle()` makes it.
    pub fn key_bundle(&self) -> KeyBundle {
        let y = self.token_server.public_key().to_bytes();
        let mut kb = KeyBundle::new_server_bundle(&self.onion(), &self.token_onion(), &y);
        kb.sign(&self.identity);
        kb
    }

    /// The `server:` bundle string.
    pub fn server_bundle(&self) -> String {
        self.key_bundle().to_server_string()
    }

    /// The `tofubundle:` string: the bundle and an invite to a brand-new group on this server.
    pub fn tofu_bundle<R: CryptoRngCore + ?Sized>(&self, group_name: &str, rng: &mut R) -> String {
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut());
        let invite = GroupInvite::new(group_name.to_string(), *key, self.onion());
        cwtch_model::TofuBundle {
            bundle: self.key_bundle(),
            invite,
        }
        .to_string()
    }

    /// Parse and validate Go's JSON.
    pub fn from_json(bytes: &[u8]) -> Result<ServerConfig, ConfigError> {
        let mut f: ConfigFile = serde_json::from_slice(bytes).map_err(ConfigError::Syntax)?;
        let identity = identity_from("publicKey", &f.public_key, "privateKey", &f.private_key)?;
        let token_identity = identity_from(
            "tokenServerPublicKey",
            &f.token_server_public_key,
            "tokenServerPrivateKey",
            &f.token_server_private_key,
        )?;
        let token_server = TokenServer::from_secret_base64(&f.token_service_k).map_err(|_| {
            ConfigError::BadKey {
                field: "tokenServiceK",
                problem: "not a canonical non-zero ristretto255 scalar",
            }
        })?;
        if identity.onion() == token_identity.onion() {
            return Err(ConfigError::BadKey {
                field: "tokenServerPublicKey",
                problem: "the token service must have its own key",
            });
        }
        Ok(ServerConfig {
            identity,
            token_identity,
            token_server: std::sync::Arc::new(token_server),
            log_metrics_to_file: f.server_reporting.log_metrics_to_file,
            attributes: std::mem::take(&mut f.attributes),
            max_storage_mbs: f.max_storage_mbs,
            limits: std::mem::take(&mut f.limits),
        })
    }

    /// Go's `json.MarshalIndent(config, "", "\t")` shape, plus our `limits`.
    pub fn to_json(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let f = ConfigFile {
            public_key: B64.encode(self.identity.public_key().as_bytes()),
            private_key: B64.encode(self.identity.to_go_private_key().as_ref()),
            token_server_public_key: B64.encode(self.token_identity.public_key().as_bytes()),
            token_server_private_key: B64.encode(self.token_identity.to_go_private_key().as_ref()),
            token_service_k: self.token_server.secret_base64().to_string(),
            server_reporting: Reporting {
                log_metrics_to_file: self.log_metrics_to_file,
            },
            attributes: self.attributes.clone(),
            max_storage_mbs: self.max_storage_mbs,
            limits: self.limits.clone(),
        };
        let pretty = || serde_json::ser::PrettyFormatter::with_indent(b"\t");
        // Serialising plain strings, ints and maps cannot fail. Measured first, so that the
        // buffer holding the keys is allocated once, at its size.
        let mut size = Counter(0);
        let _ = f.serialize(&mut serde_json::Serializer::with_formatter(
            &mut size,
            pretty(),
        ));
        let mut out = zeroize::Zeroizing::new(Vec::with_capacity(size.0 + 1));
        let _ = f.serialize(&mut serde_json::Serializer::with_formatter(
            &mut *out,
            pretty(),
        ));
        out.push(b'\n');
        debug_assert_eq!(out.len(), out.capacity());
        out
    }

    /// The path of the config file in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(CONFIG_FILE)
    }

    /// Load and validate the config in `dir`.
    pub fn load(dir: &Path) -> Result<ServerConfig, ConfigError> {
        let path = Self::path(dir);
        let bytes = zeroize::Zeroizing::new(std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ConfigError::Missing(path.clone())
            } else {
                ConfigError::Io {
                    path: path.clone(),
                    source: e,
                }
            }
        })?);
        ServerConfig::from_json(&bytes)
    }

    /// Write a new config into `dir` (0600), refusing to overwrite an existing one.
    pub fn save_new(&self, dir: &Path) -> Result<PathBuf, ConfigError> {
        let path = Self::path(dir);
        let io = |e| ConfigError::Io {
            path: path.clone(),
            source: e,
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                ConfigError::Exists(path.clone())
            } else {
                io(e)
            }
        })?;
        f.write_all(&self.to_json()).map_err(io)?;
        f.sync_all().map_err(io)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_key_checks() {
        let c = ServerConfig::generate(&mut rand_core::OsRng);
        let json = c.to_json();
        let text = std::str::from_utf8(&json).unwrap();
        // Go's field names, tab-indented.
        for f in [
            "\t\"publicKey\"",
            "\"privateKey\"",
            "\"tokenServerPublicKey\"",
            "\"tokenServerPrivateKey\"",
            "\"tokenServiceK\"",
            "\"serverReporting\"",
            "\"logMetricsToFile\"",
            "\"attributes\"",
            "\"maxStorageMBs\": -1",
        ] {
            assert!(text.contains(f), "{f} in {text}");
        }
        let back = ServerConfig::from_json(&json).unwrap();
        assert_eq!(back.onion(), c.onion());
        assert_eq!(back.token_onion(), c.token_onion());
        assert_eq!(back.token_server.public_key(), c.token_server.public_key());
        assert_eq!(back.limits, Limits::default());
        // The bundle verifies and names both onions and Y.
        let keys = c.key_bundle().verify().unwrap();
        assert_eq!(keys.server, c.onion());
        assert_eq!(keys.token_service, c.token_onion());
    }

    #[test]
    fn bad_keys_are_clear_errors() {
        let c = ServerConfig::generate(&mut rand_core::OsRng);
        let good: serde_json::Value = serde_json::from_slice(&c.to_json()).unwrap();
        let other = ServerConfig::generate(&mut rand_core::OsRng);
        let cases = [
            ("publicKey", serde_json::json!("not base64!")),
            ("privateKey", serde_json::json!("AAAA")),
            (
                "publicKey",
                serde_json::json!(B64.encode(other.identity.public_key().as_bytes())),
            ),
            ("tokenServiceK", serde_json::json!(B64.encode([0xffu8; 32]))),
        ];
        for (field, value) in cases {
            let mut v = good.clone();
            v[field] = value;
            let err = ServerConfig::from_json(&serde_json::to_vec(&v).unwrap()).unwrap_err();
            assert!(
                matches!(err, ConfigError::BadKey { field: f, .. } if f == field),
                "{field}: {err}"
            );
        }
        assert!(matches!(
            ServerConfig::from_json(b"{\"publicKey\":"),
            Err(ConfigError::Syntax(_))
        ));
    }

    /// A config as the Go server writes it (fields in Go's order, no `limits`), with keys from
    /// a real Go-format private key layout, loads with default limits.
    #[test]
    fn go_written_config_loads() {
        let c = ServerConfig::generate(&mut rand_core::OsRng);
        let go = format!(
            "{{\n\t\"maxBufferLines\": 0,\n\t\"publicKey\": \"{}\",\n\t\"privateKey\": \"{}\",\n\t\"tokenServerPublicKey\": \"{}\",\n\t\"tokenServerPrivateKey\": \"{}\",\n\t\"tokenServiceK\": \"{}\",\n\t\"serverReporting\": {{\n\t\t\"logMetricsToFile\": true\n\t}},\n\t\"attributes\": {{\n\t\t\"autostart\": \"true\",\n\t\t\"description\": \"my server\"\n\t}},\n\t\"maxStorageMBs\": 10\n}}",
            B64.encode(c.identity.public_key().as_bytes()),
            B64.encode(c.identity.to_go_private_key().as_ref()),
            B64.encode(c.token_identity.public_key().as_bytes()),
            B64.encode(c.token_identity.to_go_private_key().as_ref()),
            c.token_server.secret_base64().as_str(),
        );
        let back = ServerConfig::from_json(go.as_bytes()).unwrap();
        assert_eq!(back.onion(), c.onion());
        assert!(back.log_metrics_to_file);
        assert_eq!(back.max_storage_mbs, 10);
        assert_eq!(back.attributes["description"], "my server");
        assert_eq!(back.limits, Limits::default());
    }

    #[test]
    fn save_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let c = ServerConfig::generate(&mut rand_core::OsRng);
        let p = c.save_new(dir.path()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let before = std::fs::read(&p).unwrap();
        let other = ServerConfig::generate(&mut rand_core::OsRng);
        assert!(matches!(
            other.save_new(dir.path()),
            Err(ConfigError::Exists(_))
        ));
        assert_eq!(std::fs::read(&p).unwrap(), before);
        assert_eq!(ServerConfig::load(dir.path()).unwrap().onion(), c.onion());
    }
}
