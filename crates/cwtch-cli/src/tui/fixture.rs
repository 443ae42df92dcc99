//! The rows the TUI's tests and its bench (`benches/tui.rs`) build a state from: one place,
//! so that both describe the same world.

use cwtch::ConnectionState;

use crate::protocol::{ContactRow, ProfileRow, Reply};

/// The id of the profile [`profile`] describes.
pub(crate) const PROFILE_ID: &str = "c39e0660a885b6000173ffea9d214b5c";

/// A running profile named "alice" with this onion.
pub(crate) fn profile(onion: &str) -> ProfileRow {
    ProfileRow {
        profile_id: PROFILE_ID.into(),
        onion: onion.into(),
        name: "alice".into(),
        running: true,
    }
}

/// The answer to the TUI's first request (`ping`): these profiles run.
pub(crate) fn pong(profiles: Vec<ProfileRow>) -> Reply {
    Reply::Pong {
        version: 1,
        pid: 1,
        acn: None,
        profiles,
    }
}

/// A contact, not blocked, without messages or attributes.
pub(crate) fn contact(
    id: i64,
    onion: &str,
    name: Option<&str>,
    accepted: bool,
    state: ConnectionState,
) -> ContactRow {
    ContactRow {
        conversation_id: id,
        onion: onion.into(),
        name: name.map(Into::into),
        accepted,
        blocked: false,
        state,
        message_count: 0,
        unread: 0,
        unacknowledged: 0,
        attributes: Default::default(),
        permissions: Default::default(),
    }
}
