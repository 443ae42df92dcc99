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

/// Pictographs (emoji), their skin tones and the emoji variation selector: what a zero-width
/// joiner joins in an emoji sequence (👩‍💻, 🏳️‍🌈).
fn is_emoji_part(c: char) -> bool {
    matches!(c,
        '\u{2600}'..='\u{27BF}' // miscellaneous symbols, dingbats (♀, ♂, ⚕, ✈, ❤)
        | '\u{2B00}'..='\u{2BFF}' // arrows and symbols (⬛, ⭐)
        | '\u{FE0F}' // emoji presentation selector
        | '\u{1F000}'..='\u{1FAFF}' // pictographs, emoticons, symbols, skin tones
    )
}

/// Whether the dangerous `c`, between `prev` and `next`, is a joiner doing its ordinary job and
/// is kept: a zero-width joiner inside an emoji sequence, or a zero-width non-joiner between
/// two letters of a script that uses it (Persian, Indic: not ASCII). Anywhere else they can
/// disguise a name, and get a stand-in.
pub(crate) fn is_ordinary_joiner(prev: Option<char>, c: char, next: Option<char>) -> bool {
    match (prev, c, next) {
        (Some(p), '\u{200D}', Some(n)) => is_emoji_part(p) && is_emoji_part(n),
        (Some(p), '\u{200C}', Some(n)) => {
            !p.is_ascii() && !n.is_ascii() && p.is_alphabetic() && n.is_alphabetic()
        }
        _ => false,
    }
}

/// The first dangerous character in `s` that is not an ordinary joiner in its place: what
/// [`inert`] and the CLI's escaping must never let through.
#[cfg(test)]
pub(crate) fn dangerous_in(s: &str) -> Option<char> {
    let mut prev = None;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if is_dangerous(c) && !is_ordinary_joiner(prev, c, chars.peek().copied()) {
            return Some(c);
        }
        prev = Some(c);
    }
    None
}

/// `s` with every dangerous character replaced by a visible stand-in (see the module).
/// Line breaks too: split text into lines first where lines are wanted ([`inert_lines`]).
pub(crate) fn inert(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev = None;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if is_ordinary_joiner(prev, c, chars.peek().copied()) {
            out.push(c);
        } else {
            push_inert(&mut out, c);
        }
        prev = Some(c);
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
        assert_eq!(dangerous_in(s), None, "in {s:?}");
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
        // Ordinary text, including other scripts and emoji, is untouched: emoji sequences
        // keep their joiners, as does Persian its non-joiner.
        for ok in [
            "héllo wörld",
            "שלום",
            "مرحبا",
            "你好",
            "🙂👍",
            "a b\u{301}",
            "👩\u{200D}💻 🏳\u{FE0F}\u{200D}🌈 👨\u{200D}👩\u{200D}👧\u{200D}👦",
            "می\u{200C}خواهم",
        ] {
            assert_eq!(inert(ok), ok);
            assert_inert(ok);
        }
        // Anywhere else a joiner could disguise a name: shown.
        assert_eq!(inert("b\u{200D}ob"), "b<U+200D>ob");
        assert_eq!(inert("bo\u{200C}b"), "bo<U+200C>b");
        assert_eq!(inert("\u{200D}👩"), "<U+200D>👩");
        assert_eq!(inert("👩\u{200D}\u{200D}💻"), "👩<U+200D><U+200D>💻");
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
            prop_assert_eq!(dangerous_in(&out), None, "survived in {:?}", out);
            for c in out.chars() {
                let c1 = ('\u{80}'..='\u{9f}').contains(&c);
                prop_assert!(!c1, "C1 control survived");
            }
            for line in inert_lines(&s) {
                prop_assert_eq!(dangerous_in(&line), None);
            }
        }

        #[test]
        fn harmless_text_is_unchanged(s in "[a-zA-Z0-9 .,:;!?'\"()\\[\\]{}<>/@#%&*+=_~-]{0,64}") {
            prop_assert_eq!(inert(&s), s);
        }
    }
}
