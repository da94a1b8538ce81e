//! The actor that drives a [`Replica`] with real time and a [`ChainTransport`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use phalanx_runtime::{Actor, ActorRef, Context, HandlerError, Reply, Task, TrySendError};
use serde::{Deserialize, Serialize};

use super::routes::Routes;
use super::{Body, ChainTransport, DriverCounters, Inbound, Packet};
use crate::chain::config::{ChainConfig, ClientId, ReplicaId};
use crate::chain::machine::StateMachine;
use crate::chain::message::{ControlMessage, Message, Peer, decode, encode};
use crate::chain::replica::{Action, Replica, ReplicaSettings};
use crate::checkpoint::{CheckpointPolicy, Checkpointer, LogConfig, ReplicaStore, Storage};
use crate::clock::Clock;

/// How often a driver ticks its core and how it batches.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriverSettings {
    /// The period of the core's `handle_tick`.
    pub tick: Duration,
    /// The most inputs handled between two flushes when the mailbox never drains (a flush
    /// happens anyway whenever the mailbox is empty).
    pub flush_every: usize,
    /// Where the driver reads `now` (a fault injector can skew it).
    pub clock: Clock,
}

impl Default for DriverSettings {
    /// Ticks every 5 ms, flushes at least every 256 inputs, reads a [`Clock::system`].
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(5),
            flush_every: 256,
            clock: Clock::system(),
        }
    }
}

/// The messages of a [`ReplicaActor`].
#[derive(Debug)]
#[non_exhaustive]
pub enum ReplicaInput {
    /// A packet from the transport.
    Packet(Inbound),
    /// Packets from the transport that arrived together (one decoded batch), handled in order
    /// as if each had been its own input: one mailbox operation for the whole batch.
    Packets(Vec<Inbound>),
    /// The interval timer fired.
    Tick,
    /// Report the replica's state.
    Status(Reply<ReplicaStatus>),
    /// A snapshot job ended: the index it covers if it was installed, `None` if the state was
    /// replaced meanwhile, or the error.
    SnapshotDone(Result<Option<u64>, String>),
}

/// Where and how a durable replica keeps its state ([`ReplicaActor::durable`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DurableReplica {
    /// The replica's id.
    pub id: ReplicaId,
    /// Its settings (`journal` is turned on).
    pub settings: ReplicaSettings,
    /// The incarnation to take if the store holds none yet (a new replica, or one whose
    /// store cannot vouch for its state: see [`ReplicaStore::keeps_acknowledged`]).
    pub fresh_incarnation: u64,
    /// The filesystem.
    pub storage: Arc<dyn Storage>,
    /// The store's directory.
    pub dir: PathBuf,
    /// The log's layout and fsync policy.
    pub log: LogConfig,
    /// When to take snapshots and truncate the log.
    pub checkpoints: CheckpointPolicy,
}

impl DurableReplica {
    /// A durable replica in `dir` with the defaults: the log synced at every group commit
    /// ([`FsyncPolicy::Always`](crate::checkpoint::FsyncPolicy::Always): what a restart with
    /// the same incarnation needs) and the default [`CheckpointPolicy`].
    pub fn new(
        id: ReplicaId,
        settings: ReplicaSettings,
        fresh_incarnation: u64,
        storage: Arc<dyn Storage>,
        dir: PathBuf,
    ) -> Self {
        Self {
            id,
            settings,
            fresh_incarnation,
            storage,
            dir,
            log: LogConfig::new(crate::checkpoint::FsyncPolicy::Always),
            checkpoints: CheckpointPolicy::default(),
        }
    }

    /// Opens the store and builds the replica from what it holds: with its stored
    /// incarnation if the store keeps every acknowledged write, else as a new replica (new
    /// incarnation) that still starts from the stored state.
    ///
    /// # Errors
    ///
    /// The store's errors (naming the damaged file), or a stored snapshot that does not
    /// restore.
    pub fn open<S: StateMachine>(&self) -> Result<(Replica<S>, ReplicaStore), HandlerError> {
        let mut settings = self.settings.clone();
        settings.journal = true;
        let (mut store, opened) =
            ReplicaStore::open::<S>(self.storage.clone(), &self.dir, self.log)?;
        let keep = store.keeps_acknowledged() && opened.meta.is_some();
        let incarnation = if keep {
            store.meta().incarnation
        } else {
            self.fresh_incarnation
        };
        let mut recovered = opened.recovered;
        if !keep {
            store.set_incarnation(incarnation)?;
            recovered.synced_epoch = 0;
        }
        if opened.log_recovery.torn_tail.is_some() {
            tracing::warn!(dir = %self.dir.display(), "replica log ended in a torn write; cut");
        }
        if opened.gap {
            tracing::warn!(
                dir = %self.dir.display(),
                "replica state was being replaced when the process stopped; catching up anew"
            );
        }
        let replica = Replica::recover(self.id, incarnation, settings, recovered)?;
        Ok((replica, store))
    }
}

/// A durable replica's store and checkpointing state.
#[derive(Debug)]
struct Durable {
    /// `None` only while a write runs on a blocking thread.
    store: Option<ReplicaStore>,
    checkpointer: Checkpointer,
    /// An error to fail with at start (the store did not open).
    failed: Option<String>,
}

/// A replica's state, as reported to operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReplicaStatus {
    /// The replica.
    pub id: ReplicaId,
    /// Its incarnation.
    pub incarnation: u64,
    /// The latest configuration it adopted.
    pub config: Option<ChainConfig>,
    /// Highest committed sequence number.
    pub committed: u64,
    /// Highest received sequence number.
    pub received: u64,
    /// Whether it caught up in its configuration.
    pub synced: bool,
    /// What the driver counted.
    pub counters: DriverCounters,
}

/// Drives one [`Replica`]: decodes packets, ticks it, flushes it when the mailbox is drained
/// and sends what it asks for.
#[derive(Debug)]
pub struct ReplicaActor<S: StateMachine, T: ChainTransport> {
    replica: Replica<S>,
    transport: Arc<T>,
    settings: DriverSettings,
    routes: Routes,
    counters: DriverCounters,
    /// Inputs handled since the last flush.
    unflushed: usize,
    /// The interval timer's task; dropping the actor cancels it.
    ticker: Option<Task<()>>,
    /// The store of a durable replica.
    durable: Option<Durable>,
}

impl<S: StateMachine, T: ChainTransport> ReplicaActor<S, T> {
    /// An actor driving `replica` over `transport`; its state lives in memory only.
    pub fn new(replica: Replica<S>, transport: Arc<T>, settings: DriverSettings) -> Self {
        Self {
            replica,
            transport,
            settings,
            routes: Routes::default(),
            counters: DriverCounters::default(),
            unflushed: 0,
            ticker: None,
            durable: None,
        }
    }

    /// An actor driving a replica restarted from (or created in) the store `durable`
    /// describes. The replica's journal is written (one group commit per flush) before
    /// anything it asked for is sent, snapshots are taken on a blocking thread as
    /// `durable.checkpoints` says, and the log is truncated below them.
    ///
    /// If the store does not open, the actor fails to start with the error (its supervisor
    /// restarts it, and gives up if it keeps failing: the node then stops with the error).
    pub fn durable(durable: &DurableReplica, transport: Arc<T>, settings: DriverSettings) -> Self {
        let (replica, store, failed) = match durable.open::<S>() {
            Ok((replica, store)) => (replica, Some(store), None),
            Err(error) => (
                Replica::new(
                    durable.id,
                    durable.fresh_incarnation,
                    durable.settings.clone(),
                ),
                None,
                Some(error.to_string()),
            ),
        };
        let log_first = store.as_ref().map_or(1, ReplicaStore::log_first);
        let checkpointer = Checkpointer::new(
            durable.checkpoints,
            replica.committed(),
            log_first,
            settings.clock.now(),
        );
        let mut actor = Self::new(replica, transport, settings);
        actor.durable = Some(Durable {
            store,
            checkpointer,
            failed,
        });
        actor
    }

    /// Writes the replica's journal (durable replicas), then takes a snapshot or truncates
    /// the log if the policy says so.
    async fn persist(&mut self, ctx: &Context<Self>) -> Result<(), HandlerError>
    where
        S: Send + 'static,
        S::Key: Send,
        S::Command: Send,
        S::Output: Send,
        S::Query: Send,
        S::Reply: Send,
    {
        let Some(durable) = self.durable.as_mut() else {
            return Ok(());
        };
        let journal = self.replica.take_journal();
        if !journal.is_empty() {
            let mut store = durable
                .store
                .take()
                .ok_or("the replica store was lost by a failed write")?;
            let now = self.settings.clock.now();
            let (store, written) = phalanx_runtime::spawn_blocking(move || {
                let written = store.write(journal, now);
                (store, written)
            })
            .await;
            let bytes = written?;
            durable.store = Some(store);
            durable
                .checkpointer
                .handle_appended(self.replica.received(), bytes);
        }
        let now = self.settings.clock.now();
        if durable.checkpointer.poll_snapshot(now)
            && let Some(store) = durable.store.as_ref()
        {
            let (index, machine, sessions) = self.replica.committed_state();
            let epoch = self.replica.config().map_or(0, |c| c.epoch);
            let job = store.snapshot_job(
                index,
                epoch,
                Box::new(move || {
                    let snapshot = crate::chain::Snapshot::of(index, &machine, sessions);
                    postcard::to_allocvec(&snapshot).unwrap_or_default()
                }),
            );
            let me = ctx.myself();
            phalanx_runtime::spawn(async move {
                let done = phalanx_runtime::spawn_blocking(move || job.run()).await;
                let done = done
                    .map(|meta| meta.map(|m| m.header.index))
                    .map_err(|e| e.to_string());
                let _ = me.tell(ReplicaInput::SnapshotDone(done)).await;
            })
            .detach();
        }
        Ok(())
    }

    fn on_snapshot_done(&mut self, done: Result<Option<u64>, String>) -> Result<(), HandlerError> {
        let Some(durable) = self.durable.as_mut() else {
            return Ok(());
        };
        let now = self.settings.clock.now();
        match done {
            Ok(Some(index)) => durable.checkpointer.handle_snapshot_written(index, now),
            Ok(None) => durable.checkpointer.handle_snapshot_failed(now),
            Err(error) => {
                durable.checkpointer.handle_snapshot_failed(now);
                tracing::warn!(%error, "replica snapshot failed");
            }
        }
        if let Some(below) = durable.checkpointer.poll_truncate()
            && let Some(store) = durable.store.as_mut()
        {
            store.truncate_below(below)?;
        }
        Ok(())
    }

    fn on_packet(&mut self, inbound: Inbound, now: Instant) {
        self.counters.received += 1;
        let Packet {
            from,
            to,
            body,
            routes,
        } = inbound.packet;
        if to != Peer::Replica(self.replica.id()) {
            self.counters.misaddressed += 1;
            return;
        }
        self.routes.learn(&routes);
        match (body, from) {
            (Body::Chain(bytes), from) => match decode::<Message<S>>(&bytes) {
                Ok(message) => self.replica.handle_message(from, message, now),
                Err(_) => self.counters.malformed += 1,
            },
            (Body::Control(bytes), Peer::Config(group)) => match decode::<ControlMessage>(&bytes) {
                Ok(message) => self.replica.handle_control(group, message, now),
                Err(_) => self.counters.malformed += 1,
            },
            _ => self.counters.misaddressed += 1,
        }
    }

    fn status(&self) -> ReplicaStatus {
        ReplicaStatus {
            id: self.replica.id(),
            incarnation: self.replica.incarnation(),
            config: self.replica.config().cloned(),
            committed: self.replica.committed(),
            received: self.replica.received(),
            synced: self.replica.is_synced(),
            counters: self.counters,
        }
    }

    fn send_actions(&mut self) {
        let me = Peer::Replica(self.replica.id());
        while let Some(action) = self.replica.poll_action() {
            let packet = match action {
                Action::Send { to, message } => {
                    let routes = self.routes.of(clients_named(to, &message));
                    let Ok(bytes) = encode(&message) else {
                        self.counters.unencodable += 1;
                        continue;
                    };
                    Packet {
                        from: me,
                        to,
                        body: Body::Chain(bytes),
                        routes,
                    }
                }
                Action::Control { to, message } => {
                    let Ok(bytes) = encode(&message) else {
                        self.counters.unencodable += 1;
                        continue;
                    };
                    Packet {
                        from: me,
                        to: Peer::Config(to),
                        body: Body::Control(bytes),
                        routes: Vec::new(),
                    }
                }
            };
            self.counters.sent += 1;
            self.transport.send(packet);
        }
    }
}

/// The clients a message names (the receiver, forwarded entries, tail reads), whose routes go
/// with it.
fn clients_named<S: StateMachine>(to: Peer, message: &Message<S>) -> Vec<ClientId> {
    let mut clients = Vec::new();
    if let Peer::Client(client) = to {
        clients.push(client);
    }
    match message {
        Message::Forward { entries, .. } | Message::SyncReply { entries, .. } => {
            clients.extend(entries.iter().map(|entry| entry.client));
        }
        Message::TailRead { client, .. } => clients.push(*client),
        _ => {}
    }
    clients
}

/// Starts a task that tells `actor` `tick()` every `period` until it ends. A full mailbox
/// skips a tick (the actor is busy; the next tick comes soon).
pub(super) fn start_ticker<M: Send + 'static>(
    actor: ActorRef<M>,
    period: Duration,
    tick: fn() -> M,
) -> Task<()> {
    phalanx_runtime::spawn(async move {
        let mut ticks = phalanx_runtime::interval(period);
        while ticks.next().await.is_some() {
            if let Err(TrySendError::Closed(_)) = actor.try_tell(tick()) {
                break;
            }
        }
    })
}

impl<S, T> Actor for ReplicaActor<S, T>
where
    S: StateMachine + Send + 'static,
    S::Key: Send,
    S::Command: Send,
    S::Output: Send,
    S::Query: Send,
    S::Reply: Send,
    T: ChainTransport,
{
    type Message = ReplicaInput;

    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), HandlerError> {
        if let Some(error) = self.durable.as_mut().and_then(|d| d.failed.take()) {
            return Err(error.into());
        }
        self.ticker = Some(start_ticker(ctx.myself(), self.settings.tick, || {
            ReplicaInput::Tick
        }));
        // Ask the group for a lease (and so to be appended) at once.
        self.replica.handle_tick(self.settings.clock.now());
        self.persist(ctx).await?;
        self.send_actions();
        Ok(())
    }

    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        msg: ReplicaInput,
    ) -> Result<(), HandlerError> {
        let now = self.settings.clock.now();
        match msg {
            ReplicaInput::Packet(inbound) => self.on_packet(inbound, now),
            ReplicaInput::Packets(batch) => {
                let mut batch = batch.into_iter().peekable();
                while let Some(inbound) = batch.next() {
                    self.on_packet(inbound, now);
                    if batch.peek().is_some() {
                        // Not the batch's last: flush only if `flush_every` says so.
                        self.settle(ctx, now, false).await?;
                    }
                }
            }
            ReplicaInput::Tick => self.replica.handle_tick(now),
            ReplicaInput::Status(reply) => {
                let _ = reply.send(self.status());
            }
            ReplicaInput::SnapshotDone(done) => self.on_snapshot_done(done)?,
        }
        self.settle(ctx, now, true).await
    }
}

impl<S, T> ReplicaActor<S, T>
where
    S: StateMachine + Send + 'static,
    S::Key: Send,
    S::Command: Send,
    S::Output: Send,
    S::Query: Send,
    S::Reply: Send,
    T: ChainTransport,
{
    /// Counts one handled input, flushes the replica if `flush_every` inputs were handled
    /// since the last flush or (`may_drain`) the mailbox is empty, and sends what it asked for
    /// (a durable replica only after writing its journal, at a flush).
    async fn settle(
        &mut self,
        ctx: &Context<Self>,
        now: Instant,
        may_drain: bool,
    ) -> Result<(), HandlerError> {
        self.unflushed += 1;
        let flush =
            self.unflushed >= self.settings.flush_every || (may_drain && ctx.mailbox_len() == 0);
        if flush {
            self.unflushed = 0;
            self.replica.flush(now);
        }
        if self.durable.is_none() {
            self.send_actions();
        } else if flush {
            // Group commit: everything since the last flush is written at once, and only
            // then does anything the replica asked for leave.
            self.persist(ctx).await?;
            self.send_actions();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use phalanx_runtime::spawn_actor;

    use super::*;
    use crate::chain::KvMap;
    use crate::chain::driver::LocalNetwork;

    fn packet(to: ReplicaId, body: Body) -> Inbound {
        Inbound {
            packet: Packet {
                from: Peer::Replica(ReplicaId(9)),
                to: Peer::Replica(to),
                body,
                routes: vec![(ClientId(7), 70)],
            },
            authenticated: true,
        }
    }

    #[test]
    fn a_batch_counts_as_its_packets() {
        phalanx_runtime::block_on(async {
            let id = ReplicaId(1);
            let replica = Replica::<KvMap>::new(id, 0, ReplicaSettings::new(vec![1, 2, 3]));
            let actor = spawn_actor(ReplicaActor::new(
                replica,
                Arc::new(LocalNetwork::new()),
                DriverSettings::default(),
            ));
            let batch = vec![
                packet(id, Body::Chain(vec![0xff; 3])),
                packet(ReplicaId(2), Body::Chain(vec![0xff; 3])),
                packet(id, Body::Raft(Vec::new())),
                packet(id, Body::Chain(Vec::new())),
            ];
            assert!(actor.try_tell(ReplicaInput::Packets(batch)).is_ok());
            assert!(actor.try_tell(ReplicaInput::Packets(Vec::new())).is_ok());
            let status = actor
                .ask(ReplicaInput::Status, Duration::from_secs(10))
                .await
                .expect("the replica answers");
            assert_eq!(status.counters.received, 4);
            assert_eq!(status.counters.malformed, 2);
            assert_eq!(status.counters.misaddressed, 2);
            actor.stop();
        });
    }
}
