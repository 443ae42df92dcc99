//! The names we give ourselves: our profile's name (which contacts fetch), a contact's
//! nickname, a group's name. What is accepted: one rule for all three.

use crate::error::{Error, Result};

/// The longest name we give a profile, a contact or a group, in characters.
pub const LOCAL_NAME_MAX_CHARS: usize = 256;

/// A name we give a profile, a contact or a group: trimmed, not empty, at most
/// [`LOCAL_NAME_MAX_CHARS`], on one line.
pub(crate) fn check_local_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::Invalid {
            what: "name (empty)",
        });
    }
    if name.chars().count() > LOCAL_NAME_MAX_CHARS {
        return Err(Error::Invalid {
            what: "name (longer than 256 characters)",
        });
    }
    if name.chars().any(char::is_control) {
        return Err(Error::Invalid {
            what: "name (a line break or another control character)",
        });
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_kept() {
        assert_eq!(check_local_name("  Alice A.\t").unwrap(), "Alice A.");
        assert_eq!(check_local_name("Ŵyn 🦊").unwrap(), "Ŵyn 🦊");
    }

    #[test]
    fn empty_long_and_multi_line_names_are_refused() {
        for bad in ["", "   ", "\t\n"] {
            assert!(check_local_name(bad).is_err(), "{bad:?}");
        }
        for bad in ["two\nlines", "bell\u{7}", "csi\u{9b}31m", "esc\u{1b}[31m"] {
            assert!(check_local_name(bad).is_err(), "{bad:?}");
        }
        // Counted in characters, not bytes: 256 two-byte characters are fine, 257 are not.
        let at_limit = "é".repeat(LOCAL_NAME_MAX_CHARS);
        assert_eq!(check_local_name(&at_limit).unwrap(), at_limit);
        assert!(check_local_name(&"é".repeat(LOCAL_NAME_MAX_CHARS + 1)).is_err());
    }
}
