//! The Go-JSON columns of a profile database (spec §8.2): conversation `Attributes` and
//! message `Attributes` (`map[string]string`), and conversation `ACL`
//! (`map[string]AccessControl`). A profile may come from Go Cwtch or from an imported archive.
//!
//! Asserts: whatever decodes re-encodes to JSON that decodes to the same value, and encoding is
//! stable; the Go-style decoder of attributes agrees with serde_json wherever serde_json (a
//! strict RFC 8259 decoder) accepts the input; our encodings are JSON serde_json reads back.
#![no_main]

use std::collections::BTreeMap;

use cwtch_storage::{acl_from_json, acl_to_json, attributes_from_json, attributes_to_json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ours = attributes_from_json(data);
    if let Ok(a) = &ours {
        let once = attributes_to_json(a);
        let again = attributes_from_json(&once).expect("our own attributes decode");
        assert_eq!(&again, a);
        assert_eq!(attributes_to_json(&again), once);
        let strict: BTreeMap<String, String> =
            serde_json::from_slice(&once).expect("our encoding is JSON");
        assert_eq!(&strict, a);
    }
    if let Ok(strict) = serde_json::from_slice::<Option<BTreeMap<String, String>>>(data) {
        assert_eq!(ours.ok(), Some(strict.unwrap_or_default()));
    }

    if let Ok(acl) = acl_from_json(data) {
        let once = acl_to_json(&acl);
        let again = acl_from_json(&once).expect("our own ACL decodes");
        assert_eq!(again, acl);
        assert_eq!(acl_to_json(&again), once);
    }
});
