//! The fault injector: crashes and restarts of replicas and group nodes, partitions (pairs,
//! one- and two-way, and a replica cut off from every server but not from clients), and with
//! spare group nodes changes of the group's membership.

use std::time::Duration;

use phalanx_transports::SimInstant;

use super::{ChainSim, SimRng, bootstrap_group, open_group, open_store, replica_settings};
use crate::chain::config::{GroupSeat, ReplicaId};
use crate::chain::message::Peer;
use crate::chain::replica::Replica;

/// A scheduled end of a fault.
#[derive(Debug, Clone, Copy)]
pub(super) enum Repair {
    RestartReplica(ReplicaId),
    RestartGroup(u64),
    Heal(Peer, Peer),
}

impl ChainSim {
    pub(super) fn nemesis(&mut self, now: SimInstant) {
        let due: Vec<Repair> = self
            .repairs
            .iter()
            .filter(|(at, _)| *at <= now)
            .map(|(_, r)| *r)
            .collect();
        self.repairs.retain(|(at, _)| *at > now);
        for repair in due {
            self.repair(repair, now);
        }
        if now < self.next_fault {
            return;
        }
        self.next_fault = now + Duration::from_millis(100 + self.rng.below(400));
        let later = |rng: &mut SimRng| now + Duration::from_millis(150 + rng.below(700));
        let kinds =
            7 + u64::from(self.settings.durable) + u64::from(self.settings.group_spares > 0);
        match self.rng.below(kinds) {
            7 if self.settings.durable => {
                // Durable replicas only: the whole cluster goes down at once (a power cut)
                // and comes back.
                self.faults += 1;
                let ids: Vec<ReplicaId> = self.replicas.keys().copied().collect();
                for id in ids {
                    self.crash_replica(id);
                    let at = later(&mut self.rng);
                    self.repairs.push((at, Repair::RestartReplica(id)));
                }
                let ids: Vec<u64> = self.group.keys().copied().collect();
                for id in ids {
                    if self.crash_group(id) {
                        let at = later(&mut self.rng);
                        self.repairs.push((at, Repair::RestartGroup(id)));
                    }
                }
            }
            0 => {
                let ids: Vec<ReplicaId> = self.replicas.keys().copied().collect();
                let id = ids[self.rng.below(ids.len() as u64) as usize];
                if self.may_crash(id) {
                    self.faults += 1;
                    self.crash_replica(id);
                    let at = later(&mut self.rng);
                    self.repairs.push((at, Repair::RestartReplica(id)));
                }
            }
            7 | 8 => self.change_group(),
            1 => {
                let ids: Vec<u64> = self.group.keys().copied().collect();
                let id = ids[self.rng.below(ids.len() as u64) as usize];
                // Keep a majority of every voter set up (at most one of 3 down, two of 5).
                if self.may_crash_group(id) && self.crash_group(id) {
                    self.faults += 1;
                    let at = later(&mut self.rng);
                    self.repairs.push((at, Repair::RestartGroup(id)));
                }
            }
            kind @ (5 | 6) => {
                // Cut one replica off from every server (replicas and group), but not from
                // clients: the classic stale-read setting. Kind 6 cuts only what it hears.
                let ids: Vec<ReplicaId> = self.replicas.keys().copied().collect();
                let victim = Peer::Replica(ids[self.rng.below(ids.len() as u64) as usize]);
                let servers: Vec<Peer> = ids
                    .iter()
                    .map(|&id| Peer::Replica(id))
                    .chain(self.group.keys().map(|&id| Peer::Config(id)))
                    .filter(|&peer| peer != victim)
                    .collect();
                self.faults += 1;
                let at = later(&mut self.rng);
                for server in servers {
                    if kind == 5 {
                        self.net.partition(victim, server);
                    } else {
                        self.net.partition_one_way(server, victim);
                    }
                    self.repairs.push((at, Repair::Heal(victim, server)));
                }
            }
            kind => {
                let a = self.random_peer();
                let b = self.random_peer();
                if a != b {
                    self.faults += 1;
                    if kind == 2 {
                        self.net.partition_one_way(a, b);
                    } else {
                        self.net.partition(a, b);
                    }
                    let at = later(&mut self.rng);
                    self.repairs.push((at, Repair::Heal(a, b)));
                }
            }
        }
    }

    fn random_peer(&mut self) -> Peer {
        let replicas = self.replicas.len() as u64;
        let i = self.rng.below(replicas + self.group.len() as u64);
        if i < replicas {
            Peer::Replica(ReplicaId(100 + i))
        } else {
            Peer::Config(1 + i - replicas)
        }
    }

    /// Asks the group's leader to replace a random voter by a random non-voter (the leader
    /// refuses while an earlier change is under way).
    fn change_group(&mut self) {
        let Some((id, (incoming, outgoing))) = self
            .group
            .values()
            .filter(|g| !g.crashed)
            .filter_map(|g| g.node.as_ref())
            .find(|node| node.is_leader())
            .map(|leader| (leader.id(), leader.voters()))
        else {
            return;
        };
        let outside: Vec<u64> = self
            .group
            .keys()
            .copied()
            .filter(|id| !incoming.contains(id))
            .collect();
        if !outgoing.is_empty() || incoming.is_empty() || outside.is_empty() {
            return;
        }
        let victim = incoming[self.rng.below(incoming.len() as u64) as usize];
        let newcomer = outside[self.rng.below(outside.len() as u64) as usize];
        let voters = incoming
            .iter()
            .map(|&id| if id == victim { newcomer } else { id })
            .map(GroupSeat::id)
            .collect();
        let started = self
            .group
            .get_mut(&id)
            .and_then(|g| g.node.as_mut())
            .is_some_and(|leader| leader.change_group(voters).is_ok());
        if started {
            self.faults += 1;
            self.group_changes += 1;
            let now = self.clock.now();
            self.drain_group(id, now);
        }
    }

    /// Whether group node `id` may crash: every voter set any node knows of (incoming, and
    /// outgoing during a change) keeps a majority of its members up.
    fn may_crash_group(&self, id: u64) -> bool {
        let down = |set: &[u64]| {
            set.iter()
                .filter(|v| **v == id || self.group.get(v).is_none_or(|g| g.crashed))
                .count()
        };
        self.group
            .values()
            .filter_map(|g| g.node.as_ref())
            .flat_map(|node| {
                let (incoming, outgoing) = node.voters();
                [incoming, outgoing]
            })
            .filter(|set| !set.is_empty())
            .all(|set| down(&set) * 2 < set.len())
    }

    /// A replica may lose its state only if another member of the latest committed
    /// configuration is up and caught up in it: the nemesis never destroys the last copy
    /// (no replication scheme survives that without durable storage).
    fn may_crash(&self, id: ReplicaId) -> bool {
        if self.settings.durable {
            // A durable replica keeps its state: any of them may crash.
            return true;
        }
        let Some(latest) = self
            .group
            .values()
            .filter_map(|g| g.node.as_ref())
            .map(|n| n.committed())
            .max_by_key(|c| c.epoch)
        else {
            return false;
        };
        latest.members.iter().any(|member| {
            member.id != id
                && self
                    .replicas
                    .get(&member.id)
                    .and_then(|s| s.replica.as_ref())
                    .is_some_and(|r| {
                        r.incarnation() == member.incarnation
                            && r.is_synced()
                            && r.config().is_some_and(|c| c.epoch == latest.epoch)
                    })
        })
    }

    /// Crashes group node `id` unless it is down already: it drops off the network and, with a
    /// disk, loses its memory and what it had not synced (the last write possibly torn).
    /// Returns whether it crashed.
    fn crash_group(&mut self, id: u64) -> bool {
        let torn = self.rng.below(u64::MAX);
        let Some(group_node) = self.group.get_mut(&id).filter(|g| !g.crashed) else {
            return false;
        };
        group_node.crashed = true;
        if let Some(disk) = &group_node.disk {
            group_node.node = None;
            disk.crash(&mut |len| (torn % (len as u64 + 1)) as usize);
        }
        self.net.crash(Peer::Config(id));
        true
    }

    /// Crashes a replica: its memory is lost, and (durable runs) its disk loses what was not
    /// synced, the last write possibly torn.
    fn crash_replica(&mut self, id: ReplicaId) {
        self.net.crash(Peer::Replica(id));
        let torn = self.rng.below(u64::MAX);
        if let Some(sim) = self.replicas.get_mut(&id) {
            sim.replica = None;
            if let Some((storage, store)) = sim.disk.as_mut() {
                *store = None;
                storage.crash(&mut |len| (torn % (len as u64 + 1)) as usize);
            }
        }
    }

    pub(super) fn repair(&mut self, repair: Repair, _now: SimInstant) {
        match repair {
            Repair::RestartReplica(id) => {
                let settings = replica_settings(&self.settings, bootstrap_group(&self.settings));
                if let Some(sim) = self.replicas.get_mut(&id)
                    && sim.replica.is_none()
                {
                    sim.replica = Some(match sim.disk.as_mut() {
                        Some((storage, store)) => {
                            // Back from the disk, with the incarnation it had.
                            let (opened_store, opened) = open_store(storage);
                            let incarnation = opened_store.meta().incarnation;
                            *store = Some(opened_store);
                            Replica::recover(id, incarnation, settings, opened.recovered)
                                .expect("a stored snapshot restores")
                        }
                        None => {
                            sim.incarnation += 1;
                            Replica::new(id, sim.incarnation, settings)
                        }
                    });
                    self.net.restart(&Peer::Replica(id));
                }
            }
            Repair::RestartGroup(id) => {
                if let Some(group_node) = self.group.get_mut(&id)
                    && group_node.crashed
                {
                    group_node.crashed = false;
                    group_node.node = match &group_node.disk {
                        Some(disk) => Some(open_group(id, &group_node.settings, disk)),
                        None => group_node.node.take().and_then(|n| n.restart().ok()),
                    };
                    self.net.restart(&Peer::Config(id));
                }
            }
            Repair::Heal(a, b) => self.net.heal(&a, &b),
        }
    }
}
