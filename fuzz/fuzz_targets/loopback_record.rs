//! The loopback network's service records (`<dir>/<onion>`: `127.0.0.1:PORT`), which any
//! local process able to write the directory could plant.
//!
//! Asserts: a record is accepted only in its one canonical form (optionally with one `\n`),
//! only for 127.0.0.1 and a non-zero port, never when longer than a record can be; and every
//! port's record, as we write it, reads back.
#![no_main]

use std::net::{Ipv4Addr, SocketAddrV4};

use connectivity::fuzzing::{format_record, parse_record, MAX_RECORD_LEN};
use connectivity::RecordProblem;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_record(data) {
        Ok(addr) => {
            assert_eq!(*addr.ip(), Ipv4Addr::LOCALHOST);
            assert_ne!(addr.port(), 0);
            let canonical = format_record(addr);
            let text = data.strip_suffix(b"\n").unwrap_or(data);
            assert_eq!(text, canonical.as_bytes());
        }
        Err(RecordProblem::TooLong) => assert!(data.len() > MAX_RECORD_LEN),
        Err(RecordProblem::NotUtf8) => assert!(std::str::from_utf8(data).is_err()),
        Err(RecordProblem::NotLoopback(a)) => assert_ne!(a.ip(), Ipv4Addr::LOCALHOST),
        Err(_) => {}
    }

    let port = data
        .first_chunk::<2>()
        .map_or(0, |b| u16::from_be_bytes(*b));
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let record = format_record(addr);
    let with_newline = format!("{record}\n");
    for r in [record.as_bytes(), with_newline.as_bytes()] {
        if port == 0 {
            assert_eq!(parse_record(r), Err(RecordProblem::ZeroPort));
        } else {
            assert_eq!(parse_record(r), Ok(addr));
        }
    }
});
