//! Shared helpers: a server's exact bytes, real tokens from an in-memory token server.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use cwtch_board::{BoardMachine, Event, MachineConfig};
use cwtch_model::tokenboard::{NewMessage, Payload, PostResult, ReplayResult};
use cwtch_model::{EncryptedGroupMessage, Message};
use privacypass::{blind_batch, unblind_batch, Token, TokenServer, Transcript, MAX_BATCH_SIZE};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tapir::{Identity, Onion};

pub fn onion() -> Onion {
    Identity::from_seed(&[7; 32]).onion()
}

pub fn egm(i: u32) -> EncryptedGroupMessage {
    EncryptedGroupMessage {
        ciphertext: Some(format!("ciphertext {i}").into_bytes()),
        signature: Some(sig(i)),
    }
}

pub fn sig(i: u32) -> Vec<u8> {
    format!("signature {i:06}").into_bytes()
}

pub fn replay_result(n: i64) -> Vec<u8> {
    Message::from(Payload::ReplayResult(ReplayResult { num_messages: n })).to_json()
}

pub fn bare(m: &EncryptedGroupMessage) -> Vec<u8> {
    m.to_json()
}

pub fn new_message(m: &EncryptedGroupMessage) -> Vec<u8> {
    Message::from(Payload::NewMessage(NewMessage { egm: m.clone() })).to_json()
}

pub fn post_result(success: bool) -> Vec<u8> {
    Message::from(Payload::PostResult(PostResult { success })).to_json()
}

fn transcript() -> Transcript {
    let mut t = Transcript::new("tapir-transcript");
    t.new_protocol("token-app");
    t
}

/// `n` real tokens signed by `server` (in batches of at most 150).
pub fn tokens(server: &TokenServer, n: usize, seed: u64) -> Vec<Token> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    while out.len() < n {
        let k = (n - out.len()).min(MAX_BATCH_SIZE);
        let (unsigned, blinded) = blind_batch(k, &mut rng);
        let batch = server
            .sign_batch(&blinded, &mut transcript(), &mut rng)
            .unwrap();
        out.extend(
            unblind_batch(
                unsigned,
                &blinded,
                &batch,
                &server.public_key(),
                &mut transcript(),
            )
            .unwrap(),
        );
    }
    out
}

pub fn token_server() -> TokenServer {
    TokenServer::generate(&mut ChaCha20Rng::seed_from_u64(99))
}

pub fn machine(cursor: Option<&[u8]>) -> BoardMachine {
    BoardMachine::new(
        onion(),
        cursor.map(|c| cwtch_board::Cursor::new(c.to_vec()).unwrap()),
        MachineConfig {
            low_water: 0,
            ..MachineConfig::default()
        },
    )
}

pub fn events(m: &mut BoardMachine) -> Vec<Event> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

pub fn transmits(m: &mut BoardMachine) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| m.poll_transmit()).collect()
}
