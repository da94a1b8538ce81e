//! The sans-IO core of a supervisor: which children to stop and restart after an exit.

mod children;

use std::time::Duration;

use crate::{
    Backoff, Decision, ExitKind, Intensity, IntensityWindow, RestartId, RestartPlan, RestartPolicy,
    Strategy,
};
use children::Children;

/// A child's handle inside a [`Restarter`], valid until the child is removed.
///
/// Keys are never reused for a different child: a key to a removed child matches nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChildKey {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

/// The restart decisions of one supervisor, as a deterministic state machine.
///
/// It knows the children in start order, each with its [`RestartPolicy`] and [`Backoff`], the
/// [`Strategy`] and the [`Intensity`] limit, and turns "child exited with this reason at this
/// time" into a [`Decision`]. It performs no I/O, reads no clock (`now` is a [`Duration`] since
/// an origin of the caller's choosing, non-decreasing) and draws no random numbers (jitter uses
/// the `random` argument), so it is tested with property tests against a reference model. The
/// [`Supervisor`](crate::Supervisor) actor drives it.
///
/// Each child carries a payload `T` (the supervisor keeps its child spec and actor handle
/// there), so one O(1) lookup by [`ChildKey`] finds everything.
///
/// # Semantics
///
/// * A child that is not to be restarted (see [`RestartPolicy::restarts_after`]) is removed and
///   nothing else happens ([`Decision::Remove`]), whatever the strategy.
/// * Otherwise the restart is recorded in the [`IntensityWindow`]; if the limit is exceeded every
///   child is removed and the result is [`Decision::Escalate`] with all running children to stop.
/// * Otherwise the strategy picks the affected children: only the exited one (one-for-one),
///   all (one-for-all), or the exited one and all started after it (rest-for-one). Running
///   affected siblings are to be stopped in reverse start order; temporary ones among them are
///   removed; the rest, with the exited child, are to be started in start order after the exited
///   child's backoff delay. They are *pending* until [`Restarter::start_due`] marks them
///   running, and a pending child is not stopped again by a later decision (it has nothing
///   running), but it is taken over by it.
/// * Backoff attempts: the first restart of a child is attempt 0; a restart within the intensity
///   period after the same child's previous restart is the previous attempt + 1; a restart
///   later than that starts again at 0.
/// * A group restart counts as one restart against the intensity, as in OTP.
///
/// Unlike OTP's static supervisors, a child that ends without being restarted is removed rather
/// than kept as a stopped spec: a later one-for-all restart does not bring it back.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use phalanx_supervisors::{
///     Backoff, Decision, ExitKind, Intensity, RestartPolicy, Restarter, Strategy,
/// };
///
/// let mut core = Restarter::new(Strategy::RestForOne, Intensity::new(1, Duration::from_secs(5)));
/// let a = core.add_child(RestartPolicy::Permanent, Backoff::None, ());
/// let b = core.add_child(RestartPolicy::Permanent, Backoff::None, ());
/// let c = core.add_child(RestartPolicy::Temporary, Backoff::None, ());
///
/// let Decision::Restart(plan) = core.handle_exit(a, ExitKind::Failure, Duration::ZERO, 0) else {
///     panic!("a permanent child is restarted");
/// };
/// assert_eq!(plan.stop, [c, b]); // reverse start order
/// assert_eq!(plan.start, [a, b]); // c was temporary: removed
/// assert!(core.start_due(a, plan.id) && core.start_due(b, plan.id));
///
/// // A second restart within 5 s exceeds the intensity of 1.
/// let decision = core.handle_exit(b, ExitKind::Failure, Duration::from_secs(1), 0);
/// assert_eq!(decision, Decision::Escalate { stop: vec![a] });
/// ```
#[derive(Debug, Clone)]
pub struct Restarter<T = ()> {
    strategy: Strategy,
    window: IntensityWindow,
    children: Children<Child<T>>,
    next_restart: u64,
    /// Payloads of the children the latest [`Restarter::handle_exit`] removed, so the caller
    /// can still stop them; see [`Restarter::drain_removed`].
    removed: Vec<(ChildKey, T)>,
}

#[derive(Debug, Clone)]
struct Child<T> {
    policy: RestartPolicy,
    backoff: Backoff,
    /// `None` while running; `Some(id)` while waiting for the start that decision `id` planned.
    pending: Option<RestartId>,
    /// Backoff attempt of the latest restart and when it was decided.
    attempt: u32,
    last_restart: Option<Duration>,
    value: T,
}

impl<T> Restarter<T> {
    /// A supervisor core with no children.
    pub fn new(strategy: Strategy, intensity: Intensity) -> Self {
        Self {
            strategy,
            window: IntensityWindow::new(intensity),
            children: Children::new(),
            next_restart: 0,
            removed: Vec::new(),
        }
    }

    /// The strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The intensity limit.
    pub fn intensity(&self) -> Intensity {
        self.window.intensity()
    }

    /// Number of children, running or pending a restart.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// `true` if there are no children.
    pub fn is_empty(&self) -> bool {
        self.children.len() == 0
    }

    /// Adds a running child after all others (it is last in start order) and returns its key.
    pub fn add_child(&mut self, policy: RestartPolicy, backoff: Backoff, value: T) -> ChildKey {
        self.children.push_back(Child {
            policy,
            backoff,
            pending: None,
            attempt: 0,
            last_restart: None,
            value,
        })
    }

    /// Removes a child (running or pending), e.g. because it is stopped on request. Returns its
    /// payload, or `None` if the key matches no child. Its siblings are not affected.
    pub fn remove_child(&mut self, key: ChildKey) -> Option<T> {
        self.children.remove(key).map(|c| c.value)
    }

    /// `true` if `key` is a current child.
    pub fn contains(&self, key: ChildKey) -> bool {
        self.children.get(key).is_some()
    }

    /// `true` if `key` is a current child that is running (not pending a restart).
    pub fn is_running(&self, key: ChildKey) -> bool {
        self.children.get(key).is_some_and(|c| c.pending.is_none())
    }

    /// The payload of a child.
    pub fn child(&self, key: ChildKey) -> Option<&T> {
        self.children.get(key).map(|c| &c.value)
    }

    /// The payload of a child, mutably.
    pub fn child_mut(&mut self, key: ChildKey) -> Option<&mut T> {
        self.children.get_mut(key).map(|c| &mut c.value)
    }

    /// All children in start order.
    pub fn keys(&self) -> impl Iterator<Item = ChildKey> + '_ {
        self.children.iter_from(None).map(|(k, _)| k)
    }

    /// The running children in reverse start order: the order to stop them in.
    pub fn running_rev(&self) -> impl Iterator<Item = ChildKey> + '_ {
        self.children
            .iter_rev()
            .filter(|(_, c)| c.pending.is_none())
            .map(|(k, _)| k)
    }

    /// Marks a child of a [`RestartPlan`] as running when its start is due. Returns `true` if
    /// the caller should start it now; `false` if it was removed or a newer decision took it
    /// over (that decision will start it).
    pub fn start_due(&mut self, key: ChildKey, id: RestartId) -> bool {
        match self.children.get_mut(key) {
            Some(child) if child.pending == Some(id) => {
                child.pending = None;
                true
            }
            _ => false,
        }
    }

    /// Takes the payloads of the children that the latest [`Restarter::handle_exit`] removed
    /// (the exited child on [`Decision::Remove`], temporary siblings of a restart, every child
    /// on [`Decision::Escalate`]), in the order they were removed.
    ///
    /// The buffer is emptied at the start of every `handle_exit`, so it never grows unbounded
    /// even if the caller does not drain it.
    pub fn drain_removed(&mut self) -> std::vec::Drain<'_, (ChildKey, T)> {
        self.removed.drain(..)
    }

    /// Decides what to do after the running child `key` exited with `exit` at `now`.
    ///
    /// `random` is a uniformly random number used only for backoff jitter. Events for unknown
    /// or pending children return [`Decision::Ignore`] and change nothing.
    pub fn handle_exit(
        &mut self,
        key: ChildKey,
        exit: ExitKind,
        now: Duration,
        random: u64,
    ) -> Decision {
        self.removed.clear();
        let Some(child) = self.children.get(key) else {
            return Decision::Ignore;
        };
        if child.pending.is_some() {
            return Decision::Ignore;
        }
        if !child.policy.restarts_after(exit) {
            self.remove_into_buffer(key);
            return Decision::Remove;
        }
        if self.window.record(now) {
            let stop = self.running_rev().filter(|&k| k != key).collect();
            let all: Vec<ChildKey> = self.keys().collect();
            for k in all {
                self.remove_into_buffer(k);
            }
            return Decision::Escalate { stop };
        }

        let id = RestartId(self.next_restart);
        self.next_restart += 1;
        let period = self.window.intensity().period();
        let delay = match self.children.get_mut(key) {
            Some(child) => {
                child.attempt = match child.last_restart {
                    Some(t) if now.saturating_sub(t) <= period => child.attempt.saturating_add(1),
                    _ => 0,
                };
                child.last_restart = Some(now);
                child.backoff.delay(child.attempt, random)
            }
            None => Duration::ZERO,
        };

        let first = match self.strategy {
            Strategy::OneForOne => {
                self.set_pending(key, id);
                return Decision::Restart(RestartPlan {
                    id,
                    stop: Vec::new(),
                    start: vec![key],
                    delay,
                });
            }
            Strategy::OneForAll => None,
            Strategy::RestForOne => Some(key),
        };
        // Affected children in start order: O(affected), the strategy needs each of them.
        let affected: Vec<(ChildKey, bool, RestartPolicy)> = self
            .children
            .iter_from(first)
            .map(|(k, c)| (k, c.pending.is_none(), c.policy))
            .collect();
        let mut stop = Vec::new();
        let mut start = Vec::with_capacity(affected.len());
        for &(k, running, policy) in &affected {
            if k != key && running {
                stop.push(k);
            }
            if k != key && policy == RestartPolicy::Temporary {
                self.remove_into_buffer(k);
            } else {
                self.set_pending(k, id);
                start.push(k);
            }
        }
        stop.reverse();
        Decision::Restart(RestartPlan {
            id,
            stop,
            start,
            delay,
        })
    }

    fn remove_into_buffer(&mut self, key: ChildKey) {
        if let Some(child) = self.children.remove(key) {
            self.removed.push((key, child.value));
        }
    }

    fn set_pending(&mut self, key: ChildKey, id: RestartId) {
        if let Some(child) = self.children.get_mut(key) {
            child.pending = Some(id);
        }
    }
}
