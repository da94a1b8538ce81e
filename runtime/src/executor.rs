//! The executor: worker threads, task spawning, blocking work, and orderly shutdown.
//!
//! Each worker thread runs two [`async_executor::Executor`]s, one inside the other:
//!
//! - its own **shard**, where the actors placed on this worker live. A message that wakes an
//!   actor on the same worker stays on that worker's run queue: on a 2-core VM waking a thread
//!   on the other core costs tens of microseconds, so a ping-pong pair placed together never
//!   pays it. An actor spawned from inside a worker is placed on that worker; an actor spawned
//!   from outside goes to the workers in turn; [`Spawn::worker`](crate::Spawn::worker) places
//!   it explicitly.
//! - the **shared** executor that every worker runs, with work stealing between them, for plain
//!   tasks from [`spawn`].

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use async_executor::Executor;
use async_task::Task;

use crate::ask::AskTimers;
use crate::registry::Registry;
use crate::{ActorId, Addr, ShutdownError};

/// A phalanx runtime: a pool of worker threads that run actors and tasks.
///
/// # Examples
///
/// ```
/// use phalanx_runtime::Runtime;
///
/// let runtime = Runtime::builder().worker_threads(2).build()?;
/// let answer = runtime.block_on(async { phalanx_runtime::spawn(async { 6 * 7 }).await });
/// assert_eq!(answer, 42);
/// runtime.shutdown(std::time::Duration::from_secs(1))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Runtime {
    inner: Arc<Inner>,
    /// Dropping it disconnects every worker's stop channel, which ends its run loop.
    stop: Option<flume::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

/// Builds a [`Runtime`] with a chosen number of worker threads.
#[derive(Debug, Clone)]
pub struct RuntimeBuilder {
    workers: usize,
    thread_name: String,
}

/// A cheap, cloneable reference to a [`Runtime`], to spawn on it from anywhere.
#[derive(Debug, Clone)]
pub struct Handle {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    shards: Box<[Executor<'static>]>,
    shared: Executor<'static>,
    next_shard: AtomicUsize,
    closed: AtomicBool,
    /// Actors without a parent, by id: ids grow with start order, so shutdown walks this map
    /// backwards to stop the newest first.
    roots: Mutex<BTreeMap<ActorId, Addr>>,
    pub(crate) registry: Registry,
    pub(crate) asks: Arc<AskTimers>,
    /// Actors spawned from other threads, per worker, waiting to be spawned on its shard.
    inboxes: Arc<[Inbox]>,
}

/// Spawns a task on the shard it is handed.
type SpawnJob = Box<dyn FnOnce(&Executor<'static>) + Send>;

/// The actors spawned onto one worker from other threads.
///
/// Spawning on another thread's executor wakes that thread; at a million spawns that is a
/// million context switches. Jobs wait here instead, and the worker's drainer task is woken
/// only when it is not already draining.
struct Inbox {
    jobs: concurrent_queue::ConcurrentQueue<SpawnJob>,
    /// Set while the drainer is awake or a wake-up is on its way.
    scheduled: AtomicBool,
    drainer: futures::task::AtomicWaker,
}

impl Inbox {
    fn new() -> Self {
        Self {
            jobs: concurrent_queue::ConcurrentQueue::unbounded(),
            scheduled: AtomicBool::new(false),
            drainer: futures::task::AtomicWaker::new(),
        }
    }

    fn push(&self, job: SpawnJob) {
        // An unbounded queue refuses only when closed, which this one never is.
        let _ = self.jobs.push(job);
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            self.drainer.wake();
        }
    }

    /// Spawns the queued actors of worker `index` on its shard, until the runtime is gone.
    ///
    /// It lives on that shard, so it holds the runtime only while it drains: a strong
    /// reference held while waiting would keep the runtime alive forever.
    async fn drain(inboxes: Arc<[Inbox]>, runtime: Weak<Inner>, index: usize) {
        let inbox = &inboxes[index];
        loop {
            std::future::poll_fn(|cx| {
                inbox.drainer.register(cx.waker());
                if inbox.scheduled.load(Ordering::Acquire) || !inbox.jobs.is_empty() {
                    inbox.scheduled.store(true, Ordering::Release);
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            })
            .await;
            let Some(runtime) = runtime.upgrade() else {
                return;
            };
            let mut drained = 0u32;
            while let Ok(job) = inbox.jobs.pop() {
                job(&runtime.shards[index]);
                drained += 1;
                if drained.is_multiple_of(256) {
                    // Let the actors just spawned (and everything else) run.
                    futures_lite::future::yield_now().await;
                }
            }
            drop(runtime);
            inbox.scheduled.store(false, Ordering::Release);
        }
    }
}

thread_local! {
    /// The runtime this thread works for, and its worker index if it is a worker thread.
    static CURRENT: RefCell<Option<(Arc<Inner>, Option<usize>)>> = const { RefCell::new(None) };
}

static GLOBAL: OnceLock<Runtime> = OnceLock::new();

impl Runtime {
    /// Starts a runtime with one worker thread per available core.
    ///
    /// # Errors
    ///
    /// Fails if the operating system refuses to start a thread.
    pub fn new() -> std::io::Result<Self> {
        Self::builder().build()
    }

    /// A builder to choose the number of worker threads.
    pub fn builder() -> RuntimeBuilder {
        let workers = thread::available_parallelism().map_or(1, |n| n.get());
        RuntimeBuilder {
            workers,
            thread_name: "phalanx-worker".into(),
        }
    }

    /// A handle to spawn on this runtime from anywhere.
    pub fn handle(&self) -> Handle {
        Handle {
            inner: self.inner.clone(),
        }
    }

    /// The number of worker threads.
    pub fn worker_threads(&self) -> usize {
        self.inner.shards.len()
    }

    /// Runs a future to completion on the calling thread, with this runtime as the current one:
    /// actors and tasks spawned inside it go to this runtime's workers.
    ///
    /// # Panics
    ///
    /// Panics if `future` panics.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _guard = enter(self.inner.clone(), None);
        async_io::block_on(future)
    }

    /// Stops every actor in tree order and then the worker threads.
    ///
    /// Root actors (those without a parent) are stopped newest first, one after the other;
    /// each stops its own children before itself (see [`Context::spawn_child`]). Whatever has
    /// not ended when `deadline` has passed is killed. New spawns are refused from the start
    /// of the shutdown with [`SpawnError::ShutDown`](crate::SpawnError::ShutDown).
    ///
    /// Call it from outside the runtime (not from an actor or task): it blocks the caller.
    ///
    /// [`Context::spawn_child`]: crate::Context::spawn_child
    ///
    /// # Errors
    ///
    /// [`ShutdownError::DeadlineExceeded`] if some actors had to be killed.
    pub fn shutdown(mut self, deadline: Duration) -> Result<(), ShutdownError> {
        self.inner.closed.store(true, Ordering::SeqCst);
        let result = self.block_on(stop_roots(&self.inner, deadline));
        self.stop_workers();
        result
    }

    fn stop_workers(&mut self) {
        self.stop = None;
        let me = thread::current().id();
        for thread in self.threads.drain(..) {
            if thread.thread().id() != me {
                // A worker that panicked has nothing more to report here.
                let _ = thread.join();
            }
        }
    }
}

impl Drop for Runtime {
    /// Dropping a runtime without [`shutdown`](Runtime::shutdown) stops its workers and cancels
    /// its actors and tasks where they are: `stopped` hooks do not run.
    fn drop(&mut self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.stop_workers();
    }
}

impl RuntimeBuilder {
    /// Sets the number of worker threads (at least one).
    pub fn worker_threads(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Sets the prefix of the worker threads' names.
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.thread_name = name.into();
        self
    }

    /// Starts the worker threads.
    ///
    /// # Errors
    ///
    /// Fails if the operating system refuses to start a thread.
    pub fn build(self) -> std::io::Result<Runtime> {
        let inner = Arc::new(Inner {
            shards: (0..self.workers).map(|_| Executor::new()).collect(),
            shared: Executor::new(),
            next_shard: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            roots: Mutex::new(BTreeMap::new()),
            registry: Registry::default(),
            asks: Arc::new(AskTimers::new(self.workers + 1)),
            inboxes: (0..self.workers)
                .map(|_| Inbox::new())
                .collect::<Vec<_>>()
                .into(),
        });
        inner.shared.spawn(inner.asks.clone().sweep()).detach();
        let (stop, stopped) = flume::bounded::<()>(0);
        let mut runtime = Runtime {
            inner,
            stop: Some(stop),
            threads: Vec::new(),
        };
        for index in 0..self.workers {
            let inner = runtime.inner.clone();
            let stopped = stopped.clone();
            let thread = thread::Builder::new()
                .name(format!("{}-{index}", self.thread_name))
                .spawn(move || {
                    let _guard = enter(inner.clone(), Some(index));
                    let inboxes = inner.inboxes.clone();
                    let drainer = Inbox::drain(inboxes, Arc::downgrade(&inner), index);
                    inner.shards[index].spawn(drainer).detach();
                    let until_stopped = async move {
                        // Disconnection is the signal: nobody ever sends on this channel.
                        let _ = stopped.recv_async().await;
                    };
                    async_io::block_on(inner.shards[index].run(inner.shared.run(until_stopped)));
                })?;
            runtime.threads.push(thread);
        }
        Ok(runtime)
    }
}

impl Handle {
    /// The runtime of the calling thread: the one whose worker or `block_on` this is, or else
    /// the global default runtime, started on first use.
    pub fn current() -> Self {
        Self { inner: current() }
    }

    /// Spawns a task on this runtime. See [`spawn`].
    pub fn spawn<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.inner.shared.spawn(compat(future))
    }

    /// Runs `future` to completion on the calling thread with this runtime as the current one.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _guard = enter(self.inner.clone(), None);
        async_io::block_on(future)
    }
}

impl Inner {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Spawns an actor's future on a worker shard: `worker` if given, else the calling worker,
    /// else the next one in turn.
    pub(crate) fn spawn_actor_task<F>(&self, worker: Option<usize>, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let count = self.shards.len();
        let here = current_worker(self);
        let index = match (worker, here) {
            (Some(index), _) => index % count,
            (None, Some(here)) => here,
            (None, None) => self.next_shard.fetch_add(1, Ordering::Relaxed) % count,
        };
        if here == Some(index) {
            self.shards[index].spawn(compat(future)).detach();
        } else {
            // From another thread: through the worker's inbox, which wakes it once per batch
            // instead of once per actor.
            self.inboxes[index].push(Box::new(move |shard: &Executor<'static>| {
                shard.spawn(compat(future)).detach();
            }));
        }
    }

    pub(crate) fn add_root(&self, addr: &Addr) {
        lock(&self.roots).insert(addr.id(), addr.clone());
    }

    pub(crate) fn remove_root(&self, id: ActorId) {
        lock(&self.roots).remove(&id);
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("workers", &self.shards.len())
            .finish_non_exhaustive()
    }
}

/// Spawns a task on the current runtime.
///
/// The task runs on the shared, work-stealing executor of the runtime's workers. Dropping the
/// returned [`Task`] cancels it; call [`Task::detach`] to let it run on its own.
///
/// # Examples
///
/// ```
/// let sum = phalanx_runtime::block_on(async {
///     let task = phalanx_runtime::spawn(async { 1 + 2 });
///     task.await
/// });
/// assert_eq!(sum, 3);
/// ```
pub fn spawn<F>(future: F) -> Task<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    current().shared.spawn(compat(future))
}

/// Runs blocking code on the thread pool for blocking work and awaits its result.
///
/// Use it for file I/O, CPU-heavy work or blocking libraries, so that workers stay free.
pub fn spawn_blocking<T, F>(work: F) -> Task<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    blocking::unblock(work)
}

/// Runs a future to completion on the calling thread, with the current runtime (or the
/// global default runtime) as the runtime for what it spawns.
pub fn block_on<F: Future>(future: F) -> F::Output {
    Handle::current().block_on(future)
}

pub(crate) fn current() -> Arc<Inner> {
    CURRENT
        .with(|current| current.borrow().as_ref().map(|(inner, _)| inner.clone()))
        .unwrap_or_else(|| global().inner.clone())
}

/// The worker index of the calling thread, if it is a worker of `inner`.
pub(crate) fn current_worker(inner: &Inner) -> Option<usize> {
    CURRENT.with(|current| match &*current.borrow() {
        Some((this, Some(index))) if std::ptr::eq(Arc::as_ptr(this), inner) => Some(*index),
        _ => None,
    })
}

fn global() -> &'static Runtime {
    GLOBAL.get_or_init(
        || match Runtime::builder().thread_name("phalanx-global").build() {
            Ok(runtime) => runtime,
            // Without threads there is no runtime at all; this is not recoverable.
            Err(error) => panic!("phalanx: cannot start the global runtime: {error}"),
        },
    )
}

struct EnterGuard(Option<(Arc<Inner>, Option<usize>)>);

fn enter(inner: Arc<Inner>, worker: Option<usize>) -> EnterGuard {
    EnterGuard(CURRENT.with(|current| current.borrow_mut().replace((inner, worker))))
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|current| *current.borrow_mut() = previous);
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of the runtime's locks leaves consistent data behind: every
    // critical section is a plain collection update.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(feature = "tokio")]
fn compat<F: Future>(future: F) -> async_compat::Compat<F> {
    async_compat::Compat::new(future)
}

#[cfg(not(feature = "tokio"))]
fn compat<F: Future>(future: F) -> F {
    future
}

async fn stop_roots(inner: &Inner, deadline: Duration) -> Result<(), ShutdownError> {
    let end = Instant::now() + deadline;
    let roots: Vec<Addr> = lock(&inner.roots).values().rev().cloned().collect();
    for root in &roots {
        root.stop();
        if crate::timer::timeout_at(end, root.wait()).await.is_err() {
            break;
        }
    }
    let alive: Vec<&Addr> = roots.iter().filter(|addr| addr.is_alive()).collect();
    if alive.is_empty() {
        return Ok(());
    }
    for addr in &alive {
        addr.kill();
    }
    let grace = Instant::now() + Duration::from_secs(1);
    for addr in &alive {
        let _ = crate::timer::timeout_at(grace, addr.wait()).await;
    }
    tracing::warn!(
        killed = alive.len(),
        "shutdown deadline passed; actors were killed"
    );
    Err(ShutdownError::DeadlineExceeded {
        killed: alive.len(),
    })
}
