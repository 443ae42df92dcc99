//! Control-port authentication (control-spec §3.5, §3.21, §3.24): `PROTOCOLINFO`, then
//! SAFECOOKIE (preferred), plain COOKIE, a password, or nothing.

use std::fmt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::control::{rejected, Control};
use super::reply::{pair, quote, tokenize, words};
use crate::error::{AuthProblem, Error, ProtocolProblem};

/// A cookie is exactly this long (control-spec §5.1).
const COOKIE_LEN: usize = 32;
/// SAFECOOKIE nonces are this long.
const NONCE_LEN: usize = 32;
const SERVER_TO_CONTROLLER: &[u8] = b"Tor safe cookie authentication server-to-controller hash";
const CONTROLLER_TO_SERVER: &[u8] = b"Tor safe cookie authentication controller-to-server hash";

/// A control-port password (`HashedControlPassword` on Tor's side). Zeroized on drop;
/// `Debug` shows nothing.
#[derive(Clone)]
pub struct ControlPassword(Zeroizing<String>);

impl ControlPassword {
    /// Wrap a password.
    pub fn new(password: impl Into<String>) -> ControlPassword {
        ControlPassword(Zeroizing::new(password.into()))
    }
}

impl fmt::Debug for ControlPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ControlPassword([scrubbed])")
    }
}

/// How to authenticate to a control port.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ControlAuth {
    /// Cookie authentication (SAFECOOKIE if offered, else COOKIE) with the cookie in this
    /// file, or, if `None`, in the file Tor names in its `PROTOCOLINFO` reply.
    Cookie(Option<PathBuf>),
    /// Password authentication.
    Password(ControlPassword),
}

/// What `PROTOCOLINFO` told us.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProtocolInfo {
    pub(crate) methods: Vec<String>,
    pub(crate) cookie_file: Option<PathBuf>,
    pub(crate) version: Option<String>,
}

impl ProtocolInfo {
    fn offers(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m == method)
    }
}

/// Ask for `PROTOCOLINFO 1` and parse it.
pub(crate) async fn protocol_info(control: &Control) -> Result<ProtocolInfo, Error> {
    let reply = control
        .command("PROTOCOLINFO", "PROTOCOLINFO 1".to_owned())
        .await?;
    let mut info = ProtocolInfo::default();
    for line in &reply.lines {
        let tokens = tokenize(&line.text).map_err(|problem| Error::ControlProtocol { problem })?;
        let keyword = words(&tokens).next();
        match keyword {
            Some("AUTH") => {
                if let Some(methods) = pair(&tokens, "METHODS") {
                    info.methods = methods.split(',').map(str::to_owned).collect();
                }
                info.cookie_file = pair(&tokens, "COOKIEFILE").map(PathBuf::from);
            }
            Some("VERSION") => info.version = pair(&tokens, "Tor").map(str::to_owned),
            _ => {}
        }
    }
    Ok(info)
}

/// Authenticate `control` with `auth`. Returns what `PROTOCOLINFO` said.
pub(crate) async fn authenticate(
    control: &Control,
    auth: &ControlAuth,
) -> Result<ProtocolInfo, Error> {
    let info = protocol_info(control).await?;
    match auth {
        ControlAuth::Cookie(path) => {
            let path = match (path, &info.cookie_file) {
                (Some(p), _) => p.clone(),
                (None, Some(p)) => p.clone(),
                (None, None) if info.offers("NULL") => {
                    return send_authenticate(control, Zeroizing::new(String::new()))
                        .await
                        .map(|()| info);
                }
                (None, None) => {
                    return Err(Error::Authentication {
                        problem: AuthProblem::NoUsableMethod,
                    })
                }
            };
            let cookie = read_cookie(&path).await?;
            if info.offers("SAFECOOKIE") {
                safecookie(control, &cookie).await?;
            } else if info.offers("COOKIE") {
                send_authenticate(control, Zeroizing::new(hex::encode(cookie.as_slice()))).await?;
            } else if info.offers("NULL") {
                send_authenticate(control, Zeroizing::new(String::new())).await?;
            } else {
                return Err(Error::Authentication {
                    problem: AuthProblem::NoUsableMethod,
                });
            }
        }
        ControlAuth::Password(password) => {
            if !info.offers("HASHEDPASSWORD") && info.offers("NULL") {
                send_authenticate(control, Zeroizing::new(String::new())).await?;
            } else if info.offers("HASHEDPASSWORD") || info.methods.is_empty() {
                let quoted = Zeroizing::new(quote(&password.0).ok_or(Error::Authentication {
                    problem: AuthProblem::UnencodablePassword,
                })?);
                send_authenticate(control, quoted).await?;
            } else {
                return Err(Error::Authentication {
                    problem: AuthProblem::NoUsableMethod,
                });
            }
        }
    }
    tracing::debug!("tor control: authenticated");
    Ok(info)
}

/// Read a cookie file: exactly 32 bytes.
pub(crate) async fn read_cookie(path: &Path) -> Result<Zeroizing<Vec<u8>>, Error> {
    let file_err = |source| Error::File {
        path: path.to_path_buf(),
        source,
    };
    let meta = tokio::fs::metadata(path).await.map_err(file_err)?;
    if meta.len() != COOKIE_LEN as u64 {
        return Err(Error::Authentication {
            problem: AuthProblem::BadCookieLength(meta.len()),
        });
    }
    let cookie = Zeroizing::new(tokio::fs::read(path).await.map_err(file_err)?);
    if cookie.len() != COOKIE_LEN {
        return Err(Error::Authentication {
            problem: AuthProblem::BadCookieLength(cookie.len() as u64),
        });
    }
    Ok(cookie)
}

/// The SAFECOOKIE exchange: prove we know the cookie without sending it, and check that
/// the other end knows it too (so a process squatting on the port learns nothing).
async fn safecookie(control: &Control, cookie: &[u8]) -> Result<(), Error> {
    let mut client_nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut client_nonce);
    let reply = control
        .command(
            "AUTHCHALLENGE",
            format!("AUTHCHALLENGE SAFECOOKIE {}", hex::encode(client_nonce)),
        )
        .await?;
    let tokens =
        tokenize(reply.first_text()).map_err(|problem| Error::ControlProtocol { problem })?;
    let field = |name: &'static str| -> Result<Vec<u8>, Error> {
        let value = pair(&tokens, name).ok_or(Error::ControlProtocol {
            problem: ProtocolProblem::MissingField(name),
        })?;
        hex::decode(value).map_err(|_| Error::ControlProtocol {
            problem: ProtocolProblem::InvalidField(name),
        })
    };
    let server_hash = field("SERVERHASH")?;
    let server_nonce = field("SERVERNONCE")?;
    let (expected_server, client_hash) = safecookie_hashes(cookie, &client_nonce, &server_nonce);
    // Constant-time comparison.
    if expected_server.verify_slice(&server_hash).is_err() {
        return Err(Error::Authentication {
            problem: AuthProblem::ServerHashMismatch,
        });
    }
    send_authenticate(control, Zeroizing::new(hex::encode(client_hash.as_slice()))).await
}

/// The server hash (as a MAC to verify against) and the client hash for SAFECOOKIE.
fn safecookie_hashes(
    cookie: &[u8],
    client_nonce: &[u8],
    server_nonce: &[u8],
) -> (Hmac<Sha256>, Zeroizing<Vec<u8>>) {
    let mac = |key: &[u8]| {
        // HMAC accepts keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(cookie);
        mac.update(client_nonce);
        mac.update(server_nonce);
        mac
    };
    let server = mac(SERVER_TO_CONTROLLER);
    let client = Zeroizing::new(mac(CONTROLLER_TO_SERVER).finalize().into_bytes().to_vec());
    (server, client)
}

/// `AUTHENTICATE <token>`; `515` means rejected.
async fn send_authenticate(control: &Control, token: Zeroizing<String>) -> Result<(), Error> {
    let mut line = Zeroizing::new(String::with_capacity(token.len() + 13));
    line.push_str("AUTHENTICATE");
    if !token.is_empty() {
        line.push(' ');
        line.push_str(&token);
    }
    let reply = control.raw("AUTHENTICATE", line).await?;
    match reply.code {
        250 => Ok(()),
        515 => Err(Error::Authentication {
            problem: AuthProblem::Rejected,
        }),
        _ => Err(rejected("AUTHENTICATE", &reply)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The SAFECOOKIE hashes a server would compute, for fake control ports in tests.
    pub(crate) fn server_side(
        cookie: &[u8],
        client_nonce: &[u8],
        server_nonce: &[u8],
    ) -> (Vec<u8>, Vec<u8>) {
        let (server, client) = safecookie_hashes(cookie, client_nonce, server_nonce);
        (server.finalize().into_bytes().to_vec(), client.to_vec())
    }

    #[test]
    fn safecookie_hashes_match_an_independent_computation() {
        // HMAC-SHA256 computed with Python's hmac module for these inputs:
        // cookie = 32 × 0x01, client nonce = 32 × 0x02, server nonce = 32 × 0x03.
        let (server, client) = server_side(&[1; 32], &[2; 32], &[3; 32]);
        assert_eq!(
            hex::encode(server),
            "1830d2de6e061e60adfa2c0c2a9257b7126e51b074f39bd4519d89229df08827"
        );
        assert_eq!(
            hex::encode(client),
            "8d81b806c8314911da68057896783b1f28f640a588c9a2cfe902d371806bbf1a"
        );
    }

    #[test]
    fn password_debug_is_scrubbed() {
        let p = ControlPassword::new("hunter2");
        assert!(!format!("{p:?}").contains("hunter2"));
        assert!(!format!("{:?}", ControlAuth::Password(p)).contains("hunter2"));
    }
}
