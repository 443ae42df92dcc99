//! A hostile Cwtch server for the peer library's tests (issue 10), and what it serves.
//!
//! The server is real where the member can check it and scripted where it cannot: a token
//! board hosted by a `tapir-service` listener under the server's identity (authenticated
//! tapir sessions, as a real server's board), a real token service (proof of work and Privacy
//! Pass tokens), and a key bundle signed by the board's identity. What the board *says* is up
//! to the test: every connection a member opens is handed to the test as a [`BoardConn`],
//! which reads the member's requests and answers with whatever the test wants, in the
//! token-board protocol (protocol.md §5.2/§5.3) or not: replays that drop, reorder, repeat
//! and inject messages, live messages before the replay ends, negative counts, bytes that
//! decode as nothing.
//!
//! The messages come from real identities through `cwtch_model::group::Group::seal`; the
//! forgeries a hostile member could make are built here (a small NaCl secretbox, checked
//! against `Group::seal` by the tests, because none of this crate's dependencies exposes one).

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use cwtch::{Acn, Event, ServerState};
use cwtch_model::gojson;
use cwtch_model::group::{first_previous_message_sig, signature_input, signed_group_id};
use cwtch_model::tokenboard::{NewMessage, Payload, ReplayResult};
use cwtch_model::{
    DecryptedGroupMessage, EncryptedGroupMessage, Group, GroupInvite, KeyBundle, Message,
};
use privacypass::TokenServer;
use rand_core::{OsRng, RngCore};
use tapir::{ApplicationChain, Identity, Onion};
use tapir_service::{Connection, Service, ServiceConfig};
use tokio::sync::{broadcast, mpsc};

/// How long the server waits for anything a member should do.
pub const SERVER_WAIT: Duration = Duration::from_secs(20);

/// A hostile server: see the module documentation.
pub struct HostileServer {
    identity: Arc<Identity>,
    bundle: KeyBundle,
    conns: mpsc::Receiver<Connection>,
    _services: (Service, Service),
}

impl HostileServer {
    /// Host a board and a token service on `acn`.
    pub async fn start(acn: Arc<dyn Acn>) -> HostileServer {
        let identity = Arc::new(Identity::generate(&mut OsRng));
        let token_identity = Arc::new(Identity::generate(&mut OsRng));
        let tokens = Arc::new(TokenServer::generate(&mut OsRng));
        let board = Service::new(identity.clone(), acn.clone(), ServiceConfig::default());
        let mut listener = board.listen(ApplicationChain::authenticated).await.unwrap();
        let token_service = Service::new(token_identity.clone(), acn, ServiceConfig::default());
        let ts = tokens.clone();
        let mut token_listener = token_service
            .listen(move || ApplicationChain::token_server(ts.clone()))
            .await
            .unwrap();
        // Token-service connections complete inside the chain; nothing to do with them.
        tokio::spawn(async move { while token_listener.accept().await.is_some() {} });
        let (tx, conns) = mpsc::channel(16);
        tokio::spawn(async move {
            while let Some(c) = listener.accept().await {
                if tx.send(c).await.is_err() {
                    break;
                }
            }
        });
        let mut bundle = KeyBundle::new_server_bundle(
            &identity.onion(),
            &token_identity.onion(),
            &tokens.public_key().to_bytes(),
        );
        bundle.sign(&identity);
        HostileServer {
            identity,
            bundle,
            conns,
            _services: (board, token_service),
        }
    }

    /// The token board's onion (the groups' server).
    pub fn onion(&self) -> Onion {
        self.identity.onion()
    }

    /// A new group on this server.
    pub fn group(&self) -> Group {
        Group::generate(&mut OsRng, self.onion())
    }

    /// The `tofubundle:` invite to `group` (Go's form): this server's signed bundle and the
    /// group's invite.
    pub fn invite(&self, group: &Group, name: &str) -> String {
        format!(
            "tofubundle:{}||{}",
            self.bundle.to_server_string(),
            group.invite(name.to_owned()).to_invite_string()
        )
    }

    /// The next board connection a member opens (authenticated), within [`SERVER_WAIT`].
    pub async fn accept(&mut self) -> BoardConn {
        let conn = tokio::time::timeout(SERVER_WAIT, self.conns.recv())
            .await
            .expect("a member connects to the board in time")
            .expect("the board listener is running");
        BoardConn { conn }
    }
}

/// One member's connection to the hostile board, as the server sees it.
pub struct BoardConn {
    conn: Connection,
}

impl BoardConn {
    /// The member's next request.
    pub async fn request(&mut self) -> Payload {
        let bytes = tokio::time::timeout(SERVER_WAIT, self.conn.recv())
            .await
            .expect("a request in time")
            .expect("the member keeps the connection open");
        Message::from_json(&bytes)
            .and_then(Message::into_payload)
            .unwrap()
    }

    /// Wait for the member's `ReplayRequest`; its `LastCommit`.
    pub async fn replay_request(&mut self) -> Option<Vec<u8>> {
        match self.request().await {
            Payload::ReplayRequest(r) => r.last_commit,
            p => panic!("expected a replay request, got {p:?}"),
        }
    }

    /// Send a token-board message.
    pub async fn send(&self, p: Payload) {
        self.raw(Message::from(p).to_json()).await;
    }

    /// Send one packet of arbitrary bytes.
    pub async fn raw(&self, bytes: Vec<u8>) {
        self.conn.send(bytes).await.unwrap();
    }

    /// `ReplayResult{n}` and nothing else.
    pub async fn replay_result(&self, n: i64) {
        self.send(Payload::ReplayResult(ReplayResult { num_messages: n }))
            .await;
    }

    /// A replay of exactly `msgs`: `ReplayResult{len}`, then each as a bare message.
    pub async fn replay(&self, msgs: &[&EncryptedGroupMessage]) {
        self.replay_result(i64::try_from(msgs.len()).unwrap()).await;
        for m in msgs {
            self.raw(m.to_json()).await;
        }
    }

    /// A live message (`NewMessage`).
    pub async fn live(&self, m: &EncryptedGroupMessage) {
        self.send(Payload::NewMessage(NewMessage { egm: m.clone() }))
            .await;
    }

    /// Wait until the member closes the connection (it sends nothing meanwhile).
    pub async fn closed_by_member(mut self) {
        let got = tokio::time::timeout(SERVER_WAIT, self.conn.recv())
            .await
            .expect("the member closes the connection in time");
        assert!(got.is_none(), "the member sent {got:?} instead of closing");
    }

    /// Hang up.
    pub fn close(self) {
        self.conn.close();
    }
}

// ---- messages ----

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The overlay JSON of a text message (`text` has nothing JSON would escape).
pub fn overlay(text: &str) -> String {
    format!(r#"{{"o":1,"d":"{text}"}}"#)
}

/// `text` from `author` to `group`, sealed as the peer library does, after `previous` (the
/// latest message the author saw; `None`: the author's first).
pub fn seal(
    group: &Group,
    author: &Identity,
    text: &str,
    previous: Option<&EncryptedGroupMessage>,
) -> EncryptedGroupMessage {
    let previous: Option<torv3::Signature> = previous.map(|p| sig_bytes(p).try_into().unwrap());
    group
        .seal(author, &overlay(text), previous.as_ref(), now(), &mut OsRng)
        .unwrap()
        .egm
}

/// A message's signature.
pub fn sig_bytes(m: &EncryptedGroupMessage) -> &[u8] {
    m.signature.as_deref().unwrap()
}

/// A message's signature as the library shows it (std base64).
pub fn sig_b64(m: &EncryptedGroupMessage) -> String {
    gojson::base64_std(sig_bytes(m))
}

/// Random bytes.
pub fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0; n];
    OsRng.fill_bytes(&mut v);
    v
}

/// Garbage: a ciphertext of the right length that no key opens, under a random signature.
pub fn garbage() -> EncryptedGroupMessage {
    EncryptedGroupMessage {
        ciphertext: Some(random(cwtch_model::group::GROUP_CIPHERTEXT_LEN)),
        signature: Some(random(64)),
    }
}

/// A genuine ciphertext under another signature (one bit changed).
pub fn resigned(m: &EncryptedGroupMessage) -> EncryptedGroupMessage {
    let mut sig = sig_bytes(m).to_vec();
    sig[17] ^= 0x20;
    EncryptedGroupMessage {
        ciphertext: m.ciphertext.clone(),
        signature: Some(sig),
    }
}

/// The group's key.
pub fn key_of(group: &Group) -> [u8; 32] {
    group.invite(String::new()).shared_key
}

/// The same key on another server: a group whose messages open with `group`'s key but are
/// signed for another group ID and server (the forwarding attack of the Cwtch handbook).
pub fn same_key_elsewhere(group: &Group) -> Group {
    let elsewhere = Identity::generate(&mut OsRng).onion();
    Group::from_invite(&GroupInvite::new(String::new(), key_of(group), elsewhere)).unwrap()
}

/// A message `signer` (a member: it has the group key) seals for `group` and signs with its
/// own key, but whose `Onion` is `claimed`: an impersonation of another member.
pub fn impersonation(
    group: &Group,
    signer: &Identity,
    claimed: &Onion,
    text: &str,
) -> EncryptedGroupMessage {
    let dgm = DecryptedGroupMessage {
        text: overlay(text).into_bytes(),
        onion: claimed.as_str().to_owned(),
        timestamp: now(),
        signed_group_id: Some(signed_group_id(group.id())),
        previous_message_sig: Some(first_previous_message_sig(group.server())),
        padding: Some(random(300)),
    };
    let json = dgm.to_json();
    let signature = signer.sign(&signature_input(group, &json));
    EncryptedGroupMessage {
        ciphertext: Some(secretbox::seal(&key_of(group), &json)),
        signature: Some(signature.to_vec()),
    }
}

/// Bytes that the group key opens but that are not a group message.
pub fn sealed_junk(group: &Group) -> EncryptedGroupMessage {
    EncryptedGroupMessage {
        ciphertext: Some(secretbox::seal(
            &key_of(group),
            b"this is not a group message",
        )),
        signature: Some(random(64)),
    }
}

/// NaCl secretbox (XSalsa20-Poly1305) in Go's layout, `nonce(24) || tag(16) || ciphertext`,
/// as `cwtch_model` seals group messages. Test-only; checked against `Group::seal`.
pub mod secretbox {
    use rand_core::{OsRng, RngCore};

    const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

    fn le32(b: &[u8]) -> u32 {
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    fn quarter(x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
        x[b] ^= x[a].wrapping_add(x[d]).rotate_left(7);
        x[c] ^= x[b].wrapping_add(x[a]).rotate_left(9);
        x[d] ^= x[c].wrapping_add(x[b]).rotate_left(13);
        x[a] ^= x[d].wrapping_add(x[c]).rotate_left(18);
    }

    fn rounds(x: &mut [u32; 16]) {
        for _ in 0..10 {
            quarter(x, 0, 4, 8, 12);
            quarter(x, 5, 9, 13, 1);
            quarter(x, 10, 14, 2, 6);
            quarter(x, 15, 3, 7, 11);
            quarter(x, 0, 1, 2, 3);
            quarter(x, 5, 6, 7, 4);
            quarter(x, 10, 11, 8, 9);
            quarter(x, 15, 12, 13, 14);
        }
    }

    /// The Salsa20 state for `key` and a 16-byte input (nonce and counter, or HSalsa20's nonce).
    fn state(key: &[u8; 32], input: &[u8; 16]) -> [u32; 16] {
        let mut s = [0u32; 16];
        s[0] = SIGMA[0];
        s[5] = SIGMA[1];
        s[10] = SIGMA[2];
        s[15] = SIGMA[3];
        for i in 0..4 {
            s[1 + i] = le32(&key[4 * i..]);
            s[11 + i] = le32(&key[16 + 4 * i..]);
            s[6 + i] = le32(&input[4 * i..]);
        }
        s
    }

    fn hsalsa20(key: &[u8; 32], nonce: &[u8; 16]) -> [u8; 32] {
        let mut x = state(key, nonce);
        rounds(&mut x);
        let mut out = [0u8; 32];
        for (i, w) in [0, 5, 10, 15, 6, 7, 8, 9].into_iter().enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&x[w].to_le_bytes());
        }
        out
    }

    /// `n` bytes of XSalsa20 keystream from block 0.
    fn keystream(key: &[u8; 32], nonce: &[u8; 24], n: usize) -> Vec<u8> {
        let sub = hsalsa20(key, nonce[..16].try_into().unwrap());
        let mut out = Vec::with_capacity(n + 64);
        let mut counter = 0u64;
        while out.len() < n {
            let mut input = [0u8; 16];
            input[..8].copy_from_slice(&nonce[16..]);
            input[8..].copy_from_slice(&counter.to_le_bytes());
            let s = state(&sub, &input);
            let mut x = s;
            rounds(&mut x);
            for (a, b) in x.iter().zip(s) {
                out.extend_from_slice(&a.wrapping_add(b).to_le_bytes());
            }
            counter += 1;
        }
        out.truncate(n);
        out
    }

    /// Poly1305 (26-bit limbs, after poly1305-donna).
    fn poly1305(key: &[u8], msg: &[u8]) -> [u8; 16] {
        const M: u64 = 0x3ff_ffff;
        let r0 = u64::from(le32(&key[0..])) & 0x3ff_ffff;
        let r1 = u64::from(le32(&key[3..]) >> 2) & 0x3ff_ff03;
        let r2 = u64::from(le32(&key[6..]) >> 4) & 0x3ff_c0ff;
        let r3 = u64::from(le32(&key[9..]) >> 6) & 0x3f0_3fff;
        let r4 = u64::from(le32(&key[12..]) >> 8) & 0x00f_ffff;
        let (s1, s2, s3, s4) = (r1 * 5, r2 * 5, r3 * 5, r4 * 5);
        let (mut h0, mut h1, mut h2, mut h3, mut h4) = (0u64, 0u64, 0u64, 0u64, 0u64);
        for chunk in msg.chunks(16) {
            let mut b = [0u8; 17];
            b[..chunk.len()].copy_from_slice(chunk);
            b[chunk.len()] = 1;
            h0 += u64::from(le32(&b[0..])) & M;
            h1 += u64::from(le32(&b[3..]) >> 2) & M;
            h2 += u64::from(le32(&b[6..]) >> 4) & M;
            h3 += u64::from(le32(&b[9..]) >> 6) & M;
            h4 += u64::from(le32(&b[13..])) & M;
            let d0 = h0 * r0 + h1 * s4 + h2 * s3 + h3 * s2 + h4 * s1;
            let mut d1 = h0 * r1 + h1 * r0 + h2 * s4 + h3 * s3 + h4 * s2;
            let mut d2 = h0 * r2 + h1 * r1 + h2 * r0 + h3 * s4 + h4 * s3;
            let mut d3 = h0 * r3 + h1 * r2 + h2 * r1 + h3 * r0 + h4 * s4;
            let mut d4 = h0 * r4 + h1 * r3 + h2 * r2 + h3 * r1 + h4 * r0;
            h0 = d0 & M;
            d1 += d0 >> 26;
            h1 = d1 & M;
            d2 += d1 >> 26;
            h2 = d2 & M;
            d3 += d2 >> 26;
            h3 = d3 & M;
            d4 += d3 >> 26;
            h4 = d4 & M;
            h0 += (d4 >> 26) * 5;
            h1 += h0 >> 26;
            h0 &= M;
        }
        // Full carry, then h mod 2^130 - 5.
        let mut c = h1 >> 26;
        h1 &= M;
        h2 += c;
        c = h2 >> 26;
        h2 &= M;
        h3 += c;
        c = h3 >> 26;
        h3 &= M;
        h4 += c;
        c = h4 >> 26;
        h4 &= M;
        h0 += c * 5;
        c = h0 >> 26;
        h0 &= M;
        h1 += c;
        let mut g0 = h0 + 5;
        c = g0 >> 26;
        g0 &= M;
        let mut g1 = h1 + c;
        c = g1 >> 26;
        g1 &= M;
        let mut g2 = h2 + c;
        c = g2 >> 26;
        g2 &= M;
        let mut g3 = h3 + c;
        c = g3 >> 26;
        g3 &= M;
        let g4 = (h4 + c).wrapping_sub(1 << 26);
        if g4 >> 63 == 0 {
            (h0, h1, h2, h3, h4) = (g0, g1, g2, g3, g4 & M);
        }
        // Limbs may hold a carry bit: add, do not OR (mod 2^128).
        let h = [(h0, 0), (h1, 26), (h2, 52), (h3, 78), (h4, 104)]
            .into_iter()
            .fold(0u128, |acc, (l, shift)| {
                acc.wrapping_add(u128::from(l) << shift)
            });
        let s = u128::from_le_bytes(key[16..32].try_into().unwrap());
        h.wrapping_add(s).to_le_bytes()
    }

    /// Seal `plaintext` under `key` with a random nonce.
    pub fn seal(key: &[u8; 32], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 24];
        OsRng.fill_bytes(&mut nonce);
        let ks = keystream(key, &nonce, 32 + plaintext.len());
        let body: Vec<u8> = plaintext
            .iter()
            .zip(&ks[32..])
            .map(|(p, k)| p ^ k)
            .collect();
        let tag = poly1305(&ks[..32], &body);
        [&nonce[..], &tag[..], &body[..]].concat()
    }

    /// Open what [`seal`] (or `Group::seal`) made; `None` if the tag does not verify.
    pub fn open(key: &[u8; 32], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < 40 {
            return None;
        }
        let nonce: [u8; 24] = sealed[..24].try_into().unwrap();
        let body = &sealed[40..];
        let ks = keystream(key, &nonce, 32 + body.len());
        if poly1305(&ks[..32], body) != sealed[24..40] {
            return None;
        }
        Some(body.iter().zip(&ks[32..]).map(|(c, k)| c ^ k).collect())
    }
}

// ---- the member's side ----

/// Every event of a Cwtch home, in order, kept for assertions.
pub struct Recorder {
    rx: broadcast::Receiver<Event>,
    /// Every event read so far.
    pub seen: Vec<Event>,
    /// Events before this index were matched (or passed) by [`Recorder::until`].
    pos: usize,
}

impl Recorder {
    pub fn new(rx: broadcast::Receiver<Event>) -> Recorder {
        Recorder {
            rx,
            seen: Vec::new(),
            pos: 0,
        }
    }

    /// The first event after the previous match that matches `pred`, reading more within
    /// [`SERVER_WAIT`]. Events are kept in [`Recorder::seen`] either way.
    pub async fn until(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        if let Some(i) = self.seen[self.pos..].iter().position(&pred) {
            self.pos += i + 1;
            return self.seen[self.pos - 1].clone();
        }
        let deadline = tokio::time::Instant::now() + SERVER_WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Ok(e)) => {
                    self.seen.push(e.clone());
                    if pred(&e) {
                        self.pos = self.seen.len();
                        return e;
                    }
                }
                Ok(Err(broadcast::error::RecvError::Lagged(n))) => panic!("lagged {n} events"),
                Ok(Err(broadcast::error::RecvError::Closed)) => panic!("events closed: {what}"),
                Err(_) => panic!("timed out waiting for {what}; seen: {:#?}", self.seen),
            }
        }
    }

    /// The texts of every `GroupMessage` seen so far, in order.
    pub fn group_texts(&self) -> Vec<String> {
        self.seen
            .iter()
            .filter_map(|e| match e {
                Event::GroupMessage { text, .. } => Some(text.clone().unwrap_or_default()),
                _ => None,
            })
            .collect()
    }

    /// Every `MissingMessages` seen so far: (member, message id, previous signature).
    pub fn missing(&self) -> Vec<(String, i64, String)> {
        self.seen
            .iter()
            .filter_map(|e| match e {
                Event::MissingMessages {
                    member,
                    message_id,
                    previous_signature,
                    ..
                } => Some((member.clone(), *message_id, previous_signature.clone())),
                _ => None,
            })
            .collect()
    }

    /// How many times the server's state became `state`.
    pub fn server_states(&self, state: ServerState) -> usize {
        self.seen
            .iter()
            .filter(|e| matches!(e, Event::ServerStateChanged { state: s, .. } if *s == state))
            .count()
    }
}

/// A `GroupMessage` with this text.
pub fn group_text(text: &str) -> impl Fn(&Event) -> bool + '_ {
    move |e| matches!(e, Event::GroupMessage { text: Some(t), .. } if t == text)
}

/// A server state change to `state`.
pub fn server_state(state: ServerState) -> impl Fn(&Event) -> bool {
    move |e| matches!(e, Event::ServerStateChanged { state: s, .. } if *s == state)
}
