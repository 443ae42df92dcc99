//! [`ProfileHandle`]: everything a client does with a loaded profile.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use cwtch_storage::{keys, Conversation, ConversationId, Message, MessageId, Password, ProfileId};
use tokio::sync::broadcast;
use torv3::Onion;
use tracing::info;

use crate::app::AppInner;
use crate::error::{Error, Result};
use crate::event::{ConnectionState, Event, MessageState};
use crate::groups::GroupRef;
use crate::overlay::{self, Content};
use crate::runtime::{PasswordCheck, Runtime, BLOCK_UNKNOWN_ATTRIBUTE};
use crate::store::Backend;
use crate::types::{Contact, ContactId, GroupInfo, MessageInfo, SentMessage, ServerInfo};

/// Profile attribute: the status shown to contacts (spec §7.3, UI key CONFIRMED).
pub const PUBLIC_PROFILE_STATUS: &str = "public.profile.profile-status";

/// Message attributes the library keeps itself, which
/// [`ProfileHandle::set_message_attribute`] refuses: the author, the acknowledgement, the
/// time, the failure, and a group post waiting to be seen on its server.
pub const LIBRARY_MESSAGE_ATTRIBUTES: [&str; 5] = [
    keys::MESSAGE_AUTHOR,
    keys::MESSAGE_ACK,
    keys::MESSAGE_SENT,
    keys::MESSAGE_ERROR,
    crate::groups::MESSAGE_POST,
];

/// A loaded profile: its contacts, messages and settings, and its running engine.
///
/// Cheap to clone; all clones are the same profile. Every method is async and never blocks
/// the executor (storage runs on the profile's own thread). Dropping handles does not stop
/// the engine: call [`ProfileHandle::shutdown`] (or [`Cwtch::shutdown`](crate::Cwtch::shutdown)).
#[derive(Clone)]
pub struct ProfileHandle {
    pub(crate) rt: Arc<Runtime>,
    pub(crate) app: Weak<AppInner>,
}

impl std::fmt::Debug for ProfileHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileHandle")
            .field("profile_id", &self.rt.profile_id)
            .field("onion", &self.rt.onion)
            .finish_non_exhaustive()
    }
}

impl ProfileHandle {
    /// The profile's address.
    pub fn onion(&self) -> &Onion {
        &self.rt.onion
    }

    /// The profile's local id.
    pub fn profile_id(&self) -> &ProfileId {
        &self.rt.profile_id
    }

    /// Subscribe to events (of every profile of the [`Cwtch`](crate::Cwtch); filter with
    /// [`Event::profile`]).
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.rt.events.subscribe()
    }

    /// Whether the profile's onion service is hosted (contacts can reach us).
    pub fn is_online(&self) -> bool {
        *self.rt.online.borrow()
    }

    /// Wait until the onion service is hosted; false if `timeout` passes first.
    pub async fn wait_online(&self, timeout: Duration) -> bool {
        let mut rx = self.rt.online.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|o| *o))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Whether [`ProfileHandle::shutdown`] has been called.
    pub fn is_shut_down(&self) -> bool {
        self.rt.cancel.is_cancelled()
    }

    // ---- own profile ----

    /// Our public name.
    pub async fn name(&self) -> Result<String> {
        Ok(self
            .attribute(keys::PUBLIC_PROFILE_NAME)
            .await?
            .unwrap_or_default())
    }

    /// Set our name: `public.profile.name` (what contacts fetch) and `local.profile.name`.
    /// The name is trimmed; empty, multi-line or longer than
    /// [`LOCAL_NAME_MAX_CHARS`](crate::LOCAL_NAME_MAX_CHARS) characters is
    /// [`Error::Invalid`](crate::Error::Invalid).
    pub async fn set_name(&self, name: &str) -> Result<()> {
        let n = crate::names::check_local_name(name)?;
        self.rt
            .store
            .call(move |s| {
                s.set_attribute(keys::PUBLIC_PROFILE_NAME, &n)?;
                s.set_attribute(keys::LOCAL_PROFILE_NAME, &n)
            })
            .await
    }

    /// Set our status (`public.profile.profile-status`), which contacts fetch.
    pub async fn set_status(&self, status: &str) -> Result<()> {
        self.set_attribute(PUBLIC_PROFILE_STATUS, status).await
    }

    /// A profile attribute by its full key (`public.profile.name`, `local.…`).
    pub async fn attribute(&self, key: &str) -> Result<Option<String>> {
        let k = key.to_owned();
        self.rt.store.call(move |s| s.attribute(&k)).await
    }

    /// Set a profile attribute by its full key. `public.*` attributes are disclosed to
    /// accepted contacts that ask (getVal). The onion attribute cannot be changed.
    pub async fn set_attribute(&self, key: &str, value: &str) -> Result<()> {
        if key.is_empty() || key == keys::PUBLIC_PROFILE_ONION || key == keys::LOCAL_PROFILE_TAG {
            return Err(Error::Invalid {
                what: "attribute key",
            });
        }
        let (k, v) = (key.to_owned(), value.to_owned());
        self.rt.store.call(move |s| s.set_attribute(&k, &v)).await
    }

    /// Whether connections from unknown peers are refused (no contact request is created).
    pub fn block_unknown(&self) -> bool {
        self.rt.block_unknown.load(Ordering::Relaxed)
    }

    /// Refuse (or allow) connections from unknown peers. Stored in the profile.
    pub async fn set_block_unknown(&self, on: bool) -> Result<()> {
        let v = if on { keys::TRUE } else { keys::FALSE };
        self.rt
            .store
            .call(move |s| s.set_attribute(BLOCK_UNKNOWN_ATTRIBUTE, v))
            .await?;
        self.rt.block_unknown.store(on, Ordering::Relaxed);
        Ok(())
    }

    /// Whether image previews and profile pictures are on (off by default).
    pub fn image_previews(&self) -> bool {
        self.rt.image_previews.load(Ordering::Relaxed)
    }

    /// Turn image previews and profile pictures on or off (stored in the profile as
    /// [`IMAGE_PREVIEWS_ATTRIBUTE`](crate::images::IMAGE_PREVIEWS_ATTRIBUTE); off by default,
    /// as in Go, where it is an experiment with a warning).
    ///
    /// **What turning it on exposes.** Images are then downloaded *automatically*, without
    /// you asking for each: the profile pictures your accepted contacts publish, and image
    /// files (by name: png, jpg, jpeg, gif, webp; at most 20 MiB) they offer in a
    /// conversation. A contact sees each download: it learns that you are online and
    /// fetching, and when, without you having opened its message. And each image is parsed
    /// by image decoders, which then handle hostile input from anyone you accepted (the
    /// decoders are memory-safe Rust with limits on dimensions and memory, but a decoder bug
    /// is still attack surface). Only accepted, unblocked contacts' images are fetched, only
    /// up to 20 MiB, into the profile's [`IMAGES_DIR`](crate::IMAGES_DIR) folder, and only
    /// images that decode are reported ([`Event::ImagePreview`]).
    ///
    /// Turning it on fetches the profile pictures contacts have published already; turning
    /// it off stops the automatic downloads running (they resume when it is on again).
    pub async fn set_image_previews(&self, on: bool) -> Result<()> {
        self.rt.set_image_previews(on).await
    }

    /// Use the image at `path` as our profile picture: it is checked (it must decode as
    /// PNG, JPEG, GIF or WebP within 8192×8192 pixels, and be at most 20 MiB), shared with
    /// every accepted contact (also after restarts), and its file key is published as the
    /// public attribute `profile.custom-profile-image`
    /// ([`PROFILE_IMAGE_ATTRIBUTE`](crate::images::PROFILE_IMAGE_ATTRIBUTE)), which contacts
    /// fetch when they next connect. The previous picture is no longer served. The file is
    /// served from where it is: moving or changing it stops it being served. Returns the
    /// file key and what the image is.
    pub async fn set_profile_image(&self, path: &Path) -> Result<(String, crate::ImageInfo)> {
        let (key, info) = self.rt.set_profile_image(path).await?;
        Ok((key.to_string(), info))
    }

    /// Remove our profile picture: it is no longer served, and contacts drop theirs when they
    /// next ask for our attributes. False if there was none.
    pub async fn remove_profile_image(&self) -> Result<bool> {
        self.rt.remove_profile_image().await
    }

    /// Our profile picture's file ([`set_profile_image`](Self::set_profile_image)), if we
    /// have one and the file is still there.
    pub async fn our_profile_image(&self) -> Result<Option<std::path::PathBuf>> {
        self.rt.our_profile_image().await
    }

    /// A contact's profile picture, if image previews fetched it and it decoded.
    pub async fn profile_image(
        &self,
        contact: impl Into<ContactId>,
    ) -> Result<Option<crate::Image>> {
        let r = self.rt.resolve(&contact.into())?;
        self.rt.profile_image(r.conversation).await
    }

    /// An image downloaded from a conversation (a preview or a profile picture), if it was
    /// checked and is still there. The conversation is a contact's, or a group's (by its
    /// conversation id).
    pub async fn image(
        &self,
        conversation: impl Into<ContactId>,
        file_key: &str,
    ) -> Result<Option<crate::Image>> {
        let key = parse_file_key(file_key)?;
        let conv = match conversation.into() {
            ContactId::Conversation(id) if self.rt.state().groups.groups.contains_key(&id) => id,
            c => self.rt.resolve(&c)?.conversation,
        };
        self.rt.image(conv, key).await
    }

    /// Change the profile's password (re-encrypts the database, crash-safely).
    pub async fn change_password(&self, old: &Password, new: &Password) -> Result<()> {
        let (o, n) = (old.clone(), new.clone());
        self.rt
            .store
            .call(move |s| s.change_password(&o, &n))
            .await?;
        *self.rt.password.lock().unwrap_or_else(|e| e.into_inner()) = PasswordCheck::new(new);
        Ok(())
    }

    /// Export the open profile (Go's archive format: a gzip'd tar of `<id>/{db,SALT,VERSION}`)
    /// to a new file at `path` (0600; an existing file is refused).
    pub async fn export(&self, path: &Path) -> Result<()> {
        let path = path.to_path_buf();
        self.rt
            .store
            .with_backend(move |b| match b {
                Backend::Disk(p) => {
                    let f = crate::app::create_new_file(&path)?;
                    p.export(std::io::BufWriter::new(f)).map_err(Error::from)
                }
                Backend::Memory(_) => Err(Error::Unsupported("export of an in-memory profile")),
            })
            .await
    }

    // ---- contacts ----

    /// Add a contact by address (accepted). Adding an existing contact returns it (a pending
    /// request is accepted). Invalid addresses and our own are errors.
    pub async fn add_contact(&self, address: &str) -> Result<Contact> {
        let r = self.rt.add_contact(address).await?;
        self.contact(ContactId::Onion(r.onion)).await
    }

    /// Accept a contact request: its messages are shown normally, our public attributes are
    /// disclosed to it, and we keep connecting to it.
    pub async fn accept(&self, contact: impl Into<ContactId>) -> Result<()> {
        self.rt.accept(&contact.into()).await
    }

    /// Block a contact: close its connections now and after every future authentication,
    /// drop its messages, answer none of its requests.
    pub async fn block(&self, contact: impl Into<ContactId>) -> Result<()> {
        self.rt.set_blocked(&contact.into(), true).await
    }

    /// Unblock a contact.
    pub async fn unblock(&self, contact: impl Into<ContactId>) -> Result<()> {
        self.rt.set_blocked(&contact.into(), false).await
    }

    /// Set what a contact may do beyond chatting (stored in its access-control entry, as Go
    /// stores `ShareFiles` and `RenderImages`). Takes effect for the next file it offers and
    /// the next download started; a download already running goes on.
    pub async fn set_permissions(
        &self,
        contact: impl Into<ContactId>,
        permissions: crate::Permissions,
    ) -> Result<()> {
        self.rt.set_permissions(&contact.into(), permissions).await
    }

    /// Delete a contact and its messages.
    pub async fn delete_contact(&self, contact: impl Into<ContactId>) -> Result<()> {
        self.rt.delete_contact(&contact.into()).await
    }

    /// All contacts (peer-to-peer conversations), by conversation id.
    pub async fn contacts(&self) -> Result<Vec<Contact>> {
        let me = self.rt.onion.as_str().to_owned();
        let rows = self
            .rt
            .store
            .call(move |s| {
                let mut out = Vec::new();
                for c in s.conversations()? {
                    if c.kind() != cwtch_storage::ConversationKind::Contact {
                        continue; // a group or server conversation
                    }
                    let counts = counts(s, &c, &me)?;
                    out.push((c, counts));
                }
                Ok(out)
            })
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(c, n)| self.contact_from(c, n))
            .collect())
    }

    /// One contact.
    pub async fn contact(&self, contact: impl Into<ContactId>) -> Result<Contact> {
        let r = self.rt.resolve(&contact.into())?;
        let conv = r.conversation;
        let me = self.rt.onion.as_str().to_owned();
        let (c, n) = self
            .rt
            .store
            .call(move |s| {
                let c = s
                    .conversation(conv)?
                    .ok_or(cwtch_storage::Error::ConversationNotFound(conv))?;
                let n = counts(s, &c, &me)?;
                Ok((c, n))
            })
            .await?;
        self.contact_from(c, n).ok_or(Error::ContactNotFound)
    }

    /// Mark a contact's messages as read ([`Contact::unread`] counts theirs after).
    pub async fn mark_read(&self, contact: impl Into<ContactId>) -> Result<()> {
        let r = self.rt.resolve(&contact.into())?;
        self.rt.mark_read(r.conversation).await
    }

    fn contact_from(
        &self,
        c: Conversation,
        (message_count, unread): (u64, u64),
    ) -> Option<Contact> {
        let onion = Onion::parse(&c.handle).ok()?;
        let (state, unacknowledged) = {
            let st = self.rt.state();
            st.contacts
                .get(&onion)
                .map(|e| (e.conn_state, e.outbox.len()))
                .unwrap_or((ConnectionState::Disconnected, 0))
        };
        // Ours if we gave one (an empty one is none), else its own.
        let name = c
            .attribute(keys::LOCAL_PROFILE_NAME)
            .filter(|n| !n.is_empty())
            .or_else(|| c.attribute(keys::PUBLIC_PROFILE_NAME))
            .map(str::to_owned);
        Some(Contact {
            conversation_id: c.id,
            permissions: crate::Permissions::from_access(c.own_access()),
            blocked: c.is_blocked(),
            accepted: c.accepted,
            onion,
            name,
            state,
            message_count,
            unread,
            unacknowledged,
            attributes: c.attributes,
        })
    }

    /// Set a conversation attribute, e.g. a local nickname (`local.profile.name`).
    pub async fn set_contact_attribute(
        &self,
        contact: impl Into<ContactId>,
        key: &str,
        value: &str,
    ) -> Result<()> {
        if key.is_empty() {
            return Err(Error::Invalid {
                what: "attribute key",
            });
        }
        let r = self.rt.resolve(&contact.into())?;
        let (conv, k, v) = (r.conversation, key.to_owned(), value.to_owned());
        self.rt
            .store
            .call(move |s| s.set_conversation_attribute(conv, &k, &v))
            .await?;
        self.rt.emit(Event::AttributeUpdated {
            profile: self.rt.profile(),
            conversation_id: conv.0,
            contact: r.onion.as_str().to_owned(),
            key: key.to_owned(),
            value: value.to_owned(),
        });
        Ok(())
    }

    // ---- servers and groups ----

    /// Import a server's `server:` bundle (its signature is checked; a known server with
    /// different keys is refused). Returns the server.
    pub async fn add_server(&self, bundle: &str) -> Result<ServerInfo> {
        self.rt.add_server(bundle).await
    }

    /// The imported servers, with connection state and tokens in hand.
    pub async fn servers(&self) -> Result<Vec<ServerInfo>> {
        Ok(self.rt.servers())
    }

    /// Remove a server (refused while groups use it).
    pub async fn remove_server(&self, onion: &str) -> Result<()> {
        self.rt.remove_server(onion).await
    }

    /// Create a group on an imported server (`server`: its onion). The group is accepted and
    /// starts syncing; [`GroupInfo::invite`] is its `tofubundle:` invite.
    pub async fn create_group(&self, name: &str, server: &str) -> Result<GroupInfo> {
        self.rt.create_group(name, server).await
    }

    /// Join a group from an invite (`tofubundle:…`, importing the server if new, or
    /// `torv3…` for a known server).
    pub async fn join_group(&self, invite: &str) -> Result<GroupInfo> {
        self.rt.join_group(invite).await
    }

    /// Accept a group invite received from a contact.
    pub async fn accept_group(&self, group: impl Into<GroupRef>) -> Result<()> {
        self.rt.accept_group(&group.into()).await
    }

    /// An attribute of any conversation, a contact's or a group's (`None`: not set).
    pub async fn conversation_attribute(
        &self,
        conversation: ConversationId,
        key: &str,
    ) -> Result<Option<String>> {
        let c = self
            .rt
            .store
            .call(move |s| s.conversation(conversation))
            .await?
            .ok_or(Error::ContactNotFound)?;
        Ok(c.attribute(key).map(str::to_owned))
    }

    /// Set an attribute of any conversation, a contact's or a group's. A group's name
    /// (`local.profile.name`) is [`ProfileHandle::rename_group`]; the keys that make a group
    /// (`local.legacy.*`: its id, server and key) are refused.
    pub async fn set_conversation_attribute(
        &self,
        conversation: ConversationId,
        key: &str,
        value: &str,
    ) -> Result<()> {
        let group = self.rt.state().groups.groups.contains_key(&conversation);
        if !group {
            return self.set_contact_attribute(conversation, key, value).await;
        }
        if key == keys::GROUP_NAME {
            return self.rename_group(conversation, value).await;
        }
        if key.is_empty() || key.starts_with("local.legacy.") {
            return Err(Error::Invalid {
                what: "group attribute key (the group's own)",
            });
        }
        let (k, v) = (key.to_owned(), value.to_owned());
        self.rt
            .store
            .call(move |s| s.set_conversation_attribute(conversation, &k, &v))
            .await?;
        Ok(())
    }

    /// Rename a group, for us alone (members are not told; it is stored as the group's
    /// `local.profile.name`). The name is trimmed; empty, multi-line or longer than
    /// [`crate::LOCAL_NAME_MAX_CHARS`] is refused.
    pub async fn rename_group(&self, group: impl Into<GroupRef>, name: &str) -> Result<()> {
        self.rt.rename_group(&group.into(), name).await
    }

    /// Our own name for a contact (its `local.profile.name`), shown instead of the name it
    /// gives itself; `None` (or an empty name) removes ours. Trimmed; multi-line or longer
    /// than [`crate::LOCAL_NAME_MAX_CHARS`] is refused.
    pub async fn set_contact_nickname(
        &self,
        contact: impl Into<ContactId>,
        name: Option<&str>,
    ) -> Result<()> {
        let name = match name.map(str::trim).filter(|n| !n.is_empty()) {
            Some(n) => crate::names::check_local_name(n)?,
            None => String::new(),
        };
        self.set_contact_attribute(contact, keys::LOCAL_PROFILE_NAME, &name)
            .await
    }

    /// Leave a group, or decline its invite: its conversation and messages are deleted.
    pub async fn leave_group(&self, group: impl Into<GroupRef>) -> Result<()> {
        self.rt.leave_group(&group.into()).await
    }

    /// One group.
    pub async fn group(&self, group: impl Into<GroupRef>) -> Result<GroupInfo> {
        self.rt.group_info(&group.into()).await
    }

    /// Every group (and group invite), by conversation id.
    pub async fn groups(&self) -> Result<Vec<GroupInfo>> {
        self.rt.groups().await
    }

    /// A group's invites: `tofubundle:` (with the server's bundle) and the bare `torv3` form.
    pub async fn group_invites(&self, group: impl Into<GroupRef>) -> Result<(String, String)> {
        self.rt.group_invites(&group.into()).await
    }

    /// Send a group's invite to a contact (overlay 101 over P2P).
    pub async fn invite_to_group(
        &self,
        group: impl Into<GroupRef>,
        contact: impl Into<ContactId>,
    ) -> Result<SentMessage> {
        let (tofu, _) = self.rt.group_invites(&group.into()).await?;
        self.send_content(contact, &Content::GroupInvite { invite: tofu })
            .await
    }

    /// Post text to a group (overlay 1).
    pub async fn send_group_text(
        &self,
        group: impl Into<GroupRef>,
        text: &str,
    ) -> Result<SentMessage> {
        let body = Content::text(text).to_body()?;
        self.rt.send_group_body(&group.into(), body).await
    }

    /// Post any content to a group (text, quoted reply, invites).
    pub async fn send_group_content(
        &self,
        group: impl Into<GroupRef>,
        content: &Content,
    ) -> Result<SentMessage> {
        let body = content.to_body()?;
        self.rt.send_group_body(&group.into(), body).await
    }

    /// Mark a group's messages as read ([`GroupInfo::unread`] counts those after).
    pub async fn mark_group_read(&self, group: impl Into<GroupRef>) -> Result<()> {
        self.rt.mark_group_read(&group.into()).await
    }

    /// Whether `conversation` is one of the profile's groups (cheap: no storage access).
    pub fn is_group(&self, conversation: ConversationId) -> bool {
        self.rt
            .resolve_group(&crate::GroupRef::Conversation(conversation))
            .is_ok()
    }

    /// Block (or unblock) a member's messages in a group.
    pub async fn set_group_member_blocked(
        &self,
        group: impl Into<GroupRef>,
        member: &str,
        blocked: bool,
    ) -> Result<()> {
        self.rt
            .set_member_blocked(&group.into(), member, blocked)
            .await
    }

    /// Up to `limit` messages of a group, newest first, skipping the `offset` newest.
    pub async fn group_messages(
        &self,
        group: impl Into<GroupRef>,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<MessageInfo>> {
        let conv = self.rt.resolve_group(&group.into())?;
        self.conversation_messages(conv, offset, limit).await
    }

    /// One message of a group by id.
    pub async fn group_message(
        &self,
        group: impl Into<GroupRef>,
        id: MessageId,
    ) -> Result<Option<MessageInfo>> {
        let conv = self.rt.resolve_group(&group.into())?;
        let m = self.rt.store.call(move |s| s.message(conv, id)).await?;
        // Group messages always carry their author.
        let me = self.rt.onion.clone();
        Ok(m.map(|m| self.message_info(conv, &me, m)))
    }

    /// The newest message of a group with this content hash (to show the message a reply
    /// quotes).
    pub async fn group_message_by_content_hash(
        &self,
        group: impl Into<GroupRef>,
        hash: &str,
    ) -> Result<Option<MessageInfo>> {
        let conv = self.rt.resolve_group(&group.into())?;
        let me = self.rt.onion.clone();
        self.by_content_hash(conv, me, hash, None).await
    }

    /// The message a group message `reply` quotes: the newest before it with this content
    /// hash.
    pub async fn group_quoted_message(
        &self,
        group: impl Into<GroupRef>,
        hash: &str,
        reply: MessageId,
    ) -> Result<Option<MessageInfo>> {
        let conv = self.rt.resolve_group(&group.into())?;
        let me = self.rt.onion.clone();
        self.by_content_hash(conv, me, hash, Some(reply)).await
    }

    // ---- messages ----

    /// Send a text message (overlay 1; at most [`overlay::P2P_TEXT_MAX_CHARS`] characters).
    ///
    /// The message is stored before anything is sent; if the contact is offline it is sent
    /// when a connection is next ready, and again on every connection until acknowledged.
    pub async fn send_text(
        &self,
        contact: impl Into<ContactId>,
        text: &str,
    ) -> Result<SentMessage> {
        self.send_content(contact, &Content::text(text)).await
    }

    /// Send a reply quoting the message with content hash `quoted_hash` (overlay 10).
    pub async fn send_quoted_reply(
        &self,
        contact: impl Into<ContactId>,
        quoted_hash: &str,
        text: &str,
    ) -> Result<SentMessage> {
        self.send_content(
            contact,
            &Content::QuotedReply {
                quoted_hash: quoted_hash.to_owned(),
                body: text.to_owned(),
            },
        )
        .await
    }

    /// Suggest a contact (overlay 100).
    pub async fn send_contact_suggestion(
        &self,
        contact: impl Into<ContactId>,
        suggested: &Onion,
    ) -> Result<SentMessage> {
        self.send_content(
            contact,
            &Content::ContactSuggestion {
                onion: suggested.as_str().to_owned(),
            },
        )
        .await
    }

    /// Send any content this library models.
    pub async fn send_content(
        &self,
        contact: impl Into<ContactId>,
        content: &Content,
    ) -> Result<SentMessage> {
        let body = content.to_body()?;
        self.send_body(contact.into(), body).await
    }

    /// Send any overlay: `{"o":overlay,"d":data}` (for bots and overlays not modelled here).
    /// Text overlays are held to the text limit; everything must fit one packet.
    pub async fn send_overlay(
        &self,
        contact: impl Into<ContactId>,
        overlay: i64,
        data: &str,
    ) -> Result<SentMessage> {
        if overlay == overlay::TEXT {
            overlay::check_text_len(data)?;
        }
        let body = overlay::wrap(overlay, data)?;
        self.send_body(contact.into(), body).await
    }

    /// Share the file at `path` with a contact: the file is hashed into its manifest, the
    /// contact gets a file message (overlay 200) and may download it from us while we share
    /// it (also after restarts, until [`ProfileHandle::stop_sharing`]). Returns the file key.
    pub async fn share_file(
        &self,
        contact: impl Into<ContactId>,
        path: &Path,
    ) -> Result<(String, SentMessage)> {
        let (key, sent) = self.rt.share_file(&contact.into(), path).await?;
        Ok((key.to_string(), sent))
    }

    /// Share the file at `path` in a group: the offer is posted to the group, and members
    /// download it from us over P2P while we share it (any member who asks for its key,
    /// whether or not they are our contacts). Returns the file key.
    pub async fn share_file_in_group(
        &self,
        group: impl Into<GroupRef>,
        path: &Path,
    ) -> Result<(String, SentMessage)> {
        let (key, sent) = self.rt.share_file_in_group(&group.into(), path).await?;
        Ok((key.to_string(), sent))
    }

    /// Stop serving a file we share (downloads of it stop too).
    pub async fn stop_sharing(&self, file_key: &str) -> Result<()> {
        let key = parse_file_key(file_key)?;
        self.rt.set_sharing(&key, false).await
    }

    /// Stop downloading a file offered to us (`FileDownloadFailed` with the reason
    /// [`crate::DOWNLOAD_STOPPED`]); what was verified stays on disk, and downloading it again
    /// resumes. [`Error::NotDownloading`] if it is not being downloaded.
    pub async fn stop_download(&self, file_key: &str) -> Result<()> {
        let key = parse_file_key(file_key)?;
        self.rt.stop_download(&key).await
    }

    /// Serve a file we share again.
    pub async fn restart_sharing(&self, file_key: &str) -> Result<()> {
        let key = parse_file_key(file_key)?;
        self.rt.set_sharing(&key, true).await
    }

    /// Download a file a contact offered us into `dir`, verifying every chunk; resumes what
    /// an earlier attempt left (also after a crash: unfinished downloads resume when the
    /// profile loads). Returns where the file will be once complete; progress, completion
    /// and failure come as events. A file downloaded into `dir` before and still there,
    /// whole, is not fetched again: its path is returned and `FileDownloaded` is emitted
    /// again.
    pub async fn download_file(
        &self,
        contact: impl Into<ContactId>,
        file_key: &str,
        dir: &Path,
    ) -> Result<PathBuf> {
        let key = parse_file_key(file_key)?;
        self.rt.download_file(&contact.into(), &key, dir).await
    }

    /// Download a file offered in a group, from the member who shared it (who must be an
    /// accepted contact: [`Error::SharerNotContact`] otherwise), as [`Self::download_file`].
    pub async fn download_group_file(
        &self,
        group: impl Into<GroupRef>,
        file_key: &str,
        dir: &Path,
    ) -> Result<PathBuf> {
        let key = parse_file_key(file_key)?;
        self.rt.download_group_file(&group.into(), &key, dir).await
    }

    /// Files offered to us and by us in a group.
    pub async fn group_files(&self, group: impl Into<GroupRef>) -> Result<Vec<crate::FileInfo>> {
        let conv = self.rt.resolve_group(&group.into())?;
        self.rt.files(Some(conv)).await
    }

    /// Files offered to us and by us, in one conversation or in all.
    pub async fn files(&self, contact: Option<ContactId>) -> Result<Vec<crate::FileInfo>> {
        let conv = match contact {
            Some(c) => Some(self.rt.resolve(&c)?.conversation),
            None => None,
        };
        self.rt.files(conv).await
    }

    async fn send_body(&self, contact: ContactId, body: String) -> Result<SentMessage> {
        self.rt.send_body(&contact, body).await
    }

    /// Up to `limit` messages of a conversation, newest first, skipping the `offset` newest.
    pub async fn messages(
        &self,
        contact: impl Into<ContactId>,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<MessageInfo>> {
        let r = self.rt.resolve(&contact.into())?;
        let conv = r.conversation;
        let rows = self
            .rt
            .store
            .call(move |s| s.messages(conv, offset, limit))
            .await?;
        Ok(rows
            .into_iter()
            .map(|m| self.message_info(conv, &r.onion, m))
            .collect())
    }

    /// One message by id.
    pub async fn message(
        &self,
        contact: impl Into<ContactId>,
        id: MessageId,
    ) -> Result<Option<MessageInfo>> {
        let r = self.rt.resolve(&contact.into())?;
        let conv = r.conversation;
        let m = self.rt.store.call(move |s| s.message(conv, id)).await?;
        Ok(m.map(|m| self.message_info(conv, &r.onion, m)))
    }

    /// The newest message with this content hash (to show the message a reply quotes).
    pub async fn message_by_content_hash(
        &self,
        contact: impl Into<ContactId>,
        hash: &str,
    ) -> Result<Option<MessageInfo>> {
        let r = self.rt.resolve(&contact.into())?;
        self.by_content_hash(r.conversation, r.onion, hash, None)
            .await
    }

    /// The message a contact's message `reply` quotes: the newest before it with this content
    /// hash (the same text may have been sent again since).
    pub async fn quoted_message(
        &self,
        contact: impl Into<ContactId>,
        hash: &str,
        reply: MessageId,
    ) -> Result<Option<MessageInfo>> {
        let r = self.rt.resolve(&contact.into())?;
        self.by_content_hash(r.conversation, r.onion, hash, Some(reply))
            .await
    }

    /// The message with this content hash in `conv` (`onion`: the contact, or us in a group):
    /// the newest, or the newest before `before`.
    async fn by_content_hash(
        &self,
        conv: ConversationId,
        onion: Onion,
        hash: &str,
        before: Option<MessageId>,
    ) -> Result<Option<MessageInfo>> {
        let h = hash.to_owned();
        let m = self
            .rt
            .store
            .call(move |s| match before {
                Some(b) => s.message_by_content_hash_before(conv, &h, b),
                None => s.message_by_content_hash(conv, &h),
            })
            .await?;
        Ok(m.map(|m| self.message_info(conv, &onion, m)))
    }

    /// Set an attribute of a message of a contact or group conversation (Go's
    /// `UpdateMessageAttribute`): stored with the message, shown in
    /// [`MessageInfo::attributes`]. The keys the library keeps itself
    /// ([`LIBRARY_MESSAGE_ATTRIBUTES`]) are refused: changing them would change what the
    /// message is (its author, whether it was delivered, whether it is posted again).
    pub async fn set_message_attribute(
        &self,
        conversation: ConversationId,
        message: MessageId,
        key: &str,
        value: &str,
    ) -> Result<()> {
        if key.is_empty() || LIBRARY_MESSAGE_ATTRIBUTES.contains(&key) {
            return Err(Error::Invalid {
                what: "message attribute key (empty, or kept by the library)",
            });
        }
        let known = {
            let st = self.rt.state();
            st.by_conversation.contains_key(&conversation)
                || st.groups.groups.contains_key(&conversation)
        };
        if !known {
            return Err(Error::ContactNotFound);
        }
        let (k, v) = (key.to_owned(), value.to_owned());
        self.rt
            .store
            .call(move |s| s.set_message_attribute(conversation, message, &k, &v))
            .await
    }

    async fn conversation_messages(
        &self,
        conv: ConversationId,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<MessageInfo>> {
        let rows = self
            .rt
            .store
            .call(move |s| s.messages(conv, offset, limit))
            .await?;
        // Group messages always carry their author.
        let me = self.rt.onion.clone();
        Ok(rows
            .into_iter()
            .map(|m| self.message_info(conv, &me, m))
            .collect())
    }

    pub(crate) fn message_info(
        &self,
        conv: ConversationId,
        contact: &Onion,
        m: Message,
    ) -> MessageInfo {
        let me = self.rt.onion.as_str();
        let author = m
            .attributes
            .get(keys::MESSAGE_AUTHOR)
            .cloned()
            .unwrap_or_else(|| contact.as_str().to_owned());
        let outgoing = author == me;
        let state = if !outgoing {
            MessageState::Received
        } else if m.attributes.get(keys::MESSAGE_ACK).map(String::as_str) == Some(keys::TRUE) {
            MessageState::Acknowledged
        } else if let Some(e) = m
            .attributes
            .get(keys::MESSAGE_ERROR)
            .filter(|e| !e.is_empty())
        {
            MessageState::Failed { error: e.clone() }
        } else {
            let sent = self
                .rt
                .state()
                .contacts
                .get(contact)
                .and_then(|e| e.outbox.get(&m.id).map(|o| o.sent));
            match sent {
                Some(true) => MessageState::Sent,
                // Not written yet; or (not in the outbox) acknowledged between reading the row
                // and looking: the row is the truth, and it says "not acknowledged" yet.
                Some(false) | None => MessageState::Sending,
            }
        };
        MessageInfo {
            conversation_id: conv,
            message_id: m.id,
            signature: m.signature,
            content: Content::parse(&m.body),
            body: m.body,
            content_hash: m.content_hash,
            timestamp: m.attributes.get(keys::MESSAGE_SENT).cloned(),
            author,
            outgoing,
            state,
            attributes: m.attributes.into_iter().collect(),
        }
    }

    // ---- life cycle ----

    /// Stop the engine (close every connection, stop dialling, stop hosting), finish the
    /// pending storage work, close the database and release the profile. Idempotent.
    pub async fn shutdown(&self) {
        let mut done = self.rt.shutdown_done.lock().await;
        if *done {
            return;
        }
        let rt = &self.rt;
        rt.cancel.cancel();
        rt.service.shutdown().await;
        rt.tasks.close();
        rt.tasks.wait().await;
        rt.online.send_replace(false);
        rt.store.close().await;
        if let Some(app) = self.app.upgrade() {
            app.forget(&rt.profile_id);
        }
        info!(profile = %rt.onion.redacted(), "profile shut down");
        rt.emit(Event::ProfileShutdown {
            profile: rt.profile(),
        });
        *done = true;
    }

    /// A snapshot of the connection state of every contact (for a UI's first paint).
    pub fn connection_states(&self) -> BTreeMap<ConversationId, ConnectionState> {
        self.rt
            .state()
            .contacts
            .values()
            .map(|e| (e.conversation, e.conn_state))
            .collect()
    }
}

fn parse_file_key(s: &str) -> Result<cwtch_model::files::FileKey> {
    cwtch_model::files::FileKey::parse(s).map_err(|_| Error::Invalid { what: "file key" })
}

/// A contact's messages, and how many of theirs came after the last one the user read.
fn counts(
    s: &mut dyn cwtch_storage::ProfileStore,
    c: &Conversation,
    me: &str,
) -> std::result::Result<(u64, u64), cwtch_storage::Error> {
    let last_read = c
        .attribute(crate::groups::LAST_READ)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let n = s.message_count(c.id)?;
    let unread = s.count_after(
        c.id,
        keys::MESSAGE_AUTHOR,
        me,
        cwtch_storage::MessageId(last_read),
    )?;
    Ok((n, unread))
}
