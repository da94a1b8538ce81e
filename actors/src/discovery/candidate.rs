//! What the discovery core hands out: [`Candidate`]s for gossip and [`Action`]s for its driver.

use std::net::SocketAddr;

use phalanx_transports::{ClusterId, NodeId};

use super::DnsName;

/// An address where a cluster member's gossip may listen, for gossip to try to join.
///
/// A candidate is a hint, not a member: gossip decides by talking to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Candidate {
    /// The gossip address to try.
    pub addr: SocketAddr,
    /// Where the address came from.
    pub source: Source,
    /// The node that announced itself there, when the source says (beacons, mDNS).
    pub node: Option<NodeId>,
}

/// Where a [`Candidate`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// The static seed list.
    Seed,
    /// A DNS name's A or AAAA record.
    Dns,
    /// A UDP multicast or broadcast beacon.
    Beacon,
    /// An mDNS service record.
    Mdns,
}

/// Work the driver must do for the core.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Resolve this name now and report with
    /// [`Discovery::handle_resolved`](super::Discovery::handle_resolved).
    Resolve(DnsName),
    /// Send this sealed beacon to the beacon group (or broadcast address) now.
    SendBeacon(Vec<u8>),
}

/// A resolved mDNS service instance, as the driver hands it to
/// [`Discovery::handle_mdns`](super::Discovery::handle_mdns).
///
/// The TXT record's `cluster` and `node` properties fill `cluster` and `node`. mDNS is not
/// authenticated: anyone on the LAN can announce anything, so these are hints like the
/// addresses themselves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MdnsPeer {
    /// The instance's full name, for logs.
    pub instance: String,
    /// The cluster named in its TXT record, if any; a mismatch drops the record.
    pub cluster: Option<ClusterId>,
    /// The node named in its TXT record, if any; this node's own record is ignored.
    pub node: Option<NodeId>,
    /// Its addresses with the service's port.
    pub addrs: Vec<SocketAddr>,
}
