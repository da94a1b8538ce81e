//! Unit tests of the discovery core, with fake time: every `now` is a fixed base plus offsets.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use phalanx_transports::{ClusterId, Incarnation, Key, Keyring, NodeId, Security};

use super::*;

const CLUSTER: ClusterId = ClusterId(7);

fn addr(last: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), port)
}

fn config(node: u128) -> DiscoveryConfig {
    let mut config = DiscoveryConfig::new(CLUSTER, NodeId::from_u128(node));
    config.gossip = Some(addr(node as u8, 7946));
    config
}

fn keyed(byte: u8) -> Security {
    Security::Keyring(Keyring::new(Key::from_bytes([byte; 32])))
}

fn drain(discovery: &mut Discovery, now: Instant) -> Vec<Candidate> {
    std::iter::from_fn(|| discovery.poll_candidate(now))
        .take(10_000)
        .collect()
}

fn actions(discovery: &mut Discovery) -> Vec<Action> {
    std::iter::from_fn(|| discovery.poll_action())
        .take(10_000)
        .collect()
}

/// A beacon sealed by a core for `node`, with its own security.
fn beacon_from(node: u128, security: Security, now: Instant) -> Vec<u8> {
    let mut config = config(node);
    config.beacon_interval = Some(Duration::from_secs(5));
    let mut sender = Discovery::new(config, security, now);
    sender.handle_timeout(now);
    match actions(&mut sender).pop() {
        Some(Action::SendBeacon(bytes)) => bytes,
        other => panic!("expected a beacon, got {other:?}"),
    }
}

#[test]
fn seeds_come_out_once_and_never_our_own_address() {
    let now = Instant::now();
    let mut config = config(1);
    config.seeds = vec![addr(2, 7946), addr(3, 7946), addr(2, 7946), addr(1, 7946)];
    let mut discovery = Discovery::new(config, Security::Plaintext, now);
    let out = drain(&mut discovery, now);
    let addrs: Vec<_> = out.iter().map(|c| c.addr).collect();
    assert_eq!(addrs, vec![addr(2, 7946), addr(3, 7946)]);
    assert!(
        out.iter()
            .all(|c| c.source == Source::Seed && c.node.is_none())
    );
    assert_eq!(discovery.counters().duplicates, 1);
    assert_eq!(discovery.counters().emitted, 2);
    assert_eq!(
        discovery.poll_timeout(),
        None,
        "no sources, nothing scheduled"
    );
}

#[test]
fn dns_names_resolve_at_start_then_every_interval() {
    let now = Instant::now();
    let mut config = config(1);
    let name = DnsName::new("phalanx.default.svc.cluster.local", 7946);
    config.dns = vec![name.clone()];
    config.dns_interval = Duration::from_secs(30);
    config.rediscover_after = Duration::from_secs(10);
    let mut discovery = Discovery::new(config, Security::Plaintext, now);

    assert_eq!(discovery.poll_timeout(), Some(now));
    discovery.handle_timeout(now);
    assert_eq!(actions(&mut discovery), vec![Action::Resolve(name.clone())]);
    // In flight: not asked again, and not a deadline.
    discovery.handle_timeout(now + Duration::from_secs(100));
    assert!(actions(&mut discovery).is_empty());
    assert_eq!(discovery.poll_timeout(), None);

    // A headless service: several records.
    let records = vec![addr(2, 7946), addr(3, 7946), addr(4, 7946)];
    discovery.handle_resolved(&name, Ok(records.clone()), now);
    let out = drain(&mut discovery, now);
    assert_eq!(out.iter().map(|c| c.addr).collect::<Vec<_>>(), records);
    assert!(out.iter().all(|c| c.source == Source::Dns));

    let next = now + Duration::from_secs(30);
    assert_eq!(discovery.poll_timeout(), Some(next));
    discovery.handle_timeout(next - Duration::from_millis(1));
    assert!(actions(&mut discovery).is_empty());
    discovery.handle_timeout(next);
    assert_eq!(actions(&mut discovery), vec![Action::Resolve(name.clone())]);
    // The same records again, after rediscover_after: handed over again; a new one too.
    discovery.handle_resolved(&name, Ok(vec![addr(2, 7946), addr(5, 7946)]), next);
    let again: Vec<_> = drain(&mut discovery, next).iter().map(|c| c.addr).collect();
    assert_eq!(again, vec![addr(2, 7946), addr(5, 7946)]);
}

#[test]
fn failed_or_empty_resolution_retries_sooner_and_counts() {
    let now = Instant::now();
    let mut config = config(1);
    let name = DnsName::new("nowhere.invalid", 1);
    config.dns = vec![name.clone()];
    config.dns_retry = Duration::from_secs(5);
    let mut discovery = Discovery::new(config, Security::Plaintext, now);
    discovery.handle_timeout(now);
    let _ = actions(&mut discovery);
    let error = std::io::Error::new(std::io::ErrorKind::NotFound, "no such name");
    discovery.handle_resolved(&name, Err(error), now);
    assert_eq!(discovery.poll_timeout(), Some(now + Duration::from_secs(5)));
    let later = now + Duration::from_secs(5);
    discovery.handle_timeout(later);
    assert_eq!(actions(&mut discovery), vec![Action::Resolve(name.clone())]);
    discovery.handle_resolved(&name, Ok(Vec::new()), later);
    assert_eq!(discovery.counters().dns_failures, 2);
    assert!(drain(&mut discovery, later).is_empty());

    // A name that was never configured changes nothing.
    let stranger = DnsName::new("stranger", 1);
    discovery.handle_resolved(&stranger, Ok(vec![addr(9, 1)]), later);
    assert!(drain(&mut discovery, later).is_empty());
}

#[test]
fn dns_records_beyond_the_maximum_are_ignored() {
    let now = Instant::now();
    let mut config = config(1);
    let name = DnsName::new("big", 7946);
    config.dns = vec![name.clone()];
    let mut discovery = Discovery::new(config, Security::Plaintext, now);
    let records: Vec<_> = (0..200u16).map(|port| addr(2, 10_000 + port)).collect();
    discovery.handle_resolved(&name, Ok(records), now);
    assert_eq!(discovery.pending(), MAX_DNS_RECORDS);
    assert_eq!(
        discovery.counters().dns_truncated,
        200 - MAX_DNS_RECORDS as u64
    );
}

#[test]
fn beacons_are_sent_on_schedule_with_bounded_jitter() {
    let now = Instant::now();
    let mut config = config(1);
    config.beacon_interval = Some(Duration::from_secs(10));
    let mut discovery = Discovery::new(config, Security::Plaintext, now);
    let mut at = now;
    for _ in 0..50 {
        assert_eq!(discovery.poll_timeout(), Some(at));
        discovery.handle_timeout(at);
        let sent = actions(&mut discovery);
        assert!(
            matches!(sent.as_slice(), [Action::SendBeacon(bytes)] if bytes.len() <= MAX_BEACON_DATAGRAM)
        );
        let Some(next) = discovery.poll_timeout() else {
            panic!("no next beacon");
        };
        let gap = next - at;
        assert!(
            gap >= Duration::from_secs(9) && gap <= Duration::from_secs(11),
            "{gap:?}"
        );
        at = next;
    }
}

#[test]
fn no_beacons_without_a_gossip_address() {
    let now = Instant::now();
    let mut config = config(1);
    config.gossip = None;
    config.beacon_interval = Some(Duration::from_secs(1));
    let mut discovery = Discovery::new(config, Security::Plaintext, now);
    discovery.handle_timeout(now);
    assert!(actions(&mut discovery).is_empty());
    assert_eq!(discovery.poll_timeout(), None);
}

#[test]
fn a_beacon_from_another_node_becomes_a_candidate() {
    let now = Instant::now();
    let bytes = beacon_from(2, keyed(1), now);
    let mut receiver = Discovery::new(config(1), keyed(1), now);
    assert_eq!(receiver.handle_beacon(&bytes, addr(2, 40_000), now), Ok(()));
    let out = drain(&mut receiver, now);
    assert_eq!(
        out,
        vec![Candidate {
            addr: addr(2, 7946),
            source: Source::Beacon,
            node: Some(NodeId::from_u128(2)),
        }]
    );
    assert_eq!(receiver.counters().beacons.accepted, 1);
}

#[test]
fn own_beacons_are_ignored() {
    let now = Instant::now();
    let mut config = config(1);
    config.beacon_interval = Some(Duration::from_secs(5));
    let mut discovery = Discovery::new(config, keyed(1), now);
    discovery.handle_timeout(now);
    let Some(Action::SendBeacon(bytes)) = discovery.poll_action() else {
        panic!("no beacon");
    };
    // Our own codec saw its own sequence number only when sealing, so this is not a replay.
    assert_eq!(discovery.handle_beacon(&bytes, addr(1, 1), now), Ok(()));
    assert_eq!(discovery.counters().beacons.own, 1);
    assert!(drain(&mut discovery, now).is_empty());
}

#[test]
fn bad_beacons_are_counted_by_reason() {
    let now = Instant::now();
    let from = addr(9, 9);
    let mut receiver = Discovery::new(config(1), keyed(1), now);

    let wrong_key = beacon_from(2, keyed(2), now);
    assert_eq!(
        receiver.handle_beacon(&wrong_key, from, now),
        Err(BeaconError::Unauthenticated)
    );
    let plaintext = beacon_from(3, Security::Plaintext, now);
    assert_eq!(
        receiver.handle_beacon(&plaintext, from, now),
        Err(BeaconError::Unauthenticated)
    );
    let mut other = config(4);
    other.cluster = ClusterId(99);
    other.beacon_interval = Some(Duration::from_secs(1));
    let mut stranger = Discovery::new(other, keyed(1), now);
    stranger.handle_timeout(now);
    let Some(Action::SendBeacon(foreign)) = stranger.poll_action() else {
        panic!("no beacon");
    };
    assert!(matches!(
        receiver.handle_beacon(&foreign, from, now),
        Err(BeaconError::WrongCluster { .. })
    ));
    assert!(matches!(
        receiver.handle_beacon(b"hello", from, now),
        Err(BeaconError::Truncated { .. } | BeaconError::Garbled { .. })
    ));
    assert!(matches!(
        receiver.handle_beacon(&[0u8; 64], from, now),
        Err(BeaconError::Garbled { .. })
    ));
    assert!(matches!(
        receiver.handle_beacon(&[0u8; MAX_BEACON_DATAGRAM + 1], from, now),
        Err(BeaconError::Oversized { .. })
    ));
    let good = beacon_from(5, keyed(1), now);
    assert_eq!(receiver.handle_beacon(&good, from, now), Ok(()));
    assert_eq!(
        receiver.handle_beacon(&good, from, now),
        Err(BeaconError::Replayed)
    );
    let mut version = good.clone();
    version[4] = 2; // the codec's protocol version byte
    assert!(matches!(
        receiver.handle_beacon(&version, from, now),
        Err(BeaconError::WrongVersion(2) | BeaconError::Unauthenticated)
    ));

    let counters = receiver.counters().beacons;
    assert_eq!(counters.unauthenticated, 2);
    assert_eq!(counters.wrong_cluster, 1);
    assert_eq!(counters.oversized, 1);
    assert_eq!(counters.replayed, 1);
    assert_eq!(counters.accepted, 1);
    assert_eq!(counters.dropped(), 8);
    assert_eq!(drain(&mut receiver, now).len(), 1, "only the good beacon");
}

#[test]
fn a_body_with_a_wrong_version_or_a_lying_node_id_is_dropped() {
    let now = Instant::now();
    let mut sealer = phalanx_transports::Codec::new(
        phalanx_transports::CodecConfig::new(CLUSTER, NodeId::from_u128(2), Incarnation(1)),
        Security::Plaintext,
    );
    let mut receiver = Discovery::new(config(1), Security::Plaintext, now);
    let beacon = Beacon {
        cluster: CLUSTER,
        node: NodeId::from_u128(2),
        gossip: addr(2, 7946),
    };
    let mut body = beacon.encode();
    body[4] = BEACON_VERSION + 1;
    let sealed = sealer
        .seal_datagram(phalanx_transports::FrameKind::Control, &body)
        .unwrap();
    assert_eq!(
        receiver.handle_beacon(&sealed, addr(2, 1), now),
        Err(BeaconError::WrongVersion(BEACON_VERSION + 1))
    );
    let liar = Beacon {
        node: NodeId::from_u128(3),
        ..beacon
    };
    let sealed = liar.seal(&mut sealer).unwrap();
    assert!(matches!(
        receiver.handle_beacon(&sealed, addr(2, 1), now),
        Err(BeaconError::Garbled { .. })
    ));
    let sealed = sealer
        .seal_datagram(phalanx_transports::FrameKind::Gossip, &beacon.encode())
        .unwrap();
    assert!(matches!(
        receiver.handle_beacon(&sealed, addr(2, 1), now),
        Err(BeaconError::Garbled { .. })
    ));
    assert_eq!(receiver.counters().beacons.wrong_version, 1);
    assert_eq!(receiver.counters().beacons.garbled, 2);
}

#[test]
fn a_restarted_sender_with_a_higher_incarnation_is_heard() {
    let now = Instant::now();
    let mut receiver = Discovery::new(config(1), keyed(1), now);
    let mut sender_config = config(2);
    sender_config.beacon_interval = Some(Duration::from_secs(1));
    for incarnation in [1, 2] {
        sender_config.beacon_incarnation = Incarnation(incarnation);
        let mut sender = Discovery::new(sender_config.clone(), keyed(1), now);
        sender.handle_timeout(now);
        let Some(Action::SendBeacon(bytes)) = sender.poll_action() else {
            panic!("no beacon");
        };
        assert_eq!(receiver.handle_beacon(&bytes, addr(2, 1), now), Ok(()));
    }
    assert_eq!(receiver.counters().beacons.accepted, 2);
}

#[test]
fn repeated_beacons_are_deduplicated_until_rediscover_after() {
    let now = Instant::now();
    let mut config = config(1);
    config.rediscover_after = Duration::from_secs(60);
    let mut receiver = Discovery::new(config, keyed(1), now);
    let mut sender_config = self::config(2);
    sender_config.beacon_interval = Some(Duration::from_secs(5));
    let mut sender = Discovery::new(sender_config, keyed(1), now);
    let mut emitted = 0;
    for second in (0..=135).step_by(5) {
        let at = now + Duration::from_secs(second);
        sender.handle_timeout(at);
        for action in actions(&mut sender) {
            if let Action::SendBeacon(bytes) = action {
                assert_eq!(receiver.handle_beacon(&bytes, addr(2, 1), at), Ok(()));
            }
        }
        emitted += drain(&mut receiver, at).len();
    }
    // Handed over at 0 s, then about every 60 s: twice more by 135 s.
    assert_eq!(emitted, 3);
    assert!(receiver.counters().duplicates > 0);
}

#[test]
fn the_rate_limit_meters_candidates_out_and_says_when() {
    let now = Instant::now();
    let mut config = config(1);
    config.rate_per_second = 2;
    config.burst = 3;
    config.seeds = (10..20).map(|i| addr(i, 7946)).collect();
    let mut discovery = Discovery::new(config, Security::Plaintext, now);
    assert_eq!(drain(&mut discovery, now).len(), 3, "the burst");
    assert_eq!(discovery.pending(), 7);
    let Some(next) = discovery.poll_timeout() else {
        panic!("waiting candidates need a deadline");
    };
    assert_eq!(next, now + Duration::from_millis(500));
    assert!(drain(&mut discovery, next - Duration::from_millis(1)).is_empty());
    assert_eq!(drain(&mut discovery, next).len(), 1);
    // After a long quiet time the bucket holds a burst again, no more.
    assert_eq!(
        drain(&mut discovery, now + Duration::from_secs(100)).len(),
        3
    );
    let mut at = now + Duration::from_secs(100);
    let mut total = 7;
    for _ in 0..100 {
        if discovery.pending() == 0 {
            break;
        }
        let Some(next) = discovery.poll_timeout() else {
            panic!("no deadline");
        };
        assert!(next > at);
        at = next;
        total += drain(&mut discovery, at).len();
    }
    assert_eq!(total, 10);
    assert_eq!(discovery.counters().emitted, 10);
}

#[test]
fn queue_and_table_are_bounded() {
    let now = Instant::now();
    let mut config = config(1);
    config.max_pending = 4;
    config.seeds = (10..20).map(|i| addr(i, 7946)).collect();
    let mut discovery = Discovery::new(config, Security::Plaintext, now);
    assert_eq!(discovery.pending(), 4);
    assert_eq!(discovery.counters().queue_full, 6);
    // Dropped candidates were not remembered: offered again later, they come through.
    drain(&mut discovery, now);

    let mut config = self::config(1);
    config.max_known = 3;
    config.rediscover_after = Duration::from_secs(10);
    let name = DnsName::new("n", 1);
    config.dns = vec![name.clone()];
    let mut discovery = Discovery::new(config, Security::Plaintext, now);
    let records: Vec<_> = (10..15).map(|i| addr(i, 1)).collect();
    discovery.handle_resolved(&name, Ok(records.clone()), now);
    assert_eq!(drain(&mut discovery, now).len(), 3);
    assert_eq!(discovery.counters().table_full, 2);
    // Once the remembered entries are old, they make room.
    let later = now + Duration::from_secs(10);
    discovery.handle_resolved(&name, Ok(records[3..].to_vec()), later);
    assert_eq!(drain(&mut discovery, later).len(), 2);
}

#[test]
fn mdns_records_of_other_clusters_and_our_own_are_ignored() {
    let now = Instant::now();
    let mut discovery = Discovery::new(config(1), Security::Plaintext, now);
    let peer = |cluster, node, addrs| MdnsPeer {
        instance: "x._phalanx._udp.local.".into(),
        cluster,
        node,
        addrs,
    };
    discovery.handle_mdns(peer(Some(ClusterId(99)), None, vec![addr(2, 1)]), now);
    discovery.handle_mdns(
        peer(Some(CLUSTER), Some(NodeId::from_u128(1)), vec![addr(3, 1)]),
        now,
    );
    let many: Vec<_> = (0..40u16).map(|port| addr(4, port + 1)).collect();
    discovery.handle_mdns(peer(Some(CLUSTER), Some(NodeId::from_u128(4)), many), now);
    discovery.handle_mdns(peer(None, None, vec![addr(5, 1)]), now);
    let out = drain(&mut discovery, now);
    assert_eq!(out.len(), MAX_MDNS_ADDRS + 1);
    assert!(out.iter().all(|c| c.source == Source::Mdns));
    assert_eq!(out[0].node, Some(NodeId::from_u128(4)));
    assert_eq!(discovery.counters().mdns_wrong_cluster, 1);
}

mod properties {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Step {
        /// Resolve the name to these addresses (last octet, port offset).
        Resolve(Vec<(u8, u8)>),
        /// Let this many milliseconds pass, then take what the limiter releases.
        Wait(u16),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            proptest::collection::vec((0u8..8, 0u8..4), 0..20).prop_map(Step::Resolve),
            (0u16..3_000).prop_map(Step::Wait),
        ]
    }

    proptest! {
        /// Against a model: no address is handed over twice within `rediscover_after`, never
        /// more than `burst + rate * elapsed` candidates, and the queue stays bounded.
        #[test]
        fn admission_deduplicates_and_rate_limits(steps in proptest::collection::vec(step(), 1..60)) {
            let start = Instant::now();
            let mut config = config(1);
            let name = DnsName::new("n", 1);
            config.dns = vec![name.clone()];
            config.rate_per_second = 5;
            config.burst = 4;
            config.max_pending = 16;
            config.rediscover_after = Duration::from_secs(2);
            let mut discovery = Discovery::new(config, Security::Plaintext, start);
            let mut now = start;
            let mut last_emitted: HashMap<SocketAddr, Instant> = HashMap::new();
            let mut emitted = 0u64;
            for step in steps {
                match step {
                    Step::Resolve(records) => {
                        let addrs = records.iter().map(|(ip, port)| addr(*ip + 10, 7000 + u16::from(*port))).collect();
                        discovery.handle_resolved(&name, Ok(addrs), now);
                    }
                    Step::Wait(ms) => now += Duration::from_millis(u64::from(ms)),
                }
                while let Some(candidate) = discovery.poll_candidate(now) {
                    emitted += 1;
                    if let Some(at) = last_emitted.insert(candidate.addr, now) {
                        prop_assert!(now - at >= Duration::from_secs(2), "again after {:?}", now - at);
                    }
                }
                let elapsed = (now - start).as_millis() as u64;
                prop_assert!(emitted <= 4 + elapsed * 5 / 1_000 + 1, "{emitted} after {elapsed} ms");
                prop_assert!(discovery.pending() <= 16);
                // Run the timers (the name falls due) so that only the limiter's deadline
                // can remain.
                discovery.handle_timeout(now);
                let _ = actions(&mut discovery);
                if discovery.pending() > 0 {
                    prop_assert!(discovery.poll_timeout().is_some_and(|t| t > now));
                }
            }
            prop_assert_eq!(discovery.counters().emitted, emitted);
        }
    }
}
