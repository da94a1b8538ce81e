//! When a child is restarted after it ends.

use crate::ExitKind;

/// When a child is restarted after it ends (OTP's `restart` child-spec field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RestartPolicy {
    /// Always restarted, whatever the reason it ended.
    #[default]
    Permanent,
    /// Restarted only when it ended abnormally ([`ExitKind::Failure`] or
    /// [`ExitKind::Killed`]); a normal end or a shutdown removes it from the supervisor.
    Transient,
    /// Never restarted: whenever it ends (also when a sibling's restart stops it), it is removed
    /// from the supervisor.
    Temporary,
}

impl RestartPolicy {
    /// Whether a child with this policy that ended with `exit` is to be restarted.
    ///
    /// # Examples
    ///
    /// ```
    /// use phalanx_supervisors::{ExitKind, RestartPolicy};
    ///
    /// assert!(RestartPolicy::Permanent.restarts_after(ExitKind::Normal));
    /// assert!(RestartPolicy::Transient.restarts_after(ExitKind::Killed));
    /// assert!(!RestartPolicy::Transient.restarts_after(ExitKind::Shutdown));
    /// assert!(!RestartPolicy::Temporary.restarts_after(ExitKind::Failure));
    /// ```
    pub fn restarts_after(self, exit: ExitKind) -> bool {
        match self {
            Self::Permanent => true,
            Self::Transient => exit.is_abnormal(),
            Self::Temporary => false,
        }
    }
}
