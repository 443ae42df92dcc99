//! The parsers of untrusted input, for the cargo-fuzz targets in `fuzz/` only (GUIDE habit 7:
//! a fuzz target for every parser and every state machine).
//!
//! They are private to this crate: what Tor's control port sends (replies, events, the
//! control-port file), what its SOCKS port answers, and the loopback network's service
//! records. This module re-exports them so that the fuzz targets, which live in their own
//! workspace, can call them. It is hidden from the documentation and is not part of the API:
//! no stability promise, do not use it from other crates.

pub use crate::loopback::{format_record, parse_record, MAX_RECORD_LEN};
pub use crate::tor::events::{bootstrap_phase, hs_desc, service_id, socks_listener};
pub use crate::tor::process::parse_control_port_file;
pub use crate::tor::reply::{
    pair, quote, tokenize, words, Reply, ReplyLine, ReplyParser, Token, EVENT_CODE, MAX_LINE,
    MAX_REPLY_BYTES, MAX_REPLY_LINES,
};
pub use crate::tor::socks::{
    connect as socks_connect, credentials as socks_credentials, failure_error, reply_error,
    retry_helps, SocksFailure,
};
