#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod app;
pub mod apps;
pub mod capability;
pub mod compat;
pub mod connection;
mod error;
pub mod packet;

use std::sync::Arc;

pub use app::{AppContext, Application, ApplicationChain, Step};
pub use capability::{
    Capabilities, Capability, AUTHENTICATION_CAPABILITY, HAS_TOKENS_CAPABILITY,
    SUCCESSFUL_POW_CAPABILITY,
};
pub use connection::{Connection, Direction, Event};
pub use error::Error;
pub use privacypass::{Prng, Transcript};
pub use torv3::{Identity, Onion, PublicKey};

use apps::auth::AuthApp;
use apps::pow::PowApp;
use apps::token::{TokenClientApp, TokenServerApp};

impl ApplicationChain {
    /// The chain of every authenticated tapir service (peers, the Cwtch token board):
    /// the auth app, which must grant [`AUTHENTICATION_CAPABILITY`].
    pub fn authenticated() -> ApplicationChain {
        ApplicationChain::new().then(AuthApp::new(), AUTHENTICATION_CAPABILITY)
    }

    /// The token service's chain (server side): proof-of-work, then signing a batch.
    /// No auth app: token-service connections are anonymous (spec §4).
    pub fn token_server(server: Arc<privacypass::TokenServer>) -> ApplicationChain {
        ApplicationChain::new()
            .then(PowApp::new(), SUCCESSFUL_POW_CAPABILITY)
            .then_unchecked(TokenServerApp::new(server))
    }

    /// A token client's chain: solve the proof-of-work, then obtain `batch_size` tokens
    /// verified against the server's key `y`.
    pub fn token_client(y: privacypass::PublicKey, batch_size: usize) -> ApplicationChain {
        ApplicationChain::new()
            .then(PowApp::new(), SUCCESSFUL_POW_CAPABILITY)
            .then(TokenClientApp::new(y, batch_size), HAS_TOKENS_CAPABILITY)
    }
}
