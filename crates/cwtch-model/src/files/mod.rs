//! File sharing (protocol.md §9): the share message (overlay 200), file keys, manifests and
//! chunk requests. Pure: no IO; the peer library reads and writes the files.
//!
//! A sharer builds a [`Manifest`] of the file (SHA3-256 of every 4096-byte chunk, SHA-512 of
//! the whole file), picks a random 24-byte nonce, and sends a [`FileShare`] in the
//! conversation; the file's [`FileKey`] is `hex(root hash).hex(nonce)`. A downloader asks the
//! sharer for the manifest (sent in 4096-byte parts: [`manifest_parts`]), checks that its root
//! hash is the key's, then asks for chunks by a [`ChunkSpec`] and checks each against the
//! manifest ([`Manifest::verify_chunk`]).
//!
//! What is CONFIRMED and what is recalled: the overlay's JSON tags and the file key's form
//! (the Cwtch UI's parser); the manifest's field names, the chunk size, the hashes and the
//! chunk-spec syntax are UNCONFIRMED (recalled from Go's `protocol/files`), each a named
//! constant here and a row in `docs/COMPATIBILITY.md`.

mod chunkset;
mod chunkspec;
mod download;
mod manifest;
mod manifest_stream;
mod messages;
mod names;

pub use chunkset::ChunkSet;
pub use chunkspec::{ChunkSpec, MAX_CHUNK_SPEC_RANGES};
pub use download::{Download, DownloadConfig, DownloadError, DownloadOutput, MAX_MANIFEST_BYTES};
pub use manifest::{manifest_parts, Manifest, ManifestBuilder, ManifestInfo, MANIFEST_PART_SIZE};
pub use manifest_stream::{ChunkHashes, ManifestReader, LIMIT_REASON, MAX_MANIFEST_FIELDS_BYTES};
pub use messages::{
    chunk_peer_message, FileMessage, FileMessageError, CONTEXT_REQUEST_CHUNK,
    CONTEXT_REQUEST_MANIFEST, CONTEXT_SEND_CHUNK, CONTEXT_SEND_MANIFEST,
};
pub use names::{numbered_file_name, safe_file_name, FALLBACK_NAME, MAX_NAME_BYTES};

use std::fmt;

use crate::gojson::{self, Decoder, GoDecode, GoJson};
use crate::Error;

/// Go's `files.DefaultChunkSize` (UNCONFIRMED, recalled): the size of every chunk but the last.
pub const CHUNK_SIZE: u64 = 4096;
/// The largest file Go Cwtch shares: 10 GiB (the UI's limit; UNCONFIRMED as Go's own check).
pub const MAX_FILE_SIZE: u64 = 10 * 1024 * 1024 * 1024;
/// The most chunks a manifest may list: a 10 GiB file in 4096-byte chunks.
pub const MAX_CHUNKS: u64 = MAX_FILE_SIZE.div_ceil(CHUNK_SIZE);
/// Length of the root hash (SHA-512).
pub const ROOT_HASH_LEN: usize = 64;
/// Length of a chunk hash (SHA3-256).
pub const CHUNK_HASH_LEN: usize = 32;
/// Length of a share's nonce.
pub const NONCE_LEN: usize = 24;

/// A shared file's key, `<hex root hash>.<hex nonce>` (CONFIRMED form: the UI's check is 128
/// and 48 hex digits). The same file shared twice has two keys.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    /// SHA-512 of the whole file.
    pub root_hash: [u8; ROOT_HASH_LEN],
    /// The share's random nonce.
    pub nonce: [u8; NONCE_LEN],
}

impl FileKey {
    /// Parse `<128 hex>.<48 hex>` (lower case, as Go's `hex.EncodeToString` writes it).
    pub fn parse(s: &str) -> Result<FileKey, Error> {
        let (h, n) = s.split_once('.').ok_or(Error::InvalidFileKey)?;
        Ok(FileKey {
            root_hash: lower_hex::<ROOT_HASH_LEN>(h)?,
            nonce: lower_hex::<NONCE_LEN>(n)?,
        })
    }
}

impl fmt::Display for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `<hex root hash>.<hex nonce>`, formatted on the stack (no allocation).
        let mut text = [0u8; 2 * ROOT_HASH_LEN + 1 + 2 * NONCE_LEN];
        let (hash, rest) = text.split_at_mut(2 * ROOT_HASH_LEN);
        let (dot, nonce) = rest.split_at_mut(1);
        dot[0] = b'.';
        hex::encode_to_slice(self.root_hash, hash).map_err(|_| fmt::Error)?;
        hex::encode_to_slice(self.nonce, nonce).map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Identifies the file's content: only a prefix, as for onions.
        write!(f, "FileKey({}…)", &hex::encode(&self.root_hash[..4]))
    }
}

/// `N` bytes from exactly `2N` lower-case hex digits.
fn lower_hex<const N: usize>(s: &str) -> Result<[u8; N], Error> {
    if s.len() != 2 * N || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(Error::InvalidFileKey);
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|_| Error::InvalidFileKey)?;
    Ok(out)
}

/// The data of a file-share message (overlay 200): Go's `filesharing.OverlayMessage`
/// `{Name "f", Hash "h", Nonce "n", Size "s"}` (CONFIRMED tags, UI `filemessage.dart`).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct FileShare {
    /// `f`: the file's name as the sharer suggests it (untrusted: a suggestion only).
    pub name: String,
    /// `h`: hex of the root hash.
    pub hash: String,
    /// `n`: hex of the nonce.
    pub nonce: String,
    /// `s`: the file's size in bytes.
    pub size: u64,
}

impl fmt::Debug for FileShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileShare")
            .field("name", &torv3::safelog::Sensitive(&self.name))
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl FileShare {
    /// The share message for `manifest` under `key`.
    pub fn new(manifest: &Manifest, key: &FileKey) -> FileShare {
        FileShare::for_key(&manifest.file_name, key, manifest.file_size)
    }

    /// The share message of a file called `name` of `size` bytes under `key`.
    pub fn for_key(name: &str, key: &FileKey, size: u64) -> FileShare {
        FileShare {
            name: name.to_owned(),
            hash: hex::encode(key.root_hash),
            nonce: hex::encode(key.nonce),
            size,
        }
    }

    /// Parse overlay 200's data, checking that it names a valid file key and a size we could
    /// download.
    pub fn parse(data: &[u8]) -> Result<FileShare, Error> {
        let s: FileShare = gojson::decode(data)?;
        s.key()?;
        if s.size > MAX_FILE_SIZE {
            return Err(Error::InvalidManifest {
                reason: "the file is larger than 10 GiB",
            });
        }
        Ok(s)
    }

    /// The file key this share names.
    pub fn key(&self) -> Result<FileKey, Error> {
        Ok(FileKey {
            root_hash: lower_hex::<ROOT_HASH_LEN>(&self.hash)?,
            nonce: lower_hex::<NONCE_LEN>(&self.nonce)?,
        })
    }
}

impl GoJson for FileShare {
    fn write_go_json(&self, out: &mut Vec<u8>) {
        gojson::object(out, |o| {
            o.str("f", &self.name)
                .str("h", &self.hash)
                .str("n", &self.nonce)
                .u64("s", self.size);
        });
    }
}

impl GoDecode for FileShare {
    fn decode_into(&mut self, d: &mut Decoder<'_>) -> Result<(), Error> {
        d.fields(&["f", "h", "n", "s"], |d, i| match i {
            0 => d.string(&mut self.name),
            1 => d.string(&mut self.hash),
            2 => d.string(&mut self.nonce),
            _ => d.u64(&mut self.size),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_keys() {
        let mut root_hash = [0u8; 64];
        for (i, b) in root_hash.iter_mut().enumerate() {
            *b = i as u8 * 3;
        }
        let key = FileKey {
            root_hash,
            nonce: [0x01; 24],
        };
        let s = key.to_string();
        assert_eq!(s.len(), 128 + 1 + 48);
        assert_eq!(FileKey::parse(&s).unwrap(), key);
        assert!(!format!("{key:?}").contains(&s[8..16]));
        for bad in [
            "",
            ".",
            &s[1..],
            &s.to_uppercase(),
            &s.replace('.', ":"),
            &format!("{s}0"),
            &format!("{}.{}", "g".repeat(128), "0".repeat(48)),
            &format!("{}.{}.{}", "0".repeat(128), "0".repeat(48), "0"),
        ] {
            assert_eq!(FileKey::parse(bad), Err(Error::InvalidFileKey), "{bad:?}");
        }
    }

    #[test]
    fn the_share_message_is_gos_json() {
        let share = FileShare {
            name: "a<b>.txt".into(),
            hash: "ab".repeat(64),
            nonce: "01".repeat(24),
            size: 5,
        };
        let json = share.to_go_json();
        assert_eq!(
            String::from_utf8(json.clone()).unwrap(),
            format!(
                r#"{{"f":"a\u003cb\u003e.txt","h":"{}","n":"{}","s":5}}"#,
                "ab".repeat(64),
                "01".repeat(24)
            )
        );
        assert_eq!(FileShare::parse(&json).unwrap(), share);
        assert_eq!(
            share.key().unwrap().to_string(),
            format!("{}.{}", "ab".repeat(64), "01".repeat(24))
        );
        let mut bad = share.clone();
        bad.hash.pop();
        assert!(FileShare::parse(&bad.to_go_json()).is_err());
        let mut big = share;
        big.size = MAX_FILE_SIZE + 1;
        assert!(FileShare::parse(&big.to_go_json()).is_err());
        assert!(FileShare::parse(b"[]").is_err());
    }
}
