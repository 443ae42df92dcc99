//! Remote text made inert: the one function every string passes through before it reaches a
//! widget.
//!
//! A message, a name, a status, a group's name or a timestamp comes from someone else and may
//! be hostile. Terminal control characters (C0, DEL, C1: ESC starts CSI, OSC — hyperlinks,
//! clipboard writes, window titles — and DCS sequences; CSI, OSC and DCS also have one-byte
//! C1 forms), bidirectional overrides and isolates (which reorder what follows them), and the
//! other invisible format characters that can hide or disguise text are replaced by visible
//! stand-ins: C0 controls by their Unicode control pictures (`␛` for ESC, `␡` for DEL), the
//! others by `<U+XXXX>`. What follows an ESC (`[31m`, `]8;;http…`) is left as the plain text
//! it is: without the ESC it means nothing to a terminal.

/// Whether `c` must never reach the terminal as it is.
pub(crate) fn is_dangerous(c: char) -> bool {
    c.is_control() // C0, DEL, C1
        || is_bidi_control(c)
        || is_invisible_format(c)
}

/// Bidirectional embeddings, overrides, isolates and marks (Unicode's `Bidi_Control`).
pub(crate) fn is_bidi_control(c: char) -> bool {
    matches!(c,
        '\u{061C}' // ARABIC LETTER MARK
        | '\u{200E}' | '\u{200F}' // LRM, RLM
        | '\u{202A}'..='\u{202E}' // LRE, RLE, PDF, LRO, RLO
        | '\u{2066}'..='\u{2069}' // LRI, RLI, FSI, PDI
    )
}

/// Other characters that draw nothing, or break lines, and can disguise text.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' // soft hyphen
        | '\u{180E}' // Mongolian vowel separator
        | '\u{200B}'..='\u{200D}' // zero-width space, non-joiner, joiner
        | '\u{2028}' | '\u{2029}' // line and paragraph separators
        | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
        | '\u{206A}'..='\u{206F}' // deprecated format characters
        | '\u{FEFF}' // zero-width no-break space (BOM)
        | '\u{FFF9}'..='\u{FFFB}' // interlinear annotation
    )
}

/// `s` with every dangerous character replaced by a visible stand-in (see the module).
/// Line breaks too: split text into lines first where lines are wanted ([`inert_lines`]).
pub(crate) fn inert(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_inert(&mut out, c);
    }
    out
}

fn push_inert(out: &mut String, c: char) {
    match c {
        // C0 controls: their control pictures (U+2400 + code); DEL: U+2421.
        '\u{0}'..='\u{1F}' => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('?')),
        '\u{7F}' => out.push('\u{2421}'),
        c if is_dangerous(c) => {
            out.push_str(&format!("<U+{:04X}>", c as u32));
        }
        c => out.push(c),
    }
}

/// The lines of a multi-line text (`\n`, `\r\n`), each made inert.
pub(crate) fn inert_lines(s: &str) -> Vec<String> {
    s.split('\n')
        .map(|l| inert(l.strip_suffix('\r').unwrap_or(l)))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn assert_inert(s: &str) {
        for c in s.chars() {
            assert!(!is_dangerous(c), "{c:?} in {s:?}");
        }
    }

    #[test]
    fn escape_sequences_lose_their_escape() {
        // CSI (colour, cursor move, clear screen), OSC 8 hyperlink, OSC 52 clipboard write,
        // OSC 0 title, DCS, and the one-byte C1 forms.
        let cases = [
            ("\x1b[31mred\x1b[0m", "␛[31mred␛[0m"),
            ("\x1b[2J\x1b[H", "␛[2J␛[H"),
            (
                "\x1b]8;;https://evil.example/\x07click\x1b]8;;\x07",
                "␛]8;;https://evil.example/␇click␛]8;;␇",
            ),
            ("\x1b]52;c;cm0gLXJmIH4=\x1b\\", "␛]52;c;cm0gLXJmIH4=␛\\"),
            ("\x1b]0;title\x07", "␛]0;title␇"),
            ("\x1bP1$qm\x1b\\", "␛P1$qm␛\\"),
            ("\u{9b}31m", "<U+009B>31m"),
            ("\u{9d}52;c;x\u{9c}", "<U+009D>52;c;x<U+009C>"),
            ("\u{90}q\u{9c}", "<U+0090>q<U+009C>"),
            ("a\rb\x08c\x7fd\x00", "a␍b␈c␡d␀"),
        ];
        for (hostile, shown) in cases {
            assert_eq!(inert(hostile), shown);
            assert_inert(&inert(hostile));
        }
    }

    #[test]
    fn bidi_and_invisible_characters_are_shown() {
        assert_eq!(inert("invoice\u{202E}fdp.exe"), "invoice<U+202E>fdp.exe");
        assert_eq!(
            inert("\u{2066}a\u{2069}\u{200F}\u{200B}\u{FEFF}"),
            "<U+2066>a<U+2069><U+200F><U+200B><U+FEFF>"
        );
        // Ordinary text, including other scripts and emoji, is untouched.
        for ok in ["héllo wörld", "שלום", "مرحبا", "你好", "🙂👍", "a b\u{301}"] {
            assert_eq!(inert(ok), ok);
        }
    }

    #[test]
    fn lines_split_then_made_inert() {
        assert_eq!(inert_lines("a\r\nb\x1b[1m\nc"), vec!["a", "b␛[1m", "c"]);
        assert_eq!(inert("a\nb\tc"), "a␊b␉c");
    }

    proptest! {
        #[test]
        fn no_dangerous_character_survives(s in any::<String>()) {
            let out = inert(&s);
            for c in out.chars() {
                prop_assert!(!is_dangerous(c), "{:?} survived in {:?}", c, out);
                let c1 = ('\u{80}'..='\u{9f}').contains(&c);
                prop_assert!(!c1, "C1 control survived");
            }
            for line in inert_lines(&s) {
                prop_assert!(line.chars().all(|c| !is_dangerous(c)));
            }
        }

        #[test]
        fn harmless_text_is_unchanged(s in "[a-zA-Z0-9 .,:;!?'\"()\\[\\]{}<>/@#%&*+=_~-]{0,64}") {
            prop_assert_eq!(inert(&s), s);
        }
    }
}
