//! The `cwtch` control socket (`<data dir>/cwtch.sock`): request lines the daemon reads from
//! any process of the same user, and answer lines the command reads back.
//!
//! Asserts: a bad request is a usage error (exit 2), never a panic; a request that parses
//! re-encodes to a line that parses to the same operation and re-encodes identically; an
//! answer parses to a reply or to an error with one of the documented exit codes. And a
//! message timestamp (remote text, ordered by `cwtch search`) parses or not without a panic,
//! to a time within RFC 3339's years (0000–9999, any offset up to ±99:99).
#![no_main]

use cwtch_cli::fuzzing::{message_time, parse_answer, parse_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_request(data) {
        Ok(None) => assert!(std::str::from_utf8(data).is_ok_and(|s| s.trim().is_empty())),
        Ok(Some((op, line))) => {
            let again = parse_request(line.as_bytes()).expect("our own line parses");
            let (op2, line2) = again.expect("not blank");
            assert_eq!(op, op2);
            assert_eq!(line, line2);
            assert!(!line.contains('\n'));
        }
        Err(code) => assert_eq!(code, 2, "a bad request is a usage error"),
    }
    if let Err(code) = parse_answer(data) {
        assert!((1..=5).contains(&code), "exit code {code}");
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some((secs, nanos)) = message_time(s) {
            assert!(nanos < 1_000_000_000, "{s:?}");
            // 0000-01-01 less a day of offset .. 9999-12-31 plus one.
            assert!(
                (-62_167_219_200 - 400_000..=253_402_300_800 + 400_000).contains(&secs),
                "{s:?}"
            );
        }
    }
});
