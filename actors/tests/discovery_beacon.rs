//! Property tests and fuzz targets for the beacon decoder and the core's beacon input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use phalanx_actors::discovery::{
    Action, BEACON_MAGIC, BEACON_VERSION, Beacon, Discovery, DiscoveryConfig,
};
use phalanx_transports::{ClusterId, Incarnation, Key, Keyring, NodeId, Security};
use proptest::prelude::*;

fn addr_strategy() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)),
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)),
    ]
}

fn beacon_strategy() -> impl Strategy<Value = Beacon> {
    (any::<u64>(), any::<u128>(), addr_strategy()).prop_map(|(cluster, node, gossip)| Beacon {
        cluster: ClusterId(cluster),
        node: NodeId::from_u128(node),
        gossip,
    })
}

fn keyed() -> Security {
    Security::Keyring(Keyring::new(Key::from_bytes([3; 32])))
}

fn core(node: u128, cluster: ClusterId, beacons: bool, now: Instant) -> Discovery {
    let mut config = DiscoveryConfig::new(cluster, NodeId::from_u128(node));
    config.gossip = Some(SocketAddr::from(([127, 0, 0, 1], 7000 + node as u16)));
    if beacons {
        config.beacon_interval = Some(Duration::from_secs(1));
        config.beacon_incarnation = Incarnation(1);
    }
    Discovery::new(config, keyed(), now)
}

/// Checks what the core's beacon input must guarantee for any bytes: no panic, exactly one
/// counter moves, and at most one candidate comes out.
fn feed(receiver: &mut Discovery, bytes: &[u8], now: Instant) {
    let before = *receiver.counters();
    let result = receiver.handle_beacon(bytes, SocketAddr::from(([127, 0, 0, 1], 1)), now);
    let after = receiver.counters();
    let moved = (after.beacons.dropped() - before.beacons.dropped())
        + (after.beacons.accepted - before.beacons.accepted)
        + (after.beacons.own - before.beacons.own);
    assert_eq!(moved, 1);
    assert_eq!(
        result.is_err(),
        after.beacons.dropped() > before.beacons.dropped()
    );
    assert!(receiver.pending() <= 1);
}

proptest! {
    #[test]
    fn body_round_trips(beacon in beacon_strategy()) {
        let body = beacon.encode();
        prop_assert!(body.len() == 36 || body.len() == 48);
        prop_assert_eq!(Beacon::decode(&body), Ok(beacon));
    }

    #[test]
    fn body_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        if let Ok(beacon) = Beacon::decode(&bytes) {
            prop_assert_eq!(beacon.encode(), bytes);
        }
    }

    #[test]
    fn body_with_valid_prefix_never_panics(
        family in any::<u8>(),
        rest in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = BEACON_MAGIC.to_vec();
        bytes.push(BEACON_VERSION);
        bytes.push(family);
        bytes.extend(rest);
        if let Ok(beacon) = Beacon::decode(&bytes) {
            prop_assert_eq!(beacon.encode(), bytes);
        }
    }

    #[test]
    fn sealed_beacons_round_trip_through_two_cores(node in 2u128..1_000, cluster in any::<u64>()) {
        let now = Instant::now();
        let cluster = ClusterId(cluster);
        let mut sender = core(node, cluster, true, now);
        let mut receiver = core(1, cluster, false, now);
        sender.handle_timeout(now);
        let Some(Action::SendBeacon(bytes)) = sender.poll_action() else {
            return Err(TestCaseError::fail("no beacon"));
        };
        prop_assert_eq!(receiver.handle_beacon(&bytes, SocketAddr::from(([127, 0, 0, 1], 1)), now), Ok(()));
        let candidate = receiver.poll_candidate(now);
        prop_assert_eq!(candidate.map(|c| c.node), Some(Some(NodeId::from_u128(node))));
        prop_assert_eq!(candidate.map(|c| c.addr), sender.config().gossip);
    }

    #[test]
    fn arbitrary_datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let now = Instant::now();
        let mut receiver = core(1, ClusterId(5), false, now);
        feed(&mut receiver, &bytes, now);
    }

    #[test]
    fn flipped_bits_in_sealed_beacons_are_dropped(index in any::<prop::sample::Index>(), bit in 0u8..8) {
        let now = Instant::now();
        let mut sender = core(2, ClusterId(5), true, now);
        let mut receiver = core(1, ClusterId(5), false, now);
        sender.handle_timeout(now);
        let Some(Action::SendBeacon(mut bytes)) = sender.poll_action() else {
            return Err(TestCaseError::fail("no beacon"));
        };
        let at = index.index(bytes.len());
        bytes[at] ^= 1 << bit;
        prop_assert!(receiver.handle_beacon(&bytes, SocketAddr::from(([127, 0, 0, 1], 1)), now).is_err());
        prop_assert_eq!(receiver.counters().beacons.dropped(), 1);
    }
}

/// Fuzz target for [`Beacon::decode`]; runs as a normal test with a small budget
/// (`BOLERO_RANDOM_ITERATIONS` raises it).
#[test]
fn fuzz_beacon_decode() {
    bolero::check!()
        .with_iterations(2_000)
        .for_each(|bytes: &[u8]| {
            if let Ok(beacon) = Beacon::decode(bytes) {
                assert_eq!(beacon.encode(), bytes);
            }
        });
}

/// Fuzz target for the core's whole beacon input (envelope, authentication, body, admission);
/// runs as a normal test with a small budget.
#[test]
fn fuzz_handle_beacon() {
    let now = Instant::now();
    bolero::check!()
        .with_iterations(2_000)
        .for_each(|bytes: &[u8]| {
            let mut receiver = core(1, ClusterId(5), false, now);
            feed(&mut receiver, bytes, now);
        });
}
