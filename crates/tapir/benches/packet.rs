//! Encrypted packet seal+open against raw secretbox of the same 8152 bytes.

#![allow(clippy::unwrap_used)] // a bench that fails should stop loudly

use std::hint::black_box;

use criterion::Throughput;
use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use tapir::packet::{self, SessionKey, PACKET_LEN, SEALED_FRAME_LEN};

fn main() {
    let mut c = benchkit::criterion();
    let key = SessionKey::from_bytes([7u8; 32]);
    let nonce = [9u8; 24];
    let payload = vec![0x5au8; 1000];
    let mut g = c.benchmark_group("packet");
    g.throughput(Throughput::Bytes(PACKET_LEN as u64));

    // Baseline: the cipher work no implementation can avoid, in place, no allocation.
    let cipher = XSalsa20Poly1305::new(key.as_bytes().into());
    let mut buf = vec![0u8; SEALED_FRAME_LEN];
    g.bench_function("raw_secretbox", |b| {
        b.iter(|| {
            let n = Nonce::from_slice(&nonce);
            let tag = cipher.encrypt_in_place_detached(n, b"", &mut buf).unwrap();
            cipher
                .decrypt_in_place_detached(n, b"", &mut buf, &tag)
                .unwrap();
            black_box(&buf);
        })
    });
    g.bench_function("seal_open", |b| {
        b.iter(|| {
            let p = packet::seal(&key, &nonce, black_box(&payload)).unwrap();
            let arr: &[u8; PACKET_LEN] = p.as_slice().try_into().unwrap();
            black_box(packet::open(&key, arr).unwrap());
        })
    });
    g.bench_function("plain_encode_decode", |b| {
        b.iter(|| {
            let p = packet::encode_plain(black_box(&payload)).unwrap();
            let arr: &[u8; PACKET_LEN] = p.as_slice().try_into().unwrap();
            black_box(packet::decode_plain(arr).unwrap().len());
        })
    });
    g.finish();
    c.final_summary();
    benchkit::report(&[("packet/seal_open", "packet/raw_secretbox")]);
}
