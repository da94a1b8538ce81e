//! An injectable, monotonic clock whose offset from real time can change at run time.
//!
//! The sans-IO cores take `now` as an argument; the actors that drive them read it from a
//! [`Clock`]. In production the offset stays zero and the clock is [`Instant::now`]. A fault
//! injector (the nemesis test, through the node's admin request) moves a node's clock to
//! check that the protocols tolerate the clock skew they claim to tolerate.
//!
//! # Which skews are allowed
//!
//! Chain replication's read leases assume that clock *rates* agree within the margin that
//! `fence_wait` leaves over `lease` (see [`chain`](crate::chain)): a lease holder measures
//! its lease from when it asked for it, on its own clock, and a replica of a new epoch waits
//! `fence_wait` on *its* clock before it serves, so that the old tail's lease has run out by
//! then in real time. A jump is a rate difference concentrated in one instant, so:
//!
//! - A clock that runs *backward* (or holds still) on a lease holder stretches its lease in
//!   real time: held for longer than the margin, the old tail could still serve reads after
//!   the new tail started, and a read could miss an acknowledged write. This is why the clock
//!   never goes backward: lowering the offset makes it hold still until real time catches
//!   up, and the time it holds still counts against the margin.
//! - A clock that jumps *forward* makes a lease holder give its lease up early (safe), but on
//!   a replica waiting out its fence it shortens the wait in real time, which is the same
//!   hazard from the other side.
//!
//! So a fault injector keeps the total skew it applies to one node within any `fence_wait`
//! window below `fence_wait - lease` (300 ms with the node's 600 ms leases). Larger forward
//! jumps only cost liveness elsewhere (raft elections and failure detection fire early,
//! client deadlines expire early), but they break the read-lease assumption above, so a test
//! that makes them is testing the assumption, not the implementation.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A monotonic clock: real time plus an offset that can change at run time.
///
/// Cheap to clone; clones share the offset, so changing one changes them all. Two clocks
/// compare equal when they are clones of each other.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// use phalanx_actors::clock::Clock;
///
/// let clock = Clock::system();
/// let shared = clock.clone();
/// let before = clock.now();
/// shared.advance(Duration::from_secs(60));
/// assert!(clock.now() >= before + Duration::from_secs(60));
/// assert_eq!(clock.offset(), Duration::from_secs(60));
///
/// // Lowering the offset never moves the clock back: it holds still instead.
/// let high = clock.now();
/// clock.set_offset(Duration::ZERO);
/// assert!(clock.now() >= high);
/// ```
#[derive(Clone)]
pub struct Clock {
    inner: Arc<Inner>,
}

/// The shared state of a [`Clock`] and its clones.
struct Inner {
    /// Real time at creation: readings are kept as nanoseconds since this instant.
    origin: Instant,
    /// The offset added to real time, in nanoseconds.
    offset: AtomicU64,
    /// The highest reading handed out so far, in nanoseconds since `origin`: no reading is
    /// ever below it, which is what keeps the clock monotonic when the offset goes down.
    high: AtomicU64,
}

impl Clock {
    /// The largest offset: about a century, far beyond any useful skew, and small enough that
    /// readings never overflow an [`Instant`].
    pub const MAX_OFFSET: Duration = Duration::from_secs(100 * 365 * 24 * 3_600);

    /// A clock with no offset: [`Instant::now`] until someone changes it.
    pub fn system() -> Clock {
        Clock {
            inner: Arc::new(Inner {
                origin: Instant::now(),
                offset: AtomicU64::new(0),
                high: AtomicU64::new(0),
            }),
        }
    }

    /// The current time: real time plus the offset, and never earlier than any reading
    /// handed out before (by this clock or a clone).
    pub fn now(&self) -> Instant {
        let real = nanos(self.inner.origin.elapsed());
        let wanted = real.saturating_add(self.inner.offset.load(Ordering::Acquire));
        let previous = self.inner.high.fetch_max(wanted, Ordering::AcqRel);
        self.inner.origin + Duration::from_nanos(previous.max(wanted))
    }

    /// The offset now applied to real time. Right after the offset was lowered the clock may
    /// still be ahead of real time plus this offset (it is holding still).
    pub fn offset(&self) -> Duration {
        Duration::from_nanos(self.inner.offset.load(Ordering::Acquire))
    }

    /// Moves the clock forward by `by`, at once (the offset grows by `by`, up to
    /// [`Clock::MAX_OFFSET`]).
    pub fn advance(&self, by: Duration) {
        let by = nanos(by);
        let _ = self
            .inner
            .offset
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |offset| {
                Some(offset.saturating_add(by).min(nanos(Clock::MAX_OFFSET)))
            });
    }

    /// Sets the offset. Raising it jumps the clock forward; lowering it makes the clock hold
    /// still until real time plus the new offset catches up with the last reading (it never
    /// goes backward: see the [module docs](self) for why holding still counts as skew).
    /// Offsets above [`Clock::MAX_OFFSET`] are capped.
    pub fn set_offset(&self, offset: Duration) {
        let offset = nanos(offset.min(Clock::MAX_OFFSET));
        self.inner.offset.store(offset, Ordering::Release);
    }
}

impl Default for Clock {
    /// [`Clock::system`].
    fn default() -> Self {
        Clock::system()
    }
}

impl PartialEq for Clock {
    /// Whether both are clones of one clock (they share the offset).
    fn eq(&self, other: &Clock) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Clock {}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clock")
            .field("offset", &self.offset())
            .finish_non_exhaustive()
    }
}

/// `duration` in nanoseconds, saturating (u64 nanoseconds last 584 years, so readings,
/// which are real time since creation plus at most [`Clock::MAX_OFFSET`], fit).
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn without_offset_it_follows_real_time() {
        let clock = Clock::system();
        let before = Instant::now();
        let reading = clock.now();
        let after = Instant::now();
        assert!(reading >= before && reading <= after);
        assert_eq!(clock.offset(), Duration::ZERO);
    }

    #[test]
    fn advance_moves_every_clone_forward() {
        let clock = Clock::system();
        let clone = clock.clone();
        let before = clock.now();
        clone.advance(MINUTE);
        clone.advance(MINUTE);
        assert_eq!(clock.offset(), 2 * MINUTE);
        assert!(clock.now() >= before + 2 * MINUTE);
        assert_eq!(clock, clone);
        assert_ne!(clock, Clock::system());
    }

    #[test]
    fn lowering_the_offset_holds_the_clock_still() {
        let clock = Clock::system();
        clock.set_offset(MINUTE);
        let high = clock.now();
        clock.set_offset(Duration::ZERO);
        // Real time will not catch up with a minute ahead during this test: every reading is
        // the high-water mark exactly.
        for _ in 0..1_000 {
            assert_eq!(clock.now(), high);
        }
        // Raising it again past the mark moves it forward again.
        clock.set_offset(2 * MINUTE);
        assert!(clock.now() >= high + MINUTE);
    }

    #[test]
    fn readings_never_decrease() {
        let clock = Clock::system();
        let mut last = clock.now();
        for step in 0..1_000u64 {
            // Alternate raising and lowering the offset.
            clock.set_offset(Duration::from_millis((step * 7_919) % 1_000));
            let reading = clock.now();
            assert!(reading >= last);
            last = reading;
        }
    }

    #[test]
    fn huge_offsets_are_capped() {
        let clock = Clock::system();
        clock.advance(Duration::MAX);
        clock.advance(Duration::MAX);
        assert_eq!(clock.offset(), Clock::MAX_OFFSET);
        clock.set_offset(Duration::MAX);
        assert_eq!(clock.offset(), Clock::MAX_OFFSET);
        assert!(clock.now() > Instant::now() + Clock::MAX_OFFSET / 2);
    }

    #[test]
    fn debug_shows_the_offset() {
        let clock = Clock::system();
        clock.advance(Duration::from_millis(5));
        assert_eq!(format!("{clock:?}"), "Clock { offset: 5ms, .. }");
    }
}
