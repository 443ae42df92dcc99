//! The inbound side of both tapir chains (authenticated, and PoW+token) fed arbitrary bytes:
//! the state machines must fail cleanly, never panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use privacypass::TokenServer;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tapir::packet::{encode_plain, MAX_PLAINTEXT_PAYLOAD};
use tapir::{ApplicationChain, Connection, Direction, Identity};

fn server() -> &'static Arc<TokenServer> {
    static S: OnceLock<Arc<TokenServer>> = OnceLock::new();
    S.get_or_init(|| Arc::new(TokenServer::generate(&mut ChaCha20Rng::seed_from_u64(1))))
}

fuzz_target!(|data: &[u8]| {
    let id = Arc::new(Identity::from_seed(&[2u8; 32]));
    let chains = [
        ApplicationChain::authenticated(),
        ApplicationChain::token_server(server().clone()),
    ];
    for chain in chains {
        let mut c = Connection::new(
            id.clone(),
            Direction::Inbound,
            chain,
            Box::new(ChaCha20Rng::seed_from_u64(3)),
        );
        c.start().expect("starts");
        // Raw bytes, and the same bytes as well-framed payloads (to get past the framing).
        let _ = c.receive(data);
        let mut c2 = Connection::new(
            id.clone(),
            Direction::Inbound,
            ApplicationChain::authenticated(),
            Box::new(ChaCha20Rng::seed_from_u64(4)),
        );
        c2.start().expect("starts");
        for part in data.split(|&b| b == 0xff) {
            let part = &part[..part.len().min(MAX_PLAINTEXT_PAYLOAD)];
            if c2.receive(&encode_plain(part).expect("fits")).is_err() {
                assert!(c2.is_closed());
                break;
            }
        }
    }
});
