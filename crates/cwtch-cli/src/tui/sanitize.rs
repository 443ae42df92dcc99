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
        | '\u{034F}' // combining grapheme joiner
        | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' // Hangul fillers
        | '\u{180E}' // Mongolian vowel separator
        | '\u{200B}'..='\u{200D}' // zero-width space, non-joiner, joiner
        | '\u{2028}' | '\u{2029}' // line and paragraph separators
        | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
        | '\u{206A}'..='\u{206F}' // deprecated format characters
        | '\u{FE00}'..='\u{FE0F}' // variation selectors
        | '\u{FEFF}' // zero-width no-break space (BOM)
        | '\u{FFF9}'..='\u{FFFB}' // interlinear annotation
        | '\u{E0000}'..='\u{E007F}' // tags
        | '\u{E0100}'..='\u{E01EF}' // variation selectors supplement
    )
}

/// Pictographs and the symbols emoji are made of (❤, ✈, ⭐, 🏳, 👩, skin tones).
fn is_pictograph(c: char) -> bool {
    matches!(c,
        '\u{00A9}' | '\u{00AE}' | '\u{203C}' | '\u{2049}' | '\u{2122}' | '\u{2139}'
        | '\u{2190}'..='\u{21FF}' // arrows
        | '\u{2300}'..='\u{23FF}' // technical (⌚, ⏰)
        | '\u{25A0}'..='\u{27BF}' // shapes, symbols, dingbats
        | '\u{2900}'..='\u{297F}'
        | '\u{2B00}'..='\u{2BFF}'
        | '\u{1F000}'..='\u{1FAFF}' // pictographs, emoticons, skin tones
    )
}

/// What follows a pictograph inside one emoji and draws nothing of its own.
fn is_emoji_modifier(c: char) -> bool {
    matches!(c, '\u{FE0F}' | '\u{1F3FB}'..='\u{1F3FF}')
}

/// The scripts whose words need a zero-width (non-)joiner between two of their letters: the
/// Arabic script (Persian, Urdu), and each Indic script (its own block).
fn joining_script(c: char) -> Option<u32> {
    match c {
        '\u{0600}'..='\u{06FF}'
        | '\u{0750}'..='\u{077F}'
        | '\u{08A0}'..='\u{08FF}'
        | '\u{FB50}'..='\u{FDFF}'
        | '\u{FE70}'..='\u{FEFF}' => Some(0),
        '\u{0900}'..='\u{0DFF}' => Some(1 + (c as u32 - 0x0900) / 0x80),
        _ => None,
    }
}

/// Whether the invisible `c` is doing its ordinary job where it stands, and is kept: `prev`
/// and `next` its neighbours, `base` the last character before it that was not itself part
/// of an emoji's make-up (a modifier, a joiner, a tag). Kept: a zero-width joiner inside an
/// emoji (👩‍💻, 🏳️‍🌈) or between two letters of one Indic script (ශ්‍රී); a non-joiner
/// between two letters of one Arabic or Indic script; an emoji's variation selector after a
/// pictograph (❤️) or a keycap's base (1️⃣); tags after a black flag (🏴 + tags: a
/// region's flag). Anywhere else each of them can hide in or disguise a name, and gets a
/// stand-in.
fn ordinary_in_place(prev: Option<char>, base: Option<char>, c: char, next: Option<char>) -> bool {
    let same_script = || {
        matches!((prev.and_then(joining_script), next.and_then(joining_script)),
            (Some(a), Some(b)) if a == b)
    };
    match c {
        '\u{200D}' => {
            let emoji = base.is_some_and(is_pictograph)
                && prev.is_some_and(|p| is_pictograph(p) || is_emoji_modifier(p))
                && next.is_some_and(is_pictograph);
            emoji || same_script()
        }
        '\u{200C}' => same_script(),
        '\u{FE0E}' | '\u{FE0F}' => {
            prev.is_some_and(is_pictograph)
                || (prev.is_some_and(|p| p.is_ascii_digit() || p == '#' || p == '*')
                    && next == Some('\u{20E3}'))
        }
        '\u{E0020}'..='\u{E007F}' => base == Some('\u{1F3F4}'),
        _ => false,
    }
}

/// Each character of `s`, and whether it must be replaced by a stand-in (dangerous, and not
/// doing an ordinary job where it stands).
pub(crate) fn classify(s: &str) -> impl Iterator<Item = (char, bool)> + '_ {
    let mut chars = s.chars().peekable();
    let (mut prev, mut base) = (None, None);
    std::iter::from_fn(move || {
        let c = chars.next()?;
        let replace = is_dangerous(c) && !ordinary_in_place(prev, base, c, chars.peek().copied());
        let part_of_emoji =
            is_emoji_modifier(c) || c == '\u{200D}' || ('\u{E0020}'..='\u{E007F}').contains(&c);
        if !part_of_emoji {
            base = Some(c);
        }
        prev = Some(c);
        Some((c, replace))
    })
}

/// The first character in `s` that must not reach a terminal as it is, where it stands: what
/// [`inert`] and the CLI's escaping must never let through.
#[cfg(test)]
pub(crate) fn dangerous_in(s: &str) -> Option<char> {
    classify(s).find(|(_, replace)| *replace).map(|(c, _)| c)
}

/// `s` with every dangerous character replaced by a visible stand-in (see the module).
/// Line breaks too: split text into lines first where lines are wanted ([`inert_lines`]).
pub(crate) fn inert(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (c, replace) in classify(s) {
        if replace {
            push_inert(&mut out, c);
        } else {
            out.push(c);
        }
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
    fn what_emoji_and_scripts_need_is_kept_and_nothing_else() {
        let kept = [
            "👩\u{200D}💻",
            "🏳\u{FE0F}\u{200D}🌈",
            "👍\u{1F3FD}",
            "🧑\u{1F3FD}\u{200D}🚀",
            "❤\u{FE0F}",
            "1\u{FE0F}\u{20E3}",
            "🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}",
            "क\u{094D}\u{200C}ष",
            "ශ\u{0DCA}\u{200D}ර\u{0DD3}",
            "می\u{200C}خواهم",
        ];
        for ok in kept {
            assert_eq!(inert(ok), ok, "{ok:?}");
        }
        // The same invisible characters where they only hide something: shown. (Checked
        // here one by one, not by the rule `inert` itself uses.)
        for (hostile, shown) in [
            ("b\u{FE0F}ob", "b<U+FE0F>ob"),
            ("b\u{FE0F}\u{200D}\u{FE0F}ob", "b<U+FE0F><U+200D><U+FE0F>ob"),
            ("Ма\u{200C}рия", "Ма<U+200C>рия"),
            ("ë\u{200C}ë", "ë<U+200C>ë"),
            ("क\u{200C}ශ", "क<U+200C>ශ"),
            ("a\u{E0041}b", "a<U+E0041>b"),
            ("x\u{034F}y", "x<U+034F>y"),
            ("\u{3164}bob", "<U+3164>bob"),
            ("a\u{E0100}", "a<U+E0100>"),
        ] {
            assert_eq!(inert(hostile), shown, "{hostile:?}");
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
            prop_assert_eq!(dangerous_in(&out), None, "survived in {:?}", out);
            // Independently of that rule: what survives of the dangerous is only ever a
            // joiner, a variation selector or a tag, never a control or a bidi character.
            for c in out.chars().filter(|c| is_dangerous(*c)) {
                let allowed = matches!(c,
                    '\u{200C}' | '\u{200D}' | '\u{FE0E}' | '\u{FE0F}' | '\u{E0020}'..='\u{E007F}');
                prop_assert!(allowed, "{:?} survived in {:?}", c, out);
            }
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
