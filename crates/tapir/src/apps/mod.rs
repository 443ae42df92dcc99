//! The applications tapir ships: auth, proof-of-work, tokens.

pub mod auth;
pub mod pow;
pub mod token;
