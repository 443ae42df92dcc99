//! The auth application: a 3DH handshake bound to the connection transcript (spec §3).
//!
//! 1. Both sides send `{"LongTermPublicKey":…,"EphemeralPublicKey":…}` in plaintext.
//! 2. The dialler checks the peer's long-term key is the onion it dialled.
//! 3. Both derive `SHA3-256(DH(L_out,E_in) || DH(E_out,L_in) || DH(E_out,E_in))` and switch to
//!    encryption.
//! 4. Both commit the transcript (hostnames, both auth messages) to a 64-byte challenge, send
//!    `challenge || own hostname` encrypted, and compare the peer's in constant time with
//!    `challenge || peer's hostname`. Only someone holding the long-term secret of the key it
//!    presented can derive the session key, so a match proves identity.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use subtle::ConstantTimeEq;
use torv3::{Identity, Onion, PublicKey};
use zeroize::Zeroizing;

use crate::app::{AppContext, Application, Step};
use crate::capability::AUTHENTICATION_CAPABILITY;
use crate::compat::{
    session_key_from_3dh, AUTH_CHALLENGE, AUTH_CHALLENGE_INCLUDES_HOSTNAME, AUTH_INBOUND_CHALLENGE,
    AUTH_INBOUND_HOSTNAME, AUTH_OUTBOUND_CHALLENGE, AUTH_OUTBOUND_HOSTNAME, AUTH_PROTOCOL,
};
use crate::connection::Event;
use crate::packet::SessionKey;
use crate::Error;

/// The auth message each side sends first (Go struct `AuthMessage`, no JSON tags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthMessage {
    /// The sender's long-term Ed25519 public key (the key of its onion).
    pub long_term: [u8; 32],
    /// A fresh ephemeral Ed25519 public key for this connection.
    pub ephemeral: [u8; 32],
}

#[derive(serde::Deserialize)]
struct AuthMessageJson {
    #[serde(rename = "LongTermPublicKey")]
    long_term: Option<String>,
    #[serde(rename = "EphemeralPublicKey")]
    ephemeral: Option<String>,
}

fn decode_key(field: Option<String>, what: &'static str) -> Result<[u8; 32], Error> {
    let s = field.ok_or(Error::MalformedAuthMessage(what))?;
    let bytes = B64
        .decode(s.as_bytes())
        .map_err(|_| Error::MalformedAuthMessage(what))?;
    bytes
        .try_into()
        .map_err(|_| Error::MalformedAuthMessage(what))
}

impl AuthMessage {
    /// Go's `json.Marshal(AuthMessage{…})`: field order as declared, std base64 with padding.
    /// The transcript commits to exactly these bytes, so they must match Go's.
    pub fn to_json(&self) -> Vec<u8> {
        format!(
            "{{\"LongTermPublicKey\":\"{}\",\"EphemeralPublicKey\":\"{}\"}}",
            B64.encode(self.long_term),
            B64.encode(self.ephemeral)
        )
        .into_bytes()
    }

    /// Parse a peer's auth message. Both keys must be present and 32 bytes long.
    pub fn from_json(bytes: &[u8]) -> Result<AuthMessage, Error> {
        let j: AuthMessageJson = serde_json::from_slice(bytes)
            .map_err(|_| Error::MalformedAuthMessage("not a JSON auth message"))?;
        Ok(AuthMessage {
            long_term: decode_key(j.long_term, "LongTermPublicKey")?,
            ephemeral: decode_key(j.ephemeral, "EphemeralPublicKey")?,
        })
    }
}

/// The 96 bytes of 3DH material, in the order both sides agree on:
/// `DH(L_out, E_in) || DH(E_out, L_in) || DH(E_out, E_in)`.
pub fn three_dh_material(
    long_term: &Identity,
    ephemeral: &Identity,
    remote_long_term: &PublicKey,
    remote_ephemeral: &PublicKey,
    outbound: bool,
) -> Result<Zeroizing<[u8; 96]>, Error> {
    let l2e = long_term.diffie_hellman(remote_ephemeral)?;
    let e2l = ephemeral.diffie_hellman(remote_long_term)?;
    let e2e = ephemeral.diffie_hellman(remote_ephemeral)?;
    let mut m = Zeroizing::new([0u8; 96]);
    let (first, second) = if outbound { (&l2e, &e2l) } else { (&e2l, &l2e) };
    m[..32].copy_from_slice(first.as_ref());
    m[32..64].copy_from_slice(second.as_ref());
    m[64..].copy_from_slice(e2e.as_ref());
    Ok(m)
}

/// The session key of a 3DH exchange (Go's `Perform3DH` followed by the KDF).
pub fn perform_3dh(
    long_term: &Identity,
    ephemeral: &Identity,
    remote_long_term: &PublicKey,
    remote_ephemeral: &PublicKey,
    outbound: bool,
) -> Result<SessionKey, Error> {
    let m = three_dh_material(
        long_term,
        ephemeral,
        remote_long_term,
        remote_ephemeral,
        outbound,
    )?;
    Ok(session_key_from_3dh(&m))
}

/// The payload each side sends to prove it derived the same transcript and key.
pub fn challenge_message(challenge: &[u8; 64], hostname: &Onion) -> Vec<u8> {
    let mut m = challenge.to_vec();
    if AUTH_CHALLENGE_INCLUDES_HOSTNAME {
        m.extend_from_slice(hostname.as_str().as_bytes());
    }
    m
}

enum State {
    Start,
    SentAuthMessage {
        ephemeral: Identity,
        local_json: Vec<u8>,
    },
    AwaitingChallenge {
        expected: Vec<u8>,
        remote: Onion,
    },
    Done,
}

/// The auth application, usable in both roles (the connection's direction decides).
pub struct AuthApp {
    state: State,
}

impl AuthApp {
    /// A fresh auth app for one connection.
    pub fn new() -> AuthApp {
        AuthApp {
            state: State::Start,
        }
    }
}

impl Default for AuthApp {
    fn default() -> Self {
        AuthApp::new()
    }
}

impl Application for AuthApp {
    fn name(&self) -> &'static str {
        "auth"
    }

    fn start(&mut self, cx: &mut AppContext<'_>) -> Result<Step, Error> {
        let ephemeral = Identity::generate(cx.rng());
        let local_json = AuthMessage {
            long_term: *cx.identity().public_key().as_bytes(),
            ephemeral: *ephemeral.public_key().as_bytes(),
        }
        .to_json();
        cx.send(&local_json)?;
        self.state = State::SentAuthMessage {
            ephemeral,
            local_json,
        };
        Ok(Step::Continue)
    }

    fn receive(&mut self, cx: &mut AppContext<'_>, payload: &[u8]) -> Result<Step, Error> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::SentAuthMessage {
                ephemeral,
                local_json,
            } => {
                let (expected, remote) = key_exchange(cx, &ephemeral, &local_json, payload)?;
                self.state = State::AwaitingChallenge { expected, remote };
                Ok(Step::Continue)
            }
            State::AwaitingChallenge { expected, remote } => {
                if !bool::from(payload.ct_eq(&expected)) {
                    return Err(Error::ChallengeMismatch);
                }
                cx.set_remote(remote.clone());
                cx.grant(AUTHENTICATION_CAPABILITY);
                cx.emit(Event::Authenticated(remote));
                Ok(Step::Done)
            }
            State::Start | State::Done => Err(Error::NotEstablished),
        }
    }
}

/// Steps 2–4 of the handshake: returns the challenge message we expect from the peer.
fn key_exchange(
    cx: &mut AppContext<'_>,
    ephemeral: &Identity,
    local_json: &[u8],
    payload: &[u8],
) -> Result<(Vec<u8>, Onion), Error> {
    let msg = AuthMessage::from_json(payload)?;
    let remote = Onion::from_key_bytes(&msg.long_term);
    if let Some(dialled) = cx.dialled() {
        if *dialled != remote {
            return Err(Error::IdentityMismatch {
                expected: dialled.clone(),
                presented: remote,
            });
        }
    }
    let remote_long_term = PublicKey::from_bytes(&msg.long_term)?;
    let remote_ephemeral = PublicKey::from_bytes(&msg.ephemeral)?;
    let outbound = cx.is_outbound();
    let key = perform_3dh(
        cx.identity(),
        ephemeral,
        &remote_long_term,
        &remote_ephemeral,
        outbound,
    )?;
    cx.set_session_key(key);

    // Go commits to its own re-serialisation of the parsed peer message; ours is identical
    // because `to_json` reproduces Go's encoding of the same two keys.
    let remote_json = msg.to_json();
    let local_host = cx.identity().onion();
    let (out_host, in_host, out_json, in_json) = if outbound {
        (&local_host, &remote, local_json, &remote_json[..])
    } else {
        (&remote, &local_host, &remote_json[..], local_json)
    };
    let t = cx.transcript();
    t.new_protocol(AUTH_PROTOCOL);
    t.append(AUTH_OUTBOUND_HOSTNAME, out_host.as_str().as_bytes());
    t.append(AUTH_INBOUND_HOSTNAME, in_host.as_str().as_bytes());
    t.append(AUTH_OUTBOUND_CHALLENGE, out_json);
    t.append(AUTH_INBOUND_CHALLENGE, in_json);
    let challenge = t.commit(AUTH_CHALLENGE);

    cx.send(&challenge_message(&challenge, &local_host))?;
    Ok((challenge_message(&challenge, &remote), remote))
}
