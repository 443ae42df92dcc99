//! The token board (spec §5.2–§5.3): one handler per authenticated client connection.
//!
//! - Replay: `ReplayResult{NumMessages: N}`, then the N messages from the client's
//!   `LastCommit` (inclusive; everything if empty or unknown) as bare EGM JSON, then the
//!   connection is marked synced, then anything stored since the replay's snapshot is sent as
//!   `NewMessage` (a message may arrive twice; clients de-duplicate by signature, as with Go).
//! - Post: the token's MAC must be valid for `EGM.ToBytes() || this server's onion` (checked
//!   here, on the connection's task); then the post goes to the group commit
//!   ([`crate::store::GroupCommit`]), which records the token spent and stores the message in
//!   one transaction with the posts of other connections. Only once that is on disk is it
//!   acknowledged with `PostResult{Success:true}` and broadcast as `NewMessage` to every
//!   synced connection. A bad or spent token gets `Success:false`. A valid token with an
//!   empty signature is spent and the message dropped without a reply, as Go does. Each
//!   connection's posts are handled one at a time, so its results come in request order.
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
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::config::Limits;
use crate::metrics::{inc, Gauge, Metrics};
use crate::store::{GroupCommit, MessageStore, Outcome, Post};

/// Set on a connection once its replay is done: it then receives broadcasts (Go's value).
pub const SYNCED_CAPABILITY: Capability = Capability("CwtchServerSyncedCapability");

const REPLAY_PAGE: usize = 256;

/// Everything a token-board handler needs.
pub(crate) struct Board {
    pub(crate) store: Arc<MessageStore>,
    pub(crate) commits: GroupCommit,
    pub(crate) token_server: Arc<TokenServer>,
    pub(crate) onion: Onion,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) limits: Limits,
    pub(crate) service: Service,
    /// Replays served at once ([`Limits::max_concurrent_replays`]).
    pub(crate) replays: Arc<tokio::sync::Semaphore>,
}

/// Why a connection is being closed.
#[derive(Debug)]
enum Close {
    Gone,
    Malformed,
    Store,
    /// A replay page was not read in time ([`Limits::replay_page_timeout_secs`]).
    Slow,
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
                Err(Close::Slow) => {
                    inc(&self.metrics.closed_slow);
                    debug!("closing a connection that read its replay too slowly");
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
        // One snapshot, read page by page on the blocking pool: a thread for each page's read,
        // none while the client reads (a slow reader must not hold a thread), and a bounded
        // number of replays at once (each holds its snapshot).
        let _permit = self
            .replays
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Close::Gone)?;
        let store = self.store.clone();
        let mut replay = tokio::task::spawn_blocking(move || store.replay(Some(&last)))
            .await
            .map_err(|_| Close::Store)?
            .map_err(|e| {
                warn!(error = %e, "replay failed");
                Close::Store
            })?;
        let (count, end) = (replay.count, replay.snapshot_end());
        // Counted as it is answered, before anything is sent: a client that has read its
        // replay (even an empty one) then always finds it counted. Counting at the end raced
        // with the client, which stops reading after the last replayed message.
        inc(&self.metrics.replays);
        let head = Message::from(Payload::ReplayResult(ReplayResult {
            num_messages: i64::try_from(count).unwrap_or(i64::MAX),
        }));
        self.send(conn, head.to_json()).await?;
        let mut sent = 0u64;
        loop {
            let (back, page) = tokio::task::spawn_blocking(move || {
                let page = replay.next_page(REPLAY_PAGE);
                (replay, page)
            })
            .await
            .map_err(|_| Close::Store)?;
            replay = back;
            let page = match page {
                Ok(p) if p.is_empty() => break,
                Ok(p) => p,
                Err(e) => {
                    warn!(error = %e, "replay failed");
                    break;
                }
            };
            let n = page.len() as u64;
            let send_page = async {
                for m in page {
                    self.send(conn, m.egm.to_json()).await?;
                }
                Ok::<(), Close>(())
            };
            match self.limits.replay_page_timeout() {
                Some(t) => tokio::time::timeout(t, send_page)
                    .await
                    .map_err(|_| Close::Slow)??,
                None => send_page.await?,
            }
            sent += n;
        }
        drop(replay);
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
        // The MAC only (one hash to the group and one scalar multiplication: short enough for
        // this task). The spend is recorded, and a second spend refused, by the group commit,
        // in the same transaction as the message.
        if self.token_server.verify(&token, &bound).is_err() {
            inc(&self.metrics.posts_rejected);
            return self.reply(conn, false).await;
        }
        let post = Post::new(
            token.t,
            egm.signature.as_deref().unwrap_or_default(),
            egm.ciphertext.as_deref().unwrap_or_default(),
        );
        // Durable when this returns, together with the posts other connections made meanwhile.
        match self.commits.submit(post).await {
            Outcome::Stored => {
                inc(&self.metrics.tokens_spent);
                inc(&self.metrics.posts_accepted);
                self.reply(conn, true).await?;
                // Encoded once for every synced connection, and not at all if there is none.
                self.service.broadcast_with(SYNCED_CAPABILITY, || {
                    Message::from(Payload::NewMessage(NewMessage { egm })).to_json()
                });
            }
            Outcome::Duplicate => {
                // Already stored (and broadcast) before: acknowledge, don't repeat.
                inc(&self.metrics.tokens_spent);
                inc(&self.metrics.posts_duplicate);
                self.reply(conn, true).await?;
            }
            // Go drops a message without a signature silently, without a reply.
            Outcome::SpentOnly => inc(&self.metrics.tokens_spent),
            Outcome::DoubleSpend => {
                inc(&self.metrics.posts_rejected);
                self.reply(conn, false).await?;
            }
            Outcome::Failed => {
                // Logged by the writer; nothing was written, the token is still unspent.
                inc(&self.metrics.posts_rejected);
                self.reply(conn, false).await?;
            }
        }
        Ok(())
    }
}
