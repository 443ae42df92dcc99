//! A manifest read as it arrives, in memory that does not grow with the file.
//!
//! A 10 GiB file's manifest lists 2.6 million chunk hashes: 80 MiB decoded, 123 MiB as JSON.
//! A downloader must not hold that. [`ManifestReader`] takes the JSON in pieces (the parts
//! as they arrive) and hands out each chunk hash as soon as it is decoded, with its index,
//! for the driver to keep on disk; it keeps only the unfinished token and the other fields.
//!
//! Same answers as [`Manifest::parse`](super::Manifest::parse): the reader splits the
//! top-level object itself, decodes every chunk hash with the same decoder call, and decodes
//! the other fields (any keys, in document order) by handing them to the same decoder as one
//! small object. Go's rules therefore hold unchanged: case-insensitive keys, the last
//! `Chunks` wins (hashes are reported by position, so a later array overwrites), `null`
//! empties it. The one difference is a limit: fields other than `Chunks` may take at most
//! [`MAX_MANIFEST_FIELDS_BYTES`], and one hash at most 1 KiB of JSON (a real one takes 46
//! bytes); beyond that the manifest is refused ([`LIMIT_REASON`]).

use super::manifest::{RawManifest, FIELDS};
use super::{FileKey, ManifestInfo, CHUNK_HASH_LEN, MAX_CHUNKS};
use crate::gojson::{self, Decoder, GoDecode};
use crate::Error;

/// The most bytes of JSON that the fields other than `Chunks` may take together (a real
/// manifest's take about 200).
pub const MAX_MANIFEST_FIELDS_BYTES: usize = 64 * 1024;
/// The most bytes of JSON one chunk hash may take.
const MAX_ELEMENT_BYTES: usize = 1024;
/// The reason given when a manifest is refused for a limit of this reader, not for Go's rules.
pub const LIMIT_REASON: &str = "a field of the manifest is too long";

/// Where a downloader keeps the chunk hashes a manifest listed (on disk, in the driver).
pub trait ChunkHashes {
    /// The hash of chunk `index`, as the manifest listed it.
    fn chunk_hash(&self, index: u64) -> std::io::Result<[u8; CHUNK_HASH_LEN]>;
}

impl ChunkHashes for [[u8; CHUNK_HASH_LEN]] {
    fn chunk_hash(&self, index: u64) -> std::io::Result<[u8; CHUNK_HASH_LEN]> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.get(i))
            .copied()
            .ok_or_else(|| std::io::Error::other("no such chunk"))
    }
}

impl ChunkHashes for Vec<[u8; CHUNK_HASH_LEN]> {
    fn chunk_hash(&self, index: u64) -> std::io::Result<[u8; CHUNK_HASH_LEN]> {
        self.as_slice().chunk_hash(index)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// Before the top-level `{`.
    Start,
    /// After `{`: a key or `}`.
    FirstKey,
    /// After `,` in the object: a key.
    Key,
    /// After a key: `:`.
    Colon,
    /// After `:`: the value.
    Value,
    /// After a value: `,` or `}`.
    AfterMember,
    /// After the `[` of `Chunks`: a hash or `]`.
    FirstHash,
    /// After `,` in `Chunks`: a hash.
    Hash,
    /// After a hash: `,` or `]`.
    AfterHash,
    /// After the top-level `}`: only whitespace may follow.
    End,
}

/// See the module docs.
#[derive(Debug)]
pub struct ManifestReader {
    /// Input not yet consumed: at most one unfinished token.
    pending: Vec<u8>,
    at: At,
    /// The current member's key, as JSON.
    key: Vec<u8>,
    /// Whether the current member is `Chunks`.
    key_is_chunks: bool,
    /// `{` and every member but the `Chunks` arrays, as JSON.
    fields: Vec<u8>,
    /// Hashes in the last complete `Chunks` (0: none, or `null`).
    chunk_count: u64,
    /// The next hash's index in the current `Chunks`.
    index: u64,
    /// A hash was not 32 bytes (sticky, as [`Manifest::parse`](super::Manifest::parse)).
    bad_chunk: bool,
}

impl Default for ManifestReader {
    fn default() -> Self {
        ManifestReader::new()
    }
}

fn limit() -> Error {
    Error::InvalidManifest {
        reason: LIMIT_REASON,
    }
}

fn syntax(expected: &'static str) -> Error {
    Error::JsonSyntax {
        offset: 0,
        expected,
    }
}

/// A JSON string that is next in `b` (`b[0] == '"'`): its length, `None` if unfinished.
fn scan_string(b: &[u8]) -> Option<usize> {
    let mut i = 1;
    while let Some(&c) = b.get(i) {
        match c {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

/// The JSON value that is next in `b` (not empty, no leading whitespace): its length, `None`
/// if unfinished. Only its extent is found here; the decoder checks its content.
fn scan_value(b: &[u8]) -> Option<usize> {
    match b.first()? {
        b'"' => scan_string(b),
        b'{' | b'[' => {
            let (mut depth, mut i) = (0usize, 0);
            while let Some(&c) = b.get(i) {
                match c {
                    b'"' => {
                        i += scan_string(&b[i..])?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        // A number or a literal: up to the next delimiter.
        _ => b
            .iter()
            .position(|c| b" \t\n\r,:{}[]\"".contains(c))
            .map(|n| n.max(1)),
    }
}

#[derive(Default)]
struct Key(String);

impl GoDecode for Key {
    fn decode_into(&mut self, d: &mut Decoder<'_>) -> Result<(), Error> {
        d.string(&mut self.0)
    }
}

/// One element of `Chunks`, decoded as [`Manifest::parse`](super::Manifest::parse) decodes
/// it: `Some` hash, or `None` if it is not 32 bytes.
fn decode_hash(raw: &[u8]) -> Result<Option<[u8; CHUNK_HASH_LEN]>, Error> {
    let mut d = Decoder::new(raw);
    let mut b = None;
    d.bytes(&mut b)?;
    d.finish()?;
    Ok(b.as_deref().and_then(|b| b.try_into().ok()))
}

impl ManifestReader {
    /// A reader at the start of a manifest's JSON.
    pub fn new() -> ManifestReader {
        ManifestReader {
            pending: Vec::new(),
            at: At::Start,
            key: Vec::new(),
            key_is_chunks: false,
            fields: Vec::new(),
            chunk_count: 0,
            index: 0,
            bad_chunk: false,
        }
    }

    /// Whether the top-level object has closed (more input may only be whitespace).
    pub fn is_complete(&self) -> bool {
        self.at == At::End
    }

    /// The next bytes of the JSON. Each chunk hash decoded from them is pushed to `hashes`
    /// with its index; a later one with the same index replaces the earlier (a repeated
    /// `Chunks`). An error is final.
    pub fn feed(
        &mut self,
        data: &[u8],
        hashes: &mut Vec<(u64, [u8; CHUNK_HASH_LEN])>,
    ) -> Result<(), Error> {
        self.pending.extend_from_slice(data);
        let mut pos = 0;
        let r = self.run(&mut pos, hashes);
        self.pending.drain(..pos);
        r
    }

    fn run(
        &mut self,
        pos: &mut usize,
        hashes: &mut Vec<(u64, [u8; CHUNK_HASH_LEN])>,
    ) -> Result<(), Error> {
        loop {
            while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.pending.get(*pos) {
                *pos += 1;
            }
            let rest = &self.pending[*pos..];
            let Some(&b) = rest.first() else {
                return Ok(());
            };
            match self.at {
                At::Start => {
                    if b != b'{' {
                        return Err(syntax("a JSON object (the manifest)"));
                    }
                    self.fields.push(b'{');
                    *pos += 1;
                    self.at = At::FirstKey;
                }
                At::FirstKey if b == b'}' => {
                    *pos += 1;
                    self.at = At::End;
                }
                At::FirstKey | At::Key => {
                    if b != b'"' {
                        return Err(syntax("an object key"));
                    }
                    let Some(n) = scan_string(rest) else {
                        return self.unfinished(rest.len(), MAX_MANIFEST_FIELDS_BYTES);
                    };
                    let Key(name) = gojson::decode(&rest[..n])?;
                    self.key_is_chunks = gojson::match_field(FIELDS, &name) == Some(0);
                    self.key = rest[..n].to_vec();
                    *pos += n;
                    self.at = At::Colon;
                }
                At::Colon => {
                    if b != b':' {
                        return Err(syntax("':' after an object key"));
                    }
                    *pos += 1;
                    self.at = At::Value;
                }
                At::Value if self.key_is_chunks && b == b'[' => {
                    *pos += 1;
                    self.index = 0;
                    self.at = At::FirstHash;
                }
                At::Value => {
                    let Some(n) = scan_value(rest) else {
                        return self.unfinished(rest.len(), MAX_MANIFEST_FIELDS_BYTES);
                    };
                    let raw = &rest[..n];
                    if self.key_is_chunks && raw == b"null" {
                        // Go sets the slice to nil.
                        self.chunk_count = 0;
                    } else {
                        // Any other field, or a `Chunks` that is not an array (the decoder
                        // refuses it there, as Go does).
                        if self.fields.len() > 1 {
                            self.fields.push(b',');
                        }
                        self.fields.extend_from_slice(&self.key);
                        self.fields.push(b':');
                        self.fields.extend_from_slice(raw);
                        if self.fields.len() > MAX_MANIFEST_FIELDS_BYTES {
                            return Err(limit());
                        }
                    }
                    *pos += n;
                    self.at = At::AfterMember;
                }
                At::AfterMember => {
                    *pos += 1;
                    self.at = match b {
                        b',' => At::Key,
                        b'}' => At::End,
                        _ => return Err(syntax("',' or '}' in an object")),
                    };
                }
                At::FirstHash if b == b']' => {
                    *pos += 1;
                    self.chunk_count = 0;
                    self.at = At::AfterMember;
                }
                At::FirstHash | At::Hash => {
                    if self.index >= MAX_CHUNKS {
                        return Err(Error::JsonType {
                            offset: 0,
                            expected: "no more elements (the slice is at its limit)",
                        });
                    }
                    let Some(n) = scan_value(rest) else {
                        return self.unfinished(rest.len(), MAX_ELEMENT_BYTES);
                    };
                    if n > MAX_ELEMENT_BYTES {
                        return Err(limit());
                    }
                    match decode_hash(&rest[..n])? {
                        Some(h) => hashes.push((self.index, h)),
                        None => self.bad_chunk = true,
                    }
                    self.index += 1;
                    *pos += n;
                    self.at = At::AfterHash;
                }
                At::AfterHash => {
                    *pos += 1;
                    match b {
                        b',' => self.at = At::Hash,
                        b']' => {
                            self.chunk_count = self.index;
                            self.at = At::AfterMember;
                        }
                        _ => return Err(syntax("',' or ']' in an array")),
                    }
                }
                At::End => return Err(syntax("end of input after the value")),
            }
        }
    }

    /// A token is not finished: wait for more, unless it is already longer than `max`.
    fn unfinished(&self, len: usize, max: usize) -> Result<(), Error> {
        if len > max {
            Err(limit())
        } else {
            Ok(())
        }
    }

    /// The JSON is complete: check the manifest (as [`Manifest::parse`](super::Manifest::parse)
    /// does) and that it is the one `key` names. `Ok` only if the top-level object closed.
    pub fn finish(&self, key: &FileKey) -> Result<ManifestInfo, Error> {
        if self.at != At::End {
            return Err(syntax("the rest of the manifest (it ended early)"));
        }
        let mut fields = self.fields.clone();
        fields.push(b'}');
        let raw: RawManifest = gojson::decode(&fields)?;
        let info = raw.check(self.chunk_count, self.bad_chunk)?;
        if info.root_hash != key.root_hash {
            return Err(Error::InvalidManifest {
                reason: "its root hash is not the file key's",
            });
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::files::{Manifest, ManifestBuilder};
    use crate::gojson::GoJson;

    /// Read `json` fed in pieces cut at `cuts`; the manifest and its hashes by position.
    fn read(
        json: &[u8],
        cuts: &[usize],
        key: &FileKey,
    ) -> Result<(ManifestInfo, Vec<[u8; 32]>), Error> {
        let mut r = ManifestReader::new();
        let mut got = Vec::new();
        let mut cuts: Vec<usize> = cuts.iter().map(|c| (*c).min(json.len())).collect();
        cuts.sort_unstable();
        let mut at = 0;
        for c in cuts.into_iter().chain([json.len()]) {
            r.feed(&json[at..c], &mut got)?;
            at = c;
        }
        let info = r.finish(key)?;
        let mut hashes = vec![[0u8; 32]; info.chunk_count as usize];
        for (i, h) in got {
            if let Some(slot) = hashes.get_mut(i as usize) {
                *slot = h;
            }
        }
        Ok((info, hashes))
    }

    /// What [`Manifest::parse`] makes of `json`, in the reader's terms.
    fn parse(json: &[u8], key: &FileKey) -> Result<(ManifestInfo, Vec<[u8; 32]>), Error> {
        let m = Manifest::parse(json)?;
        if m.root_hash != key.root_hash {
            return Err(Error::InvalidManifest { reason: "key" });
        }
        Ok((m.info(), m.chunks))
    }

    fn manifest_of(data: &[u8]) -> (Manifest, FileKey) {
        let mut b = ManifestBuilder::new();
        b.update(data).unwrap();
        let m = b.finish("f.bin");
        let key = FileKey {
            root_hash: m.root_hash,
            nonce: [2; 24],
        };
        (m, key)
    }

    #[test]
    fn a_real_manifest_in_parts_gives_every_hash_and_the_rest() {
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
        let (m, key) = manifest_of(&data);
        let json = m.to_go_json();
        let cuts: Vec<usize> = (1..json.len()).step_by(4096).collect();
        let (info, hashes) = read(&json, &cuts, &key).unwrap();
        assert_eq!(info, m.info());
        assert_eq!(hashes, m.chunks);
        // Not under another key; not before it is complete.
        let other = FileKey {
            root_hash: [7; 64],
            nonce: [2; 24],
        };
        assert!(read(&json, &cuts, &other).is_err());
        let mut r = ManifestReader::new();
        r.feed(&json[..json.len() - 1], &mut Vec::new()).unwrap();
        assert!(!r.is_complete());
        assert!(r.finish(&key).is_err());
        r.feed(b"}  \n", &mut Vec::new()).unwrap();
        assert!(r.is_complete());
        assert_eq!(r.finish(&key).unwrap(), m.info());
        assert!(r.feed(b"x", &mut Vec::new()).is_err());
    }

    #[test]
    fn go_rules_hold_as_in_the_whole_parse() {
        let (m, key) = manifest_of(&[5u8; 9000]);
        let json = String::from_utf8(m.to_go_json()).unwrap();
        let (h0, h1) = (
            gojson::base64_std(&m.chunks[0]),
            gojson::base64_std(&m.chunks[1]),
        );
        let variants = [
            json.clone(),
            // Case-insensitive keys, the Kelvin sign, whitespace, unknown fields.
            json.replace("\"Chunks\"", "\"cHUNKS\""),
            json.replace("\"FileName\"", "\"FileNa\u{212a}e\"")
                .replace("\"FileName\"", "\"FILENAME\""),
            json.replace(',', " ,\n\t").replace(':', " : "),
            json.replacen('{', r#"{"Extra":{"a":[1,"]}",{}]},"#, 1),
            // A repeated Chunks: the last wins, whether longer, shorter or null.
            json.replacen(
                '{',
                &format!(r#"{{"Chunks":["{h1}","{h0}","{h1}","{h0}"],"#),
                1,
            ),
            json.replacen('{', r#"{"Chunks":null,"#, 1),
            json.replacen('}', &format!(r#","Chunks":["{h0}"]}}"#), 1),
            json.replacen('}', r#","Chunks":null}"#, 1),
            json.replacen('}', r#","Chunks":"x"}"#, 1),
            json.replacen('}', r#","Chunks":[]}"#, 1),
            // A bad hash anywhere, even in a replaced Chunks, is an error.
            json.replacen('{', r#"{"Chunks":["AAAA"],"#, 1),
            json.replacen('{', r#"{"Chunks":[null],"#, 1),
            json.replacen('{', r#"{"Chunks":[1],"#, 1),
            // Syntax.
            format!("{json}x"),
            format!("{json}{{}}"),
            json.replacen(':', "", 1),
            json.replacen('[', "[,", 1),
            json.replacen(']', ",]", 1),
            json.replace('}', ""),
            "null".to_owned(),
            "{}".to_owned(),
            "[]".to_owned(),
        ];
        let count = |v: &str| {
            read(v.as_bytes(), &[], &key)
                .ok()
                .map(|(i, h)| (i.chunk_count, h))
        };
        for v in &variants[..7] {
            assert_eq!(count(v), Some((3, m.chunks.clone())), "{v}");
        }
        for v in &variants[7..] {
            assert_eq!(count(v), None, "{v}");
        }
        for v in &variants {
            for cuts in [vec![], vec![1, 2, 3, 50, 51], (0..v.len()).collect()] {
                let streamed = read(v.as_bytes(), &cuts, &key);
                let whole = parse(v.as_bytes(), &key);
                assert_eq!(
                    streamed.as_ref().ok(),
                    whole.as_ref().ok(),
                    "{v}: {streamed:?} / {whole:?}"
                );
            }
        }
    }

    #[test]
    fn a_field_past_the_limit_is_refused_not_buffered() {
        let (m, key) = manifest_of(b"abc");
        let json = String::from_utf8(m.to_go_json()).unwrap();
        let long = "a".repeat(MAX_MANIFEST_FIELDS_BYTES + 10);
        let v = json.replacen('{', &format!(r#"{{"X":"{long}","#), 1);
        let mut r = ManifestReader::new();
        let mut failed = None;
        for part in v.as_bytes().chunks(4096) {
            if let Err(e) = r.feed(part, &mut Vec::new()) {
                failed = Some(e);
                break;
            }
        }
        assert!(
            matches!(failed, Some(Error::InvalidManifest { reason }) if reason == LIMIT_REASON),
            "{failed:?}"
        );
        assert!(r.pending.len() <= MAX_MANIFEST_FIELDS_BYTES + 4096);
        let _ = key;
    }

    #[test]
    fn a_1_gib_manifest_is_read_in_bounded_memory() {
        // 262 144 hashes (a 1 GiB file), about 12 MiB of JSON, fed in 4096-byte parts: what
        // the reader keeps never grows past one part and one token.
        let n: u64 = 262_144;
        let hash = |i: u64| {
            let mut h = [0u8; 32];
            h[..8].copy_from_slice(&i.to_le_bytes());
            h
        };
        let mut json = b"{\"Chunks\":[".to_vec();
        for i in 0..n {
            if i > 0 {
                json.push(b',');
            }
            gojson::write_bytes(&mut json, Some(&hash(i)));
        }
        json.extend_from_slice(b"],\"FileName\":\"big.bin\",\"RootHash\":");
        gojson::write_bytes(&mut json, Some(&[9u8; 64]));
        json.extend_from_slice(
            format!(
                ",\"FileSizeInBytes\":{},\"ChunkSizeInBytes\":4096}}",
                n * 4096
            )
            .as_bytes(),
        );
        assert!(json.len() > 12_000_000);
        let mut r = ManifestReader::new();
        let (mut next, mut most) = (0u64, 0usize);
        let mut got = Vec::new();
        for part in json.chunks(4096) {
            r.feed(part, &mut got).unwrap();
            for (i, h) in got.drain(..) {
                assert_eq!((i, h), (next, hash(next)));
                next += 1;
            }
            most = most.max(r.pending.capacity() + r.fields.capacity());
        }
        assert_eq!(next, n);
        assert!(most < 3 * 4096, "the reader kept {most} bytes");
        let key = FileKey {
            root_hash: [9; 64],
            nonce: [0; 24],
        };
        let info = r.finish(&key).unwrap();
        assert_eq!((info.chunk_count, info.file_size), (n, n * 4096));
    }

    proptest! {
        /// Arbitrary bytes cut anywhere: the reader agrees with the whole parse, except
        /// where it refuses a field past its limit.
        #[test]
        fn agrees_with_the_whole_parse(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            cuts in proptest::collection::vec(0usize..600, 0..6),
        ) {
            let key = FileKey { root_hash: [0; 64], nonce: [0; 24] };
            let streamed = read(&data, &cuts, &key);
            let whole = parse(&data, &key);
            prop_assert_eq!(streamed.as_ref().ok(), whole.as_ref().ok());
        }

        /// Real manifests with noise spliced between tokens, cut anywhere.
        #[test]
        fn agrees_on_real_manifests_with_noise(
            len in 0usize..20_000,
            ws in proptest::collection::vec((0usize..2000, prop::sample::select(vec![" ", "\n", "\t\r", ",", "]", "\"", "{", "null"])), 0..4),
            cuts in proptest::collection::vec(0usize..2000, 0..8),
        ) {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            let (m, key) = manifest_of(&data);
            let mut json = m.to_go_json();
            for (at, s) in ws {
                let at = at.min(json.len());
                json.splice(at..at, s.bytes());
            }
            let streamed = read(&json, &cuts, &key);
            let whole = parse(&json, &key);
            prop_assert_eq!(streamed.as_ref().ok(), whole.as_ref().ok());
        }
    }
}
