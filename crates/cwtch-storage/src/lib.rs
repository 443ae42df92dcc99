#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod archive;
mod error;
mod fsutil;
mod home;
pub mod keys;
mod memory;
mod model;
mod password;
mod rekey;
pub mod schema;
mod sqlcipher;
mod store;

pub use archive::ImportLimits;
pub use error::{ArchiveError, CorruptReason, Error, IdentityError};
pub use home::CwtchHome;
pub use memory::{MemoryHome, MemoryProfile};
pub use model::{
    acl_from_json, acl_to_json, attributes_from_json, attributes_to_json, content_hash,
    AccessControl, Acl, Attributes, Conversation, ConversationId, ConversationKind, KeyType,
    Message, MessageId, NewConversation, NewMessage, ProfileId,
};
pub use password::{Password, DEFAULT_PASSWORD, KDF_ITERATIONS, SALT_LEN};
pub use sqlcipher::Profile;
pub use store::{
    authors_by_reading, count_after_by_reading, messages_containing_by_reading,
    messages_where_by_reading, scan_containing_ignore_ascii_case_by_reading, AttributeCondition,
    Authors, ProfileHome, ProfileStore,
};
