//! Go's `unicode/utf8.DecodeRune`, which both halves of `encoding/json` use to coerce
//! strings to UTF-8 one byte at a time.

/// Decode the first rune of `s` exactly as Go's `utf8.DecodeRune` does.
///
/// Returns `Some((char, length))` for a well-formed UTF-8 sequence and `None` when Go would
/// return `(RuneError, 1)`: an invalid lead byte, a truncated or ill-formed sequence, an overlong
/// encoding, a surrogate or a value above U+10FFFF. In every error case Go consumes exactly
/// **one** byte, which is why `e2 82 20` becomes two U+FFFD and a space in Go but only one
/// U+FFFD in Rust's `String::from_utf8_lossy` (which replaces maximal subparts).
/// Also returns `None` for an empty slice (Go returns `(RuneError, 0)` there; callers never
/// ask).
pub(crate) fn decode_rune(s: &[u8]) -> Option<(char, usize)> {
    let b0 = *s.first()?;
    if b0 < 0x80 {
        return Some((char::from(b0), 1));
    }
    // Go's `first` and `acceptRanges` tables: the length of the sequence, and the range the
    // second byte must fall in (which is what excludes overlongs, surrogates and > U+10FFFF).
    let (len, lo, hi) = match b0 {
        0xc2..=0xdf => (2, 0x80, 0xbf),
        0xe0 => (3, 0xa0, 0xbf),
        0xe1..=0xec | 0xee..=0xef => (3, 0x80, 0xbf),
        0xed => (3, 0x80, 0x9f),
        0xf0 => (4, 0x90, 0xbf),
        0xf1..=0xf3 => (4, 0x80, 0xbf),
        0xf4 => (4, 0x80, 0x8f),
        _ => return None,
    };
    let b1 = *s.get(1)?;
    if !(lo..=hi).contains(&b1) {
        return None;
    }
    for k in 2..len {
        if !(0x80..=0xbf).contains(s.get(k)?) {
            return None;
        }
    }
    let seq = s.get(..len)?;
    std::str::from_utf8(seq)
        .ok()?
        .chars()
        .next()
        .map(|c| (c, len))
}

/// Go's conversion of arbitrary bytes to valid UTF-8 as `encoding/json` performs it: every
/// byte that Go's `utf8.DecodeRune` rejects becomes U+FFFD.
///
/// This is what a Go peer sees in a `string` field after a JSON round trip of bytes that were
/// not valid UTF-8.
pub fn go_lossy_utf8(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while let Some(rest) = s.get(i..).filter(|r| !r.is_empty()) {
        match decode_rune(rest) {
            Some((c, n)) => {
                out.push(c);
                i += n;
            }
            None => {
                out.push(char::REPLACEMENT_CHARACTER);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_examples_from_the_brief() {
        assert_eq!(go_lossy_utf8(b"\xe2\x82 "), "\u{fffd}\u{fffd} ");
        assert_eq!(go_lossy_utf8(b"\xed\xa0\x80"), "\u{fffd}\u{fffd}\u{fffd}");
        assert_eq!(go_lossy_utf8(b"\xf4\x90\x80\x80"), "\u{fffd}".repeat(4));
        assert_eq!(go_lossy_utf8(b"\xc0\x80"), "\u{fffd}\u{fffd}");
        assert_eq!(go_lossy_utf8(b"\xe0\x80\x80"), "\u{fffd}".repeat(3));
        assert_eq!(go_lossy_utf8(b"\xf0\x80\x80\x80"), "\u{fffd}".repeat(4));
        // Rust's maximal-subpart replacement differs on the first one.
        assert_eq!(String::from_utf8_lossy(b"\xe2\x82 "), "\u{fffd} ");
    }

    #[test]
    fn valid_sequences_of_every_length() {
        for s in [
            "a", "\u{7f}", "\u{80}", "é", "\u{7ff}", "\u{800}", "\u{d7ff}", "\u{e000}",
        ] {
            assert_eq!(
                decode_rune(s.as_bytes()),
                s.chars().next().map(|c| (c, s.len()))
            );
        }
        for s in ["\u{fffd}", "\u{ffff}", "\u{10000}", "😀", "\u{10ffff}"] {
            assert_eq!(
                decode_rune(s.as_bytes()),
                s.chars().next().map(|c| (c, s.len()))
            );
        }
        assert_eq!(decode_rune(b""), None);
        assert_eq!(decode_rune(b"\xf0\x9f\x98"), None);
    }
}
