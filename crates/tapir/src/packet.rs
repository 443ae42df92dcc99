//! Tapir's fixed-size packets (spec §2.2, §2.3).
//!
//! Every packet on the wire is exactly [`PACKET_LEN`] bytes, whatever it carries, so an
//! observer of the (Tor-encrypted) stream learns only how many packets were sent.
//!
//! - A *plaintext* packet is a frame: an unsigned varint length at offset 0 (Go's
//!   `binary.PutUvarint` into `frame[0..2]`), the payload at offset 2, zero padding.
//! - An *encrypted* packet is `nonce(24) || secretbox(frame[0..8152])`: the first 8152 bytes of a
//!   frame sealed with XSalsa20-Poly1305 under the session key and a fresh random nonce.
//!
//! A payload that does not fit is an error, never a silent truncation (Go truncates).

use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use poly1305::Poly1305;
use salsa20::cipher::{KeyIvInit, StreamCipher};
use salsa20::XSalsa20;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::compat::{LengthPrefix, ENCRYPTED_LENGTH_PREFIX};

/// Size of every packet on the wire.
pub const PACKET_LEN: usize = 8192;
/// Size of the length prefix area at the start of a frame.
pub const LENGTH_PREFIX_LEN: usize = 2;
/// Size of a secretbox nonce.
pub const NONCE_LEN: usize = 24;
/// Size of a Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// How much of a frame an encrypted packet carries: `8192 - 24 - 16`.
pub const SEALED_FRAME_LEN: usize = PACKET_LEN - NONCE_LEN - TAG_LEN;
/// Largest payload of a plaintext packet. Go's reader rejects `len + 2 >= 8192`.
pub const MAX_PLAINTEXT_PAYLOAD: usize = PACKET_LEN - LENGTH_PREFIX_LEN - 1;
/// Largest payload of an encrypted packet.
pub const MAX_ENCRYPTED_PAYLOAD: usize = SEALED_FRAME_LEN - LENGTH_PREFIX_LEN;

/// Errors of the packet layer. None of them is ever sent to the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    /// A payload larger than a packet can carry.
    #[error("payload of {len} bytes exceeds the maximum of {max}")]
    PayloadTooLarge {
        /// The payload's length.
        len: usize,
        /// The most this kind of packet can carry.
        max: usize,
    },
    /// A frame whose length prefix is not a valid varint, or claims more than fits.
    #[error("malformed length prefix")]
    BadLength,
    /// An encrypted packet that failed authentication: tampered, or the wrong key.
    #[error("packet failed authentication")]
    Decrypt,
}

/// A 32-byte session key, zeroized on drop.
#[derive(Clone)]
pub struct SessionKey(Zeroizing<[u8; 32]>);

impl SessionKey {
    /// Wrap raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> SessionKey {
        SessionKey(Zeroizing::new(bytes))
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey([scrubbed])")
    }
}

fn write_prefix(frame: &mut [u8], len: usize, prefix: LengthPrefix) {
    match prefix {
        LengthPrefix::Uvarint => {
            // len < 16384 always (callers check against the maxima), so two bytes suffice.
            if len < 0x80 {
                frame[0] = len as u8;
            } else {
                frame[0] = (len as u8 & 0x7f) | 0x80;
                frame[1] = (len >> 7) as u8;
            }
        }
        LengthPrefix::U16LittleEndian => {
            frame[..2].copy_from_slice(&(len as u16).to_le_bytes());
        }
    }
}

fn read_prefix(frame: &[u8], prefix: LengthPrefix) -> Result<usize, PacketError> {
    match prefix {
        // Go's `binary.Uvarint(frame[0:2])`: a single byte below 0x80 is the whole length
        // (the second byte is padding and is ignored); two continuation bytes do not fit.
        LengthPrefix::Uvarint => {
            let (b0, b1) = (frame[0], frame[1]);
            if b0 < 0x80 {
                Ok(usize::from(b0))
            } else if b1 < 0x80 {
                Ok(usize::from(b0 & 0x7f) | (usize::from(b1) << 7))
            } else {
                Err(PacketError::BadLength)
            }
        }
        LengthPrefix::U16LittleEndian => Ok(usize::from(u16::from_le_bytes([frame[0], frame[1]]))),
    }
}

fn fill_frame(frame: &mut [u8], payload: &[u8], prefix: LengthPrefix) -> Result<(), PacketError> {
    let max = frame.len() - LENGTH_PREFIX_LEN;
    if payload.len() > max {
        return Err(PacketError::PayloadTooLarge {
            len: payload.len(),
            max,
        });
    }
    write_prefix(frame, payload.len(), prefix);
    frame[LENGTH_PREFIX_LEN..LENGTH_PREFIX_LEN + payload.len()].copy_from_slice(payload);
    Ok(())
}

fn frame_payload(frame: &[u8], prefix: LengthPrefix, max: usize) -> Result<&[u8], PacketError> {
    let len = read_prefix(frame, prefix)?;
    if len > max {
        return Err(PacketError::BadLength);
    }
    Ok(&frame[LENGTH_PREFIX_LEN..LENGTH_PREFIX_LEN + len])
}

/// Encode a plaintext packet.
pub fn encode_plain(payload: &[u8]) -> Result<Vec<u8>, PacketError> {
    if payload.len() > MAX_PLAINTEXT_PAYLOAD {
        return Err(PacketError::PayloadTooLarge {
            len: payload.len(),
            max: MAX_PLAINTEXT_PAYLOAD,
        });
    }
    let mut packet = vec![0u8; PACKET_LEN];
    fill_frame(&mut packet, payload, LengthPrefix::Uvarint)?;
    Ok(packet)
}

/// Decode a plaintext packet (exactly [`PACKET_LEN`] bytes) into its payload.
pub fn decode_plain(packet: &[u8; PACKET_LEN]) -> Result<&[u8], PacketError> {
    frame_payload(packet, LengthPrefix::Uvarint, MAX_PLAINTEXT_PAYLOAD)
}

/// Seal a payload into an encrypted packet with the given nonce (use a fresh random nonce
/// for every packet; it is sent in the clear).
pub fn seal(
    key: &SessionKey,
    nonce: &[u8; NONCE_LEN],
    payload: &[u8],
) -> Result<Vec<u8>, PacketError> {
    if payload.len() > MAX_ENCRYPTED_PAYLOAD {
        return Err(PacketError::PayloadTooLarge {
            len: payload.len(),
            max: MAX_ENCRYPTED_PAYLOAD,
        });
    }
    // Wire layout (NaCl secretbox, as Go's `secretbox.Seal(nonce[:], …)`):
    // nonce(24) || tag(16) || ciphertext(8152).
    let mut packet = vec![0u8; PACKET_LEN];
    packet[..NONCE_LEN].copy_from_slice(nonce);
    let body = &mut packet[NONCE_LEN + TAG_LEN..];
    fill_frame(body, payload, ENCRYPTED_LENGTH_PREFIX)?;
    let cipher = XSalsa20Poly1305::new(key.as_bytes().into());
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(nonce), b"", body)
        // Only fails for messages longer than the cipher's limit, far above 8152 bytes.
        .map_err(|_| PacketError::PayloadTooLarge {
            len: payload.len(),
            max: MAX_ENCRYPTED_PAYLOAD,
        })?;
    packet[NONCE_LEN..NONCE_LEN + TAG_LEN].copy_from_slice(&tag);
    Ok(packet)
}

/// Open an encrypted packet and return its payload (a copy; see [`open_in_place`]).
pub fn open(key: &SessionKey, packet: &[u8; PACKET_LEN]) -> Result<Vec<u8>, PacketError> {
    let mut copy = Box::new(*packet);
    let payload = open_in_place(key, &mut copy)?;
    let out = payload.to_vec();
    payload.zeroize();
    Ok(out)
}

/// Open an encrypted packet in place: authenticate it, then decrypt its length prefix and its
/// payload, and return the payload (still inside `packet`; the caller zeroizes it when done).
///
/// The tag covers all [`SEALED_FRAME_LEN`] sealed bytes and is checked over all of them, as
/// NaCl's `secretbox_open` does, before anything is decrypted. The padding after the payload
/// is authenticated but never decrypted: nobody reads it (Go's reader ignores it too), and it
/// is most of a packet that carries a short message. Same result as opening the whole frame
/// with `crypto_secretbox` and reading its payload (tested below).
pub fn open_in_place<'a>(
    key: &SessionKey,
    packet: &'a mut [u8; PACKET_LEN],
) -> Result<&'a mut [u8], PacketError> {
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&packet[..NONCE_LEN]);
    let (head, body) = packet.split_at_mut(NONCE_LEN + TAG_LEN);
    let tag = &head[NONCE_LEN..];
    // As in `seal`: keystream bytes 0..32 are the Poly1305 key, the frame is XORed from 32 on.
    let mut cipher = XSalsa20::new(key.as_bytes().into(), (&nonce).into());
    let mut mac_key = Zeroizing::new([0u8; 32]);
    cipher.apply_keystream(&mut mac_key[..]);
    let expected = Poly1305::new((&*mac_key).into()).compute_unpadded(body);
    if !bool::from(expected.as_slice().ct_eq(tag)) {
        return Err(PacketError::Decrypt);
    }
    cipher.apply_keystream(&mut body[..LENGTH_PREFIX_LEN]);
    let len = read_prefix(body, ENCRYPTED_LENGTH_PREFIX)?;
    if len > MAX_ENCRYPTED_PAYLOAD {
        return Err(PacketError::BadLength);
    }
    let payload = &mut body[LENGTH_PREFIX_LEN..LENGTH_PREFIX_LEN + len];
    cipher.apply_keystream(payload);
    Ok(payload)
}

/// Splits a byte stream into whole packets. "Need more bytes" is `None`, not an error.
///
/// Packets are handed out raw and decoded one at a time by the caller, so that a key change
/// takes effect exactly at the packet boundary where the protocol makes it.
#[derive(Debug, Default)]
pub struct PacketReader {
    buf: Vec<u8>,
}

impl PacketReader {
    /// An empty reader.
    pub fn new() -> PacketReader {
        PacketReader::default()
    }

    /// Append bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole packet, if one has arrived.
    pub fn next_packet(&mut self) -> Option<Box<[u8; PACKET_LEN]>> {
        if self.buf.len() < PACKET_LEN {
            return None;
        }
        let rest = self.buf.split_off(PACKET_LEN);
        let packet = std::mem::replace(&mut self.buf, rest);
        packet.into_boxed_slice().try_into().ok()
    }

    /// How many bytes of an incomplete packet are buffered.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> SessionKey {
        SessionKey::from_bytes([7u8; 32])
    }

    fn arr(v: &[u8]) -> &[u8; PACKET_LEN] {
        v.try_into().unwrap()
    }

    #[test]
    fn varint_prefix_matches_go_put_uvarint() {
        // Go: binary.PutUvarint(buf, 5) = [0x05]; 300 = [0xac, 0x02]; 8189 = [0xfd, 0x3f].
        assert_eq!(&encode_plain(&[1u8; 5]).unwrap()[..3], &[5, 0, 1]);
        assert_eq!(&encode_plain(&[1u8; 300]).unwrap()[..3], &[0xac, 0x02, 1]);
        assert_eq!(&encode_plain(&[1u8; 8189]).unwrap()[..3], &[0xfd, 0x3f, 1]);
        // the padding after the payload is zero
        let p = encode_plain(b"abc").unwrap();
        assert!(p[5..].iter().all(|&b| b == 0));
        assert_eq!(p.len(), PACKET_LEN);
    }

    #[test]
    fn plaintext_limits() {
        assert!(encode_plain(&[0u8; MAX_PLAINTEXT_PAYLOAD]).is_ok());
        assert_eq!(
            encode_plain(&[0u8; MAX_PLAINTEXT_PAYLOAD + 1]),
            Err(PacketError::PayloadTooLarge {
                len: 8190,
                max: 8189
            })
        );
        // A frame claiming 8190 bytes (len + 2 >= 8192) is rejected like Go does.
        let mut p = vec![0u8; PACKET_LEN];
        p[0] = (8190 & 0x7f) as u8 | 0x80;
        p[1] = (8190 >> 7) as u8;
        assert_eq!(decode_plain(arr(&p)), Err(PacketError::BadLength));
        // Two continuation bytes: the varint does not fit in two bytes.
        p[0] = 0x80;
        p[1] = 0x80;
        assert_eq!(decode_plain(arr(&p)), Err(PacketError::BadLength));
    }

    #[test]
    fn encrypted_round_trip_and_limits() {
        let nonce = [3u8; NONCE_LEN];
        let p = seal(&key(), &nonce, b"hello").unwrap();
        assert_eq!(p.len(), PACKET_LEN);
        assert_eq!(&p[..NONCE_LEN], &nonce);
        assert_eq!(open(&key(), arr(&p)).unwrap(), b"hello");
        assert!(seal(&key(), &nonce, &[0u8; MAX_ENCRYPTED_PAYLOAD]).is_ok());
        assert!(matches!(
            seal(&key(), &nonce, &[0u8; MAX_ENCRYPTED_PAYLOAD + 1]),
            Err(PacketError::PayloadTooLarge { max: 8150, .. })
        ));
    }

    #[test]
    fn tampering_anywhere_is_detected() {
        let p = seal(&key(), &[1u8; NONCE_LEN], b"attack at dawn").unwrap();
        for i in [0, 23, 24, 39, 40, 41, 100, 8191] {
            let mut t = p.clone();
            t[i] ^= 0x01;
            assert_eq!(open(&key(), arr(&t)), Err(PacketError::Decrypt), "byte {i}");
        }
        let other = SessionKey::from_bytes([8u8; 32]);
        assert_eq!(open(&other, arr(&p)), Err(PacketError::Decrypt));
    }

    #[test]
    fn reader_needs_whole_packets() {
        let a = encode_plain(b"one").unwrap();
        let b = encode_plain(b"two").unwrap();
        let mut stream = a.clone();
        stream.extend_from_slice(&b);
        let mut r = PacketReader::new();
        r.push(&stream[..100]);
        assert!(r.next_packet().is_none());
        r.push(&stream[100..PACKET_LEN + 5]);
        let first = r.next_packet().unwrap();
        assert_eq!(decode_plain(&first).unwrap(), b"one");
        assert!(r.next_packet().is_none());
        assert_eq!(r.buffered(), 5);
        r.push(&stream[PACKET_LEN + 5..]);
        assert_eq!(decode_plain(&r.next_packet().unwrap()).unwrap(), b"two");
        assert_eq!(r.buffered(), 0);
    }

    proptest! {
        #[test]
        fn plain_round_trip(payload in proptest::collection::vec(any::<u8>(), 0..=MAX_PLAINTEXT_PAYLOAD)) {
            let p = encode_plain(&payload).unwrap();
            prop_assert_eq!(decode_plain(arr(&p)).unwrap(), &payload[..]);
        }

        #[test]
        fn sealed_round_trip(payload in proptest::collection::vec(any::<u8>(), 0..=MAX_ENCRYPTED_PAYLOAD), nonce: [u8; 24]) {
            let p = seal(&key(), &nonce, &payload).unwrap();
            prop_assert_eq!(open(&key(), arr(&p)).unwrap(), payload);
        }

        /// A sealed packet is byte for byte NaCl's secretbox of the frame (`crypto_secretbox`).
        #[test]
        fn seal_matches_secretbox(payload in proptest::collection::vec(any::<u8>(), 0..=MAX_ENCRYPTED_PAYLOAD), nonce: [u8; 24]) {
            let mut frame = vec![0u8; SEALED_FRAME_LEN];
            fill_frame(&mut frame, &payload, ENCRYPTED_LENGTH_PREFIX).unwrap();
            let tag = XSalsa20Poly1305::new(key().as_bytes().into())
                .encrypt_in_place_detached(Nonce::from_slice(&nonce), b"", &mut frame)
                .unwrap();
            let reference = [&nonce[..], &tag[..], &frame[..]].concat();
            prop_assert_eq!(seal(&key(), &nonce, &payload).unwrap(), reference);
        }

        /// Opening in place (padding left encrypted) gives what opening the whole frame with
        /// `crypto_secretbox` gives, for any frame: any length prefix, any padding.
        #[test]
        fn open_in_place_matches_secretbox(frame in proptest::collection::vec(any::<u8>(), SEALED_FRAME_LEN), len in 0usize..SEALED_FRAME_LEN, nonce: [u8; 24], flip in proptest::option::of(0usize..PACKET_LEN)) {
            let mut frame = frame;
            write_prefix(&mut frame, len, ENCRYPTED_LENGTH_PREFIX);
            let cipher = XSalsa20Poly1305::new(key().as_bytes().into());
            let mut body = frame.clone();
            let tag = cipher.encrypt_in_place_detached(Nonce::from_slice(&nonce), b"", &mut body).unwrap();
            let mut packet = [0u8; PACKET_LEN];
            packet[..NONCE_LEN].copy_from_slice(&nonce);
            packet[NONCE_LEN..NONCE_LEN + TAG_LEN].copy_from_slice(&tag);
            packet[NONCE_LEN + TAG_LEN..].copy_from_slice(&body);
            if let Some(i) = flip {
                packet[i] ^= 0x80;
            }
            let mut whole = packet[NONCE_LEN + TAG_LEN..].to_vec();
            let reference = cipher
                .decrypt_in_place_detached(
                    Nonce::from_slice(&packet[..NONCE_LEN]),
                    b"",
                    &mut whole,
                    crypto_secretbox::Tag::from_slice(&packet[NONCE_LEN..NONCE_LEN + TAG_LEN]),
                )
                .map_err(|_| PacketError::Decrypt)
                .and_then(|()| frame_payload(&whole, ENCRYPTED_LENGTH_PREFIX, MAX_ENCRYPTED_PAYLOAD).map(<[u8]>::to_vec));
            let mut p = packet;
            let got = open_in_place(&key(), &mut p).map(|b| b.to_vec());
            prop_assert_eq!(&got, &reference);
            prop_assert_eq!(open(&key(), &packet), reference);
        }

        #[test]
        fn arbitrary_packets_never_panic(head: [u8; 4], fill: u8) {
            let mut p = vec![fill; PACKET_LEN];
            p[..4].copy_from_slice(&head);
            let _ = decode_plain(arr(&p));
            let _ = open(&key(), arr(&p));
        }

        #[test]
        fn reader_reassembles_any_split(cuts in proptest::collection::vec(1usize..9000, 1..6)) {
            let packets: Vec<Vec<u8>> = (0..3u8).map(|i| encode_plain(&[i; 10]).unwrap()).collect();
            let stream: Vec<u8> = packets.concat();
            let mut r = PacketReader::new();
            let mut got = Vec::new();
            let mut at = 0;
            for c in cuts.iter().cycle() {
                if at >= stream.len() { break; }
                let end = (at + c).min(stream.len());
                r.push(&stream[at..end]);
                at = end;
                while let Some(p) = r.next_packet() { got.push(p.to_vec()); }
            }
            prop_assert_eq!(got, packets);
        }
    }
}
