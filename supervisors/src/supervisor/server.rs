//! The supervisor actor: drives a [`Restarter`] with real children, timers and shutdowns.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use phalanx_runtime::{
    Actor, ActorId, Addr, Context, Down, ExitReason, Failure, HandlerError, sleep, timeout,
};

use crate::spec::Running;
use crate::supervisor_ref::Request;
use crate::{
    ChildInfo, ChildKey, ChildSpec, Decision, ExitKind, Intensity, RestartId, Restarter, Shutdown,
    Strategy, SupervisorError, SupervisorMessage,
};

pub(crate) struct Server {
    restarter: Restarter<Slot>,
    /// Running instances by actor id, to find the child of a `Down` in O(1). An instance the
    /// supervisor stops on purpose is removed first, so its `Down` is ignored.
    by_actor: HashMap<ActorId, ChildKey>,
    by_id: HashMap<Arc<str>, ChildKey>,
    /// The static children, taken when the supervisor starts.
    initial: Vec<ChildSpec>,
    /// The origin of the `now` given to the restarter.
    origin: Instant,
    outcome: Arc<Mutex<Option<SupervisorError>>>,
}

struct Slot {
    spec: ChildSpec,
    running: Option<Running>,
    /// How the previous instance failed, for the next instance's `restarting`.
    failure: Option<Failure>,
}

/// Work left to do in one handler call; a queue rather than recursion, because a child that
/// cannot be started is itself an exit to decide on.
enum Work {
    Exit(ChildKey, ExitReason),
    Start(RestartId, Vec<ChildKey>),
}

impl Server {
    pub(crate) fn new(
        strategy: Strategy,
        intensity: Intensity,
        initial: Vec<ChildSpec>,
        outcome: Arc<Mutex<Option<SupervisorError>>>,
    ) -> Self {
        Self {
            restarter: Restarter::new(strategy, intensity),
            by_actor: HashMap::new(),
            by_id: HashMap::new(),
            initial,
            origin: Instant::now(),
            outcome,
        }
    }

    fn fail(&self, error: SupervisorError) -> HandlerError {
        *self.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(error.clone());
        Box::new(error)
    }

    fn add_child(&mut self, ctx: &Context<Self>, spec: ChildSpec) -> Result<Addr, SupervisorError> {
        if self.by_id.contains_key(spec.id()) {
            return Err(SupervisorError::DuplicateChild(spec.id().to_owned()));
        }
        let running = spec
            .start(ctx.addr(), None)
            .map_err(|source| SupervisorError::Spawn {
                child: spec.id().to_owned(),
                source: Arc::new(source),
            })?;
        let addr = running.addr.clone();
        let id = spec.id_arc().clone();
        let slot = Slot {
            running: None,
            failure: None,
            spec,
        };
        let key =
            self.restarter
                .add_child(slot.spec.restart_policy(), slot.spec.backoff_mode(), slot);
        self.watch(ctx, key, running);
        self.by_id.insert(id, key);
        Ok(addr)
    }

    /// Records `running` as the current instance of `key` and monitors it.
    fn watch(&mut self, ctx: &Context<Self>, key: ChildKey, running: Running) {
        self.by_actor.insert(running.addr.id(), key);
        ctx.monitor(&running.addr);
        if let Some(slot) = self.restarter.child_mut(key) {
            slot.running = Some(running);
        }
    }

    /// Stops every running child in reverse start order and forgets all children.
    async fn stop_all(&mut self) {
        let keys: Vec<ChildKey> = self.restarter.running_rev().collect();
        for key in keys {
            if let Some(slot) = self.restarter.child_mut(key)
                && let Some(running) = slot.running.take()
            {
                let mode = slot.spec.shutdown_mode();
                self.by_actor.remove(&running.addr.id());
                stop_child(&running, mode).await;
            }
        }
        let keys: Vec<ChildKey> = self.restarter.keys().collect();
        for key in keys {
            self.restarter.remove_child(key);
        }
        self.by_actor.clear();
        self.by_id.clear();
    }

    async fn process(&mut self, ctx: &mut Context<Self>, first: Work) -> Result<(), HandlerError> {
        let mut work = VecDeque::from([first]);
        while let Some(item) = work.pop_front() {
            match item {
                Work::Exit(key, reason) => {
                    if let Some(next) = self.on_exit(ctx, key, reason).await? {
                        work.push_back(next);
                    }
                }
                Work::Start(id, keys) => self.start_due(ctx, id, keys, &mut work),
            }
        }
        Ok(())
    }

    /// Applies the decision for an exit; returns the starts to do now, if any.
    async fn on_exit(
        &mut self,
        ctx: &Context<Self>,
        key: ChildKey,
        reason: ExitReason,
    ) -> Result<Option<Work>, HandlerError> {
        let Some(slot) = self.restarter.child_mut(key) else {
            return Ok(None);
        };
        slot.running = None;
        slot.failure = failure_of(&reason);
        let child = slot.spec.id().to_owned();
        let now = self.origin.elapsed();
        let decision = self
            .restarter
            .handle_exit(key, exit_kind(&reason), now, fastrand::u64(..));
        let mut removed: HashMap<ChildKey, Slot> = self.restarter.drain_removed().collect();
        for slot in removed.values() {
            self.by_id.remove(slot.spec.id());
        }
        match decision {
            Decision::Ignore | Decision::Remove => Ok(None),
            Decision::Restart(plan) => {
                tracing::debug!(%child, %reason, restart = plan.start.len(), "restarting");
                crate::stats::restart(self.restarter.strategy(), plan.start.len());
                self.stop_keys(&plan.stop, &mut removed).await;
                if plan.delay.is_zero() {
                    Ok(Some(Work::Start(plan.id, plan.start)))
                } else {
                    let me = ctx.myself();
                    let (id, keys, delay) = (plan.id, plan.start, plan.delay);
                    // A timer message to self: the supervisor never sleeps in a handler.
                    phalanx_runtime::spawn(async move {
                        sleep(delay).await;
                        let _ = me
                            .tell(SupervisorMessage(Request::RestartDue(id, keys)))
                            .await;
                    })
                    .detach();
                    Ok(None)
                }
            }
            Decision::Escalate { stop } => {
                tracing::warn!(%child, %reason, "restart intensity exceeded; escalating");
                crate::stats::escalation();
                self.stop_keys(&stop, &mut removed).await;
                self.by_actor.clear();
                self.by_id.clear();
                let intensity = self.restarter.intensity();
                Err(self.fail(SupervisorError::IntensityExceeded {
                    child,
                    max_restarts: intensity.max_restarts(),
                    period: intensity.period(),
                    reason,
                }))
            }
        }
    }

    /// Stops these children in this order, each fully before the next.
    async fn stop_keys(&mut self, keys: &[ChildKey], removed: &mut HashMap<ChildKey, Slot>) {
        for key in keys {
            let slot = match self.restarter.child_mut(*key) {
                Some(slot) => Some(slot),
                None => removed.get_mut(key),
            };
            let Some(slot) = slot else { continue };
            let mode = slot.spec.shutdown_mode();
            if let Some(running) = slot.running.take() {
                self.by_actor.remove(&running.addr.id());
                stop_child(&running, mode).await;
            }
        }
    }

    fn start_due(
        &mut self,
        ctx: &Context<Self>,
        id: RestartId,
        keys: Vec<ChildKey>,
        work: &mut VecDeque<Work>,
    ) {
        for key in keys {
            if !self.restarter.start_due(key, id) {
                continue;
            }
            let Some(slot) = self.restarter.child_mut(key) else {
                continue;
            };
            let failure = slot.failure.take();
            match slot.spec.start(ctx.addr(), failure) {
                Ok(running) => self.watch(ctx, key, running),
                Err(error) => {
                    let failure = Failure::error(format!("could not start: {error}"));
                    work.push_back(Work::Exit(key, ExitReason::Failed(failure)));
                }
            }
        }
    }

    fn find(&self, id: &str) -> Option<&Slot> {
        self.by_id
            .get(id)
            .and_then(|&key| self.restarter.child(key))
    }
}

impl Actor for Server {
    type Message = SupervisorMessage;

    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), HandlerError> {
        self.origin = Instant::now();
        for spec in std::mem::take(&mut self.initial) {
            if let Err(error) = self.add_child(ctx, spec) {
                self.stop_all().await;
                return Err(self.fail(error));
            }
        }
        Ok(())
    }

    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        SupervisorMessage(request): SupervisorMessage,
    ) -> Result<(), HandlerError> {
        match request {
            Request::StartChild(spec, reply) => {
                let _ = reply.send(self.add_child(ctx, spec));
            }
            Request::TerminateChild(id, reply) => {
                let result = match self.by_id.remove(id.as_str()) {
                    None => Err(SupervisorError::NoSuchChild(id)),
                    Some(key) => {
                        if let Some(slot) = self.restarter.remove_child(key)
                            && let Some(running) = slot.running
                        {
                            self.by_actor.remove(&running.addr.id());
                            stop_child(&running, slot.spec.shutdown_mode()).await;
                        }
                        Ok(())
                    }
                };
                let _ = reply.send(result);
            }
            Request::Children(reply) => {
                let children = self
                    .restarter
                    .keys()
                    .filter_map(|key| self.restarter.child(key))
                    .map(|slot| ChildInfo {
                        id: slot.spec.id().to_owned(),
                        addr: slot.running.as_ref().map(|r| r.addr.clone()),
                        restart: slot.spec.restart_policy(),
                    })
                    .collect();
                let _ = reply.send(children);
            }
            Request::Child(id, reply) => {
                let handle = self
                    .find(&id)
                    .and_then(|slot| slot.running.as_ref())
                    .map(|running| running.handle.clone());
                let _ = reply.send(handle);
            }
            Request::ChildSupervisor(id, reply) => {
                let handle = self
                    .find(&id)
                    .and_then(|slot| slot.running.as_ref())
                    .and_then(|running| running.supervisor.clone());
                let _ = reply.send(handle);
            }
            Request::RestartDue(id, keys) => {
                return self.process(ctx, Work::Start(id, keys)).await;
            }
            Request::Shutdown => {
                self.stop_all().await;
                ctx.stop();
            }
        }
        Ok(())
    }

    /// However the supervisor ends (short of a kill), its children are stopped in reverse
    /// start order with their own shutdown modes before the runtime would stop them by age.
    async fn stopping(&mut self, _: &mut Context<Self>, _: &ExitReason) {
        self.stop_all().await;
    }

    async fn down(&mut self, ctx: &mut Context<Self>, down: Down) -> Result<(), HandlerError> {
        let Some(key) = self.by_actor.remove(&down.id) else {
            return Ok(());
        };
        let reason = if down.reason == ExitReason::NoProc {
            // The child ended before the monitor was set up: its own record says how.
            let addr = self
                .restarter
                .child(key)
                .and_then(|slot| slot.running.as_ref())
                .map(|running| running.addr.clone());
            match addr {
                Some(addr) => addr.wait().await,
                None => down.reason,
            }
        } else {
            down.reason
        };
        self.process(ctx, Work::Exit(key, reason)).await
    }
}

/// Stops one child with its shutdown mode and returns once it has fully ended.
async fn stop_child(running: &Running, mode: Shutdown) {
    let addr = &running.addr;
    let graceful = async {
        match &running.supervisor {
            // A nested supervisor gets the ordered shutdown of its own children.
            Some(supervisor) => supervisor.send_shutdown().await,
            None => addr.stop(),
        }
        addr.wait().await;
    };
    match mode {
        Shutdown::Kill => addr.kill(),
        Shutdown::Infinity => {
            graceful.await;
        }
        Shutdown::Timeout(limit) => {
            if timeout(limit, graceful).await.is_err() {
                tracing::warn!(child = %addr.id(), ?limit, "child did not stop in time; killing it");
                addr.kill();
            }
        }
    }
    addr.wait().await;
}

fn exit_kind(reason: &ExitReason) -> ExitKind {
    match reason {
        ExitReason::Normal => ExitKind::Normal,
        ExitReason::Killed => ExitKind::Killed,
        _ => ExitKind::Failure,
    }
}

/// What the next instance's `restarting` is told about an abnormal end.
fn failure_of(reason: &ExitReason) -> Option<Failure> {
    match reason {
        ExitReason::Normal | ExitReason::NoProc => None,
        ExitReason::Failed(failure) => Some(failure.clone()),
        other => Some(Failure::error(other.to_string())),
    }
}
