//! Two sans-IO connections talking through an in-memory pipe: every handshake, and every
//! way a peer can misbehave. Each failure must close only the connection it happens on.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tapir::apps::auth::{perform_3dh, AuthMessage};
use tapir::packet::{self, PacketError, PACKET_LEN};
use tapir::{
    AppContext, Application, ApplicationChain, Connection, Direction, Error, Event, Identity, Step,
    AUTHENTICATION_CAPABILITY,
};

fn rng(seed: u64) -> Box<ChaCha20Rng> {
    Box::new(ChaCha20Rng::seed_from_u64(seed))
}

fn identity(seed: u8) -> Arc<Identity> {
    Arc::new(Identity::from_seed(&[seed; 32]))
}

/// Move packets both ways until neither side has anything to send, or one side fails.
/// Returns which side failed (if any) and why.
fn pump(a: &mut Connection, b: &mut Connection) -> Option<(char, Error)> {
    loop {
        let mut moved = false;
        while let Some(p) = a.poll_transmit() {
            moved = true;
            assert_eq!(p.len(), PACKET_LEN);
            if let Err(e) = b.receive(&p) {
                return Some(('b', e));
            }
        }
        while let Some(p) = b.poll_transmit() {
            moved = true;
            assert_eq!(p.len(), PACKET_LEN);
            if let Err(e) = a.receive(&p) {
                return Some(('a', e));
            }
        }
        if !moved {
            return None;
        }
    }
}

fn events(c: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn authed_pair(a_id: &Arc<Identity>, b_id: &Arc<Identity>) -> (Connection, Connection) {
    let mut a = Connection::new(
        a_id.clone(),
        Direction::Outbound {
            remote: b_id.onion(),
        },
        ApplicationChain::authenticated(),
        rng(1),
    );
    let mut b = Connection::new(
        b_id.clone(),
        Direction::Inbound,
        ApplicationChain::authenticated(),
        rng(2),
    );
    a.start().unwrap();
    b.start().unwrap();
    (a, b)
}

#[test]
fn mutual_authentication_then_encrypted_messages_both_ways() {
    let (alice, bob) = (identity(1), identity(2));
    let (mut a, mut b) = authed_pair(&alice, &bob);
    assert!(pump(&mut a, &mut b).is_none());
    assert!(a.is_established() && b.is_established());
    assert_eq!(a.remote(), Some(&bob.onion()));
    assert_eq!(b.remote(), Some(&alice.onion()));
    assert!(a.has_capability(AUTHENTICATION_CAPABILITY));
    assert!(b.has_capability(AUTHENTICATION_CAPABILITY));
    assert!(a.is_encrypted() && b.is_encrypted());
    let ea = events(&mut a);
    assert!(matches!(&ea[0], Event::Authenticated(o) if *o == bob.onion()));
    assert!(matches!(ea[1], Event::Established));
    let eb = events(&mut b);
    assert!(matches!(&eb[0], Event::Authenticated(o) if *o == alice.onion()));

    a.send(b"hello bob").unwrap();
    b.send(b"hello alice").unwrap();
    b.send(&vec![b'x'; packet::MAX_ENCRYPTED_PAYLOAD]).unwrap();
    // What goes on the wire after auth is ciphertext.
    let wire = a.poll_transmit().unwrap();
    assert!(!wire.windows(9).any(|w| w == b"hello bob"));
    b.receive(&wire).unwrap();
    assert!(pump(&mut a, &mut b).is_none());
    assert!(matches!(&events(&mut b)[..], [Event::Payload(p)] if p == b"hello bob"));
    let got = events(&mut a);
    assert_eq!(got.len(), 2);
    assert!(matches!(&got[0], Event::Payload(p) if p == b"hello alice"));
    assert!(matches!(&got[1], Event::Payload(p) if p.len() == packet::MAX_ENCRYPTED_PAYLOAD));
}

#[test]
fn packets_split_at_any_byte_boundary_are_reassembled() {
    let (alice, bob) = (identity(1), identity(2));
    let (mut a, mut b) = authed_pair(&alice, &bob);
    // Deliver every packet one odd-sized chunk at a time.
    fn deliver_in_chunks(from: &mut Connection, to: &mut Connection) -> bool {
        let mut moved = false;
        while let Some(p) = from.poll_transmit() {
            moved = true;
            for chunk in p.chunks(1000) {
                to.receive(chunk).unwrap();
            }
        }
        moved
    }
    while deliver_in_chunks(&mut a, &mut b) | deliver_in_chunks(&mut b, &mut a) {}
    assert!(a.is_established() && b.is_established());
}

#[test]
fn sending_before_established_or_oversize_is_an_error_not_a_truncation() {
    let (alice, bob) = (identity(1), identity(2));
    let (mut a, mut b) = authed_pair(&alice, &bob);
    assert!(matches!(a.send(b"early"), Err(Error::NotEstablished)));
    assert!(pump(&mut a, &mut b).is_none());
    let too_big = vec![0u8; packet::MAX_ENCRYPTED_PAYLOAD + 1];
    assert!(matches!(
        a.send(&too_big),
        Err(Error::Packet(PacketError::PayloadTooLarge { .. }))
    ));
    // The failed send did not queue anything.
    assert!(a.poll_transmit().is_none());
}

#[test]
fn dialling_the_wrong_identity_is_rejected_by_the_dialler() {
    // We dial Bob's onion but the service answering is Carol.
    let (alice, bob, carol) = (identity(1), identity(2), identity(3));
    let mut a = Connection::new(
        alice.clone(),
        Direction::Outbound {
            remote: bob.onion(),
        },
        ApplicationChain::authenticated(),
        rng(1),
    );
    let mut c = Connection::new(
        carol,
        Direction::Inbound,
        ApplicationChain::authenticated(),
        rng(2),
    );
    a.start().unwrap();
    c.start().unwrap();
    let (side, err) = pump(&mut a, &mut c).unwrap();
    assert_eq!(side, 'a');
    assert!(matches!(err, Error::IdentityMismatch { .. }), "{err:?}");
    assert!(a.is_closed());
    assert!(!a.has_capability(AUTHENTICATION_CAPABILITY));
}

/// An attacker that presents a victim's long-term public key without its secret key.
struct Impersonator {
    victim: Arc<Identity>,
    own: Identity,
    ephemeral: Identity,
}

impl Application for Impersonator {
    fn name(&self) -> &'static str {
        "impersonator"
    }
    fn start(&mut self, cx: &mut AppContext<'_>) -> Result<Step, Error> {
        let m = AuthMessage {
            long_term: *self.victim.public_key().as_bytes(),
            ephemeral: *self.ephemeral.public_key().as_bytes(),
        };
        cx.send(&m.to_json())?;
        Ok(Step::Continue)
    }
    fn receive(&mut self, cx: &mut AppContext<'_>, payload: &[u8]) -> Result<Step, Error> {
        // It can compute every DH term except the one needing the victim's secret; it uses
        // its own long-term secret instead and sends a challenge under that key.
        let m = AuthMessage::from_json(payload)?;
        let key = perform_3dh(
            &self.own,
            &self.ephemeral,
            &tapir::PublicKey::from_bytes(&m.long_term)?,
            &tapir::PublicKey::from_bytes(&m.ephemeral)?,
            true,
        )?;
        cx.set_session_key(key);
        cx.send(&[0u8; 120])?;
        Ok(Step::Continue)
    }
}

#[test]
fn a_peer_claiming_anothers_onion_is_rejected() {
    let (victim, server) = (identity(9), identity(2));
    let mut evil = Connection::new(
        identity(66),
        Direction::Outbound {
            remote: server.onion(),
        },
        ApplicationChain::new().then(
            Impersonator {
                victim: victim.clone(),
                own: Identity::from_seed(&[66; 32]),
                ephemeral: Identity::from_seed(&[67; 32]),
            },
            AUTHENTICATION_CAPABILITY,
        ),
        rng(3),
    );
    let mut s = Connection::new(
        server,
        Direction::Inbound,
        ApplicationChain::authenticated(),
        rng(4),
    );
    evil.start().unwrap();
    s.start().unwrap();
    // The attacker sends its claim, reads only the server's auth message, and answers with a
    // challenge under the key it was able to compute.
    s.receive(&evil.poll_transmit().unwrap()).unwrap();
    let server_hello = s.poll_transmit().unwrap();
    let _server_challenge = s.poll_transmit().unwrap();
    evil.receive(&server_hello).unwrap();
    let forged = evil.poll_transmit().unwrap();
    let err = s.receive(&forged).unwrap_err();
    // The impersonator's key differs from the one the server derives for the victim.
    assert!(
        matches!(err, Error::Packet(PacketError::Decrypt)),
        "{err:?}"
    );
    assert!(s.is_closed());
    assert!(s.remote().is_none());
    assert!(!events(&mut s)
        .iter()
        .any(|e| matches!(e, Event::Authenticated(_))));
}

#[test]
fn a_replayed_challenge_from_another_session_is_rejected() {
    // Same two identities, two sessions: a challenge from session 1 fails in session 2,
    // because the transcript (fresh ephemeral keys) differs.
    let (alice, bob) = (identity(1), identity(2));
    let (mut a1, mut b1) = authed_pair(&alice, &bob);
    // Run session 1 and capture Alice's challenge packet (her 2nd packet).
    let hello = a1.poll_transmit().unwrap();
    b1.receive(&hello).unwrap();
    let bob_hello = b1.poll_transmit().unwrap();
    a1.receive(&bob_hello).unwrap();
    let _alice_challenge_1 = a1.poll_transmit().unwrap();

    let mut a2 = Connection::new(
        alice.clone(),
        Direction::Outbound {
            remote: bob.onion(),
        },
        ApplicationChain::authenticated(),
        rng(11),
    );
    let mut b2 = Connection::new(
        bob.clone(),
        Direction::Inbound,
        ApplicationChain::authenticated(),
        rng(12),
    );
    a2.start().unwrap();
    b2.start().unwrap();
    b2.receive(&a2.poll_transmit().unwrap()).unwrap();
    // Feed Bob-2 Alice-1's challenge: it was sealed under session 1's key.
    let err = b2.receive(&_alice_challenge_1).unwrap_err();
    assert!(
        matches!(err, Error::Packet(PacketError::Decrypt)),
        "{err:?}"
    );
}

#[test]
fn tampered_ciphertext_closes_the_connection() {
    let (alice, bob) = (identity(1), identity(2));
    let (mut a, mut b) = authed_pair(&alice, &bob);
    assert!(pump(&mut a, &mut b).is_none());
    a.send(b"pay 10").unwrap();
    let mut p = a.poll_transmit().unwrap();
    p[100] ^= 0x20;
    assert!(matches!(
        b.receive(&p),
        Err(Error::Packet(PacketError::Decrypt))
    ));
    assert!(b.is_closed());
    // Alice's side is untouched.
    assert!(a.is_established() && !a.is_closed());
    // A closed connection refuses further input.
    assert!(matches!(b.receive(&p), Err(Error::Closed)));
}

#[test]
fn garbage_json_in_the_auth_message_is_rejected() {
    for garbage in [
        &b"not json at all"[..],
        b"{}",
        b"{\"LongTermPublicKey\":\"AAAA\",\"EphemeralPublicKey\":\"AAAA\"}",
        b"{\"LongTermPublicKey\":\"!!!\",\"EphemeralPublicKey\":null}",
        b"[1,2,3]",
        b"",
    ] {
        let mut s = Connection::new(
            identity(2),
            Direction::Inbound,
            ApplicationChain::authenticated(),
            rng(4),
        );
        s.start().unwrap();
        let err = s
            .receive(&packet::encode_plain(garbage).unwrap())
            .unwrap_err();
        assert!(
            matches!(err, Error::MalformedAuthMessage(_)),
            "{garbage:?}: {err:?}"
        );
        assert!(s.is_closed());
    }
}

#[test]
fn a_low_order_ephemeral_key_is_rejected() {
    let mut s = Connection::new(
        identity(2),
        Direction::Inbound,
        ApplicationChain::authenticated(),
        rng(4),
    );
    s.start().unwrap();
    let mut identity_point = [0u8; 32];
    identity_point[0] = 1;
    let m = AuthMessage {
        long_term: *identity(5).public_key().as_bytes(),
        ephemeral: identity_point,
    };
    let err = s
        .receive(&packet::encode_plain(&m.to_json()).unwrap())
        .unwrap_err();
    assert!(
        matches!(err, Error::BadPeerKey(torv3::Error::NonContributoryDh)),
        "{err:?}"
    );
}

#[test]
fn malformed_frames_are_rejected() {
    // A frame whose length claims more than a packet can carry.
    let mut s = Connection::new(
        identity(2),
        Direction::Inbound,
        ApplicationChain::authenticated(),
        rng(4),
    );
    s.start().unwrap();
    let mut p = vec![0u8; PACKET_LEN];
    p[0] = 0xff;
    p[1] = 0x7f;
    assert!(matches!(
        s.receive(&p),
        Err(Error::Packet(PacketError::BadLength))
    ));
    // A truncated packet is not an error by itself: the connection waits for the rest.
    let mut s = Connection::new(
        identity(2),
        Direction::Inbound,
        ApplicationChain::authenticated(),
        rng(4),
    );
    s.start().unwrap();
    let ok = packet::encode_plain(b"{}").unwrap();
    s.receive(&ok[..4000]).unwrap();
    assert!(!s.is_closed());
}

/// Go's encoding of an auth message, recorded from encoding/json (testvectors/go-golden.json).
#[test]
fn auth_message_json_is_byte_identical_to_go() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testvectors/go-golden.json"
    );
    let g: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let go = g["json"]["auth_message"].as_str().unwrap().as_bytes();
    let m = AuthMessage::from_json(go).unwrap();
    assert_eq!(m.to_json(), go);
}

/// 3DH material and ordering against values computed with Go's curve25519 (go-golden.json).
#[test]
fn three_dh_matches_go_and_both_sides_agree() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testvectors/go-golden.json"
    );
    let g: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let t = &g["three_dh"];
    let id = |k: &str| {
        let seed: [u8; 32] = hex::decode(t["seeds"][k].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        Identity::from_seed(&seed)
    };
    let (l_out, e_out, l_in, e_in) = (id("L_out"), id("E_out"), id("L_in"), id("E_in"));
    let out = tapir::apps::auth::three_dh_material(
        &l_out,
        &e_out,
        &l_in.public_key(),
        &e_in.public_key(),
        true,
    )
    .unwrap();
    assert_eq!(hex::encode(*out), t["material_outbound"].as_str().unwrap());
    let inb = tapir::apps::auth::three_dh_material(
        &l_in,
        &e_in,
        &l_out.public_key(),
        &e_out.public_key(),
        false,
    )
    .unwrap();
    assert_eq!(*out, *inb);
}

mod tokens {
    //! Proof-of-work and token issuance between a client and a token server.
    use super::*;
    use privacypass::{MemorySpentTokens, TokenServer};
    use rand_chacha::rand_core::RngCore;
    use tapir::apps::pow::{is_solution, PowApp};

    fn token_pair(server: &Arc<TokenServer>, batch: usize) -> (Connection, Connection) {
        let service = identity(20);
        let mut c = Connection::new(
            identity(21),
            Direction::Outbound {
                remote: service.onion(),
            },
            ApplicationChain::token_client(server.public_key(), batch),
            rng(5),
        );
        let mut s = Connection::new(
            service,
            Direction::Inbound,
            ApplicationChain::token_server(server.clone()),
            rng(6),
        );
        c.start().unwrap();
        s.start().unwrap();
        (c, s)
    }

    #[test]
    fn client_obtains_tokens_through_pow_and_spends_them() {
        let server = Arc::new(TokenServer::generate(&mut ChaCha20Rng::seed_from_u64(9)));
        let (mut c, mut s) = token_pair(&server, 10);
        assert!(pump(&mut c, &mut s).is_none());
        assert!(c.is_established() && s.is_established());
        assert!(c.has_capability(tapir::SUCCESSFUL_POW_CAPABILITY));
        assert!(s.has_capability(tapir::SUCCESSFUL_POW_CAPABILITY));
        assert!(c.has_capability(tapir::HAS_TOKENS_CAPABILITY));
        let tokens = events(&mut c)
            .into_iter()
            .find_map(|e| match e {
                Event::Tokens(t) => Some(t),
                _ => None,
            })
            .unwrap();
        assert_eq!(tokens.len(), 10);
        let spent = MemorySpentTokens::default();
        for (i, t) in tokens.iter().enumerate() {
            let data = format!("post {i}");
            server
                .redeem(&t.spend(data.as_bytes()), data.as_bytes(), &spent)
                .unwrap();
        }
        // Spending any of them again fails.
        assert!(matches!(
            server.redeem(&tokens[3].spend(b"post 3"), b"post 3", &spent),
            Err(privacypass::Error::DoubleSpend)
        ));
    }

    #[test]
    fn a_wrong_pow_solution_is_rejected() {
        let server = Arc::new(TokenServer::generate(&mut ChaCha20Rng::seed_from_u64(9)));
        let (_c, mut s) = token_pair(&server, 10);
        let _seed = s.poll_transmit().unwrap();
        // 32 random bytes solve a 16-bit puzzle with probability 2^-16; with this fixed RNG
        // seed they don't (the test would say so clearly if they did).
        let mut bogus = [0u8; 32];
        ChaCha20Rng::seed_from_u64(77).fill_bytes(&mut bogus);
        let err = s
            .receive(&packet::encode_plain(&bogus).unwrap())
            .unwrap_err();
        assert!(matches!(err, Error::InvalidPow), "{err:?}");
        assert!(s.is_closed());
        // A solution of the wrong length is rejected too, without looking at the hash.
        let (_c, mut s) = token_pair(&server, 10);
        let _ = s.poll_transmit();
        assert!(matches!(
            s.receive(&packet::encode_plain(&[0u8; 31]).unwrap()),
            Err(Error::InvalidPow)
        ));
        assert!(!is_solution(&[0u8; 64], &[0u8; 33]));
    }

    /// A token server that tampers with its proof after signing.
    struct ForgingServer(Arc<TokenServer>);
    impl Application for ForgingServer {
        fn name(&self) -> &'static str {
            "forger"
        }
        fn start(&mut self, cx: &mut AppContext<'_>) -> Result<Step, Error> {
            cx.transcript().new_protocol(tapir::compat::TOKEN_PROTOCOL);
            Ok(Step::Continue)
        }
        fn receive(&mut self, cx: &mut AppContext<'_>, payload: &[u8]) -> Result<Step, Error> {
            let blinded = privacypass::blinded_batch_from_json(payload)?;
            let (t, r) = cx.transcript_and_rng();
            let mut batch = self.0.sign_batch(&blinded, t, r)?;
            // Swap two signed tokens: each is validly signed, but not for the token it answers.
            batch.signed_tokens.swap(0, 1);
            cx.send(&batch.to_json())?;
            Ok(Step::Done)
        }
    }

    #[test]
    fn a_forged_batch_proof_yields_no_tokens() {
        let server = Arc::new(TokenServer::generate(&mut ChaCha20Rng::seed_from_u64(9)));
        let service = identity(20);
        let mut c = Connection::new(
            identity(21),
            Direction::Outbound {
                remote: service.onion(),
            },
            ApplicationChain::token_client(server.public_key(), 5),
            rng(5),
        );
        let mut s = Connection::new(
            service,
            Direction::Inbound,
            ApplicationChain::new()
                .then(PowApp::new(), tapir::SUCCESSFUL_POW_CAPABILITY)
                .then_unchecked(ForgingServer(server.clone())),
            rng(6),
        );
        c.start().unwrap();
        s.start().unwrap();
        let (side, err) = pump(&mut c, &mut s).unwrap();
        assert_eq!(side, 'a');
        assert!(
            matches!(err, Error::Token(privacypass::Error::BadProof)),
            "{err:?}"
        );
        assert!(!c.has_capability(tapir::HAS_TOKENS_CAPABILITY));
        assert!(!events(&mut c).iter().any(|e| matches!(e, Event::Tokens(_))));
    }

    #[test]
    fn a_client_verifying_against_the_wrong_server_key_gets_no_tokens() {
        let server = Arc::new(TokenServer::generate(&mut ChaCha20Rng::seed_from_u64(9)));
        let other = TokenServer::generate(&mut ChaCha20Rng::seed_from_u64(10));
        let service = identity(20);
        let mut c = Connection::new(
            identity(21),
            Direction::Outbound {
                remote: service.onion(),
            },
            ApplicationChain::token_client(other.public_key(), 3),
            rng(5),
        );
        let mut s = Connection::new(
            service,
            Direction::Inbound,
            ApplicationChain::token_server(server),
            rng(6),
        );
        c.start().unwrap();
        s.start().unwrap();
        let (side, err) = pump(&mut c, &mut s).unwrap();
        assert_eq!(side, 'a');
        assert!(
            matches!(err, Error::Token(privacypass::Error::BadProof)),
            "{err:?}"
        );
    }

    #[test]
    fn garbage_token_requests_close_the_server_side() {
        let server = Arc::new(TokenServer::generate(&mut ChaCha20Rng::seed_from_u64(9)));
        let (mut c, mut s) = token_pair(&server, 3);
        // Run the PoW only: deliver the seed, then the client's solution.
        c.receive(&s.poll_transmit().unwrap()).unwrap();
        let solution = c.poll_transmit().unwrap();
        s.receive(&solution).unwrap();
        assert!(s.has_capability(tapir::SUCCESSFUL_POW_CAPABILITY));
        let err = s
            .receive(&packet::encode_plain(b"[{\"P\":\"nope\"}]").unwrap())
            .unwrap_err();
        assert!(matches!(err, Error::Token(_)), "{err:?}");
        assert!(s.is_closed());
    }
}

/// A peer that owns its key and derives the session key correctly, but did not commit to the
/// same transcript (here: it sends zeros instead of the challenge).
struct WrongChallenge {
    me: Arc<Identity>,
    ephemeral: Identity,
}

impl Application for WrongChallenge {
    fn name(&self) -> &'static str {
        "wrong-challenge"
    }
    fn start(&mut self, cx: &mut AppContext<'_>) -> Result<Step, Error> {
        let m = AuthMessage {
            long_term: *self.me.public_key().as_bytes(),
            ephemeral: *self.ephemeral.public_key().as_bytes(),
        };
        cx.send(&m.to_json())?;
        Ok(Step::Continue)
    }
    fn receive(&mut self, cx: &mut AppContext<'_>, payload: &[u8]) -> Result<Step, Error> {
        let m = AuthMessage::from_json(payload)?;
        let key = perform_3dh(
            &self.me,
            &self.ephemeral,
            &tapir::PublicKey::from_bytes(&m.long_term)?,
            &tapir::PublicKey::from_bytes(&m.ephemeral)?,
            true,
        )?;
        cx.set_session_key(key);
        cx.send(&[0u8; 120])?;
        Ok(Step::Continue)
    }
}

#[test]
fn a_right_key_with_a_wrong_challenge_is_rejected() {
    let (me, server) = (identity(30), identity(2));
    let mut peer = Connection::new(
        me.clone(),
        Direction::Outbound {
            remote: server.onion(),
        },
        ApplicationChain::new().then(
            WrongChallenge {
                me,
                ephemeral: Identity::from_seed(&[31; 32]),
            },
            AUTHENTICATION_CAPABILITY,
        ),
        rng(3),
    );
    let mut s = Connection::new(
        server,
        Direction::Inbound,
        ApplicationChain::authenticated(),
        rng(4),
    );
    peer.start().unwrap();
    s.start().unwrap();
    s.receive(&peer.poll_transmit().unwrap()).unwrap();
    peer.receive(&s.poll_transmit().unwrap()).unwrap();
    let err = s.receive(&peer.poll_transmit().unwrap()).unwrap_err();
    // It decrypts (the key is right) but the challenge is not the transcript's.
    assert!(matches!(err, Error::ChallengeMismatch), "{err:?}");
    assert!(s.is_closed() && s.remote().is_none());
}
