//! The hub that joins [`SimTransport`]s: one [`SimNetwork`] of datagrams, the pipes of the
//! simulated streams, and the virtual clock that both follow.
//!
//! What is deterministic and what is not is stated on [`SimHub`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Duration;

use super::stream::{Pipe, SimStream};
use super::transport::SimTransport;
use super::{SimClock, SimFaults, SimInstant, SimNetwork, SimStats};
use crate::transport::TransportError;

/// Datagrams a transport holds before the next ones to it are dropped (a socket's receive
/// buffer).
const INBOX: usize = 1_024;

/// Streams waiting for `accept_stream` before the next `open_stream` to the node fails.
const BACKLOG: usize = 128;

/// First port handed out for a bind to port 0.
const FIRST_EPHEMERAL_PORT: u16 = 40_000;

/// A simulated network that [`SimTransport`]s attach to, driven by a virtual clock.
///
/// Datagrams between transports go through a [`SimNetwork`] and suffer its faults: loss,
/// delay, duplication, reordering, one-way and two-way partitions, and crashes. Streams are
/// reliable and ordered and take [`set_stream_delay`](Self::set_stream_delay) (1 ms by
/// default) of virtual time; across a partition they stall until it heals, and a crash of
/// either end resets them (see [`crash`](Self::crash)). Opening a stream across a partition,
/// to a crashed node or to an address nothing is bound to fails with
/// [`TransportError::Unreachable`] at once. Opening is instantaneous; data is not.
///
/// Nothing moves until the clock does: a test calls [`advance`](Self::advance),
/// [`step`](Self::step) or [`run_until_idle`](Self::run_until_idle), or spawns
/// [`run`](Self::run) to deliver whatever is sent by tasks it does not control.
///
/// Cheap to clone: clones share the network.
///
/// # Determinism
///
/// The hub draws every random choice (loss, duplication, delay, reordering) from the
/// [`SimNetwork`]'s one seeded generator, at the moment a datagram is sent, in the order the
/// sends reach the hub; streams draw nothing (a fixed delay). So:
///
/// - **Deterministic**: given the seed, the faults and the *sequence* of operations on the hub
///   and its transports (sends, writes, partitions, crashes, clock moves), everything that
///   follows is fixed: which datagrams are lost or duplicated, the virtual instant each copy
///   and each stream segment arrives, and the order of arrivals. A test that makes its calls
///   from one task and moves the clock itself ([`SimHub::advance`], [`SimHub::step`],
///   [`SimHub::run_until_idle`]) replays exactly from its seed.
/// - **Not deterministic** once real tasks run on top, as the endpoint and remoting layers do:
///   their tasks run on a multi-threaded executor, so the order in which their sends and
///   writes reach the hub, and therefore which random draw each datagram gets and at which
///   virtual instant it leaves, depends on thread scheduling. Those layers also keep their
///   own *real-time* timers (handshake timeout, heartbeats, idle timeout, reconnection
///   backoff, an `ask`'s timeout), which know nothing of the virtual clock. And the
///   background driver ([`SimHub::run`]) moves virtual time as fast as events come, not when
///   the tasks are idle. Over those layers the seed fixes the fault *model*, not one
///   trace: assert outcomes that hold for every interleaving (an ask fails cleanly, a monitor
///   fires), never a particular order of events across nodes.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// use phalanx_transports::{SimFaults, SimHub, Transport};
///
/// # futures_lite::future::block_on(async {
/// let hub = SimHub::new(7, SimFaults::none().with_duplicate(1.0));
/// let a = hub.bind("10.0.0.1:7000".parse()?)?;
/// let b = hub.bind("10.0.0.2:7000".parse()?)?;
/// a.send_datagram(b.local_addr(), b"ping").await?;
/// hub.run_until_idle(); // both copies arrive
/// let mut buf = [0; 1_401];
/// for _ in 0..2 {
///     let (len, from) = b.recv_datagram(&mut buf).await?;
///     assert_eq!((&buf[..len], from), (&b"ping"[..], a.local_addr()));
/// }
/// assert_eq!(hub.now().elapsed_since_start(), Duration::from_millis(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct SimHub {
    shared: Arc<HubShared>,
}

/// What the hub, its transports and their streams share.
#[derive(Debug)]
pub(super) struct HubShared {
    state: Mutex<State>,
    /// Wakes [`SimHub::run`] when something was sent, written or healed. Bounded to one: a
    /// pending wake-up is enough, whatever happened meanwhile.
    notify_tx: flume::Sender<()>,
    notify_rx: flume::Receiver<()>,
}

#[derive(Debug)]
pub(super) struct State {
    clock: SimClock,
    net: SimNetwork<SocketAddr, Vec<u8>>,
    nodes: BTreeMap<SocketAddr, Slot>,
    /// The one-way pipes of every live stream, by id. Ordered, so that delivery at one
    /// instant goes in a fixed order.
    pub(super) pipes: BTreeMap<u64, Pipe>,
    next_pipe: u64,
    next_port: u16,
    pub(super) stream_delay: Duration,
    /// Datagrams that arrived where nothing was bound, or at a full inbox.
    unclaimed: u64,
}

/// A bound address: where the hub puts what arrives for its transport.
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) closed: Arc<AtomicBool>,
    datagrams: flume::Sender<(Vec<u8>, SocketAddr)>,
    accepts: flume::Sender<(SimStream, SocketAddr)>,
}

impl SimHub {
    /// Steps [`run_until_idle`](Self::run_until_idle) takes at most.
    pub const MAX_IDLE_STEPS: usize = 1_000_000;

    /// A hub whose datagrams suffer `faults`, every random choice following from `seed`.
    pub fn new(seed: u64, faults: SimFaults) -> SimHub {
        let (notify_tx, notify_rx) = flume::bounded(1);
        SimHub {
            shared: Arc::new(HubShared {
                state: Mutex::new(State {
                    clock: SimClock::new(),
                    net: SimNetwork::new(seed, faults),
                    nodes: BTreeMap::new(),
                    pipes: BTreeMap::new(),
                    next_pipe: 0,
                    next_port: FIRST_EPHEMERAL_PORT,
                    stream_delay: Duration::from_millis(1),
                    unclaimed: 0,
                }),
                notify_tx,
                notify_rx,
            }),
        }
    }

    /// Attaches a new transport at `addr`; port 0 picks a free port. Binding the address of
    /// a crashed node restarts it (a new process on the same address).
    ///
    /// # Errors
    ///
    /// [`TransportError::Io`] (`AddrInUse`) if a transport is bound there already, or no
    /// port is left for port 0.
    pub fn bind(&self, addr: SocketAddr) -> Result<SimTransport, TransportError> {
        let mut state = self.shared.lock();
        let mut addr = addr;
        if addr.port() == 0 {
            let free = (state.next_port..=u16::MAX).find(|port| {
                let mut candidate = addr;
                candidate.set_port(*port);
                !state.nodes.contains_key(&candidate)
            });
            let Some(port) = free else {
                return Err(std::io::Error::from(std::io::ErrorKind::AddrInUse).into());
            };
            state.next_port = port.saturating_add(1);
            addr.set_port(port);
        }
        if state.nodes.contains_key(&addr) {
            return Err(std::io::Error::from(std::io::ErrorKind::AddrInUse).into());
        }
        state.net.restart(&addr);
        let (datagrams, datagram_rx) = flume::bounded(INBOX);
        let (accepts, accept_rx) = flume::bounded(BACKLOG);
        let closed = Arc::new(AtomicBool::new(false));
        state.nodes.insert(
            addr,
            Slot {
                closed: Arc::clone(&closed),
                datagrams,
                accepts,
            },
        );
        drop(state);
        Ok(SimTransport::new(
            Arc::clone(&self.shared),
            addr,
            closed,
            datagram_rx,
            accept_rx,
        ))
    }

    /// The current virtual time.
    pub fn now(&self) -> SimInstant {
        self.shared.lock().now()
    }

    /// When the next datagram or stream segment is due, if any is in flight (stalled stream
    /// data does not count until its partition heals).
    pub fn next_due(&self) -> Option<SimInstant> {
        self.shared.lock().next_due()
    }

    /// Moves the clock forward by `by`, delivering everything that falls due on the way, in
    /// order of due time.
    pub fn advance(&self, by: Duration) {
        let target = self.now() + by;
        // Bounded: every step takes at least one event out; only tasks sending concurrently
        // with no delay at all could keep it going.
        while self.next_due().is_some_and(|due| due <= target) {
            self.step();
        }
        self.shared.lock().clock.advance_to(target);
    }

    /// Moves the clock to the next instant something is due and delivers everything due
    /// then; returns that instant, or `None` if nothing is in flight (stalled streams do not
    /// count until their partition heals).
    pub fn step(&self) -> Option<SimInstant> {
        let mut wakers = Vec::new();
        let now = {
            let mut state = self.shared.lock();
            let due = state.next_due()?;
            state.clock.advance_to(due);
            state.deliver_due(&mut wakers);
            state.now()
        };
        wakers.into_iter().for_each(Waker::wake);
        Some(now)
    }

    /// Steps until nothing is in flight, at most [`MAX_IDLE_STEPS`](Self::MAX_IDLE_STEPS)
    /// times; returns the steps taken.
    pub fn run_until_idle(&self) -> usize {
        (0..Self::MAX_IDLE_STEPS)
            .take_while(|_| self.step().is_some())
            .count()
    }

    /// Delivers everything sent from now on as soon as it is sent, moving virtual time to
    /// each due instant in turn; never returns. Spawn it when the traffic comes from tasks
    /// the test does not drive (an endpoint, a remoting layer), and drop its task to stop.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: each step completes before the next await.
    pub async fn run(self) {
        loop {
            if self.step().is_some() {
                // Let the tasks just woken run before the next delivery.
                futures_lite::future::yield_now().await;
                continue;
            }
            // Nothing due: wait until something is sent, written or healed. The hub holds a
            // sender, so this never fails.
            if self.shared.notify_rx.recv_async().await.is_err() {
                return;
            }
        }
    }

    /// The virtual delay of stream data (default 1 ms), for data written from now on.
    pub fn set_stream_delay(&self, delay: Duration) {
        self.shared.lock().stream_delay = delay;
    }

    /// Replaces the faults applied to datagrams sent from now on.
    pub fn set_faults(&self, faults: SimFaults) {
        self.shared.lock().net.set_faults(faults);
    }

    /// Counters of the datagrams handed to the network.
    pub fn stats(&self) -> SimStats {
        self.shared.lock().net.stats()
    }

    /// Datagrams delivered to an address where nothing was bound, or to a transport whose
    /// inbox was full; they were dropped.
    pub fn unclaimed_datagrams(&self) -> u64 {
        self.shared.lock().unclaimed
    }

    /// Drops datagrams from `from` to `to`, and stalls stream data that way, until healed.
    pub fn partition_one_way(&self, from: SocketAddr, to: SocketAddr) {
        self.shared.lock().net.partition_one_way(from, to);
    }

    /// Cuts `a` and `b` apart, both ways, until healed.
    pub fn partition(&self, a: SocketAddr, b: SocketAddr) {
        self.shared.lock().net.partition(a, b);
    }

    /// Cuts every member of `left` from every member of `right`, both ways.
    pub fn partition_groups(&self, left: &[SocketAddr], right: &[SocketAddr]) {
        self.shared.lock().net.partition_groups(left, right);
    }

    /// Heals the partition between `a` and `b`, both ways: stalled stream data flows again.
    pub fn heal(&self, a: SocketAddr, b: SocketAddr) {
        self.shared.lock().net.heal(&a, &b);
        self.shared.notify();
    }

    /// Heals every partition.
    pub fn heal_all(&self) {
        self.shared.lock().net.heal_all();
        self.shared.notify();
    }

    /// Crashes the node at `addr`, as if its process died: its transport is closed (every
    /// call on it fails with [`TransportError::Closed`]), every stream to or from it is reset
    /// (both ends read and write `ConnectionReset`), and datagrams in flight to or from it are
    /// lost. [`bind`](Self::bind) the address again to restart it.
    pub fn crash(&self, addr: SocketAddr) {
        let mut wakers = Vec::new();
        let slot = {
            let mut state = self.shared.lock();
            state.net.crash(addr);
            for pipe in state.pipes.values_mut() {
                if pipe.from == addr || pipe.to == addr {
                    wakers.extend(pipe.reset());
                }
            }
            state.nodes.remove(&addr)
        };
        if let Some(slot) = slot {
            slot.closed.store(true, Ordering::Release);
        }
        // Dropped outside the lock: the slot's channels may hold streams, whose drop locks.
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Whether the node at `addr` is crashed (and not bound again since).
    pub fn is_crashed(&self, addr: SocketAddr) -> bool {
        self.shared.lock().net.is_crashed(&addr)
    }
}

impl HubShared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // Critical sections only move values between queues; a panic cannot leave one half
        // done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the driver: something new may be due.
    pub(super) fn notify(&self) {
        let _ = self.notify_tx.try_send(());
    }

    /// Unbinds `addr` if `closed` is its transport's flag; existing streams live on.
    pub(super) fn unbind(&self, addr: SocketAddr, closed: &AtomicBool) {
        closed.store(true, Ordering::Release);
        let slot = {
            let mut state = self.lock();
            match state.nodes.get(&addr) {
                Some(slot) if std::ptr::eq(Arc::as_ptr(&slot.closed), closed) => {
                    state.nodes.remove(&addr)
                }
                _ => None,
            }
        };
        drop(slot);
    }

    /// Hands a datagram from `from` to the network.
    pub(super) fn send_datagram(&self, from: SocketAddr, to: SocketAddr, datagram: &[u8]) {
        {
            let mut state = self.lock();
            let now = state.now();
            state.net.send(from, to, datagram.to_vec(), now);
        }
        self.notify();
    }

    /// Opens a stream from `from` to `to`: this end, or why not.
    pub(super) fn open_stream(
        self: &Arc<Self>,
        from: SocketAddr,
        to: SocketAddr,
    ) -> Result<SimStream, TransportError> {
        let mut state = self.lock();
        let reachable = !state.net.is_crashed(&to)
            && !state.net.is_blocked(&from, &to)
            && !state.net.is_blocked(&to, &from)
            && state
                .nodes
                .get(&to)
                .is_some_and(|slot| !slot.accepts.is_full());
        if !reachable {
            return Err(TransportError::Unreachable(to));
        }
        let outbound = state.next_pipe;
        let inbound = outbound + 1;
        state.next_pipe += 2;
        state.pipes.insert(outbound, Pipe::new(from, to));
        state.pipes.insert(inbound, Pipe::new(to, from));
        let remote = SimStream::new(Arc::clone(self), outbound, inbound, to, from);
        let queued = match state.nodes.get(&to) {
            Some(slot) => slot
                .accepts
                .try_send((remote, from))
                .map_err(|e| e.into_inner()),
            None => Err((remote, from)),
        };
        drop(state);
        let local = SimStream::new(Arc::clone(self), inbound, outbound, from, to);
        match queued {
            Ok(()) => Ok(local),
            // Checked above under the same lock, so not expected; both ends are dropped here,
            // outside the lock, which removes their pipes.
            Err(_) => Err(TransportError::Unreachable(to)),
        }
    }
}

impl State {
    pub(super) fn now(&self) -> SimInstant {
        self.clock.now()
    }

    /// The earliest instant something deliverable is due.
    fn next_due(&self) -> Option<SimInstant> {
        let net = &self.net;
        let streams = self
            .pipes
            .values()
            .filter(|pipe| !net.is_blocked(&pipe.from, &pipe.to))
            .filter_map(Pipe::next_due)
            .min();
        match (net.next_due(), streams) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Delivers every datagram and stream segment due now; collects the wakers to call once
    /// the lock is released.
    fn deliver_due(&mut self, wakers: &mut Vec<Waker>) {
        let now = self.now();
        while let Some((from, to, datagram)) = self.net.pop_due(now) {
            let delivered = match self.nodes.get(&to) {
                Some(slot) => slot.datagrams.try_send((datagram, from)).is_ok(),
                None => false,
            };
            if !delivered {
                self.unclaimed += 1;
            }
        }
        let net = &self.net;
        for pipe in self.pipes.values_mut() {
            if !net.is_blocked(&pipe.from, &pipe.to) {
                wakers.extend(pipe.deliver(now));
            }
        }
    }
}
