//! The server's `serverConfig.json` (spec §5.6): operator input, possibly copied from a Go
//! server or edited by hand.
//!
//! Also an encrypted config file (as a hosting app keeps it, `cwtch_server::encrypted`): any
//! bytes are opened or refused without a panic, and whatever is sealed opens to itself.
//!
//! Asserts: a config that loads re-encodes to a file that loads to the same identities, keys,
//! attributes, storage cap and limits, and encoding is stable after one round; the limits give
//! usable timeouts.
#![no_main]

use std::sync::OnceLock;

use cwtch_server::encrypted::{self, ConfigKey};
use cwtch_server::ServerConfig;
use libfuzzer_sys::fuzz_target;
use rand_chacha::rand_core::SeedableRng;

fuzz_target!(|data: &[u8]| {
    // Derived once: PBKDF2 with 4096 rounds per input would be all the fuzzer did.
    static KEY: OnceLock<ConfigKey> = OnceLock::new();
    let key = KEY.get_or_init(|| ConfigKey::derive("fuzz", b"salt"));
    let _ = encrypted::open(data, key);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(data.len() as u64);
    let sealed = encrypted::seal(data, key, &mut rng);
    assert_eq!(
        encrypted::open(&sealed, key).as_deref().map(Vec::as_slice),
        Some(data)
    );

    let Ok(c) = ServerConfig::from_json(data) else {
        return;
    };
    let once = c.to_json();
    let again = ServerConfig::from_json(&once).expect("our own config loads");
    assert_eq!(again.onion(), c.onion());
    assert_eq!(again.token_onion(), c.token_onion());
    assert_ne!(c.onion(), c.token_onion());
    assert_eq!(
        again.token_server.public_key().to_bytes(),
        c.token_server.public_key().to_bytes()
    );
    assert_eq!(again.log_metrics_to_file, c.log_metrics_to_file);
    assert_eq!(again.attributes, c.attributes);
    assert_eq!(again.max_storage_mbs, c.max_storage_mbs);
    assert_eq!(again.limits, c.limits);
    assert_eq!(*again.to_json(), *once);
    assert!(!c.limits.handshake_timeout().is_zero());
    let _ = c.limits.idle_timeout();
    let _ = c.server_bundle();
});
