//! The unsafe-logging switch is process-global, so its test lives in its own test binary.

#![allow(clippy::unwrap_used)]

use torv3::safelog::{set_unsafe_logging, Sensitive};
use torv3::Onion;

#[test]
fn redaction_follows_the_flag() {
    let s = "isbr2t6bflul2zyi6hjtnuezb2xvfr42svzjg2q3gyqfgg3wmnrbkkqd";
    let onion = Onion::parse(s).unwrap();
    assert_eq!(onion.redacted().to_string(), "isbr…");
    assert_eq!(format!("{onion:?}"), "Onion(isbr…)");
    assert_eq!(Sensitive("secret text").to_string(), "[scrubbed]");
    assert_eq!(format!("{:?}", Sensitive("secret text")), "[scrubbed]");
    set_unsafe_logging(true);
    assert_eq!(onion.redacted().to_string(), s);
    assert_eq!(Sensitive("secret text").to_string(), "secret text");
    set_unsafe_logging(false);
    assert_eq!(onion.redacted().to_string(), "isbr…");
}
