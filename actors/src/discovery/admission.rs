//! Deduplication and rate limiting of candidates, between the sources and gossip.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Candidate, DiscoveryCounters};

/// Remembers which addresses went to gossip recently and meters candidates out with a token
/// bucket, with a bounded queue in front of it. Every structure is bounded by the
/// configuration, never by what peers send.
#[derive(Debug)]
pub(crate) struct Admission {
    /// When each address was last admitted; entries older than `rediscover_after` are dead
    /// and purged when the table fills.
    known: HashMap<SocketAddr, Instant>,
    pending: VecDeque<Candidate>,
    tokens: u32,
    /// When the next token is due (meaningful while `tokens < burst`).
    next_token: Instant,
    period: Duration,
    burst: u32,
    rediscover_after: Duration,
    max_known: usize,
    max_pending: usize,
}

impl Admission {
    pub(crate) fn new(
        rate_per_second: u32,
        burst: u32,
        rediscover_after: Duration,
        max_known: usize,
        max_pending: usize,
        now: Instant,
    ) -> Admission {
        let burst = burst.max(1);
        let period = Duration::from_secs(1) / rate_per_second.max(1);
        Admission {
            known: HashMap::new(),
            pending: VecDeque::new(),
            tokens: burst,
            next_token: now + period,
            period,
            burst,
            rediscover_after,
            max_known: max_known.max(1),
            max_pending: max_pending.max(1),
        }
    }

    /// Queues `candidate` unless its address was admitted recently or a bound is reached.
    pub(crate) fn offer(
        &mut self,
        candidate: Candidate,
        now: Instant,
        counters: &mut DiscoveryCounters,
    ) {
        let recent = |at: &Instant| now.saturating_duration_since(*at) < self.rediscover_after;
        if self.known.get(&candidate.addr).is_some_and(recent) {
            counters.duplicates += 1;
            return;
        }
        if self.pending.len() >= self.max_pending {
            counters.queue_full += 1;
            tracing::debug!(addr = %candidate.addr, "discovery queue full, candidate dropped");
            return;
        }
        if !self.known.contains_key(&candidate.addr) && self.known.len() >= self.max_known {
            self.known.retain(|_, at| recent(at));
            if self.known.len() >= self.max_known {
                counters.table_full += 1;
                tracing::debug!(addr = %candidate.addr, "discovery table full, candidate dropped");
                return;
            }
        }
        self.known.insert(candidate.addr, now);
        self.pending.push_back(candidate);
    }

    /// The next candidate the rate limit lets through now.
    pub(crate) fn poll(&mut self, now: Instant) -> Option<Candidate> {
        if self.pending.is_empty() {
            return None;
        }
        self.refill(now);
        if self.tokens == 0 {
            return None;
        }
        let candidate = self.pending.pop_front()?;
        if self.tokens == self.burst {
            // The bucket was full, so no token was accruing: the next one is due a period
            // from now.
            self.next_token = now + self.period;
        }
        self.tokens -= 1;
        Some(candidate)
    }

    /// When [`poll`](Self::poll) will next have something, if candidates wait for tokens.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        (!self.pending.is_empty() && self.tokens == 0).then_some(self.next_token)
    }

    /// Candidates waiting.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    fn refill(&mut self, now: Instant) {
        if self.tokens >= self.burst || now < self.next_token {
            return;
        }
        let since = now.duration_since(self.next_token);
        let due = since.as_nanos() / self.period.as_nanos().max(1) + 1;
        let room = u128::from(self.burst - self.tokens);
        let added = due.min(room);
        // `added` <= room <= burst, which fits in a u32.
        self.tokens += u32::try_from(added).unwrap_or(self.burst - self.tokens);
        self.next_token += self.period * u32::try_from(added).unwrap_or(1);
        if self.tokens == self.burst {
            self.next_token = now + self.period;
        }
    }
}
