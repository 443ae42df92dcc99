//! Real clients, unmodified, on our `libCwtch.so`: `scripts/test-libcwtch-bots` builds the
//! `echobot` examples of crates.io `libcwtch` 0.8.0 and `cwtch-imp` 0.3.1 against it, runs
//! them over the loopback network and has a `cwtch run` profile talk to them; each must echo.
//!
//! Ignored by default because it needs what the rest of the suite does not: crates.io (the
//! bots' sources and dependencies), libclang (their build script runs bindgen; Debian
//! `libclang-dev`, installed by `scripts/setup`) and several minutes of compiling. Run it with
//! `cargo test -p cwtch-ffi --test bots -- --ignored`, or the script directly.

use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "needs crates.io and libclang, and minutes of building: run scripts/test-libcwtch-bots"]
fn libcwtch_and_cwtch_imp_echobots_answer_over_loopback() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/test-libcwtch-bots");
    let status = Command::new(script)
        .env("PROFILE", "dev")
        .status()
        .expect("run scripts/test-libcwtch-bots");
    assert!(
        status.success(),
        "scripts/test-libcwtch-bots failed: {status}"
    );
}
