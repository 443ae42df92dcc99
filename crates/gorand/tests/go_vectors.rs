//! Compare against output recorded from Go 1.19's `math/rand` (testvectors/go-math-rand.json).

#![allow(clippy::unwrap_used)]

use gorand::GoRand;
use serde_json::Value;

fn cases() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testvectors/go-math-rand.json"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["cases"].as_array().unwrap().clone()
}

fn seed(c: &Value) -> i64 {
    c["seed"].as_str().unwrap().parse().unwrap()
}

#[test]
fn three_reads_of_64_bytes_carry_state() {
    let cases = cases();
    assert_eq!(cases.len(), 13);
    for c in &cases {
        let mut r = GoRand::new(seed(c));
        let mut out = Vec::new();
        for _ in 0..3 {
            let mut b = [0u8; 64];
            r.read(&mut b);
            out.extend_from_slice(&b);
        }
        assert_eq!(
            hex::encode(out),
            c["read_64x3"].as_str().unwrap(),
            "seed {}",
            seed(c)
        );
    }
}

#[test]
fn first_int63s() {
    for c in &cases() {
        let mut r = GoRand::new(seed(c));
        let got: Vec<String> = (0..3).map(|_| r.int63().to_string()).collect();
        let want: Vec<String> = c["int63_first3"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, want, "seed {}", seed(c));
    }
}

#[test]
fn mixed_size_reads() {
    for c in &cases() {
        let mut r = GoRand::new(seed(c));
        let mut out = Vec::new();
        for n in [5usize, 64, 3, 1, 13] {
            let mut b = vec![0u8; n];
            r.read(&mut b);
            out.extend_from_slice(&b);
        }
        assert_eq!(
            hex::encode(out),
            c["mixed_reads_5_64_3_1_13"].as_str().unwrap(),
            "seed {}",
            seed(c)
        );
    }
}

proptest::proptest! {
    /// However a stream is cut into reads, the bytes are the same.
    #[test]
    fn read_splitting_does_not_change_the_stream(seed: i64, cuts in proptest::collection::vec(0usize..40, 0..12)) {
        let total: usize = cuts.iter().sum();
        let mut whole = vec![0u8; total];
        GoRand::new(seed).read(&mut whole);
        let mut r = GoRand::new(seed);
        let mut pieces = Vec::new();
        for n in cuts {
            let mut b = vec![0u8; n];
            r.read(&mut b);
            pieces.extend_from_slice(&b);
        }
        proptest::prop_assert_eq!(whole, pieces);
    }
}
