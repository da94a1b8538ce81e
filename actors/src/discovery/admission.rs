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
    /// Addresses waiting in `pending` or handed over recently; entries handed over more than
    /// `rediscover_after` ago are dead and purged when the table fills.
    known: HashMap<SocketAddr, Known>,
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

/// What the table knows of an address.
#[derive(Clone, Copy, Debug)]
enum Known {
    /// Waiting in the queue.
    Queued,
    /// Handed to gossip at this time.
    HandedOver(Instant),
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
        let live = |known: &Known| match known {
            Known::Queued => true,
            Known::HandedOver(at) => now.saturating_duration_since(*at) < self.rediscover_after,
        };
        if self.known.get(&candidate.addr).is_some_and(live) {
            counters.duplicates += 1;
            return;
        }
        if self.pending.len() >= self.max_pending {
            counters.queue_full += 1;
            tracing::debug!(addr = %candidate.addr, "discovery queue full, candidate dropped");
            return;
        }
        if !self.known.contains_key(&candidate.addr) && self.known.len() >= self.max_known {
            self.known.retain(|_, known| live(known));
            if self.known.len() >= self.max_known {
                counters.table_full += 1;
                tracing::debug!(addr = %candidate.addr, "discovery table full, candidate dropped");
                return;
            }
        }
        self.known.insert(candidate.addr, Known::Queued);
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
        // The dedup window starts when gossip gets the address, not when it was queued, so two
        // hand-overs of one address are always `rediscover_after` apart.
        self.known.insert(candidate.addr, Known::HandedOver(now));
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
