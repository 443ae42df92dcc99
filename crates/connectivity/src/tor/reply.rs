//! Sans-IO parsing of Tor control-port replies (control-spec §2.3 and §2.4): bytes in,
//! complete replies out. No sockets, no async.
//!
//! ```text
//! Reply         = *(MidReplyLine / DataReplyLine) EndReplyLine
//! MidReplyLine  = StatusCode "-" ReplyLine
//! DataReplyLine = StatusCode "+" ReplyLine CmdData      (dot-terminated, dot-stuffed)
//! EndReplyLine  = StatusCode SP ReplyLine
//! ```
//!
//! Every line of one reply carries the same status code; asynchronous events are replies with
//! code 650. Limits on line length and reply size keep a misbehaving peer from making us
//! buffer without bound.

use crate::error::ProtocolProblem;

/// Longest line we accept, CRLF included. Tor's longest lines (events with many fields) are
/// well under 4 KiB; `GETINFO` data blocks are split into lines.
pub const MAX_LINE: usize = 32 * 1024;
/// Most lines (including data lines) in one reply.
pub const MAX_REPLY_LINES: usize = 4096;
/// Most bytes in one reply.
pub const MAX_REPLY_BYTES: usize = 1024 * 1024;

/// Status code of asynchronous events.
pub const EVENT_CODE: u16 = 650;

/// One complete reply (or asynchronous event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit status code shared by all its lines.
    pub code: u16,
    /// Its lines, in order; the last one is the end line.
    pub lines: Vec<ReplyLine>,
}

/// One line of a reply, with the data block that followed it if it was a `+` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyLine {
    /// The text after the status code and separator.
    pub text: String,
    /// The un-dot-stuffed data lines of a `+` line.
    pub data: Option<Vec<String>>,
}

impl Reply {
    /// Whether the command succeeded (`2xx`).
    pub fn is_ok(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// Whether this is an asynchronous event (`650`).
    pub fn is_event(&self) -> bool {
        self.code == EVENT_CODE
    }

    /// The text of the first line (an event's keyword and arguments, or an error message).
    pub fn first_text(&self) -> &str {
        self.lines.first().map_or("", |l| l.text.as_str())
    }

    /// The value of `key` in a `GETINFO`-style reply: a `key=value` line, or a `key=` `+`
    /// line whose data block is the value (lines joined with `\n`).
    pub fn value(&self, key: &str) -> Option<String> {
        self.lines.iter().find_map(|line| {
            let rest = line.text.strip_prefix(key)?.strip_prefix('=')?;
            Some(match &line.data {
                Some(data) => data.join("\n"),
                None => rest.to_owned(),
            })
        })
    }
}

/// A partly received reply.
#[derive(Debug)]
struct Partial {
    code: u16,
    lines: Vec<ReplyLine>,
    /// Set while reading the data block of a `+` line.
    data: Option<(String, Vec<String>)>,
    bytes: usize,
    count: usize,
}

/// Turns a byte stream into replies. Feed it bytes as they arrive ([`ReplyParser::feed`]),
/// then take complete replies ([`ReplyParser::next_reply`]) until it returns `Ok(None)`
/// ("need more bytes" is not an error). After an error the stream cannot be resynchronised:
/// stop using the parser and close the connection.
#[derive(Debug, Default)]
pub struct ReplyParser {
    buf: Vec<u8>,
    partial: Option<Partial>,
}

impl ReplyParser {
    /// A parser expecting the start of a reply.
    pub fn new() -> ReplyParser {
        ReplyParser::default()
    }

    /// Append received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete reply, `Ok(None)` if more bytes are needed.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ProtocolProblem> {
        loop {
            let Some(end) = self.buf.iter().position(|&b| b == b'\n') else {
                if self.buf.len() > MAX_LINE {
                    return Err(ProtocolProblem::LineTooLong);
                }
                return Ok(None);
            };
            if end + 1 > MAX_LINE {
                return Err(ProtocolProblem::LineTooLong);
            }
            let raw: Vec<u8> = self.buf.drain(..=end).collect();
            let mut line = &raw[..raw.len() - 1];
            if let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            let line = std::str::from_utf8(line).map_err(|_| ProtocolProblem::NotUtf8)?;
            if let Some(reply) = self.line(line, raw.len())? {
                return Ok(Some(reply));
            }
        }
    }

    /// Take one line (without its line ending); a reply if it completes one.
    fn line(&mut self, line: &str, raw_len: usize) -> Result<Option<Reply>, ProtocolProblem> {
        if let Some(partial) = &mut self.partial {
            partial.bytes += raw_len;
            partial.count += 1;
            if partial.bytes > MAX_REPLY_BYTES || partial.count > MAX_REPLY_LINES {
                return Err(ProtocolProblem::ReplyTooLong);
            }
            if let Some((_, data)) = &mut partial.data {
                if line == "." {
                    if let Some((text, data)) = partial.data.take() {
                        partial.lines.push(ReplyLine {
                            text,
                            data: Some(data),
                        });
                    }
                } else {
                    // Dot-stuffing: a data line that starts with "." was sent with another.
                    data.push(line.strip_prefix('.').unwrap_or(line).to_owned());
                }
                return Ok(None);
            }
        }

        let (code, sep, text) = split_status_line(line)?;
        let partial = self.partial.get_or_insert_with(|| Partial {
            code,
            lines: Vec::new(),
            data: None,
            bytes: raw_len,
            count: 1,
        });
        if partial.code != code {
            return Err(ProtocolProblem::StatusCodeChanged);
        }
        match sep {
            b'-' => {
                partial.lines.push(ReplyLine {
                    text: text.to_owned(),
                    data: None,
                });
                Ok(None)
            }
            b'+' => {
                partial.data = Some((text.to_owned(), Vec::new()));
                Ok(None)
            }
            _ => {
                partial.lines.push(ReplyLine {
                    text: text.to_owned(),
                    data: None,
                });
                Ok(self.partial.take().map(|p| Reply {
                    code: p.code,
                    lines: p.lines,
                }))
            }
        }
    }
}

/// Split `NNN<sep>text` into its status code, separator and text.
fn split_status_line(line: &str) -> Result<(u16, u8, &str), ProtocolProblem> {
    let bytes = line.as_bytes();
    if bytes.len() < 4 || !bytes[..3].iter().all(u8::is_ascii_digit) {
        return Err(ProtocolProblem::MalformedLine);
    }
    let code = bytes[..3]
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let sep = bytes[3];
    if !matches!(sep, b'-' | b'+' | b' ') {
        return Err(ProtocolProblem::MalformedLine);
    }
    // Bytes 0..4 are ASCII, so 4 is a character boundary.
    Ok((code, sep, line.get(4..).unwrap_or("")))
}

/// One whitespace-separated item of a reply line: a bare or quoted word, or `KEY=VALUE`
/// with a bare or quoted value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    /// A word (unquoted if it was quoted).
    Word(String),
    /// `KEY=VALUE` (the value unquoted if it was quoted).
    Pair(String, String),
}

/// Split a reply line into [`Token`]s, unquoting `"..."` strings (control-spec §2.1:
/// backslash escapes, including C escapes `\n \r \t` and octal `\NNN`).
pub fn tokenize(text: &str) -> Result<Vec<Token>, ProtocolProblem> {
    let mut tokens = Vec::new();
    let mut rest = text.trim_start_matches(' ');
    while !rest.is_empty() {
        let (token, after) = if rest.starts_with('"') {
            let (word, after) = unquote(rest)?;
            (Token::Word(word), after)
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            let key_end = rest[..end].find('=');
            match key_end {
                Some(eq) => {
                    let key = rest[..eq].to_owned();
                    let value_start = &rest[eq + 1..];
                    if value_start.starts_with('"') {
                        let (value, after) = unquote(value_start)?;
                        (Token::Pair(key, value), after)
                    } else {
                        let vend = value_start.find(' ').unwrap_or(value_start.len());
                        (
                            Token::Pair(key, value_start[..vend].to_owned()),
                            &value_start[vend..],
                        )
                    }
                }
                None => (Token::Word(rest[..end].to_owned()), &rest[end..]),
            }
        };
        tokens.push(token);
        rest = after.trim_start_matches(' ');
    }
    Ok(tokens)
}

/// The value of `key` among `tokens`.
pub fn pair<'a>(tokens: &'a [Token], key: &str) -> Option<&'a str> {
    tokens.iter().find_map(|t| match t {
        Token::Pair(k, v) if k == key => Some(v.as_str()),
        _ => None,
    })
}

/// The bare words among `tokens`, in order.
pub fn words(tokens: &[Token]) -> impl Iterator<Item = &str> {
    tokens.iter().filter_map(|t| match t {
        Token::Word(w) => Some(w.as_str()),
        Token::Pair(..) => None,
    })
}

/// Unquote the quoted string at the start of `s`; returns it and what follows it.
fn unquote(s: &str) -> Result<(String, &str), ProtocolProblem> {
    let mut out: Vec<u8> = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 1; // skip the opening quote
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let value = String::from_utf8(out).map_err(|_| ProtocolProblem::NotUtf8)?;
                // i + 1 is a boundary: the quote is ASCII.
                return Ok((value, s.get(i + 1..).unwrap_or("")));
            }
            b'\\' => {
                let Some(&next) = bytes.get(i + 1) else {
                    return Err(ProtocolProblem::UnterminatedQuote);
                };
                i += 2;
                match next {
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'0'..=b'7' => {
                        // Up to three octal digits, the first already taken.
                        let mut value = u32::from(next - b'0');
                        let mut digits = 1;
                        while digits < 3 {
                            match bytes.get(i) {
                                Some(&d @ b'0'..=b'7') => {
                                    value = value * 8 + u32::from(d - b'0');
                                    i += 1;
                                    digits += 1;
                                }
                                _ => break,
                            }
                        }
                        out.push(u8::try_from(value).map_err(|_| ProtocolProblem::MalformedLine)?);
                    }
                    other => out.push(other),
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Err(ProtocolProblem::UnterminatedQuote)
}

/// Quote `s` as a control-protocol `QuotedString`: backslash before `\` and `"`, C escapes
/// for CR, LF and TAB. `None` if `s` contains NUL, which Tor's C strings cannot carry.
pub fn quote(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\0' => return None,
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(bytes: &[u8]) -> Result<Vec<Reply>, ProtocolProblem> {
        let mut p = ReplyParser::new();
        p.feed(bytes);
        let mut out = Vec::new();
        while let Some(r) = p.next_reply()? {
            out.push(r);
        }
        Ok(out)
    }

    #[test]
    fn single_and_multi_line_replies() {
        let replies = parse_all(
            b"250 OK\r\n250-version=0.4.9.11\r\n250 OK\r\n650 STATUS_CLIENT NOTICE X\r\n",
        )
        .unwrap();
        assert_eq!(replies.len(), 3);
        assert_eq!(replies[0].code, 250);
        assert_eq!(replies[0].first_text(), "OK");
        assert_eq!(replies[1].value("version").as_deref(), Some("0.4.9.11"));
        assert!(replies[2].is_event());
        assert!(!replies[2].is_ok());
    }

    #[test]
    fn data_replies_are_unstuffed() {
        let replies = parse_all(b"250+config-text=\r\nA 1\r\n..hidden\r\n.\r\n250 OK\r\n").unwrap();
        assert_eq!(replies.len(), 1);
        assert_eq!(
            replies[0].lines[0].data.as_deref(),
            Some(&["A 1".to_owned(), ".hidden".to_owned()][..])
        );
        assert_eq!(
            replies[0].value("config-text").as_deref(),
            Some("A 1\n.hidden")
        );
    }

    #[test]
    fn bytes_may_arrive_one_at_a_time() {
        let input = b"250-PROTOCOLINFO 1\r\n250-AUTH METHODS=NULL\r\n250 OK\r\n650 X\r\n";
        let mut p = ReplyParser::new();
        let mut replies = Vec::new();
        for b in input {
            p.feed(&[*b]);
            while let Some(r) = p.next_reply().unwrap() {
                replies.push(r);
            }
        }
        assert_eq!(replies, parse_all(input).unwrap());
        assert_eq!(replies.len(), 2);
    }

    #[test]
    fn bare_lf_is_accepted() {
        let replies = parse_all(b"250 OK\n").unwrap();
        assert_eq!(replies[0].first_text(), "OK");
    }

    #[test]
    fn malformed_lines_are_errors() {
        for (input, want) in [
            (&b"25 OK\r\n"[..], ProtocolProblem::MalformedLine),
            (b"abc OK\r\n", ProtocolProblem::MalformedLine),
            (b"250\r\n", ProtocolProblem::MalformedLine),
            (b"250*OK\r\n", ProtocolProblem::MalformedLine),
            (b"250-a\r\n251 OK\r\n", ProtocolProblem::StatusCodeChanged),
            (b"250 \xff\r\n", ProtocolProblem::NotUtf8),
        ] {
            assert_eq!(parse_all(input), Err(want), "{input:?}");
        }
    }

    #[test]
    fn oversized_input_is_refused() {
        let mut p = ReplyParser::new();
        p.feed(&vec![b'a'; MAX_LINE + 1]);
        assert_eq!(p.next_reply(), Err(ProtocolProblem::LineTooLong));

        let mut p = ReplyParser::new();
        for _ in 0..=MAX_REPLY_LINES {
            p.feed(b"250-x\r\n");
        }
        let err = loop {
            match p.next_reply() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("no error"),
                Err(e) => break e,
            }
        };
        assert_eq!(err, ProtocolProblem::ReplyTooLong);
    }

    #[test]
    fn tokenizer_handles_quotes_and_escapes() {
        let tokens = tokenize(
            r#"NOTICE BOOTSTRAP PROGRESS=14 TAG=handshake SUMMARY="Handshaking with a \"relay\"" X="a\\b\n\101""#,
        )
        .unwrap();
        assert_eq!(words(&tokens).collect::<Vec<_>>(), ["NOTICE", "BOOTSTRAP"]);
        assert_eq!(pair(&tokens, "PROGRESS"), Some("14"));
        assert_eq!(
            pair(&tokens, "SUMMARY"),
            Some("Handshaking with a \"relay\"")
        );
        assert_eq!(pair(&tokens, "X"), Some("a\\b\nA"));
        let tokens = tokenize(r#""127.0.0.1:9050" "[::1]:9050""#).unwrap();
        assert_eq!(
            words(&tokens).collect::<Vec<_>>(),
            ["127.0.0.1:9050", "[::1]:9050"]
        );
        assert_eq!(
            tokenize(r#"A="unterminated"#),
            Err(ProtocolProblem::UnterminatedQuote)
        );
        assert_eq!(tokenize(r#""\"#), Err(ProtocolProblem::UnterminatedQuote));
    }

    #[test]
    fn quoting_round_trips() {
        for s in [
            "",
            "plain",
            "with space",
            "q\"uote",
            "back\\slash",
            "nl\n cr\r tab\t",
        ] {
            let q = quote(s).unwrap();
            assert!(!q.contains('\n') && !q.contains('\r'), "{q}");
            let (back, rest) = unquote(&q).unwrap();
            assert_eq!(back, s);
            assert_eq!(rest, "");
        }
        assert_eq!(quote("nul\0"), None);
    }

    proptest! {
        #[test]
        fn arbitrary_lines_never_panic(lines in proptest::collection::vec(".{0,80}", 0..8)) {
            let mut input = Vec::new();
            for l in &lines {
                input.extend_from_slice(l.as_bytes());
                input.extend_from_slice(b"\r\n");
            }
            if let Ok(replies) = parse_all(&input) {
                for r in replies {
                    prop_assert!(r.code < 1000);
                    let _ = tokenize(r.first_text());
                }
            }
        }

        #[test]
        fn arbitrary_control_like_lines_never_panic(
            lines in proptest::collection::vec("[0-9]{3}[- +.]([A-Z_=\" \\\\a-z0-9]){0,40}", 0..8),
        ) {
            let mut input = Vec::new();
            for l in &lines {
                input.extend_from_slice(l.as_bytes());
                input.extend_from_slice(b"\r\n");
            }
            if let Ok(replies) = parse_all(&input) {
                for r in replies {
                    for line in &r.lines {
                        let _ = tokenize(&line.text);
                    }
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_all(&bytes);
            if let Ok(s) = std::str::from_utf8(&bytes) {
                let _ = tokenize(s);
            }
        }

        #[test]
        fn quote_unquote_round_trips(s in "[^\u{0}]{0,40}") {
            let q = quote(&s).unwrap();
            let (back, rest) = unquote(&q).unwrap();
            prop_assert_eq!(back, s);
            prop_assert_eq!(rest, "");
        }
    }
}
