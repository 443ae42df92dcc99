//! Key names Go Cwtch stores, each marked CONFIRMED (seen in the Go-made fixtures in
//! `testvectors/aliceandbob1/`) or UNCONFIRMED (recalled from the Go code; see
//! `docs/COMPATIBILITY.md`).

/// `profile_kv` key name of the 64-byte Go Ed25519 private key (type
/// [`KeyType::PRIVATE_KEY`](crate::KeyType::PRIVATE_KEY)). CONFIRMED.
pub const ED25519_PRIVATE_KEY: &str = "Ed25519PrivateKey";
/// `profile_kv` key name of the 32-byte public key (type
/// [`KeyType::PUBLIC_KEY`](crate::KeyType::PUBLIC_KEY)). CONFIRMED.
pub const ED25519_PUBLIC_KEY: &str = "Ed25519PublicKey";

/// Profile attribute: the name shown to contacts. CONFIRMED.
pub const PUBLIC_PROFILE_NAME: &str = "public.profile.name";
/// Profile attribute: the profile's own onion (56 characters). CONFIRMED.
pub const PUBLIC_PROFILE_ONION: &str = "public.profile.onion";
/// Profile attribute: the profile picture, JSON such as
/// `{"Val":"profiles/028-mermaid.png","T":"distro"}` (set by the UI layer, not at creation).
/// CONFIRMED.
pub const PUBLIC_PROFILE_PICTURE: &str = "public.profile.picture";
/// Profile attribute: the local name of the profile. CONFIRMED.
pub const LOCAL_PROFILE_NAME: &str = "local.profile.name";
/// Profile attribute: the password tag, [`TAG_DEFAULT_PASSWORD`] or [`TAG_USER_PASSWORD`].
/// CONFIRMED.
pub const LOCAL_PROFILE_TAG: &str = "local.profile.tag";
/// Profile attribute: `"true"`/`"false"`, whether the profile was online when last closed
/// (set by the UI layer). CONFIRMED (value `false` in every fixture).
pub const LOCAL_PROFILE_PEER_ONLINE: &str = "local.profile.peer-online";

/// [`LOCAL_PROFILE_TAG`] of a profile encrypted with the default password. CONFIRMED
/// (fixtures; the UI asks for a password when the tag is anything else).
pub const TAG_DEFAULT_PASSWORD: &str = "v1-defaultPassword";
/// [`LOCAL_PROFILE_TAG`] of a profile with a user password. UNCONFIRMED (recalled Go constant
/// `ProfileTypeV1Password`; the UI only checks that the tag is not [`TAG_DEFAULT_PASSWORD`],
/// so any other value behaves the same there).
pub const TAG_USER_PASSWORD: &str = "v1-userPassword";

/// Conversation attribute (legacy, unscoped): history policy. CONFIRMED key and value
/// [`DEFAULT_DELETE_HISTORY`]; other values (`SaveHistory`, `DeleteHistoryConfirmed`) are
/// UNCONFIRMED.
pub const SAVE_PEER_HISTORY: &str = "SavePeerHistory";
/// Value of [`SAVE_PEER_HISTORY`] seen in every fixture conversation. CONFIRMED.
pub const DEFAULT_DELETE_HISTORY: &str = "DefaultDeleteHistory";

/// Message attribute: the author's onion. UNCONFIRMED (recalled `constants.AttrAuthor`; the
/// fixtures contain no messages).
pub const MESSAGE_AUTHOR: &str = "author";
/// Message attribute: `"true"`/`"false"`, acknowledged by the peer. UNCONFIRMED
/// (`constants.AttrAck`).
pub const MESSAGE_ACK: &str = "ack";
/// Message attribute: an error text when sending failed. UNCONFIRMED (`constants.AttrErr`).
pub const MESSAGE_ERROR: &str = "error";
/// Message attribute: RFC 3339 time the message was sent or received. UNCONFIRMED
/// (`constants.AttrSentTimestamp`).
pub const MESSAGE_SENT: &str = "sent";
/// Go's boolean attribute values (`event.True`/`event.False`). UNCONFIRMED for messages;
/// `local.profile.peer-online` = `false` is CONFIRMED.
pub const TRUE: &str = "true";
/// See [`TRUE`].
pub const FALSE: &str = "false";
