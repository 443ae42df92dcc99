//! The decoder: Go `json.Unmarshal` semantics for the structs of this crate.
//!
//! What it reproduces, and why it is not `serde_json`:
//! * syntax is RFC 8259 as Go's scanner checks it, nesting at most [`MAX_NESTING_DEPTH`]
//!   (Go's limit), only whitespace after the value;
//! * strings are coerced to UTF-8 like Go's `unquote`: raw bytes that are not UTF-8 become
//!   U+FFFD one byte at a time, and `\u` escapes of unpaired surrogates become U+FFFD
//!   (`serde_json` rejects both);
//! * object keys match struct fields exactly or, failing that, case-insensitively (Go's
//!   `EqualFold`, where `K` also matches the Kelvin sign and `S` the long s); unknown keys are
//!   skipped; a repeated key decodes again into the same field (last wins, pointer structs merge);
//! * `null` leaves strings, numbers, bools and plain structs unchanged and sets pointers,
//!   slices and maps to nil;
//! * `[]byte` is std base64 with padding (Go ignores `\r` and `\n` in it and allows non-zero
//!   trailing bits) or a JSON array of numbers 0–255;
//! * integers must be integral literals within range (`1.0` and `1e3` are type errors).
//!
//! Go keeps decoding after a type error and reports it at the end; the result is an error
//! either way, so this decoder stops at the first one.

use std::collections::BTreeMap;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

use super::utf8::decode_rune;
use crate::Error;

/// Go's `encoding/json` nesting limit (`maxNestingDepth` in `scanner.go`): 10000 nested
/// arrays and objects are accepted, one more is a syntax error.
pub const MAX_NESTING_DEPTH: usize = 10_000;

/// Go's `base64.StdEncoding` when decoding: `=` padding required, non-zero trailing bits
/// allowed (it is not `.Strict()`).
const GO_STD_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Decode standard base64 as Go's `base64.StdEncoding.DecodeString` does (padding required,
/// `\r` and `\n` ignored anywhere, trailing bits not checked).
pub fn go_base64_decode(s: &[u8], what: &'static str) -> Result<Vec<u8>, Error> {
    let decoded = if s.iter().any(|&b| b == b'\r' || b == b'\n') {
        let stripped: Vec<u8> = s
            .iter()
            .copied()
            .filter(|&b| b != b'\r' && b != b'\n')
            .collect();
        GO_STD_BASE64.decode(stripped)
    } else {
        GO_STD_BASE64.decode(s)
    };
    decoded.map_err(|_| Error::Base64 { what })
}

/// The value of each base64 character; 0xff for bytes outside the alphabet.
const BASE64_VALUES: [u8; 256] = {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 64 {
        t[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Decode base64 as [`go_base64_decode`] does, for the plain text an encoder writes (whole
/// quads, `=` only at the end, no line breaks); `None` for anything else, which the caller
/// hands to [`go_base64_decode`]. Table-driven: every group message a client opens carries
/// 2400 characters of base64 padding.
fn decode_base64_plain(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(4) {
        return None;
    }
    let pad = s.iter().rev().take_while(|&&b| b == b'=').count();
    if pad > 2 {
        return None;
    }
    let value = |b: u8| -> Option<u32> {
        let v = BASE64_VALUES[usize::from(b)];
        (v != 0xff).then_some(u32::from(v))
    };
    let quads = s.len() / 4;
    let mut out = vec![0u8; quads * 3];
    for (i, (quad, dst)) in s.chunks_exact(4).zip(out.chunks_exact_mut(3)).enumerate() {
        // `=` only where counted above, in the last quad; anywhere else it fails `value`.
        let last = i + 1 == quads;
        let (a, b) = (value(quad[0])?, value(quad[1])?);
        let c = if last && pad == 2 { 0 } else { value(quad[2])? };
        let d = if last && pad >= 1 { 0 } else { value(quad[3])? };
        let n = a << 18 | b << 12 | c << 6 | d;
        dst.copy_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
    }
    out.truncate(out.len() - pad);
    Some(out)
}

/// A Rust value that can be decoded from JSON with Go's `json.Unmarshal` semantics.
pub trait GoDecode {
    /// Decode the next JSON value into `self`, as Go's `Unmarshal` decodes into an existing
    /// value: for a struct, `null` leaves it unchanged and an object sets the fields it names.
    fn decode_into(&mut self, d: &mut Decoder<'_>) -> Result<(), Error>;
}

/// Decode a whole JSON document into a fresh `T`, as Go's `json.Unmarshal(data, &t)`.
pub fn decode<T: GoDecode + Default>(input: &[u8]) -> Result<T, Error> {
    let mut v = T::default();
    let mut d = Decoder::new(input);
    v.decode_into(&mut d)?;
    d.finish()?;
    Ok(v)
}

/// Check that `input` is one JSON value that Go's `json.Valid` accepts.
pub fn validate(input: &[u8]) -> Result<(), Error> {
    let mut d = Decoder::new(input);
    d.skip_value()?;
    d.finish()
}

/// The kinds of JSON value, told apart by their first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

/// A cursor over a JSON document that decodes values the way Go's `encoding/json` does.
///
/// Struct decoders ([`GoDecode`] implementations) call [`Decoder::fields`] and, for each field
/// it reports, one of the typed methods ([`Decoder::string`], [`Decoder::bytes`], …).
#[derive(Debug)]
pub struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder at the start of `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Decoder {
            input,
            pos: 0,
            depth: 0,
        }
    }

    /// Require that only whitespace is left.
    pub fn finish(&mut self) -> Result<(), Error> {
        self.skip_ws();
        if self.pos == self.input.len() {
            Ok(())
        } else {
            Err(self.syntax("end of input after the value"))
        }
    }

    fn syntax(&self, expected: &'static str) -> Error {
        Error::JsonSyntax {
            offset: self.pos,
            expected,
        }
    }

    fn type_error(&self, expected: &'static str) -> Error {
        Error::JsonType {
            offset: self.pos,
            expected,
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.input.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    /// Skip whitespace and classify the next value; a byte that cannot start one is a syntax
    /// error.
    fn kind(&mut self) -> Result<Kind, Error> {
        self.skip_ws();
        match self.peek() {
            Some(b'n') => Ok(Kind::Null),
            Some(b't' | b'f') => Ok(Kind::Bool),
            Some(b'-' | b'0'..=b'9') => Ok(Kind::Number),
            Some(b'"') => Ok(Kind::String),
            Some(b'[') => Ok(Kind::Array),
            Some(b'{') => Ok(Kind::Object),
            Some(_) => Err(self.syntax("a value")),
            None => Err(self.syntax("a value, not the end of input")),
        }
    }

    fn eat(&mut self, b: u8, expected: &'static str) -> Result<(), Error> {
        self.skip_ws();
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.syntax(expected))
        }
    }

    fn literal(&mut self, word: &'static [u8], expected: &'static str) -> Result<(), Error> {
        if self.input.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.syntax(expected))
        }
    }

    /// Consume `true` or `false`.
    fn bool_literal(&mut self) -> Result<bool, Error> {
        if self.peek() == Some(b't') {
            self.literal(b"true", "true").map(|()| true)
        } else {
            self.literal(b"false", "false").map(|()| false)
        }
    }

    fn null(&mut self) -> Result<(), Error> {
        self.literal(b"null", "null")
    }

    /// Consume a number, checking its grammar, and return its text.
    fn number(&mut self) -> Result<&'a str, Error> {
        let start = self.pos;
        let digits = |d: &mut Self| {
            let from = d.pos;
            while let Some(b'0'..=b'9') = d.peek() {
                d.pos += 1;
            }
            d.pos > from
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(self.syntax("a digit")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !digits(self) {
                return Err(self.syntax("a digit after the decimal point"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !digits(self) {
                return Err(self.syntax("a digit in the exponent"));
            }
        }
        // Only ASCII was consumed.
        std::str::from_utf8(&self.input[start..self.pos]).map_err(|_| self.syntax("a number"))
    }

    /// Consume four hex digits of a `\u` escape.
    fn hex4(&mut self) -> Result<u16, Error> {
        let mut v: u16 = 0;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(c @ b'0'..=b'9') => c - b'0',
                Some(c @ b'a'..=b'f') => c - b'a' + 10,
                Some(c @ b'A'..=b'F') => c - b'A' + 10,
                _ => return Err(self.syntax("four hex digits after \\u")),
            };
            v = (v << 4) | u16::from(d);
            self.pos += 1;
        }
        Ok(v)
    }

    /// Consume a string and return its value as Go's `unquote` produces it (always valid UTF-8).
    fn string_value(&mut self) -> Result<String, Error> {
        if self.peek() != Some(b'"') {
            return Err(self.syntax("a string"));
        }
        self.pos += 1;
        let mut out = String::new();
        loop {
            // Copy the run of plain printable ASCII at once.
            let run_start = self.pos;
            while let Some(b) = self.peek() {
                if !(0x20..0x80).contains(&b) || b == b'"' || b == b'\\' {
                    break;
                }
                self.pos += 1;
            }
            if self.pos > run_start {
                // ASCII, so always UTF-8.
                out.push_str(
                    std::str::from_utf8(&self.input[run_start..self.pos])
                        .map_err(|_| self.syntax("a string"))?,
                );
            }
            match self.peek() {
                None => return Err(self.syntax("the end of the string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b) if b < 0x20 => return Err(self.syntax("no control characters in a string")),
                Some(b'\\') => {
                    self.pos += 1;
                    let c = match self.peek() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.pos += 1;
                            let u = self.hex4()?;
                            out.push(self.after_u_escape(u)?);
                            continue;
                        }
                        _ => return Err(self.syntax("a valid escape")),
                    };
                    self.pos += 1;
                    out.push(c);
                }
                Some(_) => match decode_rune(&self.input[self.pos..]) {
                    Some((c, n)) => {
                        out.push(c);
                        self.pos += n;
                    }
                    None => {
                        out.push(char::REPLACEMENT_CHARACTER);
                        self.pos += 1;
                    }
                },
            }
        }
    }

    /// The character of a `\uXXXX` escape whose value is `u`, consuming a following low
    /// surrogate escape if `u` is a high surrogate that pairs with it (Go's `unquote`).
    fn after_u_escape(&mut self, u: u16) -> Result<char, Error> {
        if !(0xd800..0xe000).contains(&u) {
            return Ok(char::from_u32(u32::from(u)).unwrap_or(char::REPLACEMENT_CHARACTER));
        }
        if (0xd800..0xdc00).contains(&u)
            && self.input.get(self.pos..self.pos + 2) == Some(b"\\u".as_slice())
        {
            let save = self.pos;
            self.pos += 2;
            if let Ok(lo) = self.hex4() {
                if (0xdc00..0xe000).contains(&lo) {
                    let c = 0x10000 + ((u32::from(u) - 0xd800) << 10) + (u32::from(lo) - 0xdc00);
                    return Ok(char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER));
                }
            }
            // Not a pair: the second escape is decoded on its own.
            self.pos = save;
        }
        Ok(char::REPLACEMENT_CHARACTER)
    }

    fn enter(&mut self) -> Result<(), Error> {
        if self.depth >= MAX_NESTING_DEPTH {
            return Err(Error::JsonTooDeep { offset: self.pos });
        }
        self.depth += 1;
        self.pos += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Skip one value of any kind, checking its syntax. Iterative, so deep nesting costs heap,
    /// not stack.
    pub fn skip_value(&mut self) -> Result<(), Error> {
        // The open containers: true for an object, false for an array.
        let mut stack: Vec<bool> = Vec::new();
        'value: loop {
            match self.kind()? {
                Kind::Null => self.null()?,
                Kind::Bool => {
                    self.bool_literal()?;
                }
                Kind::Number => {
                    self.number()?;
                }
                Kind::String => self.skip_string()?,
                Kind::Array => {
                    self.enter()?;
                    self.skip_ws();
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                        self.leave();
                    } else {
                        stack.push(false);
                        continue 'value;
                    }
                }
                Kind::Object => {
                    self.enter()?;
                    self.skip_ws();
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                        self.leave();
                    } else {
                        stack.push(true);
                        self.skip_string()?;
                        self.eat(b':', "':' after an object key")?;
                        continue 'value;
                    }
                }
            }
            // A value is complete: close containers until one continues.
            loop {
                let Some(&is_object) = stack.last() else {
                    return Ok(());
                };
                self.skip_ws();
                match (self.peek(), is_object) {
                    (Some(b','), true) => {
                        self.pos += 1;
                        self.skip_ws();
                        self.skip_string()?;
                        self.eat(b':', "':' after an object key")?;
                        continue 'value;
                    }
                    (Some(b','), false) => {
                        self.pos += 1;
                        continue 'value;
                    }
                    (Some(b'}'), true) | (Some(b']'), false) => {
                        self.pos += 1;
                        self.leave();
                        stack.pop();
                    }
                    (_, true) => return Err(self.syntax("',' or '}' in an object")),
                    (_, false) => return Err(self.syntax("',' or ']' in an array")),
                }
            }
        }
    }

    /// Skip a string, checking its syntax but not building its value.
    fn skip_string(&mut self) -> Result<(), Error> {
        if self.peek() != Some(b'"') {
            return Err(self.syntax("a string"));
        }
        self.pos += 1;
        loop {
            match self.peek() {
                None => return Err(self.syntax("the end of the string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b) if b < 0x20 => return Err(self.syntax("no control characters in a string")),
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1
                        }
                        Some(b'u') => {
                            self.pos += 1;
                            self.hex4()?;
                        }
                        _ => return Err(self.syntax("a valid escape")),
                    }
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    /// Decode a JSON object into a Go struct whose fields (JSON names, in struct order) are
    /// `names`. For each key that matches a field, `field` is called with the field's index and
    /// must decode exactly one value; other keys' values are skipped. `null` leaves the struct
    /// unchanged; anything else but an object is a type error.
    pub fn fields(
        &mut self,
        names: &[&str],
        mut field: impl FnMut(&mut Self, usize) -> Result<(), Error>,
    ) -> Result<(), Error> {
        match self.kind()? {
            Kind::Null => self.null(),
            Kind::Object => self.entries(|d, key| match match_field(names, &key) {
                Some(i) => field(d, i),
                None => d.skip_value(),
            }),
            _ => Err(self.type_error("an object (Go struct)")),
        }
    }

    /// The entries of an object whose `{` is next, in document order: `entry` gets each key
    /// and must decode exactly one value.
    fn entries(
        &mut self,
        mut entry: impl FnMut(&mut Self, String) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.enter()?;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.leave();
            return Ok(());
        }
        loop {
            self.skip_ws();
            let key = self.string_value()?;
            self.eat(b':', "':' after an object key")?;
            entry(self, key)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    self.leave();
                    return Ok(());
                }
                _ => return Err(self.syntax("',' or '}' in an object")),
            }
        }
    }

    /// Decode a Go `string` (null: unchanged).
    pub fn string(&mut self, dst: &mut String) -> Result<(), Error> {
        match self.kind()? {
            Kind::String => *dst = self.string_value()?,
            Kind::Null => self.null()?,
            _ => return Err(self.type_error("a string")),
        }
        Ok(())
    }

    /// Decode a Go `string` kept as bytes (null: unchanged). The bytes are always UTF-8.
    pub fn string_bytes(&mut self, dst: &mut Vec<u8>) -> Result<(), Error> {
        match self.kind()? {
            Kind::String => *dst = self.string_value()?.into_bytes(),
            Kind::Null => self.null()?,
            _ => return Err(self.type_error("a string")),
        }
        Ok(())
    }

    /// Decode a Go `[]byte`: base64 string, or an array of numbers 0–255 (whose elements Go
    /// decodes into the existing slice's elements, so a `null` element keeps the old byte);
    /// `null` sets it to nil (`None`).
    pub fn bytes(&mut self, dst: &mut Option<Vec<u8>>) -> Result<(), Error> {
        match self.kind()? {
            Kind::String => {
                // Fast path for what encoders write: no escapes and no `\r`/`\n`, so the value
                // is the raw text up to the next quote, and decoding it checks every character.
                // Anything else (an escape, a line break, a character base64 rejects) takes the
                // general path, which decodes exactly as Go does and reports the error.
                let raw = self.input.get(self.pos + 1..).unwrap_or_default();
                let fast = raw
                    .iter()
                    .position(|&b| b == b'"')
                    .and_then(|len| Some((len, decode_base64_plain(&raw[..len])?)));
                if let Some((len, bytes)) = fast {
                    *dst = Some(bytes);
                    self.pos += len + 2;
                } else {
                    let s = self.string_value()?;
                    *dst = Some(go_base64_decode(s.as_bytes(), "[]byte field")?);
                }
            }
            Kind::Null => {
                self.null()?;
                *dst = None;
            }
            Kind::Array => {
                let mut v = dst.take().unwrap_or_default();
                let mut n = 0;
                self.enter()?;
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                } else {
                    loop {
                        if n == v.len() {
                            v.push(0);
                        }
                        match self.kind()? {
                            Kind::Null => self.null()?,
                            Kind::Number => {
                                let at = self.pos;
                                let lit = self.number()?;
                                v[n] = lit.parse::<u8>().map_err(|_| Error::JsonType {
                                    offset: at,
                                    expected: "a number 0-255 (Go uint8)",
                                })?;
                            }
                            _ => return Err(self.type_error("a number 0-255 (Go uint8)")),
                        }
                        n += 1;
                        self.skip_ws();
                        match self.peek() {
                            Some(b',') => self.pos += 1,
                            Some(b']') => {
                                self.pos += 1;
                                break;
                            }
                            _ => return Err(self.syntax("',' or ']' in an array")),
                        }
                    }
                }
                self.leave();
                v.truncate(n);
                *dst = Some(v);
            }
            _ => return Err(self.type_error("a base64 string or an array (Go []byte)")),
        }
        Ok(())
    }

    /// The text of an integral number literal, or a type error naming `expected`.
    fn integer(&mut self, expected: &'static str) -> Result<Option<(usize, &'a str)>, Error> {
        match self.kind()? {
            Kind::Null => self.null().map(|()| None),
            Kind::Number => {
                let at = self.pos;
                let lit = self.number()?;
                if lit.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
                    return Err(Error::JsonType {
                        offset: at,
                        expected,
                    });
                }
                Ok(Some((at, lit)))
            }
            _ => Err(self.type_error(expected)),
        }
    }

    /// Decode a Go `int` (64-bit) (null: unchanged).
    pub fn i64(&mut self, dst: &mut i64) -> Result<(), Error> {
        const EXPECTED: &str = "an integer (Go int)";
        if let Some((offset, lit)) = self.integer(EXPECTED)? {
            *dst = lit.parse().map_err(|_| Error::JsonType {
                offset,
                expected: EXPECTED,
            })?;
        }
        Ok(())
    }

    /// Decode a Go `uint64` (null: unchanged).
    pub fn u64(&mut self, dst: &mut u64) -> Result<(), Error> {
        const EXPECTED: &str = "an unsigned integer (Go uint64)";
        if let Some((offset, lit)) = self.integer(EXPECTED)? {
            *dst = lit.parse().map_err(|_| Error::JsonType {
                offset,
                expected: EXPECTED,
            })?;
        }
        Ok(())
    }

    /// Decode a Go `bool` (null: unchanged).
    pub fn bool(&mut self, dst: &mut bool) -> Result<(), Error> {
        match self.kind()? {
            Kind::Bool => *dst = self.bool_literal()?,
            Kind::Null => self.null()?,
            _ => return Err(self.type_error("true or false")),
        }
        Ok(())
    }

    /// Decode a Go `bool` into an optional one: a value sets it, `null` leaves it unchanged
    /// (for a field whose absence means something other than `false`).
    pub fn opt_bool(&mut self, dst: &mut Option<bool>) -> Result<(), Error> {
        match self.kind()? {
            Kind::Bool => *dst = Some(self.bool_literal()?),
            Kind::Null => self.null()?,
            _ => return Err(self.type_error("true or false")),
        }
        Ok(())
    }

    /// Decode a pointer-to-struct field: `null` sets it to nil (`None`); otherwise the value is
    /// decoded into the existing struct, allocating a zero one first if it was nil (as Go does).
    pub fn pointer<T: GoDecode + Default>(&mut self, dst: &mut Option<T>) -> Result<(), Error> {
        if self.kind()? == Kind::Null {
            self.null()?;
            *dst = None;
            return Ok(());
        }
        dst.get_or_insert_with(T::default).decode_into(self)
    }

    /// Decode a Go slice `[]T`: `null` sets it to nil (empty here); an array replaces its
    /// elements, each decoded by `elem` into a fresh value from `zero`. More than `max`
    /// elements is an error (at the first one too many), so that hostile input cannot make
    /// it allocate without bound.
    pub fn slice_with<T>(
        &mut self,
        dst: &mut Vec<T>,
        max: usize,
        mut zero: impl FnMut() -> T,
        mut elem: impl FnMut(&mut Self, &mut T) -> Result<(), Error>,
    ) -> Result<(), Error> {
        match self.kind()? {
            Kind::Null => {
                self.null()?;
                dst.clear();
                Ok(())
            }
            Kind::Array => {
                dst.clear();
                self.enter()?;
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    self.leave();
                    return Ok(());
                }
                loop {
                    self.skip_ws();
                    if dst.len() >= max {
                        return Err(Error::JsonType {
                            offset: self.pos,
                            expected: "no more elements (the slice is at its limit)",
                        });
                    }
                    let mut v = zero();
                    elem(self, &mut v)?;
                    dst.push(v);
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            self.leave();
                            return Ok(());
                        }
                        _ => return Err(self.syntax("',' or ']' in an array")),
                    }
                }
            }
            _ => Err(self.type_error("an array (Go slice)")),
        }
    }

    /// Decode a Go map with string-kinded keys and values. Entries are added to the existing
    /// map (Go does not clear it); a `null` value stores `""`; a `null` map sets it to nil,
    /// represented here as empty.
    pub fn string_map(&mut self, dst: &mut BTreeMap<String, String>) -> Result<(), Error> {
        self.map_with(dst, String::new, |d, v| d.string(v))
    }

    /// A Go `map[string]T`: `null` empties it; each entry is decoded by `elem` into a fresh
    /// value from `zero` (Go decodes map elements into zero values, not into earlier ones), in
    /// document order, so a repeated key keeps its last value.
    pub fn map_with<T>(
        &mut self,
        dst: &mut BTreeMap<String, T>,
        mut zero: impl FnMut() -> T,
        mut elem: impl FnMut(&mut Self, &mut T) -> Result<(), Error>,
    ) -> Result<(), Error> {
        match self.kind()? {
            Kind::Null => {
                self.null()?;
                dst.clear();
                Ok(())
            }
            Kind::Object => self.entries(|d, key| {
                let mut value = zero();
                elem(d, &mut value)?;
                dst.insert(key, value);
                Ok(())
            }),
            _ => Err(self.type_error("an object (Go map)")),
        }
    }
}

/// Which of `names` a JSON key sets: an exact match, else the first case-insensitive match
/// in struct order (Go's `decode.go` `object()`).
pub(crate) fn match_field(names: &[&str], key: &str) -> Option<usize> {
    names
        .iter()
        .position(|n| *n == key)
        .or_else(|| names.iter().position(|n| go_equal_fold(n, key)))
}

/// Go's case-insensitive field-name match for an ASCII field name. Under Unicode simple
/// folding the only non-ASCII characters in the orbit of an ASCII letter are the Kelvin sign
/// (K) and the long s (S), and Go's `encoding/json` honours both.
fn go_equal_fold(name: &str, key: &str) -> bool {
    let mut key = key.chars();
    for n in name.chars() {
        let Some(k) = key.next() else {
            return false;
        };
        let same = k == n
            || (n.is_ascii_alphabetic() && k.eq_ignore_ascii_case(&n))
            || (n.eq_ignore_ascii_case(&'k') && k == '\u{212a}')
            || (n.eq_ignore_ascii_case(&'s') && k == '\u{17f}');
        if !same {
            return false;
        }
    }
    key.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// The table-driven decoder agrees with Go's `StdEncoding` (the `base64` crate
        /// configured as Go decodes) wherever it answers, and answers for every encoding.
        #[test]
        fn plain_base64_decoder_agrees_with_go(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            junk in "[A-Za-z0-9+/=\\r\n\"!]{0,12}",
            cut in 0usize..60,
        ) {
            use base64::Engine as _;
            let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
            proptest::prop_assert_eq!(decode_base64_plain(encoded.as_bytes()), Some(bytes));
            let mut mixed = encoded.into_bytes();
            let at = cut.min(mixed.len());
            mixed.splice(at..at, junk.bytes());
            for s in [&mixed[..], junk.as_bytes()] {
                if let Some(fast) = decode_base64_plain(s) {
                    proptest::prop_assert_eq!(Ok(fast), GO_STD_BASE64.decode(s));
                }
            }
        }
    }

    #[derive(Debug, Default, PartialEq)]
    struct T {
        s: String,
        b: Option<Vec<u8>>,
        n: i64,
        u: u64,
        f: bool,
        p: Option<Box<T>>,
        m: BTreeMap<String, String>,
    }

    impl GoDecode for T {
        fn decode_into(&mut self, d: &mut Decoder<'_>) -> Result<(), Error> {
            d.fields(
                &["Str", "Bytes", "N", "U", "F", "P", "Keys"],
                |d, i| match i {
                    0 => d.string(&mut self.s),
                    1 => d.bytes(&mut self.b),
                    2 => d.i64(&mut self.n),
                    3 => d.u64(&mut self.u),
                    4 => d.bool(&mut self.f),
                    5 => {
                        let mut p = self.p.take().map(|b| *b);
                        let r = d.pointer(&mut p);
                        self.p = p.map(Box::new);
                        r
                    }
                    _ => d.string_map(&mut self.m),
                },
            )
        }
    }

    fn t(s: &str) -> Result<T, Error> {
        decode(s.as_bytes())
    }

    #[test]
    fn fields_nulls_and_unknowns() {
        let v = t(
            r#" {"Str":"x","Bytes":"AQI=","N":-5,"U":7,"F":true,"Zzz":[1,{"a":[]}],
                      "P":{"N":1},"Keys":{"b":"2","a":null}} "#,
        )
        .unwrap();
        assert_eq!(v.s, "x");
        assert_eq!(v.b, Some(vec![1, 2]));
        assert_eq!((v.n, v.u, v.f), (-5, 7, true));
        assert_eq!(v.p.as_ref().unwrap().n, 1);
        assert_eq!(v.m.get("a").map(String::as_str), Some(""));
        // null: scalars unchanged, slices/pointers nil
        let v =
            t(r#"{"Str":"x","Str":null,"Bytes":"","P":{"N":1},"P":null,"N":3,"N":null}"#).unwrap();
        assert_eq!((v.s.as_str(), v.b, v.p, v.n), ("x", Some(vec![]), None, 3));
        assert_eq!(t("null").unwrap(), T::default());
        assert_eq!(t("{}").unwrap(), T::default());
    }

    #[test]
    fn case_insensitive_names() {
        let v = t(r#"{"str":"a","BYTES":"AA==","keys":{"x":"y"}}"#).unwrap();
        assert_eq!(v.s, "a");
        assert_eq!(v.b, Some(vec![0]));
        assert_eq!(v.m.len(), 1);
        // The Kelvin sign folds to K, the long s to S.
        let v = t("{\"\u{212a}eys\":{\"x\":\"y\"},\"\u{17f}tr\":\"b\"}").unwrap();
        assert_eq!((v.m.len(), v.s.as_str()), (1, "b"));
        // Exact match wins whatever the order.
        #[derive(Default)]
        struct Two(String, String);
        impl GoDecode for Two {
            fn decode_into(&mut self, d: &mut Decoder<'_>) -> Result<(), Error> {
                d.fields(&["ab", "AB"], |d, i| {
                    if i == 0 {
                        d.string(&mut self.0)
                    } else {
                        d.string(&mut self.1)
                    }
                })
            }
        }
        let v: Two = decode(br#"{"AB":"x","Ab":"y"}"#).unwrap();
        assert_eq!((v.0.as_str(), v.1.as_str()), ("y", "x"));
    }

    #[test]
    fn pointer_structs_merge_on_repeat() {
        let v = t(r#"{"P":{"N":1},"P":{"U":2}}"#).unwrap();
        let p = v.p.unwrap();
        assert_eq!((p.n, p.u), (1, 2));
    }

    #[test]
    fn byte_arrays() {
        assert_eq!(
            t(r#"{"Bytes":[1,255,0]}"#).unwrap().b,
            Some(vec![1, 255, 0])
        );
        assert_eq!(t(r#"{"Bytes":[]}"#).unwrap().b, Some(vec![]));
        assert_eq!(
            t(r#"{"Bytes":"BQY=","Bytes":[null,7]}"#).unwrap().b,
            Some(vec![5, 7])
        );
        assert_eq!(
            t(r#"{"Bytes":"BQY=","Bytes":[9]}"#).unwrap().b,
            Some(vec![9])
        );
        for bad in [
            r#"[256]"#, r#"[-1]"#, r#"[1.0]"#, r#"["a"]"#, r#"[[]]"#, r#"[1,]"#,
        ] {
            assert!(t(&format!(r#"{{"Bytes":{bad}}}"#)).is_err(), "{bad}");
        }
    }

    #[test]
    fn base64_like_go() {
        assert_eq!(go_base64_decode(b"QQ==", "x").unwrap(), b"A");
        // Not strict: non-zero trailing bits are accepted.
        assert_eq!(go_base64_decode(b"QR==", "x").unwrap(), b"A");
        // \r and \n are ignored anywhere.
        assert_eq!(go_base64_decode(b"Q\r\nQ=\n=", "x").unwrap(), b"A");
        for bad in [
            "QQ",
            "QQ=",
            "Q===",
            "=",
            "QQ==QQ==",
            "Q Q=",
            "-_==",
            "QUJD\u{0}",
        ] {
            assert!(go_base64_decode(bad.as_bytes(), "x").is_err(), "{bad}");
        }
        // inside JSON, escapes are processed first
        assert_eq!(
            t(r#"{"Bytes":"\u0051Q=\u003d"}"#).unwrap().b,
            Some(b"A".to_vec())
        );
    }

    #[test]
    fn numbers_like_go() {
        assert_eq!(t(r#"{"N":-0}"#).unwrap().n, 0);
        assert_eq!(t(r#"{"N":-9223372036854775808}"#).unwrap().n, i64::MIN);
        assert_eq!(t(r#"{"U":18446744073709551615}"#).unwrap().u, u64::MAX);
        for bad in [
            r#"{"N":9223372036854775808}"#,
            r#"{"N":1.0}"#,
            r#"{"N":1e2}"#,
            r#"{"N":"1"}"#,
            r#"{"U":-1}"#,
            r#"{"U":-0}"#,
            r#"{"U":18446744073709551616}"#,
            r#"{"F":1}"#,
            r#"{"Str":1}"#,
            r#"{"Str":{}}"#,
            r#"{"P":5}"#,
            r#"{"Keys":[]}"#,
            r#"{"Keys":{"a":1}}"#,
            "[]",
            "\"x\"",
        ] {
            assert!(
                matches!(t(bad), Err(Error::JsonType { .. })),
                "{bad}: {:?}",
                t(bad)
            );
        }
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "",
            " ",
            "{",
            "{\"Str\"}",
            "{\"Str\":}",
            "{,}",
            "{\"N\":1,}",
            "{\"N\":01}",
            "{\"N\":1.}",
            "{\"N\":-}",
            "{\"N\":1e}",
            "{}x",
            "{} {}",
            "nul",
            "{\"Zzz\":tru}",
            "{\"Zzz\":[1 2]}",
            "{\"Zzz\":{\"a\" 1}}",
            "{\"Str\":\"\\x\"}",
            "{\"Str\":\"\\u12g4\"}",
            "{\"Str\":\"a\nb\"}",
            "{\"Zzz\":\"a\tb\"}",
            "{\"Zzz\":\"\\'\"}",
            "\u{feff}{}",
            "{\"Zzz\":+1}",
            "{\"Zzz\":.5}",
            "{'Str':1}",
        ] {
            assert!(
                matches!(t(bad), Err(Error::JsonSyntax { .. })),
                "{bad:?}: {:?}",
                t(bad)
            );
        }
    }

    #[test]
    fn strings_are_coerced_like_go() {
        let s = |json: &[u8]| {
            let mut input = br#"{"Str":""#.to_vec();
            input.extend_from_slice(json);
            input.extend_from_slice(b"\"}");
            decode::<T>(&input).map(|t| t.s)
        };
        assert_eq!(s(b"a\xe2\x82 b").unwrap(), "a\u{fffd}\u{fffd} b");
        assert_eq!(s(b"\xed\xa0\x80").unwrap(), "\u{fffd}\u{fffd}\u{fffd}");
        assert_eq!(s(br"\ud83d\ude00").unwrap(), "😀");
        assert_eq!(s(br"\ud83d").unwrap(), "\u{fffd}");
        assert_eq!(s(br"\ude00\ud83d").unwrap(), "\u{fffd}\u{fffd}");
        assert_eq!(s(br"\ud83dx").unwrap(), "\u{fffd}x");
        assert_eq!(s(br"\ud83d\u0041").unwrap(), "\u{fffd}A");
        assert_eq!(s(br"\ud83d\ud83d\ude00").unwrap(), "\u{fffd}😀");
        assert_eq!(
            s(br#"\"\\\/\b\f\n\r\t\u00e9\u2028"#).unwrap(),
            "\"\\/\u{8}\u{c}\n\r\té\u{2028}"
        );
        assert_eq!(s("\u{7f}é".as_bytes()).unwrap(), "\u{7f}é");
        // keys are coerced too (and then match nothing)
        assert!(decode::<T>(b"{\"\xff\":1}").is_ok());
    }

    #[test]
    fn nesting_limit_is_gos() {
        let ok = format!(
            "{}{}",
            "[".repeat(MAX_NESTING_DEPTH),
            "]".repeat(MAX_NESTING_DEPTH)
        );
        assert!(validate(ok.as_bytes()).is_ok());
        let deep = format!("[{ok}]");
        assert!(matches!(
            validate(deep.as_bytes()),
            Err(Error::JsonTooDeep { .. })
        ));
        // Known fields count towards the same limit.
        let in_field = format!(r#"{{"Zzz":{ok}}}"#);
        assert!(matches!(t(&in_field), Err(Error::JsonTooDeep { .. })));
        let shallower = format!(r#"{{"Zzz":{}}}"#, &ok[1..ok.len() - 1]);
        assert!(t(&shallower).is_ok());
    }

    #[test]
    fn slices() {
        let parse = |json: &str, max: usize| {
            let mut v: Vec<u64> = vec![9];
            let mut d = Decoder::new(json.as_bytes());
            d.slice_with(&mut v, max, || 0, |d, x| d.u64(x))?;
            d.finish()?;
            Ok::<_, Error>(v)
        };
        assert_eq!(parse("[1, 2 ,3]", 3).unwrap(), vec![1, 2, 3]);
        assert_eq!(parse("[]", 0).unwrap(), Vec::<u64>::new());
        assert_eq!(parse("null", 0).unwrap(), Vec::<u64>::new());
        assert!(matches!(parse("[1,2,3,4]", 3), Err(Error::JsonType { .. })));
        assert!(matches!(parse("{}", 3), Err(Error::JsonType { .. })));
        assert!(parse("[1,]", 3).is_err());
        assert!(parse("[1 2]", 3).is_err());
        assert!(parse("[\"x\"]", 3).is_err());
    }
}
