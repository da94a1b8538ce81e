//! Changes of the configuration group's own membership (`ConfigNode::change_group`), driven by
//! hand over a perfect in-memory network: joint consensus, the chain configuration that names
//! the new voters, leaving the joint configuration (also when the leader itself is removed),
//! and lease grants that follow the voters. The chain simulation (`chain_sim`) runs the same
//! changes under faults and checks linearizability.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use phalanx_actors::chain::{
    ChainConfig, ConfigNode, ControlMessage, GroupAction, GroupChangeError, GroupJournal,
    GroupRecovered, GroupSeat, GroupSettings, Peer, ReplicaId,
};
use raft::prelude::{Entry as RaftEntry, HardState};

const CHAIN: [ReplicaId; 2] = [ReplicaId(100), ReplicaId(101)];

struct Group {
    nodes: BTreeMap<u64, ConfigNode>,
    /// Nodes that neither receive nor tick (crashed or shut down).
    down: Vec<u64>,
    wire: VecDeque<GroupAction>,
    /// The chain's replicas that still ask for leases.
    alive: Vec<ReplicaId>,
    /// Lease replies seen: (group node, granted, epoch).
    replies: Vec<(u64, bool, u64)>,
    now: Instant,
}

impl Group {
    /// Bootstrap group 1, 2, 3 plus nodes `extra` started empty with the same bootstrap
    /// settings (candidates to be added).
    fn new(extra: &[u64]) -> Self {
        let nodes = (1..=3)
            .chain(extra.iter().copied())
            .map(|id| {
                let settings = GroupSettings::new(vec![1, 2, 3], ChainConfig::initial(&CHAIN));
                (id, ConfigNode::new(id, settings).unwrap())
            })
            .collect();
        Self {
            nodes,
            down: Vec::new(),
            alive: CHAIN.to_vec(),
            wire: VecDeque::new(),
            replies: Vec::new(),
            now: Instant::now(),
        }
    }

    /// Ticks every 5 ms; the live replicas ask every node for a lease each tick.
    fn run(&mut self, ticks: usize) {
        for _ in 0..ticks {
            self.now += Duration::from_millis(5);
            let ids: Vec<u64> = self.nodes.keys().copied().collect();
            for id in ids {
                if self.down.contains(&id) {
                    continue;
                }
                let node = self.nodes.get_mut(&id).unwrap();
                node.handle_tick(self.now);
                for replica in self.alive.clone() {
                    let epoch = node.committed().epoch;
                    let request = ControlMessage::LeaseRequest {
                        replica,
                        incarnation: 0,
                        epoch,
                        round: 1,
                        synced_epoch: epoch,
                    };
                    node.handle_control(Peer::Replica(replica), request, self.now);
                }
                self.collect(id);
            }
            while let Some(action) = self.wire.pop_front() {
                if let GroupAction::Raft { to, message } = action
                    && !self.down.contains(&to)
                    && let Some(node) = self.nodes.get_mut(&to)
                {
                    node.handle_raft(message, self.now);
                    self.collect(to);
                }
            }
        }
    }

    fn collect(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).unwrap();
        while let Some(action) = node.poll_action() {
            match action {
                GroupAction::Send {
                    message:
                        ControlMessage::LeaseReply {
                            granted, config, ..
                        },
                    ..
                } => self.replies.push((id, granted, config.epoch)),
                GroupAction::Raft { .. } => self.wire.push_back(action),
                _ => {}
            }
        }
    }

    fn leader(&self) -> u64 {
        let leaders: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(id, node)| !self.down.contains(id) && node.is_leader())
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(leaders.len(), 1, "{leaders:?}");
        leaders[0]
    }

    fn node(&mut self, id: u64) -> &mut ConfigNode {
        self.nodes.get_mut(&id).unwrap()
    }
}

fn seats(ids: &[u64]) -> Vec<GroupSeat> {
    ids.iter()
        .map(|&id| GroupSeat {
            id,
            address: format!("node-{id}"),
        })
        .collect()
}

fn ids(config: &ChainConfig) -> Vec<u64> {
    config.group.iter().map(|seat| seat.id).collect()
}

#[test]
fn a_node_is_replaced_through_joint_consensus_and_the_epoch_names_the_new_voters() {
    let mut group = Group::new(&[4]);
    group.run(100);
    let leader = group.leader();
    let before = group.node(leader).committed().clone();
    assert!(before.group.is_empty(), "the bootstrap group is implicit");
    // Replace a follower: 1, 2, 3 -> the two others and 4.
    let removed = (1..=3).find(|id| *id != leader).unwrap();
    let mut wanted: Vec<u64> = (1..=4).filter(|id| *id != removed).collect();
    wanted.sort_unstable();
    group.node(leader).change_group(seats(&wanted)).unwrap();
    assert_eq!(
        group.node(leader).change_group(seats(&[1, 2, 3])),
        Err(GroupChangeError::InProgress)
    );
    group.run(200);
    for id in &wanted {
        let node = group.node(*id);
        assert_eq!(node.voters(), (wanted.clone(), Vec::new()), "node {id}");
        assert_eq!(node.change_target(), None);
        let committed = node.committed();
        assert_eq!(
            committed.epoch,
            before.epoch + 1,
            "one epoch names the voters"
        );
        assert_eq!(
            committed.members, before.members,
            "the chain keeps its members"
        );
        assert_eq!(ids(committed), wanted);
        assert_eq!(committed.group[0].address, format!("node-{}", wanted[0]));
    }
    // The removed node grants no leases for the new epoch; the voters do.
    group.replies.clear();
    group.run(5);
    let epoch = before.epoch + 1;
    assert!(
        group
            .replies
            .iter()
            .all(|&(id, granted, e)| !granted || (id != removed && e == epoch))
    );
    for id in &wanted {
        assert!(group.replies.contains(&(*id, true, epoch)), "node {id}");
    }
    // Without the removed node the group still commits: a member dies and is removed.
    group.down.push(removed);
    group.alive.pop();
    group.run(400);
    let leader = group.leader();
    assert_ne!(leader, removed);
    let committed = group.node(leader).committed().clone();
    assert_eq!(committed.epoch, epoch + 1);
    assert_eq!(committed.members.len(), 1);
    assert_eq!(ids(&committed), wanted, "later epochs keep the voters");
}

#[test]
fn a_removed_leader_hands_over_before_the_group_leaves_the_joint_configuration() {
    let mut group = Group::new(&[4, 5]);
    group.run(100);
    let leader = group.leader();
    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    // The leader and one other are replaced by 4 and 5.
    let mut wanted = vec![others[0], 4, 5];
    wanted.sort_unstable();
    group.node(leader).change_group(seats(&wanted)).unwrap();
    group.run(400);
    let new_leader = group.leader();
    assert!(wanted.contains(&new_leader), "leader {new_leader}");
    for id in &wanted {
        assert_eq!(group.node(*id).voters(), (wanted.clone(), Vec::new()));
        assert_eq!(ids(group.node(*id).committed()), wanted);
    }
    // The old voters that left may go: the new group alone commits reconfigurations.
    group.down.extend([leader, others[1]]);
    group.alive.pop();
    let epoch = group.node(new_leader).committed().epoch;
    group.run(400);
    assert_eq!(group.leader(), new_leader);
    assert_eq!(group.node(new_leader).committed().epoch, epoch + 1);
}

#[test]
fn only_the_leader_starts_a_change_and_the_voters_must_be_valid() {
    let mut group = Group::new(&[]);
    group.run(100);
    let leader = group.leader();
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    assert_eq!(
        group.node(follower).change_group(seats(&[1, 2])),
        Err(GroupChangeError::NotLeader {
            leader: Some(leader)
        })
    );
    let node = group.node(leader);
    assert!(matches!(
        node.change_group(Vec::new()),
        Err(GroupChangeError::Invalid(_))
    ));
    assert!(matches!(
        node.change_group(seats(&[1, 1, 2])),
        Err(GroupChangeError::Invalid(_))
    ));
    assert!(matches!(
        node.change_group(seats(&[0, 1, 2])),
        Err(GroupChangeError::Invalid(_))
    ));
    // The same voters: nothing to do.
    node.change_group(seats(&[1, 2, 3])).unwrap();
    assert_eq!(node.voters(), (vec![1, 2, 3], Vec::new()));
}

#[test]
fn a_restarted_node_replays_the_change_from_its_log() {
    let mut group = Group::new(&[4]);
    group.run(100);
    let leader = group.leader();
    let removed = (1..=3).find(|id| *id != leader).unwrap();
    let mut wanted: Vec<u64> = (1..=4).filter(|id| *id != removed).collect();
    wanted.sort_unstable();
    group.node(leader).change_group(seats(&wanted)).unwrap();
    group.run(200);
    // Every node that took part restarts from its storage: voters and configuration return.
    for id in wanted.clone() {
        let node = group.nodes.remove(&id).unwrap();
        let committed = node.committed().clone();
        let restarted = node.restart().unwrap();
        assert_eq!(
            restarted.voters(),
            (wanted.clone(), Vec::new()),
            "node {id}"
        );
        assert_eq!(restarted.committed(), &committed);
        group.nodes.insert(id, restarted);
    }
    group.down.push(removed);
    group.run(300);
    let leader = group.leader();
    assert!(wanted.contains(&leader));
}

/// A journal that only notes whether something was written and not yet synced.
struct Unsynced(Arc<Mutex<bool>>);

impl GroupJournal for Unsynced {
    fn append(&mut self, _: &[RaftEntry]) -> std::io::Result<()> {
        *self.0.lock().unwrap() = true;
        Ok(())
    }
    fn set_hard_state(&mut self, _: &HardState) -> std::io::Result<()> {
        *self.0.lock().unwrap() = true;
        Ok(())
    }
    fn sync(&mut self) -> std::io::Result<()> {
        *self.0.lock().unwrap() = false;
        Ok(())
    }
}

#[test]
fn nothing_a_node_wrote_is_left_unsynced_when_it_hands_out_actions() {
    // Raft state left unsynced while its effects go out could be forgotten in a crash: a
    // vote given twice, or a commit index behind conf changes already applied (a restarted
    // node would replay to removed voters). Every call must end with everything synced.
    let mut group = Group::new(&[4]);
    let flags: BTreeMap<u64, Arc<Mutex<bool>>> = group
        .nodes
        .keys()
        .map(|&id| (id, Arc::new(Mutex::new(false))))
        .collect();
    for (&id, flag) in &flags {
        let settings = GroupSettings::new(vec![1, 2, 3], ChainConfig::initial(&CHAIN));
        let journal = Box::new(Unsynced(flag.clone()));
        let node = ConfigNode::with_journal(id, settings, GroupRecovered::default(), journal);
        group.nodes.insert(id, node.unwrap());
    }
    let unsynced = |flags: &BTreeMap<u64, Arc<Mutex<bool>>>| {
        flags
            .iter()
            .filter(|(_, flag)| *flag.lock().unwrap())
            .map(|(id, _)| *id)
            .collect::<Vec<_>>()
    };
    for _ in 0..100 {
        group.run(1);
        assert_eq!(unsynced(&flags), Vec::<u64>::new());
    }
    let leader = group.leader();
    let removed = (1..=3).find(|id| *id != leader).unwrap();
    let wanted: Vec<u64> = (1..=4).filter(|id| *id != removed).collect();
    group.node(leader).change_group(seats(&wanted)).unwrap();
    for _ in 0..200 {
        group.run(1);
        assert_eq!(unsynced(&flags), Vec::<u64>::new());
    }
    assert_eq!(ids(group.node(wanted[0]).committed()), wanted);
}
