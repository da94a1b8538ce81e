//! The admin actor: answers operator tools (`phalanx members`, `phalanx kv`, `phalanx chain
//! status`) over the cluster protocol.
//!
//! Operator tools join the remoting layer as short-lived clients with the cluster key, so
//! they need the same key as the nodes, and a wrong key fails at the handshake.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use phalanx_actors::chain::ChainConfig;
use phalanx_actors::chain::driver::{GroupStatus, ReplicaStatus};
use phalanx_runtime::{Actor, Context, HandlerError, Reply};
use phalanx_transports::{
    ClusterId, EndpointConfig, EndpointSecurity, Incarnation, Key, NodeId, RemoteMessage, Remoting,
    SharedKeyring,
};
use serde::{Deserialize, Serialize};

use super::chain::{ChainServices, GroupChange};
use super::{ADMIN_NAME, Kv, KvError, NodeError};

/// A request to a node's admin actor.
#[derive(Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AdminRequest {
    /// The membership table as that node sees it.
    Members(Reply<Vec<MemberRow>>),
    /// That node's view of the chain.
    ChainStatus(Reply<ChainReport>),
    /// A key-value operation, run by that node's chain client; errors come back as text.
    Kv(KvRequest, Reply<Result<KvAnswer, String>>),
    /// Asks that node's configuration-group nodes to change the group's voters to these
    /// addresses (bootstrap members or standby nodes), one answer per shard.
    ChainGroup(Vec<SocketAddr>, Reply<Vec<GroupChange>>),
    /// Fault injection: changes the offset of the clock that node's chain actors read, and
    /// answers with the offset now applied (an error if the node runs no chain services).
    Clock(ClockChange, Reply<Result<Duration, String>>),
}

/// A change to a node's chain clock, for [`AdminRequest::Clock`].
///
/// The clock is monotonic: lowering the offset makes it hold still until real time catches
/// up. The read leases tolerate only a bounded skew; see
/// [`phalanx_actors::clock`] for which changes keep the chain's guarantees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClockChange {
    /// Leave it; just report the offset.
    Show,
    /// Jump forward by this much.
    Advance(Duration),
    /// Set the offset (lowering it makes the clock hold still).
    SetOffset(Duration),
}

/// A key-value operation for [`AdminRequest::Kv`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KvRequest {
    /// Set a key.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
    },
    /// Read a key.
    Get {
        /// The key.
        key: String,
    },
    /// Remove a key.
    Delete {
        /// The key.
        key: String,
    },
    /// Compare and set.
    CompareAndSet {
        /// The key.
        key: String,
        /// The value it must have (`None`: absent).
        expected: Option<Vec<u8>>,
        /// The value to set (`None`: remove).
        new: Option<Vec<u8>>,
    },
}

/// The outcome of a [`KvRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KvAnswer {
    /// A put or delete was applied.
    Done,
    /// A read's result.
    Value(Option<Vec<u8>>),
    /// Whether a compare-and-set matched and was applied.
    Swapped(bool),
}

/// A node's view of the chains, for `phalanx chain status`.
///
/// `config`, `replica`, `group` and `addresses` describe shard 0 (the only chain unless the
/// cluster runs with several [`chain_shards`](super::NodeConfig::chain_shards)); `shards`
/// describes every shard, 0 included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChainReport {
    /// Whether the node runs chain services at all.
    pub enabled: bool,
    /// The node's replica id (its membership id).
    pub replica_id: u64,
    /// The newest configuration of shard 0 the node knows (from its group node or its
    /// replica).
    pub config: Option<ChainConfig>,
    /// The node's replica of shard 0.
    pub replica: Option<ReplicaStatus>,
    /// The node's configuration-group node of shard 0, if it is one.
    pub group: Option<GroupStatus>,
    /// The addresses of shard 0's configuration's members, where known.
    pub addresses: Vec<(u64, Option<SocketAddr>)>,
    /// Every shard, in shard order (empty when chains are disabled).
    pub shards: Vec<ShardReport>,
}

/// A node's view of one shard's chain, in a [`ChainReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ShardReport {
    /// The shard.
    pub shard: u32,
    /// The newest configuration of the shard's chain the node knows.
    pub config: Option<ChainConfig>,
    /// The node's replica of the shard.
    pub replica: Option<ReplicaStatus>,
    /// The node's configuration-group node of the shard, if it is one.
    pub group: Option<GroupStatus>,
    /// The addresses of the configuration's members, where known.
    pub addresses: Vec<(u64, Option<SocketAddr>)>,
}

impl RemoteMessage for AdminRequest {
    const TAG: &'static str = "phalanx.AdminRequest.v5";
}

/// One member in a node's view of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MemberRow {
    /// The member's 64-bit membership id.
    pub node: u64,
    /// The incarnation of the member's current life.
    pub incarnation: u64,
    /// Where it listens.
    pub addr: SocketAddr,
    /// `alive`, `suspect`, `dead` or `left`.
    pub state: String,
    /// Whether this row is the answering node itself.
    pub is_self: bool,
    /// What the member does for the cluster as the answering node sees it: `group` (a
    /// configuration-group node), `head`, `middle` or `tail` (its place in the chain); with
    /// several shards the place carries the shard, as `head/2` (head of shard 2's chain).
    #[serde(default)]
    pub roles: Vec<String>,
}

impl MemberRow {
    pub(crate) fn new(node: u64, incarnation: u64, addr: SocketAddr, state: &str) -> MemberRow {
        MemberRow {
            node,
            incarnation,
            addr,
            state: state.to_owned(),
            is_self: false,
            roles: Vec::new(),
        }
    }
}

impl fmt::Display for MemberRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let marker = if self.is_self { " (this node)" } else { "" };
        let roles = if self.roles.is_empty() {
            "-".to_owned()
        } else {
            self.roles.join(",")
        };
        write!(
            f,
            "{:016x}  {:<8} {:>15}  {:<21}  {roles}{marker}",
            self.node,
            self.state,
            self.incarnation,
            self.addr.to_string()
        )
    }
}

pub(crate) struct AdminActor {
    remoting: Arc<Remoting>,
    table: Arc<Mutex<Vec<MemberRow>>>,
    chain: Option<Arc<ChainServices>>,
}

impl AdminActor {
    pub(crate) fn new(
        remoting: Arc<Remoting>,
        table: Arc<Mutex<Vec<MemberRow>>>,
        chain: Option<Arc<ChainServices>>,
    ) -> AdminActor {
        AdminActor {
            remoting,
            table,
            chain,
        }
    }
}

/// Marks the configuration-group nodes and the chains' members in a membership table.
async fn with_roles(mut rows: Vec<MemberRow>, chain: &Arc<ChainServices>) -> Vec<MemberRow> {
    let report = chain_report(Some(chain.clone())).await;
    let several = report.shards.len() > 1;
    for row in &mut rows {
        if chain.is_group_address(row.addr) {
            row.roles.push("group".to_owned());
        }
        for shard in &report.shards {
            let members = shard
                .config
                .as_ref()
                .map(|config| config.members.as_slice())
                .unwrap_or_default();
            let Some(position) = members.iter().position(|m| m.id.0 == row.node) else {
                continue;
            };
            let places: &[&str] = match position {
                0 if members.len() == 1 => &["head", "tail"],
                0 => &["head"],
                p if p + 1 == members.len() => &["tail"],
                _ => &["middle"],
            };
            for place in places {
                row.roles.push(if several {
                    format!("{place}/{}", shard.shard)
                } else {
                    (*place).to_owned()
                });
            }
        }
    }
    rows
}

pub(crate) async fn chain_report(chain: Option<Arc<ChainServices>>) -> ChainReport {
    let Some(chain) = chain else {
        return ChainReport {
            enabled: false,
            replica_id: 0,
            config: None,
            replica: None,
            group: None,
            addresses: Vec::new(),
            shards: Vec::new(),
        };
    };
    let mut shards = Vec::new();
    for shard in 0..chain.shards() {
        shards.push(shard_report(&chain, shard).await);
    }
    let first = shards.first().cloned();
    ChainReport {
        enabled: true,
        replica_id: chain.me,
        config: first.as_ref().and_then(|s| s.config.clone()),
        replica: first.as_ref().and_then(|s| s.replica.clone()),
        group: first.as_ref().and_then(|s| s.group.clone()),
        addresses: first.map(|s| s.addresses).unwrap_or_default(),
        shards,
    }
}

async fn shard_report(chain: &ChainServices, shard: u32) -> ShardReport {
    let replica = chain.replica_status_of(shard).await;
    let group = chain.group_status_of(shard).await;
    let config = [
        group.as_ref().map(|g| g.committed.clone()),
        replica.as_ref().and_then(|r| r.config.clone()),
    ]
    .into_iter()
    .flatten()
    .max_by_key(|config| config.epoch);
    let addresses = config
        .as_ref()
        .map(|config| chain.addresses(config))
        .unwrap_or_default();
    ShardReport {
        shard,
        config,
        replica,
        group,
        addresses,
    }
}

async fn run_kv(kv: Kv, request: KvRequest) -> Result<KvAnswer, KvError> {
    match request {
        KvRequest::Put { key, value } => kv.put(key, value).await.map(|()| KvAnswer::Done),
        KvRequest::Get { key } => kv.get(key).await.map(KvAnswer::Value),
        KvRequest::Delete { key } => kv.delete(key).await.map(|()| KvAnswer::Done),
        KvRequest::CompareAndSet { key, expected, new } => kv
            .compare_and_set(key, expected, new)
            .await
            .map(KvAnswer::Swapped),
    }
}

impl Actor for AdminActor {
    type Message = AdminRequest;

    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), HandlerError> {
        self.remoting.unregister(ADMIN_NAME);
        self.remoting.register(ADMIN_NAME, &ctx.myself())?;
        Ok(())
    }

    async fn handle(
        &mut self,
        _: &mut Context<Self>,
        msg: AdminRequest,
    ) -> Result<(), HandlerError> {
        match msg {
            AdminRequest::Members(reply) => {
                let rows = self.table.lock().map(|t| t.clone()).unwrap_or_default();
                match self.chain.clone() {
                    // The chain's view may wait on the chain actors: answered from a task.
                    Some(chain) => phalanx_runtime::spawn(async move {
                        let _ = reply.send(with_roles(rows, &chain).await);
                    })
                    .detach(),
                    None => {
                        let _ = reply.send(rows);
                    }
                }
            }
            // Both may wait on other actors (a write up to its deadline): answered from a
            // task, so the admin actor stays responsive.
            AdminRequest::ChainStatus(reply) => {
                let chain = self.chain.clone();
                phalanx_runtime::spawn(async move {
                    let _ = reply.send(chain_report(chain).await);
                })
                .detach();
            }
            AdminRequest::Kv(request, reply) => {
                let kv = Kv::new(
                    self.chain.as_ref().map(|c| c.client_names()),
                    self.remoting.node().to_string(),
                );
                phalanx_runtime::spawn(async move {
                    let outcome = run_kv(kv, request).await.map_err(|e| e.to_string());
                    let _ = reply.send(outcome);
                })
                .detach();
            }
            AdminRequest::ChainGroup(voters, reply) => {
                let chain = self.chain.clone();
                phalanx_runtime::spawn(async move {
                    let answers = match chain {
                        Some(chain) => chain.change_group(&voters).await,
                        None => Vec::new(),
                    };
                    let _ = reply.send(answers);
                })
                .detach();
            }
            AdminRequest::Clock(change, reply) => {
                let outcome = match &self.chain {
                    Some(chain) => {
                        match change {
                            ClockChange::Advance(by) => chain.clock.advance(by),
                            ClockChange::SetOffset(offset) => chain.clock.set_offset(offset),
                            ClockChange::Show => {}
                        }
                        tracing::info!(offset = ?chain.clock.offset(), "chain clock changed");
                        Ok(chain.clock.offset())
                    }
                    None => Err("this node runs no chain services, so no chain clock".to_owned()),
                };
                let _ = reply.send(outcome);
            }
        }
        Ok(())
    }
}

/// Asks the node at `addr` for its membership table, as a short-lived client of the cluster.
///
/// # Errors
///
/// [`NodeError::Remote`] if the node cannot be reached, refuses the key, or does not answer.
pub async fn members_of(
    addr: SocketAddr,
    cluster: ClusterId,
    key: Option<Key>,
    timeout: Duration,
) -> Result<Vec<MemberRow>, NodeError> {
    ask_admin(addr, cluster, key, timeout, AdminRequest::Members).await
}

/// Asks the node at `addr` for its view of the chain, as a short-lived client of the cluster.
///
/// # Errors
///
/// [`NodeError::Remote`] if the node cannot be reached, refuses the key, or does not answer.
pub async fn chain_status_of(
    addr: SocketAddr,
    cluster: ClusterId,
    key: Option<Key>,
    timeout: Duration,
) -> Result<ChainReport, NodeError> {
    ask_admin(addr, cluster, key, timeout, AdminRequest::ChainStatus).await
}

/// Runs a key-value operation through the node at `addr`, as a short-lived client of the
/// cluster. The outer error says the node was not reached; the inner one is the operation's.
///
/// # Errors
///
/// [`NodeError::Remote`] if the node cannot be reached, refuses the key, or does not answer.
pub async fn kv_of(
    addr: SocketAddr,
    cluster: ClusterId,
    key: Option<Key>,
    request: KvRequest,
    timeout: Duration,
) -> Result<Result<KvAnswer, String>, NodeError> {
    ask_admin(addr, cluster, key, timeout, |reply| {
        AdminRequest::Kv(request, reply)
    })
    .await
}

/// Changes the chain clock of the node at `addr` (fault injection), as a short-lived client
/// of the cluster, and returns the offset now applied. The outer error says the node was not
/// reached; the inner one that it has no chain clock.
///
/// # Errors
///
/// [`NodeError::Remote`] if the node cannot be reached, refuses the key, or does not answer.
pub async fn clock_of(
    addr: SocketAddr,
    cluster: ClusterId,
    key: Option<Key>,
    change: ClockChange,
    timeout: Duration,
) -> Result<Result<Duration, String>, NodeError> {
    ask_admin(addr, cluster, key, timeout, |reply| {
        AdminRequest::Clock(change, reply)
    })
    .await
}

/// Asks the node at `addr` to change the configuration group's voters to `voters`, as a
/// short-lived client of the cluster: one answer per shard (none if the node runs no chain
/// services). A shard answers `Ok` where the node is its group leader and the change
/// started; otherwise it says why, and names the leader's address when it knows it.
///
/// # Errors
///
/// [`NodeError::Remote`] if the node cannot be reached, refuses the key, or does not answer.
pub async fn change_group_of(
    addr: SocketAddr,
    cluster: ClusterId,
    key: Option<Key>,
    voters: Vec<SocketAddr>,
    timeout: Duration,
) -> Result<Vec<GroupChange>, NodeError> {
    ask_admin(addr, cluster, key, timeout, |reply| {
        AdminRequest::ChainGroup(voters, reply)
    })
    .await
}

/// Asks the admin actor of the node at `addr` one request, as a short-lived client of the
/// cluster (connect, look the actor up, ask, shut the client down).
async fn ask_admin<R: Send + 'static>(
    addr: SocketAddr,
    cluster: ClusterId,
    key: Option<Key>,
    timeout: Duration,
    request: impl FnOnce(Reply<R>) -> AdminRequest,
) -> Result<R, NodeError> {
    let client = client(addr, cluster, key).await?;
    let node = client.connect(addr, timeout).await?;
    let admin = client
        .lookup::<AdminRequest>(node, ADMIN_NAME, timeout)
        .await?;
    let answer = admin
        .ask(request, timeout)
        .await
        .map_err(|error| phalanx_transports::RemoteError::Transport(error.to_string()))?;
    client.shutdown();
    Ok(answer)
}

async fn client(
    target: SocketAddr,
    cluster: ClusterId,
    key: Option<Key>,
) -> Result<Remoting, NodeError> {
    let node = NodeId::random().map_err(|_| NodeError::Random)?;
    let config = EndpointConfig::new(cluster, node, Incarnation(super::incarnation_now()));
    let security = match key {
        Some(key) => EndpointSecurity::Keyring(SharedKeyring::new(key)),
        None => EndpointSecurity::Plaintext,
    };
    // Loopback for a local cluster, otherwise any address of the target's family.
    let bind = match (target.ip().is_loopback(), target.is_ipv4()) {
        (true, true) => SocketAddr::from(([127, 0, 0, 1], 0)),
        (true, false) => SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 0)),
        (false, true) => SocketAddr::from(([0, 0, 0, 0], 0)),
        (false, false) => SocketAddr::from(([0u16; 8], 0)),
    };
    Remoting::bind(bind, config, security)
        .await
        .map_err(|error| NodeError::Bind {
            addr: bind,
            reason: error.to_string(),
        })
}
