//! The packet layer: arbitrary bytes, split at arbitrary points, through the packet reader and
//! both decoders; and encode∘decode is the identity for any payload that fits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapir::packet::{self, PacketReader, SessionKey, MAX_PLAINTEXT_PAYLOAD, PACKET_LEN};

fuzz_target!(|data: &[u8]| {
    let key = SessionKey::from_bytes([7u8; 32]);
    let step = usize::from(data.first().copied().unwrap_or(1)).max(1) * 97;
    let mut r = PacketReader::new();
    for chunk in data.chunks(step) {
        r.push(chunk);
        while let Some(p) = r.next_packet() {
            let _ = packet::decode_plain(&p);
            let _ = packet::open(&key, &p);
        }
    }
    assert!(r.buffered() < PACKET_LEN);

    if data.len() <= MAX_PLAINTEXT_PAYLOAD {
        let p = packet::encode_plain(data).expect("fits");
        let arr: &[u8; PACKET_LEN] = p.as_slice().try_into().expect("one packet");
        assert_eq!(packet::decode_plain(arr).expect("decodes"), data);
    }
    if let Ok(p) = packet::seal(&key, &[1u8; 24], data) {
        let arr: &[u8; PACKET_LEN] = p.as_slice().try_into().expect("one packet");
        assert_eq!(packet::open(&key, arr).expect("opens"), data);
    }
});
