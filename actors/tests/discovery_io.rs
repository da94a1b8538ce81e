//! The discovery actor with real I/O, on this machine only: multicast beacons on the loopback
//! interface (TTL 0), DNS resolution of `localhost`, and (opt-in) mDNS on loopback.
//!
//! Every wait is bounded; a test that does not see what it waits for within its deadline
//! fails instead of hanging.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use phalanx_actors::discovery::{
    BeaconTransport, Candidate, CandidateSink, DiscoveryActor, DiscoveryConfig, DiscoveryMessage,
    DnsName, DriverConfig, MdnsConfig, MulticastConfig, Source,
};
use phalanx_runtime::{Actor, ActorRef, Context, HandlerError, spawn_actor, timeout};
use phalanx_transports::{ClusterId, Key, Keyring, NodeId, Security};

const DEADLINE: Duration = Duration::from_secs(20);

fn keyed() -> Security {
    Security::Keyring(Keyring::new(Key::from_bytes([0x5a; 32])))
}

/// A port that was free a moment ago.
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .map(|addr| addr.port())
        .unwrap_or(47_947)
}

fn node_config(node: u128, cluster: ClusterId, gossip_port: u16) -> DiscoveryConfig {
    let mut config = DiscoveryConfig::new(cluster, NodeId::from_u128(node));
    config.gossip = Some(SocketAddr::from(([127, 0, 0, 1], gossip_port)));
    config
}

/// Waits for a candidate that `wanted` accepts, skipping others.
async fn wait_for(
    candidates: &flume::Receiver<Candidate>,
    wanted: impl Fn(&Candidate) -> bool,
) -> Option<Candidate> {
    timeout(DEADLINE, async {
        while let Ok(candidate) = candidates.recv_async().await {
            if wanted(&candidate) {
                return Some(candidate);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

#[test]
fn multicast_beacons_on_loopback_find_each_other_and_bad_ones_are_counted() {
    // A group and port of our own, so that parallel runs do not hear each other.
    let group = Ipv4Addr::new(239, 255, fastrand::u8(1..255), fastrand::u8(1..255));
    let group = SocketAddr::from((group, free_udp_port()));
    let mut multicast = MulticastConfig::new(group);
    multicast.interface_v4 = Ipv4Addr::LOCALHOST;
    multicast.ttl = 0; // never leaves this machine
    multicast.loopback = true;
    let cluster = ClusterId(fastrand::u64(..));

    let spawn_node = |node: u128, gossip_port: u16| {
        let mut config = node_config(node, cluster, gossip_port);
        config.beacon_interval = Some(Duration::from_millis(100));
        let mut driver = DriverConfig::new(config);
        driver.beacons = BeaconTransport::Multicast(multicast.clone());
        let (tx, rx) = flume::bounded(64);
        let actor = spawn_actor(DiscoveryActor::new(
            driver,
            keyed(),
            CandidateSink::Channel(tx),
        ));
        (actor, rx)
    };

    phalanx_runtime::block_on(async {
        let (a, a_rx) = spawn_node(1, 7001);
        let (b, b_rx) = spawn_node(2, 7002);

        let seen_by_a = wait_for(&a_rx, |c| c.source == Source::Beacon).await;
        let seen_by_b = wait_for(&b_rx, |c| c.source == Source::Beacon).await;
        assert_eq!(
            seen_by_a,
            Some(Candidate {
                addr: SocketAddr::from(([127, 0, 0, 1], 7002)),
                source: Source::Beacon,
                node: Some(NodeId::from_u128(2)),
            })
        );
        assert_eq!(
            seen_by_b.map(|c| (c.addr, c.node)),
            Some((
                SocketAddr::from(([127, 0, 0, 1], 7001)),
                Some(NodeId::from_u128(1))
            ))
        );

        // Garbage and an unauthenticated beacon sent to the group are counted, not fatal.
        let stranger = loopback_multicast_sender();
        let mut counters = None;
        for _ in 0..100 {
            stranger.send_to(b"not a beacon", group).expect("send");
            stranger.send_to(&[0u8; 1_000], group).expect("send");
            let got = a
                .ask(DiscoveryMessage::counters, Duration::from_secs(5))
                .await
                .expect("counters");
            if got.beacons.garbled + got.beacons.truncated >= 1 && got.beacons.oversized >= 1 {
                counters = Some(got);
                break;
            }
            phalanx_runtime::sleep(Duration::from_millis(50)).await;
        }
        let counters = counters.expect("bad beacons were counted");
        assert!(counters.beacons.accepted >= 1);
        assert!(
            counters.beacons.own >= 1,
            "multicast loop brings our own back"
        );
        assert!(a.is_alive() && b.is_alive());

        for actor in [a, b] {
            actor.stop();
            actor.wait().await;
        }
    });
}

#[test]
fn unicast_beacons_through_the_broadcast_transport() {
    // Where multicast is filtered, beacons go to a broadcast address; on loopback a unicast
    // address stands in for it (the socket code is the same, with SO_BROADCAST set).
    let (port_a, port_b) = (free_udp_port(), free_udp_port());
    let cluster = ClusterId(fastrand::u64(..));
    let spawn_node = |node: u128, gossip_port: u16, bind: u16, target: u16| {
        let mut config = node_config(node, cluster, gossip_port);
        config.beacon_interval = Some(Duration::from_millis(100));
        let mut driver = DriverConfig::new(config);
        driver.beacons = BeaconTransport::Broadcast {
            bind: SocketAddr::from(([127, 0, 0, 1], bind)),
            target: SocketAddr::from(([127, 0, 0, 1], target)),
        };
        let (tx, rx) = flume::bounded(64);
        let actor = spawn_actor(DiscoveryActor::new(
            driver,
            keyed(),
            CandidateSink::Channel(tx),
        ));
        (actor, rx)
    };
    phalanx_runtime::block_on(async {
        let (a, a_rx) = spawn_node(1, 7201, port_a, port_b);
        let (b, b_rx) = spawn_node(2, 7202, port_b, port_a);
        let seen_by_a = wait_for(&a_rx, |c| c.source == Source::Beacon).await;
        let seen_by_b = wait_for(&b_rx, |c| c.source == Source::Beacon).await;
        assert_eq!(
            seen_by_a.map(|c| c.addr),
            Some(SocketAddr::from(([127, 0, 0, 1], 7202)))
        );
        assert_eq!(
            seen_by_b.map(|c| c.addr),
            Some(SocketAddr::from(([127, 0, 0, 1], 7201)))
        );
        // Node 2 restarts (same node id, new gossip port): its new beacons carry a higher
        // incarnation, so node 1 does not take them for replays.
        b.stop();
        b.wait().await;
        let (b, _b_rx) = spawn_node(2, 7003, port_b, port_a);
        let seen_again = wait_for(&a_rx, |c| c.addr.port() == 7003).await;
        assert_eq!(seen_again.map(|c| c.node), Some(Some(NodeId::from_u128(2))));
        for actor in [a, b] {
            actor.stop();
            actor.wait().await;
        }
    });
}

/// A plain socket that multicasts on the loopback interface only, with TTL 0.
fn loopback_multicast_sender() -> UdpSocket {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
    socket
        .set_multicast_if_v4(&Ipv4Addr::LOCALHOST)
        .expect("multicast on loopback");
    socket.set_multicast_ttl_v4(0).expect("multicast TTL 0");
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    socket.into()
}

/// Forwards candidates from an actor sink to a channel, to test the actor variant.
struct Collector(flume::Sender<Candidate>);

impl Actor for Collector {
    type Message = Candidate;

    async fn handle(&mut self, _: &mut Context<Self>, msg: Candidate) -> Result<(), HandlerError> {
        let _ = self.0.send_async(msg).await;
        Ok(())
    }
}

#[test]
fn dns_names_resolve_to_every_address_of_localhost() {
    // Whatever this machine's resolver gives for localhost (127.0.0.1, and ::1 where
    // /etc/hosts has it; only 127.0.0.1 on the machine this was written on) must come out,
    // each as one candidate, plus the address of a second, numeric name.
    let mut expected: BTreeSet<SocketAddr> = ("localhost", 7946)
        .to_socket_addrs()
        .expect("localhost resolves")
        .collect();
    expected.insert(SocketAddr::from(([127, 0, 0, 2], 7946)));
    assert!(!expected.is_empty());

    phalanx_runtime::block_on(async {
        let (tx, rx) = flume::bounded(64);
        let collector: ActorRef<Candidate> = spawn_actor(Collector(tx));
        let mut config = node_config(1, ClusterId(1), 7001);
        config.dns = vec![
            DnsName::new("localhost", 7946),
            // A numeric name resolves without any lookup; no query leaves this machine.
            DnsName::new("127.0.0.2", 7946),
        ];
        config.seeds = vec![SocketAddr::from(([127, 0, 0, 1], 9000))];
        let actor = spawn_actor(DiscoveryActor::new(
            DriverConfig::new(config),
            Security::Plaintext,
            CandidateSink::Actor(collector.clone()),
        ));

        let seed = wait_for(&rx, |c| c.source == Source::Seed).await;
        assert_eq!(
            seed.map(|c| c.addr),
            Some(SocketAddr::from(([127, 0, 0, 1], 9000)))
        );
        let mut found = BTreeSet::new();
        while found != expected {
            let Some(candidate) = wait_for(&rx, |c| c.source == Source::Dns).await else {
                panic!("DNS candidates missing: found {found:?}, expected {expected:?}");
            };
            found.insert(candidate.addr);
        }
        actor.stop();
        actor.wait().await;
        collector.stop();
        collector.wait().await;
    });
}

/// mDNS register + browse on the loopback interface, inside a network namespace.
///
/// The `mdns-sd` daemon joins the mDNS group on every interface as it starts, before it can be
/// told to use loopback only, so on a machine with a real network it would send IGMP reports
/// off the machine (and mDNS uses TTL 255). So this test re-runs itself in a fresh network
/// namespace whose only interface is loopback (`unshare -n`, which needs root or user
/// namespaces), with `PHALANX_MDNS_TEST=1`; where no namespace can be made it is skipped with
/// a message. To run the inner test by hand:
///
/// ```text
/// unshare -n sh -c 'ip link set lo up && PHALANX_MDNS_TEST=1 cargo test -p phalanx-actors \
///     --test discovery_io mdns'
/// ```
#[test]
fn mdns_register_and_browse_on_loopback() {
    if std::env::var_os("PHALANX_MDNS_TEST").is_some() {
        mdns_on_loopback();
        return;
    }
    let namespace_works = std::process::Command::new("unshare")
        .args(["-n", "true"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !namespace_works {
        eprintln!("skipped: no network namespace available (unshare -n failed)");
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let script = "ip link set lo up && exec \"$0\" mdns_register_and_browse_on_loopback --exact \
                  --nocapture";
    let out = std::process::Command::new("unshare")
        .args(["-n", "sh", "-c", script])
        .arg(&exe)
        .env("PHALANX_MDNS_TEST", "1")
        .output()
        .expect("run the test in a network namespace");
    assert!(
        out.status.success(),
        "mDNS test in a network namespace failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The inner run must have run the test, not filtered it away.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 passed"), "inner run: {stdout}");
}

/// The mDNS test proper; see [`mdns_register_and_browse_on_loopback`].
fn mdns_on_loopback() {
    let port = free_udp_port();
    let cluster = ClusterId(fastrand::u64(..));
    let spawn_node = |node: u128, gossip_port: u16| {
        let mut mdns = MdnsConfig::new();
        mdns.port = port;
        mdns.loopback_only = true;
        let mut driver = DriverConfig::new(node_config(node, cluster, gossip_port));
        driver.mdns = Some(mdns);
        let (tx, rx) = flume::bounded(64);
        let actor = spawn_actor(DiscoveryActor::new(
            driver,
            Security::Plaintext,
            CandidateSink::Channel(tx),
        ));
        (actor, rx)
    };
    phalanx_runtime::block_on(async {
        let (a, a_rx) = spawn_node(1, 7101);
        let (b, b_rx) = spawn_node(2, 7102);
        let seen_by_a = wait_for(&a_rx, |c| c.source == Source::Mdns).await;
        let seen_by_b = wait_for(&b_rx, |c| c.source == Source::Mdns).await;
        assert_eq!(
            seen_by_a.map(|c| (c.addr, c.node)),
            Some((
                SocketAddr::from(([127, 0, 0, 1], 7102)),
                Some(NodeId::from_u128(2))
            ))
        );
        assert_eq!(
            seen_by_b.map(|c| (c.addr, c.node)),
            Some((
                SocketAddr::from(([127, 0, 0, 1], 7101)),
                Some(NodeId::from_u128(1))
            ))
        );
        for actor in [a, b] {
            actor.stop();
            actor.wait().await;
        }
    });
}

#[test]
fn multicast_config_checks_the_group_and_scopes_ipv6_groups() {
    let unicast = MulticastConfig::new(SocketAddr::from(([127, 0, 0, 1], 7947)));
    let error = phalanx_actors::discovery::multicast_socket(&unicast).err();
    assert_eq!(
        error.map(|e| e.kind()),
        Some(std::io::ErrorKind::InvalidInput)
    );
    let mut v6 = MulticastConfig::new("[ff02::7:1234]:7947".parse().expect("address"));
    v6.interface_v6 = 3;
    match v6.target() {
        SocketAddr::V6(target) => assert_eq!((target.scope_id(), target.port()), (3, 7947)),
        SocketAddr::V4(_) => panic!("an IPv6 group stays IPv6"),
    }
}
