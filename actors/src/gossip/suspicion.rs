//! Lifeguard's two local refinements: the suspicion timeout that shrinks with independent
//! confirmations, and the local health multiplier.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::NodeId;

/// The suspicion of one member.
///
/// The timeout starts at `max` and shrinks toward `min` as independent suspectors confirm:
/// `timeout(c) = max(min, max - (max - min) * log(c + 1) / log(k + 1))`, where `c` counts the
/// confirmations beyond the first suspector and `k` is how many are expected.
#[derive(Debug)]
pub(crate) struct Suspicion {
    pub(crate) start: Instant,
    min: Duration,
    max: Duration,
    expected: u32,
    suspectors: BTreeSet<NodeId>,
}

impl Suspicion {
    pub(crate) fn new(
        start: Instant,
        first: NodeId,
        min: Duration,
        max: Duration,
        expected: u32,
    ) -> Self {
        Self {
            start,
            min,
            max: max.max(min),
            expected,
            suspectors: BTreeSet::from([first]),
        }
    }

    /// Counts `suspector`; returns whether it is new (a new independent confirmation).
    pub(crate) fn confirm(&mut self, suspector: NodeId) -> bool {
        if self.suspectors.len() > self.expected as usize {
            // Enough confirmations already: the timeout is at its minimum.
            return false;
        }
        self.suspectors.insert(suspector)
    }

    /// The current total timeout, from `start`.
    pub(crate) fn timeout(&self) -> Duration {
        let confirmations = self.suspectors.len().saturating_sub(1);
        if self.expected == 0 {
            return self.min;
        }
        #[allow(clippy::cast_precision_loss)]
        let fraction =
            ((confirmations as f64) + 1.0).ln() / ((f64::from(self.expected)) + 1.0).ln();
        let span = self.max.saturating_sub(self.min);
        let shrink = span.mul_f64(fraction.clamp(0.0, 1.0));
        self.max.saturating_sub(shrink).max(self.min)
    }

    /// When the suspicion expires.
    pub(crate) fn deadline(&self) -> Instant {
        self.start + self.timeout()
    }
}

/// Lifeguard's local health: a score in `[0, max)`; timeouts are multiplied by score + 1.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Health {
    score: u32,
    max: u32,
}

impl Health {
    pub(crate) fn new(max_multiplier: u32) -> Self {
        Self {
            score: 0,
            max: max_multiplier.max(1),
        }
    }

    pub(crate) fn apply(&mut self, delta: i64) {
        let score = i64::from(self.score).saturating_add(delta);
        let capped = score.clamp(0, i64::from(self.max - 1));
        self.score = u32::try_from(capped).unwrap_or(0);
    }

    pub(crate) fn score(self) -> u32 {
        self.score
    }

    pub(crate) fn scale(self, duration: Duration) -> Duration {
        duration.saturating_mul(self.score + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_shrinks_from_max_to_min_with_confirmations() {
        let min = Duration::from_secs(4);
        let max = Duration::from_secs(24);
        let mut suspicion = Suspicion::new(Instant::now(), NodeId(1), min, max, 2);
        assert_eq!(suspicion.timeout(), max);
        assert!(suspicion.confirm(NodeId(2)));
        assert!(!suspicion.confirm(NodeId(2)));
        let one = suspicion.timeout();
        assert!(one < max && one > min, "{one:?}");
        assert!(suspicion.confirm(NodeId(3)));
        assert_eq!(suspicion.timeout(), min);
        assert!(!suspicion.confirm(NodeId(4)));
        assert_eq!(suspicion.timeout(), min);
    }

    #[test]
    fn health_is_bounded_and_scales() {
        let mut health = Health::new(8);
        health.apply(-3);
        assert_eq!(health.score(), 0);
        health.apply(100);
        assert_eq!(health.score(), 7);
        assert_eq!(health.scale(Duration::from_secs(1)), Duration::from_secs(8));
    }
}
