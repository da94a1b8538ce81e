//! The [`Supervisor`] builder: a supervisor's strategy, intensity and children, ready to start.

mod server;

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use phalanx_runtime::{Spawn, SpawnError};

use crate::spec::{Running, StartArgs, Starter, spawn_with};
use crate::{ChildSpec, Intensity, Strategy, SupervisorError, SupervisorRef};
use server::Server;

/// A supervisor's configuration: strategy, restart intensity and static children, in start
/// order. Start it as a root with [`Supervisor::start`], or nest it in another supervisor with
/// [`Supervisor::into_child_spec`]; it is kept as the recipe to restart the nested supervisor.
///
/// # Semantics
///
/// * Children start in order, each spawned as a runtime child of the supervisor (so a killed
///   supervisor never leaves orphans) and monitored by it.
/// * When a child ends, the [`Restarter`](crate::Restarter) decides (see there for the exact
///   rules): nothing, a restart of the child and, per the [`Strategy`], of its siblings, or
///   escalation.
/// * For a group restart (one-for-all, rest-for-one) the affected running siblings are stopped
///   in reverse start order, each with its [`Shutdown`](crate::Shutdown) mode, and each has
///   *fully ended* (its `wait()` resolved) before the next is stopped and before any new
///   instance starts. Then the new instances start in start order.
/// * A backoff delay is a timer message to the supervisor itself: while a child waits, the
///   supervisor goes on handling its other children and requests.
/// * The restarted child's [`Actor::restarting`](phalanx_runtime::Actor::restarting) receives
///   the previous instance's failure (a kill is reported as an error failure "killed"). A
///   permanent child restarted after a normal exit, and siblings restarted with it, are new
///   instances without `restarting`: they did not fail.
/// * Escalation: when the [`Intensity`] is exceeded, the supervisor stops all running children
///   in reverse start order and fails with [`SupervisorError::IntensityExceeded`]; its parent
///   supervisor then applies its own strategy to it. The root's failure is returned by
///   [`SupervisorRef::wait`].
/// * Ordered shutdown goes through [`SupervisorRef::shutdown`] (a nested supervisor is shut
///   down that way by its parent). A plain runtime stop of the supervisor's actor (e.g.
///   `Runtime::shutdown`) falls back on the runtime's rule: children newest first, no timeouts.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use phalanx_runtime::{Actor, Context, HandlerError};
/// use phalanx_supervisors::{ChildSpec, Intensity, Strategy, Supervisor};
///
/// struct Worker;
/// impl Actor for Worker {
///     type Message = ();
///     async fn handle(&mut self, _: &mut Context<Self>, _: ()) -> Result<(), HandlerError> {
///         Ok(())
///     }
/// }
///
/// phalanx_runtime::block_on(async {
///     let workers = Supervisor::new(Strategy::OneForOne)
///         .child(ChildSpec::new("w1", || Worker))
///         .child(ChildSpec::new("w2", || Worker));
///     let root = Supervisor::new(Strategy::RestForOne)
///         .intensity(Intensity::new(3, Duration::from_secs(5)))
///         .child(ChildSpec::new("db", || Worker))
///         .child(workers.into_child_spec("workers"))
///         .start()?;
///
///     let children = root.children().await?;
///     assert_eq!(children.len(), 2);
///     let workers = root.child_supervisor("workers").await?.expect("a supervisor");
///     assert_eq!(workers.children().await?.len(), 2);
///
///     root.shutdown().await?; // stops "workers" (and its children), then "db"
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Supervisor {
    strategy: Strategy,
    intensity: Intensity,
    children: Vec<ChildSpec>,
    name: Option<String>,
}

impl Supervisor {
    /// A supervisor with `strategy`, the default [`Intensity`] and no children yet.
    pub fn new(strategy: Strategy) -> Self {
        Self {
            strategy,
            intensity: Intensity::default(),
            children: Vec::new(),
            name: None,
        }
    }

    /// Sets the restart intensity limit.
    pub fn intensity(mut self, intensity: Intensity) -> Self {
        self.intensity = intensity;
        self
    }

    /// Adds a static child after the ones added before.
    pub fn child(mut self, spec: ChildSpec) -> Self {
        self.children.push(spec);
        self
    }

    /// Adds static children, in order, after the ones added before.
    pub fn children(mut self, specs: impl IntoIterator<Item = ChildSpec>) -> Self {
        self.children.extend(specs);
        self
    }

    /// Registers the root supervisor under `name` in the runtime's registry (for a nested
    /// supervisor, use [`ChildSpec::registered`] on its spec instead).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// This supervisor as a child of another one, with id `id`.
    pub fn into_child_spec(self, id: impl Into<String>) -> ChildSpec {
        ChildSpec::supervisor(id, self)
    }

    /// Starts the supervisor as a root actor of the current runtime; it starts its children in
    /// order right away.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::DuplicateChild`] if two children share an id, or
    /// [`SupervisorError::Spawn`] if the runtime refused the supervisor; nothing was started.
    /// A child that cannot be started makes the supervisor stop the children started so far
    /// and fail: [`SupervisorRef::wait`] returns the error.
    pub fn start(&self) -> Result<SupervisorRef, SupervisorError> {
        self.check_ids()?;
        let outcome = Arc::new(Mutex::new(None));
        let mut spawn = Spawn::new(self.server(&outcome));
        if let Some(name) = &self.name {
            spawn = spawn.name(name.clone());
        }
        let actor = spawn.start().map_err(|source| SupervisorError::Spawn {
            child: self.name.clone().unwrap_or_default(),
            source: Arc::new(source),
        })?;
        Ok(SupervisorRef::new(actor, outcome))
    }

    fn check_ids(&self) -> Result<(), SupervisorError> {
        let mut seen = HashSet::with_capacity(self.children.len());
        for spec in &self.children {
            if !seen.insert(spec.id()) {
                return Err(SupervisorError::DuplicateChild(spec.id().to_owned()));
            }
        }
        Ok(())
    }

    fn server(&self, outcome: &Arc<Mutex<Option<SupervisorError>>>) -> Server {
        Server::new(
            self.strategy,
            self.intensity,
            self.children.clone(),
            outcome.clone(),
        )
    }
}

impl Starter for Supervisor {
    fn start(&self, args: StartArgs<'_>) -> Result<Running, SpawnError> {
        let outcome = Arc::new(Mutex::new(None));
        let actor = spawn_with(self.server(&outcome), &args)?;
        Ok(Running {
            addr: actor.addr().clone(),
            handle: Arc::new(actor.clone()),
            supervisor: Some(SupervisorRef::new(actor, outcome)),
        })
    }
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("strategy", &self.strategy)
            .field("intensity", &self.intensity)
            .field("children", &self.children)
            .field("name", &self.name)
            .finish()
    }
}
