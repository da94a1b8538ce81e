//! Every checkpoint decoder on untrusted bytes (log records, snapshot headers and files,
//! catch-up messages): round trips, arbitrary and corrupted input never panic, limits hold,
//! and a bolero fuzz target over each.

use phalanx_actors::checkpoint::catchup::{
    self, CatchUpMessage, MAX_CHUNK, MAX_FRAME, Partial, WireHeader,
};
use phalanx_actors::checkpoint::{
    SNAPSHOT_HEADER_LEN, SnapshotHeader, decode_record, encode_record, verify_snapshot,
};
use proptest::prelude::*;

/// Runs every decoder on `bytes`; whatever decodes must re-encode to something that decodes
/// to the same.
fn exercise(bytes: &[u8]) {
    if let Ok((index, payload, used)) = decode_record(bytes) {
        assert!(used <= bytes.len());
        let mut again = Vec::new();
        encode_record(index, payload, &mut again);
        assert_eq!(&again[..], &bytes[..used]);
    }
    if let Ok(header) = SnapshotHeader::decode(bytes) {
        assert_eq!(SnapshotHeader::decode(&header.encode()), Ok(header));
    }
    if let Ok((header, body)) = verify_snapshot(bytes) {
        assert_eq!(header.len, body.len() as u64);
    }
    if let Ok(message) = catchup::decode(bytes) {
        let again = catchup::encode(&message).expect("encodes");
        assert_eq!(catchup::decode(&again).expect("round trip"), message);
    }
}

fn message() -> impl Strategy<Value = CatchUpMessage> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..200);
    prop_oneof![
        (
            any::<u64>(),
            proptest::option::of((any::<u64>(), any::<u32>(), any::<u64>()))
        )
            .prop_map(|(log_next, partial)| CatchUpMessage::Hello {
                log_next,
                partial: partial.map(|(index, crc, received)| Partial {
                    index,
                    crc,
                    received
                }),
            }),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            any::<u64>()
        )
            .prop_map(
                |(index, epoch, len, crc, from)| CatchUpMessage::SnapshotStart {
                    header: WireHeader {
                        index,
                        epoch,
                        len,
                        crc
                    },
                    from,
                }
            ),
        (any::<u64>(), bytes.clone()).prop_map(|(offset, bytes)| CatchUpMessage::SnapshotChunk {
            offset,
            crc: crc32fast::hash(&bytes),
            bytes,
        }),
        any::<u32>().prop_map(|crc| CatchUpMessage::SnapshotEnd { crc }),
        (any::<u64>(), bytes)
            .prop_map(|(first, records)| CatchUpMessage::Entries { first, records }),
        any::<u64>().prop_map(|last| CatchUpMessage::Done { last }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&bytes);
    }

    #[test]
    fn records_round_trip_and_corruption_is_caught(
        index in any::<u64>(),
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        flip in any::<(usize, u8)>(),
    ) {
        let mut bytes = Vec::new();
        encode_record(index, &payload, &mut bytes);
        let (at, used) = (decode_record(&bytes).map(|(i, p, u)| (i, p.to_vec(), u)), bytes.len());
        prop_assert_eq!(at, Ok((index, payload, used)));
        let (byte, mask) = (flip.0 % bytes.len(), flip.1 | 1);
        bytes[byte] ^= mask;
        prop_assert!(decode_record(&bytes).is_err());
    }

    #[test]
    fn snapshot_files_round_trip_and_corruption_is_caught(
        index in any::<u64>(),
        epoch in any::<u64>(),
        body in proptest::collection::vec(any::<u8>(), 0..300),
        flip in any::<(usize, u8)>(),
    ) {
        let header = SnapshotHeader::of(index, epoch, &body);
        let mut file = header.encode().to_vec();
        file.extend_from_slice(&body);
        let (decoded, decoded_body) = verify_snapshot(&file).expect("verifies");
        prop_assert_eq!(decoded, header);
        prop_assert_eq!(decoded_body, &body[..]);
        let (byte, mask) = (flip.0 % file.len(), flip.1 | 1);
        file[byte] ^= mask;
        prop_assert!(verify_snapshot(&file).is_err());
        prop_assert!(verify_snapshot(&file[..file.len() - 1]).is_err() || body.is_empty());
    }

    #[test]
    fn catch_up_messages_round_trip(message in message()) {
        let bytes = catchup::encode(&message).expect("encodes");
        prop_assert_eq!(catchup::decode(&bytes).expect("decodes"), message);
        exercise(&bytes);
        for cut in 0..bytes.len() {
            exercise(&bytes[..cut]);
        }
    }
}

#[test]
fn limits_hold_before_anything_is_allocated() {
    // A frame over the limit is refused unread.
    assert!(catchup::decode(&vec![0; MAX_FRAME + 1]).is_err());
    // A chunk that claims more than MAX_CHUNK bytes: variant 2, offset 0, crc 0, then a length
    // prefix of MAX_CHUNK + 1 with no bytes behind it.
    let mut claim = vec![2, 0, 0];
    let mut len = MAX_CHUNK as u64 + 1;
    while len >= 0x80 {
        claim.push((len as u8) | 0x80);
        len >>= 7;
    }
    claim.push(len as u8);
    assert!(catchup::decode(&claim).is_err());
    // A record header claiming 4 GiB is refused without reading further.
    let mut record = vec![0xff; 16];
    record.extend_from_slice(b"tiny");
    assert!(decode_record(&record).is_err());
    assert!(SnapshotHeader::decode(&[0; SNAPSHOT_HEADER_LEN - 1]).is_err());
}

#[test]
fn fuzz_every_decoder() {
    bolero::check!()
        .with_iterations(2_000)
        .for_each(|bytes: &[u8]| exercise(bytes));
}
