//! File sharing's parsers (protocol.md §9): manifests (as reassembled from a sharer's parts),
//! the share message (overlay 200), file keys and chunk requests, all from a peer.
//!
//! Asserts: no panics; the downloader's streaming manifest reader, fed the input in pieces,
//! agrees with the whole parse (or refuses a field past its own limit); what parses is
//! consistent (chunk count fits the size, every index of a
//! chunk request is a chunk of the file) and re-encodes to something that parses to the same
//! value; a chunk verifies against a manifest only with its exact length; a download fed a
//! hostile sharer's messages (the input, split at 0xfe) never writes a chunk that does not
//! verify, nor one twice, and never completes without the file's hash checked.
#![no_main]

use cwtch_model::files::{
    ChunkSpec, Download, DownloadConfig, DownloadOutput, FileKey, FileMessage, FileShare, Manifest,
    ManifestBuilder, ManifestReader, LIMIT_REASON,
};
use cwtch_model::gojson::GoJson;
use cwtch_model::peer::PeerMessage;
use cwtch_model::Error;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    streamed_agrees(data);
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

    if let Ok(m) = FileMessage::parse(&PeerMessage::new(
        String::from_utf8_lossy(data.get(..64).unwrap_or(data)).into_owned(),
        "im.cwtch.file.send.chunk",
        data.to_vec(),
    )) {
        assert_eq!(FileMessage::parse(&m.to_peer_message()), Ok(m));
    }
    download(data);
});

/// The reader, fed `data` in pieces whose sizes the first byte picks, against the whole parse.
fn streamed_agrees(data: &[u8]) {
    let whole = Manifest::parse(data);
    let key = FileKey {
        root_hash: whole.as_ref().map_or([0; 64], |m| m.root_hash),
        nonce: [0; 24],
    };
    let step = usize::from(data.first().copied().unwrap_or(0) % 64) + 1;
    let mut r = ManifestReader::new();
    let mut got = Vec::new();
    let fed: Result<(), Error> = data.chunks(step).try_for_each(|p| r.feed(p, &mut got));
    let streamed = fed.and_then(|()| r.finish(&key));
    match (&whole, &streamed) {
        (Ok(m), Ok(info)) => {
            assert_eq!(&m.info(), info);
            let mut hashes = vec![[0u8; 32]; m.chunks.len()];
            for (i, h) in got {
                if let Some(slot) = hashes.get_mut(i as usize) {
                    *slot = h;
                }
            }
            assert_eq!(hashes, m.chunks, "the hashes by position");
        }
        (Err(_), Err(_)) => {}
        (Ok(_), Err(Error::InvalidManifest { reason })) if *reason == LIMIT_REASON => {}
        (w, s) => panic!("whole {w:?}, streamed {s:?}"),
    }
}

/// A download of a small known file whose sharer says whatever the input says.
fn download(data: &[u8]) {
    let content: Vec<u8> = (0..9000u32).map(|i| (i % 251) as u8).collect();
    let mut b = ManifestBuilder::new();
    b.update(&content).expect("small");
    let manifest = b.finish("f");
    let key = FileKey {
        root_hash: manifest.root_hash,
        nonce: [0; 24],
    };
    let config = DownloadConfig {
        window: 2,
        max_unsolicited: 16,
        ..DownloadConfig::default()
    };
    let (mut d, _) = Download::start(key, config);
    let mut written = std::collections::HashSet::new();
    let mut hashes: Vec<[u8; 32]> = Vec::new();
    let mut verified = false;
    let json = manifest.to_go_json();
    for (n, step) in data.split(|&b| b == 0xfe).enumerate() {
        let (&op, rest) = step.split_first().unwrap_or((&0, &[]));
        let index = u64::from(rest.first().copied().unwrap_or(0) % 4);
        let msg = match op % 6 {
            // The real manifest, or a part of garbage.
            0 => FileMessage::ManifestPart {
                key,
                index: 0,
                data: if rest.is_empty() {
                    json.clone()
                } else {
                    rest.to_vec()
                },
            },
            // The real chunk.
            1 => {
                let (s, l) = manifest.chunk_range(index % 3).unwrap_or((0, 0));
                FileMessage::Chunk {
                    key,
                    index: index % 3,
                    data: content[s as usize..s as usize + l].to_vec(),
                }
            }
            // A chunk of garbage.
            2 => FileMessage::Chunk {
                key,
                index,
                data: rest.to_vec(),
            },
            // A new connection to the sharer.
            3 => {
                for o in d.reconnected() {
                    check(&o, &manifest, &mut written, &mut verified);
                }
                continue;
            }
            _ => {
                for o in d.tick() {
                    check(&o, &manifest, &mut written, &mut verified);
                }
                continue;
            }
        };
        let mut out: std::collections::VecDeque<_> = d.receive(msg, &hashes).into();
        while let Some(o) = out.pop_front() {
            check(&o, &manifest, &mut written, &mut verified);
            match o {
                DownloadOutput::Hashes { first, hashes: h } => {
                    let end = first as usize + h.len();
                    if hashes.len() < end {
                        hashes.resize(end, [0; 32]);
                    }
                    hashes[first as usize..end].copy_from_slice(&h);
                }
                DownloadOutput::ManifestReady(m) => {
                    assert_eq!(*m, manifest.info());
                    assert_eq!(hashes.get(..3), Some(&manifest.chunks[..]), "hashes kept");
                    out.extend(d.manifest_accepted(None));
                }
                DownloadOutput::VerifyFile => out.extend(d.file_verified(n % 2 == 0)),
                _ => {}
            }
        }
    }
}

fn check(
    o: &DownloadOutput,
    manifest: &Manifest,
    written: &mut std::collections::HashSet<u64>,
    verified: &mut bool,
) {
    match o {
        DownloadOutput::Write { index, data, .. } => {
            assert!(manifest.verify_chunk(*index, data), "wrote a bad chunk");
            assert!(written.insert(*index), "wrote a chunk twice");
        }
        DownloadOutput::VerifyFile => {
            assert_eq!(written.len() as u64, manifest.chunk_count());
            *verified = true;
        }
        DownloadOutput::Complete => assert!(*verified, "complete without the file's hash"),
        _ => {}
    }
}
