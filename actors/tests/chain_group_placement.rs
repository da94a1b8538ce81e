//! Rendezvous placement in the configuration group (`GroupSettings::placement`), driven by hand
//! over a perfect in-memory network: a shard's chain is made of the live replicas that
//! `place_chain` picks, also when the better replicas show up only after the chain is full;
//! without placement a full chain stays as it is.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use phalanx_actors::chain::{
    ChainConfig, ConfigNode, ControlMessage, GroupAction, GroupSettings, Peer, ReplicaId,
    place_chain,
};

struct Group {
    nodes: Vec<ConfigNode>,
    wire: VecDeque<GroupAction>,
    now: Instant,
}

impl Group {
    fn new(placement: Option<u64>) -> Self {
        let nodes = (1..=3)
            .map(|id| {
                let mut settings = GroupSettings::new(vec![1, 2, 3], ChainConfig::initial(&[]));
                settings.target_length = 3;
                settings.placement = placement;
                ConfigNode::new(id, settings).unwrap()
            })
            .collect();
        Self {
            nodes,
            wire: VecDeque::new(),
            now: Instant::now(),
        }
    }

    /// Ticks every 5 ms for `ticks` ticks; `alive` replicas send lease requests each tick,
    /// each reporting itself caught up in the current epoch.
    fn run(&mut self, ticks: usize, alive: &[ReplicaId]) {
        for _ in 0..ticks {
            self.now += Duration::from_millis(5);
            for node in &mut self.nodes {
                node.handle_tick(self.now);
                for &replica in alive {
                    let request = ControlMessage::LeaseRequest {
                        replica,
                        incarnation: 0,
                        epoch: node.committed().epoch,
                        round: 1,
                        synced_epoch: node.committed().epoch,
                    };
                    node.handle_control(Peer::Replica(replica), request, self.now);
                }
                while let Some(action) = node.poll_action() {
                    self.wire.push_back(action);
                }
            }
            while let Some(action) = self.wire.pop_front() {
                if let GroupAction::Raft { to, message } = action {
                    let node = &mut self.nodes[to as usize - 1];
                    node.handle_raft(message, self.now);
                    while let Some(action) = node.poll_action() {
                        self.wire.push_back(action);
                    }
                }
            }
        }
    }

    /// The committed chain's members, as a set, after checking every node agrees.
    fn members(&self) -> BTreeSet<ReplicaId> {
        let configs: Vec<&ChainConfig> = self.nodes.iter().map(ConfigNode::committed).collect();
        assert!(configs.windows(2).all(|w| w[0] == w[1]), "{configs:?}");
        configs[0].members.iter().map(|m| m.id).collect()
    }
}

fn set(ids: &[ReplicaId]) -> BTreeSet<ReplicaId> {
    ids.iter().copied().collect()
}

#[test]
fn each_shard_forms_its_rendezvous_chain() {
    let replicas: Vec<ReplicaId> = (100..106).map(ReplicaId).collect();
    let mut placements = BTreeSet::new();
    for shard in 0..4 {
        let mut group = Group::new(Some(shard));
        group.run(300, &replicas);
        let wanted = place_chain(shard, &replicas, 3);
        assert_eq!(group.members(), set(&wanted), "shard {shard}");
        placements.insert(set(&wanted));
    }
    // The four shards do not all sit on the same three replicas (fixed ids: deterministic).
    assert!(placements.len() > 1, "{placements:?}");
}

#[test]
fn a_full_chain_moves_towards_better_placed_replicas_that_arrive_late() {
    let shard = 7;
    let replicas: Vec<ReplicaId> = (100..106).map(ReplicaId).collect();
    let wanted = place_chain(shard, &replicas, 3);
    // Start with only the three replicas placement likes least.
    let mut worst: Vec<ReplicaId> = place_chain(shard, &replicas, replicas.len());
    let worst: Vec<ReplicaId> = worst.split_off(3);
    let mut group = Group::new(Some(shard));
    group.run(300, &worst);
    assert_eq!(group.members(), set(&worst));
    // The better ones arrive: the chain swaps members one at a time until it is the placement.
    group.run(1_000, &replicas);
    assert_eq!(group.members(), set(&wanted));
    // Then it stays there.
    let epoch = group.nodes[0].committed().epoch;
    group.run(300, &replicas);
    assert_eq!(group.nodes[0].committed().epoch, epoch);
}

#[test]
fn without_placement_a_full_chain_keeps_its_members() {
    let shard = 7;
    let replicas: Vec<ReplicaId> = (100..106).map(ReplicaId).collect();
    let mut worst: Vec<ReplicaId> = place_chain(shard, &replicas, replicas.len());
    let worst: Vec<ReplicaId> = worst.split_off(3);
    let mut group = Group::new(None);
    group.run(300, &worst);
    assert_eq!(group.members(), set(&worst));
    group.run(1_000, &replicas);
    assert_eq!(group.members(), set(&worst));
}
