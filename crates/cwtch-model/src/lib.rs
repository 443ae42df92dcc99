#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod files;
pub mod gojson;
pub mod group;
pub mod keybundle;
pub mod overlay;
pub mod peer;
pub mod tokenboard;

pub use group::{
    derive_group_id, DecryptedGroupMessage, EncryptedGroupMessage, Group, GroupId, GroupInvite,
    SealedGroupMessage, UnverifiedGroupMessage, VerifiedGroupMessage,
};
pub use keybundle::{KeyBundle, ServerKeys, TofuBundle};
pub use overlay::MessageWrapper;
pub use tokenboard::{Message, MessageType, Payload};

/// Everything that can go wrong decoding or checking Cwtch wire and domain types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is not JSON that Go's decoder accepts.
    #[error("invalid JSON at byte {offset}: expected {expected}")]
    JsonSyntax {
        /// Byte offset of the problem.
        offset: usize,
        /// What the decoder expected there.
        expected: &'static str,
    },
    /// JSON nested deeper than Go's limit ([`gojson::MAX_NESTING_DEPTH`]).
    #[error("JSON nested too deeply at byte {offset}")]
    JsonTooDeep {
        /// Byte offset of the array or object that is one level too deep.
        offset: usize,
    },
    /// Valid JSON whose value does not fit the Go type of the field (Go's
    /// `UnmarshalTypeError`).
    #[error("JSON value at byte {offset} does not fit: expected {expected}")]
    JsonType {
        /// Byte offset of the value.
        offset: usize,
        /// The Go type that was expected.
        expected: &'static str,
    },
    /// Invalid standard base64.
    #[error("invalid base64 in {what}")]
    Base64 {
        /// What was being decoded.
        what: &'static str,
    },
    /// A string form lacked its prefix (`server:`, `tofubundle:`, `torv3`).
    #[error("{what} does not start with {prefix:?}")]
    MissingPrefix {
        /// What was being parsed.
        what: &'static str,
        /// The prefix it must start with.
        prefix: &'static str,
    },
    /// A `tofubundle:` string without the `||` between bundle and invite.
    #[error("tofubundle has no \"||\" separator")]
    MissingSeparator,
    /// A byte field had the wrong length.
    #[error("{what}: expected {expected} bytes, got {actual}")]
    InvalidLength {
        /// What was being decoded.
        what: &'static str,
        /// The length it must have.
        expected: usize,
        /// The length it had.
        actual: usize,
    },
    /// A key bundle lacks one of the keys a server bundle must have.
    #[error("key bundle has no {key_type:?} key")]
    MissingKey {
        /// The missing key type (a [`keybundle`] `KEY_TYPE_*` constant).
        key_type: &'static str,
    },
    /// An onion address (or the key in it) is not valid.
    #[error("{what} is not a valid onion address")]
    InvalidOnion {
        /// Which address.
        what: &'static str,
        /// Why.
        #[source]
        source: torv3::Error,
    },
    /// A key bundle carries no signature.
    #[error("key bundle is not signed")]
    MissingSignature,
    /// A signature did not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// A TOFU bundle whose invite is for a group on another server than the bundle's.
    #[error("the group invite is for another server than the bundle")]
    ServerMismatch,
    /// A group invite's `GroupID` is not the one its key and server derive.
    #[error("group ID does not match the group key and server")]
    GroupIdMismatch,
    /// A text too long for a group message: more than [`group::MAX_GROUP_TEXT_BYTES`] bytes,
    /// or more than [`group::MAX_GROUP_TEXT_ENCODED`] once escaped as Go JSON.
    #[error("group message text too long: {bytes} bytes, {encoded} escaped")]
    GroupTextTooLong {
        /// Its length in bytes.
        bytes: usize,
        /// Its length escaped as a Go JSON string, without the quotes.
        encoded: usize,
    },
    /// No group key opens this group message: it is for a group we are not in (the common
    /// case, not a fault).
    #[error("group message is not for any of these groups")]
    NotForAnyGroup,
    /// A group key opened this message but its plaintext is not a valid
    /// `DecryptedGroupMessage` (or names no valid sender): someone with the key misbehaves.
    #[error("group message decrypts but is malformed")]
    MalformedGroupMessage {
        /// The group whose key opened it.
        group_id: GroupId,
        /// What is wrong with it.
        #[source]
        source: Box<Error>,
    },
    /// A group message whose signature does not verify with the key of its claimed sender:
    /// someone with the group key forges or corrupts messages (Go marks the group compromised).
    #[error("group message signature does not verify")]
    BadGroupSignature {
        /// The group whose key opened it.
        group_id: GroupId,
    },
    /// A group message that decrypts with this group's key but was signed for another group
    /// (its `SignedGroupID` names another group and the signature does not bind this group's
    /// ID and server): a message forwarded from a group on another server with the same key.
    #[error("group message was signed for another group")]
    WrongGroupBinding {
        /// The group whose key opened it.
        group_id: GroupId,
    },
    /// A token-board message whose `MessageType` names a payload the message does not carry
    /// (a Go server closes the connection).
    #[error("token board message of type {} without its payload", message_type.0)]
    MissingPayload {
        /// The message's type.
        message_type: MessageType,
    },
    /// Not a file key (`<128 lower-case hex digits>.<48 lower-case hex digits>`).
    #[error("not a file key")]
    InvalidFileKey,
    /// A file-sharing manifest that is not consistent (sizes, hashes, chunk count).
    #[error("invalid file manifest: {reason}")]
    InvalidManifest {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A chunk request that is not a list of chunk indices and ranges of this file.
    #[error("invalid chunk request: {reason}")]
    InvalidChunkSpec {
        /// What is wrong with it.
        reason: &'static str,
    },
}
