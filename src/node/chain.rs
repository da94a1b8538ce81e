//! The node's chain services: per shard a replica, a configuration-group node where this
//! node is one, and a client; and the router that carries their packets over the remoting
//! layer.
//!
//! # How chains are configured
//!
//! - The configuration group is named by addresses given identically to every node
//!   ([`NodeConfig::chain_group`](super::NodeConfig::chain_group), CLI `--chain-group
//!   ADDR,ADDR,ADDR`); an empty list disables chains. A group member's raft id is its
//!   position (from 1) in the sorted list. (Not a hash of its address, as first planned:
//!   the raft core staggers election timeouts by raft id, which must therefore be small.)
//! - A node whose listen address is in the list runs a configuration-group node.
//! - Every node with chains enabled runs one replica, whose id is the node's 64-bit
//!   membership id and whose incarnation is the node's incarnation shifted left 16 bits plus
//!   the number of restarts of the replica actor (without a data directory a restart loses
//!   the replica's state, so it must come back as a new member). With a data directory
//!   ([`NodeConfig::data_dir`](super::NodeConfig::data_dir)) the replica keeps its log,
//!   snapshots and incarnation in `chain/<shard>/` there, synced before anything depending on
//!   them is sent: a restarted replica (actor or process) is the same member with the same
//!   state, and a whole cluster stopped and started again keeps every acknowledged write. A
//!   group node keeps its raft log in `group/` (shard 0) or `group.<shard>/` the same way.
//! - The replica asks the group for leases, and the group appends it at the tail of the
//!   chain until the chain has [`CHAIN_LENGTH`] members; the first configuration is empty.
//! - Chains need a cluster key: raft messages are decoded only from authenticated frames.
//!
//! # Changing the configuration group
//!
//! The `--chain-group` list is the *bootstrap* group and never changes; the group's voters
//! may. A node started with `--chain-group-standby`
//! ([`NodeConfig::chain_group_standby`](super::NodeConfig::chain_group_standby)) runs
//! configuration-group nodes that are not voters: its raft id is [`standby_raft_id`] of its
//! listen address (a hash, so every node computes it alike, and never one of the bootstrap
//! ids). `phalanx chain group --voters ADDR,ADDR,ADDR` asks each shard's group leader to move
//! to those voters through raft's joint consensus
//! ([`ConfigNode::change_group`](phalanx_actors::chain::ConfigNode::change_group)); a
//! committed chain configuration then names the new voters with their addresses
//! ([`ChainConfig::group`]), which is how every node learns where a new group node is. A
//! voter removed from the group keeps running as a non-voter; it may be stopped.
//!
//! # Shards and placement
//!
//! [`NodeConfig::chain_shards`](super::NodeConfig::chain_shards) (CLI `--chain-shards N`,
//! default 1, the same on every node) splits the key space into `N` independent chains.
//! Shard `s` has everything a single chain has, separately: on every group node its own
//! configuration-group node (its own raft group, with the same raft ids), on every replica
//! node its own replica (same replica id, the node's membership id), on every node its own
//! client. Nothing is shared between shards but the router and the connections.
//!
//! - **Keys to shards**: key `k` belongs to shard [`shard_of(k, N)`](shard_of): the 64-bit
//!   FNV-1a hash of the key's UTF-8 bytes, modulo `N`. The hash is fixed by this crate (not
//!   `std`'s randomly keyed hasher) and will not change between versions, since changing it
//!   would move keys between chains.
//! - **Shards to nodes**: rendezvous hashing ([`place_chain`](phalanx_actors::chain::place_chain)).
//!   Each shard's group leader appends, of the live replicas that are not members, the one
//!   with the highest rendezvous score for the shard; and when the chain is full, every
//!   member caught up and a live replica with a better score than a member is waiting, it
//!   removes that member (the better one is then appended and catches up). A chain so
//!   converges to `place_chain(s, live replicas, 3)`, and different shards land on different
//!   nodes. A failed member is removed as with one chain, and its place taken by the best
//!   live candidate. With one shard the group keeps the earlier rule (lowest id first, no
//!   rebalancing): with one chain there is nothing to spread.
//!
//! # Routing
//!
//! Every node exports one router actor as [`CHAIN_NAME`]. A packet for a replica goes to the
//! node whose membership id is the replica id (from the membership table), one for a group
//! node to that group address, one for a client to the node named by the client's route.
//! Each packet travels with its shard number ([`ChainWire`]), and the router there hands it
//! to that shard's actor (a shard the node does not serve drops it).
//! Each destination address has its own sender task with a bounded queue: a packet that does
//! not fit, or whose destination is unknown or unreachable, is dropped (the chain protocols
//! retransmit, and clients retry with the same request id).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use phalanx_actors::chain::driver::{
    Body, ChainTransport, ClientActor, ClientInput, ClientSettings, DriverSettings, DurableReplica,
    GroupActor, GroupInput, GroupStatus, Inbound, Packet, ReplicaActor, ReplicaInput,
    ReplicaStatus,
};
use phalanx_actors::chain::{
    ChainConfig, ClientId, ControlMessage, GroupChangeError, GroupSeat, GroupSettings, KvMap, Peer,
    Replica, ReplicaId, ReplicaSettings, decode,
};
use phalanx_actors::checkpoint::{DataDir, Storage};
use phalanx_actors::clock::Clock;
use phalanx_runtime::{Actor, ActorRef, Context, HandlerError};
use phalanx_supervisors::ChildSpec;
use phalanx_transports::{NodeId, RemoteMessage, Remoting};
use serde::{Deserialize, Serialize};

use super::{MemberRow, NodeConfig};

/// The remoting name of every node's chain router.
pub const CHAIN_NAME: &str = "phalanx.chain";
/// How many replicas a chain should have.
pub const CHAIN_LENGTH: usize = 3;

/// How long a connection or lookup to another node's router may take.
const CONNECT: Duration = Duration::from_secs(2);
/// Packets queued per destination before new ones are dropped.
const QUEUE: usize = 65_536;
/// The most packets in one [`ChainWire`].
const BATCH: usize = 1_024;
/// The most bytes of packets in one [`ChainWire`]: well under the remoting layer's stream
/// frame limit (1 MiB by default).
const BATCH_BYTES: usize = 768 * 1024;
/// The bytes of one catch-up message (entries or a snapshot chunk): a few fit in one batch.
const SYNC_CHUNK: usize = 256 * 1024;
/// Catch-up messages per request: 8 MiB in flight, so that a large snapshot costs few round
/// trips.
const SYNC_WINDOW: usize = 32;
/// Committed entries a replica keeps in memory for successors that catch up (besides its
/// log): one further behind takes a snapshot. 10,000 entries cover a restart of a few
/// seconds at full write rate; the sans-IO default of 100,000 costs every write the upkeep of
/// a larger history for little gain.
const HISTORY: usize = 10_000;
/// Read-lease length of the node's replicas (the fence wait is 1.5 times this). Longer than
/// the sans-IO defaults: a node process on a busy machine can be descheduled for hundreds of
/// milliseconds, and a lease that lapses or a replica that seems silent starts a
/// reconfiguration.
const LEASE: Duration = Duration::from_millis(600);
/// How long a replica may stay silent (or make no progress) before it is removed. Failover
/// takes about this plus the fence wait.
const SUSPECT_AFTER: Duration = Duration::from_secs(1);
/// The most shards a node serves: [`NodeConfig::chain_shards`] above it counts as this (each
/// shard costs a few actors and, on group nodes, a raft group ticking every 20 ms).
const MAX_SHARDS: u32 = 1024;
/// The most group seats outside the bootstrap list a node remembers.
const MAX_SEATS: usize = 256;
/// The mailbox capacity of the chain actors (they take bursts of pipelined requests).
pub(crate) const MAILBOX: usize = 65_536;

/// Chain packets between nodes' routers: whatever was queued for that node, in order (one
/// remote message for many packets when the chain is busy), each with the shard whose actors
/// it is for.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChainWire(pub Vec<(u32, Packet)>);

impl RemoteMessage for ChainWire {
    const TAG: &'static str = "phalanx.ChainWire.v4";
}

/// The shard of `key` among `shards` chains: the 64-bit FNV-1a hash of the key's UTF-8 bytes
/// modulo `shards` (0 for `shards` of 0 or 1).
///
/// This function is part of the data layout: it is the same in every process and will not
/// change between versions (a change would move keys between chains).
///
/// # Examples
///
/// ```
/// use phalanx::node::shard_of;
///
/// assert_eq!(shard_of("anything", 1), 0);
/// assert!(shard_of("greeting", 4) < 4);
/// assert_eq!(shard_of("greeting", 4), shard_of("greeting", 4));
/// ```
pub fn shard_of(key: &str, shards: u32) -> u32 {
    if shards <= 1 {
        return 0;
    }
    // The remainder is below `shards`, a u32.
    (fnv1a(key.as_bytes()) % u64::from(shards)) as u32
}

/// The 64-bit FNV-1a hash.
fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// The raft id of a standby group node listening on `addr`: the 64-bit FNV-1a hash of the
/// address as text, with the top bit set so that it is never a bootstrap id (those count
/// from 1) nor 0. Fixed by this crate, like [`shard_of`].
pub fn standby_raft_id(addr: SocketAddr) -> u64 {
    fnv1a(addr.to_string().as_bytes()) | (1 << 63)
}

/// The raft id of `addr` in the sorted bootstrap group: its position, counted from 1.
fn bootstrap_id(group: &[SocketAddr], addr: SocketAddr) -> Option<u64> {
    group.iter().position(|a| *a == addr).map(|i| i as u64 + 1)
}

/// What this node's chain services share: identities, names and routes.
#[derive(Debug)]
pub(crate) struct ChainServices {
    remoting: Arc<Remoting>,
    table: Arc<Mutex<Vec<MemberRow>>>,
    /// This node's membership id, which is also its replica id and its clients' route.
    pub(crate) me: u64,
    /// The group's addresses, sorted: raft id `i + 1` is `group[i]`.
    group: Vec<SocketAddr>,
    /// This node's raft id, if it runs group nodes (bootstrap member or standby).
    pub(crate) raft_id: Option<u64>,
    /// Group nodes outside the bootstrap list: raft id to address, learned from committed
    /// configurations and membership changes (at most [`MAX_SEATS`]).
    seats: Mutex<BTreeMap<u64, SocketAddr>>,
    /// Whether frames from other nodes are authenticated (the node has a cluster key).
    authenticated: bool,
    /// Local registry names of this node's chain actors, by shard (never empty).
    pub(crate) names: Vec<ChainNames>,
    /// Sender queues by destination address.
    peers: Mutex<HashMap<SocketAddr, flume::Sender<(u32, Packet)>>>,
    /// Incarnation base for the replicas: the node's incarnation shifted left 16 bits.
    incarnation: u64,
    /// Restarts of each shard's replica actor so far.
    restarts: Vec<AtomicU64>,
    /// Whether this node runs a replica (else it is client-only).
    replica: bool,
    /// Where the chain's durable state lives, if the node has a data directory.
    durable: Option<DurablePaths>,
    /// The clock every chain actor of this node reads (skewed by the admin request
    /// `AdminRequest::Clock`, for fault injection).
    pub(crate) clock: Clock,
}

/// One shard's answer to a change of the group's voters (`phalanx chain group`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GroupChange {
    /// The shard.
    pub shard: u32,
    /// Started, or why not (text, for the operator).
    pub outcome: Result<(), String>,
    /// When the node asked is not the shard's group leader: the leader's address, if known.
    pub leader: Option<SocketAddr>,
}

/// The chain's places in the node's data directory.
#[derive(Debug, Clone)]
struct DurablePaths {
    storage: Arc<dyn Storage>,
    /// The replicas' stores, by shard.
    replicas: Vec<PathBuf>,
    /// The configuration-group nodes' raft logs, by shard.
    groups: Vec<PathBuf>,
}

/// The local registry names of a node's chain actors.
#[derive(Debug, Clone)]
pub(crate) struct ChainNames {
    pub(crate) replica: String,
    pub(crate) group: String,
    pub(crate) client: String,
}

impl ChainServices {
    /// Whether `addr` is one of the configuration group's addresses.
    pub(crate) fn is_group_address(&self, addr: SocketAddr) -> bool {
        self.group.contains(&addr)
    }

    pub(crate) fn new(
        remoting: Arc<Remoting>,
        table: Arc<Mutex<Vec<MemberRow>>>,
        (node, incarnation): (NodeId, u64),
        config: &NodeConfig,
        data_dir: Option<&DataDir>,
    ) -> ChainServices {
        let (group, authenticated, replica) = (
            &config.chain_group,
            config.key.is_some(),
            config.chain_replica,
        );
        let mut group = group.to_vec();
        group.sort();
        group.dedup();
        let listen = remoting.local_addr();
        let raft_id = bootstrap_id(&group, listen)
            .or_else(|| config.chain_group_standby.then(|| standby_raft_id(listen)));
        let shards = config.chain_shards.clamp(1, MAX_SHARDS);
        // Shard 0 keeps the names it had before shards existed.
        let names = (0..shards)
            .map(|shard| {
                let tag = if shard == 0 {
                    String::new()
                } else {
                    format!("{shard}.")
                };
                ChainNames {
                    replica: format!("phalanx.chain.replica.{tag}{node}"),
                    group: format!("phalanx.chain.group.{tag}{node}"),
                    client: format!("phalanx.chain.client.{tag}{node}"),
                }
            })
            .collect();
        ChainServices {
            me: super::gossip::member_node(node).0,
            remoting,
            table,
            group,
            raft_id,
            seats: Mutex::new(BTreeMap::new()),
            authenticated,
            names,
            peers: Mutex::new(HashMap::new()),
            incarnation: incarnation << 16,
            restarts: (0..shards).map(|_| AtomicU64::new(0)).collect(),
            replica,
            clock: Clock::system(),
            durable: data_dir.map(|dir| DurablePaths {
                storage: dir.storage(),
                replicas: (0..shards).map(|s| dir.shard_dir(u64::from(s))).collect(),
                groups: (0..shards)
                    .map(|s| dir.group_dir_of(u64::from(s)))
                    .collect(),
            }),
        }
    }

    /// How many shards (chains) the node serves.
    pub(crate) fn shards(&self) -> u32 {
        // At most `MAX_SHARDS`: fits a u32.
        self.names.len() as u32
    }

    /// The local registry names of the node's clients, by shard.
    pub(crate) fn client_names(&self) -> Vec<String> {
        self.names.iter().map(|n| n.client.clone()).collect()
    }

    fn group_ids(&self) -> Vec<u64> {
        (1..=self.group.len() as u64).collect()
    }

    /// The supervised children: the router, then per shard the group node (if a member),
    /// the replica and the client.
    pub(crate) fn children(self: &Arc<Self>) -> Vec<ChildSpec> {
        let mut specs = Vec::new();
        let services = self.clone();
        specs.push(
            ChildSpec::new("chain", move || Router {
                services: services.clone(),
            })
            .capacity(MAILBOX),
        );
        for shard in 0..self.shards() {
            specs.extend(self.shard_children(shard));
        }
        specs
    }

    /// Shard `shard`'s children: group node (if a member), replica, client.
    fn shard_children(self: &Arc<Self>, shard: u32) -> Vec<ChildSpec> {
        let index = shard as usize;
        let names = &self.names[index];
        // Shard 0 keeps the child names it had before shards existed.
        let child = |name: &str| match shard {
            0 => name.to_owned(),
            shard => format!("{name}.{shard}"),
        };
        let mut specs = Vec::new();
        if let Some(id) = self.raft_id {
            let services = self.clone();
            specs.push(
                ChildSpec::new(child("chain.group"), move || {
                    let mut settings =
                        GroupSettings::new(services.group_ids(), ChainConfig::initial(&[]));
                    settings.target_length = CHAIN_LENGTH;
                    settings.suspect_after = SUSPECT_AFTER;
                    // One chain has nothing to spread: it keeps the rule it always had.
                    if services.shards() > 1 {
                        settings.placement = Some(u64::from(shard));
                    }
                    let mut driver = DriverSettings::default();
                    driver.tick = Duration::from_millis(20);
                    driver.clock = services.clock.clone();
                    let transport = Arc::new(Transport(services.clone(), shard));
                    match &services.durable {
                        Some(paths) => GroupActor::durable(
                            id,
                            settings,
                            paths.storage.clone(),
                            paths.groups[index].clone(),
                            transport,
                            driver,
                        ),
                        None => GroupActor::with_settings(id, settings, transport, driver),
                    }
                    .with_seats_listener({
                        let services = Arc::downgrade(&services);
                        move |seats| {
                            if let Some(services) = services.upgrade() {
                                services.learn_seats(seats);
                            }
                        }
                    })
                })
                .registered(names.group.clone())
                .capacity(MAILBOX),
            );
        }
        if self.replica {
            let services = self.clone();
            specs.push(
                ChildSpec::new(child("chain.replica"), move || {
                    let restarts = services.restarts[index].fetch_add(1, Ordering::Relaxed);
                    let incarnation = services.incarnation | (restarts & 0xffff);
                    let mut settings = ReplicaSettings::new(services.group_ids());
                    settings.lease = LEASE;
                    settings.fence_wait = LEASE * 3 / 2;
                    settings.suspect_after = SUSPECT_AFTER;
                    settings.sync_chunk = SYNC_CHUNK;
                    settings.sync_window = SYNC_WINDOW;
                    settings.history = HISTORY;
                    let mut driver = DriverSettings::default();
                    driver.clock = services.clock.clone();
                    let transport = Arc::new(Transport(services.clone(), shard));
                    match &services.durable {
                        Some(paths) => {
                            let durable = DurableReplica::new(
                                ReplicaId(services.me),
                                settings,
                                incarnation,
                                paths.storage.clone(),
                                paths.replicas[index].clone(),
                            );
                            ReplicaActor::<KvMap, _>::durable(&durable, transport, driver)
                        }
                        None => {
                            let replica = Replica::<KvMap>::new(
                                ReplicaId(services.me),
                                incarnation,
                                settings,
                            );
                            ReplicaActor::new(replica, transport, driver)
                        }
                    }
                })
                .registered(names.replica.clone())
                .capacity(MAILBOX),
            );
        }
        let services = self.clone();
        specs.push(
            ChildSpec::new(child("chain.client"), move || {
                // A fresh random id per life: a restarted client starts a new session.
                let id = NodeId::random()
                    .map(|id| id.as_u128() as u64)
                    .unwrap_or_else(|_| {
                        services.me
                            ^ services.restarts[index].load(Ordering::Relaxed)
                            ^ u64::from(shard) << 48
                    });
                let mut settings =
                    ClientSettings::new(ClientId(id), services.me, services.group_ids());
                settings.clock = services.clock.clone();
                ClientActor::<KvMap, _>::new(settings, Arc::new(Transport(services.clone(), shard)))
            })
            .registered(names.client.clone())
            .capacity(MAILBOX),
        );
        specs
    }

    /// Hands a packet that arrived (or was sent locally) to shard `shard`'s local actor it is
    /// for.
    fn deliver(&self, shard: u32, inbound: Inbound) {
        self.learn_from(&inbound);
        let Some(names) = self.names.get(shard as usize) else {
            tracing::debug!(shard, "chain packet for a shard this node does not serve");
            return;
        };
        match inbound.packet.to {
            Peer::Replica(ReplicaId(id)) if id == self.me => {
                if let Some(replica) =
                    phalanx_runtime::registry::whereis::<ReplicaInput>(&names.replica)
                {
                    let _ = replica.try_tell(ReplicaInput::Packet(inbound));
                }
            }
            Peer::Config(id) if Some(id) == self.raft_id => {
                if let Some(group) = phalanx_runtime::registry::whereis::<GroupInput>(&names.group)
                {
                    let _ = group.try_tell(GroupInput::Packet(inbound));
                }
            }
            Peer::Client(_) => {
                // The client checks that the packet is for its current id.
                if let Some(client) =
                    phalanx_runtime::registry::whereis::<ClientInput<KvMap>>(&names.client)
                {
                    let _ = client.try_tell(ClientInput::Packet(inbound));
                }
            }
            _ => tracing::debug!(to = ?inbound.packet.to, "chain packet for someone else"),
        }
    }

    /// The address of group node `id`: a bootstrap member by its position, any other by
    /// what the node learned.
    fn group_address(&self, id: u64) -> Option<SocketAddr> {
        if let Some(addr) = usize::try_from(id)
            .ok()
            .and_then(|id| id.checked_sub(1))
            .and_then(|index| self.group.get(index))
        {
            return Some(*addr);
        }
        self.seats.lock().ok()?.get(&id).copied()
    }

    /// The seat of the group node listening on `addr`: its bootstrap id, or its standby id.
    pub(crate) fn seat_of(&self, addr: SocketAddr) -> GroupSeat {
        let id = bootstrap_id(&self.group, addr).unwrap_or_else(|| standby_raft_id(addr));
        GroupSeat {
            id,
            address: addr.to_string(),
        }
    }

    /// Remembers where the group nodes of `seats` are (those with an address that parses).
    fn learn_seats(&self, seats: &[GroupSeat]) {
        let Ok(mut known) = self.seats.lock() else {
            return;
        };
        for seat in seats {
            if let Ok(addr) = seat.address.parse::<SocketAddr>()
                && (known.len() < MAX_SEATS || known.contains_key(&seat.id))
            {
                known.insert(seat.id, addr);
            }
        }
    }

    /// Learns the group's seats from a configuration a group node sent (authenticated
    /// frames only: an address learned here receives raft and lease traffic).
    fn learn_from(&self, inbound: &Inbound) {
        let (Peer::Config(_), Body::Control(bytes), true) = (
            &inbound.packet.from,
            &inbound.packet.body,
            inbound.authenticated,
        ) else {
            return;
        };
        if let Ok(
            ControlMessage::ConfigUpdate { config } | ControlMessage::LeaseReply { config, .. },
        ) = decode::<ControlMessage>(bytes)
            && !config.group.is_empty()
        {
            self.learn_seats(&config.group);
        }
    }

    /// Asks every shard's local group node to change the group's voters to `voters`
    /// (addresses of bootstrap members or standby nodes). Each shard answers for itself; a
    /// shard whose local node is not the leader names the leader's address when known.
    pub(crate) async fn change_group(&self, voters: &[SocketAddr]) -> Vec<GroupChange> {
        let seats: Vec<GroupSeat> = voters.iter().map(|addr| self.seat_of(*addr)).collect();
        // The leader must reach the new voters before any configuration names them.
        self.learn_seats(&seats);
        let mut answers = Vec::new();
        for shard in 0..self.shards() {
            let group = self
                .names
                .get(shard as usize)
                .and_then(|names| phalanx_runtime::registry::whereis::<GroupInput>(&names.group));
            let (outcome, leader) = match group {
                None => (
                    Err("this node runs no configuration-group node".into()),
                    None,
                ),
                Some(group) => {
                    let seats = seats.clone();
                    match group
                        .ask(|reply| GroupInput::ChangeGroup(seats, reply), CONNECT)
                        .await
                    {
                        Ok(Ok(())) => (Ok(()), None),
                        Ok(Err(GroupChangeError::NotLeader { leader })) => (
                            Err("not the leader".into()),
                            leader.and_then(|id| self.group_address(id)),
                        ),
                        Ok(Err(error)) => (Err(error.to_string()), None),
                        Err(error) => (Err(error.to_string()), None),
                    }
                }
            };
            answers.push(GroupChange {
                shard,
                outcome,
                leader,
            });
        }
        answers
    }

    /// Hands the packets of one [`ChainWire`] to the local actors: those for a shard's
    /// replica, and those for a shard's client, each in one mailbox operation (in the order
    /// they came); group packets one by one.
    fn deliver_all(&self, packets: Vec<(u32, Packet)>) {
        let mut replicas: BTreeMap<u32, Vec<Inbound>> = BTreeMap::new();
        let mut clients: BTreeMap<u32, Vec<Inbound>> = BTreeMap::new();
        for (shard, packet) in packets {
            let inbound = Inbound {
                packet,
                authenticated: self.authenticated,
            };
            match inbound.packet.to {
                Peer::Replica(ReplicaId(id)) if id == self.me => {
                    self.learn_from(&inbound);
                    replicas.entry(shard).or_default().push(inbound);
                }
                Peer::Client(_) => {
                    self.learn_from(&inbound);
                    clients.entry(shard).or_default().push(inbound);
                }
                _ => self.deliver(shard, inbound),
            }
        }
        for (shard, batch) in replicas {
            if let Some(replica) = self.names.get(shard as usize).and_then(|names| {
                phalanx_runtime::registry::whereis::<ReplicaInput>(&names.replica)
            }) {
                let _ = replica.try_tell(ReplicaInput::Packets(batch));
            }
        }
        for (shard, batch) in clients {
            // The client checks that each packet is for its current id.
            if let Some(client) = self.names.get(shard as usize).and_then(|names| {
                phalanx_runtime::registry::whereis::<ClientInput<KvMap>>(&names.client)
            }) {
                let _ = client.try_tell(ClientInput::Packets(batch));
            }
        }
    }

    /// Where `packet` goes: `None` for this node, else the address of another.
    fn destination(&self, packet: &Packet) -> Option<Option<SocketAddr>> {
        let node = match packet.to {
            Peer::Replica(ReplicaId(id)) => id,
            Peer::Config(id) => {
                if Some(id) == self.raft_id {
                    return Some(None);
                }
                return self.group_address(id).map(Some);
            }
            Peer::Client(client) => packet
                .routes
                .iter()
                .find(|(c, _)| *c == client)
                .map(|(_, node)| *node)?,
        };
        if node == self.me {
            return Some(None);
        }
        let table = self.table.lock().ok()?;
        table
            .iter()
            .find(|row| row.node == node && (row.state == "alive" || row.state == "suspect"))
            .map(|row| Some(row.addr))
    }

    fn send(&self, shard: u32, packet: Packet) {
        match self.destination(&packet) {
            Some(None) => self.deliver(
                shard,
                Inbound {
                    packet,
                    authenticated: true,
                },
            ),
            Some(Some(addr)) => self.send_to(addr, shard, packet),
            None => tracing::trace!(to = ?packet.to, "no route for a chain packet"),
        }
    }

    fn send_to(&self, addr: SocketAddr, shard: u32, packet: Packet) {
        let Ok(mut peers) = self.peers.lock() else {
            return;
        };
        let sender = peers
            .entry(addr)
            .or_insert_with(|| {
                let (tx, rx) = flume::bounded(QUEUE);
                phalanx_runtime::spawn(pump(self.remoting.clone(), addr, rx)).detach();
                tx
            })
            .clone();
        drop(peers);
        let _ = sender.try_send((shard, packet));
    }

    /// Shard 0's replica's status, if it runs.
    pub(crate) async fn replica_status(&self) -> Option<ReplicaStatus> {
        self.replica_status_of(0).await
    }

    /// Shard 0's group node's status, if this node is one.
    pub(crate) async fn group_status(&self) -> Option<GroupStatus> {
        self.group_status_of(0).await
    }

    /// Shard `shard`'s replica's status, if it runs.
    pub(crate) async fn replica_status_of(&self, shard: u32) -> Option<ReplicaStatus> {
        let name = &self.names.get(shard as usize)?.replica;
        let replica = phalanx_runtime::registry::whereis::<ReplicaInput>(name)?;
        replica.ask(ReplicaInput::Status, CONNECT).await.ok()
    }

    /// Shard `shard`'s group node's status, if this node is one.
    pub(crate) async fn group_status_of(&self, shard: u32) -> Option<GroupStatus> {
        let name = &self.names.get(shard as usize)?.group;
        let group = phalanx_runtime::registry::whereis::<GroupInput>(name)?;
        group.ask(GroupInput::Status, CONNECT).await.ok()
    }

    /// The addresses of the members of `config`, as far as the membership table knows them.
    pub(crate) fn addresses(&self, config: &ChainConfig) -> Vec<(u64, Option<SocketAddr>)> {
        let table = self.table.lock().map(|t| t.clone()).unwrap_or_default();
        config
            .members
            .iter()
            .map(|member| {
                let addr = table
                    .iter()
                    .find(|row| row.node == member.id.0)
                    .map(|row| row.addr);
                (member.id.0, addr)
            })
            .collect()
    }
}

/// Sends the packets queued for `addr` to the router there, reconnecting as needed; ends when
/// the queue's sender is gone (the node stopped).
async fn pump(remoting: Arc<Remoting>, addr: SocketAddr, queue: flume::Receiver<(u32, Packet)>) {
    let mut router: Option<ActorRef<ChainWire>> = None;
    let mut next = None;
    loop {
        let first = match next.take() {
            Some(packet) => packet,
            None => match queue.recv_async().await {
                Ok(packet) => packet,
                Err(_) => break,
            },
        };
        // A batch stays under the stream frame limit (the rest waits for the next one).
        let mut bytes = packet_bytes(&first);
        let mut packets = vec![first];
        while packets.len() < BATCH
            && let Ok(packet) = queue.try_recv()
        {
            bytes += packet_bytes(&packet);
            if bytes > BATCH_BYTES {
                next = Some(packet);
                break;
            }
            packets.push(packet);
        }
        if router.as_ref().is_none_or(|r| !r.is_alive()) {
            router = connect(&remoting, addr).await;
            if router.is_none() {
                // Unreachable: drop what is queued (it would be stale), wait a little.
                while queue.try_recv().is_ok() {}
                phalanx_runtime::sleep(Duration::from_millis(100)).await;
                continue;
            }
        }
        if let Some(peer) = &router
            && peer.tell(ChainWire(packets)).await.is_err()
        {
            router = None;
        }
    }
}

/// About how many bytes a packet takes in a [`ChainWire`].
fn packet_bytes((_, packet): &(u32, Packet)) -> usize {
    let body = match &packet.body {
        Body::Chain(bytes) | Body::Control(bytes) | Body::Raft(bytes) => bytes.len(),
        _ => 0,
    };
    body + 64 + 16 * packet.routes.len()
}

async fn connect(remoting: &Remoting, addr: SocketAddr) -> Option<ActorRef<ChainWire>> {
    let node = remoting.connect(addr, CONNECT).await.ok()?;
    remoting
        .lookup::<ChainWire>(node, CHAIN_NAME, CONNECT)
        .await
        .ok()
}

/// The [`ChainTransport`] of this node's chain actors of one shard: it tags their packets
/// with the shard.
#[derive(Debug, Clone)]
pub(crate) struct Transport(Arc<ChainServices>, u32);

impl ChainTransport for Transport {
    fn send(&self, packet: Packet) {
        self.0.send(self.1, packet);
    }
}

/// Receives chain packets from other nodes and hands them to the local chain actors.
struct Router {
    services: Arc<ChainServices>,
}

impl Actor for Router {
    type Message = ChainWire;

    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), HandlerError> {
        self.services.remoting.unregister(CHAIN_NAME);
        self.services.remoting.register(CHAIN_NAME, &ctx.myself())?;
        Ok(())
    }

    async fn handle(&mut self, _: &mut Context<Self>, msg: ChainWire) -> Result<(), HandlerError> {
        self.services.deliver_all(msg.0);
        Ok(())
    }
}
