//! The chain driver actors in one process over `LocalNetwork`: a chain forms from an empty
//! first configuration, serves writes and reads, survives the loss of a replica, and drops
//! malformed and unauthenticated input.

use std::sync::Arc;
use std::time::Duration;

use phalanx_actors::chain::driver::{
    Body, ClientActor, ClientError, ClientInput, ClientSettings, DriverSettings, GroupActor,
    GroupInput, Inbound, LocalNetwork, Packet, ReplicaActor, ReplicaInput,
};
use phalanx_actors::chain::{
    ChainConfig, ClientId, ConfigNode, GroupSettings, KvCommand, KvMap, KvOutput, KvQuery, Peer,
    Replica, ReplicaId, ReplicaSettings,
};
use phalanx_runtime::{ActorRef, spawn_actor};

const GROUP: [u64; 3] = [1, 2, 3];
const ASK: Duration = Duration::from_secs(10);

struct Cluster {
    net: LocalNetwork,
    replicas: Vec<(ReplicaId, ActorRef<ReplicaInput>)>,
    groups: Vec<ActorRef<GroupInput>>,
    client: ActorRef<ClientInput<KvMap>>,
}

fn start(replicas: u64) -> Cluster {
    let net = LocalNetwork::new();
    let mut tick = DriverSettings::default();
    tick.tick = Duration::from_millis(10);
    let mut groups = Vec::new();
    for id in GROUP {
        let mut settings = GroupSettings::new(GROUP.to_vec(), ChainConfig::initial(&[]));
        settings.target_length = 3;
        let node = ConfigNode::new(id, settings).expect("valid group settings");
        let actor = spawn_actor(GroupActor::new(node, Arc::new(net.clone()), tick.clone()));
        let sink = actor.clone();
        net.attach(Peer::Config(id), move |inbound| {
            let _ = sink.try_tell(GroupInput::Packet(inbound));
        });
        groups.push(actor);
    }
    let replicas = (0..replicas)
        .map(|i| start_replica(&net, ReplicaId(100 + i)))
        .collect();
    let settings = ClientSettings::new(ClientId(7), 0, GROUP.to_vec());
    let client = spawn_actor(ClientActor::<KvMap, _>::new(
        settings,
        Arc::new(net.clone()),
    ));
    let sink = client.clone();
    net.attach(Peer::Client(ClientId(7)), move |inbound| {
        let _ = sink.try_tell(ClientInput::Packet(inbound));
    });
    Cluster {
        net,
        replicas,
        groups,
        client,
    }
}

fn start_replica(net: &LocalNetwork, id: ReplicaId) -> (ReplicaId, ActorRef<ReplicaInput>) {
    let replica = Replica::<KvMap>::new(id, 0, ReplicaSettings::new(GROUP.to_vec()));
    let actor = spawn_actor(ReplicaActor::new(
        replica,
        Arc::new(net.clone()),
        DriverSettings::default(),
    ));
    let sink = actor.clone();
    net.attach(Peer::Replica(id), move |inbound| {
        let _ = sink.try_tell(ReplicaInput::Packet(inbound));
    });
    (id, actor)
}

async fn put(client: &ActorRef<ClientInput<KvMap>>, key: &str, value: &[u8]) -> bool {
    let command = KvCommand::Put {
        key: key.into(),
        value: value.to_vec(),
    };
    matches!(
        client.ask(|r| ClientInput::Write(command, r), ASK).await,
        Ok(Ok(KvOutput::Done))
    )
}

async fn get(client: &ActorRef<ClientInput<KvMap>>, key: &str) -> Option<Vec<u8>> {
    let query = KvQuery { key: key.into() };
    client
        .ask(|r| ClientInput::Read(query, r), ASK)
        .await
        .expect("the client answers")
        .expect("the read succeeds")
}

/// Waits (bounded) until the client knows a chain of `length` members.
async fn wait_for_chain(client: &ActorRef<ClientInput<KvMap>>, length: usize) -> ChainConfig {
    for _ in 0..500 {
        if let Ok(Some(config)) = client.ask(ClientInput::Config, ASK).await
            && config.members.len() == length
        {
            return config;
        }
        phalanx_runtime::sleep(Duration::from_millis(20)).await;
    }
    panic!("no chain of {length} members formed");
}

#[test]
fn chain_forms_serves_and_survives_a_replica_loss() {
    phalanx_runtime::block_on(async {
        let cluster = start(3);
        let config = wait_for_chain(&cluster.client, 3).await;
        assert!(config.epoch >= 4, "three appends after the empty start");

        // Before the first write the head may still wait out its fence; the client retries.
        assert!(put(&cluster.client, "a", b"1").await);
        assert_eq!(get(&cluster.client, "a").await, Some(b"1".to_vec()));
        let cas = KvCommand::CompareAndSet {
            key: "a".into(),
            expected: Some(b"1".to_vec()),
            new: Some(b"2".to_vec()),
        };
        let swapped = cluster
            .client
            .ask(|r| ClientInput::Write(cas, r), ASK)
            .await;
        assert_eq!(swapped.ok(), Some(Ok(KvOutput::Swapped(true))));
        let stale = KvCommand::CompareAndSet {
            key: "a".into(),
            expected: Some(b"1".to_vec()),
            new: Some(b"3".to_vec()),
        };
        let refused = cluster
            .client
            .ask(|r| ClientInput::Write(stale, r), ASK)
            .await;
        assert_eq!(refused.ok(), Some(Ok(KvOutput::Swapped(false))));
        let delete = KvCommand::Delete { key: "a".into() };
        let deleted = cluster
            .client
            .ask(|r| ClientInput::Write(delete, r), ASK)
            .await;
        assert_eq!(deleted.ok(), Some(Ok(KvOutput::Done)));
        assert_eq!(get(&cluster.client, "a").await, None);

        // Pipelined writes: many outstanding at once.
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let client = cluster.client.clone();
                phalanx_runtime::spawn(async move { put(&client, &format!("p{i}"), b"x").await })
            })
            .collect();
        for task in tasks {
            assert!(task.await);
        }

        // Lose the middle replica: writes continue on a shorter chain, nothing is lost.
        let (middle, actor) = &cluster.replicas[1];
        let middle = config.members.get(1).map(|m| m.id).unwrap_or(*middle);
        cluster.net.detach(Peer::Replica(middle));
        let victim = cluster
            .replicas
            .iter()
            .find(|(id, _)| *id == middle)
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| actor.clone());
        victim.kill();
        let mut acked = Vec::new();
        for i in 0..20 {
            let key = format!("after{i}");
            if put(&cluster.client, &key, b"y").await {
                acked.push(key);
            }
        }
        assert!(!acked.is_empty(), "writes continue after a replica loss");
        for key in acked.iter().chain(&["p0".to_owned(), "p49".to_owned()]) {
            assert!(get(&cluster.client, key).await.is_some(), "{key} lost");
        }
        let status = cluster.replicas[0]
            .1
            .ask(ReplicaInput::Status, ASK)
            .await
            .expect("status");
        assert!(status.committed >= 54);
        for group in &cluster.groups {
            group.stop();
        }
    });
}

#[test]
fn requests_without_a_chain_fail_with_no_chain() {
    phalanx_runtime::block_on(async {
        let net = LocalNetwork::new();
        let mut settings = ClientSettings::new(ClientId(9), 0, GROUP.to_vec());
        settings.deadline = Duration::from_millis(100);
        let client = spawn_actor(ClientActor::<KvMap, _>::new(settings, Arc::new(net)));
        let command = KvCommand::Delete { key: "k".into() };
        let outcome = client.ask(|r| ClientInput::Write(command, r), ASK).await;
        assert_eq!(outcome.ok(), Some(Err(ClientError::NoChain)));
    });
}

#[test]
fn malformed_and_unauthenticated_input_is_counted_and_dropped() {
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
        let (id, replica) = start_replica(&net, ReplicaId(5));
        let packet = |to, body| Packet {
            from: Peer::Config(2),
            to,
            body,
            routes: Vec::new(),
        };
        let inbound = |packet, authenticated| Inbound {
            packet,
            authenticated,
        };
        let garbage = vec![0xff; 40];
        for message in [
            GroupInput::Packet(inbound(
                packet(Peer::Config(1), Body::Raft(garbage.clone())),
                false,
            )),
            GroupInput::Packet(inbound(
                packet(Peer::Config(1), Body::Raft(garbage.clone())),
                true,
            )),
            GroupInput::Packet(inbound(
                packet(Peer::Config(1), Body::Control(garbage.clone())),
                true,
            )),
            GroupInput::Packet(inbound(
                packet(Peer::Config(3), Body::Control(garbage.clone())),
                true,
            )),
        ] {
            group.tell(message).await.expect("group alive");
        }
        replica
            .tell(ReplicaInput::Packet(inbound(
                packet(Peer::Replica(id), Body::Chain(garbage.clone())),
                true,
            )))
            .await
            .expect("replica alive");
        let status = group.ask(GroupInput::Status, ASK).await.expect("status");
        assert_eq!(status.counters.unauthenticated, 1);
        assert_eq!(status.counters.malformed, 2);
        assert_eq!(status.counters.misaddressed, 1);
        let status = replica
            .ask(ReplicaInput::Status, ASK)
            .await
            .expect("status");
        assert_eq!(status.counters.malformed, 1);
    });
}
