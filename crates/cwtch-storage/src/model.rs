//! What a profile stores: ids, key types, attributes, access control, conversations, messages,
//! and their JSON forms exactly as Go writes them.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use cwtch_model::gojson;
use sha2::{Digest, Sha256};

use crate::Error;

/// A profile's local id: the name of its directory under `profiles/`, 32 lower-case hex
/// digits (16 random bytes). Not secret, and unrelated to the profile's onion.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProfileId(String);

impl ProfileId {
    /// Length of an id in characters.
    pub const LEN: usize = 32;

    /// A fresh random id.
    pub fn random<R: rand_core::CryptoRngCore + ?Sized>(rng: &mut R) -> ProfileId {
        let mut b = [0u8; Self::LEN / 2];
        rng.fill_bytes(&mut b);
        ProfileId(hex::encode(b))
    }

    /// Parse an id (exactly 32 lower-case hex digits, as Go writes them).
    pub fn parse(s: &str) -> Result<ProfileId, Error> {
        if s.len() == Self::LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(ProfileId(s.to_owned()))
        } else {
            Err(Error::InvalidProfileId)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProfileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ProfileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProfileId({})", self.0)
    }
}

impl FromStr for ProfileId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        ProfileId::parse(s)
    }
}

/// A conversation's id: the `conversations.ID` column (SQLite `AUTOINCREMENT`, so ids are
/// never reused, starting at 1). Also names the conversation's message table
/// `channel_<id>_0_chat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConversationId(pub i64);

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A message's id within its conversation: the channel table's `ID` column (`AUTOINCREMENT`;
/// ids keep increasing even after messages are purged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub i64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The `profile_kv.KeyType` column: Go's `StorageKeyType`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyType(Cow<'static, str>);

impl KeyType {
    /// `Attribute`: profile attributes, keyed by scoped path (`public.profile.name`); values
    /// are UTF-8 text. CONFIRMED (fixtures).
    pub const ATTRIBUTE: KeyType = KeyType(Cow::Borrowed("Attribute"));
    /// `PrivateKey`: `Ed25519PrivateKey` = Go's 64-byte key. CONFIRMED (fixtures).
    pub const PRIVATE_KEY: KeyType = KeyType(Cow::Borrowed("PrivateKey"));
    /// `PublicKey`: `Ed25519PublicKey` = 32 bytes. CONFIRMED (fixtures).
    pub const PUBLIC_KEY: KeyType = KeyType(Cow::Borrowed("PublicKey"));

    /// Any other key type (Go code may add more; they are stored and returned as is).
    pub fn other(name: impl Into<String>) -> KeyType {
        KeyType(Cow::Owned(name.into()))
    }

    /// The stored text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A string map as Go's `model.Attributes` (`map[string]string`): conversation attributes and
/// message attributes.
pub type Attributes = BTreeMap<String, String>;

/// Go's `json.Marshal` of a `map[string]string`: keys sorted bytewise, Go's string escaping
/// (HTML-safe), `{}` when empty.
pub fn attributes_to_json(attributes: &Attributes) -> Vec<u8> {
    let mut out = Vec::new();
    gojson::write_string_map(&mut out, attributes);
    out
}

/// Go's `json.Unmarshal` into a `map[string]string` (`null` is the empty map).
pub fn attributes_from_json(json: &[u8]) -> Result<Attributes, Error> {
    let mut map = Attributes::new();
    let mut d = gojson::Decoder::new(json);
    d.string_map(&mut map)
        .and_then(|()| d.finish())
        .map_err(|_| Error::Json { what: "attributes" })?;
    Ok(map)
}

/// One entry of a conversation's access-control list: Go's `model.AccessControl`, stored as
/// `{"Blocked":false,"Read":true,"Append":true}` (CONFIRMED, fixtures; fields in this order).
///
/// Newer Go versions add four fields after these (`AutoConnect`, `ExchangeAttributes`,
/// `ShareFiles`, `RenderImages`, in that order). Here they are optional: absent means "not
/// set, the profile's default applies" and is written as absence, so an entry nobody set
/// stays byte-identical to the fixtures' (Go reads an absent field as `false`). This library
/// acts on [`share_files`](Self::share_files) and [`render_images`](Self::render_images);
/// the other two are kept as read, so a profile written by a newer Go keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccessControl {
    /// The peer is blocked: no connections, messages dropped.
    pub blocked: bool,
    /// The peer may read (receive) the conversation.
    pub read: bool,
    /// The peer may append (send) to the conversation.
    pub append: bool,
    /// Go's `AutoConnect` (kept, not acted on: this library connects to accepted contacts).
    pub auto_connect: Option<bool>,
    /// Go's `ExchangeAttributes` (kept, not acted on: attributes go to accepted contacts).
    pub exchange_attributes: Option<bool>,
    /// Go's `ShareFiles`: the peer may offer files to download in this conversation.
    pub share_files: Option<bool>,
    /// Go's `RenderImages`: images the peer offers are previewed automatically (with image
    /// previews on).
    pub render_images: Option<bool>,
}

impl AccessControl {
    /// Go's default for a peer-to-peer contact (`model.DefaultP2PAccessControl` of the
    /// fixtures' version): not blocked, may read and append. Every fixture ACL entry has
    /// these values.
    pub const DEFAULT_P2P: AccessControl = AccessControl {
        blocked: false,
        read: true,
        append: true,
        auto_connect: None,
        exchange_attributes: None,
        share_files: None,
        render_images: None,
    };

    /// Go's zero value: everything false, nothing optional set.
    pub const ZERO: AccessControl = AccessControl {
        blocked: false,
        read: false,
        append: false,
        auto_connect: None,
        exchange_attributes: None,
        share_files: None,
        render_images: None,
    };
}

impl Default for AccessControl {
    fn default() -> Self {
        AccessControl::DEFAULT_P2P
    }
}

/// A conversation's access-control list: Go's `model.AccessControlList`
/// (`map[string]AccessControl`), keyed by handle (the contact's onion for P2P).
pub type Acl = BTreeMap<String, AccessControl>;

/// Go's `json.Marshal` of an ACL, e.g.
/// `{"<onion>":{"Blocked":false,"Read":true,"Append":true}}`.
pub fn acl_to_json(acl: &Acl) -> Vec<u8> {
    let mut out = Vec::new();
    out.push(b'{');
    for (n, (handle, ac)) in acl.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        gojson::write_string(&mut out, handle.as_bytes());
        out.push(b':');
        gojson::object(&mut out, |o| {
            o.bool("Blocked", ac.blocked)
                .bool("Read", ac.read)
                .bool("Append", ac.append);
            for (name, v) in [
                ("AutoConnect", ac.auto_connect),
                ("ExchangeAttributes", ac.exchange_attributes),
                ("ShareFiles", ac.share_files),
                ("RenderImages", ac.render_images),
            ] {
                if let Some(v) = v {
                    o.bool(name, v);
                }
            }
        });
    }
    out.push(b'}');
    out
}

/// Decode an ACL as Go's `json.Unmarshal` would: field names match exactly or
/// case-insensitively, unknown fields (from newer Go versions) are ignored, `null` is empty.
pub fn acl_from_json(json: &[u8]) -> Result<Acl, Error> {
    use cwtch_model::gojson::{self, Decoder, GoDecode};

    /// Go's `map[string]AccessControl`: entries and their fields in document order, field
    /// names matched exactly or else case-insensitively, a repeated key keeping its last
    /// value, `null` leaving the zero value.
    #[derive(Default)]
    struct GoAcl(Acl);

    fn entry(d: &mut Decoder<'_>, ac: &mut AccessControl) -> Result<(), cwtch_model::Error> {
        const FIELDS: [&str; 7] = [
            "Blocked",
            "Read",
            "Append",
            "AutoConnect",
            "ExchangeAttributes",
            "ShareFiles",
            "RenderImages",
        ];
        d.fields(&FIELDS, |d, i| match i {
            0 => d.bool(&mut ac.blocked),
            1 => d.bool(&mut ac.read),
            2 => d.bool(&mut ac.append),
            3 => d.opt_bool(&mut ac.auto_connect),
            4 => d.opt_bool(&mut ac.exchange_attributes),
            5 => d.opt_bool(&mut ac.share_files),
            _ => d.opt_bool(&mut ac.render_images),
        })
    }

    impl GoDecode for GoAcl {
        fn decode_into(&mut self, d: &mut Decoder<'_>) -> Result<(), cwtch_model::Error> {
            // Go's zero value, not our `Default` (which is Go's P2P default).
            d.map_with(&mut self.0, || AccessControl::ZERO, entry)
        }
    }

    gojson::decode::<GoAcl>(json)
        .map(|a| a.0)
        .map_err(|_| Error::Json { what: "ACL" })
}

/// A conversation: one row of `conversations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// `ID`.
    pub id: ConversationId,
    /// `Handle`: the contact's onion (P2P), a group id (32 hex) or a server onion.
    pub handle: String,
    /// `Attributes`: e.g. `public.profile.name` fetched from the peer, `local.profile.name`
    /// (a local nickname), `SavePeerHistory`.
    pub attributes: Attributes,
    /// `ACL`.
    pub acl: Acl,
    /// `Accepted`: false for an unaccepted contact request.
    pub accepted: bool,
}

impl Conversation {
    /// The ACL entry for the conversation's own handle, if any.
    pub fn own_access(&self) -> Option<&AccessControl> {
        self.acl.get(&self.handle)
    }

    /// Whether the conversation's handle is blocked in its ACL.
    pub fn is_blocked(&self) -> bool {
        self.own_access().is_some_and(|a| a.blocked)
    }

    /// An attribute's value.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    /// What the conversation is, from its attributes as Go marks them: a group has
    /// [`keys::GROUP_ID`](crate::keys::GROUP_ID), a server
    /// [`keys::SERVER_BUNDLE`](crate::keys::SERVER_BUNDLE); anything else is a contact.
    pub fn kind(&self) -> ConversationKind {
        if self.attributes.contains_key(crate::keys::GROUP_ID) {
            ConversationKind::Group
        } else if self.attributes.contains_key(crate::keys::SERVER_BUNDLE) {
            ConversationKind::Server
        } else {
            ConversationKind::Contact
        }
    }
}

/// The three kinds of conversation a profile holds (see [`Conversation::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConversationKind {
    /// A peer-to-peer contact; the handle is its onion.
    Contact,
    /// A group on a server; the handle is the group id.
    Group,
    /// A server whose bundle was imported; the handle is its token-board onion.
    Server,
}

/// A conversation to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConversation {
    /// The handle (must not be empty, must not already have a conversation).
    pub handle: String,
    /// Initial attributes.
    pub attributes: Attributes,
    /// Initial ACL.
    pub acl: Acl,
    /// Whether the conversation starts accepted.
    pub accepted: bool,
}

impl NewConversation {
    /// A P2P contact as Go's `NewContactConversation(handle, DefaultP2PAccessControl(),
    /// accepted)` creates it: no attributes, an ACL with the default entry for the handle.
    pub fn contact(handle: impl Into<String>, accepted: bool) -> NewConversation {
        let handle = handle.into();
        let mut acl = Acl::new();
        acl.insert(handle.clone(), AccessControl::DEFAULT_P2P);
        NewConversation {
            handle,
            attributes: Attributes::new(),
            acl,
            accepted,
        }
    }
}

/// A stored message: one row of `channel_<conversation>_0_chat`.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// `ID`.
    pub id: MessageId,
    /// `Body`: the overlay JSON as received or sent (`{"o":1,"d":"…"}`).
    pub body: String,
    /// `Attributes`: per-message state (author, acknowledgement, error, timestamps; the
    /// key names are UNCONFIRMED, see [`crate::keys`]).
    pub attributes: Attributes,
    /// `Signature`: unique per conversation (group messages: the base64 group signature;
    /// P2P messages: an id chosen by the engine, UNCONFIRMED).
    pub signature: String,
    /// `ContentHash`: [`content_hash`] of the author and body.
    pub content_hash: String,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Message contents and authors are sensitive: never logged.
        f.debug_struct("Message")
            .field("id", &self.id)
            .field("body_len", &self.body.len())
            .field("attributes", &self.attributes.len())
            .finish_non_exhaustive()
    }
}

/// A message to insert.
#[derive(Clone, Copy)]
pub struct NewMessage<'a> {
    /// `Body`.
    pub body: &'a str,
    /// `Attributes`.
    pub attributes: &'a Attributes,
    /// `Signature` (must be unique within the conversation).
    pub signature: &'a str,
    /// `ContentHash`.
    pub content_hash: &'a str,
}

impl fmt::Debug for NewMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewMessage")
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// Go's `model.CalculateContentHash(author, body)`:
/// `base64std(SHA-256(author || body))`, where `author` is the sender's onion (one's own for
/// one's own messages) and `body` the raw overlay JSON (protocol.md §7.5, CONFIRMED by the UI
/// and the Go fuzzbot).
pub fn content_hash(author: &str, body: &str) -> String {
    let mut h = Sha256::new();
    h.update(author.as_bytes());
    h.update(body.as_bytes());
    gojson::base64_std(&h.finalize())
}

#[cfg(test)]
mod tests {

    #[test]
    fn conversation_kind_follows_go_marker_attributes() {
        let mut c = Conversation {
            id: super::ConversationId(1),
            handle: "h".into(),
            attributes: Attributes::new(),
            acl: Acl::new(),
            accepted: true,
        };
        assert_eq!(c.kind(), super::ConversationKind::Contact);
        c.attributes
            .insert(crate::keys::SERVER_BUNDLE.into(), "b".into());
        assert_eq!(c.kind(), super::ConversationKind::Server);
        c.attributes
            .insert(crate::keys::GROUP_ID.into(), "g".into());
        assert_eq!(c.kind(), super::ConversationKind::Group);
    }

    /// Go decodes object keys in document order and a later key wins, whether it matched a
    /// field exactly or case-insensitively (found by review; `serde_json::Value` iterates keys
    /// sorted, which picked by alphabet instead).
    #[test]
    fn acl_fields_follow_go_document_order() {
        let acl = acl_from_json(br#"{"x":{"blocked":true,"Blocked":false}}"#).unwrap();
        assert!(!acl["x"].blocked);
        let acl = acl_from_json(br#"{"x":{"Blocked":false,"blocked":true}}"#).unwrap();
        assert!(acl["x"].blocked);
        // Unknown fields are ignored, null leaves Go's zero value, a repeated handle keeps its
        // last entry, a non-bool is an error.
        let acl = acl_from_json(br#"{"x":{"Read":true,"Other":1},"y":null,"x":{"Append":true}}"#)
            .unwrap();
        assert_eq!(
            acl["x"],
            AccessControl {
                append: true,
                ..AccessControl::ZERO
            }
        );
        assert_eq!(acl["y"], AccessControl::ZERO);
        assert!(acl_from_json(br#"{"x":{"Blocked":"yes"}}"#).is_err());
        assert!(acl_from_json(b"null").unwrap().is_empty());
    }

    use super::*;

    #[test]
    fn profile_ids() {
        assert!(ProfileId::parse("c39e0660a885b6000173ffea9d214b5c").is_ok());
        assert!(ProfileId::parse("C39E0660A885B6000173FFEA9D214B5C").is_err());
        assert!(ProfileId::parse("c39e0660a885b6000173ffea9d214b5").is_err());
        assert!(ProfileId::parse("../e0660a885b6000173ffea9d214b5c").is_err());
        let id = ProfileId::random(&mut rand_core::OsRng);
        assert_eq!(ProfileId::parse(id.as_str()).unwrap(), id);
    }

    #[test]
    fn go_acl_json() {
        let json = br#"{"pjurzypqui3dnpxj6aemk6cqz22yx6zfr5lq4jzu7muwe2yyx2zrnzyd":{"Blocked":false,"Read":true,"Append":true}}"#;
        let acl = acl_from_json(json).unwrap();
        assert_eq!(acl_to_json(&acl), json.to_vec());
        // Go's decoder: case-insensitive names, unknown fields ignored.
        let acl = acl_from_json(br#"{"x":{"blocked":true,"sharefiles":true,"Other":1}}"#).unwrap();
        assert_eq!(
            acl["x"],
            AccessControl {
                blocked: true,
                share_files: Some(true),
                ..AccessControl::ZERO
            }
        );
        // A newer Go's entry, all seven fields in its order, round-trips byte for byte; null
        // leaves an optional field unset.
        let json = br#"{"x":{"Blocked":false,"Read":true,"Append":true,"AutoConnect":true,"ExchangeAttributes":true,"ShareFiles":false,"RenderImages":true}}"#;
        let acl = acl_from_json(json).unwrap();
        assert_eq!(
            acl["x"],
            AccessControl {
                auto_connect: Some(true),
                exchange_attributes: Some(true),
                share_files: Some(false),
                render_images: Some(true),
                ..AccessControl::DEFAULT_P2P
            }
        );
        assert_eq!(acl_to_json(&acl), json.to_vec());
        let acl = acl_from_json(br#"{"x":{"RenderImages":null}}"#).unwrap();
        assert_eq!(acl["x"].render_images, None);
        assert!(acl_from_json(br#"{"x":{"ShareFiles":1}}"#).is_err());
        assert!(acl_from_json(b"null").unwrap().is_empty());
        assert!(acl_from_json(br#"{"x":1}"#).is_err());
        assert!(acl_from_json(b"[").is_err());
    }

    #[test]
    fn go_attributes_json() {
        let json = br#"{"SavePeerHistory":"DefaultDeleteHistory","local.profile.name":"Bob","public.profile.name":"Bob","public.profile.picture":"{\"Val\":\"profiles/032-leprechaun.png\",\"T\":\"distro\"}"}"#;
        let a = attributes_from_json(json).unwrap();
        assert_eq!(a["local.profile.name"], "Bob");
        assert_eq!(attributes_to_json(&a), json.to_vec());
        let mut a = Attributes::new();
        a.insert("k".into(), "<&>".into());
        assert_eq!(
            attributes_to_json(&a),
            br#"{"k":"\u003c\u0026\u003e"}"#.to_vec()
        );
        assert!(attributes_from_json(b"null").unwrap().is_empty());
        assert!(attributes_from_json(b"{} x").is_err());
    }

    #[test]
    fn content_hash_matches_go_rule() {
        // sha256("ab") in std base64.
        assert_eq!(
            content_hash("a", "b"),
            "+44g/C5MPySMYMOb1lLzwTRymLuXe4tNWQO4UFViBgM="
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<String>(),
                r#"[<>&"\\\x{2028}\x{2029}a-z\x00-\x1f]{0,8}"#
            ]
        }

        fn acl() -> impl Strategy<Value = Acl> {
            proptest::collection::btree_map(
                text(),
                (
                    (any::<bool>(), any::<bool>(), any::<bool>()),
                    proptest::array::uniform4(any::<Option<bool>>()),
                )
                    .prop_map(|((blocked, read, append), [a, e, s, r])| {
                        AccessControl {
                            blocked,
                            read,
                            append,
                            auto_connect: a,
                            exchange_attributes: e,
                            share_files: s,
                            render_images: r,
                        }
                    }),
                0..5,
            )
        }

        proptest! {
            #[test]
            fn attributes_round_trip(a in proptest::collection::btree_map(text(), text(), 0..6)) {
                let json = attributes_to_json(&a);
                prop_assert_eq!(attributes_from_json(&json).unwrap(), a);
                // Valid JSON that serde_json reads back to the same map.
                let v: BTreeMap<String, String> = serde_json::from_slice(&json).unwrap();
                prop_assert_eq!(attributes_to_json(&v), json);
            }

            #[test]
            fn acl_round_trip(a in acl()) {
                let json = acl_to_json(&a);
                prop_assert_eq!(&acl_from_json(&json).unwrap(), &a);
                prop_assert_eq!(acl_to_json(&acl_from_json(&json).unwrap()), json);
            }

            #[test]
            fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..64)) {
                let _ = attributes_from_json(&b);
                let _ = acl_from_json(&b);
            }
        }
    }
}
