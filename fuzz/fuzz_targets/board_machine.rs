//! The board client's sans-IO machine (`cwtch_board::BoardMachine`) driven by a script: connect,
//! disconnect, request the replay, add tokens, prepare, send and drop posts, set the cursor, and
//! hand it server payloads, raw or built from templates (`docs/specs/board-client.md`).
//!
//! Beyond "never panics", after every step, against a model kept here:
//! - no token is handed out twice, and re-adding a token already spent is ignored; the wallet
//!   holds exactly the tokens added and not yet handed out;
//! - post results pair with posts in the order sent: never a result (or `PostUnknown`) without
//!   an open post, so the posts outstanding never go below zero; the machine's count is the
//!   model's; a disconnection leaves none;
//! - the cursor moves only by a `Cursor` event that directly follows the message (new or
//!   duplicate) carrying that signature, or by `set_cursor`; it is 1 to 64 bytes;
//! - a message is delivered once (no `Message` event repeats a signature while the dedup window
//!   holds it) and only with a signature of 1 to 64 bytes;
//! - a protocol error disconnects (last event `Disconnected`); what the machine transmits is a
//!   `ReplayRequest` from the current cursor or a `PostRequest` that fits one packet.
//!
//! Input: byte 0 configures (low-water mark, dedup window, initial cursor); then steps, each an
//! opcode byte and its operands (see `Op`). Missing operand bytes read as zero.
#![no_main]

use std::collections::{HashSet, VecDeque};
use std::sync::OnceLock;

use cwtch_board::{
    BoardMachine, Cursor, Event, MachineConfig, Phase, PostId, PreparedPost, TokenId,
};
use cwtch_model::tokenboard::{NewMessage, Payload, PostResult, ReplayResult};
use cwtch_model::{EncryptedGroupMessage, Message};
use libfuzzer_sys::fuzz_target;
use privacypass::{blind_batch, unblind_batch, Token, TokenServer, Transcript};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tapir::packet::MAX_ENCRYPTED_PAYLOAD;
use tapir::{Identity, Onion};

const POOL: usize = 12;

fn transcript() -> Transcript {
    let mut t = Transcript::new("tapir-transcript");
    t.new_protocol("token-app");
    t
}

/// Real tokens from a token server, made once.
fn pool() -> &'static Vec<Token> {
    static P: OnceLock<Vec<Token>> = OnceLock::new();
    P.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let server = TokenServer::generate(&mut rng);
        let (unsigned, blinded) = blind_batch(POOL, &mut rng);
        let batch = server
            .sign_batch(&blinded, &mut transcript(), &mut rng)
            .expect("signs");
        unblind_batch(
            unsigned,
            &blinded,
            &batch,
            &server.public_key(),
            &mut transcript(),
        )
        .expect("unblinds")
    })
}

fn server() -> &'static Onion {
    static S: OnceLock<Onion> = OnceLock::new();
    S.get_or_init(|| Identity::from_seed(&[7; 32]).onion())
}

/// A signature from the template byte `i`: mostly 64 bytes from a family of 32; some empty,
/// short or too long (junk a poster can put on a server).
fn sig(i: u8) -> Vec<u8> {
    match i {
        0xf0 => Vec::new(),
        0xf1 => vec![i; 1],
        0xf2 => vec![i; 65],
        0xf3 => vec![i; 200],
        _ => vec![i % 32; 64],
    }
}

/// A message from the template byte `i`; 0xff is too large to post.
fn egm(i: u8) -> EncryptedGroupMessage {
    let len = if i == 0xff {
        9000
    } else {
        16 + usize::from(i % 7)
    };
    EncryptedGroupMessage {
        ciphertext: Some(vec![i; len]),
        signature: Some(sig(i)),
    }
}

fn message(p: Payload) -> Vec<u8> {
    Message::from(p).to_json()
}

/// A server payload from a template (`kind`, `arg`).
fn template(kind: u8, arg: u8) -> Vec<u8> {
    match kind % 8 {
        0 => message(Payload::ReplayResult(ReplayResult {
            num_messages: i64::from(arg % 8),
        })),
        1 => egm(arg).to_json(),
        2 => message(Payload::NewMessage(NewMessage { egm: egm(arg) })),
        3 => message(Payload::PostResult(PostResult {
            success: arg & 1 == 1,
        })),
        4 => message(Payload::ReplayResult(ReplayResult {
            num_messages: -i64::from(arg) - 1,
        })),
        5 => format!(r#"{{"MessageType":{}}}"#, arg % 7).into_bytes(),
        6 => EncryptedGroupMessage::default().to_json(),
        _ => vec![arg; usize::from(arg % 5)],
    }
}

/// Operands, zero when the input runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}

/// What the machine should hold, tracked from what it was given and what it reported.
struct Model {
    low_water: usize,
    window: usize,
    in_hand: HashSet<TokenId>,
    handed_out: HashSet<TokenId>,
    /// Posts sent and not yet answered, in the order sent.
    open: VecDeque<PostId>,
    post_ids: HashSet<PostId>,
    cursor: Option<Vec<u8>>,
    /// Signatures delivered as `Message`, and every signature the dedup window may hold.
    delivered: HashSet<Vec<u8>>,
    remembered: HashSet<Vec<u8>>,
}

impl Model {
    fn check(&mut self, m: &mut BoardMachine, protocol_error: bool) {
        let events: Vec<Event> = std::iter::from_fn(|| m.poll_event()).collect();
        for (i, e) in events.iter().enumerate() {
            match e {
                Event::PostResult { id, .. } | Event::PostUnknown { id } => {
                    assert_eq!(
                        self.open.pop_front(),
                        Some(*id),
                        "a result pairs with the oldest open post"
                    );
                }
                Event::Cursor(c) => {
                    let sig = c.as_bytes();
                    assert!((1..=64).contains(&sig.len()));
                    let from = match i.checked_sub(1).map(|j| &events[j]) {
                        Some(Event::Message(r)) => r.egm.signature.as_deref(),
                        Some(Event::Duplicate(egm)) => egm.signature.as_deref(),
                        _ => None,
                    };
                    assert_eq!(
                        from,
                        Some(sig),
                        "the cursor comes from the message before it"
                    );
                    self.cursor = Some(sig.to_vec());
                }
                Event::Message(r) => {
                    let sig = r.egm.signature.clone().unwrap_or_default();
                    assert!((1..=64).contains(&sig.len()), "delivered junk");
                    if self.window >= 1024 && self.remembered.len() < self.window {
                        assert!(self.delivered.insert(sig.clone()), "delivered twice");
                    }
                    self.remembered.insert(sig);
                }
                Event::Duplicate(egm) => {
                    if let Some(s) = egm.signature.clone() {
                        self.remembered.insert(s);
                    }
                }
                Event::TokensLow { in_hand } => {
                    assert!(*in_hand < self.low_water);
                    assert_eq!(*in_hand, self.in_hand.len());
                }
                Event::Disconnected => assert_eq!(m.phase(), Phase::Disconnected),
                _ => {}
            }
        }
        if protocol_error {
            assert_eq!(events.last(), Some(&Event::Disconnected));
        }
        if m.phase() == Phase::Disconnected {
            assert!(
                self.open.is_empty(),
                "posts left open after a disconnection"
            );
            assert!(m.poll_transmit().is_none());
        }
        assert_eq!(m.outstanding_posts(), self.open.len());
        assert_eq!(m.tokens_in_hand(), self.in_hand.len());
        assert_eq!(m.cursor().map(|c| c.as_bytes().to_vec()), self.cursor);
        // What a driver would now send.
        while let Some(p) = m.poll_transmit() {
            assert!(
                p.len() <= MAX_ENCRYPTED_PAYLOAD,
                "a payload larger than a packet"
            );
            match Message::from_json(&p).and_then(Message::into_payload) {
                Ok(Payload::ReplayRequest(r)) => assert_eq!(r.last_commit, self.cursor),
                Ok(Payload::PostRequest(r)) => {
                    assert!(r.egm.signature.is_some_and(|s| !s.is_empty()));
                }
                other => panic!("transmitted {other:?}"),
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let config = input.byte();
    let low_water = usize::from(config & 7);
    let window = if config & 8 == 0 {
        1024
    } else {
        usize::from(config >> 4)
    };
    let cursor = (config & 0x80 != 0).then(|| sig(config % 32));
    let mut m = BoardMachine::new(
        server().clone(),
        cursor.clone().map(|c| Cursor::new(c).expect("valid")),
        MachineConfig {
            low_water,
            dedup_window: window,
        },
    );
    let mut model = Model {
        low_water,
        window,
        in_hand: HashSet::new(),
        handed_out: HashSet::new(),
        open: VecDeque::new(),
        post_ids: HashSet::new(),
        cursor,
        delivered: HashSet::new(),
        remembered: HashSet::new(),
    };
    let mut prepared: VecDeque<PreparedPost> = VecDeque::new();
    let mut steps = 0;
    while !input.0.is_empty() && steps < 512 {
        steps += 1;
        let mut protocol_error = false;
        match input.byte() % 10 {
            0 => {
                let was = m.phase();
                assert_eq!(m.connected().is_ok(), was == Phase::Disconnected);
            }
            1 => m.disconnected(),
            2 => {
                let _ = m.request_replay();
            }
            3 => {
                let k = input.byte();
                let start = usize::from(k >> 4);
                let batch: Vec<Token> = (0..usize::from(k & 7))
                    .map(|j| pool()[(start + j) % POOL].clone())
                    .collect();
                let mut expected = 0;
                for t in &batch {
                    let id = TokenId::of(t);
                    if !model.handed_out.contains(&id) && model.in_hand.insert(id) {
                        expected += 1;
                    }
                }
                assert_eq!(m.add_tokens(batch), expected, "added tokens");
            }
            4 => {
                let before = m.tokens_in_hand();
                match m.prepare_post(egm(input.byte())) {
                    Ok(p) => {
                        let id = p.token();
                        assert!(model.in_hand.remove(&id), "a token not in hand");
                        assert!(model.handed_out.insert(id), "a token handed out twice");
                        assert!(model.post_ids.insert(p.id()), "a post id reused");
                        prepared.push_back(p);
                        if prepared.len() > 8 {
                            prepared.pop_front(); // its token is wasted, never reused
                        }
                    }
                    Err(cwtch_board::Error::NoTokens) => assert!(model.in_hand.is_empty()),
                    Err(_) => assert_eq!(m.tokens_in_hand(), before),
                }
            }
            5 => {
                if let Some(p) = prepared.pop_front() {
                    let id = p.id();
                    let disconnected = m.phase() == Phase::Disconnected;
                    assert_eq!(m.send_post(p).is_ok(), !disconnected);
                    if !disconnected {
                        model.open.push_back(id);
                    }
                }
            }
            6 => {
                let len = usize::from(u16::from_le_bytes([input.byte(), input.byte()]));
                let payload = input.bytes(len).to_vec();
                let disconnected = m.phase() == Phase::Disconnected;
                match m.handle(&payload) {
                    Ok(()) => assert!(!disconnected),
                    Err(cwtch_board::Error::NotConnected) => assert!(disconnected),
                    Err(cwtch_board::Error::Protocol(_)) => protocol_error = true,
                    Err(e) => panic!("handle: {e}"),
                }
            }
            7 => {
                let (kind, arg) = (input.byte(), input.byte());
                let disconnected = m.phase() == Phase::Disconnected;
                match m.handle(&template(kind, arg)) {
                    Ok(()) => assert!(!disconnected),
                    Err(cwtch_board::Error::NotConnected) => assert!(disconnected),
                    Err(cwtch_board::Error::Protocol(_)) => protocol_error = true,
                    Err(e) => panic!("handle: {e}"),
                }
            }
            8 => {
                let b = input.byte();
                let c = (b != 0).then(|| sig(b));
                let valid = c
                    .as_ref()
                    .map_or(Ok(None), |c| Cursor::new(c.clone()).map(Some));
                if let Ok(c) = valid {
                    let expected = c.as_ref().map(|c| c.as_bytes().to_vec());
                    if m.set_cursor(c).is_ok() {
                        model.cursor = expected;
                    }
                }
            }
            _ => {
                let egm = egm(input.byte());
                let (t, mac) = (input.bytes(32).to_vec(), input.bytes(64).to_vec());
                let tokens = m.tokens_in_hand();
                if let Ok(id) = m.send_spent(t, mac, egm) {
                    assert!(model.post_ids.insert(id), "a post id reused");
                    model.open.push_back(id);
                }
                assert_eq!(m.tokens_in_hand(), tokens, "send_spent takes no token");
            }
        }
        model.check(&mut m, protocol_error);
    }
});
