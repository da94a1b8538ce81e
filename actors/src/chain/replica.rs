//! The sans-IO chain replica: chain replication with CRAQ apportioned reads, epochs,
//! synchronisation on reconfiguration, read leases and fencing.
//!
//! Inputs are `handle_*(.., now)` calls and [`Replica::flush`]; outputs are [`Action`]s taken
//! with [`Replica::poll_action`]. No sockets, no clock, no spawning.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::{ChainConfig, ClientId, Member, ReplicaId};
use super::machine::{RestoreError, StateMachine};
use super::message::{ControlMessage, Entry, Message, Peer, Session, Snapshot, SnapshotCursor};

mod journal;
mod sync;

pub use journal::{JournalOp, Recovered};

/// Timing and batching settings of a [`Replica`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicaSettings {
    /// How long a read lease granted by a majority of the configuration group lasts,
    /// counted from when the replica asked for it.
    pub lease: Duration,
    /// How long a replica waits after adopting a configuration before it commits or serves
    /// reads in it. Must exceed `lease` by the worst clock-rate drift between nodes
    /// (`lease * (1 + drift) / (1 - drift)`): it is what fences replicas of the previous
    /// epoch, whose leases have then expired.
    pub fence_wait: Duration,
    /// How often unacknowledged entries and unanswered sync requests are sent again.
    pub retransmit: Duration,
    /// How long a neighbour may make no progress before it is reported to the group.
    pub suspect_after: Duration,
    /// The most entries in one forwarded batch.
    pub batch_max: usize,
    /// The raft ids of the configuration group the replica starts with (the bootstrap group).
    /// Once a committed configuration names its group ([`ChainConfig::group`]), leases
    /// are counted against that, and group messages go to both.
    pub group: Vec<u64>,
    /// About how many bytes one catch-up message carries (entries in a
    /// [`Message::SyncReply`], or snapshot bytes in a [`Message::SnapshotChunk`]).
    pub sync_chunk: usize,
    /// How many catch-up messages answer one request (a window: the successor asks again
    /// after the last, so a transfer costs one round trip per window, not per chunk).
    pub sync_window: usize,
    /// A request for a snapshot repeating the one answered last is answered again only this
    /// long after it: a window of a large snapshot can take longer to arrive than the
    /// successor's retransmission interval, and answering every repeat would send it many
    /// times over.
    pub sync_resend: Duration,
    /// How many committed entries a replica keeps in memory after applying them, so that a
    /// successor that is behind by no more than that catches up from the log instead of a
    /// snapshot.
    pub history: usize,
    /// Record every change to the replica's durable state as a [`JournalOp`] (taken with
    /// [`Replica::take_journal`]); the driver must make them durable before it performs any
    /// action taken after them.
    pub journal: bool,
}

impl ReplicaSettings {
    /// Settings for a configuration group of the given raft ids: 300 ms leases, 450 ms fence
    /// wait, 20 ms retransmission, 400 ms suspicion, batches of 64, catch-up messages of about
    /// 1 MiB in windows of 8, the last 100,000 committed entries kept for catch-up.
    pub fn new(group: Vec<u64>) -> Self {
        Self {
            lease: Duration::from_millis(300),
            fence_wait: Duration::from_millis(450),
            retransmit: Duration::from_millis(20),
            suspect_after: Duration::from_millis(400),
            batch_max: 64,
            group,
            sync_chunk: 1024 * 1024,
            sync_window: 8,
            sync_resend: Duration::from_millis(200),
            history: 100_000,
            journal: false,
        }
    }
}

/// What a [`Replica`] asks its driver to do.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Action<S: StateMachine> {
    /// Send a chain or client message.
    Send {
        /// The receiver.
        to: Peer,
        /// The message.
        message: Message<S>,
    },
    /// Send a message to a configuration-group node (by raft id).
    Control {
        /// The group node.
        to: u64,
        /// The message.
        message: ControlMessage,
    },
}

/// One chain replica.
#[derive(Debug)]
pub struct Replica<S: StateMachine> {
    id: ReplicaId,
    incarnation: u64,
    settings: ReplicaSettings,
    /// The latest configuration adopted (it may not include this replica).
    config: Option<ChainConfig>,
    adopted_at: Option<Instant>,
    /// Whether this replica has caught up with its predecessor in `config` (the head is
    /// caught up on adoption).
    synced: bool,
    /// The last epoch in which this replica was caught up; a member entry whose `since` is
    /// later means it was removed and re-added in between, so its log may have diverged.
    synced_epoch: u64,
    /// Never held state (not recovered from storage): only such a replica may start the
    /// first configuration's chain empty as its head.
    fresh: bool,
    /// Configurations older than this are never adopted: the newest epoch adopted before a
    /// restart. (A group node that lags can still hand out an older committed configuration,
    /// and a restarted replica that adopted it could serve in a chain long replaced.)
    floor_epoch: u64,
    machine: S,
    committed: u64,
    /// Uncommitted entries, `committed + 1 ..= received`.
    log: BTreeMap<u64, Entry<S>>,
    received: u64,
    /// Uncommitted entries per object: CRAQ's dirty marks.
    dirty: BTreeMap<S::Key, u32>,
    pending: BTreeMap<(ClientId, u64), u64>,
    /// Entries that arrived ahead of a gap, held until it fills (cleared on every new
    /// configuration).
    early: BTreeMap<u64, Entry<S>>,
    sessions: BTreeMap<ClientId, Session<S>>,
    /// The last committed entries (at most `settings.history`), oldest first.
    history: VecDeque<Entry<S>>,
    /// A snapshot being sent to the successor: its index and encoded bytes.
    outgoing: Option<(u64, Arc<Vec<u8>>)>,
    /// The last catch-up request answered (position, snapshot cursor) and when.
    last_sync_answer: Option<(u64, Option<SnapshotCursor>, Instant)>,
    /// A snapshot being received from the predecessor: its index, whole length and the
    /// bytes so far.
    incoming: Option<(u64, u64, Vec<u8>)>,
    successor: Successor,
    last_sync_request: Option<Instant>,
    lease: Lease,
    last_config_query: Option<Instant>,
    last_suspect: Option<Instant>,
    /// An acknowledgement to the predecessor is owed; sent at the next flush.
    ack_due: bool,
    actions: VecDeque<Action<S>>,
    /// Durable-state changes not yet taken by the driver (recorded only if
    /// [`ReplicaSettings::journal`] is set).
    journal: Vec<JournalOp<S>>,
}

/// What this replica knows of its successor's progress.
#[derive(Debug, Default)]
struct Successor {
    /// Set once the successor asked to sync in the current epoch; nothing is forwarded
    /// before.
    known: bool,
    received: u64,
    /// Highest sequence number sent (pipelining: entries go out before earlier ones are
    /// acknowledged).
    sent: u64,
    last_progress: Option<Instant>,
    last_send: Option<Instant>,
}

#[derive(Debug, Default)]
struct Lease {
    round: u64,
    round_started: Option<Instant>,
    grants: BTreeSet<u64>,
    /// Reads may be served until then, in the epoch the lease was granted for.
    until: Option<(u64, Instant)>,
}

impl<S: StateMachine> Replica<S> {
    /// A replica with an empty state machine that knows no configuration yet.
    ///
    /// `incarnation` must differ from every earlier life of `id` that lost its state.
    pub fn new(id: ReplicaId, incarnation: u64, settings: ReplicaSettings) -> Self {
        Self {
            id,
            incarnation,
            settings,
            config: None,
            adopted_at: None,
            synced: false,
            synced_epoch: 0,
            fresh: true,
            floor_epoch: 0,
            machine: S::default(),
            committed: 0,
            log: BTreeMap::new(),
            received: 0,
            dirty: BTreeMap::new(),
            pending: BTreeMap::new(),
            early: BTreeMap::new(),
            sessions: BTreeMap::new(),
            history: VecDeque::new(),
            outgoing: None,
            last_sync_answer: None,
            incoming: None,
            successor: Successor::default(),
            last_sync_request: None,
            lease: Lease::default(),
            last_config_query: None,
            last_suspect: None,
            ack_due: false,
            actions: VecDeque::new(),
            journal: Vec::new(),
        }
    }

    /// A replica restarted from what its storage kept (see [`JournalOp`]), with the
    /// incarnation it had: the snapshot is restored, the log after it is held as uncommitted
    /// (acknowledgements commit it again; a tail commits it when it becomes active), and no
    /// configuration is known until the group sends one.
    ///
    /// Entries that do not continue the snapshot are ignored, from the first gap on.
    ///
    /// # Errors
    ///
    /// [`RestoreError`] if the snapshot's state does not restore.
    pub fn recover(
        id: ReplicaId,
        incarnation: u64,
        settings: ReplicaSettings,
        recovered: Recovered<S>,
    ) -> Result<Self, RestoreError> {
        let mut replica = Self::new(id, incarnation, settings);
        replica.synced_epoch = recovered.synced_epoch;
        replica.fresh = recovered.fresh;
        replica.floor_epoch = recovered.adopted_epoch;
        if let Some(snapshot) = recovered.snapshot {
            replica.machine.restore(&snapshot.state)?;
            replica.committed = snapshot.committed;
            replica.received = snapshot.committed;
            replica.sessions = snapshot.sessions;
        }
        for entry in recovered.entries {
            if entry.seq <= replica.received {
                continue;
            }
            if entry.seq != replica.received + 1 {
                break;
            }
            replica.push_entry(entry);
        }
        // What was recovered is stored already.
        replica.journal.clear();
        Ok(replica)
    }

    /// Takes the durable-state changes recorded since the last call (always empty unless
    /// [`ReplicaSettings::journal`] is set).
    pub fn take_journal(&mut self) -> Vec<JournalOp<S>> {
        std::mem::take(&mut self.journal)
    }

    /// A copy of the committed state for a snapshot: the committed sequence number, the
    /// state machine and the deduplication table (the caller serialises it off the hot
    /// path).
    pub fn committed_state(&self) -> (u64, S, BTreeMap<ClientId, Session<S>>) {
        (self.committed, self.machine.clone(), self.sessions.clone())
    }

    /// The last epoch this replica caught up in.
    pub fn synced_epoch(&self) -> u64 {
        self.synced_epoch
    }

    /// This replica's id.
    pub fn id(&self) -> ReplicaId {
        self.id
    }

    /// This replica's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The latest configuration adopted.
    pub fn config(&self) -> Option<&ChainConfig> {
        self.config.as_ref()
    }

    /// The committed state machine.
    pub fn machine(&self) -> &S {
        &self.machine
    }

    /// The highest committed (applied) sequence number.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// The highest sequence number received.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Entries received but not yet known committed, in order.
    pub fn pending_entries(&self) -> impl Iterator<Item = &Entry<S>> {
        self.log.values()
    }

    /// Whether this replica has caught up in its current configuration.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<Action<S>> {
        self.actions.pop_front()
    }

    /// Adopts `config` if it is newer than the current one. Only configurations committed by
    /// the configuration group may be passed here.
    pub fn handle_config(&mut self, config: ChainConfig, now: Instant) {
        if config.epoch < self.floor_epoch
            || self
                .config
                .as_ref()
                .is_some_and(|c| c.epoch >= config.epoch)
        {
            return;
        }
        if self.settings.journal {
            self.journal.push(JournalOp::Adopted(config.epoch));
        }
        let me = config
            .member(self.id)
            .filter(|m| m.incarnation == self.incarnation);
        self.config = Some(config);
        self.adopted_at = Some(now);
        self.synced = false;
        self.successor = Successor::default();
        self.last_sync_request = None;
        self.lease.until = None;
        // Grants are counted against the new epoch's voters only.
        self.lease.grants.clear();
        self.early.clear();
        self.outgoing = None;
        self.last_sync_answer = None;
        self.incoming = None;
        let Some(me) = me else { return };
        let position = self.position();
        if me.since > self.synced_epoch {
            // Added (again) after our last sync: our uncommitted entries may have diverged
            // from the chain's, so they go; what we committed is final everywhere and stays,
            // and we catch up from there. (Starting over empty instead would throw away a copy
            // of committed writes that may be the last one: the group may have removed this
            // replica on stale news while the only other holder had just died.) The head of
            // the first configuration starts empty by definition, and so does the only
            // member of a chain that started empty (a node's chain forms by appending replicas
            // to an empty first configuration; the group never removes a chain's last member,
            // so a sole member added after epoch 1 was appended to an empty chain). Any other
            // head in this state (a replica restarted from storage that vouches for nothing,
            // or one built by a future kind of reconfiguration) stays unsynced: safe, and the
            // chain waits.
            self.forget_uncommitted();
            // A replica that never held state and never caught up can only be head because it
            // was appended to an empty chain (the group makes a replica head on removals only
            // once it reported having caught up), even if it missed that configuration and
            // now sees a later one with more members: it starts the chain empty too.
            let sole = self.config.as_ref().is_some_and(|c| c.members.len() == 1);
            let never_held = self.fresh && self.synced_epoch == 0;
            if position == Some(0) && !sole && !never_held {
                return;
            }
        }
        if position == Some(0) {
            self.mark_synced();
        } else {
            self.request_sync(now);
        }
    }

    /// Handles a control message from configuration-group node `from`.
    pub fn handle_control(&mut self, from: u64, message: ControlMessage, now: Instant) {
        match message {
            ControlMessage::ConfigUpdate { config } => self.handle_config(config, now),
            ControlMessage::LeaseReply {
                round,
                granted,
                config,
            } => {
                let epoch = config.epoch;
                self.handle_config(config, now);
                if round != self.lease.round || !granted || Some(epoch) != self.epoch() {
                    return;
                }
                // A lease for this epoch needs a majority of the voters named for it: only
                // they can stop the next epoch from committing (see `ConfigNode::change_group`).
                let voters = self
                    .config
                    .as_ref()
                    .map(|c| c.lease_group(&self.settings.group))
                    .unwrap_or_default();
                if !voters.contains(&from) {
                    return;
                }
                self.lease.grants.insert(from);
                if self.lease.grants.len() * 2 > voters.len()
                    && let Some(started) = self.lease.round_started
                {
                    self.lease.until = Some((epoch, started + self.settings.lease));
                }
            }
            _ => {}
        }
    }

    /// Handles a chain or client message from `from`.
    // The epoch check asks the group for a newer configuration as a side effect; it reads
    // better as a statement than as a match guard.
    #[allow(clippy::collapsible_match)]
    pub fn handle_message(&mut self, from: Peer, message: Message<S>, now: Instant) {
        // A tail that just became active (its fence wait ran out) commits what it holds
        // before anything else, so no read sees it with uncommitted entries.
        self.commit_if_tail(now);
        match message {
            Message::Write {
                client,
                request,
                acked_below,
                command,
            } => self.on_write(client, request, acked_below, command, now),
            Message::Read {
                client,
                request,
                query,
            } => self.on_read(client, request, query, now),
            Message::SyncRequest {
                epoch,
                have,
                snapshot,
            } => {
                if self.check_epoch(epoch, now) && self.is_successor(from) {
                    self.on_sync_request(have, snapshot, now);
                }
            }
            Message::SyncReply {
                epoch,
                entries,
                complete,
                more,
            } => {
                if self.check_epoch(epoch, now) && self.is_predecessor(from) && !self.synced {
                    self.on_sync_reply(entries, complete, more, now);
                }
            }
            Message::SnapshotChunk {
                epoch,
                index,
                total,
                offset,
                bytes,
                more,
            } => {
                if self.check_epoch(epoch, now) && self.is_predecessor(from) && !self.synced {
                    self.on_snapshot_chunk(index, total, offset, bytes, more, now);
                }
            }
            Message::Forward { epoch, entries } => {
                if self.check_epoch(epoch, now) && self.is_predecessor(from) && self.synced {
                    self.append(entries);
                    if !self.commit_if_tail(now) {
                        self.send_ack();
                    }
                }
            }
            Message::Ack {
                epoch,
                received,
                committed,
            } => {
                if self.check_epoch(epoch, now) && self.is_successor(from) {
                    self.on_ack(received, committed, now);
                }
            }
            Message::TailRead {
                epoch,
                client,
                request,
                query,
            } => {
                if self.check_epoch(epoch, now) && self.is_tail() && self.can_read(now) {
                    let reply = self.machine.read(&query);
                    self.send(Peer::Client(client), Message::ReadReply { request, reply });
                }
            }
            _ => {}
        }
    }

    /// Periodic work: lease renewal, retransmission, failure suspicion. Call it every few
    /// milliseconds.
    pub fn handle_tick(&mut self, now: Instant) {
        self.renew_lease(now);
        self.commit_if_tail(now);
        if !self.is_member() {
            return;
        }
        if !self.synced {
            if self
                .last_sync_request
                .is_none_or(|at| now >= at + self.settings.retransmit)
            {
                self.request_sync(now);
            }
            return;
        }
        let Some(successor) = self.successor_member() else {
            return;
        };
        if !self.successor.known
            && self
                .successor
                .last_send
                .is_none_or(|at| now >= at + self.settings.retransmit)
        {
            // A successor that synced in this epoch before we restarted (from storage) will
            // not ask again; an empty forward makes it acknowledge, which tells us where it
            // is. A successor that has not synced ignores it and asks for a sync instead.
            self.successor.last_send = Some(now);
            let epoch = self.epoch().unwrap_or(0);
            self.send(
                Peer::Replica(successor.id),
                Message::Forward {
                    epoch,
                    entries: Vec::new(),
                },
            );
        }
        let stalled_since = if self.successor.known {
            if self.successor.received >= self.received {
                None
            } else {
                self.successor.last_progress
            }
        } else {
            self.adopted_at
        };
        if let Some(since) = stalled_since
            && now >= since + self.settings.suspect_after
            && self
                .last_suspect
                .is_none_or(|at| now >= at + self.settings.suspect_after)
        {
            self.last_suspect = Some(now);
            let epoch = self.epoch().unwrap_or(0);
            self.broadcast_to_group(ControlMessage::Suspect {
                epoch,
                suspect: successor.id,
            });
        }
        // Under load some entries are always unacknowledged; resend only when the successor
        // stopped making progress, not merely because entries are in flight.
        if self.successor.known
            && self.successor.received < self.received
            && self
                .successor
                .last_progress
                .is_none_or(|at| now >= at + self.settings.retransmit)
            && self
                .successor
                .last_send
                .is_none_or(|at| now >= at + self.settings.retransmit)
        {
            // Go back to what the successor confirmed and send it all again.
            self.successor.sent = self.successor.received;
        }
    }

    /// Sends what accumulated since the last flush: new entries go down the chain in
    /// batches, and one cumulative acknowledgement goes up. Drivers call it when their input
    /// queue is drained, so that a burst of inputs becomes one batch.
    pub fn flush(&mut self, now: Instant) {
        self.emit_ack();
        if !self.synced || !self.successor.known || self.successor.sent >= self.received {
            return;
        }
        let Some(successor) = self.successor_member() else {
            return;
        };
        if self.successor.received >= self.successor.sent {
            // Nothing was outstanding: the successor's silence counts from now.
            self.successor.last_progress = Some(now);
        }
        let epoch = self.epoch().unwrap_or(0);
        let mut batch = Vec::new();
        for entry in self.log.range(self.successor.sent + 1..).map(|(_, e)| e) {
            batch.push(entry.clone());
            if batch.len() == self.settings.batch_max {
                let entries = std::mem::take(&mut batch);
                self.actions.push_back(Action::Send {
                    to: Peer::Replica(successor.id),
                    message: Message::Forward { epoch, entries },
                });
            }
        }
        if !batch.is_empty() {
            self.actions.push_back(Action::Send {
                to: Peer::Replica(successor.id),
                message: Message::Forward {
                    epoch,
                    entries: batch,
                },
            });
        }
        self.successor.sent = self.received;
        self.successor.last_send = Some(now);
    }

    fn on_write(
        &mut self,
        client: ClientId,
        request: u64,
        acked_below: u64,
        command: S::Command,
        now: Instant,
    ) {
        if !self.is_head() || !self.is_active(now) {
            let epoch = self.epoch().unwrap_or(0);
            self.send(Peer::Client(client), Message::NotServing { request, epoch });
            return;
        }
        if let Some(session) = self.sessions.get(&client) {
            if request < session.acked_below {
                return;
            }
            if let Some(output) = session.results.get(&request) {
                let output = output.clone();
                self.send(
                    Peer::Client(client),
                    Message::WriteReply { request, output },
                );
                return;
            }
        }
        if self.pending.contains_key(&(client, request)) {
            // In the chain already; the tail answers when it commits.
            return;
        }
        let entry = Entry {
            seq: self.received + 1,
            client,
            request,
            acked_below,
            command,
        };
        self.append(vec![entry]);
        self.commit_if_tail(now);
    }

    fn on_read(&mut self, client: ClientId, request: u64, query: S::Query, now: Instant) {
        if !self.can_read(now) {
            let epoch = self.epoch().unwrap_or(0);
            self.send(Peer::Client(client), Message::NotServing { request, epoch });
            return;
        }
        let key = S::query_key(&query);
        if !self.dirty.contains_key(&key) {
            let reply = self.machine.read(&query);
            self.send(Peer::Client(client), Message::ReadReply { request, reply });
            return;
        }
        // Dirty: only the tail knows which version is committed; it answers the client.
        if let (Some(epoch), Some(tail)) = (self.epoch(), self.tail_member()) {
            self.send(
                Peer::Replica(tail.id),
                Message::TailRead {
                    epoch,
                    client,
                    request,
                    query,
                },
            );
        }
    }

    fn on_ack(&mut self, received: u64, committed: u64, now: Instant) {
        if !self.successor.known {
            // The successor synced before this replica restarted: its log is a prefix of
            // ours (we stored everything before forwarding it), so resume from where it is.
            let from = received.min(self.received);
            self.successor = Successor {
                known: true,
                received: from,
                sent: from,
                last_progress: Some(now),
                last_send: None,
            };
        }
        if received > self.successor.received {
            self.successor.last_progress = Some(now);
        }
        self.successor.received = self.successor.received.max(received.min(self.received));
        let upto = committed.min(self.received);
        if upto > self.committed {
            self.commit_through(upto, false);
            self.send_ack();
        }
    }

    fn append(&mut self, entries: Vec<Entry<S>>) {
        for entry in entries {
            if entry.seq > self.received + 1 {
                // Overtook an earlier batch (datagrams reorder): hold it, within bounds.
                if self.early.len() < MAX_EARLY {
                    self.early.insert(entry.seq, entry);
                }
                continue;
            }
            if entry.seq <= self.received {
                continue;
            }
            self.push_entry(entry);
            while let Some(next) = self.early.remove(&(self.received + 1)) {
                self.push_entry(next);
            }
        }
        self.early = self.early.split_off(&(self.received + 1));
    }

    fn push_entry(&mut self, entry: Entry<S>) {
        if self.settings.journal {
            match self.journal.last_mut() {
                Some(JournalOp::Append(entries)) => entries.push(entry.clone()),
                _ => self.journal.push(JournalOp::Append(vec![entry.clone()])),
            }
        }
        self.received = entry.seq;
        *self
            .dirty
            .entry(S::command_key(&entry.command))
            .or_insert(0) += 1;
        self.pending
            .insert((entry.client, entry.request), entry.seq);
        self.log.insert(entry.seq, entry);
    }

    /// Commits everything received if this is the active tail; returns whether it did (and
    /// so acknowledged upstream).
    fn commit_if_tail(&mut self, now: Instant) -> bool {
        if self.is_tail() && self.synced && self.is_active(now) && self.committed < self.received {
            self.commit_through(self.received, true);
            self.send_ack();
            return true;
        }
        false
    }

    /// Applies entries up to `upto`; the tail (`reply`) answers their clients.
    fn commit_through(&mut self, upto: u64, reply: bool) {
        while self.committed < upto {
            let Some(entry) = self.log.remove(&(self.committed + 1)) else {
                return;
            };
            self.committed = entry.seq;
            let key = S::command_key(&entry.command);
            if let Some(count) = self.dirty.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    self.dirty.remove(&key);
                }
            }
            self.pending.remove(&(entry.client, entry.request));
            let session = self
                .sessions
                .entry(entry.client)
                .or_insert_with(|| Session {
                    acked_below: 0,
                    results: BTreeMap::new(),
                });
            if entry.request < session.acked_below {
                self.remember(entry);
                continue;
            }
            let output = match session.results.get(&entry.request) {
                Some(output) => output.clone(),
                None => {
                    let output = self.machine.apply(&entry.command);
                    session.results.insert(entry.request, output.clone());
                    output
                }
            };
            if entry.acked_below > session.acked_below {
                session.acked_below = entry.acked_below;
                session.results = session.results.split_off(&entry.acked_below);
            }
            if reply {
                self.send(
                    Peer::Client(entry.client),
                    Message::WriteReply {
                        request: entry.request,
                        output,
                    },
                );
            }
            self.remember(entry);
        }
    }

    /// Keeps a committed entry for successors that catch up (the oldest goes).
    fn remember(&mut self, entry: Entry<S>) {
        if self.settings.history == 0 {
            return;
        }
        if self.history.len() >= self.settings.history {
            self.history.pop_front();
        }
        self.history.push_back(entry);
    }

    fn renew_lease(&mut self, now: Instant) {
        let interval = self.settings.lease / 4;
        if self
            .lease
            .round_started
            .is_some_and(|at| now < at + interval)
        {
            return;
        }
        self.lease.round += 1;
        self.lease.round_started = Some(now);
        self.lease.grants.clear();
        let message = ControlMessage::LeaseRequest {
            replica: self.id,
            incarnation: self.incarnation,
            epoch: self.epoch().unwrap_or(0),
            round: self.lease.round,
            synced_epoch: self.synced_epoch,
        };
        self.broadcast_to_group(message);
    }

    /// Acknowledgements are cumulative, so one per flush carries everything since the last:
    /// this only marks one as due.
    fn send_ack(&mut self) {
        self.ack_due = true;
    }

    fn emit_ack(&mut self) {
        if !std::mem::take(&mut self.ack_due) {
            return;
        }
        let (Some(epoch), Some(predecessor)) = (self.epoch(), self.predecessor_member()) else {
            return;
        };
        let message = Message::Ack {
            epoch,
            received: self.received,
            committed: self.committed,
        };
        self.send(Peer::Replica(predecessor.id), message);
    }

    /// Whether a message of `epoch` may be handled; a newer epoch makes us ask the group.
    fn check_epoch(&mut self, epoch: u64, now: Instant) -> bool {
        let mine = self.epoch().unwrap_or(0);
        if epoch > mine
            && self
                .last_config_query
                .is_none_or(|at| now >= at + self.settings.retransmit)
        {
            self.last_config_query = Some(now);
            self.broadcast_to_group(ControlMessage::ConfigQuery);
        }
        epoch == mine && self.is_member()
    }

    fn mark_synced(&mut self) {
        self.synced = true;
        if let Some(epoch) = self.epoch() {
            self.synced_epoch = epoch;
            if self.settings.journal {
                self.journal.push(JournalOp::Synced(epoch));
            }
        }
    }

    /// Drops everything not committed; the committed state stays.
    fn forget_uncommitted(&mut self) {
        self.drop_uncommitted();
        if self.settings.journal {
            // The store keeps the log from the last snapshot on: replace it with the
            // committed state, so that the dropped entries are gone there too.
            let snapshot = Snapshot::of(self.committed, &self.machine, self.sessions.clone());
            self.journal.push(JournalOp::Reset(Some(snapshot)));
        }
    }

    fn reset(&mut self) {
        if self.settings.journal {
            self.journal.push(JournalOp::Reset(None));
        }
        self.machine = S::default();
        self.committed = 0;
        self.sessions.clear();
        self.history.clear();
        self.drop_uncommitted();
    }

    /// Drops the entries after `committed` and any catch-up in progress (in memory only).
    fn drop_uncommitted(&mut self) {
        self.log.clear();
        self.dirty.clear();
        self.pending.clear();
        self.early.clear();
        self.received = self.committed;
        self.outgoing = None;
        self.last_sync_answer = None;
        self.incoming = None;
    }

    fn is_active(&self, now: Instant) -> bool {
        // The first configuration has no predecessor whose replicas need fencing.
        let first = self.epoch() == Some(1);
        self.synced
            && (first
                || self
                    .adopted_at
                    .is_some_and(|at| now >= at + self.settings.fence_wait))
    }

    fn can_read(&self, now: Instant) -> bool {
        self.is_active(now)
            && self
                .lease
                .until
                .is_some_and(|(epoch, until)| Some(epoch) == self.epoch() && now < until)
    }

    fn epoch(&self) -> Option<u64> {
        self.config.as_ref().map(|c| c.epoch)
    }

    fn me(&self) -> Option<Member> {
        self.config
            .as_ref()?
            .member(self.id)
            .filter(|m| m.incarnation == self.incarnation)
    }

    fn is_member(&self) -> bool {
        self.me().is_some()
    }

    fn position(&self) -> Option<usize> {
        self.me()?;
        self.config.as_ref()?.position(self.id)
    }

    fn is_head(&self) -> bool {
        self.position() == Some(0)
    }

    fn is_tail(&self) -> bool {
        self.is_member() && self.tail_member().is_some_and(|t| t.id == self.id)
    }

    fn tail_member(&self) -> Option<Member> {
        self.config.as_ref()?.tail()
    }

    fn predecessor_member(&self) -> Option<Member> {
        self.me()?;
        self.config.as_ref()?.predecessor(self.id)
    }

    fn successor_member(&self) -> Option<Member> {
        self.me()?;
        self.config.as_ref()?.successor(self.id)
    }

    fn is_predecessor(&self, from: Peer) -> bool {
        self.predecessor_member()
            .is_some_and(|p| from == Peer::Replica(p.id))
    }

    fn is_successor(&self, from: Peer) -> bool {
        self.successor_member()
            .is_some_and(|s| from == Peer::Replica(s.id))
    }

    fn send(&mut self, to: Peer, message: Message<S>) {
        self.actions.push_back(Action::Send { to, message });
    }

    /// Sends `message` to the bootstrap group and to the voters of the current configuration.
    fn broadcast_to_group(&mut self, message: ControlMessage) {
        let mut nodes = self.settings.group.clone();
        if let Some(config) = &self.config {
            nodes.extend(config.group.iter().map(|seat| seat.id));
            nodes.sort_unstable();
            nodes.dedup();
        }
        for node in nodes {
            self.actions.push_back(Action::Control {
                to: node,
                message: message.clone(),
            });
        }
    }
}

/// The most out-of-order entries a replica holds while waiting for a gap to fill.
const MAX_EARLY: usize = 4096;
