//! The manifest of a shared file (protocol.md §9.1).

use sha2::{Digest, Sha512};
use sha3::Sha3_256;

use super::{FileKey, CHUNK_HASH_LEN, CHUNK_SIZE, MAX_CHUNKS, MAX_FILE_SIZE, ROOT_HASH_LEN};
use crate::gojson::{self, Decoder, GoDecode, GoJson};
use crate::Error;

/// A manifest travels in parts of this many bytes of its JSON (UNCONFIRMED, recalled: the
/// sharer answers `filesharing.<key>.manifest.size` with the number of parts).
pub const MANIFEST_PART_SIZE: usize = 4096;

/// Go's `files.Manifest` (UNCONFIRMED field names and order, recalled):
/// `{"Chunks":[<b64 SHA3-256>…],"FileName":"…","RootHash":"<b64 SHA-512>","FileSizeInBytes":N,
/// "ChunkSizeInBytes":4096}`. A parsed manifest is consistent: the chunk count fits the size.
#[derive(Clone, PartialEq, Eq)]
pub struct Manifest {
    /// SHA3-256 of each chunk, in order.
    pub chunks: Vec<[u8; CHUNK_HASH_LEN]>,
    /// The file's name as the sharer gave it (untrusted: a suggestion).
    pub file_name: String,
    /// SHA-512 of the whole file.
    pub root_hash: [u8; ROOT_HASH_LEN],
    /// The file's size.
    pub file_size: u64,
    /// The size of every chunk but the last.
    pub chunk_size: u64,
}

impl std::fmt::Debug for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manifest")
            .field("chunks", &self.chunks.len())
            .field("file_size", &self.file_size)
            .field("chunk_size", &self.chunk_size)
            .finish_non_exhaustive()
    }
}

impl Manifest {
    /// Parse a manifest's JSON and check it is consistent.
    pub fn parse(json: &[u8]) -> Result<Manifest, Error> {
        let raw: RawManifest = gojson::decode(json)?;
        let info = raw.check(raw.chunks.len() as u64, raw.bad_chunk)?;
        Ok(Manifest {
            chunks: raw.chunks,
            file_name: info.file_name,
            root_hash: info.root_hash,
            file_size: info.file_size,
            chunk_size: info.chunk_size,
        })
    }

    /// Everything but the chunk hashes.
    pub fn info(&self) -> ManifestInfo {
        ManifestInfo {
            file_name: self.file_name.clone(),
            root_hash: self.root_hash,
            file_size: self.file_size,
            chunk_size: self.chunk_size,
            chunk_count: self.chunk_count(),
        }
    }

    /// Reassemble a manifest from its parts and check it is the one `key` names.
    pub fn from_parts<'a>(
        parts: impl IntoIterator<Item = &'a [u8]>,
        key: &FileKey,
    ) -> Result<Manifest, Error> {
        let json: Vec<u8> = parts.into_iter().flatten().copied().collect();
        let m = Manifest::parse(&json)?;
        if m.root_hash != key.root_hash {
            return Err(Error::InvalidManifest {
                reason: "its root hash is not the file key's",
            });
        }
        Ok(m)
    }

    /// How many chunks the file has.
    pub fn chunk_count(&self) -> u64 {
        self.chunks.len() as u64
    }

    /// Where chunk `i` starts in the file and how long it is; `None` past the end.
    pub fn chunk_range(&self, i: u64) -> Option<(u64, usize)> {
        chunk_range(self.file_size, self.chunk_size, self.chunk_count(), i)
    }

    /// Whether `bytes` is chunk `i` of this file: its length and its hash.
    pub fn verify_chunk(&self, i: u64, bytes: &[u8]) -> bool {
        match usize::try_from(i).ok().and_then(|idx| self.chunks.get(idx)) {
            Some(h) => verify(self.chunk_range(i), h, bytes),
            None => false,
        }
    }
}

/// Where chunk `i` of a file of `size` bytes in `count` chunks of `chunk_size` starts, and
/// its length.
fn chunk_range(size: u64, chunk_size: u64, count: u64, i: u64) -> Option<(u64, usize)> {
    if i >= count {
        return None;
    }
    let start = i * chunk_size;
    let len = size.saturating_sub(start).min(chunk_size);
    Some((start, len as usize))
}

fn verify(range: Option<(u64, usize)>, hash: &[u8; CHUNK_HASH_LEN], bytes: &[u8]) -> bool {
    range.is_some_and(|(_, len)| len == bytes.len() && Sha3_256::digest(bytes).as_slice() == hash)
}

/// A checked manifest without its chunk hashes: what a downloader keeps in memory while the
/// hashes wait on disk ([`super::ManifestReader`]).
#[derive(Clone, PartialEq, Eq)]
pub struct ManifestInfo {
    /// The file's name as the sharer gave it (untrusted: a suggestion).
    pub file_name: String,
    /// SHA-512 of the whole file.
    pub root_hash: [u8; ROOT_HASH_LEN],
    /// The file's size.
    pub file_size: u64,
    /// The size of every chunk but the last.
    pub chunk_size: u64,
    /// How many chunks (hashes) the manifest lists.
    pub chunk_count: u64,
}

impl std::fmt::Debug for ManifestInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManifestInfo")
            .field("chunk_count", &self.chunk_count)
            .field("file_size", &self.file_size)
            .field("chunk_size", &self.chunk_size)
            .finish_non_exhaustive()
    }
}

impl ManifestInfo {
    /// Where chunk `i` starts in the file and how long it is; `None` past the end.
    pub fn chunk_range(&self, i: u64) -> Option<(u64, usize)> {
        chunk_range(self.file_size, self.chunk_size, self.chunk_count, i)
    }

    /// Whether `bytes` is chunk `i` of this file, whose hash the manifest gave as `hash`.
    pub fn verify_chunk(&self, i: u64, hash: &[u8; CHUNK_HASH_LEN], bytes: &[u8]) -> bool {
        verify(self.chunk_range(i), hash, bytes)
    }
}

impl GoJson for Manifest {
    fn write_go_json(&self, out: &mut Vec<u8>) {
        gojson::object(out, |o| {
            o.value("Chunks", &ChunkList(&self.chunks))
                .str("FileName", &self.file_name)
                .bytes("RootHash", Some(&self.root_hash))
                .u64("FileSizeInBytes", self.file_size)
                .u64("ChunkSizeInBytes", self.chunk_size);
        });
    }
}

/// Go's `[]Chunk` (`type Chunk []byte`): base64 strings, `null` when empty (a nil slice).
struct ChunkList<'a>(&'a [[u8; CHUNK_HASH_LEN]]);

impl GoJson for ChunkList<'_> {
    fn write_go_json(&self, out: &mut Vec<u8>) {
        if self.0.is_empty() {
            out.extend_from_slice(b"null");
            return;
        }
        out.push(b'[');
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            gojson::write_bytes(out, Some(c));
        }
        out.push(b']');
    }
}

/// The manifest's fields (JSON names, in Go's struct order).
pub(super) const FIELDS: &[&str] = &[
    "Chunks",
    "FileName",
    "RootHash",
    "FileSizeInBytes",
    "ChunkSizeInBytes",
];

/// The manifest as decoded, before its checks.
#[derive(Default)]
pub(super) struct RawManifest {
    chunks: Vec<[u8; CHUNK_HASH_LEN]>,
    /// A chunk hash was not 32 bytes.
    bad_chunk: bool,
    file_name: String,
    root_hash: Option<Vec<u8>>,
    file_size: u64,
    chunk_size: u64,
}

impl RawManifest {
    /// The checks every manifest passes, for one that lists `chunk_count` hashes (`bad_chunk`:
    /// one of them was not 32 bytes).
    pub(super) fn check(&self, chunk_count: u64, bad_chunk: bool) -> Result<ManifestInfo, Error> {
        let bad = |reason| Error::InvalidManifest { reason };
        let root_hash = self
            .root_hash
            .as_deref()
            .and_then(|r| <[u8; ROOT_HASH_LEN]>::try_from(r).ok())
            .ok_or(bad("the root hash is not 64 bytes"))?;
        if self.chunk_size == 0 || self.chunk_size > CHUNK_SIZE {
            return Err(bad("the chunk size is not 1 to 4096 bytes"));
        }
        if self.file_size > MAX_FILE_SIZE {
            return Err(bad("the file is larger than 10 GiB"));
        }
        if chunk_count != self.file_size.div_ceil(self.chunk_size) {
            return Err(bad("the number of chunks does not fit the file size"));
        }
        if bad_chunk {
            return Err(bad("a chunk hash is not 32 bytes"));
        }
        Ok(ManifestInfo {
            file_name: self.file_name.clone(),
            root_hash,
            file_size: self.file_size,
            chunk_size: self.chunk_size,
            chunk_count,
        })
    }
}

impl GoDecode for RawManifest {
    fn decode_into(&mut self, d: &mut Decoder<'_>) -> Result<(), Error> {
        d.fields(FIELDS, |d, i| match i {
            0 => {
                let mut bad = false;
                let r = d.slice_with(
                    &mut self.chunks,
                    MAX_CHUNKS as usize,
                    || [0u8; CHUNK_HASH_LEN],
                    |d, c| {
                        let mut b = None;
                        d.bytes(&mut b)?;
                        match b.as_deref().map(<[u8; CHUNK_HASH_LEN]>::try_from) {
                            Some(Ok(h)) => *c = h,
                            _ => bad = true,
                        }
                        Ok(())
                    },
                );
                self.bad_chunk |= bad;
                r
            }
            1 => d.string(&mut self.file_name),
            2 => d.bytes(&mut self.root_hash),
            3 => d.u64(&mut self.file_size),
            _ => d.u64(&mut self.chunk_size),
        })
    }
}

/// A manifest's JSON in the parts it is sent in: [`MANIFEST_PART_SIZE`] bytes each, the last
/// shorter; one empty part for empty JSON (never the case for a real manifest).
pub fn manifest_parts(json: &[u8]) -> Vec<&[u8]> {
    if json.is_empty() {
        return vec![json];
    }
    json.chunks(MANIFEST_PART_SIZE).collect()
}

/// Builds a manifest from a file's bytes, fed in any pieces (the sharer reads the file;
/// this only hashes).
#[derive(Clone)]
pub struct ManifestBuilder {
    chunk: Sha3_256,
    in_chunk: u64,
    chunks: Vec<[u8; CHUNK_HASH_LEN]>,
    root: Sha512,
    size: u64,
}

impl Default for ManifestBuilder {
    fn default() -> Self {
        ManifestBuilder::new()
    }
}

impl ManifestBuilder {
    /// A builder for [`CHUNK_SIZE`] chunks.
    pub fn new() -> ManifestBuilder {
        ManifestBuilder {
            chunk: Sha3_256::new(),
            in_chunk: 0,
            chunks: Vec::new(),
            root: Sha512::new(),
            size: 0,
        }
    }

    /// The next bytes of the file. A file over [`MAX_FILE_SIZE`] is an error.
    pub fn update(&mut self, mut data: &[u8]) -> Result<(), Error> {
        if self.size.saturating_add(data.len() as u64) > MAX_FILE_SIZE {
            return Err(Error::InvalidManifest {
                reason: "the file is larger than 10 GiB",
            });
        }
        self.root.update(data);
        self.size += data.len() as u64;
        while !data.is_empty() {
            let room = (CHUNK_SIZE - self.in_chunk) as usize;
            let (now, rest) = data.split_at(room.min(data.len()));
            self.chunk.update(now);
            self.in_chunk += now.len() as u64;
            data = rest;
            if self.in_chunk == CHUNK_SIZE {
                self.close_chunk();
            }
        }
        Ok(())
    }

    fn close_chunk(&mut self) {
        let done = std::mem::replace(&mut self.chunk, Sha3_256::new());
        self.chunks.push(done.finalize().into());
        self.in_chunk = 0;
    }

    /// The manifest of everything fed, for a file called `file_name`.
    pub fn finish(mut self, file_name: impl Into<String>) -> Manifest {
        if self.in_chunk > 0 {
            self.close_chunk();
        }
        Manifest {
            chunks: self.chunks,
            file_name: file_name.into(),
            root_hash: self.root.finalize().into(),
            file_size: self.size,
            chunk_size: CHUNK_SIZE,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn manifest_of(data: &[u8]) -> Manifest {
        let mut b = ManifestBuilder::new();
        b.update(data).unwrap();
        b.finish("f.bin")
    }

    #[test]
    fn known_hashes() {
        // SHA3-256("abc") and SHA-512("abc") (FIPS 202 / FIPS 180 examples).
        let m = manifest_of(b"abc");
        assert_eq!(
            hex::encode(m.chunks[0]),
            "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532"
        );
        assert_eq!(
            hex::encode(m.root_hash),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
        assert_eq!((m.file_size, m.chunk_size, m.chunk_count()), (3, 4096, 1));
    }

    #[test]
    fn json_round_trip_and_layout() {
        let m = manifest_of(&[7u8; 5000]);
        let json = m.to_go_json();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(text.starts_with(r#"{"Chunks":[""#), "{text}");
        assert!(
            text.ends_with(r#"","FileSizeInBytes":5000,"ChunkSizeInBytes":4096}"#),
            "{text}"
        );
        assert!(text.contains(r#""FileName":"f.bin","RootHash":""#));
        assert_eq!(Manifest::parse(&json).unwrap(), m);
        // An empty file: a nil chunk list.
        let empty = manifest_of(b"");
        assert!(String::from_utf8(empty.to_go_json())
            .unwrap()
            .starts_with(r#"{"Chunks":null,"#));
        assert_eq!(Manifest::parse(&empty.to_go_json()).unwrap(), empty);
    }

    #[test]
    fn inconsistent_manifests_are_refused() {
        let m = manifest_of(&[1u8; 9000]);
        let mut fewer = m.clone();
        fewer.chunks.pop();
        let mut bigger = m.clone();
        bigger.file_size = 20_000;
        let mut zero = m.clone();
        zero.chunk_size = 0;
        let mut huge_chunks = m.clone();
        huge_chunks.chunk_size = 8192;
        huge_chunks.file_size = 8192 * 3;
        for bad in [fewer, bigger, zero, huge_chunks] {
            assert!(
                matches!(
                    Manifest::parse(&bad.to_go_json()),
                    Err(Error::InvalidManifest { .. })
                ),
                "{bad:?}"
            );
        }
        let json = String::from_utf8(m.to_go_json()).unwrap();
        let short_root = json.replace(
            &gojson::base64_std(&m.root_hash),
            &gojson::base64_std(&m.root_hash[..63]),
        );
        assert!(Manifest::parse(short_root.as_bytes()).is_err());
        let short_chunk = json.replacen(
            &gojson::base64_std(&m.chunks[0]),
            &gojson::base64_std(&m.chunks[0][..31]),
            1,
        );
        assert!(Manifest::parse(short_chunk.as_bytes()).is_err());
        assert!(Manifest::parse(b"{}").is_err());
        assert!(Manifest::parse(b"nope").is_err());
    }

    #[test]
    fn parts_reassemble_only_under_the_right_key() {
        let m = manifest_of(&[3u8; 1_000_000]);
        assert!(m.to_go_json().len() > 2 * MANIFEST_PART_SIZE);
        let json = m.to_go_json();
        let parts = manifest_parts(&json);
        assert_eq!(parts.len(), json.len().div_ceil(MANIFEST_PART_SIZE));
        assert!(parts
            .iter()
            .rev()
            .skip(1)
            .all(|p| p.len() == MANIFEST_PART_SIZE));
        let key = FileKey {
            root_hash: m.root_hash,
            nonce: [9; 24],
        };
        assert_eq!(
            Manifest::from_parts(parts.iter().copied(), &key).unwrap(),
            m
        );
        let other = FileKey {
            root_hash: [0; 64],
            nonce: [9; 24],
        };
        assert!(Manifest::from_parts(parts.iter().copied(), &other).is_err());
        let mut swapped = parts.clone();
        swapped.swap(0, 1);
        assert!(Manifest::from_parts(swapped, &key).is_err());
    }

    #[test]
    fn chunks_verify_by_length_and_hash() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let m = manifest_of(&data);
        assert_eq!(m.chunk_count(), 3);
        assert_eq!(m.chunk_range(2), Some((8192, 10_000 - 8192)));
        assert_eq!(m.chunk_range(3), None);
        for (i, c) in data.chunks(4096).enumerate() {
            assert!(m.verify_chunk(i as u64, c));
        }
        assert!(!m.verify_chunk(0, &data[1..4097]));
        assert!(!m.verify_chunk(2, &data[8192..9000]));
        assert!(!m.verify_chunk(3, b""));
        assert!(!m.verify_chunk(u64::MAX, b""));
    }

    proptest! {
        /// However the bytes are fed, the manifest is the same; each chunk verifies; the JSON
        /// round-trips.
        #[test]
        fn feeding_in_pieces(data in proptest::collection::vec(any::<u8>(), 0..20_000), cuts in proptest::collection::vec(0usize..20_000, 0..8)) {
            let whole = manifest_of(&data);
            let mut b = ManifestBuilder::new();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut at = 0;
            for c in cuts.into_iter().chain([data.len()]) {
                b.update(&data[at..c]).unwrap();
                at = c;
            }
            let pieces = b.finish("f.bin");
            prop_assert_eq!(&pieces, &whole);
            prop_assert_eq!(whole.chunk_count(), (data.len() as u64).div_ceil(CHUNK_SIZE));
            for (i, c) in data.chunks(CHUNK_SIZE as usize).enumerate() {
                prop_assert!(whole.verify_chunk(i as u64, c));
            }
            prop_assert_eq!(Manifest::parse(&whole.to_go_json()).unwrap(), whole);
        }

        /// Arbitrary input never panics.
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Manifest::parse(&data);
        }
    }
}
