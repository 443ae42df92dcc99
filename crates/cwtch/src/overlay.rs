//! Message overlays: what the body of a chat message means (protocol.md §7.5).
//!
//! A body is the overlay wrapper `{"o":<overlay>,"d":"<data>"}` (cwtch-model's
//! [`MessageWrapper`]). This library understands overlays 1 (text), 10 (quoted reply), 100
//! (contact suggestion) and 101 (group invite). Everything else — another overlay number, a
//! wrapper that is not JSON, a quoted reply whose `d` is not the expected JSON, a suggestion that is not an onion —
//! is [`Content::Malformed`]: stored as received and surfaced with `malformed: true`, never a
//! crash and never dropped. Should parsing itself fail (a bug below us, such as the onion
//! parser's panic on base32 padding, fixed in torv3), the body is
//! [`MalformedReason::Unparseable`] and shown raw, both when it arrives and whenever its
//! conversation is listed.

use cwtch_model::gojson::GoJson;
use cwtch_model::gojson::{self, Decoder, GoDecode};
use cwtch_model::overlay::{
    OVERLAY_CHAT, OVERLAY_FILE_SHARING, OVERLAY_INVITE_CONTACT, OVERLAY_INVITE_GROUP,
    OVERLAY_QUOTED_REPLY,
};
use cwtch_model::MessageWrapper;
use serde::{Deserialize, Serialize};
use torv3::Onion;
use tracing::error;

use crate::error::Error;

/// Longest peer-to-peer text message, in characters (Unicode scalar values): the Cwtch UI's
/// `P2PMessageLengthMax` (CONFIRMED, spec §2.3 and §7.5). Longer text is an error, never cut.
pub const P2P_TEXT_MAX_CHARS: usize = 7000;

pub use cwtch_model::overlay::{
    OVERLAY_CHAT as TEXT, OVERLAY_INVITE_CONTACT as CONTACT_SUGGESTION,
    OVERLAY_INVITE_GROUP as GROUP_INVITE, OVERLAY_QUOTED_REPLY as QUOTED_REPLY,
};

/// The meaning of a message body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Content {
    /// Overlay 1: text.
    Text {
        /// The text.
        text: String,
    },
    /// Overlay 10: a reply quoting another message by its content hash.
    QuotedReply {
        /// The quoted message's content hash (base64).
        quoted_hash: String,
        /// The reply's text.
        body: String,
    },
    /// Overlay 100: a suggested contact.
    ContactSuggestion {
        /// The suggested address.
        onion: String,
    },
    /// Overlay 101: an invite to a group, `tofubundle:server:<bundle>||torv3<invite>` (or a
    /// bare `torv3` invite), checked to parse and to name its group correctly.
    GroupInvite {
        /// The invite as sent (what `cwtch group join` takes).
        invite: String,
    },
    /// Overlay 200: a file offered for download (`cwtch_model::files::FileShare`).
    FileShare {
        /// The file's name as the sharer suggests it (made safe before anything is written).
        name: String,
        /// The file key (`<hex root hash>.<hex nonce>`): what a download names.
        file_key: String,
        /// The file's size in bytes.
        size: u64,
    },
    /// Anything else: another overlay, or a body that does not parse.
    Malformed {
        /// The overlay number, if the wrapper parsed.
        overlay: Option<i64>,
        /// Why it is malformed.
        reason: MalformedReason,
    },
}

/// Why a body is [`Content::Malformed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MalformedReason {
    /// Not an overlay wrapper `{"o":…,"d":…}`.
    NotAWrapper,
    /// An overlay this library does not understand.
    UnknownOverlay,
    /// A known overlay whose data does not parse (a quoted reply that is not
    /// `{"quotedHash","body"}` JSON, a suggestion that is not an onion).
    BadData,
    /// Parsing it failed unexpectedly (a panic: a bug in this library or below it, logged);
    /// the body is shown raw.
    Unparseable,
}

impl Content {
    /// Text content.
    pub fn text(text: impl Into<String>) -> Content {
        Content::Text { text: text.into() }
    }

    /// Parse a body. Never fails and never panics: what is not understood is
    /// [`Content::Malformed`].
    pub fn parse(body: &str) -> Content {
        // Bodies come from peers, or from storage (where a peer's body stays for good): a
        // bug in a parser below must cost neither the connection it arrived on nor every
        // listing of its conversation. Parsing is a pure function of `body`: a panic leaves
        // nothing half-updated.
        std::panic::catch_unwind(|| parse_unguarded(body)).unwrap_or_else(|_| {
            error!("parsing a message body panicked (a bug); showing it raw");
            Content::Malformed {
                overlay: None,
                reason: MalformedReason::Unparseable,
            }
        })
    }

    /// The overlay number, if known.
    pub fn overlay(&self) -> Option<i64> {
        match self {
            Content::Text { .. } => Some(OVERLAY_CHAT),
            Content::QuotedReply { .. } => Some(OVERLAY_QUOTED_REPLY),
            Content::ContactSuggestion { .. } => Some(OVERLAY_INVITE_CONTACT),
            Content::GroupInvite { .. } => Some(OVERLAY_INVITE_GROUP),
            Content::FileShare { .. } => Some(OVERLAY_FILE_SHARING),
            Content::Malformed { overlay, .. } => *overlay,
        }
    }

    /// Whether the body was not understood.
    pub fn is_malformed(&self) -> bool {
        matches!(self, Content::Malformed { .. })
    }

    /// The human-readable text: the text, the reply's body, the suggested onion; `None` when
    /// malformed.
    pub fn display_text(&self) -> Option<&str> {
        match self {
            Content::Text { text } => Some(text),
            Content::QuotedReply { body, .. } => Some(body),
            Content::ContactSuggestion { onion } => Some(onion),
            Content::GroupInvite { invite } => Some(invite),
            Content::FileShare { name, .. } => Some(name),
            Content::Malformed { .. } => None,
        }
    }

    /// The id of the group an invite (overlay 101) names: the `group_id` its group
    /// conversation has once the invite is stored or joined. `None` for other content.
    pub fn invited_group_id(&self) -> Option<String> {
        let Content::GroupInvite { invite } = self else {
            return None;
        };
        let (_, invite) = crate::groups::parse_invite(invite).ok()?;
        let group = cwtch_model::group::Group::from_invite(&invite).ok()?;
        Some(group.id().to_string())
    }

    /// The quoted hash of a reply.
    pub fn quoted_hash(&self) -> Option<&str> {
        match self {
            Content::QuotedReply { quoted_hash, .. } => Some(quoted_hash),
            _ => None,
        }
    }

    /// The body Go would send for this content (Go JSON of the wrapper). Checks the text
    /// limit ([`P2P_TEXT_MAX_CHARS`]) and that a suggestion is an onion; malformed content
    /// cannot be produced.
    pub fn to_body(&self) -> Result<String, Error> {
        let w = match self {
            Content::Text { text } => {
                check_text_len(text)?;
                MessageWrapper::new(OVERLAY_CHAT, text.clone())
            }
            Content::QuotedReply { quoted_hash, body } => {
                check_text_len(body)?;
                let mut d = Vec::new();
                gojson::object(&mut d, |o| {
                    o.str("quotedHash", quoted_hash).str("body", body);
                });
                MessageWrapper::new(OVERLAY_QUOTED_REPLY, lossless_utf8(d)?)
            }
            Content::ContactSuggestion { onion } => {
                let onion = Onion::parse(onion).map_err(Error::InvalidAddress)?;
                MessageWrapper::new(OVERLAY_INVITE_CONTACT, onion.as_str())
            }
            Content::GroupInvite { invite } => {
                crate::groups::parse_invite(invite)?;
                MessageWrapper::new(OVERLAY_INVITE_GROUP, invite.as_str())
            }
            Content::FileShare {
                name,
                file_key,
                size,
            } => {
                let key = cwtch_model::files::FileKey::parse(file_key)
                    .map_err(|_| Error::Invalid { what: "file key" })?;
                let share = cwtch_model::files::FileShare::for_key(name, &key, *size);
                MessageWrapper::new(OVERLAY_FILE_SHARING, lossless_utf8(share.to_go_json())?)
            }
            Content::Malformed { .. } => return Err(Error::Invalid { what: "content" }),
        };
        lossless_utf8(w.to_json())
    }
}

/// [`Content::parse`] without its panic boundary.
fn parse_unguarded(body: &str) -> Content {
    #[cfg(test)]
    crate::fault::on_parse(body);
    let Ok(w) = MessageWrapper::from_json(body.as_bytes()) else {
        return Content::Malformed {
            overlay: None,
            reason: MalformedReason::NotAWrapper,
        };
    };
    let bad = |reason| Content::Malformed {
        overlay: Some(w.overlay),
        reason,
    };
    match w.overlay {
        OVERLAY_CHAT => Content::Text { text: w.data },
        // A quoted reply must be a JSON object (the UI reads it as a map; `null` is not).
        OVERLAY_QUOTED_REPLY if !w.data.trim_start().starts_with('{') => {
            bad(MalformedReason::BadData)
        }
        OVERLAY_QUOTED_REPLY => match gojson::decode::<QuotedJson>(w.data.as_bytes()) {
            Ok(QuotedJson { hash, body }) => Content::QuotedReply {
                quoted_hash: hash,
                body,
            },
            Err(_) => bad(MalformedReason::BadData),
        },
        OVERLAY_INVITE_CONTACT => match Onion::parse(&w.data) {
            Ok(onion) => Content::ContactSuggestion {
                onion: onion.as_str().to_owned(),
            },
            Err(_) => bad(MalformedReason::BadData),
        },
        OVERLAY_INVITE_GROUP => match crate::groups::parse_invite(&w.data) {
            Ok(_) => Content::GroupInvite { invite: w.data },
            Err(_) => bad(MalformedReason::BadData),
        },
        OVERLAY_FILE_SHARING => match cwtch_model::files::FileShare::parse(w.data.as_bytes()) {
            Ok(f) => match f.key() {
                Ok(key) => Content::FileShare {
                    name: f.name,
                    file_key: key.to_string(),
                    size: f.size,
                },
                Err(_) => bad(MalformedReason::BadData),
            },
            Err(_) => bad(MalformedReason::BadData),
        },
        _ => bad(MalformedReason::UnknownOverlay),
    }
}

/// The wrapper JSON for any overlay number and data (for bots and overlays this library does
/// not model).
pub fn wrap(overlay: i64, data: &str) -> Result<String, Error> {
    lossless_utf8(MessageWrapper::new(overlay, data).to_json())
}

/// Refuse text over [`P2P_TEXT_MAX_CHARS`].
pub fn check_text_len(text: &str) -> Result<(), Error> {
    let chars = text.chars().count();
    if chars > P2P_TEXT_MAX_CHARS {
        return Err(Error::MessageTooLong {
            chars,
            max: P2P_TEXT_MAX_CHARS,
        });
    }
    Ok(())
}

// Go JSON of Rust strings is always UTF-8; this only guards the invariant.
fn lossless_utf8(b: Vec<u8>) -> Result<String, Error> {
    String::from_utf8(b).map_err(|_| Error::Invalid { what: "content" })
}

#[derive(Default)]
struct QuotedJson {
    hash: String,
    body: String,
}

impl GoDecode for QuotedJson {
    fn decode_into(&mut self, d: &mut Decoder<'_>) -> Result<(), cwtch_model::Error> {
        d.fields(&["quotedHash", "body"], |d, i| match i {
            0 => d.string(&mut self.hash),
            _ => d.string(&mut self.body),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOB: &str = "pjurzypqui3dnpxj6aemk6cqz22yx6zfr5lq4jzu7muwe2yyx2zrnzyd";

    #[test]
    fn produced_like_go() {
        assert_eq!(
            Content::text("hi <3").to_body().unwrap(),
            r#"{"o":1,"d":"hi \u003c3"}"#
        );
        // Go's quoted-reply example (protocol.md §7.5).
        let q = Content::QuotedReply {
            quoted_hash: "abc=".into(),
            body: "quoted for you".into(),
        };
        assert_eq!(
            q.to_body().unwrap(),
            r#"{"o":10,"d":"{\"quotedHash\":\"abc=\",\"body\":\"quoted for you\"}"}"#
        );
        assert_eq!(Content::parse(&q.to_body().unwrap()), q);
        let s = Content::ContactSuggestion { onion: BOB.into() };
        assert_eq!(s.to_body().unwrap(), format!(r#"{{"o":100,"d":"{BOB}"}}"#));
        assert!(Content::ContactSuggestion { onion: "x".into() }
            .to_body()
            .is_err());
    }

    /// Overlay 101: a group invite that parses and names its group correctly is understood,
    /// anything else under 101 is malformed (and never joins anything).
    #[test]
    fn group_invites() {
        use cwtch_model::group::Group;
        use cwtch_model::KeyBundle;
        let mut rng = rand_core::OsRng;
        let board = torv3::Identity::generate(&mut rng);
        let tokens = torv3::Identity::generate(&mut rng);
        let mut kb = KeyBundle::new_server_bundle(&board.onion(), &tokens.onion(), &[0xe2; 32]);
        kb.sign(&board);
        let group = Group::generate(&mut rng, board.onion());
        let invite = format!(
            "tofubundle:{}||{}",
            kb.to_server_string(),
            group.invite("g".into()).to_invite_string()
        );
        let c = Content::GroupInvite {
            invite: invite.clone(),
        };
        let body = c.to_body().unwrap();
        assert_eq!(Content::parse(&body), c);
        assert_eq!(c.overlay(), Some(101));
        // It names its group (what its conversation shows as group_id), bare or bundled.
        let id = group.id().to_string();
        assert_eq!(c.invited_group_id().as_deref(), Some(id.as_str()));
        let bare_c = Content::GroupInvite {
            invite: group.invite("g".into()).to_invite_string(),
        };
        assert_eq!(bare_c.invited_group_id().as_deref(), Some(id.as_str()));
        assert_eq!(Content::text("x").invited_group_id(), None);
        // A bare torv3 invite is understood too; a tampered one is not.
        let bare = group.invite("g".into()).to_invite_string();
        assert!(matches!(
            Content::parse(&wrap(101, &bare).unwrap()),
            Content::GroupInvite { .. }
        ));
        let mut bad = invite.clone();
        bad.truncate(bad.len() - 8);
        assert_eq!(
            Content::parse(&wrap(101, &bad).unwrap()),
            Content::Malformed {
                overlay: Some(101),
                reason: MalformedReason::BadData
            }
        );
        assert!(Content::GroupInvite { invite: bad }.to_body().is_err());
    }

    #[test]
    fn the_text_limit() {
        assert!(Content::text("é".repeat(P2P_TEXT_MAX_CHARS))
            .to_body()
            .is_ok());
        assert!(matches!(
            Content::text("a".repeat(P2P_TEXT_MAX_CHARS + 1)).to_body(),
            Err(Error::MessageTooLong {
                chars: 7001,
                max: 7000
            })
        ));
    }

    #[test]
    fn malformed_bodies() {
        let m = |body: &str| Content::parse(body);
        assert_eq!(
            m("hello"),
            Content::Malformed {
                overlay: None,
                reason: MalformedReason::NotAWrapper
            }
        );
        assert_eq!(
            m(r#"{"o":999,"d":"x"}"#),
            Content::Malformed {
                overlay: Some(999),
                reason: MalformedReason::UnknownOverlay
            }
        );
        assert_eq!(
            m(r#"{"o":10,"d":"not json"}"#),
            Content::Malformed {
                overlay: Some(10),
                reason: MalformedReason::BadData
            }
        );
        assert_eq!(m(r#"{"o":10,"d":"[1]"}"#).overlay(), Some(10));
        assert!(m(r#"{"o":10,"d":"[1]"}"#).is_malformed());
        assert!(m(r#"{"o":10,"d":"null"}"#).is_malformed());
        assert!(m(r#"{"o":100,"d":"nope"}"#).is_malformed());
        // Group invites and file shares are not understood here.
        assert!(m(r#"{"o":101,"d":"tofubundle:x"}"#).is_malformed());
        assert_eq!(m(r#"{"o":1,"d":"x"}"#).display_text(), Some("x"));
    }
}
