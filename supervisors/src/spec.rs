//! Child specifications: how a supervisor starts, restarts and stops one child.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use phalanx_runtime::{Actor, ActorRef, Addr, Failure, Spawn, SpawnError};

use crate::{Backoff, RestartPolicy, Supervisor, SupervisorRef};

/// How a supervisor stops a child (OTP's `shutdown` child-spec field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shutdown {
    /// Kill at once: the current handler is abandoned and `stopped` does not run.
    Kill,
    /// Ask the child to stop, wait up to this long for it to end, then kill it.
    Timeout(Duration),
    /// Ask the child to stop and wait as long as it takes (the default for supervisors, whose
    /// own children have their own timeouts).
    Infinity,
}

/// The default shutdown timeout of a worker child, as in OTP: 5 seconds.
pub const DEFAULT_SHUTDOWN: Shutdown = Shutdown::Timeout(Duration::from_secs(5));

/// How a supervisor starts, restarts and stops one child.
///
/// A spec holds a factory that builds a fresh actor for every start, the child's id (unique
/// within its supervisor), its [`RestartPolicy`] (default permanent), its [`Shutdown`]
/// (default [`DEFAULT_SHUTDOWN`], [`Shutdown::Infinity`] for supervisors), its [`Backoff`]
/// (default none) and, optionally, a registry name and a mailbox capacity. Specs are cheap to
/// clone (the factory is shared).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use phalanx_runtime::{Actor, Context, HandlerError};
/// use phalanx_supervisors::{Backoff, ChildSpec, RestartPolicy, Shutdown};
///
/// struct Worker;
/// impl Actor for Worker {
///     type Message = ();
///     async fn handle(&mut self, _: &mut Context<Self>, _: ()) -> Result<(), HandlerError> {
///         Ok(())
///     }
/// }
///
/// let spec = ChildSpec::new("worker", || Worker)
///     .restart(RestartPolicy::Transient)
///     .shutdown(Shutdown::Timeout(Duration::from_secs(1)))
///     .backoff(Backoff::exponential(Duration::from_millis(10), Duration::from_secs(5)));
/// assert_eq!(spec.id(), "worker");
/// ```
#[derive(Clone)]
pub struct ChildSpec {
    id: Arc<str>,
    restart: RestartPolicy,
    shutdown: Shutdown,
    backoff: Backoff,
    registered: Option<Arc<str>>,
    capacity: Option<usize>,
    worker: Option<usize>,
    starter: Arc<dyn Starter>,
}

impl ChildSpec {
    /// A worker child with id `id`, whose every instance `factory` builds.
    pub fn new<A, F>(id: impl Into<String>, factory: F) -> Self
    where
        A: Actor,
        F: Fn() -> A + Send + Sync + 'static,
    {
        Self::with_starter(
            id,
            DEFAULT_SHUTDOWN,
            Arc::new(ActorStarter {
                factory,
                actor: PhantomData,
            }),
        )
    }

    /// A child that is itself a supervisor, restarted from `supervisor` (with its static
    /// children; dynamic children it had are not brought back). Its shutdown defaults to
    /// [`Shutdown::Infinity`]: it stops its own children with their own timeouts.
    ///
    /// Same as [`Supervisor::into_child_spec`].
    pub fn supervisor(id: impl Into<String>, supervisor: Supervisor) -> Self {
        Self::with_starter(id, Shutdown::Infinity, Arc::new(supervisor))
    }

    fn with_starter(id: impl Into<String>, shutdown: Shutdown, starter: Arc<dyn Starter>) -> Self {
        Self {
            id: id.into().into(),
            restart: RestartPolicy::default(),
            shutdown,
            backoff: Backoff::default(),
            registered: None,
            capacity: None,
            worker: None,
            starter,
        }
    }

    /// A copy of this spec with another id, sharing the factory: the cheap way to run many
    /// children of one kind (a pool, or dynamic children started at run time).
    ///
    /// # Examples
    ///
    /// ```
    /// # use phalanx_runtime::{Actor, Context, HandlerError};
    /// # struct Worker;
    /// # impl Actor for Worker {
    /// #     type Message = ();
    /// #     async fn handle(&mut self, _: &mut Context<Self>, _: ()) -> Result<(), HandlerError> {
    /// #         Ok(())
    /// #     }
    /// # }
    /// use phalanx_supervisors::{ChildSpec, Strategy, Supervisor};
    ///
    /// let template = ChildSpec::new("worker", || Worker);
    /// let pool = Supervisor::new(Strategy::OneForOne)
    ///     .children((0..100).map(|i| template.with_id(format!("worker-{i}"))));
    /// # let _ = pool;
    /// ```
    pub fn with_id(&self, id: impl Into<String>) -> Self {
        Self {
            id: id.into().into(),
            ..self.clone()
        }
    }

    /// Sets the restart policy (default [`RestartPolicy::Permanent`]).
    pub fn restart(mut self, restart: RestartPolicy) -> Self {
        self.restart = restart;
        self
    }

    /// Sets how the child is stopped.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Sets the delay before restarts (default [`Backoff::None`]).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Registers every instance of the child in the runtime's registry under `name`, so that
    /// `phalanx_runtime::registry::whereis` finds the current one across restarts.
    pub fn registered(mut self, name: impl Into<String>) -> Self {
        self.registered = Some(name.into().into());
        self
    }

    /// Sets the child's mailbox capacity (default: the runtime's).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// Places every instance on worker thread `index` (modulo the number of workers). By
    /// default the runtime places a child on its supervisor's worker; spread a large pool with
    /// `template.with_id(..).worker(i)`.
    pub fn worker(mut self, index: usize) -> Self {
        self.worker = Some(index);
        self
    }

    /// The child's id, unique within its supervisor.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn id_arc(&self) -> &Arc<str> {
        &self.id
    }

    /// The restart policy.
    pub fn restart_policy(&self) -> RestartPolicy {
        self.restart
    }

    /// How the child is stopped.
    pub fn shutdown_mode(&self) -> Shutdown {
        self.shutdown
    }

    /// The restart backoff.
    pub fn backoff_mode(&self) -> Backoff {
        self.backoff
    }

    /// Starts one instance as a child of `parent`; `failure` is how the previous one failed.
    pub(crate) fn start(
        &self,
        parent: &Addr,
        failure: Option<Failure>,
    ) -> Result<Running, SpawnError> {
        self.starter.start(StartArgs {
            parent,
            name: self.registered.as_deref(),
            capacity: self.capacity,
            worker: self.worker,
            failure,
        })
    }
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("backoff", &self.backoff)
            .field("registered", &self.registered)
            .finish_non_exhaustive()
    }
}

/// One running instance of a child, as its supervisor holds it.
pub(crate) struct Running {
    pub(crate) addr: Addr,
    /// The typed `ActorRef<M>`, type-erased, for `SupervisorRef::child`.
    pub(crate) handle: Arc<dyn Any + Send + Sync>,
    /// Set when the child is a supervisor: it is stopped with an ordered shutdown request.
    pub(crate) supervisor: Option<SupervisorRef>,
}

pub(crate) struct StartArgs<'a> {
    pub(crate) parent: &'a Addr,
    pub(crate) name: Option<&'a str>,
    pub(crate) capacity: Option<usize>,
    pub(crate) worker: Option<usize>,
    pub(crate) failure: Option<Failure>,
}

/// Builds and spawns one instance of a child; object-safe so specs of different actor types
/// live in one list.
pub(crate) trait Starter: Send + Sync + 'static {
    fn start(&self, args: StartArgs<'_>) -> Result<Running, SpawnError>;
}

struct ActorStarter<F, A> {
    factory: F,
    /// `fn() -> A` keeps the starter `Send + Sync` whatever `A` is.
    actor: PhantomData<fn() -> A>,
}

impl<A, F> Starter for ActorStarter<F, A>
where
    A: Actor,
    F: Fn() -> A + Send + Sync + 'static,
{
    fn start(&self, args: StartArgs<'_>) -> Result<Running, SpawnError> {
        let actor_ref = spawn_with((self.factory)(), &args)?;
        Ok(Running {
            addr: actor_ref.addr().clone(),
            handle: Arc::new(actor_ref),
            supervisor: None,
        })
    }
}

/// Spawns `actor` with the options of `args`.
pub(crate) fn spawn_with<A: Actor>(
    actor: A,
    args: &StartArgs<'_>,
) -> Result<ActorRef<A::Message>, SpawnError> {
    let mut spawn = Spawn::new(actor).child_of(args.parent);
    if let Some(name) = args.name {
        spawn = spawn.name(name);
    }
    if let Some(capacity) = args.capacity {
        spawn = spawn.capacity(capacity);
    }
    if let Some(worker) = args.worker {
        spawn = spawn.worker(worker);
    }
    if let Some(failure) = &args.failure {
        spawn = spawn.restart_of(failure.clone());
    }
    spawn.start()
}
