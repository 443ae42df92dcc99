//! The proof-of-work application (spec §4.1): the dialler must find a 32-byte `solution` with
//! `SHA3-256(solution || challenge)` starting with [`POW_DIFFICULTY_BYTES`] zero bytes, where
//! the challenge is a commitment to the connection transcript after the server's seed.
//!
//! The server's seed is ours to choose (a Go client only appends it to the transcript): we
//! send 56 fresh random base32 characters per connection, shaped like the onion Go sends, so
//! that solutions cannot be precomputed.

use data_encoding::BASE32_NOPAD;
use sha3::{Digest, Sha3_256};

use crate::app::{AppContext, Application, Step};
use crate::capability::SUCCESSFUL_POW_CAPABILITY;
use crate::compat::{
    POW_CHALLENGE, POW_DIFFICULTY_BYTES, POW_PRNG, POW_PROTOCOL, POW_SEED, POW_SOLUTION,
    POW_SOLUTION_LEN,
};
use crate::Error;
use privacypass::Prng;

/// Whether `solution` solves the puzzle for `challenge`.
pub fn is_solution(challenge: &[u8; 64], solution: &[u8]) -> bool {
    if solution.len() != POW_SOLUTION_LEN {
        return false;
    }
    let mut h = Sha3_256::new();
    h.update(solution);
    h.update(challenge);
    h.finalize()[..POW_DIFFICULTY_BYTES].iter().all(|&b| b == 0)
}

/// Search for a solution the way Go does: candidates are successive scalars from the
/// transcript PRNG, so a Go client and we find the same one.
pub fn solve(challenge: &[u8; 64], prng: &mut Prng) -> [u8; POW_SOLUTION_LEN] {
    loop {
        let candidate = prng.next_scalar().to_bytes();
        if is_solution(challenge, &candidate) {
            return candidate;
        }
    }
}

/// A fresh per-connection seed: 35 random bytes as 56 lower-case base32 characters.
fn fresh_seed(cx: &mut AppContext<'_>) -> Vec<u8> {
    let mut raw = [0u8; 35];
    cx.rng().fill_bytes(&mut raw);
    BASE32_NOPAD.encode(&raw).to_ascii_lowercase().into_bytes()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    AwaitingSeed,
    AwaitingSolution,
    Done,
}

/// The proof-of-work application, usable in both roles.
#[derive(Debug)]
pub struct PowApp {
    state: State,
}

impl PowApp {
    /// A fresh PoW app for one connection.
    pub fn new() -> PowApp {
        PowApp {
            state: State::Start,
        }
    }
}

impl Default for PowApp {
    fn default() -> Self {
        PowApp::new()
    }
}

impl Application for PowApp {
    fn name(&self) -> &'static str {
        "proof-of-work"
    }

    fn start(&mut self, cx: &mut AppContext<'_>) -> Result<Step, Error> {
        cx.transcript().new_protocol(POW_PROTOCOL);
        if cx.is_outbound() {
            self.state = State::AwaitingSeed;
        } else {
            let seed = fresh_seed(cx);
            cx.send(&seed)?;
            cx.transcript().append(POW_SEED, &seed);
            self.state = State::AwaitingSolution;
        }
        Ok(Step::Continue)
    }

    fn receive(&mut self, cx: &mut AppContext<'_>, payload: &[u8]) -> Result<Step, Error> {
        let state = std::mem::replace(&mut self.state, State::Done);
        let t = cx.transcript();
        match state {
            State::AwaitingSeed => {
                t.append(POW_SEED, payload);
                let challenge = t.commit(POW_CHALLENGE);
                let mut prng = t.commit_prng(POW_PRNG);
                let solution = solve(&challenge, &mut prng);
                t.append(POW_SOLUTION, &solution);
                cx.send(&solution)?;
                cx.grant(SUCCESSFUL_POW_CAPABILITY);
                Ok(Step::Done)
            }
            State::AwaitingSolution => {
                let challenge = t.commit(POW_CHALLENGE);
                // Both sides draw the PRNG commitment so the transcripts stay in step.
                let _ = t.commit_prng(POW_PRNG);
                if !is_solution(&challenge, payload) {
                    return Err(Error::InvalidPow);
                }
                t.append(POW_SOLUTION, payload);
                cx.grant(SUCCESSFUL_POW_CAPABILITY);
                Ok(Step::Done)
            }
            State::Start | State::Done => Err(Error::NotEstablished),
        }
    }
}
