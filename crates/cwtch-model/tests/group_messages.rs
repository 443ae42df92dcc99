//! Sealing and opening group messages (protocol.md §6.2, §6.4): the Go layout of what we seal,
//! seal∘open, fixed ciphertext length, group separation, tampering, and no panics on any input.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::sync::OnceLock;

use base64::Engine as _;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use cwtch_model::group::{
    first_previous_message_sig, padding_for, GROUP_CIPHERTEXT_LEN, GROUP_NONCE_LEN,
    GROUP_PLAINTEXT_LEN, GROUP_TAG_LEN, MAX_GROUP_TEXT_BYTES, MAX_GROUP_TEXT_ENCODED,
};
use cwtch_model::{DecryptedGroupMessage, EncryptedGroupMessage, Error, Group, GroupId};
use proptest::prelude::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use torv3::{Identity, Onion};

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn server(n: u8) -> Onion {
    Onion::from_key_bytes(&[n; 32])
}

/// Three groups on server 1 and one on server 2 that shares group 0's key.
fn groups() -> &'static [Group; 4] {
    static G: OnceLock<[Group; 4]> = OnceLock::new();
    G.get_or_init(|| {
        let a = Group::generate(&mut rng(1), server(1));
        let twin = Group::from_invite(&{
            let mut i = a.invite(String::new());
            i.server_host = server(2);
            i.group_id = cwtch_model::derive_group_id(&i.shared_key, &i.server_host);
            i
        })
        .unwrap();
        [
            a,
            Group::generate(&mut rng(2), server(1)),
            Group::generate(&mut rng(3), server(1)),
            twin,
        ]
    })
}

fn key_of(g: &Group) -> [u8; 32] {
    g.invite(String::new()).shared_key
}

/// The plaintext of a ciphertext, decrypted independently with the group key.
fn decrypt(g: &Group, ct: &[u8]) -> Vec<u8> {
    let cipher = XSalsa20Poly1305::new((&key_of(g)).into());
    cipher
        .decrypt(Nonce::from_slice(&ct[..24]), &ct[24..])
        .unwrap()
}

/// Encrypt any plaintext under a group's key, as a member could.
fn encrypt(g: &Group, plaintext: &[u8]) -> Vec<u8> {
    let cipher = XSalsa20Poly1305::new((&key_of(g)).into());
    let nonce = [7u8; 24];
    let mut ct = nonce.to_vec();
    ct.extend(
        cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .unwrap(),
    );
    ct
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn sealed_plaintext_is_go_json_of_the_documented_fields() {
    let [g, ..] = groups();
    let alice = Identity::from_seed(&[5; 32]);
    let sealed = g
        .seal(
            &alice,
            r#"{"o":1,"d":"<hi> & \"bye\""}"#,
            None,
            1_700_000_000,
            &mut rng(9),
        )
        .unwrap();
    let ct = sealed.egm.ciphertext.as_deref().unwrap();
    assert_eq!(ct.len(), GROUP_CIPHERTEXT_LEN);
    let plaintext = decrypt(g, ct);
    assert_eq!(plaintext.len(), GROUP_PLAINTEXT_LEN);

    // Go's json.Marshal of the struct, then only spaces (0-3).
    let json_end = plaintext.iter().rposition(|&b| b == b'}').unwrap() + 1;
    assert!(plaintext.len() - json_end <= 3);
    assert!(plaintext[json_end..].iter().all(|&b| b == b' '));
    let json = &plaintext[..json_end];
    let dgm = DecryptedGroupMessage::from_json(json).unwrap();
    assert_eq!(dgm.to_json(), json, "canonical Go JSON");
    let prefix = format!(
        r#"{{"Text":"{{\"o\":1,\"d\":\"\u003chi\u003e \u0026 \\\"bye\\\"\"}}","Onion":"{}","Timestamp":1700000000,"SignedGroupID":"{}","PreviousMessageSig":"{}","Padding":""#,
        alice.onion(),
        b64(g.id().as_bytes()),
        b64(g.server().as_str().as_bytes()),
    );
    assert!(
        json.starts_with(prefix.as_bytes()),
        "{}",
        String::from_utf8_lossy(json)
    );
    assert_eq!(dgm.signed_group_id.as_deref(), Some(&g.id().as_bytes()[..]));
    assert_eq!(
        dgm.previous_message_sig,
        Some(first_previous_message_sig(g.server()))
    );

    // The signature: hex group ID + server onion + base64 of that JSON, by the sender's key.
    let input = format!("{}{}{}", g.id(), g.server(), b64(json));
    let sig = sealed.egm.signature.as_deref().unwrap();
    alice
        .public_key()
        .verify(input.as_bytes(), sig)
        .expect("signature over GroupID + server + base64(json)");
    assert_eq!(&sealed.message.signature()[..], sig);
    assert_eq!(sealed.message.sender(), &alice.onion());
    assert_eq!(sealed.message.group_id(), g.id());
    assert_eq!(
        sealed.message.previous_message_sig(),
        dgm.previous_message_sig.as_deref()
    );
}

#[test]
fn plaintext_length_is_the_largest_case_exactly() {
    // 20-digit timestamp, 64-byte previous signature, empty text: 1800 padding bytes, no
    // spaces.
    let [g, ..] = groups();
    let alice = Identity::from_seed(&[5; 32]);
    let sealed = g
        .seal(&alice, "", Some(&[0xab; 64]), u64::MAX, &mut rng(1))
        .unwrap();
    let plaintext = decrypt(g, sealed.egm.ciphertext.as_deref().unwrap());
    let dgm = DecryptedGroupMessage::from_json(&plaintext).unwrap();
    assert_eq!(dgm.padding.as_ref().map(Vec::len), Some(1800));
    assert_eq!(dgm.to_json(), plaintext);
    assert_eq!(padding_for(GROUP_PLAINTEXT_LEN - 2400), (1800, 0));
    assert_eq!(
        GROUP_CIPHERTEXT_LEN,
        GROUP_PLAINTEXT_LEN + GROUP_NONCE_LEN + GROUP_TAG_LEN
    );
}

#[test]
fn text_limits() {
    let [g, ..] = groups();
    let alice = Identity::from_seed(&[5; 32]);
    let seal = |t: &str| g.seal(&alice, t, None, 1, &mut rng(1));
    let ok = |t: &str| {
        let s = seal(t).unwrap();
        assert_eq!(s.egm.ciphertext.unwrap().len(), GROUP_CIPHERTEXT_LEN);
    };
    ok(&"a".repeat(MAX_GROUP_TEXT_BYTES));
    ok(&"<".repeat(MAX_GROUP_TEXT_ENCODED / 6));
    ok(&"\u{2028}".repeat(MAX_GROUP_TEXT_ENCODED / 6));
    ok(&"é".repeat(MAX_GROUP_TEXT_BYTES / 2));
    assert_eq!(
        seal(&"a".repeat(MAX_GROUP_TEXT_BYTES + 1)),
        Err(Error::GroupTextTooLong {
            bytes: 1801,
            encoded: 1801
        })
    );
    assert_eq!(
        seal(&"<".repeat(MAX_GROUP_TEXT_ENCODED / 6 + 1)),
        Err(Error::GroupTextTooLong {
            bytes: 401,
            encoded: 2406
        })
    );
    assert_eq!(
        seal(&"\"".repeat(MAX_GROUP_TEXT_BYTES)),
        Err(Error::GroupTextTooLong {
            bytes: 1800,
            encoded: 3600
        })
    );
}

#[test]
fn forwarded_to_a_same_key_group_on_another_server_is_wrong_binding() {
    let [a, b, c, twin] = groups();
    let alice = Identity::from_seed(&[5; 32]);
    let sealed = a.seal(&alice, "hi", None, 1, &mut rng(1)).unwrap();
    assert_eq!(sealed.egm.open([a]).unwrap(), sealed.message);
    assert_eq!(
        sealed.egm.open([twin]),
        Err(Error::WrongGroupBinding {
            group_id: twin.id()
        })
    );
    assert_eq!(sealed.egm.open([b, c]), Err(Error::NotForAnyGroup));
    // With the right group anywhere in the list, it opens.
    assert_eq!(sealed.egm.open([b, c, a]).unwrap(), sealed.message);
}

#[test]
fn a_member_cannot_rewrite_a_message() {
    let [g, ..] = groups();
    let alice = Identity::from_seed(&[5; 32]);
    let mallory = Identity::from_seed(&[6; 32]);
    let sealed = g.seal(&alice, "pay bob", None, 1, &mut rng(1)).unwrap();
    let plaintext = decrypt(g, sealed.egm.ciphertext.as_deref().unwrap());
    let mut dgm = DecryptedGroupMessage::from_json(&plaintext).unwrap();
    dgm.text = b"pay mallory".to_vec();
    let forged = EncryptedGroupMessage {
        ciphertext: Some(encrypt(g, &dgm.to_json())),
        signature: sealed.egm.signature.clone(),
    };
    let bad = Err(Error::BadGroupSignature { group_id: g.id() });
    assert_eq!(forged.open([g]), bad);
    // Claiming to be someone else.
    let mut dgm = DecryptedGroupMessage::from_json(&plaintext).unwrap();
    dgm.onion = mallory.onion().to_string();
    let forged = EncryptedGroupMessage {
        ciphertext: Some(encrypt(g, &dgm.to_json())),
        signature: sealed.egm.signature.clone(),
    };
    assert_eq!(forged.open([g]), bad);
    // A sender field that is no onion.
    dgm.onion = "alice".into();
    let forged = EncryptedGroupMessage {
        ciphertext: Some(encrypt(g, &dgm.to_json())),
        signature: sealed.egm.signature.clone(),
    };
    assert!(matches!(
        forged.open([g]),
        Err(Error::MalformedGroupMessage { group_id, .. }) if group_id == g.id()
    ));
    // Garbage under the key.
    let forged = EncryptedGroupMessage {
        ciphertext: Some(encrypt(g, b"not json")),
        signature: sealed.egm.signature.clone(),
    };
    assert!(matches!(
        forged.open([g]),
        Err(Error::MalformedGroupMessage { .. })
    ));
    // Signature missing or the wrong length.
    for signature in [None, Some(vec![]), Some(vec![1; 63]), Some(vec![1; 65])] {
        let e = EncryptedGroupMessage {
            ciphertext: sealed.egm.ciphertext.clone(),
            signature,
        };
        assert_eq!(e.open([g]), bad);
    }
    // The same message re-encrypted (new nonce) still verifies: the signature covers the
    // plaintext, not the ciphertext.
    let again = EncryptedGroupMessage {
        ciphertext: Some(encrypt(g, &plaintext)),
        signature: sealed.egm.signature.clone(),
    };
    assert_eq!(again.open([g]).unwrap(), sealed.message);
}

#[test]
fn unverified_then_verified() {
    let [g, ..] = groups();
    let alice = Identity::from_seed(&[5; 32]);
    let sealed = g
        .seal(&alice, "hi", Some(&[3; 64]), 42, &mut rng(1))
        .unwrap();
    let unverified = sealed.egm.trial_decrypt([g]).unwrap();
    assert_eq!(unverified.group_id(), g.id());
    assert_eq!(unverified.signature(), &sealed.message.signature()[..]);
    let m = unverified.verify().unwrap();
    assert_eq!(m.text(), "hi");
    assert_eq!(m.timestamp(), 42);
    assert_eq!(m.previous_message_sig(), Some(&[3u8; 64][..]));
}

#[test]
fn short_and_missing_ciphertexts_are_for_no_group() {
    let [g, ..] = groups();
    for ciphertext in [None, Some(vec![]), Some(vec![0; 39]), Some(vec![0; 40])] {
        let e = EncryptedGroupMessage {
            ciphertext,
            signature: Some(vec![0; 64]),
        };
        assert_eq!(e.open([g]), Err(Error::NotForAnyGroup));
    }
    // An empty plaintext under the key is a malformed message, not a panic.
    let e = EncryptedGroupMessage {
        ciphertext: Some(encrypt(g, b"")),
        signature: None,
    };
    assert!(matches!(
        e.open([g]),
        Err(Error::MalformedGroupMessage { .. })
    ));
    let none: [&Group; 0] = [];
    assert_eq!(
        EncryptedGroupMessage::default().open(none),
        Err(Error::NotForAnyGroup)
    );
}

#[test]
fn large_plaintexts_open_through_the_heap_path() {
    // A member may send longer messages than we do (Go's plaintexts vary); they open too.
    let [g, ..] = groups();
    let alice = Identity::from_seed(&[5; 32]);
    let text = "x".repeat(6000);
    let dgm = DecryptedGroupMessage {
        text: text.clone().into_bytes(),
        onion: alice.onion().to_string(),
        timestamp: 7,
        signed_group_id: Some(g.id().as_bytes().to_vec()),
        previous_message_sig: None,
        padding: None,
    };
    let json = dgm.to_json();
    let input = format!("{}{}{}", g.id(), g.server(), b64(&json));
    let e = EncryptedGroupMessage {
        ciphertext: Some(encrypt(g, &json)),
        signature: Some(alice.sign(input.as_bytes()).to_vec()),
    };
    let m = e.open([g]).unwrap();
    assert_eq!(m.text(), text);
    assert_eq!(m.previous_message_sig(), None);
}

#[test]
fn debug_never_shows_the_key() {
    let [g, ..] = groups();
    let key = key_of(g);
    let dbg = format!("{g:?}");
    assert!(!dbg.contains(&b64(&key)));
    assert!(!dbg.contains(&hex::encode(key)));
    assert!(!dbg.contains(&format!("{:?}", key)));
    assert!(dbg.contains("<redacted>"));
    // The ID is sensitive too (it links messages to a group).
    assert!(!format!("{:?}", g.id()).contains(&g.id().to_string()));
}

#[test]
fn group_id_is_gos_hex() {
    let [g, ..] = groups();
    let id: GroupId = g.id();
    let s = id.to_string();
    assert_eq!(s.len(), 32);
    assert_eq!(s, hex::encode(id.as_bytes()));
    assert_eq!(s, cwtch_model::derive_group_id(&key_of(g), g.server()));
}

#[test]
fn invites_with_a_wrong_id_make_no_group() {
    let [g, ..] = groups();
    let mut invite = g.invite("n".into());
    assert_eq!(Group::from_invite(&invite).unwrap().id(), g.id());
    invite.group_id = "00".repeat(16);
    assert_eq!(
        Group::from_invite(&invite).map(|g| g.id()),
        Err(Error::GroupIdMismatch)
    );
    invite.group_id = g.id().to_string().to_uppercase();
    assert_eq!(
        Group::from_invite(&invite).map(|g| g.id()),
        Err(Error::GroupIdMismatch)
    );
}

/// Texts within both limits: any characters, rich in what JSON escapes.
fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => any::<char>().prop_map(String::from),
        2 => "[a-z ]{0,40}",
        1 => prop::sample::select(vec!["<", ">", "&", "\"", "\\", "\u{2028}", "\u{0}", "\n", "\u{fffd}", "é"])
            .prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..120)
        .prop_map(|v| v.concat())
        .prop_filter("within the limits", |t| {
            let mut escaped = Vec::new();
            cwtch_model::gojson::write_string(&mut escaped, t.as_bytes());
            t.len() <= MAX_GROUP_TEXT_BYTES && escaped.len() - 2 <= MAX_GROUP_TEXT_ENCODED
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// seal∘open is the identity, every ciphertext has the same length, and no other group
    /// opens it.
    #[test]
    fn seal_then_open(
        text in text(),
        sender in any::<[u8; 32]>(),
        group in 0usize..3,
        previous in prop::option::of(any::<[u8; 64]>()),
        now in prop_oneof![any::<u64>(), 0u64..10, 1_600_000_000u64..2_000_000_000],
        seed in any::<u64>(),
    ) {
        let gs = groups();
        let g = &gs[group];
        let sender = Identity::from_seed(&sender);
        let sealed = g.seal(&sender, &text, previous.as_ref(), now, &mut rng(seed)).unwrap();
        prop_assert_eq!(sealed.egm.ciphertext.as_ref().unwrap().len(), GROUP_CIPHERTEXT_LEN);
        prop_assert_eq!(sealed.message.text(), text.as_str());
        prop_assert_eq!(sealed.message.timestamp(), now);
        let opened = sealed.egm.open(gs.iter()).unwrap();
        prop_assert_eq!(&opened, &sealed.message);
        // The EGM survives its Go JSON (as relayed by a server).
        let relayed = EncryptedGroupMessage::from_json(&sealed.egm.to_json()).unwrap();
        prop_assert_eq!(relayed.open(gs.iter()).unwrap(), opened);
        // No other group opens it; the twin on the other server has its key but not its binding.
        let others = gs.iter().enumerate().filter(|(i, _)| *i != group).map(|(_, g)| g);
        let expected = if group == 0 {
            Err(Error::WrongGroupBinding { group_id: gs[3].id() })
        } else {
            Err(Error::NotForAnyGroup)
        };
        prop_assert_eq!(sealed.egm.open(others), expected);
    }

    /// Any bit flipped in the ciphertext or the signature is rejected.
    #[test]
    fn every_bit_flip_is_rejected(text in text(), bit in any::<prop::sample::Index>(), in_sig in any::<bool>()) {
        let [g, ..] = groups();
        let alice = Identity::from_seed(&[5; 32]);
        let sealed = g.seal(&alice, &text, None, 1, &mut rng(3)).unwrap();
        let mut egm = sealed.egm.clone();
        if in_sig {
            let sig = egm.signature.as_mut().unwrap();
            let i = bit.index(sig.len() * 8);
            sig[i / 8] ^= 1 << (i % 8);
            prop_assert_eq!(egm.open([g]), Err(Error::BadGroupSignature { group_id: g.id() }));
        } else {
            let ct = egm.ciphertext.as_mut().unwrap();
            let i = bit.index(ct.len() * 8);
            ct[i / 8] ^= 1 << (i % 8);
            prop_assert_eq!(egm.open([g]), Err(Error::NotForAnyGroup));
        }
    }

    /// Arbitrary ciphertexts, signatures and EGM JSON never panic, and random bytes are for no
    /// group.
    #[test]
    fn arbitrary_messages_never_panic(
        ciphertext in prop::option::of(prop::collection::vec(any::<u8>(), 0..5000)),
        signature in prop::option::of(prop::collection::vec(any::<u8>(), 0..100)),
        json in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let gs = groups();
        let egm = EncryptedGroupMessage { ciphertext, signature };
        prop_assert_eq!(egm.open(gs.iter()), Err(Error::NotForAnyGroup));
        if let Ok(egm) = EncryptedGroupMessage::from_json(&json) {
            let _ = egm.open(gs.iter());
        }
    }

    /// Arbitrary plaintexts under a group key (what a misbehaving member can send) never panic
    /// and never verify without the sender's key.
    #[test]
    fn arbitrary_plaintexts_under_the_key_never_panic(
        plaintext in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..400),
            (".{0,50}", prop::option::of(prop::collection::vec(any::<u8>(), 0..20)), any::<u64>())
                .prop_map(|(text, sgid, ts)| DecryptedGroupMessage {
                    text: text.into_bytes(),
                    onion: Identity::from_seed(&[5; 32]).onion().to_string(),
                    timestamp: ts,
                    signed_group_id: sgid,
                    previous_message_sig: None,
                    padding: None,
                }.to_json()),
        ],
        signature in prop::collection::vec(any::<u8>(), 64..=64),
    ) {
        let [g, ..] = groups();
        let egm = EncryptedGroupMessage {
            ciphertext: Some(encrypt(g, &plaintext)),
            signature: Some(signature),
        };
        let r = egm.open([g]);
        prop_assert!(matches!(
            r,
            Err(Error::MalformedGroupMessage { .. }
                | Error::BadGroupSignature { .. }
                | Error::WrongGroupBinding { .. })
        ), "{:?}", r);
    }
}

// PBKDF2 (4096 rounds) per group: fewer cases.
proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any group key and server: seal∘open, and a group with another key never opens it.
    #[test]
    fn any_group(seed in any::<u64>(), server_key in any::<[u8; 32]>(), text in text()) {
        let mut r = rng(seed);
        let g = Group::generate(&mut r, Onion::from_key_bytes(&server_key));
        let h = Group::generate(&mut r, Onion::from_key_bytes(&server_key));
        let again = Group::from_invite(&g.invite("x".into())).unwrap();
        prop_assert_eq!(again.id(), g.id());
        let sender = Identity::generate(&mut r);
        let sealed = g.seal(&sender, &text, None, 5, &mut r).unwrap();
        prop_assert_eq!(sealed.egm.open([&h]), Err(Error::NotForAnyGroup));
        prop_assert_eq!(sealed.egm.open([&h, &again]).unwrap(), sealed.message);
    }
}
