//! The sans-IO board client: token-board payloads in, payloads to send and events out.
//!
//! One [`BoardMachine`] per server, living across connections: it owns the replay cursor, the
//! tokens in hand, the posts awaiting their result and the phase of the current connection.
//! It does no IO and reads no clock; the driver (or a test) moves payloads between it and a
//! tapir connection. The rules it implements are `docs/specs/board-client.md`.

use std::collections::{HashSet, VecDeque};

use cwtch_model::tokenboard::{Payload, PostRequest, ReplayRequest, SpentToken};
use cwtch_model::{EncryptedGroupMessage, Message, MessageType};
use privacypass::{Token, SPEND_MAC_LEN, TOKEN_PREIMAGE_LEN};
use tapir::packet::MAX_ENCRYPTED_PAYLOAD;
use tapir::Onion;

use crate::error::{Error, ProtocolError};

/// The longest signature a message may carry to be delivered and to become the cursor: an
/// Ed25519 signature (all a group message can verify with), and our server's default
/// `maxLastCommitBytes`, so a cursor we send back is never refused for its size. Longer (or
/// empty) signatures are junk a poster put on the server: [`Event::Skipped`], never an error,
/// so one hostile poster cannot break every member's session.
pub const MAX_SIGNATURE_LEN: usize = 64;

/// The bytes a token spend is bound to when posting `egm` to `server` (Go: `EGM.ToBytes() ||
/// serverOnion`, protocol.md §4.3).
pub fn post_binding(egm: &EncryptedGroupMessage, server: &Onion) -> Vec<u8> {
    let mut data = egm.to_bytes();
    data.extend_from_slice(server.as_str().as_bytes());
    data
}

/// Where replay resumes: the signature of the last message received from a server, in the
/// server's order. Persist it (after the messages before it) and give it back to
/// [`BoardMachine::new`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Cursor(Vec<u8>);

impl Cursor {
    /// A cursor from a signature: 1 to [`MAX_SIGNATURE_LEN`] bytes.
    pub fn new(signature: Vec<u8>) -> Result<Cursor, Error> {
        if signature.is_empty() || signature.len() > MAX_SIGNATURE_LEN {
            return Err(Error::InvalidCursor {
                len: signature.len(),
                max: MAX_SIGNATURE_LEN,
            });
        }
        Ok(Cursor(signature))
    }

    /// The signature.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The signature, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Signatures identify messages; keep them out of logs.
        write!(f, "Cursor({} bytes)", self.0.len())
    }
}

/// A post, numbered by its machine in the order posts are prepared.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PostId(pub u64);

/// A token's identity: its preimage `t`, which the server records when it is spent. Persist
/// it as spent when [`BoardMachine::prepare_post`] hands it out.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenId([u8; TOKEN_PREIMAGE_LEN]);

impl TokenId {
    /// The id of `token`.
    pub fn of(token: &Token) -> TokenId {
        let bytes = token.to_bytes();
        let mut t = [0u8; TOKEN_PREIMAGE_LEN];
        t.copy_from_slice(&bytes[..TOKEN_PREIMAGE_LEN]);
        TokenId(t)
    }

    /// The preimage `t`: the first 32 bytes of [`Token::to_bytes`].
    pub fn as_bytes(&self) -> &[u8; TOKEN_PREIMAGE_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for TokenId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenId([redacted])")
    }
}

/// A post whose token has been taken out of the wallet and spent on it, ready to send.
///
/// Between [`BoardMachine::prepare_post`] and [`BoardMachine::send_post`] the caller records
/// [`PreparedPost::token`] as spent, durably: after a crash that token is never offered again.
/// Dropping a prepared post wastes its token, nothing worse.
pub struct PreparedPost {
    id: PostId,
    token: TokenId,
    spent: privacypass::SpentToken,
    egm: EncryptedGroupMessage,
}

impl PreparedPost {
    /// The post's id, as its [`Event::PostResult`] will carry it.
    pub fn id(&self) -> PostId {
        self.id
    }

    /// The token it spends.
    pub fn token(&self) -> TokenId {
        self.token
    }

    /// The message.
    pub fn egm(&self) -> &EncryptedGroupMessage {
        &self.egm
    }
}

impl std::fmt::Debug for PreparedPost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedPost")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Where the machine is with the current connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    /// No connection.
    Disconnected,
    /// An authenticated connection; no replay requested yet. Posts may be sent; the server
    /// sends nothing but their results.
    Connected,
    /// A replay was requested ("syncing"). `remaining` is `None` until the server's
    /// `ReplayResult`, then counts the bare messages still to come.
    Syncing {
        /// Replayed messages still expected.
        remaining: Option<u64>,
    },
    /// The replay is done ("synced"): the server sends every new message as `NewMessage`.
    Synced,
}

/// How a message reached us.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Source {
    /// In the replay that follows a `ReplayResult`.
    Replay,
    /// As a `NewMessage`, after the replay.
    Live,
}

/// A message not seen before by this machine.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Received {
    /// The message (its signature is non-empty and at most [`MAX_SIGNATURE_LEN`] bytes).
    pub egm: EncryptedGroupMessage,
    /// Replayed or live.
    pub source: Source,
}

/// What the machine reports, in order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Event {
    /// [`BoardMachine::connected`] was called.
    Connected,
    /// The server announced `count` replayed messages (the first is our cursor's own message
    /// when the server still has it: replay is inclusive).
    Syncing {
        /// The server's `NumMessages`.
        count: u64,
    },
    /// The server did not know our cursor (pruned, or a wiped server) and is replaying
    /// everything it holds: expect messages we already have (de-duplicate by signature), and
    /// know that any between our cursor and its oldest are gone.
    CursorUnknown,
    /// The replay is complete; live messages follow.
    Synced,
    /// A new message. Store it (de-duplicated by signature) before persisting any cursor that
    /// follows it.
    Message(Received),
    /// A message already received: the inclusive replay's repeat of the cursor's message, or
    /// a message the server delivered twice (a replay's catch-up and a broadcast).
    Duplicate(EncryptedGroupMessage),
    /// A message whose signature is empty or longer than [`MAX_SIGNATURE_LEN`]: junk from a
    /// poster, not a group message. Not delivered, and the cursor does not move.
    Skipped(EncryptedGroupMessage),
    /// The cursor moved: persist it, after the messages reported before this event.
    Cursor(Cursor),
    /// The server answered a post: `accepted` is `PostResult.Success`. `true`: the message is
    /// stored durably ("sent"). `false`: the token or the message was refused; the token is
    /// spent either way and never offered again.
    PostResult {
        /// Which post.
        id: PostId,
        /// The server's verdict.
        accepted: bool,
    },
    /// The connection ended before this post's result: the server may or may not have it.
    /// Re-posting the same message is safe (the server de-duplicates by signature) and costs
    /// a token.
    PostUnknown {
        /// Which post.
        id: PostId,
    },
    /// Tokens in hand fell below the low-water mark: fetch more and
    /// [`BoardMachine::add_tokens`] them. Reported once until the wallet is refilled.
    TokensLow {
        /// Tokens left.
        in_hand: usize,
    },
    /// The connection ended ([`BoardMachine::disconnected`], or a protocol error).
    Disconnected,
}

/// Tunables of a [`BoardMachine`].
#[derive(Clone, Debug)]
pub struct MachineConfig {
    /// Report [`Event::TokensLow`] when fewer tokens than this are in hand.
    pub low_water: usize,
    /// How many recent signatures are remembered to collapse a live message delivered twice
    /// (0: none; the inclusive replay's repeat is collapsed regardless).
    pub dedup_window: usize,
}

impl Default for MachineConfig {
    fn default() -> Self {
        MachineConfig {
            low_water: privacypass::DEFAULT_BATCH_SIZE / 2,
            dedup_window: 1024,
        }
    }
}

/// The replay in progress on this connection.
#[derive(Debug)]
struct Replay {
    /// The cursor the replay was requested from.
    anchor: Option<Cursor>,
    /// No replayed message has arrived yet.
    first: bool,
}

/// Recent signatures, oldest first, bounded.
#[derive(Debug, Default)]
struct Recent {
    order: VecDeque<Vec<u8>>,
    set: HashSet<Vec<u8>>,
}

impl Recent {
    fn contains(&self, sig: &[u8]) -> bool {
        self.set.contains(sig)
    }

    fn insert(&mut self, sig: &[u8], cap: usize) {
        if cap == 0 || self.set.contains(sig) {
            return;
        }
        while self.order.len() >= cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.order.push_back(sig.to_vec());
        self.set.insert(sig.to_vec());
    }
}

/// The board client for one server: see the module documentation and
/// `docs/specs/board-client.md`.
pub struct BoardMachine {
    server: Onion,
    config: MachineConfig,
    phase: Phase,
    cursor: Option<Cursor>,
    replay: Option<Replay>,
    replay_requested: bool,
    recent: Recent,
    wallet: VecDeque<Token>,
    in_hand: HashSet<TokenId>,
    taken: HashSet<TokenId>,
    low_reported: bool,
    outstanding: VecDeque<PostId>,
    next_post: u64,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
}

impl std::fmt::Debug for BoardMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoardMachine")
            .field("server", &self.server)
            .field("phase", &self.phase)
            .field("cursor", &self.cursor)
            .field("tokens", &self.wallet.len())
            .field("outstanding", &self.outstanding.len())
            .finish_non_exhaustive()
    }
}

impl BoardMachine {
    /// A machine for the token board `server`, resuming from `cursor` (`None`: replay
    /// everything), with no tokens and no connection.
    pub fn new(server: Onion, cursor: Option<Cursor>, config: MachineConfig) -> BoardMachine {
        BoardMachine {
            server,
            config,
            phase: Phase::Disconnected,
            cursor,
            replay: None,
            replay_requested: false,
            recent: Recent::default(),
            wallet: VecDeque::new(),
            in_hand: HashSet::new(),
            taken: HashSet::new(),
            low_reported: false,
            outstanding: VecDeque::new(),
            next_post: 0,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The token board this machine talks to.
    pub fn server(&self) -> &Onion {
        &self.server
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The cursor: the signature of the last message received, in order (or the one given to
    /// [`BoardMachine::new`] if none has been received since).
    pub fn cursor(&self) -> Option<&Cursor> {
        self.cursor.as_ref()
    }

    /// Tokens in hand.
    pub fn tokens_in_hand(&self) -> usize {
        self.wallet.len()
    }

    /// Posts sent whose result has not arrived.
    pub fn outstanding_posts(&self) -> usize {
        self.outstanding.len()
    }

    /// Whether the server owes us something: a post result or the rest of a replay.
    pub fn awaiting_reply(&self) -> bool {
        !self.outstanding.is_empty() || matches!(self.phase, Phase::Syncing { .. })
    }

    /// Replace the cursor before replaying (e.g. to replay from an older point). Only between
    /// connections or before this connection's replay is requested.
    pub fn set_cursor(&mut self, cursor: Option<Cursor>) -> Result<(), Error> {
        if self.replay_requested {
            return Err(Error::ReplayAlreadyRequested);
        }
        self.cursor = cursor;
        Ok(())
    }

    /// The next payload to send on the connection, in order.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// The next event, in order.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Put events back at the front of the queue, in order (the driver's set-aside events).
    #[cfg(feature = "driver")]
    pub(crate) fn unpoll(&mut self, events: impl DoubleEndedIterator<Item = Event>) {
        for e in events.rev() {
            self.events.push_front(e);
        }
    }

    /// An authenticated connection to the token board is up.
    pub fn connected(&mut self) -> Result<(), Error> {
        if self.phase != Phase::Disconnected {
            return Err(Error::AlreadyConnected);
        }
        self.phase = Phase::Connected;
        self.replay_requested = false;
        self.replay = None;
        self.transmit.clear();
        self.events.push_back(Event::Connected);
        self.check_low_water();
        Ok(())
    }

    /// The connection is gone. Every post still awaiting its result is reported
    /// [`Event::PostUnknown`]; nothing queued for that connection is sent on the next.
    pub fn disconnected(&mut self) {
        if self.phase == Phase::Disconnected {
            return;
        }
        for id in self.outstanding.drain(..) {
            self.events.push_back(Event::PostUnknown { id });
        }
        self.transmit.clear();
        self.replay = None;
        self.replay_requested = false;
        self.phase = Phase::Disconnected;
        self.events.push_back(Event::Disconnected);
    }

    /// Ask the server for every message from the cursor on (inclusive; all of them without a
    /// cursor). One replay per connection; afterwards the connection is synced and receives
    /// new messages as they are posted.
    pub fn request_replay(&mut self) -> Result<(), Error> {
        match self.phase {
            Phase::Disconnected => return Err(Error::NotConnected),
            _ if self.replay_requested => return Err(Error::ReplayAlreadyRequested),
            _ => {}
        }
        let m = Message::from(Payload::ReplayRequest(ReplayRequest {
            last_commit: self.cursor.as_ref().map(|c| c.as_bytes().to_vec()),
        }));
        self.transmit.push_back(m.to_json());
        self.replay_requested = true;
        self.replay = Some(Replay {
            anchor: self.cursor.clone(),
            first: true,
        });
        self.phase = Phase::Syncing { remaining: None };
        Ok(())
    }

    /// Add tokens to the wallet (persist them first if they should survive a crash). A token
    /// already in hand, or already handed out by this machine, is ignored. Returns how many
    /// were added.
    pub fn add_tokens(&mut self, tokens: impl IntoIterator<Item = Token>) -> usize {
        let mut added = 0;
        for t in tokens {
            let id = TokenId::of(&t);
            if self.taken.contains(&id) || !self.in_hand.insert(id) {
                continue;
            }
            self.wallet.push_back(t);
            added += 1;
        }
        if self.wallet.len() >= self.config.low_water {
            self.low_reported = false;
        }
        added
    }

    fn check_low_water(&mut self) {
        if self.wallet.len() < self.config.low_water && !self.low_reported {
            self.low_reported = true;
            self.events.push_back(Event::TokensLow {
                in_hand: self.wallet.len(),
            });
        }
    }

    fn check_postable(&self, egm: &EncryptedGroupMessage) -> Result<(), Error> {
        if self.phase == Phase::Disconnected {
            return Err(Error::NotConnected);
        }
        if egm.signature.as_ref().is_none_or(Vec::is_empty) {
            return Err(Error::UnsignedPost);
        }
        // Token fields have fixed lengths, so zeros measure the real request.
        let len = post_request(
            vec![0; TOKEN_PREIMAGE_LEN],
            vec![0; SPEND_MAC_LEN],
            egm.clone(),
        )
        .len();
        if len > MAX_ENCRYPTED_PAYLOAD {
            return Err(Error::PostTooLarge {
                len,
                max: MAX_ENCRYPTED_PAYLOAD,
            });
        }
        Ok(())
    }

    /// Take a token out of the wallet and spend it on `egm`, bound to this server. The token
    /// is gone from the wallet from now on, whatever happens: record
    /// [`PreparedPost::token`] as spent, then [`BoardMachine::send_post`].
    ///
    /// Checked first, without taking a token: connected, a signature, fits one packet.
    pub fn prepare_post(&mut self, egm: EncryptedGroupMessage) -> Result<PreparedPost, Error> {
        self.check_postable(&egm)?;
        let Some(token) = self.wallet.pop_front() else {
            self.check_low_water();
            return Err(Error::NoTokens);
        };
        let id = TokenId::of(&token);
        self.in_hand.remove(&id);
        self.taken.insert(id);
        let spent = token.spend(&post_binding(&egm, &self.server));
        drop(token);
        self.check_low_water();
        let post = PostId(self.next_post);
        self.next_post += 1;
        Ok(PreparedPost {
            id: post,
            token: id,
            spent,
            egm,
        })
    }

    /// Queue a prepared post for sending. Its result comes as [`Event::PostResult`] (or
    /// [`Event::PostUnknown`] if the connection ends first). Fails only when disconnected, in
    /// which case the post is dropped and its token stays spent.
    pub fn send_post(&mut self, post: PreparedPost) -> Result<(), Error> {
        if self.phase == Phase::Disconnected {
            return Err(Error::NotConnected);
        }
        let PreparedPost { id, spent, egm, .. } = post;
        self.transmit
            .push_back(post_request(spent.t.to_vec(), spent.mac.to_vec(), egm));
        self.outstanding.push_back(id);
        Ok(())
    }

    /// Post with a token spent by the caller (`t`, `MAC`), outside the wallet: tests, and
    /// callers that keep their own tokens. Same checks and result events as a prepared post.
    pub fn send_spent(
        &mut self,
        t: Vec<u8>,
        mac: Vec<u8>,
        egm: EncryptedGroupMessage,
    ) -> Result<PostId, Error> {
        self.check_postable(&egm)?;
        let id = PostId(self.next_post);
        self.next_post += 1;
        self.transmit.push_back(post_request(t, mac, egm));
        self.outstanding.push_back(id);
        Ok(id)
    }

    /// Handle one payload from the server (one tapir packet's contents).
    ///
    /// A protocol violation is an [`Error::Protocol`] and disconnects the machine (the caller
    /// closes the connection); nothing the server sends can make this panic.
    pub fn handle(&mut self, payload: &[u8]) -> Result<(), Error> {
        let r = match self.phase {
            Phase::Disconnected => return Err(Error::NotConnected),
            Phase::Syncing {
                remaining: Some(n @ 1..),
            } => self.handle_replayed(payload, n),
            phase => self.handle_message(payload, phase),
        };
        r.map_err(|e| {
            self.disconnected();
            Error::Protocol(e)
        })
    }

    fn handle_replayed(&mut self, payload: &[u8], remaining: u64) -> Result<(), ProtocolError> {
        // Replayed messages are bare EGMs, not wrapped in a token-board message (Go).
        let egm = EncryptedGroupMessage::from_json(payload).map_err(ProtocolError::Decode)?;
        let anchor_repeat = match self.replay.as_mut() {
            Some(r) if r.first => {
                r.first = false;
                match &r.anchor {
                    Some(a) if egm.signature.as_deref() == Some(a.as_bytes()) => true,
                    Some(_) => {
                        self.events.push_back(Event::CursorUnknown);
                        false
                    }
                    None => false,
                }
            }
            _ => false,
        };
        if anchor_repeat {
            // Inclusive replay: the server still has our cursor's message and repeats it.
            if let Some(sig) = egm.signature.as_deref() {
                self.recent.insert(sig, self.config.dedup_window);
            }
            self.events.push_back(Event::Duplicate(egm));
        } else {
            self.receive(egm, Source::Replay);
        }
        let remaining = remaining - 1;
        if remaining == 0 {
            self.synced();
        } else {
            self.phase = Phase::Syncing {
                remaining: Some(remaining),
            };
        }
        Ok(())
    }

    fn synced(&mut self) {
        self.phase = Phase::Synced;
        self.replay = None;
        self.events.push_back(Event::Synced);
    }

    fn handle_message(&mut self, payload: &[u8], phase: Phase) -> Result<(), ProtocolError> {
        let p = Message::from_json(payload)
            .and_then(Message::into_payload)
            .map_err(ProtocolError::Decode)?;
        let unexpected = |t: MessageType| ProtocolError::Unexpected {
            message_type: t,
            phase,
        };
        match p {
            Payload::PostResult(r) => {
                let id = self
                    .outstanding
                    .pop_front()
                    .ok_or(ProtocolError::UnpairedPostResult)?;
                self.events.push_back(Event::PostResult {
                    id,
                    accepted: r.success,
                });
            }
            Payload::ReplayResult(r) => {
                if phase != (Phase::Syncing { remaining: None }) {
                    return Err(unexpected(MessageType::REPLAY_RESULT));
                }
                let count = u64::try_from(r.num_messages)
                    .map_err(|_| ProtocolError::NegativeCount(r.num_messages))?;
                self.events.push_back(Event::Syncing { count });
                if count == 0 {
                    // An inclusive replay from a known cursor has at least that message.
                    if self.replay.as_ref().is_some_and(|r| r.anchor.is_some()) {
                        self.events.push_back(Event::CursorUnknown);
                    }
                    self.synced();
                } else {
                    self.phase = Phase::Syncing {
                        remaining: Some(count),
                    };
                }
            }
            Payload::NewMessage(n) => {
                if phase != Phase::Synced {
                    return Err(unexpected(MessageType::NEW_MESSAGE));
                }
                self.receive(n.egm, Source::Live);
            }
            // Go ignores types it does not know; so do we.
            Payload::Unknown(_) => {}
            Payload::ReplayRequest(_) => return Err(unexpected(MessageType::REPLAY_REQUEST)),
            Payload::PostRequest(_) => return Err(unexpected(MessageType::POST_REQUEST)),
        }
        Ok(())
    }

    /// A message other than the inclusive replay's repeat of the cursor.
    fn receive(&mut self, egm: EncryptedGroupMessage, source: Source) {
        let sig = match egm.signature.as_deref() {
            Some(s) if !s.is_empty() && s.len() <= MAX_SIGNATURE_LEN => s.to_vec(),
            _ => {
                self.events.push_back(Event::Skipped(egm));
                return;
            }
        };
        let seen = self.recent.contains(&sig);
        if seen {
            self.events.push_back(Event::Duplicate(egm));
        } else {
            self.recent.insert(&sig, self.config.dedup_window);
            self.events
                .push_back(Event::Message(Received { egm, source }));
        }
        // Replayed messages come in the server's order, so each one, seen or not, is the
        // furthest point reached. A live repeat is not: it may be older than the cursor.
        if (!seen || source == Source::Replay)
            && self.cursor.as_ref().map(Cursor::as_bytes) != Some(&sig[..])
        {
            let c = Cursor(sig);
            self.cursor = Some(c.clone());
            self.events.push_back(Event::Cursor(c));
        }
    }
}

fn post_request(t: Vec<u8>, mac: Vec<u8>, egm: EncryptedGroupMessage) -> Vec<u8> {
    Message::from(Payload::PostRequest(PostRequest {
        token: SpentToken {
            t: Some(t),
            mac: Some(mac),
        },
        egm,
    }))
    .to_json()
}
