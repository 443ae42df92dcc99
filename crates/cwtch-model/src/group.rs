//! Server-hosted ("legacy") groups (protocol.md §6): group IDs, invites, the group message
//! structs and their exact Go JSON, and the sans-IO core that seals and opens group messages
//! ([`Group::seal`], [`EncryptedGroupMessage::open`]).

use torv3::safelog::Sensitive;
use torv3::Onion;
use zeroize::{Zeroize, Zeroizing};

use crate::gojson::{self, Decoder, GoDecode, GoJson};
use crate::Error;

mod message;

pub use message::{
    first_previous_message_sig, padding_for, signature_input, signed_group_id, Group, GroupId,
    SealedGroupMessage, UnverifiedGroupMessage, VerifiedGroupMessage,
    ACCEPT_LEGACY_CIPHERTEXT_SIGNATURE, GROUP_CIPHERTEXT_LEN, GROUP_NONCE_LEN, GROUP_PLAINTEXT_LEN,
    GROUP_TAG_LEN, MAX_GROUP_TEXT_BYTES, MAX_GROUP_TEXT_ENCODED,
};

/// Prefix of a group invite string (`GroupInvitePrefix`, protocol.md §6.3, CONFIRMED).
pub const GROUP_INVITE_PREFIX: &str = "torv3";

/// PBKDF2 iterations of the group ID derivation (protocol.md §6.1, CONFIRMED by a real invite).
pub const GROUP_ID_PBKDF2_ITERATIONS: u32 = 4096;

/// Length of a group ID in bytes before hex encoding (protocol.md §6.1, CONFIRMED).
pub const GROUP_ID_LEN: usize = 16;

/// Length of a group key (`SharedKey`), a secretbox key.
pub const GROUP_KEY_LEN: usize = 32;

/// A group's ID: lower-case hex of PBKDF2-HMAC-SHA512(password = group key, salt = the server's
/// 32 public-key bytes, 4096 iterations, 16 bytes) (Go `deriveGroupID`, protocol.md §6.1).
pub fn derive_group_id(key: &[u8; GROUP_KEY_LEN], server: &Onion) -> String {
    GroupId::derive(key, server).to_string()
}

/// A group invite (Go `model.GroupInvite`, protocol.md §6.3), validated: the key is 32 bytes and
/// the server a valid onion address. Go JSON:
/// `{"GroupID","GroupName","SignedGroupID","Timestamp","SharedKey","ServerHost"}`.
#[derive(Clone, PartialEq, Eq)]
pub struct GroupInvite {
    /// `GroupID`: 32 lower-case hex characters, [`derive_group_id`] of key and server.
    pub group_id: String,
    /// `GroupName`.
    pub group_name: String,
    /// `SignedGroupID`: legacy, sent as `null`.
    pub signed_group_id: Option<Vec<u8>>,
    /// `Timestamp`: legacy, sent as 0.
    pub timestamp: u64,
    /// `SharedKey`: the group key (Go `[]byte`, always 32 bytes here).
    pub shared_key: [u8; GROUP_KEY_LEN],
    /// `ServerHost`: the server's token-board onion.
    pub server_host: Onion,
}

impl std::fmt::Debug for GroupInvite {
    /// Never shows the group key; the ID and name only with unsafe logging on.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupInvite")
            .field("group_id", &Sensitive(&self.group_id))
            .field("group_name", &Sensitive(&self.group_name))
            .field("signed_group_id", &self.signed_group_id)
            .field("timestamp", &self.timestamp)
            .field("shared_key", &"<redacted>")
            .field("server_host", &self.server_host)
            .finish()
    }
}

impl GroupInvite {
    /// An invite to the group with this key on this server, as Go builds one: derived group ID,
    /// `SignedGroupID` null, `Timestamp` 0.
    pub fn new(group_name: String, shared_key: [u8; GROUP_KEY_LEN], server_host: Onion) -> Self {
        GroupInvite {
            group_id: derive_group_id(&shared_key, &server_host),
            group_name,
            signed_group_id: None,
            timestamp: 0,
            shared_key,
            server_host,
        }
    }

    /// Go's `json.Marshal` of the invite.
    pub fn to_json(&self) -> Vec<u8> {
        self.to_go_json()
    }

    /// Decode Go JSON, checking the key length and the server address (not the group ID; see
    /// [`GroupInvite::check_group_id`]).
    pub fn from_json(json: &[u8]) -> Result<Self, Error> {
        let mut raw: RawGroupInvite = gojson::decode(json)?;
        let key = Zeroizing::new(raw.shared_key.take().unwrap_or_default());
        let shared_key: [u8; GROUP_KEY_LEN] =
            key.as_slice()
                .try_into()
                .map_err(|_| Error::InvalidLength {
                    what: "group invite SharedKey",
                    expected: GROUP_KEY_LEN,
                    actual: key.len(),
                })?;
        let server_host = Onion::parse(&raw.server_host).map_err(|source| Error::InvalidOnion {
            what: "group invite ServerHost",
            source,
        })?;
        Ok(GroupInvite {
            group_id: std::mem::take(&mut raw.group_id),
            group_name: std::mem::take(&mut raw.group_name),
            signed_group_id: raw.signed_group_id.take(),
            timestamp: raw.timestamp,
            shared_key,
            server_host,
        })
    }

    /// Check that `group_id` is the ID that the key and server derive (Go `CheckGroup`).
    pub fn check_group_id(&self) -> Result<(), Error> {
        if derive_group_id(&self.shared_key, &self.server_host) == self.group_id {
            Ok(())
        } else {
            Err(Error::GroupIdMismatch)
        }
    }

    /// The invite string: `"torv3" + base64std(json)`.
    pub fn to_invite_string(&self) -> String {
        format!(
            "{GROUP_INVITE_PREFIX}{}",
            gojson::base64_std(&Zeroizing::new(self.to_json()))
        )
    }

    /// Parse an invite string: the `torv3` prefix, base64, JSON, a 32-byte key, a valid server
    /// onion and a group ID that matches key and server.
    pub fn parse_invite_string(s: &str) -> Result<Self, Error> {
        let b64 = s
            .strip_prefix(GROUP_INVITE_PREFIX)
            .ok_or(Error::MissingPrefix {
                what: "group invite",
                prefix: GROUP_INVITE_PREFIX,
            })?;
        let json = Zeroizing::new(gojson::go_base64_decode(b64.as_bytes(), "group invite")?);
        let invite = GroupInvite::from_json(&json)?;
        invite.check_group_id()?;
        Ok(invite)
    }
}

impl Drop for GroupInvite {
    /// The group key does not outlive the invite in memory.
    fn drop(&mut self) {
        self.shared_key.zeroize();
    }
}

impl GoJson for GroupInvite {
    fn write_go_json(&self, out: &mut Vec<u8>) {
        gojson::object(out, |o| {
            o.str("GroupID", &self.group_id)
                .str("GroupName", &self.group_name)
                .bytes("SignedGroupID", self.signed_group_id.as_deref())
                .u64("Timestamp", self.timestamp)
                .bytes("SharedKey", Some(&self.shared_key))
                .str("ServerHost", self.server_host.as_str());
        });
    }
}

/// The Go struct as it is decoded, before validation.
#[derive(Default)]
struct RawGroupInvite {
    group_id: String,
    group_name: String,
    signed_group_id: Option<Vec<u8>>,
    timestamp: u64,
    shared_key: Option<Vec<u8>>,
    server_host: String,
}

impl Drop for RawGroupInvite {
    fn drop(&mut self) {
        self.shared_key.zeroize();
    }
}

impl GoDecode for RawGroupInvite {
    fn decode_into(&mut self, d: &mut Decoder<'_>) -> Result<(), Error> {
        const FIELDS: &[&str] = &[
            "GroupID",
            "GroupName",
            "SignedGroupID",
            "Timestamp",
            "SharedKey",
            "ServerHost",
        ];
        d.fields(FIELDS, |d, i| match i {
            0 => d.string(&mut self.group_id),
            1 => d.string(&mut self.group_name),
            2 => d.bytes(&mut self.signed_group_id),
            3 => d.u64(&mut self.timestamp),
            4 => d.bytes(&mut self.shared_key),
            _ => d.string(&mut self.server_host),
        })
    }
}

/// The plaintext of a group message (Go `groups.DecryptedGroupMessage`, protocol.md §6.2).
///
/// Go JSON: `{"Text","Onion","Timestamp","SignedGroupID","PreviousMessageSig","Padding"}`.
/// The group signature is computed over this JSON, so [`DecryptedGroupMessage::to_json`] must
/// (and does) reproduce Go's bytes exactly.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct DecryptedGroupMessage {
    /// `Text`: a Go `string`, i.e. arbitrary bytes. Usually the overlay JSON
    /// (`{"o":1,"d":"…"}`). Bytes that are not UTF-8 are written as `\ufffd` (one per byte, as
    /// Go does); after decoding, `text` is always valid UTF-8.
    pub text: Vec<u8>,
    /// `Onion`: the sender's onion address (unchecked, as in Go; see
    /// [`DecryptedGroupMessage::sender`]).
    pub onion: String,
    /// `Timestamp`: the sender's clock, Unix seconds.
    pub timestamp: u64,
    /// `SignedGroupID`.
    pub signed_group_id: Option<Vec<u8>>,
    /// `PreviousMessageSig`.
    pub previous_message_sig: Option<Vec<u8>>,
    /// `Padding`.
    pub padding: Option<Vec<u8>>,
}

impl std::fmt::Debug for DecryptedGroupMessage {
    /// Text and sender only with unsafe logging on.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptedGroupMessage")
            .field("text", &Sensitive(self.text_lossy()))
            .field("onion", &Sensitive(&self.onion))
            .field("timestamp", &self.timestamp)
            .field("signed_group_id", &self.signed_group_id)
            .field("previous_message_sig", &self.previous_message_sig)
            .field("padding_len", &self.padding.as_ref().map(Vec::len))
            .finish()
    }
}

impl DecryptedGroupMessage {
    /// Go's `json.Marshal` of the message.
    pub fn to_json(&self) -> Vec<u8> {
        self.to_go_json()
    }

    /// Decode Go JSON.
    pub fn from_json(json: &[u8]) -> Result<Self, Error> {
        gojson::decode(json)
    }

    /// The text as UTF-8, replacing what is not UTF-8 as Go would (see
    /// [`gojson::go_lossy_utf8`]).
    pub fn text_lossy(&self) -> String {
        gojson::go_lossy_utf8(&self.text)
    }

    /// The sender's onion address, checked.
    pub fn sender(&self) -> Result<Onion, Error> {
        Onion::parse(&self.onion).map_err(|source| Error::InvalidOnion {
            what: "group message Onion",
            source,
        })
    }
}

impl GoJson for DecryptedGroupMessage {
    fn write_go_json(&self, out: &mut Vec<u8>) {
        gojson::object(out, |o| {
            o.string("Text", &self.text)
                .str("Onion", &self.onion)
                .u64("Timestamp", self.timestamp)
                .bytes("SignedGroupID", self.signed_group_id.as_deref())
                .bytes("PreviousMessageSig", self.previous_message_sig.as_deref())
                .bytes("Padding", self.padding.as_deref());
        });
    }
}

impl GoDecode for DecryptedGroupMessage {
    fn decode_into(&mut self, d: &mut Decoder<'_>) -> Result<(), Error> {
        const FIELDS: &[&str] = &[
            "Text",
            "Onion",
            "Timestamp",
            "SignedGroupID",
            "PreviousMessageSig",
            "Padding",
        ];
        d.fields(FIELDS, |d, i| match i {
            0 => d.string_bytes(&mut self.text),
            1 => d.string(&mut self.onion),
            2 => d.u64(&mut self.timestamp),
            3 => d.bytes(&mut self.signed_group_id),
            4 => d.bytes(&mut self.previous_message_sig),
            _ => d.bytes(&mut self.padding),
        })
    }
}

/// A group message as the server stores and relays it (Go `groups.EncryptedGroupMessage`,
/// protocol.md §5.2, CONFIRMED struct). Go JSON: `{"Ciphertext","Signature"}`.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct EncryptedGroupMessage {
    /// `Ciphertext`.
    pub ciphertext: Option<Vec<u8>>,
    /// `Signature`: also the message's ID on the server and in `ReplayRequest.LastCommit`.
    pub signature: Option<Vec<u8>>,
}

impl EncryptedGroupMessage {
    /// Go's `ToBytes()`: the JSON of the message, which a token spend binds (protocol.md §4.3,
    /// §5.3).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_go_json()
    }

    /// Go's `json.Marshal` of the message (the same as [`EncryptedGroupMessage::to_bytes`]).
    pub fn to_json(&self) -> Vec<u8> {
        self.to_go_json()
    }

    /// Decode Go JSON (a replayed message is sent bare, not wrapped in a token-board message).
    pub fn from_json(json: &[u8]) -> Result<Self, Error> {
        gojson::decode(json)
    }
}

impl GoJson for EncryptedGroupMessage {
    fn write_go_json(&self, out: &mut Vec<u8>) {
        gojson::object(out, |o| {
            o.bytes("Ciphertext", self.ciphertext.as_deref())
                .bytes("Signature", self.signature.as_deref());
        });
    }
}

impl GoDecode for EncryptedGroupMessage {
    fn decode_into(&mut self, d: &mut Decoder<'_>) -> Result<(), Error> {
        d.fields(&["Ciphertext", "Signature"], |d, i| match i {
            0 => d.bytes(&mut self.ciphertext),
            _ => d.bytes(&mut self.signature),
        })
    }
}
