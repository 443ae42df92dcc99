//! Executing a request on a `Cwtch`: in the daemon (profiles already running) or directly on
//! the data directory (the one profile a command needs is loaded for it).

use std::time::Duration;

use cwtch::{
    ContactId, Content, ConversationId, Cwtch, Event, GroupRef, MessageId, MessageState, Onion,
    Password, ProfileHandle, ProfileId, SentMessage,
};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::error::CliError;
use crate::protocol::{
    password, ContactRow, Delivery, FoundRow, GroupRow, GroupSendRow, MessageRow, ProfileRow,
    Reply, Request, SendRow, ServerRow, SettingsRow, PROTOCOL_VERSION,
};

/// Where requests run.
pub(crate) enum Mode {
    /// In `cwtch run`: profile-scoped requests use the profiles it runs.
    Daemon,
    /// A one-off command: the profile is loaded for it, with the default password or `extra`.
    /// `online`: the network is real (`send`); otherwise nothing is hosted or dialled.
    Direct {
        extra: Option<Password>,
        online: bool,
    },
}

pub(crate) struct Session {
    pub(crate) app: Cwtch,
    mode: Mode,
}

impl Session {
    pub(crate) fn new(app: Cwtch, mode: Mode) -> Session {
        Session { app, mode }
    }

    /// Subscribe to the library's events.
    pub(crate) fn events(&self) -> broadcast::Receiver<Event> {
        self.app.events()
    }

    pub(crate) fn is_daemon(&self) -> bool {
        matches!(self.mode, Mode::Daemon)
    }

    /// Whether connection states are real.
    fn online(&self) -> bool {
        match self.mode {
            Mode::Daemon => true,
            Mode::Direct { online, .. } => online,
        }
    }

    pub(crate) async fn execute(&self, req: Request) -> Result<Reply, CliError> {
        match req {
            Request::Ping => {
                let acn = self.app.acn_status();
                Ok(Reply::Pong {
                    version: PROTOCOL_VERSION,
                    pid: std::process::id(),
                    profiles: self.running_rows().await,
                    acn: Some(crate::protocol::AcnRow {
                        progress: acn.progress,
                        summary: acn.summary,
                    }),
                })
            }
            Request::ProfileCreate { name, password: pw } => {
                if name.trim().is_empty() {
                    return Err(CliError::Usage("the profile name must not be empty".into()));
                }
                let pw = password(&pw);
                let info = self
                    .app
                    .create_profile(&name, &pw)
                    .await
                    .map_err(CliError::lib)?;
                self.new_profile(&info, &pw, "created").await
            }
            Request::ProfileList { password: pw } => {
                let extra = pw
                    .as_ref()
                    .map(|s| s.password())
                    .filter(|p| !p.is_default());
                let mut rows: Vec<ProfileRow> = Vec::new();
                if let Some(extra) = &extra {
                    // A password that opens nothing is a mistake to say, not an empty
                    // addition to the list.
                    rows = self
                        .listable(std::slice::from_ref(extra))
                        .await?
                        .into_iter()
                        .map(|(r, _)| r)
                        .collect();
                    if rows.is_empty() {
                        return Err(CliError::WrongPassword(
                            "no profile opens with this password".into(),
                        ));
                    }
                }
                // Then those without a password, and those this process runs (a `cwtch
                // run` opened them with their passwords; whoever reaches its socket can use
                // them already).
                let defaults = self.listable(&[Password::Default]).await?;
                let running = self.running_rows().await;
                for r in defaults.into_iter().map(|(r, _)| r).chain(running) {
                    if rows.iter().all(|o| o.profile_id != r.profile_id) {
                        rows.push(r);
                    }
                }
                rows.sort_by(|a, b| (&a.name, &a.onion).cmp(&(&b.name, &b.onion)));
                Ok(Reply::Profiles { profiles: rows })
            }
            Request::ProfileUnlock {
                profile,
                password: pw,
            } => {
                let pw = pw.password();
                let found = self.listable(std::slice::from_ref(&pw)).await?;
                if found.is_empty() {
                    return Err(CliError::WrongPassword(
                        "no profile opens with this password".into(),
                    ));
                }
                let mut chosen: Vec<ProfileRow> = match profile.as_deref() {
                    Some(s) => {
                        let rows: Vec<ProfileRow> = found.into_iter().map(|(r, _)| r).collect();
                        let i = select(&rows, Some(s), "profile that opens with this password")?;
                        vec![rows[i].clone()]
                    }
                    None => found.into_iter().map(|(r, _)| r).collect(),
                };
                if self.is_daemon() {
                    for row in chosen.iter_mut().filter(|r| !r.running) {
                        self.load(row, &pw).await?;
                        row.running = true;
                    }
                }
                Ok(Reply::Profiles { profiles: chosen })
            }
            Request::ProfilePasswd { profile, old, new } => {
                let (old, new) = (password(&old), password(&new));
                if old.is_default() && new.is_default() {
                    return Err(CliError::Usage(
                        "the profile has no password, and no new password was given".into(),
                    ));
                }
                let (row, _) = self.select_opening(profile.as_deref(), &old).await?;
                self.app
                    .change_password(&profile_id(&row)?, &old, &new)
                    .await
                    .map_err(CliError::lib)?;
                Ok(Reply::Profile { profile: row })
            }
            Request::ProfileExport {
                profile,
                password: pw,
                path,
            } => {
                if !path.is_absolute() {
                    return Err(CliError::Usage("the export path must be absolute".into()));
                }
                let passwords = with_default(pw.as_ref().map(|s| s.password()));
                let mut rows = self.listable(&passwords).await?;
                // And those this process runs (opened with their passwords already): the
                // archive stays encrypted with theirs.
                for r in self.running_rows().await {
                    if rows.iter().all(|(o, _)| o.profile_id != r.profile_id) {
                        rows.push((r, Password::Default));
                    }
                }
                let (row, _) = self.pick(rows, profile.as_deref(), "profile")?;
                self.app
                    .export_profile(&profile_id(&row)?, &path)
                    .await
                    .map_err(CliError::lib)?;
                Ok(Reply::Profile { profile: row })
            }
            Request::ProfileImport { path, password: pw } => {
                if !path.is_absolute() {
                    return Err(CliError::Usage("the archive path must be absolute".into()));
                }
                let pw = password(&pw);
                let info = self
                    .app
                    .import_profile(&path, &pw)
                    .await
                    .map_err(|e| match e {
                        cwtch::Error::Storage(cwtch::StorageError::WrongPassword)
                            if pw.is_default() =>
                        {
                            CliError::WrongPassword(
                                "the archive's profile has a password: give it with \
                                 --password-stdin"
                                    .into(),
                            )
                        }
                        e => CliError::lib(e),
                    })?;
                self.new_profile(&info, &pw, "imported").await
            }
            Request::ProfileDelete {
                profile,
                password: pw,
            } => {
                let pw = password(&pw);
                let (row, _) = self.select_opening(profile.as_deref(), &pw).await?;
                self.app
                    .delete_profile(&profile_id(&row)?, &pw)
                    .await
                    .map_err(CliError::lib)?;
                Ok(Reply::Profile {
                    profile: ProfileRow {
                        running: false,
                        ..row
                    },
                })
            }
            Request::ProfileSettings {
                profile,
                name,
                status,
                block_unknown,
                image_previews,
                image,
                remove_image,
                autostart,
                online,
            } => {
                if online.is_some() && !matches!(self.mode, Mode::Daemon) {
                    return Err(CliError::Usage(
                        "--online changes the running `cwtch run`: start one first (a profile \
                         is online only while something runs it)"
                            .into(),
                    ));
                }
                if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
                    return Err(CliError::Usage("the profile name must not be empty".into()));
                }
                let h = self.handle(profile.as_deref()).await?;
                if let Some(n) = &name {
                    h.set_name(n).await.map_err(CliError::lib)?;
                }
                if let Some(s) = &status {
                    h.set_status(s).await.map_err(CliError::lib)?;
                }
                if let Some(on) = block_unknown {
                    h.set_block_unknown(on).await.map_err(CliError::lib)?;
                }
                if let Some(path) = &image {
                    h.set_profile_image(std::path::Path::new(path))
                        .await
                        .map_err(|e| match e {
                            e @ (cwtch::Error::InvalidImage(_)
                            | cwtch::Error::FileTooLarge { .. }
                            | cwtch::Error::Io { .. }) => CliError::Usage(format!(
                                "cannot use {path} as the profile picture: {e}"
                            )),
                            e => CliError::lib(e),
                        })?;
                }
                if remove_image {
                    h.remove_profile_image().await.map_err(CliError::lib)?;
                }
                if let Some(on) = autostart {
                    h.set_autostart(on).await.map_err(CliError::lib)?;
                }
                if let Some(on) = online {
                    h.set_engine_active(on).await.map_err(CliError::lib)?;
                }
                if let Some(on) = image_previews {
                    h.set_image_previews(on).await.map_err(CliError::lib)?;
                }
                Ok(Reply::Settings {
                    settings: SettingsRow {
                        profile_id: h.profile_id().as_str().to_owned(),
                        onion: h.onion().as_str().to_owned(),
                        name: h.name().await.map_err(CliError::lib)?,
                        status: h
                            .attribute(cwtch::PUBLIC_PROFILE_STATUS)
                            .await
                            .map_err(CliError::lib)?
                            .unwrap_or_default(),
                        block_unknown: h.block_unknown(),
                        image_previews: h.image_previews(),
                        image: h
                            .attribute(cwtch::images::PROFILE_IMAGE_ATTRIBUTE)
                            .await
                            .map_err(CliError::lib)?
                            .filter(|k| !k.is_empty()),
                        autostart: h.autostart().await.map_err(CliError::lib)?,
                        online: matches!(self.mode, Mode::Daemon).then(|| h.engine_active()),
                    },
                })
            }
            Request::ContactAdd { profile, contact } => {
                let onion = parse_onion(&contact)?;
                let h = self.handle(profile.as_deref()).await?;
                let c = h
                    .add_contact(onion.as_str())
                    .await
                    .map_err(|e| contact_error(e, &contact))?;
                Ok(Reply::Contact {
                    contact: ContactRow::from_contact(c, self.online()),
                })
            }
            Request::ContactList { profile } => {
                let h = self.handle(profile.as_deref()).await?;
                let cs = h.contacts().await.map_err(CliError::lib)?;
                Ok(Reply::Contacts {
                    contacts: cs
                        .into_iter()
                        .map(|c| ContactRow::from_contact(c, self.online()))
                        .collect(),
                })
            }
            Request::ContactAccept { profile, contact } => {
                self.contact_op(profile.as_deref(), &contact, Op::Accept)
                    .await
            }
            Request::ContactBlock { profile, contact } => {
                self.contact_op(profile.as_deref(), &contact, Op::Block)
                    .await
            }
            Request::ContactUnblock { profile, contact } => {
                self.contact_op(profile.as_deref(), &contact, Op::Unblock)
                    .await
            }
            Request::ContactRename {
                profile,
                contact,
                name,
            } => {
                let h = self.handle(profile.as_deref()).await?;
                let cid = resolve_contact(&h, &contact).await?;
                h.set_contact_nickname(cid.clone(), name.as_deref())
                    .await
                    .map_err(|e| contact_error(e, &contact))?;
                let c = h
                    .contact(cid)
                    .await
                    .map_err(|e| contact_error(e, &contact))?;
                Ok(Reply::Contact {
                    contact: ContactRow::from_contact(c, self.online()),
                })
            }
            Request::ContactPermissions {
                profile,
                contact,
                files,
                images,
            } => {
                let h = self.handle(profile.as_deref()).await?;
                let cid = resolve_contact(&h, &contact).await?;
                let c = h
                    .contact(cid.clone())
                    .await
                    .map_err(|e| contact_error(e, &contact))?;
                let mut p = c.permissions;
                if let Some(f) = files {
                    p.share_files = f.value();
                }
                if let Some(i) = images {
                    p.render_images = i.value();
                }
                let c = if p == c.permissions {
                    c
                } else {
                    h.set_permissions(cid.clone(), p)
                        .await
                        .map_err(|e| contact_error(e, &contact))?;
                    h.contact(cid)
                        .await
                        .map_err(|e| contact_error(e, &contact))?
                };
                Ok(Reply::Contact {
                    contact: ContactRow::from_contact(c, self.online()),
                })
            }
            Request::ContactDelete { profile, contact } => {
                let h = self.handle(profile.as_deref()).await?;
                let cid = resolve_contact(&h, &contact).await?;
                let c = h
                    .contact(cid.clone())
                    .await
                    .map_err(|e| contact_error(e, &contact))?;
                h.delete_contact(cid)
                    .await
                    .map_err(|e| contact_error(e, &contact))?;
                // As it was (its message count is what was deleted), now disconnected.
                Ok(Reply::Contact {
                    contact: ContactRow::from_contact(c, false),
                })
            }
            Request::Send {
                profile,
                contact,
                text,
                wait_secs,
                reply_to,
            } => {
                self.send(
                    profile.as_deref(),
                    &contact,
                    &text,
                    reply_to.as_deref(),
                    wait_secs,
                )
                .await
            }
            Request::Messages {
                profile,
                contact,
                offset,
                limit,
            } => {
                self.messages(profile.as_deref(), &contact, offset, limit)
                    .await
            }
            Request::Search {
                profile,
                pattern,
                conversation,
                limit,
            } => {
                self.search(profile.as_deref(), &pattern, conversation.as_deref(), limit)
                    .await
            }
            // The daemon's connection handler streams the events itself (`daemon.rs`).
            Request::EventsSubscribe if self.is_daemon() => Ok(Reply::Subscribed),
            Request::EventsSubscribe => Err(CliError::Usage(
                "only a running `cwtch run` streams events (start one, or use `cwtch tui`)".into(),
            )),
            req @ (Request::ServerAdd { .. }
            | Request::ServerList { .. }
            | Request::ServerRemove { .. }
            | Request::GroupCreate { .. }
            | Request::GroupInvite { .. }
            | Request::GroupJoin { .. }
            | Request::GroupList { .. }
            | Request::GroupAccept { .. }
            | Request::GroupRename { .. }
            | Request::GroupLeave { .. }) => self.server_request(req).await,
            req @ (Request::FileShare { .. }
            | Request::FileList { .. }
            | Request::FileDownload { .. }
            | Request::FileStop { .. }
            | Request::FileRestart { .. }) => self.file_request(req).await,
        }
    }

    async fn contact_op(
        &self,
        profile: Option<&str>,
        contact: &str,
        op: Op,
    ) -> Result<Reply, CliError> {
        let h = self.handle(profile).await?;
        let cid = resolve_contact(&h, contact).await?;
        let r = match op {
            Op::Accept => h.accept(cid.clone()).await,
            Op::Block => h.block(cid.clone()).await,
            Op::Unblock => h.unblock(cid.clone()).await,
        };
        r.map_err(|e| contact_error(e, contact))?;
        let c = h
            .contact(cid)
            .await
            .map_err(|e| contact_error(e, contact))?;
        Ok(Reply::Contact {
            contact: ContactRow::from_contact(c, self.online()),
        })
    }

    async fn send(
        &self,
        profile: Option<&str>,
        target: &str,
        text: &str,
        reply_to: Option<&str>,
        wait_secs: u64,
    ) -> Result<Reply, CliError> {
        let h = self.handle(profile).await?;
        match resolve_target(&h, target).await? {
            Target::Contact(cid) => {
                self.send_to_contact(&h, cid, target, text, reply_to, wait_secs)
                    .await
            }
            Target::Group(g) => {
                self.send_to_group(&h, g, target, text, reply_to, wait_secs)
                    .await
            }
        }
    }

    async fn send_to_contact(
        &self,
        h: &ProfileHandle,
        cid: ContactId,
        contact: &str,
        text: &str,
        reply_to: Option<&str>,
        wait_secs: u64,
    ) -> Result<Reply, CliError> {
        if let Some(hash) = reply_to {
            // A typo would quote nothing: the quoted message must be in this conversation.
            let quoted = h
                .message_by_content_hash(cid.clone(), hash)
                .await
                .map_err(|e| contact_error(e, contact))?;
            if quoted.is_none() {
                return Err(no_quoted(hash, contact));
            }
        }
        // Subscribe before sending: the acknowledgement can arrive at once.
        let events = self.app.events();
        let sent = match reply_to {
            Some(hash) => h.send_quoted_reply(cid.clone(), hash, text).await,
            None => h.send_text(cid.clone(), text).await,
        }
        .map_err(|e| contact_error(e, contact))?;
        self.await_acknowledgement(h, events, cid, contact, sent, wait_secs)
            .await
    }

    /// Wait up to `wait_secs` for a message to a contact to be acknowledged; what happened.
    pub(crate) async fn await_acknowledgement(
        &self,
        h: &ProfileHandle,
        mut events: broadcast::Receiver<Event>,
        cid: ContactId,
        contact: &str,
        sent: SentMessage,
        wait_secs: u64,
    ) -> Result<Reply, CliError> {
        let c = h
            .contact(cid)
            .await
            .map_err(|e| contact_error(e, contact))?;
        let (conv, mid) = (sent.conversation_id, sent.message_id);
        let started = Instant::now();
        // Offline, nothing will be sent: no waiting.
        let offline = !h.engine_active();
        let wait_secs = if offline { 0 } else { wait_secs };
        let deadline = started + Duration::from_secs(wait_secs);
        let me = h.onion().as_str().to_owned();
        let is_ours = |p: &str, c: i64, m: i64| p == me && c == conv.0 && m == mid.0;
        let mut state = sent.state.clone();
        loop {
            if offline
                || matches!(
                    state,
                    MessageState::Acknowledged | MessageState::Failed { .. }
                )
            {
                break;
            }
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) | Ok(Err(RecvError::Closed)) => break,
                Ok(Ok(Event::Acknowledged {
                    profile,
                    conversation_id,
                    message_id,
                    ..
                })) if is_ours(&profile, conversation_id, message_id) => {
                    state = MessageState::Acknowledged;
                }
                Ok(Ok(Event::MessageFailed {
                    profile,
                    conversation_id,
                    message_id,
                    reason,
                    ..
                })) if is_ours(&profile, conversation_id, message_id) => {
                    state = MessageState::Failed { error: reason };
                }
                Ok(Ok(_)) => {}
                Ok(Err(RecvError::Lagged(_))) => state = stored_state(h, conv, mid, state).await,
            }
        }
        // The stored row is the truth (an event may have been missed).
        let state = stored_state(h, conv, mid, state).await;
        let delivery = match &state {
            MessageState::Acknowledged => Delivery::Acknowledged,
            MessageState::Failed { error } => {
                return Err(CliError::Failed(format!(
                    "message {} to {} failed: {error}",
                    mid.0,
                    c.onion.as_str()
                )))
            }
            _ => Delivery::Queued,
        };
        Ok(Reply::Sent {
            sent: SendRow {
                delivery,
                profile: me,
                contact: c.onion.as_str().to_owned(),
                conversation_id: conv.0,
                message_id: mid.0,
                signature: sent.signature,
                state,
                waited_secs: started.elapsed().as_secs(),
                offline,
            },
        })
    }

    /// Post to a group and wait up to `wait_secs` for its server to accept the post.
    async fn send_to_group(
        &self,
        h: &ProfileHandle,
        g: GroupRef,
        name: &str,
        text: &str,
        reply_to: Option<&str>,
        wait_secs: u64,
    ) -> Result<Reply, CliError> {
        if let Some(hash) = reply_to {
            if !group_has_content_hash(h, &g, hash, name).await? {
                return Err(no_quoted(hash, name));
            }
        }
        // Subscribe before posting: the server can accept it at once.
        let events = self.app.events();
        let sent = match reply_to {
            Some(hash) => {
                let content = Content::QuotedReply {
                    quoted_hash: hash.to_owned(),
                    body: text.to_owned(),
                };
                h.send_group_content(g, &content).await
            }
            None => h.send_group_text(g, text).await,
        }
        .map_err(|e| group_error(e, name))?;
        self.await_group_post(h, events, sent, name, wait_secs)
            .await
    }

    /// Wait up to `wait_secs` for the server to accept our post `sent` (subscribe to
    /// `events` before posting); its delivery state.
    pub(crate) async fn await_group_post(
        &self,
        h: &ProfileHandle,
        mut events: broadcast::Receiver<Event>,
        sent: SentMessage,
        name: &str,
        wait_secs: u64,
    ) -> Result<Reply, CliError> {
        let (conv, mid) = (sent.conversation_id, sent.message_id);
        let started = Instant::now();
        // Offline, nothing will be posted: no waiting.
        let offline = !h.engine_active();
        let wait_secs = if offline { 0 } else { wait_secs };
        let deadline = started + Duration::from_secs(wait_secs);
        let me = h.onion().as_str().to_owned();
        let is_ours = |p: &str, c: i64, m: i64| p == me && c == conv.0 && m == mid.0;
        // `Sent` once the server accepted it, `Acknowledged` once it came back.
        let mut state = sent.state.clone();
        loop {
            if offline || !matches!(state, MessageState::Sending) {
                break;
            }
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) | Ok(Err(RecvError::Closed)) => break,
                Ok(Ok(Event::GroupMessageSent {
                    profile,
                    conversation_id,
                    message_id,
                    ..
                })) if is_ours(&profile, conversation_id, message_id) => {
                    state = MessageState::Sent;
                }
                Ok(Ok(Event::GroupMessageSeen {
                    profile,
                    conversation_id,
                    message_id,
                    ..
                })) if is_ours(&profile, conversation_id, message_id) => {
                    state = MessageState::Acknowledged;
                }
                Ok(Ok(Event::MessageFailed {
                    profile,
                    conversation_id,
                    message_id,
                    reason,
                    ..
                })) if is_ours(&profile, conversation_id, message_id) => {
                    state = MessageState::Failed { error: reason };
                }
                Ok(Ok(_)) => {}
                Ok(Err(RecvError::Lagged(_))) => {
                    state = stored_group_state(h, conv, mid, state).await;
                }
            }
        }
        // The stored row is the truth for `acknowledged` and `failed`; the library stores no
        // "accepted by the server" state, so `sent` comes from the event.
        let state = match stored_group_state(h, conv, mid, state.clone()).await {
            MessageState::Sending => state,
            stored => stored,
        };
        let delivery = match &state {
            MessageState::Sent | MessageState::Acknowledged => Delivery::Sent,
            MessageState::Failed { error } => {
                return Err(CliError::Failed(format!(
                    "message {} to group {name} failed: {error}",
                    mid.0
                )))
            }
            _ => Delivery::Queued,
        };
        let info = h.group(conv).await.map_err(|e| group_error(e, name))?;
        Ok(Reply::GroupSent {
            sent: GroupSendRow {
                delivery,
                profile: me,
                group: info.name,
                group_id: info.group_id,
                server: info.server.as_str().to_owned(),
                conversation_id: conv.0,
                message_id: mid.0,
                signature: sent.signature,
                state,
                waited_secs: started.elapsed().as_secs(),
                offline,
            },
        })
    }

    async fn messages(
        &self,
        profile: Option<&str>,
        target: &str,
        offset: u64,
        limit: u32,
    ) -> Result<Reply, CliError> {
        let h = self.handle(profile).await?;
        let t = resolve_target(&h, target).await?;
        let mut ms = match &t {
            Target::Contact(cid) => {
                let ms = h
                    .messages(cid.clone(), offset, limit)
                    .await
                    .map_err(|e| contact_error(e, target))?;
                // The newest were shown: the contact's messages are read.
                if offset == 0 {
                    h.mark_read(cid.clone())
                        .await
                        .map_err(|e| contact_error(e, target))?;
                }
                ms
            }
            Target::Group(g) => {
                let ms = h
                    .group_messages(g.clone(), offset, limit)
                    .await
                    .map_err(|e| group_error(e, target))?;
                // The newest were shown: the group is read (`group list` counts unread).
                if offset == 0 {
                    h.mark_group_read(g.clone())
                        .await
                        .map_err(|e| group_error(e, target))?;
                }
                ms
            }
        };
        ms.reverse();
        let mut rows: Vec<MessageRow> = ms.into_iter().map(MessageRow::from_info).collect();
        // Images that arrived before (a client that starts now still describes and shows
        // them): only file messages, each one attribute read.
        for r in &mut rows {
            if let cwtch::Content::FileShare { file_key, .. } = &r.content {
                let conv = cwtch::ConversationId(r.conversation_id);
                r.image = h.image(conv, file_key).await.ok().flatten();
            }
        }
        // The message each reply quotes: in this page, or (a contact's) by its hash.
        for i in 0..rows.len() {
            let cwtch::Content::QuotedReply { quoted_hash, .. } = &rows[i].content else {
                continue;
            };
            // The newest message before the reply with that hash (the same text may be sent
            // again later).
            let quoted = quoted_hash.clone();
            let mut found = rows[..i]
                .iter()
                .rev()
                .find(|r| r.content_hash == quoted)
                .map(|r| r.message_id);
            if found.is_none() {
                let reply = cwtch::MessageId(rows[i].message_id);
                let stored = match &t {
                    Target::Contact(cid) => h.quoted_message(cid.clone(), &quoted, reply).await,
                    Target::Group(g) => h.group_quoted_message(g.clone(), &quoted, reply).await,
                };
                found = stored.ok().flatten().map(|m| m.message_id.0);
            }
            rows[i].reply_to = found;
        }
        // Where each file message's file stands (one listing, only if there are any).
        let is_file = |r: &MessageRow| matches!(r.content, cwtch::Content::FileShare { .. });
        if rows.iter().any(is_file) {
            let files = match &t {
                Target::Contact(cid) => h.files(Some(cid.clone())).await,
                Target::Group(g) => h.group_files(g.clone()).await,
            }
            .unwrap_or_default();
            for r in &mut rows {
                if let cwtch::Content::FileShare { file_key, .. } = &r.content {
                    r.file = files
                        .iter()
                        .find(|f| f.file_key == *file_key && f.ours == r.outgoing)
                        .map(|f| crate::protocol::FileStateRow {
                            state: f.state.clone(),
                            path: f.path.clone(),
                        });
                }
            }
        }
        Ok(Reply::Messages { messages: rows })
    }

    async fn search(
        &self,
        profile: Option<&str>,
        pattern: &str,
        conversation: Option<&str>,
        limit: u32,
    ) -> Result<Reply, CliError> {
        let h = self.handle(profile).await?;
        let only = match conversation {
            None => None,
            Some(target) => Some(match resolve_target(&h, target).await? {
                Target::Contact(cid) => {
                    h.contact(cid)
                        .await
                        .map_err(|e| contact_error(e, target))?
                        .conversation_id
                }
                Target::Group(g) => {
                    h.group(g)
                        .await
                        .map_err(|e| group_error(e, target))?
                        .conversation_id
                }
            }),
        };
        let mut found = match only {
            Some(c) => h.search_conversation(c, pattern).await,
            None => h.search(pattern).await,
        }
        .map_err(CliError::lib)?;
        // Newest first across conversations (undated last; a stable sort keeps each
        // conversation's newest first among equal times).
        found.sort_by_key(|f| {
            std::cmp::Reverse(
                f.message
                    .timestamp
                    .as_deref()
                    .and_then(cwtch::rfc3339_instant),
            )
        });
        found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let mut names: std::collections::HashMap<ConversationId, String> = h
            .contacts()
            .await
            .map_err(CliError::lib)?
            .into_iter()
            .map(|c| {
                let name = c
                    .name
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| c.onion.as_str().to_owned());
                (c.conversation_id, name)
            })
            .collect();
        if found
            .iter()
            .any(|f| !names.contains_key(&f.hit.conversation_id))
        {
            for g in h.groups().await.map_err(CliError::lib)? {
                names.insert(g.conversation_id, g.name);
            }
        }
        let rows = found
            .into_iter()
            .map(|f| FoundRow {
                conversation: names
                    .get(&f.hit.conversation_id)
                    .cloned()
                    .unwrap_or_default(),
                position: f.hit.row_index,
                message: MessageRow::from_info(f.message),
            })
            .collect();
        Ok(Reply::Found { found: rows })
    }

    async fn server_request(&self, req: Request) -> Result<Reply, CliError> {
        let online = self.online();
        match req {
            Request::ServerAdd { profile, bundle } => {
                let h = self.handle(profile.as_deref()).await?;
                let s = h.add_server(&bundle).await.map_err(|e| match e {
                    cwtch::Error::Bundle(e) => CliError::Usage(format!(
                        "not a valid server bundle ({}); a bundle is one line `server:…`, \
                         printed by `cwtch-server bundle` on the server's machine",
                        crate::error::chain(&e)
                    )),
                    e => CliError::lib(e),
                })?;
                Ok(Reply::Server {
                    server: ServerRow::from_info(s, online),
                })
            }
            Request::ServerList { profile } => {
                let h = self.handle(profile.as_deref()).await?;
                let ss = h.servers().await.map_err(CliError::lib)?;
                Ok(Reply::Servers {
                    servers: ss
                        .into_iter()
                        .map(|s| ServerRow::from_info(s, online))
                        .collect(),
                })
            }
            Request::ServerRemove { profile, server } => {
                let onion = parse_onion(&server)?;
                let h = self.handle(profile.as_deref()).await?;
                let s = find_server(&h, &onion).await?;
                h.remove_server(onion.as_str())
                    .await
                    .map_err(|e| server_error(e, &onion))?;
                Ok(Reply::Server {
                    server: ServerRow::from_info(s, false),
                })
            }
            Request::GroupCreate {
                profile,
                name,
                server,
            } => {
                if name.trim().is_empty() {
                    return Err(CliError::Usage("the group name must not be empty".into()));
                }
                let onion = parse_onion(&server)?;
                let h = self.handle(profile.as_deref()).await?;
                let g = h
                    .create_group(&name, onion.as_str())
                    .await
                    .map_err(|e| server_error(e, &onion))?;
                Ok(Reply::Group {
                    group: GroupRow::from_info(g, online, true),
                })
            }
            Request::GroupInvite {
                profile,
                group,
                contact,
                wait_secs,
            } => {
                let h = self.handle(profile.as_deref()).await?;
                let cid = resolve_contact(&h, &contact).await?;
                let g: GroupRef = parse_group(&group);
                // The group first: its errors name it.
                h.group_invites(g.clone())
                    .await
                    .map_err(|e| group_error(e, &group))?;
                let name = h
                    .group(g.clone())
                    .await
                    .map_err(|e| group_error(e, &group))?
                    .name;
                let events = self.app.events();
                let sent = h
                    .invite_to_group(g, cid.clone())
                    .await
                    .map_err(|e| contact_error(e, &contact))?;
                match self
                    .await_acknowledgement(&h, events, cid, &contact, sent, wait_secs)
                    .await?
                {
                    Reply::Sent { sent } => Ok(Reply::Invited { sent, group: name }),
                    r => Ok(r),
                }
            }
            Request::GroupJoin { profile, invite } => {
                let h = self.handle(profile.as_deref()).await?;
                let g = h.join_group(invite.0.as_str()).await.map_err(|e| match e {
                    cwtch::Error::Bundle(e) => CliError::Usage(format!(
                        "not a valid group invite ({}); an invite is one line \
                         `tofubundle:server:…||torv3…` (or `torv3…` for a server already added)",
                        crate::error::chain(&e)
                    )),
                    cwtch::Error::ServerNotFound => CliError::NotFound(
                        "the invite's server is unknown: add its bundle first (`cwtch server \
                         add`), or use the group's `tofubundle:` invite, which includes it"
                            .into(),
                    ),
                    e => CliError::lib(e),
                })?;
                Ok(Reply::Group {
                    group: GroupRow::from_info(g, online, false),
                })
            }
            Request::GroupList { profile } => {
                let h = self.handle(profile.as_deref()).await?;
                let gs = h.groups().await.map_err(CliError::lib)?;
                Ok(Reply::Groups {
                    groups: gs
                        .into_iter()
                        .map(|g| GroupRow::from_info(g, online, false))
                        .collect(),
                })
            }
            Request::GroupAccept { profile, group } => {
                let h = self.handle(profile.as_deref()).await?;
                let g = parse_group(&group);
                h.accept_group(g.clone())
                    .await
                    .map_err(|e| group_error(e, &group))?;
                let info = h.group(g).await.map_err(|e| group_error(e, &group))?;
                Ok(Reply::Group {
                    group: GroupRow::from_info(info, online, false),
                })
            }
            Request::GroupRename {
                profile,
                group,
                name,
            } => {
                let h = self.handle(profile.as_deref()).await?;
                let info = h
                    .group(parse_group(&group))
                    .await
                    .map_err(|e| group_error(e, &group))?;
                // By conversation id: the new name may be another group's.
                h.rename_group(info.conversation_id, &name)
                    .await
                    .map_err(|e| group_error(e, &group))?;
                let info = h
                    .group(info.conversation_id)
                    .await
                    .map_err(|e| group_error(e, &group))?;
                Ok(Reply::Group {
                    group: GroupRow::from_info(info, online, false),
                })
            }
            Request::GroupLeave { profile, group } => {
                let h = self.handle(profile.as_deref()).await?;
                let info = h
                    .group(parse_group(&group))
                    .await
                    .map_err(|e| group_error(e, &group))?;
                // By conversation id: the name may be shared by a group created meanwhile.
                h.leave_group(info.conversation_id)
                    .await
                    .map_err(|e| group_error(e, &group))?;
                Ok(Reply::Group {
                    group: GroupRow::from_info(info, false, false),
                })
            }
            other => Err(CliError::Failed(format!(
                "internal: {} is not a server or group request",
                other.op()
            ))),
        }
    }

    /// A profile just created or imported: the daemon runs it too.
    async fn new_profile(
        &self,
        info: &cwtch::ProfileInfo,
        pw: &Password,
        verb: &str,
    ) -> Result<Reply, CliError> {
        let mut row = ProfileRow::from_info(info, false);
        if self.is_daemon() {
            self.load(&row, pw).await.map_err(|e| {
                CliError::Failed(format!(
                    "{verb} profile {}, but cannot run it: {e}",
                    row.onion
                ))
            })?;
            row.running = true;
        }
        Ok(Reply::Profile { profile: row })
    }

    /// The profiles the daemon runs.
    async fn running_rows(&self) -> Vec<ProfileRow> {
        let mut rows = Vec::new();
        for p in self.app.loaded_profiles() {
            rows.push(ProfileRow {
                profile_id: p.profile_id().as_str().to_owned(),
                onion: p.onion().as_str().to_owned(),
                name: p.name().await.unwrap_or_default(),
                running: true,
            });
        }
        rows.sort_by(|a, b| (&a.name, &a.onion).cmp(&(&b.name, &b.onion)));
        rows
    }

    /// Every profile that opens with one of `passwords` (first match wins), by name.
    async fn listable(
        &self,
        passwords: &[Password],
    ) -> Result<Vec<(ProfileRow, Password)>, CliError> {
        let mut out: Vec<(ProfileRow, Password)> = Vec::new();
        for pw in passwords {
            for info in self.app.list_profiles(pw).await.map_err(CliError::lib)? {
                if out
                    .iter()
                    .all(|(r, _)| r.profile_id != info.profile_id.as_str())
                {
                    out.push((ProfileRow::from_info(&info, info.loaded), pw.clone()));
                }
            }
        }
        out.sort_by(|(a, _), (b, _)| (&a.name, &a.onion).cmp(&(&b.name, &b.onion)));
        Ok(out)
    }

    /// The selected profile among those that open with exactly `pw`.
    async fn select_opening(
        &self,
        selector: Option<&str>,
        pw: &Password,
    ) -> Result<(ProfileRow, Password), CliError> {
        let rows = self.listable(std::slice::from_ref(pw)).await?;
        if rows.is_empty() {
            return Err(if pw.is_default() {
                CliError::NotFound(
                    "no profile opens without a password (give its password with --password-stdin)"
                        .into(),
                )
            } else {
                CliError::WrongPassword("no profile opens with this password".into())
            });
        }
        let what = if pw.is_default() {
            "profile without a password"
        } else {
            "profile that opens with this password"
        };
        self.pick(rows, selector, what)
    }

    fn pick(
        &self,
        mut rows: Vec<(ProfileRow, Password)>,
        selector: Option<&str>,
        what: &str,
    ) -> Result<(ProfileRow, Password), CliError> {
        let plain: Vec<ProfileRow> = rows.iter().map(|(r, _)| r.clone()).collect();
        let i = select(&plain, selector, what)?;
        Ok(rows.swap_remove(i))
    }

    /// The loaded profile a profile-scoped request uses.
    pub(crate) async fn handle(&self, selector: Option<&str>) -> Result<ProfileHandle, CliError> {
        match &self.mode {
            Mode::Daemon => {
                let rows = self.running_rows().await;
                let i = select(&rows, selector, "running profile").map_err(|e| match e {
                    CliError::NotFound(m) => CliError::NotFound(format!(
                        "{m}\n(this `cwtch run` runs only the profiles it could unlock; unlock \
                         password-protected ones with `cwtch profile unlock`)"
                    )),
                    e => e,
                })?;
                self.app
                    .profile(&profile_id(&rows[i])?)
                    .ok_or_else(|| CliError::NotFound(format!("profile {} stopped", rows[i].onion)))
            }
            Mode::Direct { extra, .. } => {
                let rows = self.listable(&with_default(extra.clone())).await?;
                if extra.as_ref().is_some_and(|p| !p.is_default())
                    && rows.iter().all(|(_, pw)| pw.is_default())
                {
                    return Err(CliError::WrongPassword(
                        "no profile opens with the password given on stdin".into(),
                    ));
                }
                let what = if extra.is_some() {
                    "profile that opens with the default password or the given one"
                } else {
                    "profile that opens without a password (use --password-stdin for others)"
                };
                let (row, pw) = self.pick(rows, selector, what)?;
                self.load(&row, &pw).await
            }
        }
    }

    async fn load(&self, row: &ProfileRow, pw: &Password) -> Result<ProfileHandle, CliError> {
        self.app
            .load_profile(&row.profile_id, pw)
            .await
            .map_err(CliError::lib)
    }
}

enum Op {
    Accept,
    Block,
    Unblock,
}

fn with_default(extra: Option<Password>) -> Vec<Password> {
    let mut v = vec![Password::Default];
    v.extend(extra.filter(|p| !p.is_default()));
    v
}

fn profile_id(row: &ProfileRow) -> Result<ProfileId, CliError> {
    ProfileId::parse(&row.profile_id)
        .map_err(|e| CliError::Failed(format!("bad profile id {}: {e}", row.profile_id)))
}

async fn stored_state(
    h: &ProfileHandle,
    conv: cwtch::ConversationId,
    mid: MessageId,
    fallback: MessageState,
) -> MessageState {
    match h.message(conv, mid).await {
        Ok(Some(m)) => m.state,
        _ => fallback,
    }
}

/// What `send` and `messages` talk to.
pub(crate) enum Target {
    Contact(ContactId),
    Group(GroupRef),
}

/// Whether `g` names an existing group: `Ok(false)` if none, an error if ambiguous.
async fn group_exists(h: &ProfileHandle, g: &GroupRef, s: &str) -> Result<bool, CliError> {
    match h.group_messages(g.clone(), 0, 0).await {
        Ok(_) => Ok(true),
        Err(cwtch::Error::GroupNotFound) => Ok(false),
        Err(e) => Err(group_error(e, s)),
    }
}

/// Whether `c` is an existing contact.
async fn contact_exists(h: &ProfileHandle, c: &ContactId) -> Result<bool, CliError> {
    match h.contact(c.clone()).await {
        Ok(_) => Ok(true),
        Err(cwtch::Error::ContactNotFound) => Ok(false),
        Err(e) => Err(CliError::lib(e)),
    }
}

/// Decide by what resolves: a conversation id is a contact's or a group's; an onion is a
/// contact (unless only a group has that name); anything else is a group id or name.
pub(crate) async fn resolve_target(h: &ProfileHandle, s: &str) -> Result<Target, CliError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(CliError::Usage(
            "no contact or group given (an onion, a conversation id, a group id or a group name)"
                .into(),
        ));
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = t.parse().map_err(|_| {
            CliError::Usage(format!("{t:?} is not a valid conversation id (too large)"))
        })?;
        let cid = ContactId::Conversation(ConversationId(n));
        if contact_exists(h, &cid).await? {
            return Ok(Target::Contact(cid));
        }
        let g = GroupRef::Conversation(ConversationId(n));
        if group_exists(h, &g, t).await? {
            return Ok(Target::Group(g));
        }
        return Err(CliError::NotFound(format!(
            "no contact or group with conversation id {t} (see `cwtch contact list` and `cwtch \
             group list`)"
        )));
    }
    let g = GroupRef::Name(t.to_owned());
    match Onion::parse(t) {
        Ok(onion) => {
            let cid = ContactId::Onion(onion);
            match (
                contact_exists(h, &cid).await?,
                group_exists(h, &g, t).await?,
            ) {
                (true, false) => Ok(Target::Contact(cid)),
                (false, true) => Ok(Target::Group(g)),
                (true, true) => Err(CliError::Usage(format!(
                    "{t:?} is both a contact and a group's name; name the group by its \
                     conversation id or group id (`cwtch group list`)"
                ))),
                (false, false) => Err(CliError::NotFound(format!("no contact {t}"))),
            }
        }
        Err(_) => match (group_exists(h, &g, t).await?, resolve_contact(h, t).await) {
            (true, Ok(_)) => Err(CliError::Usage(format!(
                "{t:?} is both a contact's and a group's name; name one by its conversation id \
                 (`cwtch contact list`, `cwtch group list`)"
            ))),
            (true, Err(_)) => Ok(Target::Group(g)),
            (false, Ok(cid)) => Ok(Target::Contact(cid)),
            // Several contacts of that name, or an address with a typo: say which.
            (false, Err(e @ CliError::Usage(_))) => Err(e),
            (false, Err(_)) => Err(CliError::NotFound(format!(
                "no contact or group {t:?} (a contact is named by its onion, conversation id or \
                 the nickname you gave it, a group by its conversation id, group id or name: \
                 `cwtch contact list`, `cwtch group list`)"
            ))),
        },
    }
}

/// A group named by conversation id, group id (hex) or name.
fn parse_group(s: &str) -> GroupRef {
    match s.parse::<GroupRef>() {
        Ok(g) => g,
        Err(never) => match never {},
    }
}

pub(crate) fn group_error(e: cwtch::Error, group: &str) -> CliError {
    match e {
        cwtch::Error::GroupNotFound => CliError::NotFound(format!(
            "no group {group:?} (groups are named by conversation id, group id or name: `cwtch \
             group list`)"
        )),
        cwtch::Error::GroupNotAccepted => CliError::Failed(format!(
            "group {group:?} is an invite not accepted yet: `cwtch group accept` it first"
        )),
        e => CliError::lib(e),
    }
}

fn server_error(e: cwtch::Error, server: &Onion) -> CliError {
    match e {
        cwtch::Error::ServerNotFound => CliError::NotFound(format!(
            "no server {} (import its bundle first: `cwtch server add BUNDLE`)",
            server.as_str()
        )),
        e => CliError::lib(e),
    }
}

async fn find_server(h: &ProfileHandle, onion: &Onion) -> Result<cwtch::ServerInfo, CliError> {
    h.servers()
        .await
        .map_err(CliError::lib)?
        .into_iter()
        .find(|s| s.onion == *onion)
        .ok_or_else(|| server_error(cwtch::Error::ServerNotFound, onion))
}

fn no_quoted(hash: &str, conversation: &str) -> CliError {
    CliError::NotFound(format!(
        "no message with content hash {hash:?} in the conversation with {conversation} (see \
         `cwtch --json messages {conversation}`)"
    ))
}

/// How many stored messages to read at a time when searching a group.
const PAGE: u32 = 256;

/// Whether a group has a message with this content hash (the library has no lookup for
/// groups: the stored messages are searched, newest first).
async fn group_has_content_hash(
    h: &ProfileHandle,
    g: &GroupRef,
    hash: &str,
    name: &str,
) -> Result<bool, CliError> {
    let mut offset = 0u64;
    loop {
        let page = h
            .group_messages(g.clone(), offset, PAGE)
            .await
            .map_err(|e| group_error(e, name))?;
        if page.iter().any(|m| m.content_hash == hash) {
            return Ok(true);
        }
        if page.len() < PAGE as usize {
            return Ok(false);
        }
        offset += page.len() as u64;
    }
}

/// The stored state of one of our group messages (newest first: ours is near the top).
async fn stored_group_state(
    h: &ProfileHandle,
    conv: ConversationId,
    mid: MessageId,
    fallback: MessageState,
) -> MessageState {
    let mut offset = 0u64;
    loop {
        let Ok(page) = h.group_messages(conv, offset, PAGE).await else {
            return fallback;
        };
        if let Some(m) = page.iter().find(|m| m.message_id == mid) {
            return m.state.clone();
        }
        // Ordered by id, newest first: once past ours, it is not there.
        if page.len() < PAGE as usize || page.last().is_some_and(|m| m.message_id.0 < mid.0) {
            return fallback;
        }
        offset += page.len() as u64;
    }
}

/// A contact named by onion (with or without `.onion`) or conversation id.
pub(crate) fn parse_contact(s: &str) -> Result<ContactId, CliError> {
    s.parse::<ContactId>().map_err(|e| {
        CliError::Usage(format!(
            "{s:?} is neither a conversation id nor a valid onion address: {}",
            crate::error::chain(&e)
        ))
    })
}

/// A contact named by its onion address, its conversation id, or the nickname we gave it
/// (`contact rename`) when exactly one contact has it. Not by the name a contact
/// gives itself: it chooses that, and could take a name that sends our words to it.
pub(crate) async fn resolve_contact(h: &ProfileHandle, s: &str) -> Result<ContactId, CliError> {
    let t = s.trim();
    let parsed = parse_contact(t);
    // What looks like an address (or an id) is one, and its errors say what is wrong with it.
    let address_like = t.ends_with(".onion")
        || t.bytes().all(|b| b.is_ascii_digit())
        || (t.len() >= 56 && t.bytes().all(|b| b.is_ascii_alphanumeric()));
    if parsed.is_ok() || address_like || t.is_empty() {
        return parsed;
    }
    let contacts = h.contacts().await.map_err(CliError::lib)?;
    let named: Vec<&cwtch::Contact> = contacts
        .iter()
        .filter(|c| c.attributes.get(NICKNAME).map(|n| n.trim()) == Some(t))
        .collect();
    match named[..] {
        [c] => Ok(ContactId::Onion(c.onion.clone())),
        [] => Err(CliError::NotFound(format!(
            "no contact {t:?} (a contact is named by its onion, its conversation id or the \
             nickname you gave it with `cwtch contact rename`: `cwtch contact list`)"
        ))),
        _ => Err(CliError::Usage(format!(
            "several contacts have the nickname {t:?}: name one by its conversation id or \
             onion (`cwtch contact list`)"
        ))),
    }
}

/// A conversation's own name for it (a contact's nickname).
const NICKNAME: &str = "local.profile.name";

/// An onion address (with or without `.onion`).
pub(crate) fn parse_onion(s: &str) -> Result<Onion, CliError> {
    Onion::parse(s.trim()).map_err(|e| {
        CliError::Usage(format!(
            "{s:?} is not a valid Cwtch (v3 onion) address: {e}"
        ))
    })
}

pub(crate) fn contact_error(e: cwtch::Error, contact: &str) -> CliError {
    match e {
        cwtch::Error::ContactNotFound => CliError::NotFound(format!("no contact {contact}")),
        cwtch::Error::ContactBlocked => CliError::Failed(format!(
            "contact {contact} is blocked (`cwtch contact unblock` first)"
        )),
        e => CliError::lib(e),
    }
}

/// Choose a profile: by onion (with or without `.onion`), id or exact name; with no
/// selector, the only one. Errors list the candidates.
pub(crate) fn select(
    rows: &[ProfileRow],
    selector: Option<&str>,
    what: &str,
) -> Result<usize, CliError> {
    let list = || {
        rows.iter()
            .map(|r| {
                format!(
                    "  {}\t{}\t(id {})",
                    crate::output::escape(&r.name),
                    r.onion,
                    r.profile_id
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    match selector {
        None => match rows.len() {
            1 => Ok(0),
            // (Said once: `what` may say it already.)
            0 if what.contains("--password-stdin") => Err(CliError::NotFound(format!(
                "no {what} (create one with `cwtch profile create`)"
            ))),
            0 => Err(CliError::NotFound(format!(
                "no {what} (create one with `cwtch profile create`; one with a password \
                 needs --password-stdin)"
            ))),
            _ => Err(CliError::Usage(format!(
                "there are several profiles; choose one with --profile ONION|NAME|ID:\n{}",
                list()
            ))),
        },
        Some(s) => {
            let t = s.trim();
            let onion = t.strip_suffix(".onion").unwrap_or(t).to_ascii_lowercase();
            let hits: Vec<usize> = rows
                .iter()
                .enumerate()
                .filter(|(_, r)| r.onion == onion || r.profile_id == t || r.name == t)
                .map(|(i, _)| i)
                .collect();
            match hits.as_slice() {
                [i] => Ok(*i),
                [] if rows.is_empty() => Err(CliError::NotFound(format!(
                    "no {what} matches {t:?} (there is none)"
                ))),
                [] => Err(CliError::NotFound(format!(
                    "no {what} matches {t:?}; there are:\n{}",
                    list()
                ))),
                _ => Err(CliError::Usage(format!(
                    "{t:?} names several profiles; choose by onion or id:\n{}",
                    list()
                ))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn row(name: &str, onion: &str, id: &str) -> ProfileRow {
        ProfileRow {
            profile_id: id.into(),
            onion: onion.into(),
            name: name.into(),
            running: false,
        }
    }

    #[test]
    fn selection_by_onion_name_or_id() {
        let rows = vec![
            row("alice", "aaaa", "01"),
            row("bob", "bbbb", "02"),
            row("bob", "cccc", "03"),
        ];
        assert_eq!(select(&rows, Some("alice"), "p").unwrap(), 0);
        assert_eq!(select(&rows, Some("BBBB.onion"), "p").unwrap(), 1);
        assert_eq!(select(&rows, Some("03"), "p").unwrap(), 2);
        let e = select(&rows, Some("bob"), "p").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string().contains("bbbb") && e.to_string().contains("cccc"),
            "{e}"
        );
        let e = select(&rows, None, "p").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--profile"), "{e}");
        assert_eq!(
            select(&rows, Some("carol"), "p").unwrap_err().exit_code(),
            3
        );
        assert_eq!(select(&[], None, "p").unwrap_err().exit_code(), 3);
        assert_eq!(select(&rows[..1], None, "p").unwrap(), 0);
    }
}
