//! The proof-of-work server fed an arbitrary solution: rejected unless it really solves the
//! puzzle, never a panic.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tapir::apps::pow::{is_solution, PowApp};
use tapir::packet::{encode_plain, MAX_PLAINTEXT_PAYLOAD};
use tapir::{ApplicationChain, Connection, Direction, Identity, SUCCESSFUL_POW_CAPABILITY};

fuzz_target!(|data: &[u8]| {
    let _ = is_solution(&[0u8; 64], data);
    let mut s = Connection::new(
        Arc::new(Identity::from_seed(&[2u8; 32])),
        Direction::Inbound,
        ApplicationChain::new().then(PowApp::new(), SUCCESSFUL_POW_CAPABILITY),
        Box::new(ChaCha20Rng::seed_from_u64(5)),
    );
    s.start().expect("starts");
    let data = &data[..data.len().min(MAX_PLAINTEXT_PAYLOAD)];
    match s.receive(&encode_plain(data).expect("fits")) {
        Ok(()) => assert!(s.has_capability(SUCCESSFUL_POW_CAPABILITY)),
        Err(_) => assert!(s.is_closed() && !s.has_capability(SUCCESSFUL_POW_CAPABILITY)),
    }
});
