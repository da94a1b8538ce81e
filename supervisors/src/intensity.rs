//! Restart intensity: at most N restarts within a period, as a sliding window.

use std::collections::VecDeque;
use std::time::Duration;

/// The restart intensity limit: at most `max_restarts` restarts within any `period`.
///
/// Exceeding it makes the supervisor stop all its children and fail, so that its own parent
/// applies its strategy (escalation). The window slides as in OTP: a restart at time `t` still
/// counts at time `now` when `now - t <= period`, and the limit is exceeded when the restart
/// being decided brings the count above `max_restarts`. So `max_restarts == 0` escalates on the
/// first restart.
///
/// The default is OTP's: 1 restart in 5 seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Intensity {
    max_restarts: u32,
    period: Duration,
}

impl Intensity {
    /// At most `max_restarts` restarts within any `period`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use phalanx_supervisors::Intensity;
    ///
    /// let intensity = Intensity::new(3, Duration::from_secs(10));
    /// assert_eq!(intensity.max_restarts(), 3);
    /// ```
    pub fn new(max_restarts: u32, period: Duration) -> Self {
        Self {
            max_restarts,
            period,
        }
    }

    /// The number of restarts allowed within one period.
    pub fn max_restarts(&self) -> u32 {
        self.max_restarts
    }

    /// The length of the sliding window.
    pub fn period(&self) -> Duration {
        self.period
    }
}

impl Default for Intensity {
    fn default() -> Self {
        Self::new(1, Duration::from_secs(5))
    }
}

/// The restart history that [`Intensity`] is checked against.
///
/// Sans-IO: it never reads a clock; `now` is a [`Duration`] since an origin the caller chooses
/// and must not go backwards (a smaller `now` is treated as equal to the latest one seen).
/// Memory is bounded by `max_restarts + 1` timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntensityWindow {
    intensity: Intensity,
    /// Restart times, oldest first; only those that may still count are kept.
    restarts: VecDeque<Duration>,
}

impl IntensityWindow {
    /// An empty history for `intensity`.
    pub fn new(intensity: Intensity) -> Self {
        Self {
            intensity,
            restarts: VecDeque::new(),
        }
    }

    /// The limit this window checks.
    pub fn intensity(&self) -> Intensity {
        self.intensity
    }

    /// Records a restart at `now`; returns `true` if the limit is now exceeded.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use phalanx_supervisors::{Intensity, IntensityWindow};
    ///
    /// let mut window = IntensityWindow::new(Intensity::new(2, Duration::from_secs(5)));
    /// assert!(!window.record(Duration::from_secs(0)));
    /// assert!(!window.record(Duration::from_secs(1)));
    /// assert!(window.record(Duration::from_secs(5))); // 3 restarts within 5 s
    /// ```
    pub fn record(&mut self, now: Duration) -> bool {
        // Clamp a clock that went backwards so the deque stays sorted.
        let now = self.restarts.back().map_or(now, |&last| now.max(last));
        while let Some(&oldest) = self.restarts.front() {
            if now - oldest > self.intensity.period {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        self.restarts.push_back(now);
        // Only the newest max_restarts + 1 entries can ever matter.
        let keep = self.intensity.max_restarts as usize + 1;
        while self.restarts.len() > keep {
            self.restarts.pop_front();
        }
        self.restarts.len() > self.intensity.max_restarts as usize
    }

    /// How many recorded restarts still count at `now`.
    pub fn count(&self, now: Duration) -> usize {
        self.restarts
            .iter()
            .filter(|&&t| now.saturating_sub(t) <= self.intensity.period)
            .count()
    }
}
