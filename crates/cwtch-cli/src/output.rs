//! What the subcommands print: text for people and simple scripts, JSON with `--json`.

use std::io::Write;

use crate::tui::sanitize::classify;
use serde::Serialize;

use crate::protocol::{
    ContactRow, Delivery, FoundRow, GroupRow, GroupSendRow, MessageRow, ProfileRow, SendRow,
    ServerRow, SettingsRow,
};

/// Print one line on stdout (a closed stdout is ignored, never a panic).
pub(crate) fn line(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{s}");
    let _ = out.flush();
}

/// A note for people, on stderr.
pub(crate) fn note(s: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{s}");
}

/// One JSON document on one line.
pub(crate) fn json<T: Serialize>(v: &T) {
    match serde_json::to_string(v) {
        Ok(s) => line(&s),
        Err(e) => note(&format!("error: cannot encode JSON: {e}")),
    }
}

/// `name<TAB>onion`.
pub(crate) fn profile_line(p: &ProfileRow) -> String {
    format!("{}\t{}", escape(&p.name), p.onion)
}

/// `key<TAB>value` lines: name, onion, status, block-unknown (on|off), image-previews
/// (on|off), autostart (on|off), online (on|off, only where `cwtch run` runs the profile),
/// image (our profile picture's file key, or `none`).
pub(crate) fn settings_text(s: &SettingsRow) -> String {
    let on_off = |b: bool| if b { "on" } else { "off" };
    let online = s
        .online
        .map(|o| format!("online\t{}\n", on_off(o)))
        .unwrap_or_default();
    format!(
        "name\t{}\nonion\t{}\nstatus\t{}\nblock-unknown\t{}\nimage-previews\t{}\nautostart\t{}\n{online}image\t{}",
        escape(&s.name),
        s.onion,
        escape(&s.status),
        on_off(s.block_unknown),
        on_off(s.image_previews),
        on_off(s.autostart),
        s.image.as_deref().unwrap_or("none"),
    )
}

/// `conversation<TAB>onion<TAB>status<TAB>state<TAB>unread<TAB>name`.
pub(crate) fn contact_line(c: &ContactRow) -> String {
    format!(
        "{}\t{}\t{}\t{:?}\t{}\t{}",
        c.conversation_id,
        c.onion,
        c.status(),
        c.state,
        c.unread,
        escape(c.name.as_deref().unwrap_or(""))
    )
}

/// `files: allow (default)<TAB>images: refuse`: a contact's permissions, and which are the
/// default; for a blocked contact or a request, a third field says what is not in force.
pub(crate) fn contact_permissions_line(c: &ContactRow) -> String {
    let line = permissions_line(&c.permissions);
    match c.status() {
        "accepted" => line,
        "blocked" => format!("{line}\tnot in force: the contact is blocked"),
        // A request's files can be downloaded by hand; nothing of it is previewed.
        _ => format!("{line}\timages are not previewed until the contact is accepted"),
    }
}

/// `files: allow (default)<TAB>images: refuse`: permissions, and which are the default.
pub(crate) fn permissions_line(p: &cwtch::Permissions) -> String {
    let one = |set: Option<bool>, effective: bool| {
        let word = if effective { "allow" } else { "refuse" };
        match set {
            None => format!("{word} (default)"),
            Some(_) => word.to_owned(),
        }
    };
    // Images unset follow the default, unless files are refused, which refuses them too:
    // that is not the default.
    let images = match p.render_images {
        None if !p.shares_files() => "refuse (files are refused)".to_owned(),
        set => one(set, p.renders_images()),
    };
    format!(
        "files: {}\timages: {images}",
        one(p.share_files, p.shares_files()),
    )
}

/// `id<TAB>in|out<TAB>state<TAB>timestamp<TAB>author<TAB>text` (the author `me`, or the
/// contact's or group member's onion).
pub(crate) fn message_line(m: &MessageRow) -> String {
    let state = serde_json::to_value(&m.state)
        .ok()
        .and_then(|v| v.get("state").and_then(|s| s.as_str()).map(str::to_owned))
        .unwrap_or_default();
    let text = match (&m.text, m.overlay) {
        (Some(t), _) if matches!(m.content, cwtch::Content::QuotedReply { .. }) => {
            match m.reply_to {
                Some(id) => format!("[reply to {id}] {}", escape(t)),
                None => format!("[reply to a message not here] {}", escape(t)),
            }
        }
        (Some(t), _) => escape(t),
        (None, Some(o)) => format!("[overlay {o}] {}", escape(&m.body)),
        (None, None) => format!("[malformed] {}", escape(&m.body)),
    };
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}",
        m.message_id,
        if m.outgoing { "out" } else { "in" },
        state,
        m.timestamp.as_deref().unwrap_or("-"),
        if m.outgoing {
            "me".to_owned()
        } else {
            escape(&m.author)
        },
        text
    )
}

/// A message `search` found: conversation id, conversation, position, then the message as
/// [`message_line`] shows it.
pub(crate) fn found_line(f: &FoundRow) -> String {
    format!(
        "{}\t{}\t{}\t{}",
        f.message.conversation_id,
        escape(&f.conversation),
        f.position,
        message_line(&f.message)
    )
}

/// The outcome of `send`, first word `acknowledged` or `queued`.
pub(crate) fn send_line(s: &SendRow) -> String {
    match s.delivery {
        Delivery::Acknowledged => format!(
            "acknowledged: message {} to {} (conversation {}) was delivered and acknowledged",
            s.message_id, s.contact, s.conversation_id
        ),
        // Not said of a contact's message; shown as what it would mean.
        Delivery::Sent => format!(
            "sent: message {} to {} (conversation {}) was sent",
            s.message_id, s.contact, s.conversation_id
        ),
        Delivery::Queued if s.offline => format!(
            "queued: message {} to {} (conversation {}) is stored; the profile is offline, so it \
             is sent once it is back online (`cwtch profile set --online on`)",
            s.message_id, s.contact, s.conversation_id
        ),
        Delivery::Queued => format!(
            "queued: message {} to {} (conversation {}) is stored but not acknowledged after {} s; \
             it is sent again whenever the contact is connected (by `cwtch run`)",
            s.message_id, s.contact, s.conversation_id, s.waited_secs
        ),
    }
}

/// `group invite --json`: the invite message, and the name of the group it invites to.
#[derive(serde::Serialize)]
pub(crate) struct InviteJson<'a> {
    #[serde(flatten)]
    pub(crate) sent: &'a SendRow,
    pub(crate) group: &'a str,
}

/// The outcome of `group invite`, first word `acknowledged` or `queued`.
pub(crate) fn invite_line(s: &SendRow, group: &str) -> String {
    match s.delivery {
        Delivery::Queued => format!(
            "queued: the invite to {} is stored as message {} to {} (conversation {}) but not \
             acknowledged after {} s; it is sent again whenever the contact is connected (by \
             `cwtch run`)",
            escape(group),
            s.message_id,
            s.contact,
            s.conversation_id,
            s.waited_secs
        ),
        Delivery::Acknowledged | Delivery::Sent => format!(
            "acknowledged: the invite to {} reached {} (message {} in conversation {})",
            escape(group),
            s.contact,
            s.message_id,
            s.conversation_id
        ),
    }
}

/// The outcome of `send` to a group, first word `sent` or `queued`.
pub(crate) fn group_send_line(s: &GroupSendRow) -> String {
    match s.delivery {
        Delivery::Queued if s.offline => format!(
            "queued: message {} to group {} (conversation {}) is stored; the profile is offline, \
             so it is posted once it is back online (`cwtch profile set --online on`)",
            s.message_id,
            escape(&s.group),
            s.conversation_id
        ),
        Delivery::Queued => format!(
            "queued: message {} to group {} (conversation {}) is stored but the server has not \
             accepted it after {} s; it is posted again whenever the server is reachable (by \
             `cwtch run`)",
            s.message_id,
            escape(&s.group),
            s.conversation_id,
            s.waited_secs
        ),
        Delivery::Sent | Delivery::Acknowledged => format!(
            "sent: message {} to group {} (conversation {}) was accepted by the server",
            s.message_id,
            escape(&s.group),
            s.conversation_id
        ),
    }
}

/// `conversation<TAB>onion<TAB>state<TAB>tokens<TAB>last sync<TAB>groups`.
pub(crate) fn server_line(s: &ServerRow) -> String {
    format!(
        "{}\t{}\t{:?}\t{}\t{}\t{}",
        s.conversation_id,
        s.onion,
        s.state,
        s.tokens,
        s.last_sync.as_deref().unwrap_or("-"),
        s.groups
    )
}

/// `conversation<TAB>group id<TAB>accepted|invite<TAB>server<TAB>server state<TAB>members
/// seen<TAB>unread<TAB>missing<TAB>name`.
pub(crate) fn group_line(g: &GroupRow) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{:?}\t{}\t{}\t{}\t{}",
        g.conversation_id,
        g.group_id,
        g.status(),
        g.server,
        g.server_state,
        g.members.len(),
        g.unread,
        g.missing,
        escape(&g.name)
    )
}

/// Tabs, line breaks and backslashes escaped, so that one record stays one line; control
/// characters, bidirectional overrides and the invisible format characters that can disguise
/// text (where they stand: the TUI's `classify`) shown as `\u{..}`, so that remote text printed to a
/// terminal can neither drive it nor reorder what it shows (`abc\u{202e}txt.exe`).
pub(crate) fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for (c, replace) in classify(s) {
        match c {
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            // Dangerous where it stands (a joiner inside an emoji is text).
            c if replace => o.push_str(&c.escape_unicode().to_string()),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    #[test]
    fn one_record_one_line() {
        assert_eq!(escape("a\tb\nc\\d\u{1b}"), "a\\tb\\nc\\\\d\\u{1b}");
    }

    #[test]
    fn permissions_say_which_are_defaults() {
        let p = |share_files, render_images| cwtch::Permissions {
            share_files,
            render_images,
        };
        assert_eq!(
            permissions_line(&p(None, None)),
            "files: allow (default)\timages: allow (default)"
        );
        assert_eq!(
            permissions_line(&p(Some(false), None)),
            "files: refuse\timages: refuse (files are refused)"
        );
        assert_eq!(
            permissions_line(&p(Some(false), Some(false))),
            "files: refuse\timages: refuse"
        );
        assert_eq!(
            permissions_line(&p(None, Some(false))),
            "files: allow (default)\timages: refuse"
        );
    }

    #[test]
    fn permissions_of_a_request_or_a_blocked_contact_are_not_in_force() {
        let row = |accepted, blocked| ContactRow {
            conversation_id: 1,
            onion: "x".into(),
            name: None,
            accepted,
            blocked,
            state: cwtch::ConnectionState::Disconnected,
            message_count: 0,
            unread: 0,
            unacknowledged: 0,
            attributes: Default::default(),
            permissions: Default::default(),
        };
        let defaults = "files: allow (default)\timages: allow (default)";
        assert_eq!(contact_permissions_line(&row(true, false)), defaults);
        assert_eq!(
            contact_permissions_line(&row(false, false)),
            format!("{defaults}\timages are not previewed until the contact is accepted")
        );
        assert_eq!(
            contact_permissions_line(&row(true, true)),
            format!("{defaults}\tnot in force: the contact is blocked")
        );
    }

    #[test]
    fn text_cannot_reorder_or_hide_what_follows() {
        assert_eq!(escape("invoice\u{202E}fdp.exe"), "invoice\\u{202e}fdp.exe");
        assert_eq!(
            escape("a\u{2066}b\u{200B}c\u{FEFF}\u{2028}d\u{9b}"),
            "a\\u{2066}b\\u{200b}c\\u{feff}\\u{2028}d\\u{9b}"
        );
        // Text in any script stays as it is, emoji sequences with their joiners too.
        assert_eq!(escape("héllo שלום 你好"), "héllo שלום 你好");
        assert_eq!(escape("👩\u{200D}💻"), "👩\u{200D}💻");
        assert_eq!(escape("b\u{200D}ob"), "b\\u{200d}ob");
    }

    proptest! {
        #[test]
        fn escaped_text_is_one_inert_line(s in any::<String>()) {
            let e = escape(&s);
            prop_assert_eq!(crate::tui::sanitize::dangerous_in(&e), None, "{:?}", e);
            prop_assert!(!e.contains('\t'));
        }
    }
}
