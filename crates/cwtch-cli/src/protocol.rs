//! The control-socket protocol between `cwtch run` and the other subcommands (version 1).
//!
//! One JSON object per line each way over the unix socket `<data dir>/cwtch.sock`. A request
//! is `{"v":1,"op":"<op>", ...arguments}`; the answer is `{"v":1,"ok":true,"result":{"kind":
//! "<kind>", ...}}` or `{"v":1,"ok":false,"error":{"code":"<code>","message":"..."}}`. A
//! connection may carry several requests, answered in order. See the README.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use cwtch::{ConnectionState, Content, MessageState, Password, ServerState};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::error::{CliError, ErrorCode};

/// The protocol version this program speaks.
pub(crate) const PROTOCOL_VERSION: u32 = 1;
/// The control socket's file name in the data directory.
pub(crate) const SOCKET_NAME: &str = "cwtch.sock";
/// The longest request line a daemon reads.
pub(crate) const MAX_LINE: usize = 4 << 20;
/// The longest answer line a client reads. An answer is as long as what was asked for (every
/// message of a long conversation: `messages --limit`, the TUI scrolled back to the oldest),
/// and comes from our own `cwtch run`.
pub(crate) const MAX_ANSWER: usize = 256 << 20;

/// A password (or another secret: a group invite) on the wire. Zeroized on drop; `Debug`
/// hides it.
#[derive(Clone)]
pub(crate) struct Secret(pub(crate) Zeroizing<String>);

impl Secret {
    pub(crate) fn new(s: Zeroizing<String>) -> Secret {
        Secret(s)
    }

    pub(crate) fn password(&self) -> Password {
        Password::user(self.0.as_str())
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Secret(Zeroizing::new(String::deserialize(d)?)))
    }
}

/// `None` means the default password (no password).
pub(crate) fn password(p: &Option<Secret>) -> Password {
    p.as_ref().map_or(Password::Default, Secret::password)
}

/// A request. `profile` selects a profile by onion, name or id (`null`: the only one).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op")]
pub(crate) enum Request {
    /// Is a daemon there? Answers `pong`.
    #[serde(rename = "ping")]
    Ping,
    /// Create a profile (the daemon also runs it).
    #[serde(rename = "profile.create")]
    ProfileCreate {
        name: String,
        /// `null`: no password.
        password: Option<Secret>,
    },
    /// Profiles that open with the default password, and with `password` if given.
    #[serde(rename = "profile.list")]
    ProfileList { password: Option<Secret> },
    /// Run (daemon) or check (no daemon) the profiles that open with `password`.
    #[serde(rename = "profile.unlock")]
    ProfileUnlock {
        profile: Option<String>,
        password: Secret,
    },
    /// Change a password; `null` is the default password.
    #[serde(rename = "profile.passwd")]
    ProfilePasswd {
        profile: Option<String>,
        old: Option<Secret>,
        new: Option<Secret>,
    },
    /// Export to `path` (absolute; must not exist).
    #[serde(rename = "profile.export")]
    ProfileExport {
        profile: Option<String>,
        password: Option<Secret>,
        path: PathBuf,
    },
    /// Import the archive at `path` (absolute); the daemon also runs it.
    #[serde(rename = "profile.import")]
    ProfileImport {
        path: PathBuf,
        password: Option<Secret>,
    },
    /// Delete a profile; `password` must open it (`null`: the default password).
    #[serde(rename = "profile.delete")]
    ProfileDelete {
        profile: Option<String>,
        password: Option<Secret>,
    },
    /// Show the settings, changing those given first.
    #[serde(rename = "profile.settings")]
    ProfileSettings {
        profile: Option<String>,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        status: Option<String>,
        #[serde(default)]
        block_unknown: Option<bool>,
        #[serde(default)]
        image_previews: Option<bool>,
        /// An absolute path.
        #[serde(default)]
        image: Option<String>,
        /// Remove the profile picture.
        #[serde(default)]
        remove_image: bool,
        /// Go online when loaded.
        #[serde(default)]
        autostart: Option<bool>,
        /// Go online or offline now (a running daemon only).
        #[serde(default)]
        online: Option<bool>,
    },
    #[serde(rename = "contact.add")]
    ContactAdd {
        profile: Option<String>,
        contact: String,
    },
    #[serde(rename = "contact.list")]
    ContactList { profile: Option<String> },
    #[serde(rename = "contact.accept")]
    ContactAccept {
        profile: Option<String>,
        contact: String,
    },
    #[serde(rename = "contact.block")]
    ContactBlock {
        profile: Option<String>,
        contact: String,
    },
    #[serde(rename = "contact.unblock")]
    ContactUnblock {
        profile: Option<String>,
        contact: String,
    },
    /// Change a contact's permissions (an absent one is left as it is); answers the contact.
    #[serde(rename = "contact.permissions")]
    ContactPermissions {
        profile: Option<String>,
        contact: String,
        #[serde(default)]
        files: Option<crate::cli::Permission>,
        #[serde(default)]
        images: Option<crate::cli::Permission>,
    },
    /// Delete a contact and its conversation; answers the contact as it was.
    #[serde(rename = "contact.delete")]
    ContactDelete {
        profile: Option<String>,
        contact: String,
    },
    /// Send a text (a reply quoting the message with content hash `reply_to`, if given) to a
    /// contact or a group (`contact`: see [`Request::Messages`]); wait up to `wait_secs` for
    /// the acknowledgement (a contact) or for the server to accept the post (a group).
    #[serde(rename = "send")]
    Send {
        profile: Option<String>,
        contact: String,
        text: String,
        wait_secs: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<String>,
    },
    /// Up to `limit` messages, skipping the `offset` newest; oldest first. `contact` names a
    /// contact (onion or conversation id) or a group (conversation id, group id or name).
    #[serde(rename = "messages")]
    Messages {
        profile: Option<String>,
        contact: String,
        offset: u64,
        limit: u32,
    },
    /// Up to `limit` messages whose text contains `pattern` (case-insensitively), newest
    /// first; only in `conversation` (named as for [`Request::Messages`]) if given.
    #[serde(rename = "search")]
    Search {
        profile: Option<String>,
        pattern: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<String>,
        limit: u32,
    },
    /// Our own name for a contact (`None`: remove ours).
    #[serde(rename = "contact.rename")]
    ContactRename {
        profile: Option<String>,
        contact: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// Rename a group, for us alone.
    #[serde(rename = "group.rename")]
    GroupRename {
        profile: Option<String>,
        group: String,
        name: String,
    },
    /// Import a server's `server:` bundle.
    #[serde(rename = "server.add")]
    ServerAdd {
        profile: Option<String>,
        bundle: String,
    },
    #[serde(rename = "server.list")]
    ServerList { profile: Option<String> },
    /// Remove a server (its onion); answers the server as it was.
    #[serde(rename = "server.remove")]
    ServerRemove {
        profile: Option<String>,
        server: String,
    },
    /// Create a group on a server (its onion); answers the group with its invite.
    #[serde(rename = "group.create")]
    GroupCreate {
        profile: Option<String>,
        name: String,
        server: String,
    },
    /// Send a group's invite to a contact; wait up to `wait_secs` for the acknowledgement.
    #[serde(rename = "group.invite")]
    GroupInvite {
        profile: Option<String>,
        group: String,
        contact: String,
        wait_secs: u64,
    },
    /// Join a group from a `tofubundle:` or `torv3` invite.
    #[serde(rename = "group.join")]
    GroupJoin {
        profile: Option<String>,
        invite: Secret,
    },
    #[serde(rename = "group.list")]
    GroupList { profile: Option<String> },
    #[serde(rename = "group.accept")]
    GroupAccept {
        profile: Option<String>,
        group: String,
    },
    /// Leave a group (or decline its invite); answers the group as it was.
    #[serde(rename = "group.leave")]
    GroupLeave {
        profile: Option<String>,
        group: String,
    },
    /// Share a file with a contact; wait up to `wait_secs` for the offer's acknowledgement.
    #[serde(rename = "file.share")]
    FileShare {
        profile: Option<String>,
        contact: String,
        path: String,
        wait_secs: u64,
    },
    #[serde(rename = "file.list")]
    FileList {
        profile: Option<String>,
        contact: Option<String>,
    },
    /// Download a file into `dir`; with `wait` (one-off commands), until it is complete.
    #[serde(rename = "file.download")]
    FileDownload {
        profile: Option<String>,
        contact: String,
        file_key: String,
        dir: String,
        wait: bool,
    },
    #[serde(rename = "file.stop")]
    FileStop {
        profile: Option<String>,
        file_key: String,
        /// Which: `Some(true)` a download, `Some(false)` our share; `None`: our share if it is
        /// one, else a download.
        #[serde(default)]
        download: Option<bool>,
    },
    #[serde(rename = "file.restart")]
    FileRestart {
        profile: Option<String>,
        file_key: String,
    },
    /// Stream the library's events on this connection: after the `subscribed` answer, every
    /// line the daemon sends is an event line as `cwtch run` prints it (`{"event":…}`, and
    /// `{"event":"EventsLost","missed":N}` when the connection was too slow), until either
    /// side closes it. Only a running `cwtch run` answers it.
    #[serde(rename = "events.subscribe")]
    EventsSubscribe,
}

impl Request {
    /// The operation's name (for logs: never the arguments, which may be secret).
    pub(crate) fn op(&self) -> &'static str {
        match self {
            Request::Ping => "ping",
            Request::ProfileCreate { .. } => "profile.create",
            Request::ProfileList { .. } => "profile.list",
            Request::ProfileUnlock { .. } => "profile.unlock",
            Request::ProfilePasswd { .. } => "profile.passwd",
            Request::ProfileExport { .. } => "profile.export",
            Request::ProfileImport { .. } => "profile.import",
            Request::ProfileDelete { .. } => "profile.delete",
            Request::ProfileSettings { .. } => "profile.settings",
            Request::ContactAdd { .. } => "contact.add",
            Request::ContactList { .. } => "contact.list",
            Request::ContactAccept { .. } => "contact.accept",
            Request::ContactBlock { .. } => "contact.block",
            Request::ContactUnblock { .. } => "contact.unblock",
            Request::ContactPermissions { .. } => "contact.permissions",
            Request::ContactDelete { .. } => "contact.delete",
            Request::Send { .. } => "send",
            Request::Messages { .. } => "messages",
            Request::Search { .. } => "search",
            Request::ContactRename { .. } => "contact.rename",
            Request::GroupRename { .. } => "group.rename",
            Request::ServerAdd { .. } => "server.add",
            Request::ServerList { .. } => "server.list",
            Request::ServerRemove { .. } => "server.remove",
            Request::GroupCreate { .. } => "group.create",
            Request::GroupInvite { .. } => "group.invite",
            Request::GroupJoin { .. } => "group.join",
            Request::GroupList { .. } => "group.list",
            Request::GroupAccept { .. } => "group.accept",
            Request::GroupLeave { .. } => "group.leave",
            Request::FileShare { .. } => "file.share",
            Request::FileList { .. } => "file.list",
            Request::FileDownload { .. } => "file.download",
            Request::FileStop { .. } => "file.stop",
            Request::FileRestart { .. } => "file.restart",
            Request::EventsSubscribe => "events.subscribe",
        }
    }

    /// One request line (without the newline, but with room for it). A request can carry
    /// passwords: it is written once into a buffer of its size (no copy left unwiped by a
    /// buffer that grew), and pushing the newline does not grow it either.
    pub(crate) fn to_line(&self) -> Result<Zeroizing<String>, CliError> {
        #[derive(Serialize)]
        struct Line<'a> {
            v: u32,
            #[serde(flatten)]
            request: &'a Request,
        }
        /// Counts the bytes written.
        struct Counter(usize);
        impl std::io::Write for Counter {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0 += buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let line = Line {
            v: PROTOCOL_VERSION,
            request: self,
        };
        let failed =
            |e: serde_json::Error| CliError::Failed(format!("cannot encode the request: {e}"));
        let mut size = Counter(0);
        serde_json::to_writer(&mut size, &line).map_err(failed)?;
        let mut out = Zeroizing::new(Vec::with_capacity(size.0 + 1));
        serde_json::to_writer(&mut *out, &line).map_err(failed)?;
        let bytes = std::mem::take(&mut *out);
        // serde_json writes UTF-8 only.
        String::from_utf8(bytes).map(Zeroizing::new).map_err(|e| {
            // Wipe what came back too.
            drop(Zeroizing::new(e.into_bytes()));
            CliError::Failed("cannot encode the request: not UTF-8".into())
        })
    }

    /// Parse one line as the daemon reads it (bytes, the newline included or not): `None`
    /// for a blank line; not UTF-8, not JSON, another version or an unknown op is a usage
    /// error.
    pub(crate) fn from_bytes(buf: &[u8]) -> Result<Option<Request>, CliError> {
        match std::str::from_utf8(buf).map(str::trim) {
            Ok("") => Ok(None),
            Ok(line) => Request::from_line(line).map(Some),
            Err(_) => Err(CliError::Usage("request is not UTF-8".into())),
        }
    }

    /// Parse a request line; a version other than ours is refused.
    pub(crate) fn from_line(line: &str) -> Result<Request, CliError> {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| CliError::Usage(format!("request is not JSON: {e}")))?;
        match v.get("v").and_then(serde_json::Value::as_u64) {
            Some(n) if n == u64::from(PROTOCOL_VERSION) => {}
            Some(n) => {
                return Err(CliError::Usage(format!(
                    "unsupported protocol version {n} (this daemon speaks {PROTOCOL_VERSION})"
                )))
            }
            None => {
                return Err(CliError::Usage(
                    "request has no protocol version \"v\"".into(),
                ))
            }
        }
        serde_json::from_value(v).map_err(|e| CliError::Usage(format!("bad request: {e}")))
    }
}

/// A profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProfileRow {
    pub(crate) profile_id: String,
    pub(crate) onion: String,
    pub(crate) name: String,
    /// Whether the answering `cwtch run` runs it (always false without a daemon).
    pub(crate) running: bool,
}

impl ProfileRow {
    pub(crate) fn from_info(p: &cwtch::ProfileInfo, running: bool) -> ProfileRow {
        ProfileRow {
            profile_id: p.profile_id.as_str().to_owned(),
            onion: p.onion.as_str().to_owned(),
            name: p.name.clone(),
            running,
        }
    }
}

/// A profile's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SettingsRow {
    pub(crate) profile_id: String,
    pub(crate) onion: String,
    pub(crate) name: String,
    pub(crate) status: String,
    pub(crate) block_unknown: bool,
    #[serde(default)]
    pub(crate) image_previews: bool,
    /// Our profile picture's file key, if we set one.
    #[serde(default)]
    pub(crate) image: Option<String>,
    /// Goes online when loaded.
    #[serde(default = "yes")]
    pub(crate) autostart: bool,
    /// Online now (its engine active), where a daemon runs it; `None` without one.
    #[serde(default)]
    pub(crate) online: Option<bool>,
}

fn yes() -> bool {
    true
}

/// A contact.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ContactRow {
    pub(crate) conversation_id: i64,
    pub(crate) onion: String,
    pub(crate) name: Option<String>,
    pub(crate) accepted: bool,
    pub(crate) blocked: bool,
    /// The connection state (`Disconnected` when no `cwtch run` runs the profile).
    pub(crate) state: ConnectionState,
    pub(crate) message_count: u64,
    /// The contact's messages after the last one read.
    #[serde(default)]
    pub(crate) unread: u64,
    pub(crate) unacknowledged: usize,
    pub(crate) attributes: BTreeMap<String, String>,
    /// What the contact may do beyond chatting (`null`: the default).
    #[serde(default)]
    pub(crate) permissions: cwtch::Permissions,
}

impl ContactRow {
    pub(crate) fn from_contact(c: cwtch::Contact, online: bool) -> ContactRow {
        ContactRow {
            conversation_id: c.conversation_id.0,
            onion: c.onion.as_str().to_owned(),
            name: c.name,
            accepted: c.accepted,
            blocked: c.blocked,
            state: if online {
                c.state
            } else {
                ConnectionState::Disconnected
            },
            message_count: c.message_count,
            unread: c.unread,
            unacknowledged: c.unacknowledged,
            // File sharing's own (manifests, local paths) are for `file list`, not here: a
            // shared file's manifest is 12 MiB per GiB.
            attributes: c
                .attributes
                .into_iter()
                .filter(|(k, _)| k.split('.').nth(1) != Some("filesharing"))
                .collect(),
            permissions: c.permissions,
        }
    }

    /// `accepted`, `request` or `blocked`.
    pub(crate) fn status(&self) -> &'static str {
        if self.blocked {
            "blocked"
        } else if self.accepted {
            "accepted"
        } else {
            "request"
        }
    }
}

/// A message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MessageRow {
    pub(crate) conversation_id: i64,
    pub(crate) message_id: i64,
    pub(crate) signature: String,
    pub(crate) author: String,
    pub(crate) outgoing: bool,
    /// `sending`, `sent`, `acknowledged`, `failed` (with `error`) or `received`.
    #[serde(flatten)]
    pub(crate) state: MessageState,
    pub(crate) timestamp: Option<String>,
    /// The text to show (`null` if the body is not understood).
    pub(crate) text: Option<String>,
    pub(crate) overlay: Option<i64>,
    pub(crate) content: Content,
    pub(crate) body: String,
    pub(crate) content_hash: String,
    /// A file message's image, once downloaded and checked (image previews on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) image: Option<cwtch::Image>,
    /// A file message's file, as `file list` says it is now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) file: Option<FileStateRow>,
    /// A reply's quoted message, by id, when it is found in the conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reply_to: Option<i64>,
}

/// Where a file of a file message stands (from `cwtch::FileInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileStateRow {
    /// `sharing`, `stopped` (ours); `offered`, `downloading`, `downloaded` or
    /// `failed: <reason>` (theirs).
    pub(crate) state: String,
    /// Our file, or where it is (being) downloaded to.
    pub(crate) path: Option<String>,
}

/// A message a search found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FoundRow {
    /// The conversation's name: a contact's (its onion if it has none) or a group's.
    pub(crate) conversation: String,
    /// Its position in the conversation, newest first (0 = the newest): the `offset` of
    /// `messages` that shows it first.
    pub(crate) position: u64,
    pub(crate) message: MessageRow,
}

impl MessageRow {
    pub(crate) fn from_info(m: cwtch::MessageInfo) -> MessageRow {
        MessageRow {
            conversation_id: m.conversation_id.0,
            message_id: m.message_id.0,
            signature: m.signature,
            author: m.author,
            outgoing: m.outgoing,
            state: m.state,
            timestamp: m.timestamp,
            text: m.content.display_text().map(str::to_owned),
            overlay: m.content.overlay(),
            content: m.content,
            body: m.body,
            content_hash: m.content_hash,
            image: None,
            file: None,
            reply_to: None,
        }
    }
}

/// What `send` achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Delivery {
    /// The contact acknowledged it.
    Acknowledged,
    /// The group's server accepted the post (every member can fetch it).
    Sent,
    /// Stored, not (yet) acknowledged or accepted: retried on every connection to the
    /// contact (the server).
    Queued,
}

/// The result of `send`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SendRow {
    pub(crate) delivery: Delivery,
    pub(crate) profile: String,
    pub(crate) contact: String,
    pub(crate) conversation_id: i64,
    pub(crate) message_id: i64,
    pub(crate) signature: String,
    /// The library's state of the message when the command returned.
    #[serde(flatten)]
    pub(crate) state: MessageState,
    /// How long we waited for the acknowledgement, in seconds.
    pub(crate) waited_secs: u64,
    /// The profile is offline (`profile set --online off`): nothing was waited for.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) offline: bool,
}

/// The result of `send` to a group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GroupSendRow {
    /// `sent` or `queued`.
    pub(crate) delivery: Delivery,
    pub(crate) profile: String,
    /// The group's name.
    pub(crate) group: String,
    pub(crate) group_id: String,
    pub(crate) server: String,
    pub(crate) conversation_id: i64,
    pub(crate) message_id: i64,
    /// The message's signature (std base64): its id on the server.
    pub(crate) signature: String,
    /// The message's state: `sending` (not yet accepted by the server), `sent` (accepted),
    /// `acknowledged` (seen coming back from the server).
    #[serde(flatten)]
    pub(crate) state: MessageState,
    /// How long we waited for the server, in seconds.
    pub(crate) waited_secs: u64,
    /// The profile is offline (`profile set --online off`): nothing was waited for.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) offline: bool,
}

/// A server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ServerRow {
    pub(crate) conversation_id: i64,
    /// Its token-board onion (what groups name it by).
    pub(crate) onion: String,
    pub(crate) token_service: String,
    /// The connection's state (`Disconnected` when no `cwtch run` runs the profile).
    pub(crate) state: ServerState,
    /// Unspent tokens in hand (each post spends one).
    pub(crate) tokens: usize,
    /// When the last replay completed in the running process (RFC 3339), if it did.
    pub(crate) last_sync: Option<String>,
    /// How many of the profile's groups are on it.
    pub(crate) groups: usize,
}

impl ServerRow {
    pub(crate) fn from_info(s: cwtch::ServerInfo, online: bool) -> ServerRow {
        ServerRow {
            conversation_id: s.conversation_id.0,
            onion: s.onion.as_str().to_owned(),
            token_service: s.token_service.as_str().to_owned(),
            state: if online {
                s.state
            } else {
                ServerState::Disconnected
            },
            tokens: s.tokens,
            last_sync: s.last_sync,
            groups: s.groups,
        }
    }
}

/// A group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GroupRow {
    pub(crate) conversation_id: i64,
    /// The group id (32 hex).
    pub(crate) group_id: String,
    pub(crate) name: String,
    /// Its server's onion.
    pub(crate) server: String,
    /// False: an invite not accepted yet.
    pub(crate) accepted: bool,
    /// The state of the connection to its server (`Disconnected` without a daemon).
    pub(crate) server_state: ServerState,
    pub(crate) messages: u64,
    /// The other members seen (authors of stored messages), by onion.
    pub(crate) members: Vec<String>,
    /// Messages from others not yet shown by `messages GROUP`.
    pub(crate) unread: u64,
    /// Gaps (messages referred to but never received) detected by the running process.
    pub(crate) missing: u64,
    /// The `tofubundle:` invite (only when the group was just created: it is the group's
    /// secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) invite: Option<String>,
}

impl GroupRow {
    pub(crate) fn from_info(g: cwtch::GroupInfo, online: bool, with_invite: bool) -> GroupRow {
        GroupRow {
            conversation_id: g.conversation_id.0,
            group_id: g.group_id,
            name: g.name,
            server: g.server.as_str().to_owned(),
            accepted: g.accepted,
            server_state: if online {
                g.server_state
            } else {
                ServerState::Disconnected
            },
            messages: g.messages,
            members: g.members,
            unread: g.unread,
            missing: g.missing,
            invite: with_invite.then_some(g.invite),
        }
    }

    /// `accepted` or `invite`.
    pub(crate) fn status(&self) -> &'static str {
        if self.accepted {
            "accepted"
        } else {
            "invite"
        }
    }
}

/// The network's bootstrap status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AcnRow {
    /// Percent; 100 is ready.
    pub(crate) progress: u8,
    pub(crate) summary: String,
}

/// A successful answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Reply {
    Pong {
        version: u32,
        pid: u32,
        profiles: Vec<ProfileRow>,
        /// The network's bootstrap status (absent from older daemons).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        acn: Option<AcnRow>,
    },
    Profiles {
        profiles: Vec<ProfileRow>,
    },
    Profile {
        profile: ProfileRow,
    },
    Settings {
        settings: SettingsRow,
    },
    Contacts {
        contacts: Vec<ContactRow>,
    },
    Contact {
        contact: ContactRow,
    },
    Messages {
        messages: Vec<MessageRow>,
    },
    Found {
        found: Vec<FoundRow>,
    },
    Sent {
        sent: SendRow,
    },
    /// `group invite`: the invite message to the contact, and the group's name.
    Invited {
        sent: SendRow,
        group: String,
    },
    GroupSent {
        sent: GroupSendRow,
    },
    Server {
        server: ServerRow,
    },
    Servers {
        servers: Vec<ServerRow>,
    },
    Group {
        group: GroupRow,
    },
    Groups {
        groups: Vec<GroupRow>,
    },
    /// `events.subscribe`: event lines follow.
    Subscribed,
    /// `file.share`: the file key, and how the offer went.
    FileShared {
        file_key: String,
        sent: SendRow,
    },
    /// `file.share` in a group: the file key, and how the post went.
    GroupFileShared {
        file_key: String,
        sent: GroupSendRow,
    },
    Files {
        files: Vec<cwtch::FileInfo>,
    },
    /// `file.download`: where the file is (or will be), and its state.
    FileDownload {
        file_key: String,
        path: String,
        state: String,
    },
    /// `file.stop`, `file.restart`: the new state.
    FileState {
        file_key: String,
        state: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireError {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

/// An answer line.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Response {
    pub(crate) v: u32,
    pub(crate) ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) result: Option<Reply>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<WireError>,
}

impl Response {
    pub(crate) fn new(r: Result<Reply, CliError>) -> Response {
        match r {
            Ok(reply) => Response {
                v: PROTOCOL_VERSION,
                ok: true,
                result: Some(reply),
                error: None,
            },
            Err(e) => Response {
                v: PROTOCOL_VERSION,
                ok: false,
                result: None,
                error: Some(WireError {
                    code: e.code(),
                    message: e.to_string(),
                }),
            },
        }
    }

    /// Parse an answer line as the client reads it: the reply, or the error it carries.
    pub(crate) fn parse(buf: &[u8]) -> Result<Reply, CliError> {
        let resp: Response = serde_json::from_slice(buf).map_err(|e| {
            CliError::Failed(format!("the running `cwtch run` sent a bad answer: {e}"))
        })?;
        resp.into_result()
    }

    pub(crate) fn into_result(self) -> Result<Reply, CliError> {
        match (self.ok, self.result, self.error) {
            (true, Some(r), _) => Ok(r),
            (false, _, Some(e)) => Err(CliError::from_code(e.code, e.message)),
            _ => Err(CliError::Failed(
                "the daemon sent a malformed answer".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn requests_round_trip_and_carry_the_version() {
        let r = Request::Send {
            profile: Some("alice".into()),
            contact: "3".into(),
            text: "hi | there".into(),
            wait_secs: 5,
            reply_to: Some("q+H/=".into()),
        };
        let line = r.to_line().unwrap();
        assert!(line.contains(r#""op":"send""#), "{}", *line);
        assert!(line.contains(r#""v":1"#), "{}", *line);
        match Request::from_line(&line).unwrap() {
            Request::Send {
                text,
                wait_secs,
                reply_to,
                ..
            } => assert_eq!(
                (text.as_str(), wait_secs, reply_to.as_deref()),
                ("hi | there", 5, Some("q+H/="))
            ),
            other => panic!("{other:?}"),
        }
        // Older clients omit `reply_to`: a plain text.
        let old = r#"{"v":1,"op":"send","profile":null,"contact":"1","text":"x","wait_secs":0}"#;
        assert!(matches!(
            Request::from_line(old).unwrap(),
            Request::Send { reply_to: None, .. }
        ));
        let pw = Request::ProfileUnlock {
            profile: None,
            password: Secret::new(Zeroizing::new("pw".into())),
        };
        assert!(!format!("{pw:?}").contains("pw\""));
        let back = Request::from_line(&pw.to_line().unwrap()).unwrap();
        assert!(
            matches!(back, Request::ProfileUnlock { password, .. } if password.0.as_str() == "pw")
        );
    }

    #[test]
    fn group_requests_round_trip_and_hide_invites() {
        let join = Request::GroupJoin {
            profile: None,
            invite: Secret::new(Zeroizing::new("torv3c2VjcmV0".into())),
        };
        assert!(!format!("{join:?}").contains("c2VjcmV0"));
        let line = join.to_line().unwrap();
        assert!(line.contains(r#""op":"group.join""#), "{}", *line);
        assert!(matches!(
            Request::from_line(&line).unwrap(),
            Request::GroupJoin { invite, .. } if invite.0.as_str() == "torv3c2VjcmV0"
        ));
        for line in [
            r#"{"v":1,"op":"server.add","profile":null,"bundle":"server:x"}"#,
            r#"{"v":1,"op":"server.list","profile":"alice"}"#,
            r#"{"v":1,"op":"server.remove","profile":null,"server":"x"}"#,
            r#"{"v":1,"op":"group.create","profile":null,"name":"n","server":"x"}"#,
            r#"{"v":1,"op":"group.invite","profile":null,"group":"1","contact":"2","wait_secs":0}"#,
            r#"{"v":1,"op":"group.list","profile":null}"#,
            r#"{"v":1,"op":"group.accept","profile":null,"group":"g"}"#,
            r#"{"v":1,"op":"group.leave","profile":null,"group":"g"}"#,
        ] {
            let r = Request::from_line(line).unwrap();
            let op = serde_json::from_str::<serde_json::Value>(line).unwrap()["op"].clone();
            assert_eq!(r.op(), op.as_str().unwrap());
            let back = Request::from_line(&r.to_line().unwrap()).unwrap();
            assert_eq!(back.op(), r.op());
        }
        // A group's send result and rows survive the wire.
        let sent = Reply::GroupSent {
            sent: GroupSendRow {
                delivery: Delivery::Sent,
                profile: "p".into(),
                group: "g".into(),
                group_id: "00".into(),
                server: "s".into(),
                conversation_id: 2,
                message_id: 1,
                signature: "c2ln".into(),
                state: MessageState::Sent,
                waited_secs: 0,
                offline: false,
            },
        };
        let s = serde_json::to_string(&Response::new(Ok(sent))).unwrap();
        assert!(s.contains(r#""kind":"group_sent""#), "{s}");
        assert!(s.contains(r#""delivery":"sent","#), "{s}");
        assert!(s.contains(r#""state":"sent""#), "{s}");
        assert!(matches!(
            Response::parse(s.as_bytes()).unwrap(),
            Reply::GroupSent { .. }
        ));
    }

    #[test]
    fn event_subscriptions_and_pongs_on_the_wire() {
        let line = Request::EventsSubscribe.to_line().unwrap();
        assert_eq!(line.as_str(), r#"{"v":1,"op":"events.subscribe"}"#);
        // Written once into a buffer of its size, with room for the newline.
        assert_eq!(line.capacity(), line.len() + 1);
        assert!(matches!(
            Request::from_line(&line).unwrap(),
            Request::EventsSubscribe
        ));
        let s = serde_json::to_string(&Response::new(Ok(Reply::Subscribed))).unwrap();
        assert_eq!(s, r#"{"v":1,"ok":true,"result":{"kind":"subscribed"}}"#);
        assert!(matches!(
            Response::parse(s.as_bytes()).unwrap(),
            Reply::Subscribed
        ));
        // A pong carries the network's status; an older daemon's (without it) still parses.
        let pong = Reply::Pong {
            version: 1,
            pid: 7,
            profiles: vec![],
            acn: Some(AcnRow {
                progress: 45,
                summary: "Loading".into(),
            }),
        };
        let s = serde_json::to_string(&Response::new(Ok(pong))).unwrap();
        assert!(
            s.contains(r#""acn":{"progress":45,"summary":"Loading"}"#),
            "{s}"
        );
        let old = r#"{"v":1,"ok":true,"result":{"kind":"pong","version":1,"pid":7,"profiles":[]}}"#;
        assert!(matches!(
            Response::parse(old.as_bytes()).unwrap(),
            Reply::Pong { acn: None, .. }
        ));
    }

    #[test]
    fn bad_requests_are_usage_errors() {
        for line in [
            "not json",
            r#"{"op":"ping"}"#,
            r#"{"v":2,"op":"ping"}"#,
            r#"{"v":1,"op":"nope"}"#,
            r#"{"v":1,"op":"send"}"#,
        ] {
            let e = Request::from_line(line).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{line}: {e}");
        }
        assert!(Request::from_line(r#"{"v":2,"op":"ping"}"#)
            .unwrap_err()
            .to_string()
            .contains("version 2"));
    }

    #[test]
    fn responses_round_trip() {
        let ok = Response::new(Ok(Reply::Profiles { profiles: vec![] }));
        let s = serde_json::to_string(&ok).unwrap();
        assert_eq!(
            s,
            r#"{"v":1,"ok":true,"result":{"kind":"profiles","profiles":[]}}"#
        );
        let err = Response::new(Err(CliError::NotFound("no such contact".into())));
        let s = serde_json::to_string(&err).unwrap();
        assert_eq!(
            s,
            r#"{"v":1,"ok":false,"error":{"code":"not_found","message":"no such contact"}}"#
        );
        let back: Response = serde_json::from_str(&s).unwrap();
        assert_eq!(back.into_result().unwrap_err().exit_code(), 3);
    }
}
