//! Request/reply: the [`Reply`] handle an actor answers through, and the ask timeouts.
//!
//! An ask's timeout is not an async-io timer: registering one costs a write to the reactor's
//! wake-up pipe, a system call per request. Instead every ask in flight sits in a slab (one per
//! worker, so askers on different workers do not contend) with its deadline, and one sweeper
//! task per runtime sleeps until the earliest deadline it knows of. An ask that is answered
//! removes its entry; the sweeper is woken early only when a new deadline comes before the one
//! it sleeps for, which in steady state (equal timeouts) never happens.

use std::fmt;
use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use slab::Slab;

use crate::executor::{Inner, current_worker, lock};

/// The handle an actor answers an ask through.
///
/// Put it in the request message; the actor calls [`Reply::send`]. If it is dropped unanswered
/// (also when the actor ends with it in its mailbox), the asker gets
/// [`AskError::NoReply`](crate::AskError::NoReply) at once instead of waiting for its timeout.
pub struct Reply<R> {
    slot: Arc<Slot<R>>,
}

struct Slot<R> {
    state: Mutex<SlotState<R>>,
}

enum SlotState<R> {
    Waiting(Option<Waker>),
    Answered(R),
    Dropped,
    TimedOut,
    Taken,
}

/// How an ask ended, as seen by the asker.
pub(crate) enum Outcome<R> {
    Answered(R),
    NoReply,
    TimedOut,
}

/// Expires an ask whose deadline has passed.
trait Expire: Send + Sync {
    fn expire(&self);
}

/// An ask in flight: its deadline, and the slot to expire then.
type Pending = (Instant, Arc<dyn Expire>);

/// The asks in flight and the sweeper that times them out.
pub(crate) struct AskTimers {
    /// One slab per worker plus one for other threads.
    slabs: Box<[Mutex<Slab<Pending>>]>,
    origin: Instant,
    /// Nanoseconds since `origin` at which the sweeper will next wake; `u64::MAX` when idle.
    next_wake: AtomicU64,
    wake_tx: flume::Sender<()>,
    wake_rx: flume::Receiver<()>,
}

impl<R> Reply<R> {
    /// Answers the ask.
    ///
    /// # Errors
    ///
    /// Gives the value back if the asker is no longer waiting (it timed out or went away).
    pub fn send(self, value: R) -> Result<(), R> {
        let mut state = lock(&self.slot.state);
        match &mut *state {
            SlotState::Waiting(waker) => {
                let waker = waker.take();
                *state = SlotState::Answered(value);
                drop(state);
                if let Some(waker) = waker {
                    waker.wake();
                }
                Ok(())
            }
            _ => Err(value),
        }
    }

    /// Whether the asker has stopped waiting (timed out or went away).
    pub fn is_closed(&self) -> bool {
        !matches!(*lock(&self.slot.state), SlotState::Waiting(_))
    }
}

impl<R> Drop for Reply<R> {
    fn drop(&mut self) {
        let mut state = lock(&self.slot.state);
        if let SlotState::Waiting(waker) = &mut *state {
            let waker = waker.take();
            *state = SlotState::Dropped;
            drop(state);
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

impl<R> fmt::Debug for Reply<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl<R: Send> Expire for Slot<R> {
    fn expire(&self) {
        let mut state = lock(&self.state);
        if let SlotState::Waiting(waker) = &mut *state {
            let waker = waker.take();
            *state = SlotState::TimedOut;
            drop(state);
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// Creates a reply handle and the future of its outcome, which ends at `deadline` at the
/// latest.
pub(crate) fn reply_pair<R: Send + 'static>(
    runtime: &Inner,
) -> (Reply<R>, impl FnOnce(Instant) -> AskWait<R> + use<R>) {
    let slot = Arc::new(Slot {
        state: Mutex::new(SlotState::Waiting(None)),
    });
    let reply = Reply { slot: slot.clone() };
    let timers = runtime.asks.clone();
    let shard = current_worker(runtime).unwrap_or(timers.slabs.len() - 1);
    let wait = move |deadline| AskWait {
        slot,
        timers,
        shard,
        deadline,
    };
    (reply, wait)
}

/// Waits for an answer until a deadline.
pub(crate) struct AskWait<R> {
    slot: Arc<Slot<R>>,
    timers: Arc<AskTimers>,
    shard: usize,
    deadline: Instant,
}

impl<R: Send + 'static> AskWait<R> {
    pub(crate) async fn outcome(self) -> Outcome<R> {
        let Self {
            slot,
            timers,
            shard,
            deadline,
        } = self;
        let key = timers.insert(shard, deadline, slot.clone());
        let _entry = Entry {
            timers: &timers,
            shard,
            key,
        };
        poll_fn(|cx| {
            let mut state = lock(&slot.state);
            match std::mem::replace(&mut *state, SlotState::Taken) {
                SlotState::Waiting(_) => {
                    *state = SlotState::Waiting(Some(cx.waker().clone()));
                    Poll::Pending
                }
                SlotState::Answered(value) => Poll::Ready(Outcome::Answered(value)),
                SlotState::Dropped | SlotState::Taken => Poll::Ready(Outcome::NoReply),
                SlotState::TimedOut => Poll::Ready(Outcome::TimedOut),
            }
        })
        .await
    }
}

/// Removes an ask's entry from its slab when the ask ends, also when it is cancelled.
struct Entry<'a> {
    timers: &'a AskTimers,
    shard: usize,
    key: usize,
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        lock(&self.timers.slabs[self.shard]).try_remove(self.key);
    }
}

impl AskTimers {
    pub(crate) fn new(shards: usize) -> Self {
        let (wake_tx, wake_rx) = flume::bounded(1);
        Self {
            slabs: (0..shards).map(|_| Mutex::new(Slab::new())).collect(),
            origin: Instant::now(),
            next_wake: AtomicU64::new(u64::MAX),
            wake_tx,
            wake_rx,
        }
    }

    fn insert(&self, shard: usize, deadline: Instant, slot: Arc<dyn Expire>) -> usize {
        let key = lock(&self.slabs[shard]).insert((deadline, slot));
        if self.nanos(deadline) < self.next_wake.load(Ordering::SeqCst) {
            // Full means a wake-up is already pending, which is all we need.
            let _ = self.wake_tx.try_send(());
        }
        key
    }

    fn nanos(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX - 1)
    }

    /// The sweeper: expires due asks and sleeps until the next deadline or an earlier insert.
    pub(crate) async fn sweep(self: Arc<Self>) {
        loop {
            // Drain a stale wake-up, then ask every insert to wake us until the new plan is
            // published: an ask inserted during the scan is then never slept past.
            let _ = self.wake_rx.try_recv();
            self.next_wake.store(u64::MAX, Ordering::SeqCst);
            let now = Instant::now();
            let mut earliest: Option<Instant> = None;
            for slab in &self.slabs {
                let mut slab = lock(slab);
                slab.retain(|_, (deadline, slot)| {
                    if *deadline <= now {
                        slot.expire();
                        false
                    } else {
                        earliest = Some(earliest.map_or(*deadline, |e| e.min(*deadline)));
                        true
                    }
                });
            }
            match earliest {
                Some(at) => {
                    self.next_wake.store(self.nanos(at), Ordering::SeqCst);
                    let woken = async {
                        let _ = self.wake_rx.recv_async().await;
                    };
                    futures_lite::future::or(crate::sleep_until(at), woken).await;
                }
                None => {
                    if self.wake_rx.recv_async().await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// How long an ask waits by default when the caller has no better figure.
pub const DEFAULT_ASK_TIMEOUT: Duration = Duration::from_secs(5);
