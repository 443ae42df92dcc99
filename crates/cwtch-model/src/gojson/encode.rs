//! The encoder: Go `json.Marshal` output, byte for byte.

use std::collections::BTreeMap;

use super::utf8::decode_rune;

/// Whether `\b` (U+0008) and `\f` (U+000C) are written as the short escapes `\b` / `\f`.
///
/// UNCONFIRMED which Go the peers are built with (protocol.md §13.1): Go up to 1.21 writes them as
/// `\u0008` / `\u000c` (the golden vectors in `testvectors/go-golden.json` were made with Go
/// 1.19 and show this); Go 1.22 changed `encoding/json` to write `\b` / `\f`. Cwtch v0.27 was
/// built with Go ≤ 1.21, so `false`. Signatures over group messages whose text contains these
/// characters depend on this choice.
pub const SHORT_ESCAPES_FOR_BACKSPACE_AND_FORMFEED: bool = false;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A Rust value with a Go `encoding/json` form.
///
/// Implementations write exactly what Go's `json.Marshal` writes for the corresponding Go
/// struct: fields in struct order, no whitespace.
pub trait GoJson {
    /// Append the Go JSON encoding of `self` to `out`.
    fn write_go_json(&self, out: &mut Vec<u8>);

    /// The Go JSON encoding of `self` (Go's `json.Marshal`).
    fn to_go_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_go_json(&mut out);
        out
    }
}

/// Write a Go `string` as a JSON string, escaped exactly like Go's `json.Marshal` (which has
/// HTML escaping on).
///
/// Takes bytes because a Go string is arbitrary bytes: every byte that Go's `utf8.DecodeRune`
/// rejects becomes `\ufffd` (one per byte), `<` `>` `&` become `\u003c` `\u003e` `\u0026`,
/// U+2028/U+2029 become `\u2028`/`\u2029`, `"` `\` newline, carriage return and tab get their
/// short escapes, other control characters become `\u00XX` (lower-case hex; see
/// [`SHORT_ESCAPES_FOR_BACKSPACE_AND_FORMFEED`]), and everything else (DEL included) is copied.
pub fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        if b < 0x80 {
            if is_html_safe(b) {
                i += 1;
                continue;
            }
            out.extend_from_slice(&s[start..i]);
            out.push(b'\\');
            match b {
                b'\\' | b'"' => out.push(b),
                b'\n' => out.push(b'n'),
                b'\r' => out.push(b'r'),
                b'\t' => out.push(b't'),
                0x08 if SHORT_ESCAPES_FOR_BACKSPACE_AND_FORMFEED => out.push(b'b'),
                0x0c if SHORT_ESCAPES_FOR_BACKSPACE_AND_FORMFEED => out.push(b'f'),
                _ => {
                    out.extend_from_slice(b"u00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xf)]);
                }
            }
            i += 1;
            start = i;
            continue;
        }
        match decode_rune(&s[i..]) {
            None => {
                out.extend_from_slice(&s[start..i]);
                out.extend_from_slice(b"\\ufffd");
                i += 1;
                start = i;
            }
            Some((c @ ('\u{2028}' | '\u{2029}'), n)) => {
                out.extend_from_slice(&s[start..i]);
                out.extend_from_slice(b"\\u202");
                out.push(HEX[(c as usize) & 0xf]);
                i += n;
                start = i;
            }
            Some((_, n)) => i += n,
        }
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
}

/// Go's `htmlSafeSet`: printable ASCII other than `"`, `\`, `<`, `>` and `&` (DEL included).
fn is_html_safe(b: u8) -> bool {
    (0x20..0x80).contains(&b) && !matches!(b, b'"' | b'\\' | b'<' | b'>' | b'&')
}

/// Write a Go `[]byte`: `null` for a nil slice, otherwise standard base64 with `=` padding
/// (`""` for an empty, non-nil slice).
pub fn write_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => out.extend_from_slice(b"null"),
        Some(b) => {
            out.push(b'"');
            append_base64(out, b);
            out.push(b'"');
        }
    }
}

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The two base64 characters of every 12-bit value: one lookup per two characters.
static BASE64_PAIRS: [[u8; 2]; 4096] = {
    let mut t = [[0u8; 2]; 4096];
    let mut i = 0;
    while i < 4096 {
        t[i] = [BASE64_ALPHABET[i >> 6], BASE64_ALPHABET[i & 63]];
        i += 1;
    }
    t
};

/// Append standard base64 with `=` padding (Go's `base64.StdEncoding`) of `bytes` to `out`.
///
/// Table-driven: group signatures cover the base64 of a whole message, so this is on the path
/// of every group message a client opens.
pub fn append_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    out.resize(start + bytes.len().div_ceil(3) * 4, b'=');
    let dst = &mut out[start..];
    let whole = bytes.chunks_exact(3);
    let rest = whole.remainder();
    let mut quads = dst.chunks_exact_mut(4);
    for (src, quad) in whole.zip(&mut quads) {
        let n = usize::from(src[0]) << 16 | usize::from(src[1]) << 8 | usize::from(src[2]);
        let [a, b] = BASE64_PAIRS[n >> 12];
        let [c, d] = BASE64_PAIRS[n & 0xfff];
        quad.copy_from_slice(&[a, b, c, d]);
    }
    if let Some(quad) = quads.next() {
        // One or two bytes left: two or three characters, then the `=` already there.
        let b0 = usize::from(rest.first().copied().unwrap_or(0));
        let b1 = usize::from(rest.get(1).copied().unwrap_or(0));
        let n = b0 << 16 | b1 << 8;
        quad[0] = BASE64_ALPHABET[n >> 18];
        quad[1] = BASE64_ALPHABET[(n >> 12) & 63];
        if rest.len() == 2 {
            quad[2] = BASE64_ALPHABET[(n >> 6) & 63];
        }
    }
}

/// Write a Go signed integer in decimal.
pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(v.to_string().as_bytes());
}

/// Write a Go unsigned integer in decimal.
pub fn write_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(v.to_string().as_bytes());
}

/// Write a Go `bool`.
pub fn write_bool(out: &mut Vec<u8>, v: bool) {
    out.extend_from_slice(if v { b"true" } else { b"false" });
}

/// Write a Go `map[string]string` (or any map with string-kinded keys and values), keys sorted
/// bytewise as Go sorts them. An empty map is `{}`; Go writes a nil map as `null`, which this
/// type cannot express (see [`Object::string_map`]).
pub fn write_string_map(out: &mut Vec<u8>, map: &BTreeMap<String, String>) {
    // `str`'s `Ord` is bytewise, which is the order Go's encoder sorts keys in.
    out.push(b'{');
    for (n, (k, v)) in map.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        write_string(out, k.as_bytes());
        out.push(b':');
        write_string(out, v.as_bytes());
    }
    out.push(b'}');
}

/// Write a Go struct as a JSON object: `f` adds the fields in struct order.
///
/// ```
/// use cwtch_model::gojson;
/// let mut out = Vec::new();
/// gojson::object(&mut out, |o| {
///     o.i64("o", 1).str("d", "<hi>");
/// });
/// assert_eq!(out, br#"{"o":1,"d":"\u003chi\u003e"}"#);
/// ```
pub fn object(out: &mut Vec<u8>, f: impl FnOnce(&mut Object<'_>)) {
    out.push(b'{');
    let mut o = Object { out, first: true };
    f(&mut o);
    o.out.push(b'}');
}

/// The fields of a JSON object being written by [`object`].
#[derive(Debug)]
pub struct Object<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl Object<'_> {
    /// Start a field: the separating comma, the name and the colon.
    fn name(&mut self, name: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        write_string(self.out, name.as_bytes());
        self.out.push(b':');
        self.out
    }

    /// A Go `string` field given as bytes (see [`write_string`]).
    pub fn string(&mut self, name: &str, v: &[u8]) -> &mut Self {
        write_string(self.name(name), v);
        self
    }

    /// A Go `string` field.
    pub fn str(&mut self, name: &str, v: &str) -> &mut Self {
        self.string(name, v.as_bytes())
    }

    /// A Go `[]byte` field (see [`write_bytes`]).
    pub fn bytes(&mut self, name: &str, v: Option<&[u8]>) -> &mut Self {
        write_bytes(self.name(name), v);
        self
    }

    /// A Go `int`/`int64` field.
    pub fn i64(&mut self, name: &str, v: i64) -> &mut Self {
        write_i64(self.name(name), v);
        self
    }

    /// A Go `uint64` field.
    pub fn u64(&mut self, name: &str, v: u64) -> &mut Self {
        write_u64(self.name(name), v);
        self
    }

    /// A Go `bool` field.
    pub fn bool(&mut self, name: &str, v: bool) -> &mut Self {
        write_bool(self.name(name), v);
        self
    }

    /// A Go map field with string keys and values (non-nil; see [`write_string_map`]).
    pub fn string_map(&mut self, name: &str, v: &BTreeMap<String, String>) -> &mut Self {
        write_string_map(self.name(name), v);
        self
    }

    /// A nested struct field (Go: a non-pointer struct, or a non-nil pointer).
    pub fn value(&mut self, name: &str, v: &impl GoJson) -> &mut Self {
        v.write_go_json(self.name(name));
        self
    }

    /// A pointer field tagged `json:",omitempty"`: absent when `None`.
    pub fn omitempty<T: GoJson>(&mut self, name: &str, v: Option<&T>) -> &mut Self {
        if let Some(v) = v {
            self.value(name, v);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(b: &[u8]) -> String {
        let mut out = Vec::new();
        write_string(&mut out, b);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_like_go() {
        assert_eq!(s(b""), r#""""#);
        assert_eq!(s(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(s(b"\n\r\t"), r#""\n\r\t""#);
        assert_eq!(
            s(b"\x00\x01\x08\x0c\x1f\x7f"),
            "\"\\u0000\\u0001\\u0008\\u000c\\u001f\x7f\""
        );
        assert_eq!(s(b"<>&'/"), r#""\u003c\u003e\u0026'/""#);
        assert_eq!(s("\u{2028}x\u{2029}".as_bytes()), r#""\u2028x\u2029""#);
        assert_eq!(s("é😀\u{fffd}".as_bytes()), "\"é😀\u{fffd}\"");
        assert_eq!(s(b"\xe2\x82 \xff"), r#""\ufffd\ufffd \ufffd""#);
        assert_eq!(s(b"\xed\xa0\x80"), r#""\ufffd\ufffd\ufffd""#);
        assert_eq!(s(b"\xf4\x90\x80\x80z"), r#""\ufffd\ufffd\ufffd\ufffdz""#);
        // truncated at the end of the string
        assert_eq!(s(b"ab\xf0\x9f\x98"), r#""ab\ufffd\ufffd\ufffd""#);
    }

    #[test]
    fn scalars_and_bytes() {
        let mut out = Vec::new();
        write_bytes(&mut out, None);
        out.push(b' ');
        write_bytes(&mut out, Some(b""));
        out.push(b' ');
        write_bytes(&mut out, Some(b"\x01\x02\x03\x04\x05"));
        out.push(b' ');
        write_i64(&mut out, i64::MIN);
        out.push(b' ');
        write_u64(&mut out, u64::MAX);
        out.push(b' ');
        write_bool(&mut out, false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"null "" "AQIDBAU=" -9223372036854775808 18446744073709551615 false"#
        );
    }

    #[test]
    fn maps_sort_bytewise() {
        let mut m = BTreeMap::new();
        m.insert("b".to_string(), "<".to_string());
        m.insert("B".to_string(), "2".to_string());
        m.insert("é".to_string(), "3".to_string());
        m.insert("a".to_string(), "1".to_string());
        let mut out = Vec::new();
        write_string_map(&mut out, &m);
        assert_eq!(
            out,
            "{\"B\":\"2\",\"a\":\"1\",\"b\":\"\\u003c\",\"é\":\"3\"}".as_bytes()
        );
        out.clear();
        write_string_map(&mut out, &BTreeMap::new());
        assert_eq!(out, b"{}");
    }

    #[test]
    fn objects_and_omitempty() {
        struct Inner;
        impl GoJson for Inner {
            fn write_go_json(&self, out: &mut Vec<u8>) {
                object(out, |o| {
                    o.bool("Success", true);
                });
            }
        }
        let mut out = Vec::new();
        object(&mut out, |o| {
            o.i64("MessageType", 3)
                .omitempty::<Inner>("Absent", None)
                .omitempty("PostResult", Some(&Inner));
        });
        assert_eq!(out, br#"{"MessageType":3,"PostResult":{"Success":true}}"#);
        assert_eq!(Inner.to_go_json(), br#"{"Success":true}"#);
        out.clear();
        object(&mut out, |_| {});
        assert_eq!(out, b"{}");
    }
}
