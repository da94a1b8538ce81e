//! Starting actors: the [`Spawn`] builder, and the loop every actor runs.

use std::fmt;
use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
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
        runtime.spawn_actor_task(worker, run(self.actor, ctx, rx, self.restart_of));
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

/// The whole life of an actor, as one task.
async fn run<A: Actor>(
    actor: A,
    ctx: Context<A>,
    mailbox: flume::Receiver<A::Message>,
    restart_of: Option<Failure>,
) {
    let addr = ctx.addr().clone();
    // A kill wins over everything: this future is polled first, registers the task's waker
    // for every request, and ends the race (dropping the actor mid-handler) when KILL is set.
    let killed = poll_fn(|cx| {
        addr.cell.waker.register(cx.waker());
        if addr.cell.flags.load(Ordering::Acquire) & KILL != 0 {
            Poll::Ready(addr.take_kill_reason())
        } else {
            Poll::Pending
        }
    });
    let reason = futures_lite::future::or(killed, live(actor, ctx, mailbox, restart_of)).await;
    // Killed or failed: whatever children are left are killed, newest first.
    for child in addr.children().iter().rev() {
        child.kill();
        child.wait().await;
    }
    addr.terminate(&reason);
}

async fn live<A: Actor>(
    mut actor: A,
    mut ctx: Context<A>,
    mailbox: flume::Receiver<A::Message>,
    restart_of: Option<Failure>,
) -> ExitReason {
    if let Some(failure) = restart_of
        && let Err(failure) = catch_hook(actor.restarting(&mut ctx, &failure)).await
    {
        return ExitReason::Failed(failure);
    }
    let reason = match catch(actor.started(&mut ctx)).await {
        Ok(()) => serve(&mut actor, &mut ctx, mailbox).await,
        Err(failure) => ExitReason::Failed(failure),
    };
    if let Err(failure) = catch_hook(actor.stopping(&mut ctx, &reason)).await {
        tracing::warn!(actor = %ctx.id(), %failure, "stopping hook failed");
    }
    if reason == ExitReason::Normal {
        for child in ctx.addr().children().iter().rev() {
            child.stop();
            child.wait().await;
        }
    } else {
        for child in ctx.addr().children().iter().rev() {
            child.kill();
            child.wait().await;
        }
    }
    if let Err(failure) = catch_hook(actor.stopped(&mut ctx, &reason)).await {
        tracing::warn!(actor = %ctx.id(), %failure, "stopped hook failed");
    }
    reason
}

enum Event<M> {
    Stop,
    Signal(Signal),
    Message(M),
}

/// How many events an actor handles in one poll before it yields its worker to other tasks
/// (and notices a kill).
const BUDGET: u32 = 128;

async fn serve<A: Actor>(
    actor: &mut A,
    ctx: &mut Context<A>,
    mailbox: flume::Receiver<A::Message>,
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
                return Poll::Ready(Event::Signal(signal));
            }
            match mailbox.try_recv() {
                Ok(msg) => Poll::Ready(Event::Message(msg)),
                Err(flume::TryRecvError::Empty) => Poll::Pending,
                // Cannot happen while the context holds a sender, but ending is the answer.
                Err(flume::TryRecvError::Disconnected) => Poll::Ready(Event::Stop),
            }
        })
        .await;
        let outcome = match event {
            Event::Stop => break,
            Event::Message(msg) => catch(actor.handle(ctx, msg)).await,
            Event::Signal(Signal::Down(down)) => catch(actor.down(ctx, down)).await,
            Event::Signal(Signal::Exit(exit)) => catch(actor.linked_exit(ctx, exit)).await,
        };
        if let Err(failure) = outcome {
            drain(&mailbox);
            return ExitReason::Failed(failure);
        }
        budget -= 1;
        if budget == 0 {
            budget = BUDGET;
            futures_lite::future::yield_now().await;
        }
    }
    drain(&mailbox);
    ExitReason::Normal
}

/// Drops the messages left in a mailbox, so that the asks among them fail at once with
/// `NoReply` instead of waiting for their timeouts.
fn drain<M>(mailbox: &flume::Receiver<M>) {
    while let Ok(msg) = mailbox.try_recv() {
        drop(msg);
    }
}

/// Runs a handler, turning a panic or an error into a [`Failure`].
async fn catch<F>(handler: F) -> Result<(), Failure>
where
    F: Future<Output = Result<(), HandlerError>>,
{
    match AssertUnwindSafe(handler).catch_unwind().await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(Failure::error(error.to_string())),
        Err(panic) => Err(Failure::from_panic(panic)),
    }
}

/// Runs a hook that cannot return an error, turning a panic into a [`Failure`].
async fn catch_hook<F: Future<Output = ()>>(hook: F) -> Result<(), Failure> {
    AssertUnwindSafe(hook)
        .catch_unwind()
        .await
        .map_err(Failure::from_panic)
}
