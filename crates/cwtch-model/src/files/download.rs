//! One download, as a sans-IO state machine: manifest parts in, chunks in, what to send, what
//! to write and when it is done or has failed (protocol.md §9.2).
//!
//! The driver sends what it is told ([`DownloadOutput::Send`]), writes chunks where it is
//! told (to a temporary file, never under the final name), reports what a partial file on
//! disk already holds ([`Download::manifest_accepted`]), calls [`Download::tick`] when nothing
//! has arrived for a while, and checks the whole file's hash at the end
//! ([`Download::file_verified`]). A hostile sharer (wrong chunks, oversized chunks, an endless
//! stream, a manifest that lies) costs only this download: bad chunks are re-requested a
//! bounded number of times, then the download fails with a reason.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::messages::FileMessage;
use super::{
    ChunkHashes, ChunkSet, ChunkSpec, FileKey, ManifestInfo, ManifestReader, CHUNK_HASH_LEN,
    CHUNK_SIZE, MANIFEST_PART_SIZE, MAX_CHUNKS,
};

/// The largest manifest JSON accepted: a 10 GiB file's (47 bytes per chunk hash) and room for
/// the rest.
pub const MAX_MANIFEST_BYTES: u64 = MAX_CHUNKS * 47 + 16 * 1024;

/// The longest manifest JSON of a file of at most `max_file_size` bytes (Go's 4096-byte
/// chunks), at most [`MAX_MANIFEST_BYTES`].
fn manifest_bytes_for(max_file_size: u64) -> u64 {
    (max_file_size.div_ceil(CHUNK_SIZE) * 47 + 16 * 1024).min(MAX_MANIFEST_BYTES)
}

/// Limits of one download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadConfig {
    /// The largest file the user accepts (at most 10 GiB, the protocol's limit).
    pub max_file_size: u64,
    /// How often one chunk may arrive bad (wrong length or hash) before the download fails.
    pub max_bad_per_chunk: u32,
    /// How many chunks one request asks for (the rest are asked for as these arrive).
    pub window: u64,
    /// How many times in a row [`Download::tick`] may find no progress before the download
    /// fails.
    pub max_stalls: u32,
    /// How many messages that answer nothing we asked for (chunks not requested, repeats,
    /// parts out of range) are tolerated before the download fails: an endless stream.
    pub max_unsolicited: u64,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        DownloadConfig {
            max_file_size: super::MAX_FILE_SIZE,
            max_bad_per_chunk: 3,
            window: 512,
            max_stalls: 5,
            max_unsolicited: 4096,
        }
    }
}

/// Why a download failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// The manifest did not parse, or is not the one the file key names.
    #[error("the sharer's manifest is invalid: {0}")]
    BadManifest(String),
    /// The file is larger than the user's limit.
    #[error("the file is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// Its size by the manifest.
        size: u64,
        /// The user's limit.
        limit: u64,
    },
    /// The manifest is longer than any file within the user's limit needs: the file is over
    /// it (found before the whole manifest is received).
    #[error("the file is more than the limit of {limit} bytes (its manifest is too long)")]
    ManifestTooLarge {
        /// The user's limit.
        limit: u64,
    },
    /// A chunk kept arriving wrong.
    #[error("chunk {index} arrived wrong {times} times")]
    BadChunk {
        /// Which chunk.
        index: u64,
        /// How often.
        times: u32,
    },
    /// Every chunk matched the manifest, but the whole file does not match its root hash:
    /// the manifest lies.
    #[error("the file does not match the hash its key names (the manifest lies)")]
    RootHashMismatch,
    /// Nothing arrived for too long.
    #[error("the sharer stopped sending (it may have stopped sharing the file, or changed it)")]
    Stalled,
    /// The sharer, connected, never answered for the manifest.
    #[error(
        "the sharer does not answer for this file (it may have stopped sharing it, or changed it)"
    )]
    NotShared,
    /// The sharer sent too much that was not asked for.
    #[error("the sharer sent too much that was not asked for")]
    Flooded,
    /// The driver could not read back a chunk hash it keeps for this download.
    #[error("reading the manifest's chunk hashes: {0}")]
    Storage(String),
}

/// What the driver does next.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DownloadOutput {
    /// Send this to the sharer.
    Send(FileMessage),
    /// Keep these chunk hashes of the manifest, `first` being the index of `hashes[0]` (a
    /// later one for the same index replaces an earlier), and answer
    /// [`ChunkHashes::chunk_hash`] with them.
    Hashes {
        /// The index of the first.
        first: u64,
        /// Consecutive hashes.
        hashes: Vec<[u8; CHUNK_HASH_LEN]>,
    },
    /// The manifest arrived and is the key's (every hash was given in
    /// [`DownloadOutput::Hashes`] before): check what a partial file already holds and call
    /// [`Download::manifest_accepted`].
    ManifestReady(Arc<ManifestInfo>),
    /// Write `data` at `offset` of the temporary file.
    Write {
        /// Which chunk.
        index: u64,
        /// Where.
        offset: u64,
        /// What.
        data: Vec<u8>,
    },
    /// Progress, after writes.
    Progress {
        /// Bytes verified and written so far.
        done: u64,
        /// The file's size.
        total: u64,
    },
    /// Every chunk is written: hash the whole file (SHA-512) and call
    /// [`Download::file_verified`].
    VerifyFile,
    /// Done: move the temporary file to its final name.
    Complete,
    /// Failed: keep nothing under the final name.
    Failed(DownloadError),
}

impl std::fmt::Debug for DownloadOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DownloadOutput::Send(m) => f.debug_tuple("Send").field(m).finish(),
            DownloadOutput::Hashes { first, hashes } => {
                write!(f, "Hashes {{ first: {first}, count: {} }}", hashes.len())
            }
            DownloadOutput::ManifestReady(m) => f.debug_tuple("ManifestReady").field(m).finish(),
            DownloadOutput::Write {
                index,
                offset,
                data,
            } => write!(
                f,
                "Write {{ index: {index}, offset: {offset}, len: {} }}",
                data.len()
            ),
            DownloadOutput::Progress { done, total } => write!(f, "Progress({done}/{total})"),
            DownloadOutput::VerifyFile => f.write_str("VerifyFile"),
            DownloadOutput::Complete => f.write_str("Complete"),
            DownloadOutput::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}

#[derive(Debug)]
enum State {
    /// Reading the manifest as its parts arrive.
    Manifest(Box<ManifestParts>),
    /// The manifest is ready; waiting for the driver to say what is on disk.
    Checking {
        manifest: Arc<ManifestInfo>,
    },
    /// Fetching chunks.
    Chunks(Box<Chunks>),
    /// Waiting for the driver's hash of the whole file.
    Verifying,
    Done,
    Failed,
}

/// The most manifest parts kept that arrived ahead of one still missing.
const MAX_EARLY_PARTS: usize = 64;

#[derive(Debug, Default)]
struct ManifestParts {
    reader: ManifestReader,
    /// The next part the reader takes.
    next: u64,
    /// Parts that arrived before `next`.
    early: BTreeMap<u64, Vec<u8>>,
    /// Bytes taken or kept so far.
    bytes: u64,
}

#[derive(Debug)]
struct Chunks {
    manifest: Arc<ManifestInfo>,
    have: ChunkSet,
    done: u64,
    /// The chunks asked for and not yet answered.
    outstanding: ChunkSpec,
    bad: BTreeMap<u64, u32>,
    /// Every chunk before this one is here.
    scan: usize,
    /// The first chunk not yet asked for in this round (a round asks for every missing chunk
    /// once; chunks that arrived bad are asked for again in the next).
    next: usize,
}

/// One download. See the module docs.
#[derive(Debug)]
pub struct Download {
    key: FileKey,
    config: DownloadConfig,
    state: State,
    /// Set when something useful arrived since the last tick.
    progressed: bool,
    /// How many useful messages arrived in all ([`Download::useful`]).
    useful: u64,
    stalls: u32,
    unsolicited: u64,
    /// How often the manifest was asked for: a sharer that never completes it (while sending
    /// parts, which counts as progress) must not keep us waiting for ever.
    manifest_requests: u32,
}

impl Download {
    /// Start downloading `key`: ask for the manifest.
    pub fn start(key: FileKey, config: DownloadConfig) -> (Download, Vec<DownloadOutput>) {
        let d = Download {
            key,
            config,
            state: State::Manifest(Box::default()),
            progressed: false,
            useful: 0,
            stalls: 0,
            unsolicited: 0,
            manifest_requests: 1,
        };
        (
            d,
            vec![DownloadOutput::Send(FileMessage::RequestManifest { key })],
        )
    }

    /// The file being downloaded.
    pub fn key(&self) -> &FileKey {
        &self.key
    }

    /// How many useful messages (new manifest parts, chunks that verified) have arrived.
    /// The driver's silence timer starts again only when this grows: messages that answer
    /// nothing must not keep a download from ever [ticking](Download::tick).
    pub fn useful(&self) -> u64 {
        self.useful
    }

    /// Whether it has completed or failed.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done | State::Failed)
    }

    /// A message from the sharer about this file. Anything else (another file's, a request)
    /// is ignored. `hashes` holds what [`DownloadOutput::Hashes`] gave.
    pub fn receive(&mut self, m: FileMessage, hashes: &dyn ChunkHashes) -> Vec<DownloadOutput> {
        if m.key() != &self.key {
            return Vec::new();
        }
        let out = match m {
            FileMessage::ManifestPart { index, data, .. } => self.manifest_part(index, data),
            FileMessage::Chunk { index, data, .. } => self.chunk(index, data, hashes),
            _ => Vec::new(),
        };
        if self.unsolicited > self.config.max_unsolicited && !self.is_finished() {
            return self.fail(DownloadError::Flooded);
        }
        out
    }

    fn fail(&mut self, e: DownloadError) -> Vec<DownloadOutput> {
        self.state = State::Failed;
        vec![DownloadOutput::Failed(e)]
    }

    fn manifest_part(&mut self, index: u64, data: Vec<u8>) -> Vec<DownloadOutput> {
        let State::Manifest(m) = &mut self.state else {
            self.unsolicited += 1;
            return Vec::new();
        };
        let max_parts = MAX_MANIFEST_BYTES.div_ceil(MANIFEST_PART_SIZE as u64);
        if index >= max_parts
            || index < m.next
            || data.len() > MANIFEST_PART_SIZE
            || m.early.contains_key(&index)
            || (index > m.next && m.early.len() >= MAX_EARLY_PARTS)
            || m.bytes + data.len() as u64 > MAX_MANIFEST_BYTES
        {
            self.unsolicited += 1;
            return Vec::new();
        }
        // A manifest longer than a file within the user's limit needs (an automatic image
        // download's 20 MiB) fails now, not after up to MAX_MANIFEST_BYTES received and its
        // hashes written.
        if m.bytes + data.len() as u64 > manifest_bytes_for(self.config.max_file_size) {
            let limit = self.config.max_file_size;
            return self.fail(DownloadError::ManifestTooLarge { limit });
        }
        self.progressed = true;
        self.useful += 1;
        m.bytes += data.len() as u64;
        if index > m.next {
            m.early.insert(index, data);
            return Vec::new();
        }
        // Feed this part and every early one that now follows; each hash goes out at once.
        let mut found = Vec::new();
        let mut part = Some(data);
        let mut short = false;
        while let Some(p) = part {
            short = p.len() < MANIFEST_PART_SIZE;
            if let Err(e) = m.reader.feed(&p, &mut found) {
                return self.fail(DownloadError::BadManifest(e.to_string()));
            }
            m.next += 1;
            part = m.early.remove(&m.next);
        }
        let complete = m.reader.is_complete();
        let mut out = hash_runs(found);
        if complete {
            out.extend(self.manifest_complete());
        } else if short {
            // A short part is the last: the JSON ended early.
            let e = m.reader.finish(&self.key).err().map(|e| e.to_string());
            return self.fail(DownloadError::BadManifest(e.unwrap_or_default()));
        }
        out
    }

    /// The manifest's JSON is complete: check it; hand it to the driver.
    fn manifest_complete(&mut self) -> Vec<DownloadOutput> {
        let State::Manifest(m) = &mut self.state else {
            return Vec::new();
        };
        let info = match m.reader.finish(&self.key) {
            Ok(info) => info,
            Err(e) => return self.fail(DownloadError::BadManifest(e.to_string())),
        };
        if info.file_size > self.config.max_file_size {
            let (size, limit) = (info.file_size, self.config.max_file_size);
            return self.fail(DownloadError::TooLarge { size, limit });
        }
        let manifest = Arc::new(info);
        self.state = State::Checking {
            manifest: manifest.clone(),
        };
        vec![DownloadOutput::ManifestReady(manifest)]
    }

    /// The driver checked the partial file: `have` holds the chunks already on disk and
    /// verified (`None`: nothing is). Asks for the rest, or finishes.
    pub fn manifest_accepted(&mut self, have: Option<ChunkSet>) -> Vec<DownloadOutput> {
        let State::Checking { manifest } = std::mem::replace(&mut self.state, State::Failed) else {
            self.state = State::Failed;
            return Vec::new();
        };
        let n = usize::try_from(manifest.chunk_count).unwrap_or(usize::MAX);
        let have = match have {
            Some(h) if h.len() == n => h,
            _ => ChunkSet::new(n),
        };
        let done = (0..n)
            .filter(|i| have.get(*i) == Some(true))
            .filter_map(|i| manifest.chunk_range(i as u64))
            .map(|(_, len)| len as u64)
            .sum();
        let total = manifest.file_size;
        self.state = State::Chunks(Box::new(Chunks {
            manifest,
            have,
            done,
            outstanding: ChunkSpec::default(),
            bad: BTreeMap::new(),
            scan: 0,
            next: 0,
        }));
        let mut out = vec![DownloadOutput::Progress { done, total }];
        out.extend(self.request_more());
        out
    }

    /// Ask for the next window of missing chunks, if nothing is outstanding; finish if none
    /// is missing.
    fn request_more(&mut self) -> Vec<DownloadOutput> {
        let State::Chunks(c) = &mut self.state else {
            return Vec::new();
        };
        // Keep the pipe full: ask for the next window once half of the last is answered.
        if c.outstanding.count() > self.config.window / 2 {
            return Vec::new();
        }
        let mut spec = window(c, self.config.window);
        if spec.is_empty() && c.outstanding.is_empty() {
            // A new round for the chunks that arrived bad, if any.
            c.next = c.scan;
            spec = window(c, self.config.window);
            if spec.is_empty() {
                self.state = State::Verifying;
                return vec![DownloadOutput::VerifyFile];
            }
        }
        if spec.is_empty() {
            return Vec::new();
        }
        c.outstanding.extend(&spec);
        vec![DownloadOutput::Send(FileMessage::RequestChunks {
            key: self.key,
            spec: spec.to_string(),
        })]
    }

    fn chunk(
        &mut self,
        index: u64,
        data: Vec<u8>,
        hashes: &dyn ChunkHashes,
    ) -> Vec<DownloadOutput> {
        let State::Chunks(c) = &mut self.state else {
            self.unsolicited += 1;
            return Vec::new();
        };
        let Ok(i) = usize::try_from(index) else {
            self.unsolicited += 1;
            return Vec::new();
        };
        if !c.outstanding.contains(index) || c.have.get(i) != Some(false) {
            self.unsolicited += 1;
            return Vec::new();
        }
        c.outstanding.remove(index);
        let hash = match hashes.chunk_hash(index) {
            Ok(h) => h,
            Err(e) => return self.fail(DownloadError::Storage(e.to_string())),
        };
        let State::Chunks(c) = &mut self.state else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if c.manifest.verify_chunk(index, &hash, &data) {
            self.progressed = true;
            self.useful += 1;
            c.have.insert(i);
            c.done += data.len() as u64;
            let offset = index * c.manifest.chunk_size;
            let (done, total) = (c.done, c.manifest.file_size);
            out.push(DownloadOutput::Write {
                index,
                offset,
                data,
            });
            out.push(DownloadOutput::Progress { done, total });
        } else {
            let times = c.bad.entry(index).or_insert(0);
            *times += 1;
            if *times >= self.config.max_bad_per_chunk {
                let times = *times;
                return self.fail(DownloadError::BadChunk { index, times });
            }
            // Still missing: asked for again with the next window.
        }
        out.extend(self.request_more());
        out
    }

    /// The driver's timer: nothing arrived for a while. Asks again for what is outstanding
    /// (or tries a manifest whose last part was full); fails after too many silent ticks.
    pub fn tick(&mut self) -> Vec<DownloadOutput> {
        if self.is_finished() {
            return Vec::new();
        }
        if std::mem::take(&mut self.progressed) {
            self.stalls = 0;
        } else {
            self.stalls += 1;
            if self.stalls > self.config.max_stalls {
                return self.fail(match self.state {
                    State::Manifest(_) if self.useful == 0 => DownloadError::NotShared,
                    _ => DownloadError::Stalled,
                });
            }
        }
        match &mut self.state {
            State::Manifest(m) => {
                // Nothing for a while: ask for it all again, from the start.
                if self.manifest_requests > self.config.max_stalls {
                    return self.fail(if self.useful == 0 {
                        DownloadError::NotShared
                    } else {
                        DownloadError::Stalled
                    });
                }
                self.manifest_requests += 1;
                **m = ManifestParts::default();
                vec![DownloadOutput::Send(FileMessage::RequestManifest {
                    key: self.key,
                })]
            }
            State::Chunks(c) => {
                c.outstanding = ChunkSpec::default();
                c.next = c.scan;
                self.request_more()
            }
            _ => Vec::new(),
        }
    }

    /// The driver has a new connection to the sharer: what was asked for may have been lost
    /// with the old one (or sent while there was none), so ask again now, without counting
    /// a stall and without waiting for the timer.
    pub fn reconnected(&mut self) -> Vec<DownloadOutput> {
        match &mut self.state {
            State::Manifest(m) => {
                **m = ManifestParts::default();
                vec![DownloadOutput::Send(FileMessage::RequestManifest {
                    key: self.key,
                })]
            }
            State::Chunks(c) => {
                c.outstanding = ChunkSpec::default();
                c.next = c.scan;
                self.request_more()
            }
            _ => Vec::new(),
        }
    }

    /// The driver hashed the whole file: `matches` is whether its SHA-512 is the root hash.
    pub fn file_verified(&mut self, matches: bool) -> Vec<DownloadOutput> {
        if !matches!(self.state, State::Verifying) {
            return Vec::new();
        }
        if matches {
            self.state = State::Done;
            vec![DownloadOutput::Complete]
        } else {
            self.fail(DownloadError::RootHashMismatch)
        }
    }
}

/// Hashes by index as consecutive runs.
fn hash_runs(found: Vec<(u64, [u8; CHUNK_HASH_LEN])>) -> Vec<DownloadOutput> {
    let mut out: Vec<DownloadOutput> = Vec::new();
    for (i, h) in found {
        match out.last_mut() {
            Some(DownloadOutput::Hashes { first, hashes }) if *first + hashes.len() as u64 == i => {
                hashes.push(h)
            }
            _ => out.push(DownloadOutput::Hashes {
                first: i,
                hashes: vec![h],
            }),
        }
    }
    out
}

/// The first `window` missing chunks from `c.scan` on, as a spec; moves `c.scan` past the
/// chunks already here (so each window costs what it scans, not the file's length).
fn window(c: &mut Chunks, window: u64) -> ChunkSpec {
    while c.have.get(c.scan) == Some(true) {
        c.scan += 1;
    }
    let mut ranges = Vec::new();
    let mut left = window;
    let mut i = c.scan.max(c.next);
    while i < c.have.len() && left > 0 {
        if c.have.get(i) == Some(true) {
            i += 1;
            continue;
        }
        let start = i;
        while c.have.get(i) == Some(false) && left > 0 {
            i += 1;
            left -= 1;
        }
        ranges.push(start as u64..=(i - 1) as u64);
    }
    c.next = i;
    ChunkSpec::from_sorted_ranges(ranges)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::files::{manifest_parts, Manifest, ManifestBuilder};
    use crate::gojson::GoJson;

    /// An honest sharer of `data`.
    struct Sharer {
        data: Vec<u8>,
        manifest: Manifest,
        key: FileKey,
    }

    impl Sharer {
        fn new(data: Vec<u8>) -> Sharer {
            let mut b = ManifestBuilder::new();
            b.update(&data).unwrap();
            let manifest = b.finish("x.bin");
            let key = FileKey {
                root_hash: manifest.root_hash,
                nonce: [1; 24],
            };
            Sharer {
                data,
                manifest,
                key,
            }
        }

        fn answer(&self, m: &FileMessage) -> Vec<FileMessage> {
            match m {
                FileMessage::RequestManifest { .. } => {
                    let json = self.manifest.to_go_json();
                    manifest_parts(&json)
                        .into_iter()
                        .enumerate()
                        .map(|(i, p)| FileMessage::ManifestPart {
                            key: self.key,
                            index: i as u64,
                            data: p.to_vec(),
                        })
                        .collect()
                }
                FileMessage::RequestChunks { spec, .. } => {
                    let spec = ChunkSpec::parse(spec, self.manifest.chunk_count()).unwrap();
                    spec.indices().map(|i| self.chunk(i)).collect()
                }
                _ => Vec::new(),
            }
        }

        fn chunk(&self, i: u64) -> FileMessage {
            let (start, len) = self.manifest.chunk_range(i).unwrap();
            FileMessage::Chunk {
                key: self.key,
                index: i,
                data: self.data[start as usize..start as usize + len].to_vec(),
            }
        }
    }

    /// Run a download against `sharer` (messages passed through `tamper`) until it finishes
    /// or nothing is left to do; returns the file written and the final outputs.
    fn run(
        sharer: &Sharer,
        config: DownloadConfig,
        have: Option<Vec<bool>>,
        mut tamper: impl FnMut(FileMessage) -> Vec<FileMessage>,
    ) -> (Vec<u8>, Vec<DownloadOutput>) {
        let (mut d, mut pending) = Download::start(sharer.key, config);
        let mut file = vec![0u8; sharer.data.len()];
        if let Some(h) = &have {
            for (i, present) in h.iter().enumerate() {
                if *present {
                    let (s, l) = sharer.manifest.chunk_range(i as u64).unwrap();
                    file[s as usize..s as usize + l]
                        .copy_from_slice(&sharer.data[s as usize..s as usize + l]);
                }
            }
        }
        let mut seen = Vec::new();
        let mut hashes: Vec<[u8; 32]> = Vec::new();
        let mut writes = std::collections::HashSet::new();
        let mut idle = 0;
        while !d.is_finished() && idle < 10_000 {
            if pending.is_empty() {
                pending = d.tick();
                idle += 1;
                continue;
            }
            let mut next = Vec::new();
            for o in pending.drain(..) {
                match &o {
                    DownloadOutput::Send(m) => {
                        for a in sharer.answer(m).into_iter().flat_map(&mut tamper) {
                            next.extend(d.receive(a, &hashes));
                        }
                    }
                    DownloadOutput::Hashes { first, hashes: h } => {
                        let end = *first as usize + h.len();
                        if hashes.len() < end {
                            hashes.resize(end, [0; 32]);
                        }
                        hashes[*first as usize..end].copy_from_slice(h);
                    }
                    DownloadOutput::ManifestReady(m) => {
                        assert_eq!(**m, sharer.manifest.info());
                        assert_eq!(&hashes[..m.chunk_count as usize], &sharer.manifest.chunks);
                        next.extend(
                            d.manifest_accepted(have.clone().map(|h| h.into_iter().collect())),
                        );
                    }
                    DownloadOutput::Write {
                        index,
                        offset,
                        data,
                    } => {
                        assert!(writes.insert(*index), "chunk {index} written twice");
                        assert!(sharer.manifest.verify_chunk(*index, data));
                        file[*offset as usize..*offset as usize + data.len()].copy_from_slice(data);
                    }
                    DownloadOutput::VerifyFile => {
                        use sha2::{Digest, Sha512};
                        let ok = Sha512::digest(&file).as_slice() == sharer.key.root_hash;
                        next.extend(d.file_verified(ok));
                    }
                    _ => {}
                }
                seen.push(o);
            }
            pending = next;
        }
        seen.extend(pending);
        (file, seen)
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n as u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect()
    }

    fn last(out: &[DownloadOutput]) -> &DownloadOutput {
        out.last().unwrap()
    }

    #[test]
    fn an_honest_sharer() {
        let s = Sharer::new(data(1_000_000));
        assert!(s.manifest.to_go_json().len() > 2 * MANIFEST_PART_SIZE);
        let config = DownloadConfig {
            window: 37,
            ..DownloadConfig::default()
        };
        let (file, out) = run(&s, config, None, |m| vec![m]);
        assert_eq!(last(&out), &DownloadOutput::Complete);
        assert_eq!(file, s.data);
        assert!(out.contains(&DownloadOutput::Progress {
            done: 1_000_000,
            total: 1_000_000
        }));
        // An empty file is done at once.
        let s = Sharer::new(Vec::new());
        let (_, out) = run(&s, DownloadConfig::default(), None, |m| vec![m]);
        assert_eq!(last(&out), &DownloadOutput::Complete);
    }

    #[test]
    fn a_resumed_download_asks_only_for_what_is_missing() {
        let s = Sharer::new(data(40_000));
        let n = s.manifest.chunk_count() as usize;
        let have: Vec<bool> = (0..n).map(|i| i % 3 != 0).collect();
        let (file, out) = run(&s, DownloadConfig::default(), Some(have), |m| vec![m]);
        assert_eq!(last(&out), &DownloadOutput::Complete);
        assert_eq!(file, s.data);
        let asked: Vec<&DownloadOutput> = out
            .iter()
            .filter(|o| matches!(o, DownloadOutput::Send(FileMessage::RequestChunks { .. })))
            .collect();
        assert_eq!(asked.len(), 1);
        let DownloadOutput::Send(FileMessage::RequestChunks { spec, .. }) = asked[0] else {
            unreachable!()
        };
        assert_eq!(spec, "0,3,6,9");
        let writes = out
            .iter()
            .filter(|o| matches!(o, DownloadOutput::Write { .. }))
            .count();
        assert_eq!(writes, 4);
    }

    #[test]
    fn a_bad_chunk_is_asked_for_again_then_fails_the_download() {
        let s = Sharer::new(data(20_000));
        // Chunk 2 arrives wrong once, then right.
        let mut once = true;
        let (file, out) = run(&s, DownloadConfig::default(), None, |m| match m {
            FileMessage::Chunk {
                key,
                index: 2,
                mut data,
            } if once => {
                once = false;
                data[0] ^= 1;
                vec![FileMessage::Chunk {
                    key,
                    index: 2,
                    data,
                }]
            }
            m => vec![m],
        });
        assert_eq!(last(&out), &DownloadOutput::Complete);
        assert_eq!(file, s.data);
        // Always wrong (here: too long): fails after 3.
        let (_, out) = run(&s, DownloadConfig::default(), None, |m| match m {
            FileMessage::Chunk {
                key,
                index: 1,
                mut data,
            } => {
                data.push(0);
                vec![FileMessage::Chunk {
                    key,
                    index: 1,
                    data,
                }]
            }
            m => vec![m],
        });
        assert_eq!(
            last(&out),
            &DownloadOutput::Failed(DownloadError::BadChunk { index: 1, times: 3 })
        );
    }

    #[test]
    fn a_lying_manifest_fails_at_the_end() {
        // The manifest's chunks are a different file's, under this key's root hash.
        let s = Sharer::new(data(9000));
        let other = Sharer::new(vec![9u8; 9000]);
        let liar = Sharer {
            data: other.data.clone(),
            manifest: Manifest {
                root_hash: s.manifest.root_hash,
                ..other.manifest.clone()
            },
            key: s.key,
        };
        let (_, out) = run(&liar, DownloadConfig::default(), None, |m| vec![m]);
        assert_eq!(
            last(&out),
            &DownloadOutput::Failed(DownloadError::RootHashMismatch)
        );
        assert!(!out.contains(&DownloadOutput::Complete));
    }

    #[test]
    fn manifests_that_do_not_fit() {
        let s = Sharer::new(data(9000));
        let wrong_key = Sharer {
            key: FileKey {
                root_hash: [0; 64],
                nonce: [1; 24],
            },
            data: s.data.clone(),
            manifest: s.manifest.clone(),
        };
        let (_, out) = run(&wrong_key, DownloadConfig::default(), None, |m| vec![m]);
        assert!(matches!(
            last(&out),
            DownloadOutput::Failed(DownloadError::BadManifest(_))
        ));
        let small = DownloadConfig {
            max_file_size: 8999,
            ..DownloadConfig::default()
        };
        let (_, out) = run(&s, small, None, |m| vec![m]);
        assert_eq!(
            last(&out),
            &DownloadOutput::Failed(DownloadError::TooLarge {
                size: 9000,
                limit: 8999
            })
        );
    }

    /// A file over the limit whose manifest alone says so (it is longer than any file within
    /// the limit needs) fails before the whole manifest is received.
    #[test]
    fn a_manifest_too_long_for_the_limit_fails_early() {
        let s = Sharer::new(data(2 * 1024 * 1024));
        let limit = 9000;
        let small = DownloadConfig {
            max_file_size: limit,
            ..DownloadConfig::default()
        };
        // Its manifest (about 24 KB) is longer than a 9000-byte file's can be (16.5 KB).
        let json = s.manifest.to_go_json();
        assert!(json.len() as u64 > manifest_bytes_for(limit));
        let (_, out) = run(&s, small, None, |m| vec![m]);
        assert_eq!(
            last(&out),
            &DownloadOutput::Failed(DownloadError::ManifestTooLarge { limit })
        );
        assert!(
            !out.iter()
                .any(|o| matches!(o, DownloadOutput::ManifestReady(_))),
            "{out:?}"
        );
        // Within the limit, the same manifest is taken whole.
        let (_, out) = run(&s, DownloadConfig::default(), None, |m| vec![m]);
        assert_eq!(last(&out), &DownloadOutput::Complete);
    }

    #[test]
    fn an_endless_stream_fails_and_silence_stalls() {
        let s = Sharer::new(data(9000));
        let flood = DownloadConfig {
            max_unsolicited: 100,
            ..DownloadConfig::default()
        };
        let (_, out) = run(&s, flood, None, |m| match m {
            FileMessage::Chunk { key, index, data } => {
                vec![FileMessage::Chunk { key, index, data }; 200]
            }
            m => vec![m],
        });
        assert_eq!(last(&out), &DownloadOutput::Failed(DownloadError::Flooded));
        let (_, out) = run(&s, DownloadConfig::default(), None, |m| match m {
            FileMessage::Chunk { .. } => vec![],
            m => vec![m],
        });
        assert_eq!(last(&out), &DownloadOutput::Failed(DownloadError::Stalled));
        // Ticks ask again for what is outstanding.
        let asks = out
            .iter()
            .filter(|o| matches!(o, DownloadOutput::Send(FileMessage::RequestChunks { .. })))
            .count();
        assert!(asks > 1, "{asks}");
    }

    #[test]
    fn a_manifest_never_answered_is_not_shared_and_one_broken_off_is_stalled() {
        let s = Sharer::new(data(1_000_000));
        let (_, out) = run(&s, DownloadConfig::default(), None, |_| vec![]);
        assert_eq!(
            last(&out),
            &DownloadOutput::Failed(DownloadError::NotShared)
        );
        // The first part only, then silence.
        let (_, out) = run(&s, DownloadConfig::default(), None, |m| match m {
            FileMessage::ManifestPart { index: 0, .. } => vec![m],
            _ => vec![],
        });
        assert_eq!(last(&out), &DownloadOutput::Failed(DownloadError::Stalled));
    }

    #[test]
    fn only_useful_messages_count_as_useful() {
        let s = Sharer::new(data(1_000_000));
        let (mut d, _) = Download::start(s.key, DownloadConfig::default());
        let parts = s.answer(&FileMessage::RequestManifest { key: s.key });
        assert!(parts.len() > 1);
        d.receive(parts[0].clone(), &s.manifest.chunks);
        assert_eq!(d.useful(), 1);
        // A repeat, a part far out of range, another file's part: nothing useful.
        d.receive(parts[0].clone(), &s.manifest.chunks);
        d.receive(
            FileMessage::ManifestPart {
                key: s.key,
                index: u64::MAX,
                data: b"x".to_vec(),
            },
            &s.manifest.chunks,
        );
        let other = Sharer::new(data(5_000));
        d.receive(
            other.answer(&FileMessage::RequestManifest { key: other.key })[0].clone(),
            &s.manifest.chunks,
        );
        assert_eq!(d.useful(), 1);
        let mut asked = Vec::new();
        for p in &parts[1..] {
            for o in d.receive(p.clone(), &s.manifest.chunks) {
                if let DownloadOutput::ManifestReady(_) = o {
                    asked = d.manifest_accepted(None);
                }
            }
        }
        assert_eq!(d.useful(), parts.len() as u64);
        let request = asked
            .into_iter()
            .find_map(|o| match o {
                DownloadOutput::Send(r @ FileMessage::RequestChunks { .. }) => Some(r),
                _ => None,
            })
            .unwrap();
        let chunks = s.answer(&request);
        d.receive(chunks[0].clone(), &s.manifest.chunks);
        assert_eq!(d.useful(), parts.len() as u64 + 1);
        // The same chunk again is not.
        d.receive(chunks[0].clone(), &s.manifest.chunks);
        assert_eq!(d.useful(), parts.len() as u64 + 1);
    }

    #[test]
    fn a_new_connection_asks_again_at_once_and_is_no_stall() {
        let s = Sharer::new(data(100_000));
        let config = DownloadConfig::default();
        let (mut d, first) = Download::start(s.key, config.clone());
        assert!(matches!(
            first[..],
            [DownloadOutput::Send(FileMessage::RequestManifest { .. })]
        ));
        // The first request went nowhere; connections come and go more often than the
        // stall limit: each asks again, and the download does not fail.
        for _ in 0..config.max_stalls + 3 {
            assert!(matches!(
                d.reconnected()[..],
                [DownloadOutput::Send(FileMessage::RequestManifest { .. })]
            ));
        }
        assert!(!d.is_finished());
        // Once chunks are asked for, a new connection asks for the same ones again.
        let mut asked = Vec::new();
        for m in s.answer(&FileMessage::RequestManifest { key: s.key }) {
            for o in d.receive(m, &s.manifest.chunks) {
                if let DownloadOutput::ManifestReady(_) = o {
                    for o in d.manifest_accepted(None) {
                        if let DownloadOutput::Send(r @ FileMessage::RequestChunks { .. }) = o {
                            asked.push(r);
                        }
                    }
                }
            }
        }
        assert!(!asked.is_empty());
        let again: Vec<_> = d
            .reconnected()
            .into_iter()
            .filter_map(|o| match o {
                DownloadOutput::Send(r @ FileMessage::RequestChunks { .. }) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(again, asked);
    }

    #[test]
    fn a_manifest_whose_last_part_is_full_completes_when_its_object_closes() {
        let s = Sharer::new(data(1000));
        let (mut d, _) = Download::start(s.key, DownloadConfig::default());
        let mut json = s.manifest.to_go_json();
        // Spaces before it (valid JSON) to exactly one full part: no short part follows.
        let pad = MANIFEST_PART_SIZE - json.len();
        json.splice(0..0, std::iter::repeat_n(b' ', pad));
        let out = d.receive(
            FileMessage::ManifestPart {
                key: s.key,
                index: 0,
                data: json,
            },
            &s.manifest.chunks,
        );
        assert!(
            matches!(
                out[..],
                [
                    DownloadOutput::Hashes { first: 0, .. },
                    DownloadOutput::ManifestReady(_)
                ]
            ),
            "{out:?}"
        );
        // A first full part of a longer manifest, then silence: asked for again, not failed.
        let big = Sharer::new(data(1_000_000));
        let (mut d, _) = Download::start(big.key, DownloadConfig::default());
        let json = big.manifest.to_go_json();
        d.receive(
            FileMessage::ManifestPart {
                key: big.key,
                index: 0,
                data: json[..MANIFEST_PART_SIZE].to_vec(),
            },
            &big.manifest.chunks,
        );
        assert!(matches!(
            d.tick()[..],
            [DownloadOutput::Send(FileMessage::RequestManifest { .. })]
        ));
        assert!(!d.is_finished());
    }

    #[test]
    fn parts_out_of_order_are_read_in_order_and_a_short_early_end_fails() {
        let s = Sharer::new(data(1_000_000));
        // Each part held back until the one after it has arrived.
        let mut held: Option<FileMessage> = None;
        let (file, out) = run(&s, DownloadConfig::default(), None, |m| match m {
            FileMessage::ManifestPart { index, .. } if index % 2 == 0 => {
                held.replace(m).into_iter().collect()
            }
            m @ FileMessage::ManifestPart { .. } => std::iter::once(m).chain(held.take()).collect(),
            m => std::iter::once(m).chain(held.take()).collect(),
        });
        assert_eq!(last(&out), &DownloadOutput::Complete);
        assert_eq!(file, s.data);
        // A manifest cut short (its last part short, its object open) fails at once.
        let (_, out) = run(&s, DownloadConfig::default(), None, |m| match m {
            FileMessage::ManifestPart { key, index, data } if index == 1 => {
                vec![FileMessage::ManifestPart {
                    key,
                    index,
                    data: data[..100].to_vec(),
                }]
            }
            m => vec![m],
        });
        assert!(
            matches!(
                last(&out),
                DownloadOutput::Failed(DownloadError::BadManifest(_))
            ),
            "{:?}",
            last(&out)
        );
    }

    proptest! {
        /// A sharer that drops, repeats, reorders and corrupts: the download never writes a
        /// bad chunk or one twice, and either completes with the exact file or fails with a
        /// reason.
        #[test]
        fn a_hostile_sharer_costs_only_the_download(
            len in 0usize..60_000,
            ops in proptest::collection::vec(0u8..6, 1..64),
            window in 1u64..20,
        ) {
            let s = Sharer::new(data(len));
            let mut k = 0usize;
            let config = DownloadConfig { window, ..DownloadConfig::default() };
            let (file, out) = run(&s, config, None, |m| {
                k += 1;
                match (ops[k % ops.len()], m) {
                    (0, _) => vec![],
                    (1, m) => vec![m.clone(), m],
                    (2, FileMessage::Chunk { key, index, mut data }) => {
                        if let Some(b) = data.first_mut() { *b ^= 0x80; }
                        vec![FileMessage::Chunk { key, index, data }]
                    }
                    (3, FileMessage::Chunk { key, index, .. }) => {
                        vec![FileMessage::Chunk { key, index: index + 1, data: vec![1, 2, 3] }]
                    }
                    (_, m) => vec![m],
                }
            });
            match last(&out) {
                DownloadOutput::Complete => prop_assert_eq!(file, s.data),
                DownloadOutput::Failed(_) => {}
                other => prop_assert!(false, "ended with {:?}", other),
            }
        }
    }
}
