//! The state-change rules: how an update about a member changes what this node believes.
//!
//! Precedence follows SWIM: a higher incarnation wins; at the same incarnation,
//! `Left > Dead > Suspect > Alive`. Only the member itself raises its incarnation, which is
//! how it refutes a suspicion or comes back after being declared dead.

use std::time::{Duration, Instant};

use super::{Address, Membership};
use crate::gossip::NodeId;
use crate::gossip::action::{DownReason, Notification, Timer};
use crate::gossip::broadcast::Urgency;
use crate::gossip::member::Member;
use crate::gossip::message::{MemberState, Update};
use crate::gossip::suspicion::Suspicion;

impl<A: Address> Membership<A> {
    /// Applies one update. A push-pull's `Dead` only raises a suspicion: a stale full state
    /// must not kill a member that can still refute.
    pub(super) fn apply_update(&mut self, update: Update<A>, now: Instant, push_pull: bool) {
        if update.node == self.me {
            self.update_about_me(&update);
            return;
        }
        match update.state {
            MemberState::Alive => self.alive(update, now),
            MemberState::Suspect => {
                self.suspect(update.node, update.incarnation, update.origin, now);
            }
            MemberState::Dead if push_pull => {
                self.suspect(update.node, update.incarnation, update.origin, now);
            }
            MemberState::Dead => {
                self.down(update.node, update.incarnation, DownReason::Failed, now)
            }
            MemberState::Left => self.down(update.node, update.incarnation, DownReason::Left, now),
        }
    }

    fn update_about_me(&mut self, update: &Update<A>) {
        let contradicts = match update.state {
            // Someone knows a newer life of this node: we restarted and forgot it.
            MemberState::Alive => update.incarnation > self.incarnation,
            MemberState::Suspect | MemberState::Dead | MemberState::Left => {
                update.incarnation >= self.incarnation
            }
        };
        if contradicts {
            self.incarnation = self.incarnation.max(update.incarnation) + 1;
            let was_dead = matches!(update.state, MemberState::Dead | MemberState::Left);
            if update.state != MemberState::Alive {
                // Lifeguard: being suspected hints that our own processing is slow.
                self.health.apply(1);
                self.probe_stats.refutations += 1;
            }
            self.broadcasts
                .push_update(self.self_update(MemberState::Alive), Urgency::Urgent);
            self.notify(Notification::Refuted {
                incarnation: self.incarnation,
                was_dead,
            });
        }
    }

    fn alive(&mut self, update: Update<A>, now: Instant) {
        let node = update.node;
        // A join or a new life changes who is in the cluster; a refutation heard from others
        // or a higher incarnation of a live member only rides the datagrams sent anyway.
        let mut urgency = Urgency::Relayed;
        match self.members.get_mut(&node) {
            None => {
                let member = Member {
                    node,
                    addr: update.addr,
                    incarnation: update.incarnation,
                    state: MemberState::Alive,
                    up_incarnation: update.incarnation,
                    since: now,
                };
                let notification = Notification::Up {
                    member: member.id(),
                    addr: member.addr.clone(),
                };
                self.members.insert(node, member);
                // Insert at a random place so that a new member is probed within one round.
                let at = self.rng.usize(..=self.probe_order.len());
                self.probe_order.insert(at, node);
                urgency = Urgency::Urgent;
                self.notify(notification);
            }
            Some(member) => {
                if update.incarnation <= member.incarnation {
                    return;
                }
                let was = member.state;
                member.incarnation = update.incarnation;
                member.addr = update.addr;
                member.state = MemberState::Alive;
                let notification = match was {
                    MemberState::Dead | MemberState::Left => {
                        member.up_incarnation = update.incarnation;
                        member.since = now;
                        urgency = Urgency::Urgent;
                        Some(Notification::Up {
                            member: member.id(),
                            addr: member.addr.clone(),
                        })
                    }
                    MemberState::Suspect => {
                        member.since = now;
                        Some(Notification::Alive {
                            member: member.id(),
                        })
                    }
                    MemberState::Alive => None,
                };
                self.suspicions.remove(&node);
                if let Some(notification) = notification {
                    self.notify(notification);
                }
            }
        }
        if let Some(member) = self.members.get(&node) {
            let update = member.to_update(self.me);
            self.broadcasts.push_update(update, urgency);
        }
    }

    /// Suspects `node` at `incarnation` on the word of `origin`, or counts `origin` as one
    /// more independent confirmation of an existing suspicion.
    pub(super) fn suspect(&mut self, node: NodeId, incarnation: u64, origin: NodeId, now: Instant) {
        let (min, max, expected) = self.suspicion_bounds();
        let me = self.me;
        let Some(member) = self.members.get_mut(&node) else {
            return;
        };
        if incarnation < member.incarnation || !member.is_live() {
            return;
        }
        if member.state == MemberState::Suspect && incarnation == member.incarnation {
            let Some(suspicion) = self.suspicions.get_mut(&node) else {
                return;
            };
            if !suspicion.confirm(origin) {
                return;
            }
            let remaining = suspicion.deadline().saturating_duration_since(now);
            let mut update = member.to_update(me);
            update.origin = origin;
            self.schedule(Timer::Suspicion { node, incarnation }, remaining);
            // Spread the confirmation so that others shrink their timeouts too.
            self.broadcasts
                .push_update(update, Self::urgency_of(origin, me));
            return;
        }
        member.incarnation = incarnation;
        member.state = MemberState::Suspect;
        member.since = now;
        self.probe_stats.suspicions += 1;
        let id = member.id();
        let mut update = member.to_update(me);
        update.origin = origin;
        let suspicion = Suspicion::new(now, origin, min, max, expected);
        let timeout = suspicion.timeout();
        self.suspicions.insert(node, suspicion);
        self.schedule(Timer::Suspicion { node, incarnation }, timeout);
        self.broadcasts
            .push_update(update, Self::urgency_of(origin, me));
        self.notify(Notification::Suspect { member: id });
    }

    /// Declares `node` dead or left at `incarnation`.
    fn down(&mut self, node: NodeId, incarnation: u64, reason: DownReason, now: Instant) {
        let me = self.me;
        let Some(member) = self.members.get_mut(&node) else {
            return;
        };
        let state = match reason {
            DownReason::Failed => MemberState::Dead,
            DownReason::Left => MemberState::Left,
        };
        if incarnation < member.incarnation {
            return;
        }
        if !member.is_live() {
            // Already down: only a leave may refine a death, silently.
            if state == MemberState::Left && member.state == MemberState::Dead {
                member.state = MemberState::Left;
                member.incarnation = incarnation;
            }
            return;
        }
        member.incarnation = incarnation;
        member.state = state;
        member.since = now;
        let id = member.id();
        let update = member.to_update(me);
        self.suspicions.remove(&node);
        if self
            .probe
            .as_ref()
            .is_some_and(|probe| probe.target == node)
        {
            self.probe = None;
        }
        self.broadcasts.push_update(update, Urgency::Urgent);
        self.notify(Notification::Down { member: id, reason });
    }

    /// A suspicion or confirmation is urgent where it was raised, relayed elsewhere.
    fn urgency_of(origin: NodeId, me: NodeId) -> Urgency {
        if origin == me {
            Urgency::Urgent
        } else {
            Urgency::Relayed
        }
    }

    pub(super) fn suspicion_expired(&mut self, node: NodeId, incarnation: u64, now: Instant) {
        let Some(suspicion) = self.suspicions.get(&node) else {
            return;
        };
        let still_suspect = self
            .members
            .get(&node)
            .is_some_and(|m| m.state == MemberState::Suspect && m.incarnation == incarnation);
        if still_suspect && now >= suspicion.deadline() {
            self.down(node, incarnation, DownReason::Failed, now);
        }
    }

    /// Lifeguard's suspicion timeout bounds and expected confirmations for the current size.
    fn suspicion_bounds(&self) -> (Duration, Duration, u32) {
        let n = self.cluster_size();
        #[allow(clippy::cast_precision_loss)]
        let scale = (n as f64).log10().max(1.0);
        let min = self
            .config
            .probe_interval
            .mul_f64(f64::from(self.config.suspicion_mult) * scale);
        let max = min.saturating_mul(self.config.suspicion_max_timeout_mult);
        let wanted = self.config.suspicion_mult.saturating_sub(2);
        // Confirmations can only come from the other live members.
        let possible = u32::try_from(n.saturating_sub(2)).unwrap_or(u32::MAX);
        let expected = if possible < wanted { 0 } else { wanted };
        (min, max, expected)
    }
}
