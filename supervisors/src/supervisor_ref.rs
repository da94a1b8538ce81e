//! [`SupervisorRef`]: the handle to a running supervisor.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use phalanx_runtime::{ActorId, ActorRef, Addr, AskError, ExitReason, Reply};

use crate::{ChildKey, ChildSpec, RestartId, RestartPolicy, SupervisorError};

/// The default time [`SupervisorRef`] calls wait for the supervisor's answer.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A handle to a running supervisor: add and remove children at run time, look them up, shut
/// the supervisor down in order, and wait for its end.
///
/// Cheap to clone. Calls are requests to the supervisor actor, answered between its other work
/// (restarts, shutdowns); they wait up to [`DEFAULT_CALL_TIMEOUT`] unless changed with
/// [`SupervisorRef::with_timeout`].
#[derive(Clone)]
pub struct SupervisorRef {
    actor: ActorRef<SupervisorMessage>,
    /// The typed reason the supervisor failed, written by the supervisor just before it fails,
    /// because the runtime only keeps the text of a handler's error.
    outcome: Arc<Mutex<Option<SupervisorError>>>,
    timeout: Duration,
}

/// The message type of the supervisor actor. Opaque: use [`SupervisorRef`]'s methods.
pub struct SupervisorMessage(pub(crate) Request);

pub(crate) enum Request {
    StartChild(ChildSpec, Reply<Result<Addr, SupervisorError>>),
    TerminateChild(String, Reply<Result<(), SupervisorError>>),
    Children(Reply<Vec<ChildInfo>>),
    Child(String, Reply<Option<Arc<dyn Any + Send + Sync>>>),
    ChildSupervisor(String, Reply<Option<SupervisorRef>>),
    /// A backoff delay has passed: start these children of that restart.
    RestartDue(RestartId, Vec<ChildKey>),
    /// Stop every child in reverse start order, then stop.
    Shutdown,
}

/// A child as [`SupervisorRef::children`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChildInfo {
    /// The child's id.
    pub id: String,
    /// The current instance, or `None` while the child waits for its restart.
    pub addr: Option<Addr>,
    /// Its restart policy.
    pub restart: RestartPolicy,
}

impl SupervisorRef {
    pub(crate) fn new(
        actor: ActorRef<SupervisorMessage>,
        outcome: Arc<Mutex<Option<SupervisorError>>>,
    ) -> Self {
        Self {
            actor,
            outcome,
            timeout: DEFAULT_CALL_TIMEOUT,
        }
    }

    /// The same handle with calls waiting up to `timeout` for an answer.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The supervisor actor's id.
    pub fn id(&self) -> ActorId {
        self.actor.id()
    }

    /// The supervisor actor's untyped reference (to monitor or link to it).
    pub fn addr(&self) -> &Addr {
        self.actor.addr()
    }

    /// Whether the supervisor has not ended yet.
    pub fn is_alive(&self) -> bool {
        self.actor.is_alive()
    }

    /// Starts a dynamic child after all existing ones and returns its address.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::DuplicateChild`] if the id is taken, [`SupervisorError::Spawn`] if
    /// the runtime refused; in both cases nothing changed. [`SupervisorError::Ended`] or
    /// [`SupervisorError::Timeout`] if the supervisor did not answer.
    pub async fn start_child(&self, spec: ChildSpec) -> Result<Addr, SupervisorError> {
        self.call(|reply| Request::StartChild(spec, reply)).await?
    }

    /// Stops the child `id` (with its shutdown mode), waits until it has ended, and removes it:
    /// it is not restarted and its siblings are not affected.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::NoSuchChild`] if there is no such child (nothing changed);
    /// [`SupervisorError::Ended`] or [`SupervisorError::Timeout`] if the supervisor did not
    /// answer.
    pub async fn terminate_child(&self, id: &str) -> Result<(), SupervisorError> {
        let id = id.to_owned();
        self.call(|reply| Request::TerminateChild(id, reply))
            .await?
    }

    /// The children in start order.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::Ended`] or [`SupervisorError::Timeout`] if the supervisor did not
    /// answer.
    pub async fn children(&self) -> Result<Vec<ChildInfo>, SupervisorError> {
        self.call(Request::Children).await
    }

    /// A typed reference to the current instance of child `id`, or `None` if there is no such
    /// child, it is waiting for its restart, or its message type is not `M`.
    ///
    /// The reference names one instance: after a restart, ask again.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::Ended`] or [`SupervisorError::Timeout`] if the supervisor did not
    /// answer.
    pub async fn child<M: Send + 'static>(
        &self,
        id: &str,
    ) -> Result<Option<ActorRef<M>>, SupervisorError> {
        let id = id.to_owned();
        let handle = self.call(|reply| Request::Child(id, reply)).await?;
        Ok(handle.and_then(|h| h.downcast_ref::<ActorRef<M>>().cloned()))
    }

    /// The handle of the current instance of child `id` if that child is a supervisor.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::Ended`] or [`SupervisorError::Timeout`] if the supervisor did not
    /// answer.
    pub async fn child_supervisor(&self, id: &str) -> Result<Option<Self>, SupervisorError> {
        let id = id.to_owned();
        self.call(|reply| Request::ChildSupervisor(id, reply)).await
    }

    /// Shuts the supervisor down in order, then waits for its end: every child is stopped in
    /// reverse start order, each with its own [`Shutdown`](crate::Shutdown) mode, and each has
    /// fully ended before the next is stopped.
    ///
    /// # Errors
    ///
    /// As [`SupervisorRef::wait`]; `Ok(())` if the supervisor had already ended normally.
    pub async fn shutdown(&self) -> Result<(), SupervisorError> {
        self.send_shutdown().await;
        self.wait().await
    }

    /// Queues the shutdown request, waiting for room in the mailbox if needed.
    pub(crate) async fn send_shutdown(&self) {
        // An ended supervisor has nothing left to shut down: `wait` reports how it ended.
        let _ = self.actor.tell(SupervisorMessage(Request::Shutdown)).await;
    }

    /// Asks for an ordered shutdown (see [`SupervisorRef::shutdown`]) without waiting.
    pub fn request_shutdown(&self) {
        if self
            .actor
            .try_tell(SupervisorMessage(Request::Shutdown))
            .is_err()
        {
            // Mailbox full or closed: fall back on the runtime's stop, which stops the
            // children newest first without timeouts.
            self.actor.stop();
        }
    }

    /// Kills the supervisor: the runtime kills its children, newest first.
    pub fn kill(&self) {
        self.actor.kill();
    }

    /// Waits until the supervisor has ended.
    ///
    /// This is how a node observes its root supervisor: `Ok(())` after an ordered shutdown;
    /// [`SupervisorError::IntensityExceeded`] if it gave up restarting children (they have all
    /// been stopped by then); [`SupervisorError::Exited`] with the reason for any other
    /// abnormal end.
    ///
    /// # Errors
    ///
    /// As above.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future does not affect the supervisor.
    pub async fn wait(&self) -> Result<(), SupervisorError> {
        let reason = self.actor.wait().await;
        if reason == ExitReason::Normal {
            return Ok(());
        }
        let typed = self
            .outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Err(typed.unwrap_or(SupervisorError::Exited(reason)))
    }

    async fn call<R: Send + 'static>(
        &self,
        request: impl FnOnce(Reply<R>) -> Request,
    ) -> Result<R, SupervisorError> {
        let asked = self
            .actor
            .ask(|reply| SupervisorMessage(request(reply)), self.timeout)
            .await;
        asked.map_err(|error| match error {
            AskError::Timeout => SupervisorError::Timeout,
            _ => SupervisorError::Ended,
        })
    }
}

impl fmt::Debug for SupervisorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorRef")
            .field("id", &self.actor.id())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for SupervisorMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.0 {
            Request::StartChild(..) => "StartChild",
            Request::TerminateChild(..) => "TerminateChild",
            Request::Children(..) => "Children",
            Request::Child(..) => "Child",
            Request::ChildSupervisor(..) => "ChildSupervisor",
            Request::RestartDue(..) => "RestartDue",
            Request::Shutdown => "Shutdown",
        };
        f.debug_tuple("SupervisorMessage").field(&kind).finish()
    }
}
