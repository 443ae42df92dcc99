//! What the exported functions do, in safe async Rust: arguments already converted, results
//! as Rust values; `crate::ffi` turns them into C values and JSON.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use cwtch::{
    Connections, ContactId, Content, ConversationId, MessageId, MessageInfo, MessageState, Onion,
    ProfileHandle, ProfileId,
};

use crate::app::{password, CallResult, Global, Running};
use crate::events;
use crate::json::{
    to_json, AccessControl, AccessControlList, Attribute, EnhancedMessage, GlobalSettings, GoEvent,
    SharedFile,
};
use crate::pictures;

/// Go's answer to `AppErrLoaded0` (cwtch `event.AppErrLoaded0`); cwtch-imp creates its
/// profile when it sees exactly this text.
pub(crate) const LOADED_0_PROFILES: &str = "Loaded 0 profiles";

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn conv(c: i32) -> ContactId {
    ContactId::Conversation(ConversationId(i64::from(c)))
}

/// Whether a conversation id names one of the profile's groups.
async fn is_group(p: &ProfileHandle, c: i32) -> bool {
    p.is_group(ConversationId(i64::from(c)))
}

/// A key without a scope gets `default_scope` (Go: `attr.ParseZone` then a scope).
fn scoped(key: &str, default_scope: &str) -> String {
    const SCOPES: [&str; 4] = ["public.", "local.", "peer.", "conversation."];
    if SCOPES.iter().any(|s| key.starts_with(s)) {
        key.to_owned()
    } else {
        format!("{default_scope}.{key}")
    }
}

pub(crate) async fn create_profile(
    r: &Running,
    name: &str,
    pass: &str,
    autostart: bool,
) -> CallResult<()> {
    let pw = password(pass);
    let info = r
        .app
        .create_profile_with_autostart(name, &pw, autostart)
        .await
        .map_err(err)?;
    r.created
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(info.profile_id.as_str().to_owned());
    if let Err(e) = r.app.load_profile(info.profile_id.as_str(), &pw).await {
        r.created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(info.profile_id.as_str());
        return Err(err(e));
    }
    Ok(())
}

/// Load every profile `pass` opens that is not loaded yet; returns how many were loaded.
pub(crate) async fn load_profiles(r: &Running, pass: &str) -> CallResult<usize> {
    let pw = password(pass);
    let list = r.app.list_profiles(&pw).await.map_err(err)?;
    let mut loaded = 0;
    for info in list.into_iter().filter(|i| !i.loaded) {
        match r.app.load_profile(info.profile_id.as_str(), &pw).await {
            Ok(_) => loaded += 1,
            Err(e) => {
                tracing::warn!(error = %cwtch::Sensitive(&e), "c_LoadProfiles: a profile did not load")
            }
        }
    }
    Ok(loaded)
}

async fn profile_id(r: &Running, onion: &str, pass: &str) -> CallResult<ProfileId> {
    if let Ok(p) = r.profile(onion) {
        return Ok(p.profile_id().clone());
    }
    r.app
        .list_profiles(&password(pass))
        .await
        .map_err(err)?
        .into_iter()
        .find(|i| i.onion.as_str() == onion)
        .map(|i| i.profile_id)
        .ok_or_else(|| "no profile with that onion opens with that password".to_owned())
}

pub(crate) async fn delete_profile(
    g: &Global,
    r: &Running,
    onion: &str,
    pass: &str,
) -> CallResult<()> {
    let id = profile_id(r, onion, pass).await?;
    r.app
        .delete_profile(&id, &password(pass))
        .await
        .map_err(err)?;
    g.emit(GoEvent::new("PeerDeleted", [("Identity", onion)]));
    Ok(())
}

pub(crate) async fn change_password(
    r: &Running,
    onion: &str,
    current: &str,
    new: &str,
    again: &str,
) -> CallResult<()> {
    if new != again {
        return Err("the new passwords differ".into());
    }
    let p = r.profile(onion)?;
    p.change_password(&password(current), &password(new))
        .await
        .map_err(err)
}

pub(crate) async fn export_profile(r: &Running, onion: &str, file: &str) -> CallResult<()> {
    let p = r.profile(onion)?;
    p.export(Path::new(file)).await.map_err(err)
}

/// Import an exported profile and load it (`NewPeer` follows).
pub(crate) async fn import_profile(r: &Running, file: &str, pass: &str) -> CallResult<()> {
    let pw = password(pass);
    let info = r
        .app
        .import_profile(Path::new(file), &pw)
        .await
        .map_err(err)?;
    r.app
        .load_profile(info.profile_id.as_str(), &pw)
        .await
        .map_err(err)?;
    Ok(())
}

/// `c_ImportBundle`: a peer's onion adds a contact (accepted); `server:` imports a server;
/// `tofubundle:` / `torv3` joins a group. Go's answers: `importBundle.success`, or
/// `importBundle.` and the error (UNCONFIRMED wording of the errors).
pub(crate) async fn import_bundle(r: &Running, onion: &str, bundle: &str) -> CallResult<()> {
    let p = r.profile(onion)?;
    let b = bundle.trim();
    if b.starts_with("server:") {
        p.add_server(b).await.map(|_| ()).map_err(err)
    } else if b.starts_with("tofubundle:") || b.starts_with("torv3") {
        p.join_group(b).await.map(|_| ()).map_err(err)
    } else {
        p.add_contact(b).await.map(|_| ()).map_err(err)
    }
}

pub(crate) async fn accept(r: &Running, onion: &str, c: i32) -> CallResult<()> {
    let p = r.profile(onion)?;
    if is_group(&p, c).await {
        p.accept_group(ConversationId(i64::from(c)))
            .await
            .map_err(err)
    } else {
        p.accept(conv(c)).await.map_err(err)
    }
}

pub(crate) async fn block(r: &Running, onion: &str, c: i32, blocked: bool) -> CallResult<()> {
    let p = r.profile(onion)?;
    if blocked {
        p.block(conv(c)).await.map_err(err)
    } else {
        p.unblock(conv(c)).await.map_err(err)
    }
}

/// Go's archive flag: conversation attribute `local.profile.archived` = `true` (UNCONFIRMED
/// key, recalled from Go's `constants.Archived`); shown as `isArchived` in `ContactsJson`.
pub(crate) const ARCHIVED: &str = "local.profile.archived";

pub(crate) async fn archive(r: &Running, onion: &str, c: i32) -> CallResult<()> {
    let p = r.profile(onion)?;
    p.set_contact_attribute(conv(c), ARCHIVED, "true")
        .await
        .map_err(err)
}

pub(crate) async fn delete_conversation(r: &Running, onion: &str, c: i32) -> CallResult<()> {
    let p = r.profile(onion)?;
    if is_group(&p, c).await {
        p.leave_group(ConversationId(i64::from(c)))
            .await
            .map_err(err)
    } else {
        p.delete_contact(conv(c)).await.map_err(err)
    }
}

pub(crate) async fn set_profile_attribute(
    r: &Running,
    onion: &str,
    key: &str,
    value: &str,
) -> CallResult<()> {
    let p = r.profile(onion)?;
    let key = scoped(key, "public");
    if key == "public.profile.name" {
        p.set_name(value).await.map_err(err)
    } else {
        p.set_attribute(&key, value).await.map_err(err)
    }
}

pub(crate) async fn get_profile_attribute(r: &Running, onion: &str, key: &str) -> Attribute {
    let found = match r.profile(onion) {
        Ok(p) => p.attribute(&scoped(key, "public")).await.map_err(err),
        Err(e) => Err(e),
    };
    attribute(found)
}

fn attribute(found: CallResult<Option<String>>) -> Attribute {
    match found {
        Ok(Some(v)) => Attribute {
            Exists: true,
            Value: v,
            Error: None,
        },
        Ok(None) => Attribute {
            Exists: false,
            Value: String::new(),
            Error: None,
        },
        Err(e) => Attribute {
            Exists: false,
            Value: String::new(),
            Error: Some(e),
        },
    }
}

pub(crate) async fn set_conversation_attribute(
    r: &Running,
    onion: &str,
    c: i32,
    key: &str,
    value: &str,
) -> CallResult<()> {
    let p = r.profile(onion)?;
    // A contact's or a group's (a group's name renames it).
    p.set_conversation_attribute(ConversationId(i64::from(c)), &scoped(key, "local"), value)
        .await
        .map_err(err)
}

pub(crate) async fn get_conversation_attribute(
    r: &Running,
    onion: &str,
    c: i32,
    key: &str,
) -> Attribute {
    let found = async {
        let p = r.profile(onion)?;
        p.conversation_attribute(ConversationId(i64::from(c)), &scoped(key, "local"))
            .await
            .map_err(err)
    }
    .await;
    attribute(found)
}

pub(crate) async fn access_control_list(
    r: &Running,
    onion: &str,
    c: i32,
) -> CallResult<AccessControlList> {
    let p = r.profile(onion)?;
    if is_group(&p, c).await {
        // A group's: an entry per member whose messages we block.
        let g = p.group(ConversationId(i64::from(c))).await.map_err(err)?;
        return Ok(g
            .blocked_members
            .into_iter()
            .map(|m| (m, AccessControl::group_member(true)))
            .collect());
    }
    let contact = p.contact(conv(c)).await.map_err(err)?;
    let mut acl = AccessControlList::new();
    acl.insert(
        contact.onion.as_str().to_owned(),
        AccessControl::for_contact(contact.accepted, contact.blocked, contact.permissions),
    );
    Ok(acl)
}

/// `c_UpdateConversationAccessControlList`: the contact's entry is mapped onto this
/// library's model: `Blocked` blocks; otherwise `Read` or `Append` accepts (and unblocks);
/// `ShareFiles` and `RenderImages` set the contact's permissions (a value equal to what is in
/// force already changes nothing, so an entry read and written back keeps "unset, the
/// default"). `AutoConnect` and `ExchangeAttributes` follow acceptance here and are not
/// settable on their own. A group's entries are its members' (by onion): `Blocked` blocks
/// their messages in the group; the other fields are not kept. A contact's ACL with entries
/// for other handles is refused.
pub(crate) async fn update_acl(r: &Running, onion: &str, c: i32, json: &str) -> CallResult<()> {
    let p = r.profile(onion)?;
    let acl: AccessControlList =
        serde_json::from_str(json).map_err(|e| format!("not an access control list: {e}"))?;
    if is_group(&p, c).await {
        // A group's entries are its members': `Blocked` blocks or unblocks their messages.
        let onions = acl
            .keys()
            .map(|m| cwtch::Onion::parse(m).map_err(|e| format!("{m:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        for (m, a) in onions.iter().zip(acl.values()) {
            p.set_group_member_blocked(ConversationId(i64::from(c)), m.as_str(), a.Blocked)
                .await
                .map_err(err)?;
        }
        return Ok(());
    }
    let contact = p.contact(conv(c)).await.map_err(err)?;
    let me = contact.onion.as_str();
    if acl.keys().any(|k| k.as_str() != me) {
        return Err("a contact's access control list has only the contact's entry".into());
    }
    let Some(a) = acl.get(me) else {
        return Err("no entry for the conversation's contact".into());
    };
    let now = contact.permissions;
    let wanted = cwtch::Permissions {
        share_files: if a.ShareFiles == now.shares_files() {
            now.share_files
        } else {
            Some(a.ShareFiles)
        },
        render_images: if a.RenderImages == now.renders_images() {
            now.render_images
        } else {
            Some(a.RenderImages)
        },
    };
    if wanted != now {
        p.set_permissions(conv(c), wanted).await.map_err(err)?;
    }
    if a.Blocked {
        if !contact.blocked {
            p.block(conv(c)).await.map_err(err)?;
        }
    } else {
        if contact.blocked {
            p.unblock(conv(c)).await.map_err(err)?;
        }
        if (a.Read || a.Append) && !contact.accepted {
            p.accept(conv(c)).await.map_err(err)?;
        }
    }
    Ok(())
}

/// The prefix of the message attributes this library keeps for itself (a group post waiting
/// to be seen on its server): not shown to clients.
const OWN_MESSAGE_ATTRIBUTES: &str = "rs.";

/// Go's `EnhancedMessage` for a stored message. `Attributes`: every stored attribute (those
/// a client set with `c_UpdateMessageAttribute` too), with `author`, `ack`, `sent` and `error`
/// as the message's state says. `picture`: the author's ([`pictures::author_picture`]).
pub(crate) fn enhanced(m: &MessageInfo, picture: String) -> EnhancedMessage {
    let (acknowledged, error) = match &m.state {
        MessageState::Acknowledged => (true, String::new()),
        MessageState::Failed { error } => (false, error.clone()),
        _ => (false, String::new()),
    };
    let ts = m.timestamp.clone().unwrap_or_default();
    let mut attributes: BTreeMap<String, String> = m
        .attributes
        .iter()
        .filter(|(k, _)| !k.starts_with(OWN_MESSAGE_ATTRIBUTES))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    attributes.insert("author".to_owned(), m.author.clone());
    attributes.insert("ack".to_owned(), acknowledged.to_string());
    if !ts.is_empty() {
        attributes.insert("sent".to_owned(), ts.clone());
    }
    if !error.is_empty() {
        attributes.insert("error".to_owned(), error.clone());
    }
    EnhancedMessage {
        ID: m.message_id.0,
        LocalIndex: m.message_id.0,
        Timestamp: ts.clone(),
        Received: ts,
        PeerID: m.author.clone(),
        Message: m.body.clone(),
        Signature: base64::engine::general_purpose::STANDARD.encode(m.signature.as_bytes()),
        PreviousMessageSig: None,
        ReceivedByServer: false,
        Acknowledged: acknowledged,
        Error: error,
        Flags: 0,
        ContentHash: m.content_hash.clone(),
        ContactImage: picture,
        Attributes: attributes,
    }
}

/// [`enhanced`] with the author's picture.
async fn enhanced_by(p: &ProfileHandle, m: &MessageInfo) -> EnhancedMessage {
    enhanced(m, pictures::author_picture(p, &m.author).await)
}

/// The overlay wrapper `{"o": <int>, "d": <string>}` a client sends.
#[derive(serde::Deserialize)]
struct Wrapper {
    o: i64,
    d: String,
}

pub(crate) async fn send_message(
    r: &Running,
    onion: &str,
    c: i32,
    msg: &str,
) -> CallResult<EnhancedMessage> {
    let p = r.profile(onion)?;
    let w: Wrapper = serde_json::from_str(msg)
        .map_err(|e| format!("the message is not an overlay {{\"o\":…,\"d\":…}}: {e}"))?;
    if is_group(&p, c).await {
        let group = ConversationId(i64::from(c));
        let sent = p
            .send_group_content(group, &Content::parse(msg))
            .await
            .map_err(err)?;
        let m = p
            .group_messages(group, 0, 50)
            .await
            .map_err(err)?
            .into_iter()
            .find(|m| m.message_id == sent.message_id)
            .ok_or("the message sent is not stored")?;
        return Ok(enhanced_by(&p, &m).await);
    }
    let sent = p.send_overlay(conv(c), w.o, &w.d).await.map_err(err)?;
    let m = p
        .message(conv(c), sent.message_id)
        .await
        .map_err(err)?
        .ok_or("the message sent is not stored")?;
    Ok(enhanced_by(&p, &m).await)
}

pub(crate) async fn message_by_id(
    r: &Running,
    onion: &str,
    c: i32,
    id: i32,
) -> CallResult<EnhancedMessage> {
    let p = r.profile(onion)?;
    let id = MessageId(i64::from(id));
    let m = if is_group(&p, c).await {
        p.group_message(ConversationId(i64::from(c)), id).await
    } else {
        p.message(conv(c), id).await
    }
    .map_err(err)?
    .ok_or_else(|| "no such message".to_owned())?;
    Ok(enhanced_by(&p, &m).await)
}

pub(crate) async fn message_by_hash(
    r: &Running,
    onion: &str,
    c: i32,
    hash: &str,
) -> CallResult<EnhancedMessage> {
    let p = r.profile(onion)?;
    let m = p
        .message_by_content_hash(conv(c), hash)
        .await
        .map_err(err)?
        .ok_or_else(|| "no such message".to_owned())?;
    Ok(enhanced_by(&p, &m).await)
}

/// `count` messages, newest first, skipping the `index` newest (Go's
/// `GetMostRecentMessages`).
pub(crate) async fn messages(
    r: &Running,
    onion: &str,
    c: i32,
    index: i32,
    count: u32,
) -> CallResult<Vec<EnhancedMessage>> {
    let p = r.profile(onion)?;
    let offset = u64::try_from(index).map_err(|_| "negative index".to_owned())?;
    let list = if is_group(&p, c).await {
        p.group_messages(ConversationId(i64::from(c)), offset, count)
            .await
    } else {
        p.messages(conv(c), offset, count).await
    }
    .map_err(err)?;
    let mut pictures = pictures::AuthorPictures::new(&p);
    let mut out = Vec::with_capacity(list.len());
    for m in &list {
        out.push(enhanced(m, pictures.of(&m.author).await));
    }
    Ok(out)
}

/// Share a file with a contact; returns the file message sent (overlay 200).
pub(crate) async fn share_file(
    r: &Running,
    onion: &str,
    c: i32,
    path: &str,
) -> CallResult<serde_json::Value> {
    let p = r.profile(onion)?;
    if c == PROFILE_IMAGE_CONVERSATION {
        // The profile's picture: checked, shared with every accepted contact, its key
        // published as `public.profile.custom-profile-image`.
        let (key, _) = p.set_profile_image(Path::new(path)).await.map_err(err)?;
        return Ok(serde_json::json!({ "FileKey": key }));
    }
    if c < 0 {
        return Err("no such conversation (-1 shares a profile image)".into());
    }
    let m = if is_group(&p, c).await {
        let group = ConversationId(i64::from(c));
        let (_key, sent) = p
            .share_file_in_group(group, Path::new(path))
            .await
            .map_err(err)?;
        p.group_message(group, sent.message_id).await
    } else {
        let (_key, sent) = p.share_file(conv(c), Path::new(path)).await.map_err(err)?;
        p.message(conv(c), sent.message_id).await
    }
    .map_err(err)?
    .ok_or("the message sent is not stored")?;
    serde_json::to_value(enhanced_by(&p, &m).await).map_err(err)
}

/// `c_ShareFile`'s conversation for the profile's own picture (Go's UI passes -1).
pub(crate) const PROFILE_IMAGE_CONVERSATION: i32 = -1;

/// Our shares in a conversation.
pub(crate) async fn shared_files(r: &Running, onion: &str, c: i32) -> CallResult<Vec<SharedFile>> {
    let p = r.profile(onion)?;
    Ok(p.files(Some(conv(c)))
        .await
        .map_err(err)?
        .into_iter()
        .filter(|f| f.ours)
        .map(|f| SharedFile {
            Active: f.state == "sharing",
            FileKey: f.file_key,
            Path: f.path.unwrap_or_default(),
            DateShared: String::new(),
            Expired: false,
        })
        .collect())
}

pub(crate) async fn set_sharing(r: &Running, onion: &str, key: &str, on: bool) -> CallResult<()> {
    let p = r.profile(onion)?;
    if on {
        p.restart_sharing(key).await.map_err(err)
    } else {
        p.stop_sharing(key).await.map_err(err)
    }
}

/// Download a file a contact offered into the directory of `file_path` (under the offered
/// name: this library names downloads itself; `manifest_path` is not used).
pub(crate) async fn download(
    r: &Running,
    onion: &str,
    c: i32,
    file_path: &str,
    key: &str,
) -> CallResult<()> {
    let p = r.profile(onion)?;
    let dir = Path::new(file_path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or("the download path has no directory")?;
    download_in(&p, c, key, dir).await.map_err(err)
}

/// Download (or resume) `key`, offered in conversation `c` (a contact's or a group's) into
/// `dir`.
async fn download_in(p: &cwtch::ProfileHandle, c: i32, key: &str, dir: &Path) -> cwtch::Result<()> {
    if is_group(p, c).await {
        p.download_group_file(ConversationId(i64::from(c)), key, dir)
            .await
            .map(|_| ())
    } else {
        p.download_file(conv(c), key, dir).await.map(|_| ())
    }
}

/// `c_CheckDownloadStatus`: a completed download is announced again (`FileDownloaded`);
/// otherwise nothing (progress comes as events).
pub(crate) async fn check_download(
    g: &Global,
    r: &Running,
    onion: &str,
    key: &str,
) -> CallResult<()> {
    let p = r.profile(onion)?;
    let f = p
        .files(None)
        .await
        .map_err(err)?
        .into_iter()
        .find(|f| !f.ours && f.file_key == key)
        .ok_or("no download with that file key")?;
    if f.state == "downloaded" {
        let path = f.path.unwrap_or_default();
        g.emit(GoEvent::new(
            "FileDownloaded",
            [
                ("ProfileOnion", onion),
                ("FileKey", key),
                ("FilePath", path.as_str()),
                ("TempFile", path.as_str()),
            ],
        ));
    } else {
        // Go's "interrupted" report: progress and size -1, where it is being saved (a
        // client offers to resume it, with c_VerifyOrResumeDownload).
        let path = f.path.unwrap_or_default();
        // The name it gets, as in its other progress reports (`libcwtch` reads this key:
        // an event without it panics the client).
        let name = std::path::Path::new(&path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or(f.name);
        g.emit(GoEvent::new(
            "FileDownloadProgressUpdate",
            [
                ("ProfileOnion", onion),
                ("FileKey", key),
                ("Progress", "-1"),
                ("FileSizeInChunks", "-1"),
                ("FilePath", path.as_str()),
                ("NameSuggestion", name.as_str()),
            ],
        ));
    }
    Ok(())
}

/// `c_VerifyOrResumeDownloadDefaultLimit`: a completed download (verified chunk by chunk
/// when it was written) is announced again; an unfinished one is resumed where it was going.
pub(crate) async fn verify_or_resume(
    g: &Global,
    r: &Running,
    onion: &str,
    c: i32,
    key: &str,
) -> CallResult<()> {
    let p = r.profile(onion)?;
    let f = p
        .files(Some(conv(c)))
        .await
        .map_err(err)?
        .into_iter()
        .find(|f| !f.ours && f.file_key == key)
        .ok_or("no file with that key offered in that conversation")?;
    if f.state == "downloaded" {
        return check_download(g, r, onion, key).await;
    }
    let dir = f
        .path
        .as_deref()
        .and_then(|p| Path::new(p).parent().map(Path::to_path_buf))
        .ok_or("not downloaded yet: start with c_DownloadFileDefaultLimit")?;
    match download_in(&p, c, key, &dir).await {
        // Already resumed (the library resumes unfinished downloads when a profile loads;
        // clients ask for it too, as they must with Go): nothing to do, not an error.
        Ok(()) | Err(cwtch::Error::DownloadRunning) => Ok(()),
        Err(e) => Err(err(e)),
    }
}

/// `c_SendInviteMessage`: invite the contact `c` to the group `target`, or suggest the
/// contact `target` to it. Returns the message sent.
pub(crate) async fn send_invite(
    r: &Running,
    onion: &str,
    c: i32,
    target: i32,
) -> CallResult<EnhancedMessage> {
    let p = r.profile(onion)?;
    let sent = if is_group(&p, target).await {
        p.invite_to_group(ConversationId(i64::from(target)), conv(c))
            .await
            .map_err(err)?
    } else {
        let suggested = p.contact(conv(target)).await.map_err(err)?.onion;
        p.send_contact_suggestion(conv(c), &suggested)
            .await
            .map_err(err)?
    };
    let m = p
        .message(conv(c), sent.message_id)
        .await
        .map_err(err)?
        .ok_or("the message sent is not stored")?;
    Ok(enhanced_by(&p, &m).await)
}

fn onion_arg(what: &str, handle: &str) -> CallResult<Onion> {
    Onion::parse(handle.trim()).map_err(|e| format!("{what} is not a Cwtch address: {e}"))
}

/// `c_ActivatePeerEngine` / `c_DeactivatePeerEngine`.
pub(crate) async fn set_engine_active(r: &Running, onion: &str, active: bool) -> CallResult<()> {
    let p = r.profile(onion)?;
    p.set_engine_active(active).await.map_err(err)
}

/// `c_ConfigureConnections`: what the engine does on its own; activates it (as Go's).
pub(crate) async fn configure_connections(
    r: &Running,
    onion: &str,
    listen: bool,
    peers: bool,
    servers: bool,
) -> CallResult<()> {
    let p = r.profile(onion)?;
    p.configure_connections(Connections {
        listen,
        peers,
        servers,
    })
    .await
    .map_err(err)
}

/// `c_PeerWithOnion`: connect to a contact now.
pub(crate) async fn peer_with(r: &Running, onion: &str, handle: &str) -> CallResult<()> {
    let p = r.profile(onion)?;
    let contact = onion_arg("the peer", handle)?;
    p.connect_to_peer(ContactId::Onion(contact))
        .await
        .map_err(err)
}

/// `c_DisconnectFromPeer`: close the connections to a contact; it is not dialled again
/// until `c_PeerWithOnion`.
pub(crate) async fn disconnect_from_peer(r: &Running, onion: &str, handle: &str) -> CallResult<()> {
    let p = r.profile(onion)?;
    let contact = onion_arg("the peer", handle)?;
    p.disconnect_from_peer(ContactId::Onion(contact))
        .await
        .map_err(err)
}

/// `c_QueueJoinServer`: connect to a server now.
pub(crate) async fn join_server(r: &Running, onion: &str, server: &str) -> CallResult<()> {
    let p = r.profile(onion)?;
    p.join_server(server).await.map_err(err)
}

/// `c_DisconnectFromServer`: close the connection to a server; it is not joined again until
/// `c_QueueJoinServer`.
pub(crate) async fn disconnect_from_server(
    r: &Running,
    onion: &str,
    server: &str,
) -> CallResult<()> {
    let p = r.profile(onion)?;
    p.disconnect_from_server(server).await.map_err(err)
}

/// `c_SearchConversations`: search every conversation's messages; returns the search id.
/// Each match is sent as `SearchResult {ProfileOnion, SearchID, ConversationID, Index,
/// RowIndex}` (`Index`: the message id; `RowIndex`: its position, newest first, the `index`
/// of `c_GetMessages` that returns it first), then `SearchFinished {ProfileOnion, SearchID,
/// NumResults}` (UNCONFIRMED names: Go's search events are not parsed by libcwtch 0.8.0).
pub(crate) async fn search(
    g: &'static Global,
    r: &Running,
    onion: &str,
    pattern: &str,
) -> CallResult<String> {
    let p = r.profile(onion)?;
    if pattern.trim().is_empty() {
        return Err("search pattern (empty)".into());
    }
    let id = rand_core::RngCore::next_u64(&mut rand_core::OsRng).to_string();
    // The id now; the matches as they are found (a profile's every message may be read).
    let (onion, pattern, search) = (onion.to_owned(), pattern.to_owned(), id.clone());
    tokio::spawn(async move {
        let found = p.search_messages(&pattern).await;
        let hits = found.as_deref().unwrap_or_default();
        for h in hits {
            g.emit(GoEvent::new(
                "SearchResult",
                [
                    ("ProfileOnion", onion.clone()),
                    ("SearchID", search.clone()),
                    ("ConversationID", h.conversation_id.0.to_string()),
                    ("Index", h.message_id.0.to_string()),
                    ("RowIndex", h.row_index.to_string()),
                ],
            ));
        }
        let mut fields = vec![
            ("ProfileOnion", onion),
            ("SearchID", search),
            ("NumResults", hits.len().to_string()),
        ];
        if let Err(e) = &found {
            fields.push(("Error", e.to_string()));
        }
        g.emit(GoEvent::new("SearchFinished", fields));
    });
    Ok(id)
}

/// `c_UpdateMessageAttribute`: set an attribute of a message (channel 0, the only one).
/// Keys are stored as given (message attributes have no scope in Go); the keys the library
/// keeps (`author`, `ack`, `sent`, `error`, `rs.*`) are refused.
pub(crate) async fn update_message_attribute(
    r: &Running,
    onion: &str,
    c: i32,
    channel: i32,
    id: i32,
    key: &str,
    value: &str,
) -> CallResult<()> {
    if channel != 0 {
        return Err("only channel 0 exists".into());
    }
    if key.starts_with(OWN_MESSAGE_ATTRIBUTES) {
        return Err("the rs.* message attributes are kept by the library".into());
    }
    let p = r.profile(onion)?;
    p.set_message_attribute(
        ConversationId(i64::from(c)),
        MessageId(i64::from(id)),
        key,
        value,
    )
    .await
    .map_err(err)
}

/// `c_GetServerInfoList`: `UpdateServerInfo {ProfileOnion, ServerList}`.
pub(crate) async fn server_info(g: &Global, r: &Running, onion: &str) -> CallResult<()> {
    let p = r.profile(onion)?;
    let list = events::server_list(&p).await;
    g.emit(GoEvent::new(
        "UpdateServerInfo",
        [
            ("ProfileOnion", onion.to_owned()),
            ("ServerList", to_json(&list)),
        ],
    ));
    Ok(())
}

pub(crate) async fn start_group(
    r: &Running,
    onion: &str,
    name: &str,
    server: &str,
) -> CallResult<()> {
    let p = r.profile(onion)?;
    p.create_group(name, server).await.map(|_| ()).map_err(err)
}

pub(crate) async fn delete_server_info(r: &Running, onion: &str, server: &str) -> CallResult<()> {
    let p = r.profile(onion)?;
    p.remove_server(server).await.map_err(err)
}

pub(crate) async fn update_settings(g: &Global, r: &Running, json: &str) -> CallResult<()> {
    let s: GlobalSettings = serde_json::from_str(json)
        .map_err(|e| format!("settings are not GlobalSettings JSON: {e}"))?;
    // Only a change is announced: cwtch-imp saves the settings every time it receives
    // `UpdateGlobalSettings`, so announcing every save would loop forever.
    if r.update_settings(s).await? {
        g.emit(events::update_global_settings(&r.settings()));
    }
    Ok(())
}

/// `c_ReconnectCwtchForeground`: the state a client that lost its own is sent again:
/// `NewPeer` (with `Reload: "true"`) for every loaded profile, the settings, the network
/// status.
pub(crate) async fn reconnect(g: &Global, r: &Running) {
    for p in r.app.loaded_profiles() {
        g.emit(events::new_peer(&p, false, true).await);
    }
    g.emit(events::update_global_settings(&r.settings()));
    let s = r.app.acn_status();
    g.emit(GoEvent::new(
        "ACNStatus",
        [("Progress", s.progress.to_string()), ("Status", s.summary)],
    ));
}

/// Ours (Go's is memory statistics of the Go runtime).
pub(crate) fn debug_info(g: &Global) -> String {
    let profiles = g.running().map(|r| r.app.loaded_profiles().len()).ok();
    to_json(&serde_json::json!({
        "Implementation": "cwtch-rs libCwtch",
        "Version": env!("CARGO_PKG_VERSION"),
        "Started": g.started(),
        "LoadedProfiles": profiles.unwrap_or(0),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_without_scope_get_the_default_one() {
        assert_eq!(scoped("profile.name", "public"), "public.profile.name");
        assert_eq!(scoped("local.profile.name", "public"), "local.profile.name");
        assert_eq!(scoped("profile.name", "local"), "local.profile.name");
    }
}
