//! Our secretbox framing against a real artefact written by Go: Cwtch's encrypted settings
//! file `ui.globals` is `nonce(24) || secretbox(json)` (golang.org/x/crypto/nacl/secretbox),
//! the same construction tapir's encrypted packets use.

#![allow(clippy::unwrap_used)]

use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};

#[test]
fn opens_a_go_secretbox() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testvectors/aliceandbob1"
    );
    let salt = std::fs::read(format!("{dir}/SALT")).unwrap();
    let sealed = std::fs::read(format!("{dir}/ui.globals")).unwrap();
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha3::Sha3_512>(b"be gay do crime", &salt, 4096, &mut key);
    let cipher = XSalsa20Poly1305::new(&key.into());
    let json = cipher
        .decrypt(Nonce::from_slice(&sealed[..24]), &sealed[24..])
        .expect("Go's secretbox opens with our layout");
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert!(
        v.get("Theme").is_some() && v.get("BlockUnknownConnections").is_some(),
        "{v}"
    );
}
