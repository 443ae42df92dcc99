//! Editing one line of text at a cursor (the compose line): a pure function of the text, the
//! cursor (a byte offset on a character boundary; `text.len()` is the end) and the edit.

/// One editing step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Edit {
    /// Type a character before the cursor.
    Insert(char),
    /// Paste text before the cursor.
    InsertStr(String),
    /// Delete the character before the cursor.
    Backspace,
    /// Delete the character under the cursor.
    Delete,
    Left,
    Right,
    /// To the start of the word before the cursor (Ctrl-← or Alt-b).
    WordLeft,
    /// To the end of the word after the cursor (Ctrl-→ or Alt-f).
    WordRight,
    /// To the start of the line (Ctrl-A).
    Start,
    /// To the end of the line (Ctrl-E).
    End,
    /// Delete the word before the cursor (Ctrl-W).
    DeleteWordBack,
    /// Delete everything before the cursor (Ctrl-U).
    DeleteToStart,
    /// Delete everything from the cursor on (Ctrl-K).
    DeleteToEnd,
}

/// The boundary of the character before `at` (0 at the start).
fn prev(text: &str, at: usize) -> usize {
    text[..at].char_indices().next_back().map_or(0, |(i, _)| i)
}

/// The boundary after the character at `at` (the end at the end).
fn next(text: &str, at: usize) -> usize {
    text[at..]
        .chars()
        .next()
        .map_or(text.len(), |c| at + c.len_utf8())
}

/// The start of the word before `at`: back over spaces, then over the word.
fn word_start(text: &str, at: usize) -> usize {
    let mut i = at;
    while i > 0 && text[prev(text, i)..i].chars().all(char::is_whitespace) {
        i = prev(text, i);
    }
    while i > 0 && !text[prev(text, i)..i].chars().all(char::is_whitespace) {
        i = prev(text, i);
    }
    i
}

/// The end of the word after `at`: on over spaces, then over the word.
fn word_end(text: &str, at: usize) -> usize {
    let mut i = at;
    while i < text.len() && text[i..next(text, i)].chars().all(char::is_whitespace) {
        i = next(text, i);
    }
    while i < text.len() && !text[i..next(text, i)].chars().all(char::is_whitespace) {
        i = next(text, i);
    }
    i
}

/// Apply `edit` to `text` with the cursor at `at` (clamped to the text, and back to a
/// character boundary); the cursor after it.
pub(crate) fn apply(text: &mut String, at: usize, edit: &Edit) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    match edit {
        Edit::Insert(c) => {
            text.insert(at, *c);
            at + c.len_utf8()
        }
        Edit::InsertStr(s) => {
            text.insert_str(at, s);
            at + s.len()
        }
        Edit::Backspace => {
            let p = prev(text, at);
            text.replace_range(p..at, "");
            p
        }
        Edit::Delete => {
            let n = next(text, at);
            text.replace_range(at..n, "");
            at
        }
        Edit::Left => prev(text, at),
        Edit::Right => next(text, at),
        Edit::WordLeft => word_start(text, at),
        Edit::WordRight => word_end(text, at),
        Edit::Start => 0,
        Edit::End => text.len(),
        Edit::DeleteWordBack => {
            let p = word_start(text, at);
            text.replace_range(p..at, "");
            p
        }
        Edit::DeleteToStart => {
            text.replace_range(..at, "");
            0
        }
        Edit::DeleteToEnd => {
            text.truncate(at);
            at
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(start: &str, at: usize, edits: &[Edit]) -> (String, usize) {
        let mut t = start.to_owned();
        let mut at = at;
        for e in edits {
            at = apply(&mut t, at, e);
        }
        (t, at)
    }

    #[test]
    fn editing_in_the_middle_of_a_line() {
        let end = "hello world".len();
        assert_eq!(
            run("hello world", end, &[Edit::WordLeft, Edit::Insert('X')]),
            ("hello Xworld".into(), 7)
        );
        assert_eq!(
            run("hello world", end, &[Edit::DeleteWordBack]),
            ("hello ".into(), 6)
        );
        assert_eq!(
            run("hello  world  ", 14, &[Edit::DeleteWordBack]),
            ("hello  ".into(), 7)
        );
        assert_eq!(
            run("hello world", 0, &[Edit::WordRight, Edit::DeleteToEnd]),
            ("hello".into(), 5)
        );
        assert_eq!(
            run("hello world", 6, &[Edit::DeleteToStart]),
            ("world".into(), 0)
        );
        assert_eq!(
            run("héllo", 0, &[Edit::Right, Edit::Right, Edit::Backspace]),
            ("hllo".into(), 1)
        );
        assert_eq!(
            run("héllo", 1, &[Edit::Delete, Edit::Insert('e')]),
            ("hello".into(), 2)
        );
        assert_eq!(
            run("ab", 0, &[Edit::Backspace, Edit::Left]),
            ("ab".into(), 0)
        );
        assert_eq!(run("ab", 2, &[Edit::Delete, Edit::Right]), ("ab".into(), 2));
        assert_eq!(
            run("ab", 1, &[Edit::InsertStr("你好".into()), Edit::End]),
            ("a你好b".into(), 8)
        );
        assert_eq!(run("ab", 1, &[Edit::Start]), ("ab".into(), 0));
        // A cursor off a boundary (or past the end) is taken back to one.
        assert_eq!(run("你", 1, &[Edit::Insert('x')]), ("x你".into(), 1));
        assert_eq!(run("ab", 99, &[Edit::Insert('c')]), ("abc".into(), 3));
    }

    proptest::proptest! {
        /// Whatever the edits, the cursor stays on a boundary within the text; typing then
        /// deleting it back leaves the text as it was; moving never changes the text.
        #[test]
        fn edits_keep_the_cursor_on_the_text(
            start in "[a b你é]{0,12}",
            at in 0usize..40,
            edits in proptest::collection::vec(0u8..13, 0..20),
            c in proptest::prelude::any::<char>(),
        ) {
            let mut t = start.clone();
            let mut at = at;
            for e in edits {
                let edit = match e {
                    0 => Edit::Insert(c),
                    1 => Edit::InsertStr("x y".into()),
                    2 => Edit::Backspace,
                    3 => Edit::Delete,
                    4 => Edit::Left,
                    5 => Edit::Right,
                    6 => Edit::WordLeft,
                    7 => Edit::WordRight,
                    8 => Edit::Start,
                    9 => Edit::End,
                    10 => Edit::DeleteWordBack,
                    11 => Edit::DeleteToStart,
                    _ => Edit::DeleteToEnd,
                };
                let before = t.clone();
                at = apply(&mut t, at, &edit);
                proptest::prop_assert!(at <= t.len() && t.is_char_boundary(at));
                if matches!(edit, Edit::Left | Edit::Right | Edit::WordLeft | Edit::WordRight | Edit::Start | Edit::End) {
                    proptest::prop_assert_eq!(&t, &before);
                }
                let (typed, _) = {
                    let mut u = t.clone();
                    let a = apply(&mut u, at, &Edit::Insert(c));
                    let a = apply(&mut u, a, &Edit::Backspace);
                    (u, a)
                };
                proptest::prop_assert_eq!(&typed, &t);
            }
        }
    }
}
