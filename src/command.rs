//! `phalanx node`, `phalanx members`, `phalanx keygen`, `phalanx kv` and `phalanx chain`
//! (with the hidden fault-injection command `phalanx chain clock`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use phalanx::actors::chain::ChainConfig;
use phalanx::actors::chain::driver::ReplicaStatus;
use phalanx::node::{
    ClockChange, GroupChange, KvAnswer, KvRequest, Node, NodeConfig, ShardReport, chain_status_of,
    change_group_of, clock_of, cluster_id, kv_of, members_of,
};
use phalanx::transports::{ClusterId, Key};
use phalanx::{Runtime, block_on};

/// How a command authenticates to the cluster.
#[derive(Debug, clap::Args)]
pub(crate) struct Security {
    /// File with the cluster key (64 hex digits; make one with `phalanx keygen --out FILE`).
    #[arg(long, value_name = "FILE")]
    cluster_key_file: Option<PathBuf>,
    /// Run without encryption or authentication. For development on one machine only.
    #[arg(long, conflicts_with = "cluster_key_file")]
    insecure: bool,
    /// The cluster's name; nodes of other clusters are ignored.
    #[arg(long, default_value = "phalanx")]
    cluster: String,
}

/// Options of `phalanx node`.
#[derive(Debug, clap::Args)]
pub(crate) struct NodeOptions {
    /// Address to listen on, for gossip datagrams and node-to-node streams (one port).
    #[arg(long, default_value = "127.0.0.1:7946")]
    listen: SocketAddr,
    /// A member to join through (repeat for several).
    #[arg(long = "seed", value_name = "ADDR")]
    seeds: Vec<SocketAddr>,
    /// A DNS name whose addresses are members, as HOST:PORT (repeat for several).
    #[arg(long, value_name = "HOST:PORT")]
    dns: Vec<String>,
    /// Find members through beacons on the LAN multicast group.
    #[arg(long)]
    multicast: bool,
    /// Register and find members through mDNS.
    #[arg(long)]
    mdns: bool,
    /// Directory for the node's durable state: its identity (a node restarted on the same
    /// directory is the same node, with a new incarnation) and a lock against a second
    /// process. The chain replicas' logs, snapshots and journals and the configuration-group
    /// nodes' raft logs live there too.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Serve metrics as Prometheus text at http://ADDR/metrics (for example 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// The membership protocol period in milliseconds: how often each node probes another.
    /// Failure detection takes a few periods; lower it for a local test cluster.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    probe_interval: u64,
    /// The chain configuration group: the same comma-separated addresses on every node (3 or
    /// 5). Nodes listening on one of them run a configuration-group node; every node runs a
    /// chain replica unless --no-replica. Needs a cluster key.
    #[arg(long, value_name = "ADDR,ADDR,ADDR", value_delimiter = ',')]
    chain_group: Vec<SocketAddr>,
    /// Run configuration-group nodes as a standby, although this node is not listed in
    /// --chain-group: `phalanx chain group` can then make it a voter of the group.
    #[arg(long)]
    chain_group_standby: bool,
    /// Run no chain replica on this node: it serves the configuration group (if listed in
    /// --chain-group) and `phalanx kv` requests, but never holds chain data.
    #[arg(long)]
    no_replica: bool,
    /// How many independent chains (shards) split the key space: a key's chain is the FNV-1a
    /// hash of the key modulo N, and rendezvous hashing spreads the chains over the nodes.
    /// MUST be the same on every node of the cluster.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    chain_shards: u32,
    #[command(flatten)]
    security: Security,
}

/// Which node a `kv` or `chain` command talks to.
#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    /// The address of any running node with chains enabled.
    #[arg(long, default_value = "127.0.0.1:7946")]
    node: SocketAddr,
    /// How long to wait for an answer.
    #[arg(long, default_value = "10", value_name = "SECONDS")]
    timeout: u64,
    #[command(flatten)]
    security: Security,
}

/// Options of `phalanx kv`.
#[derive(Debug, clap::Args)]
pub(crate) struct KvOptions {
    #[command(subcommand)]
    operation: KvOperation,
}

/// A key-value operation.
#[derive(Debug, clap::Subcommand)]
enum KvOperation {
    /// Sets KEY to VALUE.
    Put {
        /// The key.
        key: String,
        /// The value (stored as its UTF-8 bytes).
        value: String,
        #[command(flatten)]
        target: Target,
    },
    /// Prints the value of KEY; fails if it is not set.
    Get {
        /// The key.
        key: String,
        #[command(flatten)]
        target: Target,
    },
    /// Removes KEY.
    Del {
        /// The key.
        key: String,
        #[command(flatten)]
        target: Target,
    },
    /// Sets KEY to NEW if its value is --expected (or, without --expected, if it is not set);
    /// fails if it did not match.
    Cas {
        /// The key.
        key: String,
        /// The new value.
        new: String,
        /// The value KEY must have; leave out to require that KEY is not set.
        #[arg(long, value_name = "VALUE")]
        expected: Option<String>,
        #[command(flatten)]
        target: Target,
    },
}

/// Options of `phalanx chain`.
#[derive(Debug, clap::Args)]
pub(crate) struct ChainOptions {
    #[command(subcommand)]
    command: ChainCommand,
}

/// A chain command.
#[derive(Debug, clap::Subcommand)]
enum ChainCommand {
    /// Shows the chain of every shard: epoch, members from head to tail, and each replica's
    /// progress.
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// Changes the configuration group's voters (every shard's) to these addresses, through
    /// the group's own consensus, and waits until a committed configuration names them.
    /// Each address is a node listed in --chain-group or started with
    /// --chain-group-standby; a voter left out keeps running as a non-voter.
    Group {
        /// The new voters (3 or 5, comma-separated).
        #[arg(
            long,
            value_name = "ADDR,ADDR,ADDR",
            value_delimiter = ',',
            required = true
        )]
        voters: Vec<SocketAddr>,
        #[command(flatten)]
        target: Target,
    },
    /// Fault injection (for tests): moves the clock that the node's chain actors read, and
    /// prints the offset now applied. Read leases tolerate only a bounded skew (see the
    /// phalanx_actors::clock docs).
    #[command(hide = true)]
    Clock {
        /// Jump the clock forward by this much (like 400ms, 2s, 150us).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        advance: Option<Duration>,
        /// Set the offset over real time; lowering it makes the clock hold still until real
        /// time catches up (it never runs backward).
        #[arg(
            long,
            value_name = "DURATION",
            value_parser = parse_duration,
            conflicts_with = "advance"
        )]
        offset: Option<Duration>,
        #[command(flatten)]
        target: Target,
    },
}

/// Options of `phalanx members`.
#[derive(Debug, clap::Args)]
pub(crate) struct MembersOptions {
    /// The address of any running node of the cluster.
    #[arg(long, default_value = "127.0.0.1:7946")]
    node: SocketAddr,
    /// How long to wait for the node.
    #[arg(long, default_value = "3", value_name = "SECONDS")]
    timeout: u64,
    #[command(flatten)]
    security: Security,
}

/// Options of `phalanx keygen`.
#[derive(Debug, clap::Args)]
pub(crate) struct KeygenOptions {
    /// Write the key to this file (created with owner-only permissions) instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

type Outcome = Result<(), String>;

/// Runs a node until SIGINT or SIGTERM, then leaves the cluster and stops in order.
pub(crate) fn node(options: &NodeOptions) -> Outcome {
    let key = options.security.key()?;
    let mut config = NodeConfig::new(options.listen);
    config.seeds = options.seeds.clone();
    config.dns = options
        .dns
        .iter()
        .map(|name| parse_dns(name))
        .collect::<Result<_, _>>()?;
    config.multicast = options.multicast;
    config.mdns = options.mdns;
    config.cluster = options.security.cluster.clone();
    config.key = key;
    config.chain_group = options.chain_group.clone();
    config.chain_group_standby = options.chain_group_standby;
    config.chain_replica = !options.no_replica;
    config.chain_shards = options.chain_shards;
    let period = Duration::from_millis(options.probe_interval.max(10));
    config.gossip.probe_interval = period;
    config.gossip.probe_timeout = period / 2;
    config.gossip.gossip_interval = Some((period / 5).max(Duration::from_millis(5)));
    config.gossip.push_pull_interval = period * 30;
    if let Some(dir) = &options.data_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the data dir {}: {e}", dir.display()))?;
    }
    config.data_dir = options.data_dir.clone();
    let runtime = Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    let stop = shutdown_signal()?;
    let outcome = runtime.block_on(async {
        // The recorder goes in before the node starts, so that every figure is recorded.
        let _metrics = match options.metrics {
            Some(addr) => {
                let metrics = phalanx::metrics::Metrics::install()
                    .map_err(|e| format!("cannot record metrics: {e}"))?;
                let server = metrics.serve(addr).await.map_err(|e| {
                    format!("cannot serve metrics on {addr}: {e} (is the port free?)")
                })?;
                println!("metrics at http://{}/metrics", server.local_addr());
                Some(server)
            }
            None => None,
        };
        let node = Node::start(config).await.map_err(|e| e.to_string())?;
        println!("node {} listening on {}", node.id(), node.local_addr());
        let ended = futures_lite::future::or(
            async {
                let _ = stop.recv_async().await;
                None
            },
            async { Some(node.wait().await) },
        )
        .await;
        match ended {
            None => {
                println!("stopping: leaving the cluster");
                node.shutdown().await;
                Ok(())
            }
            Some(Ok(())) => Ok(()),
            Some(Err(error)) => Err(format!("the node's services gave up: {error}")),
        }
    });
    let _ = runtime.shutdown(Duration::from_secs(5));
    outcome
}

/// Prints the membership table as the node at `--node` sees it.
pub(crate) fn members(options: &MembersOptions) -> Outcome {
    let key = options.security.key()?;
    let cluster = cluster_id(&options.security.cluster);
    let timeout = Duration::from_secs(options.timeout.max(1));
    let rows = block_on(members_of(options.node, cluster, key, timeout)).map_err(|error| {
        format!(
            "cannot get the members from {}: {error} (is a node running there, with the same \
             cluster name and key?)",
            options.node
        )
    })?;
    println!(
        "{:<16}  {:<8} {:>15}  {:<21}  ROLES",
        "NODE", "STATE", "INCARNATION", "ADDRESS"
    );
    for row in rows {
        println!("{row}");
    }
    Ok(())
}

/// Runs one key-value operation through the node at `--node`.
pub(crate) fn kv(options: &KvOptions) -> Outcome {
    let (target, request) = match &options.operation {
        KvOperation::Put { key, value, target } => (
            target,
            KvRequest::Put {
                key: key.clone(),
                value: value.clone().into_bytes(),
            },
        ),
        KvOperation::Get { key, target } => (target, KvRequest::Get { key: key.clone() }),
        KvOperation::Del { key, target } => (target, KvRequest::Delete { key: key.clone() }),
        KvOperation::Cas {
            key,
            new,
            expected,
            target,
        } => (
            target,
            KvRequest::CompareAndSet {
                key: key.clone(),
                expected: expected.clone().map(String::into_bytes),
                new: Some(new.clone().into_bytes()),
            },
        ),
    };
    let key = match &request {
        KvRequest::Put { key, .. }
        | KvRequest::Get { key }
        | KvRequest::Delete { key }
        | KvRequest::CompareAndSet { key, .. } => key.clone(),
        _ => String::new(),
    };
    let secret = target.security.key()?;
    let cluster = cluster_id(&target.security.cluster);
    let timeout = Duration::from_secs(target.timeout.max(1));
    let outcome = block_on(kv_of(target.node, cluster, secret, request, timeout))
        .map_err(|error| unreachable(target.node, &error))?;
    match outcome? {
        KvAnswer::Done => println!("ok"),
        KvAnswer::Value(Some(value)) => println!("{}", String::from_utf8_lossy(&value)),
        KvAnswer::Value(None) => return Err(format!("{key} is not set")),
        KvAnswer::Swapped(true) => println!("ok"),
        KvAnswer::Swapped(false) => {
            return Err(format!(
                "{key} was not changed: its value is not the one expected (read it with `phalanx \
                 kv get {key}`)"
            ));
        }
        _ => println!("ok"),
    }
    Ok(())
}

/// Prints the chain as the node at `--node` sees it, with every member's progress.
pub(crate) fn chain(options: &ChainOptions) -> Outcome {
    let target = match &options.command {
        ChainCommand::Status { target } => target,
        ChainCommand::Clock {
            advance,
            offset,
            target,
        } => return clock(*advance, *offset, target),
        ChainCommand::Group { voters, target } => return group(voters, target),
    };
    let secret = target.security.key()?;
    let cluster = cluster_id(&target.security.cluster);
    let timeout = Duration::from_secs(target.timeout.max(1));
    block_on(async {
        let report = chain_status_of(target.node, cluster, secret.clone(), timeout)
            .await
            .map_err(|error| unreachable(target.node, &error))?;
        if !report.enabled {
            return Err(format!(
                "{} runs no chain services: start the nodes with --chain-group ADDR,ADDR,ADDR",
                target.node
            ));
        }
        let mut any = false;
        for (index, shard) in report.shards.iter().enumerate() {
            let Some(config) = shard.config.clone().filter(|c| !c.members.is_empty()) else {
                if report.shards.len() > 1 {
                    println!("chain {}: no configuration with members yet", shard.shard);
                }
                continue;
            };
            if any {
                println!();
            }
            any = true;
            let members = shard_members(shard, index, cluster, secret.clone(), timeout).await;
            print_chain(shard.shard, &config, &members);
            if !config.group.is_empty() {
                let seats: Vec<&str> = config.group.iter().map(|s| s.address.as_str()).collect();
                println!("configuration group (voters): {}", seats.join(","));
            }
        }
        if !any && report.shards.len() <= 1 {
            println!(
                "no chain yet (no configuration with members; is the configuration group up?)"
            );
            return Ok(());
        }
        if let Some(group) = &report.group {
            let role = if group.leader { "leader" } else { "follower" };
            println!(
                "{} is configuration-group node {} ({role})",
                target.node, group.id
            );
        }
        let leads: Vec<String> = report
            .shards
            .iter()
            .skip(1)
            .filter(|s| s.group.as_ref().is_some_and(|g| g.leader))
            .map(|s| s.shard.to_string())
            .collect();
        if !leads.is_empty() {
            println!(
                "{} leads the configuration group of shard(s) {}",
                target.node,
                leads.join(",")
            );
        }
        Ok(())
    })
}

/// A chain member as `phalanx chain status` prints it: id, address, and its replica's
/// progress in that shard if it answered.
type MemberProgress = (u64, Option<SocketAddr>, Option<ReplicaStatus>);

/// Asks every member of `shard`'s chain (the `index`th shard of the report) for its progress.
async fn shard_members(
    shard: &ShardReport,
    index: usize,
    cluster: ClusterId,
    secret: Option<Key>,
    timeout: Duration,
) -> Vec<MemberProgress> {
    let mut rows = Vec::new();
    for (id, addr) in &shard.addresses {
        let status = match addr {
            Some(addr) => chain_status_of(*addr, cluster, secret.clone(), timeout)
                .await
                .ok()
                .and_then(|report| report.shards.into_iter().nth(index)?.replica),
            None => None,
        };
        rows.push((*id, *addr, status));
    }
    rows
}

/// Prints one shard's chain: a header line and one row per member, head first. The row
/// format is parsed by the process tests (`tests/support/nodes.rs`): keep it.
fn print_chain(shard: u32, config: &ChainConfig, rows: &[MemberProgress]) {
    println!(
        "chain {shard}: epoch {}, {} member(s), head to tail",
        config.epoch,
        config.members.len()
    );
    let front = rows
        .iter()
        .filter_map(|(_, _, status)| status.as_ref().map(|s| s.received))
        .max()
        .unwrap_or(0);
    println!(
        "{:<4} {:<16}  {:<21}  {:>10}  {:>10}  {:>6}",
        "POS", "REPLICA", "ADDRESS", "COMMITTED", "RECEIVED", "LAG"
    );
    for (position, (id, addr, status)) in rows.iter().enumerate() {
        let addr = addr.map_or_else(|| "?".to_owned(), |a| a.to_string());
        let (committed, received, lag) = match status {
            Some(s) => (
                s.committed.to_string(),
                s.received.to_string(),
                front.saturating_sub(s.committed).to_string(),
            ),
            None => ("?".into(), "?".into(), "?".into()),
        };
        println!("{position:<4} {id:016x}  {addr:<21}  {committed:>10}  {received:>10}  {lag:>6}");
    }
}

/// Changes the group's voters: asks the node at `--node`, then each shard's leader that it
/// names, until every shard has started the change (bounded), then waits until the node
/// sees every shard's configuration name the new voters.
fn group(voters: &[SocketAddr], target: &Target) -> Outcome {
    let secret = target.security.key()?;
    let cluster = cluster_id(&target.security.cluster);
    let timeout = Duration::from_secs(target.timeout.max(1));
    block_on(async {
        let mut started = std::collections::BTreeSet::new();
        let mut asked = Vec::new();
        let mut ask = Some(target.node);
        let mut refused: Vec<GroupChange> = Vec::new();
        while let Some(node) = ask.take() {
            asked.push(node);
            let answers = change_group_of(node, cluster, secret.clone(), voters.to_vec(), timeout)
                .await
                .map_err(|error| unreachable(node, &error))?;
            if answers.is_empty() {
                return Err(format!("{node} runs no chain services"));
            }
            refused.clear();
            for answer in answers {
                if answer.outcome.is_ok() {
                    started.insert(answer.shard);
                } else if !started.contains(&answer.shard) {
                    refused.push(answer);
                }
            }
            ask = refused
                .iter()
                .filter_map(|answer| answer.leader)
                .find(|leader| !asked.contains(leader));
        }
        if let Some(answer) = refused.first() {
            return Err(format!(
                "shard {}: {} (asked {asked:?})",
                answer.shard,
                answer.outcome.clone().err().unwrap_or_default()
            ));
        }
        let wanted: std::collections::BTreeSet<String> =
            voters.iter().map(ToString::to_string).collect();
        // Done when a new voter has left the joint configuration in every shard (the old
        // voters may then go) and every shard's configuration names the new voters. Each
        // change takes three raft commits; wait up to ten timeouts.
        for round in 0..(50 * target.timeout.max(1)) {
            let voter = voters[round as usize % voters.len()];
            if let Ok(report) = chain_status_of(voter, cluster, secret.clone(), timeout).await
                && !report.shards.is_empty()
                && report.shards.iter().all(|shard| {
                    let left_joint = shard.group.as_ref().is_some_and(|g| g.outgoing.is_empty());
                    let named = shard.config.as_ref().is_some_and(|config| {
                        let named: std::collections::BTreeSet<String> = config
                            .group
                            .iter()
                            .map(|seat| seat.address.clone())
                            .collect();
                        named == wanted
                    });
                    left_joint && named
                })
            {
                println!("configuration group: {}", voters_text(voters));
                return Ok(());
            }
            phalanx::sleep(Duration::from_millis(200)).await;
        }
        Err(format!(
            "the change started, but no new voter reports it finished in every shard yet: {}",
            voters_text(voters)
        ))
    })
}

fn voters_text(voters: &[SocketAddr]) -> String {
    voters
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Changes (or, with neither option, shows) the chain clock offset of the node at `--node`.
fn clock(advance: Option<Duration>, offset: Option<Duration>, target: &Target) -> Outcome {
    let change = match (advance, offset) {
        (Some(by), _) => ClockChange::Advance(by),
        (None, Some(offset)) => ClockChange::SetOffset(offset),
        (None, None) => ClockChange::Show,
    };
    let secret = target.security.key()?;
    let cluster = cluster_id(&target.security.cluster);
    let timeout = Duration::from_secs(target.timeout.max(1));
    let offset = block_on(clock_of(target.node, cluster, secret, change, timeout))
        .map_err(|error| unreachable(target.node, &error))??;
    println!("clock offset {offset:?}");
    Ok(())
}

/// Parses a duration written as a whole number and a unit: `us`, `ms`, `s` (like `400ms`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("{text}: expected a whole number and a unit, like 400ms"))?;
    match &text[digits.len()..] {
        "us" => Ok(Duration::from_micros(value)),
        "ms" => Ok(Duration::from_millis(value)),
        "s" => Ok(Duration::from_secs(value)),
        unit => Err(format!("{text}: unknown unit {unit:?} (use us, ms or s)")),
    }
}

fn unreachable(addr: SocketAddr, error: &dyn std::fmt::Display) -> String {
    format!(
        "cannot reach the node at {addr}: {error} (is a node running there, with the same \
         cluster name and key?)"
    )
}

/// Writes a new random cluster key.
pub(crate) fn keygen(options: &KeygenOptions) -> Outcome {
    let key = Key::generate().map_err(|e| format!("cannot draw a random key: {e}"))?;
    let text: String = key.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    match &options.out {
        None => println!("{text}"),
        Some(path) => write_secret(path, &format!("{text}\n"))?,
    }
    Ok(())
}

impl Security {
    fn key(&self) -> Result<Option<Key>, String> {
        match (&self.cluster_key_file, self.insecure) {
            (Some(path), _) => read_key(path).map(Some),
            (None, true) => Ok(None),
            (None, false) => Err(
                "no cluster key: pass --cluster-key-file FILE (make one with `phalanx keygen \
                 --out FILE`), or --insecure for a plaintext development cluster"
                    .into(),
            ),
        }
    }
}

fn read_key(path: &Path) -> Result<Key, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the cluster key file {}: {e}", path.display()))?;
    let text = text.trim();
    let invalid = || {
        format!(
            "the cluster key file {} must hold 64 hex digits (make one with `phalanx keygen \
             --out FILE`)",
            path.display()
        )
    };
    if text.len() != 64 || !text.is_ascii() {
        return Err(invalid());
    }
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| invalid())?;
    }
    Ok(Key::from_bytes(bytes))
}

fn write_secret(path: &Path, text: &str) -> Outcome {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;

    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path).map_err(|e| {
        format!(
            "cannot create {} (it must not exist yet): {e}",
            path.display()
        )
    })?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn parse_dns(name: &str) -> Result<(String, u16), String> {
    let (host, port) = name
        .rsplit_once(':')
        .ok_or_else(|| format!("--dns {name}: expected HOST:PORT, like members.example:7946"))?;
    let port = port
        .parse()
        .map_err(|_| format!("--dns {name}: {port} is not a port number"))?;
    Ok((host.to_owned(), port))
}

/// A channel that receives once when SIGINT or SIGTERM arrives.
fn shutdown_signal() -> Result<flume::Receiver<()>, String> {
    let (tx, rx) = flume::bounded(1);
    let handler = move || {
        let _ = tx.try_send(());
    };
    ctrlc::set_handler(handler).map_err(|e| format!("cannot handle SIGINT/SIGTERM: {e}"))?;
    Ok(rx)
}
