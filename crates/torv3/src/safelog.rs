//! Safe logging: addresses, keys and message contents stay out of logs unless the user asks.
//!
//! Logs outlive sessions and get pasted into bug reports. By default an onion address is
//! shown as its first four characters (enough to tell two contacts apart in a log, not enough
//! to find them), and anything wrapped in [`Sensitive`] as `[scrubbed]`. A user debugging
//! their own machine can call [`set_unsafe_logging`] (the binaries expose `--unsafe-logging`).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

static UNSAFE_LOGGING: AtomicBool = AtomicBool::new(false);

/// Turn unsafe logging on or off for the whole process.
pub fn set_unsafe_logging(on: bool) {
    UNSAFE_LOGGING.store(on, Ordering::Relaxed);
}

/// Whether unsafe logging is on.
pub fn unsafe_logging() -> bool {
    UNSAFE_LOGGING.load(Ordering::Relaxed)
}

/// How many leading characters of an onion a redacted form keeps.
const ONION_HINT: usize = 4;

/// A displayable, redacted view of an onion address.
#[derive(Clone, Copy)]
pub struct Redacted<'a> {
    onion: &'a str,
}

impl<'a> Redacted<'a> {
    pub(crate) fn onion(onion: &'a str) -> Self {
        Redacted { onion }
    }
}

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if unsafe_logging() {
            f.write_str(self.onion)
        } else {
            let hint = self.onion.get(..ONION_HINT).unwrap_or("");
            write!(f, "{hint}…")
        }
    }
}

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Wraps a value so that `Display` and `Debug` show `[scrubbed]` unless unsafe logging is on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sensitive<T>(pub T);

impl<T: fmt::Display> fmt::Display for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if unsafe_logging() {
            self.0.fmt(f)
        } else {
            f.write_str("[scrubbed]")
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if unsafe_logging() {
            self.0.fmt(f)
        } else {
            f.write_str("[scrubbed]")
        }
    }
}
