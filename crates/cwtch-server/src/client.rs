//! A client of a Cwtch server, built from our own crates: token acquisition (proof-of-work +
//! token app on the token service), posting, replay and live messages on the token board.
//!
//! Every connection uses a fresh ephemeral identity (spec §2.6): the server cannot link a
//! client's connections to each other or to a profile.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use connectivity::Acn;
use cwtch_model::tokenboard::{Payload, PostRequest, ReplayRequest, SpentToken};
use cwtch_model::{EncryptedGroupMessage, KeyBundle, Message, ServerKeys};
use privacypass::Token;
use tapir::{ApplicationChain, Identity, Onion};
use tapir_service::{Connection, Service, ServiceConfig};

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server's key bundle did not verify.
    #[error("server bundle: {0}")]
    Bundle(#[from] cwtch_model::Error),
    /// The privacy-pass key in the bundle is not a valid point.
    #[error("server bundle: bad privacy pass key")]
    BadPrivacyPassKey,
    /// Connecting or the tapir protocol failed.
    #[error(transparent)]
    Service(#[from] tapir_service::Error),
    /// The server closed the connection.
    #[error("server closed the connection")]
    Closed,
    /// The server sent something we could not parse.
    #[error("malformed reply from server")]
    Malformed,
    /// The server did not answer in time.
    #[error("server did not answer within {0:?}")]
    Timeout(Duration),
}

/// A server, as known from its verified key bundle.
#[derive(Clone)]
pub struct ServerClient {
    acn: Arc<dyn Acn>,
    keys: ServerKeys,
    y: privacypass::PublicKey,
    /// How long to wait for any single reply.
    pub timeout: Duration,
}

impl std::fmt::Debug for ServerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerClient")
            .field("server", &self.keys.server)
            .finish_non_exhaustive()
    }
}

fn ephemeral(acn: &Arc<dyn Acn>, timeout: Duration) -> Service {
    Service::new(
        Arc::new(Identity::generate(&mut rand_core::OsRng)),
        acn.clone(),
        ServiceConfig {
            handshake_timeout: timeout,
            ..ServiceConfig::default()
        },
    )
}

impl ServerClient {
    /// A client for the server whose bundle this is (verified first).
    pub fn new(bundle: &KeyBundle, acn: Arc<dyn Acn>) -> Result<ServerClient, ClientError> {
        let keys = bundle.verify()?;
        let y = privacypass::PublicKey::from_bytes(&keys.privacy_pass_key_bytes()?)
            .map_err(|_| ClientError::BadPrivacyPassKey)?;
        Ok(ServerClient {
            acn,
            keys,
            y,
            timeout: Duration::from_secs(120),
        })
    }

    /// The server's onion.
    pub fn onion(&self) -> &Onion {
        &self.keys.server
    }

    /// Obtain `n` tokens from the token service (proof-of-work, then a verified batch).
    pub async fn fetch_tokens(&self, n: usize) -> Result<Vec<Token>, ClientError> {
        let svc = ephemeral(&self.acn, self.timeout);
        let mut conn = svc
            .connect(
                &self.keys.token_service,
                ApplicationChain::token_client(self.y, n),
            )
            .await?;
        let tokens = conn.take_tokens();
        drop(conn);
        svc.shutdown().await;
        Ok(tokens)
    }

    /// Open an authenticated token-board connection.
    pub async fn connect(&self) -> Result<BoardClient, ClientError> {
        let svc = ephemeral(&self.acn, self.timeout);
        let conn = svc
            .connect(&self.keys.server, ApplicationChain::authenticated())
            .await?;
        Ok(BoardClient {
            _svc: svc,
            conn,
            server: self.keys.server.clone(),
            live: VecDeque::new(),
            timeout: self.timeout,
        })
    }
}

/// The bytes a token spend is bound to when posting `egm` to `server` (spec §4.3).
pub fn post_binding(egm: &EncryptedGroupMessage, server: &Onion) -> Vec<u8> {
    let mut data = egm.to_bytes();
    data.extend_from_slice(server.as_str().as_bytes());
    data
}

/// An authenticated connection to a server's token board.
pub struct BoardClient {
    _svc: Service,
    conn: Connection,
    server: Onion,
    live: VecDeque<EncryptedGroupMessage>,
    timeout: Duration,
}

impl std::fmt::Debug for BoardClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoardClient")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl BoardClient {
    async fn recv(&mut self) -> Result<Vec<u8>, ClientError> {
        match tokio::time::timeout(self.timeout, self.conn.recv()).await {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(ClientError::Closed),
            Err(_) => Err(ClientError::Timeout(self.timeout)),
        }
    }

    /// Send raw bytes (tests: malformed requests).
    pub async fn send_raw(&self, payload: Vec<u8>) -> Result<(), ClientError> {
        Ok(self.conn.send(payload).await?)
    }

    /// Receive raw bytes.
    pub async fn recv_raw(&mut self) -> Result<Vec<u8>, ClientError> {
        self.recv().await
    }

    /// Post `egm` paying with `token`, bound to this server. Returns the server's verdict.
    pub async fn post(
        &mut self,
        token: &Token,
        egm: &EncryptedGroupMessage,
    ) -> Result<bool, ClientError> {
        let spent = token.spend(&post_binding(egm, &self.server));
        self.post_spent(spent.t.to_vec(), spent.mac.to_vec(), egm)
            .await
    }

    /// Post with an explicit spent token (tests: tokens bound elsewhere, replays).
    pub async fn post_spent(
        &mut self,
        t: Vec<u8>,
        mac: Vec<u8>,
        egm: &EncryptedGroupMessage,
    ) -> Result<bool, ClientError> {
        let m = Message::from(Payload::PostRequest(PostRequest {
            token: SpentToken {
                t: Some(t),
                mac: Some(mac),
            },
            egm: egm.clone(),
        }));
        self.conn.send(m.to_json()).await?;
        loop {
            let p = self.recv().await?;
            match Message::from_json(&p).and_then(Message::into_payload) {
                Ok(Payload::PostResult(r)) => return Ok(r.success),
                Ok(Payload::NewMessage(n)) => self.live.push_back(n.egm),
                _ => return Err(ClientError::Malformed),
            }
        }
    }

    /// Replay from `last_commit` (the signature of the last message seen; `None` for all).
    /// Afterwards the connection is synced and receives new messages.
    pub async fn replay(
        &mut self,
        last_commit: Option<&[u8]>,
    ) -> Result<Vec<EncryptedGroupMessage>, ClientError> {
        let m = Message::from(Payload::ReplayRequest(ReplayRequest {
            last_commit: last_commit.map(<[u8]>::to_vec),
        }));
        self.conn.send(m.to_json()).await?;
        let n = loop {
            let p = self.recv().await?;
            match Message::from_json(&p).and_then(Message::into_payload) {
                Ok(Payload::ReplayResult(r)) => {
                    break usize::try_from(r.num_messages).map_err(|_| ClientError::Malformed)?
                }
                Ok(Payload::NewMessage(n)) => self.live.push_back(n.egm),
                _ => return Err(ClientError::Malformed),
            }
        };
        let mut out = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            let p = self.recv().await?;
            out.push(EncryptedGroupMessage::from_json(&p).map_err(|_| ClientError::Malformed)?);
        }
        Ok(out)
    }

    /// The next live message (a `NewMessage` broadcast), after a replay.
    pub async fn next_message(&mut self) -> Result<EncryptedGroupMessage, ClientError> {
        if let Some(m) = self.live.pop_front() {
            return Ok(m);
        }
        loop {
            let p = self.recv().await?;
            match Message::from_json(&p).and_then(Message::into_payload) {
                Ok(Payload::NewMessage(n)) => return Ok(n.egm),
                Ok(_) => continue,
                Err(_) => return Err(ClientError::Malformed),
            }
        }
    }

    /// Whether the server closed the connection (waits at most the client timeout).
    pub async fn closed_by_server(&mut self) -> bool {
        loop {
            match self.recv().await {
                Err(ClientError::Closed) => return true,
                Err(_) => return false,
                Ok(_) => continue,
            }
        }
    }
}
