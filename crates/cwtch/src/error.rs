//! The crate's one error type.

use std::path::PathBuf;

pub use cwtch_model::peer::PeerMessageError;
use cwtch_storage::ProfileId;

/// Everything that can go wrong in the peer library.
///
/// Messages never contain message contents or whole onion addresses (onions inside errors of
/// the layers below are shown redacted).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Profile storage failed (wrong password, damaged profile, database error, ...).
    #[error(transparent)]
    Storage(#[from] cwtch_storage::Error),
    /// The network (ACN) failed.
    #[error(transparent)]
    Acn(#[from] connectivity::Error),
    /// A tapir connection failed.
    #[error(transparent)]
    Connection(#[from] tapir_service::Error),
    /// The profile's storage thread has stopped (the profile was shut down).
    #[error("profile storage is closed")]
    StorageClosed,
    /// No profile with this id or onion opens with the given password.
    #[error("no profile {what} opens with this password")]
    ProfileNotFound {
        /// The id or onion asked for (onions redacted).
        what: String,
    },
    /// The profile is already loaded in this process.
    #[error("profile {0} is already loaded")]
    ProfileLoaded(ProfileId),
    /// The profile is not loaded.
    #[error("profile {0} is not loaded")]
    ProfileNotLoaded(ProfileId),
    /// Another process (or another [`Cwtch`](crate::Cwtch) in this one) is running this
    /// profile: its lock file is held.
    #[error("profile {profile} is running elsewhere, e.g. in another process (lock {} is held)", lock.display())]
    ProfileLocked {
        /// The profile.
        profile: ProfileId,
        /// The lock file.
        lock: PathBuf,
    },
    /// A local file operation failed (lock file, export file).
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Not a valid Cwtch address (v3 onion).
    #[error("not a valid Cwtch address: {0}")]
    InvalidAddress(#[source] torv3::Error),
    /// A profile cannot add itself as a contact.
    #[error("a profile cannot add itself as a contact")]
    SelfContact,
    /// No such contact.
    #[error("no such contact")]
    ContactNotFound,
    /// The contact is blocked; unblock it first.
    #[error("the contact is blocked")]
    ContactBlocked,
    /// A text message longer than the peer-to-peer limit.
    #[error("message of {chars} characters exceeds the limit of {max}")]
    MessageTooLong {
        /// Characters in the message.
        chars: usize,
        /// The limit ([`crate::overlay::P2P_TEXT_MAX_CHARS`]).
        max: usize,
    },
    /// A group message longer than a group message carries.
    #[error(
        "group message of {bytes} bytes ({encoded} once escaped) exceeds the limit of {max} bytes"
    )]
    GroupMessageTooLong {
        /// Bytes in the message body (the overlay JSON).
        bytes: usize,
        /// Its length escaped as Go JSON.
        encoded: usize,
        /// The limit ([`cwtch_model::group::MAX_GROUP_TEXT_BYTES`]).
        max: usize,
    },
    /// An encoded peer message that does not fit one tapir packet. Never truncated.
    #[error(
        "message too long: {len} bytes once encoded, at most {max} fit one packet \
         (a character outside ASCII takes 2 to 4 bytes, so such text fits fewer than 7000)"
    )]
    PayloadTooLarge {
        /// Encoded length.
        len: usize,
        /// The largest payload of an encrypted tapir packet.
        max: usize,
    },
    /// A peer message that does not decode.
    #[error("malformed peer message: {0}")]
    PeerMessage(PeerMessageError),
    /// A value that may not be used here (an attribute key, a message field).
    #[error("invalid {what}")]
    Invalid {
        /// What was invalid.
        what: &'static str,
    },
    /// The operation is not supported by this kind of home (e.g. export of an in-memory
    /// profile).
    #[error("{0} is not supported here")]
    Unsupported(&'static str),
    /// The profile (or the whole library) has been shut down.
    #[error("shut down")]
    ShutDown,
    /// The profile's engine is deactivated
    /// ([`ProfileHandle::set_engine_active`](crate::ProfileHandle::set_engine_active)): it
    /// makes no connections until activated.
    #[error("the profile's engine is deactivated (activate it first)")]
    EngineDeactivated,
    /// A server bundle, an invite or a group message that does not parse or verify.
    #[error("{0}")]
    Bundle(#[source] cwtch_model::Error),
    /// Talking to a server failed.
    #[error(transparent)]
    Board(#[from] cwtch_board::Error),
    /// A bundle for a server we know, with different keys: refused (trust on first use).
    #[error("this server was imported before with different keys; refusing the new bundle")]
    ServerKeysChanged,
    /// No such server.
    #[error("no such server (import its bundle first: cwtch server add)")]
    ServerNotFound,
    /// The server is used by groups.
    #[error("the server is used by {groups} group(s); leave them first")]
    ServerInUse {
        /// How many groups use it.
        groups: usize,
    },
    /// No file with this key is shared with us in this conversation, or shared by us.
    #[error("no such file (see the file messages of the conversation)")]
    FileNotFound,
    /// The file is not being downloaded (nothing to stop).
    #[error("that file is not being downloaded")]
    NotDownloading,
    /// A file we shared changed on disk since: its chunks are no longer the manifest's.
    #[error("the file changed on disk since it was shared: share it again to offer the new one")]
    SharedFileChanged,
    /// A file larger than we share or download.
    #[error("the file is {size} bytes, more than the limit of {limit}")]
    FileTooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Not an image we accept (see [`crate::images::check_image`]).
    #[error("not an acceptable image: {0}")]
    InvalidImage(#[from] crate::images::ImageError),
    /// A file offered in a group is downloaded from its sharer over P2P, who must be an
    /// accepted contact.
    #[error(
        "the file's sharer {} is not an accepted contact: add them as a contact to download it",
        .0.redacted()
    )]
    SharerNotContact(torv3::Onion),
    /// The contact's permissions refuse this (see [`crate::Permissions`]).
    #[error(
        "contact {} is not allowed to {what}: change its permissions first",
        .contact.redacted()
    )]
    NotPermitted {
        /// The contact's onion (shown redacted).
        contact: torv3::Onion,
        /// What it may not do.
        what: &'static str,
    },
    /// The download folder's disk has no room for the file.
    #[error(
        "not enough space on the disk: the file needs {needed} more bytes, {available} are free"
    )]
    NotEnoughSpace {
        /// Bytes still to write.
        needed: u64,
        /// Bytes free.
        available: u64,
    },
    /// A download of this file is already running.
    #[error("this file is already being downloaded")]
    DownloadRunning,
    /// No such group.
    #[error("no such group")]
    GroupNotFound,
    /// Several groups have this name.
    #[error("several groups are named {0:?}; use the conversation id or the group id")]
    AmbiguousGroup(String),
    /// The group is an invite not yet accepted.
    #[error("the group invite is not accepted yet (cwtch group accept)")]
    GroupNotAccepted,
}

/// Why a peer message did not decode (spec §7.2).
impl From<PeerMessageError> for Error {
    fn from(e: PeerMessageError) -> Self {
        Error::PeerMessage(e)
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn errors_naming_a_contact_show_its_onion_redacted() {
        let onion = torv3::Identity::from_seed(&[7; 32]).onion();
        for e in [
            Error::SharerNotContact(onion.clone()),
            Error::NotPermitted {
                contact: onion.clone(),
                what: "share files",
            },
        ] {
            let text = e.to_string();
            assert!(!text.contains(onion.as_str()), "{text}");
            assert!(text.contains(&onion.as_str()[..4]), "{text}");
        }
    }

    /// 7000 characters of non-ASCII text pass the character limit but not the packet: the
    /// error says why, in terms a person typing can act on.
    #[test]
    fn a_message_too_large_for_a_packet_says_why() {
        let text = Error::PayloadTooLarge {
            len: 14046,
            max: 8150,
        }
        .to_string();
        assert!(text.starts_with("message too long: 14046 bytes"), "{text}");
        assert!(
            text.contains("at most 8150") && text.contains("outside ASCII"),
            "{text}"
        );
    }
}
