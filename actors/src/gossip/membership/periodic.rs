//! The periodic work: probes (direct and indirect), relayed probes for others, gossip rounds
//! and push-pull syncs.

use std::time::Instant;

use super::{Address, CORRECTION_BUDGET, MAX_RELAYS, Membership, Probe, Relay};
use crate::gossip::NodeId;
use crate::gossip::action::Timer;
use crate::gossip::member::Member;
use crate::gossip::message::{Body, MemberState, PushPullKind};

impl<A: Address> Membership<A> {
    pub(super) fn probe_tick(&mut self, now: Instant) {
        if let Some(probe) = self.probe.take() {
            self.finish_probe(probe, now);
        }
        let interval = self.health.scale(self.config.probe_interval);
        self.schedule(Timer::Probe { epoch: self.epoch }, interval);
        self.correction_budget = CORRECTION_BUDGET;
        let target = self.next_probe_target();
        if !self.synced || target.is_none() {
            // Not joined yet (no full state received: the request or its answer was lost),
            // or alone again: keep knocking on the seeds' doors.
            for seed in self.seeds.clone() {
                self.send_push_pull(seed, PushPullKind::Request);
            }
        }
        let Some(target) = target else {
            return;
        };
        let Some(addr) = self.members.get(&target).map(|member| member.addr.clone()) else {
            return;
        };
        let seq = self.take_seq();
        self.probe = Some(Probe {
            seq,
            target,
            acked: false,
            nacks_expected: 0,
            nacks: 0,
        });
        self.send(addr, Some(target), Body::Ping { seq, target });
        let timeout = self.health.scale(self.config.probe_timeout);
        self.schedule(Timer::ProbeTimeout { seq }, timeout);
    }

    fn finish_probe(&mut self, probe: Probe, now: Instant) {
        if probe.acked {
            if probe.nacks_expected > 0 {
                self.probe_stats.indirect_acked += 1;
            } else {
                self.probe_stats.acked += 1;
            }
            self.health.apply(-1);
            return;
        }
        self.probe_stats.timed_out += 1;
        // Lifeguard: missing nacks mean our own network may be at fault.
        let delta = if probe.nacks_expected > 0 {
            probe.nacks_expected.saturating_sub(probe.nacks)
        } else {
            1
        };
        self.health.apply(i64::from(delta));
        if let Some(member) = self.members.get(&probe.target).filter(|m| m.is_live()) {
            let incarnation = member.incarnation;
            self.suspect(probe.target, incarnation, self.me, now);
        }
    }

    pub(super) fn indirect_probe(&mut self, seq: u32) {
        let Some(probe) = self.probe.as_ref().filter(|p| p.seq == seq && !p.acked) else {
            return;
        };
        let target = probe.target;
        let Some(target_addr) = self.members.get(&target).map(|m| m.addr.clone()) else {
            return;
        };
        let mut helpers: Vec<(NodeId, A)> = self
            .members
            .values()
            .filter(|m| m.state == MemberState::Alive && m.node != target)
            .map(|m| (m.node, m.addr.clone()))
            .collect();
        self.rng.shuffle(&mut helpers);
        helpers.truncate(self.config.indirect_probes);
        if let Some(probe) = self.probe.as_mut() {
            probe.nacks_expected = u32::try_from(helpers.len()).unwrap_or(u32::MAX);
        }
        for (helper, addr) in helpers {
            let body = Body::PingReq {
                seq,
                target,
                target_addr: target_addr.clone(),
            };
            self.send(addr, Some(helper), body);
        }
    }

    pub(super) fn relay_probe(&mut self, requester: A, seq: u32, target: NodeId, target_addr: A) {
        if self.relays.len() >= MAX_RELAYS {
            // A flood of requests, honest or not, must not grow this table without bound;
            // the requester falls back on its other helpers.
            return;
        }
        let local = self.take_seq();
        self.relays.insert(local, Relay { requester, seq });
        self.send(target_addr, Some(target), Body::Ping { seq: local, target });
        // Answer with a nack a little before the requester gives up on its probe.
        let timeout = self.config.probe_timeout.mul_f64(0.8);
        self.schedule(Timer::RelayTimeout { seq: local }, timeout);
    }

    pub(super) fn gossip_tick(&mut self, now: Instant) {
        let Some(interval) = self.config.gossip_interval else {
            return;
        };
        self.schedule(Timer::Gossip { epoch: self.epoch }, interval);
        // Two rounds' worth of transmissions make an urgent entry known to a few members at
        // once; the retransmit limit's remaining transmissions ride the probes.
        let urgent_transmits = u32::try_from(self.config.gossip_fanout.saturating_mul(2))
            .unwrap_or(u32::MAX)
            .max(1);
        if !self.broadcasts.has_urgent(urgent_transmits) {
            // Relayed news rides the probes; a round of its own for it would make the load
            // per member grow with the cluster (see `broadcast`).
            return;
        }
        let recently_dead = self.config.gossip_to_the_dead;
        let mut targets: Vec<(NodeId, A)> = self
            .members
            .values()
            .filter(|m| {
                m.is_live()
                    || (m.state == MemberState::Dead
                        && now.saturating_duration_since(m.since) < recently_dead)
            })
            .map(|m| (m.node, m.addr.clone()))
            .collect();
        self.rng.shuffle(&mut targets);
        targets.truncate(self.config.gossip_fanout);
        for (node, addr) in targets {
            self.send(addr, Some(node), Body::Gossip);
        }
    }

    pub(super) fn push_pull_tick(&mut self, now: Instant) {
        self.schedule(
            Timer::PushPull { epoch: self.epoch },
            self.config.push_pull_interval,
        );
        self.reclaim_dead(now);
        self.synced_with_strangers.clear();
        let live: Vec<A> = self.addrs_where(|m| m.state == MemberState::Alive);
        if let Some(to) = self.pick(&live) {
            self.send_push_pull(to, PushPullKind::Request);
        }
        // Reconnect: a member we think dead may be alive behind a healed partition. If so,
        // it learns that it was declared dead, refutes, and its new life spreads.
        let dead: Vec<A> = self.addrs_where(|m| m.state == MemberState::Dead);
        if let Some(to) = self.pick(&dead) {
            self.send_push_pull(to, PushPullKind::Request);
        }
    }

    /// Forgets members dead or left for longer than `dead_reclaim`, so that churn does not
    /// grow the member table forever. A forgotten member that is in fact alive comes back
    /// through its own gossip or push-pull like a new one.
    fn reclaim_dead(&mut self, now: Instant) {
        let keep_for = self.config.dead_reclaim;
        let before = self.members.len();
        self.members
            .retain(|_, m| m.is_live() || now.saturating_duration_since(m.since) < keep_for);
        if self.members.len() != before {
            self.probe_order
                .retain(|node| self.members.contains_key(node));
            self.probe_index = self.probe_index.min(self.probe_order.len());
        }
    }

    fn next_probe_target(&mut self) -> Option<NodeId> {
        for _ in 0..=self.probe_order.len() {
            if self.probe_index >= self.probe_order.len() {
                self.probe_order
                    .retain(|node| self.members.contains_key(node));
                self.rng.shuffle(&mut self.probe_order);
                self.probe_index = 0;
            }
            let node = *self.probe_order.get(self.probe_index)?;
            self.probe_index += 1;
            if self.members.get(&node).is_some_and(Member::is_live) {
                return Some(node);
            }
        }
        None
    }
}
