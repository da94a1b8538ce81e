//! The driver's packets: a `Packet` round-trips through postcard, arbitrary bytes never panic
//! its decoder (proptest and a bolero target), and arbitrary packets fed to a running replica
//! and group actor are dropped and counted without stopping them.

use std::sync::Arc;
use std::time::Duration;

use phalanx_actors::chain::driver::{
    Body, DriverSettings, GroupActor, GroupInput, Inbound, LocalNetwork, Packet, ReplicaActor,
    ReplicaInput,
};
use phalanx_actors::chain::{
    ChainConfig, ClientId, ConfigNode, GroupSettings, KvMap, Peer, Replica, ReplicaId,
    ReplicaSettings,
};
use phalanx_runtime::spawn_actor;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

fn peer() -> impl Strategy<Value = Peer> {
    prop_oneof![
        (0u64..4).prop_map(|id| Peer::Replica(ReplicaId(id))),
        (0u64..4).prop_map(|id| Peer::Client(ClientId(id))),
        (0u64..4).prop_map(Peer::Config),
    ]
}

fn packet() -> impl Strategy<Value = Packet> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..64);
    let body = prop_oneof![
        bytes.clone().prop_map(Body::Chain),
        bytes.clone().prop_map(Body::Control),
        bytes.prop_map(Body::Raft),
    ];
    (
        peer(),
        peer(),
        body,
        proptest::collection::vec((any::<u64>(), any::<u64>()), 0..3),
    )
        .prop_map(|(from, to, body, routes)| Packet {
            from,
            to,
            body,
            routes: routes.into_iter().map(|(c, n)| (ClientId(c), n)).collect(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn packets_round_trip(packet in packet()) {
        let bytes = postcard::to_allocvec(&packet).expect("encodes");
        let back: Packet = postcard::from_bytes(&bytes).expect("decodes");
        prop_assert_eq!(back, packet);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = postcard::from_bytes::<Packet>(&bytes);
    }
}

#[test]
fn bolero_packet_decoder() {
    bolero::check!()
        .with_iterations(2_000)
        .for_each(|bytes: &[u8]| {
            let _ = postcard::from_bytes::<Packet>(bytes);
        });
}

#[test]
fn arbitrary_packets_leave_the_actors_running() {
    phalanx_runtime::block_on(async {
        let net = LocalNetwork::new();
        let mut settings = GroupSettings::new(vec![1], ChainConfig::initial(&[]));
        settings.target_length = 1;
        let node = ConfigNode::new(1, settings).expect("valid group settings");
        let group = spawn_actor(GroupActor::new(
            node,
            Arc::new(net.clone()),
            DriverSettings::default(),
        ));
        let replica = Replica::<KvMap>::new(ReplicaId(1), 0, ReplicaSettings::new(vec![1]));
        let replica = spawn_actor(ReplicaActor::new(
            replica,
            Arc::new(net.clone()),
            DriverSettings::default(),
        ));
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        for _ in 0..200 {
            let packet = packet().new_tree(&mut runner).expect("a packet").current();
            let mut to_replica = packet.clone();
            to_replica.to = Peer::Replica(ReplicaId(1));
            let mut to_group = packet;
            to_group.to = Peer::Config(1);
            for authenticated in [false, true] {
                let inbound = Inbound {
                    packet: to_replica.clone(),
                    authenticated,
                };
                replica
                    .tell(ReplicaInput::Packet(inbound))
                    .await
                    .expect("the replica runs");
                let inbound = Inbound {
                    packet: to_group.clone(),
                    authenticated,
                };
                group
                    .tell(GroupInput::Packet(inbound))
                    .await
                    .expect("the group node runs");
            }
        }
        let ask = Duration::from_secs(10);
        let status = replica
            .ask(ReplicaInput::Status, ask)
            .await
            .expect("status");
        assert!(status.counters.received >= 400);
        let status = group.ask(GroupInput::Status, ask).await.expect("status");
        assert!(status.counters.received >= 400);
    });
}
