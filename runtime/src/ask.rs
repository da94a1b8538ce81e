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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::Error as _;
use serde::{Deserialize, Serialize};
use slab::Slab;

use crate::executor::{Inner as Runtime, current_worker, lock};
use crate::remote::{PendingReply, ReplySink};

/// The handle an actor answers an ask through.
///
/// Put it in the request message; the actor calls [`Reply::send`]. If it is dropped unanswered
/// (also when the actor ends with it in its mailbox), the asker gets
/// [`AskError::NoReply`](crate::AskError::NoReply) at once instead of waiting for its timeout.
///
/// A `Reply` crosses nodes inside a remote message: it serializes to an id that the remoting
/// layer maps back to the waiting asker (see [`remote`](crate::remote)).
pub struct Reply<R> {
    inner: Inner<R>,
}

enum Inner<R> {
    /// The asker is on this node.
    Local {
        slot: Arc<Slot<R>>,
        /// Set when the reply was serialized into a remote message: the answer will come
        /// through the remoting layer, so dropping this handle must not end the ask.
        exported: AtomicBool,
    },
    /// The asker is on another node: the answer is encoded and handed to the remoting layer.
    Remote {
        sink: Option<Box<dyn ReplySink>>,
        encode: fn(&R) -> Result<Vec<u8>, postcard::Error>,
    },
}

pub(crate) struct Slot<R> {
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
    /// Gives the value back if the asker is no longer waiting (it timed out or went away), or,
    /// for an asker on another node, if the value could not be encoded.
    pub fn send(mut self, value: R) -> Result<(), R> {
        match &mut self.inner {
            Inner::Local { slot, exported } => {
                if exported.load(Ordering::Relaxed) {
                    return Err(value);
                }
                slot.fill(value, SlotState::Answered)
            }
            Inner::Remote { sink, encode } => {
                let Some(sink) = sink.take() else {
                    return Err(value);
                };
                match encode(&value) {
                    Ok(bytes) => {
                        sink.answer(bytes);
                        Ok(())
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot encode an answer for a remote asker");
                        sink.unanswered();
                        Err(value)
                    }
                }
            }
        }
    }

    /// Whether the asker has stopped waiting (timed out or went away). Always false for an
    /// asker on another node, which this node cannot see.
    pub fn is_closed(&self) -> bool {
        match &self.inner {
            Inner::Local { slot, exported } => {
                exported.load(Ordering::Relaxed)
                    || !matches!(*lock(&slot.state), SlotState::Waiting(_))
            }
            Inner::Remote { sink, .. } => sink.is_none(),
        }
    }

    /// A reply handle that answers an asker on another node through `sink`.
    fn remote(sink: Box<dyn ReplySink>) -> Self
    where
        R: Serialize,
    {
        Self {
            inner: Inner::Remote {
                sink: Some(sink),
                encode: |value| postcard::to_allocvec(value),
            },
        }
    }
}

impl<R> Drop for Reply<R> {
    fn drop(&mut self) {
        match &mut self.inner {
            Inner::Local { slot, exported } => {
                if !exported.load(Ordering::Relaxed) {
                    let _ = slot.fill((), |()| SlotState::Dropped);
                }
            }
            Inner::Remote { sink, .. } => {
                if let Some(sink) = sink.take() {
                    sink.unanswered();
                }
            }
        }
    }
}

impl<R> fmt::Debug for Reply<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let remote = matches!(self.inner, Inner::Remote { .. });
        f.debug_struct("Reply")
            .field("remote", &remote)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl<R> Serialize for Reply<R>
where
    R: DeserializeOwned + Send + 'static,
{
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.inner {
            Inner::Local { slot, exported } => {
                let pending = Box::new(AwaitedAnswer { slot: slot.clone() });
                let id = crate::remote::export(pending).ok_or_else(|| {
                    S::Error::custom("a Reply is serialized only by the remoting layer")
                })?;
                exported.store(true, Ordering::Relaxed);
                serializer.serialize_u64(id)
            }
            Inner::Remote { .. } => Err(S::Error::custom(
                "a Reply from another node cannot be forwarded",
            )),
        }
    }
}

impl<'de, R> Deserialize<'de> for Reply<R>
where
    R: Serialize + Send + 'static,
{
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = u64::deserialize(deserializer)?;
        let sink = crate::remote::import(id).ok_or_else(|| {
            D::Error::custom("a Reply is deserialized only by the remoting layer")
        })?;
        Ok(Self::remote(sink))
    }
}

/// The local end of an ask whose request went to another node.
struct AwaitedAnswer<R> {
    slot: Arc<Slot<R>>,
}

impl<R: DeserializeOwned + Send + 'static> PendingReply for AwaitedAnswer<R> {
    fn complete(self: Box<Self>, bytes: &[u8]) -> Result<(), postcard::Error> {
        match postcard::from_bytes::<R>(bytes) {
            Ok(value) => {
                let _ = self.slot.fill(value, SlotState::Answered);
                Ok(())
            }
            Err(error) => {
                let _ = self.slot.fill((), |()| SlotState::Dropped);
                Err(error)
            }
        }
    }

    fn fail(self: Box<Self>) {
        let _ = self.slot.fill((), |()| SlotState::Dropped);
    }
}

impl<R> Slot<R> {
    /// Moves a waiting slot to the state `value` makes and wakes the asker; hands `value` back
    /// if the slot was no longer waiting.
    fn fill<T>(&self, value: T, state: impl FnOnce(T) -> SlotState<R>) -> Result<(), T> {
        let mut current = lock(&self.state);
        match &mut *current {
            SlotState::Waiting(waker) => {
                let waker = waker.take();
                *current = state(value);
                drop(current);
                if let Some(waker) = waker {
                    waker.wake();
                }
                Ok(())
            }
            _ => Err(value),
        }
    }
}

impl<R: Send> Expire for Slot<R> {
    fn expire(&self) {
        let _ = self.fill((), |()| SlotState::TimedOut);
    }
}

/// Creates a reply handle and the future of its outcome, which ends at `deadline` at the
/// latest.
pub(crate) fn reply_pair<R: Send + 'static>(
    runtime: &Runtime,
) -> (Reply<R>, impl FnOnce(Instant) -> AskWait<R> + use<R>) {
    let slot = Arc::new(Slot {
        state: Mutex::new(SlotState::Waiting(None)),
    });
    let reply = Reply {
        inner: Inner::Local {
            slot: slot.clone(),
            exported: AtomicBool::new(false),
        },
    };
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
