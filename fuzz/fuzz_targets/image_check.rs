//! The image check that stands between a contact's bytes and anything shown
//! (`cwtch::images::check_image`, `docs/specs/file-sharing.md` "Images"): a full decode of
//! PNG, JPEG, GIF or WebP within limits.
//!
//! Asserts: never a panic, a hang or an allocation past the limits (libFuzzer's `-rss_limit_mb`
//! catches those); an accepted image is one of the four formats, its size is the input's, and
//! its dimensions are non-zero and within `MAX_IMAGE_DIMENSION`; the same bytes give the same
//! answer twice.
#![no_main]

use cwtch::images::{check_image, MAX_IMAGE_DIMENSION};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let first = check_image(data);
    if let Ok(info) = &first {
        assert!(
            ["png", "jpeg", "gif", "webp"].contains(&info.format.as_str()),
            "{info:?}"
        );
        assert_eq!(info.bytes, data.len() as u64);
        assert!(info.width > 0 && info.height > 0, "{info:?}");
        assert!(info.width <= MAX_IMAGE_DIMENSION && info.height <= MAX_IMAGE_DIMENSION);
    }
    let again = check_image(data);
    assert_eq!(first.is_ok(), again.is_ok());
    assert_eq!(first.ok(), again.ok());
});
