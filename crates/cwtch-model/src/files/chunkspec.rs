//! Chunk requests: which chunks of a file a downloader asks for (protocol.md §9.2).

use std::fmt;
use std::ops::RangeInclusive;

use crate::Error;

/// The most ranges one request may list. A request travels in one peer message (at most
/// 8 150 bytes), so a longer one could not be sent anyway; the bound keeps parsing cheap.
pub const MAX_CHUNK_SPEC_RANGES: usize = 4096;

/// A set of chunk indices as Go's `files.ChunkSpec` serialises it (UNCONFIRMED, recalled):
/// comma-separated inclusive ranges `a:b`, or single indices `a`, ascending, e.g.
/// `0:1023,1025,2000:2047`. Held merged and sorted.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ChunkSpec {
    ranges: Vec<RangeInclusive<u64>>,
}

impl fmt::Debug for ChunkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkSpec({self})")
    }
}

impl fmt::Display for ChunkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if r.start() == r.end() {
                write!(f, "{}", r.start())?;
            } else {
                write!(f, "{}:{}", r.start(), r.end())?;
            }
        }
        Ok(())
    }
}

impl ChunkSpec {
    /// Parse a request for a file of `chunk_count` chunks. Ranges may come in any order and
    /// overlap (they are merged), but every index must be a chunk of the file.
    pub fn parse(s: &str, chunk_count: u64) -> Result<ChunkSpec, Error> {
        let bad = |reason| Error::InvalidChunkSpec { reason };
        let mut ranges = Vec::new();
        if s.is_empty() {
            return Ok(ChunkSpec::default());
        }
        for part in s.split(',') {
            if ranges.len() >= MAX_CHUNK_SPEC_RANGES {
                return Err(bad("too many ranges"));
            }
            let (a, b) = match part.split_once(':') {
                Some((a, b)) => (index(a)?, index(b)?),
                None => {
                    let a = index(part)?;
                    (a, a)
                }
            };
            if a > b {
                return Err(bad("a range ends before it starts"));
            }
            if b >= chunk_count {
                return Err(bad("an index is past the file's last chunk"));
            }
            ranges.push(a..=b);
        }
        Ok(ChunkSpec::from_ranges(ranges))
    }

    /// The spec of these ranges, merged and sorted.
    fn from_ranges(mut ranges: Vec<RangeInclusive<u64>>) -> ChunkSpec {
        ranges.sort_unstable_by_key(|r| *r.start());
        let mut merged: Vec<RangeInclusive<u64>> = Vec::with_capacity(ranges.len());
        for r in ranges {
            match merged.last_mut() {
                Some(last) if *r.start() <= last.end().saturating_add(1) => {
                    if r.end() > last.end() {
                        *last = *last.start()..=*r.end();
                    }
                }
                _ => merged.push(r),
            }
        }
        ChunkSpec { ranges: merged }
    }

    /// The spec of ranges already sorted, disjoint and not adjacent (not checked beyond a
    /// debug assertion).
    pub(crate) fn from_sorted_ranges(ranges: Vec<RangeInclusive<u64>>) -> ChunkSpec {
        debug_assert!(ranges.windows(2).all(|w| w[0].end() + 1 < *w[1].start()));
        ChunkSpec { ranges }
    }

    /// Add every chunk of `other`.
    pub fn extend(&mut self, other: &ChunkSpec) {
        let mut ranges = std::mem::take(&mut self.ranges);
        ranges.extend(other.ranges.iter().cloned());
        *self = ChunkSpec::from_ranges(ranges);
    }

    /// Add every chunk of `other` unless the set would then hold more than `max_ranges`
    /// ranges: a sharer's pending set per downloader, which a hostile contact could otherwise
    /// grow (request after request of scattered chunks) until every merge and every take
    /// costs more than the chunks it serves. Whether it was added.
    pub fn extend_bounded(&mut self, other: &ChunkSpec, max_ranges: usize) -> bool {
        // The merged set has at most this many ranges; only when the bound might be passed
        // is the merge counted.
        if self.ranges.len() + other.ranges.len() <= max_ranges {
            self.extend(other);
            return true;
        }
        let mut merged = self.clone();
        merged.extend(other);
        if merged.ranges.len() > max_ranges {
            return false;
        }
        *self = merged;
        true
    }

    /// How many disjoint ranges the set holds.
    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }

    /// Take the `n` lowest chunks out of the set.
    pub fn take_first(&mut self, n: usize) -> Vec<u64> {
        let mut out = Vec::with_capacity(n.min(1024));
        // Ranges used up, removed at once at the end (not one shift of the rest each).
        let mut used = 0;
        for r in self.ranges.iter_mut() {
            if out.len() >= n {
                break;
            }
            let (start, end) = (*r.start(), *r.end());
            let take = ((n - out.len()) as u64).min(end - start + 1);
            out.extend(start..start + take);
            if start + take > end {
                used += 1;
            } else {
                *r = start + take..=end;
            }
        }
        self.ranges.drain(..used);
        out
    }

    /// Take chunk `i` out of the set.
    pub fn remove(&mut self, i: u64) {
        let Some(at) = self.ranges.iter().position(|r| r.contains(&i)) else {
            return;
        };
        let r = self.ranges.remove(at);
        let mut at = at;
        if *r.start() < i {
            self.ranges.insert(at, *r.start()..=i - 1);
            at += 1;
        }
        if i < *r.end() {
            self.ranges.insert(at, i + 1..=*r.end());
        }
    }

    /// The chunks `have` says are missing (false), at most `max_ranges` ranges of them (the
    /// first ones): what a downloader asks for next.
    pub fn missing(have: &[bool], max_ranges: usize) -> ChunkSpec {
        let mut ranges = Vec::new();
        let mut i = 0;
        while i < have.len() && ranges.len() < max_ranges {
            if have[i] {
                i += 1;
                continue;
            }
            let start = i;
            while i < have.len() && !have[i] {
                i += 1;
            }
            ranges.push(start as u64..=(i - 1) as u64);
        }
        ChunkSpec { ranges }
    }

    /// Whether it asks for nothing.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// How many chunks it asks for.
    pub fn count(&self) -> u64 {
        self.ranges.iter().map(|r| r.end() - r.start() + 1).sum()
    }

    /// Whether it asks for chunk `i`.
    pub fn contains(&self, i: u64) -> bool {
        self.ranges.iter().any(|r| r.contains(&i))
    }

    /// The chunks it asks for, ascending.
    pub fn indices(&self) -> impl Iterator<Item = u64> + '_ {
        self.ranges.iter().flat_map(|r| r.clone())
    }

    /// The ranges, merged and ascending.
    pub fn ranges(&self) -> &[RangeInclusive<u64>] {
        &self.ranges
    }
}

/// One decimal index: digits only, no sign, no leading `+`, fits a `u64`.
fn index(s: &str) -> Result<u64, Error> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::InvalidChunkSpec {
            reason: "not a chunk index",
        });
    }
    s.parse().map_err(|_| Error::InvalidChunkSpec {
        reason: "a chunk index out of range",
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn syntax() {
        let s = ChunkSpec::parse("0:3,5,7:9", 10).unwrap();
        assert_eq!(s.to_string(), "0:3,5,7:9");
        assert_eq!(s.count(), 8);
        assert_eq!(
            s.indices().collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 5, 7, 8, 9]
        );
        // Merged and sorted.
        assert_eq!(
            ChunkSpec::parse("7:9,0:3,4,2", 10).unwrap().to_string(),
            "0:4,7:9"
        );
        assert_eq!(ChunkSpec::parse("3:3", 10).unwrap().to_string(), "3");
        assert!(ChunkSpec::parse("", 10).unwrap().is_empty());
        for bad in [
            "a",
            "1:",
            ":1",
            "1:2:3",
            "-1",
            "+1",
            "3:2",
            "10",
            "0:10",
            "1,,2",
            " 1",
            "18446744073709551616",
        ] {
            assert!(ChunkSpec::parse(bad, 10).is_err(), "{bad}");
        }
        let many = vec!["1"; MAX_CHUNK_SPEC_RANGES + 1].join(",");
        assert!(ChunkSpec::parse(&many, 10).is_err());
    }

    #[test]
    fn taking_the_lowest() {
        let mut s = ChunkSpec::parse("0:2,5,7:9", 10).unwrap();
        assert_eq!(s.take_first(2), vec![0, 1]);
        assert_eq!(s.to_string(), "2,5,7:9");
        assert_eq!(s.take_first(3), vec![2, 5, 7]);
        assert_eq!(s.take_first(9), vec![8, 9]);
        assert!(s.is_empty() && s.take_first(1).is_empty());
        let mut e = ChunkSpec::parse("1:3", 5).unwrap();
        e.extend(&ChunkSpec::parse("0,4", 5).unwrap());
        assert_eq!(e.to_string(), "0:4");
    }

    #[test]
    fn removing() {
        let mut s = ChunkSpec::parse("0:4,7:9", 10).unwrap();
        s.remove(2);
        assert_eq!(s.to_string(), "0:1,3:4,7:9");
        s.remove(0);
        s.remove(9);
        s.remove(5);
        assert_eq!(s.to_string(), "1,3:4,7:8");
        s.remove(1);
        assert_eq!(s.to_string(), "3:4,7:8");
        assert_eq!(s.count(), 4);
    }

    #[test]
    fn a_pending_set_grows_only_to_its_bound() {
        let every_other = |from: u64, n: u64| {
            ChunkSpec::parse(
                &(0..n)
                    .map(|i| (from + 2 * i).to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                1000,
            )
            .unwrap()
        };
        let mut s = every_other(0, 3); // 0,2,4
        assert!(s.extend_bounded(&every_other(10, 2), 5)); // 0,2,4,10,12
        assert_eq!(s.range_count(), 5);
        // One more scattered chunk would make six ranges: refused, the set unchanged.
        assert!(!s.extend_bounded(&every_other(20, 1), 5));
        assert_eq!(s.to_string(), "0,2,4,10,12");
        // Chunks that merge into what is there pass the bound's rough count but fit.
        assert!(s.extend_bounded(&ChunkSpec::parse("1,3,11", 1000).unwrap(), 5));
        assert_eq!(s.to_string(), "0:4,10:12");
        assert!(s.extend_bounded(&every_other(20, 3), 5));
        assert_eq!(s.range_count(), 5);
    }

    #[test]
    fn missing_chunks() {
        let have = [true, false, false, true, false, true, true, false];
        let s = ChunkSpec::missing(&have, 100);
        assert_eq!(s.to_string(), "1:2,4,7");
        assert_eq!(ChunkSpec::missing(&have, 2).to_string(), "1:2,4");
        assert!(ChunkSpec::missing(&[true; 5], 10).is_empty());
        assert_eq!(ChunkSpec::missing(&[false; 5], 10).to_string(), "0:4");
    }

    proptest! {
        /// What we write parses back to the same set; the set is what `missing` was given.
        #[test]
        fn missing_round_trips(have in proptest::collection::vec(any::<bool>(), 0..300)) {
            let s = ChunkSpec::missing(&have, usize::MAX);
            let parsed = ChunkSpec::parse(&s.to_string(), have.len() as u64).unwrap();
            prop_assert_eq!(&parsed, &s);
            let want: Vec<u64> = have.iter().enumerate().filter(|(_, h)| !**h).map(|(i, _)| i as u64).collect();
            prop_assert_eq!(s.indices().collect::<Vec<_>>(), want.clone());
            prop_assert_eq!(s.count(), want.len() as u64);
            for i in 0..have.len() as u64 {
                prop_assert_eq!(s.contains(i), want.contains(&i));
            }
        }

        /// Taking the first `n` chunks yields the `n` lowest, in order, and leaves the rest.
        #[test]
        fn take_first_takes_the_lowest(have in proptest::collection::vec(any::<bool>(), 0..300), n in 0usize..400) {
            let mut s = ChunkSpec::missing(&have, usize::MAX);
            let all: Vec<u64> = s.indices().collect();
            let taken = s.take_first(n);
            let k = n.min(all.len());
            prop_assert_eq!(&taken[..], &all[..k]);
            prop_assert_eq!(s.indices().collect::<Vec<_>>(), all[k..].to_vec());
        }

        /// Arbitrary text never panics, and what parses re-serialises to a canonical form
        /// that parses to the same set.
        #[test]
        fn any_text(s in "[0-9:,]{0,40}", n in 0u64..100) {
            if let Ok(spec) = ChunkSpec::parse(&s, n) {
                prop_assert!(spec.indices().all(|i| i < n));
                prop_assert_eq!(ChunkSpec::parse(&spec.to_string(), n).unwrap(), spec);
            }
        }
    }
}
