//! Tor's control port, as the managed-tor backend reads it: the reply/event parser fed
//! arbitrary bytes split at arbitrary points, the tokenizer of reply lines, the event and
//! `GETINFO` value parsers, and the control-port file.
//!
//! Asserts: splitting the stream differently never changes the replies or the error; every
//! reply re-encodes (with dot-stuffing) to bytes that parse to the same reply; every line that
//! tokenizes re-encodes (every value quoted) to a line that tokenizes to the same tokens;
//! bootstrap and `HS_DESC` events built with any summary or address parse back to them.
#![no_main]

use connectivity::fuzzing::{
    bootstrap_phase, hs_desc, pair, parse_control_port_file, quote, service_id, socks_listener,
    tokenize, words, Reply, ReplyParser, Token, EVENT_CODE,
};
use connectivity::{AcnStatus, ProtocolProblem};
use libfuzzer_sys::fuzz_target;

/// Every reply in `chunks` fed in order, and how the stream ended (`None`: needs more bytes).
fn parse<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> (Vec<Reply>, Option<ProtocolProblem>) {
    let mut p = ReplyParser::new();
    let mut out = Vec::new();
    for chunk in chunks {
        p.feed(chunk);
        loop {
            match p.next_reply() {
                Ok(Some(r)) => out.push(r),
                Ok(None) => break,
                // After an error the parser is dead: the connection is closed.
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

/// A reply as Tor would send it: `-` mid lines, `+` lines with dot-stuffed data, the end line.
fn encode(r: &Reply) -> Vec<u8> {
    let mut out = Vec::new();
    let last = r.lines.len() - 1;
    for (i, line) in r.lines.iter().enumerate() {
        let sep = match (&line.data, i == last) {
            (Some(_), _) => '+',
            (None, false) => '-',
            (None, true) => ' ',
        };
        out.extend_from_slice(format!("{:03}{sep}{}\r\n", r.code, line.text).as_bytes());
        if let Some(data) = &line.data {
            for d in data {
                if d.starts_with('.') {
                    out.push(b'.');
                }
                out.extend_from_slice(d.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b".\r\n");
        }
    }
    out
}

/// Tokens back to a line, every word and value quoted. `None` if one holds a NUL.
fn untokenize(tokens: &[Token]) -> Option<String> {
    let mut parts = Vec::new();
    for t in tokens {
        parts.push(match t {
            Token::Word(w) => quote(w)?,
            Token::Pair(k, v) => format!("{k}={}", quote(v)?),
        });
    }
    Some(parts.join(" "))
}

fn check_line(text: &str, n: usize) {
    assert!(!text.contains('\n'));
    if let Ok(tokens) = tokenize(text) {
        for t in &tokens {
            if let Token::Pair(k, _) = t {
                assert!(!k.contains(' ') && !k.contains('=') && !k.starts_with('"'));
                assert!(pair(&tokens, k).is_some());
            }
        }
        let _ = words(&tokens).count();
        if let Some(line) = untokenize(&tokens) {
            assert_eq!(tokenize(&line).as_ref(), Ok(&tokens), "{line:?}");
        }
    }
    // (Keywords may arrive quoted and escaped, so the text need not contain them literally.)
    if let Some(status) = bootstrap_phase(text) {
        assert!(status.progress <= 100);
    }
    let _ = hs_desc(text);
    if let Some(addr) = socks_listener(text) {
        // A wildcard listener is dialed on loopback.
        assert!(!addr.ip().is_unspecified());
    }

    // Any text (without NUL) survives quoting, as a summary and as an address.
    if let Some(q) = quote(text) {
        assert_eq!(tokenize(&q), Ok(vec![Token::Word(text.to_owned())]));
        let progress = u8::try_from(n % 101).expect("at most 100");
        assert_eq!(
            bootstrap_phase(&format!(
                "STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS={progress} TAG=x SUMMARY={q}"
            )),
            Some(AcnStatus::new(progress, text))
        );
        assert_eq!(
            hs_desc(&format!("HS_DESC UPLOADED {q} UNKNOWN $AAAA~relay")),
            Some(("UPLOADED".to_owned(), text.to_owned()))
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let step = usize::from(first % 32) + 1;

    let (replies, end) = parse(std::iter::once(stream));
    assert_eq!(parse(stream.chunks(step)), (replies.clone(), end));

    for (n, r) in replies.iter().enumerate() {
        assert!(r.code < 1000 && !r.lines.is_empty());
        assert!(r.lines.last().is_some_and(|l| l.data.is_none()));
        assert_eq!(r.is_event(), r.code == EVENT_CODE);
        assert_eq!(r.is_ok(), (200..300).contains(&r.code));
        let (again, err) = parse(std::iter::once(&encode(r)[..]));
        assert_eq!((again.as_slice(), err), (std::slice::from_ref(r), None));

        let _ = service_id(r);
        for line in &r.lines {
            check_line(&line.text, n);
            if let Some(data) = &line.data {
                for d in data {
                    assert!(!d.contains('\n'));
                }
                if let Some(key) = line.text.strip_suffix('=') {
                    assert!(r.value(key).is_some());
                }
            }
            if let Some(v) = r.value("net/listeners/socks") {
                let _ = socks_listener(&v);
            }
        }
    }

    // The control-port file Tor writes (`PORT=127.0.0.1:NNNN`).
    let text = String::from_utf8_lossy(stream);
    if let Some(addr) = parse_control_port_file(&text) {
        assert!(text.contains("PORT="));
        assert_eq!(
            parse_control_port_file(&format!("PORT={addr}\n")),
            Some(addr)
        );
    }
});
