//! Drawing: a pure function of the [`App`]. Every string that may come from someone else
//! goes through [`inert`] first (so does everything else: ours is harmless, and one path is
//! easier to trust).

use cwtch::{ConnectionState, Content, MessageState, ServerState};
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::app::{section, short, App, Ask, Colours, Confirm, Focus, Kind, Overlay, Section};
use super::sanitize::{inert, inert_lines};
use crate::protocol::{FoundRow, MessageRow};

/// Every key, for the help screen (and the README).
pub(crate) const KEYS: &[(&str, &str)] = &[
    ("Ctrl-C", "quit, from anywhere (q in the list)"),
    ("? F1", "this help (any key closes it)"),
    ("Tab", "the list ⇄ the compose line"),
    ("↑ ↓ Enter", "choose and open a conversation"),
    (
        "/ Ctrl-F",
        "filter the conversations (Esc clears); search messages",
    ),
    (
        "PgUp PgDn",
        "scroll the conversation (Home End: oldest, newest)",
    ),
    (
        "↑ (empty line)",
        "pick one: r quote, y copy, R retry, d download, s stop",
    ),
    ("a", "add a contact (paste their address)"),
    (
        "A x b u",
        "accept, decline a request or invite; block, unblock",
    ),
    ("D", "delete the contact or leave the group (asks first)"),
    (
        "g i",
        "create a group on a server; invite to the open group",
    ),
    ("J S", "join a group from an invite; add a server bundle"),
    (
        "n t B",
        "change name, status; toggle blocking unknown peers",
    ),
    ("y", "show your address and copy it"),
    (
        "c U p X",
        "create, unlock profiles; next profile; delete this one",
    ),
];

/// The compose line's commands.
pub(crate) const COMMANDS: &[&str] = &[
    "/add ONION  /accept  /decline  /block  /unblock  /rename NAME",
    "/join INVITE  /invite CONTACT  /group NAME SERVER-ONION",
    "/server BUNDLE  /name NAME  /status TEXT  /help  /quit",
    "/share PATH  /download KEY  (Enter sends text; //x sends /x)",
    "/permissions [files|images allow|refuse|default]",
    "/previews on|off  /picture PATH|none  /online on|off  /search TEXT",
];

const ACCENT: Color = Color::Cyan;

/// The smallest window the TUI draws in; below it, it says so.
pub(crate) const MIN_SIZE: (u16, u16) = (40, 8);
/// Below this width the conversation list and the open conversation take turns.
const TWO_PANES_WIDTH: u16 = 64;

/// Ctrl-C or Ctrl-Q: the keys that quit.
pub(crate) fn is_quit(key: &ratatui::crossterm::event::KeyEvent) -> bool {
    use ratatui::crossterm::event::{KeyCode, KeyModifiers};
    key.modifiers.contains(KeyModifiers::CONTROL)
        && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('q'))
}

/// Draw the whole screen.
pub(crate) fn render(app: &App, f: &mut Frame<'_>) {
    let area = f.area();
    if area.width < MIN_SIZE.0 || area.height < MIN_SIZE.1 {
        let text = format!(
            "The window is too small ({}×{}): Cwtch needs at least {}×{}. Ctrl-C quits.",
            area.width, area.height, MIN_SIZE.0, MIN_SIZE.1
        );
        let lines: Vec<Line<'static>> = wrap(&text, usize::from(area.width.max(1)))
            .into_iter()
            .map(Line::from)
            .collect();
        f.render_widget(Paragraph::new(lines), area);
        return;
    }
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Min(3),
            Constraint::Length(3),
            Constraint::Length(status_height(app, area.width, area.height)),
        ])
        .split(area);
    if area.width < TWO_PANES_WIDTH {
        // Narrow: the list while it has the focus (or nothing is open), else the conversation.
        let list = matches!(app.focus, Focus::List | Focus::Filter) || app.open_conv().is_none();
        if list {
            conversations(app, f, rows[0]);
        } else {
            conversation(app, f, rows[0]);
        }
    } else {
        let left_width = (area.width / 3).clamp(28, 36);
        let cols = Layout::default()
            .direction(Direction::Horizontal)
            .constraints([Constraint::Length(left_width), Constraint::Min(10)])
            .split(rows[0]);
        conversations(app, f, cols[0]);
        conversation(app, f, cols[1]);
    }
    compose(app, f, rows[1]);
    status_bar(app, f, rows[2]);
    match &app.overlay {
        Overlay::None => {}
        Overlay::Help(top) => help(f, area, *top),
        Overlay::Address => address(app, f, area),
        Overlay::Invite(invite) => invite_popup(f, area, invite),
        Overlay::Prompt { ask, input } => prompt(f, area, ask, input),
        Overlay::Confirm(c) => confirm(f, area, c),
        Overlay::Search {
            pattern,
            found,
            selected,
        } => search_results(app, f, area, pattern, found, *selected),
    }
}

fn focused(on: bool) -> Style {
    if on {
        Style::default().fg(ACCENT)
    } else {
        Style::default()
    }
}

fn conversations(app: &App, f: &mut Frame<'_>, area: Rect) {
    let mut lines: Vec<Line<'static>> = Vec::new();
    for (i, p) in app.profiles.iter().enumerate() {
        let mark = if i == app.active { "▸ " } else { "  " };
        let state = if p.offline {
            "offline"
        } else if p.online {
            "online"
        } else {
            "connecting"
        };
        let style = if i == app.active {
            Style::default().add_modifier(Modifier::BOLD)
        } else {
            Style::default()
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{mark}{}", inert(&p.name)), style),
            Span::styled(format!(" {state}"), Style::default().fg(Color::DarkGray)),
        ]));
    }
    if app.locked > 0 {
        lines.push(Line::styled(
            format!("  {} locked (U unlocks)", app.locked),
            Style::default().fg(Color::DarkGray),
        ));
    }
    if app.profiles.is_empty() {
        lines.push(Line::raw("  no profile (c creates one)"));
    }
    if app.focus == Focus::Filter || !app.filter.is_empty() {
        lines.push(Line::styled(
            format!("filter: {}", inert(&app.filter)),
            Style::default().fg(Color::Yellow),
        ));
    }
    let mut last: Option<Section> = None;
    let visible = app.visible();
    let mut selected_line = 0;
    for (i, c) in visible.iter().enumerate() {
        let s = section(c);
        if last != Some(s) {
            last = Some(s);
            let title = match s {
                Section::Requests => "Requests",
                Section::Contacts => "Contacts",
                Section::Groups => "Groups",
                Section::Blocked => "Blocked",
            };
            lines.push(Line::styled(
                title,
                Style::default()
                    .fg(Color::DarkGray)
                    .add_modifier(Modifier::BOLD),
            ));
        }
        let (glyph, gstyle) = match c.kind {
            Kind::Contact => match c.peer {
                ConnectionState::Authenticated | ConnectionState::Connected => {
                    ("●", Style::default().fg(Color::Green))
                }
                ConnectionState::Connecting => ("◌", Style::default().fg(Color::Yellow)),
                _ => ("○", Style::default().fg(Color::DarkGray)),
            },
            Kind::Group => ("#", Style::default().fg(ACCENT)),
        };
        let mut spans = vec![
            Span::raw(if Some(c.id) == app.open { "›" } else { " " }),
            Span::styled(format!("{glyph} "), gstyle),
        ];
        let mut marks = Vec::new();
        if c.unread > 0 {
            marks.push(Span::styled(
                format!(" ({})", c.unread),
                Style::default()
                    .fg(Color::Yellow)
                    .add_modifier(Modifier::BOLD),
            ));
        }
        if c.kind == Kind::Group && c.missing > 0 {
            marks.push(Span::styled(
                format!(" ⚠{}", c.missing),
                Style::default().fg(Color::Red),
            ));
        }
        let tail = match c.kind {
            _ if c.blocked => "",
            Kind::Group if c.request => " invite",
            Kind::Contact if c.request => " request",
            Kind::Group => match c.server_state {
                ServerState::Synced => " synced",
                ServerState::Syncing => " syncing",
                ServerState::Connecting => " connecting",
                ServerState::Failed => " failed",
                _ => " offline",
            },
            Kind::Contact => "",
        };
        let tail_style = if c.request {
            Style::default().fg(Color::Yellow)
        } else {
            Style::default().fg(Color::DarkGray)
        };
        marks.push(Span::styled(tail, tail_style));
        // The name takes what the marks leave: a long one is cut (…), never the unread count
        // or the server's state after it.
        let used = Line::from(spans.clone()).width() + Line::from(marks.clone()).width();
        let room = usize::from(area.width.saturating_sub(2)).saturating_sub(used);
        spans.push(Span::raw(clip(&inert(&c.label()), room.max(1))));
        spans.extend(marks);
        let mut line = Line::from(spans);
        if i == app.selected && app.focus == Focus::List {
            line = line.style(Style::default().add_modifier(Modifier::REVERSED));
            selected_line = lines.len();
        } else if i == app.selected {
            selected_line = lines.len();
        }
        lines.push(line);
    }
    if visible.is_empty() && !app.profiles.is_empty() {
        lines.push(Line::styled(
            if app.filter.is_empty() {
                "no conversations yet"
            } else {
                "nothing matches the filter"
            },
            Style::default().fg(Color::DarkGray),
        ));
        if app.filter.is_empty() {
            lines.push(Line::styled(
                "(a adds a contact)",
                Style::default().fg(Color::DarkGray),
            ));
        }
    }
    let inner = area.height.saturating_sub(2) as usize;
    let top = (selected_line + 1).saturating_sub(inner);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" Conversations ")
        .border_style(focused(matches!(app.focus, Focus::List | Focus::Filter)));
    f.render_widget(
        Paragraph::new(lines)
            .block(block)
            .scroll((u16::try_from(top).unwrap_or(u16::MAX), 0)),
        area,
    );
}

fn server_state(s: ServerState) -> &'static str {
    match s {
        ServerState::Synced => "synced",
        ServerState::Syncing => "syncing",
        ServerState::Connecting => "connecting",
        ServerState::Failed => "failed",
        _ => "offline",
    }
}

fn peer_state(s: ConnectionState) -> &'static str {
    match s {
        ConnectionState::Authenticated | ConnectionState::Connected => "online",
        ConnectionState::Connecting => "connecting",
        ConnectionState::Failed => "unreachable",
        _ => "offline",
    }
}

/// `HH:MM` of an RFC 3339 timestamp (remote text for groups: checked, never trusted).
fn time_of(ts: Option<&str>) -> String {
    match ts {
        Some(t) if t.len() >= 16 && t.is_char_boundary(11) && t.is_char_boundary(16) => {
            inert(&t[11..16])
        }
        _ => "--:--".into(),
    }
}

/// A message's delivery mark.
fn delivery(app: &App, m: &MessageRow, group: bool) -> (&'static str, Style) {
    let accepted = app.profile().is_some_and(|p| {
        app.accepted
            .contains(&(p.onion.clone(), m.conversation_id, m.message_id))
    });
    match &m.state {
        MessageState::Sending if group && accepted => ("✓ sent", Style::default().fg(Color::Gray)),
        MessageState::Sending => ("◷ queued", Style::default().fg(Color::DarkGray)),
        MessageState::Sent => ("✓ sent", Style::default().fg(Color::Gray)),
        MessageState::Acknowledged => ("✓✓", Style::default().fg(Color::Green)),
        MessageState::Failed { .. } => ("✗ failed (R retries)", Style::default().fg(Color::Red)),
        _ => ("", Style::default()),
    }
}

/// Who wrote a message, as shown.
fn author(app: &App, m: &MessageRow) -> String {
    if m.outgoing {
        return "me".into();
    }
    let named = app.profile().and_then(|p| {
        p.convs
            .iter()
            .find(|c| c.kind == Kind::Contact && c.address == m.author)
            .and_then(|c| c.name.clone())
    });
    match named {
        Some(n) if !n.trim().is_empty() => n,
        _ => short(&m.author),
    }
}

/// The thumbnail of the image a message shares, if it arrived and the terminal shows
/// images: each row two rows of pixels (`▀`, the upper pixel in front, the lower behind),
/// indented like the message's text, if the area is wide enough.
fn thumbnail_lines(app: &App, m: &MessageRow, width: usize) -> Option<Vec<Line<'static>>> {
    let colours = app.inline_images?;
    let Content::FileShare { file_key, .. } = &m.content else {
        return None;
    };
    let t = app.thumbnails.get(file_key)?;
    if INDENT.len() + t.width as usize > width {
        return None;
    }
    let colour = |p: [u8; 3]| match colours {
        Colours::True => Color::Rgb(p[0], p[1], p[2]),
        Colours::Palette256 => Color::Indexed(palette256(p)),
    };
    let lines = (0..t.height.div_ceil(2))
        .map(|row| {
            let mut spans = vec![Span::raw(INDENT)];
            spans.extend((0..t.width).map(|x| {
                let upper = t.pixel(x, 2 * row);
                let style = Style::default().fg(colour(upper));
                // An odd last row: its lower half is the terminal's own background.
                let style = if 2 * row + 1 < t.height {
                    style.bg(colour(t.pixel(x, 2 * row + 1)))
                } else {
                    style
                };
                Span::styled("▀", style)
            }));
            Line::from(spans)
        })
        .collect();
    Some(lines)
}

/// The nearest colour of xterm's 6×6×6 cube (palette entries 16–231).
pub(crate) fn palette256(p: [u8; 3]) -> u8 {
    // The cube's levels are 0, 95, 135, 175, 215, 255.
    let level = |c: u8| -> u8 {
        match c {
            0..=47 => 0,
            48..=114 => 1,
            _ => ((c - 35) / 40).min(5),
        }
    };
    16 + 36 * level(p[0]) + 6 * level(p[1]) + level(p[2])
}

/// The text of a message's body, as shown (with an image's description once it arrived).
fn body_in(app: &App, m: &MessageRow) -> String {
    match &m.content {
        Content::FileShare {
            file_key,
            name,
            size,
        } => {
            // A name is one line (a line break in it is shown, not made).
            let name = &inert(name);
            if let Some(what) = app.images.get(file_key) {
                return format!("[image: {name}, {what}]");
            }
            let state = m.file.as_ref().map(|f| f.state.as_str()).unwrap_or("");
            let file = format!("file: {name} ({})", super::app::human_size(*size));
            match (m.outgoing, app.progress.get(file_key), state) {
                (true, _, s) if s.starts_with("stopped") => {
                    format!("[you share a {file}; no longer shared: d shares it again]")
                }
                (true, _, _) => body(m),
                // Live progress first: the state read with the messages is older.
                (false, Some((done, total)), _) => {
                    let pct = (done * 100).checked_div(*total).unwrap_or(100);
                    format!("[{file}: downloading, {pct}%]")
                }
                (false, None, "downloaded") => {
                    let path = m.file.as_ref().and_then(|f| f.path.as_deref());
                    format!("[{file}: downloaded to {}]", path.unwrap_or("?"))
                }
                (false, None, "downloading") => format!("[{file}: downloading]"),
                (false, None, s) if s.starts_with("failed") => {
                    format!("[{file}: {s}; press d to resume]")
                }
                _ => body(m),
            }
        }
        Content::GroupInvite { .. } => {
            // Where the invite stands: its group's conversation says.
            let conv = m.content.invited_group_id().and_then(|id| {
                app.profile()?
                    .convs
                    .iter()
                    .find(|c| c.kind == super::app::Kind::Group && c.address == id)
            });
            match (m.outgoing, conv) {
                (true, Some(c)) => format!("[you invite them to the group {}]", c.label()),
                (true, None) => "[you invite them to a group]".into(),
                (false, Some(c)) if c.request => {
                    format!("[an invite to the group {}: see Requests]", c.label())
                }
                (false, Some(c)) => format!("[an invite to the group {}: joined]", c.label()),
                (false, None) => "[an invite to a group: not joined]".into(),
            }
        }
        _ => body(m),
    }
}

/// The text of a message's body, as shown.
fn body(m: &MessageRow) -> String {
    match &m.content {
        Content::Text { text } => text.clone(),
        Content::QuotedReply { body, .. } => body.clone(),
        Content::ContactSuggestion { onion } => format!("[suggests a contact: {onion}]"),
        Content::GroupInvite { .. } => "[an invite to a group: see Requests]".into(),
        Content::FileShare { name, size, .. } if m.outgoing => {
            format!(
                "[you share a file: {} ({})]",
                inert(name),
                super::app::human_size(*size)
            )
        }
        Content::FileShare { name, size, .. } => format!(
            "[shares a file: {} ({}); choose it and press d to download]",
            inert(name),
            super::app::human_size(*size)
        ),
        Content::Malformed { .. } => format!("[not understood: {}]", m.body),
        // Overlays added later: their text if they have one.
        other => match other.display_text() {
            Some(t) => t.to_owned(),
            None => format!("[not understood: {}]", m.body),
        },
    }
}

/// Split one (inert) line into rows at most `width` cells wide, at a space where there is
/// one (a word longer than a row is cut).
pub(crate) fn wrap(s: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut rows = Vec::new();
    let mut row = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if w + cw > width && !row.is_empty() {
            if c == ' ' {
                rows.push(std::mem::take(&mut row));
                w = 0;
                continue;
            }
            match row.rfind(' ') {
                Some(i) if i > 0 => {
                    let tail = row.split_off(i + 1);
                    rows.push(row.trim_end().to_owned());
                    w = tail.chars().map(|c| c.width().unwrap_or(0)).sum();
                    row = tail;
                }
                _ => {
                    rows.push(std::mem::take(&mut row));
                    w = 0;
                }
            }
        }
        row.push(c);
        w += cw;
    }
    rows.push(row);
    rows
}

/// Continuation rows of a message start under its text.
const INDENT: &str = "      ";

/// [`wrap`], the rows after the first indented by [`INDENT`].
fn wrap_hanging(s: &str, width: usize) -> Vec<String> {
    let mut rows = wrap(s, width);
    if rows.len() > 1 && width > INDENT.len() + 8 {
        rows.truncate(1);
        // The first row is a prefix of `s` (less the space it broke at).
        let rest = s.get(rows[0].len()..).unwrap_or("").trim_start_matches(' ');
        for r in wrap(rest, width - INDENT.len()) {
            rows.push(format!("{INDENT}{r}"));
        }
    }
    rows
}

/// The date of a message (`YYYY-MM-DD`), if its timestamp has one (remote text for groups:
/// checked).
fn day_of(m: &MessageRow) -> Option<&str> {
    m.timestamp
        .as_deref()
        .and_then(|t| t.get(..10))
        .filter(|d| d.bytes().all(|b| b.is_ascii_digit() || b == b'-'))
}

/// What one message is drawn with, besides itself.
struct Drawing {
    width: usize,
    group: bool,
    me: String,
}

/// The lines of message `i`: a line with the date where it changes (from the message before
/// it that has one), the missing-messages marker, then the message itself (a quote, its
/// text, a thumbnail), which starts at the returned index.
fn message_block(app: &App, i: usize, d: &Drawing) -> (Vec<Line<'static>>, usize) {
    let m = &app.messages[i];
    let width = d.width;
    let mut out = Vec::new();
    let day = day_of(m);
    let before = app.messages[..i].iter().rev().find_map(day_of);
    if day.is_some() && day != before {
        out.push(Line::styled(
            format!("── {} ──", day.unwrap_or_default()),
            Style::default().fg(Color::DarkGray),
        ));
    }
    if app.new_from == Some(m.message_id) {
        out.push(Line::styled(
            format!("{:─^w$}", " new ", w = width.clamp(5, 40)),
            Style::default().fg(ACCENT),
        ));
    }
    if app
        .missing
        .contains(&(d.me.clone(), m.conversation_id, m.message_id))
    {
        out.push(Line::styled(
            "┄┄ missing messages: some never arrived ┄┄",
            Style::default().fg(Color::Red),
        ));
    }
    let chosen = app.cursor == Some(i);
    let own = out.len();
    if let Some(hash) = m.content.quoted_hash() {
        // The message it quotes: the nearest before it with that hash (two equal texts from
        // one author have one hash), else one after it.
        let quoted = app.messages[..i]
            .iter()
            .rev()
            .chain(&app.messages[i + 1..])
            .find(|q| q.content_hash == hash);
        let q = match quoted {
            Some(q) => format!("{}: {}", author(app, q), body(q)),
            None => "(a message not shown here)".into(),
        };
        let first = inert_lines(&q).into_iter().next().unwrap_or_default();
        // Two rows at most, each with the quote's bar; a longer quote is cut with `…`.
        let bar = "  ┃ ";
        let rows = wrap(&first, width.saturating_sub(bar.width()).max(8));
        let cut = rows.len() > 2;
        for (k, row) in rows.into_iter().take(2).enumerate() {
            let row = if cut && k == 1 {
                format!("{bar}{}…", row.trim_end())
            } else {
                format!("{bar}{row}")
            };
            out.push(Line::styled(row, Style::default().fg(Color::DarkGray)));
        }
    }
    let who = inert(&author(app, m));
    let (mark, mstyle) = delivery(app, m, d.group);
    let head = format!("{} {who}: ", time_of(m.timestamp.as_deref()));
    let who_style = if m.outgoing {
        Style::default().fg(ACCENT)
    } else {
        Style::default().fg(Color::Magenta)
    };
    let text_lines = inert_lines(&body_in(app, m));
    let mut rows: Vec<(String, bool)> = Vec::new();
    for (k, l) in text_lines.iter().enumerate() {
        let l = if k == 0 {
            format!("{head}{l}")
        } else {
            format!("{INDENT}{l}")
        };
        for (j, r) in wrap_hanging(&l, width).into_iter().enumerate() {
            rows.push((r, k == 0 && j == 0));
        }
    }
    let n = rows.len();
    for (k, (r, first)) in rows.into_iter().enumerate() {
        let mut spans = Vec::new();
        if first {
            // Colour the author's part of the first row.
            let split = head.chars().count().min(r.chars().count());
            let (a, b) = r.split_at(r.char_indices().nth(split).map_or(r.len(), |(i, _)| i));
            spans.push(Span::styled(a.to_owned(), who_style));
            spans.push(Span::raw(b.to_owned()));
        } else {
            spans.push(Span::raw(r));
        }
        if k + 1 == n && !mark.is_empty() {
            spans.push(Span::styled(format!(" {mark}"), mstyle));
        }
        let mut line = Line::from(spans);
        if chosen {
            line = line.style(Style::default().add_modifier(Modifier::REVERSED));
        }
        out.push(line);
    }
    if let Some(lines) = thumbnail_lines(app, m, width) {
        out.extend(lines);
    }
    (out, own)
}

/// The open conversation's last lines: at least `need` of them (all, if there are fewer),
/// and enough to reach back to the chosen message, whose lines' range is returned too. Only
/// those messages are drawn, so a long history costs what is shown, not what was read.
/// The open conversation's lines, oldest first, enough to fill `need` rows above the newest
/// message read when the user scrolled back ([`App::scroll_base`]): the range of the chosen
/// message's own lines, and how many lines come after that newest message (arrived since).
pub(super) fn message_lines(
    app: &App,
    width: usize,
    need: usize,
) -> (Vec<Line<'static>>, Option<(usize, usize)>, usize) {
    let d = Drawing {
        width,
        group: app.open_conv().is_some_and(|c| c.kind == Kind::Group),
        me: app.profile().map(|p| p.onion.clone()).unwrap_or_default(),
    };
    let mut blocks = Vec::new();
    let mut total = 0usize;
    let mut below = 0usize;
    for i in (0..app.messages.len()).rev() {
        let (lines, own) = message_block(app, i, &d);
        total += lines.len();
        if app
            .scroll_base
            .is_some_and(|b| app.messages[i].message_id > b)
        {
            below += lines.len();
        }
        blocks.push((i, lines, own));
        if total - below >= need && app.cursor.is_none_or(|c| c >= i) {
            break;
        }
    }
    let mut out = Vec::with_capacity(total);
    let mut chosen_lines = None;
    for (i, lines, own) in blocks.into_iter().rev() {
        let start = out.len() + own;
        out.extend(lines);
        if app.cursor == Some(i) {
            chosen_lines = Some((start, out.len()));
        }
    }
    (out, chosen_lines, below)
}

fn conversation(app: &App, f: &mut Frame<'_>, area: Rect) {
    let title = match app.open_conv() {
        Some(c) => {
            let state = match c.kind {
                Kind::Contact if c.blocked => "blocked".to_owned(),
                Kind::Contact if c.request => "request: A accepts, x declines".to_owned(),
                Kind::Contact => match &c.status {
                    Some(st) => format!("{} · “{}”", peer_state(c.peer), inert(st)),
                    None => peer_state(c.peer).to_owned(),
                },
                Kind::Group if c.request => "invite: A accepts, x declines".to_owned(),
                Kind::Group => format!("server {}", server_state(c.server_state)),
            };
            let label = c.label();
            if label == short(&c.address) {
                format!(" {} · {} ", inert(&label), state)
            } else {
                format!(" {} · {} · {} ", inert(&label), short(&c.address), state)
            }
        }
        None => " Cwtch ".to_owned(),
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .title(title)
        .border_style(focused(app.focus == Focus::Messages));
    let inner = block.inner(area);
    f.render_widget(block, area);
    if app.open.is_none() {
        let mut hint = vec![
            Line::raw(""),
            Line::raw("  Choose a conversation and press Enter."),
            Line::raw("  a adds a contact by address; ? lists every key."),
        ];
        if let Some(p) = app.profile() {
            hint.push(Line::raw(""));
            hint.push(Line::raw("  Your address (y copies it):"));
            hint.push(Line::raw(format!("  {}", inert(&p.onion))));
        }
        f.render_widget(Paragraph::new(hint).wrap(Wrap { trim: false }), inner);
        return;
    }
    let h = inner.height as usize;
    let (lines, chosen, below) =
        message_lines(app, inner.width as usize, app.scroll.saturating_add(h));
    let max_scroll = lines.len().saturating_sub(h);
    // Scrolled back, what arrived since goes below, not under the text being read.
    let mut scroll = app.scroll.saturating_add(below).min(max_scroll);
    // A chosen message is kept in view.
    if let Some((a, b)) = chosen {
        let end = lines.len() - scroll;
        if b > end {
            scroll = lines.len() - b;
        } else if a < end.saturating_sub(h) {
            scroll = lines.len().saturating_sub(a + h);
        }
        scroll = scroll.min(max_scroll);
    }
    let end = lines.len() - scroll;
    let start = end.saturating_sub(h);
    // Newer messages out of view below: say how many, and how to get to them.
    if scroll > 0 && app.scroll_base.is_some() {
        let base = app.scroll_base.unwrap_or(i64::MAX);
        let new = app.messages.iter().filter(|m| m.message_id > base).count();
        if new > 0 {
            let more = if new == 1 {
                " ↓ 1 new message · End ".to_owned()
            } else {
                format!(" ↓ {new} new messages · End ")
            };
            let marker = Block::default().title_bottom(
                Line::styled(more, Style::default().fg(Color::Yellow)).right_aligned(),
            );
            f.render_widget(marker, area);
        }
    }
    let window: Vec<Line<'static>> = lines[start..end].to_vec();
    let mut shown = window;
    if app.messages.is_empty() {
        shown = vec![Line::styled(
            "no messages yet",
            Style::default().fg(Color::DarkGray),
        )];
    }
    f.render_widget(Paragraph::new(shown), inner);
}

fn compose(app: &App, f: &mut Frame<'_>, area: Rect) {
    let title = match (&app.reply_to, app.open_conv()) {
        (Some((_, preview)), _) => {
            let p: String = inert_lines(preview)
                .into_iter()
                .next()
                .unwrap_or_default()
                .chars()
                .take(30)
                .collect();
            format!(" Reply to “{p}” (Esc: no reply) ")
        }
        (None, Some(c)) => format!(" Message {} (Enter sends, /help) ", inert(&c.label())),
        (None, None) => " Compose (/help) ".to_owned(),
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .title(title)
        .border_style(focused(app.focus == Focus::Compose));
    let inner = block.inner(area);
    let at = app.compose_cursor();
    let before = inert(&app.compose[..at]);
    let after = inert(&app.compose[at..]);
    // The row the cursor is on: the end of what is before it, then as much of the rest as fits.
    let w = inner.width.saturating_sub(1) as usize;
    let shown: String = {
        let rows = wrap(&before, w.max(1));
        rows.last().cloned().unwrap_or_default()
    };
    let used: usize = shown.chars().map(|c| c.width().unwrap_or(0)).sum();
    let rest = if after.is_empty() {
        String::new()
    } else {
        clip(&after, w.saturating_sub(used))
    };
    let cursor = if app.focus == Focus::Compose {
        "▏"
    } else {
        ""
    };
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::raw(shown),
            Span::styled(cursor, Style::default().fg(ACCENT)),
            Span::raw(rest),
        ]))
        .block(block),
        area,
    );
}

/// `▕████░░░░▏ 45%`
pub(crate) fn progress_bar(progress: u8, cells: usize) -> String {
    let p = usize::from(progress.min(100));
    let full = p * cells / 100;
    format!("▕{}{}▏ {p:>3}%", "█".repeat(full), "░".repeat(cells - full))
}

/// The status line's first part: the profile, its address, the network.
fn status_spans(app: &App) -> Vec<Span<'static>> {
    let mut spans = Vec::new();
    match app.profile() {
        Some(p) => {
            spans.push(Span::styled(
                format!(" {} ", inert(&p.name)),
                Style::default()
                    .fg(Color::Black)
                    .bg(ACCENT)
                    .add_modifier(Modifier::BOLD),
            ));
            spans.push(Span::raw(format!(" {} ", short(&p.onion))));
        }
        None => spans.push(Span::raw(" no profile ")),
    }
    match &app.acn {
        // The network is up, but this profile was taken offline (`/online off`).
        Some((100, _)) if app.profile().is_some_and(|p| p.offline) => spans.push(Span::styled(
            "○ offline (/online on) ",
            Style::default().fg(Color::DarkGray),
        )),
        Some((100, _)) => spans.push(Span::styled(
            "● network ready ",
            Style::default().fg(Color::Green),
        )),
        Some((pr, summary)) => {
            spans.push(Span::styled(
                format!("Tor {} ", progress_bar(*pr, 10)),
                Style::default().fg(Color::Yellow),
            ));
            let s: String = inert(summary).chars().take(24).collect();
            spans.push(Span::styled(
                format!("{s} "),
                Style::default().fg(Color::DarkGray),
            ));
        }
        None => spans.push(Span::styled(
            "starting the network… ",
            Style::default().fg(Color::Yellow),
        )),
    }
    if app.attached {
        spans.push(Span::styled(
            "[attached] ",
            Style::default().fg(Color::DarkGray),
        ));
    }
    spans
}

/// Most rows a notice too long for the status line takes below it.
const NOTICE_ROWS: usize = 3;

/// The notice's rows when it does not fit beside the status line's first part (none when it
/// does): a long error is read whole, not cut to its first words. At most [`NOTICE_ROWS`],
/// and never more than leave the conversation 3 rows and the compose box its 3 in a window
/// `height` high; what is cut ends in `…`.
fn notice_rows(app: &App, width: u16, height: u16) -> Vec<String> {
    let Some(n) = &app.notice else {
        return Vec::new();
    };
    let text = inert(&n.text);
    let prefix = Line::from(status_spans(app)).width();
    if prefix + UnicodeWidthStr::width(text.as_str()) <= usize::from(width) {
        return Vec::new();
    }
    let room = usize::from(height.saturating_sub(3 + 3 + 1)).min(NOTICE_ROWS);
    let mut rows = wrap(&text, usize::from(width.max(1)));
    if rows.len() > room {
        rows.truncate(room);
        if let Some(last) = rows.last_mut() {
            while !last.is_empty() && UnicodeWidthStr::width(last.as_str()) + 1 > usize::from(width)
            {
                last.pop();
            }
            last.push('…');
        }
    }
    rows
}

/// How many rows the status bar takes in a window `width`×`height`.
fn status_height(app: &App, width: u16, height: u16) -> u16 {
    1 + u16::try_from(notice_rows(app, width, height).len()).unwrap_or(0)
}

fn status_bar(app: &App, f: &mut Frame<'_>, area: Rect) {
    let mut spans = status_spans(app);
    let style = |error: bool| {
        if error {
            Style::default().fg(Color::Red)
        } else {
            Style::default().fg(Color::Green)
        }
    };
    let below = notice_rows(app, area.width, f.area().height);
    match &app.notice {
        Some(n) if below.is_empty() => spans.push(Span::styled(inert(&n.text), style(n.error))),
        Some(_) => {}
        None => spans.push(Span::styled("? help", Style::default().fg(Color::DarkGray))),
    }
    let error = app.notice.as_ref().is_some_and(|n| n.error);
    let mut lines = vec![Line::from(spans)];
    lines.extend(below.into_iter().map(|r| Line::styled(r, style(error))));
    f.render_widget(Paragraph::new(lines), area);
}

/// A rectangle `w`×`h` centred in `area` (clipped to it).
fn centred(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn popup(f: &mut Frame<'_>, r: Rect, title: &str, lines: Vec<Line<'static>>) {
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" {title} "))
                .border_style(Style::default().fg(ACCENT)),
        ),
        r,
    );
}

/// Width of the help's key column.
const KEY_COLUMN: usize = 15;

/// The help popup's place in a window of `area`, and its rows (wrapped to it).
fn help_layout(area: Rect) -> (Rect, Vec<Line<'static>>) {
    let w = area.width.min(72);
    let inner = usize::from(w.saturating_sub(2)).max(KEY_COLUMN + 8);
    let mut lines = Vec::new();
    for (k, what) in KEYS {
        for (i, row) in wrap(what, inner - KEY_COLUMN).into_iter().enumerate() {
            let key = if i == 0 { *k } else { "" };
            lines.push(Line::from(vec![
                Span::styled(
                    format!("{key:>width$} ", width = KEY_COLUMN - 1),
                    Style::default().fg(ACCENT),
                ),
                Span::raw(row),
            ]));
        }
    }
    lines.push(Line::styled(
        "On the compose line:",
        Style::default().add_modifier(Modifier::BOLD),
    ));
    for c in COMMANDS {
        for row in wrap(c, inner - 2) {
            lines.push(Line::styled(
                format!("  {row}"),
                Style::default().fg(ACCENT),
            ));
        }
    }
    let h = u16::try_from(lines.len() + 2).unwrap_or(u16::MAX);
    (centred(area, w, h), lines)
}

/// How far the help scrolls in a window of `width`×`height` (0: it fits).
pub(crate) fn help_max_top(width: u16, height: u16) -> usize {
    let area = Rect::new(0, 0, width, height);
    let (r, lines) = help_layout(area);
    // One row of the popup says how to scroll when it does not fit.
    let shown = usize::from(r.height.saturating_sub(3));
    if lines.len() + 2 <= usize::from(r.height) {
        0
    } else {
        lines.len().saturating_sub(shown)
    }
}

fn help(f: &mut Frame<'_>, area: Rect, top: usize) {
    let (r, mut lines) = help_layout(area);
    let max = help_max_top(area.width, area.height);
    if max > 0 {
        let top = top.min(max);
        let shown = usize::from(r.height.saturating_sub(3));
        lines = lines.into_iter().skip(top).take(shown).collect();
        let more = match (top > 0, top < max) {
            (true, true) => "↑ ↓ scroll · any other key closes",
            (false, _) => "↓ more · any other key closes",
            (true, false) => "↑ back · any other key closes",
        };
        lines.push(Line::styled(more, Style::default().fg(Color::DarkGray)));
    }
    popup(f, r, "Keys and commands", lines);
}

fn address(app: &App, f: &mut Frame<'_>, area: Rect) {
    let Some(p) = app.profile() else {
        return;
    };
    let on_off = if p.block_unknown { "on" } else { "off" };
    let lines = vec![
        Line::raw("Give this address to your contacts:"),
        Line::raw(""),
        Line::styled(
            inert(&p.onion),
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Line::raw("(copied to the clipboard if your terminal allows it)"),
        Line::raw(""),
        Line::raw(format!("name: {}   (n changes it)", inert(&p.name))),
        Line::raw(format!("status: {}   (t changes it)", inert(&p.status))),
        Line::raw(format!("block unknown peers: {on_off}   (B toggles it)")),
    ];
    popup(f, centred(area, 64, 10), "Your profile", lines);
}

fn invite_popup(f: &mut Frame<'_>, area: Rect, invite: &str) {
    // Wrapped to the popup, so that in a small window the whole invite still shows.
    let w = area.width.min(74);
    let inner = usize::from(w.saturating_sub(2)).max(8);
    let mut lines = Vec::new();
    for text in [
        "The group's invite (its secret: whoever has it can read and post).",
        "Copied if your terminal allows it; /invite CONTACT sends it over Cwtch.",
    ] {
        lines.extend(wrap(text, inner).into_iter().map(Line::raw));
    }
    lines.push(Line::raw(""));
    for row in wrap(&inert(invite), inner) {
        lines.push(Line::raw(row));
    }
    let h = u16::try_from(lines.len() + 2).unwrap_or(u16::MAX);
    popup(f, centred(area, w, h), "Group created", lines);
}

fn prompt(f: &mut Frame<'_>, area: Rect, ask: &Ask, input: &str) {
    let shown = if ask.secret() {
        Span::styled("(hidden as you type)", Style::default().fg(Color::DarkGray))
    } else {
        let w = 60usize;
        let rows = wrap(&inert(input), w);
        Span::raw(rows.last().cloned().unwrap_or_default())
    };
    let mut lines = Vec::new();
    if let Some(hint) = ask.hint() {
        for row in wrap(hint, usize::from(PROMPT_WIDTH - 2)) {
            lines.push(Line::styled(row, Style::default().fg(Color::Yellow)));
        }
    }
    lines.push(Line::from(vec![
        shown,
        Span::styled("▏", Style::default().fg(ACCENT)),
    ]));
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "Enter: done · Esc: cancel",
        Style::default().fg(Color::DarkGray),
    ));
    let height = u16::try_from(lines.len() + 2).unwrap_or(u16::MAX);
    popup(f, centred(area, PROMPT_WIDTH, height), ask.title(), lines);
}

/// A prompt's width, borders included: its title must fit in it.
pub(crate) const PROMPT_WIDTH: u16 = 66;

/// `YYYY-MM-DD HH:MM` of an RFC 3339 timestamp (remote text: checked, never trusted).
fn date_time_of(ts: Option<&str>) -> String {
    match ts {
        Some(t) if t.len() >= 16 && t.is_char_boundary(10) && t.is_char_boundary(11) => {
            format!("{} {}", inert(&t[..10]), time_of(Some(t)))
        }
        _ => "----------:--".into(),
    }
}

/// The first `width` cells of `s` (inert already), `…` where it is cut.
fn clip(s: &str, width: usize) -> String {
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if w + cw > width.saturating_sub(1) {
            let rest: usize = s.chars().map(|c| c.width().unwrap_or(0)).sum();
            if rest > width {
                out.push('…');
                return out;
            }
        }
        if w + cw > width {
            break;
        }
        out.push(c);
        w += cw;
    }
    out
}

fn search_results(
    app: &App,
    f: &mut Frame<'_>,
    area: Rect,
    pattern: &str,
    found: &[FoundRow],
    selected: usize,
) {
    let w = area.width.saturating_sub(4).min(100);
    // As tall as the results (and the footer), up to the screen less a line above and below.
    let most = usize::from(area.height.saturating_sub(2));
    let h = u16::try_from((found.len() + 4).min(most)).unwrap_or(u16::MAX);
    let inner_w = usize::from(w.saturating_sub(2));
    // Rows for results: the popup less its borders and the footer.
    let rows = usize::from(h.saturating_sub(4)).max(1);
    let first = selected.saturating_sub(rows - 1);
    let mut lines = Vec::new();
    for (i, r) in found.iter().enumerate().skip(first).take(rows) {
        let who = author(app, &r.message);
        let head = format!(
            "{} {} · {}: ",
            date_time_of(r.message.timestamp.as_deref()),
            clip(&inert(&r.conversation), 20),
            clip(&inert(&who), 16)
        );
        let text = inert(&body(&r.message));
        let row = clip(&format!("{head}{text}"), inner_w);
        let style = if i == selected {
            Style::default().fg(Color::Black).bg(ACCENT)
        } else {
            Style::default()
        };
        lines.push(Line::styled(row, style));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "↑ ↓ choose · Enter opens it there · Esc closes",
        Style::default().fg(Color::DarkGray),
    ));
    let title = format!(
        "“{}”: {} found{}",
        clip(&inert(pattern), 30),
        found.len(),
        if found.len() >= crate::tui::app::SEARCH_LIMIT as usize {
            " (the newest)"
        } else {
            ""
        }
    );
    popup(f, centred(area, w, h), &title, lines);
}

fn confirm(f: &mut Frame<'_>, area: Rect, c: &Confirm) {
    let q = match c {
        Confirm::DeleteConv {
            kind: Kind::Contact,
            label,
            ..
        } => format!(
            "Delete the contact {} and the whole conversation?",
            inert(label)
        ),
        Confirm::DeleteConv {
            kind: Kind::Group,
            label,
            ..
        } => format!("Leave the group {} and delete its messages?", inert(label)),
        Confirm::DeleteProfile { name, onion } => format!(
            "Delete the profile {} ({}), its contacts and all its messages?",
            inert(name),
            short(onion)
        ),
    };

    // As wide as fits, and as high as the question needs once wrapped: the key hint at the
    // bottom must always show.
    let width = area.width.clamp(20, 60);
    let mut lines: Vec<Line<'static>> = wrap(&q, usize::from(width - 2))
        .into_iter()
        .map(Line::raw)
        .collect();
    lines.extend([
        Line::raw("This cannot be undone."),
        Line::raw(""),
        Line::styled(
            "y: yes · any other key: no",
            Style::default().fg(Color::Yellow),
        ),
    ]);
    let height = u16::try_from(lines.len() + 2).unwrap_or(u16::MAX);
    popup(f, centred(area, width, height), "Delete?", lines);
}
