//! The crate's one error type.

use std::io;
use std::path::PathBuf;

use crate::model::{ConversationId, MessageId, ProfileId};

/// Everything that can go wrong storing or loading a profile.
///
/// Messages never contain secrets, onion addresses or message contents: handles are not part
/// of any variant, paths are local file names only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`"create directory"`, `"read"`, `"rename"`, …).
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// SQLite (SQLCipher) reported an error on a profile that had opened correctly.
    #[error("database error: {0}")]
    Sqlite(#[source] rusqlite::Error),
    /// The database does not decrypt with this password.
    ///
    /// SQLCipher authenticates every page with an HMAC; a wrong key fails the first page's
    /// HMAC. A file whose *first page* is damaged fails the same way and cannot be told apart
    /// (no plaintext is stored outside the encrypted file); a damaged file of the wrong size,
    /// or one whose later pages are damaged, is reported as [`Error::Corrupt`].
    #[error("wrong password (the profile database does not decrypt with it)")]
    WrongPassword,
    /// The profile's files are damaged or are not a Go Cwtch v2 profile. Nothing was written.
    #[error("profile at {} is damaged: {reason}", path.display())]
    Corrupt {
        /// The damaged file or directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: CorruptReason,
    },
    /// The profile directory's `VERSION` is not `2` (e.g. a v1 profile from Cwtch < 1.5).
    #[error("unsupported profile storage version {0:?} (only version 2 is supported)")]
    UnsupportedVersion(String),
    /// A data directory is accessible to other users, so secrets in it could leak.
    #[error("{} is accessible by other users (mode {mode:o}); run `chmod 700` on it", path.display())]
    InsecurePermissions {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A data directory belongs to another user.
    #[error("{} belongs to uid {owner}, not to us (uid {ours})", path.display())]
    NotOwned {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// Our effective uid.
        ours: u32,
    },
    /// A path that must be a directory is something else.
    #[error("{} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// A string that is not a profile id (32 lower-case hex digits).
    #[error("not a profile id (expected 32 lower-case hex digits)")]
    InvalidProfileId,
    /// No profile with this id exists.
    #[error("no profile {0}")]
    ProfileNotFound(ProfileId),
    /// A profile with this id already exists (import).
    #[error("profile {0} already exists")]
    ProfileExists(ProfileId),
    /// The profile is open in this process; close it first (or use the open handle).
    #[error("profile {0} is open")]
    ProfileInUse(ProfileId),
    /// The profile has an unfinished password change or an uncommitted transaction, which only
    /// a read-write open (`CwtchHome::open_profile`) can complete or roll back.
    #[error("profile at {} needs recovery from an interrupted write; open it read-write first", .0.display())]
    RecoveryPending(PathBuf),
    /// A user password must not be empty.
    #[error("empty password")]
    EmptyPassword,
    /// The profile was opened read-only.
    #[error("profile is open read-only")]
    ReadOnly,
    /// The profile's stored identity is missing or inconsistent.
    #[error("profile identity: {0}")]
    Identity(#[source] IdentityError),
    /// No conversation with this id.
    #[error("no conversation {0}")]
    ConversationNotFound(ConversationId),
    /// A conversation with this handle already exists.
    #[error("a conversation with this handle already exists (id {0})")]
    ConversationExists(ConversationId),
    /// A conversation handle must not be empty.
    #[error("empty conversation handle")]
    EmptyHandle,
    /// No message with this id in this conversation.
    #[error("no message {message} in conversation {conversation}")]
    MessageNotFound {
        /// The conversation.
        conversation: ConversationId,
        /// The message id that was not found.
        message: MessageId,
    },
    /// A message with this signature is already stored in this conversation (the `Signature`
    /// column is unique per conversation).
    #[error("duplicate message signature in conversation {0}")]
    DuplicateSignature(ConversationId),
    /// A stored JSON column (attributes, ACL) is not valid Go JSON.
    #[error("stored {what} JSON is invalid")]
    Json {
        /// Which column.
        what: &'static str,
    },
    /// An import archive was refused.
    #[error("profile archive refused: {0}")]
    Archive(#[source] ArchiveError),
}

/// Why a profile is considered damaged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorruptReason {
    /// A required file is missing.
    #[error("{0} is missing")]
    Missing(&'static str),
    /// `SALT` is not 128 bytes.
    #[error("SALT is {0} bytes, expected 128")]
    SaltLength(u64),
    /// The database is empty or not a whole number of 8192-byte pages (truncated).
    #[error("database is {0} bytes, not a whole number of 8192-byte pages")]
    Truncated(u64),
    /// The database is a plain, unencrypted SQLite file.
    #[error("database is not encrypted")]
    NotEncrypted,
    /// Pages failed SQLCipher's HMAC check (the first failing page is named).
    #[error("page {0} failed authentication")]
    PageAuthentication(u64),
    /// SQLite's structural check failed (missing or inconsistent pages).
    #[error("database structure is inconsistent")]
    Structure,
    /// A table every Cwtch profile has is missing.
    #[error("table {0} is missing")]
    MissingTable(&'static str),
}

/// What is wrong with a stored identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// `(PrivateKey, Ed25519PrivateKey)` is missing.
    #[error("no private key stored")]
    Missing,
    /// The stored key is not a valid Go Ed25519 private key.
    #[error("invalid private key: {0}")]
    Key(torv3::Error),
    /// `(PublicKey, Ed25519PublicKey)` does not match the private key.
    #[error("stored public key does not match the private key")]
    PublicKeyMismatch,
    /// `public.profile.onion` does not match the private key.
    #[error("stored onion does not match the private key")]
    OnionMismatch,
}

/// Why an import archive was refused. The archive is treated as hostile: nothing it names is
/// ever used as a path, and nothing is written outside a fresh staging directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// Not a gzip'd tar, or truncated.
    #[error("not a readable tar.gz: {0}")]
    Format(#[source] io::Error),
    /// A member path is not `<profile id>/<name>` (absolute, `..`, extra components, …).
    #[error("member path is not <profile id>/<file>")]
    BadPath,
    /// Members name different profile ids.
    #[error("members belong to different profiles")]
    MixedProfiles,
    /// A member is a symlink, hard link, device or other non-regular file.
    #[error("member is not a regular file")]
    NotRegularFile,
    /// The same file appears twice.
    #[error("duplicate member {0}")]
    Duplicate(&'static str),
    /// A member is larger than allowed.
    #[error("member {name} is {size} bytes, limit {limit}")]
    MemberTooLarge {
        /// The file.
        name: &'static str,
        /// Its declared size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The decompressed archive is larger than allowed (gzip bomb?).
    #[error("archive decompresses to more than {0} bytes")]
    TooLarge(u64),
    /// The archive has too many members.
    #[error("archive has more than {0} members")]
    TooManyMembers(usize),
    /// A required file is missing.
    #[error("archive has no {0}")]
    Missing(&'static str),
}

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: CorruptReason) -> Error {
        Error::Corrupt {
            path: path.into(),
            reason,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(f, _) = &e {
            if f.code == rusqlite::ErrorCode::ReadOnly {
                return Error::ReadOnly;
            }
        }
        Error::Sqlite(e)
    }
}

impl From<ArchiveError> for Error {
    fn from(e: ArchiveError) -> Self {
        Error::Archive(e)
    }
}

impl From<IdentityError> for Error {
    fn from(e: IdentityError) -> Self {
        Error::Identity(e)
    }
}
