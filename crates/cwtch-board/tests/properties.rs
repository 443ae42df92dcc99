//! Property tests of the board-client machine against a model of Go's server (inclusive
//! replay with fallback to everything, posts answered in order, broadcasts to synced
//! connections, pruning), across connections:
//!
//! - no token is ever handed out twice, whatever tokens are (re-)added;
//! - the cursor only moves to the signature of a message just received, and only forward in
//!   the server's order;
//! - the inclusive replay's repeat and double deliveries collapse: no message is delivered
//!   twice, and after a replay every stored message has been delivered;
//! - post results pair with posts in order; posts still open at a disconnection are unknown;
//! - arbitrary bytes from a server never panic the machine.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::OnceLock;

use common::*;
use cwtch_board::{
    BoardMachine, Cursor, Error, Event, MachineConfig, Phase, PostId, Source, TokenId,
};
use cwtch_model::tokenboard::Payload;
use cwtch_model::{EncryptedGroupMessage, Message};
use privacypass::Token;
use proptest::prelude::*;

const POOL: usize = 24;

fn pool() -> &'static Vec<Token> {
    static POOL_TOKENS: OnceLock<Vec<Token>> = OnceLock::new();
    POOL_TOKENS.get_or_init(|| tokens(&token_server(), POOL, 11))
}

#[derive(Clone, Debug)]
enum Op {
    Connect,
    Disconnect,
    Replay,
    /// The server handles the next request.
    Step,
    /// Another member posts; `twice`: the server delivers it twice.
    Broadcast {
        twice: bool,
    },
    /// The server delivers an older stored message again (a catch-up racing a broadcast).
    Redeliver(usize),
    /// The server prunes its oldest messages.
    Prune(usize),
    AddTokens(Vec<usize>),
    Post {
        accept: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Connect),
        1 => Just(Op::Disconnect),
        2 => Just(Op::Replay),
        5 => Just(Op::Step),
        3 => any::<bool>().prop_map(|twice| Op::Broadcast { twice }),
        1 => (0usize..4).prop_map(Op::Prune),
        1 => (0usize..8).prop_map(Op::Redeliver),
        2 => proptest::collection::vec(0..POOL, 0..6).prop_map(Op::AddTokens),
        4 => any::<bool>().prop_map(|accept| Op::Post { accept }),
    ]
}

/// The model server and everything the test checks against.
struct World {
    m: BoardMachine,
    /// Stored messages, oldest first, with their server ids.
    store: VecDeque<(u64, EncryptedGroupMessage)>,
    next_id: u64,
    /// Server id of every signature ever stored (ids are never reused).
    ids: HashMap<Vec<u8>, u64>,
    connected: bool,
    server_synced: bool,
    /// Requests the server has not handled yet, with the verdict to give a post.
    requests: VecDeque<Payload>,
    verdicts: VecDeque<bool>,
    /// Posts sent, not yet answered, in order.
    sent: VecDeque<PostId>,
    /// Results the machine must report next, in order.
    expect_results: VecDeque<(PostId, bool)>,
    expect_unknown: VecDeque<PostId>,
    handed_out: HashSet<TokenId>,
    delivered: HashSet<Vec<u8>>,
    last_received: Option<Vec<u8>>,
    cursor: Option<Vec<u8>>,
    next_sig: u32,
}

impl World {
    fn new(initial: Option<Vec<u8>>) -> World {
        let cursor = initial.clone().map(|c| Cursor::new(c).unwrap());
        World {
            m: BoardMachine::new(onion(), cursor, MachineConfig::default()),
            store: VecDeque::new(),
            next_id: 0,
            ids: HashMap::new(),
            connected: false,
            server_synced: false,
            requests: VecDeque::new(),
            verdicts: VecDeque::new(),
            sent: VecDeque::new(),
            expect_results: VecDeque::new(),
            expect_unknown: VecDeque::new(),
            handed_out: HashSet::new(),
            delivered: HashSet::new(),
            last_received: None,
            cursor: initial,
            next_sig: 0,
        }
    }

    fn fresh(&mut self) -> EncryptedGroupMessage {
        self.next_sig += 1;
        egm(self.next_sig)
    }

    fn store(&mut self, e: &EncryptedGroupMessage) -> bool {
        let s = e.signature.clone().unwrap();
        if self.ids.contains_key(&s) {
            return false;
        }
        self.ids.insert(s, self.next_id);
        self.store.push_back((self.next_id, e.clone()));
        self.next_id += 1;
        true
    }

    /// Move what the machine sends to the server.
    fn pump(&mut self) {
        while let Some(p) = self.m.poll_transmit() {
            assert!(self.connected, "sent while disconnected");
            self.requests.push_back(
                Message::from_json(&p)
                    .and_then(Message::into_payload)
                    .unwrap(),
            );
        }
    }

    fn deliver(&mut self, bytes: &[u8]) {
        self.m.handle(bytes).unwrap();
        self.check_events();
    }

    fn check_events(&mut self) {
        let evs: Vec<Event> = std::iter::from_fn(|| self.m.poll_event()).collect();
        self.check(evs);
    }

    fn check(&mut self, evs: Vec<Event>) {
        for e in evs {
            match e {
                Event::Message(r) => {
                    let s = r.egm.signature.clone().unwrap();
                    assert!(self.delivered.insert(s.clone()), "delivered twice");
                    assert!(self.ids.contains_key(&s), "never stored");
                    if r.source == Source::Live {
                        assert!(self.server_synced);
                    }
                    self.last_received = Some(s);
                }
                Event::Duplicate(egm) => {
                    let s = egm.signature.unwrap();
                    assert!(self.delivered.contains(&s), "a duplicate of nothing");
                    self.last_received = Some(s);
                }
                Event::Skipped(_) => panic!("the model server sends no junk"),
                Event::Cursor(c) => {
                    let c = c.into_bytes();
                    assert_eq!(
                        Some(&c),
                        self.last_received.as_ref(),
                        "cursor not just received"
                    );
                    if let Some(old) = self.cursor.as_ref().and_then(|o| self.ids.get(o)) {
                        assert!(self.ids[&c] >= *old, "cursor moved backwards");
                    }
                    self.cursor = Some(c);
                }
                Event::PostResult { id, accepted } => {
                    assert_eq!(self.expect_results.pop_front(), Some((id, accepted)));
                }
                Event::PostUnknown { id } => {
                    assert_eq!(self.expect_unknown.pop_front(), Some(id));
                }
                Event::Connected
                | Event::Disconnected
                | Event::Syncing { .. }
                | Event::Synced
                | Event::CursorUnknown
                | Event::TokensLow { .. } => {}
            }
        }
        assert_eq!(self.m.cursor().map(|c| c.as_bytes().to_vec()), self.cursor);
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Connect => {
                let r = self.m.connected();
                assert_eq!(r.is_ok(), !self.connected);
                if !self.connected {
                    self.connected = true;
                    self.server_synced = false;
                }
            }
            Op::Disconnect => {
                if self.connected {
                    self.expect_unknown = std::mem::take(&mut self.sent);
                    self.requests.clear();
                    self.verdicts.clear();
                    self.connected = false;
                    self.server_synced = false;
                }
                self.m.disconnected();
                assert_eq!(self.m.phase(), Phase::Disconnected);
            }
            Op::Replay => {
                let r = self.m.request_replay();
                if !self.connected {
                    assert!(matches!(r, Err(Error::NotConnected)));
                }
            }
            Op::Step => self.step(),
            Op::Broadcast { twice } => {
                let e = self.fresh();
                self.store(&e);
                if self.connected && self.server_synced {
                    self.deliver(&new_message(&e));
                    assert!(self.delivered.contains(e.signature.as_ref().unwrap()));
                    if twice {
                        self.deliver(&new_message(&e));
                    }
                }
            }
            Op::Redeliver(back) => {
                let n = self.store.len();
                if self.connected && self.server_synced && n > 0 {
                    let e = self.store[n - 1 - back.min(n - 1)].1.clone();
                    if self.delivered.contains(e.signature.as_ref().unwrap()) {
                        self.deliver(&new_message(&e));
                    }
                }
            }
            Op::Prune(k) => {
                for _ in 0..k {
                    self.store.pop_front();
                }
            }
            Op::AddTokens(ix) => {
                self.m.add_tokens(ix.into_iter().map(|i| pool()[i].clone()));
            }
            Op::Post { accept } => {
                let e = self.fresh();
                match self.m.prepare_post(e) {
                    Ok(p) => {
                        assert!(self.handed_out.insert(p.token()), "token handed out twice");
                        let id = p.id();
                        self.m.send_post(p).unwrap();
                        self.sent.push_back(id);
                        self.verdicts.push_back(accept);
                    }
                    Err(Error::NotConnected) => assert!(!self.connected),
                    Err(Error::NoTokens) => assert_eq!(self.m.tokens_in_hand(), 0),
                    Err(e) => panic!("{e}"),
                }
            }
        }
        self.pump();
        self.check_events();
    }

    fn step(&mut self) {
        let Some(req) = self.requests.pop_front() else {
            return;
        };
        match req {
            Payload::ReplayRequest(r) => {
                let lc = r.last_commit.unwrap_or_default();
                let from = self
                    .store
                    .iter()
                    .position(|(_, e)| e.signature.as_deref() == Some(&lc[..]));
                let msgs: Vec<EncryptedGroupMessage> = self
                    .store
                    .iter()
                    .skip(from.unwrap_or(0))
                    .map(|(_, e)| e.clone())
                    .collect();
                self.m.handle(&replay_result(msgs.len() as i64)).unwrap();
                for e in &msgs {
                    self.m.handle(&bare(e)).unwrap();
                }
                let evs: Vec<Event> = std::iter::from_fn(|| self.m.poll_event()).collect();
                // The inclusive repeat collapses; an unknown cursor is reported.
                let anchor_dups = evs
                    .iter()
                    .filter(|e| matches!(e, Event::Duplicate(d) if d.signature.as_deref() == Some(&lc[..])))
                    .count();
                if from.is_some() {
                    assert_eq!(anchor_dups, 1);
                }
                assert_eq!(
                    evs.contains(&Event::CursorUnknown),
                    !lc.is_empty() && from.is_none()
                );
                assert_eq!(evs.last(), Some(&Event::Synced));
                self.server_synced = true;
                self.check(evs);
                // Everything the server holds has now been delivered.
                for (_, e) in &self.store {
                    assert!(self.delivered.contains(e.signature.as_ref().unwrap()));
                }
            }
            Payload::PostRequest(p) => {
                let id = self.sent.pop_front().unwrap();
                let accept = self.verdicts.pop_front().unwrap();
                self.expect_results.push_back((id, accept));
                self.deliver(&post_result(accept));
                if accept && self.store(&p.egm) && self.server_synced {
                    self.deliver(&new_message(&p.egm));
                }
            }
            other => panic!("the client sent {other:?}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_machine_keeps_its_invariants_against_a_model_server(
        initial in proptest::option::of(Just(b"a cursor from before".to_vec())),
        ops in proptest::collection::vec(op(), 0..80),
    ) {
        let mut w = World::new(initial);
        for op in ops {
            w.apply(op);
        }
        // Finish: connect, replay, drain: everything stored is delivered.
        w.apply(Op::Disconnect);
        w.apply(Op::Connect);
        w.apply(Op::Replay);
        w.apply(Op::Step);
        for (_, e) in &w.store {
            prop_assert!(w.delivered.contains(e.signature.as_ref().unwrap()));
        }
    }

    #[test]
    fn arbitrary_server_bytes_never_panic(
        setup in 0u8..4,
        inputs in proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..64),
                proptest::string::string_regex(
                    r#"\{"MessageType":-?[0-9]{1,3}(,"(PostResult|ReplayResult|NewMessage)":\{("Success":(true|1)|"NumMessages":-?[0-9]{1,20}|"EGM":\{"Signature":"[A-Za-z0-9+/=]{0,12}"\}|)\})?\}"#
                ).unwrap().prop_map(String::into_bytes),
                proptest::string::string_regex(
                    r#"\{"Ciphertext":"[A-Za-z0-9+/=]{0,8}","Signature":("[A-Za-z0-9+/=]{0,100}"|null)\}"#
                ).unwrap().prop_map(String::into_bytes),
            ],
            0..20,
        ),
    ) {
        let mut m = machine(None);
        m.connected().unwrap();
        m.send_spent(vec![1; 32], vec![2; 64], egm(1)).unwrap();
        if setup >= 1 {
            m.request_replay().unwrap();
        }
        if setup >= 2 {
            m.handle(&post_result(true)).unwrap();
            m.handle(&replay_result(i64::from(setup) * 2)).unwrap();
        }
        for input in inputs {
            match m.handle(&input) {
                Ok(()) => prop_assert_ne!(m.phase(), Phase::Disconnected),
                Err(Error::Protocol(_)) => prop_assert_eq!(m.phase(), Phase::Disconnected),
                Err(Error::NotConnected) => prop_assert_eq!(m.phase(), Phase::Disconnected),
                Err(e) => prop_assert!(false, "unexpected error {e}"),
            }
            // The cursor, if any, is always a valid signature.
            if let Some(c) = m.cursor() {
                prop_assert!(!c.as_bytes().is_empty() && c.as_bytes().len() <= 64);
            }
            while m.poll_event().is_some() {}
        }
    }

    #[test]
    fn no_token_is_handed_out_twice(
        adds in proptest::collection::vec(proptest::collection::vec(0..POOL, 0..10), 1..8),
        posts_between in proptest::collection::vec(0usize..6, 1..8),
    ) {
        let mut m = machine(None);
        m.connected().unwrap();
        let mut seen = HashSet::new();
        for (add, posts) in adds.into_iter().zip(posts_between) {
            m.add_tokens(add.into_iter().map(|i| pool()[i].clone()));
            for _ in 0..posts {
                match m.prepare_post(egm(1)) {
                    Ok(p) => prop_assert!(seen.insert(p.token())),
                    Err(Error::NoTokens) => prop_assert_eq!(m.tokens_in_hand(), 0),
                    Err(e) => prop_assert!(false, "{e}"),
                }
            }
        }
        prop_assert!(seen.len() <= POOL);
    }
}
