//! Group messages: arbitrary EGM JSON and arbitrary raw ciphertexts and signatures are opened
//! against a fixed set of groups (one of them the real invite's) without panicking, and random
//! bytes are for no group; arbitrary texts from arbitrary senders seal to the fixed length and
//! open to the same message in their group only; arbitrary invite strings are parsed, and a
//! group built from one that parses seals a message that opens again.
#![no_main]

use std::sync::OnceLock;

use cwtch_model::group::{
    EncryptedGroupMessage, Group, GroupInvite, GROUP_CIPHERTEXT_LEN, MAX_GROUP_TEXT_BYTES,
    MAX_GROUP_TEXT_ENCODED,
};
use cwtch_model::Error;
use libfuzzer_sys::fuzz_target;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use torv3::{Identity, Onion};

/// The group of the real invite in `testvectors/vectors.json` (made by Go Cwtch), and two more
/// on the same server.
fn groups() -> &'static [Group; 3] {
    static G: OnceLock<[Group; 3]> = OnceLock::new();
    G.get_or_init(|| {
        let real = GroupInvite::parse_invite_string(
            "torv3eyJHcm91cElEIjoiOTQwYTc5OGI4MjY4YzI1Yjg0ZmMzYThlNWFhM2RiMzkiLCJHcm91cE5hbWUiOiJDd3RjaCBSZWxlYXNlIENhbmRpZGF0ZSBUZXN0ZXJzISIsIlNpZ25lZEdyb3VwSUQiOm51bGwsIlRpbWVzdGFtcCI6MCwiU2hhcmVkS2V5IjoiS3lmT2F6YzJuNUZyS1AzYzV5allheTZpVEN5TXhKQUhrT29YVWpSV3k4QT0iLCJTZXJ2ZXJIb3N0IjoiaXNicjJ0NmJmbHVsMnp5aTZoanRudWV6YjJ4dmZyNDJzdnpqZzJxM2d5cWZnZzN3bW5yYmtrcWQifQ==",
        )
        .expect("the real invite parses");
        let server = real.server_host.clone();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        [
            Group::from_invite(&real).expect("the real invite's ID checks"),
            Group::generate(&mut rng, server.clone()),
            Group::generate(&mut rng, server),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let gs = groups();

    // A relayed EGM, as a server sends it (its JSON).
    if let Ok(egm) = EncryptedGroupMessage::from_json(data) {
        if let Ok(m) = egm.open(gs.iter()) {
            // Only a message signed by its sender for one of our groups opens.
            assert!(gs.iter().any(|g| g.id() == m.group_id()));
            assert_eq!(egm.signature.as_deref(), Some(&m.signature()[..]));
        }
    }

    // Raw bytes as signature || ciphertext: forging a tag is out of reach.
    let (signature, ciphertext) = data.split_at(data.len().min(64));
    let raw = EncryptedGroupMessage {
        ciphertext: Some(ciphertext.to_vec()),
        signature: Some(signature.to_vec()),
    };
    assert_eq!(raw.open(gs.iter()), Err(Error::NotForAnyGroup));

    // The bytes as a text sealed in the second group by a sender they choose: sealed to the
    // fixed length and opened to the same message by that group only, or refused as too long.
    // (A member can also encrypt plaintexts that are not messages at all; the property tests
    // in crates/cwtch-model/tests/group_messages.rs cover those.)
    let (head, text) = data.split_at(data.len().min(9));
    let text = String::from_utf8_lossy(text);
    let mut seed = [0u8; 32];
    seed[..head.len()].copy_from_slice(head);
    let now = u64::from_le_bytes(seed[1..9].try_into().expect("8 bytes"));
    let previous = (seed[0] & 1 == 1).then_some([seed[0]; 64]);
    let sender = Identity::from_seed(&seed);
    match gs[1].seal(
        &sender,
        &text,
        previous.as_ref(),
        now,
        &mut ChaCha20Rng::seed_from_u64(3),
    ) {
        Ok(sealed) => {
            assert_eq!(
                sealed.egm.ciphertext.as_ref().map(Vec::len),
                Some(GROUP_CIPHERTEXT_LEN)
            );
            assert_eq!(sealed.egm.open(gs.iter()), Ok(sealed.message.clone()));
            assert_eq!(sealed.message.text(), text);
            assert_eq!(
                sealed.egm.open([&gs[0], &gs[2]]),
                Err(Error::NotForAnyGroup)
            );
        }
        Err(Error::GroupTextTooLong { bytes, encoded }) => {
            assert_eq!(bytes, text.len());
            assert!(bytes > MAX_GROUP_TEXT_BYTES || encoded > MAX_GROUP_TEXT_ENCODED);
        }
        Err(e) => panic!("sealing failed: {e:?}"),
    }

    // Invite strings: a group from any invite that parses seals and opens.
    let s = String::from_utf8_lossy(data);
    if let Ok(invite) = GroupInvite::parse_invite_string(&s) {
        let g = Group::from_invite(&invite).expect("parse_invite_string checked the ID");
        assert_eq!(g.id().to_string(), invite.group_id);
        let sender = Identity::from_seed(&[9; 32]);
        let sealed = g
            .seal(&sender, "fuzz", None, 1, &mut ChaCha20Rng::seed_from_u64(2))
            .expect("a short text seals");
        assert_eq!(sealed.egm.open([&g]), Ok(sealed.message));
    }
    let _ = Onion::parse(&s);
});
