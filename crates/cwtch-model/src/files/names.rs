//! File names from a peer are suggestions: made safe before anything is written.

/// Longest name written, in bytes (most file systems' limit).
pub const MAX_NAME_BYTES: usize = 255;
/// The name used when nothing of the suggestion is usable.
pub const FALLBACK_NAME: &str = "download";

/// A safe local file name for a peer's suggested `name`: its last path component only (no
/// directories, no traversal; a backslash becomes `_`), without control characters, bidirectional-override and
/// invisible formatting characters, without leading dots (no hidden files) or trailing dots
/// and spaces, not a device name, at most [`MAX_NAME_BYTES`] bytes (the extension kept when it
/// can be), and never empty.
pub fn safe_file_name(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or_default();
    // A backslash is a separator on Windows, and part of a name here: kept as `_`, so that
    // no system reads a folder into the name and nothing of it is lost.
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !is_invisible_format(*c))
        .map(|c| if c == '\\' { '_' } else { c })
        .collect();
    let trimmed = cleaned
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' ']);
    let mut out = if trimmed.is_empty() {
        FALLBACK_NAME.to_owned()
    } else {
        trimmed.to_owned()
    };
    let stem = out
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    const DEVICES: [&str; 6] = ["CON", "PRN", "AUX", "NUL", "COM1", "LPT1"];
    if DEVICES.contains(&stem.as_str()) {
        out.insert(0, '_');
    }
    // Cut to length, which may leave a space or a dot at the end: trimmed as above, so that
    // a safe name stays as it is when made safe again.
    let cut = truncate_keeping_extension(&out, MAX_NAME_BYTES);
    match cut.trim_end_matches(['.', ' ']) {
        "" => FALLBACK_NAME.to_owned(),
        t => t.to_owned(),
    }
}

/// The `n`th alternative to `name` when a file of that name exists: `stem (n).ext`.
pub fn numbered_file_name(name: &str, n: u32) -> String {
    let (stem, ext) = split_extension(name);
    let suffix = match ext {
        Some(ext) => format!(" ({n}).{ext}"),
        None => format!(" ({n})"),
    };
    let room = MAX_NAME_BYTES.saturating_sub(suffix.len());
    format!("{}{suffix}", truncate_at_char(stem, room))
}

/// Bidirectional controls and other invisible formatting characters that would make a name
/// display differently from what it is.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}'
        | '\u{FEFF}' | '\u{061C}' | '\u{FFF9}'..='\u{FFFB}')
}

fn split_extension(name: &str) -> (&str, Option<&str>) {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() && ext.len() <= 16 => {
            (stem, Some(ext))
        }
        _ => (name, None),
    }
}

fn truncate_at_char(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn truncate_keeping_extension(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    match split_extension(name) {
        (stem, Some(ext)) => {
            let room = max - ext.len() - 1;
            format!("{}.{ext}", truncate_at_char(stem, room))
        }
        (stem, None) => truncate_at_char(stem, max).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn hostile_names() {
        for (given, want) in [
            ("photo.jpg", "photo.jpg"),
            ("../../etc/passwd", "passwd"),
            ("..\\..\\boot.ini", "_.._boot.ini"),
            ("we ird\\tname $(x).txt", "we ird_tname $(x).txt"),
            // Cut to 255 bytes right after a space: not left ending in it.
            (&format!("{} b", "a".repeat(254)), &"a".repeat(254)),
            ("/abs/path/x.txt", "x.txt"),
            (".bashrc", "bashrc"),
            ("...", "download"),
            ("..", "download"),
            ("", "download"),
            ("dir/", "download"),
            ("a\u{0}b\nc\u{1b}[31m.txt", "abc[31m.txt"),
            ("evil\u{202E}gpj.exe", "evilgpj.exe"),
            ("name. . ", "name"),
            ("con.txt", "_con.txt"),
            ("NUL", "_NUL"),
        ] {
            assert_eq!(safe_file_name(given), want, "{given:?}");
        }
        let long = format!("{}.tar.gz", "é".repeat(300));
        let safe = safe_file_name(&long);
        assert!(safe.len() <= MAX_NAME_BYTES);
        assert!(safe.ends_with(".gz"));
    }

    #[test]
    fn numbering() {
        assert_eq!(numbered_file_name("a.txt", 2), "a (2).txt");
        assert_eq!(numbered_file_name("archive", 1), "archive (1)");
        let long = "x".repeat(MAX_NAME_BYTES - 1) + ".txt";
        assert!(numbered_file_name(&long, 12).len() <= MAX_NAME_BYTES);
        assert!(numbered_file_name(&long, 12).ends_with(" (12).txt"));
    }

    proptest! {
        #[test]
        fn always_safe(name in "\\PC{0,300}|[./\\\\ a-z\u{202E}\u{0}-\u{1f}]{0,40}") {
            let s = safe_file_name(&name);
            prop_assert!(!s.is_empty());
            prop_assert!(s.len() <= MAX_NAME_BYTES);
            prop_assert!(!s.contains(['/', '\\']));
            prop_assert!(!s.starts_with('.'));
            prop_assert!(!s.chars().any(|c| c.is_control() || is_invisible_format(c)));
            prop_assert_ne!(s.as_str(), "..");
            prop_assert_eq!(safe_file_name(&s), s.clone());
            let n = numbered_file_name(&s, 7);
            prop_assert!(n.len() <= MAX_NAME_BYTES && !n.contains('/'));
        }
    }
}
