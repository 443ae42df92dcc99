//! The token application (spec §4.2): after proof-of-work, a client obtains a batch of
//! blinded tokens signed by the server, with a batch DLEQ proof bound to the transcript.

use std::sync::Arc;

use privacypass::{
    blind_batch, blinded_batch_from_json, blinded_batch_to_json, unblind_batch, BlindedToken,
    PublicKey, SignedBatchWithProof, TokenServer, UnsignedToken,
};

use crate::app::{AppContext, Application, Step};
use crate::capability::HAS_TOKENS_CAPABILITY;
use crate::compat::TOKEN_PROTOCOL;
use crate::connection::Event;
use crate::Error;

/// The client side: asks for `batch_size` tokens and verifies the server's proof against
/// the server's published key `Y`.
pub struct TokenClientApp {
    server_key: PublicKey,
    batch_size: usize,
    pending: Option<(Vec<UnsignedToken>, Vec<BlindedToken>)>,
}

impl TokenClientApp {
    /// A client for the token service whose key bundle published `server_key`.
    pub fn new(server_key: PublicKey, batch_size: usize) -> TokenClientApp {
        TokenClientApp {
            server_key,
            batch_size,
            pending: None,
        }
    }
}

impl Application for TokenClientApp {
    fn name(&self) -> &'static str {
        "token-client"
    }

    fn start(&mut self, cx: &mut AppContext<'_>) -> Result<Step, Error> {
        cx.transcript().new_protocol(TOKEN_PROTOCOL);
        let (unsigned, blinded) = blind_batch(self.batch_size, cx.rng());
        cx.send(&blinded_batch_to_json(&blinded))?;
        self.pending = Some((unsigned, blinded));
        Ok(Step::Continue)
    }

    fn receive(&mut self, cx: &mut AppContext<'_>, payload: &[u8]) -> Result<Step, Error> {
        let (unsigned, blinded) = self.pending.take().ok_or(Error::NotEstablished)?;
        let batch = SignedBatchWithProof::from_json(payload)?;
        let tokens = unblind_batch(
            unsigned,
            &blinded,
            &batch,
            &self.server_key,
            cx.transcript(),
        )?;
        cx.grant(HAS_TOKENS_CAPABILITY);
        cx.emit(Event::Tokens(tokens));
        Ok(Step::Done)
    }
}

/// The server side: signs whatever batch the client sends (within limits) and proves it.
pub struct TokenServerApp {
    server: Arc<TokenServer>,
}

impl TokenServerApp {
    /// A server app signing with `server`.
    pub fn new(server: Arc<TokenServer>) -> TokenServerApp {
        TokenServerApp { server }
    }
}

impl Application for TokenServerApp {
    fn name(&self) -> &'static str {
        "token-server"
    }

    fn start(&mut self, cx: &mut AppContext<'_>) -> Result<Step, Error> {
        cx.transcript().new_protocol(TOKEN_PROTOCOL);
        Ok(Step::Continue)
    }

    fn receive(&mut self, cx: &mut AppContext<'_>, payload: &[u8]) -> Result<Step, Error> {
        let blinded = blinded_batch_from_json(payload)?;
        let (transcript, rng) = cx.transcript_and_rng();
        let batch = self.server.sign_batch(&blinded, transcript, rng)?;
        cx.send(&batch.to_json())?;
        Ok(Step::Done)
    }
}
