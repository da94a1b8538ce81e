//! Starting actors: the [`Spawn`] builder, and the loop every actor runs.

use std::fmt;
use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;

use futures::FutureExt;

use crate::cell::{KILL, SIGNAL, STOP, Signal};
use crate::executor::{Handle, current};
use crate::{Actor, ActorRef, Addr, Context, ExitReason, Failure, HandlerError, SpawnError};

/// The mailbox capacity of an actor unless [`Spawn::capacity`] says otherwise.
pub const DEFAULT_MAILBOX_CAPACITY: usize = 1024;

/// Starts an unnamed actor on the current runtime and returns its reference.
///
/// The actor is placed on the calling worker if called from one, else on the next worker in
/// turn. For names, mailbox capacity, placement or a parent, use [`Spawn`].
///
/// If the runtime is shutting down, the returned reference names an actor that has already
/// ended: every send to it reports [`SendError::Closed`](crate::SendError::Closed).
pub fn spawn_actor<A: Actor>(actor: A) -> ActorRef<A::Message> {
    Spawn::new(actor).start().unwrap_or_else(|_| ended())
}

/// A builder to start an actor with options.
///
/// # Examples
///
/// ```
/// use phalanx_runtime::{Actor, Context, HandlerError, Spawn};
///
/// struct Quiet;
/// impl Actor for Quiet {
///     type Message = ();
///     async fn handle(&mut self, _: &mut Context<Self>, _: ()) -> Result<(), HandlerError> {
///         Ok(())
///     }
/// }
///
/// phalanx_runtime::block_on(async {
///     let quiet = Spawn::new(Quiet).name("quiet").capacity(16).start()?;
///     assert!(quiet.is_alive());
///     quiet.stop();
///     quiet.wait().await;
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Spawn<A: Actor> {
    actor: A,
    name: Option<String>,
    capacity: usize,
    worker: Option<usize>,
    parent: Option<Addr>,
    restart_of: Option<Failure>,
    runtime: Option<Handle>,
}

impl<A: Actor> Spawn<A> {
    /// Prepares to start `actor` with the defaults: unnamed, a mailbox of
    /// [`DEFAULT_MAILBOX_CAPACITY`], no parent, on the current runtime.
    pub fn new(actor: A) -> Self {
        Self {
            actor,
            name: None,
            capacity: DEFAULT_MAILBOX_CAPACITY,
            worker: None,
            parent: None,
            restart_of: None,
            runtime: None,
        }
    }

    /// Registers the actor under `name` in the runtime's registry while it lives.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the mailbox capacity (at least 1). A full mailbox makes `tell` wait and `try_tell`
    /// fail.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Places the actor on worker `index` (modulo the number of workers). Actors that talk a
    /// lot to each other run fastest on the same worker.
    pub fn worker(mut self, index: usize) -> Self {
        self.worker = Some(index);
        self
    }

    /// Makes the actor a child of `parent`: it ends before its parent (see
    /// [`Context::spawn_child`]) and is not a root of the runtime.
    pub fn child_of(mut self, parent: &Addr) -> Self {
        self.parent = Some(parent.clone());
        self
    }

    /// Marks the actor as the restart of one that failed with `failure`: its
    /// [`Actor::restarting`] runs before [`Actor::started`].
    pub fn restart_of(mut self, failure: Failure) -> Self {
        self.restart_of = Some(failure);
        self
    }

    /// Starts the actor on `runtime` instead of the current one.
    pub fn runtime(mut self, runtime: &Handle) -> Self {
        self.runtime = Some(runtime.clone());
        self
    }

    /// Starts the actor.
    ///
    /// # Errors
    ///
    /// - [`SpawnError::NameTaken`] if the name belongs to another live actor;
    /// - [`SpawnError::ShutDown`] if the runtime is shutting down.
    pub fn start(self) -> Result<ActorRef<A::Message>, SpawnError> {
        let runtime = match self.runtime {
            Some(handle) => handle.inner,
            None => current(),
        };
        if runtime.is_closed() {
            return Err(SpawnError::ShutDown);
        }
        let (tx, rx) = flume::bounded(self.capacity);
        let addr = Addr::new(
            Arc::downgrade(&runtime),
            self.name.as_deref().map(Into::into),
        );
        let myself = ActorRef::new(addr.clone(), tx);
        if let Some(name) = &self.name {
            runtime.registry.insert(name, &myself)?;
        }
        let worker = match &self.parent {
            Some(parent) => {
                if !parent.add_child(&addr) {
                    // The parent is ending: the child may not outlive it.
                    addr.stop();
                }
                self.worker
            }
            None => {
                runtime.add_root(&addr);
                self.worker
            }
        };
        let ctx = Context::new(myself.clone());
        let span = actor_span::<A>(&addr, self.name.as_deref());
        crate::stats::started();
        runtime.spawn_actor_task(worker, run(self.actor, ctx, rx, self.restart_of, span));
        Ok(myself)
    }
}

impl<A: Actor> fmt::Debug for Spawn<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawn")
            .field("name", &self.name)
            .field("capacity", &self.capacity)
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

/// A reference to an actor that has already ended, for spawns that could not happen.
pub(crate) fn ended<M: Send + 'static>() -> ActorRef<M> {
    let (tx, _) = flume::bounded(1);
    let addr = Addr::new(std::sync::Weak::new(), None);
    addr.terminate(&ExitReason::NoProc);
    ActorRef::new(addr, tx)
}

/// The tracing span of an actor's whole life: every event its handlers emit carries its id,
/// its name and its type. Its parent is the span current where the actor is spawned (the
/// spawning actor's, or the node's), so spans follow the tree of actors.
///
/// Created once per actor life. Boxed, and only when a subscriber wants it: with tracing off
/// an idle actor pays one pointer for it.
fn actor_span<A: Actor>(addr: &Addr, name: Option<&str>) -> Option<Box<tracing::Span>> {
    let span = tracing::info_span!(
        "actor",
        id = addr.id().as_u64(),
        name,
        actor = short_type_name::<A>()
    );
    (!span.is_disabled()).then(|| Box::new(span))
}

/// The type name of `A` without its module path (and without its generic arguments' paths).
fn short_type_name<A>() -> &'static str {
    let full = std::any::type_name::<A>();
    let plain = full.split('<').next().unwrap_or(full);
    let start = plain.rfind("::").map_or(0, |at| at + 2);
    &full[start..]
}

/// The whole life of an actor, as one task.
///
/// This future is most of an idle actor's memory, so what runs once (start-up, the end) is
/// boxed when it runs instead of taking room in it for the actor's whole life.
fn run<A: Actor>(
    actor: A,
    ctx: Context<A>,
    mailbox: flume::Receiver<A::Message>,
    restart_of: Option<Failure>,
    span: Option<Box<tracing::Span>>,
) -> Life<impl Future<Output = ExitReason> + Send> {
    let addr = ctx.addr().clone();
    Life {
        life: Some(live(actor, ctx, mailbox, restart_of)),
        addr,
        ending: None,
        span,
    }
}

pin_project_lite::pin_project! {
    /// The whole life of an actor: its handlers, raced against a kill, then its end.
    ///
    /// A hand-written future rather than an async block, so that the actor's state is stored
    /// once and can be dropped in place when it is killed.
    struct Life<F> {
        #[pin]
        life: Option<F>,
        addr: Addr,
        ending: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
        // Entered on every poll, so that the actor's handlers, hooks and end run inside it.
        span: Option<Box<tracing::Span>>,
    }
}

impl<F: Future<Output = ExitReason>> Future for Life<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let mut this = self.project();
        let _entered = this.span.as_deref().map(tracing::Span::enter);
        if this.ending.is_none() {
            // A kill wins over everything: the task's waker is registered for every request
            // before anything else is looked at, and a kill drops the actor mid-handler.
            this.addr.cell.waker.register(cx.waker());
            let reason = if this.addr.cell.flags.load(Ordering::Acquire) & KILL != 0 {
                this.addr.take_kill_reason()
            } else {
                match this.life.as_mut().as_pin_mut() {
                    Some(life) => match life.poll(cx) {
                        Poll::Ready(reason) => reason,
                        Poll::Pending => return Poll::Pending,
                    },
                    None => ExitReason::Killed,
                }
            };
            this.life.set(None);
            crate::stats::ended(&reason);
            let addr = this.addr.clone();
            *this.ending = Some(Box::pin(async move {
                // Killed or failed: whatever children are left are killed, newest first.
                end_children(&addr, KILL).await;
                addr.terminate(&reason);
            }));
        }
        match this.ending {
            Some(ending) => ending.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }
}

async fn live<A: Actor>(
    mut actor: A,
    mut ctx: Context<A>,
    mailbox: flume::Receiver<A::Message>,
    restart_of: Option<Failure>,
) -> ExitReason {
    let reason = match Box::pin(start(&mut actor, &mut ctx, restart_of)).await {
        Ok(()) => serve(&mut actor, &mut ctx, &mailbox).await,
        Err(failure) => ExitReason::Failed(failure),
    };
    drop(mailbox);
    Box::pin(finish(&mut actor, &mut ctx, reason)).await
}

/// Runs `restarting` (for a restart) and `started`.
async fn start<A: Actor>(
    actor: &mut A,
    ctx: &mut Context<A>,
    restart_of: Option<Failure>,
) -> Result<(), Failure> {
    if let Some(failure) = restart_of {
        catch_hook(actor.restarting(ctx, &failure)).await?;
    }
    catch(actor.started(ctx)).await
}

/// Runs `stopping`, ends the children (stopped after a normal end, killed after a failure),
/// then runs `stopped`.
async fn finish<A: Actor>(actor: &mut A, ctx: &mut Context<A>, reason: ExitReason) -> ExitReason {
    if let Err(failure) = catch_hook(actor.stopping(ctx, &reason)).await {
        tracing::warn!(actor = %ctx.id(), %failure, "stopping hook failed");
    }
    let how = if reason == ExitReason::Normal {
        STOP
    } else {
        KILL
    };
    end_children(ctx.addr(), how).await;
    if let Err(failure) = catch_hook(actor.stopped(ctx, &reason)).await {
        tracing::warn!(actor = %ctx.id(), %failure, "stopped hook failed");
    }
    reason
}

/// Stops (`STOP`) or kills (`KILL`) the children of `addr`, newest first, each awaited.
async fn end_children(addr: &Addr, how: u8) {
    for child in addr.children().iter().rev() {
        if how == KILL {
            child.kill();
        } else {
            child.stop();
        }
        child.wait().await;
    }
}

enum Event<M> {
    Stop,
    /// Boxed: notices are rare, and a large variant would make every actor's future larger.
    Signal(Box<Signal>),
    Message(M),
}

/// How many events an actor handles in one poll before it yields its worker to other tasks
/// (and notices a kill).
const BUDGET: u32 = 128;

/// Counts the events handled since the budget was last full, and fills it again.
#[inline]
fn count_handled(budget: &mut u32) {
    if *budget != BUDGET {
        crate::stats::handled(BUDGET - *budget);
        *budget = BUDGET;
    }
}

async fn serve<A: Actor>(
    actor: &mut A,
    ctx: &mut Context<A>,
    mailbox: &flume::Receiver<A::Message>,
) -> ExitReason {
    let addr = ctx.addr().clone();
    let mut budget = BUDGET;
    loop {
        // The mailbox is read with `try_recv` only: the task's waker is registered in the cell
        // on every poll (see `run`), and senders wake it after each send. This spares the
        // 200-byte wait hook flume's async receiver allocates per idle actor.
        let event = poll_fn(|_| {
            let flags = addr.cell.flags.load(Ordering::Acquire);
            if flags & STOP != 0 {
                return Poll::Ready(Event::Stop);
            }
            if flags & SIGNAL != 0
                && let Some(signal) = addr.next_signal()
            {
                return Poll::Ready(Event::Signal(Box::new(signal)));
            }
            match mailbox.try_recv() {
                Ok(msg) => Poll::Ready(Event::Message(msg)),
                Err(flume::TryRecvError::Empty) => {
                    // Going idle: this poll's events are counted in one go, and the next poll
                    // starts with a full budget.
                    count_handled(&mut budget);
                    Poll::Pending
                }
                // Cannot happen while the context holds a sender, but ending is the answer.
                Err(flume::TryRecvError::Disconnected) => Poll::Ready(Event::Stop),
            }
        })
        .await;
        let outcome = match event {
            Event::Stop => break,
            Event::Message(msg) => catch(actor.handle(ctx, msg)).await,
            // Notices are rare: their handlers are boxed so that they take no room in the
            // actor's future for its whole life.
            Event::Signal(signal) => Box::pin(notice(actor, ctx, *signal)).await,
        };
        budget -= 1;
        if let Err(failure) = outcome {
            count_handled(&mut budget);
            drain(mailbox);
            return ExitReason::Failed(failure);
        }
        if budget == 0 {
            // A backlog: the one moment the mailbox depth is worth sampling, and it is rare.
            count_handled(&mut budget);
            crate::stats::mailbox_depth(mailbox.len());
            futures_lite::future::yield_now().await;
        }
    }
    count_handled(&mut budget);
    drain(mailbox);
    ExitReason::Normal
}

/// Hands a notice to its hook.
async fn notice<A: Actor>(
    actor: &mut A,
    ctx: &mut Context<A>,
    signal: Signal,
) -> Result<(), Failure> {
    match signal {
        Signal::Down(down) => catch(actor.down(ctx, down)).await,
        Signal::Exit(exit) => catch(actor.linked_exit(ctx, exit)).await,
    }
}

/// Drops the messages left in a mailbox, so that the asks among them fail at once with
/// `NoReply` instead of waiting for their timeouts.
fn drain<M>(mailbox: &flume::Receiver<M>) {
    while let Ok(msg) = mailbox.try_recv() {
        drop(msg);
    }
}

/// Runs a handler, turning a panic or an error into a [`Failure`].
///
/// A plain function returning a combinator, not an `async fn`: an `async fn` would store the
/// handler's future twice in the actor's future (as its argument and while awaiting it).
fn catch<F>(handler: F) -> impl Future<Output = Result<(), Failure>>
where
    F: Future<Output = Result<(), HandlerError>>,
{
    AssertUnwindSafe(handler)
        .catch_unwind()
        .map(|outcome| match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(Failure::error(error.to_string())),
            Err(panic) => Err(Failure::from_panic(panic)),
        })
}

/// Runs a hook that cannot return an error, turning a panic into a [`Failure`].
fn catch_hook<F: Future<Output = ()>>(hook: F) -> impl Future<Output = Result<(), Failure>> {
    AssertUnwindSafe(hook)
        .catch_unwind()
        .map(|outcome| outcome.map_err(Failure::from_panic))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Idle;

    impl Actor for Idle {
        type Message = ();

        async fn handle(&mut self, _: &mut Context<Self>, (): ()) -> Result<(), HandlerError> {
            Ok(())
        }
    }

    /// Prints the sizes that make up an idle actor's memory, and keeps the task future within
    /// budget (the 1 KiB-per-idle-actor goal).
    #[test]
    fn an_idle_actor_is_small() {
        let (tx, rx) = flume::bounded::<()>(1);
        let addr = Addr::new(std::sync::Weak::new(), None);
        let ctx = Context::<Idle>::new(ActorRef::new(addr, tx));
        let future = run(Idle, ctx, rx, None, None);
        let size = std::mem::size_of_val(&future);
        println!("run future: {size} bytes");
        println!("cell: {} bytes", std::mem::size_of::<crate::cell::Cell>());
        let (tx, rx) = flume::bounded::<()>(1);
        let addr = Addr::new(std::sync::Weak::new(), None);
        let mut ctx = Context::<Idle>::new(ActorRef::new(addr, tx));
        let mut idle = Idle;
        println!(
            "serve: {}",
            std::mem::size_of_val(&serve(&mut idle, &mut ctx, &rx))
        );
        println!(
            "handle: {}",
            std::mem::size_of_val(&catch(idle.handle(&mut ctx, ())))
        );
        println!(
            "live: {}",
            std::mem::size_of_val(&live(Idle, ctx, rx, None))
        );
        assert!(
            size <= 384,
            "an idle actor's task future grew to {size} bytes"
        );
    }
}
