//! A deterministic simulation of a gossip cluster: N [`Membership`] state machines on one
//! thread, over a [`SimNetwork`] with virtual time.
//!
//! Everything random follows from one seed, so a run replays exactly. [`for_each_seed`] runs
//! a test body over a seed budget (`SIM_SEEDS`, default per test), prints the seed of a
//! failure, and `SIM_SEED=n` replays only seed `n`.
//!
//! Node `i` has address `i` and id `NodeId(i)`. Push-pull messages, which a real driver
//! carries over a stream, travel as simulated datagrams too (so they can be lost or cut by
//! a partition, as a failing connection would be).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use phalanx_transports::{SimClock, SimFaults, SimInstant, SimNetwork, SimStats};

use crate::gossip::{Action, Config, Membership, Message, NodeId, Notification, Timer};

/// Runs `body` once per seed: only `SIM_SEED` if set, else `SIM_SEEDS` seeds (default
/// `default_seeds`) starting at 0. A failing seed is printed with the line that replays it.
///
/// # Panics
///
/// Re-raises the panic of a failing run, after printing its seed.
pub fn for_each_seed(default_seeds: u64, mut body: impl FnMut(u64)) {
    let seeds: Vec<u64> = match env_u64("SIM_SEED") {
        Some(seed) => vec![seed],
        None => (0..env_u64("SIM_SEEDS").unwrap_or(default_seeds)).collect(),
    };
    for seed in seeds {
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| body(seed)));
        if let Err(panic) = outcome {
            eprintln!("simulation failed with seed {seed}; replay with SIM_SEED={seed}");
            panic::resume_unwind(panic);
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

/// One simulated node.
#[derive(Debug)]
pub struct SimNode {
    /// The state machine; `None` while the node is crashed.
    pub membership: Option<Membership<u32>>,
    /// Every notification the node emitted, with the virtual time, across restarts.
    pub notifications: Vec<(SimInstant, Notification<u32>)>,
    /// Bumped on each restart so that timers of an earlier life are dropped.
    life: u32,
    /// Datagrams this node sent (push-pull excluded).
    pub datagrams_sent: u64,
}

/// A packet on the simulated wire: an encoded message, tagged with how a real driver would
/// carry it.
#[derive(Debug, Clone)]
pub enum Packet {
    /// One datagram.
    Datagram(Vec<u8>),
    /// A push-pull message, which a real driver sends over a stream.
    Stream(Vec<u8>),
}

/// A simulated cluster.
#[derive(Debug)]
pub struct Cluster {
    seed: u64,
    config: Config,
    clock: SimClock,
    /// Anchor that turns virtual time into the `Instant`s the state machines take; only
    /// differences between them matter, so runs stay reproducible.
    base: Instant,
    net: SimNetwork<u32, Packet>,
    timers: BinaryHeap<Reverse<PendingTimer>>,
    next_timer: u64,
    /// Nodes: index = address = node id.
    pub nodes: Vec<SimNode>,
    /// Messages that failed to decode (must stay zero: nothing in the simulation is hostile).
    pub decode_errors: u64,
    /// Bytes of datagrams sent (push-pull excluded).
    pub datagram_bytes: u64,
    /// Push-pull messages sent.
    pub push_pulls: u64,
}

/// A timer waiting in the harness. Ordered by `(due, order)` only: timers due at the same
/// instant fire in the order they were scheduled.
#[derive(Debug, Clone, Copy)]
struct PendingTimer {
    due: SimInstant,
    order: u64,
    node: u32,
    /// The node's life when scheduled; a timer from before a restart is dropped.
    life: u32,
    timer: Timer,
}

impl PartialEq for PendingTimer {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}

impl Eq for PendingTimer {}

impl PartialOrd for PendingTimer {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PendingTimer {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.order).cmp(&(other.due, other.order))
    }
}

impl Cluster {
    /// `n` nodes, not started, over a network with `faults`, all randomness from `seed`.
    pub fn new(n: u32, seed: u64, config: Config, faults: SimFaults) -> Self {
        let mut cluster = Self {
            seed,
            config,
            clock: SimClock::new(),
            base: Instant::now(),
            net: SimNetwork::new(seed, faults),
            timers: BinaryHeap::new(),
            next_timer: 0,
            nodes: Vec::new(),
            decode_errors: 0,
            datagram_bytes: 0,
            push_pulls: 0,
        };
        for i in 0..n {
            let membership = cluster.fresh(i, 0);
            cluster.nodes.push(SimNode {
                membership: Some(membership),
                notifications: Vec::new(),
                life: 0,
                datagrams_sent: 0,
            });
        }
        cluster
    }

    /// The seed of this run.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The current virtual time.
    pub fn now(&self) -> SimInstant {
        self.clock.now()
    }

    /// The network, to change faults or partitions.
    pub fn net(&mut self) -> &mut SimNetwork<u32, Packet> {
        &mut self.net
    }

    /// Network counters.
    pub fn net_stats(&self) -> SimStats {
        self.net.stats()
    }

    /// Node `i`'s state machine, if it is running.
    pub fn node(&self, i: u32) -> Option<&Membership<u32>> {
        self.nodes.get(i as usize)?.membership.as_ref()
    }

    /// Makes node `i` join through node `seed` (or start alone if `seed == i`).
    pub fn join(&mut self, i: u32, seed: u32) {
        let now = self.instant();
        let seeds = (seed != i).then_some(seed);
        self.with_node(i, |m| m.join(seeds, now));
    }

    /// Starts node 0 and makes every other node join through it.
    pub fn join_all_via_first(&mut self) {
        for i in 0..self.size() {
            self.join(i, 0);
        }
    }

    /// How many nodes the cluster has (crashed ones included).
    pub fn size(&self) -> u32 {
        u32::try_from(self.nodes.len()).unwrap_or(u32::MAX)
    }

    /// Crashes node `i`: its state is lost and the network drops its traffic.
    pub fn crash(&mut self, i: u32) {
        self.net.crash(i);
        if let Some(node) = self.nodes.get_mut(i as usize) {
            node.membership = None;
        }
    }

    /// Restarts crashed node `i` with a fresh state at incarnation 0 and joins it through
    /// `seed`. It has forgotten its old incarnation: rejoining must still work.
    pub fn restart(&mut self, i: u32, seed: u32) {
        self.net.restart(&i);
        let life = self.nodes.get(i as usize).map_or(0, |node| node.life + 1);
        let membership = self.fresh(i, u64::from(life));
        if let Some(node) = self.nodes.get_mut(i as usize) {
            node.life = life;
            node.membership = Some(membership);
        }
        self.join(i, seed);
    }

    /// Makes node `i` leave gracefully.
    pub fn leave(&mut self, i: u32) {
        let now = self.instant();
        self.with_node(i, |m| m.leave(now));
    }

    /// Makes node `i` broadcast a user event.
    pub fn broadcast_event(&mut self, i: u32, name: &str, payload: &[u8]) {
        let mut result = Ok(());
        self.with_node(i, |m| result = m.broadcast_event(name, payload));
        assert!(result.is_ok(), "broadcast_event failed: {result:?}");
    }

    /// Runs the simulation for `duration` of virtual time.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.clock.now() + duration;
        // Bounded: each step handles at least one packet or timer, and time only moves
        // forward toward `end`; the cap guards against a livelock bug.
        for _ in 0..50_000_000u64 {
            let next_packet = self.net.next_due();
            let next_timer = self.timers.peek().map(|Reverse(t)| t.due);
            let next = match (next_packet, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => end,
            };
            if next > end {
                break;
            }
            self.clock.advance_to(next);
            self.step();
            if next == end && self.net.next_due() != Some(end) && next_timer != Some(end) {
                break;
            }
        }
        self.clock.advance_to(end);
    }

    /// Runs in steps of one probe interval until `done` holds, for at most `limit`. Returns
    /// the virtual time it took, or `None` if `done` never held.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Option<Duration> {
        let start = self.clock.now();
        let step = self.config.probe_interval / 10;
        while self.clock.now().saturating_duration_since(start) < limit {
            if done(self) {
                return Some(self.clock.now().saturating_duration_since(start));
            }
            self.run_for(step);
        }
        done(self).then(|| self.clock.now().saturating_duration_since(start))
    }

    /// The nodes running node `i` believes alive or suspected.
    pub fn view(&self, i: u32) -> BTreeSet<u32> {
        self.node(i)
            .map(|m| {
                m.live_members()
                    .map(|(id, _)| u32::try_from(id.node.0).unwrap_or(u32::MAX))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether every node in `expected` runs and sees exactly the others in `expected`.
    pub fn converged_on(&self, expected: &BTreeSet<u32>) -> bool {
        expected.iter().all(|&i| {
            let mut view = self.view(i);
            view.insert(i);
            self.node(i).is_some() && view == *expected
        })
    }

    /// The indices of the nodes that run and have not left.
    pub fn running(&self) -> BTreeSet<u32> {
        (0..self.size())
            .filter(|&i| self.node(i).is_some_and(|m| !m.has_left()))
            .collect()
    }

    fn fresh(&self, i: u32, salt: u64) -> Membership<u32> {
        let seed = self
            .seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(u64::from(i) << 20)
            .wrapping_add(salt);
        Membership::new(NodeId(u64::from(i)), i, 0, self.config.clone(), seed)
    }

    fn instant(&self) -> Instant {
        self.base + self.clock.now().elapsed_since_start()
    }

    fn step(&mut self) {
        let now = self.clock.now();
        while let Some((from, to, packet)) = self.net.pop_due(now) {
            let bytes = match &packet {
                Packet::Datagram(bytes) | Packet::Stream(bytes) => bytes,
            };
            match Message::<u32>::decode(bytes) {
                Ok(message) => {
                    let instant = self.instant();
                    self.with_node(to, |m| m.handle_datagram(from, message, instant));
                }
                Err(_) => self.decode_errors += 1,
            }
        }
        while let Some(Reverse(pending)) = self.timers.peek().copied() {
            if pending.due > now {
                break;
            }
            self.timers.pop();
            let current = self.nodes.get(pending.node as usize).map(|n| n.life);
            if current == Some(pending.life) {
                let instant = self.instant();
                self.with_node(pending.node, |m| m.handle_timer(pending.timer, instant));
            }
        }
    }

    /// Runs `f` on node `i` if it is up, then carries out its actions.
    fn with_node(&mut self, i: u32, f: impl FnOnce(&mut Membership<u32>)) {
        let now = self.clock.now();
        let Some(node) = self.nodes.get_mut(i as usize) else {
            return;
        };
        let life = node.life;
        let Some(membership) = node.membership.as_mut() else {
            return;
        };
        f(membership);
        while let Some(action) = membership.poll_action() {
            match action {
                Action::Send { to, message } => {
                    let Ok(bytes) = message.encode() else {
                        continue;
                    };
                    node.datagrams_sent += 1;
                    self.datagram_bytes += bytes.len() as u64;
                    self.net.send(i, to, Packet::Datagram(bytes), now);
                }
                Action::SendStream { to, message } => {
                    let Ok(bytes) = message.encode() else {
                        continue;
                    };
                    self.push_pulls += 1;
                    self.net.send(i, to, Packet::Stream(bytes), now);
                }
                Action::ScheduleTimer { timer, after } => {
                    let order = self.next_timer;
                    self.next_timer += 1;
                    self.timers.push(Reverse(PendingTimer {
                        due: now + after,
                        order,
                        node: i,
                        life,
                        timer,
                    }));
                }
                Action::Notify(notification) => node.notifications.push((now, notification)),
            }
        }
    }
}
