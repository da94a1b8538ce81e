//! A deterministic, in-memory simulated network for tests.
//!
//! [`SimNetwork`] carries datagrams between addresses of any type, under faults chosen by
//! the test: loss, delay, duplication, reordering, one-way and two-way partitions, and
//! crashed nodes. Time is virtual ([`SimInstant`]); randomness comes from one seed, so a run
//! is a pure function of its seed and its inputs and a failing seed replays exactly.
//!
//! The network never delivers on its own: the test asks for what is due with
//! [`SimNetwork::pop_due`] and moves its clock to [`SimNetwork::next_due`].
//!
//! [`SimHub`] puts the same network behind the [`Transport`](crate::Transport) trait: each
//! node gets a [`SimTransport`] with datagrams (through a `SimNetwork`) and reliable, ordered
//! streams, on one virtual clock that the test moves (or lets [`SimHub::run`] move), so that
//! the endpoint and remoting layers run on the simulated network unchanged. [`SimHub`]
//! documents what stays deterministic when real tasks run on top.

mod clock;
mod hub;
mod stream;
mod transport;

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap};
use std::time::Duration;

pub use clock::{SimClock, SimInstant};
pub use hub::SimHub;
pub use transport::SimTransport;

/// The faults a [`SimNetwork`] applies to every datagram.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SimFaults {
    /// Probability in `[0, 1]` that a datagram is lost.
    pub loss: f64,
    /// Probability in `[0, 1]` that a datagram is delivered twice (each copy with its own
    /// delay).
    pub duplicate: f64,
    /// Smallest one-way delay.
    pub delay_min: Duration,
    /// Largest one-way delay; delays are uniform in `[delay_min, delay_max]`.
    pub delay_max: Duration,
    /// Probability in `[0, 1]` that a datagram is held back by an extra delay of up to
    /// [`reorder_delay`](Self::reorder_delay), so that later datagrams overtake it.
    pub reorder: f64,
    /// The largest extra delay of a reordered datagram.
    pub reorder_delay: Duration,
}

impl SimFaults {
    /// A perfect network: no loss, no duplication, no reordering, a fixed 1 ms delay.
    pub fn none() -> Self {
        Self {
            loss: 0.0,
            duplicate: 0.0,
            delay_min: Duration::from_millis(1),
            delay_max: Duration::from_millis(1),
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
        }
    }

    /// These faults with the loss probability set to `loss`.
    #[must_use]
    pub fn with_loss(mut self, loss: f64) -> Self {
        self.loss = loss;
        self
    }

    /// These faults with the duplication probability set to `duplicate`.
    #[must_use]
    pub fn with_duplicate(mut self, duplicate: f64) -> Self {
        self.duplicate = duplicate;
        self
    }

    /// These faults with delays uniform in `[min, max]`.
    #[must_use]
    pub fn with_delay(mut self, min: Duration, max: Duration) -> Self {
        self.delay_min = min;
        self.delay_max = max.max(min);
        self
    }

    /// These faults with probability `reorder` of an extra delay of up to `extra`.
    #[must_use]
    pub fn with_reorder(mut self, reorder: f64, extra: Duration) -> Self {
        self.reorder = reorder;
        self.reorder_delay = extra;
        self
    }
}

impl Default for SimFaults {
    fn default() -> Self {
        Self::none()
    }
}

/// Counters of what happened to the datagrams handed to a [`SimNetwork`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SimStats {
    /// Datagrams handed to [`SimNetwork::send`].
    pub sent: u64,
    /// Datagrams returned by [`SimNetwork::pop_due`], duplicates included.
    pub delivered: u64,
    /// Extra copies made by duplication.
    pub duplicated: u64,
    /// Datagrams dropped by random loss.
    pub lost: u64,
    /// Datagrams dropped by a partition, at send or at delivery time.
    pub partitioned: u64,
    /// Datagrams dropped because their sender or receiver was crashed.
    pub crashed: u64,
}

/// A deterministic simulated network carrying payloads `P` between addresses `A`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// use phalanx_transports::{SimClock, SimFaults, SimNetwork};
///
/// let mut clock = SimClock::new();
/// let mut net = SimNetwork::new(42, SimFaults::none());
/// net.send(1u8, 2u8, "hello", clock.now());
/// assert_eq!(net.pop_due(clock.now()), None); // still in flight
/// clock.advance_to(net.next_due().unwrap());
/// assert_eq!(net.pop_due(clock.now()), Some((1, 2, "hello")));
/// ```
#[derive(Debug)]
pub struct SimNetwork<A, P> {
    rng: fastrand::Rng,
    faults: SimFaults,
    in_flight: BinaryHeap<InFlight<A, P>>,
    /// Tie-breaker for datagrams due at the same instant: send order, so the heap never
    /// decides by itself and a run does not depend on its internal layout.
    next_seq: u64,
    /// Blocked directed links `(from, to)`. Ordered sets keep every iteration reproducible.
    blocked: BTreeSet<(A, A)>,
    crashed: BTreeSet<A>,
    stats: SimStats,
}

impl<A, P> SimNetwork<A, P>
where
    A: Clone + Ord,
    P: Clone,
{
    /// An empty network whose random choices all follow from `seed`.
    pub fn new(seed: u64, faults: SimFaults) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
            faults,
            in_flight: BinaryHeap::new(),
            next_seq: 0,
            blocked: BTreeSet::new(),
            crashed: BTreeSet::new(),
            stats: SimStats::default(),
        }
    }

    /// The faults currently applied.
    pub fn faults(&self) -> &SimFaults {
        &self.faults
    }

    /// Replaces the faults applied to datagrams sent from now on.
    pub fn set_faults(&mut self, faults: SimFaults) {
        self.faults = faults;
    }

    /// Hands a datagram to the network at virtual time `now`.
    ///
    /// It may be lost, duplicated, delayed or reordered; it is dropped at once if the link is
    /// partitioned or either end is crashed.
    pub fn send(&mut self, from: A, to: A, payload: P, now: SimInstant) {
        self.stats.sent += 1;
        if self.is_crashed(&from) || self.is_crashed(&to) {
            self.stats.crashed += 1;
            return;
        }
        if self.is_blocked(&from, &to) {
            self.stats.partitioned += 1;
            return;
        }
        if chance(&mut self.rng, self.faults.loss) {
            self.stats.lost += 1;
            return;
        }
        if chance(&mut self.rng, self.faults.duplicate) {
            self.stats.duplicated += 1;
            let due = now + self.draw_delay();
            self.enqueue(due, from.clone(), to.clone(), payload.clone());
        }
        let due = now + self.draw_delay();
        self.enqueue(due, from, to, payload);
    }

    /// The next datagram due at or before `now`, as `(from, to, payload)`.
    ///
    /// Datagrams come out in order of due time, then send order. One whose link was
    /// partitioned or whose end crashed while it was in flight is dropped, not returned.
    pub fn pop_due(&mut self, now: SimInstant) -> Option<(A, A, P)> {
        while self.in_flight.peek().is_some_and(|next| next.due <= now) {
            let InFlight {
                from, to, payload, ..
            } = self.in_flight.pop()?;
            if self.is_crashed(&from) || self.is_crashed(&to) {
                self.stats.crashed += 1;
            } else if self.is_blocked(&from, &to) {
                self.stats.partitioned += 1;
            } else {
                self.stats.delivered += 1;
                return Some((from, to, payload));
            }
        }
        None
    }

    /// When the earliest datagram in flight is due, if any is.
    pub fn next_due(&self) -> Option<SimInstant> {
        self.in_flight.peek().map(|next| next.due)
    }

    /// How many datagrams are in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Counters of everything sent so far.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Drops everything sent from `from` to `to` until healed; the other direction still
    /// works.
    pub fn partition_one_way(&mut self, from: A, to: A) {
        self.blocked.insert((from, to));
    }

    /// Drops everything between `a` and `b`, both ways, until healed.
    pub fn partition(&mut self, a: A, b: A) {
        self.blocked.insert((a.clone(), b.clone()));
        self.blocked.insert((b, a));
    }

    /// Partitions every member of `left` from every member of `right`, both ways.
    pub fn partition_groups(&mut self, left: &[A], right: &[A]) {
        for a in left {
            for b in right {
                self.partition(a.clone(), b.clone());
            }
        }
    }

    /// Heals the partition between `a` and `b`, both ways.
    pub fn heal(&mut self, a: &A, b: &A) {
        self.blocked.remove(&(a.clone(), b.clone()));
        self.blocked.remove(&(b.clone(), a.clone()));
    }

    /// Heals every partition.
    pub fn heal_all(&mut self) {
        self.blocked.clear();
    }

    /// Whether datagrams from `from` to `to` are currently dropped by a partition.
    pub fn is_blocked(&self, from: &A, to: &A) -> bool {
        !self.blocked.is_empty() && self.blocked.contains(&(from.clone(), to.clone()))
    }

    /// Crashes `node`: everything in flight to or from it is dropped, and so is everything
    /// sent to or from it until [`restart`](Self::restart).
    pub fn crash(&mut self, node: A) {
        let before = self.in_flight.len();
        self.in_flight
            .retain(|datagram| datagram.from != node && datagram.to != node);
        self.stats.crashed += (before - self.in_flight.len()) as u64;
        self.crashed.insert(node);
    }

    /// Lets a crashed `node` send and receive again.
    pub fn restart(&mut self, node: &A) {
        self.crashed.remove(node);
    }

    /// Whether `node` is crashed.
    pub fn is_crashed(&self, node: &A) -> bool {
        !self.crashed.is_empty() && self.crashed.contains(node)
    }

    fn draw_delay(&mut self) -> Duration {
        let faults = &self.faults;
        let min = duration_nanos(faults.delay_min);
        let max = duration_nanos(faults.delay_max);
        let mut nanos = self.rng.u64(min..=max.max(min));
        if chance(&mut self.rng, self.faults.reorder) {
            let extra = duration_nanos(self.faults.reorder_delay);
            nanos = nanos.saturating_add(self.rng.u64(0..=extra));
        }
        Duration::from_nanos(nanos)
    }

    fn enqueue(&mut self, due: SimInstant, from: A, to: A, payload: P) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.in_flight.push(InFlight {
            due,
            seq,
            from,
            to,
            payload,
        });
    }
}

/// `true` with probability `p`; draws nothing when `p <= 0`, so a fault that is off does not
/// shift the random stream of the others.
fn chance(rng: &mut fastrand::Rng, p: f64) -> bool {
    p > 0.0 && rng.f64() < p
}

fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A datagram in flight. Ordered for a min-heap on `(due, seq)`: the heap is a max-heap, so
/// the comparison is reversed.
#[derive(Debug)]
struct InFlight<A, P> {
    due: SimInstant,
    seq: u64,
    from: A,
    to: A,
    payload: P,
}

impl<A, P> PartialEq for InFlight<A, P> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}

impl<A, P> Eq for InFlight<A, P> {}

impl<A, P> PartialOrd for InFlight<A, P> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<A, P> Ord for InFlight<A, P> {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

#[cfg(test)]
mod tests;
