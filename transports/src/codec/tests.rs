use proptest::prelude::*;

use super::*;
use crate::envelope::MAGIC;
use crate::frame::PROTOCOL_VERSION;
use crate::keyring::Key;

const CLUSTER: ClusterId = ClusterId(0xC1);

fn config(node: u128) -> CodecConfig {
    CodecConfig::new(CLUSTER, NodeId::from_u128(node), Incarnation(1))
}

fn key(byte: u8) -> Key {
    Key::from_bytes([byte; 32])
}

fn sealed(node: u128, key_byte: u8) -> Codec {
    Codec::new(config(node), Security::Keyring(Keyring::new(key(key_byte))))
}

fn plain(node: u128) -> Codec {
    Codec::new(config(node), Security::Plaintext)
}

/// A plaintext datagram built by hand, for headers the codec would never seal.
fn handmade(version: u8, cluster: u64, kind: u8) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend([version, 0]);
    bytes.extend(cluster.to_le_bytes());
    bytes.extend([7u8; 16]); // sender
    bytes.extend([1, 1, kind]); // incarnation 1, sequence 1, kind
    bytes.extend(b"payload");
    bytes
}

#[test]
fn round_trip_every_kind_in_both_modes() {
    for (mut a, mut b) in [(sealed(1, 1), sealed(2, 1)), (plain(1), plain(2))] {
        for (i, kind) in FrameKind::ALL.into_iter().enumerate() {
            let payload = vec![i as u8; i * 10];
            let bytes = a.seal_datagram(kind, &payload).unwrap();
            let frame = b.open_datagram(&bytes).unwrap();
            let expected = FrameHeader {
                cluster: CLUSTER,
                sender: NodeId::from_u128(1),
                incarnation: Incarnation(1),
                sequence: i as u64 + 1,
                kind,
            };
            assert_eq!(
                frame,
                Frame {
                    header: expected,
                    payload
                }
            );
        }
        assert_eq!(b.counters().total(), 0);
    }
}

#[test]
fn datagrams_are_accepted_once_even_out_of_order() {
    let (mut a, mut b) = (sealed(1, 1), sealed(2, 1));
    let sent: Vec<Vec<u8>> = (0..5)
        .map(|i| a.seal_datagram(FrameKind::Gossip, &[i]).unwrap())
        .collect();
    for i in [4, 0, 2, 1, 3] {
        assert_eq!(b.open_datagram(&sent[i]).unwrap().payload, [i as u8]);
    }
    for bytes in &sent {
        assert!(matches!(
            b.open_datagram(bytes),
            Err(DecodeError::Replayed { sender, .. }) if sender == NodeId::from_u128(1)
        ));
    }
    assert_eq!(b.counters().replayed, 5);
    assert_eq!(b.counters().total(), 5);
}

#[test]
fn restart_with_higher_incarnation_starts_a_fresh_window() {
    let mut b = sealed(2, 1);
    let mut a = sealed(1, 1);
    let old: Vec<Vec<u8>> = (0..3)
        .map(|_| a.seal_datagram(FrameKind::Gossip, b"old").unwrap())
        .collect();
    b.open_datagram(&old[0]).unwrap();

    let mut restarted = sealed(1, 1);
    restarted.set_incarnation(Incarnation(2));
    let new = restarted.seal_datagram(FrameKind::Gossip, b"new").unwrap();
    assert_eq!(b.open_datagram(&new).unwrap().header.sequence, 1);
    assert!(matches!(
        b.open_datagram(&old[1]),
        Err(DecodeError::Replayed { .. })
    ));
}

#[test]
fn forgotten_sender_is_accepted_again() {
    let (mut a, mut b) = (plain(1), plain(2));
    let bytes = a.seal_datagram(FrameKind::Control, b"").unwrap();
    b.open_datagram(&bytes).unwrap();
    b.forget_sender(NodeId::from_u128(1));
    b.open_datagram(&bytes).unwrap();
}

#[test]
fn wrong_cluster_version_kind_and_mode_are_typed_and_counted() {
    let mut b = plain(2);
    let cases = [
        (
            handmade(PROTOCOL_VERSION, CLUSTER.0 + 1, 1),
            "wrong cluster",
        ),
        (handmade(2, CLUSTER.0, 1), "version"),
        (handmade(PROTOCOL_VERSION, CLUSTER.0, 0), "kind 0"),
        (handmade(PROTOCOL_VERSION, CLUSTER.0, 200), "kind 200"),
    ];
    let results: Vec<_> = cases
        .iter()
        .map(|(bytes, _)| b.open_datagram(bytes))
        .collect();
    assert_eq!(
        results[0],
        Err(DecodeError::WrongCluster {
            expected: CLUSTER,
            found: ClusterId(CLUSTER.0 + 1)
        })
    );
    assert_eq!(results[1], Err(DecodeError::UnknownVersion(2)));
    assert_eq!(results[2], Err(DecodeError::UnknownKind(0)));
    assert_eq!(results[3], Err(DecodeError::UnknownKind(200)));
    let c = b.counters();
    assert_eq!(
        (c.wrong_cluster, c.unknown_version, c.unknown_kind),
        (1, 1, 2)
    );
    // The handmade frame itself is fine.
    assert!(
        b.open_datagram(&handmade(PROTOCOL_VERSION, CLUSTER.0, 1))
            .is_ok()
    );

    let mut bad_mode = handmade(PROTOCOL_VERSION, CLUSTER.0, 1);
    bad_mode[5] = 9;
    assert_eq!(
        b.open_datagram(&bad_mode),
        Err(DecodeError::Garbled {
            what: "security mode"
        })
    );
}

#[test]
fn security_modes_do_not_mix() {
    let (mut secure, mut open) = (sealed(1, 1), plain(2));
    let from_secure = secure.seal_datagram(FrameKind::Gossip, b"x").unwrap();
    let from_open = open.seal_datagram(FrameKind::Gossip, b"x").unwrap();
    assert_eq!(
        open.open_datagram(&from_secure),
        Err(DecodeError::Unauthenticated)
    );
    assert_eq!(
        secure.open_datagram(&from_open),
        Err(DecodeError::Unauthenticated)
    );
    assert_eq!(
        sealed(3, 2).open_datagram(&from_secure),
        Err(DecodeError::Unauthenticated)
    );
}

#[test]
fn any_single_bit_flip_of_a_sealed_datagram_is_rejected() {
    let mut a = sealed(1, 1);
    let bytes = a.seal_datagram(FrameKind::Ask, b"the payload").unwrap();
    let mut b = sealed(2, 1);
    let mut rejected = 0;
    for index in 0..bytes.len() {
        for bit in 0..8 {
            let mut tampered = bytes.clone();
            tampered[index] ^= 1 << bit;
            assert!(
                b.open_datagram(&tampered).is_err(),
                "byte {index} bit {bit}"
            );
            rejected += 1;
        }
    }
    assert_eq!(b.counters().total(), rejected);
    assert!(
        b.open_datagram(&bytes).is_ok(),
        "the untouched datagram still opens"
    );
}

#[test]
fn short_inputs_are_truncated_or_garbled() {
    let mut a = sealed(1, 1);
    let bytes = a.seal_datagram(FrameKind::Gossip, b"abc").unwrap();
    let mut b = sealed(2, 1);
    assert_eq!(
        b.open_datagram(&[]),
        Err(DecodeError::Truncated { len: 0, needed: 14 })
    );
    assert_eq!(
        b.open_datagram(b"PH"),
        Err(DecodeError::Truncated { len: 2, needed: 14 })
    );
    assert_eq!(
        b.open_datagram(b"XX"),
        Err(DecodeError::Garbled { what: "magic" })
    );
    assert_eq!(
        b.open_datagram(&bytes[..57]),
        Err(DecodeError::Truncated {
            len: 57,
            needed: 58
        })
    );
    assert_eq!(
        b.open_datagram(&bytes[..bytes.len() - 1]),
        Err(DecodeError::Unauthenticated)
    );
    // A plaintext header cut short inside the postcard frame header.
    let mut p = plain(2);
    let short = &handmade(PROTOCOL_VERSION, CLUSTER.0, 1)[..20];
    assert!(matches!(
        p.open_datagram(short),
        Err(DecodeError::Truncated { .. })
    ));
}

#[test]
fn size_limits_hold_for_sealing_and_opening() {
    let mut a = sealed(1, 1);
    a.set_incarnation(Incarnation(u64::MAX)); // the widest varint
    let max = a.max_datagram_payload();
    let bytes = a.seal_datagram(FrameKind::Gossip, &vec![0; max]).unwrap();
    assert!(bytes.len() <= DEFAULT_MAX_DATAGRAM);
    assert!(matches!(
        a.seal_datagram(FrameKind::Gossip, &vec![0; DEFAULT_MAX_DATAGRAM]),
        Err(EncodeError::TooLarge {
            max: DEFAULT_MAX_DATAGRAM,
            ..
        })
    ));
    let mut b = sealed(2, 1);
    let huge = vec![0u8; DEFAULT_MAX_DATAGRAM + 1];
    assert_eq!(
        b.open_datagram(&huge),
        Err(DecodeError::Oversized {
            len: DEFAULT_MAX_DATAGRAM + 1,
            max: DEFAULT_MAX_DATAGRAM
        })
    );
    assert_eq!(b.counters().oversized, 1);
}

#[test]
fn a_smaller_configured_mtu_is_enforced_both_ways() {
    let mut small = config(1);
    small.max_datagram = 200;
    let mut a = Codec::new(small.clone(), Security::Keyring(Keyring::new(key(1))));
    let payload = vec![1; a.max_datagram_payload()];
    assert!(a.seal_datagram(FrameKind::Gossip, &payload).unwrap().len() <= 200);
    assert!(matches!(
        a.seal_datagram(FrameKind::Gossip, &[0; 200]),
        Err(EncodeError::TooLarge { max: 200, .. })
    ));
    let big = sealed(3, 1)
        .seal_datagram(FrameKind::Gossip, &[0; 300])
        .unwrap();
    small.node = NodeId::from_u128(2);
    let mut b = Codec::new(small, Security::Keyring(Keyring::new(key(1))));
    assert!(matches!(
        b.open_datagram(&big),
        Err(DecodeError::Oversized { max: 200, .. })
    ));
}

/// Sends `count` datagrams each way and asserts that all arrive.
fn exchange(a: &mut Codec, b: &mut Codec, count: usize) {
    for _ in 0..count {
        let ab = a.seal_datagram(FrameKind::Gossip, b"a->b").unwrap();
        let ba = b.seal_datagram(FrameKind::Gossip, b"b->a").unwrap();
        assert_eq!(b.open_datagram(&ab).unwrap().payload, b"a->b");
        assert_eq!(a.open_datagram(&ba).unwrap().payload, b"b->a");
    }
}

#[test]
fn key_rotation_loses_no_frame() {
    let (old, new) = (key(1), key(2));
    let (mut a, mut b) = (sealed(1, 1), sealed(2, 1));
    let ring = |codec: &mut Codec| codec.keyring_mut().unwrap().clone_ids();
    exchange(&mut a, &mut b, 3);

    // 1. Install everywhere, with frames in flight across the step.
    let in_flight = a.seal_datagram(FrameKind::Gossip, b"in flight 1").unwrap();
    a.keyring_mut().unwrap().install(new.clone()).unwrap();
    exchange(&mut a, &mut b, 3);
    b.keyring_mut().unwrap().install(new.clone()).unwrap();
    b.open_datagram(&in_flight).unwrap();
    exchange(&mut a, &mut b, 3);

    // 2. Use everywhere: for a while A seals with the new key and B with the old one.
    let in_flight = b.seal_datagram(FrameKind::Gossip, b"in flight 2").unwrap();
    a.keyring_mut().unwrap().use_key(new.id()).unwrap();
    exchange(&mut a, &mut b, 3);
    a.open_datagram(&in_flight).unwrap();
    b.keyring_mut().unwrap().use_key(new.id()).unwrap();
    exchange(&mut a, &mut b, 3);

    // 3. Remove everywhere.
    a.keyring_mut().unwrap().remove(old.id()).unwrap();
    exchange(&mut a, &mut b, 3);
    b.keyring_mut().unwrap().remove(old.id()).unwrap();
    exchange(&mut a, &mut b, 3);

    assert_eq!(ring(&mut a), vec![new.id()]);
    assert_eq!(ring(&mut b), vec![new.id()]);
    assert_eq!(
        a.counters().total() + b.counters().total(),
        0,
        "no frame was dropped"
    );

    // A node still on the old key alone is now shut out.
    let mut stale = sealed(3, 1);
    let bytes = stale.seal_datagram(FrameKind::Gossip, b"").unwrap();
    assert_eq!(a.open_datagram(&bytes), Err(DecodeError::Unauthenticated));
}

impl Keyring {
    fn clone_ids(&self) -> Vec<crate::KeyId> {
        self.key_ids().collect()
    }
}

fn arb_kind() -> impl Strategy<Value = FrameKind> {
    proptest::sample::select(FrameKind::ALL.to_vec())
}

/// Seals `payload` in place after the headroom and returns the frame's bytes.
fn seal_in_place(codec: &mut Codec, kind: FrameKind, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0xEE; STREAM_HEADROOM];
    buf.extend_from_slice(payload);
    let start = codec.seal_stream_frame_in_place(kind, &mut buf).unwrap();
    buf.split_off(start)
}

#[test]
fn frames_sealed_in_place_open_like_copied_ones() {
    for (mut a, mut b) in [(sealed(1, 1), sealed(2, 1)), (plain(1), plain(2))] {
        let mut decoder = crate::StreamDecoder::new();
        for (i, payload) in [&b""[..], b"x", &[7; 5_000]].into_iter().enumerate() {
            let copied = a
                .seal_stream_frame(FrameKind::ActorMessage, payload)
                .unwrap();
            let in_place = seal_in_place(&mut a, FrameKind::ActorMessage, payload);
            assert_eq!(copied.len(), in_place.len(), "payload {i}");
            decoder.push(&copied);
            decoder.push(&in_place);
            for _ in 0..2 {
                let frame = decoder.next_frame(&mut b).unwrap().unwrap();
                assert_eq!(frame.payload, payload);
            }
        }
        // Too large for a frame: refused, as when copied.
        let mut config = config(1);
        config.max_stream_frame = 200;
        let mut small = Codec::new(config, Security::Plaintext);
        let mut buf = vec![0; STREAM_HEADROOM + 300];
        assert!(matches!(
            small.seal_stream_frame_in_place(FrameKind::ActorMessage, &mut buf),
            Err(EncodeError::TooLarge { .. })
        ));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn in_place_sealing_round_trips(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8),
        encrypted in any::<bool>(),
    ) {
        let (mut a, mut b) = if encrypted { (sealed(1, 1), sealed(2, 1)) } else { (plain(1), plain(2)) };
        let mut decoder = crate::StreamDecoder::new();
        for payload in &payloads {
            decoder.push(&seal_in_place(&mut a, FrameKind::ActorMessage, payload));
        }
        for payload in &payloads {
            let frame = decoder.next_frame(&mut b).unwrap().unwrap();
            prop_assert_eq!(&frame.payload, payload);
        }
        prop_assert_eq!(decoder.next_frame(&mut b).unwrap(), None);
    }

    #[test]
    fn arbitrary_frames_round_trip(
        node in any::<u128>(),
        cluster in any::<u64>(),
        incarnation in any::<u64>(),
        kind in arb_kind(),
        payload in proptest::collection::vec(any::<u8>(), 0..1_400),
        encrypted in any::<bool>(),
    ) {
        let security = |byte| if encrypted {
            Security::Keyring(Keyring::new(key(byte)))
        } else {
            Security::Plaintext
        };
        let mut config_a = CodecConfig::new(ClusterId(cluster), NodeId::from_u128(node), Incarnation(incarnation));
        let mut a = Codec::new(config_a.clone(), security(5));
        config_a.node = NodeId::from_u128(!node);
        let mut b = Codec::new(config_a, security(5));
        match a.seal_datagram(kind, &payload) {
            Ok(bytes) => {
                prop_assert!(bytes.len() <= DEFAULT_MAX_DATAGRAM);
                let frame = b.open_datagram(&bytes).unwrap();
                prop_assert_eq!(frame.header.sender, NodeId::from_u128(node));
                prop_assert_eq!(frame.header.incarnation, Incarnation(incarnation));
                prop_assert_eq!(frame.header.kind, kind);
                prop_assert_eq!(&frame.payload, &payload);
            }
            Err(EncodeError::TooLarge { len, max }) => {
                prop_assert!(len > max);
                prop_assert!(payload.len() > a.max_datagram_payload());
            }
            Err(other) => prop_assert!(false, "unexpected {other}"),
        }
        let stream = a.seal_stream_frame(kind, &payload).unwrap();
        let mut decoder = crate::StreamDecoder::new();
        decoder.push(&stream);
        let frame = decoder.next_frame(&mut b).unwrap().unwrap();
        prop_assert_eq!(frame.payload, payload);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_are_counted(
        inputs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..1_600), 1..20),
        with_prefix in any::<bool>(),
    ) {
        let mut codecs = [sealed(2, 1), plain(2)];
        for codec in &mut codecs {
            let mut errors = 0;
            for input in &inputs {
                let input = if with_prefix { with_valid_prefix(input, codec) } else { input.clone() };
                if codec.open_datagram(&input).is_err() {
                    errors += 1;
                }
            }
            prop_assert_eq!(codec.counters().total(), errors);
        }
    }

    #[test]
    fn mutated_sealed_datagrams_are_rejected(
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let mut a = sealed(1, 1);
        let mut bytes = a.seal_datagram(FrameKind::Reply, &payload).unwrap();
        let original = bytes.clone();
        for (index, mask) in flips {
            let index = index % bytes.len();
            bytes[index] ^= mask;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut % bytes.len());
        }
        prop_assume!(bytes != original);
        let mut b = sealed(2, 1);
        prop_assert!(b.open_datagram(&bytes).is_err());
        prop_assert_eq!(b.counters().total(), 1);
    }
}

/// Puts a valid magic, version, mode and cluster id in front of fuzz input so that it reaches
/// the deeper parts of the decoder.
pub(crate) fn with_valid_prefix(input: &[u8], codec: &Codec) -> Vec<u8> {
    let mode = match codec.security {
        Security::Plaintext => 0,
        Security::Keyring(_) => 1,
    };
    let mut bytes = MAGIC.to_vec();
    bytes.extend([PROTOCOL_VERSION, mode]);
    bytes.extend(codec.config.cluster.0.to_le_bytes());
    bytes.extend_from_slice(input);
    bytes
}

/// Fuzz target for [`Codec::open_datagram`]; runs as a normal test with a small budget
/// (`BOLERO_RANDOM_ITERATIONS` raises it).
#[test]
fn fuzz_open_datagram() {
    bolero::check!()
        .with_iterations(2_000)
        .with_type::<(bool, Vec<u8>)>()
        .for_each(|(with_prefix, input)| {
            for mut codec in [sealed(2, 1), plain(2)] {
                let bytes = if *with_prefix {
                    with_valid_prefix(input, &codec)
                } else {
                    input.clone()
                };
                let opened = codec.open_datagram(&bytes);
                assert_eq!(codec.counters().total(), u64::from(opened.is_err()));
            }
        });
}
