//! The file-sharing peer messages (protocol.md §9.2, UNCONFIRMED, recalled): requests carry
//! the file key as their ID; answers carry `<file key>.<index>`.

use super::FileKey;
use crate::peer::wire::{PeerMessage, FILE_SHARING_CONTEXTS};

/// Ask for a file's manifest: ID = the file key, Data empty.
pub const CONTEXT_REQUEST_MANIFEST: &str = FILE_SHARING_CONTEXTS[0];
/// One part of a manifest: ID = `<file key>.<part>`, Data = the part.
pub const CONTEXT_SEND_MANIFEST: &str = FILE_SHARING_CONTEXTS[1];
/// Ask for chunks: ID = the file key, Data = a chunk spec.
pub const CONTEXT_REQUEST_CHUNK: &str = FILE_SHARING_CONTEXTS[2];
/// One chunk: ID = `<file key>.<chunk>`, Data = the chunk.
pub const CONTEXT_SEND_CHUNK: &str = FILE_SHARING_CONTEXTS[3];

/// A file-sharing peer message.
#[derive(Clone, PartialEq, Eq)]
pub enum FileMessage {
    /// A downloader asks for the manifest.
    RequestManifest {
        /// The file.
        key: FileKey,
    },
    /// Part `index` of the manifest's JSON.
    ManifestPart {
        /// The file.
        key: FileKey,
        /// Which part.
        index: u64,
        /// Its bytes.
        data: Vec<u8>,
    },
    /// A downloader asks for chunks (the spec's text, parsed against the manifest by the
    /// sharer).
    RequestChunks {
        /// The file.
        key: FileKey,
        /// The chunk spec as sent.
        spec: String,
    },
    /// Chunk `index` of the file.
    Chunk {
        /// The file.
        key: FileKey,
        /// Which chunk.
        index: u64,
        /// Its bytes.
        data: Vec<u8>,
    },
}

impl std::fmt::Debug for FileMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileMessage::RequestManifest { key } => write!(f, "RequestManifest({key:?})"),
            FileMessage::ManifestPart { key, index, data } => {
                write!(f, "ManifestPart({key:?}, {index}, {} bytes)", data.len())
            }
            FileMessage::RequestChunks { key, spec } => {
                write!(f, "RequestChunks({key:?}, {} bytes)", spec.len())
            }
            FileMessage::Chunk { key, index, data } => {
                write!(f, "Chunk({key:?}, {index}, {} bytes)", data.len())
            }
        }
    }
}

/// Why a file-sharing peer message was not understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileMessageError {
    /// Not one of the four file-sharing contexts.
    #[error("not a file-sharing message")]
    NotFileSharing,
    /// The ID is not the file key (requests) or `<file key>.<index>` (answers).
    #[error("bad file-sharing message ID")]
    BadId,
    /// A chunk request whose Data is not UTF-8.
    #[error("chunk request is not text")]
    BadSpec,
}

impl FileMessage {
    /// Read a peer message in one of the file-sharing contexts.
    pub fn parse(m: &PeerMessage) -> Result<FileMessage, FileMessageError> {
        FileMessage::from_peer_message(m.clone())
    }

    /// [`FileMessage::parse`], taking the message (its data is moved, not copied).
    pub fn from_peer_message(m: PeerMessage) -> Result<FileMessage, FileMessageError> {
        let key = || FileKey::parse(&m.id).map_err(|_| FileMessageError::BadId);
        let indexed = || -> Result<(FileKey, u64), FileMessageError> {
            let (k, i) = m.id.rsplit_once('.').ok_or(FileMessageError::BadId)?;
            if i.is_empty() || !i.bytes().all(|b| b.is_ascii_digit()) {
                return Err(FileMessageError::BadId);
            }
            let index = i.parse().map_err(|_| FileMessageError::BadId)?;
            Ok((
                FileKey::parse(k).map_err(|_| FileMessageError::BadId)?,
                index,
            ))
        };
        match m.context.as_str() {
            CONTEXT_REQUEST_MANIFEST => Ok(FileMessage::RequestManifest { key: key()? }),
            CONTEXT_SEND_MANIFEST => {
                let (key, index) = indexed()?;
                Ok(FileMessage::ManifestPart {
                    key,
                    index,
                    data: m.data,
                })
            }
            CONTEXT_REQUEST_CHUNK => Ok(FileMessage::RequestChunks {
                key: key()?,
                spec: String::from_utf8(m.data).map_err(|_| FileMessageError::BadSpec)?,
            }),
            CONTEXT_SEND_CHUNK => {
                let (key, index) = indexed()?;
                Ok(FileMessage::Chunk {
                    key,
                    index,
                    data: m.data,
                })
            }
            _ => Err(FileMessageError::NotFileSharing),
        }
    }

    /// The peer message to send.
    pub fn to_peer_message(&self) -> PeerMessage {
        match self {
            FileMessage::RequestManifest { key } => {
                PeerMessage::new(key.to_string(), CONTEXT_REQUEST_MANIFEST, Vec::new())
            }
            FileMessage::ManifestPart { key, index, data } => PeerMessage::new(
                format!("{key}.{index}"),
                CONTEXT_SEND_MANIFEST,
                data.clone(),
            ),
            FileMessage::RequestChunks { key, spec } => PeerMessage::new(
                key.to_string(),
                CONTEXT_REQUEST_CHUNK,
                spec.clone().into_bytes(),
            ),
            FileMessage::Chunk { key, index, data } => {
                PeerMessage::new(format!("{key}.{index}"), CONTEXT_SEND_CHUNK, data.clone())
            }
        }
    }

    /// [`FileMessage::to_peer_message`], taking the message (its data is moved, not copied).
    pub fn into_peer_message(self) -> PeerMessage {
        match self {
            FileMessage::ManifestPart { key, index, data } => {
                PeerMessage::new(format!("{key}.{index}"), CONTEXT_SEND_MANIFEST, data)
            }
            FileMessage::Chunk { key, index, data } => {
                chunk_peer_message(&key.to_string(), index, data)
            }
            m @ (FileMessage::RequestManifest { .. } | FileMessage::RequestChunks { .. }) => {
                m.to_peer_message()
            }
        }
    }

    /// The file it is about.
    pub fn key(&self) -> &FileKey {
        match self {
            FileMessage::RequestManifest { key }
            | FileMessage::ManifestPart { key, .. }
            | FileMessage::RequestChunks { key, .. }
            | FileMessage::Chunk { key, .. } => key,
        }
    }
}

/// The peer message carrying chunk `index` of the file whose key, as text, is `key` (its
/// `Display`: a sharer formats it once per stream, not once per chunk). `data` is moved into
/// the message, not copied. The same message as [`FileMessage::to_peer_message`] of the
/// [`FileMessage::Chunk`].
pub fn chunk_peer_message(key: &str, index: u64, data: Vec<u8>) -> PeerMessage {
    use std::fmt::Write as _;
    let mut id = String::with_capacity(key.len() + 21);
    id.push_str(key);
    // Writing to a String cannot fail.
    let _ = write!(id, ".{index}");
    PeerMessage::new(id, CONTEXT_SEND_CHUNK, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::wire::{WireVersion, MAX_PEER_PAYLOAD};

    fn key() -> FileKey {
        FileKey {
            root_hash: [0x5a; 64],
            nonce: [7; 24],
        }
    }

    #[test]
    fn round_trips_and_ids() {
        let k = key();
        for m in [
            FileMessage::RequestManifest { key: k },
            FileMessage::ManifestPart {
                key: k,
                index: 3,
                data: b"{\"Chunks\"".to_vec(),
            },
            FileMessage::RequestChunks {
                key: k,
                spec: "0:9,11".into(),
            },
            FileMessage::Chunk {
                key: k,
                index: 12345,
                data: vec![1; 4096],
            },
        ] {
            let pm = m.to_peer_message();
            assert_eq!(FileMessage::parse(&pm).unwrap(), m);
            assert_eq!(m.key(), &k);
            assert_eq!(m.clone().into_peer_message(), pm);
            if let FileMessage::Chunk { index, data, .. } = &m {
                assert_eq!(chunk_peer_message(&k.to_string(), *index, data.clone()), pm);
            }
        }
        let pm = FileMessage::Chunk {
            key: k,
            index: 2,
            data: vec![],
        }
        .to_peer_message();
        assert_eq!(pm.id, format!("{k}.2"));
        assert_eq!(pm.context, "im.cwtch.file.send.chunk");
    }

    #[test]
    fn a_full_chunk_fits_one_packet_in_either_framing() {
        let m = FileMessage::Chunk {
            key: key(),
            index: u64::MAX,
            data: vec![0xff; 4096],
        }
        .to_peer_message();
        assert!(m.encode(WireVersion::V1).len() <= MAX_PEER_PAYLOAD);
        assert!(m.encode(WireVersion::V2).len() <= MAX_PEER_PAYLOAD);
    }

    #[test]
    fn bad_messages() {
        let k = key().to_string();
        let bad = |id: &str, ctx: &str, data: &[u8]| {
            FileMessage::parse(&PeerMessage::new(id, ctx, data.to_vec())).unwrap_err()
        };
        assert_eq!(
            bad(&k, "im.cwtch.raw", b""),
            FileMessageError::NotFileSharing
        );
        assert_eq!(
            bad("x", CONTEXT_REQUEST_MANIFEST, b""),
            FileMessageError::BadId
        );
        assert_eq!(
            bad(&format!("{k}.1"), CONTEXT_REQUEST_MANIFEST, b""),
            FileMessageError::BadId
        );
        assert_eq!(bad(&k, CONTEXT_SEND_CHUNK, b""), FileMessageError::BadId);
        assert_eq!(
            bad(&format!("{k}."), CONTEXT_SEND_CHUNK, b""),
            FileMessageError::BadId
        );
        assert_eq!(
            bad(&format!("{k}.-1"), CONTEXT_SEND_CHUNK, b""),
            FileMessageError::BadId
        );
        assert_eq!(
            bad(
                &format!("{k}.99999999999999999999"),
                CONTEXT_SEND_MANIFEST,
                b""
            ),
            FileMessageError::BadId
        );
        assert_eq!(
            bad(&k, CONTEXT_REQUEST_CHUNK, &[0xff]),
            FileMessageError::BadSpec
        );
    }
}
