//! Every JSON shape that crosses the C boundary, as serde structs named after Go's types, so
//! that they can be compared field by field with Go's autobindings and with what the
//! `libcwtch` crate 0.8.0 (`structs.rs`, `event.rs`) parses.
//!
//! Beware: the `libcwtch` crate reads event fields with `data["Key"]`, which **panics in the
//! client** when the key is missing. Every event built here therefore carries every key that
//! crate reads for that event name ([`GoEvent`]'s builders take them all as arguments).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `"true"` / `"false"`: Go's event fields are strings.
pub(crate) fn bool_str(b: bool) -> String {
    if b { "true" } else { "false" }.to_owned()
}

/// One event of the app bus, as `c_GetAppBusEvent` returns it: Go's `event.Event`
/// serialised by the autobindings (`libcwtch::structs::CwtchEvent`: PascalCase
/// `EventType`, `EventID`, and `Data`, a map of strings to strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GoEvent {
    /// The event's name (Go's `event.Type`), e.g. `NewMessageFromPeer`.
    #[serde(rename = "EventType")]
    pub(crate) event_type: String,
    /// An id unique in this process (Go: a random string).
    #[serde(rename = "EventID")]
    pub(crate) event_id: String,
    /// The fields (Go's `event.Field` names), all strings.
    #[serde(rename = "Data")]
    pub(crate) data: BTreeMap<String, String>,
}

impl GoEvent {
    /// An event with these fields; the id is filled in when it is queued.
    pub(crate) fn new<K: Into<String>, V: Into<String>>(
        name: &str,
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> GoEvent {
        GoEvent {
            event_type: name.to_owned(),
            event_id: String::new(),
            data: fields
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// `AppError {Error, Data}`: an app-level error, usually the answer to a call.
    pub(crate) fn app_error(error: &str, data: &str) -> GoEvent {
        GoEvent::new("AppError", [("Error", error), ("Data", data)])
    }
}

/// Go's `model.AccessControl` (`libcwtch::structs::AccessControl`: all seven fields are
/// required by that crate's deserialiser, so all are written). Read as Go's `json.Unmarshal`
/// reads it: a missing field is `false`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[allow(non_snake_case)]
pub(crate) struct AccessControl {
    pub(crate) Blocked: bool,
    pub(crate) Read: bool,
    pub(crate) Append: bool,
    pub(crate) AutoConnect: bool,
    pub(crate) ExchangeAttributes: bool,
    pub(crate) ShareFiles: bool,
    pub(crate) RenderImages: bool,
}

impl AccessControl {
    /// A contact's entry: `Read`, `Append`, `AutoConnect` and `ExchangeAttributes` are
    /// whether it is accepted and not blocked (what Go's `DefaultP2PAccessControl` grants);
    /// `ShareFiles` and `RenderImages` are the contact's own permissions (unset: allowed),
    /// which take effect only while it is accepted and not blocked.
    pub(crate) fn for_contact(
        accepted: bool,
        blocked: bool,
        permissions: cwtch::Permissions,
    ) -> AccessControl {
        let open = accepted && !blocked;
        AccessControl {
            Blocked: blocked,
            Read: open,
            Append: open,
            AutoConnect: open,
            ExchangeAttributes: open,
            ShareFiles: permissions.shares_files(),
            RenderImages: permissions.renders_images(),
        }
    }

    /// A group member's entry: blocked (its messages hidden) or not.
    pub(crate) fn group_member(blocked: bool) -> AccessControl {
        AccessControl {
            Blocked: blocked,
            Read: !blocked,
            Append: !blocked,
            AutoConnect: false,
            ExchangeAttributes: false,
            ShareFiles: false,
            RenderImages: false,
        }
    }
}

/// Go's `model.AccessControlList`: handle → access.
pub(crate) type AccessControlList = BTreeMap<String, AccessControl>;

/// One conversation in `NewPeer`'s `ContactsJson` (autobindings' contact map; keys as the UI
/// and `libcwtch::structs::Conversation` read them: `onion`, `identifier`, `name`, `status`,
/// `accepted`, `accessControlList`, `blocked`, `isGroup` are required by the latter).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ContactJson {
    /// The contact's onion, or the group id for a group.
    pub(crate) onion: String,
    /// The conversation id.
    pub(crate) identifier: i64,
    /// Display name.
    pub(crate) name: String,
    /// Local nickname (`local.profile.name`), empty if none.
    pub(crate) localname: String,
    /// Connection state name (Go's `ConnectionStateName`).
    pub(crate) status: String,
    /// Accepted.
    pub(crate) accepted: bool,
    /// Blocked.
    pub(crate) blocked: bool,
    /// Go's `authorization`: `approved`, `blocked` or `unknown`.
    pub(crate) authorization: String,
    /// The access control list.
    pub(crate) access_control_list: AccessControlList,
    /// Whether this conversation is a group.
    pub(crate) is_group: bool,
    /// A group's server onion (empty for contacts).
    pub(crate) group_server: String,
    /// Archived (not supported: always false).
    pub(crate) is_archived: bool,
    /// Messages stored.
    pub(crate) num_messages: u64,
    /// Unread messages.
    pub(crate) num_unread: u64,
    /// Time of the newest message: seconds since 1970 in decimal ("0": none).
    pub(crate) last_msg_time: String,
    /// Picture: a downloaded profile picture's absolute path, else the default.
    pub(crate) picture: String,
    /// Default picture: a UI asset path ([`crate::pictures`]).
    pub(crate) default_picture: String,
}

/// One server in `NewPeer`'s `ServerList` (`libcwtch::structs::Server`: `onion`, `status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ServerJson {
    /// The server's onion.
    pub(crate) onion: String,
    /// Its conversation id.
    pub(crate) identifier: i64,
    /// A Go connection state name (must be one `libcwtch` knows, see
    /// [`crate::events::server_state_name`]).
    pub(crate) status: String,
    /// Description (not stored by this library: empty).
    pub(crate) description: String,
    /// Sync progress, 0.0–1.0.
    pub(crate) sync_progress: f64,
}

/// The answer of `c_GetProfileAttribute` / `c_GetConversationAttribute`
/// (`libcwtch::structs::Attribute`: PascalCase `Exists`, `Value`). `Error` is ours: present
/// only when the lookup failed (bad profile, bad conversation, not started).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(non_snake_case)]
pub(crate) struct Attribute {
    pub(crate) Exists: bool,
    pub(crate) Value: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) Error: Option<String>,
}

/// A stored message as `c_GetMessageById`, `c_GetMessages` and `c_SendMessage` return it:
/// autobindings' `EnhancedMessage` (Go's `model.Message` embedded, plus `ID`, `LocalIndex`,
/// `ContentHash`, `ContactImage`, `Attributes`). Field names CONFIRMED from the UI's reader
/// (protocol.md §11); the encodings of `Signature` (Go `[]byte`, so std base64 of the stored
/// id) and of the times are UNCONFIRMED.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(non_snake_case)]
pub(crate) struct EnhancedMessage {
    pub(crate) ID: i64,
    pub(crate) LocalIndex: i64,
    pub(crate) Timestamp: String,
    pub(crate) Received: String,
    pub(crate) PeerID: String,
    pub(crate) Message: String,
    pub(crate) Signature: String,
    pub(crate) PreviousMessageSig: Option<String>,
    pub(crate) ReceivedByServer: bool,
    pub(crate) Acknowledged: bool,
    pub(crate) Error: String,
    pub(crate) Flags: u64,
    pub(crate) ContentHash: String,
    pub(crate) ContactImage: String,
    pub(crate) Attributes: BTreeMap<String, String>,
}

/// One share of `c_GetSharedFiles` (Go's `filesharing.SharedFile`,
/// `libcwtch::structs::SharedFile`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(non_snake_case)]
pub(crate) struct SharedFile {
    pub(crate) FileKey: String,
    pub(crate) Path: String,
    pub(crate) DateShared: String,
    pub(crate) Active: bool,
    pub(crate) Expired: bool,
}

/// A JSON error answer for functions whose Go version returns JSON: `{"error": "..."}`
/// (ours: Go returns an empty or zero value; clients that parse the Go shape fail to parse
/// this, which is the point: it is not a value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JsonError {
    pub(crate) error: String,
}

/// Go's `GlobalSettings` (libcwtch-go `utils/settings.go`), as `UpdateGlobalSettings`
/// carries it and `c_UpdateSettings` takes it. The fields `libcwtch::structs::Settings`
/// requires are typed; every other field a client sends is kept as is in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(non_snake_case)]
pub(crate) struct GlobalSettings {
    pub(crate) Locale: String,
    pub(crate) Theme: String,
    pub(crate) ThemeMode: String,
    pub(crate) PreviousPid: i64,
    pub(crate) ExperimentsEnabled: bool,
    pub(crate) Experiments: BTreeMap<String, bool>,
    pub(crate) BlockUnknownConnections: bool,
    pub(crate) StreamerMode: bool,
    pub(crate) StateRootPane: i32,
    pub(crate) FirstTime: bool,
    pub(crate) UIColumnModePortrait: String,
    pub(crate) UIColumnModeLandscape: String,
    pub(crate) DownloadPath: String,
    #[serde(flatten)]
    pub(crate) extra: serde_json::Map<String, serde_json::Value>,
}

impl Default for GlobalSettings {
    /// Go's `DefaultGlobalSettings` for the fields above (values UNCONFIRMED except the
    /// field names).
    fn default() -> GlobalSettings {
        GlobalSettings {
            Locale: "en".into(),
            Theme: "dark".into(),
            ThemeMode: "dark".into(),
            PreviousPid: -1,
            ExperimentsEnabled: false,
            Experiments: BTreeMap::new(),
            BlockUnknownConnections: false,
            StreamerMode: false,
            StateRootPane: 0,
            FirstTime: true,
            UIColumnModePortrait: "DualpaneMode.Single".into(),
            UIColumnModeLandscape: "DualpaneMode.CopyPortrait".into(),
            DownloadPath: String::new(),
            extra: serde_json::Map::new(),
        }
    }
}

/// The experiment that turns on image previews and profile pictures (`libcwtch`'s
/// `Experiments::ImagePreviewsExperiment`: "auto downloading of image files").
pub(crate) const IMAGE_PREVIEWS_EXPERIMENT: &str = "filesharing-images";

impl GlobalSettings {
    /// Whether the image previews experiment is on (experiments on, and it on).
    pub(crate) fn image_previews(&self) -> bool {
        self.ExperimentsEnabled && self.Experiments.get(IMAGE_PREVIEWS_EXPERIMENT) == Some(&true)
    }

    /// The control port of a running tor to attach to: with Go's `UseExternalTor` true,
    /// `127.0.0.1:<CustomControlPort>` (tor's default 9051 when that is not a port).
    /// UNCONFIRMED: how Go combines these fields; `CustomSocksPort` is not needed (the SOCKS
    /// port is asked from tor).
    pub(crate) fn external_tor_control(&self) -> Option<String> {
        let on = self
            .extra
            .get("UseExternalTor")
            .and_then(serde_json::Value::as_bool);
        if on != Some(true) {
            return None;
        }
        let port = self
            .extra
            .get("CustomControlPort")
            .and_then(serde_json::Value::as_i64)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .unwrap_or(9051);
        Some(format!("127.0.0.1:{port}"))
    }
}

/// Serialise, never failing (these types have string keys only).
pub(crate) fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| String::from("{}"))
}

/// `{"error": "<message>"}`.
pub(crate) fn error_json(message: &str) -> String {
    to_json(&JsonError {
        error: message.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_envelope_is_pascal_case_with_string_data() {
        let mut e = GoEvent::new("IndexedAcknowledgement", [("Index", "3")]);
        e.event_id = "7".into();
        assert_eq!(
            to_json(&e),
            r#"{"EventType":"IndexedAcknowledgement","EventID":"7","Data":{"Index":"3"}}"#
        );
    }

    #[test]
    fn external_tor_from_go_settings() {
        let mut s = GlobalSettings::default();
        assert_eq!(s.external_tor_control(), None);
        s.extra.insert("CustomControlPort".into(), 9999.into());
        assert_eq!(s.external_tor_control(), None, "only with UseExternalTor");
        s.extra.insert("UseExternalTor".into(), true.into());
        assert_eq!(s.external_tor_control().as_deref(), Some("127.0.0.1:9999"));
        s.extra.insert("CustomControlPort".into(), (-1).into());
        assert_eq!(s.external_tor_control().as_deref(), Some("127.0.0.1:9051"));
    }

    #[test]
    fn image_previews_need_experiments_on_and_filesharing_images() {
        let mut s = GlobalSettings::default();
        assert!(!s.image_previews());
        s.Experiments.insert(IMAGE_PREVIEWS_EXPERIMENT.into(), true);
        assert!(!s.image_previews(), "experiments are off");
        s.ExperimentsEnabled = true;
        assert!(s.image_previews());
        s.Experiments
            .insert(IMAGE_PREVIEWS_EXPERIMENT.into(), false);
        assert!(!s.image_previews());
        s.Experiments.remove(IMAGE_PREVIEWS_EXPERIMENT);
        s.Experiments.insert("filesharing".into(), true);
        assert!(!s.image_previews(), "file sharing alone is not previews");
    }

    #[test]
    fn settings_round_trip_keeps_unknown_fields() {
        let json = r#"{"Locale":"cy","Theme":"light","ThemeMode":"light","PreviousPid":4,
            "ExperimentsEnabled":true,"Experiments":{"filesharing":true},
            "BlockUnknownConnections":true,"StreamerMode":false,"StateRootPane":0,
            "FirstTime":false,"UIColumnModePortrait":"a","UIColumnModeLandscape":"b",
            "DownloadPath":"/d","CustomTorrc":"x","FontScaling":1.5}"#;
        let s: GlobalSettings = serde_json::from_str(json).expect("parses");
        assert_eq!(s.Locale, "cy");
        assert_eq!(s.extra.get("CustomTorrc"), Some(&serde_json::json!("x")));
        let back: serde_json::Value = serde_json::from_str(&to_json(&s)).expect("json");
        assert_eq!(back["FontScaling"], serde_json::json!(1.5));
        assert_eq!(back["Experiments"]["filesharing"], serde_json::json!(true));
    }
}
