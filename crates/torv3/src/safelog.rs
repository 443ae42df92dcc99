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

/// Replace the process's panic hook with one that reports where a panic happened, and its
/// message only when unsafe logging is on: a panic's message may quote what was being
/// handled (an address, a message). The backtrace follows `RUST_BACKTRACE` as usual. Install
/// it once, early in `main`; a hook installed later (a terminal UI restoring the screen) can
/// chain to it.
pub fn install_redacting_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let report = panic_report(
            thread.name().unwrap_or("<unnamed>"),
            info.location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column())),
            panic_payload(info.payload()),
            unsafe_logging(),
        );
        let backtrace = std::backtrace::Backtrace::capture();
        #[allow(clippy::print_stderr)]
        {
            eprintln!("{report}");
            if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
                eprintln!("stack backtrace:\n{backtrace}");
            }
        }
    }));
}

/// A panic's message, if it has one.
fn panic_payload(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// The line [`install_redacting_panic_hook`] prints.
fn panic_report(
    thread: &str,
    location: Option<String>,
    message: Option<&str>,
    unsafe_logging: bool,
) -> String {
    let location = location.unwrap_or_else(|| "an unknown location".into());
    let message = match (unsafe_logging, message) {
        (true, Some(m)) => m,
        (true, None) => "(no message)",
        (false, _) => "[message scrubbed: it may quote addresses or content; run with --unsafe-logging to see it]",
    };
    format!("thread '{thread}' panicked at {location}:\n{message}")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_report_hides_the_message_unless_asked() {
        let safe = panic_report("main", Some("src/x.rs:1:2".into()), Some("secret"), false);
        assert!(
            safe.starts_with("thread 'main' panicked at src/x.rs:1:2:\n"),
            "{safe}"
        );
        assert!(!safe.contains("secret"), "{safe}");
        assert!(safe.contains("--unsafe-logging"), "{safe}");
        let shown = panic_report("main", None, Some("secret"), true);
        assert_eq!(
            shown,
            "thread 'main' panicked at an unknown location:\nsecret"
        );
        assert!(panic_report("t", None, None, true).ends_with("(no message)"));
        let boxed: Box<dyn std::any::Any + Send> = Box::new(String::from("owned"));
        assert_eq!(panic_payload(&*boxed), Some("owned"));
        let boxed: Box<dyn std::any::Any + Send> = Box::new("static");
        assert_eq!(panic_payload(&*boxed), Some("static"));
        let boxed: Box<dyn std::any::Any + Send> = Box::new(7u8);
        assert_eq!(panic_payload(&*boxed), None);
    }
}
