//! The redacting panic hook, in a child process (a panic hook is process-wide): its stderr
//! names the location of a panic but not its message, unless unsafe logging is on.

#![allow(clippy::unwrap_used)]

use std::process::Command;

const SECRET: &str = "vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd says hi";

fn child_stderr(unsafe_logging: bool) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(
            "PANIC_HOOK_CHILD",
            if unsafe_logging { "unsafe" } else { "safe" },
        )
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_panic_shows_where_but_not_what() {
    let err = child_stderr(false);
    assert!(err.contains("panicked at"), "{err}");
    assert!(err.contains("panic_hook.rs"), "{err}");
    assert!(!err.contains("vww6"), "{err}");
    assert!(!err.contains("says hi"), "{err}");
    let err = child_stderr(true);
    assert!(err.contains(SECRET), "{err}");
}

/// Runs only as the child of the test above.
#[test]
fn child() {
    let Ok(mode) = std::env::var("PANIC_HOOK_CHILD") else {
        return;
    };
    torv3::safelog::set_unsafe_logging(mode == "unsafe");
    torv3::safelog::install_redacting_panic_hook();
    let _ = std::thread::spawn(|| panic!("{SECRET}")).join();
}
