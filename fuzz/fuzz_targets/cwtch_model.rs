//! Every Go-JSON decoder of the wire types: never panics, and whatever decodes re-encodes to
//! Go's bytes, which decode to the same value (encoding is idempotent after one round).
#![no_main]

use cwtch_model::group::{DecryptedGroupMessage, EncryptedGroupMessage, GroupInvite};
use cwtch_model::keybundle::{KeyBundle, TofuBundle};
use cwtch_model::overlay::MessageWrapper;
use cwtch_model::tokenboard::Message;
use libfuzzer_sys::fuzz_target;

macro_rules! round_trip {
    ($ty:ty, $data:expr) => {
        if let Ok(v) = <$ty>::from_json($data) {
            let once = v.to_json();
            let again = <$ty>::from_json(&once).expect("our own encoding decodes");
            assert_eq!(again.to_json(), once, "{}", stringify!($ty));
        }
    };
}

fuzz_target!(|data: &[u8]| {
    round_trip!(Message, data);
    round_trip!(EncryptedGroupMessage, data);
    round_trip!(DecryptedGroupMessage, data);
    round_trip!(KeyBundle, data);
    round_trip!(GroupInvite, data);
    round_trip!(MessageWrapper, data);
    if let Ok(m) = Message::from_json(data) {
        let _ = m.into_payload();
    }
    if let Ok(kb) = KeyBundle::from_json(data) {
        let _ = kb.verify();
    }
    let s = String::from_utf8_lossy(data);
    let _ = GroupInvite::parse_invite_string(&s);
    let _ = KeyBundle::parse_server_string(&s);
    if let Ok(t) = TofuBundle::parse(&s) {
        let _ = t.verify();
        // Parsing is as lenient as Go; displaying is canonical, and stable from then on.
        let canonical = t.to_string();
        let again = TofuBundle::parse(&canonical).expect("our own encoding parses");
        assert_eq!(again.to_string(), canonical);
    }
});
