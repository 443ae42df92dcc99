#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod app;
mod config;
mod connections;
mod engine;
mod error;
pub mod event;
#[cfg(test)]
mod fault;
mod files;
mod groups;
pub mod images;
mod lock;
mod names;
pub mod overlay;
mod profile;
mod runtime;
mod search;
mod server_task;
mod store;
mod types;
mod util;
/// Go's file-sharing chunk size in bytes (clients count progress in chunks, as Go does).
pub use cwtch_model::files::CHUNK_SIZE as FILE_CHUNK_SIZE;
/// Peer messages on the wire: re-exported from [`cwtch_model::peer`], where the peer
/// protocol lives.
pub use cwtch_model::peer as wire;

pub use app::{Cwtch, IMAGES_DIR};
pub use config::{
    Config, ServiceConfig, DEFAULT_DIAL_BACKOFF_INITIAL, DEFAULT_DIAL_BACKOFF_MAX,
    DEFAULT_MAX_CONCURRENT_DIALS, DEFAULT_MAX_CONTACT_REQUESTS, DEFAULT_MAX_REQUEST_MESSAGES,
    DEFAULT_MAX_STRANGER_CONNECTIONS, DEFAULT_VERSION_WAIT,
};
pub use connections::{Connections, AUTOSTART_ATTRIBUTE};
pub use error::{Error, PeerMessageError, Result};
pub use event::{ConnectionState, Event, MessageState, ServerState};
pub use files::{FileInfo, Image, STOPPED as DOWNLOAD_STOPPED};
pub use groups::GroupRef;
pub use images::{ImageError, ImageInfo};
pub use lock::LOCK_FILE;
pub use names::LOCAL_NAME_MAX_CHARS;
pub use overlay::{Content, MalformedReason, P2P_TEXT_MAX_CHARS};
pub use profile::{ProfileHandle, LIBRARY_MESSAGE_ATTRIBUTES, PUBLIC_PROFILE_STATUS};
pub use runtime::BLOCK_UNKNOWN_ATTRIBUTE;
pub use search::{Found, SearchHit, SEARCH_MAX_PER_CONVERSATION};
pub use types::{
    Contact, ContactId, GroupInfo, MessageInfo, Permissions, ProfileInfo, SentMessage, ServerInfo,
};
pub use util::rfc3339_instant;

// What clients need from the layers below, so that they depend on this crate only.
pub use connectivity;
pub use connectivity::{Acn, AcnStatus, LoopbackAcn};
pub use cwtch_storage::Error as StorageError;
pub use cwtch_storage::{ConversationId, MemoryHome, MessageId, Password, ProfileId};
pub use torv3::safelog::{install_redacting_panic_hook, set_unsafe_logging, Sensitive};
pub use torv3::{Identity, Onion};
