//! Exponential backoff with a cap and jitter, for reconnecting to peers.
//!
//! Sans-IO: [`Backoff::next_delay`] says how long to wait; the caller sleeps.

use std::time::Duration;

/// Delays between reconnection attempts: `base * 2^attempt`, capped, with "equal jitter" (a
/// random delay in `[d/2, d]`) so that nodes that lost each other at the same moment do not
/// reconnect in lockstep.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// use phalanx_transports::Backoff;
///
/// let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(1), 7);
/// let first = backoff.next_delay();
/// assert!(first >= Duration::from_millis(5) && first <= Duration::from_millis(10));
/// for _ in 0..20 {
///     assert!(backoff.next_delay() <= Duration::from_secs(1));
/// }
/// backoff.reset();
/// assert!(backoff.next_delay() <= Duration::from_millis(10));
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    /// A backoff starting at `base` and never above `cap`; `seed` drives the jitter.
    pub fn new(base: Duration, cap: Duration, seed: u64) -> Backoff {
        Backoff {
            base,
            cap: cap.max(base),
            attempt: 0,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// The delay before the next attempt; each call doubles the next one, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let factor = 1u32 << self.attempt.min(20);
        let full = self.base.saturating_mul(factor).min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let nanos = u64::try_from(full.as_nanos()).unwrap_or(u64::MAX);
        let half = nanos / 2;
        Duration::from_nanos(half + self.rng.u64(0..=nanos - half))
    }

    /// How many delays were handed out since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Starts over from `base`: call it after a successful connection.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn doubles_until_the_cap() {
        let mut backoff = Backoff::new(Duration::from_millis(8), Duration::from_millis(100), 1);
        let upper = [8, 16, 32, 64, 100, 100];
        for (attempt, max) in upper.into_iter().enumerate() {
            let delay = backoff.next_delay();
            let max = Duration::from_millis(max);
            assert!(
                delay <= max && delay >= max / 2,
                "attempt {attempt}: {delay:?}"
            );
        }
        assert_eq!(backoff.attempts(), 6);
    }

    proptest! {
        #[test]
        fn never_exceeds_the_cap(base in 0u64..1_000, cap in 0u64..100_000, seed: u64, n in 0usize..80) {
            let base = Duration::from_micros(base);
            let cap = Duration::from_micros(cap);
            let mut backoff = Backoff::new(base, cap, seed);
            for _ in 0..n {
                prop_assert!(backoff.next_delay() <= cap.max(base));
            }
        }
    }
}
