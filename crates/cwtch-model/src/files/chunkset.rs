//! Which chunks of a file are here: one bit per chunk (32 KiB per GiB of file in 4 KiB
//! chunks), so that a download's memory barely grows with the file.

/// A set of chunk indices `0..len`, as bits.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ChunkSet {
    words: Vec<u64>,
    len: usize,
}

impl std::fmt::Debug for ChunkSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChunkSet({} of {})", self.count(), self.len)
    }
}

impl ChunkSet {
    /// No chunk of `len`.
    pub fn new(len: usize) -> ChunkSet {
        ChunkSet {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    /// How many chunks the file has.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the file has no chunks.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether chunk `i` is here; `None` past the end.
    pub fn get(&self, i: usize) -> Option<bool> {
        (i < self.len).then(|| self.words[i / 64] & (1 << (i % 64)) != 0)
    }

    /// Chunk `i` is here (ignored past the end).
    pub fn insert(&mut self, i: usize) {
        if i < self.len {
            self.words[i / 64] |= 1 << (i % 64);
        }
    }

    /// How many chunks are here.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }
}

impl FromIterator<bool> for ChunkSet {
    fn from_iter<T: IntoIterator<Item = bool>>(iter: T) -> Self {
        let mut s = ChunkSet::default();
        for (i, here) in iter.into_iter().enumerate() {
            if i % 64 == 0 {
                s.words.push(0);
            }
            s.len = i + 1;
            if here {
                s.insert(i);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The same answers as a `Vec<bool>`.
        #[test]
        fn as_a_vec_of_bools(bits in proptest::collection::vec(any::<bool>(), 0..300), more in proptest::collection::vec(0usize..320, 0..20)) {
            let mut set: ChunkSet = bits.iter().copied().collect();
            let mut model = bits.clone();
            for i in more {
                set.insert(i);
                if let Some(b) = model.get_mut(i) {
                    *b = true;
                }
            }
            prop_assert_eq!(set.len(), model.len());
            prop_assert_eq!(set.count(), model.iter().filter(|b| **b).count());
            for i in 0..330 {
                prop_assert_eq!(set.get(i), model.get(i).copied());
            }
            let empty = ChunkSet::new(model.len());
            prop_assert_eq!(empty.count(), 0);
            prop_assert_eq!(empty.len(), model.len());
        }
    }
}
