//! The server's `serverConfig.json` (spec §5.6): operator input, possibly copied from a Go
//! server or edited by hand.
//!
//! Asserts: a config that loads re-encodes to a file that loads to the same identities, keys,
//! attributes, storage cap and limits, and encoding is stable after one round; the limits give
//! usable timeouts.
#![no_main]

use cwtch_server::ServerConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
