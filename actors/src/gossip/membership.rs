//! The SWIM + Lifeguard membership state machine.

mod direct;
mod periodic;
mod update;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use self::direct::{MessageError, MessageStats};
use super::action::{Action, Notification, Timer};
use super::broadcast::{Broadcasts, Urgency, retransmit_limit};
use super::config::Config;
use super::member::Member;
use super::message::{
    Body, MAX_EVENT_NAME, MAX_EVENT_PAYLOAD, MAX_EVENTS, MemberState, Message, PushPullKind,
    Update, UserEvent, encoded_len,
};
use super::suspicion::{Health, Suspicion};
use super::{MemberId, NodeId};

/// The bound every address type must meet.
pub trait Address: Clone + Ord + std::fmt::Debug + Serialize + DeserializeOwned {}

impl<T: Clone + Ord + std::fmt::Debug + Serialize + DeserializeOwned> Address for T {}

/// One node's view of cluster membership: a sans-IO SWIM failure detector with Lifeguard.
///
/// Inputs are [`handle_datagram`](Self::handle_datagram), [`handle_timer`](Self::handle_timer),
/// [`join`](Self::join), [`leave`](Self::leave) and [`broadcast_event`](Self::broadcast_event),
/// each given the current time; outputs are drained with [`poll_action`](Self::poll_action).
/// It owns no socket, reads no clock and spawns nothing.
///
/// # Examples
///
/// ```
/// use std::time::Instant;
///
/// use phalanx_actors::gossip::{Action, Config, Membership, NodeId};
///
/// let now = Instant::now();
/// let mut node = Membership::new(NodeId(1), "10.0.0.1:7946".to_owned(), 0, Config::default(), 7);
/// node.join(Some("10.0.0.2:7946".to_owned()), now);
/// let mut sent_join = false;
/// while let Some(action) = node.poll_action() {
///     if let Action::SendStream { to, .. } = action {
///         assert_eq!(to, "10.0.0.2:7946");
///         sent_join = true;
///     }
/// }
/// assert!(sent_join);
/// ```
#[derive(Debug)]
pub struct Membership<A> {
    config: Config,
    me: NodeId,
    addr: A,
    incarnation: u64,
    /// Whether this node declared itself left; a left node stays silent.
    left: bool,
    /// Whether timers are running; [`Membership::start`] sets it.
    started: bool,
    /// Bumped by a leave so that periodic timers of the earlier run stop.
    epoch: u64,
    members: BTreeMap<NodeId, Member<A>>,
    /// Round-robin probe order, reshuffled each round (SWIM's time-bounded completeness).
    probe_order: Vec<NodeId>,
    probe_index: usize,
    probe: Option<Probe>,
    next_seq: u32,
    /// Indirect probes run for other nodes, by local sequence number.
    relays: BTreeMap<u32, Relay<A>>,
    suspicions: BTreeMap<NodeId, Suspicion>,
    broadcasts: Broadcasts<A>,
    seeds: Vec<A>,
    /// Whether a push-pull answer has been merged: until then the join is retried.
    synced: bool,
    /// Senders unknown to us that we asked for a push-pull this interval (bounded, so that
    /// a flood of strangers cannot make us answer each).
    synced_with_strangers: BTreeSet<NodeId>,
    seen_events: BTreeSet<(NodeId, u64)>,
    /// Insertion order of `seen_events`, to forget the oldest past the cap.
    seen_order: VecDeque<(NodeId, u64)>,
    /// The latest events, sent along with every push-pull so that a member that missed one
    /// while it was piggybacked still gets it (anti-entropy for events).
    pub(super) recent_events: VecDeque<UserEvent>,
    next_event_seq: u64,
    health: Health,
    probe_stats: ProbeStats,
    /// Datagrams of corrections (fresher records for a sender of stale news) this node may
    /// still send before the next protocol period (see `handle_datagram`).
    correction_budget: u32,
    rng: fastrand::Rng,
    actions: VecDeque<Action<A>>,
    /// Actor messages waiting for a datagram, by destination.
    outbox: direct::Outbox,
    /// Per-sender windows of received actor message numbers, to drop duplicates.
    inbox: direct::Inbox,
}

/// What the failure detector did, counted since this node started: probe outcomes and
/// suspicions (for operators' metrics; no protocol decision reads them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProbeStats {
    /// Probes answered by their target directly, within the probe timeout.
    pub acked: u64,
    /// Probes answered only after indirect probes were sent (through helpers, or late).
    pub indirect_acked: u64,
    /// Probes that got no answer at all: the target was suspected.
    pub timed_out: u64,
    /// Members this node started to suspect (its own probes, or news from others).
    pub suspicions: u64,
    /// Suspicions of this node that it refuted with a new incarnation.
    pub refutations: u64,
}

/// The probe of the current protocol period.
#[derive(Debug)]
struct Probe {
    seq: u32,
    target: NodeId,
    acked: bool,
    nacks_expected: u32,
    nacks: u32,
}

/// An indirect probe run on behalf of `requester`.
#[derive(Debug)]
struct Relay<A> {
    requester: A,
    seq: u32,
}

/// Protocol periods between joining and the one-off settling push-pull.
const SETTLE_PERIODS: u32 = 5;

/// Datagrams of their own for corrections, per protocol period.
const CORRECTION_BUDGET: u32 = 1;

/// The most unknown senders asked for a push-pull per push-pull interval.
const MAX_STRANGER_SYNCS: usize = 16;

/// The most indirect probes run at once for other nodes.
const MAX_RELAYS: usize = 1024;

/// How many `(origin, seq)` pairs of user events are remembered for deduplication.
const SEEN_EVENTS_CAP: usize = 8192;

/// A life's first event number is its starting incarnation shifted by this much: with
/// incarnations that grow across restarts (the node uses its start time in milliseconds),
/// one life can raise 2^20 events per millisecond between its start and the next life's
/// before numbers could repeat.
const EVENT_SEQ_SHIFT: u32 = 20;

impl<A: Address> Membership<A> {
    /// A node `me` listening at `addr`, starting at `incarnation`, with its random choices
    /// drawn from `seed`.
    ///
    /// A restarted process should start at an incarnation above any it used before if it
    /// can (for example, a persisted counter or the wall clock in seconds); if it cannot,
    /// it still rejoins: on hearing about an older life it bumps its incarnation past it.
    pub fn new(me: NodeId, addr: A, incarnation: u64, config: Config, seed: u64) -> Self {
        let health = Health::new(config.max_health_multiplier);
        Self {
            config,
            me,
            addr,
            incarnation,
            left: false,
            started: false,
            epoch: 0,
            members: BTreeMap::new(),
            probe_order: Vec::new(),
            probe_index: 0,
            probe: None,
            next_seq: 0,
            relays: BTreeMap::new(),
            suspicions: BTreeMap::new(),
            broadcasts: Broadcasts::new(),
            seeds: Vec::new(),
            synced: false,
            synced_with_strangers: BTreeSet::new(),
            seen_events: BTreeSet::new(),
            seen_order: VecDeque::new(),
            recent_events: VecDeque::new(),
            // Event numbers start from the incarnation this life began with, so that a node
            // that restarts with the same id (and a later incarnation) does not reuse the
            // numbers of its earlier life, which peers still remember as seen.
            next_event_seq: incarnation.wrapping_shl(EVENT_SEQ_SHIFT),
            health,
            probe_stats: ProbeStats::default(),
            correction_budget: CORRECTION_BUDGET,
            rng: fastrand::Rng::with_seed(seed),
            actions: VecDeque::new(),
            outbox: direct::Outbox::new(incarnation.wrapping_shl(EVENT_SEQ_SHIFT)),
            inbox: direct::Inbox::default(),
        }
    }

    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.me
    }

    /// This node's current incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Lifeguard's local health score: 0 is healthy; timeouts are stretched by score + 1.
    pub fn health_score(&self) -> u32 {
        self.health.score()
    }

    /// Probe outcomes and suspicions so far.
    pub fn probe_stats(&self) -> ProbeStats {
        self.probe_stats
    }

    /// Whether this node has left.
    pub fn has_left(&self) -> bool {
        self.left
    }

    /// The members this node believes alive or suspected (itself excluded), with addresses.
    pub fn live_members(&self) -> impl Iterator<Item = (MemberId, &A)> + '_ {
        self.members
            .values()
            .filter(|member| member.is_live())
            .map(|member| (member.id(), &member.addr))
    }

    /// The state this node holds for `node`, with its incarnation, if it knows the node.
    pub fn member_state(&self, node: NodeId) -> Option<(MemberState, u64)> {
        self.members
            .get(&node)
            .map(|member| (member.state, member.incarnation))
    }

    /// How many updates and events wait to be piggybacked.
    pub fn pending_broadcasts(&self) -> usize {
        self.broadcasts.len()
    }

    /// Starts the periodic probe and push-pull timers; idempotent. [`join`](Self::join)
    /// calls it.
    pub fn start(&mut self, _now: Instant) {
        if self.started || self.left {
            return;
        }
        self.started = true;
        // A random phase, so that nodes started together do not probe in lockstep.
        let phase = self.random_fraction(self.config.probe_interval);
        self.schedule(Timer::Probe { epoch: self.epoch }, phase);
        let phase = self.random_fraction(self.config.push_pull_interval);
        self.schedule(Timer::PushPull { epoch: self.epoch }, phase);
        if let Some(interval) = self.config.gossip_interval {
            let phase = self.random_fraction(interval);
            self.schedule(Timer::Gossip { epoch: self.epoch }, phase);
        }
    }

    /// Joins the cluster through `seeds`: a push-pull state sync with each. Seeds are
    /// remembered and contacted again whenever this node knows no live member.
    pub fn join(&mut self, seeds: impl IntoIterator<Item = A>, now: Instant) {
        self.start(now);
        for seed in seeds {
            if seed != self.addr && !self.seeds.contains(&seed) {
                self.seeds.push(seed);
            }
        }
        for seed in self.seeds.clone() {
            self.send_push_pull(seed, PushPullKind::Request);
        }
    }

    /// Leaves the cluster gracefully: tells a few members directly and stops all activity.
    /// Others report this node `Down` with [`DownReason::Left`](super::DownReason::Left).
    pub fn leave(&mut self, _now: Instant) {
        if self.left {
            return;
        }
        let update = self.self_update(MemberState::Left);
        let mut targets: Vec<A> = self
            .members
            .values()
            .filter(|member| member.is_live())
            .map(|member| member.addr.clone())
            .collect();
        self.rng.shuffle(&mut targets);
        targets.truncate(self.config.leave_fanout);
        for to in targets {
            let message = Message {
                sender: self.me,
                body: Body::Gossip,
                updates: vec![update.clone()],
                events: Vec::new(),
                messages: Vec::new(),
            };
            self.actions.push_back(Action::Send { to, message });
        }
        self.left = true;
        self.epoch += 1;
        self.probe = None;
        self.relays.clear();
    }

    /// Disseminates a user event to every member (delivered there once as
    /// [`Notification::Event`]).
    ///
    /// # Errors
    ///
    /// [`EventError`] if the name or payload is over its limit or this node has left; no
    /// state changes then.
    pub fn broadcast_event(&mut self, name: &str, payload: &[u8]) -> Result<(), EventError> {
        if name.len() > MAX_EVENT_NAME {
            return Err(EventError::NameTooLong { len: name.len() });
        }
        if payload.len() > MAX_EVENT_PAYLOAD {
            return Err(EventError::PayloadTooLarge { len: payload.len() });
        }
        if self.left {
            return Err(EventError::Left);
        }
        let event = UserEvent {
            origin: self.me,
            seq: self.next_event_seq,
            name: name.to_owned(),
            payload: payload.to_vec(),
        };
        self.next_event_seq = self.next_event_seq.wrapping_add(1);
        self.remember_event(&event);
        self.broadcasts.push_event(event, Urgency::Urgent);
        Ok(())
    }

    /// The next thing for the driver to do, if any.
    ///
    /// Actor messages queued with [`send_message`](Self::send_message) are placed when the
    /// queue is drained: first on datagrams already waiting for their member, then in
    /// datagrams of their own.
    pub fn poll_action(&mut self) -> Option<Action<A>> {
        if !self.outbox.is_empty() {
            self.place_messages();
        }
        self.actions.pop_front()
    }

    /// Handles a message that arrived from `from` (a datagram, or a push-pull from a
    /// stream).
    pub fn handle_datagram(&mut self, from: A, message: Message<A>, now: Instant) {
        if self.left || message.sender == self.me {
            return;
        }
        let sender = message.sender;
        let is_push_pull = matches!(message.body, Body::PushPull { .. });
        if !is_push_pull
            && !self.members.contains_key(&sender)
            && self.synced_with_strangers.len() < MAX_STRANGER_SYNCS
            && self.synced_with_strangers.insert(sender)
        {
            // A member that knows us but that we do not know: we missed its announcement
            // (or it missed ours being answered). A full sync settles both views now rather
            // than at the next periodic push-pull.
            self.send_push_pull(from.clone(), PushPullKind::Request);
        }
        let mut corrections = Vec::new();
        for update in message.updates {
            // Only a stale accusation (suspect, dead, left at an older incarnation) is worth
            // correcting: it can become a false death at its sender. A stale `Alive` is
            // harmless, and the newer record reaches its sender by dissemination.
            if update.state != MemberState::Alive
                && let Some(fresher) = self.fresher_than(&update)
            {
                corrections.push(fresher);
            }
            self.apply_update(update, now, false);
        }
        // The sender spreads a stale accusation (it missed a refutation while it was being
        // disseminated): tell it the fresher records, or it may declare a live member dead.
        // They ride the ack when the message is a ping to us; otherwise a datagram of their
        // own is sent within a budget of one per protocol period, because the amount of
        // stale news a member hears grows with the cluster and the load per member must not.
        // Past the budget the refutation still reaches the sender by dissemination, well
        // within the smallest suspicion timeout.
        let answers_ping = matches!(message.body, Body::Ping { target, .. } if target == self.me);
        if !corrections.is_empty() && !answers_ping && self.correction_budget > 0 {
            self.correction_budget -= 1;
            self.send_with(
                from.clone(),
                Some(sender),
                Body::Gossip,
                std::mem::take(&mut corrections),
            );
        }
        for event in message.events {
            self.apply_event(event);
        }
        if !message.messages.is_empty() {
            self.receive_messages(sender, message.messages);
        }
        match message.body {
            Body::Ping { seq, target } => {
                if target == self.me {
                    self.send_with(from, Some(sender), Body::Ack { seq }, corrections);
                }
            }
            Body::PingReq {
                seq,
                target,
                target_addr,
            } => self.relay_probe(from, seq, target, target_addr),
            Body::Ack { seq } => {
                if let Some(relay) = self.relays.remove(&seq) {
                    self.send(relay.requester, None, Body::Ack { seq: relay.seq });
                } else if let Some(probe) = self.probe.as_mut().filter(|probe| probe.seq == seq) {
                    probe.acked = true;
                }
            }
            Body::Nack { seq } => {
                if let Some(probe) = self.probe.as_mut().filter(|probe| probe.seq == seq) {
                    probe.nacks += 1;
                }
            }
            Body::PushPull { kind, members } => {
                for update in members {
                    self.apply_update(update, now, true);
                }
                if !self.synced {
                    self.synced = true;
                    let settle = self.config.probe_interval.saturating_mul(SETTLE_PERIODS);
                    self.schedule(Timer::SettleSync { epoch: self.epoch }, settle);
                }
                if kind == PushPullKind::Request {
                    self.send_push_pull(from, PushPullKind::Response);
                }
            }
            Body::Gossip => {}
        }
    }

    /// Handles a timer the driver was asked to schedule.
    pub fn handle_timer(&mut self, timer: Timer, now: Instant) {
        if self.left {
            return;
        }
        match timer {
            Timer::Probe { epoch } if epoch == self.epoch => self.probe_tick(now),
            Timer::ProbeTimeout { seq } => self.indirect_probe(seq),
            Timer::RelayTimeout { seq } => {
                if let Some(relay) = self.relays.remove(&seq) {
                    self.send(relay.requester, None, Body::Nack { seq: relay.seq });
                }
            }
            Timer::Suspicion { node, incarnation } => {
                self.suspicion_expired(node, incarnation, now)
            }
            Timer::Gossip { epoch } if epoch == self.epoch => self.gossip_tick(now),
            Timer::PushPull { epoch } if epoch == self.epoch => self.push_pull_tick(now),
            Timer::SettleSync { epoch } if epoch == self.epoch => {
                let live: Vec<A> = self.addrs_where(|m| m.state == MemberState::Alive);
                if let Some(to) = self.pick(&live) {
                    self.send_push_pull(to, PushPullKind::Request);
                }
            }
            Timer::Probe { .. }
            | Timer::Gossip { .. }
            | Timer::PushPull { .. }
            | Timer::SettleSync { .. } => {}
        }
    }

    /// Sends `body` to `to` with as much piggybacked data as fits. When the destination is
    /// suspected or dead in our view, that news goes first (Lifeguard's buddy system: a
    /// suspected node hears of it from its prober and can refute at once).
    fn send(&mut self, to: A, to_node: Option<NodeId>, body: Body<A>) {
        self.send_with(to, to_node, body, Vec::new());
    }

    /// Like [`send`](Self::send), with `first` ahead of all piggybacked updates.
    fn send_with(&mut self, to: A, to_node: Option<NodeId>, body: Body<A>, first: Vec<Update<A>>) {
        let mut updates = first;
        let mut budget = self
            .config
            .max_datagram
            .saturating_sub(encoded_len(&body) + encoded_len(&updates) + 16);
        let targeted = to_node
            .and_then(|node| self.members.get(&node))
            .filter(|m| matches!(m.state, MemberState::Suspect | MemberState::Dead));
        if let Some(member) = targeted {
            let update = member.to_update(self.me);
            budget = budget.saturating_sub(encoded_len(&update));
            updates.push(update);
        }
        let limit = retransmit_limit(self.config.retransmit_mult, self.cluster_size());
        let skip = targeted.map(|m| m.node);
        let (more, events) = self.broadcasts.select(budget, limit, skip);
        updates.extend(more);
        let message = Message {
            sender: self.me,
            body,
            updates,
            events,
            messages: Vec::new(),
        };
        self.actions.push_back(Action::Send { to, message });
    }

    fn send_push_pull(&mut self, to: A, kind: PushPullKind) {
        let mut members = vec![self.self_update(MemberState::Alive)];
        members.extend(self.members.values().map(|m| m.to_update(self.me)));
        let message = Message {
            sender: self.me,
            body: Body::PushPull { kind, members },
            updates: Vec::new(),
            events: self.recent_events.iter().cloned().collect(),
            messages: Vec::new(),
        };
        self.actions.push_back(Action::SendStream { to, message });
    }

    /// Our record about `update`'s member, if it has a strictly higher incarnation.
    fn fresher_than(&self, update: &Update<A>) -> Option<Update<A>> {
        if update.node == self.me {
            return (update.incarnation < self.incarnation && update.state != MemberState::Alive)
                .then(|| self.self_update(MemberState::Alive));
        }
        self.members
            .get(&update.node)
            .filter(|member| member.incarnation > update.incarnation)
            .map(|member| member.to_update(self.me))
    }

    fn apply_event(&mut self, event: UserEvent) {
        if self.seen_events.contains(&(event.origin, event.seq)) || event.origin == self.me {
            return;
        }
        self.remember_event(&event);
        self.broadcasts.push_event(event.clone(), Urgency::Relayed);
        self.notify(Notification::Event(event));
    }

    fn remember_event(&mut self, event: &UserEvent) {
        let key = (event.origin, event.seq);
        self.seen_events.insert(key);
        self.seen_order.push_back(key);
        if self.seen_order.len() > SEEN_EVENTS_CAP
            && let Some(oldest) = self.seen_order.pop_front()
        {
            self.seen_events.remove(&oldest);
        }
        self.recent_events.push_back(event.clone());
        if self.recent_events.len() > MAX_EVENTS {
            self.recent_events.pop_front();
        }
    }

    fn self_update(&self, state: MemberState) -> Update<A> {
        Update {
            node: self.me,
            addr: self.addr.clone(),
            incarnation: self.incarnation,
            state,
            origin: self.me,
        }
    }

    /// Cluster size as this node sees it, itself included.
    fn cluster_size(&self) -> usize {
        1 + self.members.values().filter(|m| m.is_live()).count()
    }

    fn addrs_where(&self, keep: impl Fn(&Member<A>) -> bool) -> Vec<A> {
        self.members
            .values()
            .filter(|m| keep(m))
            .map(|m| m.addr.clone())
            .collect()
    }

    fn pick(&mut self, from: &[A]) -> Option<A> {
        if from.is_empty() {
            return None;
        }
        from.get(self.rng.usize(..from.len())).cloned()
    }

    fn take_seq(&mut self) -> u32 {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_seq
    }

    fn random_fraction(&mut self, of: Duration) -> Duration {
        of.mul_f64(self.rng.f64())
    }

    fn schedule(&mut self, timer: Timer, after: Duration) {
        self.actions
            .push_back(Action::ScheduleTimer { timer, after });
    }

    fn notify(&mut self, notification: Notification<A>) {
        self.actions.push_back(Action::Notify(notification));
    }
}

/// A user event was not broadcast; no state changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The name is longer than [`MAX_EVENT_NAME`] bytes.
    #[error("event name of {len} bytes exceeds the limit of {MAX_EVENT_NAME}")]
    NameTooLong {
        /// The name's length.
        len: usize,
    },
    /// The payload is larger than [`MAX_EVENT_PAYLOAD`] bytes.
    #[error("event payload of {len} bytes exceeds the limit of {MAX_EVENT_PAYLOAD}")]
    PayloadTooLarge {
        /// The payload's length.
        len: usize,
    },
    /// This node has left the cluster.
    #[error("this node has left the cluster")]
    Left,
}
