//! The peer protocol on one authenticated connection, as a sans-IO state machine
//! (protocol.md §7.2, §7.3).
//!
//! A [`PeerSession`] is fed what arrives ([`PeerSession::receive`], and
//! [`PeerSession::negotiation_timed_out`] when the driver's version wait ends) and returns
//! [`Output`]s in order: payloads to transmit, and what happened for the peer library to act
//! on. The library answers through the session too ([`PeerSession::acknowledge`],
//! [`PeerSession::answer_attribute`], [`PeerSession::request_attributes`],
//! [`PeerSession::encode`]), so the framing (V1 or V2) and the bookkeeping of requests live in
//! one place.
//!
//! What the session decides: the negotiation (send our version message first in V1; the first
//! payload from the peer, or the end of the wait, ends it; a version message, even a late one,
//! raises the framing to V2), which context is a chat message, an acknowledgement, an attribute
//! request or reply, and which replies answer requests we made (at most
//! [`MAX_PENDING_GETVALS`] at once). What it leaves to the library: who may connect, whether
//! a contact is accepted or blocked, what is stored, and every IO and timer.
//!
//! Pure and total: no input makes it panic (property-tested here and fuzzed).

use std::collections::HashMap;
use std::fmt;

use super::wire::{
    is_chat_context, GetVal, PeerMessage, RetVal, WireVersion, CONTEXT_ACK, CONTEXT_GET_VAL,
    CONTEXT_RET_VAL, MAX_PEER_PAYLOAD, REQUESTED_PROFILE_ATTRIBUTES, SCOPE_PUBLIC,
};
use crate::files::FileMessage;

/// The scope of attributes that belong to one conversation (Go's `attr.ConversationScope`,
/// UNCONFIRMED spelling).
pub const SCOPE_CONVERSATION: &str = "conversation";
/// The zone of file-sharing attributes: a conversation-scoped getVal is answered only for
/// paths in it (`filesharing.<file key>.manifest.size`).
pub const FILE_SHARING_ZONE: &str = "filesharing.";

/// Most getVal requests awaiting a reply on one connection; further requests are not made
/// until replies come.
pub const MAX_PENDING_GETVALS: usize = 64;
/// Longest attribute path we answer (longer requests are answered `Exists:false`).
pub const MAX_ATTRIBUTE_PATH: usize = 256;
/// The attribute whose absence in a reply makes us ask again later: the contact had not
/// accepted us yet, and asks for ours once it does ([`PeerSession::answer_attribute`]).
const NAME_PATH: &str = "profile.name";

/// A message that does not fit one tapir packet in the connection's framing. It is an
/// error, never truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("peer message encodes to {len} bytes, more than a packet carries ({max})")]
pub struct TooLarge {
    /// Its encoded length.
    pub len: usize,
    /// The most a packet carries ([`MAX_PEER_PAYLOAD`]).
    pub max: usize,
}

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Our version message is out; nothing else is sent until the peer's first payload or
    /// the end of the wait.
    Negotiating,
    /// Messages flow.
    Ready,
}

/// Why a payload was dropped without anything for the library to do (for its logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ignored {
    /// A version message after the negotiation (it raised the framing, if it announced V2).
    VersionMessage,
    /// Not a peer message in any framing we read.
    Undecodable,
    /// A chat message without an ID (it could not be acknowledged nor de-duplicated).
    ChatWithoutId,
    /// A getVal whose Data is not a `GetVal` (such as an old peer's version probe).
    MalformedRequest,
    /// A retVal whose Data is not a `RetVal`.
    MalformedReply,
    /// A retVal for no request of ours (or one answered before).
    UnsolicitedReply,
    /// A reply that the attribute does not exist.
    AttributeMissing,
    /// A file-sharing message that does not parse (see [`crate::files::FileMessage::parse`]).
    MalformedFileMessage,
}

/// What the session returns, in the order the driver acts on it.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Write this payload to the connection (already framed; fits a packet).
    Transmit(Vec<u8>),
    /// The negotiation ended: from now on messages flow in this framing. The driver now
    /// registers the connection, asks an accepted contact for its attributes and sends its
    /// outbox. Returned once per session.
    Ready(WireVersion),
    /// A chat message (its ID is not empty). The library stores it, then acknowledges it with
    /// [`PeerSession::acknowledge`]; not acknowledged means the peer sends it again.
    Chat(PeerMessage),
    /// The peer has our message with this ID.
    Acknowledged(String),
    /// The peer asks for an attribute. `key` is the storage key (`public.<path>`), or `None`
    /// for a request we never answer (not public, empty or too long a path). The library
    /// answers with [`PeerSession::answer_attribute`], whatever it decides.
    AttributeRequested {
        /// The request's ID, to answer with.
        request_id: String,
        /// What is asked for, if we may answer it.
        key: Option<String>,
    },
    /// A file-sharing message (a request for, or a part of, a shared file).
    File(FileMessage),
    /// The peer's reply to one of our requests: its attribute `path` (e.g. `profile.name`)
    /// is `value`.
    AttributeReceived {
        /// The attribute's path, as we asked for it.
        path: String,
        /// Its value.
        value: String,
    },
    /// Nothing to do with this payload.
    Ignored(Ignored),
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Payloads, chat data and attribute values are content: never logged.
        match self {
            Output::Transmit(p) => f.debug_tuple("Transmit").field(&p.len()).finish(),
            Output::Ready(v) => f.debug_tuple("Ready").field(v).finish(),
            Output::Chat(m) => f.debug_tuple("Chat").field(m).finish(),
            Output::Acknowledged(id) => f.debug_tuple("Acknowledged").field(id).finish(),
            Output::AttributeRequested { request_id, key } => f
                .debug_struct("AttributeRequested")
                .field("request_id", request_id)
                .field("key", key)
                .finish(),
            Output::AttributeReceived { path, value } => f
                .debug_struct("AttributeReceived")
                .field("path", path)
                .field("value_len", &value.len())
                .finish(),
            Output::File(m) => f.debug_tuple("File").field(m).finish(),
            Output::Ignored(why) => f.debug_tuple("Ignored").field(why).finish(),
        }
    }
}

/// The peer protocol on one connection. See the module docs.
#[derive(Debug)]
pub struct PeerSession {
    /// Speak V1 only: no version message, no V2 (as peers before the V2 framing).
    legacy: bool,
    phase: Phase,
    version: WireVersion,
    /// Our getVal requests awaiting replies: request id → path.
    getvals: HashMap<String, String>,
    /// The peer answered `profile.name` with `Exists:false`: ask again when it next asks
    /// for one of ours (it does once it accepts us).
    refetch: bool,
}

impl PeerSession {
    /// A session on a freshly authenticated connection, and what to do first: transmit our
    /// version message (in V1), or, with `legacy_v1_only`, be ready at once in V1.
    pub fn start(legacy_v1_only: bool) -> (PeerSession, Vec<Output>) {
        let mut s = PeerSession {
            legacy: legacy_v1_only,
            phase: Phase::Negotiating,
            version: WireVersion::V1,
            getvals: HashMap::new(),
            refetch: false,
        };
        let first = if legacy_v1_only {
            s.phase = Phase::Ready;
            Output::Ready(WireVersion::V1)
        } else {
            Output::Transmit(PeerMessage::version_message().encode_v1())
        };
        (s, vec![first])
    }

    /// The framing our messages to this peer use now.
    pub fn version(&self) -> WireVersion {
        self.version
    }

    /// Whether the negotiation has ended.
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// How many of our getVal requests await replies.
    pub fn pending_requests(&self) -> usize {
        self.getvals.len()
    }

    /// The driver's wait for the peer's version message ended first: the peer is an old
    /// one, and reads V1.
    pub fn negotiation_timed_out(&mut self) -> Vec<Output> {
        match self.phase {
            Phase::Negotiating => {
                self.phase = Phase::Ready;
                vec![Output::Ready(self.version)]
            }
            Phase::Ready => Vec::new(),
        }
    }

    /// A payload arrived from the peer.
    pub fn receive(&mut self, payload: &[u8]) -> Vec<Output> {
        let decoded = if self.legacy {
            PeerMessage::decode_v1(payload)
        } else {
            PeerMessage::decode(payload).map(|(m, _)| m)
        };
        let mut out = Vec::new();
        if self.phase == Phase::Negotiating {
            // The first payload ends the negotiation, whatever it is: a peer that speaks first
            // without a version message is an old peer.
            self.phase = Phase::Ready;
            if let Some(v) = decoded
                .as_ref()
                .ok()
                .and_then(PeerMessage::announced_version)
            {
                self.version = WireVersion::from_announced(v);
                out.push(Output::Ready(self.version));
                return out;
            }
            out.push(Output::Ready(self.version));
        }
        match decoded {
            Ok(m) => out.push(self.dispatch(m)),
            Err(_) => out.push(Output::Ignored(Ignored::Undecodable)),
        }
        out
    }

    /// One decoded message, once ready.
    fn dispatch(&mut self, m: PeerMessage) -> Output {
        if !self.legacy {
            if let Some(v) = m.announced_version() {
                // A late version message (after the wait): the peer reads V2 after all.
                self.version = WireVersion::from_announced(v);
                return Output::Ignored(Ignored::VersionMessage);
            }
        }
        match m.context.as_str() {
            CONTEXT_ACK => Output::Acknowledged(m.id),
            CONTEXT_GET_VAL => match GetVal::from_json(&m.data) {
                None => Output::Ignored(Ignored::MalformedRequest),
                Some(req) => {
                    let sane = !req.path.is_empty() && req.path.len() <= MAX_ATTRIBUTE_PATH;
                    // Public attributes, and the conversation-scoped file-sharing ones
                    // (a shared file's manifest size: protocol.md §9.2).
                    let answerable = sane
                        && (req.scope == SCOPE_PUBLIC
                            || (req.scope == SCOPE_CONVERSATION
                                && req.path.starts_with(FILE_SHARING_ZONE)));
                    Output::AttributeRequested {
                        request_id: m.id,
                        key: answerable.then(|| req.key()),
                    }
                }
            },
            CONTEXT_RET_VAL => {
                let Some(path) = self.getvals.remove(&m.id) else {
                    return Output::Ignored(Ignored::UnsolicitedReply);
                };
                let Some(r) = RetVal::from_json(&m.data) else {
                    return Output::Ignored(Ignored::MalformedReply);
                };
                if !r.exists {
                    if path == NAME_PATH {
                        self.refetch = true;
                    }
                    return Output::Ignored(Ignored::AttributeMissing);
                }
                Output::AttributeReceived { path, value: r.val }
            }
            // `im.cwtch.raw`, and (as Go does, spec §7.3) any other context but file sharing.
            c if is_chat_context(c) => {
                if m.id.is_empty() {
                    Output::Ignored(Ignored::ChatWithoutId)
                } else {
                    Output::Chat(m)
                }
            }
            _ => match FileMessage::from_peer_message(m) {
                Ok(f) => Output::File(f),
                Err(_) => Output::Ignored(Ignored::MalformedFileMessage),
            },
        }
    }

    /// `m` framed for this peer. Too large is an error (never truncated).
    pub fn encode(&self, m: &PeerMessage) -> Result<Vec<u8>, TooLarge> {
        let payload = m.encode(self.version);
        if payload.len() > MAX_PEER_PAYLOAD {
            return Err(TooLarge {
                len: payload.len(),
                max: MAX_PEER_PAYLOAD,
            });
        }
        Ok(payload)
    }

    /// The acknowledgement of the peer's chat message `id`, once it is stored.
    pub fn acknowledge(&self, id: &str) -> Result<Vec<u8>, TooLarge> {
        self.encode(&PeerMessage::ack(id))
    }

    /// Ask the peer for its public profile attributes ([`REQUESTED_PROFILE_ATTRIBUTES`]),
    /// each request with an ID from `new_id` (unique, without `|`). Returns the payloads to
    /// transmit; fewer (or none) while [`MAX_PENDING_GETVALS`] requests await replies.
    pub fn request_attributes(&mut self, mut new_id: impl FnMut() -> String) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for path in REQUESTED_PROFILE_ATTRIBUTES {
            if self.getvals.len() >= MAX_PENDING_GETVALS {
                break;
            }
            let id = new_id();
            let m = PeerMessage::new(id.clone(), CONTEXT_GET_VAL, GetVal::public(path).to_json());
            // A request is a few dozen bytes; only an absurd id would not fit.
            if let Ok(p) = self.encode(&m) {
                self.getvals.insert(id, path.to_owned());
                out.push(p);
            }
        }
        out
    }

    /// Answer the peer's request `request_id` ([`Output::AttributeRequested`]) with `value`
    /// (`None`: `Exists:false`; so is a value too large for a packet). `accepted` says whether
    /// the peer is an accepted contact: if it is, and it had earlier told us it had no name
    /// for us, we ask for its attributes again now (a request for ours means it accepted us).
    /// Returns the payloads to transmit, the reply first.
    pub fn answer_attribute(
        &mut self,
        request_id: &str,
        value: Option<String>,
        accepted: bool,
        new_id: impl FnMut() -> String,
    ) -> Vec<Vec<u8>> {
        let reply = |r: RetVal| PeerMessage::new(request_id, CONTEXT_RET_VAL, r.to_json());
        let mut out = Vec::new();
        let answered = match value {
            Some(val) => self.encode(&reply(RetVal { val, exists: true })).ok(),
            None => None,
        };
        if let Some(p) = answered.or_else(|| self.encode(&reply(RetVal::missing())).ok()) {
            out.push(p);
        }
        if accepted && self.refetch {
            self.refetch = false;
            out.extend(self.request_attributes(new_id));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::peer::wire::CONTEXT_RAW;

    fn ids() -> impl FnMut() -> String {
        let mut n = 0u32;
        move || {
            n += 1;
            format!("r{n}")
        }
    }

    fn chat(id: &str, text: &str) -> PeerMessage {
        PeerMessage::new(
            id,
            CONTEXT_RAW,
            format!(r#"{{"o":1,"d":"{text}"}}"#).into_bytes(),
        )
    }

    fn negotiated(v: WireVersion) -> PeerSession {
        let (mut s, _) = PeerSession::start(false);
        let peer = match v {
            WireVersion::V2 => PeerMessage::version_message(),
            WireVersion::V1 => PeerMessage::new("im.cwtch.version", CONTEXT_GET_VAL, vec![1]),
        };
        assert_eq!(s.receive(&peer.encode_v1()), vec![Output::Ready(v)]);
        s
    }

    #[test]
    fn starts_with_the_version_message_in_v1() {
        let (s, out) = PeerSession::start(false);
        assert_eq!(
            out,
            vec![Output::Transmit(
                br#"{"ID":"im.cwtch.version","Context":"im.cwtch.getVal","Data":"Ag=="}"#.to_vec()
            )]
        );
        assert!(!s.is_ready());
        assert_eq!(s.version(), WireVersion::V1);
        let (s, out) = PeerSession::start(true);
        assert_eq!(out, vec![Output::Ready(WireVersion::V1)]);
        assert!(s.is_ready());
    }

    #[test]
    fn the_peers_version_message_makes_it_ready_in_v2() {
        let mut s = negotiated(WireVersion::V2);
        assert_eq!(
            s.encode(&PeerMessage::ack("1")).unwrap(),
            b"1|im.cwtch.acknowledgement|"
        );
        // A second version message changes nothing and is not a request.
        assert_eq!(
            s.receive(&PeerMessage::version_message().encode_v1()),
            vec![Output::Ignored(Ignored::VersionMessage)]
        );
        assert_eq!(s.version(), WireVersion::V2);
    }

    #[test]
    fn a_peer_announcing_v1_stays_v1() {
        let s = negotiated(WireVersion::V1);
        assert_eq!(
            s.encode(&PeerMessage::ack("1")).unwrap(),
            PeerMessage::ack("1").encode_v1()
        );
    }

    #[test]
    fn the_wait_ending_first_means_v1_and_a_late_version_message_raises_it() {
        let (mut s, _) = PeerSession::start(false);
        assert_eq!(
            s.negotiation_timed_out(),
            vec![Output::Ready(WireVersion::V1)]
        );
        assert_eq!(s.negotiation_timed_out(), vec![]);
        assert_eq!(s.version(), WireVersion::V1);
        s.receive(&PeerMessage::version_message().encode_v1());
        assert_eq!(s.version(), WireVersion::V2);
    }

    #[test]
    fn an_old_peer_speaking_first_is_ready_in_v1_then_heard() {
        let (mut s, _) = PeerSession::start(false);
        let m = chat("7", "hi");
        assert_eq!(
            s.receive(&m.encode_v1()),
            vec![Output::Ready(WireVersion::V1), Output::Chat(m)]
        );
        let (mut s, _) = PeerSession::start(false);
        assert_eq!(
            s.receive(b"\x00garbage"),
            vec![
                Output::Ready(WireVersion::V1),
                Output::Ignored(Ignored::Undecodable)
            ]
        );
    }

    #[test]
    fn legacy_reads_v1_only_and_ignores_version_messages() {
        let (mut s, _) = PeerSession::start(true);
        assert_eq!(
            s.receive(&PeerMessage::version_message().encode_v1()),
            vec![Output::Ignored(Ignored::MalformedRequest)]
        );
        assert_eq!(s.version(), WireVersion::V1);
        let m = chat("7", "hi");
        assert_eq!(
            s.receive(&m.encode_v2().unwrap()),
            vec![Output::Ignored(Ignored::Undecodable)]
        );
        assert_eq!(s.receive(&m.encode_v1()), vec![Output::Chat(m)]);
    }

    #[test]
    fn contexts() {
        let mut s = negotiated(WireVersion::V2);
        let m = chat("7", "hi");
        assert_eq!(s.receive(&m.encode_v2().unwrap()), vec![Output::Chat(m)]);
        // Any unknown context is chat too (as Go); file sharing is not.
        let odd = PeerMessage::new("8", "im.cwtch.future", b"x".to_vec());
        assert_eq!(s.receive(&odd.encode_v1()), vec![Output::Chat(odd)]);
        let file = PeerMessage::new("9", "im.cwtch.file.request.chunk", b"x".to_vec());
        assert_eq!(
            s.receive(&file.encode_v1()),
            vec![Output::Ignored(Ignored::MalformedFileMessage)]
        );
        let key = crate::files::FileKey {
            root_hash: [1; 64],
            nonce: [2; 24],
        };
        let ask = FileMessage::RequestChunks {
            key,
            spec: "0:3".into(),
        };
        assert_eq!(
            s.receive(&ask.to_peer_message().encode_v1()),
            vec![Output::File(ask)]
        );
        assert_eq!(
            s.receive(&chat("", "no id").encode_v1()),
            vec![Output::Ignored(Ignored::ChatWithoutId)]
        );
        assert_eq!(
            s.receive(&PeerMessage::ack("42").encode_v1()),
            vec![Output::Acknowledged("42".into())]
        );
    }

    #[test]
    fn attribute_requests_are_checked_before_the_library_sees_them() {
        let mut s = negotiated(WireVersion::V1);
        let ask = |id: &str, scope: &str, path: &str| {
            let json = format!(r#"{{"Scope":"{scope}","Path":"{path}"}}"#);
            PeerMessage::new(id, CONTEXT_GET_VAL, json.into_bytes()).encode_v1()
        };
        assert_eq!(
            s.receive(&ask("1", "public", "profile.name")),
            vec![Output::AttributeRequested {
                request_id: "1".into(),
                key: Some("public.profile.name".into())
            }]
        );
        assert_eq!(
            s.receive(&ask("5", "conversation", "filesharing.abc.manifest.size")),
            vec![Output::AttributeRequested {
                request_id: "5".into(),
                key: Some("conversation.filesharing.abc.manifest.size".into())
            }]
        );
        for (scope, path) in [
            ("conversation", "profile.name"),
            ("local", "profile.name"),
            ("public", ""),
            ("public", &"x".repeat(MAX_ATTRIBUTE_PATH + 1)),
        ] {
            assert_eq!(
                s.receive(&ask("2", scope, path)),
                vec![Output::AttributeRequested {
                    request_id: "2".into(),
                    key: None
                }],
                "{scope} {path}"
            );
        }
        assert_eq!(
            s.receive(&PeerMessage::new("3", CONTEXT_GET_VAL, b"[2]".to_vec()).encode_v1()),
            vec![Output::Ignored(Ignored::MalformedRequest)]
        );
        // Answers: the value, or Exists:false.
        assert_eq!(
            s.answer_attribute("1", Some("Alice".into()), true, ids()),
            vec![PeerMessage::new(
                "1",
                CONTEXT_RET_VAL,
                br#"{"Val":"Alice","Exists":true}"#.to_vec()
            )
            .encode_v1()]
        );
        assert_eq!(
            s.answer_attribute("2", None, false, ids()),
            vec![PeerMessage::new("2", CONTEXT_RET_VAL, RetVal::missing().to_json()).encode_v1()]
        );
        // A value too large for a packet is answered as missing, not dropped.
        assert_eq!(
            s.answer_attribute("4", Some("x".repeat(MAX_PEER_PAYLOAD)), true, ids()),
            vec![PeerMessage::new("4", CONTEXT_RET_VAL, RetVal::missing().to_json()).encode_v1()]
        );
    }

    #[test]
    fn replies_match_our_requests_once() {
        let mut s = negotiated(WireVersion::V2);
        let asked = s.request_attributes(ids());
        assert_eq!(asked.len(), REQUESTED_PROFILE_ATTRIBUTES.len());
        assert_eq!(
            asked[0],
            b"r1|im.cwtch.getVal|{\"Scope\":\"public\",\"Path\":\"profile.name\"}"
        );
        assert_eq!(s.pending_requests(), REQUESTED_PROFILE_ATTRIBUTES.len());
        let reply = |id: &str, r: RetVal| {
            PeerMessage::new(id, CONTEXT_RET_VAL, r.to_json())
                .encode_v2()
                .unwrap()
        };
        let alice = RetVal {
            val: "Alice".into(),
            exists: true,
        };
        assert_eq!(
            s.receive(&reply("r1", alice.clone())),
            vec![Output::AttributeReceived {
                path: "profile.name".into(),
                value: "Alice".into()
            }]
        );
        assert_eq!(
            s.receive(&reply("r1", alice.clone())),
            vec![Output::Ignored(Ignored::UnsolicitedReply)]
        );
        assert_eq!(
            s.receive(&reply("nope", alice)),
            vec![Output::Ignored(Ignored::UnsolicitedReply)]
        );
        assert_eq!(
            s.receive(&PeerMessage::new("r2", CONTEXT_RET_VAL, b"x".to_vec()).encode_v1()),
            vec![Output::Ignored(Ignored::MalformedReply)]
        );
        assert_eq!(s.pending_requests(), REQUESTED_PROFILE_ATTRIBUTES.len() - 2);
    }

    #[test]
    fn no_name_yet_means_ask_again_when_they_ask_us_while_accepted() {
        let mut s = negotiated(WireVersion::V1);
        s.request_attributes(ids());
        let missing = PeerMessage::new("r1", CONTEXT_RET_VAL, RetVal::missing().to_json());
        assert_eq!(
            s.receive(&missing.encode_v1()),
            vec![Output::Ignored(Ignored::AttributeMissing)]
        );
        // Not accepted: only the answer, and the refetch waits.
        assert_eq!(s.answer_attribute("q", None, false, ids()).len(), 1);
        let mut fresh = ids();
        for _ in 0..100 {
            fresh();
        }
        let out = s.answer_attribute("q", None, true, fresh);
        assert_eq!(out.len(), 1 + REQUESTED_PROFILE_ATTRIBUTES.len());
        // Once only.
        assert_eq!(s.answer_attribute("q", None, true, ids()).len(), 1);
        // A missing attribute other than the name does not cause a refetch.
        let mut s = negotiated(WireVersion::V1);
        s.request_attributes(ids());
        let missing = PeerMessage::new("r2", CONTEXT_RET_VAL, RetVal::missing().to_json());
        s.receive(&missing.encode_v1());
        assert_eq!(s.answer_attribute("q", None, true, ids()).len(), 1);
    }

    #[test]
    fn pending_requests_are_capped() {
        let mut s = negotiated(WireVersion::V1);
        let mut id = ids();
        let mut sent = 0;
        for _ in 0..20 {
            sent += s.request_attributes(&mut id).len();
        }
        assert_eq!(sent, MAX_PENDING_GETVALS);
        assert_eq!(s.pending_requests(), MAX_PENDING_GETVALS);
        assert!(s.request_attributes(&mut id).is_empty());
    }

    #[test]
    fn too_large_is_an_error_in_the_peers_framing() {
        let v2 = negotiated(WireVersion::V2);
        let v1 = negotiated(WireVersion::V1);
        // Fits V2 exactly, but not V1 (base64 and JSON).
        let m = PeerMessage::new("1", CONTEXT_RAW, vec![b'x'; MAX_PEER_PAYLOAD - 15]);
        assert_eq!(v2.encode(&m).unwrap().len(), MAX_PEER_PAYLOAD);
        let e = v1.encode(&m).unwrap_err();
        assert!(e.len > MAX_PEER_PAYLOAD && e.max == MAX_PEER_PAYLOAD);
        let long_id = "<".repeat(MAX_PEER_PAYLOAD / 2);
        assert!(v1.acknowledge(&long_id).is_err());
        assert!(v2.acknowledge(&long_id).is_ok());
    }

    #[test]
    fn outputs_never_show_content() {
        let out = format!(
            "{:?}",
            vec![
                Output::Transmit(b"secret".to_vec()),
                Output::Chat(chat("1", "secret")),
                Output::AttributeReceived {
                    path: "profile.name".into(),
                    value: "secret".into()
                }
            ]
        );
        assert!(!out.contains("secret"), "{out}");
    }

    proptest! {
        /// Any sequence of payloads: no panic, exactly one `Ready` (first, if any output),
        /// transmitted payloads fit a packet, and the pending requests stay capped.
        #[test]
        fn any_payloads(
            legacy: bool,
            payloads in proptest::collection::vec(
                prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..64),
                    (any::<u8>(), "[a-z0-9<|]{0,8}", "[a-z.]{0,24}", proptest::collection::vec(any::<u8>(), 0..32))
                        .prop_map(|(k, id, ctx, data)| {
                            let ctx = match k % 5 {
                                0 => CONTEXT_ACK.to_owned(),
                                1 => CONTEXT_GET_VAL.to_owned(),
                                2 => CONTEXT_RET_VAL.to_owned(),
                                3 => CONTEXT_RAW.to_owned(),
                                _ => ctx,
                            };
                            let m = PeerMessage::new(id, ctx, data);
                            if k % 2 == 0 { m.encode_v1() } else { m.encode(WireVersion::V2) }
                        }),
                ],
                0..24,
            ),
            ask_every in 1usize..5,
        ) {
            let (mut s, first) = PeerSession::start(legacy);
            let mut readies = first.iter().filter(|o| matches!(o, Output::Ready(_))).count();
            let mut id = ids();
            for (i, p) in payloads.iter().enumerate() {
                let out = s.receive(p);
                prop_assert!(s.is_ready());
                for (j, o) in out.iter().enumerate() {
                    if let Output::Ready(_) = o {
                        readies += 1;
                        prop_assert_eq!(j, 0);
                    }
                    if let Output::AttributeRequested { request_id, .. } = o {
                        for t in s.answer_attribute(request_id, Some("v".into()), true, &mut id) {
                            prop_assert!(t.len() <= MAX_PEER_PAYLOAD);
                        }
                    }
                    if let Output::Chat(m) = o {
                        prop_assert!(!m.id.is_empty());
                    }
                }
                if i % ask_every == 0 {
                    for t in s.request_attributes(&mut id) {
                        prop_assert!(t.len() <= MAX_PEER_PAYLOAD);
                    }
                }
                prop_assert!(s.pending_requests() <= MAX_PENDING_GETVALS);
            }
            prop_assert_eq!(readies, usize::from(legacy || !payloads.is_empty()));
        }
    }
}
