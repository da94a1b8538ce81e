//! [`Context`]: what an actor can do to itself and the actors around it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::cell::Signal;
use crate::{Actor, ActorId, ActorRef, Addr, Down, ExitReason, MonitorRef, Spawn};

/// The context handed to every handler and hook of an actor.
pub struct Context<A: Actor> {
    myself: ActorRef<A::Message>,
}

impl<A: Actor> Context<A> {
    pub(crate) fn new(myself: ActorRef<A::Message>) -> Self {
        Self { myself }
    }

    /// This actor's id.
    pub fn id(&self) -> ActorId {
        self.myself.id()
    }

    /// This actor's untyped reference.
    pub fn addr(&self) -> &Addr {
        self.myself.addr()
    }

    /// A typed reference to this actor, to hand to others.
    pub fn myself(&self) -> ActorRef<A::Message> {
        self.myself.clone()
    }

    /// How many messages wait in this actor's mailbox (what `myself().mailbox_len()` says,
    /// without cloning a reference: for actors that decide per message whether to flush).
    pub fn mailbox_len(&self) -> usize {
        self.myself.mailbox_len()
    }

    /// Stops this actor once the current handler returns; see [`Addr::stop`].
    pub fn stop(&self) {
        self.addr().stop();
    }

    /// Spawns a child of this actor, on this actor's worker.
    ///
    /// Children end before their parent: when the parent stops, it stops its children newest
    /// first and waits for each; when it fails or is killed, it kills them. For more options,
    /// use [`Spawn::child_of`].
    ///
    /// If this actor is already ending, the child is stopped at once.
    pub fn spawn_child<C: Actor>(&self, child: C) -> ActorRef<C::Message> {
        match Spawn::new(child).child_of(self.addr()).start() {
            Ok(child) => child,
            // Unnamed spawns fail only when the runtime shuts down; hand back a reference to an
            // actor that has already ended, so that every send reports it.
            Err(_) => crate::spawn::ended(),
        }
    }

    /// Monitors `target`: when it ends, this actor's [`Actor::down`] receives a [`Down`]. If it
    /// has already ended, the `Down` (with [`ExitReason::NoProc`]) comes at once.
    pub fn monitor(&self, target: &Addr) -> MonitorRef {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let monitor = MonitorRef(NEXT.fetch_add(1, Ordering::Relaxed));
        if !target.add_watcher(monitor, self.addr()) {
            let down = Down {
                id: target.id(),
                reason: ExitReason::NoProc,
                monitor,
            };
            self.addr().deliver(Signal::Down(down));
        }
        monitor
    }

    /// Removes a monitor of `target`, and any `Down` of it not yet handled.
    pub fn demonitor(&self, target: &Addr, monitor: MonitorRef) {
        target.remove_watcher(monitor);
        self.addr().flush_down(monitor);
    }

    /// Links this actor with `other`, both ways: when either ends abnormally, the other fails
    /// too, unless it traps exits ([`trap_exit`](Context::trap_exit)), in which case its
    /// [`Actor::linked_exit`] is told. Returns false, and links nothing, if `other` has ended.
    pub fn link(&self, other: &Addr) -> bool {
        if other == self.addr() {
            return false;
        }
        if !other.add_link(self.addr()) {
            return false;
        }
        if !self.addr().add_link(other) {
            other.remove_link(self.id());
            return false;
        }
        true
    }

    /// Removes a link with `other`, both ways.
    pub fn unlink(&self, other: &Addr) {
        other.remove_link(self.id());
        self.addr().remove_link(other.id());
    }

    /// Whether abnormal exits of linked actors arrive as [`Actor::linked_exit`] calls (true)
    /// or make this actor fail (false, the default).
    pub fn trap_exit(&self, trap: bool) {
        self.addr().set_trap_exit(trap);
    }
}

impl<A: Actor> fmt::Debug for Context<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context").field("id", &self.id()).finish()
    }
}
