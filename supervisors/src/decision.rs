//! What a supervisor does after a child exits.

use std::time::Duration;

use crate::ChildKey;

/// How a child ended, as a supervisor sees it (OTP's exit reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitKind {
    /// The child finished its work and stopped itself.
    Normal,
    /// The child was asked to stop (by its supervisor or someone else) and did.
    Shutdown,
    /// The child panicked or a handler returned an error.
    Failure,
    /// The child was killed without running its `stopped` hook.
    Killed,
}

impl ExitKind {
    /// `true` for [`ExitKind::Failure`] and [`ExitKind::Killed`]: the exits that a
    /// [`Transient`](crate::RestartPolicy::Transient) child is restarted after.
    pub fn is_abnormal(self) -> bool {
        matches!(self, Self::Failure | Self::Killed)
    }
}

/// Identifies one restart decision, so a delayed start can tell whether a newer decision
/// took over the same children in the meantime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RestartId(pub(crate) u64);

/// What a supervisor must do after a child exited; returned by
/// [`Restarter::handle_exit`](crate::Restarter::handle_exit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing: the child is unknown, already removed, or not running (a stale event).
    Ignore,
    /// The child is not restarted and has been removed; its siblings are not affected.
    Remove,
    /// Restart children according to the plan.
    Restart(RestartPlan),
    /// The restart intensity is exceeded: stop these children (all that are running, in
    /// reverse start order), then fail so the parent supervisor handles it. Every child has
    /// been removed.
    Escalate {
        /// The running children to stop, in reverse start order.
        stop: Vec<ChildKey>,
    },
}

/// A restart: first stop `stop` (in that order: reverse start order) and wait until each has
/// fully ended, then after `delay` start `start` (in that order: start order).
///
/// Children in `stop` but not in `start` were temporary and have been removed. Before starting
/// a child of `start`, check [`Restarter::start_due`](crate::Restarter::start_due): a newer
/// decision may have taken it over (or it may have been removed) during the delay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartPlan {
    /// Which decision this is.
    pub id: RestartId,
    /// Running siblings to stop, in reverse start order. Never contains the exited child.
    pub stop: Vec<ChildKey>,
    /// Children to start, in start order. Always contains the exited child.
    pub start: Vec<ChildKey>,
    /// The exited child's backoff delay before the first start.
    pub delay: Duration,
}
