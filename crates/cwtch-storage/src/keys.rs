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

// ---- groups and servers (protocol.md §5.5, §6) ----
//
// Go keeps a server and each group as conversations of the profile, told apart by their
// attributes. Go builds attribute paths as `<scope>.<zone>.<key>` (scopes `local`, `public`,
// `conversation`; zones `profile`, `legacy`, `serverkey`, `server`). Every key below is
// UNCONFIRMED (recalled from cwtch v0.27 `model/attr` and `model/constants`: no Go-made profile
// with a group or a server is available to check; see docs/COMPATIBILITY.md).

/// Group conversation attribute: the group id (32 hex). Its presence marks a group.
/// UNCONFIRMED (`local.legacy.groupid`).
pub const GROUP_ID: &str = "local.legacy.groupid";
/// Group conversation attribute: the token-board onion of the group's server. UNCONFIRMED.
pub const GROUP_SERVER: &str = "local.legacy.groupserver";
/// Group conversation attribute: the 32-byte group key, std base64. UNCONFIRMED.
pub const GROUP_KEY: &str = "local.legacy.groupkey";
/// Group conversation attribute: the group's name, as for a contact's local nickname
/// ([`LOCAL_PROFILE_NAME`]). UNCONFIRMED for groups.
pub const GROUP_NAME: &str = LOCAL_PROFILE_NAME;

/// Server conversation attribute prefix: `public.serverkey.<key type>` holds each key of the
/// server's bundle (`bulletin_board_onion`, `token_service_onion`, `privacy_pass_public_key`).
/// UNCONFIRMED.
pub const SERVER_KEY_PREFIX: &str = "public.serverkey.";
/// Server conversation attribute: the whole signed bundle (the base64 after `server:`). Its
/// presence marks a server. UNCONFIRMED (`public.serverkey.server_key_bundle`).
pub const SERVER_BUNDLE: &str = "public.serverkey.server_key_bundle";
/// Server conversation attribute: unspent Privacy Pass tokens for that server. Our own key
/// and format (Go caches tokens under `local.server.tokens` in a format of its own, recalled):
/// a distinct key, so neither implementation misreads the other's cache; a profile moved
/// between them just fetches new tokens.
pub const SERVER_TOKENS: &str = "local.server.rs-tokens";
/// Server conversation attribute: the replay cursor, the std base64 signature of the last
/// message received from that server, in the server's order. Our own key (Go re-syncs from
/// what it finds in its group timelines).
pub const SERVER_LAST_COMMIT: &str = "local.server.rs-last-commit";
