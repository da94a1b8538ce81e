//! How actors end: exit reasons, failures, and the notices that monitors and links receive.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::ActorId;

/// Why an actor ended.
///
/// Monitors receive it in [`Down`], linked actors in [`Exit`], and [`Addr::wait`](crate::Addr::wait)
/// returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitReason {
    /// The actor stopped gracefully: it was asked to stop, or stopped itself.
    Normal,
    /// The actor was killed: its current handler was abandoned and `stopped` did not run.
    Killed,
    /// The actor failed: a handler or hook panicked or returned an error.
    Failed(Failure),
    /// The actor did not exist (any more) when the monitor was set up.
    NoProc,
    /// The node that hosted the actor was declared dead or became unreachable.
    NodeDown,
}

impl ExitReason {
    /// Whether this exit is abnormal in the OTP sense: killed, failed, or lost with its node.
    ///
    /// Abnormal exits propagate over links and make transient children restart.
    pub fn is_abnormal(&self) -> bool {
        matches!(self, Self::Killed | Self::Failed(_) | Self::NodeDown)
    }

    /// The failure, if the actor failed.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Self::Failed(failure) => Some(failure),
            _ => None,
        }
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Normal => f.write_str("normal"),
            Self::Killed => f.write_str("killed"),
            Self::Failed(failure) => write!(f, "failed: {failure}"),
            Self::NoProc => f.write_str("no such actor"),
            Self::NodeDown => f.write_str("node down"),
        }
    }
}

/// What went wrong in a failed actor: the kind, and a human-readable message.
///
/// Cheap to clone (the message is shared), so one failure can be handed to every monitor, the
/// supervisor, and the restarted actor's [`Actor::restarting`](crate::Actor::restarting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// One pointer: exit reasons travel through every actor's future, so they stay small.
    inner: Arc<FailureInner>,
}

#[derive(Debug, PartialEq, Eq)]
struct FailureInner {
    kind: FailureKind,
    message: Box<str>,
}

/// The kind of a [`Failure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// A handler or hook panicked; the message is the panic payload.
    Panic,
    /// A handler or hook returned an error; the message is its `Display`.
    Error,
    /// A linked actor ended abnormally and this actor did not trap exits.
    LinkedExit(ActorId),
}

impl Failure {
    /// A failure caused by a panic with the given message.
    pub fn panic(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Panic, message.into())
    }

    fn new(kind: FailureKind, message: String) -> Self {
        let message = message.into_boxed_str();
        Self {
            inner: Arc::new(FailureInner { kind, message }),
        }
    }

    /// A failure caused by an error with the given message.
    ///
    /// # Examples
    ///
    /// ```
    /// use phalanx_runtime::{Failure, FailureKind};
    ///
    /// let failure = Failure::error("disk full");
    /// assert_eq!(failure.kind(), FailureKind::Error);
    /// assert_eq!(failure.message(), "disk full");
    /// ```
    pub fn error(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Error, message.into())
    }

    /// A failure caused by the abnormal exit of the linked actor `from`.
    pub fn linked(from: ActorId, reason: &ExitReason) -> Self {
        Self::new(
            FailureKind::LinkedExit(from),
            format!("linked actor {from} exited: {reason}"),
        )
    }

    /// Turns a panic payload, as `catch_unwind` returns it, into a failure.
    pub(crate) fn from_panic(payload: Box<dyn Any + Send>) -> Self {
        let message = if let Some(text) = payload.downcast_ref::<&'static str>() {
            (*text).to_owned()
        } else if let Some(text) = payload.downcast_ref::<String>() {
            text.clone()
        } else {
            "panic with a non-string payload".to_owned()
        };
        Self::panic(message)
    }

    /// The kind of failure.
    pub fn kind(&self) -> FailureKind {
        self.inner.kind
    }

    /// The panic message or the error's text.
    pub fn message(&self) -> &str {
        &self.inner.message
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.kind {
            FailureKind::Panic => write!(f, "panicked: {}", self.inner.message),
            FailureKind::Error => write!(f, "error: {}", self.inner.message),
            FailureKind::LinkedExit(_) => f.write_str(&self.inner.message),
        }
    }
}

/// Identifies one monitor, as returned by [`Context::monitor`](crate::Context::monitor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MonitorRef(pub(crate) u64);

/// The notice a monitoring actor receives in [`Actor::down`](crate::Actor::down) when the
/// actor it monitors has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Down {
    /// The actor that ended.
    pub id: ActorId,
    /// Why it ended.
    pub reason: ExitReason,
    /// The monitor that fired.
    pub monitor: MonitorRef,
}

/// The notice an actor that traps exits receives in
/// [`Actor::linked_exit`](crate::Actor::linked_exit) when a linked actor ended abnormally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// The linked actor that ended.
    pub from: ActorId,
    /// Why it ended.
    pub reason: ExitReason,
}
