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
//! Raft messages are raft-rs's protobuf types. On a real wire they must be decoded only after
//! the frame was authenticated by the keyring (protobuf 2 carries RUSTSEC-2024-0437, a
//! stack overflow on crafted deeply nested input).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use raft::StateRole;
use raft::prelude::{
    ConfState, Entry as RaftEntry, EntryType, HardState, Message as RaftMessage, MessageType,
};
use raft::storage::MemStorage;
use raft::{Config as RaftConfig, RawNode, Storage};
use serde::{Deserialize, Serialize};

use super::config::{ChainConfig, ReplicaId, place_chain, rendezvous_score};
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
        let config = RaftConfig {
            id,
            election_tick: settings.election_tick,
            heartbeat_tick: settings.heartbeat_tick,
            // raft-rs randomises election timeouts with a thread-local RNG, which would make
            // simulations irreproducible. A fixed, per-node staggered timeout is deterministic
            // and still breaks ties: the lowest id times out first.
            min_election_tick: settings.election_tick + 3 * id as usize,
            max_election_tick: settings.election_tick + 3 * id as usize + 1,
            check_quorum: true,
            pre_vote: true,
            applied: 0,
            ..RaftConfig::default()
        };
        config.validate()?;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raft = RawNode::new(&config, storage.clone(), &logger)?;
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
                let granted =
                    member && epoch == self.committed.epoch && self.highest_logged <= epoch;
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
        let Some(next) = next else { return };
        let command = GroupCommand::Reconfigure {
            expected: current.epoch,
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
                // The commit index needs no sync: a node that forgets it learns it again.
                let hard_state = self.storage.rl().hard_state().clone();
                if let Err(error) = journal.set_hard_state(&hard_state) {
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

    fn apply(&mut self, entries: Vec<RaftEntry>) {
        for entry in entries {
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

fn decode_command(entry: &RaftEntry) -> Option<GroupCommand> {
    if entry.get_entry_type() != EntryType::EntryNormal || entry.data.is_empty() {
        return None;
    }
    postcard::from_bytes(&entry.data).ok()
}
