//! From the library's [`cwtch::Event`]s to Go's app-bus events.
//!
//! One task ([`forward`]) reads the library's event stream in order and pushes the Go events
//! onto the bus. A profile's `NewPeer` is built here from its `ProfileLoaded`, which the
//! library emits before the profile's engine starts: so `NewPeer` always precedes the
//! profile's other events, as clients (cwtch-imp) expect.
//!
//! | library event | Go event |
//! |---|---|
//! | `AcnStatus` | `ACNStatus {Progress, Status}` (`ACNVersion {Data}`: once, from `app`, on Tor) |
//! | `ProfileLoaded` | `NewPeer {Identity, name, tag, Created, Online, picture, defaultPicture, autostart, ContactsJson, ServerList}` |
//! | `ProfileOnline` / `NetworkError` | `NetworkError {ProfileOnion, Error, Status: Success / Error}` |
//! | `ContactCreated` | `ContactCreated {ProfileOnion, ConversationID, RemotePeer, nick, status, unread, picture, defaultPicture, numMessages, accepted, accessControlList, blocked, loading, lastMsgTime}` |
//! | `PeerStateChanged` | `PeerStateChange {ProfileOnion, RemotePeer, ConnectionState, ConversationID}` |
//! | `NewMessage` | `NewMessageFromPeer {ProfileOnion, ConversationID, RemotePeer, Nick, TimestampReceived, Data, Index, ContentHash, Signature, notification, picture}` |
//! | `Acknowledged` | `IndexedAcknowledgement {ProfileOnion, ConversationID, Index, RemotePeer}` |
//! | `MessageFailed` | `IndexedFailure {ProfileOnion, ConversationID, Index, RemotePeer, Error}` |
//! | `AttributeUpdated` (`public.*`) | `NewRetValMessageFromPeer {ProfileOnion, RemotePeer, Scope, Path, Exists, Data}` |
//! | `ServerStateChanged` | `ServerStateChange {ProfileOnion, GroupServer, ConnectionState}` |
//! | `GroupCreated` (accepted) | `GroupCreated {ProfileOnion, ConversationID, GroupID, GroupServer, GroupName, picture, accessControlList}` |
//! | `GroupInvite` | `NewGroup {ProfileOnion, ConversationID, GroupServer, GroupName, GroupInvite}` |
//! | `GroupMessage` | `NewMessageFromGroup {ProfileOnion, ConversationID, TimestampSent, RemotePeer, Index, Data, ContentHash, Signature, picture, notification}` |
//! | `FileDownloadProgress` | `FileDownloadProgressUpdate {ProfileOnion, FileKey, Progress, FileSizeInChunks, NameSuggestion}` (chunks of 4096 bytes; `NameSuggestion` from its `ManifestSaved`) |
//! | `FileManifestReceived` | `ManifestSaved {ProfileOnion, Handle, FileKey, SerializedManifest (empty), TempFile, NameSuggestion}` |
//! | `FileDownloaded` | `FileDownloaded {ProfileOnion, FileKey, FilePath, TempFile}` |
//!
//! Other library events have no Go counterpart a client parses and are not forwarded (logged
//! at debug level).

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use cwtch::{ConnectionState, Contact, Event, MessageInfo, ProfileHandle, ServerState};
use tokio::sync::broadcast;
use tracing::{debug, warn};

use crate::app::Running;
use crate::bus::Bus;
use crate::json::{
    bool_str, to_json, AccessControl, AccessControlList, ContactJson, GlobalSettings, GoEvent,
    ServerJson,
};
use crate::pictures;

/// Go's notification policy value for new messages (`notification` field;
/// `libcwtch::event::MessageNotification`): this library has no per-conversation policy.
const NOTIFICATION: &str = "ContactInfo";

use cwtch::FILE_CHUNK_SIZE as CHUNK_SIZE;

/// Forward the library's events to the bus until the stream ends or the app is gone.
pub(crate) async fn forward(
    mut rx: broadcast::Receiver<Event>,
    running: Weak<Running>,
    bus: Arc<Bus>,
) {
    let mut names = Names::default();
    loop {
        let ev = match rx.recv().await {
            Ok(ev) => ev,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                warn!("app bus: the client reads too slowly; {n} library events were lost");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Some(r) = running.upgrade() else { return };
        for go in translate(ev, &r, &mut names).await {
            bus.push(go).await;
        }
    }
}

/// Go's `ConnectionStateName` of a contact connection.
pub(crate) fn peer_state_name(s: ConnectionState) -> &'static str {
    match s {
        ConnectionState::Disconnected => "Disconnected",
        ConnectionState::Connecting => "Connecting",
        ConnectionState::Connected => "Connected",
        ConnectionState::Authenticated => "Authenticated",
        ConnectionState::Failed => "Failed",
        _ => "Disconnected",
    }
}

/// Go's `ConnectionStateName` of a server connection. Ours has `Syncing`, which Go calls
/// `Authenticated` (connected, replay in progress); `libcwtch` rejects unknown names.
pub(crate) fn server_state_name(s: ServerState) -> &'static str {
    match s {
        ServerState::Disconnected => "Disconnected",
        ServerState::Connecting => "Connecting",
        ServerState::Syncing => "Authenticated",
        ServerState::Synced => "Synced",
        ServerState::Failed => "Failed",
        _ => "Disconnected",
    }
}

/// `UpdateGlobalSettings {Data: <settings JSON>}`.
pub(crate) fn update_global_settings(s: &GlobalSettings) -> GoEvent {
    GoEvent::new("UpdateGlobalSettings", [("Data", to_json(s))])
}

/// The ACL of a contact just created (its permissions are the defaults).
fn acl_json(onion: &str, accepted: bool, blocked: bool) -> String {
    let mut acl = AccessControlList::new();
    acl.insert(
        onion.to_owned(),
        AccessControl::for_contact(accepted, blocked, cwtch::Permissions::default()),
    );
    to_json(&acl)
}

/// `lastMsgTime` in `ContactsJson`: the newest message's time in seconds since 1970, as a
/// decimal string (the UI reads `int.parse(lastMsgTime)` seconds); "0" with no messages.
fn last_msg_time(newest: Option<MessageInfo>) -> String {
    newest
        .and_then(|m| m.timestamp)
        .and_then(|t| cwtch::rfc3339_instant(&t))
        .map_or(0, |(secs, _)| secs)
        .to_string()
}

/// A contact in `ContactsJson`; `picture` from [`pictures::contact_picture`], `last` from
/// [`last_msg_time`].
fn contact_json(c: &Contact, picture: String, last: String) -> ContactJson {
    let onion = c.onion.as_str().to_owned();
    let mut acl = AccessControlList::new();
    acl.insert(
        onion.clone(),
        AccessControl::for_contact(c.accepted, c.blocked, c.permissions),
    );
    ContactJson {
        name: c.name.clone().unwrap_or_else(|| onion.clone()),
        localname: c
            .attributes
            .get("local.profile.name")
            .cloned()
            .unwrap_or_default(),
        onion,
        identifier: c.conversation_id.0,
        status: peer_state_name(c.state).to_owned(),
        accepted: c.accepted,
        blocked: c.blocked,
        authorization: if c.blocked {
            "blocked"
        } else if c.accepted {
            "approved"
        } else {
            "unknown"
        }
        .to_owned(),
        access_control_list: acl,
        is_group: false,
        group_server: String::new(),
        is_archived: c.attributes.get(crate::ops::ARCHIVED).map(String::as_str) == Some("true"),
        num_messages: c.message_count,
        // Not c.unread: no call of the header marks a conversation read (docs/specs/libcwtch.md).
        num_unread: 0,
        last_msg_time: last,
        picture,
        default_picture: pictures::default_profile_picture(c.onion.as_str()),
    }
}

/// `NewPeer` for a loaded profile. `created`: made by `c_CreateProfile` just now.
pub(crate) async fn new_peer(p: &ProfileHandle, created: bool, reload: bool) -> GoEvent {
    let onion = p.onion().as_str().to_owned();
    let name = p.name().await.unwrap_or_default();
    let tag = p
        .attribute("local.profile.tag")
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| "v1-defaultPassword".to_owned());
    let mut conversations: Vec<ContactJson> = Vec::new();
    match p.contacts().await {
        Ok(cs) => {
            for c in &cs {
                let picture =
                    pictures::contact_picture(p, c.conversation_id.0, c.onion.as_str()).await;
                let newest = p.messages(c.conversation_id, 0, 1).await.ok();
                let last = last_msg_time(newest.and_then(|l| l.into_iter().next()));
                conversations.push(contact_json(c, picture, last));
            }
        }
        Err(e) => warn!("NewPeer: cannot list contacts: {e}"),
    }
    if let Ok(groups) = p.groups().await {
        for g in groups {
            let newest = p.group_messages(g.conversation_id, 0, 1).await.ok();
            let last = last_msg_time(newest.and_then(|l| l.into_iter().next()));
            conversations.push(ContactJson {
                onion: g.group_id.clone(),
                identifier: g.conversation_id.0,
                name: g.name.clone(),
                localname: g.name.clone(),
                status: server_state_name(g.server_state).to_owned(),
                accepted: g.accepted,
                blocked: false,
                authorization: if g.accepted { "approved" } else { "unknown" }.to_owned(),
                access_control_list: AccessControlList::new(),
                is_group: true,
                group_server: g.server.as_str().to_owned(),
                is_archived: false,
                num_messages: g.messages,
                num_unread: g.unread,
                last_msg_time: last,
                picture: pictures::default_group_picture(&g.group_id),
                default_picture: pictures::default_group_picture(&g.group_id),
            });
        }
    }
    let servers = server_list(p).await;
    let default_picture = pictures::default_profile_picture(&onion);
    let picture = pictures::our_picture(p).await;
    let mut fields = BTreeMap::from([
        ("Identity", onion),
        ("name", name),
        ("tag", tag),
        ("Created", bool_str(created)),
        ("Online", bool_str(p.is_online())),
        ("autostart", bool_str(p.autostart().await.unwrap_or(true))),
        ("picture", picture),
        ("defaultPicture", default_picture),
        ("ContactsJson", to_json(&conversations)),
        ("ServerList", to_json(&servers)),
    ]);
    if reload {
        fields.insert("Reload", bool_str(true));
    }
    GoEvent::new("NewPeer", fields)
}

/// The profile's servers, as `ServerList` (in `NewPeer` and `UpdateServerInfo`).
pub(crate) async fn server_list(p: &ProfileHandle) -> Vec<ServerJson> {
    p.servers()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|s| ServerJson {
            onion: s.onion.as_str().to_owned(),
            identifier: s.conversation_id.0,
            status: server_state_name(s.state).to_owned(),
            description: String::new(),
            sync_progress: if s.state == ServerState::Synced {
                1.0
            } else {
                0.0
            },
        })
        .collect()
}

async fn contact_name(r: &Running, profile: &str, conversation_id: i64) -> Option<String> {
    let p = r.profile(profile).ok()?;
    let c = p
        .contact(cwtch::ContactId::Conversation(cwtch::ConversationId(
            conversation_id,
        )))
        .await
        .ok()?;
    c.name
}

/// The Go events for one library event (usually one, sometimes none).
/// The names downloads get, by profile and file key, from their `ManifestSaved` on (Go's
/// `NameSuggestion` of their progress): the state the translation keeps.
#[derive(Default)]
pub(crate) struct Names(BTreeMap<(String, String), String>);

pub(crate) async fn translate(ev: Event, r: &Running, names: &mut Names) -> Vec<GoEvent> {
    let one = |e: GoEvent| vec![e];
    if let Event::FileDownloaded {
        profile, file_key, ..
    }
    | Event::FileDownloadFailed {
        profile, file_key, ..
    } = &ev
    {
        names.0.remove(&(profile.clone(), file_key.clone()));
    }
    match ev {
        Event::AcnStatus { progress, summary } => one(GoEvent::new(
            "ACNStatus",
            [("Progress", progress.to_string()), ("Status", summary)],
        )),
        Event::ProfileLoaded {
            profile,
            profile_id,
            ..
        } => {
            let created = r
                .created
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&profile_id);
            match r.profile(&profile) {
                Ok(p) => {
                    r.apply_settings(&p).await;
                    one(new_peer(&p, created, false).await)
                }
                Err(_) => Vec::new(), // shut down meanwhile
            }
        }
        Event::ProfileOnline { profile } => one(GoEvent::new(
            "NetworkError",
            [
                ("ProfileOnion", profile),
                ("Error", String::new()),
                ("Status", "Success".into()),
            ],
        )),
        Event::NetworkError { profile, error } => one(GoEvent::new(
            "NetworkError",
            [
                ("ProfileOnion", profile),
                ("Error", error),
                ("Status", "Error".into()),
            ],
        )),
        Event::ContactCreated {
            profile,
            conversation_id,
            contact,
            accepted,
            blocked,
            ..
        } => {
            let (state, messages) = match r.profile(&profile) {
                Ok(p) => match p
                    .contact(cwtch::ContactId::Conversation(cwtch::ConversationId(
                        conversation_id,
                    )))
                    .await
                {
                    Ok(c) => (c.state, c.message_count),
                    Err(_) => (ConnectionState::Disconnected, 0),
                },
                Err(_) => (ConnectionState::Disconnected, 0),
            };
            one(GoEvent::new(
                "ContactCreated",
                [
                    ("ProfileOnion", profile),
                    ("ConversationID", conversation_id.to_string()),
                    ("RemotePeer", contact.clone()),
                    ("nick", contact.clone()),
                    ("status", peer_state_name(state).into()),
                    ("unread", "0".into()),
                    // A contact just made has published no picture to us yet.
                    ("picture", pictures::default_profile_picture(&contact)),
                    (
                        "defaultPicture",
                        pictures::default_profile_picture(&contact),
                    ),
                    ("numMessages", messages.to_string()),
                    ("accepted", bool_str(accepted)),
                    ("accessControlList", acl_json(&contact, accepted, blocked)),
                    ("blocked", bool_str(blocked)),
                    ("loading", bool_str(false)),
                    ("lastMsgTime", String::new()),
                ],
            ))
        }
        Event::PeerStateChanged {
            profile,
            conversation_id,
            contact,
            state,
        } => one(GoEvent::new(
            "PeerStateChange",
            [
                ("ProfileOnion", profile),
                ("RemotePeer", contact),
                ("ConnectionState", peer_state_name(state).into()),
                ("ConversationID", conversation_id.to_string()),
            ],
        )),
        Event::NewMessage {
            profile,
            conversation_id,
            contact,
            message_id,
            signature,
            body,
            content_hash,
            timestamp,
            ..
        } => {
            let nick = contact_name(r, &profile, conversation_id)
                .await
                .unwrap_or_else(|| contact.clone());
            let picture = match r.profile(&profile) {
                Ok(p) => pictures::contact_picture(&p, conversation_id, &contact).await,
                Err(_) => pictures::default_profile_picture(&contact),
            };
            one(GoEvent::new(
                "NewMessageFromPeer",
                [
                    ("ProfileOnion", profile),
                    ("ConversationID", conversation_id.to_string()),
                    ("RemotePeer", contact),
                    ("Nick", nick),
                    ("TimestampReceived", timestamp),
                    ("Data", body),
                    ("Index", message_id.to_string()),
                    ("ContentHash", content_hash),
                    ("Signature", signature),
                    ("notification", NOTIFICATION.into()),
                    ("picture", picture),
                ],
            ))
        }
        Event::Acknowledged {
            profile,
            conversation_id,
            contact,
            message_id,
            ..
        } => one(GoEvent::new(
            "IndexedAcknowledgement",
            [
                ("ProfileOnion", profile),
                ("ConversationID", conversation_id.to_string()),
                ("Index", message_id.to_string()),
                ("RemotePeer", contact),
            ],
        )),
        Event::MessageFailed {
            profile,
            conversation_id,
            contact,
            message_id,
            reason,
            ..
        } => one(GoEvent::new(
            "IndexedFailure",
            [
                ("ProfileOnion", profile),
                ("ConversationID", conversation_id.to_string()),
                ("Index", message_id.to_string()),
                ("RemotePeer", contact),
                ("Error", reason),
            ],
        )),
        Event::AttributeUpdated {
            profile,
            contact,
            key,
            value,
            ..
        } => match key.strip_prefix("public.") {
            Some(path) => one(GoEvent::new(
                "NewRetValMessageFromPeer",
                [
                    ("ProfileOnion", profile),
                    ("RemotePeer", contact),
                    ("Scope", "public".into()),
                    ("Path", path.to_owned()),
                    ("Exists", bool_str(true)),
                    ("Data", value),
                ],
            )),
            None => Vec::new(),
        },
        Event::ServerStateChanged {
            profile,
            server,
            state,
            ..
        } => one(GoEvent::new(
            "ServerStateChange",
            [
                ("ProfileOnion", profile),
                ("GroupServer", server),
                ("ConnectionState", server_state_name(state).into()),
            ],
        )),
        Event::GroupCreated {
            profile,
            conversation_id,
            group_id,
            name,
            server,
            accepted: true,
        } => one(GoEvent::new(
            "GroupCreated",
            [
                ("ProfileOnion", profile),
                ("ConversationID", conversation_id.to_string()),
                ("picture", pictures::default_group_picture(&group_id)),
                ("GroupID", group_id),
                ("GroupServer", server),
                ("GroupName", name),
                ("accessControlList", "{}".into()),
            ],
        )),
        Event::GroupInvite {
            profile,
            conversation_id,
            name,
            server,
            ..
        } => {
            let invite = match r.profile(&profile) {
                Ok(p) => p
                    .group(cwtch::ConversationId(conversation_id))
                    .await
                    .map(|g| g.invite)
                    .unwrap_or_default(),
                Err(_) => String::new(),
            };
            one(GoEvent::new(
                "NewGroup",
                [
                    ("ProfileOnion", profile),
                    ("ConversationID", conversation_id.to_string()),
                    ("GroupServer", server),
                    ("GroupName", name),
                    ("GroupInvite", invite),
                ],
            ))
        }
        Event::GroupMessage {
            profile,
            conversation_id,
            author,
            message_id,
            signature,
            body,
            content_hash,
            timestamp,
            ..
        } => {
            let picture = match r.profile(&profile) {
                Ok(p) => pictures::member_picture(&p, &author).await,
                Err(_) => pictures::default_profile_picture(&author),
            };
            one(GoEvent::new(
                "NewMessageFromGroup",
                [
                    ("ProfileOnion", profile),
                    ("ConversationID", conversation_id.to_string()),
                    ("TimestampSent", timestamp),
                    ("RemotePeer", author),
                    ("Index", message_id.to_string()),
                    ("Data", body),
                    ("ContentHash", content_hash),
                    ("Signature", signature),
                    ("picture", picture),
                    ("notification", NOTIFICATION.into()),
                ],
            ))
        }
        Event::FileManifestReceived {
            profile,
            contact,
            file_key,
            path,
            ..
        } => {
            let name = std::path::Path::new(&path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            names
                .0
                .insert((profile.clone(), file_key.clone()), name.clone());
            one(GoEvent::new(
                "ManifestSaved",
                [
                    ("ProfileOnion", profile),
                    ("Handle", contact),
                    ("FileKey", file_key),
                    // The manifest itself stays in the library (its chunk hashes can run
                    // to megabytes); clients read the file's state from the other events.
                    ("SerializedManifest", String::new()),
                    ("TempFile", format!("{path}.part")),
                    ("NameSuggestion", name),
                ],
            ))
        }
        Event::FileDownloadProgress {
            profile,
            file_key,
            done,
            total,
            ..
        } => {
            let name = names
                .0
                .get(&(profile.clone(), file_key.clone()))
                .cloned()
                .unwrap_or_default();
            one(GoEvent::new(
                "FileDownloadProgressUpdate",
                [
                    ("ProfileOnion", profile),
                    ("FileKey", file_key),
                    ("Progress", done.div_ceil(CHUNK_SIZE).to_string()),
                    ("FileSizeInChunks", total.div_ceil(CHUNK_SIZE).to_string()),
                    ("NameSuggestion", name),
                ],
            ))
        }
        Event::FileDownloaded {
            profile,
            file_key,
            path,
            ..
        } => one(GoEvent::new(
            "FileDownloaded",
            [
                ("ProfileOnion", profile),
                ("FileKey", file_key),
                ("FilePath", path.clone()),
                ("TempFile", path),
            ],
        )),
        other => {
            debug!(
                event = other_name(&other),
                "library event without a Go counterpart; not forwarded"
            );
            Vec::new()
        }
    }
}

fn other_name(e: &Event) -> String {
    serde_json::to_value(e)
        .ok()
        .and_then(|v| v.get("event").and_then(|n| n.as_str().map(str::to_owned)))
        .unwrap_or_default()
}
