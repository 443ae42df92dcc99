//! Passwords and the profile key.

use std::fmt;

use pbkdf2::pbkdf2_hmac;
use sha3::Sha3_512;
use zeroize::Zeroizing;

use crate::Error;

/// The password Go Cwtch uses for profiles created "without a password"
/// (`app.DefactoPasswordForUnencryptedProfiles`, CONFIRMED: it opens the fixtures).
pub const DEFAULT_PASSWORD: &str = "be gay do crime";

/// Length of `SALT` in bytes.
pub const SALT_LEN: usize = 128;
/// PBKDF2 iterations.
pub const KDF_ITERATIONS: u32 = 4096;

/// A profile password.
#[derive(Clone)]
pub enum Password {
    /// No password: Go's [`DEFAULT_PASSWORD`].
    Default,
    /// A password the user chose.
    User(Zeroizing<String>),
}

impl Password {
    /// A user password.
    pub fn user(password: impl Into<String>) -> Password {
        Password::User(Zeroizing::new(password.into()))
    }

    /// The bytes the key is derived from.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Password::Default => DEFAULT_PASSWORD.as_bytes(),
            Password::User(p) => p.as_bytes(),
        }
    }

    /// Whether this is the default password (a user password equal to the default counts: it
    /// derives the same key, so the profile is effectively unprotected).
    pub fn is_default(&self) -> bool {
        self.as_bytes() == DEFAULT_PASSWORD.as_bytes()
    }

    /// The `local.profile.tag` a profile with this password carries.
    pub fn tag(&self) -> &'static str {
        if self.is_default() {
            crate::keys::TAG_DEFAULT_PASSWORD
        } else {
            crate::keys::TAG_USER_PASSWORD
        }
    }

    /// Refuse an empty user password (Go's UI does too).
    pub(crate) fn check_new(&self) -> Result<(), Error> {
        if self.as_bytes().is_empty() {
            Err(Error::EmptyPassword)
        } else {
            Ok(())
        }
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Password::Default => f.write_str("Password::Default"),
            Password::User(_) => f.write_str("Password::User(<redacted>)"),
        }
    }
}

/// The 32-byte database key, zeroized on drop.
#[derive(Clone)]
pub(crate) struct ProfileKey(Zeroizing<[u8; 32]>);

impl ProfileKey {
    /// `PBKDF2-HMAC-SHA3-512(password, salt, 4096, 32)` (protocol.md §8.1, CONFIRMED).
    pub(crate) fn derive(password: &Password, salt: &[u8]) -> ProfileKey {
        let mut key = Zeroizing::new([0u8; 32]);
        pbkdf2_hmac::<Sha3_512>(password.as_bytes(), salt, KDF_ITERATIONS, key.as_mut());
        ProfileKey(key)
    }

    /// The SQLCipher raw-key literal, `"x'<64 hex>'"` (with the double quotes).
    pub(crate) fn sql_literal(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(70));
        s.push_str("\"x'");
        s.push_str(&Zeroizing::new(hex::encode(self.0.as_ref())));
        s.push_str("'\"");
        s
    }

    /// The raw-key string without the outer quotes, for `ATTACH … KEY ?`.
    pub(crate) fn raw_key_string(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(68));
        s.push_str("x'");
        s.push_str(&Zeroizing::new(hex::encode(self.0.as_ref())));
        s.push('\'');
        s
    }

    pub(crate) fn ct_eq(&self, other: &ProfileKey) -> bool {
        use subtle::ConstantTimeEq;
        self.0[..].ct_eq(&other.0[..]).into()
    }
}

impl fmt::Debug for ProfileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProfileKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alice_key() {
        // ../shared/notes: Alice's key with the default password is 08b75a62…f30b0307.
        let salt = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testvectors/aliceandbob1/profiles/c39e0660a885b6000173ffea9d214b5c/SALT"
        ))
        .unwrap();
        let k = ProfileKey::derive(&Password::Default, &salt);
        let h = hex::encode(k.0.as_ref());
        assert!(h.starts_with("08b75a62") && h.ends_with("f30b0307"), "{h}");
        assert_eq!(k.sql_literal().as_str(), format!("\"x'{h}'\""));
        assert!(k.ct_eq(&ProfileKey::derive(
            &Password::user(DEFAULT_PASSWORD),
            &salt
        )));
        assert!(!k.ct_eq(&ProfileKey::derive(&Password::user("x"), &salt)));
    }

    #[test]
    fn password_tags() {
        assert_eq!(Password::Default.tag(), "v1-defaultPassword");
        assert_eq!(Password::user(DEFAULT_PASSWORD).tag(), "v1-defaultPassword");
        assert_eq!(Password::user("hunter2").tag(), "v1-userPassword");
        assert!(Password::user("").check_new().is_err());
        assert_eq!(
            format!("{:?}", Password::user("hunter2")),
            "Password::User(<redacted>)"
        );
    }
}
