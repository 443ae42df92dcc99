//! Executing a request on a `Cwtch`: in the daemon (profiles already running) or directly on
//! the data directory (the one profile a command needs is loaded for it).

use std::time::Duration;

use cwtch::{
    ContactId, Cwtch, Event, MessageId, MessageState, Onion, Password, ProfileHandle, ProfileId,
};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::error::CliError;
use crate::protocol::{
    password, ContactRow, Delivery, MessageRow, ProfileRow, Reply, Request, SendRow, SettingsRow,
    PROTOCOL_VERSION,
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
    app: Cwtch,
    mode: Mode,
}

impl Session {
    pub(crate) fn new(app: Cwtch, mode: Mode) -> Session {
        Session { app, mode }
    }

    fn is_daemon(&self) -> bool {
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
            Request::Ping => Ok(Reply::Pong {
                version: PROTOCOL_VERSION,
                pid: std::process::id(),
                profiles: self.running_rows().await,
            }),
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
                let passwords = with_default(pw.as_ref().map(|s| s.password()));
                let rows = self.listable(&passwords).await?;
                Ok(Reply::Profiles {
                    profiles: rows.into_iter().map(|(r, _)| r).collect(),
                })
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
                let rows = self.listable(&passwords).await?;
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
                    .map_err(CliError::lib)?;
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
            } => {
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
            Request::ContactDelete { profile, contact } => {
                let cid = parse_contact(&contact)?;
                let h = self.handle(profile.as_deref()).await?;
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
                let cid = parse_contact(&contact)?;
                let h = self.handle(profile.as_deref()).await?;
                let mut ms = h
                    .messages(cid, offset, limit)
                    .await
                    .map_err(|e| contact_error(e, &contact))?;
                ms.reverse();
                Ok(Reply::Messages {
                    messages: ms.into_iter().map(MessageRow::from_info).collect(),
                })
            }
        }
    }

    async fn contact_op(
        &self,
        profile: Option<&str>,
        contact: &str,
        op: Op,
    ) -> Result<Reply, CliError> {
        let cid = parse_contact(contact)?;
        let h = self.handle(profile).await?;
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
        contact: &str,
        text: &str,
        reply_to: Option<&str>,
        wait_secs: u64,
    ) -> Result<Reply, CliError> {
        let cid = parse_contact(contact)?;
        let h = self.handle(profile).await?;
        if let Some(hash) = reply_to {
            // A typo would quote nothing: the quoted message must be in this conversation.
            let quoted = h
                .message_by_content_hash(cid.clone(), hash)
                .await
                .map_err(|e| contact_error(e, contact))?;
            if quoted.is_none() {
                return Err(CliError::NotFound(format!(
                    "no message with content hash {hash:?} in the conversation with {contact} \
                     (see `cwtch --json messages {contact}`)"
                )));
            }
        }
        // Subscribe before sending: the acknowledgement can arrive at once.
        let mut events = self.app.events();
        let sent = match reply_to {
            Some(hash) => h.send_quoted_reply(cid.clone(), hash, text).await,
            None => h.send_text(cid.clone(), text).await,
        }
        .map_err(|e| contact_error(e, contact))?;
        let c = h
            .contact(cid)
            .await
            .map_err(|e| contact_error(e, contact))?;
        let (conv, mid) = (sent.conversation_id, sent.message_id);
        let started = Instant::now();
        let deadline = started + Duration::from_secs(wait_secs);
        let me = h.onion().as_str().to_owned();
        let is_ours = |p: &str, c: i64, m: i64| p == me && c == conv.0 && m == mid.0;
        let mut state = sent.state.clone();
        loop {
            if matches!(
                state,
                MessageState::Acknowledged | MessageState::Failed { .. }
            ) {
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
                Ok(Err(RecvError::Lagged(_))) => state = stored_state(&h, conv, mid, state).await,
            }
        }
        // The stored row is the truth (an event may have been missed).
        let state = stored_state(&h, conv, mid, state).await;
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
            },
        })
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
    async fn handle(&self, selector: Option<&str>) -> Result<ProfileHandle, CliError> {
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

/// A contact named by onion (with or without `.onion`) or conversation id.
pub(crate) fn parse_contact(s: &str) -> Result<ContactId, CliError> {
    s.parse::<ContactId>().map_err(|e| {
        CliError::Usage(format!(
            "{s:?} is neither a conversation id nor a valid onion address: {}",
            crate::error::chain(&e)
        ))
    })
}

/// An onion address (with or without `.onion`).
pub(crate) fn parse_onion(s: &str) -> Result<Onion, CliError> {
    Onion::parse(s.trim()).map_err(|e| {
        CliError::Usage(format!(
            "{s:?} is not a valid Cwtch (v3 onion) address: {e}"
        ))
    })
}

fn contact_error(e: cwtch::Error, contact: &str) -> CliError {
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
            0 => Err(CliError::NotFound(format!(
                "no {what} (create one with `cwtch profile create`)"
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
