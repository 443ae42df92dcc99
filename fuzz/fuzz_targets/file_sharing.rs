//! File sharing's parsers (protocol.md §9): manifests (as reassembled from a sharer's parts),
//! the share message (overlay 200), file keys and chunk requests, all from a peer.
//!
//! Asserts: no panics; what parses is consistent (chunk count fits the size, every index of a
//! chunk request is a chunk of the file) and re-encodes to something that parses to the same
//! value; a chunk verifies against a manifest only with its exact length.
#![no_main]

use cwtch_model::files::{ChunkSpec, FileKey, FileShare, Manifest};
use cwtch_model::gojson::GoJson;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::parse(data) {
        assert_eq!(m.chunk_count(), m.file_size.div_ceil(m.chunk_size));
        let again = Manifest::parse(&m.to_go_json()).expect("our own manifest parses");
        assert_eq!(again, m);
        if let Some((_, len)) = m.chunk_range(0) {
            assert!(!m.verify_chunk(0, &vec![0u8; len + 1]));
        }
        assert!(m.chunk_range(m.chunk_count()).is_none());
    }
    if let Ok(s) = FileShare::parse(data) {
        let key = s.key().expect("a parsed share has a key");
        assert_eq!(FileKey::parse(&key.to_string()), Ok(key));
        assert_eq!(FileShare::parse(&s.to_go_json()), Ok(s));
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(k) = FileKey::parse(&text) {
        assert_eq!(k.to_string(), text);
    }
    let n = data.first().map_or(0, |&b| u64::from(b) * 37);
    if let Ok(spec) = ChunkSpec::parse(&text, n) {
        assert!(spec.ranges().iter().all(|r| *r.end() < n));
        assert_eq!(ChunkSpec::parse(&spec.to_string(), n), Ok(spec));
    }
});
