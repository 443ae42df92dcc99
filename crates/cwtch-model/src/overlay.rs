//! Message overlays: the application JSON carried in `im.cwtch.raw` peer messages and in group
//! `Text` (protocol.md §7.5).

use torv3::safelog::Sensitive;

use crate::gojson::{self, Decoder, GoDecode, GoJson};
use crate::Error;

/// Overlay 1: a text chat message; `d` is the text (CONFIRMED, protocol.md §7.5).
pub const OVERLAY_CHAT: i64 = 1;
/// Overlay 10: a quoted reply; `d` is JSON `{"quotedHash":"<b64>","body":"…"}` (CONFIRMED).
pub const OVERLAY_QUOTED_REPLY: i64 = 10;
/// Overlay 100: a contact suggestion; `d` is a 56-character onion (CONFIRMED).
pub const OVERLAY_INVITE_CONTACT: i64 = 100;
/// Overlay 101: a group invite; `d` is a `tofubundle:` string (CONFIRMED).
pub const OVERLAY_INVITE_GROUP: i64 = 101;
/// Overlay 200: a file share; `d` is JSON `{"f","h","n","s"}` (CONFIRMED).
pub const OVERLAY_FILE_SHARING: i64 = 200;

/// The overlay wrapper (Go `model.MessageWrapper`: `Overlay int` tagged `o`, `Data string`
/// tagged `d`): `{"o":1,"d":"…"}`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct MessageWrapper {
    /// `o`: the overlay number (`OVERLAY_*`).
    pub overlay: i64,
    /// `d`: the overlay's data.
    pub data: String,
}

impl std::fmt::Debug for MessageWrapper {
    /// The data (message content) only with unsafe logging on.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageWrapper")
            .field("overlay", &self.overlay)
            .field("data", &Sensitive(&self.data))
            .finish()
    }
}

impl MessageWrapper {
    /// A wrapper for `data` with overlay `overlay`.
    pub fn new(overlay: i64, data: impl Into<String>) -> Self {
        MessageWrapper {
            overlay,
            data: data.into(),
        }
    }

    /// Go's `json.Marshal` of the wrapper.
    pub fn to_json(&self) -> Vec<u8> {
        self.to_go_json()
    }

    /// Decode Go JSON.
    pub fn from_json(json: &[u8]) -> Result<Self, Error> {
        gojson::decode(json)
    }
}

impl GoJson for MessageWrapper {
    fn write_go_json(&self, out: &mut Vec<u8>) {
        gojson::object(out, |o| {
            o.i64("o", self.overlay).str("d", &self.data);
        });
    }
}

impl GoDecode for MessageWrapper {
    fn decode_into(&mut self, d: &mut Decoder<'_>) -> Result<(), Error> {
        d.fields(&["o", "d"], |d, i| match i {
            0 => d.i64(&mut self.overlay),
            _ => d.string(&mut self.data),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_form() {
        let m = MessageWrapper::new(OVERLAY_CHAT, "hi <b> & \u{2028}");
        assert_eq!(
            m.to_json(),
            br#"{"o":1,"d":"hi \u003cb\u003e \u0026 \u2028"}"#
        );
        assert_eq!(MessageWrapper::from_json(&m.to_json()).unwrap(), m);
        // Go's quoted-reply example (protocol.md §7.5).
        let q = br#"{"o":10,"d":"{\"quotedHash\":\"abc=\",\"body\":\"quoted for you\"}"}"#;
        let m = MessageWrapper::from_json(q).unwrap();
        assert_eq!(m.overlay, OVERLAY_QUOTED_REPLY);
        assert_eq!(m.data, r#"{"quotedHash":"abc=","body":"quoted for you"}"#);
        assert_eq!(m.to_json(), q);
        // Tag names match case-insensitively, unknown fields are ignored.
        let m = MessageWrapper::from_json(br#"{"D":"x","l":"list","O":200}"#).unwrap();
        assert_eq!(m, MessageWrapper::new(OVERLAY_FILE_SHARING, "x"));
        assert!(MessageWrapper::from_json(br#"{"o":"1","d":"x"}"#).is_err());
        assert!(!format!("{m:?}").contains("\"x\""), "{m:?}");
    }
}
