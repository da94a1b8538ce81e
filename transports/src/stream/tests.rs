use proptest::prelude::*;

use super::*;
use crate::codec::{CodecConfig, Security};
use crate::frame::{ClusterId, FrameKind};
use crate::keyring::{Key, Keyring};

fn codec(node: u128) -> Codec {
    let config = CodecConfig::new(ClusterId(3), NodeId::from_u128(node), Incarnation(1));
    Codec::new(
        config,
        Security::Keyring(Keyring::new(Key::from_bytes([4; 32]))),
    )
}

fn small_codec(node: u128, max: usize) -> Codec {
    let mut config = CodecConfig::new(ClusterId(3), NodeId::from_u128(node), Incarnation(1));
    config.max_stream_frame = max;
    Codec::new(config, Security::Plaintext)
}

/// Seals `payloads` as one stream's bytes.
fn stream_of(sender: &mut Codec, payloads: &[Vec<u8>]) -> Vec<u8> {
    payloads
        .iter()
        .flat_map(|p| sender.seal_stream_frame(FrameKind::StreamChunk, p).unwrap())
        .collect()
}

/// Pushes `bytes` in chunks of the given sizes (cycled) and collects every frame's payload.
fn decode_chunked(
    receiver: &mut Codec,
    bytes: &[u8],
    chunks: &[usize],
) -> Result<Vec<Vec<u8>>, DecodeError> {
    let mut decoder = StreamDecoder::new();
    let mut out = Vec::new();
    let mut rest = bytes;
    for &chunk in chunks.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (now, later) = rest.split_at(chunk.clamp(1, rest.len()));
        rest = later;
        decoder.push(now);
        while let Some(frame) = decoder.next_frame(receiver)? {
            out.push(frame.payload);
        }
    }
    assert_eq!(decoder.buffered(), 0);
    Ok(out)
}

#[test]
fn frames_survive_every_split_point() {
    let mut sender = codec(1);
    let payloads = vec![b"first".to_vec(), Vec::new(), vec![9; 300]];
    let bytes = stream_of(&mut sender, &payloads);
    for split in 0..=bytes.len() {
        let mut receiver = codec(2);
        let mut decoder = StreamDecoder::new();
        let mut got = Vec::new();
        for part in [&bytes[..split], &bytes[split..]] {
            decoder.push(part);
            while let Some(frame) = decoder.next_frame(&mut receiver).unwrap() {
                got.push(frame.payload);
            }
        }
        assert_eq!(got, payloads, "split at {split}");
    }
}

#[test]
fn byte_at_a_time_and_all_at_once_agree() {
    let mut sender = codec(1);
    let payloads: Vec<Vec<u8>> = (0..20).map(|i| vec![i; usize::from(i) * 7]).collect();
    let bytes = stream_of(&mut sender, &payloads);
    assert_eq!(
        decode_chunked(&mut codec(2), &bytes, &[1]).unwrap(),
        payloads
    );
    assert_eq!(
        decode_chunked(&mut codec(2), &bytes, &[bytes.len()]).unwrap(),
        payloads
    );
}

#[test]
fn oversized_length_is_rejected_from_the_prefix_alone() {
    let mut receiver = small_codec(2, 100);
    let mut decoder = StreamDecoder::new();
    decoder.push(&u32::MAX.to_be_bytes());
    assert_eq!(
        decoder.next_frame(&mut receiver),
        Err(DecodeError::Oversized {
            len: u32::MAX as usize,
            max: 100
        })
    );
    assert_eq!(receiver.counters().oversized, 1);
    // Poisoned from now on, and not counted twice.
    decoder.push(b"more");
    assert_eq!(
        decoder.next_frame(&mut receiver),
        Err(DecodeError::Poisoned)
    );
    assert_eq!(decoder.buffered(), 0);
    assert_eq!(receiver.counters().total(), 1);
}

#[test]
fn a_claimed_length_reserves_nothing() {
    let mut receiver = small_codec(2, 1 << 20);
    let mut decoder = StreamDecoder::new();
    decoder.push(&(1u32 << 20).to_be_bytes());
    decoder.push(b"abc");
    assert_eq!(decoder.next_frame(&mut receiver), Ok(None));
    assert!(
        decoder.buffer.capacity() < 1024,
        "buffered only what was pushed"
    );
}

#[test]
fn sealing_respects_the_stream_maximum() {
    let mut sender = small_codec(1, 100);
    assert!(
        sender
            .seal_stream_frame(FrameKind::StreamChunk, &[0; 50])
            .is_ok()
    );
    assert!(matches!(
        sender.seal_stream_frame(FrameKind::StreamChunk, &[0; 100]),
        Err(crate::EncodeError::TooLarge { max: 100, .. })
    ));
}

#[test]
fn repeated_or_reordered_frames_end_the_stream() {
    let mut sender = codec(1);
    let first = sender
        .seal_stream_frame(FrameKind::StreamChunk, b"1")
        .unwrap();
    let second = sender
        .seal_stream_frame(FrameKind::StreamChunk, b"2")
        .unwrap();

    let replayed = [first.clone(), first.clone()].concat();
    let result = decode_chunked(&mut codec(2), &replayed, &[replayed.len()]);
    assert!(matches!(
        result,
        Err(DecodeError::Replayed { sequence: 1, .. })
    ));

    let reordered = [second, first].concat();
    let mut receiver = codec(2);
    let result = decode_chunked(&mut receiver, &reordered, &[reordered.len()]);
    assert!(matches!(
        result,
        Err(DecodeError::Replayed { sequence: 1, .. })
    ));
    assert_eq!(receiver.counters().replayed, 1);
}

#[test]
fn a_stream_carries_one_sender() {
    let one = codec(1)
        .seal_stream_frame(FrameKind::StreamChunk, b"")
        .unwrap();
    let mut other = codec(5);
    other
        .seal_stream_frame(FrameKind::StreamChunk, b"")
        .unwrap();
    let two = other
        .seal_stream_frame(FrameKind::StreamChunk, b"")
        .unwrap();
    let bytes = [one, two].concat();
    let result = decode_chunked(&mut codec(2), &bytes, &[bytes.len()]);
    assert_eq!(
        result,
        Err(DecodeError::Garbled {
            what: "sender changed within a stream"
        })
    );
}

#[test]
fn tampered_stream_frames_fail_authentication() {
    let mut bytes = codec(1)
        .seal_stream_frame(FrameKind::StreamChunk, b"secret")
        .unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let mut receiver = codec(2);
    let result = decode_chunked(&mut receiver, &bytes, &[7]);
    assert_eq!(result, Err(DecodeError::Unauthenticated));
    assert_eq!(receiver.counters().unauthenticated, 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_chunking_round_trips(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..12),
        chunks in proptest::collection::vec(1usize..700, 1..10),
    ) {
        let bytes = stream_of(&mut codec(1), &payloads);
        prop_assert_eq!(decode_chunked(&mut codec(2), &bytes, &chunks).unwrap(), payloads);
    }

    /// Reading straight into the decoder (as connections do) with any room asked for and any
    /// amount read decodes the same frames, lent in place, and keeps the buffer bounded.
    #[test]
    fn reads_into_the_decoder_round_trip(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..12),
        reads in proptest::collection::vec((1usize..700, 1usize..700), 1..10),
    ) {
        let bytes = stream_of(&mut codec(1), &payloads);
        let mut receiver = codec(2);
        let mut decoder = StreamDecoder::new();
        let mut out = Vec::new();
        let mut rest = &bytes[..];
        for &(room, read) in reads.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let space = decoder.read_space(room);
            prop_assert!(space.len() >= room);
            let n = read.min(space.len()).min(rest.len());
            space[..n].copy_from_slice(&rest[..n]);
            decoder.filled(n);
            rest = &rest[n..];
            while let Some((_, payload)) = decoder.next_payload(&mut receiver).unwrap() {
                out.push(payload.to_vec());
            }
            // At most one partial frame (a few hundred bytes here) plus the room asked for.
            prop_assert!(decoder.buffer.len() <= 2_000);
        }
        prop_assert_eq!(decoder.buffered(), 0);
        prop_assert_eq!(out, payloads);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_errors_are_counted_once(
        bytes in proptest::collection::vec(any::<u8>(), 0..3_000),
        chunks in proptest::collection::vec(1usize..500, 1..10),
    ) {
        for mut receiver in [codec(2), small_codec(2, 1_000)] {
            let result = decode_chunked_lenient(&mut receiver, &bytes, &chunks);
            prop_assert_eq!(receiver.counters().total(), u64::from(result.is_err()));
        }
    }
}

/// Like [`decode_chunked`], but stops at the first error and allows leftover bytes.
fn decode_chunked_lenient(
    receiver: &mut Codec,
    bytes: &[u8],
    chunks: &[usize],
) -> Result<usize, DecodeError> {
    let mut decoder = StreamDecoder::new();
    let mut frames = 0;
    let mut rest = bytes;
    for &chunk in chunks.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (now, later) = rest.split_at(chunk.clamp(1, rest.len()));
        rest = later;
        decoder.push(now);
        while decoder.next_frame(receiver)?.is_some() {
            frames += 1;
        }
    }
    Ok(frames)
}

/// Fuzz target for [`StreamDecoder`]: arbitrary bytes in arbitrary chunks, with or without a
/// plausible length prefix; runs as a normal test with a small budget
/// (`BOLERO_RANDOM_ITERATIONS` raises it).
#[test]
fn fuzz_stream_decoder() {
    bolero::check!()
        .with_iterations(2_000)
        .with_type::<(Vec<u8>, Vec<u8>, bool)>()
        .for_each(|(input, chunks, with_prefix)| {
            let chunks: Vec<usize> = chunks.iter().map(|&c| usize::from(c) + 1).collect();
            let chunks = if chunks.is_empty() {
                vec![usize::MAX]
            } else {
                chunks
            };
            let mut bytes = Vec::new();
            if *with_prefix {
                let len = u32::try_from(input.len()).unwrap_or(u32::MAX);
                bytes.extend(len.to_be_bytes());
            }
            bytes.extend_from_slice(input);
            for mut receiver in [codec(2), small_codec(2, 64)] {
                let result = decode_chunked_lenient(&mut receiver, &bytes, &chunks);
                assert_eq!(receiver.counters().total(), u64::from(result.is_err()));
            }
        });
}
