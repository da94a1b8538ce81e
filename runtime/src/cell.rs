//! The untyped half of an actor: its identity, control flags, relations and exit state.
//!
//! Every actor has one [`Cell`], shared by its task and every reference to it. The cell is
//! what supervisors, monitors and links talk to; the typed mailbox lives in
//! [`ActorRef`](crate::ActorRef) beside it.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::poll_fn;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Poll, Waker};

use futures::task::AtomicWaker;

use crate::executor::{Inner, lock};
use crate::remote::RemoteControl;
use crate::{Down, Exit, ExitReason, Failure, MonitorRef};

/// The identity of an actor, unique within the process for its whole life.
///
/// Ids grow with start order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorId(u64);

/// An untyped reference to an actor: enough to stop, kill, monitor, link to and wait for it.
///
/// Cheap to clone (one reference count). Two `Addr`s are equal when they name the same actor.
#[derive(Clone)]
pub struct Addr {
    pub(crate) cell: Arc<Cell>,
}

/// Bits of [`Cell::flags`].
pub(crate) const KILL: u8 = 1;
pub(crate) const STOP: u8 = 2;
pub(crate) const SIGNAL: u8 = 4;
/// Set once, at creation, on the proxy of a remote actor.
const REMOTE: u8 = 8;

pub(crate) struct Cell {
    id: ActorId,
    /// KILL, STOP and SIGNAL requests, read by the actor's task on every poll without a lock.
    pub(crate) flags: AtomicU8,
    /// The actor task's waker, registered on every poll, so that a request wakes it even in the
    /// middle of a handler (which is how kill abandons one).
    pub(crate) waker: AtomicWaker,
    pub(crate) runtime: Weak<Inner>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    name: Option<Box<str>>,
    trap_exit: bool,
    /// Set once the actor has ended; the cell then refuses new relations.
    exit: Option<ExitReason>,
    /// The reason for a KILL request when it is not a plain kill (an exit signal from a link).
    kill_reason: Option<ExitReason>,
    /// Relations are rare for most actors: boxed so that an idle actor stays small.
    relations: Option<Box<Relations>>,
}

#[derive(Default)]
struct Relations {
    signals: VecDeque<Signal>,
    watchers: Vec<(MonitorRef, Addr)>,
    links: Vec<Addr>,
    children: BTreeMap<ActorId, Addr>,
    parent: Option<Weak<Cell>>,
    waiters: Vec<Waker>,
    /// Where `stop` and `kill` go for the proxy of a remote actor.
    control: Option<Arc<dyn RemoteControl>>,
}

/// A system notice queued for the actor, handled before its user messages.
pub(crate) enum Signal {
    Down(Down),
    Exit(Exit),
}

impl ActorId {
    pub(crate) fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The id as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl Addr {
    pub(crate) fn new(runtime: Weak<Inner>, name: Option<Box<str>>) -> Self {
        let state = State {
            name,
            ..State::default()
        };
        let cell = Cell {
            id: ActorId::next(),
            flags: AtomicU8::new(0),
            waker: AtomicWaker::new(),
            runtime,
            state: Mutex::new(state),
        };
        Self {
            cell: Arc::new(cell),
        }
    }

    pub(crate) fn new_proxy(control: Arc<dyn RemoteControl>, name: Option<Box<str>>) -> Self {
        let addr = Self::new(Weak::new(), name);
        lock(&addr.cell.state).relations().control = Some(control);
        addr.cell.flags.store(REMOTE, Ordering::Release);
        addr
    }

    /// The control of a remote actor's proxy.
    fn control(&self) -> Option<Arc<dyn RemoteControl>> {
        if self.cell.flags.load(Ordering::Acquire) & REMOTE == 0 {
            return None;
        }
        lock(&self.cell.state).relations.as_ref()?.control.clone()
    }

    /// The actor's id.
    pub fn id(&self) -> ActorId {
        self.cell.id
    }

    /// The name the actor was registered under, if any.
    pub fn name(&self) -> Option<String> {
        lock(&self.cell.state).name.as_deref().map(str::to_owned)
    }

    /// Whether the actor has not ended yet.
    pub fn is_alive(&self) -> bool {
        lock(&self.cell.state).exit.is_none()
    }

    /// Why the actor ended; `None` while it runs.
    pub(crate) fn exit_reason(&self) -> Option<ExitReason> {
        lock(&self.cell.state).exit.clone()
    }

    /// Asks the actor to stop gracefully: it finishes the message it is handling, stops its
    /// children (newest first), runs `stopped` and ends with [`ExitReason::Normal`].
    ///
    /// Returns at once; [`wait`](Addr::wait) for the end. Stopping an ended actor does nothing.
    pub fn stop(&self) {
        match self.control() {
            Some(control) => control.stop(),
            None => self.cell.raise(STOP),
        }
    }

    /// Kills the actor at once: the running handler is abandoned at its next suspension point,
    /// `stopped` does not run, children are killed, and it ends with [`ExitReason::Killed`].
    ///
    /// A handler that blocks its thread without awaiting cannot be interrupted.
    pub fn kill(&self) {
        match self.control() {
            Some(control) => control.kill(),
            None => self.cell.raise(KILL),
        }
    }

    /// Waits until the actor has ended, and returns why.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future has no effect on the actor.
    pub async fn wait(&self) -> ExitReason {
        poll_fn(|cx| {
            let mut state = lock(&self.cell.state);
            if let Some(reason) = &state.exit {
                return Poll::Ready(reason.clone());
            }
            let waiters = &mut state.relations().waiters;
            if !waiters.iter().any(|waker| waker.will_wake(cx.waker())) {
                waiters.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    /// Adds `watcher` as a monitor of this actor; returns false if this actor has ended.
    pub(crate) fn add_watcher(&self, monitor: MonitorRef, watcher: &Addr) -> bool {
        let mut state = lock(&self.cell.state);
        if state.exit.is_some() {
            return false;
        }
        state.relations().watchers.push((monitor, watcher.clone()));
        true
    }

    pub(crate) fn remove_watcher(&self, monitor: MonitorRef) {
        let mut state = lock(&self.cell.state);
        if let Some(relations) = &mut state.relations {
            relations
                .watchers
                .retain(|(existing, _)| *existing != monitor);
        }
    }

    /// Records a link to `other` on this side; returns false if this actor has ended.
    pub(crate) fn add_link(&self, other: &Addr) -> bool {
        let mut state = lock(&self.cell.state);
        if state.exit.is_some() {
            return false;
        }
        let links = &mut state.relations().links;
        if links.contains(other) {
            return true;
        }
        links.push(other.clone());
        drop(state);
        // A remote actor's proxy tells the remote node, which links the real actor back.
        if let Some(control) = self.control() {
            control.link(other);
        }
        true
    }

    pub(crate) fn remove_link(&self, other: ActorId) {
        let mut state = lock(&self.cell.state);
        let Some(relations) = &mut state.relations else {
            return;
        };
        let Some(at) = relations.links.iter().position(|link| link.id() == other) else {
            return;
        };
        let removed = relations.links.remove(at);
        drop(state);
        // For a proxy: an unlink, or (when `removed` has ended) the linked actor's exit, which
        // the remote node turns into the exit signal (see `exit_signal`).
        if let Some(control) = self.control() {
            control.unlink(&removed);
        }
    }

    pub(crate) fn set_trap_exit(&self, trap: bool) {
        lock(&self.cell.state).trap_exit = trap;
    }

    /// Registers `child` under this actor; returns false if this actor has ended.
    pub(crate) fn add_child(&self, child: &Addr) -> bool {
        let mut state = lock(&self.cell.state);
        if state.exit.is_some() {
            return false;
        }
        state.relations().children.insert(child.id(), child.clone());
        drop(state);
        lock(&child.cell.state).relations().parent = Some(Arc::downgrade(&self.cell));
        true
    }

    /// The children, oldest first.
    pub(crate) fn children(&self) -> Vec<Addr> {
        let state = lock(&self.cell.state);
        state
            .relations
            .as_ref()
            .map(|relations| relations.children.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Queues a system notice for the actor and wakes it. Notices to an ended actor are dropped.
    pub(crate) fn deliver(&self, signal: Signal) {
        let mut state = lock(&self.cell.state);
        if state.exit.is_some() {
            return;
        }
        state.relations().signals.push_back(signal);
        self.cell.flags.fetch_or(SIGNAL, Ordering::Release);
        drop(state);
        self.cell.waker.wake();
    }

    /// Takes the next queued notice, clearing the SIGNAL flag when the queue runs empty.
    pub(crate) fn next_signal(&self) -> Option<Signal> {
        let mut state = lock(&self.cell.state);
        let relations = state.relations.as_mut()?;
        let signal = relations.signals.pop_front();
        if relations.signals.is_empty() {
            self.cell.flags.fetch_and(!SIGNAL, Ordering::Release);
        }
        signal
    }

    /// Removes a queued `Down` of `monitor`, for `demonitor`.
    pub(crate) fn flush_down(&self, monitor: MonitorRef) {
        let mut state = lock(&self.cell.state);
        if let Some(relations) = &mut state.relations {
            relations
                .signals
                .retain(|signal| !matches!(signal, Signal::Down(down) if down.monitor == monitor));
        }
    }

    /// An exit signal from the linked actor `from`: a notice if this actor traps exits, else
    /// it dies too.
    fn exit_signal(&self, from: ActorId, reason: &ExitReason) {
        if self.control().is_some() {
            // A proxy: the remote node was told by `remove_link`, which `terminate` calls
            // first, and it signals the real actor, which decides for itself.
            return;
        }
        let trap = lock(&self.cell.state).trap_exit;
        if trap {
            self.deliver(Signal::Exit(Exit {
                from,
                reason: reason.clone(),
            }));
        } else {
            let failure = ExitReason::Failed(Failure::linked(from, reason));
            let mut state = lock(&self.cell.state);
            if state.exit.is_none() && state.kill_reason.is_none() {
                state.kill_reason = Some(failure);
            }
            drop(state);
            self.kill();
        }
    }

    /// Why a KILL request was made: a plain kill, or an exit signal.
    pub(crate) fn take_kill_reason(&self) -> ExitReason {
        lock(&self.cell.state)
            .kill_reason
            .take()
            .unwrap_or(ExitReason::Killed)
    }

    /// Records the actor's end and tells everyone who needs to know. Runs once, in the actor's
    /// own task, after its mailbox is closed and its children have ended.
    pub(crate) fn terminate(&self, reason: &ExitReason) {
        let mut state = lock(&self.cell.state);
        if state.exit.is_some() {
            return;
        }
        state.exit = Some(reason.clone());
        let name = state.name.take();
        let relations = state.relations.take();
        drop(state);
        if let Some(runtime) = self.cell.runtime.upgrade() {
            if let Some(name) = &name {
                runtime.registry.remove_if(name, self.id());
            }
            if relations
                .as_ref()
                .is_none_or(|relations| relations.parent.is_none())
            {
                runtime.remove_root(self.id());
            }
        }
        let Some(relations) = relations else {
            return;
        };
        for (monitor, watcher) in relations.watchers {
            let down = Down {
                id: self.id(),
                reason: reason.clone(),
                monitor,
            };
            watcher.deliver(Signal::Down(down));
        }
        for link in relations.links {
            link.remove_link(self.id());
            if reason.is_abnormal() {
                link.exit_signal(self.id(), reason);
            }
        }
        if let Some(parent) = relations.parent.and_then(|parent| parent.upgrade()) {
            let mut parent_state = lock(&parent.state);
            if let Some(parent_relations) = &mut parent_state.relations {
                parent_relations.children.remove(&self.id());
            }
        }
        for waker in relations.waiters {
            waker.wake();
        }
    }
}

impl Cell {
    fn raise(&self, flag: u8) {
        self.flags.fetch_or(flag, Ordering::Release);
        self.waker.wake();
    }
}

impl State {
    fn relations(&mut self) -> &mut Relations {
        self.relations.get_or_insert_with(Box::default)
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Addr").field(&self.id()).finish()
    }
}

impl PartialEq for Addr {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl Eq for Addr {}

impl Hash for Addr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id().hash(state);
    }
}
