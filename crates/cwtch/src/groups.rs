//! Groups on servers (protocol.md §5, §6; `docs/specs/groups.md`): the profile's servers and
//! groups, and the operations on them. The network side, one task per server, is
//! `server_task.rs`; the cryptography is `cwtch_model::group`, the token-board protocol
//! `cwtch_board`.
//!
//! Data flows one way: an operation here stores first, then hands a prepared post to the
//! server's task; the task reports what the server said through the store and the event
//! stream, never back through here.

use std::collections::HashMap;
use std::sync::Arc;

use cwtch_board::ServerClient;
use cwtch_model::group::{Group, GroupId};
use cwtch_model::keybundle::TofuBundle;
use cwtch_model::{gojson, EncryptedGroupMessage, GroupInvite, KeyBundle};
use cwtch_storage::{
    content_hash, keys, Acl, AttributeCondition, Attributes, Conversation, ConversationId,
    ConversationKind, NewConversation, NewMessage,
};
use privacypass::Token;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use torv3::{Onion, Signature};
use tracing::{debug, warn};

use crate::error::{Error, Result};
use crate::event::{Event, MessageState, ServerState};
use crate::runtime::Runtime;
use crate::server_task::{self, PostJob};
use crate::types::{GroupInfo, SentMessage, ServerInfo};
use crate::util::now_rfc3339;

/// Message attribute: the encrypted message as posted (std base64 of its Go JSON), kept until
/// the message is seen coming back from the server, so that a post interrupted by a crash or
/// a lost connection is posted again. Our own key.
pub(crate) const MESSAGE_POST: &str = "rs.group.post";

/// Conversation attribute: the id of the newest message the user has read (see
/// [`Runtime::mark_group_read`]); messages from others after it are unread. Our own key.
pub(crate) const LAST_READ: &str = "local.rs.last-read";

/// How many posts may wait for a server's task (a full queue is an error for the caller).
const POST_QUEUE: usize = 256;

/// The prefix of a P2P group invite (overlay 101): a server bundle and a group invite.
pub(crate) const TOFU_PREFIX: &str = "tofubundle:";

/// A server the profile knows.
pub(crate) struct ServerEntry {
    pub(crate) conversation: ConversationId,
    pub(crate) client: ServerClient,
    pub(crate) state: ServerState,
    pub(crate) tokens: usize,
    pub(crate) last_sync: Option<String>,
    pub(crate) task: Option<ServerTaskHandle>,
    /// Fires when the task started last has ended. The next task waits for it, so that at
    /// most one task at a time reads and writes the server's tokens and cursor.
    pub(crate) finished: Option<CancellationToken>,
}

/// A running server task.
pub(crate) struct ServerTaskHandle {
    pub(crate) cancel: CancellationToken,
    pub(crate) posts: mpsc::Sender<PostJob>,
}

/// A group the profile belongs to (or was invited to).
pub(crate) struct GroupEntry {
    pub(crate) conversation: ConversationId,
    pub(crate) group: Group,
    pub(crate) name: String,
    pub(crate) accepted: bool,
    /// The signature of the latest message seen in the group: our next post's
    /// `PreviousMessageSig`.
    pub(crate) latest: Option<Signature>,
    /// Messages named by a `PreviousMessageSig` and not received, in this session.
    pub(crate) missing: Gaps,
}

/// Most gaps remembered per group and session: each costs a member a post (a token), but
/// nothing else bounds them.
const MAX_GAPS: usize = 1024;

/// The signatures (std base64) named by a `PreviousMessageSig` and not received: a gap is
/// reported once, and forgotten if the message arrives after all. At most [`MAX_GAPS`] are
/// remembered; gaps beyond those are not reported.
#[derive(Debug, Default)]
pub(crate) struct Gaps(std::collections::HashSet<String>);

impl Gaps {
    /// The message with `signature` has arrived: it is no gap (any more).
    pub(crate) fn arrived(&mut self, signature: &str) {
        self.0.remove(signature);
    }

    /// A message names `previous`, which we do not have. True: a new gap, to report.
    pub(crate) fn note(&mut self, previous: &str) -> bool {
        if self.0.len() >= MAX_GAPS || self.0.contains(previous) {
            return false;
        }
        self.0.insert(previous.to_owned())
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// The profile's servers and groups.
#[derive(Default)]
pub(crate) struct Groups {
    pub(crate) servers: HashMap<Onion, ServerEntry>,
    pub(crate) groups: HashMap<ConversationId, GroupEntry>,
}

impl Groups {
    /// The accepted groups on `server`.
    pub(crate) fn accepted_on(&self, server: &Onion) -> Vec<(ConversationId, Group)> {
        self.groups
            .values()
            .filter(|g| g.accepted && g.group.server() == server)
            .map(|g| (g.conversation, g.group.clone()))
            .collect()
    }

    fn by_group_id(&self, id: GroupId) -> Option<&GroupEntry> {
        self.groups.values().find(|g| g.group.id() == id)
    }
}

/// How a command names a group: its conversation id, its group id (hex) or its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRef {
    /// A conversation id.
    Conversation(ConversationId),
    /// A group id (32 hex) or a group's name.
    Name(String),
}

impl std::str::FromStr for GroupRef {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let s = s.trim();
        Ok(match s.parse::<i64>() {
            Ok(n) => GroupRef::Conversation(ConversationId(n)),
            Err(_) => GroupRef::Name(s.to_owned()),
        })
    }
}

impl From<ConversationId> for GroupRef {
    fn from(c: ConversationId) -> Self {
        GroupRef::Conversation(c)
    }
}

/// What the profile's store says about its servers and groups when it is loaded.
pub(crate) struct Loaded {
    pub(crate) servers: Vec<(Conversation, KeyBundle)>,
    pub(crate) groups: Vec<(Conversation, Group, Option<Signature>)>,
}

/// Read servers and groups from conversations (on the storage thread, at load).
pub(crate) fn load(
    store: &dyn cwtch_storage::ProfileStore,
    conversations: &[Conversation],
) -> std::result::Result<Loaded, cwtch_storage::Error> {
    let mut servers = Vec::new();
    let mut groups = Vec::new();
    for c in conversations {
        match c.kind() {
            ConversationKind::Server => match server_bundle(c) {
                Some(b) => servers.push((c.clone(), b)),
                None => warn!("a stored server's bundle does not verify; ignored"),
            },
            ConversationKind::Group => match group_of(c) {
                Some(g) => {
                    let latest = store
                        .latest_message(c.id)?
                        .and_then(|m| signature_from_b64(&m.signature));
                    groups.push((c.clone(), g, latest));
                }
                None => warn!("a stored group's key or id is invalid; ignored"),
            },
            ConversationKind::Contact => {}
        }
    }
    Ok(Loaded { servers, groups })
}

fn server_bundle(c: &Conversation) -> Option<KeyBundle> {
    let b64 = c.attribute(keys::SERVER_BUNDLE)?;
    let b = KeyBundle::parse_server_string(&format!("server:{b64}")).ok()?;
    b.verify().ok()?;
    Some(b)
}

fn group_of(c: &Conversation) -> Option<Group> {
    let server = Onion::parse(c.attribute(keys::GROUP_SERVER)?).ok()?;
    // The group's secret: every copy wiped (the invite wipes its own).
    let key = zeroize::Zeroizing::new(
        gojson::go_base64_decode(c.attribute(keys::GROUP_KEY)?.as_bytes(), "group key").ok()?,
    );
    let mut array = zeroize::Zeroizing::new([0u8; 32]);
    if key.len() != array.len() {
        return None;
    }
    array.copy_from_slice(&key);
    let invite = GroupInvite::new(String::new(), *array, server);
    let g = Group::from_invite(&invite).ok()?;
    (g.id().to_string() == c.handle).then_some(g)
}

pub(crate) fn signature_from_b64(s: &str) -> Option<Signature> {
    let bytes = gojson::go_base64_decode(s.as_bytes(), "signature").ok()?;
    Signature::try_from(bytes.as_slice()).ok()
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Runtime {
    // ---- servers ----

    /// Import a `server:` bundle (signature checked). Importing a known server again with the
    /// same keys returns it; different keys for a known onion are refused (TOFU).
    pub(crate) async fn add_server(self: &Arc<Self>, bundle: &str) -> Result<ServerInfo> {
        self.check_running()?;
        let kb = KeyBundle::parse_server_string(bundle.trim()).map_err(Error::Bundle)?;
        self.add_server_bundle(kb).await
    }

    pub(crate) async fn add_server_bundle(self: &Arc<Self>, kb: KeyBundle) -> Result<ServerInfo> {
        let keys_ = kb.verify().map_err(Error::Bundle)?;
        let onion = keys_.server.clone();
        if onion == self.onion {
            return Err(Error::Invalid {
                what: "server (it is this profile's own address)",
            });
        }
        let _ops = self.contact_ops.lock().await;
        // The state lock is released before `server_info` takes it again.
        let known = self
            .state()
            .groups
            .servers
            .get(&onion)
            .map(|existing| existing.client.keys() == &keys_);
        match known {
            Some(true) => {
                drop(_ops);
                return self.server_info(&onion);
            }
            Some(false) => return Err(Error::ServerKeysChanged),
            None => {}
        }
        if self.state().contacts.contains_key(&onion) {
            return Err(Error::Invalid {
                what: "server (the address is one of this profile's contacts)",
            });
        }
        let client = ServerClient::new(&kb, self.acn())?;
        let mut attributes = Attributes::new();
        for (k, v) in &kb.keys {
            attributes.insert(format!("{}{k}", keys::SERVER_KEY_PREFIX), v.clone());
        }
        let server_string = kb.to_server_string();
        let b64 = server_string
            .strip_prefix("server:")
            .unwrap_or(&server_string)
            .to_owned();
        attributes.insert(keys::SERVER_BUNDLE.into(), b64);
        let new = NewConversation {
            handle: onion.as_str().to_owned(),
            attributes,
            acl: Acl::new(),
            accepted: true,
        };
        let conv = self
            .store
            .call(move |s| s.create_conversation(&new))
            .await?;
        self.state().groups.servers.insert(
            onion.clone(),
            ServerEntry {
                conversation: conv,
                client,
                state: ServerState::Disconnected,
                tokens: 0,
                last_sync: None,
                task: None,
                finished: None,
            },
        );
        self.emit(Event::ServerAdded {
            profile: self.profile(),
            conversation_id: conv.0,
            server: onion.as_str().to_owned(),
        });
        drop(_ops);
        self.server_info(&onion)
    }

    /// A server's summary.
    pub(crate) fn server_info(&self, onion: &Onion) -> Result<ServerInfo> {
        let st = self.state();
        let s = st.groups.servers.get(onion).ok_or(Error::ServerNotFound)?;
        Ok(ServerInfo {
            conversation_id: s.conversation,
            onion: onion.clone(),
            token_service: s.client.keys().token_service.clone(),
            state: s.state,
            tokens: s.tokens,
            last_sync: s.last_sync.clone(),
            groups: st
                .groups
                .groups
                .values()
                .filter(|g| g.group.server() == onion)
                .count(),
        })
    }

    /// Every server, by conversation id.
    pub(crate) fn servers(&self) -> Vec<ServerInfo> {
        let onions: Vec<Onion> = self.state().groups.servers.keys().cloned().collect();
        let mut out: Vec<ServerInfo> = onions
            .iter()
            .filter_map(|o| self.server_info(o).ok())
            .collect();
        out.sort_by_key(|s| s.conversation_id);
        out
    }

    /// Remove a server. Refused while a group uses it (leave the groups first).
    pub(crate) async fn remove_server(self: &Arc<Self>, onion: &str) -> Result<()> {
        let onion = Onion::parse(onion.trim()).map_err(Error::InvalidAddress)?;
        let _ops = self.contact_ops.lock().await;
        let conv = {
            let st = self.state();
            let s = st.groups.servers.get(&onion).ok_or(Error::ServerNotFound)?;
            let used = st
                .groups
                .groups
                .values()
                .filter(|g| g.group.server() == &onion)
                .count();
            if used > 0 {
                return Err(Error::ServerInUse { groups: used });
            }
            s.conversation
        };
        self.store
            .call(move |s| s.delete_conversation(conv))
            .await?;
        if let Some(s) = self.state().groups.servers.remove(&onion) {
            if let Some(t) = s.task {
                t.cancel.cancel();
            }
        }
        self.emit(Event::ServerRemoved {
            profile: self.profile(),
            conversation_id: conv.0,
            server: onion.as_str().to_owned(),
        });
        Ok(())
    }

    // ---- groups ----

    /// Create a group on a known server; the creator's group is accepted and syncing starts.
    pub(crate) async fn create_group(
        self: &Arc<Self>,
        name: &str,
        server: &str,
    ) -> Result<GroupInfo> {
        self.check_running()?;
        // One rule for names: trimmed, one line, not empty, not too long.
        let name = crate::names::check_local_name(name)?;
        let name = name.as_str();
        let server = Onion::parse(server.trim()).map_err(Error::InvalidAddress)?;
        if !self.state().groups.servers.contains_key(&server) {
            return Err(Error::ServerNotFound);
        }
        let group = Group::generate(&mut rand_core::OsRng, server);
        let conv = self.store_group(&group, name, true).await?;
        self.start_server(group.server());
        self.group_info(&GroupRef::Conversation(conv)).await
    }

    /// Join a group from an invite: `tofubundle:server:…||torv3…` (the server is imported if
    /// new) or `torv3…` (the server must be known). Joining is accepting.
    pub(crate) async fn join_group(self: &Arc<Self>, invite: &str) -> Result<GroupInfo> {
        self.check_running()?;
        let (bundle, invite) = parse_invite(invite)?;
        if let Some(kb) = bundle {
            self.add_server_bundle(kb).await?;
        }
        let group = Group::from_invite(&invite).map_err(Error::Bundle)?;
        if !self.state().groups.servers.contains_key(group.server()) {
            return Err(Error::ServerNotFound);
        }
        let existing = self
            .state()
            .groups
            .by_group_id(group.id())
            .map(|g| g.conversation);
        let conv = match existing {
            Some(conv) => {
                self.accept_group(&GroupRef::Conversation(conv)).await?;
                conv
            }
            None => {
                let name = if invite.group_name.trim().is_empty() {
                    group.id().to_string()
                } else {
                    invite.group_name.clone()
                };
                let conv = self.store_group(&group, &name, true).await?;
                // The group may have history before our position on a server we already
                // follow: replay that server from the start.
                self.restart_server(group.server(), true);
                conv
            }
        };
        self.group_info(&GroupRef::Conversation(conv)).await
    }

    /// A group invite received from `from` over P2P: stored as an unaccepted group (its server
    /// imported if new), announced; the user accepts (joins) or leaves (declines) it.
    pub(crate) async fn on_group_invite(
        self: &Arc<Self>,
        from: &Onion,
        body_data: &str,
    ) -> Option<ConversationId> {
        let (bundle, invite) = match parse_invite(body_data) {
            Ok(x) => x,
            Err(e) => {
                debug!(error = %e, "an invalid group invite; shown as a message only");
                return None;
            }
        };
        let group = Group::from_invite(&invite).ok()?;
        if let Some(conv) = self
            .state()
            .groups
            .by_group_id(group.id())
            .map(|g| g.conversation)
        {
            return Some(conv); // already known
        }
        if let Some(kb) = bundle {
            if let Err(e) = self.add_server_bundle(kb).await {
                debug!(error = %e, "the invite's server could not be imported");
                return None;
            }
        }
        if !self.state().groups.servers.contains_key(group.server()) {
            return None;
        }
        let name = if invite.group_name.trim().is_empty() {
            group.id().to_string()
        } else {
            invite.group_name.clone()
        };
        let conv = match self.store_group(&group, &name, false).await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "could not store a group invite");
                return None;
            }
        };
        self.emit(Event::GroupInvite {
            profile: self.profile(),
            conversation_id: conv.0,
            group_id: group.id().to_string(),
            name,
            server: group.server().as_str().to_owned(),
            from: from.as_str().to_owned(),
        });
        Some(conv)
    }

    async fn store_group(
        self: &Arc<Self>,
        group: &Group,
        name: &str,
        accepted: bool,
    ) -> Result<ConversationId> {
        let _ops = self.contact_ops.lock().await;
        if let Some(g) = self.state().groups.by_group_id(group.id()) {
            return Ok(g.conversation);
        }
        let invite = group.invite(name.to_owned());
        let mut attributes = Attributes::new();
        attributes.insert(keys::GROUP_ID.into(), group.id().to_string());
        attributes.insert(
            keys::GROUP_SERVER.into(),
            group.server().as_str().to_owned(),
        );
        attributes.insert(
            keys::GROUP_KEY.into(),
            gojson::base64_std(&invite.shared_key),
        );
        attributes.insert(keys::GROUP_NAME.into(), name.to_owned());
        let new = NewConversation {
            handle: group.id().to_string(),
            attributes,
            acl: Acl::new(),
            accepted,
        };
        let conv = self
            .store
            .call(move |s| s.create_conversation(&new))
            .await?;
        self.state().groups.groups.insert(
            conv,
            GroupEntry {
                conversation: conv,
                group: group.clone(),
                name: name.to_owned(),
                accepted,
                latest: None,
                missing: Default::default(),
            },
        );
        self.emit(Event::GroupCreated {
            profile: self.profile(),
            conversation_id: conv.0,
            group_id: group.id().to_string(),
            name: name.to_owned(),
            server: group.server().as_str().to_owned(),
            accepted,
        });
        Ok(conv)
    }

    /// Find a group.
    pub(crate) fn resolve_group(&self, g: &GroupRef) -> Result<ConversationId> {
        let st = self.state();
        match g {
            GroupRef::Conversation(c) => st
                .groups
                .groups
                .contains_key(c)
                .then_some(*c)
                .ok_or(Error::GroupNotFound),
            GroupRef::Name(n) => {
                let by_id: Vec<_> = st
                    .groups
                    .groups
                    .values()
                    .filter(|e| e.group.id().to_string() == n.to_ascii_lowercase())
                    .map(|e| e.conversation)
                    .collect();
                if let [c] = by_id[..] {
                    return Ok(c);
                }
                let by_name: Vec<_> = st
                    .groups
                    .groups
                    .values()
                    .filter(|e| e.name == *n)
                    .map(|e| e.conversation)
                    .collect();
                match by_name[..] {
                    [c] => Ok(c),
                    [] => Err(Error::GroupNotFound),
                    _ => Err(Error::AmbiguousGroup(n.clone())),
                }
            }
        }
    }

    /// Accept a group invite: start syncing it.
    pub(crate) async fn accept_group(self: &Arc<Self>, g: &GroupRef) -> Result<()> {
        let conv = self.resolve_group(g)?;
        let server = {
            let st = self.state();
            let e = st.groups.groups.get(&conv).ok_or(Error::GroupNotFound)?;
            if e.accepted {
                return Ok(());
            }
            e.group.server().clone()
        };
        self.store
            .call(move |s| s.accept_conversation(conv))
            .await?;
        if let Some(e) = self.state().groups.groups.get_mut(&conv) {
            e.accepted = true;
        }
        self.emit(Event::GroupUpdated {
            profile: self.profile(),
            conversation_id: conv.0,
            accepted: true,
        });
        // The task replays from its cursor; messages of this group posted before that point
        // are fetched by a full replay (see `server_task`).
        self.restart_server(&server, true);
        Ok(())
    }

    /// Rename a group, for us alone (its `local.profile.name`).
    pub(crate) async fn rename_group(self: &Arc<Self>, g: &GroupRef, name: &str) -> Result<()> {
        let name = crate::names::check_local_name(name)?;
        let conv = self.resolve_group(g)?;
        let n = name.clone();
        self.store
            .call(move |s| s.set_conversation_attribute(conv, keys::GROUP_NAME, &n))
            .await?;
        if let Some(e) = self.state().groups.groups.get_mut(&conv) {
            e.name = name.clone();
        }
        self.emit(Event::GroupRenamed {
            profile: self.profile(),
            conversation_id: conv.0,
            name,
        });
        Ok(())
    }

    /// Leave (or decline) a group: its conversation and messages are deleted.
    pub(crate) async fn leave_group(self: &Arc<Self>, g: &GroupRef) -> Result<()> {
        let conv = self.resolve_group(g)?;
        let _ops = self.contact_ops.lock().await;
        self.store
            .call(move |s| s.delete_conversation(conv))
            .await?;
        let removed = self.state().groups.groups.remove(&conv);
        if let Some(e) = removed {
            let server = e.group.server().clone();
            let still_used = !self.state().groups.accepted_on(&server).is_empty();
            if !still_used {
                self.stop_server(&server);
            }
            self.emit(Event::GroupLeft {
                profile: self.profile(),
                conversation_id: conv.0,
                group_id: e.group.id().to_string(),
            });
        }
        Ok(())
    }

    /// Block (or unblock) a member's messages in a group: they are dropped on receipt.
    pub(crate) async fn set_member_blocked(
        self: &Arc<Self>,
        g: &GroupRef,
        member: &str,
        blocked: bool,
    ) -> Result<()> {
        let conv = self.resolve_group(g)?;
        let member = Onion::parse(member.trim()).map_err(Error::InvalidAddress)?;
        let m = member.as_str().to_owned();
        self.store
            .call(move |s| {
                let c = s
                    .conversation(conv)?
                    .ok_or(cwtch_storage::Error::ConversationNotFound(conv))?;
                let mut acl = c.acl;
                let mut entry = acl.get(&m).copied().unwrap_or_default();
                entry.blocked = blocked;
                acl.insert(m, entry);
                s.set_conversation_acl(conv, &acl)
            })
            .await?;
        Ok(())
    }

    /// A group's summary.
    pub(crate) async fn group_info(&self, g: &GroupRef) -> Result<GroupInfo> {
        let conv = self.resolve_group(g)?;
        let (group, name, accepted, missing, server_state) = {
            let st = self.state();
            let e = st.groups.groups.get(&conv).ok_or(Error::GroupNotFound)?;
            let server_state = st
                .groups
                .servers
                .get(e.group.server())
                .map(|s| s.state)
                .unwrap_or(ServerState::Disconnected);
            (
                e.group.clone(),
                e.name.clone(),
                e.accepted,
                e.missing.len() as u64,
                server_state,
            )
        };
        let me = self.onion.as_str().to_owned();
        let (messages, members, blocked_members, unread) = self
            .store
            .call(move |s| {
                let n = s.message_count(conv)?;
                let c = s.conversation(conv)?;
                let last_read: i64 = c
                    .as_ref()
                    .and_then(|c| c.attribute(LAST_READ).and_then(|v| v.parse().ok()))
                    .unwrap_or(0);
                let blocked: Vec<String> = c
                    .map(|c| {
                        c.acl
                            .into_iter()
                            .filter(|(_, a)| a.blocked)
                            .map(|(m, _)| m)
                            .collect()
                    })
                    .unwrap_or_default();
                // Members: the authors other than us (in SQL, not read message by message).
                let authors = s.authors(
                    conv,
                    keys::MESSAGE_AUTHOR,
                    &me,
                    cwtch_storage::MessageId(last_read),
                )?;
                let (members, unread) = (authors.names, authors.after);
                Ok((n, members.into_iter().collect::<Vec<_>>(), blocked, unread))
            })
            .await?;
        let invite = self.invite_string(&group, &name).await?;
        Ok(GroupInfo {
            conversation_id: conv,
            group_id: group.id().to_string(),
            name,
            server: group.server().clone(),
            accepted,
            server_state,
            messages,
            members,
            blocked_members,
            unread,
            missing,
            invite,
        })
    }

    /// Mark every message of a group as read.
    pub(crate) async fn mark_group_read(&self, g: &GroupRef) -> Result<()> {
        let conv = self.resolve_group(g)?;
        self.mark_read(conv).await
    }

    /// Mark every message of a conversation (a contact's or a group's) as read.
    pub(crate) async fn mark_read(&self, conv: ConversationId) -> Result<()> {
        self.store
            .call(move |s| {
                let latest = s.latest_message(conv)?.map(|m| m.id.0).unwrap_or(0);
                s.set_conversation_attribute(conv, LAST_READ, &latest.to_string())
            })
            .await
    }

    /// Every group, by conversation id.
    pub(crate) async fn groups(&self) -> Result<Vec<GroupInfo>> {
        let mut convs: Vec<ConversationId> = self.state().groups.groups.keys().copied().collect();
        convs.sort();
        let mut out = Vec::with_capacity(convs.len());
        for c in convs {
            out.push(self.group_info(&GroupRef::Conversation(c)).await?);
        }
        Ok(out)
    }

    /// The `tofubundle:` invite of a group: the server's signed bundle and the group invite,
    /// as Go builds it (protocol.md §6.3).
    async fn invite_string(&self, group: &Group, name: &str) -> Result<String> {
        let server = group.server().clone();
        let conv = self
            .state()
            .groups
            .servers
            .get(&server)
            .map(|s| s.conversation)
            .ok_or(Error::ServerNotFound)?;
        let bundle = self
            .store
            .call(move |s| {
                Ok(s.conversation(conv)?
                    .and_then(|c| c.attribute(keys::SERVER_BUNDLE).map(str::to_owned)))
            })
            .await?
            .ok_or(Error::ServerNotFound)?;
        let invite = group.invite(name.to_owned()).to_invite_string();
        Ok(format!("{TOFU_PREFIX}server:{bundle}||{invite}"))
    }

    /// The invite of a group, in both forms: `tofubundle:` (with the server's bundle) and the
    /// bare `torv3` invite.
    pub(crate) async fn group_invites(&self, g: &GroupRef) -> Result<(String, String)> {
        let conv = self.resolve_group(g)?;
        let (group, name) = {
            let st = self.state();
            let e = st.groups.groups.get(&conv).ok_or(Error::GroupNotFound)?;
            (e.group.clone(), e.name.clone())
        };
        let tofu = self.invite_string(&group, &name).await?;
        Ok((tofu, group.invite(name).to_invite_string()))
    }

    // ---- posting ----

    /// Post a message body (overlay JSON) to a group: sealed, stored (with the post, so that
    /// it survives a crash), then handed to the server's task. "Sent" when the server accepts
    /// it; acknowledged ("seen") when it comes back from the server.
    pub(crate) async fn send_group_body(
        self: &Arc<Self>,
        g: &GroupRef,
        body: String,
    ) -> Result<SentMessage> {
        self.check_running()?;
        let conv = self.resolve_group(g)?;
        let (group, previous, accepted) = {
            let st = self.state();
            let e = st.groups.groups.get(&conv).ok_or(Error::GroupNotFound)?;
            (e.group.clone(), e.latest, e.accepted)
        };
        if !accepted {
            return Err(Error::GroupNotAccepted);
        }
        let identity = self.identity.clone();
        let sealed = group
            .seal(
                &identity,
                &body,
                previous.as_ref(),
                unix_now(),
                &mut rand_core::OsRng,
            )
            .map_err(|e| match e {
                cwtch_model::Error::GroupTextTooLong { bytes, encoded } => {
                    Error::GroupMessageTooLong {
                        bytes,
                        encoded,
                        max: cwtch_model::group::MAX_GROUP_TEXT_BYTES,
                    }
                }
                e => Error::Bundle(e),
            })?;
        let egm = sealed.egm;
        let signature = gojson::base64_std(sealed.message.signature().as_slice());
        let me = self.onion.as_str().to_owned();
        let hash = content_hash(&me, &body);
        let mut attrs = self.own_message_attributes();
        attrs.insert(MESSAGE_POST.into(), gojson::base64_std(&egm.to_json()));
        let (b, s, h) = (body, signature.clone(), hash.clone());
        let id = self
            .store
            .call(move |st| {
                st.insert_message(
                    conv,
                    &NewMessage {
                        body: &b,
                        attributes: &attrs,
                        signature: &s,
                        content_hash: &h,
                    },
                )
            })
            .await?;
        if let Some(e) = self.state().groups.groups.get_mut(&conv) {
            e.latest = Some(*sealed.message.signature());
        }
        self.queue_post(
            group.server(),
            PostJob {
                conversation: conv,
                message: id,
                egm,
                refused: 0,
            },
        );
        Ok(SentMessage {
            conversation_id: conv,
            message_id: id,
            signature,
            content_hash: hash,
            state: MessageState::Sending,
        })
    }

    /// Hand a post to its server's task (starting it if needed). A full queue leaves the
    /// message stored with its post: it goes out when the task next starts.
    pub(crate) fn queue_post(self: &Arc<Self>, server: &Onion, job: PostJob) {
        self.start_server(server);
        let tx = self
            .state()
            .groups
            .servers
            .get(server)
            .and_then(|s| s.task.as_ref().map(|t| t.posts.clone()));
        if let Some(tx) = tx {
            if tx.try_send(job).is_err() {
                warn!("the server's post queue is full; the message is posted on reconnection");
            }
        }
    }

    // ---- server tasks ----

    /// Start the server's task if it has accepted groups, none runs, and the engine may
    /// connect to it on its own (`connections.rs`).
    pub(crate) fn start_server(self: &Arc<Self>, server: &Onion) {
        self.start_server_from(server, false, false);
    }

    /// [`Runtime::start_server`] asked for by the user: the engine must be active, but the
    /// policy on servers does not apply.
    pub(crate) fn join_server_on_request(self: &Arc<Self>, server: &Onion) {
        self.start_server_from(server, false, true);
    }

    /// [`Runtime::start_server`]; with `from_start`, the task replays the server's whole
    /// history (it clears the stored cursor once the previous task has ended); `requested`:
    /// by the user (only an inactive engine refuses).
    fn start_server_from(self: &Arc<Self>, server: &Onion, from_start: bool, requested: bool) {
        if self.cancel.is_cancelled() {
            return;
        }
        let mut st = self.state();
        if st.groups.accepted_on(server).is_empty() {
            return;
        }
        let allowed = if requested {
            st.policy.active
        } else {
            st.policy.may_join(server)
        };
        if !allowed {
            // Remembered: the replay is owed when the server is next joined.
            if from_start {
                st.policy.replay_from_start.insert(server.clone());
            }
            return;
        }
        let from_start = st.policy.replay_from_start.remove(server) || from_start;
        let Some(entry) = st.groups.servers.get_mut(server) else {
            return;
        };
        if entry
            .task
            .as_ref()
            .is_some_and(|t| !t.cancel.is_cancelled())
        {
            return;
        }
        let cancel = self.cancel.child_token();
        let (tx, rx) = mpsc::channel(POST_QUEUE);
        entry.task = Some(ServerTaskHandle {
            cancel: cancel.clone(),
            posts: tx,
        });
        let client = entry.client.clone();
        let conv = entry.conversation;
        let done = CancellationToken::new();
        let after = entry.finished.replace(done.clone());
        drop(st);
        self.spawn(server_task::run(
            self.clone(),
            server_task::Start {
                server: server.clone(),
                conv,
                client,
                cancel,
                posts: rx,
                after,
                done,
                from_start,
            },
        ));
    }

    /// Stop the server's task (it announces `Disconnected` as it ends).
    pub(crate) fn stop_server(&self, server: &Onion) {
        if let Some(s) = self.state().groups.servers.get_mut(server) {
            if let Some(t) = s.task.take() {
                t.cancel.cancel();
            }
        }
    }

    /// Restart a server's task (e.g. to replay everything for a newly accepted group). The
    /// new task starts once the old one has ended; a task that was running (also one joined
    /// on request) runs again whatever the policy on servers says.
    pub(crate) fn restart_server(self: &Arc<Self>, server: &Onion, full_replay: bool) {
        let was_running = self
            .state()
            .groups
            .servers
            .get(server)
            .and_then(|s| s.task.as_ref())
            .is_some_and(|t| !t.cancel.is_cancelled());
        self.stop_server(server);
        if full_replay {
            if let Some(s) = self.state().groups.servers.get_mut(server) {
                s.last_sync = None;
            }
        }
        self.start_server_from(server, full_replay, was_running);
    }

    /// Record a server's state and announce it.
    pub(crate) fn set_server_state(&self, server: &Onion, state: ServerState, tokens: usize) {
        let conv = {
            let mut st = self.state();
            let Some(s) = st.groups.servers.get_mut(server) else {
                return;
            };
            let changed = s.state != state || s.tokens != tokens;
            s.state = state;
            s.tokens = tokens;
            if state == ServerState::Synced {
                s.last_sync = Some(now_rfc3339());
            }
            if !changed {
                return;
            }
            s.conversation
        };
        self.emit(Event::ServerStateChanged {
            profile: self.profile(),
            conversation_id: conv.0,
            server: server.as_str().to_owned(),
            state,
            tokens,
        });
    }

    /// Persist the server's unspent tokens (before any of them is used: crash safety).
    pub(crate) async fn store_tokens(&self, conv: ConversationId, tokens: &[Token]) -> Result<()> {
        let value = tokens
            .iter()
            .map(|t| gojson::base64_std(t.to_bytes().as_slice()))
            .collect::<Vec<_>>()
            .join(",");
        self.store
            .call(move |s| s.set_conversation_attribute(conv, keys::SERVER_TOKENS, &value))
            .await
    }

    /// The message ids of our posts not yet seen back from a server, with their posts.
    pub(crate) async fn pending_posts(&self, server: &Onion) -> Result<Vec<PostJob>> {
        let convs: Vec<ConversationId> = self
            .state()
            .groups
            .groups
            .values()
            .filter(|g| g.accepted && g.group.server() == server)
            .map(|g| g.conversation)
            .collect();
        let me = self.onion.as_str().to_owned();
        self.store
            .call(move |s| {
                let mut out = Vec::new();
                for conv in convs {
                    let unposted = s.messages_where(
                        conv,
                        &[
                            AttributeCondition::Equals(keys::MESSAGE_AUTHOR, &me),
                            AttributeCondition::NonEmpty(MESSAGE_POST),
                        ],
                    )?;
                    for m in unposted {
                        let Some(p) = m.attributes.get(MESSAGE_POST) else {
                            continue;
                        };
                        let egm = gojson::go_base64_decode(p.as_bytes(), "post")
                            .ok()
                            .and_then(|j| EncryptedGroupMessage::from_json(&j).ok());
                        if let Some(egm) = egm {
                            out.push(PostJob {
                                conversation: conv,
                                message: m.id,
                                egm,
                                refused: 0,
                            });
                        }
                    }
                }
                // Oldest first (messages are listed newest first).
                out.sort_by_key(|j| (j.conversation, j.message));
                Ok(out)
            })
            .await
    }
}

/// Parse an invite: `tofubundle:server:<b64>||torv3<b64>` or `torv3<b64>`.
pub(crate) fn parse_invite(s: &str) -> Result<(Option<KeyBundle>, GroupInvite)> {
    let s = s.trim();
    if s.starts_with(TOFU_PREFIX) {
        let t = TofuBundle::parse(s).map_err(Error::Bundle)?;
        t.verify().map_err(Error::Bundle)?;
        if t.bundle.server_onion().map_err(Error::Bundle)? != t.invite.server_host {
            return Err(Error::Invalid {
                what: "invite (its group is on another server than its bundle)",
            });
        }
        Ok((Some(t.bundle), t.invite))
    } else {
        let invite = GroupInvite::parse_invite_string(s).map_err(Error::Bundle)?;
        Ok((None, invite))
    }
}

/// The conversation a group message belongs to and whether its author is blocked there.
pub(crate) fn member_blocked(c: &Conversation, member: &Onion) -> bool {
    c.acl.get(member.as_str()).is_some_and(|a| a.blocked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_is_reported_once_and_forgotten_when_it_arrives() {
        let mut g = Gaps::default();
        assert!(g.note("a"));
        assert!(!g.note("a"), "reported once");
        g.arrived("a");
        assert_eq!(g.len(), 0);
        assert!(
            g.note("a"),
            "a gap again after it was filled and named anew"
        );
    }

    #[test]
    fn gaps_are_bounded() {
        let mut g = Gaps::default();
        for i in 0..MAX_GAPS {
            assert!(g.note(&i.to_string()));
        }
        assert!(!g.note("one more"), "full: not remembered, not reported");
        assert_eq!(g.len(), MAX_GAPS);
        g.arrived("0");
        assert!(g.note("one more"), "room again once a gap is filled");
    }
}
