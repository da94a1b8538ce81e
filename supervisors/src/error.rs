//! Typed errors of supervisor operations.

use std::sync::Arc;
use std::time::Duration;

use phalanx_runtime::{ExitReason, SpawnError};

/// What went wrong in a supervisor operation, or why a supervisor ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// The restart intensity was exceeded: the supervisor stopped all its children (in reverse
    /// start order) and failed, handing the problem to its own supervisor. `child` is the child
    /// whose exit tipped it over, `reason` how that child ended.
    #[error(
        "restart intensity exceeded (more than {max_restarts} restarts in {period:?}); \
         last exit: child {child:?}: {reason}"
    )]
    IntensityExceeded {
        /// The id of the child whose exit exceeded the limit.
        child: String,
        /// The limit's number of restarts.
        max_restarts: u32,
        /// The limit's period.
        period: Duration,
        /// How that child ended.
        reason: ExitReason,
    },
    /// The supervisor ended abnormally for another reason (it was killed, its parent failed, a
    /// child could not be started at start-up, ...).
    #[error("the supervisor ended abnormally: {0}")]
    Exited(ExitReason),
    /// The supervisor has ended: the request was not handled.
    #[error("the supervisor has ended")]
    Ended,
    /// The supervisor did not answer within the call timeout; the request may or may not have
    /// been handled (see [`SupervisorRef::with_timeout`](crate::SupervisorRef::with_timeout)).
    #[error("the supervisor did not answer in time")]
    Timeout,
    /// A child with this id already exists; nothing was started.
    #[error("a child with id {0:?} already exists")]
    DuplicateChild(String),
    /// No child has this id; nothing changed.
    #[error("no child with id {0:?}")]
    NoSuchChild(String),
    /// The runtime refused to start the child (name taken, shutting down); nothing was started
    /// and the supervisor's other children are unaffected.
    #[error("could not start child {child:?}")]
    Spawn {
        /// The child's id.
        child: String,
        /// Why the runtime refused (shared, so that the error stays `Clone`).
        #[source]
        source: Arc<SpawnError>,
    },
}
