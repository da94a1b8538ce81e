//! mDNS (DNS-SD) registration and browsing through the `mdns-sd` crate.
//!
//! `mdns-sd` fits our runtime: it runs its own daemon thread and talks over flume channels,
//! whose receivers are awaited from any executor. Two things to know:
//! - the daemon joins the mDNS group on every interface when its thread starts, before an
//!   interface selection sent to it can apply, so [`MdnsConfig::loopback_only`] narrows what
//!   it sends and answers to the loopback interface but cannot prevent the initial IGMP
//!   membership reports on the other interfaces;
//! - it sends with TTL 255 as RFC 6762 asks, so mDNS traffic reaches the whole link.
//!
//! mDNS is unauthenticated: the TXT record's cluster and node ids are hints, like the
//! addresses.

use std::net::{IpAddr, SocketAddr};

use mdns_sd::{IfKind, ResolvedService, ServiceDaemon, ServiceEvent, ServiceInfo};
use phalanx_transports::{ClusterId, NodeId};

use super::MdnsPeer;

/// The DNS-SD service type phalanx nodes register and browse.
pub const DEFAULT_SERVICE_TYPE: &str = "_phalanx._udp.local.";

/// How the discovery actor uses mDNS.
///
/// # Examples
///
/// ```
/// use phalanx_actors::discovery::MdnsConfig;
///
/// let mut config = MdnsConfig::new();
/// config.port = 5454; // a private port for tests, instead of 5353
/// config.loopback_only = true;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MdnsConfig {
    /// The service type to register and browse. Default [`DEFAULT_SERVICE_TYPE`].
    pub service_type: String,
    /// The mDNS UDP port: 5353 in production; another port keeps tests apart from the host's
    /// mDNS responder.
    pub port: u16,
    /// Use only the IPv4 loopback interface (tests). Default false.
    pub loopback_only: bool,
    /// Register this node's gossip address. Default true.
    pub register: bool,
    /// Browse for other nodes. Default true.
    pub browse: bool,
}

impl MdnsConfig {
    /// The defaults: [`DEFAULT_SERVICE_TYPE`] on port 5353, all interfaces, register and
    /// browse.
    pub fn new() -> MdnsConfig {
        MdnsConfig {
            service_type: DEFAULT_SERVICE_TYPE.to_string(),
            port: mdns_sd::MDNS_PORT,
            loopback_only: false,
            register: true,
            browse: true,
        }
    }
}

impl Default for MdnsConfig {
    fn default() -> Self {
        MdnsConfig::new()
    }
}

/// The mDNS daemon could not be started or asked to register or browse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MdnsError {
    /// The `mdns-sd` daemon refused.
    #[error("mDNS daemon: {0}")]
    Daemon(#[from] mdns_sd::Error),
    /// Registration needs a gossip address with a specific IP.
    #[error("mDNS registration needs a specific gossip IP address, not {0}")]
    Unspecified(IpAddr),
}

/// A running daemon and the browse channel, if browsing.
pub(crate) struct Mdns {
    pub(crate) daemon: ServiceDaemon,
    pub(crate) events: Option<flume::Receiver<ServiceEvent>>,
}

impl std::fmt::Debug for Mdns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mdns")
            .field("browsing", &self.events.is_some())
            .finish_non_exhaustive()
    }
}

impl Mdns {
    /// Starts the daemon, registers `gossip` under `node`'s name and starts browsing, as
    /// `config` says.
    pub(crate) fn start(
        config: &MdnsConfig,
        cluster: ClusterId,
        node: NodeId,
        gossip: Option<SocketAddr>,
    ) -> Result<Mdns, MdnsError> {
        let daemon = ServiceDaemon::new_with_port(config.port)?;
        if config.loopback_only {
            daemon.disable_interface(IfKind::All)?;
            daemon.enable_interface(IfKind::LoopbackV4)?;
        }
        if let (true, Some(gossip)) = (config.register, gossip) {
            if gossip.ip().is_unspecified() {
                let _ = daemon.shutdown();
                return Err(MdnsError::Unspecified(gossip.ip()));
            }
            let instance = node.to_string();
            let host = format!("{instance}.local.");
            let properties = [("cluster", cluster.to_string()), ("node", node.to_string())];
            let info = ServiceInfo::new(
                &config.service_type,
                &instance,
                &host,
                gossip.ip(),
                gossip.port(),
                &properties[..],
            )?;
            daemon.register(info)?;
        }
        let events = if config.browse {
            Some(daemon.browse(&config.service_type)?)
        } else {
            None
        };
        Ok(Mdns { daemon, events })
    }
}

/// Turns a resolved service into the core's input; `None` for incomplete records.
pub(crate) fn peer(service: &ResolvedService) -> Option<MdnsPeer> {
    if !service.is_valid() {
        return None;
    }
    let cluster = service
        .get_property_val_str("cluster")
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .map(ClusterId);
    let node = service
        .get_property_val_str("node")
        .and_then(|hex| u128::from_str_radix(hex, 16).ok())
        .map(NodeId::from_u128);
    let addrs = service
        .addresses
        .iter()
        .take(super::MAX_MDNS_ADDRS)
        .map(|ip| SocketAddr::new(ip.to_ip_addr(), service.port))
        .collect();
    Some(MdnsPeer {
        instance: service.fullname.clone(),
        cluster,
        node,
        addrs,
    })
}
