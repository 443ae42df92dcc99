//! The token board (spec §5.2–§5.3): one handler per authenticated client connection.
//!
//! - Replay: `ReplayResult{NumMessages: N}`, then the N messages from the client's
//!   `LastCommit` (inclusive; everything if empty or unknown) as bare EGM JSON, then the
//!   connection is marked synced, then anything stored since the replay's snapshot is sent as
//!   `NewMessage` (a message may arrive twice; clients de-duplicate by signature, as with Go).
//! - Post: the token must be valid for `EGM.ToBytes() || this server's onion`; then the
//!   message is stored durably, acknowledged with `PostResult{Success:true}`, and broadcast as
//!   `NewMessage` to every synced connection. A bad or spent token gets `Success:false`.
//!   A valid token with an empty signature is dropped silently, as Go does.
//! - A malformed request, a missing payload, or exceeding the request rate closes this
//!   connection only. Unknown message types are ignored.

use std::sync::Arc;

use cwtch_model::tokenboard::{
    NewMessage, Payload, PostRequest, PostResult, ReplayRequest, ReplayResult,
};
use cwtch_model::Message;
use privacypass::{SpentToken, TokenServer};
use tapir::{Capability, Onion};
use tapir_service::{Connection, Service};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::config::Limits;
use crate::metrics::{inc, Gauge, Metrics};
use crate::store::{Added, MessageStore, SqliteSpentTokens, StoredMessage};

/// Set on a connection once its replay is done: it then receives broadcasts (Go's value).
pub const SYNCED_CAPABILITY: Capability = Capability("CwtchServerSyncedCapability");

const REPLAY_PAGE: usize = 256;

/// Everything a token-board handler needs.
pub(crate) struct Board {
    pub(crate) store: Arc<MessageStore>,
    pub(crate) spent: Arc<SqliteSpentTokens>,
    pub(crate) token_server: Arc<TokenServer>,
    pub(crate) onion: Onion,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) limits: Limits,
    pub(crate) service: Service,
}

/// Why a connection is being closed.
#[derive(Debug)]
enum Close {
    Gone,
    Malformed,
    Store,
}

/// A token bucket: `rate` per second sustained, `burst` above it.
struct Bucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u32, burst: u32) -> Bucket {
        Bucket {
            tokens: f64::from(burst.max(1)),
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(1)),
            last: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Board {
    /// Serve one connection until it closes.
    pub(crate) async fn serve(self: Arc<Self>, mut conn: Connection) {
        let _gauge = Gauge::up(&self.metrics.board_connections);
        let mut bucket = Bucket::new(self.limits.requests_per_second, self.limits.request_burst);
        while let Some(payload) = conn.recv().await {
            if !bucket.take() {
                inc(&self.metrics.closed_rate_limited);
                debug!("closing a connection over the request rate");
                break;
            }
            let r = match Message::from_json(&payload).and_then(Message::into_payload) {
                Ok(Payload::ReplayRequest(r)) => self.replay(&conn, r).await,
                Ok(Payload::PostRequest(p)) => self.post(&conn, p).await,
                Ok(_) => Ok(()), // Go ignores every other type.
                Err(_) => Err(Close::Malformed),
            };
            match r {
                Ok(()) => {}
                Err(Close::Malformed) => {
                    inc(&self.metrics.closed_malformed);
                    debug!("closing a connection that sent a malformed request");
                    break;
                }
                Err(why) => {
                    debug!(?why, "closing connection");
                    break;
                }
            }
        }
        conn.close();
    }

    async fn send(&self, conn: &Connection, bytes: Vec<u8>) -> Result<(), Close> {
        conn.send(bytes).await.map_err(|_| Close::Gone)
    }

    async fn replay(&self, conn: &Connection, req: ReplayRequest) -> Result<(), Close> {
        let last = req.last_commit.unwrap_or_default();
        if last.len() > self.limits.max_last_commit_bytes {
            return Err(Close::Malformed);
        }
        // A blocking thread reads one snapshot page by page; we send as the client reads.
        let store = self.store.clone();
        let (head_tx, head_rx) = oneshot::channel();
        let (tx, mut rx) = mpsc::channel::<Vec<StoredMessage>>(2);
        tokio::task::spawn_blocking(move || {
            let mut r = match store.replay(Some(&last)) {
                Ok(r) => r,
                Err(e) => {
                    warn!(error = %e, "replay failed");
                    return;
                }
            };
            if head_tx.send((r.count, r.snapshot_end())).is_err() {
                return;
            }
            loop {
                match r.next_page(REPLAY_PAGE) {
                    Ok(p) if p.is_empty() => return,
                    Ok(p) => {
                        if tx.blocking_send(p).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "replay failed");
                        return;
                    }
                }
            }
        });
        let (count, end) = head_rx.await.map_err(|_| Close::Store)?;
        // Counted as it is answered, before anything is sent: a client that has read its
        // replay (even an empty one) then always finds it counted. Counting at the end raced
        // with the client, which stops reading after the last replayed message.
        inc(&self.metrics.replays);
        let head = Message::from(Payload::ReplayResult(ReplayResult {
            num_messages: i64::try_from(count).unwrap_or(i64::MAX),
        }));
        self.send(conn, head.to_json()).await?;
        let mut sent = 0u64;
        while let Some(page) = rx.recv().await {
            for m in page {
                self.send(conn, m.egm.to_json()).await?;
                sent += 1;
            }
        }
        if sent != count {
            // The store failed mid-replay: the client expects `count` messages; close rather
            // than let it read later frames as replayed messages.
            return Err(Close::Store);
        }
        conn.handle().grant(SYNCED_CAPABILITY);
        // Anything stored since the snapshot (it may also reach the client as a broadcast).
        let mut after = end;
        loop {
            let store = self.store.clone();
            let page = tokio::task::spawn_blocking(move || store.after(after, REPLAY_PAGE))
                .await
                .map_err(|_| Close::Store)?
                .map_err(|_| Close::Store)?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for m in page {
                let msg = Message::from(Payload::NewMessage(NewMessage { egm: m.egm }));
                self.send(conn, msg.to_json()).await?;
            }
        }
        Ok(())
    }

    async fn reply(&self, conn: &Connection, success: bool) -> Result<(), Close> {
        let m = Message::from(Payload::PostResult(PostResult { success }));
        self.send(conn, m.to_json()).await
    }

    async fn post(&self, conn: &Connection, req: PostRequest) -> Result<(), Close> {
        let egm = req.egm;
        let too_big = egm.ciphertext.as_ref().map_or(0, Vec::len)
            > self.limits.max_ciphertext_bytes
            || egm.signature.as_ref().map_or(0, Vec::len) > self.limits.max_last_commit_bytes;
        let token = match (req.token.t.as_deref(), req.token.mac.as_deref()) {
            (Some(t), Some(mac)) => match (<[u8; 32]>::try_from(t), <[u8; 64]>::try_from(mac)) {
                (Ok(t), Ok(mac)) => Some(SpentToken { t, mac }),
                _ => None,
            },
            _ => None,
        };
        let Some(token) = token.filter(|_| !too_big) else {
            inc(&self.metrics.posts_rejected);
            return self.reply(conn, false).await;
        };
        // The token is bound to exactly these bytes: the EGM as Go marshals it, and our onion.
        let mut bound = egm.to_bytes();
        bound.extend_from_slice(self.onion.as_str().as_bytes());
        let (ts, spent) = (self.token_server.clone(), self.spent.clone());
        let redeemed = tokio::task::spawn_blocking(move || ts.redeem(&token, &bound, &*spent))
            .await
            .map_err(|_| Close::Store)?;
        if let Err(e) = redeemed {
            if matches!(e, privacypass::Error::Store(_)) {
                warn!(error = %e, "spent-token store failed");
            }
            inc(&self.metrics.posts_rejected);
            return self.reply(conn, false).await;
        }
        inc(&self.metrics.tokens_spent);
        let signature = egm.signature.clone().unwrap_or_default();
        if signature.is_empty() {
            // Go drops these silently, without a reply.
            return Ok(());
        }
        let ciphertext = egm.ciphertext.clone().unwrap_or_default();
        let store = self.store.clone();
        let added = tokio::task::spawn_blocking(move || store.add(&signature, &ciphertext))
            .await
            .map_err(|_| Close::Store)?;
        match added {
            Ok(Added::Stored) => {
                inc(&self.metrics.posts_accepted);
                self.reply(conn, true).await?;
                let m = Message::from(Payload::NewMessage(NewMessage { egm }));
                self.service.broadcast(&m.to_json(), SYNCED_CAPABILITY);
            }
            Ok(Added::Duplicate) => {
                // Already stored (and broadcast) before: acknowledge, don't repeat.
                inc(&self.metrics.posts_duplicate);
                self.reply(conn, true).await?;
            }
            Err(e) => {
                warn!(error = %e, "message store failed; refusing the post");
                inc(&self.metrics.posts_rejected);
                self.reply(conn, false).await?;
            }
        }
        Ok(())
    }
}
