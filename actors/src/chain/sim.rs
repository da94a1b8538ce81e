//! A deterministic simulation of chain replication: replicas, a raft configuration group and
//! clients on one thread, over the simulated network, with crashes, restarts, partitions
//! (one- and two-way), loss, duplication, reordering and clock-rate skew.
//!
//! With [`SimSettings::durable`], every replica keeps its state in a [`ReplicaStore`] on a
//! simulated disk ([`MemStorage`]): its journal is written before anything it asked for is
//! sent, a crash loses everything not synced, and a restarted replica recovers from the disk
//! with its old incarnation. Every group node then keeps its raft log and hard state in a
//! [`GroupStore`] on a simulated disk too (a crash loses what was not synced), and the nemesis
//! may crash every replica and every group node at once.
//!
//! Every client operation goes into a history that [`crate::chain::linearizability`]
//! checks, and at the end the tail's state is searched for every acknowledged write.
//! [`for_each_seed`] runs a body over `CHAIN_SEEDS` seeds (or only `SIM_SEED`) and prints
//! the seed of a failure.

mod client;
mod nemesis;
mod recording;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use phalanx_transports::{SimClock, SimFaults, SimInstant, SimNetwork};
use raft::prelude::Message as RaftMessage;

use client::{Outgoing, SimClient, Target};
use nemesis::Repair;
pub use recording::{RecordingKv, TaggedCommand};

use crate::chain::config::{ChainConfig, ClientId, ReplicaId};
use crate::chain::group::{ConfigNode, GroupAction, GroupSettings};
use crate::chain::linearizability::{self, KvInput, KvResult, Operation, Verdict};
use crate::chain::message::{ControlMessage, Message, Peer};
use crate::chain::replica::{Action, Replica, ReplicaSettings};
use crate::checkpoint::{FsyncPolicy, GroupStore, LogConfig, MemStorage, ReplicaStore};

/// Runs `body` once per seed: only `SIM_SEED` if set, else `CHAIN_SEEDS` seeds (default
/// `default_seeds`) from `CHAIN_SEED_START` (default 0). A failing seed is printed with the
/// line that replays it. With `CHAIN_KEEP_GOING` set, every seed runs and the failures are
/// listed at the end (for long runs).
///
/// # Panics
///
/// Re-raises the panic of a failing run, after printing its seed (or, keeping going, panics
/// at the end if any seed failed).
pub fn for_each_seed(default_seeds: u64, mut body: impl FnMut(u64)) {
    let seeds: Vec<u64> = match env_u64("SIM_SEED") {
        Some(seed) => vec![seed],
        None => {
            let start = env_u64("CHAIN_SEED_START").unwrap_or(0);
            (start..start + env_u64("CHAIN_SEEDS").unwrap_or(default_seeds)).collect()
        }
    };
    let keep_going = std::env::var_os("CHAIN_KEEP_GOING").is_some();
    let mut failed = Vec::new();
    for seed in seeds {
        if let Err(panic) = panic::catch_unwind(AssertUnwindSafe(|| body(seed))) {
            eprintln!("chain simulation failed with seed {seed}; replay with SIM_SEED={seed}");
            if !keep_going {
                panic::resume_unwind(panic);
            }
            failed.push(seed);
        }
    }
    assert!(failed.is_empty(), "failing seeds: {failed:?}");
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

/// What a simulation run does.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SimSettings {
    /// The seed every random choice follows from.
    pub seed: u64,
    /// Replicas in the initial chain.
    pub chain_length: usize,
    /// Extra replicas, outside the chain at first (candidates to join).
    pub spares: usize,
    /// Configuration-group size (3 or 5): the bootstrap voters, raft ids `1..=group_size`.
    pub group_size: usize,
    /// Extra group nodes (raft ids after the bootstrap ones), started empty and outside the
    /// group. With any, the nemesis also changes the group's membership
    /// ([`ConfigNode::change_group`]): it replaces a random voter by a random non-voter.
    pub group_spares: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Distinct keys.
    pub keys: usize,
    /// Fraction of reads.
    pub read_fraction: f64,
    /// Send reads to any member (CRAQ) rather than only to the tail (plain chain
    /// replication).
    pub craq: bool,
    /// How long clients issue operations.
    pub duration: Duration,
    /// How long the run continues, healed, after that.
    pub quiesce: Duration,
    /// Inject crashes, restarts, partitions and network faults.
    pub nemesis: bool,
    /// Largest pause between a client's operations.
    pub think: Duration,
    /// A client gives up on an operation after this long.
    pub deadline: Duration,
    /// Per-message processing time at a replica (a modelled service rate), if any.
    pub service_time: Option<Duration>,
    /// Replica read-lease length.
    pub lease: Duration,
    /// Replica fence wait after adopting a configuration. Setting it below `lease` breaks
    /// fencing on purpose (the checker must then find violations).
    pub fence_wait: Duration,
    /// Replicas keep their state on a simulated disk and restart from it (see the module
    /// docs); the nemesis may then crash the whole cluster at once.
    pub durable: bool,
    /// The group places the chain by rendezvous hashing for this shard
    /// ([`GroupSettings::placement`]): it appends the best-placed replica and moves a settled
    /// chain's members towards the placement.
    pub placement: Option<u64>,
}

impl SimSettings {
    /// A measurement run: no faults, `chain_length` replicas, 64 clients per replica (enough
    /// to saturate them) without pause on 10,000 keys, 95 % reads, 100 µs of service time per
    /// message at each replica.
    pub fn measurement(chain_length: usize, craq: bool) -> Self {
        Self {
            chain_length,
            spares: 0,
            clients: 64 * chain_length,
            keys: 10_000,
            read_fraction: 0.95,
            craq,
            duration: Duration::from_millis(600),
            quiesce: Duration::from_millis(200),
            nemesis: false,
            think: Duration::ZERO,
            service_time: Some(Duration::from_micros(100)),
            ..Self::faulty(7)
        }
    }

    /// A faulty run of 3 s with a 3-replica chain, 1 spare, 3 group nodes, 4 clients on 3
    /// keys, 50 % reads, CRAQ.
    pub fn faulty(seed: u64) -> Self {
        Self {
            seed,
            chain_length: 3,
            spares: 1,
            group_size: 3,
            group_spares: 0,
            clients: 4,
            keys: 3,
            read_fraction: 0.5,
            craq: true,
            duration: Duration::from_secs(3),
            quiesce: Duration::from_secs(3),
            nemesis: true,
            think: Duration::from_millis(20),
            deadline: Duration::from_millis(1500),
            service_time: None,
            lease: Duration::from_millis(300),
            fence_wait: Duration::from_millis(450),
            durable: false,
            placement: None,
        }
    }

    /// [`faulty`](Self::faulty) with durable replicas: crashes keep what was synced, and the
    /// whole cluster may crash at once.
    pub fn faulty_durable(seed: u64) -> Self {
        Self {
            durable: true,
            ..Self::faulty(seed)
        }
    }

    /// [`faulty`](Self::faulty) with two spares and rendezvous placement (shard 3): the group
    /// also moves members of a settled chain towards the placement.
    pub fn faulty_placed(seed: u64) -> Self {
        Self {
            spares: 2,
            placement: Some(3),
            ..Self::faulty(seed)
        }
    }

    /// [`faulty_durable`](Self::faulty_durable) with two spare group nodes: the nemesis also
    /// replaces group voters (joint consensus), crashes and partitions reach the spares too,
    /// and whole-cluster crashes make every group node replay its conf changes from its log.
    pub fn faulty_regrouped(seed: u64) -> Self {
        Self {
            group_spares: 2,
            ..Self::faulty_durable(seed)
        }
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SimReport {
    /// The checker's verdict over the whole history.
    pub verdict: Verdict,
    /// Acknowledged writes missing from the final tail's state, or if the chain is stuck,
    /// from every live replica (must be 0).
    pub lost_writes: usize,
    /// The chain ended without a caught-up tail (it waited rather than risk losing data).
    pub stuck: bool,
    /// Operations completed.
    pub completed: u64,
    /// Reads completed.
    pub reads_completed: u64,
    /// Operations abandoned after their deadline (pending in the history).
    pub given_up: u64,
    /// Configurations committed after the first.
    pub reconfigurations: u64,
    /// Faults injected.
    pub faults: u64,
    /// Changes of the group's membership started (each also counts as a fault).
    pub group_changes: u64,
    /// Changes of the group's membership carried through: configurations committed that
    /// name other voters than the one before.
    pub group_changes_done: u64,
    /// Reads completed while clients ran, per simulated second.
    pub read_throughput: f64,
    /// Mean latency of completed reads.
    pub read_latency: Duration,
    /// Mean latency of completed writes.
    pub write_latency: Duration,
    /// The final configuration.
    pub final_config: ChainConfig,
}

/// A packet on the simulated wire.
#[derive(Debug, Clone)]
enum Packet {
    Chain(Message<RecordingKv>),
    Control(ControlMessage),
    Raft(Box<RaftMessage>),
}

#[derive(Debug)]
struct SimReplica {
    replica: Option<Replica<RecordingKv>>,
    /// The simulated disk and the store open on it (durable runs; `None` while crashed).
    disk: Option<(Arc<MemStorage>, Option<ReplicaStore>)>,
    incarnation: u64,
    skew: Skew,
    busy_until: SimInstant,
    last_flush: SimInstant,
}

#[derive(Debug)]
struct SimGroupNode {
    /// `None` while crashed (durable runs; otherwise the node is kept and restarted from its
    /// raft storage, which survives whole).
    node: Option<ConfigNode>,
    crashed: bool,
    skew: Skew,
    settings: GroupSettings,
    /// The simulated disk of its [`GroupStore`] (durable runs).
    disk: Option<Arc<MemStorage>>,
}

/// A node's clock: its own rate (drift) and offset against virtual time.
#[derive(Debug, Clone, Copy)]
struct Skew {
    offset: Duration,
    /// Parts per million faster (or slower, negative) than virtual time.
    ppm: i64,
}

impl Skew {
    fn local(&self, base: Instant, now: SimInstant) -> Instant {
        let nanos = now.as_nanos() as i128;
        let adjusted = nanos + nanos * self.ppm as i128 / 1_000_000;
        base + self.offset + Duration::from_nanos(adjusted.max(0) as u64)
    }
}

/// The simulation's random source (fastrand, seeded).
#[derive(Debug)]
pub(crate) struct SimRng(fastrand::Rng);

impl SimRng {
    fn new(seed: u64) -> Self {
        Self(fastrand::Rng::with_seed(seed))
    }

    /// Uniform in `0..n` (0 if `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.0.u64(0..n) }
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.0.f64() < p
    }
}

const TICK: Duration = Duration::from_millis(5);
/// The longest a busy replica goes without flushing.
const FLUSH_EVERY: Duration = Duration::from_millis(2);

/// A simulated cluster: replicas, group nodes and clients.
#[derive(Debug)]
pub struct ChainSim {
    settings: SimSettings,
    clock: SimClock,
    base: Instant,
    rng: SimRng,
    net: SimNetwork<Peer, Packet>,
    replicas: BTreeMap<ReplicaId, SimReplica>,
    group: BTreeMap<u64, SimGroupNode>,
    clients: Vec<SimClient>,
    deferred: BinaryHeap<Reverse<(SimInstant, u64, ReplicaId, DeferredPacket)>>,
    deferred_seq: u64,
    history: Vec<(String, Operation<KvInput, KvResult>)>,
    acked: Vec<(u64, u64)>,
    next_tick: SimInstant,
    next_fault: SimInstant,
    /// Scheduled repairs: (when, what).
    repairs: Vec<(SimInstant, Repair)>,
    faults: u64,
    group_changes: u64,
    /// The voters named by the newest configuration seen, and how often that changed.
    voters_seen: (u64, Vec<u64>, u64),
    /// `CHAIN_TRACE` set: print every delivered chain and control packet.
    trace: bool,
}

/// A packet waiting for a busy replica (ordered by arrival only).
#[derive(Debug)]
struct DeferredPacket(Peer, Packet);

impl PartialEq for DeferredPacket {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for DeferredPacket {}
impl PartialOrd for DeferredPacket {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for DeferredPacket {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl ChainSim {
    /// A cluster as `settings` describe, at virtual time zero.
    ///
    /// # Panics
    ///
    /// If raft-rs rejects the group settings (a bug in this harness).
    pub fn new(settings: SimSettings) -> Self {
        let mut rng = SimRng::new(settings.seed);
        let group_ids: Vec<u64> = (1..=settings.group_size as u64).collect();
        let chain: Vec<ReplicaId> = (0..settings.chain_length as u64)
            .map(|i| ReplicaId(100 + i))
            .collect();
        let initial = ChainConfig::initial(&chain);
        let skew = |rng: &mut SimRng| Skew {
            offset: Duration::from_millis(rng.below(10_000)),
            ppm: if settings.nemesis {
                rng.below(100_001) as i64 - 50_000
            } else {
                0
            },
        };
        let mut group = BTreeMap::new();
        let all_group_ids = 1..=(settings.group_size + settings.group_spares) as u64;
        for id in all_group_ids {
            let mut group_settings = GroupSettings::new(group_ids.clone(), initial.clone());
            group_settings.target_length = settings.chain_length;
            group_settings.placement = settings.placement;
            let disk = settings.durable.then(|| Arc::new(MemStorage::new()));
            let node = match &disk {
                Some(disk) => open_group(id, &group_settings, disk),
                None => ConfigNode::new(id, group_settings.clone()).expect("valid raft settings"),
            };
            group.insert(
                id,
                SimGroupNode {
                    node: Some(node),
                    crashed: false,
                    skew: skew(&mut rng),
                    settings: group_settings,
                    disk,
                },
            );
        }
        let mut replicas = BTreeMap::new();
        for i in 0..(settings.chain_length + settings.spares) as u64 {
            let id = ReplicaId(100 + i);
            let mut replica = Replica::new(id, 0, replica_settings(&settings, group_ids.clone()));
            let disk = settings.durable.then(|| {
                let storage = Arc::new(MemStorage::new());
                let mut store = open_store(&storage).0;
                store.set_incarnation(0).expect("a fresh simulated disk");
                (storage, Some(store))
            });
            let skew = skew(&mut rng);
            if i < settings.chain_length as u64 {
                // The initial configuration is known to everyone from the start.
                replica.handle_config(
                    initial.clone(),
                    skew.local(BASE.with(|b| *b), SimInstant::ZERO),
                );
            }
            replicas.insert(
                id,
                SimReplica {
                    replica: Some(replica),
                    disk,
                    incarnation: 0,
                    skew,
                    busy_until: SimInstant::ZERO,
                    last_flush: SimInstant::ZERO,
                },
            );
        }
        let clients = (0..settings.clients as u64)
            .map(|i| {
                let mut client = SimClient::new(ClientId(1000 + i));
                client.config = Some(initial.clone());
                client
            })
            .collect();
        let faults = if settings.nemesis {
            SimFaults::none()
                .with_loss(0.02)
                .with_duplicate(0.02)
                .with_delay(Duration::from_micros(200), Duration::from_millis(3))
                .with_reorder(0.05, Duration::from_millis(15))
        } else {
            SimFaults::none().with_delay(Duration::from_micros(100), Duration::from_micros(300))
        };
        let net_seed = rng.below(u64::MAX);
        let voters_seen = (1, bootstrap_group(&settings), 0);
        Self {
            net: SimNetwork::new(net_seed, faults),
            settings,
            clock: SimClock::new(),
            base: BASE.with(|b| *b),
            rng,
            replicas,
            group,
            clients,
            deferred: BinaryHeap::new(),
            deferred_seq: 0,
            history: Vec::new(),
            acked: Vec::new(),
            next_tick: SimInstant::ZERO,
            next_fault: SimInstant::ZERO + Duration::from_millis(300),
            repairs: Vec::new(),
            faults: 0,
            group_changes: 0,
            voters_seen,
            trace: std::env::var_os("CHAIN_TRACE").is_some(),
        }
    }

    /// Runs the whole scenario and checks it.
    pub fn run(mut self) -> SimReport {
        let load_end = SimInstant::ZERO + self.settings.duration;
        let end = load_end + self.settings.quiesce;
        let mut healed = false;
        loop {
            let now = self.clock.now();
            let issuing = now < load_end;
            if !issuing && !healed {
                healed = true;
                self.heal_everything();
            }
            let mut next = self.next_tick;
            if let Some(due) = self.net.next_due() {
                next = next.min(due);
            }
            if let Some(Reverse((due, ..))) = self.deferred.peek() {
                next = next.min(*due);
            }
            for client in &self.clients {
                if issuing || !client.is_idle() {
                    next = next.min(client.next_event());
                }
            }
            if self.settings.nemesis && issuing {
                next = next.min(self.next_fault);
                for (due, _) in &self.repairs {
                    next = next.min(*due);
                }
            }
            if next > end {
                break;
            }
            self.clock.advance_to(next.max(now));
            let now = self.clock.now();
            while let Some((from, to, packet)) = self.net.pop_due(now) {
                self.arrive(from, to, packet, now);
            }
            while self
                .deferred
                .peek()
                .is_some_and(|Reverse((due, ..))| *due <= now)
            {
                if let Some(Reverse((_, _, id, DeferredPacket(from, packet)))) = self.deferred.pop()
                {
                    self.deliver_replica(id, from, packet, now);
                }
            }
            if now >= self.next_tick {
                self.next_tick = now + TICK;
                self.tick_all(now);
            }
            if self.settings.nemesis && issuing {
                self.nemesis(now);
            }
            self.drive_clients(issuing, now);
            self.flush_all(now);
        }
        self.report(load_end)
    }

    fn report(self, load_end: SimInstant) -> SimReport {
        let final_config = self
            .group
            .values()
            .filter_map(|g| g.node.as_ref())
            .map(|n| n.committed().clone())
            .max_by_key(|c| c.epoch)
            .unwrap_or_else(|| ChainConfig::initial(&[]));
        // Healthy end: the final configuration's tail is up (same incarnation) and caught up
        // in it; every acknowledged write must be in its state. Otherwise the chain is stuck
        // (it waits rather than risk a loss): every acknowledged write must then still be held,
        // applied or pending, by the most complete live replica.
        let tail = final_config.tail().and_then(|tail| {
            self.replicas
                .get(&tail.id)
                .and_then(|r| r.replica.as_ref())
                .filter(|r| {
                    r.incarnation() == tail.incarnation
                        && r.is_synced()
                        && r.config().is_some_and(|c| c.epoch == final_config.epoch)
                })
        });
        let stuck = tail.is_none();
        // What a replica holds: applied writes and, pending in its log, writes that a tail
        // may have committed and that it would commit if it became the tail.
        let held = |replica: &Replica<RecordingKv>| {
            let mut ids = replica.machine().applied.clone();
            ids.extend(replica.pending_entries().map(|entry| entry.command.id));
            ids
        };
        let state = match tail {
            Some(tail) => tail.machine().applied.clone(),
            None => self
                .replicas
                .values()
                .filter_map(|r| r.replica.as_ref())
                .map(held)
                .max_by_key(|ids| ids.len())
                .unwrap_or_default(),
        };
        let lost: Vec<&(u64, u64)> = self.acked.iter().filter(|id| !state.contains(id)).collect();
        if !lost.is_empty() {
            eprintln!("lost acknowledged writes (stuck: {stuck}): {lost:?}");
        }
        let lost_writes = lost.len();
        let (verdict, failing_key) = linearizability::check_kv_explained(&self.history, 5_000_000);
        if let Some(key) = &failing_key {
            eprintln!("not linearizable on key {key}:");
            for (_, op) in self.history.iter().filter(|(k, _)| k == key) {
                eprintln!(
                    "  {:>12} .. {:>12?} {:?} -> {:?}",
                    op.call, op.ret, op.input, op.output
                );
            }
        }
        let reads_during_load = self
            .history
            .iter()
            .filter(|(_, op)| {
                matches!(op.input, KvInput::Get)
                    && op.ret.is_some_and(|ret| ret <= load_end.as_nanos())
            })
            .count();
        let mean = |reads: bool| {
            let latencies: Vec<u64> = self
                .history
                .iter()
                .filter(|(_, op)| matches!(op.input, KvInput::Get) == reads)
                .filter_map(|(_, op)| op.ret.map(|ret| ret - op.call))
                .collect();
            let count = latencies.len().max(1) as u64;
            Duration::from_nanos(latencies.iter().sum::<u64>() / count)
        };
        SimReport {
            stuck,
            read_latency: mean(true),
            write_latency: mean(false),
            verdict,
            lost_writes,
            completed: self.clients.iter().map(|c| c.completed).sum(),
            reads_completed: self.clients.iter().map(|c| c.reads_completed).sum(),
            given_up: self.clients.iter().map(|c| c.given_up).sum(),
            reconfigurations: final_config.epoch.saturating_sub(1),
            faults: self.faults,
            group_changes: self.group_changes,
            group_changes_done: self.voters_seen.2,
            read_throughput: reads_during_load as f64 / self.settings.duration.as_secs_f64(),
            final_config,
        }
    }

    fn heal_everything(&mut self) {
        self.net.heal_all();
        let repairs = std::mem::take(&mut self.repairs);
        let now = self.clock.now();
        for (_, repair) in repairs {
            self.repair(repair, now);
        }
        let mut faults = self.net.faults().clone();
        faults.loss = 0.0;
        faults.duplicate = 0.0;
        self.net.set_faults(faults);
    }

    fn arrive(&mut self, from: Peer, to: Peer, packet: Packet, now: SimInstant) {
        if self.trace && !matches!(packet, Packet::Raft(_)) {
            eprintln!("{now:?} {from:?} -> {to:?}: {packet:?}");
        }
        match to {
            Peer::Replica(id) => {
                if let Some(service) = self.settings.service_time
                    && let Some(replica) = self.replicas.get_mut(&id)
                {
                    let start = replica.busy_until.max(now);
                    replica.busy_until = start + service;
                    self.deferred_seq += 1;
                    self.deferred.push(Reverse((
                        replica.busy_until,
                        self.deferred_seq,
                        id,
                        DeferredPacket(from, packet),
                    )));
                } else {
                    self.deliver_replica(id, from, packet, now);
                }
            }
            Peer::Config(id) => {
                let Some(group_node) = self.group.get_mut(&id) else {
                    return;
                };
                let local = group_node.skew.local(self.base, now);
                let Some(node) = group_node.node.as_mut() else {
                    return;
                };
                match packet {
                    Packet::Raft(message) => node.handle_raft(*message, local),
                    Packet::Control(message) => node.handle_control(from, message, local),
                    Packet::Chain(_) => {}
                }
                self.drain_group(id, now);
            }
            Peer::Client(id) => {
                let index = (id.0 - 1000) as usize;
                let Some(client) = self.clients.get_mut(index) else {
                    return;
                };
                match packet {
                    Packet::Chain(message) => {
                        let outgoing = client.on_message(
                            message,
                            &mut self.rng,
                            self.settings.think,
                            now,
                            &mut self.history,
                            &mut self.acked,
                        );
                        if let Some(outgoing) = outgoing {
                            self.send_client(index, outgoing, now);
                        }
                    }
                    Packet::Control(ControlMessage::ConfigUpdate { config })
                        if client
                            .config
                            .as_ref()
                            .is_none_or(|c| c.epoch < config.epoch) =>
                    {
                        client.config = Some(config);
                    }
                    _ => {}
                }
            }
        }
    }

    fn deliver_replica(&mut self, id: ReplicaId, from: Peer, packet: Packet, now: SimInstant) {
        let Some(sim) = self.replicas.get_mut(&id) else {
            return;
        };
        let local = sim.skew.local(self.base, now);
        let Some(replica) = sim.replica.as_mut() else {
            return;
        };
        match (from, packet) {
            (_, Packet::Chain(message)) => replica.handle_message(from, message, local),
            (Peer::Config(group), Packet::Control(message)) => {
                replica.handle_control(group, message, local);
            }
            _ => {}
        }
        self.drain_replica(id, now);
    }

    fn tick_all(&mut self, now: SimInstant) {
        let ids: Vec<u64> = self.group.keys().copied().collect();
        for id in ids {
            if let Some(group_node) = self.group.get_mut(&id) {
                let local = group_node.skew.local(self.base, now);
                if let Some(node) = group_node.node.as_mut() {
                    node.handle_tick(local);
                }
            }
            self.drain_group(id, now);
        }
        let ids: Vec<ReplicaId> = self.replicas.keys().copied().collect();
        for id in ids {
            if let Some(sim) = self.replicas.get_mut(&id) {
                let local = sim.skew.local(self.base, now);
                if let Some(replica) = sim.replica.as_mut() {
                    replica.handle_tick(local);
                }
            }
            self.drain_replica(id, now);
        }
    }

    fn flush_all(&mut self, now: SimInstant) {
        let ids: Vec<ReplicaId> = self.replicas.keys().copied().collect();
        for id in ids {
            // A busy replica (modelled service time) flushes once its queue is drained, as
            // an event loop does after reading everything its socket holds.
            // (At least every millisecond, so a saturated replica still acknowledges.)
            if let Some(sim) = self.replicas.get_mut(&id) {
                if sim.busy_until > now && now < sim.last_flush + FLUSH_EVERY {
                    continue;
                }
                sim.last_flush = now;
            }
            if let Some(sim) = self.replicas.get_mut(&id) {
                let local = sim.skew.local(self.base, now);
                if let Some(replica) = sim.replica.as_mut() {
                    replica.flush(local);
                }
            }
            self.drain_replica(id, now);
        }
    }

    fn drain_replica(&mut self, id: ReplicaId, now: SimInstant) {
        let Some(sim) = self.replicas.get_mut(&id) else {
            return;
        };
        let Some(replica) = sim.replica.as_mut() else {
            return;
        };
        // The journal reaches the disk before anything the replica asked for leaves.
        if let Some((_, Some(store))) = sim.disk.as_mut() {
            let journal = replica.take_journal();
            if !journal.is_empty() {
                store
                    .write(journal, self.base)
                    .expect("the simulated disk never fails");
            }
        }
        let mut out = Vec::new();
        while let Some(action) = replica.poll_action() {
            out.push(action);
        }
        for action in out {
            match action {
                Action::Send { to, message } => {
                    self.net
                        .send(Peer::Replica(id), to, Packet::Chain(message), now);
                }
                Action::Control { to, message } => {
                    self.net.send(
                        Peer::Replica(id),
                        Peer::Config(to),
                        Packet::Control(message),
                        now,
                    );
                }
            }
        }
    }

    fn drain_group(&mut self, id: u64, now: SimInstant) {
        let Some(node) = self.group.get_mut(&id).and_then(|g| g.node.as_mut()) else {
            return;
        };
        let mut out = Vec::new();
        while let Some(action) = node.poll_action() {
            out.push(action);
        }
        let committed = node.committed();
        if committed.epoch > self.voters_seen.0 {
            let voters = committed.lease_group(&bootstrap_group(&self.settings));
            if voters != self.voters_seen.1 {
                self.voters_seen.2 += 1;
            }
            self.voters_seen = (committed.epoch, voters, self.voters_seen.2);
        }
        for action in out {
            match action {
                GroupAction::Raft { to, message } => self.net.send(
                    Peer::Config(id),
                    Peer::Config(to),
                    Packet::Raft(Box::new(message)),
                    now,
                ),
                GroupAction::Send { to, message } => {
                    self.net
                        .send(Peer::Config(id), to, Packet::Control(message), now);
                }
            }
        }
    }

    fn drive_clients(&mut self, issuing: bool, now: SimInstant) {
        for index in 0..self.clients.len() {
            let client = &mut self.clients[index];
            let outgoing = if client.is_idle() {
                if !issuing || now < client.next_op_at {
                    continue;
                }
                Some(client.start(
                    &mut self.rng,
                    self.settings.keys,
                    self.settings.read_fraction,
                    self.settings.deadline,
                    now,
                    &mut self.history,
                ))
            } else if now >= client.next_event() {
                client.on_timer(&mut self.rng, now)
            } else {
                None
            };
            if let Some(outgoing) = outgoing {
                self.send_client(index, outgoing, now);
            }
        }
    }

    fn send_client(&mut self, index: usize, outgoing: Outgoing, now: SimInstant) {
        let Some(client) = self.clients.get_mut(index) else {
            return;
        };
        let from = Peer::Client(client.id);
        if outgoing.refresh || client.config.is_none() {
            // The bootstrap group or, once a configuration names one, its voters.
            let known = client
                .config
                .as_ref()
                .map(|c| c.lease_group(&bootstrap_group(&self.settings)))
                .unwrap_or_else(|| bootstrap_group(&self.settings));
            let group = known[self.rng.below(known.len() as u64) as usize];
            self.net.send(
                from,
                Peer::Config(group),
                Packet::Control(ControlMessage::ConfigQuery),
                now,
            );
        }
        let Some(config) = &client.config else { return };
        let target = match outgoing.target {
            Target::Head => config.head(),
            Target::Reader if self.settings.craq => client.pick_reader(&mut self.rng, now),
            Target::Reader => config.tail(),
        };
        if let Some(member) = target {
            self.net.send(
                from,
                Peer::Replica(member.id),
                Packet::Chain(outgoing.message),
                now,
            );
        }
    }
}

/// The raft ids of the bootstrap group.
fn bootstrap_group(settings: &SimSettings) -> Vec<u64> {
    (1..=settings.group_size as u64).collect()
}

fn replica_settings(settings: &SimSettings, group: Vec<u64>) -> ReplicaSettings {
    let mut replica = ReplicaSettings::new(group);
    replica.lease = settings.lease;
    replica.fence_wait = settings.fence_wait;
    replica.journal = settings.durable;
    if settings.nemesis {
        // Fault runs: tiny catch-up messages and history, so that every run sends snapshots
        // and entries in many chunks (a snapshot here is a few hundred bytes). Measurement
        // runs keep the defaults: chunking is what fault runs test, not what they measure.
        replica.sync_chunk = 48;
        replica.sync_window = 3;
        replica.history = 8;
    }
    replica
}

/// A group node whose raft state is in a [`GroupStore`] on its simulated disk, rebuilt from
/// what the disk holds.
fn open_group(id: u64, settings: &GroupSettings, disk: &Arc<MemStorage>) -> ConfigNode {
    let (store, recovered, _) = GroupStore::open(disk.clone(), Path::new("/group"))
        .expect("a simulated disk written only by the group store opens");
    ConfigNode::with_journal(id, settings.clone(), recovered, Box::new(store))
        .expect("raft accepts what the group store recovered")
}

/// Opens a replica's store on its simulated disk.
fn open_store(storage: &Arc<MemStorage>) -> (ReplicaStore, crate::checkpoint::Opened<RecordingKv>) {
    ReplicaStore::open(
        storage.clone(),
        Path::new("/replica"),
        LogConfig::new(FsyncPolicy::Always),
    )
    .expect("a simulated disk written only by the store opens")
}

thread_local! {
    /// One anchor per thread so that every `Instant` handed to the cores is derived from it.
    static BASE: Instant = Instant::now();
}
