//! Tuning knobs of the membership protocol.

use std::time::Duration;

/// Tuning of a [`Membership`](super::Membership); the defaults suit a LAN.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// Time between two probes (one protocol period), before Lifeguard's health scaling.
    pub probe_interval: Duration,
    /// How long to wait for a direct ack before asking helpers, before health scaling.
    pub probe_timeout: Duration,
    /// How many helpers to ask for an indirect probe (SWIM's k).
    pub indirect_probes: usize,
    /// Retransmit multiplier (lambda): each update is piggybacked about
    /// `lambda * ceil(log10(n + 1))` times.
    pub retransmit_mult: u32,
    /// Suspicion multiplier: the smallest suspicion timeout is
    /// `suspicion_mult * max(1, log10(n)) * probe_interval`.
    pub suspicion_mult: u32,
    /// The largest suspicion timeout, as a multiple of the smallest (Lifeguard).
    pub suspicion_max_timeout_mult: u32,
    /// Lifeguard's cap on the local health multiplier: probe interval and timeout are
    /// stretched by at most this factor.
    pub max_health_multiplier: u32,
    /// Time between two periodic push-pull state syncs (and reconnect attempts to dead
    /// members).
    pub push_pull_interval: Duration,
    /// Budget for one datagram, in bytes; piggybacked data fills what the body leaves.
    pub max_datagram: usize,
    /// How many members a leaving node tells directly.
    pub leave_fanout: usize,
    /// Time between two gossip rounds (memberlist's gossip interval): while urgent news waits
    /// (this node's own news, or a join, death or leave, for its first
    /// `2 * gossip_fanout` transmissions), each round sends the queue to
    /// [`gossip_fanout`](Self::gossip_fanout) random members, on top of piggybacking it on
    /// probes; relayed news only rides the probes, so that the load per member stays flat as
    /// the cluster grows. `None` disables rounds (pure SWIM: piggybacking only).
    pub gossip_interval: Option<Duration>,
    /// How many members each gossip round sends to.
    pub gossip_fanout: usize,
    /// How long after declaring a member dead gossip rounds still include it, so that a
    /// member declared dead by mistake hears of it quickly and refutes.
    pub gossip_to_the_dead: Duration,
    /// How long a dead or left member is remembered (and offered reconnects by push-pull)
    /// before it is forgotten.
    pub dead_reclaim: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            indirect_probes: 3,
            retransmit_mult: 4,
            suspicion_mult: 4,
            suspicion_max_timeout_mult: 6,
            max_health_multiplier: 8,
            push_pull_interval: Duration::from_secs(30),
            max_datagram: 1400,
            leave_fanout: 5,
            gossip_interval: Some(Duration::from_millis(200)),
            gossip_fanout: 3,
            gossip_to_the_dead: Duration::from_secs(30),
            dead_reclaim: Duration::from_secs(3600),
        }
    }
}
