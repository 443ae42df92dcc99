//! Peer messages on the wire (protocol.md §7.2, §7.3).
//!
//! Every tapir payload between two peers is one `PeerMessage { ID, Context, Data }`, framed in
//! one of two ways:
//!
//! * **V1**: Go's `json.Marshal(PeerMessage)`, `{"ID":"…","Context":"…","Data":"<std b64>"}`
//!   (exact bytes from [`crate::gojson`]);
//! * **V2**: `ID|Context|Data`, raw bytes (UNCONFIRMED, [`V2_SEPARATOR`]).
//!
//! Negotiation (UNCONFIRMED, see [`VERSION_MESSAGE_ID`] and the crate docs): right after
//! authentication each side sends [`PeerMessage::version_message`] in V1; a side sends V2 only
//! once it has received the other side's version message. Receiving auto-detects the framing
//! ([`PeerMessage::decode`]), so either reading of Go's rule interoperates.
//!
//! Everything here is pure: no IO, never panics on any input (property-tested).

use std::fmt;

use crate::gojson::{self, Decoder, GoDecode};

/// A payload that is not a peer message in the framing asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerMessageError {
    /// Not Go JSON of a `PeerMessage` (V1).
    #[error("not a V1 (JSON) peer message")]
    NotV1,
    /// Fewer than two `|` separators (V2).
    #[error("not a V2 (ID|Context|Data) peer message")]
    NotV2,
    /// A V2 ID or context contains `|` and cannot be framed.
    #[error("ID or context contains '|'")]
    SeparatorInField,
}

/// Context of a chat message; Data is the overlay JSON `{"o":1,"d":"…"}` (spec §7.3, DOC).
pub const CONTEXT_RAW: &str = "im.cwtch.raw";
/// Context of an acknowledgement: ID = the acknowledged message's ID, Data empty (spec §7.3).
pub const CONTEXT_ACK: &str = "im.cwtch.acknowledgement";
/// Context of an attribute request; Data is [`GetVal`] JSON (spec §7.3).
pub const CONTEXT_GET_VAL: &str = "im.cwtch.getVal";
/// Context of an attribute reply (same ID as the request); Data is [`RetVal`] JSON.
pub const CONTEXT_RET_VAL: &str = "im.cwtch.retVal";
/// File-sharing contexts (spec §9, UNCONFIRMED names). File sharing is not implemented: these
/// are recognised and ignored rather than stored as chat messages.
pub const FILE_SHARING_CONTEXTS: [&str; 4] = [
    "im.cwtch.file.request.manifest",
    "im.cwtch.file.send.manifest",
    "im.cwtch.file.request.chunk",
    "im.cwtch.file.send.chunk",
];

/// Whether a message with this context is a chat message: stored, surfaced, acknowledged.
/// UNCONFIRMED (spec §7.3, recalled): Go treats every context that is not one of the special
/// ones (acknowledgement, getVal, retVal, file sharing) as a chat message; so do we, so that
/// nothing a Go peer sends is dropped silently (a body we do not understand is shown as
/// malformed).
pub fn is_chat_context(context: &str) -> bool {
    !matches!(context, CONTEXT_ACK | CONTEXT_GET_VAL | CONTEXT_RET_VAL)
        && !FILE_SHARING_CONTEXTS.contains(&context)
}

/// ID of the version message. UNCONFIRMED (spec §7.2, recalled): Go sends
/// `{ID:"im.cwtch.version", Context:"im.cwtch.getVal", Data:[0x02]}` in V1 right after auth;
/// old peers treat it as a getVal whose Data does not parse, and ignore it.
pub const VERSION_MESSAGE_ID: &str = "im.cwtch.version";
/// Context of the version message (UNCONFIRMED, spec §7.2): the getVal context.
pub const VERSION_MESSAGE_CONTEXT: &str = CONTEXT_GET_VAL;
/// The wire version we announce (UNCONFIRMED, spec §7.2): `Data = [0x02]`.
pub const OUR_WIRE_VERSION: u8 = 2;
/// The V2 field separator (UNCONFIRMED, spec §7.2): `ID|Context|Data`, split at the first two.
pub const V2_SEPARATOR: u8 = b'|';

/// The largest payload one encrypted tapir packet carries (8150 bytes). A peer message that
/// encodes to more is an error, never truncated.
pub const MAX_PEER_PAYLOAD: usize = tapir::packet::MAX_ENCRYPTED_PAYLOAD;

/// How a peer message is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WireVersion {
    /// Go JSON.
    V1,
    /// `ID|Context|Data`.
    V2,
}

impl WireVersion {
    /// The version a peer announcing `announced` (the Data byte of its version message)
    /// can read: V2 for 2 and above, V1 otherwise.
    pub fn from_announced(announced: u8) -> WireVersion {
        if announced >= 2 {
            WireVersion::V2
        } else {
            WireVersion::V1
        }
    }
}

/// One peer message: Go's `PeerMessage { ID string; Context string; Data []byte }`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct PeerMessage {
    /// `ID`: the message id (chat messages, acks), request id (getVal/retVal).
    pub id: String,
    /// `Context`: what the message is ([`CONTEXT_RAW`], ...).
    pub context: String,
    /// `Data`: the payload.
    pub data: Vec<u8>,
}

impl fmt::Debug for PeerMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Data can be a message's content: never logged.
        f.debug_struct("PeerMessage")
            .field("id", &self.id)
            .field("context", &self.context)
            .field("data_len", &self.data.len())
            .finish()
    }
}

impl PeerMessage {
    /// A message.
    pub fn new(
        id: impl Into<String>,
        context: impl Into<String>,
        data: impl Into<Vec<u8>>,
    ) -> Self {
        PeerMessage {
            id: id.into(),
            context: context.into(),
            data: data.into(),
        }
    }

    /// Our version message: `{ID:"im.cwtch.version", Context:"im.cwtch.getVal", Data:[2]}`.
    pub fn version_message() -> Self {
        PeerMessage::new(
            VERSION_MESSAGE_ID,
            VERSION_MESSAGE_CONTEXT,
            vec![OUR_WIRE_VERSION],
        )
    }

    /// If this is a version message, the version it announces.
    pub fn announced_version(&self) -> Option<u8> {
        if self.id == VERSION_MESSAGE_ID && self.context == VERSION_MESSAGE_CONTEXT {
            match self.data.as_slice() {
                [v] => Some(*v),
                _ => None,
            }
        } else {
            None
        }
    }

    /// An acknowledgement of the message with this id (empty Data).
    pub fn ack(id: impl Into<String>) -> Self {
        PeerMessage::new(id, CONTEXT_ACK, Vec::new())
    }

    /// V1: Go's `json.Marshal`, byte for byte (`Data` as padded std base64, `""` if empty).
    pub fn encode_v1(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(40 + self.id.len() + self.data.len() * 4 / 3);
        gojson::object(&mut out, |o| {
            o.str("ID", &self.id)
                .str("Context", &self.context)
                .bytes("Data", Some(&self.data));
        });
        out
    }

    /// V2: `ID|Context|Data`. Fails if the ID or context contains `|`.
    pub fn encode_v2(&self) -> Result<Vec<u8>, PeerMessageError> {
        let sep = V2_SEPARATOR as char;
        if self.id.contains(sep) || self.context.contains(sep) {
            return Err(PeerMessageError::SeparatorInField);
        }
        let mut out = Vec::with_capacity(self.id.len() + self.context.len() + self.data.len() + 2);
        out.extend_from_slice(self.id.as_bytes());
        out.push(V2_SEPARATOR);
        out.extend_from_slice(self.context.as_bytes());
        out.push(V2_SEPARATOR);
        out.extend_from_slice(&self.data);
        Ok(out)
    }

    /// Encode for a peer reading `version`. A message V2 cannot frame (a `|` in its ID or
    /// context, e.g. an ack of a peer-chosen ID) is sent in V1, which every peer that
    /// auto-detects reads (see [`v2_fallback_to_v1`]).
    pub fn encode(&self, version: WireVersion) -> Vec<u8> {
        match version {
            WireVersion::V1 => self.encode_v1(),
            WireVersion::V2 => self.encode_v2().unwrap_or_else(|_| v2_fallback_to_v1(self)),
        }
    }

    /// Decode V1 (Go JSON). `"Data":null` is an empty Data.
    pub fn decode_v1(payload: &[u8]) -> Result<PeerMessage, PeerMessageError> {
        let w: V1 = gojson::decode(payload).map_err(|_| PeerMessageError::NotV1)?;
        Ok(PeerMessage {
            id: w.id,
            context: w.context,
            data: w.data.unwrap_or_default(),
        })
    }

    /// Decode V2: split at the first two `|`; everything after the second is Data (and may
    /// contain `|`). ID and context bytes that are not UTF-8 are replaced as Go would print
    /// them (U+FFFD per bad byte).
    pub fn decode_v2(payload: &[u8]) -> Result<PeerMessage, PeerMessageError> {
        let first = payload
            .iter()
            .position(|&b| b == V2_SEPARATOR)
            .ok_or(PeerMessageError::NotV2)?;
        let rest = &payload[first + 1..];
        let second = rest
            .iter()
            .position(|&b| b == V2_SEPARATOR)
            .ok_or(PeerMessageError::NotV2)?;
        Ok(PeerMessage {
            id: gojson::go_lossy_utf8(&payload[..first]),
            context: gojson::go_lossy_utf8(&rest[..second]),
            data: rest[second + 1..].to_vec(),
        })
    }

    /// Decode either framing ([`detect_framing`]): a payload that starts with `{` and decodes
    /// as a V1 message is V1; anything else is V2.
    pub fn decode(payload: &[u8]) -> Result<(PeerMessage, WireVersion), PeerMessageError> {
        detect_framing(payload)
    }
}

/// The receive rule (UNCONFIRMED policy, spec §7.2): auto-detect. A payload starting with `{`
/// that parses as a V1 `PeerMessage` is V1, otherwise it is V2. V2 IDs are never JSON (Go's
/// are numbers, ours decimal), so the rule never misreads a real V2 message.
pub fn detect_framing(payload: &[u8]) -> Result<(PeerMessage, WireVersion), PeerMessageError> {
    if payload.first() == Some(&b'{') {
        if let Ok(m) = PeerMessage::decode_v1(payload) {
            return Ok((m, WireVersion::V1));
        }
    }
    PeerMessage::decode_v2(payload).map(|m| (m, WireVersion::V2))
}

/// What we send when V2 cannot frame a message (a `|` in its ID or context): V1. Our own IDs
/// and contexts never contain `|`; only acks and replies echoing a peer-chosen ID can.
pub fn v2_fallback_to_v1(m: &PeerMessage) -> Vec<u8> {
    m.encode_v1()
}

#[derive(Default)]
struct V1 {
    id: String,
    context: String,
    data: Option<Vec<u8>>,
}

impl GoDecode for V1 {
    fn decode_into(&mut self, d: &mut Decoder<'_>) -> Result<(), crate::Error> {
        d.fields(&["ID", "Context", "Data"], |d, i| match i {
            0 => d.string(&mut self.id),
            1 => d.string(&mut self.context),
            _ => d.bytes(&mut self.data),
        })
    }
}

/// The Data of a getVal request: Go's `peerGetVal{Scope, Path string}`,
/// `{"Scope":"public","Path":"profile.name"}` (spec §7.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GetVal {
    /// `Scope`: `public` (answered), `conversation` or `local` (never answered here).
    pub scope: String,
    /// `Path`, e.g. `profile.name`.
    pub path: String,
}

impl GetVal {
    /// A public attribute request.
    pub fn public(path: impl Into<String>) -> Self {
        GetVal {
            scope: SCOPE_PUBLIC.to_owned(),
            path: path.into(),
        }
    }

    /// Go JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        gojson::object(&mut out, |o| {
            o.str("Scope", &self.scope).str("Path", &self.path);
        });
        out
    }

    /// Decode Go JSON. Anything that does not decode (such as the version probe's `[0x02]`)
    /// is an error, and the request is ignored.
    pub fn from_json(json: &[u8]) -> Option<GetVal> {
        gojson::decode::<GetValJson>(json).ok().map(|g| g.0)
    }

    /// The profile attribute key this request names: `<scope>.<path>`.
    pub fn key(&self) -> String {
        format!("{}.{}", self.scope, self.path)
    }
}

#[derive(Default)]
struct GetValJson(GetVal);

impl GoDecode for GetValJson {
    fn decode_into(&mut self, d: &mut Decoder<'_>) -> Result<(), crate::Error> {
        d.fields(&["Scope", "Path"], |d, i| match i {
            0 => d.string(&mut self.0.scope),
            _ => d.string(&mut self.0.path),
        })
    }
}

/// The public attribute scope.
pub const SCOPE_PUBLIC: &str = "public";

/// The Data of a getVal reply: Go's `peerRetVal{Val string; Exists bool}`,
/// `{"Val":"Alice","Exists":true}` (spec §7.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetVal {
    /// `Val`.
    pub val: String,
    /// `Exists`.
    pub exists: bool,
}

impl RetVal {
    /// The reply for an attribute we do not disclose or do not have.
    pub fn missing() -> Self {
        RetVal::default()
    }

    /// Go JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        gojson::object(&mut out, |o| {
            o.str("Val", &self.val).bool("Exists", self.exists);
        });
        out
    }

    /// Decode Go JSON.
    pub fn from_json(json: &[u8]) -> Option<RetVal> {
        gojson::decode::<RetValJson>(json).ok().map(|r| r.0)
    }
}

#[derive(Default)]
struct RetValJson(RetVal);

impl GoDecode for RetValJson {
    fn decode_into(&mut self, d: &mut Decoder<'_>) -> Result<(), crate::Error> {
        d.fields(&["Val", "Exists"], |d, i| match i {
            0 => d.string(&mut self.0.val),
            _ => d.bool(&mut self.0.exists),
        })
    }
}

/// The public profile attributes requested from an accepted contact once a connection is
/// ready (spec §7.3; the list is recalled, UNCONFIRMED; `custom-profile-image` CONFIRMED as a
/// key name). Replies are stored as conversation attributes `public.<path>`.
pub const REQUESTED_PROFILE_ATTRIBUTES: [&str; 6] = [
    "profile.name",
    "profile.profile-status",
    "profile.profile-attribute-1",
    "profile.profile-attribute-2",
    "profile.profile-attribute-3",
    "profile.custom-profile-image",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_is_go_json() {
        let m = PeerMessage::new("123", CONTEXT_RAW, br#"{"o":1,"d":"hi"}"#.to_vec());
        assert_eq!(
            m.encode_v1(),
            br#"{"ID":"123","Context":"im.cwtch.raw","Data":"eyJvIjoxLCJkIjoiaGkifQ=="}"#
        );
        assert_eq!(PeerMessage::decode_v1(&m.encode_v1()).unwrap(), m);
        // Empty data is "" (Go's []byte{}); null decodes as empty.
        assert_eq!(
            PeerMessage::ack("7").encode_v1(),
            br#"{"ID":"7","Context":"im.cwtch.acknowledgement","Data":""}"#
        );
        let m = PeerMessage::decode_v1(br#"{"ID":"7","Context":"c","Data":null}"#).unwrap();
        assert!(m.data.is_empty());
        // Go's decoder: case-insensitive names, unknown fields ignored.
        let m = PeerMessage::decode_v1(br#"{"id":"7","CONTEXT":"c","x":1,"data":"AQ=="}"#).unwrap();
        assert_eq!(m, PeerMessage::new("7", "c", vec![1]));
        // HTML-safe escaping, as Go.
        assert_eq!(
            PeerMessage::new("<", "&", Vec::new()).encode_v1(),
            br#"{"ID":"\u003c","Context":"\u0026","Data":""}"#
        );
    }

    #[test]
    fn the_version_message() {
        let v = PeerMessage::version_message();
        assert_eq!(
            v.encode_v1(),
            br#"{"ID":"im.cwtch.version","Context":"im.cwtch.getVal","Data":"Ag=="}"#
        );
        assert_eq!(v.announced_version(), Some(2));
        // Old peers see a getVal whose Data is not JSON, and ignore it.
        assert_eq!(GetVal::from_json(&v.data), None);
        assert_eq!(WireVersion::from_announced(1), WireVersion::V1);
        assert_eq!(WireVersion::from_announced(3), WireVersion::V2);
    }

    #[test]
    fn v2_splits_at_the_first_two_separators() {
        let m = PeerMessage::decode_v2(b"42|im.cwtch.raw|a|b||").unwrap();
        assert_eq!(m, PeerMessage::new("42", CONTEXT_RAW, b"a|b||".to_vec()));
        assert_eq!(m.encode_v2().unwrap(), b"42|im.cwtch.raw|a|b||");
        assert_eq!(
            PeerMessage::decode_v2(b"||").unwrap(),
            PeerMessage::default()
        );
        assert_eq!(
            PeerMessage::decode_v2(b"no separators"),
            Err(PeerMessageError::NotV2)
        );
        assert_eq!(
            PeerMessage::decode_v2(b"one|"),
            Err(PeerMessageError::NotV2)
        );
        assert_eq!(
            PeerMessage::new("a|b", "c", Vec::new()).encode_v2(),
            Err(PeerMessageError::SeparatorInField)
        );
        // ... which `encode` sends as V1 instead.
        let odd = PeerMessage::ack("a|b");
        assert_eq!(odd.encode(WireVersion::V2), odd.encode_v1());
        assert_eq!(
            PeerMessage::decode(&odd.encode(WireVersion::V2)).unwrap().0,
            odd
        );
    }

    #[test]
    fn detection() {
        let m = PeerMessage::new("1", CONTEXT_RAW, br#"{"o":1,"d":"x"}"#.to_vec());
        assert_eq!(
            PeerMessage::decode(&m.encode_v1()).unwrap(),
            (m.clone(), WireVersion::V1)
        );
        assert_eq!(
            PeerMessage::decode(&m.encode_v2().unwrap()).unwrap(),
            (m.clone(), WireVersion::V2)
        );
        // Starts with '{' but is not a V1 message: read as V2.
        let odd = PeerMessage::new("{x", "c", b"d".to_vec());
        assert_eq!(
            PeerMessage::decode(&odd.encode_v2().unwrap()).unwrap(),
            (odd, WireVersion::V2)
        );
        assert!(PeerMessage::decode(b"{not json").is_err());
        assert!(PeerMessage::decode(b"").is_err());
    }

    #[test]
    fn chat_contexts() {
        assert!(is_chat_context(CONTEXT_RAW));
        assert!(is_chat_context("im.cwtch.something-new"));
        for c in [
            CONTEXT_ACK,
            CONTEXT_GET_VAL,
            CONTEXT_RET_VAL,
            FILE_SHARING_CONTEXTS[2],
        ] {
            assert!(!is_chat_context(c), "{c}");
        }
    }

    #[test]
    fn getval_and_retval_json() {
        let g = GetVal::public("profile.name");
        assert_eq!(g.to_json(), br#"{"Scope":"public","Path":"profile.name"}"#);
        assert_eq!(GetVal::from_json(&g.to_json()), Some(g.clone()));
        assert_eq!(g.key(), "public.profile.name");
        assert_eq!(GetVal::from_json(b"[2]"), None);
        assert_eq!(GetVal::from_json(&[2]), None);
        let r = RetVal {
            val: "Alice".into(),
            exists: true,
        };
        assert_eq!(r.to_json(), br#"{"Val":"Alice","Exists":true}"#);
        assert_eq!(RetVal::from_json(&r.to_json()), Some(r));
        assert_eq!(RetVal::missing().to_json(), br#"{"Val":"","Exists":false}"#);
        assert_eq!(RetVal::from_json(b"nope"), None);
    }
}
