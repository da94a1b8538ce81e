//! [`DiscoveryConfig`]: which sources to use and the limits of the discovery core.

use std::net::SocketAddr;
use std::time::Duration;

use phalanx_transports::{ClusterId, Incarnation, NodeId};

/// Default time between two resolutions of a DNS name.
pub const DEFAULT_DNS_INTERVAL: Duration = Duration::from_secs(30);
/// Default time before a failed or empty DNS resolution is retried.
pub const DEFAULT_DNS_RETRY: Duration = Duration::from_secs(5);
/// Default time between two beacons.
pub const DEFAULT_BEACON_INTERVAL: Duration = Duration::from_secs(5);
/// Default time during which an address handed to gossip is not handed over again.
pub const DEFAULT_REDISCOVER_AFTER: Duration = Duration::from_secs(60);

/// A DNS name to resolve periodically, such as a Kubernetes headless service, whose every A
/// and AAAA record becomes a candidate with `port`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DnsName {
    /// The host name, for example `phalanx.default.svc.cluster.local`.
    pub host: String,
    /// The gossip port of the nodes behind the name.
    pub port: u16,
}

impl DnsName {
    /// A name and the gossip port of the nodes behind it.
    pub fn new(host: impl Into<String>, port: u16) -> DnsName {
        DnsName {
            host: host.into(),
            port,
        }
    }
}

/// The sources and limits of a [`Discovery`](super::Discovery) core.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// use phalanx_actors::discovery::{DiscoveryConfig, DnsName};
/// use phalanx_transports::{ClusterId, NodeId};
///
/// let mut config = DiscoveryConfig::new(ClusterId(7), NodeId::from_u128(1));
/// config.gossip = Some("10.0.0.5:7946".parse()?);
/// config.seeds.push("10.0.0.1:7946".parse()?);
/// config.dns.push(DnsName::new("phalanx.default.svc.cluster.local", 7946));
/// config.beacon_interval = Some(Duration::from_secs(2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DiscoveryConfig {
    /// This node's cluster; beacons and mDNS records of other clusters are dropped.
    pub cluster: ClusterId,
    /// This node's id; its own beacons and mDNS records are ignored.
    pub node: NodeId,
    /// This node's gossip address: what its beacons announce (none are sent without it), and
    /// never a candidate.
    pub gossip: Option<SocketAddr>,
    /// Static seed addresses, handed to gossip once at start.
    pub seeds: Vec<SocketAddr>,
    /// DNS names resolved at start and then every [`dns_interval`](Self::dns_interval).
    pub dns: Vec<DnsName>,
    /// Time between two resolutions of a name. Default [`DEFAULT_DNS_INTERVAL`].
    pub dns_interval: Duration,
    /// Time before a failed or empty resolution is retried. Default [`DEFAULT_DNS_RETRY`].
    pub dns_retry: Duration,
    /// Time between two beacons (each drawn within +-10% of it), or `None` to send none.
    /// Default `None`; receiving beacons needs no setting here.
    pub beacon_interval: Option<Duration>,
    /// The incarnation written into this node's sealed beacons. Receivers reject a beacon
    /// whose incarnation is older than one they accepted from the same node (and a replay of
    /// one they accepted), so a restarted discovery must use a higher one. Default 0, which
    /// the [`DiscoveryActor`](super::DiscoveryActor) replaces with the wall clock in
    /// microseconds since the Unix epoch when it starts.
    pub beacon_incarnation: Incarnation,
    /// An address handed to gossip is not handed over again before this much time has
    /// passed. Default [`DEFAULT_REDISCOVER_AFTER`].
    pub rediscover_after: Duration,
    /// Candidates handed to gossip per second, at most, on average. Default 50.
    pub rate_per_second: u32,
    /// Candidates that may be handed over back to back after a quiet time. Default 64.
    pub burst: u32,
    /// Candidates waiting for the rate limit, at most; further ones are dropped and counted.
    /// Default 1,024.
    pub max_pending: usize,
    /// Addresses remembered for deduplication, at most. Default 4,096.
    pub max_known: usize,
    /// Seed of the random jitter of beacon times.
    pub jitter_seed: u64,
}

impl DiscoveryConfig {
    /// A configuration with no sources and the default limits.
    pub fn new(cluster: ClusterId, node: NodeId) -> DiscoveryConfig {
        DiscoveryConfig {
            cluster,
            node,
            gossip: None,
            seeds: Vec::new(),
            dns: Vec::new(),
            dns_interval: DEFAULT_DNS_INTERVAL,
            dns_retry: DEFAULT_DNS_RETRY,
            beacon_interval: None,
            beacon_incarnation: Incarnation(0),
            rediscover_after: DEFAULT_REDISCOVER_AFTER,
            rate_per_second: 50,
            burst: 64,
            max_pending: 1_024,
            max_known: 4_096,
            jitter_seed: 0xD15C,
        }
    }
}
