#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod cooked;

use cooked::RNG_COOKED;

const RNG_LEN: usize = 607;
const RNG_TAP: usize = 273;
const RNG_MASK: u64 = (1 << 63) - 1;
const INT32_MAX: i64 = (1 << 31) - 1;

/// Go's `seedrand`: `x[n+1] = 48271 * x[n] mod (2**31 - 1)`, in Schrage's form.
fn seedrand(x: i32) -> i32 {
    const A: i32 = 48271;
    const Q: i32 = 44488;
    const R: i32 = 3399;
    let hi = x / Q;
    let lo = x % Q;
    let mut x = A.wrapping_mul(lo).wrapping_sub(R.wrapping_mul(hi));
    if x < 0 {
        x = x.wrapping_add(INT32_MAX as i32);
    }
    x
}

/// Go's `math/rand` generator, equivalent to `rand.New(rand.NewSource(seed))`.
///
/// Deterministic; not for secrets.
#[derive(Clone)]
pub struct GoRand {
    tap: usize,
    feed: usize,
    vec: Box<[i64; RNG_LEN]>,
    read_val: i64,
    read_pos: i8,
}

impl GoRand {
    /// A generator seeded as Go's `rand.NewSource(seed)`.
    pub fn new(seed: i64) -> GoRand {
        let mut seed = seed % INT32_MAX;
        if seed < 0 {
            seed += INT32_MAX;
        }
        if seed == 0 {
            seed = 89_482_311;
        }
        let mut vec = Box::new([0i64; RNG_LEN]);
        // In range: 0 < seed < 2^31 - 1.
        let mut x = seed as i32;
        for i in -20..RNG_LEN as isize {
            x = seedrand(x);
            if i >= 0 {
                let mut u = i64::from(x) << 40;
                x = seedrand(x);
                u ^= i64::from(x) << 20;
                x = seedrand(x);
                u ^= i64::from(x);
                // `i` is non-negative here.
                let i = i as usize;
                u ^= RNG_COOKED[i];
                vec[i] = u;
            }
        }
        GoRand {
            tap: 0,
            feed: RNG_LEN - RNG_TAP,
            vec,
            read_val: 0,
            read_pos: 0,
        }
    }

    /// Go's `Source64.Uint64`.
    pub fn uint64(&mut self) -> u64 {
        self.tap = if self.tap == 0 {
            RNG_LEN - 1
        } else {
            self.tap - 1
        };
        self.feed = if self.feed == 0 {
            RNG_LEN - 1
        } else {
            self.feed - 1
        };
        let x = self.vec[self.feed].wrapping_add(self.vec[self.tap]);
        self.vec[self.feed] = x;
        x as u64
    }

    /// Go's `Int63`: a non-negative 63-bit integer.
    pub fn int63(&mut self) -> i64 {
        (self.uint64() & RNG_MASK) as i64
    }

    /// Go's `Rand.Read`: fills `buf`, 7 bytes per `Int63`, least significant byte first,
    /// carrying unused bytes over to the next call.
    pub fn read(&mut self, buf: &mut [u8]) {
        let mut pos = self.read_pos;
        let mut val = self.read_val;
        for b in buf.iter_mut() {
            if pos == 0 {
                val = self.int63();
                pos = 7;
            }
            *b = val as u8;
            val >>= 8;
            pos -= 1;
        }
        self.read_pos = pos;
        self.read_val = val;
    }
}

impl std::fmt::Debug for GoRand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoRand").finish_non_exhaustive()
    }
}
