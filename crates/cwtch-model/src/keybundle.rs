//! Server key bundles and the `server:` / `tofubundle:` strings (protocol.md §5.5).

use std::collections::BTreeMap;
use std::fmt;

use torv3::safelog::Sensitive;
use torv3::{Identity, Onion};

use crate::gojson::{self, Decoder, GoDecode, GoJson};
use crate::group::GroupInvite;
use crate::Error;

/// KeyType of the server's token-board onion (Go `KeyTypeServerOnion`, CONFIRMED by real
/// bundles, protocol.md §5.5). Its key also signs the bundle.
pub const KEY_TYPE_SERVER_ONION: &str = "bulletin_board_onion";

/// KeyType of the server's token-service onion (Go `KeyTypeTokenOnion`, CONFIRMED).
pub const KEY_TYPE_TOKEN_ONION: &str = "token_service_onion";

/// KeyType of the server's Privacy Pass public key, std base64 of the 32-byte ristretto255
/// point (Go `KeyTypePrivacyPass`, CONFIRMED).
pub const KEY_TYPE_PRIVACY_PASS: &str = "privacy_pass_public_key";

/// KeyType under which a client stores a whole server bundle (Go `BundleType`).
///
/// UNCONFIRMED (recalled, protocol.md §5.5 and §14 item 6). Local storage only, never on the
/// wire.
pub const KEY_TYPE_SERVER_KEY_BUNDLE: &str = "server_key_bundle";

/// Prefix of a server bundle string (`ServerBundle()`, CONFIRMED `server.go`).
pub const SERVER_BUNDLE_PREFIX: &str = "server:";

/// Prefix of a TOFU bundle string (`TofuBundle()`, CONFIRMED `server.go`).
pub const TOFU_BUNDLE_PREFIX: &str = "tofubundle:";

/// Separator between the server bundle and the group invite in a TOFU bundle (CONFIRMED
/// `server.go` and the UI's `split("||")`).
pub const TOFU_BUNDLE_SEPARATOR: &str = "||";

/// Length of a Privacy Pass public key (a ristretto255 point).
pub const PRIVACY_PASS_KEY_LEN: usize = 32;

/// A key bundle (Go `model.KeyBundle`): `{"Keys":{…sorted…},"Signature":"<b64>"|null}`.
///
/// This is the unverified form, as parsed; [`KeyBundle::verify`] checks it and returns the
/// server's keys.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct KeyBundle {
    /// `Keys`: KeyType → key (Go `map[KeyType]Key`, both string types). Go writes a nil map as
    /// `null`; decoding `null` gives an empty map here, which writes `{}` (such a bundle cannot
    /// verify either way).
    pub keys: BTreeMap<String, String>,
    /// `Signature`: Ed25519 by the server-onion key over [`KeyBundle::signed_bytes`].
    pub signature: Option<Vec<u8>>,
}

impl fmt::Debug for KeyBundle {
    /// The keys (onion addresses) only with unsafe logging on.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyBundle")
            .field("keys", &Sensitive(&self.keys))
            .field("signature", &self.signature)
            .finish()
    }
}

/// The keys of a server, from a bundle whose signature verified.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ServerKeys {
    /// The token-board onion; its key signed the bundle.
    pub server: Onion,
    /// The token-service onion.
    pub token_service: Onion,
    /// The Privacy Pass public key, as carried (std base64; see
    /// [`ServerKeys::privacy_pass_key_bytes`]).
    pub privacy_pass_key: String,
}

impl ServerKeys {
    /// The Privacy Pass public key's 32 bytes (not checked to be a ristretto255 point).
    pub fn privacy_pass_key_bytes(&self) -> Result<[u8; PRIVACY_PASS_KEY_LEN], Error> {
        privacy_pass_key_bytes(&self.privacy_pass_key)
    }
}

fn privacy_pass_key_bytes(b64: &str) -> Result<[u8; PRIVACY_PASS_KEY_LEN], Error> {
    let bytes = gojson::go_base64_decode(b64.as_bytes(), KEY_TYPE_PRIVACY_PASS)?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| Error::InvalidLength {
            what: KEY_TYPE_PRIVACY_PASS,
            expected: PRIVACY_PASS_KEY_LEN,
            actual: bytes.len(),
        })
}

impl KeyBundle {
    /// An unsigned server bundle, as Go's `server.KeyBundle()` builds it before signing.
    pub fn new_server_bundle(
        server: &Onion,
        token_service: &Onion,
        privacy_pass_key: &[u8; PRIVACY_PASS_KEY_LEN],
    ) -> Self {
        let mut keys = BTreeMap::new();
        keys.insert(
            KEY_TYPE_SERVER_ONION.to_string(),
            server.as_str().to_string(),
        );
        keys.insert(
            KEY_TYPE_TOKEN_ONION.to_string(),
            token_service.as_str().to_string(),
        );
        keys.insert(
            KEY_TYPE_PRIVACY_PASS.to_string(),
            gojson::base64_std(privacy_pass_key),
        );
        KeyBundle {
            keys,
            signature: None,
        }
    }

    /// Go's `Serialize()` (`json.Marshal`).
    pub fn to_json(&self) -> Vec<u8> {
        self.to_go_json()
    }

    /// Decode Go JSON. Does not verify.
    pub fn from_json(json: &[u8]) -> Result<Self, Error> {
        gojson::decode(json)
    }

    /// The bytes the signature covers: the JSON of this bundle with `"Signature":null`
    /// (CONFIRMED by real bundles, protocol.md §5.5).
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        gojson::object(&mut out, |o| {
            o.string_map("Keys", &self.keys).bytes("Signature", None);
        });
        out
    }

    /// Sign the bundle (Go `kb.Sign(identity)`); `identity` should be the server-onion key.
    pub fn sign(&mut self, identity: &Identity) {
        self.signature = Some(identity.sign(&self.signed_bytes()).to_vec());
    }

    /// Verify the bundle: all three server keys present, both onions valid, and the signature
    /// made by the server onion's key over [`KeyBundle::signed_bytes`].
    pub fn verify(&self) -> Result<ServerKeys, Error> {
        let server = self.server_onion()?;
        let token_service = self.token_onion()?;
        let privacy_pass_key = self.key(KEY_TYPE_PRIVACY_PASS)?.to_string();
        let signature = self.signature.as_deref().ok_or(Error::MissingSignature)?;
        let key = server.public_key().map_err(|source| Error::InvalidOnion {
            what: KEY_TYPE_SERVER_ONION,
            source,
        })?;
        key.verify(&self.signed_bytes(), signature)
            .map_err(|_| Error::BadSignature)?;
        Ok(ServerKeys {
            server,
            token_service,
            privacy_pass_key,
        })
    }

    /// The key of a KeyType, if present.
    pub fn key(&self, key_type: &'static str) -> Result<&str, Error> {
        self.keys
            .get(key_type)
            .map(String::as_str)
            .ok_or(Error::MissingKey { key_type })
    }

    fn onion(&self, key_type: &'static str) -> Result<Onion, Error> {
        Onion::parse(self.key(key_type)?).map_err(|source| Error::InvalidOnion {
            what: key_type,
            source,
        })
    }

    /// The server's token-board onion (unverified).
    pub fn server_onion(&self) -> Result<Onion, Error> {
        self.onion(KEY_TYPE_SERVER_ONION)
    }

    /// The server's token-service onion (unverified).
    pub fn token_onion(&self) -> Result<Onion, Error> {
        self.onion(KEY_TYPE_TOKEN_ONION)
    }

    /// The Privacy Pass public key as carried, std base64 (unverified).
    pub fn privacy_pass_key_b64(&self) -> Result<&str, Error> {
        self.key(KEY_TYPE_PRIVACY_PASS)
    }

    /// The Privacy Pass public key's 32 bytes (unverified; not checked to be a point).
    pub fn privacy_pass_key_bytes(&self) -> Result<[u8; PRIVACY_PASS_KEY_LEN], Error> {
        privacy_pass_key_bytes(self.privacy_pass_key_b64()?)
    }

    /// The server bundle string: `"server:" + base64std(json)` (Go `ServerBundle()`).
    pub fn to_server_string(&self) -> String {
        format!(
            "{SERVER_BUNDLE_PREFIX}{}",
            gojson::base64_std(&self.to_json())
        )
    }

    /// Parse a server bundle string. Does not verify.
    pub fn parse_server_string(s: &str) -> Result<Self, Error> {
        let b64 = s
            .strip_prefix(SERVER_BUNDLE_PREFIX)
            .ok_or(Error::MissingPrefix {
                what: "server bundle",
                prefix: SERVER_BUNDLE_PREFIX,
            })?;
        KeyBundle::from_json(&gojson::go_base64_decode(b64.as_bytes(), "server bundle")?)
    }
}

impl GoJson for KeyBundle {
    fn write_go_json(&self, out: &mut Vec<u8>) {
        gojson::object(out, |o| {
            o.string_map("Keys", &self.keys)
                .bytes("Signature", self.signature.as_deref());
        });
    }
}

impl GoDecode for KeyBundle {
    fn decode_into(&mut self, d: &mut Decoder<'_>) -> Result<(), Error> {
        d.fields(&["Keys", "Signature"], |d, i| match i {
            0 => d.string_map(&mut self.keys),
            _ => d.bytes(&mut self.signature),
        })
    }
}

/// A TOFU bundle: a server bundle and an invite to a group on it, as sent in an overlay-101
/// message: `"tofubundle:" + "server:" + base64std(bundle) + "||" + "torv3" + base64std(invite)`
/// (Go `TofuBundle()`, protocol.md §5.5, §6.3).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TofuBundle {
    /// The server's key bundle (unverified until [`TofuBundle::verify`]).
    pub bundle: KeyBundle,
    /// The group invite (its group ID already checked against key and server).
    pub invite: GroupInvite,
}

impl TofuBundle {
    /// Parse a `tofubundle:` string: both parts must parse, and the invite's group ID must
    /// match. The bundle's signature is not checked here.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let rest = s
            .strip_prefix(TOFU_BUNDLE_PREFIX)
            .ok_or(Error::MissingPrefix {
                what: "tofubundle",
                prefix: TOFU_BUNDLE_PREFIX,
            })?;
        // Base64 has no '|', so the first separator is the only one in a well-formed string.
        let (bundle, invite) = rest
            .split_once(TOFU_BUNDLE_SEPARATOR)
            .ok_or(Error::MissingSeparator)?;
        Ok(TofuBundle {
            bundle: KeyBundle::parse_server_string(bundle)?,
            invite: GroupInvite::parse_invite_string(invite)?,
        })
    }

    /// Verify the bundle's signature and that the invite's group is hosted on that server.
    pub fn verify(&self) -> Result<ServerKeys, Error> {
        let keys = self.bundle.verify()?;
        if keys.server != self.invite.server_host {
            return Err(Error::ServerMismatch);
        }
        Ok(keys)
    }
}

impl fmt::Display for TofuBundle {
    /// The `tofubundle:` string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{TOFU_BUNDLE_PREFIX}{}{TOFU_BUNDLE_SEPARATOR}{}",
            self.bundle.to_server_string(),
            self.invite.to_invite_string()
        )
    }
}
