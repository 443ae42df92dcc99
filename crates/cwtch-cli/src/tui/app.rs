//! The TUI's state: a plain value that keys, library events and request results update.
//!
//! Nothing here does IO. [`App::handle_key`], [`App::handle_event`] and [`App::handle_reply`]
//! change the state and return the [`Action`]s the driver must carry out (requests to the
//! library or a running `cwtch run`, in the control protocol's [`Request`]s); rendering
//! (`view.rs`) is a pure function of the state. Data flows one way.

use std::collections::{BTreeMap, BTreeSet};

use cwtch::{ConnectionState, Event, MessageState, ServerState};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use zeroize::Zeroizing;

use super::line::{self, Edit};
use crate::protocol::{
    ContactRow, FoundRow, GroupRow, MessageRow, ProfileRow, Reply, Request, Secret, ServerRow,
};

/// How many messages are read at first; scrolling past the oldest reads twice as many.
pub(crate) const FIRST_PAGE: u32 = 200;

/// At most this many search results are shown (the newest).
pub(crate) const SEARCH_LIMIT: u32 = 200;

/// Something the driver must do.
#[derive(Debug)]
pub(crate) enum Action {
    /// Run a request; its result comes back to [`App::handle_reply`] with `ctx`.
    Call { req: Request, ctx: Ctx },
    /// Put our own text (our address) on the clipboard (OSC 52).
    Copy(String),
    /// Ring the terminal's bell (`--bell`: a message arrived elsewhere).
    Bell,
    /// Make a thumbnail of the image at `path` (a checked image that arrived); it comes back
    /// to [`App::handle_thumbnail`].
    Thumbnail { file_key: String, path: String },
    /// Leave.
    Quit,
}

/// What a request was for, handed back with its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ctx {
    /// The profile (onion) it ran for; empty for requests about no profile.
    pub(crate) profile: String,
    /// The conversation it is about, if any.
    pub(crate) conv: Option<i64>,
    /// What to do with the answer.
    pub(crate) what: What,
}

/// What an answer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum What {
    /// The running profiles (`ping`).
    Profiles,
    Contacts,
    Groups,
    Servers,
    Settings,
    /// The user changed a setting: as [`What::Settings`], then say what changed.
    SettingsSaved(&'static str),
    /// The open conversation's messages.
    Messages,
    /// The open conversation's newest messages, merged into those read (a long history is
    /// not read again for each event).
    Recent,
    /// A message was sent: re-read the conversation.
    Sent,
    /// A change to a contact, group, server or profile: say so, and re-read the lists.
    Changed(&'static str),
    /// A contact was added or a group joined or created: open it.
    Opened(&'static str),
    /// A contact's permissions (shown or changed): say what they are.
    Permissions,
    /// `/search`: show what was found.
    Search,
}

/// What an unlock says once it worked (and how its answer is told from others).
const UNLOCKED: &str = "unlocked";

/// The kind of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Contact,
    Group,
}

/// A conversation in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conv {
    pub(crate) id: i64,
    pub(crate) kind: Kind,
    /// A contact's name (if it told us) or a group's name; remote text.
    pub(crate) name: Option<String>,
    /// A contact's onion, or a group's id.
    pub(crate) address: String,
    /// A group's server onion.
    pub(crate) server: Option<String>,
    /// A contact request or a group invite not accepted yet.
    pub(crate) request: bool,
    pub(crate) blocked: bool,
    /// A contact's connection state.
    pub(crate) peer: ConnectionState,
    /// A group's server state.
    pub(crate) server_state: ServerState,
    pub(crate) unread: u64,
    pub(crate) missing: u64,
    /// A contact's status, as it told us (remote text).
    pub(crate) status: Option<String>,
}

impl Conv {
    /// The name to show (remote text: sanitise before drawing).
    pub(crate) fn label(&self) -> String {
        match &self.name {
            Some(n) if !n.trim().is_empty() => n.clone(),
            _ => short(&self.address),
        }
    }

    fn matches(&self, filter: &str) -> bool {
        let f = filter.to_lowercase();
        f.is_empty()
            || self.label().to_lowercase().contains(&f)
            || self.address.contains(&f)
            || self.id.to_string() == f
    }

    fn from_contact(c: &ContactRow) -> Conv {
        Conv {
            id: c.conversation_id,
            kind: Kind::Contact,
            name: c.name.clone(),
            address: c.onion.clone(),
            server: None,
            request: !c.accepted && !c.blocked,
            blocked: c.blocked,
            peer: c.state,
            server_state: ServerState::Disconnected,
            unread: c.unread,
            missing: 0,
            status: c
                .attributes
                .get(cwtch::PUBLIC_PROFILE_STATUS)
                .filter(|s| !s.trim().is_empty())
                .cloned(),
        }
    }

    fn from_group(g: &GroupRow) -> Conv {
        Conv {
            id: g.conversation_id,
            kind: Kind::Group,
            name: Some(g.name.clone()),
            address: g.group_id.clone(),
            server: Some(g.server.clone()),
            request: !g.accepted,
            blocked: false,
            peer: ConnectionState::Disconnected,
            server_state: g.server_state,
            unread: g.unread,
            missing: g.missing,
            status: None,
        }
    }
}

/// The first 8 characters of an address, then `…`.
pub(crate) fn short(s: &str) -> String {
    match s.char_indices().nth(8) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// A profile the TUI runs (or the daemon it is attached to runs).
#[derive(Debug, Clone)]
pub(crate) struct Profile {
    pub(crate) onion: String,
    pub(crate) name: String,
    pub(crate) online: bool,
    /// Taken offline (`/online off`, or loaded without autostart): not connecting either.
    pub(crate) offline: bool,
    pub(crate) status: String,
    pub(crate) block_unknown: bool,
    pub(crate) convs: Vec<Conv>,
    pub(crate) servers: Vec<ServerRow>,
    /// The latest connection states the events told (an answer read before an event may
    /// arrive after it: the event wins).
    peer_states: BTreeMap<i64, ConnectionState>,
    server_states: BTreeMap<String, ServerState>,
}

impl Profile {
    fn new(row: &ProfileRow) -> Profile {
        Profile {
            onion: row.onion.clone(),
            name: row.name.clone(),
            online: false,
            offline: false,
            status: String::new(),
            block_unknown: false,
            convs: Vec::new(),
            servers: Vec::new(),
            peer_states: BTreeMap::new(),
            server_states: BTreeMap::new(),
        }
    }

    fn sort(&mut self) {
        // Requests first, then contacts, then groups; by name within each.
        self.convs
            .sort_by_key(|c| (section(c), c.label().to_lowercase(), c.id));
    }

    /// Apply the states the events told over what an answer said.
    fn apply_states(&mut self) {
        for c in self.convs.iter_mut() {
            if let Some(st) = self.peer_states.get(&c.id) {
                c.peer = *st;
            }
            if let Some(st) = c.server.as_ref().and_then(|s| self.server_states.get(s)) {
                c.server_state = *st;
            }
        }
        for srv in self.servers.iter_mut() {
            if let Some(st) = self.server_states.get(&srv.onion) {
                srv.state = *st;
            }
        }
    }

    fn conv_mut(&mut self, id: i64) -> Option<&mut Conv> {
        self.convs.iter_mut().find(|c| c.id == id)
    }
}

/// The list's sections, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Section {
    Requests,
    Contacts,
    Groups,
    Blocked,
}

pub(crate) fn section(c: &Conv) -> Section {
    if c.blocked {
        Section::Blocked
    } else if c.request {
        Section::Requests
    } else if c.kind == Kind::Group {
        Section::Groups
    } else {
        Section::Contacts
    }
}

/// Where typing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Focus {
    /// The conversation list (single-key commands).
    List,
    /// The open conversation's messages (choose one to reply to or retry).
    Messages,
    /// The compose line.
    Compose,
    /// The list's filter.
    Filter,
}

/// What a one-line prompt asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ask {
    Unlock,
    NewProfileName,
    NewProfilePassword {
        name: String,
    },
    /// The new profile's password once more (a typo in a hidden field would lock it).
    NewProfilePasswordAgain {
        name: String,
        password: Secret,
    },
    AddContact,
    JoinGroup,
    AddServer,
    GroupName,
    GroupServer {
        name: String,
    },
    InviteContact,
    SetName,
    SetStatus,
    /// The password of a profile to delete (confirmed already).
    DeleteProfile {
        onion: String,
    },
}

impl Ask {
    pub(crate) fn title(&self) -> &'static str {
        match self {
            Ask::Unlock => "Unlock profiles: password",
            Ask::NewProfileName => "New profile: its public name",
            Ask::NewProfilePassword { .. } => "New profile: its password",
            Ask::NewProfilePasswordAgain { .. } => "New profile: its password again",
            Ask::AddContact => "Add a contact: paste their address",
            Ask::JoinGroup => "Join a group: paste the invite (tofubundle:… or torv3…)",
            Ask::AddServer => "Add a server: paste its bundle (server:…)",
            Ask::GroupName => "New group: its name",
            Ask::GroupServer { .. } => "New group: its server's onion",
            Ask::InviteContact => "Invite to this group: the contact (as listed, or onion)",
            Ask::SetName => "Your public name",
            Ask::SetStatus => "Your status",
            Ask::DeleteProfile { .. } => "Delete the profile: its password (empty: none)",
        }
    }

    /// What the prompt's title has no room to say, shown above the typed text.
    pub(crate) fn hint(&self) -> Option<&'static str> {
        match self {
            Ask::NewProfilePassword { .. } => Some(
                "Empty: no password, and anyone who can use this computer can open the profile.",
            ),
            _ => None,
        }
    }

    /// Typed text is never shown.
    pub(crate) fn secret(&self) -> bool {
        matches!(
            self,
            Ask::Unlock
                | Ask::NewProfilePassword { .. }
                | Ask::NewProfilePasswordAgain { .. }
                | Ask::JoinGroup
                | Ask::DeleteProfile { .. }
        )
    }
}

/// A question to confirm with `y`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Confirm {
    /// Delete a contact (and the conversation) or leave a group.
    DeleteConv { id: i64, kind: Kind, label: String },
    /// Delete a profile and everything in it.
    DeleteProfile { onion: String, name: String },
}

/// What is drawn over the main screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Overlay {
    None,
    /// Keys and commands, scrolled down this many rows (in a window too small for them).
    Help(usize),
    /// Our own address and settings (the address copied).
    Address,
    /// A group we created: its invite (the group's secret, to share; copied).
    Invite(Zeroizing<String>),
    Prompt {
        ask: Ask,
        input: Zeroizing<String>,
    },
    Confirm(Confirm),
    /// What `/search` found, newest first; Enter opens the chosen one at that message.
    Search {
        pattern: String,
        found: Vec<FoundRow>,
        selected: usize,
    },
}

/// A line on the status bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notice {
    pub(crate) text: String,
    pub(crate) error: bool,
}

/// The whole state.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) profiles: Vec<Profile>,
    pub(crate) active: usize,
    /// Profiles in the data directory that no password given so far opens.
    pub(crate) locked: usize,
    /// The network: bootstrap percent and summary (`None`: not known yet).
    pub(crate) acn: Option<(u8, String)>,
    /// Attached to a running `cwtch run` (else the TUI runs the profiles itself).
    pub(crate) attached: bool,
    /// The selected row among the visible conversations.
    pub(crate) selected: usize,
    /// The window's size (columns, rows), as last drawn: what scrolls a popup that does not
    /// fit.
    pub(crate) size: (u16, u16),
    /// Set when `selected` is moved on purpose (a conversation opened or closed), so that an
    /// event or an answer that reorders the list does not move it back.
    selection_moved: bool,
    /// The open conversation (its id, in the active profile).
    pub(crate) open: Option<i64>,
    /// Its messages, oldest first.
    pub(crate) messages: Vec<MessageRow>,
    /// How many were asked for (more are read when scrolling past the oldest).
    pub(crate) limit: u32,
    /// Lines scrolled up from the newest (from [`App::scroll_base`] while it is set).
    pub(crate) scroll: usize,
    /// Scrolled back: the newest message then. Messages that arrive after it are drawn below
    /// without moving the text being read, and counted in a marker.
    pub(crate) scroll_base: Option<i64>,
    /// The chosen message (an index into `messages`), in the messages focus.
    pub(crate) cursor: Option<usize>,
    /// The message being replied to: its content hash and a preview.
    pub(crate) reply_to: Option<(String, String)>,
    /// Gaps in groups: (profile, conversation, message id the gap is before).
    pub(crate) missing: BTreeSet<(String, i64, i64)>,
    /// Our group posts the server accepted (the library stores no such state).
    pub(crate) accepted: BTreeSet<(String, i64, i64)>,
    /// Images that arrived and decoded (with image previews on), by file key: a
    /// description (format, dimensions, size), shown with their file message.
    pub(crate) images: BTreeMap<String, String>,
    /// Downloads whose manifest arrived, by file key: the name the file gets (for the
    /// status line's progress).
    pub(crate) downloads: BTreeMap<String, String>,
    /// Downloads running, by file key: bytes verified and the file's size (shown with their
    /// file message).
    pub(crate) progress: BTreeMap<String, (u64, u64)>,
    /// How images are drawn in the conversation, if they are (what the terminal can show).
    pub(crate) inline_images: Option<Colours>,
    /// Thumbnails of those images, by file key, drawn under their description.
    pub(crate) thumbnails: BTreeMap<String, cwtch::images::Thumbnail>,
    /// Images whose thumbnail was asked for (once each).
    pub(crate) thumbnails_asked: BTreeSet<String>,
    pub(crate) focus: Focus,
    pub(crate) compose: String,
    /// The compose line's cursor: a byte offset into it, `None` at its end (where it is
    /// whenever the line is replaced).
    pub(crate) compose_at: Option<usize>,
    pub(crate) filter: String,
    pub(crate) overlay: Overlay,
    pub(crate) notice: Option<Notice>,
    /// Profiles whose onion service is up (the event may come before the profile is listed).
    pub(crate) online: BTreeSet<String>,
    /// The text of the last send, until it is answered: a refused send (too long, a blocked
    /// contact) puts it back on an empty compose line.
    pub(crate) unsent: Option<String>,
    /// `--open`: the conversation to open once the lists are read.
    pub(crate) pending_open: Option<String>,
    /// The active profile's lists (contacts, groups) read without finding `--open`'s
    /// conversation: once both were, it is said not to exist.
    open_misses: u8,
    /// A message to choose once the open conversation's messages arrive (a search result).
    pub(crate) jump_to: Option<i64>,
    /// `--bell`: ring when a message arrives in a conversation that is not open.
    pub(crate) bell: bool,
    /// The open conversation's unread count when it was opened, until its messages arrive.
    pub(crate) unread_at_open: Option<u64>,
    /// The first message that was unread when the conversation was opened: a "new" line is
    /// drawn above it while the conversation stays open.
    pub(crate) new_from: Option<i64>,
    /// The pattern of the search being run.
    pub(crate) searching: Option<String>,
    pub(crate) quit: bool,
}

/// The profile settings a request changes (`None`: left as it is).
#[derive(Default)]
struct SettingsChange {
    name: Option<String>,
    status: Option<String>,
    block_unknown: Option<bool>,
    image_previews: Option<bool>,
    image: Option<String>,
    remove_image: bool,
    online: Option<bool>,
}

/// The colours a terminal can draw an image in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Colours {
    /// 24-bit colour (`COLORTERM=truecolor`).
    True,
    /// The xterm 256-colour palette.
    Palette256,
}

impl Colours {
    /// What the terminal described by these environment variables can show: images only in
    /// colour, never with `NO_COLOR` set.
    pub(crate) fn detect(
        colorterm: Option<&str>,
        term: Option<&str>,
        no_color: bool,
    ) -> Option<Colours> {
        if no_color {
            return None;
        }
        if matches!(colorterm, Some("truecolor" | "24bit")) {
            return Some(Colours::True);
        }
        term.filter(|t| t.contains("256color") || t.contains("direct"))
            .map(|_| Colours::Palette256)
    }
}

impl App {
    /// The images the open conversation's messages say arrived before (a TUI started since):
    /// described, and their thumbnails asked for once.
    fn known_images(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        for m in &self.messages {
            let Some(img) = &m.image else { continue };
            let i = &img.info;
            self.images
                .entry(img.file_key.clone())
                .or_insert_with(|| image_description(&i.format, i.width, i.height, i.bytes));
            if self.inline_images.is_some() && self.thumbnails_asked.insert(img.file_key.clone()) {
                actions.push(Action::Thumbnail {
                    file_key: img.file_key.clone(),
                    path: img.path.clone(),
                });
            }
        }
        actions
    }

    /// A thumbnail for an image that arrived (or why none could be made: the image is then
    /// only described).
    pub(crate) fn handle_thumbnail(
        &mut self,
        file_key: String,
        thumb: Result<cwtch::images::Thumbnail, String>,
    ) {
        match thumb {
            Ok(t) => {
                self.thumbnails.insert(file_key, t);
            }
            Err(e) => tracing::debug!("no thumbnail: {e}"),
        }
    }

    pub(crate) fn new(attached: bool, locked: usize, open: Option<String>) -> App {
        App {
            profiles: Vec::new(),
            active: 0,
            locked,
            acn: None,
            attached,
            selected: 0,
            size: (80, 24),
            selection_moved: false,
            open: None,
            messages: Vec::new(),
            limit: FIRST_PAGE,
            scroll: 0,
            scroll_base: None,
            cursor: None,
            reply_to: None,
            missing: BTreeSet::new(),
            accepted: BTreeSet::new(),
            images: BTreeMap::new(),
            downloads: BTreeMap::new(),
            progress: BTreeMap::new(),
            inline_images: None,
            thumbnails: BTreeMap::new(),
            thumbnails_asked: BTreeSet::new(),
            focus: Focus::List,
            compose: String::new(),
            compose_at: None,
            filter: String::new(),
            overlay: Overlay::None,
            notice: None,
            online: BTreeSet::new(),
            unsent: None,
            pending_open: open,
            open_misses: 0,
            jump_to: None,
            bell: false,
            unread_at_open: None,
            new_from: None,
            searching: None,
            quit: false,
        }
    }

    /// What to do first: read the running profiles.
    pub(crate) fn start(&mut self) -> Vec<Action> {
        vec![call(Request::Ping, "", None, What::Profiles)]
    }

    pub(crate) fn profile(&self) -> Option<&Profile> {
        self.profiles.get(self.active)
    }

    fn profile_mut(&mut self) -> Option<&mut Profile> {
        self.profiles.get_mut(self.active)
    }

    fn profile_by_onion(&mut self, onion: &str) -> Option<&mut Profile> {
        self.profiles.iter_mut().find(|p| p.onion == onion)
    }

    fn active_onion(&self) -> String {
        self.profile().map(|p| p.onion.clone()).unwrap_or_default()
    }

    fn is_active(&self, onion: &str) -> bool {
        self.profile().is_some_and(|p| p.onion == onion)
    }

    /// The conversations shown (the filter applied), in order.
    pub(crate) fn visible(&self) -> Vec<&Conv> {
        match self.profile() {
            Some(p) => p.convs.iter().filter(|c| c.matches(&self.filter)).collect(),
            None => Vec::new(),
        }
    }

    pub(crate) fn open_conv(&self) -> Option<&Conv> {
        let id = self.open?;
        self.profile()?.convs.iter().find(|c| c.id == id)
    }

    fn selected_conv(&self) -> Option<Conv> {
        self.visible().get(self.selected).map(|c| (*c).clone())
    }

    fn note(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            text: text.into(),
            error: false,
        });
    }

    fn error(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            text: text.into(),
            error: true,
        });
    }

    // ---- keys ----

    /// A key was pressed.
    pub(crate) fn handle_key(&mut self, key: KeyEvent) -> Vec<Action> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if super::view::is_quit(&key) {
            self.quit = true;
            return vec![Action::Quit];
        }
        match std::mem::replace(&mut self.overlay, Overlay::None) {
            Overlay::None => {}
            Overlay::Help(top) => {
                // Up and down scroll it where it does not fit; any other key closes it.
                let max = super::view::help_max_top(self.size.0, self.size.1);
                let top = match key.code {
                    KeyCode::Down | KeyCode::Char('j') | KeyCode::Char(' ') => top + 1,
                    KeyCode::PageDown => top + 10,
                    KeyCode::Up | KeyCode::Char('k') => top.saturating_sub(1),
                    KeyCode::PageUp => top.saturating_sub(10),
                    _ => return Vec::new(),
                };
                if max > 0 {
                    self.overlay = Overlay::Help(top.min(max));
                }
                return Vec::new();
            }
            Overlay::Address | Overlay::Invite(_) => return Vec::new(),
            Overlay::Prompt { ask, mut input } => {
                return match key.code {
                    KeyCode::Esc => Vec::new(),
                    KeyCode::Enter => self.answer(ask, input),
                    KeyCode::Backspace => {
                        input.pop();
                        self.overlay = Overlay::Prompt { ask, input };
                        Vec::new()
                    }
                    KeyCode::Char(c) if !ctrl => {
                        input.push(c);
                        self.overlay = Overlay::Prompt { ask, input };
                        Vec::new()
                    }
                    _ => {
                        self.overlay = Overlay::Prompt { ask, input };
                        Vec::new()
                    }
                };
            }
            Overlay::Search {
                pattern,
                found,
                selected,
            } => return self.search_key(key, pattern, found, selected),
            Overlay::Confirm(c) => {
                return match key.code {
                    KeyCode::Char('y') | KeyCode::Char('Y') => self.confirmed(c),
                    _ => {
                        self.note("not deleted");
                        Vec::new()
                    }
                };
            }
        }
        if key.code == KeyCode::F(1) {
            self.overlay = Overlay::Help(0);
            return Vec::new();
        }
        // Ctrl-F from anywhere: a search on the compose line (what was typed stays after it).
        if ctrl && key.code == KeyCode::Char('f') && !self.profiles.is_empty() {
            self.cursor = None;
            self.focus = Focus::Compose;
            if !self.compose.starts_with("/search ") {
                self.compose.insert_str(0, "/search ");
            }
            self.compose_at = None;
            return Vec::new();
        }
        // Scrolling works from anywhere.
        match key.code {
            KeyCode::PageUp => return self.scroll_by(10),
            KeyCode::PageDown => {
                if self.scroll == 0 {
                    // At the newest read when scrolling began: on to the newest.
                    self.scroll_base = None;
                }
                self.scroll = self.scroll.saturating_sub(10);
                return Vec::new();
            }
            // In the messages focus they choose the oldest and newest message instead.
            KeyCode::Home if self.focus != Focus::Messages => {
                // The view clamps it to the oldest line read; read them all first.
                self.mark_scroll_base();
                self.scroll = usize::MAX / 2;
                if self.messages.len() >= self.limit as usize {
                    self.limit = u32::MAX / 2;
                    return self.reload();
                }
                return Vec::new();
            }
            KeyCode::End if self.focus != Focus::Messages => {
                self.scroll = 0;
                self.scroll_base = None;
                return Vec::new();
            }
            _ => {}
        }
        match self.focus {
            Focus::Compose => self.compose_key(key, ctrl),
            Focus::Filter => {
                match key.code {
                    KeyCode::Esc => {
                        self.filter.clear();
                        self.focus = Focus::List;
                    }
                    KeyCode::Enter => self.focus = Focus::List,
                    KeyCode::Backspace => {
                        self.filter.pop();
                    }
                    KeyCode::Char(c) if !ctrl => self.filter.push(c),
                    _ => {}
                }
                self.selected = 0;
                Vec::new()
            }
            Focus::Messages => self.messages_key(key),
            Focus::List => self.list_key(key),
        }
    }

    /// A key on the search results: choose one, open it, or close them.
    fn search_key(
        &mut self,
        key: KeyEvent,
        pattern: String,
        found: Vec<FoundRow>,
        selected: usize,
    ) -> Vec<Action> {
        let last = found.len().saturating_sub(1);
        let selected = match key.code {
            KeyCode::Esc | KeyCode::Char('q') => return Vec::new(),
            KeyCode::Enter => {
                return match found.get(selected) {
                    Some(f) => {
                        self.open_at(f.message.conversation_id, f.position, f.message.message_id)
                    }
                    None => Vec::new(),
                }
            }
            KeyCode::Up | KeyCode::Char('k') => selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => (selected + 1).min(last),
            KeyCode::PageUp => selected.saturating_sub(10),
            KeyCode::PageDown => (selected + 10).min(last),
            KeyCode::Home => 0,
            KeyCode::End => last,
            _ => selected,
        };
        self.overlay = Overlay::Search {
            pattern,
            found,
            selected,
        };
        Vec::new()
    }

    /// Open a conversation with the message `message` (at `position`, newest first) chosen.
    fn open_at(&mut self, id: i64, position: u64, message: i64) -> Vec<Action> {
        if !self
            .profile()
            .is_some_and(|p| p.convs.iter().any(|c| c.id == id))
        {
            self.error("that conversation is gone");
            return Vec::new();
        }
        // Read at least as far back as the message.
        let needed = u32::try_from(position.saturating_add(1)).unwrap_or(u32::MAX / 2);
        let mut a = self.open(id);
        if needed > self.limit {
            self.limit = needed.min(u32::MAX / 2);
            a = self.reload();
        }
        self.jump_to = Some(message);
        self.focus = Focus::Messages;
        a
    }

    /// Text pasted (bracketed paste): into the prompt, the filter or the compose line (from
    /// the list, the compose line). Line breaks stay in a message, not in one-line inputs.
    pub(crate) fn handle_paste(&mut self, text: &str) {
        let one_line = || text.replace(['\r', '\n'], "");
        match &mut self.overlay {
            Overlay::Prompt { input, .. } => {
                input.push_str(&one_line());
                return;
            }
            Overlay::None => {}
            _ => return,
        }
        match self.focus {
            Focus::Filter => self.filter.push_str(&one_line()),
            Focus::Messages | Focus::List | Focus::Compose => {
                self.cursor = None;
                self.focus = Focus::Compose;
                // Terminals paste line breaks as CR (or CRLF): they are line breaks.
                self.edit(&Edit::InsertStr(
                    text.replace("\r\n", "\n").replace('\r', "\n"),
                ));
            }
        }
    }

    /// Scrolling back from the newest: remember the newest message (see `scroll_base`).
    fn mark_scroll_base(&mut self) {
        if self.scroll == 0 && self.scroll_base.is_none() {
            self.scroll_base = self.messages.last().map(|m| m.message_id);
        }
    }

    fn scroll_by(&mut self, n: usize) -> Vec<Action> {
        self.mark_scroll_base();
        self.scroll += n;
        // Past the oldest read: read more (the view clamps the scroll).
        if self.messages.len() >= self.limit as usize && self.scroll > self.messages.len() {
            self.limit = self.limit.saturating_mul(2);
            return self.reload();
        }
        Vec::new()
    }

    /// Where the compose line's cursor is (a byte offset; the end if it is not set).
    pub(crate) fn compose_cursor(&self) -> usize {
        match self.compose_at {
            Some(i) if i < self.compose.len() && self.compose.is_char_boundary(i) => i,
            _ => self.compose.len(),
        }
    }

    /// Edit the compose line at its cursor.
    fn edit(&mut self, edit: &Edit) {
        let at = self.compose_cursor();
        let at = line::apply(&mut self.compose, at, edit);
        self.compose_at = (at < self.compose.len()).then_some(at);
    }

    fn compose_key(&mut self, key: KeyEvent, ctrl: bool) -> Vec<Action> {
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let edit = match key.code {
            // Esc drops the reply being written, else goes back to the list.
            KeyCode::Esc if self.reply_to.is_some() => {
                self.reply_to = None;
                return Vec::new();
            }
            KeyCode::Esc | KeyCode::Tab => {
                self.focus = Focus::List;
                return Vec::new();
            }
            // Alt-Enter: a line break in the message.
            KeyCode::Enter if alt => Edit::Insert('\n'),
            KeyCode::Enter => {
                let line = std::mem::take(&mut self.compose);
                self.compose_at = None;
                return self.submit(line);
            }
            KeyCode::Up if self.compose.is_empty() => {
                self.focus = Focus::Messages;
                self.cursor = self.messages.len().checked_sub(1);
                return Vec::new();
            }
            KeyCode::Backspace if ctrl || alt => Edit::DeleteWordBack,
            KeyCode::Backspace => Edit::Backspace,
            KeyCode::Delete => Edit::Delete,
            KeyCode::Left if ctrl || alt => Edit::WordLeft,
            KeyCode::Right if ctrl || alt => Edit::WordRight,
            KeyCode::Left => Edit::Left,
            KeyCode::Right => Edit::Right,
            KeyCode::Char('a') if ctrl => Edit::Start,
            KeyCode::Char('e') if ctrl => Edit::End,
            KeyCode::Char('w') if ctrl => Edit::DeleteWordBack,
            KeyCode::Char('u') if ctrl => Edit::DeleteToStart,
            KeyCode::Char('k') if ctrl => Edit::DeleteToEnd,
            KeyCode::Char('b') if alt => Edit::WordLeft,
            KeyCode::Char('f') if alt => Edit::WordRight,
            KeyCode::Char(c) if !ctrl => Edit::Insert(c),
            _ => return Vec::new(),
        };
        self.edit(&edit);
        Vec::new()
    }

    fn messages_key(&mut self, key: KeyEvent) -> Vec<Action> {
        let n = self.messages.len();
        // As in the list: a letter with Ctrl or Alt is no command here.
        if key
            .modifiers
            .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
            && matches!(key.code, KeyCode::Char(_))
        {
            return Vec::new();
        }
        match key.code {
            KeyCode::Esc | KeyCode::Tab => {
                self.cursor = None;
                self.focus = Focus::Compose;
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.cursor = Some(
                    self.cursor
                        .map_or(n.saturating_sub(1), |i| i.saturating_sub(1)),
                );
            }
            KeyCode::Down | KeyCode::Char('j') => match self.cursor {
                Some(i) if i + 1 < n => self.cursor = Some(i + 1),
                _ => {
                    self.cursor = None;
                    self.focus = Focus::Compose;
                }
            },
            KeyCode::Home => self.cursor = (n > 0).then_some(0),
            KeyCode::End => self.cursor = n.checked_sub(1),
            KeyCode::Char('r') | KeyCode::Enter => {
                if let Some(m) = self.cursor.and_then(|i| self.messages.get(i)) {
                    let preview = m.text.clone().unwrap_or_default();
                    self.reply_to = Some((m.content_hash.clone(), preview));
                    self.cursor = None;
                    self.focus = Focus::Compose;
                }
            }
            KeyCode::Char('y') => {
                let text = self
                    .cursor
                    .and_then(|i| self.messages.get(i))
                    .and_then(|m| m.text.clone());
                match text {
                    Some(t) => {
                        self.note("the message's text copied (if your terminal allows it)");
                        return vec![Action::Copy(t)];
                    }
                    None => self.error("this message has no text to copy"),
                }
            }
            KeyCode::Char('R') => {
                let failed = self
                    .cursor
                    .and_then(|i| self.messages.get(i))
                    .filter(|m| m.outgoing && matches!(m.state, MessageState::Failed { .. }))
                    .cloned();
                match failed {
                    Some(m) => return self.retry(&m),
                    None => self.error("only a failed message of ours can be retried"),
                }
            }
            KeyCode::Char('d') => {
                let file = self.chosen_file();
                match file {
                    Some((key, false)) => return self.download(&key),
                    // Ours: share it again (after `s`).
                    Some((file_key, true)) => {
                        let me = self.active_onion();
                        return vec![call(
                            Request::FileRestart {
                                profile: Some(me.clone()),
                                file_key,
                            },
                            &me,
                            self.open,
                            What::Changed("shared again"),
                        )];
                    }
                    None => self.error("only a file message can be downloaded (or shared again)"),
                }
            }
            KeyCode::Char('s') => {
                // Ours: stop sharing it; theirs: stop downloading it.
                let file = self.chosen_file();
                let me = self.active_onion();
                match file {
                    Some((file_key, ours)) => {
                        let said = if ours {
                            "no longer shared"
                        } else {
                            "download stopped (d resumes it)"
                        };
                        return vec![call(
                            Request::FileStop {
                                profile: Some(me.clone()),
                                file_key,
                                download: Some(!ours),
                            },
                            &me,
                            self.open,
                            What::Changed(said),
                        )];
                    }
                    None => self.error("only a file message can be stopped"),
                }
            }
            KeyCode::Char('?') => self.overlay = Overlay::Help(0),
            // Any other letter: the user started writing. It goes to the compose line (and
            // the choice is dropped), instead of being lost or read as a command later on.
            KeyCode::Char(c) => {
                self.cursor = None;
                self.focus = Focus::Compose;
                self.edit(&Edit::Insert(c));
            }
            _ => {}
        }
        Vec::new()
    }

    /// The chosen message's file, if it is a file message: its key, and whether it is ours.
    fn chosen_file(&self) -> Option<(String, bool)> {
        let m = self.cursor.and_then(|i| self.messages.get(i))?;
        match &m.content {
            cwtch::Content::FileShare { file_key, .. } => Some((file_key.clone(), m.outgoing)),
            _ => None,
        }
    }

    /// Share the file at `path` with the open contact or group.
    fn share(&mut self, path: &str) -> Vec<Action> {
        let me = self.active_onion();
        let Some(c) = self
            .open_conv()
            .filter(|c| matches!(c.kind, Kind::Contact | Kind::Group))
            .cloned()
        else {
            self.error("open a contact's or a group's conversation first, then /share PATH");
            return Vec::new();
        };
        let path = expand_home(path);
        vec![call(
            Request::FileShare {
                profile: Some(me.clone()),
                contact: c.id.to_string(),
                path: path.display().to_string(),
                wait_secs: 0,
            },
            &me,
            Some(c.id),
            What::Changed("file shared"),
        )]
    }

    /// `/permissions [files|images allow|refuse|default]`: show, or change, what the open
    /// contact may do (share files with us; have its images previewed).
    fn permissions(&mut self, arg: &str) -> Vec<Action> {
        use crate::cli::Permission;
        const USAGE: &str = "usage: /permissions [files|images allow|refuse|default]";
        let me = self.active_onion();
        let Some(c) = self
            .open_conv()
            .filter(|c| c.kind == Kind::Contact)
            .cloned()
        else {
            self.error("open a contact's conversation first, then /permissions");
            return Vec::new();
        };
        let words: Vec<&str> = arg.split_whitespace().collect();
        let (mut files, mut images) = (None, None);
        match words[..] {
            [] => {}
            [what, setting] => {
                let setting = match setting {
                    "allow" => Permission::Allow,
                    "refuse" => Permission::Refuse,
                    "default" => Permission::Default,
                    _ => {
                        self.error(USAGE);
                        return Vec::new();
                    }
                };
                match what {
                    "files" => files = Some(setting),
                    "images" => images = Some(setting),
                    _ => {
                        self.error(USAGE);
                        return Vec::new();
                    }
                }
            }
            _ => {
                self.error(USAGE);
                return Vec::new();
            }
        }
        vec![call(
            Request::ContactPermissions {
                profile: Some(me.clone()),
                contact: c.address.clone(),
                files,
                images,
            },
            &me,
            Some(c.id),
            What::Permissions,
        )]
    }

    /// Download a file offered in the open conversation (by the contact, or by a group's
    /// member), into ~/Downloads.
    fn download(&mut self, file_key: &str) -> Vec<Action> {
        let me = self.active_onion();
        let Some(c) = self
            .open_conv()
            .filter(|c| matches!(c.kind, Kind::Contact | Kind::Group))
            .cloned()
        else {
            self.error("open the conversation the file was shared in first");
            return Vec::new();
        };
        vec![call(
            Request::FileDownload {
                profile: Some(me.clone()),
                contact: c.id.to_string(),
                file_key: file_key.to_owned(),
                dir: expand_home("~/Downloads").display().to_string(),
                wait: false,
            },
            &me,
            Some(c.id),
            What::Changed("downloading to ~/Downloads (progress in the status line)"),
        )]
    }

    fn list_key(&mut self, key: KeyEvent) -> Vec<Action> {
        let n = self.visible().len();
        // The list's letters act on a conversation (block, decline, delete): a letter typed
        // with Ctrl or Alt (a compose line's editing key, pressed here by mistake) does not.
        if key
            .modifiers
            .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
            && matches!(key.code, KeyCode::Char(_))
        {
            return Vec::new();
        }
        match key.code {
            KeyCode::Char('?') => self.overlay = Overlay::Help(0),
            KeyCode::Char('q') => {
                self.quit = true;
                return vec![Action::Quit];
            }
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') if self.selected + 1 < n => self.selected += 1,
            KeyCode::Enter | KeyCode::Right => {
                if let Some(c) = self.selected_conv() {
                    // A request is answered with the list's keys (A, x): the focus stays.
                    if !c.request {
                        self.focus = Focus::Compose;
                    }
                    return self.open(c.id);
                }
            }
            KeyCode::Tab => self.focus = Focus::Compose,
            KeyCode::Char('/') => {
                self.focus = Focus::Filter;
                self.filter.clear();
            }
            // A filter kept after Enter: Esc in the list clears it (as the help says).
            KeyCode::Esc if !self.filter.is_empty() => {
                self.filter.clear();
                self.selected = 0;
            }
            KeyCode::Char('p') if !self.profiles.is_empty() => {
                self.active = (self.active + 1) % self.profiles.len();
                self.close();
            }
            KeyCode::Char('a') => self.ask(Ask::AddContact),
            KeyCode::Char('c') => self.ask(Ask::NewProfileName),
            KeyCode::Char('U') => self.ask(Ask::Unlock),
            KeyCode::Char('J') => self.ask(Ask::JoinGroup),
            KeyCode::Char('S') => self.ask(Ask::AddServer),
            KeyCode::Char('g') => self.ask(Ask::GroupName),
            KeyCode::Char('n') => self.ask(Ask::SetName),
            KeyCode::Char('t') => self.ask(Ask::SetStatus),
            KeyCode::Char('i') => match self.open_conv() {
                Some(c) if c.kind == Kind::Group => self.ask(Ask::InviteContact),
                _ => self.error("open a group first, then invite a contact to it"),
            },
            KeyCode::Char('y') => {
                if let Some(p) = self.profile() {
                    let onion = p.onion.clone();
                    self.overlay = Overlay::Address;
                    return vec![Action::Copy(onion)];
                }
            }
            KeyCode::Char('B') => {
                let on = !self.profile().is_some_and(|p| p.block_unknown);
                return self.settings(None, None, Some(on));
            }
            KeyCode::Char('A') => return self.on_selected(Verb::Accept),
            KeyCode::Char('x') => return self.on_selected(Verb::Decline),
            KeyCode::Char('b') => return self.on_selected(Verb::Block),
            KeyCode::Char('u') => return self.on_selected(Verb::Unblock),
            KeyCode::Char('X') => {
                if let Some(p) = self.profile() {
                    self.overlay = Overlay::Confirm(Confirm::DeleteProfile {
                        onion: p.onion.clone(),
                        name: p.name.clone(),
                    });
                }
            }
            KeyCode::Char('D') => {
                if let Some(c) = self.selected_conv() {
                    self.overlay = Overlay::Confirm(Confirm::DeleteConv {
                        id: c.id,
                        kind: c.kind,
                        label: c.label(),
                    });
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn ask(&mut self, ask: Ask) {
        self.overlay = Overlay::Prompt {
            ask,
            input: Zeroizing::new(String::new()),
        };
    }

    /// A prompt was answered.
    fn answer(&mut self, ask: Ask, input: Zeroizing<String>) -> Vec<Action> {
        let me = self.active_onion();
        let text = input.trim().to_owned();
        let needs_profile = !matches!(
            ask,
            Ask::Unlock
                | Ask::NewProfileName
                | Ask::NewProfilePassword { .. }
                | Ask::NewProfilePasswordAgain { .. }
                | Ask::DeleteProfile { .. }
        );
        if needs_profile && self.profiles.is_empty() {
            self.error("no profile yet: create one with `c`");
            return Vec::new();
        }
        if text.is_empty()
            && !matches!(
                ask,
                Ask::NewProfilePassword { .. }
                    | Ask::NewProfilePasswordAgain { .. }
                    | Ask::SetStatus
                    | Ask::DeleteProfile { .. }
            )
        {
            return Vec::new();
        }
        let p = Some(me.clone());
        match ask {
            Ask::Unlock => vec![call(
                Request::ProfileUnlock {
                    profile: None,
                    password: Secret::new(input),
                },
                "",
                None,
                What::Changed(UNLOCKED),
            )],
            Ask::NewProfileName => {
                self.ask(Ask::NewProfilePassword { name: text });
                Vec::new()
            }
            Ask::NewProfilePassword { name } if input.is_empty() => vec![call(
                Request::ProfileCreate {
                    name,
                    password: None,
                },
                "",
                None,
                What::Changed("profile created"),
            )],
            Ask::NewProfilePassword { name } => {
                self.ask(Ask::NewProfilePasswordAgain {
                    name,
                    password: Secret::new(input),
                });
                Vec::new()
            }
            Ask::NewProfilePasswordAgain { name, password } => {
                if password.0.as_str() != input.as_str() {
                    self.ask(Ask::NewProfilePassword { name });
                    self.error("the two passwords differ: type it again");
                    return Vec::new();
                }
                vec![call(
                    Request::ProfileCreate {
                        name,
                        password: Some(password),
                    },
                    "",
                    None,
                    What::Changed("profile created"),
                )]
            }
            Ask::AddContact => self.add_contact(&text),
            Ask::JoinGroup => self.join(input),
            Ask::AddServer => vec![call(
                Request::ServerAdd {
                    profile: p,
                    bundle: text,
                },
                &me,
                None,
                What::Changed("server added"),
            )],
            Ask::GroupName => {
                let server = self
                    .profile()
                    .and_then(|p| p.servers.first())
                    .map(|s| s.onion.clone())
                    .unwrap_or_default();
                self.overlay = Overlay::Prompt {
                    ask: Ask::GroupServer { name: text },
                    input: Zeroizing::new(server),
                };
                Vec::new()
            }
            Ask::GroupServer { name } => vec![call(
                Request::GroupCreate {
                    profile: p,
                    name,
                    server: text,
                },
                &me,
                None,
                What::Opened("group created"),
            )],
            Ask::InviteContact => self.invite(&text),
            Ask::SetName => self.settings(Some(text), None, None),
            Ask::SetStatus => self.settings(None, Some(text), None),
            Ask::DeleteProfile { onion } => vec![call(
                Request::ProfileDelete {
                    profile: Some(onion),
                    password: (!input.is_empty()).then(|| Secret::new(input)),
                },
                "",
                None,
                What::Changed("profile deleted"),
            )],
        }
    }

    fn settings(
        &mut self,
        name: Option<String>,
        status: Option<String>,
        block_unknown: Option<bool>,
    ) -> Vec<Action> {
        let said = match (&name, &status, block_unknown) {
            (Some(_), _, _) => "name changed (contacts see it within minutes)",
            (_, Some(s), _) if s.trim().is_empty() => "status cleared",
            (_, Some(_), _) => "status changed (contacts see it within minutes)",
            (_, _, Some(true)) => "unknown peers are now blocked",
            (_, _, Some(false)) => "unknown peers may now send contact requests",
            _ => "saved",
        };
        let change = SettingsChange {
            name,
            status,
            block_unknown,
            ..SettingsChange::default()
        };
        self.change_settings(change, What::SettingsSaved(said))
    }

    /// Ask for a change of the active profile's settings; `what` handles the answer.
    fn change_settings(&mut self, c: SettingsChange, what: What) -> Vec<Action> {
        let me = self.active_onion();
        if me.is_empty() {
            return Vec::new();
        }
        vec![call(
            Request::ProfileSettings {
                profile: Some(me.clone()),
                name: c.name,
                status: c.status,
                block_unknown: c.block_unknown,
                image_previews: c.image_previews,
                image: c.image,
                remove_image: c.remove_image,
                autostart: None,
                online: c.online,
            },
            &me,
            None,
            what,
        )]
    }

    /// `/previews on|off`: image previews (off by default, as in Go): accepted contacts'
    /// pictures and the images they offer are downloaded on their own.
    fn previews(&mut self, arg: &str) -> Vec<Action> {
        let (on, what) = match arg {
            "on" => (
                true,
                "image previews on: accepted contacts' pictures and offered images (up to 20 MiB) \
                 are downloaded automatically",
            ),
            "off" => (false, "image previews off"),
            _ => {
                self.error("usage: /previews on|off");
                return Vec::new();
            }
        };
        let change = SettingsChange {
            image_previews: Some(on),
            ..SettingsChange::default()
        };
        self.change_settings(change, What::Changed(what))
    }

    /// `/online on|off`: take the active profile online or offline now (offline: no onion
    /// service, every connection closed; messages sent meanwhile wait).
    fn go_online(&mut self, arg: &str) -> Vec<Action> {
        let (on, what) = match arg {
            "on" => (true, "going online"),
            "off" => (
                false,
                "offline: contacts cannot reach you; messages wait until /online on",
            ),
            _ => {
                self.error("usage: /online on|off");
                return Vec::new();
            }
        };
        let change = SettingsChange {
            online: Some(on),
            ..SettingsChange::default()
        };
        self.change_settings(change, What::Changed(what))
    }

    /// `/picture PATH`: the profile's picture (checked by the library, shared with accepted
    /// contacts); `/picture none` removes it (a file named `none`: `./none`).
    fn picture(&mut self, path: &str) -> Vec<Action> {
        if path == "none" {
            let change = SettingsChange {
                remove_image: true,
                ..SettingsChange::default()
            };
            return self.change_settings(change, What::Changed("profile picture removed"));
        }
        let change = SettingsChange {
            image: Some(expand_home(path).display().to_string()),
            ..SettingsChange::default()
        };
        self.change_settings(change, What::Changed("profile picture set"))
    }

    /// `/rename NAME`: our own name for the open contact (none: remove ours) or group.
    fn rename(&mut self, name: &str) -> Vec<Action> {
        let Some(c) = self.open_conv().cloned() else {
            self.error("/rename: no conversation is open");
            return Vec::new();
        };
        let me = self.active_onion();
        let req = match c.kind {
            Kind::Contact => Request::ContactRename {
                profile: Some(me.clone()),
                contact: c.id.to_string(),
                name: (!name.is_empty()).then(|| name.to_owned()),
            },
            Kind::Group if name.is_empty() => {
                self.error("/rename NAME: a group needs a name");
                return Vec::new();
            }
            // As `cwtch group rename`: a name commands can name it by.
            Kind::Group
                if name.chars().all(|c| c.is_ascii_digit())
                    || cwtch::Onion::parse(name).is_ok() =>
            {
                self.error("/rename: digits only or an onion address would be read as an id; choose another name");
                return Vec::new();
            }
            Kind::Group => Request::GroupRename {
                profile: Some(me.clone()),
                group: c.id.to_string(),
                name: name.to_owned(),
            },
        };
        let what = if name.is_empty() {
            "your name for them removed"
        } else {
            "renamed (for you alone)"
        };
        vec![call(req, &me, Some(c.id), What::Changed(what))]
    }

    fn add_contact(&mut self, onion: &str) -> Vec<Action> {
        let me = self.active_onion();
        if let Err(e) = crate::session::parse_onion(onion) {
            self.error(e.to_string());
            return Vec::new();
        }
        vec![call(
            Request::ContactAdd {
                profile: Some(me.clone()),
                contact: onion.to_owned(),
            },
            &me,
            None,
            What::Opened("contact added"),
        )]
    }

    fn join(&mut self, invite: Zeroizing<String>) -> Vec<Action> {
        let me = self.active_onion();
        let invite = Zeroizing::new(invite.trim().to_owned());
        if !(invite.starts_with("tofubundle:") || invite.starts_with("torv3")) {
            self.error("not a group invite (it starts with tofubundle: or torv3)");
            return Vec::new();
        }
        vec![call(
            Request::GroupJoin {
                profile: Some(me.clone()),
                invite: Secret::new(invite),
            },
            &me,
            None,
            What::Opened("joined the group"),
        )]
    }

    fn invite(&mut self, contact: &str) -> Vec<Action> {
        let me = self.active_onion();
        let Some(g) = self.open_conv().filter(|c| c.kind == Kind::Group).cloned() else {
            self.error("open a group first, then invite a contact to it");
            return Vec::new();
        };
        // The contact as the list shows it (the TUI never shows conversation ids), else
        // what the daemon resolves: an onion, an id or a nickname. A name two contacts are
        // listed under is refused: the invite is the group's secret.
        let typed = contact.trim();
        let listed: Vec<i64> = self
            .profile()
            .map(|p| {
                p.convs
                    .iter()
                    .filter(|c| c.kind == Kind::Contact && !c.request && !c.blocked)
                    .filter(|c| c.label().trim().to_lowercase() == typed.to_lowercase())
                    .map(|c| c.id)
                    .collect()
            })
            .unwrap_or_default();
        let contact = match listed[..] {
            [id] => id.to_string(),
            [] => typed.to_owned(),
            _ => {
                self.error(format!(
                    "{} contacts are listed as {:?}: give the onion of the one to invite",
                    listed.len(),
                    typed
                ));
                return Vec::new();
            }
        };
        vec![call(
            Request::GroupInvite {
                profile: Some(me.clone()),
                group: g.id.to_string(),
                contact,
                wait_secs: 0,
            },
            &me,
            Some(g.id),
            What::Changed("invite sent"),
        )]
    }

    fn on_selected(&mut self, verb: Verb) -> Vec<Action> {
        match self.selected_conv() {
            Some(c) => self.on_conv(&c, verb),
            None => Vec::new(),
        }
    }

    fn on_conv(&mut self, c: &Conv, verb: Verb) -> Vec<Action> {
        // Declining a contact request deletes what it sent: asked first, as D is (b keeps
        // it out instead).
        if verb == Verb::Decline && c.kind == Kind::Contact && c.request {
            self.overlay = Overlay::Confirm(Confirm::DeleteConv {
                id: c.id,
                kind: c.kind,
                label: c.label(),
            });
            return Vec::new();
        }
        let me = self.active_onion();
        let p = Some(me.clone());
        let target = c.id.to_string();
        let req = match (verb, c.kind) {
            (Verb::Accept, Kind::Contact) => Request::ContactAccept {
                profile: p,
                contact: target,
            },
            (Verb::Accept, Kind::Group) => Request::GroupAccept {
                profile: p,
                group: target,
            },
            (Verb::Decline, Kind::Contact) if c.request => Request::ContactDelete {
                profile: p,
                contact: target,
            },
            (Verb::Decline, Kind::Group) if c.request => Request::GroupLeave {
                profile: p,
                group: target,
            },
            (Verb::Decline, _) => {
                self.error("only a request or an invite can be declined (D deletes)");
                return Vec::new();
            }
            (Verb::Block, Kind::Contact) => Request::ContactBlock {
                profile: p,
                contact: target,
            },
            (Verb::Unblock, Kind::Contact) => Request::ContactUnblock {
                profile: p,
                contact: target,
            },
            (Verb::Block, Kind::Group) => {
                self.error("groups cannot be blocked (x declines an invite, D leaves)");
                return Vec::new();
            }
            (Verb::Unblock, Kind::Group) => {
                self.error("groups are never blocked: u unblocks a contact");
                return Vec::new();
            }
        };
        let what = match verb {
            Verb::Accept => "accepted",
            Verb::Decline => "declined",
            Verb::Block => "blocked",
            Verb::Unblock => "unblocked",
        };
        if verb == Verb::Decline && self.open == Some(c.id) {
            self.close();
        }
        // Accepted where it is open: what comes next is writing to it.
        if verb == Verb::Accept && self.open == Some(c.id) {
            self.focus = Focus::Compose;
        }
        vec![call(req, &me, Some(c.id), What::Changed(what))]
    }

    fn confirmed(&mut self, c: Confirm) -> Vec<Action> {
        let (id, kind) = match c {
            Confirm::DeleteConv { id, kind, .. } => (id, kind),
            Confirm::DeleteProfile { onion, .. } => {
                self.ask(Ask::DeleteProfile { onion });
                return Vec::new();
            }
        };
        let me = self.active_onion();
        let p = Some(me.clone());
        if self.open == Some(id) {
            self.close();
        }
        let (req, said) = match kind {
            Kind::Contact => (
                Request::ContactDelete {
                    profile: p,
                    contact: id.to_string(),
                },
                "deleted",
            ),
            Kind::Group => (
                Request::GroupLeave {
                    profile: p,
                    group: id.to_string(),
                },
                "left the group (its messages deleted here)",
            ),
        };
        vec![call(req, &me, Some(id), What::Changed(said))]
    }

    fn close(&mut self) {
        // Search results are the active profile's: not another's.
        if matches!(self.overlay, Overlay::Search { .. }) {
            self.overlay = Overlay::None;
        }
        self.open = None;
        self.new_from = None;
        self.unread_at_open = None;
        self.messages.clear();
        self.cursor = None;
        self.reply_to = None;
        self.scroll = 0;
        self.scroll_base = None;
        self.selected = 0;
        self.selection_moved = true;
        if self.focus != Focus::List {
            self.focus = Focus::List;
        }
    }

    /// Open a conversation of the active profile: read its messages.
    fn open(&mut self, id: i64) -> Vec<Action> {
        if self.open != Some(id) {
            self.messages.clear();
            self.cursor = None;
            self.reply_to = None;
            self.scroll = 0;
            self.scroll_base = None;
            self.limit = FIRST_PAGE;
            self.new_from = None;
            self.unread_at_open = self
                .profile()
                .and_then(|p| p.convs.iter().find(|c| c.id == id))
                .map(|c| c.unread)
                .filter(|&n| n > 0);
        }
        self.open = Some(id);
        if let Some(i) = self.visible().iter().position(|c| c.id == id) {
            self.selected = i;
            self.selection_moved = true;
        }
        if let Some(c) = self.profile_mut().and_then(|p| p.conv_mut(id)) {
            c.unread = 0;
        }
        self.reload()
    }

    /// Re-read the open conversation.
    fn reload(&mut self) -> Vec<Action> {
        let Some(id) = self.open else {
            return Vec::new();
        };
        let me = self.active_onion();
        vec![call(
            Request::Messages {
                profile: Some(me.clone()),
                contact: id.to_string(),
                offset: 0,
                limit: self.limit,
            },
            &me,
            Some(id),
            What::Messages,
        )]
    }

    /// Enter on the compose line: a command, or a message to the open conversation.
    pub(crate) fn submit(&mut self, line: String) -> Vec<Action> {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            return Vec::new();
        }
        if let Some(cmd) = trimmed.strip_prefix('/') {
            // `//text` sends `/text`.
            if !cmd.starts_with('/') {
                return self.command(cmd);
            }
        }
        let Some(c) = self.open_conv().cloned() else {
            // Nothing is lost: the line stays to be sent once one is open.
            self.compose = line;
            self.compose_at = None;
            self.error("no conversation is open: choose one in the list (Enter)");
            return Vec::new();
        };
        let text = if trimmed.starts_with("//") {
            line.trim_start()[1..].to_owned()
        } else {
            line
        };
        if c.request && c.kind == Kind::Group {
            self.error("accept the invite first (/accept)");
            return Vec::new();
        }
        let reply_to = self.reply_to.take().map(|(hash, _)| hash);
        self.send(c.id, text, reply_to)
    }

    fn send(&mut self, id: i64, text: String, reply_to: Option<String>) -> Vec<Action> {
        let me = self.active_onion();
        self.scroll = 0;
        self.scroll_base = None;
        self.unsent = Some(text.clone());
        vec![call(
            Request::Send {
                profile: Some(me.clone()),
                contact: id.to_string(),
                text,
                wait_secs: 0,
                reply_to,
            },
            &me,
            Some(id),
            What::Sent,
        )]
    }

    /// Send a failed message's text again (a new message).
    fn retry(&mut self, m: &MessageRow) -> Vec<Action> {
        let (text, quoted) = match &m.content {
            cwtch::Content::Text { text } => (text.clone(), None),
            cwtch::Content::QuotedReply { quoted_hash, body } => {
                (body.clone(), Some(quoted_hash.clone()))
            }
            _ => {
                self.error("only a text can be retried");
                return Vec::new();
            }
        };
        self.cursor = None;
        self.focus = Focus::Compose;
        self.send(m.conversation_id, text, quoted)
    }

    fn command(&mut self, cmd: &str) -> Vec<Action> {
        let (name, arg) = match cmd.split_once(char::is_whitespace) {
            Some((n, a)) => (n, a.trim()),
            None => (cmd, ""),
        };
        if self.profiles.is_empty() && !matches!(name, "quit" | "q" | "help") {
            self.error("no profile yet: create one with `c` in the list");
            return Vec::new();
        }
        match name {
            "quit" | "q" => {
                self.quit = true;
                vec![Action::Quit]
            }
            "help" => {
                self.overlay = Overlay::Help(0);
                Vec::new()
            }
            "add" if !arg.is_empty() => self.add_contact(arg),
            "join" if !arg.is_empty() => self.join(Zeroizing::new(arg.to_owned())),
            "invite" if !arg.is_empty() => self.invite(arg),
            "accept" | "block" | "unblock" | "decline" => {
                let verb = match name {
                    "accept" => Verb::Accept,
                    "block" => Verb::Block,
                    "unblock" => Verb::Unblock,
                    _ => Verb::Decline,
                };
                match self.open_conv().cloned() {
                    Some(c) => self.on_conv(&c, verb),
                    None => {
                        self.error(format!("/{name}: no conversation is open"));
                        Vec::new()
                    }
                }
            }
            "server" if !arg.is_empty() => {
                let me = self.active_onion();
                vec![call(
                    Request::ServerAdd {
                        profile: Some(me.clone()),
                        bundle: arg.to_owned(),
                    },
                    &me,
                    None,
                    What::Changed("server added"),
                )]
            }
            "group" if !arg.is_empty() => {
                // `/group NAME SERVER-ONION` (the server last).
                let (gname, server) = match arg.rsplit_once(char::is_whitespace) {
                    Some((n, s)) => (n.trim().to_owned(), s.to_owned()),
                    None => {
                        self.error("usage: /group NAME SERVER-ONION");
                        return Vec::new();
                    }
                };
                let me = self.active_onion();
                vec![call(
                    Request::GroupCreate {
                        profile: Some(me.clone()),
                        name: gname,
                        server,
                    },
                    &me,
                    None,
                    What::Opened("group created"),
                )]
            }
            "permissions" => self.permissions(arg),
            "share" if !arg.is_empty() => self.share(arg),
            "download" if !arg.is_empty() => self.download(arg),
            "name" if !arg.is_empty() => self.settings(Some(arg.to_owned()), None, None),
            "status" => self.settings(None, Some(arg.to_owned()), None),
            "previews" => self.previews(arg),
            "online" => self.go_online(arg),
            "picture" if !arg.is_empty() => self.picture(arg),
            "rename" => self.rename(arg),
            "search" if !arg.is_empty() => {
                let me = self.active_onion();
                self.searching = Some(arg.to_owned());
                self.note(format!("searching for “{arg}”…"));
                vec![call(
                    Request::Search {
                        profile: Some(me.clone()),
                        pattern: arg.to_owned(),
                        conversation: None,
                        limit: SEARCH_LIMIT,
                    },
                    &me,
                    None,
                    What::Search,
                )]
            }
            "add" | "join" | "invite" | "server" | "group" | "name" | "share" | "download"
            | "picture" | "search" => {
                self.error(format!("/{name} needs an argument (/help lists them)"));
                Vec::new()
            }
            _ => {
                self.error(format!(
                    "unknown command /{name} (/help lists them; //text sends /text)"
                ));
                Vec::new()
            }
        }
    }

    // ---- library events ----

    /// An event from the library (in-process or through `cwtch run`).
    pub(crate) fn handle_event(&mut self, e: Event) -> Vec<Action> {
        self.keeping_selection(|app| app.event(e))
    }

    /// Run `f`, which may reorder, add to or shorten the list: the highlighted row stays on
    /// the conversation it was on (the list's keys act on it: `b` must block the one the
    /// user looked at, not the one a new request pushed under the highlight).
    fn keeping_selection(&mut self, f: impl FnOnce(&mut App) -> Vec<Action>) -> Vec<Action> {
        let before = self.selected_conv().map(|c| c.id);
        let profile = self.active_onion();
        self.selection_moved = false;
        let actions = f(self);
        if !self.selection_moved && self.active_onion() == profile {
            let visible = self.visible();
            let n = visible.len();
            match before.and_then(|id| visible.iter().position(|c| c.id == id)) {
                Some(i) => self.selected = i,
                // It is gone: the row now in its place, or the last.
                None => self.selected = self.selected.min(n.saturating_sub(1)),
            }
        }
        actions
    }

    fn event(&mut self, e: Event) -> Vec<Action> {
        match &e {
            Event::AcnStatus { progress, summary } => {
                self.acn = Some((*progress, summary.clone()));
                return Vec::new();
            }
            Event::ProfileLoaded { profile, .. } => {
                if self.profiles.iter().all(|p| p.onion != *profile) {
                    return vec![call(Request::Ping, "", None, What::Profiles)];
                }
                return Vec::new();
            }
            Event::ProfileOnline { profile } => {
                self.online.insert(profile.clone());
                if let Some(p) = self.profile_by_onion(profile) {
                    p.online = true;
                    p.offline = false;
                }
                return Vec::new();
            }
            Event::ProfileShutdown { profile } => {
                self.online.remove(profile);
                if let Some(p) = self.profile_by_onion(profile) {
                    p.online = false;
                }
                // Deleted, or no longer run (by the `cwtch run` we are attached to): what
                // runs now says which, and a profile gone is not kept as a ghost to switch to.
                return vec![call(Request::Ping, "", None, What::Profiles)];
            }
            _ => {}
        }
        let Some(onion) = e.profile().map(str::to_owned) else {
            return Vec::new();
        };
        let active = self.is_active(&onion);
        let open = self.open;
        let bell = self.bell.then_some(Action::Bell);
        let Some(p) = self.profile_by_onion(&onion) else {
            return Vec::new();
        };
        match e {
            Event::PeerStateChanged {
                conversation_id,
                state,
                ..
            } => {
                p.peer_states.insert(conversation_id, state);
                p.apply_states();
                Vec::new()
            }
            Event::ServerStateChanged { server, state, .. } => {
                p.server_states.insert(server.clone(), state);
                for c in p.convs.iter_mut() {
                    if c.server.as_deref() == Some(server.as_str()) {
                        c.server_state = state;
                    }
                }
                if let Some(s) = p.servers.iter_mut().find(|s| s.onion == server) {
                    s.state = state;
                }
                Vec::new()
            }
            Event::NewMessage {
                conversation_id, ..
            }
            | Event::GroupMessage {
                conversation_id, ..
            } => {
                if active && open == Some(conversation_id) {
                    self.refresh_open(true, conversation_id, None)
                } else {
                    if let Some(c) = p.conv_mut(conversation_id) {
                        c.unread += 1;
                        return bell.into_iter().collect();
                    }
                    // A conversation we do not list yet.
                    let mut a = refresh(&onion);
                    a.extend(bell);
                    a
                }
            }
            Event::GroupMessageSent {
                conversation_id,
                message_id,
                ..
            } => {
                self.accepted
                    .insert((onion.clone(), conversation_id, message_id));
                self.refresh_open(active, conversation_id, Some(message_id))
            }
            Event::MessageSent {
                conversation_id,
                message_id,
                ..
            }
            | Event::Acknowledged {
                conversation_id,
                message_id,
                ..
            }
            | Event::MessageFailed {
                conversation_id,
                message_id,
                ..
            }
            | Event::GroupMessageSeen {
                conversation_id,
                message_id,
                ..
            } => self.refresh_open(active, conversation_id, Some(message_id)),
            Event::FileManifestReceived {
                conversation_id,
                file_key,
                path,
                size,
                ..
            } => {
                let name = std::path::Path::new(&path)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                self.note(format!("downloading {name}: 0% of {}", human_size(size)));
                self.progress.insert(file_key.clone(), (0, size));
                self.downloads.insert(file_key, name);
                self.reload_if_open(active, conversation_id)
            }
            Event::FileDownloadProgress {
                file_key,
                done,
                total,
                ..
            } => {
                self.progress.insert(file_key.clone(), (done, total));
                let pct = (done * 100).checked_div(total).unwrap_or(100);
                let name = self
                    .downloads
                    .get(&file_key)
                    .map(|n| format!(" {n}"))
                    .unwrap_or_default();
                self.note(format!(
                    "downloading{name}: {pct}% of {}",
                    human_size(total)
                ));
                Vec::new()
            }
            Event::FileDownloaded {
                conversation_id,
                file_key,
                path,
                ..
            } => {
                self.downloads.remove(&file_key);
                self.progress.remove(&file_key);
                self.note(format!("downloaded: {path}"));
                self.reload_if_open(active, conversation_id)
            }
            Event::FileDownloadFailed {
                conversation_id,
                file_key,
                reason,
                ..
            } => {
                self.progress.remove(&file_key);
                let name = self
                    .downloads
                    .remove(&file_key)
                    .map(|n| format!(" of {n}"))
                    .unwrap_or_default();
                self.error(format!(
                    "the download{name} failed: {reason} (what arrived is kept: d resumes it)"
                ));
                self.reload_if_open(active, conversation_id)
            }
            Event::ImagePreview {
                conversation_id,
                file_key,
                profile_image,
                format,
                width,
                height,
                bytes,
                path,
                ..
            } => {
                let what = image_description(&format, width, height, bytes);
                let whose = p
                    .conv_mut(conversation_id)
                    .map(|c| c.label())
                    .unwrap_or_default();
                if profile_image {
                    self.note(format!("{whose}'s profile picture: {what}"));
                } else {
                    self.note(format!("image from {whose}: {what}"));
                }
                let mut actions = self.reload_if_open(active, conversation_id);
                if self.inline_images.is_some() && !profile_image {
                    self.thumbnails_asked.insert(file_key.clone());
                    actions.push(Action::Thumbnail {
                        file_key: file_key.clone(),
                        path,
                    });
                }
                self.images.insert(file_key, what);
                actions
            }
            Event::MissingMessages {
                conversation_id,
                message_id,
                ..
            } => {
                if let Some(c) = p.conv_mut(conversation_id) {
                    c.missing += 1;
                }
                self.missing
                    .insert((onion.clone(), conversation_id, message_id));
                Vec::new()
            }
            Event::ContactDeleted {
                conversation_id, ..
            }
            | Event::GroupLeft {
                conversation_id, ..
            } => {
                p.convs.retain(|c| c.id != conversation_id);
                if active && open == Some(conversation_id) {
                    self.close();
                }
                refresh(&onion)
            }
            Event::ServerAdded { .. } | Event::ServerRemoved { .. } => {
                vec![call(
                    Request::ServerList {
                        profile: Some(onion.clone()),
                    },
                    &onion,
                    None,
                    What::Servers,
                )]
            }
            Event::ContactCreated { .. }
            | Event::ContactUpdated { .. }
            | Event::ContactBlocked { .. }
            | Event::AttributeUpdated { .. }
            | Event::GroupCreated { .. }
            | Event::GroupInvite { .. }
            | Event::GroupUpdated { .. }
            | Event::GroupRenamed { .. } => refresh(&onion),
            _ => Vec::new(),
        }
    }

    /// Something changed in conversation `conv` (message `changed`, or a new one): re-read it
    /// if it is open. A long history read back is not read again: only the newest page,
    /// merged in, unless the message that changed is older than that page.
    fn refresh_open(&mut self, active: bool, conv: i64, changed: Option<i64>) -> Vec<Action> {
        if !active || self.open != Some(conv) {
            return Vec::new();
        }
        let page = FIRST_PAGE as usize;
        let n = self.messages.len();
        let older = n > page && changed.is_some_and(|id| id < self.messages[n - page].message_id);
        if n <= page || older {
            return self.reload();
        }
        let me = self.active_onion();
        vec![call(
            Request::Messages {
                profile: Some(me.clone()),
                contact: conv.to_string(),
                offset: 0,
                limit: FIRST_PAGE,
            },
            &me,
            Some(conv),
            What::Recent,
        )]
    }

    fn reload_if_open(&mut self, active: bool, conv: i64) -> Vec<Action> {
        if active && self.open == Some(conv) {
            self.reload()
        } else {
            Vec::new()
        }
    }

    /// Events were lost (the receiver lagged): re-read everything.
    pub(crate) fn resync(&mut self) -> Vec<Action> {
        let mut a = vec![call(Request::Ping, "", None, What::Profiles)];
        a.extend(self.reload());
        a
    }

    // ---- answers ----

    /// The result of a request made by an [`Action::Call`].
    pub(crate) fn handle_reply(&mut self, ctx: Ctx, r: Result<Reply, String>) -> Vec<Action> {
        self.keeping_selection(|app| app.reply(ctx, r))
    }

    fn reply(&mut self, ctx: Ctx, r: Result<Reply, String>) -> Vec<Action> {
        let reply = match r {
            Ok(r) => r,
            Err(e) => {
                if ctx.what == What::Sent {
                    if let Some(text) = self.unsent.take() {
                        if self.compose.is_empty() {
                            self.compose = text;
                            self.compose_at = None;
                        }
                    }
                }
                self.error(e);
                // A mistyped password: the prompt again (Esc closes it), not an empty screen
                // and a key to remember.
                if ctx.what == What::Changed(UNLOCKED) && self.overlay == Overlay::None {
                    self.ask(Ask::Unlock);
                }
                return Vec::new();
            }
        };
        match (ctx.what, reply) {
            (What::Profiles, Reply::Pong { profiles, acn, .. }) => {
                if let Some(a) = acn {
                    self.acn = Some((a.progress, a.summary));
                }
                let mut actions = Vec::new();
                let active = self.active_onion();
                let mut next = Vec::new();
                for row in &profiles {
                    let p = match self.profiles.iter().find(|p| p.onion == row.onion) {
                        Some(p) => p.clone(),
                        None => Profile::new(row),
                    };
                    let mut p = p;
                    p.online = self.attached || self.online.contains(&row.onion);
                    next.push(p);
                    actions.extend(refresh_all(&row.onion));
                }
                self.profiles = next;
                match self.profiles.iter().position(|p| p.onion == active) {
                    Some(i) => self.active = i,
                    None => {
                        // The active profile is gone (deleted): show the first.
                        self.active = 0;
                        self.close();
                    }
                }
                if self.profiles.is_empty() && self.overlay == Overlay::None {
                    if self.locked > 0 {
                        self.ask(Ask::Unlock);
                    } else {
                        self.note("welcome to Cwtch: create your profile");
                        self.ask(Ask::NewProfileName);
                    }
                }
                actions
            }
            (What::Contacts, Reply::Contacts { contacts }) => {
                // The open conversation is being read (its reload marks it so, perhaps
                // after this answer was made).
                let open = self.open.filter(|_| self.is_active(&ctx.profile));
                if let Some(p) = self.profile_by_onion(&ctx.profile) {
                    let old = std::mem::take(&mut p.convs);
                    let mut convs: Vec<Conv> = old
                        .iter()
                        .filter(|c| c.kind == Kind::Group)
                        .cloned()
                        .collect();
                    for row in &contacts {
                        let mut c = Conv::from_contact(row);
                        if open == Some(c.id) {
                            c.unread = 0;
                        }
                        convs.push(c);
                    }
                    p.convs = convs;
                    p.apply_states();
                    p.sort();
                }
                let active = self.is_active(&ctx.profile);
                self.try_pending_open_after_list(active)
            }
            (What::Groups, Reply::Groups { groups }) => {
                if let Some(p) = self.profile_by_onion(&ctx.profile) {
                    p.convs.retain(|c| c.kind != Kind::Group);
                    p.convs.extend(groups.iter().map(Conv::from_group));
                    p.apply_states();
                    p.sort();
                }
                let active = self.is_active(&ctx.profile);
                self.try_pending_open_after_list(active)
            }
            (What::Servers, Reply::Servers { servers }) => {
                if let Some(p) = self.profile_by_onion(&ctx.profile) {
                    p.servers = servers;
                    p.apply_states();
                }
                Vec::new()
            }
            (What::Settings | What::SettingsSaved(_), Reply::Settings { settings }) => {
                if let What::SettingsSaved(said) = ctx.what {
                    self.note(said);
                }
                let offline = settings.online == Some(false);
                if offline {
                    self.online.remove(&settings.onion);
                }
                if let Some(p) = self.profile_by_onion(&settings.onion) {
                    p.name = settings.name;
                    p.status = settings.status;
                    p.block_unknown = settings.block_unknown;
                    p.offline = offline;
                    if offline {
                        p.online = false;
                    }
                }
                Vec::new()
            }
            (What::Messages, Reply::Messages { messages }) => {
                if self.is_active(&ctx.profile) && self.open == ctx.conv {
                    self.messages = messages;
                    let thumbnails = self.known_images();
                    if let Some(i) = self.cursor {
                        self.cursor = Some(i.min(self.messages.len().saturating_sub(1)));
                    }
                    // What was unread when it was opened: its oldest gets the "new" line.
                    if let Some(n) = self.unread_at_open.take() {
                        let theirs: Vec<&MessageRow> =
                            self.messages.iter().filter(|m| !m.outgoing).collect();
                        let k = usize::try_from(n).unwrap_or(usize::MAX).min(theirs.len());
                        self.new_from = theirs.get(theirs.len() - k).map(|m| m.message_id);
                    }
                    // A search result: choose it (the view keeps it in sight), unless the
                    // user has moved on (left the messages) before the messages arrived.
                    if let Some(id) = self
                        .jump_to
                        .take()
                        .filter(|_| self.focus == Focus::Messages)
                    {
                        match self.messages.iter().position(|m| m.message_id == id) {
                            Some(i) => self.cursor = Some(i),
                            None => self.error("that message is gone"),
                        }
                    }
                    // Shown: the conversation is marked read by the request itself.
                    if let Some(c) = self
                        .profile_mut()
                        .and_then(|p| ctx.conv.and_then(|id| p.conv_mut(id)))
                    {
                        c.unread = 0;
                    }
                    return thumbnails;
                }
                Vec::new()
            }
            (What::Search, Reply::Found { found }) => {
                let pattern = self.searching.take().unwrap_or_default();
                if !self.is_active(&ctx.profile) {
                    return Vec::new();
                }
                if found.is_empty() {
                    self.note(format!("nothing found for “{pattern}”"));
                } else {
                    self.notice = None;
                    self.overlay = Overlay::Search {
                        pattern,
                        found,
                        selected: 0,
                    };
                }
                Vec::new()
            }
            (What::Sent, Reply::Sent { .. } | Reply::GroupSent { .. }) => {
                self.notice = None;
                self.unsent = None;
                self.refresh_open(self.is_active(&ctx.profile), ctx.conv.unwrap_or(-1), None)
            }
            (What::Recent, Reply::Messages { messages }) => {
                // The newest page replaces what it covers; older messages stay as read.
                if self.is_active(&ctx.profile) && self.open == ctx.conv {
                    if let Some(first) = messages.first().map(|m| m.message_id) {
                        self.messages.retain(|m| m.message_id < first);
                        self.messages.extend(messages);
                    }
                    if let Some(i) = self.cursor {
                        self.cursor = Some(i.min(self.messages.len().saturating_sub(1)));
                    }
                    return self.known_images();
                }
                Vec::new()
            }
            (What::Opened(what), reply) => {
                let id = match &reply {
                    Reply::Contact { contact } => Some(contact.conversation_id),
                    Reply::Group { group } => Some(group.conversation_id),
                    _ => None,
                };
                self.note(what);
                let mut a = refresh_all(&ctx.profile);
                if let (Some(id), true) = (id, self.is_active(&ctx.profile)) {
                    self.pending_open = Some(id.to_string());
                    self.open_misses = 0;
                    self.focus = Focus::Compose;
                    if let Reply::Group { group } = &reply {
                        if let Some(invite) = &group.invite {
                            // The invite is the group's secret: shown to its creator, who
                            // shares it (also `/invite CONTACT` sends it over Cwtch).
                            self.overlay = Overlay::Invite(Zeroizing::new(invite.clone()));
                            a.push(Action::Copy(invite.clone()));
                        }
                    }
                }
                a.extend(self.try_pending_open());
                a
            }
            (What::Permissions, Reply::Contact { contact }) => {
                self.note(format!(
                    "{}: {}",
                    short(&contact.onion),
                    crate::output::contact_permissions_line(&contact).replace('\t', "  ")
                ));
                Vec::new()
            }
            (What::Changed(what), reply) => {
                self.note(what);
                let mut a = match &reply {
                    Reply::Profiles { .. } | Reply::Profile { .. } => {
                        vec![call(Request::Ping, "", None, What::Profiles)]
                    }
                    _ if !ctx.profile.is_empty() => refresh_all(&ctx.profile),
                    _ => Vec::new(),
                };
                if let Reply::Profiles { profiles } = &reply {
                    self.locked = self.locked.saturating_sub(profiles.len());
                }
                a.extend(self.reload_if_open(self.is_active(&ctx.profile), ctx.conv.unwrap_or(-1)));
                a
            }
            (what, reply) => {
                tracing::debug!(?what, kind = ?std::mem::discriminant(&reply), "unexpected answer");
                Vec::new()
            }
        }
    }

    /// `--open` (or a conversation just created): open it once it is listed.
    /// [`App::try_pending_open`] after one of the active profile's lists was read (`active`):
    /// a conversation that neither its contacts nor its groups hold is said not to exist.
    fn try_pending_open_after_list(&mut self, active: bool) -> Vec<Action> {
        let actions = self.try_pending_open();
        if active && actions.is_empty() {
            if let Some(want) = self.pending_open.clone() {
                self.open_misses += 1;
                if self.open_misses >= 2 {
                    self.pending_open = None;
                    self.open_misses = 0;
                    self.error(format!(
                        "--open {}: no such contact or group",
                        super::sanitize::inert(&want)
                    ));
                }
            }
        }
        actions
    }

    fn try_pending_open(&mut self) -> Vec<Action> {
        let Some(want) = self.pending_open.clone() else {
            return Vec::new();
        };
        let want = want.trim().to_owned();
        let bare = want.strip_suffix(".onion").unwrap_or(&want).to_lowercase();
        // By id or address (unique), else by name, which must name one conversation only.
        let (exact, named): (Vec<i64>, Vec<i64>) = match self.profile() {
            Some(p) => (
                p.convs
                    .iter()
                    .filter(|c| c.id.to_string() == want || c.address == bare)
                    .map(|c| c.id)
                    .collect(),
                p.convs
                    .iter()
                    .filter(|c| c.name.as_deref() == Some(want.as_str()))
                    .map(|c| c.id)
                    .collect(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        if exact.is_empty() && named.len() > 1 {
            self.pending_open = None;
            self.error(format!(
                "--open {}: several conversations have that name; give its conversation id",
                super::sanitize::inert(&want)
            ));
            return Vec::new();
        }
        let found = exact.first().or(named.first()).copied();
        match found {
            Some(id) => {
                self.pending_open = None;
                self.filter.clear();
                self.focus = Focus::Compose;
                self.open(id)
            }
            None => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Accept,
    Decline,
    Block,
    Unblock,
}

fn call(req: Request, profile: &str, conv: Option<i64>, what: What) -> Action {
    Action::Call {
        req,
        ctx: Ctx {
            profile: profile.to_owned(),
            conv,
            what,
        },
    }
}

/// Re-read a profile's contacts and groups.
fn refresh(onion: &str) -> Vec<Action> {
    let p = Some(onion.to_owned());
    vec![
        call(
            Request::ContactList { profile: p.clone() },
            onion,
            None,
            What::Contacts,
        ),
        call(Request::GroupList { profile: p }, onion, None, What::Groups),
    ]
}

/// Re-read everything about a profile.
fn refresh_all(onion: &str) -> Vec<Action> {
    let p = Some(onion.to_owned());
    let mut a = refresh(onion);
    a.push(call(
        Request::ServerList { profile: p.clone() },
        onion,
        None,
        What::Servers,
    ));
    a.push(call(
        Request::ProfileSettings {
            profile: p,
            name: None,
            status: None,
            block_unknown: None,
            image_previews: None,
            image: None,
            remove_image: false,
            autostart: None,
            online: None,
        },
        onion,
        None,
        What::Settings,
    ));
    a
}

/// `~/x` as `$HOME/x`; anything else as given.
fn expand_home(p: &str) -> std::path::PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => std::path::PathBuf::from(home).join(rest),
        _ => std::path::PathBuf::from(p),
    }
}

/// How an image is described (the TUI shows no pixels): `PNG image, 640×480, 12.3 KiB`.
pub(crate) fn image_description(format: &str, width: u32, height: u32, bytes: u64) -> String {
    format!(
        "{} image, {width}×{height}, {}",
        format.to_uppercase(),
        human_size(bytes)
    )
}

/// A size for people: `512 bytes`, `12.3 KiB`, `2.9 MiB`, `4.0 GiB`.
pub(crate) fn human_size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if bytes == 1 {
        "1 byte".into()
    } else if bytes < 1024 {
        format!("{bytes} bytes")
    } else if b < KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else if b < KIB * KIB * KIB {
        format!("{:.1} MiB", b / (KIB * KIB))
    } else {
        format!("{:.1} GiB", b / (KIB * KIB * KIB))
    }
}
