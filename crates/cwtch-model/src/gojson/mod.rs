//! Go `encoding/json`, byte for byte.
//!
//! Signatures, MACs and transcripts in Cwtch are computed over Go's `json.Marshal` output, so a
//! Rust peer must produce exactly the same bytes (protocol.md §13.1): fields in struct order,
//! no whitespace, `[]byte` as padded standard base64 (`null` when nil), maps with keys sorted
//! bytewise, and Go's string escaping (HTML-safe `<` `>` `&`, U+2028/U+2029, invalid UTF-8 as
//! `\ufffd` one byte at a time). `serde_json` does none of the last three.
//!
//! The encoder is a handful of functions and an [`Object`] builder used by hand-written
//! [`GoJson`] implementations. The decoder ([`Decoder`], [`GoDecode`]) reproduces
//! `json.Unmarshal`'s semantics (case-insensitive field names, unknown fields ignored, `null`
//! rules, U+FFFD coercion, Go's nesting limit) and never panics on any input.

mod decode;
mod encode;
mod utf8;

pub(crate) use decode::match_field;
pub use decode::{decode, go_base64_decode, validate, Decoder, GoDecode, MAX_NESTING_DEPTH};
pub use encode::{
    append_base64, object, write_bool, write_bytes, write_i64, write_string, write_string_map,
    write_u64, GoJson, Object, SHORT_ESCAPES_FOR_BACKSPACE_AND_FORMFEED,
};
pub use utf8::go_lossy_utf8;

/// Standard base64 with padding, as Go's `base64.StdEncoding.EncodeToString`.
pub fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
