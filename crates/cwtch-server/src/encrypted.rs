//! A server configuration encrypted at rest, as Go Cwtch's app hosts servers (Go
//! `server/servers.go`: "Config file will be encrypted with cwtch/storage/v1/file_enc";
//! `serverConfig.go` `CreateConfig`/`LoadConfig`; `storage/file_store.go`):
//!
//! * the directory holds `VERSION` (`1`), `SALT` (128 random bytes) and `serverConfig.json`;
//! * the key is `PBKDF2-HMAC-SHA3-512(password, SALT, 4096, 32)`;
//! * the file is `nonce (24) ‖ secretbox(json)` (NaCl's XSalsa20-Poly1305: the 16-byte tag,
//!   then the ciphertext), a fresh nonce on every save.
//!
//! A standalone `cwtch-server` keeps its config in plain JSON (as Go's standalone server
//! does); this is for apps hosting servers behind a password (libCwtch's `c_CreateServer`).

use std::io::Write;
use std::path::Path;

use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use crypto_secretbox::{Nonce, Tag, XSalsa20Poly1305};
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::{ConfigError, ServerConfig};

/// The salt file (Go `storage.SaltFile`).
pub const SALT_FILE: &str = "SALT";
/// The version file (Go `versionFile`), holding [`VERSION`].
pub const VERSION_FILE: &str = "VERSION";
/// The only version.
pub const VERSION: &str = "1";
/// Go's salt length.
pub const SALT_LEN: usize = 128;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const KDF_ITERATIONS: u32 = 4096;

/// The key a server's config is encrypted with (zeroized on drop).
#[derive(Clone)]
pub struct ConfigKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for ConfigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConfigKey(<redacted>)")
    }
}

impl PartialEq for ConfigKey {
    /// In constant time.
    fn eq(&self, other: &ConfigKey) -> bool {
        use subtle::ConstantTimeEq;
        self.0[..].ct_eq(&other.0[..]).into()
    }
}

impl Eq for ConfigKey {}

impl ConfigKey {
    /// Go's `storage.CreateKey(password, salt)`.
    pub fn derive(password: &str, salt: &[u8]) -> ConfigKey {
        let mut key = Zeroizing::new([0u8; 32]);
        pbkdf2::pbkdf2_hmac::<sha3::Sha3_512>(
            password.as_bytes(),
            salt,
            KDF_ITERATIONS,
            key.as_mut(),
        );
        ConfigKey(key)
    }

    /// The key of the encrypted server directory `dir` for `password` (from its `SALT`).
    /// Whether the password is right shows when the config is opened.
    pub fn of_dir(dir: &Path, password: &str) -> Result<ConfigKey, ConfigError> {
        let path = dir.join(SALT_FILE);
        let salt = std::fs::read(&path).map_err(|e| io_err(&path, e))?;
        Ok(ConfigKey::derive(password, &salt))
    }
}

fn io_err(path: &Path, e: std::io::Error) -> ConfigError {
    if e.kind() == std::io::ErrorKind::NotFound && path.ends_with(crate::config::CONFIG_FILE) {
        ConfigError::Missing(path.to_path_buf())
    } else {
        ConfigError::Io {
            path: path.to_path_buf(),
            source: e,
        }
    }
}

/// Write `bytes` to `path` (0600) through a temporary file and a rename: a crash leaves the
/// old file or the new one, never a torn one.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| io_err(path, e))
}

/// Go's `storage.InitV1Directory`: make `dir` (0700) an encrypted server directory (`VERSION`,
/// a fresh `SALT`) and return the key for `password`. Refuses a directory that already has a
/// salt (its config would become unreadable).
pub fn init_dir<R: CryptoRngCore + ?Sized>(
    dir: &Path,
    password: &str,
    rng: &mut R,
) -> Result<ConfigKey, ConfigError> {
    crate::create_data_dir(dir)?;
    let salt_path = dir.join(SALT_FILE);
    if salt_path.exists() {
        return Err(ConfigError::Exists(salt_path));
    }
    let mut salt = [0u8; SALT_LEN];
    rng.fill_bytes(&mut salt);
    replace_file(&dir.join(VERSION_FILE), VERSION.as_bytes())?;
    replace_file(&salt_path, &salt)?;
    Ok(ConfigKey::derive(password, &salt))
}

/// Go's `EncryptFileData`: `nonce ‖ tag ‖ ciphertext`.
pub fn seal<R: CryptoRngCore + ?Sized>(plain: &[u8], key: &ConfigKey, rng: &mut R) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(NONCE_LEN + TAG_LEN + plain.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&[0u8; TAG_LEN]);
    out.extend_from_slice(plain);
    let (head, body) = out.split_at_mut(NONCE_LEN + TAG_LEN);
    let cipher = XSalsa20Poly1305::new((&*key.0).into());
    // Only fails above the cipher's 256 GiB limit; a config is a few KiB.
    if let Ok(tag) = cipher.encrypt_in_place_detached(Nonce::from_slice(&nonce), b"", body) {
        head[NONCE_LEN..].copy_from_slice(&tag);
    }
    out
}

/// Go's `DecryptFile`: `None` if `bytes` is not `key`'s (a wrong password) or not sealed.
pub fn open(bytes: &[u8], key: &ConfigKey) -> Option<Zeroizing<Vec<u8>>> {
    if bytes.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, rest) = bytes.split_at(NONCE_LEN);
    let (tag, body) = rest.split_at(TAG_LEN);
    let mut plain = Zeroizing::new(body.to_vec());
    let cipher = XSalsa20Poly1305::new((&*key.0).into());
    cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            b"",
            &mut plain,
            Tag::from_slice(tag),
        )
        .ok()?;
    Some(plain)
}

impl ServerConfig {
    /// Load the encrypted config in `dir` with `key`: [`ConfigError::WrongPassword`] if it is
    /// not `key`'s.
    pub fn load_encrypted(dir: &Path, key: &ConfigKey) -> Result<ServerConfig, ConfigError> {
        let path = ServerConfig::path(dir);
        let sealed = std::fs::read(&path).map_err(|e| io_err(&path, e))?;
        let plain = open(&sealed, key).ok_or(ConfigError::WrongPassword(path))?;
        ServerConfig::from_json(&plain)
    }

    /// Save this config encrypted with `key` into `dir` (replacing what is there, atomically).
    pub fn save_encrypted<R: CryptoRngCore + ?Sized>(
        &self,
        dir: &Path,
        key: &ConfigKey,
        rng: &mut R,
    ) -> Result<(), ConfigError> {
        replace_file(&ServerConfig::path(dir), &seal(&self.to_json(), key, rng))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn seal_open_round_trip_and_wrong_keys() {
        let k = ConfigKey::derive("hunter2", &[7u8; SALT_LEN]);
        let sealed = seal(b"{\"a\":1}", &k, &mut OsRng);
        assert_eq!(sealed.len(), NONCE_LEN + TAG_LEN + 7);
        assert_eq!(
            open(&sealed, &k).as_deref().map(Vec::as_slice),
            Some(&b"{\"a\":1}"[..])
        );
        // A fresh nonce each time.
        assert_ne!(seal(b"{\"a\":1}", &k, &mut OsRng), sealed);
        let other = ConfigKey::derive("hunter3", &[7u8; SALT_LEN]);
        assert!(open(&sealed, &other).is_none());
        let salted = ConfigKey::derive("hunter2", &[8u8; SALT_LEN]);
        assert!(open(&sealed, &salted).is_none());
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert!(open(&flipped, &k).is_none());
        assert!(open(&sealed[..39], &k).is_none());
        assert!(open(&[], &k).is_none());
    }

    /// NaCl's layout, checked with the detached primitives the other way round: the tag
    /// sits between the nonce and the ciphertext, and the key is PBKDF2-HMAC-SHA3-512.
    #[test]
    fn layout_is_nonce_tag_ciphertext() {
        let mut expect = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha3::Sha3_512>(b"pw", b"salt", 4096, &mut expect);
        let k = ConfigKey::derive("pw", b"salt");
        assert_eq!(*k.0, expect);
        let sealed = seal(b"hello", &k, &mut OsRng);
        let cipher = XSalsa20Poly1305::new((&expect).into());
        let mut body = sealed[40..].to_vec();
        cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(&sealed[..24]),
                b"",
                &mut body,
                Tag::from_slice(&sealed[24..40]),
            )
            .expect("tag after the nonce");
        assert_eq!(body, b"hello");
    }

    #[test]
    fn config_saved_and_loaded_encrypted() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("d1");
        let key = init_dir(&dir, "hunter2", &mut OsRng).expect("init");
        assert_eq!(std::fs::read(dir.join(VERSION_FILE)).unwrap(), b"1");
        assert_eq!(std::fs::read(dir.join(SALT_FILE)).unwrap().len(), SALT_LEN);
        assert!(matches!(
            init_dir(&dir, "hunter2", &mut OsRng),
            Err(ConfigError::Exists(_))
        ));
        let mut config = ServerConfig::generate(&mut OsRng);
        config
            .attributes
            .insert("description".into(), "club".into());
        config.save_encrypted(&dir, &key, &mut OsRng).expect("save");
        let raw = std::fs::read(ServerConfig::path(&dir)).unwrap();
        // Nothing of the JSON is readable.
        assert!(
            !raw.windows(9).any(|w| w == b"publicKey"),
            "plaintext on disk"
        );
        assert!(ServerConfig::load(&dir).is_err(), "not plain JSON");

        let again = ConfigKey::of_dir(&dir, "hunter2").expect("salt");
        assert_eq!(again, key);
        let loaded = ServerConfig::load_encrypted(&dir, &again).expect("load");
        assert_eq!(loaded.onion(), config.onion());
        assert_eq!(
            loaded.attributes.get("description").map(String::as_str),
            Some("club")
        );

        let wrong = ConfigKey::of_dir(&dir, "hunter3").expect("salt");
        assert!(matches!(
            ServerConfig::load_encrypted(&dir, &wrong),
            Err(ConfigError::WrongPassword(_))
        ));
        assert!(ConfigKey::of_dir(&tmp.path().join("none"), "x").is_err());
    }
}
