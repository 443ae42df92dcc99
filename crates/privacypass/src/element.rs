//! A ristretto255 point together with its canonical encoding.

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};

use crate::Error;

/// A point and its 32-byte canonical encoding, so that encoding (JSON, `%v`, transcripts)
/// never recompresses. Only public points live here.
#[derive(Clone, Copy)]
pub(crate) struct Element {
    pub(crate) point: RistrettoPoint,
    pub(crate) enc: [u8; 32],
}

impl Element {
    pub(crate) fn from_point(point: RistrettoPoint) -> Element {
        Element {
            point,
            enc: point.compress().to_bytes(),
        }
    }

    /// Decode a canonical encoding (Go's `Element.Decode`), rejecting anything else.
    pub(crate) fn from_bytes(enc: &[u8; 32]) -> Result<Element, Error> {
        let point = CompressedRistretto(*enc)
            .decompress()
            .ok_or(Error::InvalidPoint)?;
        Ok(Element { point, enc: *enc })
    }
}

impl PartialEq for Element {
    fn eq(&self, other: &Element) -> bool {
        // Encodings are canonical, so equal points have equal encodings.
        self.enc == other.enc
    }
}

impl Eq for Element {}
