//! A full auth handshake (both sides, in memory) against the scalar multiplications it needs:
//! per side one Ed25519 key generation (a base-point multiplication) and three X25519
//! Diffie-Hellman operations with Edwards-to-Montgomery conversion.

#![allow(clippy::unwrap_used)] // a bench that fails should stop loudly

use std::hint::black_box;
use std::sync::Arc;

use rand_core::OsRng;
use tapir::{ApplicationChain, Connection, Direction, Identity};

fn handshake(a_id: &Arc<Identity>, b_id: &Arc<Identity>) {
    let mut a = Connection::new(
        a_id.clone(),
        Direction::Outbound {
            remote: b_id.onion(),
        },
        ApplicationChain::authenticated(),
        Box::new(OsRng),
    );
    let mut b = Connection::new(
        b_id.clone(),
        Direction::Inbound,
        ApplicationChain::authenticated(),
        Box::new(OsRng),
    );
    a.start().unwrap();
    b.start().unwrap();
    loop {
        let mut moved = false;
        while let Some(p) = a.poll_transmit() {
            moved = true;
            b.receive(&p).unwrap();
        }
        while let Some(p) = b.poll_transmit() {
            moved = true;
            a.receive(&p).unwrap();
        }
        if !moved {
            break;
        }
    }
    assert!(a.is_established() && b.is_established());
}

fn main() {
    let mut c = benchkit::criterion();
    let alice = Arc::new(Identity::generate(&mut OsRng));
    let bob = Arc::new(Identity::generate(&mut OsRng));
    let (x, y) = (
        Identity::generate(&mut OsRng),
        Identity::generate(&mut OsRng),
    );
    let (xp, yp) = (x.public_key(), y.public_key());
    let mut g = c.benchmark_group("auth");
    g.bench_function("scalar_mults", |b| {
        b.iter(|| {
            for _ in 0..2 {
                black_box(Identity::generate(&mut OsRng).public_key());
                for _ in 0..3 {
                    black_box(x.diffie_hellman(black_box(&yp)).unwrap());
                }
            }
            black_box(&xp);
        })
    });
    g.bench_function("handshake", |b| b.iter(|| handshake(&alice, &bob)));
    g.finish();
    c.final_summary();
    benchkit::report(&[("auth/handshake", "auth/scalar_mults")]);
}
