//! The machine on a real (sans-IO) tapir session: two `tapir::Connection`s, authenticated and
//! encrypted, whose packets cross an in-memory pipe one byte at a time. The server side is a
//! small scripted token board that redeems real tokens.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use cwtch_board::{BoardMachine, Event, MachineConfig, Phase, PostId, Source};
use cwtch_model::tokenboard::{NewMessage, Payload, PostResult, ReplayResult};
use cwtch_model::{EncryptedGroupMessage, Message};
use privacypass::{MemorySpentTokens, SpentToken, TokenServer};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tapir::{ApplicationChain, Connection, Direction, Event as TapirEvent, Identity};

/// A token board in miniature: stores, redeems, replays inclusively, broadcasts to itself.
struct Board {
    conn: Connection,
    tokens: TokenServer,
    spent: MemorySpentTokens,
    store: Vec<EncryptedGroupMessage>,
    synced: bool,
}

impl Board {
    fn send(&mut self, p: Payload) {
        self.conn.send(&Message::from(p).to_json()).unwrap();
    }

    fn serve(&mut self) {
        while let Some(e) = self.conn.poll_event() {
            let TapirEvent::Payload(bytes) = e else {
                continue;
            };
            match Message::from_json(&bytes)
                .and_then(Message::into_payload)
                .unwrap()
            {
                Payload::ReplayRequest(r) => {
                    let lc = r.last_commit.unwrap_or_default();
                    let from = self
                        .store
                        .iter()
                        .position(|e| e.signature.as_deref() == Some(&lc[..]))
                        .unwrap_or(0);
                    let msgs = self.store[from..].to_vec();
                    self.send(Payload::ReplayResult(ReplayResult {
                        num_messages: msgs.len() as i64,
                    }));
                    for m in msgs {
                        self.conn.send(&m.to_json()).unwrap();
                    }
                    self.synced = true;
                }
                Payload::PostRequest(p) => {
                    let spent = SpentToken {
                        t: p.token.t.unwrap().try_into().unwrap(),
                        mac: p.token.mac.unwrap().try_into().unwrap(),
                    };
                    let ok = self
                        .tokens
                        .redeem(
                            &spent,
                            &cwtch_board::post_binding(&p.egm, &onion()),
                            &self.spent,
                        )
                        .is_ok();
                    self.send(Payload::PostResult(PostResult { success: ok }));
                    if ok {
                        self.store.push(p.egm.clone());
                        if self.synced {
                            self.send(Payload::NewMessage(NewMessage { egm: p.egm }));
                        }
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

struct Client {
    conn: Connection,
    m: BoardMachine,
    events: Vec<Event>,
}

impl Client {
    fn step(&mut self) {
        while let Some(e) = self.conn.poll_event() {
            if let TapirEvent::Payload(p) = e {
                self.m.handle(&p).unwrap();
            }
        }
        while let Some(p) = self.m.poll_transmit() {
            self.conn.send(&p).unwrap();
        }
        self.events
            .extend(std::iter::from_fn(|| self.m.poll_event()));
    }
}

/// Move packets both ways, one byte per `receive`, until both sides are quiet.
fn pump(c: &mut Client, b: &mut Board) {
    loop {
        c.step();
        b.serve();
        let mut moved = false;
        while let Some(p) = c.conn.poll_transmit() {
            moved = true;
            for byte in p.chunks(1) {
                b.conn.receive(byte).unwrap();
            }
        }
        while let Some(p) = b.conn.poll_transmit() {
            moved = true;
            for byte in p.chunks(1) {
                c.conn.receive(byte).unwrap();
            }
        }
        if !moved {
            c.step();
            return;
        }
    }
}

fn rng(seed: u64) -> Box<ChaCha20Rng> {
    Box::new(ChaCha20Rng::seed_from_u64(seed))
}

fn session(store: Vec<EncryptedGroupMessage>, m: BoardMachine) -> (Client, Board) {
    let server_id = Arc::new(Identity::from_seed(&[7; 32]));
    assert_eq!(server_id.onion(), onion());
    let client_id = Arc::new(Identity::from_seed(&[9; 32]));
    let mut cc = Connection::new(
        client_id,
        Direction::Outbound {
            remote: server_id.onion(),
        },
        ApplicationChain::authenticated(),
        rng(1),
    );
    let mut sc = Connection::new(
        server_id,
        Direction::Inbound,
        ApplicationChain::authenticated(),
        rng(2),
    );
    cc.start().unwrap();
    sc.start().unwrap();
    let mut client = Client {
        conn: cc,
        m,
        events: Vec::new(),
    };
    let mut board = Board {
        conn: sc,
        tokens: token_server(),
        spent: MemorySpentTokens::new(),
        store,
        synced: false,
    };
    pump(&mut client, &mut board);
    assert!(client.conn.is_established() && board.conn.is_established());
    (client, board)
}

#[test]
fn replay_post_and_live_echo_byte_by_byte_over_an_encrypted_session() {
    let store: Vec<_> = (0..4).map(egm).collect();
    // Resume from message 1: the server repeats it (inclusive), the machine collapses it.
    let m = BoardMachine::new(
        onion(),
        Some(cwtch_board::Cursor::new(sig(1)).unwrap()),
        MachineConfig {
            low_water: 1,
            ..MachineConfig::default()
        },
    );
    let (mut c, mut b) = session(store, m);
    c.m.add_tokens(tokens(&b.tokens, 2, 21));
    c.m.connected().unwrap();
    c.m.request_replay().unwrap();
    pump(&mut c, &mut b);
    assert_eq!(c.m.phase(), Phase::Synced);
    let replayed: Vec<Event> = c.events.drain(..).collect();
    assert_eq!(
        replayed,
        vec![
            Event::Connected,
            Event::Syncing { count: 3 },
            Event::Duplicate(egm(1)),
            Event::Message(cwtch_board::Received {
                egm: egm(2),
                source: Source::Replay
            }),
            Event::Cursor(cwtch_board::Cursor::new(sig(2)).unwrap()),
            Event::Message(cwtch_board::Received {
                egm: egm(3),
                source: Source::Replay
            }),
            Event::Cursor(cwtch_board::Cursor::new(sig(3)).unwrap()),
            Event::Synced,
        ]
    );
    // Post twice: both accepted, both echoed back live; the second leaves the wallet low.
    for i in [10, 11] {
        let p = c.m.prepare_post(egm(i)).unwrap();
        c.m.send_post(p).unwrap();
    }
    pump(&mut c, &mut b);
    let got: Vec<Event> = c
        .events
        .drain(..)
        .filter(|e| !matches!(e, Event::Cursor(_)))
        .collect();
    assert_eq!(
        got,
        vec![
            Event::TokensLow { in_hand: 0 },
            Event::PostResult {
                id: PostId(0),
                accepted: true
            },
            Event::Message(cwtch_board::Received {
                egm: egm(10),
                source: Source::Live
            }),
            Event::PostResult {
                id: PostId(1),
                accepted: true
            },
            Event::Message(cwtch_board::Received {
                egm: egm(11),
                source: Source::Live
            }),
        ]
    );
    assert_eq!(c.m.cursor().unwrap().as_bytes(), sig(11));
    assert_eq!(b.store.len(), 6);
    // A spent token replayed by hand is refused, and pairs with its own post.
    let t = tokens(&b.tokens, 1, 21).remove(0);
    let spent = t.spend(&cwtch_board::post_binding(&egm(12), &onion()));
    let id =
        c.m.send_spent(spent.t.to_vec(), spent.mac.to_vec(), egm(12))
            .unwrap();
    pump(&mut c, &mut b);
    assert_eq!(
        c.events,
        vec![Event::PostResult {
            id,
            accepted: false
        }]
    );
}
