//! Discovery: finding the addresses of other nodes' gossip, for gossip to join.
//!
//! Sources: a static seed list; DNS names re-resolved periodically, each of whose A/AAAA
//! records is a candidate (what a Kubernetes headless service gives); UDP multicast (or
//! broadcast) beacons on the LAN, in the manner of Artillery's zeroconf; and mDNS service
//! registration and browsing through the `mdns-sd` crate.
//!
//! [`Discovery`] is the sans-IO core: it reads no clock, owns no socket and spawns nothing.
//! Its driver feeds it resolution results, received beacon bytes and mDNS records with the
//! current time, carries out the [`Action`]s it asks for (resolve this name, send this beacon)
//! when [`Discovery::poll_timeout`] says, and hands the [`Candidate`]s it releases to gossip.
//! Candidates are deduplicated (an address is handed over at most once per
//! [`DiscoveryConfig::rediscover_after`]) and rate-limited by a token bucket, and every table
//! is bounded by the configuration, never by what peers send.
//!
//! [`DiscoveryActor`] is that driver: an actor with a multicast socket (socket2, then
//! async-net), DNS resolution on the blocking pool, and an optional mDNS daemon.
//!
//! Beacons are sealed with the transports [`Codec`] as `Control` frames: with the cluster's
//! keyring they are encrypted and authenticated, and every bad one (garbled, truncated,
//! oversized, wrong cluster, wrong key, wrong version, replayed) is dropped, counted by reason
//! in [`BeaconCounters`] and logged with one `tracing` event; the layout is in
//! [`Beacon`]'s module. mDNS records are not authenticated (that is mDNS), so they are hints
//! like any candidate: gossip decides by talking to the address.
//!
//! The I/O tests (`actors/tests/discovery_io.rs`) never send off the machine: multicast runs
//! on the loopback interface with TTL 0, DNS resolves `localhost` and a numeric name, and
//! mDNS runs in a network namespace with only loopback (skipped where none can be made).
//! IPv6 multicast has code but no test: this sandbox's loopback has no IPv6 multicast route.
//!
//! # Examples
//!
//! ```
//! use std::time::Instant;
//!
//! use phalanx_actors::discovery::{Action, Discovery, DiscoveryConfig, DnsName, Source};
//! use phalanx_transports::{ClusterId, NodeId, Security};
//!
//! let now = Instant::now();
//! let mut config = DiscoveryConfig::new(ClusterId(7), NodeId::from_u128(1));
//! config.seeds.push("10.0.0.1:7946".parse()?);
//! config.dns.push(DnsName::new("phalanx.local", 7946));
//! let mut discovery = Discovery::new(config, Security::Plaintext, now);
//!
//! // Seeds come out at once.
//! let seed = discovery.poll_candidate(now).unwrap();
//! assert_eq!(seed.source, Source::Seed);
//!
//! // The DNS name is due now: the driver resolves it and reports back.
//! discovery.handle_timeout(now);
//! let Some(Action::Resolve(name)) = discovery.poll_action() else { panic!() };
//! let records = vec!["10.0.0.2:7946".parse()?, "10.0.0.3:7946".parse()?];
//! discovery.handle_resolved(&name, Ok(records), now);
//! assert_eq!(discovery.poll_candidate(now).unwrap().source, Source::Dns);
//! assert_eq!(discovery.poll_candidate(now).unwrap().source, Source::Dns);
//! assert!(discovery.poll_candidate(now).is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod admission;
mod beacon;
mod candidate;
mod config;
mod counters;
mod driver;
mod mdns;
mod socket;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use phalanx_transports::{Codec, CodecConfig, Security};

use self::admission::Admission;
pub use self::beacon::{
    BEACON_MAGIC, BEACON_VERSION, Beacon, BeaconCounters, BeaconError, MAX_BEACON_DATAGRAM,
};
pub use self::candidate::{Action, Candidate, MdnsPeer, Source};
pub use self::config::{
    DEFAULT_BEACON_INTERVAL, DEFAULT_DNS_INTERVAL, DEFAULT_DNS_RETRY, DEFAULT_REDISCOVER_AFTER,
    DiscoveryConfig, DnsName,
};
pub use self::counters::DiscoveryCounters;
pub use self::driver::{
    BeaconTransport, CandidateSink, DiscoveryActor, DiscoveryMessage, DriverConfig,
};
pub use self::mdns::{DEFAULT_SERVICE_TYPE, MdnsConfig, MdnsError};
pub use self::socket::{MulticastConfig, broadcast_socket, multicast_socket};

/// Records taken from one DNS resolution, at most; the rest are counted and ignored.
pub const MAX_DNS_RECORDS: usize = 64;

/// Addresses taken from one mDNS record, at most.
pub const MAX_MDNS_ADDRS: usize = 16;

/// The sans-IO discovery core; see the [module docs](self).
#[derive(Debug)]
pub struct Discovery {
    config: DiscoveryConfig,
    /// Seals this node's beacons and opens others'; its replay table remembers senders.
    codec: Codec,
    dns: Vec<DnsState>,
    /// When the next beacon is due; `None` when this node sends none.
    next_beacon: Option<Instant>,
    admission: Admission,
    actions: VecDeque<Action>,
    counters: DiscoveryCounters,
    rng: fastrand::Rng,
}

/// The schedule of one DNS name.
#[derive(Debug)]
struct DnsState {
    name: DnsName,
    /// When to resolve next; meaningless while `in_flight`.
    due: Instant,
    /// A resolution was asked for and its result has not come back yet.
    in_flight: bool,
}

impl Discovery {
    /// A core for `config`; beacons are sealed and opened with `security` (the cluster's
    /// keyring, or plaintext for local development). The seeds are queued for gossip at once,
    /// the DNS names and the first beacon are due at `now`.
    pub fn new(config: DiscoveryConfig, security: Security, now: Instant) -> Discovery {
        let mut codec_config =
            CodecConfig::new(config.cluster, config.node, config.beacon_incarnation);
        codec_config.max_datagram = MAX_BEACON_DATAGRAM;
        let codec = Codec::new(codec_config, security);
        let admission = Admission::new(
            config.rate_per_second,
            config.burst,
            config.rediscover_after,
            config.max_known,
            config.max_pending,
            now,
        );
        let dns = config
            .dns
            .iter()
            .map(|name| DnsState {
                name: name.clone(),
                due: now,
                in_flight: false,
            })
            .collect();
        let next_beacon = match (config.beacon_interval, config.gossip) {
            (Some(_), Some(_)) => Some(now),
            _ => None,
        };
        let rng = fastrand::Rng::with_seed(config.jitter_seed);
        let mut discovery = Discovery {
            config,
            codec,
            dns,
            next_beacon,
            admission,
            actions: VecDeque::new(),
            counters: DiscoveryCounters::default(),
            rng,
        };
        let seeds = discovery.config.seeds.clone();
        for addr in seeds {
            discovery.offer(addr, Source::Seed, None, now);
        }
        discovery
    }

    /// Runs every timer due at `now`: queues [`Action::Resolve`] for due DNS names and
    /// [`Action::SendBeacon`] when a beacon is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        for state in &mut self.dns {
            if !state.in_flight && state.due <= now {
                state.in_flight = true;
                self.actions.push_back(Action::Resolve(state.name.clone()));
            }
        }
        if let (Some(due), Some(interval), Some(gossip)) = (
            self.next_beacon,
            self.config.beacon_interval,
            self.config.gossip,
        ) && due <= now
        {
            let beacon = Beacon {
                cluster: self.config.cluster,
                node: self.config.node,
                gossip,
            };
            match beacon.seal(&mut self.codec) {
                Ok(bytes) => self.actions.push_back(Action::SendBeacon(bytes)),
                Err(error) => {
                    self.counters.seal_failures += 1;
                    tracing::warn!(%error, "could not seal a beacon");
                }
            }
            self.next_beacon = Some(now + self.jittered(interval));
        }
    }

    /// Takes the result of resolving `name` (one of the configured names; others are
    /// ignored). Up to [`MAX_DNS_RECORDS`] addresses become candidates; the name is resolved
    /// again after [`DiscoveryConfig::dns_interval`], or after
    /// [`DiscoveryConfig::dns_retry`] if resolution failed or found nothing.
    pub fn handle_resolved(
        &mut self,
        name: &DnsName,
        result: io::Result<Vec<SocketAddr>>,
        now: Instant,
    ) {
        let Some(state) = self.dns.iter_mut().find(|s| &s.name == name) else {
            return;
        };
        state.in_flight = false;
        let addrs = match result {
            Ok(addrs) if !addrs.is_empty() => addrs,
            Ok(_) => {
                state.due = now + self.config.dns_retry;
                self.counters.dns_failures += 1;
                tracing::debug!(host = %name.host, "DNS name has no address");
                return;
            }
            Err(error) => {
                state.due = now + self.config.dns_retry;
                self.counters.dns_failures += 1;
                tracing::debug!(host = %name.host, %error, "DNS resolution failed");
                return;
            }
        };
        state.due = now + self.config.dns_interval;
        let extra = addrs.len().saturating_sub(MAX_DNS_RECORDS);
        self.counters.dns_truncated += extra as u64;
        for addr in addrs.into_iter().take(MAX_DNS_RECORDS) {
            self.offer(addr, Source::Dns, None, now);
        }
    }

    /// Takes one received beacon datagram from `from`. A good beacon from another node makes
    /// its gossip address a candidate; this node's own beacons are counted and ignored.
    ///
    /// # Errors
    ///
    /// The [`BeaconError`] for which the beacon was dropped; it is counted in
    /// [`counters`](Self::counters) and logged, and nothing else changes.
    pub fn handle_beacon(
        &mut self,
        bytes: &[u8],
        from: SocketAddr,
        now: Instant,
    ) -> Result<(), BeaconError> {
        let beacons = &mut self.counters.beacons;
        let beacon = match Beacon::open(&mut self.codec, bytes) {
            Ok(beacon) => beacon,
            Err(error) => {
                beacons.record(&error, from, bytes.len());
                return Err(error);
            }
        };
        if beacon.node == self.config.node {
            beacons.own += 1;
            return Ok(());
        }
        beacons.accepted += 1;
        self.offer(beacon.gossip, Source::Beacon, Some(beacon.node), now);
        Ok(())
    }

    /// Takes one resolved mDNS record. Records of another cluster and this node's own are
    /// ignored; up to [`MAX_MDNS_ADDRS`] of its addresses become candidates.
    pub fn handle_mdns(&mut self, peer: MdnsPeer, now: Instant) {
        if peer
            .cluster
            .is_some_and(|cluster| cluster != self.config.cluster)
        {
            self.counters.mdns_wrong_cluster += 1;
            tracing::debug!(instance = %peer.instance, "mDNS record of another cluster");
            return;
        }
        if peer.node == Some(self.config.node) {
            return;
        }
        for addr in peer.addrs.into_iter().take(MAX_MDNS_ADDRS) {
            self.offer(addr, Source::Mdns, peer.node, now);
        }
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next candidate for gossip that the rate limit lets through at `now`.
    pub fn poll_candidate(&mut self, now: Instant) -> Option<Candidate> {
        let candidate = self.admission.poll(now)?;
        self.counters.emitted += 1;
        Some(candidate)
    }

    /// When [`handle_timeout`](Self::handle_timeout) (or
    /// [`poll_candidate`](Self::poll_candidate), for rate-limited candidates) next has work,
    /// or `None` when nothing is scheduled.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let dns = self
            .dns
            .iter()
            .filter(|state| !state.in_flight)
            .map(|state| state.due);
        dns.chain(self.next_beacon)
            .chain(self.admission.deadline())
            .min()
    }

    /// Candidates waiting for the rate limit.
    pub fn pending(&self) -> usize {
        self.admission.pending()
    }

    /// What has been counted so far.
    pub fn counters(&self) -> &DiscoveryCounters {
        &self.counters
    }

    /// The configuration.
    pub fn config(&self) -> &DiscoveryConfig {
        &self.config
    }

    /// Queues an address for gossip, unless it is this node's own.
    fn offer(
        &mut self,
        addr: SocketAddr,
        source: Source,
        node: Option<phalanx_transports::NodeId>,
        now: Instant,
    ) {
        if Some(addr) == self.config.gossip {
            return;
        }
        let candidate = Candidate { addr, source, node };
        self.admission.offer(candidate, now, &mut self.counters);
    }

    /// `interval` moved by up to 10% either way.
    fn jittered(&mut self, interval: Duration) -> Duration {
        let tenth = interval / 10;
        let nanos = u64::try_from(tenth.as_nanos()).unwrap_or(u64::MAX / 4);
        let shift = Duration::from_nanos(self.rng.u64(0..=nanos.saturating_mul(2)));
        interval.saturating_sub(tenth) + shift
    }
}

#[cfg(test)]
mod tests;
