//! Token-board messages between a client and a Cwtch server (Go `cwtch.im/cwtch/protocol/groups`,
//! protocol.md §5.2).
//!
//! Every packet on the token board after authentication is one [`Message`], except the replayed
//! messages after a `ReplayResult`, which are bare [`EncryptedGroupMessage`]s.
//!
//! A [`Message`] mirrors the Go struct: a type and five optional payloads. Go servers switch on
//! `MessageType`, close the connection when the payload for that type is missing and ignore
//! types they do not know; [`Message::into_payload`] gives exactly that view.

use crate::gojson::{self, Decoder, GoDecode, GoJson};
use crate::group::EncryptedGroupMessage;
use crate::Error;

/// A token-board message type (Go `groups.MessageType`, an `int` enumerated with `iota`).
///
/// Values other than the five constants are valid on the wire and ignored by Go servers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Debug)]
pub struct MessageType(pub i64);

impl MessageType {
    /// `ReplayRequestMessage = 0` (CONFIRMED first in the `iota` list, protocol.md §5.2).
    pub const REPLAY_REQUEST: MessageType = MessageType(0);
    /// `ReplayResultMessage`. UNCONFIRMED: order after 0 recalled (protocol.md §5.2, §14 item 5).
    pub const REPLAY_RESULT: MessageType = MessageType(1);
    /// `PostRequestMessage`. UNCONFIRMED: order after 0 recalled (protocol.md §5.2, §14 item 5).
    pub const POST_REQUEST: MessageType = MessageType(2);
    /// `PostResultMessage`. UNCONFIRMED: order after 0 recalled (protocol.md §5.2, §14 item 5).
    pub const POST_RESULT: MessageType = MessageType(3);
    /// `NewMessageMessage`. UNCONFIRMED: order after 0 recalled (protocol.md §5.2, §14 item 5).
    pub const NEW_MESSAGE: MessageType = MessageType(4);
}

/// A spent Privacy Pass token as it travels (Go `privacypass.SpentToken`): `{"T","MAC"}`, both
/// `[]byte`. The server turns it into `privacypass` types.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct SpentToken {
    /// `T`: the token's preimage.
    pub t: Option<Vec<u8>>,
    /// `MAC`: the MAC binding the token to the message.
    pub mac: Option<Vec<u8>>,
}

/// `ReplayRequest { LastCommit []byte }`: ask for every stored message from the one with this
/// signature on (all of them if empty, nil or unknown).
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct ReplayRequest {
    /// `LastCommit`: the signature of the last message the client has.
    pub last_commit: Option<Vec<u8>>,
}

/// `ReplayResult { NumMessages int }`: how many bare messages follow.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct ReplayResult {
    /// `NumMessages`.
    pub num_messages: i64,
}

/// `PostRequest { Token SpentToken, EGM EncryptedGroupMessage }`.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct PostRequest {
    /// `Token`: a token spent on `EGM.ToBytes() || server onion`.
    pub token: SpentToken,
    /// `EGM`.
    pub egm: EncryptedGroupMessage,
}

/// `PostResult { Success bool }`.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct PostResult {
    /// `Success`.
    pub success: bool,
}

/// `NewMessage { EGM EncryptedGroupMessage }`: a message posted after the replay.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct NewMessage {
    /// `EGM`.
    pub egm: EncryptedGroupMessage,
}

/// A token-board message (Go `groups.Message`), with all pointer payloads `omitempty`:
/// `{"MessageType":2,"PostRequest":{…}}`.
///
/// Go field order (CONFIRMED field list, protocol.md §5.2): `MessageType`, `PostRequest`,
/// `PostResult`, `NewMessage`, `ReplayRequest`, `ReplayResult`.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct Message {
    /// `MessageType`.
    pub message_type: MessageType,
    /// `PostRequest`.
    pub post_request: Option<PostRequest>,
    /// `PostResult`.
    pub post_result: Option<PostResult>,
    /// `NewMessage`.
    pub new_message: Option<NewMessage>,
    /// `ReplayRequest`.
    pub replay_request: Option<ReplayRequest>,
    /// `ReplayResult`.
    pub replay_result: Option<ReplayResult>,
}

/// The payload a [`Message`]'s type selects.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Payload {
    /// [`MessageType::REPLAY_REQUEST`].
    ReplayRequest(ReplayRequest),
    /// [`MessageType::REPLAY_RESULT`].
    ReplayResult(ReplayResult),
    /// [`MessageType::POST_REQUEST`].
    PostRequest(PostRequest),
    /// [`MessageType::POST_RESULT`].
    PostResult(PostResult),
    /// [`MessageType::NEW_MESSAGE`].
    NewMessage(NewMessage),
    /// Any other type: Go ignores these messages.
    Unknown(MessageType),
}

impl Message {
    /// Go's `json.Marshal` of the message.
    pub fn to_json(&self) -> Vec<u8> {
        self.to_go_json()
    }

    /// Decode Go JSON. Any `MessageType` is accepted and any combination of payloads.
    pub fn from_json(json: &[u8]) -> Result<Self, Error> {
        gojson::decode(json)
    }

    /// The payload the message type selects, as a Go server reads it: a missing payload for a
    /// known type is an error ([`Error::MissingPayload`]; Go closes the connection), payloads
    /// for other types are ignored, and an unknown type gives [`Payload::Unknown`].
    pub fn into_payload(self) -> Result<Payload, Error> {
        let t = self.message_type;
        let missing = Error::MissingPayload { message_type: t };
        Ok(match t {
            MessageType::REPLAY_REQUEST => {
                Payload::ReplayRequest(self.replay_request.ok_or(missing)?)
            }
            MessageType::REPLAY_RESULT => Payload::ReplayResult(self.replay_result.ok_or(missing)?),
            MessageType::POST_REQUEST => Payload::PostRequest(self.post_request.ok_or(missing)?),
            MessageType::POST_RESULT => Payload::PostResult(self.post_result.ok_or(missing)?),
            MessageType::NEW_MESSAGE => Payload::NewMessage(self.new_message.ok_or(missing)?),
            other => Payload::Unknown(other),
        })
    }
}

impl From<Payload> for Message {
    /// The message Go sends for this payload: the type and that one payload.
    fn from(p: Payload) -> Self {
        let mut m = Message::default();
        match p {
            Payload::ReplayRequest(r) => {
                m.message_type = MessageType::REPLAY_REQUEST;
                m.replay_request = Some(r);
            }
            Payload::ReplayResult(r) => {
                m.message_type = MessageType::REPLAY_RESULT;
                m.replay_result = Some(r);
            }
            Payload::PostRequest(r) => {
                m.message_type = MessageType::POST_REQUEST;
                m.post_request = Some(r);
            }
            Payload::PostResult(r) => {
                m.message_type = MessageType::POST_RESULT;
                m.post_result = Some(r);
            }
            Payload::NewMessage(r) => {
                m.message_type = MessageType::NEW_MESSAGE;
                m.new_message = Some(r);
            }
            Payload::Unknown(t) => m.message_type = t,
        }
        m
    }
}

impl GoJson for Message {
    fn write_go_json(&self, out: &mut Vec<u8>) {
        gojson::object(out, |o| {
            o.i64("MessageType", self.message_type.0)
                .omitempty("PostRequest", self.post_request.as_ref())
                .omitempty("PostResult", self.post_result.as_ref())
                .omitempty("NewMessage", self.new_message.as_ref())
                .omitempty("ReplayRequest", self.replay_request.as_ref())
                .omitempty("ReplayResult", self.replay_result.as_ref());
        });
    }
}

impl GoDecode for Message {
    fn decode_into(&mut self, d: &mut Decoder<'_>) -> Result<(), Error> {
        const FIELDS: &[&str] = &[
            "MessageType",
            "PostRequest",
            "PostResult",
            "NewMessage",
            "ReplayRequest",
            "ReplayResult",
        ];
        d.fields(FIELDS, |d, i| match i {
            0 => d.i64(&mut self.message_type.0),
            1 => d.pointer(&mut self.post_request),
            2 => d.pointer(&mut self.post_result),
            3 => d.pointer(&mut self.new_message),
            4 => d.pointer(&mut self.replay_request),
            _ => d.pointer(&mut self.replay_result),
        })
    }
}

impl GoJson for SpentToken {
    fn write_go_json(&self, out: &mut Vec<u8>) {
        gojson::object(out, |o| {
            o.bytes("T", self.t.as_deref())
                .bytes("MAC", self.mac.as_deref());
        });
    }
}

impl GoDecode for SpentToken {
    fn decode_into(&mut self, d: &mut Decoder<'_>) -> Result<(), Error> {
        d.fields(&["T", "MAC"], |d, i| match i {
            0 => d.bytes(&mut self.t),
            _ => d.bytes(&mut self.mac),
        })
    }
}

impl GoJson for ReplayRequest {
    fn write_go_json(&self, out: &mut Vec<u8>) {
        gojson::object(out, |o| {
            o.bytes("LastCommit", self.last_commit.as_deref());
        });
    }
}

impl GoDecode for ReplayRequest {
    fn decode_into(&mut self, d: &mut Decoder<'_>) -> Result<(), Error> {
        d.fields(&["LastCommit"], |d, _| d.bytes(&mut self.last_commit))
    }
}

impl GoJson for ReplayResult {
    fn write_go_json(&self, out: &mut Vec<u8>) {
        gojson::object(out, |o| {
            o.i64("NumMessages", self.num_messages);
        });
    }
}

impl GoDecode for ReplayResult {
    fn decode_into(&mut self, d: &mut Decoder<'_>) -> Result<(), Error> {
        d.fields(&["NumMessages"], |d, _| d.i64(&mut self.num_messages))
    }
}

impl GoJson for PostRequest {
    fn write_go_json(&self, out: &mut Vec<u8>) {
        gojson::object(out, |o| {
            o.value("Token", &self.token).value("EGM", &self.egm);
        });
    }
}

impl GoDecode for PostRequest {
    fn decode_into(&mut self, d: &mut Decoder<'_>) -> Result<(), Error> {
        d.fields(&["Token", "EGM"], |d, i| match i {
            0 => self.token.decode_into(d),
            _ => self.egm.decode_into(d),
        })
    }
}

impl GoJson for PostResult {
    fn write_go_json(&self, out: &mut Vec<u8>) {
        gojson::object(out, |o| {
            o.bool("Success", self.success);
        });
    }
}

impl GoDecode for PostResult {
    fn decode_into(&mut self, d: &mut Decoder<'_>) -> Result<(), Error> {
        d.fields(&["Success"], |d, _| d.bool(&mut self.success))
    }
}

impl GoJson for NewMessage {
    fn write_go_json(&self, out: &mut Vec<u8>) {
        gojson::object(out, |o| {
            o.value("EGM", &self.egm);
        });
    }
}

impl GoDecode for NewMessage {
    fn decode_into(&mut self, d: &mut Decoder<'_>) -> Result<(), Error> {
        d.fields(&["EGM"], |d, _| self.egm.decode_into(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(json: &str) -> Result<Payload, Error> {
        Message::from_json(json.as_bytes())?.into_payload()
    }

    #[test]
    fn go_server_view_of_messages() {
        // A type without its payload: Go closes the connection.
        for t in 0..=4 {
            assert_eq!(
                payload(&format!(r#"{{"MessageType":{t}}}"#)),
                Err(Error::MissingPayload {
                    message_type: MessageType(t)
                })
            );
        }
        // A payload for another type does not count.
        assert_eq!(
            payload(r#"{"MessageType":2,"PostResult":{"Success":true}}"#),
            Err(Error::MissingPayload {
                message_type: MessageType::POST_REQUEST
            })
        );
        // Unknown types decode and are reported as such, whatever they carry.
        assert_eq!(
            payload(r#"{"MessageType":5}"#),
            Ok(Payload::Unknown(MessageType(5)))
        );
        assert_eq!(
            payload(r#"{"MessageType":-1,"PostRequest":{}}"#),
            Ok(Payload::Unknown(MessageType(-1)))
        );
        // No MessageType at all is type 0, and `null` is the zero Message.
        assert_eq!(
            payload(r#"{"ReplayRequest":{}}"#),
            Ok(Payload::ReplayRequest(ReplayRequest { last_commit: None }))
        );
        assert_eq!(Message::from_json(b"null"), Ok(Message::default()));
        // An empty payload object is a present payload with zero fields.
        assert_eq!(
            payload(r#"{"MessageType":2,"PostRequest":{}}"#),
            Ok(Payload::PostRequest(PostRequest::default()))
        );
        // Several payloads at once, case-insensitive names, unknown fields.
        let m = Message::from_json(
            br#"{"messagetype":3,"POSTRESULT":{"success":true},"NewMessage":{"EGM":{"Ciphertext":"","x":1}},"Extra":[]}"#,
        )
        .unwrap();
        assert_eq!(m.new_message.as_ref().unwrap().egm.ciphertext, Some(vec![]));
        assert_eq!(
            m.clone().into_payload(),
            Ok(Payload::PostResult(PostResult { success: true }))
        );
        assert_eq!(
            m.to_json(),
            br#"{"MessageType":3,"PostResult":{"Success":true},"NewMessage":{"EGM":{"Ciphertext":"","Signature":null}}}"#
        );
        // Type errors are errors.
        for bad in [
            r#"{"MessageType":"2"}"#,
            r#"{"MessageType":2.5}"#,
            r#"{"MessageType":2,"PostRequest":[]}"#,
            r#"{"MessageType":1,"ReplayResult":{"NumMessages":true}}"#,
            r#"{"MessageType":2,"PostRequest":{"Token":{"T":"not base64"}}}"#,
        ] {
            assert!(Message::from_json(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn payload_field_order_is_gos() {
        let m = Message {
            message_type: MessageType(9),
            post_request: Some(PostRequest::default()),
            post_result: Some(PostResult::default()),
            new_message: Some(NewMessage::default()),
            replay_request: Some(ReplayRequest::default()),
            replay_result: Some(ReplayResult::default()),
        };
        let json = String::from_utf8(m.to_json()).unwrap();
        let egm = r#"{"Ciphertext":null,"Signature":null}"#;
        assert_eq!(
            json,
            format!(
                r#"{{"MessageType":9,"PostRequest":{{"Token":{{"T":null,"MAC":null}},"EGM":{egm}}},"PostResult":{{"Success":false}},"NewMessage":{{"EGM":{egm}}},"ReplayRequest":{{"LastCommit":null}},"ReplayResult":{{"NumMessages":0}}}}"#
            )
        );
        assert_eq!(Message::from_json(json.as_bytes()).unwrap(), m);
    }
}
