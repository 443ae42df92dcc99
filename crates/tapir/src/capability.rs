//! Capabilities: local bookkeeping of what a connection has proved (spec §2.5).
//!
//! Never sent on the wire. Applications grant them; chains and services check them.

use std::collections::BTreeSet;
use std::fmt;

/// A named capability.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Capability(pub &'static str);

impl fmt::Debug for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Granted by the auth app once the peer proved its long-term key (name confirmed by the
/// handbook's Tapir page).
pub const AUTHENTICATION_CAPABILITY: Capability = Capability("AuthenticationCapability");
/// Granted by the proof-of-work app (string UNCONFIRMED; local only, so it cannot matter on
/// the wire).
pub const SUCCESSFUL_POW_CAPABILITY: Capability = Capability("SuccessfulProofOfWorkCapability");
/// Granted to a token client that obtained verified tokens.
pub const HAS_TOKENS_CAPABILITY: Capability = Capability("HasTokensCapability");

/// The set of capabilities a connection holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities(BTreeSet<Capability>);

impl Capabilities {
    /// Grant a capability.
    pub fn grant(&mut self, c: Capability) -> bool {
        self.0.insert(c)
    }

    /// Whether the capability is held.
    pub fn has(&self, c: Capability) -> bool {
        self.0.contains(&c)
    }

    /// All held capabilities.
    pub fn iter(&self) -> impl Iterator<Item = Capability> + '_ {
        self.0.iter().copied()
    }
}
