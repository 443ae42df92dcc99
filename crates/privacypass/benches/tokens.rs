//! Token issuance and redemption against the raw ristretto255 operations they are made of.
//!
//! The baselines are the raw ristretto255 calls the protocol cannot avoid, made the same
//! efficient way the implementation makes them: issuing n tokens is n hash-to-group maps,
//! 3n variable-base multiplications (blind, sign, unblind), one batch inversion, four
//! n-term multiscalar multiplications (M and Z, by the server and again by the client), and the
//! DLEQ proof (a base-point and a variable-base multiplication) and its check (a double-base and
//! a 2-term multiscalar multiplication). The ratio is what transcripts, JSON, `%v` rendering and
//! bookkeeping add. Redeeming one token is one hash-to-group and one multiplication.

#![allow(clippy::unwrap_used)] // a bench that fails should stop loudly

use std::hint::black_box;

use curve25519_dalek::traits::VartimeMultiscalarMul;
use curve25519_dalek::{RistrettoPoint, Scalar};
use privacypass::{blind_batch, unblind_batch, MemorySpentTokens, TokenServer, Transcript};
use rand_core::OsRng;
use sha3::{Digest, Sha3_512};

const N: usize = 10;

fn issue(server: &TokenServer) -> Vec<privacypass::Token> {
    let (unsigned, blinded) = blind_batch(N, &mut OsRng);
    let mut ts = Transcript::new("tapir-transcript");
    let batch = server.sign_batch(&blinded, &mut ts, &mut OsRng).unwrap();
    let mut tc = Transcript::new("tapir-transcript");
    unblind_batch(unsigned, &blinded, &batch, &server.public_key(), &mut tc).unwrap()
}

fn main() {
    let mut c = benchkit::criterion();
    let server = TokenServer::generate(&mut OsRng);
    let p = RistrettoPoint::from_uniform_bytes(&[3u8; 64]);
    let k = Scalar::from_bytes_mod_order_wide(&[5u8; 64]);
    let mut g = c.benchmark_group("tokens");
    let points: Vec<RistrettoPoint> = (0..N)
        .map(|i| RistrettoPoint::from_uniform_bytes(&[i as u8; 64]))
        .collect();
    let weights: Vec<Scalar> = (0..N)
        .map(|i| Scalar::from_bytes_mod_order_wide(&[i as u8 + 1; 64]))
        .collect();
    g.bench_function("raw_ops_issue_10", |b| {
        b.iter(|| {
            for i in 0..N {
                let h = Sha3_512::digest([i as u8; 32]);
                black_box(RistrettoPoint::from_uniform_bytes(&h.into()));
            }
            for p in &points {
                for _ in 0..3 {
                    black_box(k * black_box(p));
                }
            }
            let mut inv = weights.clone();
            black_box(Scalar::batch_invert(&mut inv));
            for _ in 0..4 {
                black_box(RistrettoPoint::vartime_multiscalar_mul(&weights, &points));
            }
            black_box(RistrettoPoint::mul_base(&k));
            black_box(k * p);
            black_box(RistrettoPoint::vartime_double_scalar_mul_basepoint(
                &k, &p, &k,
            ));
            black_box(RistrettoPoint::vartime_multiscalar_mul([k, k], [p, p]));
        })
    });
    g.bench_function("issue_10", |b| b.iter(|| black_box(issue(&server))));

    g.bench_function("raw_ops_redeem", |b| {
        b.iter(|| {
            let h = Sha3_512::digest(black_box([1u8; 32]));
            let t = RistrettoPoint::from_uniform_bytes(&h.into());
            black_box((k * t).compress())
        })
    });
    // Fresh tokens each batch, so every redemption is a first spend.
    let store = MemorySpentTokens::new();
    g.bench_function("redeem", |b| {
        b.iter_batched(
            || issue(&server).pop().unwrap(),
            |t| {
                let spent = t.spend(b"data");
                server.redeem(&spent, b"data", &store).unwrap();
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
    c.final_summary();
    benchkit::report(&[
        ("tokens/issue_10", "tokens/raw_ops_issue_10"),
        ("tokens/redeem", "tokens/raw_ops_redeem"),
    ]);
}
