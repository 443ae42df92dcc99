//! v3 onion service ids (rend-spec-v3 §6, "Encoding onion addresses").

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE32;
use sha3::{Digest, Sha3_256};

use crate::identity::PublicKey;
use crate::safelog::Redacted;
use crate::Error;

/// Length of a v3 onion service id without the `.onion` suffix.
pub const ONION_LEN: usize = 56;
const VERSION: u8 = 3;
const CHECKSUM_PREFIX: &[u8] = b".onion checksum";

/// A v3 onion service id: 56 lower-case base32 characters, without `.onion`.
///
/// This is what Cwtch calls a peer's *address*, *onion* or *hostname*. A value of this type
/// always has a correct version byte and checksum; its key is a valid curve point only if
/// [`Onion::public_key`] says so (Go's `IsValidHostname` does not check that either).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Onion(String);

impl Onion {
    /// The onion address of a public key (Go's `GetTorV3Hostname`).
    pub fn from_public_key(key: &PublicKey) -> Onion {
        Onion::from_key_bytes(key.as_bytes())
    }

    /// The onion address of 32 key bytes, whether or not they are a valid curve point.
    ///
    /// Go derives hostnames from whatever 32 bytes a peer presents; so must we, to compare.
    pub fn from_key_bytes(key: &[u8; 32]) -> Onion {
        let mut raw = [0u8; 35];
        raw[..32].copy_from_slice(key);
        raw[32..34].copy_from_slice(&checksum(key));
        raw[34] = VERSION;
        Onion(BASE32.encode(&raw).to_ascii_lowercase())
    }

    /// Parse an onion address. Accepts either case and an optional `.onion` suffix; checks
    /// the alphabet, the version byte and the checksum.
    pub fn parse(s: &str) -> Result<Onion, Error> {
        let s = s.strip_suffix(".onion").unwrap_or(s);
        if s.len() != ONION_LEN {
            return Err(Error::OnionSyntax(s.chars().count()));
        }
        // Only the 32 base32 letters: no padding (`=`), which the decoder would accept and turn
        // into fewer than 35 bytes, and nothing outside ASCII.
        if !s.bytes().all(is_base32_letter) {
            return Err(Error::OnionSyntax(s.len()));
        }
        let upper = s.to_ascii_uppercase();
        let raw = BASE32
            .decode(upper.as_bytes())
            .map_err(|_| Error::OnionSyntax(s.len()))?;
        // 56 base32 letters without padding are exactly 35 bytes; checked, not assumed.
        let raw: [u8; 35] = raw
            .as_slice()
            .try_into()
            .map_err(|_| Error::OnionSyntax(s.len()))?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&raw[..32]);
        if raw[34] != VERSION {
            return Err(Error::OnionVersion(raw[34]));
        }
        if raw[32..34] != checksum(&key) {
            return Err(Error::OnionChecksum);
        }
        Ok(Onion(s.to_ascii_lowercase()))
    }

    /// The 56 characters, without `.onion`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 32 key bytes encoded in the address.
    pub fn key_bytes(&self) -> [u8; 32] {
        let mut key = [0u8; 32];
        // Infallible: constructed from a successful decode or from key bytes.
        if let Ok(raw) = BASE32.decode(self.0.to_ascii_uppercase().as_bytes()) {
            if let Some(bytes) = raw.get(..32) {
                key.copy_from_slice(bytes);
            }
        }
        key
    }

    /// The two checksum bytes the address carries (bytes 32 and 33 of the 35 it encodes).
    pub fn checksum(&self) -> [u8; 2] {
        checksum(&self.key_bytes())
    }

    /// The Ed25519 public key of this address, if its bytes are a valid point.
    pub fn public_key(&self) -> Result<PublicKey, Error> {
        PublicKey::from_bytes(&self.key_bytes())
    }

    /// A form that is safe to log: redacted unless unsafe logging is on (see [`crate::safelog`]).
    pub fn redacted(&self) -> Redacted<'_> {
        Redacted::onion(&self.0)
    }
}

/// RFC 4648 base32 letters, either case: `a`–`z` and `2`–`7`.
fn is_base32_letter(b: u8) -> bool {
    b.is_ascii_alphabetic() || (b'2'..=b'7').contains(&b)
}

fn checksum(key: &[u8; 32]) -> [u8; 2] {
    let mut h = Sha3_256::new();
    h.update(CHECKSUM_PREFIX);
    h.update(key);
    h.update([VERSION]);
    let d = h.finalize();
    [d[0], d[1]]
}

impl fmt::Display for Onion {
    /// The full address. Use [`Onion::redacted`] in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Onion {
    /// Redacted unless unsafe logging is on, so that `{:?}` in a log line leaks nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Onion({})", self.redacted())
    }
}

impl FromStr for Onion {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Onion::parse(s)
    }
}

impl AsRef<str> for Onion {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for Onion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Onion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Onion::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Real onions from Go Cwtch (testvectors/vectors.json).
    const REAL: &[&str] = &[
        "isbr2t6bflul2zyi6hjtnuezb2xvfr42svzjg2q3gyqfgg3wmnrbkkqd",
        "li53q6juafu4avr7rtyltmsq2ujyy7scrr3ftnkrlicsxew67xq64syd",
        "ur33edbwvbevcls5ue6jpkoubdptgkgl5bedzfyau2ibf5276lyp4uid",
        "cxjx5sr3op2i6hjrjsfzjbuefhiyq3tel5ulxnbj26vtvorphlemslid",
        "vbmmsbx3rhndpfz6t3jkrd7m3yu62xzrldxkdgsw4rsehiwuw3tmo7yd",
        "pjurzypqui3dnpxj6aemk6cqz22yx6zfr5lq4jzu7muwe2yyx2zrnzyd",
        "yxj2pvhozedflp4g7yitpqkeho63maaffi2qgsj3e6s2fbmosuuas2qd",
    ];

    #[test]
    fn real_onions_parse_and_rederive() {
        for s in REAL {
            let o = Onion::parse(s).unwrap();
            assert_eq!(o.as_str(), *s);
            let pk = o.public_key().unwrap();
            assert_eq!(Onion::from_public_key(&pk), o);
        }
    }

    #[test]
    fn checksum_is_the_two_bytes_after_the_key() {
        for s in REAL {
            let raw = BASE32.decode(s.to_ascii_uppercase().as_bytes()).unwrap();
            let o = Onion::parse(s).unwrap();
            assert_eq!(o.checksum(), [raw[32], raw[33]], "{s}");
        }
    }

    #[test]
    fn suffix_and_case_are_normalised() {
        let o =
            Onion::parse("ISBR2T6BFLUL2ZYI6HJTNUEZB2XVFR42SVZJG2Q3GYQFGG3WMNRBKKQD.onion").unwrap();
        assert_eq!(o.as_str(), REAL[0]);
    }

    #[test]
    fn every_kind_of_bad_address_is_rejected() {
        // one character changed: checksum fails
        let mut s = REAL[0].to_string();
        s.replace_range(0..1, "j");
        assert_eq!(Onion::parse(&s), Err(Error::OnionChecksum));
        // wrong length
        assert_eq!(Onion::parse(&REAL[0][..55]), Err(Error::OnionSyntax(55)));
        // not base32 ('1' and '8' are outside the alphabet)
        let bad = format!("1{}", &REAL[0][1..]);
        assert_eq!(Onion::parse(&bad), Err(Error::OnionSyntax(56)));
        // version byte 4 with a checksum computed for version 4
        let key = Onion::parse(REAL[0]).unwrap().key_bytes();
        let mut raw = [0u8; 35];
        raw[..32].copy_from_slice(&key);
        let mut h = Sha3_256::new();
        h.update(CHECKSUM_PREFIX);
        h.update(key);
        h.update([4u8]);
        let d = h.finalize();
        raw[32] = d[0];
        raw[33] = d[1];
        raw[34] = 4;
        let v4 = BASE32.encode(&raw).to_ascii_lowercase();
        assert_eq!(Onion::parse(&v4), Err(Error::OnionVersion(4)));
    }

    /// Regression: 56 characters ending in base32 padding decode to 34 bytes, not 35, and once
    /// made `parse` index past the end (a remote crash: any peer could send one in a message).
    #[test]
    fn padding_and_short_decodes_are_errors_not_panics() {
        for s in [
            "isbr2t6flul2zyi6hjtnuezb2xvfr42svzjg2q3gyqfgg3wmnrbkkqY=",
            "isbr2t6flul2zyi6hjtnuezb2xvfr42svzjg2q3gyqfgg3wmnrbk====",
            "isbr2t6flul2zyi6hjtnuezb2xvfr42svzjg2q3gyqfgg3wmnr======",
            "========================================================",
        ] {
            assert_eq!(Onion::parse(s), Err(Error::OnionSyntax(56)), "{s}");
            assert!(Onion::parse(&format!("{s}.onion")).is_err());
        }
    }

    #[test]
    fn debug_does_not_leak_the_address() {
        let o = Onion::parse(REAL[0]).unwrap();
        let dbg = format!("{o:?}");
        assert!(!dbg.contains(REAL[0]), "{dbg}");
    }

    #[test]
    fn serde_round_trip_and_validation() {
        let o = Onion::parse(REAL[1]).unwrap();
        let j = serde_json::to_string(&o).unwrap();
        assert_eq!(j, format!("\"{}\"", REAL[1]));
        assert_eq!(serde_json::from_str::<Onion>(&j).unwrap(), o);
        assert!(serde_json::from_str::<Onion>("\"abc\"").is_err());
    }

    proptest! {
        #[test]
        fn any_key_round_trips(key in any::<[u8; 32]>()) {
            let o = Onion::from_key_bytes(&key);
            prop_assert_eq!(o.as_str().len(), ONION_LEN);
            prop_assert_eq!(Onion::parse(o.as_str()).unwrap().key_bytes(), key);
        }

        #[test]
        fn arbitrary_text_never_panics(s in ".{0,80}") {
            let _ = Onion::parse(&s);
        }

        #[test]
        fn base32_with_padding_never_panics(s in "[a-z2-7=]{50,56}(\\.onion)?") {
            let _ = Onion::parse(&s);
        }

        #[test]
        fn arbitrary_base32_of_right_length_rarely_parses(s in "[a-z2-7]{56}") {
            // Only the 1/65536 with a matching checksum and version may parse; any that does
            // must re-encode to itself.
            if let Ok(o) = Onion::parse(&s) {
                let again = Onion::from_key_bytes(&o.key_bytes());
                prop_assert_eq!(again.as_str(), s.as_str());
            }
        }
    }
}
