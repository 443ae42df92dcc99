//! Reading passwords (and texts) from stdin, one line at a time.
//!
//! Lines are read through the process-wide buffered stdin, so what follows a line we read
//! stays available to the next reader (a tor control password read by the network layer).

use std::io::{BufRead, IsTerminal, Read, Write};

use zeroize::Zeroizing;

use crate::error::CliError;
use crate::protocol::Secret;

/// Longest password line.
const MAX_PASSWORD: u64 = 4096;
/// Longest text read with `send ... -` (the text limit is 7000 characters, at most 4 bytes
/// each).
const MAX_TEXT: u64 = 64 * 1024;

/// Whether stdin is a terminal (then we prompt on stderr).
pub(crate) fn interactive() -> bool {
    std::io::stdin().is_terminal()
}

fn prompt(what: &str) {
    if interactive() {
        let mut err = std::io::stderr();
        let _ = write!(err, "{what}: ");
        let _ = err.flush();
    }
}

/// One line of stdin, without its line ending. `None` at end of input.
fn line(max: u64) -> Result<Option<Zeroizing<String>>, CliError> {
    let mut s = Zeroizing::new(String::new());
    let n = std::io::stdin()
        .lock()
        .take(max)
        .read_line(&mut s)
        .map_err(|e| CliError::io("cannot read stdin", e))?;
    if n == 0 {
        return Ok(None);
    }
    if !s.ends_with('\n') && n as u64 >= max {
        return Err(CliError::Usage(format!(
            "line on stdin longer than {max} bytes"
        )));
    }
    while s.ends_with('\n') || s.ends_with('\r') {
        s.pop();
    }
    Ok(Some(s))
}

/// A password from the next line of stdin; it must not be empty.
pub(crate) fn password(what: &str) -> Result<Secret, CliError> {
    prompt(what);
    match line(MAX_PASSWORD)? {
        None => Err(CliError::Usage(format!(
            "expected the {what} on stdin, found end of input"
        ))),
        Some(s) if s.is_empty() => Err(CliError::Usage(format!("the {what} is empty"))),
        Some(s) => Ok(Secret::new(s)),
    }
}

/// A password from the next line of stdin; an empty line means none (the default password).
pub(crate) fn optional_password(what: &str) -> Result<Option<Secret>, CliError> {
    prompt(what);
    match line(MAX_PASSWORD)? {
        None => Err(CliError::Usage(format!(
            "expected the {what} on stdin, found end of input"
        ))),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => Ok(Some(Secret::new(s))),
    }
}

/// A group invite from the next line of stdin (surrounding whitespace removed).
pub(crate) fn invite() -> Result<Secret, CliError> {
    prompt("group invite");
    match line(MAX_TEXT)? {
        None => Err(CliError::Usage(
            "expected the group invite on stdin, found end of input".into(),
        )),
        Some(s) => Ok(Secret::new(Zeroizing::new(s.trim().to_owned()))),
    }
}

/// The rest of stdin, as a message text (a final line ending removed).
pub(crate) fn text() -> Result<String, CliError> {
    let mut s = String::new();
    std::io::stdin()
        .lock()
        .take(MAX_TEXT + 1)
        .read_to_string(&mut s)
        .map_err(|e| CliError::io("cannot read the text from stdin", e))?;
    if s.len() as u64 > MAX_TEXT {
        return Err(CliError::Usage("the text on stdin is too long".into()));
    }
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    Ok(s)
}

/// Ask on the terminal; true if the answer is `yes`.
pub(crate) fn confirm(question: &str) -> Result<bool, CliError> {
    let mut err = std::io::stderr();
    let _ = write!(err, "{question} Type 'yes' to confirm: ");
    let _ = err.flush();
    Ok(line(MAX_PASSWORD)?.is_some_and(|a| a.trim() == "yes"))
}
