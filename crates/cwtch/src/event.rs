//! The one typed event stream.
//!
//! Every event is serialisable to JSON with stable field names (`cwtch run` prints one per
//! line for bots): an object whose `"event"` field names the variant, the other fields as
//! documented. Profile-scoped events carry `"profile"`, the profile's onion.
//!
//! ```json
//! {"event":"NewMessage","profile":"vbmm…","conversation_id":1,"contact":"pjur…","message_id":3,
//!  "signature":"1234","overlay":1,"body":"{\"o\":1,\"d\":\"hi\"}","text":"hi","quoted_hash":null,
//!  "content_hash":"…","malformed":false,"timestamp":"2025-01-02T03:04:05Z"}
//! ```

use serde::{Deserialize, Serialize};

/// The state of the connection to a contact (Go's `PeerStateChange` states; the names are
/// Go's `ConnectionStateName`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ConnectionState {
    /// No connection.
    Disconnected,
    /// Dialling (Tor circuit and tapir handshake in progress).
    Connecting,
    /// Connected, not yet authenticated (not reported by this library: tapir-service hands
    /// over connections only once authenticated).
    Connected,
    /// Authenticated and ready: wire version negotiated, messages flow.
    Authenticated,
    /// The last dial failed; another attempt follows after a backoff.
    Failed,
}

/// The state of the connection to a server (Go's server `ConnectionState` names, as the UI
/// shows them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ServerState {
    /// No connection (no accepted group uses the server, or between attempts).
    Disconnected,
    /// Dialling and authenticating.
    Connecting,
    /// Connected; replaying what was posted since our last position.
    Syncing,
    /// Replay done: new messages arrive as they are posted.
    Synced,
    /// The last attempt failed; another follows after a backoff.
    Failed,
}

/// The state of a message we sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum MessageState {
    /// Stored, not yet written to a connection (the contact is offline, or we are).
    Sending,
    /// Written to a connection, not yet acknowledged.
    Sent,
    /// Acknowledged by the contact.
    Acknowledged,
    /// Will not be sent; the reason is stored with the message.
    Failed {
        /// Why.
        error: String,
    },
    /// A message the contact sent us.
    Received,
}

/// Something that happened. `#[non_exhaustive]`: new events will be added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event")]
#[non_exhaustive]
pub enum Event {
    /// The network's bootstrap progress changed (Go's `ACNStatus`). Not profile-scoped.
    AcnStatus {
        /// Percent, 100 = ready.
        progress: u8,
        /// Summary, e.g. Tor's bootstrap phase.
        summary: String,
    },
    /// A profile was loaded and its engine started.
    ProfileLoaded {
        /// The profile's onion.
        profile: String,
        /// The profile's local id (directory name).
        profile_id: String,
        /// The profile's public name.
        name: String,
    },
    /// The profile's onion service is hosted: contacts can reach it.
    ProfileOnline {
        /// The profile's onion.
        profile: String,
    },
    /// The profile's engine failed to do something it will retry (e.g. host its onion
    /// service).
    NetworkError {
        /// The profile's onion.
        profile: String,
        /// What went wrong.
        error: String,
    },
    /// The profile was shut down.
    ProfileShutdown {
        /// The profile's onion.
        profile: String,
    },
    /// A contact was created: added by us (`accepted: true`) or a contact request from an
    /// unknown peer that connected to us (`request: true`, `accepted: false`).
    ContactCreated {
        /// The profile's onion.
        profile: String,
        /// The conversation id.
        conversation_id: i64,
        /// The contact's onion.
        contact: String,
        /// Whether the contact is accepted.
        accepted: bool,
        /// Whether the contact is blocked.
        blocked: bool,
        /// Whether this is an inbound contact request.
        request: bool,
    },
    /// A contact was accepted or unblocked.
    ContactUpdated {
        /// The profile's onion.
        profile: String,
        /// The conversation id.
        conversation_id: i64,
        /// The contact's onion.
        contact: String,
        /// Whether the contact is accepted.
        accepted: bool,
        /// Whether the contact is blocked.
        blocked: bool,
    },
    /// A contact was blocked.
    ContactBlocked {
        /// The profile's onion.
        profile: String,
        /// The conversation id.
        conversation_id: i64,
        /// The contact's onion.
        contact: String,
    },
    /// A contact and its messages were deleted.
    ContactDeleted {
        /// The profile's onion.
        profile: String,
        /// The conversation id.
        conversation_id: i64,
        /// The contact's onion.
        contact: String,
    },
    /// The connection to a contact changed state (Go's `PeerStateChange`).
    PeerStateChanged {
        /// The profile's onion.
        profile: String,
        /// The conversation id.
        conversation_id: i64,
        /// The contact's onion.
        contact: String,
        /// The new state.
        state: ConnectionState,
    },
    /// A message from a contact was stored (Go's `NewMessageFromPeer`).
    NewMessage {
        /// The profile's onion.
        profile: String,
        /// The conversation id.
        conversation_id: i64,
        /// The contact's onion (the author).
        contact: String,
        /// The message's id in the conversation (Go's `Index`).
        message_id: i64,
        /// The sender's wire message id (stored in the `Signature` column).
        signature: String,
        /// The overlay number, `null` if the body is not an overlay wrapper.
        overlay: Option<i64>,
        /// The body as received (the overlay JSON).
        body: String,
        /// The readable text (text, reply body, suggested onion); `null` if malformed.
        text: Option<String>,
        /// For a quoted reply, the quoted message's content hash.
        quoted_hash: Option<String>,
        /// `base64(SHA-256(contact onion + body))` (spec §7.5).
        content_hash: String,
        /// The body was not understood (unknown overlay, bad JSON): stored anyway.
        malformed: bool,
        /// When it was received (RFC 3339, UTC).
        timestamp: String,
    },
    /// A message we sent was written to a connection for the first time.
    MessageSent {
        /// The profile's onion.
        profile: String,
        /// The conversation id.
        conversation_id: i64,
        /// The contact's onion.
        contact: String,
        /// The message's id in the conversation.
        message_id: i64,
        /// Its wire id.
        signature: String,
    },
    /// A message we sent was acknowledged (Go's `IndexedAcknowledgement`).
    Acknowledged {
        /// The profile's onion.
        profile: String,
        /// The conversation id.
        conversation_id: i64,
        /// The contact's onion.
        contact: String,
        /// The message's id in the conversation.
        message_id: i64,
        /// Its wire id.
        signature: String,
    },
    /// A message we sent failed for good (Go's `IndexedFailure`).
    MessageFailed {
        /// The profile's onion.
        profile: String,
        /// The conversation id.
        conversation_id: i64,
        /// The contact's onion.
        contact: String,
        /// The message's id in the conversation.
        message_id: i64,
        /// Its wire id.
        signature: String,
        /// Why.
        reason: String,
    },
    /// A contact's attribute changed (fetched over getVal, or set locally).
    AttributeUpdated {
        /// The profile's onion.
        profile: String,
        /// The conversation id.
        conversation_id: i64,
        /// The contact's onion.
        contact: String,
        /// The conversation attribute key, e.g. `public.profile.name`.
        key: String,
        /// The new value.
        value: String,
    },
    /// A server's bundle was imported.
    ServerAdded {
        /// The profile's onion.
        profile: String,
        /// The server's conversation id.
        conversation_id: i64,
        /// The server's token-board onion.
        server: String,
    },
    /// A server was removed.
    ServerRemoved {
        /// The profile's onion.
        profile: String,
        /// The server's conversation id.
        conversation_id: i64,
        /// The server's token-board onion.
        server: String,
    },
    /// The connection to a server changed state, or its tokens in hand changed (Go's
    /// `ServerStateChange`).
    ServerStateChanged {
        /// The profile's onion.
        profile: String,
        /// The server's conversation id.
        conversation_id: i64,
        /// The server's token-board onion.
        server: String,
        /// The new state.
        state: ServerState,
        /// Unspent tokens for the server.
        tokens: usize,
    },
    /// A group conversation was created: by us, joined from an invite (`accepted: true`), or
    /// an invite received from a contact (`accepted: false`).
    GroupCreated {
        /// The profile's onion.
        profile: String,
        /// The group's conversation id.
        conversation_id: i64,
        /// The group id (32 hex).
        group_id: String,
        /// The group's name.
        name: String,
        /// The server's onion.
        server: String,
        /// Whether the group is accepted (synced and postable).
        accepted: bool,
    },
    /// A contact invited us to a group (Go's `NewGroupInvite`): accept it to join, leave it
    /// to decline.
    GroupInvite {
        /// The profile's onion.
        profile: String,
        /// The group's conversation id.
        conversation_id: i64,
        /// The group id (32 hex).
        group_id: String,
        /// The group's name, as the inviter named it.
        name: String,
        /// The server's onion.
        server: String,
        /// The contact who sent the invite.
        from: String,
    },
    /// A group invite was accepted.
    GroupUpdated {
        /// The profile's onion.
        profile: String,
        /// The group's conversation id.
        conversation_id: i64,
        /// Whether it is accepted.
        accepted: bool,
    },
    /// We renamed a group (the name is ours alone: members are not told).
    GroupRenamed {
        /// The profile's onion.
        profile: String,
        /// The group's conversation id.
        conversation_id: i64,
        /// Its new name.
        name: String,
    },
    /// We left a group (or declined its invite); its messages are deleted.
    GroupLeft {
        /// The profile's onion.
        profile: String,
        /// The group's conversation id.
        conversation_id: i64,
        /// The group id (32 hex).
        group_id: String,
    },
    /// A member's message in a group was verified and stored (Go's `NewMessageFromGroup`).
    GroupMessage {
        /// The profile's onion.
        profile: String,
        /// The group's conversation id.
        conversation_id: i64,
        /// The group id (32 hex).
        group_id: String,
        /// The author's onion (verified by the message's signature).
        author: String,
        /// The message's id in the conversation.
        message_id: i64,
        /// The message's signature (std base64): its id on the server.
        signature: String,
        /// The overlay number, `null` if the body is not an overlay wrapper.
        overlay: Option<i64>,
        /// The body (the overlay JSON).
        body: String,
        /// The readable text; `null` if malformed.
        text: Option<String>,
        /// For a quoted reply, the quoted message's content hash.
        quoted_hash: Option<String>,
        /// `base64(SHA-256(author onion + body))`.
        content_hash: String,
        /// The body was not understood: stored anyway.
        malformed: bool,
        /// The author's timestamp (RFC 3339, UTC; the author's claim).
        timestamp: String,
    },
    /// The server accepted one of our group posts ("sent").
    GroupMessageSent {
        /// The profile's onion.
        profile: String,
        /// The group's conversation id.
        conversation_id: i64,
        /// The group id (32 hex).
        group_id: String,
        /// The message's id in the conversation.
        message_id: i64,
        /// Its signature (std base64).
        signature: String,
    },
    /// One of our group posts came back from the server ("seen": every member can fetch it).
    GroupMessageSeen {
        /// The profile's onion.
        profile: String,
        /// The group's conversation id.
        conversation_id: i64,
        /// The group id (32 hex).
        group_id: String,
        /// The message's id in the conversation.
        message_id: i64,
        /// Its signature (std base64).
        signature: String,
    },
    /// A group message refers (`PreviousMessageSig`) to a message we never received: one or
    /// more messages before it are missing (dropped by the server, or pruned).
    MissingMessages {
        /// The profile's onion.
        profile: String,
        /// The group's conversation id.
        conversation_id: i64,
        /// The group id (32 hex).
        group_id: String,
        /// The member whose message revealed the gap.
        member: String,
        /// The message that revealed it (the gap is before it).
        message_id: i64,
        /// The signature it refers to (std base64), which we do not have.
        previous_signature: String,
    },
    /// A download's manifest arrived and was accepted: the file's size and chunks are known
    /// and its partial file is open (resumed downloads too). Before its progress.
    FileManifestReceived {
        /// The profile's onion.
        profile: String,
        /// The conversation the file was offered in.
        conversation_id: i64,
        /// Who serves it.
        contact: String,
        /// The file key.
        file_key: String,
        /// Where the file will be once complete (it is written to `<path>.part` until then).
        path: String,
        /// Its size, as the manifest says (checked against the offer and the limits).
        size: u64,
    },
    /// Progress of a download (after verified chunks are written).
    FileDownloadProgress {
        /// The profile's onion.
        profile: String,
        /// The conversation with the sharer.
        conversation_id: i64,
        /// The file key.
        file_key: String,
        /// Bytes verified and written.
        done: u64,
        /// The file's size.
        total: u64,
    },
    /// A download completed and verified; the file is at `path`.
    FileDownloaded {
        /// The profile's onion.
        profile: String,
        /// The conversation with the sharer.
        conversation_id: i64,
        /// The file key.
        file_key: String,
        /// Where the file is.
        path: String,
    },
    /// A download failed; what was verified is kept to resume from.
    FileDownloadFailed {
        /// The profile's onion.
        profile: String,
        /// The conversation with the sharer.
        conversation_id: i64,
        /// The file key.
        file_key: String,
        /// Why.
        reason: String,
    },
    /// An image downloaded automatically (image previews on) was decoded and checked: a
    /// client may show it. Follows its [`Event::FileDownloaded`]. An image that does not
    /// decode never gets this event: its download fails (`FileDownloadFailed`, with the
    /// reason) and the file is deleted.
    ImagePreview {
        /// The profile's onion.
        profile: String,
        /// The conversation it came from.
        conversation_id: i64,
        /// The contact who shared it.
        contact: String,
        /// The file key.
        file_key: String,
        /// The contact's profile picture (else the preview of a file offered in the
        /// conversation).
        profile_image: bool,
        /// `png`, `jpeg`, `gif` or `webp` (what the bytes are).
        format: String,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Its size in bytes.
        bytes: u64,
        /// Where it is.
        path: String,
    },
}

impl Event {
    /// The profile (onion) this event belongs to; `None` for [`Event::AcnStatus`].
    pub fn profile(&self) -> Option<&str> {
        match self {
            Event::AcnStatus { .. } => None,
            Event::ProfileLoaded { profile, .. }
            | Event::ProfileOnline { profile }
            | Event::NetworkError { profile, .. }
            | Event::ProfileShutdown { profile }
            | Event::ContactCreated { profile, .. }
            | Event::ContactUpdated { profile, .. }
            | Event::ContactBlocked { profile, .. }
            | Event::ContactDeleted { profile, .. }
            | Event::PeerStateChanged { profile, .. }
            | Event::NewMessage { profile, .. }
            | Event::MessageSent { profile, .. }
            | Event::Acknowledged { profile, .. }
            | Event::MessageFailed { profile, .. }
            | Event::AttributeUpdated { profile, .. }
            | Event::ServerAdded { profile, .. }
            | Event::ServerRemoved { profile, .. }
            | Event::ServerStateChanged { profile, .. }
            | Event::GroupCreated { profile, .. }
            | Event::GroupInvite { profile, .. }
            | Event::GroupUpdated { profile, .. }
            | Event::GroupLeft { profile, .. }
            | Event::GroupRenamed { profile, .. }
            | Event::GroupMessage { profile, .. }
            | Event::GroupMessageSent { profile, .. }
            | Event::GroupMessageSeen { profile, .. }
            | Event::MissingMessages { profile, .. }
            | Event::FileManifestReceived { profile, .. }
            | Event::FileDownloadProgress { profile, .. }
            | Event::FileDownloaded { profile, .. }
            | Event::FileDownloadFailed { profile, .. }
            | Event::ImagePreview { profile, .. } => Some(profile),
        }
    }

    /// One line of JSON (for `cwtch run`).
    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail (string keys, no maps with other keys).
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_json_shapes() {
        let e = Event::PeerStateChanged {
            profile: "p".into(),
            conversation_id: 2,
            contact: "c".into(),
            state: ConnectionState::Authenticated,
        };
        assert_eq!(
            e.to_json(),
            r#"{"event":"PeerStateChanged","profile":"p","conversation_id":2,"contact":"c","state":"Authenticated"}"#
        );
        let e = Event::AcnStatus {
            progress: 100,
            summary: "Done".into(),
        };
        assert_eq!(
            e.to_json(),
            r#"{"event":"AcnStatus","progress":100,"summary":"Done"}"#
        );
        assert_eq!(e.profile(), None);
        let e = Event::MessageFailed {
            profile: "p".into(),
            conversation_id: 1,
            contact: "c".into(),
            message_id: 3,
            signature: "9".into(),
            reason: "r".into(),
        };
        assert_eq!(
            e.to_json(),
            r#"{"event":"MessageFailed","profile":"p","conversation_id":1,"contact":"c","message_id":3,"signature":"9","reason":"r"}"#
        );
        let back: Event = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(back, e);
        let e = Event::ImagePreview {
            profile: "p".into(),
            conversation_id: 1,
            contact: "c".into(),
            file_key: "k".into(),
            profile_image: true,
            format: "png".into(),
            width: 3,
            height: 2,
            bytes: 99,
            path: "/i/k.img".into(),
        };
        assert_eq!(
            e.to_json(),
            r#"{"event":"ImagePreview","profile":"p","conversation_id":1,"contact":"c","file_key":"k","profile_image":true,"format":"png","width":3,"height":2,"bytes":99,"path":"/i/k.img"}"#
        );
        assert_eq!(e.profile(), Some("p"));
        assert_eq!(
            serde_json::to_string(&MessageState::Failed { error: "x".into() }).unwrap(),
            r#"{"state":"failed","error":"x"}"#
        );
        assert_eq!(
            serde_json::to_string(&MessageState::Sending).unwrap(),
            r#"{"state":"sending"}"#
        );
    }
}
