//! [`DiscoveryCounters`]: what the discovery core did and dropped.

use super::BeaconCounters;

/// What the discovery core has counted so far. Counters only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiscoveryCounters {
    /// Received beacons, accepted and dropped by reason.
    pub beacons: BeaconCounters,
    /// Candidates handed to gossip.
    pub emitted: u64,
    /// Addresses not handed over because they were handed over recently.
    pub duplicates: u64,
    /// Candidates dropped because the queue behind the rate limit was full.
    pub queue_full: u64,
    /// Candidates dropped because the deduplication table was full of recent addresses.
    pub table_full: u64,
    /// DNS resolutions that failed or returned no address.
    pub dns_failures: u64,
    /// DNS records beyond the per-name maximum, ignored.
    pub dns_truncated: u64,
    /// mDNS records of another cluster, ignored.
    pub mdns_wrong_cluster: u64,
    /// Beacons that could not be sealed (no randomness): not sent.
    pub seal_failures: u64,
}
