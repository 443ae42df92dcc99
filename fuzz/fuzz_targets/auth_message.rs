//! The auth message parser: never panics, and whatever it accepts re-encodes to Go's form,
//! which parses back to the same keys.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapir::apps::auth::AuthMessage;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = AuthMessage::from_json(data) {
        let json = m.to_json();
        let again = AuthMessage::from_json(&json).expect("our own encoding parses");
        assert_eq!(again, m);
        assert_eq!(again.to_json(), json);
    }
});
