//! A durable replica driven by its actor, in one process over `LocalNetwork` with a simulated
//! disk: it takes snapshots on its checkpoint policy and truncates its log, and a replica
//! actor killed and started again on the same disk comes back as the same member with every
//! acknowledged write.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use phalanx_actors::chain::driver::{
    ClientActor, ClientInput, ClientSettings, DriverSettings, DurableReplica, GroupActor,
    GroupInput, LocalNetwork, ReplicaActor, ReplicaInput,
};
use phalanx_actors::chain::{
    ChainConfig, ClientId, ConfigNode, GroupSettings, KvCommand, KvMap, KvOutput, KvQuery, Peer,
    ReplicaId, ReplicaSettings,
};
use phalanx_actors::checkpoint::{CheckpointPolicy, FsyncPolicy, LogConfig, MemStorage, Storage};
use phalanx_runtime::{ActorRef, spawn_actor};

const ASK: Duration = Duration::from_secs(10);
const REPLICA: ReplicaId = ReplicaId(100);

fn durable(storage: &Arc<MemStorage>, dir: &Path) -> DurableReplica {
    let mut durable = DurableReplica::new(
        REPLICA,
        ReplicaSettings::new(vec![1]),
        1,
        storage.clone(),
        dir.to_path_buf(),
    );
    // Small segments, so that truncation (by whole segments) shows.
    durable.log = LogConfig::new(FsyncPolicy::Always).with_segment_bytes(256);
    durable.checkpoints = CheckpointPolicy {
        max_log_entries: 16,
        retain_entries: 4,
        ..CheckpointPolicy::default()
    };
    durable
}

fn start_replica(net: &LocalNetwork, durable: &DurableReplica) -> ActorRef<ReplicaInput> {
    let actor = spawn_actor(ReplicaActor::<KvMap, _>::durable(
        durable,
        Arc::new(net.clone()),
        DriverSettings::default(),
    ));
    let sink = actor.clone();
    net.attach(Peer::Replica(REPLICA), move |inbound| {
        let _ = sink.try_tell(ReplicaInput::Packet(inbound));
    });
    actor
}

async fn put(client: &ActorRef<ClientInput<KvMap>>, key: &str) -> bool {
    let command = KvCommand::Put {
        key: key.into(),
        value: key.as_bytes().to_vec(),
    };
    matches!(
        client.ask(|r| ClientInput::Write(command, r), ASK).await,
        Ok(Ok(KvOutput::Done))
    )
}

async fn get(client: &ActorRef<ClientInput<KvMap>>, key: &str) -> Option<Vec<u8>> {
    for _ in 0..100 {
        let query = KvQuery { key: key.into() };
        if let Ok(Ok(value)) = client.ask(|r| ClientInput::Read(query, r), ASK).await {
            return value;
        }
        phalanx_runtime::sleep(Duration::from_millis(20)).await;
    }
    panic!("{key} could not be read");
}

fn files(storage: &MemStorage, dir: PathBuf) -> Vec<String> {
    storage.list(&dir).unwrap_or_default()
}

#[test]
fn a_durable_replica_snapshots_truncates_and_returns_with_its_writes() {
    phalanx_runtime::block_on(async {
        let net = LocalNetwork::new();
        let mut tick = DriverSettings::default();
        tick.tick = Duration::from_millis(10);
        let mut settings = GroupSettings::new(vec![1], ChainConfig::initial(&[]));
        settings.target_length = 1;
        let node = ConfigNode::new(1, settings).expect("valid group settings");
        let group = spawn_actor(GroupActor::new(node, Arc::new(net.clone()), tick));
        let sink = group.clone();
        net.attach(Peer::Config(1), move |inbound| {
            let _ = sink.try_tell(GroupInput::Packet(inbound));
        });
        let storage = Arc::new(MemStorage::new());
        let dir = PathBuf::from("/data/chain/0");
        let replica = start_replica(&net, &durable(&storage, &dir));
        let client = spawn_actor(ClientActor::<KvMap, _>::new(
            ClientSettings::new(ClientId(7), 0, vec![1]),
            Arc::new(net.clone()),
        ));
        let sink = client.clone();
        net.attach(Peer::Client(ClientId(7)), move |inbound| {
            let _ = sink.try_tell(ClientInput::Packet(inbound));
        });

        let keys: Vec<String> = (0..60).map(|i| format!("k{i}")).collect();
        for key in &keys {
            assert!(put(&client, key).await, "{key} not acknowledged");
        }
        // Snapshots are written off the replica's thread: wait (bounded) for one.
        let mut snapshots = Vec::new();
        for _ in 0..200 {
            snapshots = files(&storage, dir.join("snapshots"));
            if snapshots.iter().any(|f| f.ends_with(".snap")) {
                break;
            }
            phalanx_runtime::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            snapshots.iter().any(|f| f.ends_with(".snap")),
            "no snapshot written: {snapshots:?}"
        );
        assert!(
            files(&storage, dir.join("log"))
                .iter()
                .all(|f| !f.starts_with("00000000000000000001")),
            "the log was not truncated below the snapshot"
        );

        // The replica actor dies (its memory is gone) and starts again on the same disk.
        replica.kill();
        let _ = replica.wait().await;
        net.detach(Peer::Replica(REPLICA));
        let replica = start_replica(&net, &durable(&storage, &dir));
        for key in &keys {
            assert_eq!(
                get(&client, key).await,
                Some(key.as_bytes().to_vec()),
                "{key}"
            );
        }
        assert!(put(&client, "after").await);
        let status = replica
            .ask(ReplicaInput::Status, ASK)
            .await
            .expect("the replica answers");
        assert_eq!(status.incarnation, 1, "the same member came back");
        assert!(status.committed > keys.len() as u64);
    });
}
