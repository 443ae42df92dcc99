//! Group messages: a client's trial-decrypt + verify of one message, and trial decryption of a
//! message for none of 10 groups (the common case), each against the raw cryptography of the
//! same sizes measured in the same run.

#![allow(clippy::unwrap_used)] // a bench that fails should stop loudly

use std::hint::black_box;

use criterion::Throughput;
use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use crypto_secretbox::{Nonce, Tag, XSalsa20Poly1305};
use cwtch_model::group::{signature_input, GROUP_CIPHERTEXT_LEN};
use cwtch_model::{DecryptedGroupMessage, Error, Group};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use torv3::{Identity, Onion, PublicKey};

const TEXT: &str =
    r#"{"o":1,"d":"Meet at the usual place at eight; bring the maps and the spare batteries."}"#;

fn main() {
    let mut c = benchkit::criterion();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let server = Onion::from_key_bytes(&[1; 32]);
    let groups: Vec<Group> = (0..11)
        .map(|_| Group::generate(&mut rng, server.clone()))
        .collect();
    let (mine, others) = groups.split_first().unwrap();
    let alice = Identity::generate(&mut rng);
    let sealed = mine
        .seal(&alice, TEXT, None, 1_700_000_000, &mut rng)
        .unwrap();
    let egm = &sealed.egm;
    let ct = egm.ciphertext.as_deref().unwrap();
    let sig = egm.signature.as_deref().unwrap();
    assert_eq!(ct.len(), GROUP_CIPHERTEXT_LEN);
    assert_eq!(egm.open([mine]).unwrap(), sealed.message);
    assert_eq!(egm.open(others), Err(Error::NotForAnyGroup));

    // What the baselines work on: the same ciphertext, key, signature and signed bytes.
    let key = mine.invite(String::new()).shared_key;
    let cipher = XSalsa20Poly1305::new((&key).into());
    let (nonce, rest) = ct.split_at(24);
    let (tag, body) = rest.split_at(16);
    let (nonce, tag) = (Nonce::from_slice(nonce), Tag::from_slice(tag));
    let mut buf = body.to_vec();
    cipher
        .decrypt_in_place_detached(nonce, b"", &mut buf, tag)
        .unwrap();
    let json = DecryptedGroupMessage::from_json(&buf).unwrap().to_json();
    let signed = signature_input(mine, &json);
    let sender_key = *alice.public_key().as_bytes();
    let other_ciphers: Vec<XSalsa20Poly1305> = others
        .iter()
        .map(|g| XSalsa20Poly1305::new((&g.invite(String::new()).shared_key).into()))
        .collect();

    let mut g = c.benchmark_group("group");
    g.throughput(Throughput::Elements(1));

    // Baseline: one secretbox open of the ciphertext, then one Ed25519 verification (decoding
    // the sender's key, as any verification from an address must) of the bytes a group
    // signature covers.
    g.bench_function("raw_open_verify", |b| {
        b.iter(|| {
            buf.copy_from_slice(body);
            cipher
                .decrypt_in_place_detached(nonce, b"", &mut buf, tag)
                .unwrap();
            let pk = PublicKey::from_bytes(black_box(&sender_key)).unwrap();
            pk.verify(black_box(&signed), sig).unwrap();
            black_box(&buf);
        })
    });
    g.bench_function("open", |b| {
        b.iter(|| {
            black_box(egm.open([black_box(mine)]).unwrap());
        })
    });

    // Baseline: ten failing Poly1305 checks of the ciphertext, one copy of it.
    g.bench_function("raw_10_tag_checks", |b| {
        b.iter(|| {
            buf.copy_from_slice(body);
            for c in &other_ciphers {
                assert!(c
                    .decrypt_in_place_detached(nonce, b"", &mut buf, tag)
                    .is_err());
            }
            black_box(&buf);
        })
    });
    g.bench_function("trial_10_none", |b| {
        b.iter(|| {
            assert_eq!(egm.open(black_box(others)), Err(Error::NotForAnyGroup));
        })
    });

    // Sealing, against a secretbox seal and an Ed25519 signature of the same sizes.
    let mut seal_buf = vec![0u8; GROUP_CIPHERTEXT_LEN - 40];
    g.bench_function("raw_seal_sign", |b| {
        b.iter(|| {
            let tag = cipher
                .encrypt_in_place_detached(nonce, b"", &mut seal_buf)
                .unwrap();
            black_box((tag, alice.sign(black_box(&signed))));
        })
    });
    g.bench_function("seal", |b| {
        b.iter(|| {
            black_box(
                mine.seal(&alice, TEXT, None, 1_700_000_000, &mut rng)
                    .unwrap(),
            );
        })
    });
    g.finish();
    c.final_summary();
    benchkit::report(&[
        ("group/open", "group/raw_open_verify"),
        ("group/trial_10_none", "group/raw_10_tag_checks"),
        ("group/seal", "group/raw_seal_sign"),
    ]);
}
