//! A phalanx node: the remoting layer plus the node's system services, as a supervised tree.
//!
//! ```text
//! root supervisor (one-for-one)
//! ├── gossip      SWIM membership over UDP datagrams; push-pull over the remoting streams
//! ├── admin       answers `phalanx members` and other operator requests
//! ├── discovery   seeds, DNS names, LAN beacons, mDNS: feeds join candidates to gossip
//! ├── chain         with `chain_group`: routes chain packets between nodes
//! ├── chain.group   on the nodes listed in `chain_group`: a configuration-group node (raft)
//! ├── chain.replica the node's chain replica
//! └── chain.client  the client behind [`Node::kv`]
//! ```
//!
//! With [`NodeConfig::chain_shards`] above 1, `chain.group`, `chain.replica` and
//! `chain.client` repeat for every shard `s` after 0 as `chain.group.s` and so on.
//!
//! How chains are configured and routed: see the `chain` module (`src/node/chain.rs`).
//!
//! Every service is an actor restarted by the root supervisor like any user actor. A node's
//! identity is a random 128-bit id drawn at start and an incarnation (the start time in
//! milliseconds), so a restarted process is a new member for monitors.

mod admin;
mod chain;
mod gossip;
mod kv;
mod metrics;

use std::any::Any;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use phalanx_actors::checkpoint::{DataDir, DataDirError, FsStorage};
use phalanx_actors::discovery::{
    BeaconTransport, CandidateSink, DiscoveryActor, DiscoveryConfig, DnsName, DriverConfig,
    MdnsConfig, MulticastConfig,
};
use phalanx_actors::gossip::Config as GossipConfig;
use phalanx_actors::registry::ClusterRegistry;
use phalanx_runtime::{ActorRef, Reply};
use phalanx_supervisors::{
    ChildSpec, Intensity, Strategy, Supervisor, SupervisorError, SupervisorRef,
};
use phalanx_transports::{
    ClusterId, EndpointConfig, EndpointSecurity, Incarnation, Key, NetTransport, NodeId,
    RemoteError, RemoteMessage, Remoting, SharedKeyring,
};

pub use admin::{
    AdminRequest, ChainReport, ClockChange, KvAnswer, KvRequest, MemberRow, ShardReport,
    chain_status_of, change_group_of, clock_of, kv_of, members_of,
};
pub use chain::{CHAIN_LENGTH, CHAIN_NAME, ChainWire, GroupChange, shard_of, standby_raft_id};
pub use gossip::{GossipMessage, GossipWire};
pub use kv::{Kv, KvError};

/// How long node operations wait for an answer.
const CALL: Duration = Duration::from_secs(5);

/// The registered name of the gossip actor, locally and for other nodes.
pub const GOSSIP_NAME: &str = "phalanx.gossip";
/// The LAN multicast group and port of discovery beacons (administratively scoped).
pub const MULTICAST_GROUP: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(239, 255, 77, 1),
    7947,
));

/// The registered name of the admin actor, for operator tools such as `phalanx members`.
pub const ADMIN_NAME: &str = "phalanx.admin";

/// How to run a node.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeConfig {
    /// Where to listen for datagrams (gossip) and streams (actor messages), one port for both.
    pub listen: SocketAddr,
    /// Known members to join through.
    pub seeds: Vec<SocketAddr>,
    /// DNS names whose addresses are members (a Kubernetes headless service, say).
    pub dns: Vec<(String, u16)>,
    /// Announce and listen for beacons on the LAN multicast group.
    pub multicast: bool,
    /// Register and browse the node through mDNS.
    pub mdns: bool,
    /// The cluster's name; nodes of other clusters are ignored.
    pub cluster: String,
    /// The cluster key; `None` runs in plaintext, for development only.
    pub key: Option<Key>,
    /// Membership protocol settings.
    pub gossip: GossipConfig,
    /// The addresses of the chain configuration group, identical on every node; empty
    /// disables chains. See the module docs on how chains are configured.
    pub chain_group: Vec<SocketAddr>,
    /// Run configuration-group nodes although this node's address is not in
    /// [`chain_group`](Self::chain_group): as a standby that an operator may add to the
    /// group later (`phalanx chain group`). Its raft id is derived from its listen address.
    pub chain_group_standby: bool,
    /// Run a chain replica (the default). Without one, a node with a chain group is a
    /// client-only node: [`Node::kv`] works, but the node never joins the chain.
    pub chain_replica: bool,
    /// How many independent chains (shards) the key space is split into; 1 by default, 0
    /// counts as 1 and more than 1,024 as 1,024. It must be the same on every node of the
    /// cluster: it decides which chain a key belongs to ([`shard_of`]). Each shard has its
    /// own configuration-group state, replica and client on every node, and rendezvous
    /// hashing spreads the shards' chains over the nodes (see the module docs of
    /// `src/node/chain.rs` and the replicated-state chapter of the book).
    pub chain_shards: u32,
    /// The node's data directory: it keeps the node's identity, so a node restarted on the
    /// same directory is the same node (same id, a new incarnation), a lock, so two
    /// processes never share one, and the chain's durable state: the replica's log,
    /// snapshots and incarnation, and a configuration-group node's raft log, all synced
    /// before anything depending on them is sent (see the durability chapter of the book).
    /// Without one, chain state lives in memory and a restarted replica catches up anew.
    pub data_dir: Option<PathBuf>,
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    remoting: Arc<Remoting>,
    root: SupervisorRef,
    table: Arc<Mutex<Vec<MemberRow>>>,
    /// The gossip actor's name in the local registry.
    local_gossip: String,
    /// This node's replica of the cluster-wide registry.
    registry: Arc<Mutex<ClusterRegistry>>,
    /// The chain services, if enabled.
    chain: Option<Arc<chain::ChainServices>>,
    /// The local actors registered cluster-wide, by name (`ActorRef<M>` behind `Any`).
    globals: Mutex<HashMap<String, Box<dyn Any + Send>>>,
    /// The node's figures on the metrics endpoint, while a recorder is installed.
    _metrics: Option<crate::metrics::CollectorGuard>,
    /// The data directory, locked while the node runs.
    _data_dir: Option<DataDir>,
}

/// A node could not start or serve a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the operating system said.
        reason: String,
    },
    /// No random numbers for the node id.
    #[error("no random numbers available for the node id")]
    Random,
    /// The node's supervision tree could not start.
    #[error("the node's services could not start: {0}")]
    Services(#[from] SupervisorError),
    /// A request to another node failed.
    #[error("{0}")]
    Remote(#[from] RemoteError),
    /// The data directory could not be opened or its identity file is damaged.
    #[error("{0}")]
    DataDir(#[from] DataDirError),
    /// A cluster-wide registration failed.
    #[error("registry: {0}")]
    Registry(String),
    /// Chains were configured on a node without a cluster key; nothing was started.
    #[error(
        "chains need a cluster key (raft messages are accepted only from authenticated \
         frames): pass a key, or no chain group"
    )]
    ChainNeedsKey,
}

impl NodeConfig {
    /// A node listening on `listen`, in plaintext, in the cluster named `phalanx`.
    pub fn new(listen: SocketAddr) -> NodeConfig {
        NodeConfig {
            listen,
            seeds: Vec::new(),
            dns: Vec::new(),
            multicast: false,
            mdns: false,
            cluster: "phalanx".into(),
            key: None,
            gossip: GossipConfig::default(),
            chain_group: Vec::new(),
            chain_group_standby: false,
            chain_replica: true,
            chain_shards: 1,
            data_dir: None,
        }
    }
}

impl Node {
    /// Starts a node on the current runtime: binds its port, starts its services and joins
    /// its seeds.
    ///
    /// # Errors
    ///
    /// [`NodeError`] if the port cannot be bound or the services cannot start.
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        if !config.chain_group.is_empty() && config.key.is_none() {
            return Err(NodeError::ChainNeedsKey);
        }
        let (data_dir, node) = match &config.data_dir {
            Some(dir) => {
                let data_dir = DataDir::open(Arc::new(FsStorage), dir)?;
                let identity = data_dir.load_or_create_identity()?;
                (Some(data_dir), NodeId::from_u128(identity.id))
            }
            None => (None, NodeId::random().map_err(|_| NodeError::Random)?),
        };
        let incarnation = incarnation_now();
        let cluster = cluster_id(&config.cluster);
        let transport =
            NetTransport::bind(config.listen)
                .await
                .map_err(|error| NodeError::Bind {
                    addr: config.listen,
                    reason: error.to_string(),
                })?;
        let transport = Arc::new(transport);
        let security = match &config.key {
            Some(key) => EndpointSecurity::Keyring(SharedKeyring::new(key.clone())),
            None => EndpointSecurity::Plaintext,
        };
        let endpoint = EndpointConfig::new(cluster, node, Incarnation(incarnation));
        let remoting = Arc::new(Remoting::with_transport(
            transport.clone(),
            endpoint,
            security,
        ));
        let listen = remoting.local_addr();
        let table = Arc::new(Mutex::new(Vec::new()));
        let registry = Arc::new(Mutex::new(ClusterRegistry::new(
            node.as_u128(),
            incarnation,
        )));
        // Local registry names carry the node id: several nodes may share one process.
        let local_gossip = format!("{GOSSIP_NAME}.{node}");

        let detector = Arc::new(Mutex::new(Default::default()));
        let services = gossip::Services {
            transport,
            remoting: remoting.clone(),
            cluster,
            node,
            incarnation,
            listen,
            key: config.key.clone(),
            seeds: config.seeds.clone(),
            config: config.gossip.clone(),
            table: table.clone(),
            detector: detector.clone(),
            registry: registry.clone(),
        };
        let gossip_spec = {
            let services = services.clone();
            ChildSpec::new("gossip", move || gossip::GossipActor::new(services.clone()))
                .registered(local_gossip.clone())
        };
        let chain = (!config.chain_group.is_empty()).then(|| {
            Arc::new(chain::ChainServices::new(
                remoting.clone(),
                table.clone(),
                (node, incarnation),
                &config,
                data_dir.as_ref(),
            ))
        });
        let admin_spec = {
            let remoting = remoting.clone();
            let table = table.clone();
            let chain = chain.clone();
            ChildSpec::new("admin", move || {
                admin::AdminActor::new(remoting.clone(), table.clone(), chain.clone())
            })
        };
        let mut root = Supervisor::new(Strategy::OneForOne)
            .name(format!("phalanx.root.{node}"))
            .intensity(Intensity::new(10, Duration::from_secs(10)))
            .child(gossip_spec)
            .child(admin_spec);
        if !config.dns.is_empty() || config.multicast || config.mdns {
            root = root.child(discovery_spec(
                &config,
                cluster,
                node,
                listen,
                &local_gossip,
            ));
        }
        if let Some(chain) = &chain {
            for spec in chain.children() {
                root = root.child(spec);
            }
        }
        // Every service actor (and what it spawns) runs under the node's span, so its events
        // carry the node id as well as the actor's.
        let span = tracing::info_span!("node", id = %node);
        let root = span.in_scope(|| root.start())?;
        let metrics = metrics::collect(node, &remoting, (&table, &detector), chain.as_ref());
        Ok(Node {
            remoting,
            root,
            table,
            local_gossip,
            registry,
            chain,
            globals: Mutex::new(HashMap::new()),
            _metrics: metrics,
            _data_dir: data_dir,
        })
    }

    /// The chain's replicated key-value map, through this node's chain client. Cheap: call it
    /// as often as convenient. Without a chain group every operation fails with
    /// [`KvError::Disabled`].
    pub fn kv(&self) -> Kv {
        Kv::new(
            self.chain.as_ref().map(|chain| chain.client_names()),
            self.id().to_string(),
        )
    }

    /// This node's view of the chain: the newest configuration it knows, its replica's
    /// progress and, on a configuration-group node, the group node's state.
    pub async fn chain_status(&self) -> ChainReport {
        admin::chain_report(self.chain.clone()).await
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.remoting.node()
    }

    /// The address this node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.remoting.local_addr()
    }

    /// The membership table as this node sees it: itself first, then the others by address.
    pub fn members(&self) -> Vec<MemberRow> {
        self.table
            .lock()
            .map(|table| table.clone())
            .unwrap_or_default()
    }

    /// Registers `actor` under `name` cluster-wide: every node's [`whereis`](Node::whereis)
    /// finds it once the registration has spread by gossip (eventually consistent).
    ///
    /// A name registered concurrently on two nodes is resolved the same way everywhere (the
    /// earlier registration wins); the loser's registration is withdrawn and logged.
    ///
    /// # Errors
    ///
    /// [`NodeError::Registry`] if the name is taken or too long, or the gossip actor is not
    /// running.
    pub async fn register<M: RemoteMessage>(
        &self,
        name: &str,
        actor: &ActorRef<M>,
    ) -> Result<(), NodeError> {
        let id = actor.id().as_u64();
        self.ask_registry(|reply| gossip::GossipMessage::register(name.to_owned(), id, reply))
            .await?;
        self.export(name.to_owned(), actor)
    }

    /// Finds the actor registered cluster-wide under `name`, on this node or another, if its
    /// messages are `M`.
    ///
    /// # Errors
    ///
    /// [`NodeError::Remote`] if the hosting node cannot be reached or refuses the lookup.
    pub async fn whereis<M: RemoteMessage>(
        &self,
        name: &str,
    ) -> Result<Option<ActorRef<M>>, NodeError> {
        let found = self
            .registry
            .lock()
            .ok()
            .and_then(|registry| registry.whereis(name));
        let Some(found) = found else {
            return Ok(None);
        };
        self.resolve::<M>(found.node, name).await
    }

    /// A reference to the actor exported as `name` on node `node` (this one or another).
    async fn resolve<M: RemoteMessage>(
        &self,
        node: u128,
        name: &str,
    ) -> Result<Option<ActorRef<M>>, NodeError> {
        if node == self.id().as_u128() {
            let globals = self.globals.lock().ok();
            let local = globals
                .as_ref()
                .and_then(|globals| globals.get(name))
                .and_then(|actor| actor.downcast_ref::<ActorRef<M>>().cloned());
            return Ok(local);
        }
        let member = gossip::member_node(NodeId::from_u128(node));
        let addr = self
            .members()
            .into_iter()
            .filter(|row| row.node == member.0 && row.state == "alive")
            .map(|row| row.addr)
            .next();
        let Some(addr) = addr else {
            return Ok(None);
        };
        let node = self.remoting.connect(addr, CALL).await?;
        Ok(Some(self.remoting.lookup::<M>(node, name, CALL).await?))
    }

    /// Adds `actor` to the process group `group`, cluster-wide (OTP's `pg`): every node's
    /// [`group`](Node::group) lists it once the join has spread by gossip. An actor leaves its
    /// groups when its node is declared dead.
    ///
    /// # Errors
    ///
    /// [`NodeError::Registry`] if the group name is too long or the gossip actor is not running.
    pub async fn join_group<M: RemoteMessage>(
        &self,
        group: &str,
        actor: &ActorRef<M>,
    ) -> Result<(), NodeError> {
        let id = actor.id().as_u64();
        self.ask_registry(|reply| gossip::GossipMessage::join_group(group.to_owned(), id, reply))
            .await?;
        self.export(member_name(group, id), actor)
    }

    /// Sends a registry operation to this node's gossip actor and waits for its outcome.
    async fn ask_registry(
        &self,
        request: impl FnOnce(Reply<Result<(), String>>) -> gossip::GossipMessage,
    ) -> Result<(), NodeError> {
        // The gossip actor registers its name as it starts, and again after a restart: right
        // after `Node::start`, or while the supervisor restarts it, wait for it briefly.
        let mut gossip = None;
        for _ in 0..100 {
            gossip =
                phalanx_runtime::registry::whereis::<gossip::GossipMessage>(&self.local_gossip);
            if gossip.is_some() {
                break;
            }
            phalanx_runtime::sleep(Duration::from_millis(10)).await;
        }
        let gossip =
            gossip.ok_or_else(|| NodeError::Registry("the gossip actor is not running".into()))?;
        let outcome = gossip
            .ask(request, CALL)
            .await
            .map_err(|error| NodeError::Registry(error.to_string()))?;
        outcome.map_err(NodeError::Registry)
    }

    /// Makes a local actor reachable under `name`, from other nodes and from this one.
    fn export<M: RemoteMessage>(&self, name: String, actor: &ActorRef<M>) -> Result<(), NodeError> {
        self.remoting.register(&name, actor)?;
        if let Ok(mut globals) = self.globals.lock() {
            globals.insert(name, Box::new(actor.clone()));
        }
        Ok(())
    }

    /// The members of the process group `group` whose messages are `M`, on every node, as
    /// this node knows them (eventually consistent). Members on unreachable nodes are left out.
    ///
    /// # Errors
    ///
    /// Never fails as a whole: members that cannot be looked up are skipped.
    pub async fn group<M: RemoteMessage>(
        &self,
        group: &str,
    ) -> Result<Vec<ActorRef<M>>, NodeError> {
        let addrs = self
            .registry
            .lock()
            .map(|registry| registry.members(group))
            .unwrap_or_default();
        let mut members = Vec::new();
        for addr in addrs {
            let name = member_name(group, addr.actor);
            if let Ok(Some(member)) = self.resolve::<M>(addr.node, &name).await {
                members.push(member);
            }
        }
        Ok(members)
    }

    /// The remoting layer, to register actors for other nodes and to look theirs up.
    pub fn remoting(&self) -> &Remoting {
        &self.remoting
    }

    /// Waits until the node's root supervisor ends, and says why if it gave up.
    ///
    /// # Errors
    ///
    /// The root's [`SupervisorError`] if it failed.
    pub async fn wait(&self) -> Result<(), SupervisorError> {
        self.root.wait().await
    }

    /// Leaves the cluster gracefully, stops the services in order and closes the port.
    pub async fn shutdown(self) {
        if let Some(gossip) =
            phalanx_runtime::registry::whereis::<gossip::GossipMessage>(&self.local_gossip)
        {
            let _ = gossip
                .ask(gossip::GossipMessage::leave, Duration::from_secs(2))
                .await;
        }
        let _ = self.root.shutdown().await;
        self.remoting.shutdown();
    }
}

fn discovery_spec(
    config: &NodeConfig,
    cluster: ClusterId,
    node: NodeId,
    listen: SocketAddr,
    local_gossip: &str,
) -> ChildSpec {
    let mut discovery = DiscoveryConfig::new(cluster, node);
    discovery.gossip = Some(listen);
    discovery.dns = config
        .dns
        .iter()
        .map(|(host, port)| DnsName::new(host.clone(), *port))
        .collect();
    let mut driver = DriverConfig::new(discovery);
    if config.multicast {
        let mut multicast = MulticastConfig::new(MULTICAST_GROUP);
        let mut interval = phalanx_actors::discovery::DEFAULT_BEACON_INTERVAL;
        if listen.ip().is_loopback() {
            // A node on loopback is a local test cluster: beacons stay on this machine, and
            // come often so that the cluster forms in a second or two.
            multicast.interface_v4 = std::net::Ipv4Addr::LOCALHOST;
            multicast.ttl = 0;
            interval = Duration::from_secs(1);
        }
        driver.beacons = BeaconTransport::Multicast(multicast);
        driver.discovery.beacon_interval = Some(interval);
    }
    if config.mdns {
        driver.mdns = Some(MdnsConfig::new());
    }
    let key = config.key.clone();
    let local_gossip = local_gossip.to_owned();
    ChildSpec::new("discovery", move || {
        let local_gossip = local_gossip.clone();
        let (tx, rx) = flume::unbounded::<phalanx_actors::discovery::Candidate>();
        // Candidates go to whichever gossip actor is current (it may have been restarted).
        phalanx_runtime::spawn(async move {
            while let Ok(candidate) = rx.recv_async().await {
                if let Some(gossip) =
                    phalanx_runtime::registry::whereis::<gossip::GossipMessage>(&local_gossip)
                {
                    let _ = gossip
                        .tell(gossip::GossipMessage::join(vec![candidate.addr]))
                        .await;
                }
            }
        })
        .detach();
        DiscoveryActor::new(
            driver.clone(),
            security_for(key.as_ref()),
            CandidateSink::Channel(tx),
        )
    })
}

/// The codec security for datagrams: sealed with the cluster key, or plaintext.
pub(crate) fn security_for(key: Option<&Key>) -> phalanx_transports::Security {
    match key {
        Some(key) => {
            phalanx_transports::Security::Keyring(phalanx_transports::Keyring::new(key.clone()))
        }
        None => phalanx_transports::Security::Plaintext,
    }
}

/// The remoting name under which a group member is exported.
fn member_name(group: &str, actor: u64) -> String {
    format!("phalanx.pg.{group}.{actor}")
}

/// The cluster id of a cluster name: FNV-1a, stable across builds and platforms.
pub fn cluster_id(name: &str) -> ClusterId {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    ClusterId(hash)
}

/// A new incarnation: milliseconds since the Unix epoch, so that a restarted node comes back
/// with a higher one.
fn incarnation_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(1)
}
