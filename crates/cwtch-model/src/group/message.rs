//! Sealing and opening group messages (protocol.md §6.2, §6.4): the sans-IO core of Cwtch
//! server-hosted groups.
//!
//! A sender [`Group::seal`]s a text into an [`EncryptedGroupMessage`] ready to post, plus the
//! [`VerifiedGroupMessage`] it stores locally. A receiver trial-decrypts every message a server
//! relays against all its groups on that server ([`EncryptedGroupMessage::trial_decrypt`],
//! giving an [`UnverifiedGroupMessage`]) and then checks the sender's signature
//! ([`UnverifiedGroupMessage::verify`], giving a [`VerifiedGroupMessage`]);
//! [`EncryptedGroupMessage::open`] does both. Nothing here does IO, reads a clock or draws
//! randomness of its own: `now` and an RNG are arguments.
//!
//! Every choice that Go could contradict is one named item below with its spec section, and a
//! row in `docs/COMPATIBILITY.md`.

use std::fmt;

use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use crypto_secretbox::{Nonce, Tag, XSalsa20Poly1305};
use rand_core::CryptoRngCore;
use torv3::safelog::Sensitive;
use torv3::{Identity, Onion, Signature};
use zeroize::Zeroizing;

use super::{
    DecryptedGroupMessage, EncryptedGroupMessage, GroupInvite, GROUP_ID_LEN,
    GROUP_ID_PBKDF2_ITERATIONS, GROUP_KEY_LEN,
};
use crate::gojson::{self, GoJson};
use crate::Error;

/// Length of the random nonce in front of a group ciphertext.
pub const GROUP_NONCE_LEN: usize = 24;

/// Length of the Poly1305 tag of a group ciphertext.
pub const GROUP_TAG_LEN: usize = 16;

/// The longest `Text` a group message may carry, in bytes (Go's `len(message)`).
///
/// Go's `MaxGroupMessageLength` (protocol.md §6.2, recalled as 1800 and consistent with the
/// handbook's "Padding: random bytes of length = 1800 − len(Text)"); the UI keeps group texts
/// under 1600 characters (§7.5, CONFIRMED), so its messages always fit.
pub const MAX_GROUP_TEXT_BYTES: usize = 1800;

/// The longest `Text` a group message may carry once escaped as Go writes it in JSON, without
/// the quotes (ours, protocol.md §6.2).
///
/// 2400 is the base64 length of 1800 bytes: the room that `Text` and `Padding` share in the
/// largest plaintext Go builds for an unescaped text (the empty one). Escaping can make a
/// 1800-byte text up to six times longer (`<` is `\u003c`); texts that do not fit this room are
/// refused so that every message has the same length ([`GROUP_PLAINTEXT_LEN`]).
pub const MAX_GROUP_TEXT_ENCODED: usize = 2400;

/// The length of every plaintext we seal, in bytes: the JSON of the `DecryptedGroupMessage`
/// and up to 3 spaces after it (see [`padding_for`]).
///
/// The names and punctuation of the Go JSON take 89 bytes; add 56 for `Onion`, 20 for the longest
/// `Timestamp`, 24 for `SignedGroupID`, 90 for a 64-byte `PreviousMessageSig` and
/// [`MAX_GROUP_TEXT_ENCODED`] for `Text` and `Padding` together.
pub const GROUP_PLAINTEXT_LEN: usize = 89 + 56 + 20 + 24 + 90 + MAX_GROUP_TEXT_ENCODED;

/// The length of every group ciphertext we seal: nonce, tag and [`GROUP_PLAINTEXT_LEN`].
pub const GROUP_CIPHERTEXT_LEN: usize = GROUP_NONCE_LEN + GROUP_TAG_LEN + GROUP_PLAINTEXT_LEN;

/// Whether a signature over `GroupID + GroupServer + ciphertext` (the raw bytes) is accepted
/// when the signature over the plaintext JSON does not verify.
///
/// protocol.md §6.2 (recalled, UNCONFIRMED): "an earlier protocol version signed the
/// ciphertext". As recalled, Go accepts that form only for groups of version 3, and every group
/// that cwtch v0.27 creates or joins is version 4 (`CurrentGroupVersion = 4`, CONFIRMED page
/// excerpt of `model/group.go`), so we never accept it.
pub const ACCEPT_LEGACY_CIPHERTEXT_SIGNATURE: bool = false;

/// A group's ID (protocol.md §6.1): 16 bytes, written as 32 lower-case hex characters, which is
/// the form Go compares, signs and stores.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId([u8; GROUP_ID_LEN]);

impl GroupId {
    /// Go's `deriveGroupID`: PBKDF2-HMAC-SHA512(password = key, salt = the server's 32
    /// public-key bytes, 4096 iterations, 16 bytes).
    pub(crate) fn derive(key: &[u8; GROUP_KEY_LEN], server: &Onion) -> GroupId {
        let mut id = [0u8; GROUP_ID_LEN];
        pbkdf2::pbkdf2_hmac::<sha2::Sha512>(
            key,
            &server.key_bytes(),
            GROUP_ID_PBKDF2_ITERATIONS,
            &mut id,
        );
        GroupId(id)
    }

    /// The 16 bytes.
    pub fn as_bytes(&self) -> &[u8; GROUP_ID_LEN] {
        &self.0
    }

    /// The 32 lower-case hex characters, without allocating.
    fn hex(&self) -> [u8; 2 * GROUP_ID_LEN] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 2 * GROUP_ID_LEN];
        for (pair, b) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = HEX[usize::from(b >> 4)];
            pair[1] = HEX[usize::from(b & 0xf)];
        }
        out
    }
}

impl fmt::Display for GroupId {
    /// The 32 lower-case hex characters (Go's form).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.hex();
        // Infallible: hex digits are ASCII.
        f.write_str(std::str::from_utf8(&hex).unwrap_or_default())
    }
}

impl fmt::Debug for GroupId {
    /// Only with unsafe logging on: a group ID links messages to a group.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupId({})", Sensitive(self))
    }
}

/// A group of a profile: its ID, its key and its server (Go `model.Group`, protocol.md §6.1).
///
/// The key is zeroized on drop and never shown by `Debug`.
#[derive(Clone)]
pub struct Group {
    id: GroupId,
    key: Zeroizing<[u8; GROUP_KEY_LEN]>,
    server: Onion,
    /// `hex(GroupID) || server onion`: what every signature of this group starts with.
    binding: [u8; 2 * GROUP_ID_LEN + torv3::ONION_LEN],
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("id", &self.id)
            .field("server", &self.server)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Group {
    /// A new group on `server` with a fresh random key (Go `NewGroup`).
    pub fn generate<R: CryptoRngCore + ?Sized>(rng: &mut R, server: Onion) -> Group {
        let mut key = Zeroizing::new([0u8; GROUP_KEY_LEN]);
        rng.fill_bytes(key.as_mut());
        Group::with_key(key, server)
    }

    /// The group an invite is for, after checking that its `GroupID` is the one its key and
    /// server derive (Go `CheckGroup`; [`Error::GroupIdMismatch`] otherwise).
    pub fn from_invite(invite: &GroupInvite) -> Result<Group, Error> {
        let group = Group::with_key(
            Zeroizing::new(invite.shared_key),
            invite.server_host.clone(),
        );
        if group.id.to_string() == invite.group_id {
            Ok(group)
        } else {
            Err(Error::GroupIdMismatch)
        }
    }

    fn with_key(key: Zeroizing<[u8; GROUP_KEY_LEN]>, server: Onion) -> Group {
        let id = GroupId::derive(&key, &server);
        let mut binding = [0u8; 2 * GROUP_ID_LEN + torv3::ONION_LEN];
        binding[..2 * GROUP_ID_LEN].copy_from_slice(&id.hex());
        binding[2 * GROUP_ID_LEN..].copy_from_slice(server.as_str().as_bytes());
        Group {
            id,
            key,
            server,
            binding,
        }
    }

    /// The group's ID.
    pub fn id(&self) -> GroupId {
        self.id
    }

    /// The token-board onion of the group's server.
    pub fn server(&self) -> &Onion {
        &self.server
    }

    /// An invite to this group under `name` (see [`GroupInvite::to_invite_string`]).
    pub fn invite(&self, name: String) -> GroupInvite {
        GroupInvite::new(name, *self.key, self.server.clone())
    }

    /// Seal `text` (usually overlay JSON, `{"o":1,"d":"…"}`) from `sender` for this group, as
    /// Go's `EncryptMessageToGroup` does (protocol.md §6.2).
    ///
    /// `previous` is the signature of the latest message the sender has seen in this group
    /// (`None` for the first; see [`first_previous_message_sig`]); `now` is the sender's clock
    /// in Unix seconds. The plaintext is padded to [`GROUP_PLAINTEXT_LEN`], so every ciphertext
    /// is [`GROUP_CIPHERTEXT_LEN`] bytes whatever the text.
    ///
    /// Fails with [`Error::GroupTextTooLong`] if `text` is longer than
    /// [`MAX_GROUP_TEXT_BYTES`], or longer than [`MAX_GROUP_TEXT_ENCODED`] once escaped.
    pub fn seal<R: CryptoRngCore + ?Sized>(
        &self,
        sender: &Identity,
        text: &str,
        previous: Option<&Signature>,
        now: u64,
        rng: &mut R,
    ) -> Result<SealedGroupMessage, Error> {
        let encoded = escaped_len(text.as_bytes());
        if text.len() > MAX_GROUP_TEXT_BYTES || encoded > MAX_GROUP_TEXT_ENCODED {
            return Err(Error::GroupTextTooLong {
                bytes: text.len(),
                encoded,
            });
        }
        let onion = sender.onion();
        let previous_message_sig = match previous {
            Some(sig) => sig.to_vec(),
            None => first_previous_message_sig(&self.server),
        };
        let mut dgm = DecryptedGroupMessage {
            text: text.as_bytes().to_vec(),
            onion: onion.as_str().to_owned(),
            timestamp: now,
            signed_group_id: Some(signed_group_id(self.id)),
            previous_message_sig: Some(previous_message_sig),
            padding: Some(Vec::new()),
        };
        // The JSON without padding bytes fits: the text was checked above and every other field
        // is at most as long as GROUP_PLAINTEXT_LEN allows for.
        let unpadded = dgm.to_go_json().len();
        let (padding_len, spaces) = padding_for(unpadded);
        let mut padding = vec![0u8; padding_len];
        rng.fill_bytes(&mut padding);
        dgm.padding = Some(padding);

        // nonce || tag || JSON || spaces, sealed in place.
        let mut ciphertext = Vec::with_capacity(GROUP_CIPHERTEXT_LEN);
        ciphertext.resize(GROUP_NONCE_LEN + GROUP_TAG_LEN, 0);
        dgm.write_go_json(&mut ciphertext);
        let json = &ciphertext[GROUP_NONCE_LEN + GROUP_TAG_LEN..];
        let signature = sender.sign(&signature_input(self, json));
        ciphertext.extend(std::iter::repeat_n(b' ', spaces));
        debug_assert_eq!(ciphertext.len(), GROUP_CIPHERTEXT_LEN);
        let mut nonce = [0u8; GROUP_NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        seal_in_place(&self.key, &nonce, &mut ciphertext)?;

        Ok(SealedGroupMessage {
            egm: EncryptedGroupMessage {
                ciphertext: Some(ciphertext),
                signature: Some(signature.to_vec()),
            },
            message: VerifiedGroupMessage {
                group_id: self.id,
                sender: onion,
                text: text.to_owned(),
                timestamp: now,
                signature,
                previous_message_sig: dgm.previous_message_sig.take(),
            },
        })
    }

    /// Try this group's key on a ciphertext body, in place; `true` if it opened.
    fn try_open(&self, nonce: &[u8], tag: &[u8], body: &mut [u8]) -> bool {
        let cipher = XSalsa20Poly1305::new((&*self.key).into());
        cipher
            .decrypt_in_place_detached(Nonce::from_slice(nonce), b"", body, Tag::from_slice(tag))
            .is_ok()
    }
}

/// `PreviousMessageSig` of a sender's first message in a group: the bytes of the server's onion
/// (Go `[]byte(group.GroupServer)`; protocol.md §6.2, recalled, UNCONFIRMED).
pub fn first_previous_message_sig(server: &Onion) -> Vec<u8> {
    server.as_str().as_bytes().to_vec()
}

/// `SignedGroupID` of the messages we send: the 16 raw bytes of the group ID (Go
/// `hex.DecodeString(group.GroupID)`; protocol.md §6.2, recalled, UNCONFIRMED).
///
/// The name is a misnomer (handbook): the signature binds the group through its ID and server
/// ([`signature_input`]). Go does not check this field on receipt (recalled), and neither do
/// we for acceptance; we only read it to tell a message meant for another group
/// ([`Error::WrongGroupBinding`]) from a forgery ([`Error::BadGroupSignature`]).
pub fn signed_group_id(id: GroupId) -> Vec<u8> {
    id.as_bytes().to_vec()
}

/// What a group message's signature covers: `GroupID (hex) + GroupServer (onion) +
/// base64std(json(DecryptedGroupMessage))`, as UTF-8 (protocol.md §6.2, DOC: handbook
/// "Message Formats" and docs.cwtch.im "Groups").
///
/// `json` is Go's `json.Marshal` of the message: the sender's own encoding when sealing, and
/// the receiver's re-encoding of what it decoded when verifying (as Go does), never the
/// decrypted bytes themselves. The ciphertext is not signed (but see
/// [`ACCEPT_LEGACY_CIPHERTEXT_SIGNATURE`]).
pub fn signature_input(group: &Group, json: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(group.binding.len() + json.len().div_ceil(3) * 4);
    input.extend_from_slice(&group.binding);
    gojson::append_base64(&mut input, json);
    input
}

/// How to pad a plaintext whose JSON without padding bytes (`"Padding":""`) is `unpadded`
/// bytes long to exactly [`GROUP_PLAINTEXT_LEN`]: the number of random padding bytes and the
/// number of spaces after the JSON (0–3).
///
/// Ours, deliberately not Go's (protocol.md §6.2): Go pads with `1800 − len(Text)` bytes, which
/// the handbook says makes "all encrypted group messages equal length"; but base64 and JSON
/// escaping make Go's plaintexts vary by hundreds of bytes with the text. Base64 grows in steps
/// of 4, so 0–3 bytes of whitespace after the JSON make the length exact: Go's
/// `json.Unmarshal` skips it, and the signature covers the re-encoded JSON, which has none.
pub fn padding_for(unpadded: usize) -> (usize, usize) {
    let room = GROUP_PLAINTEXT_LEN.saturating_sub(unpadded);
    (room / 4 * 3, room % 4)
}

/// The length of `text` written as a Go JSON string, without the quotes.
fn escaped_len(text: &[u8]) -> usize {
    let mut out = Vec::with_capacity(text.len() + 2);
    gojson::write_string(&mut out, text);
    out.len().saturating_sub(2)
}

/// Seal `buf[40..]` in place with Go's layout: `buf = nonce(24) || tag(16) || ciphertext`
/// (Go `secretbox.Seal(nonce[:], json, &nonce, &key)`; protocol.md §6.2, recalled, the same
/// construction as the CONFIRMED v1 file store of §8.1).
fn seal_in_place(
    key: &[u8; GROUP_KEY_LEN],
    nonce: &[u8; GROUP_NONCE_LEN],
    buf: &mut [u8],
) -> Result<(), Error> {
    let (head, body) = buf.split_at_mut(GROUP_NONCE_LEN + GROUP_TAG_LEN);
    let cipher = XSalsa20Poly1305::new(key.into());
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(nonce), b"", body)
        // Only fails above the cipher's 256 GiB limit.
        .map_err(|_| Error::GroupTextTooLong {
            bytes: body.len(),
            encoded: body.len(),
        })?;
    head[..GROUP_NONCE_LEN].copy_from_slice(nonce);
    head[GROUP_NONCE_LEN..].copy_from_slice(&tag);
    Ok(())
}

/// A message sealed by [`Group::seal`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedGroupMessage {
    /// What to post to the group's server (`PostRequest.EGM`).
    pub egm: EncryptedGroupMessage,
    /// What the sender stores locally: the same value every member gets from
    /// [`EncryptedGroupMessage::open`].
    pub message: VerifiedGroupMessage,
}

/// Plaintexts up to this size are trial-decrypted in a stack buffer, without allocating.
const STACK_BUFFER_LEN: usize = 4096;

impl EncryptedGroupMessage {
    /// Trial-decrypt this message with the key of every group in `groups` (a profile's groups on
    /// the server that relayed it; protocol.md §6.4) and decode the plaintext of the first that
    /// opens it, as Go's `AttemptDecryption` does. The signature is not checked yet.
    ///
    /// [`Error::NotForAnyGroup`] is the common case (a message for someone else's group); it
    /// costs one Poly1305 check per group and no allocation for ciphertexts up to 4 KiB.
    /// [`Error::MalformedGroupMessage`] means a group key opened it but the plaintext is not a
    /// `DecryptedGroupMessage`: someone holding the key misbehaves.
    pub fn trial_decrypt<'a>(
        &'a self,
        groups: impl IntoIterator<Item = &'a Group>,
    ) -> Result<UnverifiedGroupMessage<'a>, Error> {
        let ciphertext = self.ciphertext.as_deref().unwrap_or_default();
        if ciphertext.len() < GROUP_NONCE_LEN + GROUP_TAG_LEN {
            return Err(Error::NotForAnyGroup);
        }
        let (nonce, rest) = ciphertext.split_at(GROUP_NONCE_LEN);
        let (tag, body) = rest.split_at(GROUP_TAG_LEN);

        let mut stack = [0u8; STACK_BUFFER_LEN];
        let mut heap = Vec::new();
        let buf: &mut [u8] = match stack.get_mut(..body.len()) {
            Some(buf) => {
                buf.copy_from_slice(body);
                buf
            }
            None => {
                heap.extend_from_slice(body);
                &mut heap[..]
            }
        };
        // A failed attempt leaves `buf` untouched (the tag is checked before decrypting).
        let Some(group) = groups.into_iter().find(|g| g.try_open(nonce, tag, buf)) else {
            return Err(Error::NotForAnyGroup);
        };
        // The plaintext is the message, which goes to the caller in the clear: not zeroized
        // (keys are).
        let dgm =
            DecryptedGroupMessage::from_json(buf).map_err(|e| Error::MalformedGroupMessage {
                group_id: group.id,
                source: Box::new(e),
            })?;
        Ok(UnverifiedGroupMessage {
            group,
            egm: self,
            dgm,
        })
    }

    /// [`EncryptedGroupMessage::trial_decrypt`], then [`UnverifiedGroupMessage::verify`].
    pub fn open<'a>(
        &'a self,
        groups: impl IntoIterator<Item = &'a Group>,
    ) -> Result<VerifiedGroupMessage, Error> {
        self.trial_decrypt(groups)?.verify()
    }
}

/// A group message that one of our group keys decrypted, whose sender is not yet verified.
pub struct UnverifiedGroupMessage<'a> {
    group: &'a Group,
    egm: &'a EncryptedGroupMessage,
    dgm: DecryptedGroupMessage,
}

impl fmt::Debug for UnverifiedGroupMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnverifiedGroupMessage")
            .field("group", &self.group.id)
            .field("dgm", &self.dgm)
            .finish()
    }
}

impl UnverifiedGroupMessage<'_> {
    /// The group whose key decrypted the message.
    pub fn group_id(&self) -> GroupId {
        self.group.id
    }

    /// The `Signature` the message came with (its ID on the server): a receiver that already
    /// stores a message with this signature can skip verifying it again.
    pub fn signature(&self) -> &[u8] {
        self.egm.signature.as_deref().unwrap_or_default()
    }

    /// Check the sender (protocol.md §6.2, §6.4): `Onion` must be a valid v3 onion address
    /// whose key verifies the message's signature over [`signature_input`] of this group and
    /// Go's re-encoding of the decrypted message.
    ///
    /// Errors: [`Error::MalformedGroupMessage`] if `Onion` is not a valid address (stricter
    /// than Go, which only base32-decodes it); [`Error::WrongGroupBinding`] if the signature
    /// does not verify and `SignedGroupID` names another group (a message signed for another
    /// group or server that shares this key, the forwarding attack of the Cwtch handbook);
    /// [`Error::BadGroupSignature`] for any other signature that does not verify.
    pub fn verify(self) -> Result<VerifiedGroupMessage, Error> {
        let group_id = self.group.id;
        let malformed = |source| Error::MalformedGroupMessage {
            group_id,
            source: Box::new(source),
        };
        let sender = self.dgm.sender().map_err(malformed)?;
        let key = sender.public_key().map_err(|source| {
            malformed(Error::InvalidOnion {
                what: "group message Onion",
                source,
            })
        })?;
        let bad_signature = || {
            let claimed = self.dgm.signed_group_id.as_deref();
            if claimed.is_some_and(|c| c != group_id.as_bytes()) {
                Error::WrongGroupBinding { group_id }
            } else {
                Error::BadGroupSignature { group_id }
            }
        };
        let sig = self.signature();
        let signature: Signature = sig.try_into().map_err(|_| bad_signature())?;
        let mut json = Vec::with_capacity(GROUP_PLAINTEXT_LEN);
        self.dgm.write_go_json(&mut json);
        let input = signature_input(self.group, &json);
        let verified = key.verify(&input, &signature).is_ok()
            || (ACCEPT_LEGACY_CIPHERTEXT_SIGNATURE && {
                let mut legacy = self.group.binding.to_vec();
                legacy.extend_from_slice(self.egm.ciphertext.as_deref().unwrap_or_default());
                key.verify(&legacy, &signature).is_ok()
            });
        if !verified {
            return Err(bad_signature());
        }
        let DecryptedGroupMessage {
            text,
            timestamp,
            previous_message_sig,
            ..
        } = self.dgm;
        // Decoding made `text` UTF-8 (Go's U+FFFD coercion); the fallback never runs.
        let text = String::from_utf8(text).unwrap_or_else(|e| gojson::go_lossy_utf8(e.as_bytes()));
        Ok(VerifiedGroupMessage {
            group_id,
            sender,
            text,
            timestamp,
            signature,
            previous_message_sig,
        })
    }
}

/// A group message whose sender signed it for this group: what a profile stores and shows.
///
/// Only [`UnverifiedGroupMessage::verify`] and [`Group::seal`] make one.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedGroupMessage {
    group_id: GroupId,
    sender: Onion,
    text: String,
    timestamp: u64,
    signature: Signature,
    previous_message_sig: Option<Vec<u8>>,
}

impl fmt::Debug for VerifiedGroupMessage {
    /// Text and sender only with unsafe logging on.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedGroupMessage")
            .field("group_id", &self.group_id)
            .field("sender", &self.sender)
            .field("text", &Sensitive(&self.text))
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

impl VerifiedGroupMessage {
    /// The group it was sent to.
    pub fn group_id(&self) -> GroupId {
        self.group_id
    }

    /// The sender, whose key signed it.
    pub fn sender(&self) -> &Onion {
        &self.sender
    }

    /// `Text`: usually overlay JSON (`{"o":1,"d":"…"}`).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// `Timestamp`: the sender's clock, Unix seconds (the sender's claim, not checked).
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// The signature: the message's ID on the server, in `ReplayRequest.LastCommit` and in the
    /// `PreviousMessageSig` of later messages.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// `PreviousMessageSig`: the signature of the latest message the sender had seen in the
    /// group, or [`first_previous_message_sig`] (the sender's claim, not checked).
    pub fn previous_message_sig(&self) -> Option<&[u8]> {
        self.previous_message_sig.as_deref()
    }
}
