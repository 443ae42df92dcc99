//! Go's encodings of the token messages: `encoding/json` (exact bytes) and `fmt` `%v`.
//!
//! Encoders write Go's bytes exactly: field order as in the Go structs, no whitespace, std
//! base64 with padding (which needs no JSON escaping). Decoders follow Go's `encoding/json`
//! where it matters: object keys match field names ASCII-case-insensitively, unknown keys
//! are ignored, the last occurrence of a key wins, and `null` leaves a field unset (which is
//! then an error here). They are stricter than Go on base64: padding must be present and
//! canonical, trailing bits must be zero, and `\r`/`\n` are not skipped. Every value is
//! checked (lengths, canonical scalars, valid points) and reported as a typed [`Error`].

use std::fmt::Write as _;

use crate::element::Element;
use crate::proof::{DleqProof, SignedBatchWithProof};
use crate::token::{BlindedToken, SignedToken, SpentToken, SPEND_MAC_LEN, TOKEN_PREIMAGE_LEN};
use crate::{Error, SIGNED_BATCH_PROOF_TAG, SIGNED_BATCH_TOKENS_TAG};

/// Standard base64 with padding, as Go's `base64.StdEncoding`.
pub(crate) mod b64 {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use zeroize::Zeroizing;

    use crate::Error;

    pub(crate) fn encode(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    pub(crate) fn encode_into(bytes: &[u8], out: &mut Vec<u8>) {
        let mut s = String::new();
        STANDARD.encode_string(bytes, &mut s);
        out.extend_from_slice(s.as_bytes());
    }

    /// Decode exactly `N` bytes; `field` names the value in errors.
    pub(crate) fn decode_array<const N: usize>(
        text: &str,
        field: &'static str,
    ) -> Result<[u8; N], Error> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text)
                .map_err(|_| Error::InvalidBase64 { field })?,
        );
        let mut out = [0u8; N];
        if bytes.len() != N {
            return Err(Error::InvalidLength {
                field,
                expected: N,
                actual: bytes.len(),
            });
        }
        out.copy_from_slice(&bytes);
        Ok(out)
    }
}

/// Length of a base64-encoded 32-byte value.
const B64_32: usize = 44;
/// Length of one `{"P":"…"}` / `{"Q":"…"}` entry.
const TOKEN_ENTRY_JSON_LEN: usize = 8 + B64_32;

/// The exact length of [`blinded_batch_to_json`] for `n` tokens.
pub const fn blinded_batch_json_len(n: usize) -> usize {
    if n == 0 {
        2
    } else {
        2 + n * TOKEN_ENTRY_JSON_LEN + (n - 1)
    }
}

/// The exact length of [`SignedBatchWithProof::to_json`] for `n` tokens.
pub const fn signed_batch_json_len(n: usize) -> usize {
    // {"st":[ … ],"dp":{"C":"…","S":"…"}}
    let fixed = 7 + 13 + B64_32 + 7 + B64_32 + 3;
    if n == 0 {
        fixed
    } else {
        fixed + n * TOKEN_ENTRY_JSON_LEN + (n - 1)
    }
}

fn push_token_entries<'a>(out: &mut Vec<u8>, tag: u8, encs: impl Iterator<Item = &'a [u8; 32]>) {
    for (i, enc) in encs.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"");
        out.push(tag);
        out.extend_from_slice(b"\":\"");
        b64::encode_into(enc, out);
        out.extend_from_slice(b"\"}");
    }
}

/// Go `json.Marshal([]BlindedToken)`: `[{"P":"<b64>"},…]`.
pub fn blinded_batch_to_json(b: &[BlindedToken]) -> Vec<u8> {
    let mut out = Vec::with_capacity(blinded_batch_json_len(b.len()));
    out.push(b'[');
    push_token_entries(&mut out, b'P', b.iter().map(|p| &p.0.enc));
    out.push(b']');
    out
}

/// Go `json.Unmarshal` into `[]BlindedToken`, with every point checked.
pub fn blinded_batch_from_json(b: &[u8]) -> Result<Vec<BlindedToken>, Error> {
    let wire: Vec<WireP> = serde_json::from_slice(b).map_err(Error::BadJson)?;
    wire.iter()
        .map(|w| point_field(&w.p, "P").map(BlindedToken))
        .collect()
}

impl SignedBatchWithProof {
    /// Go `json.Marshal`: `{"st":[{"Q":"<b64>"},…],"dp":{"C":"<b64>","S":"<b64>"}}`.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(signed_batch_json_len(self.signed_tokens.len()));
        out.extend_from_slice(b"{\"");
        out.extend_from_slice(SIGNED_BATCH_TOKENS_TAG.as_bytes());
        out.extend_from_slice(b"\":[");
        push_token_entries(&mut out, b'Q', self.signed_tokens.iter().map(|q| &q.0.enc));
        out.extend_from_slice(b"],\"");
        out.extend_from_slice(SIGNED_BATCH_PROOF_TAG.as_bytes());
        out.extend_from_slice(b"\":{\"C\":\"");
        b64::encode_into(self.proof.c.as_bytes(), &mut out);
        out.extend_from_slice(b"\",\"S\":\"");
        b64::encode_into(self.proof.s.as_bytes(), &mut out);
        out.extend_from_slice(b"\"}}");
        out
    }

    /// Go `json.Unmarshal`; also accepts the untagged Go field names `SignedTokens`/`Proof`.
    pub fn from_json(b: &[u8]) -> Result<SignedBatchWithProof, Error> {
        let wire: WireBatch = serde_json::from_slice(b).map_err(Error::BadJson)?;
        let st = wire.st.ok_or(Error::MissingField {
            field: SIGNED_BATCH_TOKENS_TAG,
        })?;
        let dp = wire.dp.ok_or(Error::MissingField {
            field: SIGNED_BATCH_PROOF_TAG,
        })?;
        let signed_tokens = st
            .iter()
            .map(|w| point_field(&w.q, "Q").map(SignedToken))
            .collect::<Result<Vec<_>, _>>()?;
        let c = required(&dp.c, "C")?;
        let s = required(&dp.s, "S")?;
        let proof =
            DleqProof::from_bytes(&b64::decode_array(c, "C")?, &b64::decode_array(s, "S")?)?;
        Ok(SignedBatchWithProof {
            signed_tokens,
            proof,
        })
    }
}

impl SpentToken {
    /// Go `json.Marshal`: `{"T":"<b64>","MAC":"<b64>"}`.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(7 + B64_32 + 9 + 88 + 2);
        out.extend_from_slice(b"{\"T\":\"");
        b64::encode_into(&self.t, &mut out);
        out.extend_from_slice(b"\",\"MAC\":\"");
        b64::encode_into(&self.mac, &mut out);
        out.extend_from_slice(b"\"}");
        out
    }

    /// Go `json.Unmarshal`; `T` must be 32 bytes and `MAC` 64.
    pub fn from_json(b: &[u8]) -> Result<SpentToken, Error> {
        let wire: WireSpent = serde_json::from_slice(b).map_err(Error::BadJson)?;
        Ok(SpentToken {
            t: b64::decode_array::<TOKEN_PREIMAGE_LEN>(required(&wire.t, "T")?, "T")?,
            mac: b64::decode_array::<SPEND_MAC_LEN>(required(&wire.mac, "MAC")?, "MAC")?,
        })
    }
}

fn required<'a>(v: &'a Option<String>, field: &'static str) -> Result<&'a str, Error> {
    v.as_deref().ok_or(Error::MissingField { field })
}

fn point_field(v: &Option<String>, field: &'static str) -> Result<Element, Error> {
    Element::from_bytes(&b64::decode_array(required(v, field)?, field)?)
}

fn fmt_v<'a>(encs: impl ExactSizeIterator<Item = &'a [u8; 32]>) -> String {
    let mut out = String::with_capacity(2 + encs.len() * (B64_32 + 3));
    out.push('[');
    for (i, enc) in encs.enumerate() {
        if i > 0 {
            out.push(' ');
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "{{{}}}", b64::encode(enc));
    }
    out.push(']');
    out
}

/// Go `fmt.Sprintf("%v", []BlindedToken)`: `[{<b64 P1>} {<b64 P2>} …]`, `[]` when empty.
/// This string is what the batch proof appends as the `P-vector`.
pub fn go_fmt_v_blinded(b: &[BlindedToken]) -> String {
    fmt_v(b.iter().map(|p| &p.0.enc))
}

/// Go `fmt.Sprintf("%v", []SignedToken)`: `[{<b64 Q1>} {<b64 Q2>} …]`, `[]` when empty.
/// This string is what the batch proof appends as the `Q-vector`.
pub fn go_fmt_v_signed(s: &[SignedToken]) -> String {
    fmt_v(s.iter().map(|q| &q.0.enc))
}

/// Declares a Go struct as received over the wire: every field optional, keys matched
/// ASCII-case-insensitively against the given names, last occurrence wins, unknown keys
/// ignored, as Go's `encoding/json` does.
macro_rules! go_struct {
    ($name:ident { $($field:ident : $ty:ty = [$($alias:expr),+]),+ $(,)? }) => {
        #[derive(Default)]
        struct $name {
            $($field: Option<$ty>),+
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("a JSON object (Go ", stringify!($name), ")"))
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<$name, A::Error> {
                        let mut out = $name::default();
                        while let Some(key) = map.next_key::<String>()? {
                            $(
                                if [$($alias),+].iter().any(|a: &&str| a.eq_ignore_ascii_case(&key)) {
                                    out.$field = map.next_value()?;
                                    continue;
                                }
                            )+
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                        Ok(out)
                    }
                }
                d.deserialize_map(V)
            }
        }
    };
}

go_struct!(WireP { p: String = ["P"] });
go_struct!(WireQ { q: String = ["Q"] });
go_struct!(WireProof {
    c: String = ["C"],
    s: String = ["S"],
});
go_struct!(WireBatch {
    st: Vec<WireQ> = [SIGNED_BATCH_TOKENS_TAG, crate::SIGNED_BATCH_TOKENS_GO_NAME],
    dp: WireProof = [SIGNED_BATCH_PROOF_TAG, crate::SIGNED_BATCH_PROOF_GO_NAME],
});
go_struct!(WireSpent {
    t: String = ["T"],
    mac: String = ["MAC"],
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_exact() {
        use rand_chacha::rand_core::SeedableRng;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let server = crate::TokenServer::generate(&mut rng);
        for n in [1usize, 2, 10, crate::MAX_BATCH_SIZE] {
            let (_, blinded) = crate::blind_batch(n, &mut rng);
            assert_eq!(
                blinded_batch_to_json(&blinded).len(),
                blinded_batch_json_len(n)
            );
            let mut tr = crate::Transcript::new("test");
            let batch = server.sign_batch(&blinded, &mut tr, &mut rng).unwrap();
            assert_eq!(batch.to_json().len(), signed_batch_json_len(n));
        }
        assert_eq!(blinded_batch_to_json(&[]), b"[]");
        assert_eq!(blinded_batch_json_len(0), 2);
    }
}
