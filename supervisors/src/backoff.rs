//! Delays before a child is started again.

use std::time::Duration;

/// How long a supervisor waits before it starts a failed child again.
///
/// The supervisor never sleeps while it waits: it schedules a message to itself and goes on
/// handling its other children. The delay is a pure function of the restart attempt (0 for the
/// first restart of a child in a while; see [`Restarter`](crate::Restarter) for when the count
/// resets) and of a caller-provided random number for jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Backoff {
    /// Restart at once.
    #[default]
    None,
    /// Always wait the same time.
    Fixed(Duration),
    /// Wait `initial * 2^attempt`, at most `max`, minus a random part of up to `jitter` of it.
    Exponential(Exponential),
}

impl Backoff {
    /// Exponential backoff starting at `initial`, doubling on every attempt, capped at `max`,
    /// without jitter (add it with [`Backoff::with_jitter`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use phalanx_supervisors::Backoff;
    ///
    /// let backoff = Backoff::exponential(Duration::from_millis(10), Duration::from_millis(50));
    /// assert_eq!(backoff.delay(0, 0), Duration::from_millis(10));
    /// assert_eq!(backoff.delay(2, 0), Duration::from_millis(40));
    /// assert_eq!(backoff.delay(3, 0), Duration::from_millis(50)); // capped
    /// ```
    pub fn exponential(initial: Duration, max: Duration) -> Self {
        Self::Exponential(Exponential {
            initial,
            max,
            jitter_permille: 0,
        })
    }

    /// Sets the jitter of an exponential backoff: the delay is reduced by a random part of at
    /// most `ratio` of it (clamped to `0.0..=1.0`; NaN counts as 0). Other variants are
    /// returned unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use phalanx_supervisors::Backoff;
    ///
    /// let backoff = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(8))
    ///     .with_jitter(0.5);
    /// let delay = backoff.delay(1, 12345);
    /// assert!(delay >= Duration::from_secs(1) && delay <= Duration::from_secs(2));
    /// ```
    pub fn with_jitter(self, ratio: f64) -> Self {
        match self {
            Self::Exponential(e) => {
                let ratio = if ratio.is_nan() {
                    0.0
                } else {
                    ratio.clamp(0.0, 1.0)
                };
                // The float is in 0..=1000 after the clamp, so the cast cannot truncate.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let jitter_permille = (ratio * 1000.0).round() as u16;
                Self::Exponential(Exponential {
                    jitter_permille,
                    ..e
                })
            }
            other => other,
        }
    }

    /// The delay before restart number `attempt` (0-based), given a uniformly random `random`
    /// (only used for jitter).
    pub fn delay(&self, attempt: u32, random: u64) -> Duration {
        match *self {
            Self::None => Duration::ZERO,
            Self::Fixed(d) => d,
            Self::Exponential(e) => e.delay(attempt, random),
        }
    }
}

/// Parameters of [`Backoff::Exponential`]; build it with [`Backoff::exponential`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Exponential {
    initial: Duration,
    max: Duration,
    /// Jitter as thousandths of the delay, kept as an integer so the type stays `Eq + Hash`.
    jitter_permille: u16,
}

impl Exponential {
    /// The delay of the first attempt.
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The cap.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The jitter ratio, `0.0..=1.0`.
    pub fn jitter(&self) -> f64 {
        f64::from(self.jitter_permille) / 1000.0
    }

    fn delay(&self, attempt: u32, random: u64) -> Duration {
        let factor = 1u128.checked_shl(attempt).unwrap_or(u128::MAX);
        let base = self
            .initial
            .as_nanos()
            .saturating_mul(factor)
            .min(self.max.as_nanos());
        let range = base * u128::from(self.jitter_permille) / 1000;
        let cut = u128::from(random) % (range + 1);
        nanos_to_duration(base - cut)
    }
}

/// `nanos` never exceeds a `Duration` we were given, so the seconds fit in a `u64`.
fn nanos_to_duration(nanos: u128) -> Duration {
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    // The remainder is below 10^9, so it fits in a u32.
    #[allow(clippy::cast_possible_truncation)]
    let sub = (nanos % 1_000_000_000) as u32;
    Duration::new(secs, sub)
}
