//! The configuration group: a few nodes that commit chain configurations through raft-rs,
//! grant read leases, and run the failure detector that *proposes* reconfigurations.
//!
//! Each node wraps a raft-rs [`RawNode`] (sans-IO: `tick`, `step`, `ready`/`advance`) over a
//! [`MemStorage`]. The storage handle survives a simulated crash (it models a durable disk);
//! [`ConfigNode::restart`] rebuilds the raft node and the configuration state from it.
//!
//! In production the raft state also goes to a [`GroupJournal`]
//! ([`ConfigNode::with_journal`]): new log entries and hard-state changes are written and
//! synced before any message raft-rs allows only after persistence is handed out, and a
//! restarted node rebuilds its [`MemStorage`] from the journal. A raft node that forgot its
//! vote or its log could break consensus safety; with the journal it never does.
//!
//! The group's own voters change through the same consensus: [`ConfigNode::change_group`]
//! (raft's joint consensus, with a chain epoch naming the new voters in between, so that read
//! leases stay sound across the change). Conf changes are applied to raft, never written into
//! the storage's conf state: that stays the bootstrap group, and a restarted or newly added
//! node replays the whole log from it (the group's log is never compacted).
//!
//! Raft messages are raft-rs's protobuf types. On a real wire they must be decoded only after
//! the frame was authenticated by the keyring (protobuf 2 carries RUSTSEC-2024-0437, a
//! stack overflow on crafted deeply nested input).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::StateRole;
use raft::prelude::{
    ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState,
    Entry as RaftEntry, EntryType, HardState, Message as RaftMessage, MessageType,
};
use raft::storage::MemStorage;
use raft::{Config as RaftConfig, RawNode, Storage};
use serde::{Deserialize, Serialize};

use super::config::{ChainConfig, GroupSeat, ReplicaId, place_chain, rendezvous_score};
use super::message::{ControlMessage, Peer};

/// Settings of a [`ConfigNode`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupSettings {
    /// The raft ids of the whole group (3 or 5).
    pub group: Vec<u64>,
    /// The chain's first configuration.
    pub initial: ChainConfig,
    /// How many members the chain should have; live non-members are appended at the tail
    /// until it has them.
    pub target_length: usize,
    /// A member not heard from (lease requests) for this long is proposed for removal.
    pub suspect_after: Duration,
    /// A proposal not committed within this time may be replaced by another.
    pub proposal_timeout: Duration,
    /// Raft ticks for an election timeout (in driver ticks).
    pub election_tick: usize,
    /// Raft ticks between leader heartbeats.
    pub heartbeat_tick: usize,
    /// Rendezvous placement for shard `s` ([`place_chain`]), or `None`
    /// (the default): which live replicas the chain should be made of.
    ///
    /// - `None`: a short chain appends the heard candidate with the lowest replica id, and a
    ///   full chain never changes while its members are alive.
    /// - `Some(s)`: a short chain appends the heard candidate with the highest rendezvous
    ///   score for `s`; a full chain whose members have all caught up and were all heard from
    ///   lately, but which lacks one of `place_chain(s, members + live candidates, length)`,
    ///   removes its lowest-scoring member that is not in that placement (the best candidate
    ///   is then appended). Chains of different shards thus spread over the cluster, and
    ///   converge to the placement every node computes, one member at a time.
    pub placement: Option<u64>,
}

impl GroupSettings {
    /// Settings for `group` managing a chain that starts as `initial`.
    pub fn new(group: Vec<u64>, initial: ChainConfig) -> Self {
        let target_length = initial.members.len();
        Self {
            group,
            initial,
            target_length,
            suspect_after: Duration::from_millis(400),
            proposal_timeout: Duration::from_millis(500),
            election_tick: 10,
            heartbeat_tick: 2,
            placement: None,
        }
    }
}

/// What a [`ConfigNode`] asks its driver to do.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum GroupAction {
    /// Deliver a raft message to group node `to`.
    Raft {
        /// The group node.
        to: u64,
        /// The message.
        message: RaftMessage,
    },
    /// Send a control message to a replica or client.
    Send {
        /// The receiver.
        to: Peer,
        /// The message.
        message: ControlMessage,
    },
}

/// A change of the configuration group's membership was not started
/// ([`ConfigNode::change_group`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupChangeError {
    /// Only the raft leader proposes; `leader` is the one this node knows of, if any.
    #[error("not the configuration group's leader (leader: {leader:?})")]
    NotLeader {
        /// The leader's raft id, if known.
        leader: Option<u64>,
    },
    /// A membership change is still under way.
    #[error("a change of the group's membership is still under way")]
    InProgress,
    /// The requested voters are not a valid group.
    #[error("invalid group: {0}")]
    Invalid(&'static str),
    /// raft-rs refused the proposal.
    #[error("raft refused the proposal: {0}")]
    Raft(String),
}

/// A configuration-group operation could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// raft-rs refused the configuration or storage; no node was created.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
}

/// Durable storage of a group node's raft state (see the module docs of `chain::group`).
///
/// Writes may be buffered until [`sync`](Self::sync); the node calls it before it hands out
/// any message that raft requires to follow persistence.
pub trait GroupJournal: Send + 'static {
    /// Appends raft entries; an entry whose index is already stored replaces it and every
    /// entry after it (raft's log truncation).
    ///
    /// # Errors
    ///
    /// An I/O error; the node then stops acting (see [`ConfigNode::failure`]).
    fn append(&mut self, entries: &[RaftEntry]) -> std::io::Result<()>;
    /// Records the hard state (term, vote, commit).
    ///
    /// # Errors
    ///
    /// As [`append`](Self::append).
    fn set_hard_state(&mut self, hard_state: &HardState) -> std::io::Result<()>;
    /// Makes everything written so far durable.
    ///
    /// # Errors
    ///
    /// As [`append`](Self::append).
    fn sync(&mut self) -> std::io::Result<()>;
}

/// What a [`GroupJournal`] held when it was opened: the entries in index order (truncation
/// applied) and the last hard state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupRecovered {
    /// The raft log.
    pub entries: Vec<RaftEntry>,
    /// The last hard state written, if any.
    pub hard_state: Option<HardState>,
}

/// One node of the configuration group.
pub struct ConfigNode {
    id: u64,
    settings: GroupSettings,
    storage: MemStorage,
    raft: RawNode<MemStorage>,
    /// The latest committed configuration.
    committed: ChainConfig,
    /// The highest epoch in any entry ever appended to this node's log, committed or not. A
    /// lease for an older epoch is refused once a newer one may commit.
    highest_logged: u64,
    /// Replicas heard from: `(incarnation, when)`. A new leader credits every member with
    /// "now" here, so that it does not remove members before it could hear from them.
    heard: BTreeMap<ReplicaId, (u64, Instant)>,
    /// Like `heard`, but only ever from real lease requests: whether a replica is alive
    /// enough to become head is never assumed.
    seen: BTreeMap<ReplicaId, (u64, Instant)>,
    /// The last epoch each replica reported having caught up in: `(incarnation, epoch)`.
    synced: BTreeMap<ReplicaId, (u64, u64)>,
    suspects: BTreeMap<ReplicaId, (u64, Instant)>,
    proposed: Option<(u64, Instant)>,
    was_leader: bool,
    actions: VecDeque<GroupAction>,
    journal: Option<Box<dyn GroupJournal>>,
    /// The raft voters as applied: incoming, and outgoing while in a joint configuration.
    conf: ConfState,
    /// The voters (with addresses) a joint configuration is moving to, from the context of
    /// the conf change that entered it; `None` outside a change.
    target: Option<Vec<GroupSeat>>,
    /// The journal failed: the node hands out nothing more (its driver should restart it from
    /// the journal).
    failed: Option<String>,
}

impl std::fmt::Debug for ConfigNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigNode")
            .field("id", &self.id)
            .field("committed", &self.committed)
            .field("highest_logged", &self.highest_logged)
            .field("leader", &self.is_leader())
            .finish_non_exhaustive()
    }
}

/// Raft ids up to this get a fixed, staggered election timeout (deterministic in the
/// simulation); larger ones a randomised one.
const MAX_STAGGERED_ID: usize = 64;

/// A command in the raft log.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum GroupCommand {
    /// Replace the configuration of epoch `expected` with `next` (ignored if another
    /// reconfiguration committed first).
    Reconfigure { expected: u64, next: ChainConfig },
}

impl ConfigNode {
    /// A group node with raft id `id` and fresh storage.
    ///
    /// # Errors
    ///
    /// [`GroupError::Raft`] if raft-rs rejects the settings.
    pub fn new(id: u64, settings: GroupSettings) -> Result<Self, GroupError> {
        let storage =
            MemStorage::new_with_conf_state(ConfState::from((settings.group.clone(), vec![])));
        Self::with_storage(id, settings, storage)
    }

    /// Rebuilds this node after a crash from its durable storage: volatile state (leader
    /// role, failure detector) is lost, the log and the committed configuration are not.
    ///
    /// # Errors
    ///
    /// [`GroupError::Raft`] if raft-rs rejects the storage.
    pub fn restart(self) -> Result<Self, GroupError> {
        Self::with_storage(self.id, self.settings, self.storage)
    }

    /// A group node whose raft state is kept in `journal`, rebuilt from what it held
    /// (`recovered`; empty for a new node).
    ///
    /// # Errors
    ///
    /// [`GroupError::Raft`] if raft-rs rejects the settings or the recovered state.
    pub fn with_journal(
        id: u64,
        settings: GroupSettings,
        recovered: GroupRecovered,
        journal: Box<dyn GroupJournal>,
    ) -> Result<Self, GroupError> {
        let storage =
            MemStorage::new_with_conf_state(ConfState::from((settings.group.clone(), vec![])));
        if !recovered.entries.is_empty() {
            storage.wl().append(&recovered.entries)?;
        }
        if let Some(hard_state) = recovered.hard_state {
            storage.wl().set_hardstate(hard_state);
        }
        let mut node = Self::with_storage(id, settings, storage)?;
        node.journal = Some(journal);
        Ok(node)
    }

    /// Why the node stopped, if its journal failed.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    fn with_storage(
        id: u64,
        settings: GroupSettings,
        storage: MemStorage,
    ) -> Result<Self, GroupError> {
        let (stagger, spread) = match usize::try_from(id) {
            Ok(small) if small <= MAX_STAGGERED_ID => (3 * small, 1),
            _ => (0, settings.election_tick),
        };
        let config = RaftConfig {
            id,
            election_tick: settings.election_tick,
            heartbeat_tick: settings.heartbeat_tick,
            // raft-rs randomises election timeouts with a thread-local RNG, which would make
            // simulations irreproducible. A fixed, per-node staggered timeout is deterministic
            // and still breaks ties: the lowest id times out first. Large ids (group nodes
            // added later, named by a hash) take raft-rs's randomised range instead.
            min_election_tick: settings.election_tick + stagger,
            max_election_tick: settings.election_tick + stagger + spread,
            check_quorum: true,
            pre_vote: true,
            applied: 0,
            ..RaftConfig::default()
        };
        config.validate()?;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raft = RawNode::new(&config, storage.clone(), &logger)?;
        let conf = ConfState::from((settings.group.clone(), vec![]));
        let mut node = Self {
            id,
            committed: settings.initial.clone(),
            highest_logged: settings.initial.epoch,
            settings,
            storage,
            raft,
            heard: BTreeMap::new(),
            seen: BTreeMap::new(),
            synced: BTreeMap::new(),
            suspects: BTreeMap::new(),
            proposed: None,
            was_leader: false,
            actions: VecDeque::new(),
            journal: None,
            conf,
            target: None,
            failed: None,
        };
        let logged: Vec<RaftEntry> = match (node.storage.first_index(), node.storage.last_index()) {
            (Ok(first), Ok(last)) if first <= last => node
                .storage
                .entries(first, last + 1, None, raft::GetEntriesContext::empty(false))
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        for entry in &logged {
            node.note_logged(entry);
        }
        // Re-apply what the log says is committed, so the configuration is known at once.
        node.process_ready();
        Ok(node)
    }

    /// This node's raft id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The latest committed chain configuration.
    pub fn committed(&self) -> &ChainConfig {
        &self.committed
    }

    /// Whether this node is the raft leader.
    pub fn is_leader(&self) -> bool {
        self.raft.raft.state == StateRole::Leader
    }

    /// The raft leader this node knows of, if any.
    pub fn leader(&self) -> Option<u64> {
        match self.raft.raft.leader_id {
            0 => None,
            id => Some(id),
        }
    }

    /// The group's voters as this node applied them, sorted: the incoming set, and while a
    /// membership change is under way (a joint configuration) the outgoing set, else empty.
    pub fn voters(&self) -> (Vec<u64>, Vec<u64>) {
        let mut incoming = self.conf.voters.clone();
        let mut outgoing = self.conf.voters_outgoing.clone();
        incoming.sort_unstable();
        outgoing.sort_unstable();
        (incoming, outgoing)
    }

    /// The voters (with addresses) a membership change under way is moving to.
    pub fn change_target(&self) -> Option<&[GroupSeat]> {
        self.target.as_deref()
    }

    /// Starts changing the group's own membership to `voters`, through its consensus.
    ///
    /// Raft's joint consensus (raft-rs `ConfChangeV2`, explicit transition) carries the change
    /// out in three committed steps, each driven by whichever node leads when it is due, so
    /// that a leader crash in between only delays it:
    ///
    /// 1. enter the joint configuration: from then on every raft commit needs a majority of
    ///    the old voters *and* a majority of the new ones;
    /// 2. commit a chain configuration (next epoch, same members) that names the new voters in
    ///    [`ChainConfig::group`]: leases for it are granted by a majority of the new voters;
    /// 3. leave the joint configuration (a leader that is not a new voter first hands
    ///    leadership to one): commits now need the new voters only.
    ///
    /// Why leases stay safe: a lease for epoch `e` is a majority of `e`'s voters that had not
    /// logged any later epoch when they granted it, and the next epoch commits on a quorum of
    /// the raft configuration in force, which always contains a majority of `e`'s voters
    /// (before step 2 the old voters are half of the joint configuration, after it the new
    /// voters are, and only after step 2 may step 3 drop the old ones). The two sets meet, so
    /// the next epoch commits only after every such lease was granted, and its replicas wait
    /// out the lease (the fence) before they serve.
    ///
    /// A node being added must run with the same bootstrap [`GroupSettings::group`] and an
    /// empty log; it learns the whole log from the leader. A removed node stops voting once
    /// it applies its removal; its driver may then stop it.
    ///
    /// # Errors
    ///
    /// [`GroupChangeError::NotLeader`] on a follower; [`GroupChangeError::InProgress`] while
    /// an earlier change has not finished; [`GroupChangeError::Invalid`] for an empty list, a
    /// raft id 0 or the same id twice; [`GroupChangeError::Raft`] if raft-rs refuses.
    pub fn change_group(&mut self, voters: Vec<GroupSeat>) -> Result<(), GroupChangeError> {
        if !self.is_leader() {
            return Err(GroupChangeError::NotLeader {
                leader: self.leader(),
            });
        }
        let mut ids: Vec<u64> = voters.iter().map(|seat| seat.id).collect();
        ids.sort_unstable();
        ids.dedup();
        if voters.is_empty() {
            return Err(GroupChangeError::Invalid("no voters"));
        }
        if ids.len() != voters.len() {
            return Err(GroupChangeError::Invalid("a raft id appears twice"));
        }
        if ids.first() == Some(&0) {
            return Err(GroupChangeError::Invalid("raft id 0"));
        }
        let (current, outgoing) = self.voters();
        let switched = self.committed.lease_group(&self.settings.group);
        if !outgoing.is_empty() || self.raft.raft.has_pending_conf() || {
            let mut switched = switched;
            switched.sort_unstable();
            switched != current
        } {
            return Err(GroupChangeError::InProgress);
        }
        let mut changes = Vec::new();
        for &id in ids.iter().filter(|id| !current.contains(id)) {
            changes.push(conf_change(id, ConfChangeType::AddNode));
        }
        for &id in current.iter().filter(|id| !ids.contains(id)) {
            changes.push(conf_change(id, ConfChangeType::RemoveNode));
        }
        if changes.is_empty() {
            return Ok(());
        }
        let mut change = ConfChangeV2::default();
        change.set_transition(ConfChangeTransition::Explicit);
        change.set_changes(changes.into());
        let context = postcard::to_allocvec(&voters)
            .map_err(|_| GroupChangeError::Invalid("voters do not encode"))?;
        self.raft
            .propose_conf_change(context, change)
            .map_err(|error| GroupChangeError::Raft(error.to_string()))?;
        self.process_ready();
        Ok(())
    }

    /// On the leader, while a membership change is under way: its next step (see
    /// [`change_group`](Self::change_group)). Returns whether the change is under way (and
    /// ordinary reconfigurations wait).
    fn advance_group_change(&mut self, now: Instant) -> bool {
        let (incoming, outgoing) = self.voters();
        if outgoing.is_empty() {
            if !incoming.contains(&self.id) {
                // A leader the change removed (it won an election during the joint
                // configuration and committed its end): raft-rs lets it lead on, but a group
                // should be led by one of its voters.
                self.hand_over(&incoming);
                return true;
            }
            return false;
        }
        let mut named = self.committed.lease_group(&self.settings.group);
        named.sort_unstable();
        if named != incoming {
            // Step 2: a chain configuration naming the new voters.
            let seats = match &self.target {
                Some(seats) => seats.clone(),
                None => incoming.iter().map(|&id| GroupSeat::id(id)).collect(),
            };
            let mut next = self.committed.clone();
            next.epoch += 1;
            next.group = seats;
            self.propose_config(next, now);
        } else if !self.raft.raft.has_pending_conf() {
            // Step 3: leave the joint configuration, from a leader that stays a voter.
            if incoming.contains(&self.id) {
                let _ = self
                    .raft
                    .propose_conf_change(Vec::new(), ConfChangeV2::default());
            } else {
                self.hand_over(&incoming);
            }
        }
        true
    }

    /// Transfers leadership to the voter of `voters` whose log is the most complete.
    fn hand_over(&mut self, voters: &[u64]) {
        if let Some(successor) = voters
            .iter()
            .copied()
            .max_by_key(|id| self.raft.raft.prs().get(*id).map_or(0, |p| p.matched))
        {
            self.raft.transfer_leader(successor);
        }
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<GroupAction> {
        self.actions.pop_front()
    }

    /// Handles a raft message from another group node. `now` is unused today (raft-rs counts
    /// ticks, not time) and kept for the uniform `handle_*(.., now)` shape.
    pub fn handle_raft(&mut self, mut message: RaftMessage, _now: Instant) {
        // A leader that knew this node before it restarted without its log sends heartbeats
        // committing entries this node no longer has, and raft-rs panics on those. Committing
        // less than the leader says is always safe (the leader then re-sends the log).
        let last = self.raft.raft.raft_log.last_index();
        if message.get_msg_type() == MessageType::MsgHeartbeat && message.commit > last {
            message.commit = last;
        }
        // A message raft-rs rejects (wrong term, unknown peer) changes nothing.
        let _ = self.raft.step(message);
        self.process_ready();
    }

    /// Handles a control message from a replica or client.
    pub fn handle_control(&mut self, from: Peer, message: ControlMessage, now: Instant) {
        match message {
            ControlMessage::LeaseRequest {
                replica,
                incarnation,
                epoch,
                round,
                synced_epoch,
            } => {
                let newest = self
                    .heard
                    .get(&replica)
                    .is_none_or(|&(known, _)| incarnation >= known);
                if newest {
                    self.heard.insert(replica, (incarnation, now));
                    self.seen.insert(replica, (incarnation, now));
                    let synced = match self.synced.get(&replica) {
                        Some(&(known, synced)) if known == incarnation => synced.max(synced_epoch),
                        _ => synced_epoch,
                    };
                    self.synced.insert(replica, (incarnation, synced));
                }
                let member = self
                    .committed
                    .member(replica)
                    .is_some_and(|m| m.incarnation == incarnation);
                let voter = self
                    .committed
                    .lease_group(&self.settings.group)
                    .contains(&self.id);
                let granted = member
                    && voter
                    && epoch == self.committed.epoch
                    && self.highest_logged <= epoch;
                let config = self.committed.clone();
                self.send(
                    from,
                    ControlMessage::LeaseReply {
                        round,
                        granted,
                        config,
                    },
                );
            }
            ControlMessage::Suspect { epoch, suspect } if epoch == self.committed.epoch => {
                self.suspects.insert(suspect, (epoch, now));
            }
            ControlMessage::ConfigQuery => {
                let config = self.committed.clone();
                self.send(from, ControlMessage::ConfigUpdate { config });
            }
            _ => {}
        }
    }

    /// Periodic work: a raft tick, and on the leader the failure detector and proposals.
    pub fn handle_tick(&mut self, now: Instant) {
        self.raft.tick();
        let leader = self.is_leader();
        if leader && !self.was_leader {
            // A new leader gives every member a full suspicion timeout.
            for member in &self.committed.members {
                self.heard.insert(member.id, (member.incarnation, now));
            }
            self.suspects.clear();
        }
        self.was_leader = leader;
        if leader {
            self.maybe_propose(now);
        }
        self.process_ready();
    }

    fn maybe_propose(&mut self, now: Instant) {
        if self.proposed.is_some_and(|(epoch, at)| {
            epoch > self.committed.epoch && now < at + self.settings.proposal_timeout
        }) {
            return;
        }
        if self.advance_group_change(now) {
            return;
        }
        let current = &self.committed;
        // Never remove a member if the chain would then start with one that has not caught up
        // since it was added (it may lack committed writes) or that was not heard from lately
        // (it may have lost its state). The chain then waits (no availability, no loss) until
        // the member returns or the successor catches up.
        let head_caught_up = |without: ReplicaId| {
            current
                .members
                .iter()
                .find(|m| m.id != without)
                .is_some_and(|head| {
                    let recent = self.seen.get(&head.id).is_some_and(|&(incarnation, at)| {
                        incarnation == head.incarnation
                            && now < at + self.settings.suspect_after / 2
                    });
                    recent
                        && self
                            .synced
                            .get(&head.id)
                            .is_some_and(|&(incarnation, synced)| {
                                incarnation == head.incarnation && synced >= head.since
                            })
                })
        };
        let next = if current.members.len() > 1
            && let Some(dead) = current
                .members
                .iter()
                .filter(|m| head_caught_up(m.id))
                .find(|member| {
                    let silent = self.heard.get(&member.id).is_none_or(|&(incarnation, at)| {
                        incarnation != member.incarnation || now >= at + self.settings.suspect_after
                    });
                    let suspected = self
                        .suspects
                        .get(&member.id)
                        .is_some_and(|&(epoch, _)| epoch == current.epoch);
                    silent || suspected
                }) {
            Some(current.without(dead.id))
        } else if current.members.len() < self.settings.target_length
            && let Some((id, incarnation)) = self.tail_candidate(now)
        {
            Some(current.with_tail(id, incarnation))
        } else if self.highest_logged > current.epoch {
            // A proposal that never committed blocks leases for the current epoch; commit a
            // fresh epoch with the same members to unblock them.
            let mut same = current.clone();
            same.epoch += 1;
            Some(same)
        } else {
            // With rendezvous placement: one step towards the placement every node computes.
            self.misplaced(now)
                .map(|misplaced| current.without(misplaced))
        };
        if let Some(next) = next {
            self.propose_config(next, now);
        }
    }

    /// Proposes replacing the committed configuration with `next` (its epoch plus one).
    fn propose_config(&mut self, next: ChainConfig, now: Instant) {
        if self.proposed.is_some_and(|(epoch, at)| {
            epoch > self.committed.epoch && now < at + self.settings.proposal_timeout
        }) {
            return;
        }
        let command = GroupCommand::Reconfigure {
            expected: self.committed.epoch,
            next,
        };
        let Ok(data) = postcard::to_allocvec(&command) else {
            return;
        };
        if self.raft.propose(Vec::new(), data).is_ok() {
            self.proposed = Some((self.committed.epoch + 1, now));
        }
    }

    /// The live non-member to append at the tail: the lowest id, or with
    /// [`GroupSettings::placement`] the best rendezvous score.
    fn tail_candidate(&self, now: Instant) -> Option<(ReplicaId, u64)> {
        let current = &self.committed;
        let mut candidates = self.heard.iter().filter(|(id, (incarnation, at))| {
            now < *at + self.settings.suspect_after / 2
                && current
                    .member(**id)
                    .is_none_or(|m| m.incarnation != *incarnation)
        });
        let (&id, &(incarnation, _)) = match self.settings.placement {
            None => candidates.next()?,
            Some(shard) => candidates.max_by_key(|(id, _)| rendezvous_score(shard, **id))?,
        };
        Some((id, incarnation))
    }

    /// With [`GroupSettings::placement`]: a member of a full chain that a better-scoring live
    /// replica should replace, if every member is caught up and heard from lately (so that
    /// removing one never leaves the chain without a caught-up head or short of redundancy
    /// for longer than the replacement's catch-up).
    fn misplaced(&self, now: Instant) -> Option<ReplicaId> {
        let shard = self.settings.placement?;
        let current = &self.committed;
        if current.members.len() < self.settings.target_length {
            return None;
        }
        let recent = |id: &ReplicaId, incarnation: u64| {
            self.seen.get(id).is_some_and(|&(seen, at)| {
                seen == incarnation && now < at + self.settings.suspect_after / 2
            })
        };
        let settled = current.members.iter().all(|member| {
            recent(&member.id, member.incarnation)
                && self
                    .synced
                    .get(&member.id)
                    .is_some_and(|&(incarnation, synced)| {
                        incarnation == member.incarnation && synced >= member.since
                    })
        });
        if !settled {
            return None;
        }
        let mut live: Vec<ReplicaId> = current.members.iter().map(|m| m.id).collect();
        live.extend(
            self.seen
                .iter()
                .filter(|(id, (incarnation, _))| {
                    current.member(**id).is_none() && recent(id, *incarnation)
                })
                .map(|(id, _)| *id),
        );
        let wanted = place_chain(shard, &live, self.settings.target_length);
        if wanted.iter().all(|id| current.member(*id).is_some()) {
            return None;
        }
        current
            .members
            .iter()
            .map(|m| m.id)
            .filter(|id| !wanted.contains(id))
            .min_by_key(|id| rendezvous_score(shard, *id))
    }

    fn process_ready(&mut self) {
        if self.failed.is_some() || !self.raft.has_ready() {
            return;
        }
        let mut ready = self.raft.ready();
        let messages = ready.take_messages();
        self.send_raft(messages);
        if !ready.snapshot().is_empty() {
            let _ = self.storage.wl().apply_snapshot(ready.snapshot().clone());
        }
        let committed = ready.take_committed_entries();
        self.apply(committed);
        if !ready.entries().is_empty() {
            for entry in ready.entries() {
                self.note_logged(entry);
            }
            let _ = self.storage.wl().append(ready.entries());
        }
        if let Some(hard_state) = ready.hs() {
            self.storage.wl().set_hardstate(hard_state.clone());
        }
        if let Some(journal) = self.journal.as_mut() {
            let written = (|| {
                if !ready.entries().is_empty() {
                    journal.append(ready.entries())?;
                }
                if let Some(hard_state) = ready.hs() {
                    journal.set_hard_state(hard_state)?;
                }
                journal.sync()
            })();
            if let Err(error) = written {
                self.fail(&error);
                return;
            }
        }
        let persisted = ready.take_persisted_messages();
        self.send_raft(persisted);
        let mut light = self.raft.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.storage.wl().mut_hard_state().set_commit(commit);
            if let Some(journal) = self.journal.as_mut() {
                // Synced before the entries it commits are applied: a node must never forget
                // that a conf change it applied is committed (restarted with an older commit
                // index it would replay the log to an older set of voters, and could campaign
                // among voters that were removed).
                let hard_state = self.storage.rl().hard_state().clone();
                if let Err(error) = journal
                    .set_hard_state(&hard_state)
                    .and_then(|()| journal.sync())
                {
                    self.fail(&error);
                    return;
                }
            }
        }
        let messages = light.take_messages();
        self.send_raft(messages);
        let committed = light.take_committed_entries();
        self.apply(committed);
        self.raft.advance_apply();
    }

    /// The journal failed: hand out nothing more, not even what was queued (it may depend on
    /// the unwritten state).
    fn fail(&mut self, error: &std::io::Error) {
        self.failed = Some(format!("configuration-group journal: {error}"));
        self.actions.clear();
    }

    fn note_logged(&mut self, entry: &RaftEntry) {
        if let Some(GroupCommand::Reconfigure { next, .. }) = decode_command(entry) {
            self.highest_logged = self.highest_logged.max(next.epoch);
        }
    }

    /// Applies a committed conf change to raft's voters (never to the storage's conf state,
    /// which stays the bootstrap group: a restarted node replays the whole log from it).
    fn apply_conf_change(&mut self, entry: &RaftEntry) {
        let Ok(change) = ConfChangeV2::parse_from_bytes(&entry.data) else {
            return;
        };
        // raft-rs refuses an invalid change (such as entering a joint configuration twice);
        // nothing changes then.
        let Ok(conf) = self.raft.apply_conf_change(&change) else {
            return;
        };
        self.conf = conf;
        self.target = if self.conf.voters_outgoing.is_empty() {
            None
        } else {
            let mut seats: Vec<GroupSeat> =
                postcard::from_bytes(&entry.context).unwrap_or_default();
            seats.retain(|seat| self.conf.voters.contains(&seat.id));
            for &id in &self.conf.voters {
                if !seats.iter().any(|seat| seat.id == id) {
                    seats.push(GroupSeat::id(id));
                }
            }
            seats.sort();
            Some(seats)
        };
    }

    fn apply(&mut self, entries: Vec<RaftEntry>) {
        for entry in entries {
            if entry.get_entry_type() == EntryType::EntryConfChangeV2 {
                self.apply_conf_change(&entry);
                continue;
            }
            let Some(GroupCommand::Reconfigure { expected, next }) = decode_command(&entry) else {
                continue;
            };
            if expected != self.committed.epoch || next.epoch != expected + 1 {
                continue;
            }
            self.committed = next;
            let config = self.committed.clone();
            // Tell everyone concerned at once; lease replies repeat it.
            let mut targets: Vec<ReplicaId> = self.heard.keys().copied().collect();
            targets.extend(config.members.iter().map(|m| m.id));
            targets.sort();
            targets.dedup();
            for replica in targets {
                self.send(
                    Peer::Replica(replica),
                    ControlMessage::ConfigUpdate {
                        config: config.clone(),
                    },
                );
            }
        }
    }

    fn send_raft(&mut self, messages: Vec<RaftMessage>) {
        for message in messages {
            let to = message.to;
            self.actions.push_back(GroupAction::Raft { to, message });
        }
    }

    fn send(&mut self, to: Peer, message: ControlMessage) {
        self.actions.push_back(GroupAction::Send { to, message });
    }
}

fn conf_change(node_id: u64, change_type: ConfChangeType) -> ConfChangeSingle {
    let mut change = ConfChangeSingle {
        node_id,
        ..ConfChangeSingle::default()
    };
    change.set_change_type(change_type);
    change
}

fn decode_command(entry: &RaftEntry) -> Option<GroupCommand> {
    if entry.get_entry_type() != EntryType::EntryNormal || entry.data.is_empty() {
        return None;
    }
    postcard::from_bytes(&entry.data).ok()
}
