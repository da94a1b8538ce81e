//! The configuration group on raft-rs, driven by hand over a perfect in-memory network: it
//! elects a leader, commits a reconfiguration that its failure detector proposes, and keeps
//! the committed configuration across a node's crash and restart.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use phalanx_actors::chain::{
    ChainConfig, ConfigNode, ControlMessage, GroupAction, GroupSettings, Peer, ReplicaId,
};
use phalanx_actors::checkpoint::{GroupStore, MemStorage};

struct Group {
    nodes: Vec<Option<ConfigNode>>,
    wire: VecDeque<(u64, GroupAction)>,
    now: Instant,
}

impl Group {
    fn new(initial: &ChainConfig) -> Self {
        let nodes = (1..=3)
            .map(|id| {
                Some(
                    ConfigNode::new(id, GroupSettings::new(vec![1, 2, 3], initial.clone()))
                        .unwrap(),
                )
            })
            .collect();
        Self {
            nodes,
            wire: VecDeque::new(),
            now: Instant::now(),
        }
    }

    /// A group whose nodes keep their raft state in journals on the given disks (rebuilt
    /// from what the disks hold).
    fn journaled(initial: &ChainConfig, disks: &[Arc<MemStorage>]) -> Self {
        let nodes = disks
            .iter()
            .zip(1..)
            .map(|(disk, id)| {
                let (store, recovered, _) =
                    GroupStore::open(disk.clone(), Path::new("/group")).unwrap();
                let settings = GroupSettings::new(vec![1, 2, 3], initial.clone());
                Some(ConfigNode::with_journal(id, settings, recovered, Box::new(store)).unwrap())
            })
            .collect();
        Self {
            nodes,
            wire: VecDeque::new(),
            now: Instant::now(),
        }
    }

    /// Ticks every 5 ms for `ticks` ticks; `alive` replicas send lease requests each tick.
    fn run(&mut self, ticks: usize, alive: &[ReplicaId]) {
        for _ in 0..ticks {
            self.now += Duration::from_millis(5);
            for (i, node) in self.nodes.iter_mut().enumerate() {
                let Some(node) = node else { continue };
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
                    self.wire.push_back((i as u64 + 1, action));
                }
            }
            while let Some((_, action)) = self.wire.pop_front() {
                if let GroupAction::Raft { to, message } = action {
                    let Some(Some(node)) = self.nodes.get_mut(to as usize - 1) else {
                        continue;
                    };
                    node.handle_raft(message, self.now);
                    while let Some(action) = node.poll_action() {
                        self.wire.push_back((to, action));
                    }
                }
            }
        }
    }

    fn committed(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .flatten()
            .map(|node| node.committed().epoch)
            .collect()
    }
}

#[test]
fn silent_member_is_removed_through_consensus_and_survives_restart() {
    let ids = [ReplicaId(10), ReplicaId(11), ReplicaId(12)];
    let mut group = Group::new(&ChainConfig::initial(&ids));
    group.run(60, &ids);
    assert_eq!(
        group
            .nodes
            .iter()
            .flatten()
            .filter(|n| n.is_leader())
            .count(),
        1
    );
    assert_eq!(group.committed(), vec![1, 1, 1]);
    // Replica 12 falls silent: the leader proposes its removal, raft commits it everywhere.
    group.run(200, &ids[..2]);
    assert_eq!(group.committed(), vec![2, 2, 2]);
    let expected = ChainConfig::initial(&ids).without(ReplicaId(12));
    for node in group.nodes.iter().flatten() {
        assert_eq!(node.committed(), &expected);
    }
    // Node 3 crashes and restarts from its storage: it still knows epoch 2.
    let node = group.nodes[2].take().unwrap();
    group.run(20, &ids[..2]);
    group.nodes[2] = Some(node.restart().unwrap());
    assert_eq!(group.nodes[2].as_ref().unwrap().committed(), &expected);
    group.run(100, &ids[..2]);
    assert_eq!(group.committed(), vec![2, 2, 2]);
}

#[test]
fn a_journaled_group_keeps_its_configuration_through_a_whole_group_crash() {
    let ids = [ReplicaId(10), ReplicaId(11), ReplicaId(12)];
    let initial = ChainConfig::initial(&ids);
    let disks: Vec<Arc<MemStorage>> = (0..3).map(|_| Arc::new(MemStorage::new())).collect();
    let mut group = Group::journaled(&initial, &disks);
    group.run(60, &ids);
    group.run(200, &ids[..2]);
    assert_eq!(group.committed(), vec![2, 2, 2]);
    // Every node loses its memory and whatever its disk had not synced, at once.
    drop(group);
    for disk in &disks {
        disk.crash(&mut |len| len / 2);
    }
    let mut group = Group::journaled(&initial, &disks);
    let expected = initial.without(ReplicaId(12));
    for node in group.nodes.iter().flatten() {
        assert_eq!(node.committed(), &expected);
    }
    // The restarted group elects a leader and goes on committing: replica 11 falls silent.
    group.run(60, &ids[..2]);
    group.run(200, &ids[..1]);
    assert_eq!(group.committed(), vec![3, 3, 3]);
    assert!(group.nodes.iter().flatten().all(|n| n.failure().is_none()));
}
