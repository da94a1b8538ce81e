//! Virtual time for simulations: an instant that only moves when the test moves it.

use std::fmt;
use std::ops::{Add, AddAssign};
use std::time::Duration;

/// A point in virtual time, counted in nanoseconds since the start of a simulation.
///
/// Unlike [`std::time::Instant`] it can be built from a number, so a simulation is fully
/// reproducible: nothing in it ever reads the system clock.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimInstant(u64);

impl SimInstant {
    /// The start of the simulation.
    pub const ZERO: Self = Self(0);

    /// The instant `nanos` nanoseconds after the start of the simulation.
    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// Nanoseconds since the start of the simulation.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time since the start of the simulation.
    pub const fn elapsed_since_start(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    /// Time from `earlier` to `self`, or zero if `earlier` is later.
    pub const fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for SimInstant {
    type Output = Self;

    /// Saturates at the far end of virtual time (about 584 years) instead of overflowing.
    fn add(self, rhs: Duration) -> Self {
        let nanos = u64::try_from(rhs.as_nanos()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(nanos))
    }
}

impl AddAssign<Duration> for SimInstant {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

impl fmt::Debug for SimInstant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t+{:?}", self.elapsed_since_start())
    }
}

/// The virtual clock of a simulation.
///
/// It starts at [`SimInstant::ZERO`] and moves forward only through [`advance`](Self::advance)
/// and [`advance_to`](Self::advance_to); it never goes backwards.
#[derive(Debug, Clone, Default)]
pub struct SimClock {
    now: SimInstant,
}

impl SimClock {
    /// A clock at the start of the simulation.
    pub const fn new() -> Self {
        Self {
            now: SimInstant::ZERO,
        }
    }

    /// The current virtual time.
    pub const fn now(&self) -> SimInstant {
        self.now
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// Moves the clock to `to`; does nothing if `to` is in the past.
    pub fn advance_to(&mut self, to: SimInstant) {
        self.now = self.now.max(to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_moves_forward_only() {
        let mut clock = SimClock::new();
        clock.advance(Duration::from_millis(5));
        assert_eq!(clock.now(), SimInstant::from_nanos(5_000_000));
        clock.advance_to(SimInstant::from_nanos(1));
        assert_eq!(clock.now().as_nanos(), 5_000_000);
        assert_eq!(
            clock
                .now()
                .saturating_duration_since(SimInstant::from_nanos(1_000_000)),
            Duration::from_millis(4)
        );
        assert_eq!(
            SimInstant::ZERO.saturating_duration_since(clock.now()),
            Duration::ZERO
        );
        assert_eq!(
            SimInstant::from_nanos(u64::MAX) + Duration::MAX,
            SimInstant::from_nanos(u64::MAX)
        );
    }
}
