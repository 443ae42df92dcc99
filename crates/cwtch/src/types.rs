//! Values the API hands out: profiles, contacts, messages.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use cwtch_storage::{ConversationId, MessageId, ProfileId};
use serde::{Serialize, Serializer};
use torv3::Onion;

use crate::event::{ConnectionState, MessageState};
use crate::overlay::Content;

pub(crate) fn ser_conversation<S: Serializer>(v: &ConversationId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(v.0)
}

pub(crate) fn ser_message<S: Serializer>(v: &MessageId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(v.0)
}

pub(crate) fn ser_profile_id<S: Serializer>(v: &ProfileId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_str())
}

/// A profile in a home.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileInfo {
    /// Local id (the directory name under `profiles/`).
    #[serde(serialize_with = "ser_profile_id")]
    pub profile_id: ProfileId,
    /// The profile's address.
    pub onion: Onion,
    /// Its public name (`public.profile.name`).
    pub name: String,
    /// Whether it is loaded (online) in this process.
    pub loaded: bool,
}

/// Names a contact: by address or by conversation id. Parses from a string: a decimal number
/// is a conversation id, anything else must be an address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ContactId {
    /// By address.
    Onion(Onion),
    /// By conversation id.
    Conversation(ConversationId),
}

impl From<Onion> for ContactId {
    fn from(o: Onion) -> Self {
        ContactId::Onion(o)
    }
}

impl From<&Onion> for ContactId {
    fn from(o: &Onion) -> Self {
        ContactId::Onion(o.clone())
    }
}

impl From<ConversationId> for ContactId {
    fn from(c: ConversationId) -> Self {
        ContactId::Conversation(c)
    }
}

impl From<&Contact> for ContactId {
    fn from(c: &Contact) -> Self {
        ContactId::Conversation(c.conversation_id)
    }
}

impl FromStr for ContactId {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            let n = s.parse::<i64>().map_err(|_| crate::Error::Invalid {
                what: "conversation id",
            })?;
            return Ok(ContactId::Conversation(ConversationId(n)));
        }
        Onion::parse(s)
            .map(ContactId::Onion)
            .map_err(crate::Error::InvalidAddress)
    }
}

impl fmt::Display for ContactId {
    /// Onions redacted (this is for logs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContactId::Onion(o) => write!(f, "{}", o.redacted()),
            ContactId::Conversation(c) => write!(f, "conversation {c}"),
        }
    }
}

/// A contact (a peer-to-peer conversation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contact {
    /// Conversation id.
    #[serde(serialize_with = "ser_conversation")]
    pub conversation_id: ConversationId,
    /// Address.
    pub onion: Onion,
    /// Display name: our local nickname (`local.profile.name`) if set, else the name the
    /// contact told us (`public.profile.name`).
    pub name: Option<String>,
    /// Accepted (false: a contact request we have not accepted).
    pub accepted: bool,
    /// Blocked.
    pub blocked: bool,
    /// Connection state.
    pub state: ConnectionState,
    /// Messages stored in the conversation.
    pub message_count: u64,
    /// The contact's messages after the last one the user read
    /// ([`ProfileHandle::mark_read`](crate::ProfileHandle::mark_read)).
    pub unread: u64,
    /// Our messages not yet acknowledged (they are retried on every connection).
    pub unacknowledged: usize,
    /// The conversation's attributes (`public.profile.*` fetched from the contact,
    /// `local.profile.name`, ...).
    pub attributes: BTreeMap<String, String>,
    /// What the user allowed or refused this contact beyond chatting.
    pub permissions: Permissions,
}

/// What a contact may do beyond chatting, as the user set it: Go's `ShareFiles` and
/// `RenderImages` in the contact's access-control entry. `None` is "not set": the default,
/// which allows both for an accepted contact. Nothing is allowed to a contact that is blocked
/// or not accepted, whatever is set here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Permissions {
    /// The contact may offer files that we download (by hand, or automatically as image
    /// previews and profile pictures). Refused: downloading its files is an error
    /// ([`crate::Error::NotPermitted`]); its file messages are still shown.
    pub share_files: Option<bool>,
    /// Images the contact offers, and its profile picture, are fetched and shown
    /// automatically when image previews are on. Refused: they are not fetched.
    pub render_images: Option<bool>,
}

impl Permissions {
    /// Whether the contact may offer files (unset: yes).
    pub fn shares_files(&self) -> bool {
        self.share_files.unwrap_or(true)
    }

    /// Whether the contact's images are previewed (unset: yes; needs [`Self::shares_files`]).
    pub fn renders_images(&self) -> bool {
        self.shares_files() && self.render_images.unwrap_or(true)
    }

    /// The permissions stored in an access-control entry.
    pub(crate) fn from_access(a: Option<&cwtch_storage::AccessControl>) -> Self {
        Permissions {
            share_files: a.and_then(|a| a.share_files),
            render_images: a.and_then(|a| a.render_images),
        }
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageInfo {
    /// Conversation id.
    #[serde(serialize_with = "ser_conversation")]
    pub conversation_id: ConversationId,
    /// Message id within the conversation (Go's `Index`; increasing).
    #[serde(serialize_with = "ser_message")]
    pub message_id: MessageId,
    /// Wire id (the `Signature` column).
    pub signature: String,
    /// Author's address.
    pub author: String,
    /// Whether we wrote it.
    pub outgoing: bool,
    /// The body (overlay JSON) as sent or received.
    pub body: String,
    /// What the body means.
    pub content: Content,
    /// `base64(SHA-256(author + body))`.
    pub content_hash: String,
    /// When it was sent or received (RFC 3339), if stored.
    pub timestamp: Option<String>,
    /// Delivery state.
    pub state: MessageState,
    /// Every attribute stored with the message: the library's own (`author`, `ack`, `sent`,
    /// `error`, …) and those a client set
    /// ([`ProfileHandle::set_message_attribute`](crate::ProfileHandle::set_message_attribute)).
    pub attributes: BTreeMap<String, String>,
}

/// A message we just stored for sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentMessage {
    /// Conversation id.
    #[serde(serialize_with = "ser_conversation")]
    pub conversation_id: ConversationId,
    /// Message id within the conversation.
    #[serde(serialize_with = "ser_message")]
    pub message_id: MessageId,
    /// Wire id.
    pub signature: String,
    /// Content hash (our onion + body).
    pub content_hash: String,
    /// [`MessageState::Sending`] or [`MessageState::Sent`] (written to a connection already).
    pub state: MessageState,
}

/// A server the profile imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerInfo {
    /// The server's conversation id.
    #[serde(serialize_with = "ser_conversation")]
    pub conversation_id: ConversationId,
    /// Its token-board onion (what groups name it by).
    pub onion: Onion,
    /// Its token service's onion.
    pub token_service: Onion,
    /// The connection's state.
    pub state: crate::event::ServerState,
    /// Unspent tokens in hand (0 until the server is first used).
    pub tokens: usize,
    /// When the last replay completed in this session (RFC 3339), if it did.
    pub last_sync: Option<String>,
    /// How many of the profile's groups are on it.
    pub groups: usize,
}

/// A group of the profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupInfo {
    /// The group's conversation id.
    #[serde(serialize_with = "ser_conversation")]
    pub conversation_id: ConversationId,
    /// The group id (32 hex).
    pub group_id: String,
    /// Its name.
    pub name: String,
    /// Its server's token-board onion.
    pub server: Onion,
    /// Whether it is accepted (false: an invite not yet accepted).
    pub accepted: bool,
    /// The state of the connection to its server.
    pub server_state: crate::event::ServerState,
    /// Messages stored.
    pub messages: u64,
    /// The members seen (authors of stored messages other than us), by onion.
    pub members: Vec<String>,
    /// The members whose messages we block in this group
    /// ([`crate::ProfileHandle::set_group_member_blocked`]), by onion.
    pub blocked_members: Vec<String>,
    /// Messages from others since the group was last marked read
    /// ([`crate::ProfileHandle::mark_group_read`]).
    pub unread: u64,
    /// Messages known to be missing in this session: named by a later message's
    /// `PreviousMessageSig` and not received (see [`crate::Event::MissingMessages`]).
    pub missing: u64,
    /// The `tofubundle:` invite: the server's bundle and the group invite.
    pub invite: String,
}
