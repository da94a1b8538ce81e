//! Measurements of the gossip protocol in simulation, with foca 2 driven through the same
//! simulated network and scenarios for comparison: the grid of issue #6, n = 10, 100, 1000
//! and loss 0, 5, 10, 20 %, every metric for both systems in the same run. Ignored by default
//! (it takes many minutes even in release builds); run it with
//!
//! ```text
//! cargo test -p phalanx-actors --release --test gossip_measure -- --ignored --nocapture
//! ```
//!
//! Environment: `GRID_N` (default `10,100,1000`) and `GRID_LOSS` (percent, default
//! `0,5,10,20`) choose the cells; `SIM_SEEDS` sets how many seeds are averaged (default 3),
//! `GRID_SEEDS_1000` the same for n = 1000 (default 1); `GRID_CELL_SECS` is the wall-clock
//! time box of one cell and system (default 900): a cell that runs out of it reports the
//! metrics it did not reach as not measured (`-`) instead of holding up the grid.
//!
//! Per cell and seed: join all nodes through node 0 and count the periods until every node
//! sees all the others (join convergence); run 30 periods, then 10 simulated minutes, counting
//! Down notifications (false DOWN: nobody failed) and the datagrams and bytes sent (load per
//! member per period; phalanx's push-pull, which goes over streams, is not a datagram); crash
//! one node and time until every live node has dropped it (first and all); on a fresh cluster,
//! cut it 50/50, wait until each half agrees on itself, heal, and time until one full view.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use phalanx_actors::gossip::{Config, MemberState, NodeId, Notification};
use phalanx_actors::sim::Cluster;
use phalanx_transports::{SimClock, SimFaults, SimInstant, SimNetwork};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

const PERIOD: Duration = Duration::from_secs(1);
/// The push-pull interval of phalanx's defaults, to express heal times in intervals.
const PUSH_PULL_SECS: f64 = 30.0;

fn faults(loss: f64) -> SimFaults {
    SimFaults::none()
        .with_loss(loss)
        .with_delay(Duration::from_millis(1), Duration::from_millis(20))
}

fn env_list(name: &str, default: &[u32]) -> Vec<u32> {
    std::env::var(name)
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

fn seeds(n: u32) -> u64 {
    if n >= 1000 {
        env_u64("GRID_SEEDS_1000", 1)
    } else {
        env_u64("SIM_SEEDS", 3)
    }
}

/// `GRID_QUICK=1`: one simulated minute of load and false DOWN, no crash or partition (for
/// trying changes; the table's false DOWN column then covers one minute, not ten).
fn quick() -> bool {
    env_u64("GRID_QUICK", 0) == 1
}

fn all(n: u32) -> BTreeSet<u32> {
    (0..n).collect()
}

/// What a scenario needs from a simulated cluster, whichever protocol runs in it.
trait Sim {
    const NAME: &'static str;
    fn new(n: u32, seed: u64, loss: f64) -> Self;
    fn join_all(&mut self);
    fn run_for(&mut self, duration: Duration);
    fn now(&self) -> SimInstant;
    /// The nodes node `i` sees as live (alive or suspected).
    fn view(&self, i: u32) -> BTreeSet<u32>;
    fn crash(&mut self, i: u32);
    fn partition(&mut self, left: &[u32], right: &[u32]);
    fn heal(&mut self);
    /// Down notifications emitted so far, all observers summed.
    fn downs(&self) -> usize;
    /// Datagrams sent so far (phalanx: push-pull excluded).
    fn datagrams(&self) -> u64;
    /// Bytes of those datagrams.
    fn bytes(&self) -> u64;
    fn seed(&self) -> u64;

    /// Whether node `i` still lists `j` as live (cheaper than `view` for one member).
    fn sees(&self, i: u32, j: u32) -> bool {
        self.view(i).contains(&j)
    }

    fn converged_on(&self, expected: &BTreeSet<u32>) -> bool {
        expected.iter().all(|&i| {
            let mut view = self.view(i);
            view.insert(i);
            view == *expected
        })
    }
}

/// Runs whole periods until `done`, checking once per period; returns periods taken.
fn periods_until<S: Sim>(sim: &mut S, limit: u32, done: impl Fn(&S) -> bool) -> Option<u32> {
    for period in 0..limit {
        if done(sim) {
            return Some(period);
        }
        sim.run_for(PERIOD);
    }
    eprintln!(
        "{}: not done within {limit} periods (seed {})",
        S::NAME,
        sim.seed()
    );
    None
}

/// The figures of one cell for one system; `None` = not measured (time box) or not reached.
#[derive(Debug, Default, Clone)]
struct Figures {
    join: Vec<Option<f64>>,
    false_downs: Vec<Option<f64>>,
    datagrams: Vec<Option<f64>>,
    bytes: Vec<Option<f64>>,
    crash_first: Vec<Option<f64>>,
    crash_all: Vec<Option<f64>>,
    heal: Vec<Option<f64>>,
}

/// The mean of the measured values, or `None` if any seed is missing (a mean over the seeds
/// that happened to finish would flatter the system).
fn mean(values: &[Option<f64>]) -> Option<f64> {
    let measured: Option<Vec<f64>> = values.iter().copied().collect();
    let measured = measured?;
    if measured.is_empty() || measured.iter().any(|v| v.is_nan()) {
        return None;
    }
    Some(measured.iter().sum::<f64>() / measured.len() as f64)
}

fn measure<S: Sim>(n: u32, loss: f64, budget: Duration) -> Figures {
    let started = Instant::now();
    let out_of_time = || started.elapsed() > budget;
    let mut figures = Figures::default();
    let join_limit = 600;
    for seed in 0..seeds(n) {
        if out_of_time() {
            break;
        }
        let mut sim = S::new(n, seed, loss);
        sim.join_all();
        let join = periods_until(&mut sim, join_limit, |s| s.converged_on(&all(n)));
        figures.join.push(join.map(f64::from));
        if out_of_time() {
            continue;
        }
        sim.run_for(PERIOD * 30);
        let (downs, datagrams, bytes) = (sim.downs(), sim.datagrams(), sim.bytes());
        let secs = if quick() { 60 } else { 600 };
        // Ten minutes in one-minute steps, so that the time box can stop a slow run.
        let mut ran = 0;
        while ran < secs && !out_of_time() {
            sim.run_for(PERIOD * 60);
            ran += 60;
        }
        if ran < secs {
            continue;
        }
        let per = f64::from(n) * f64::from(secs) / PERIOD.as_secs_f64();
        figures.false_downs.push(Some((sim.downs() - downs) as f64));
        figures
            .datagrams
            .push(Some((sim.datagrams() - datagrams) as f64 / per));
        figures.bytes.push(Some((sim.bytes() - bytes) as f64 / per));
        if quick() {
            continue;
        }
        let victim = n * 37 / 100;
        sim.crash(victim);
        let live: BTreeSet<u32> = all(n).into_iter().filter(|&i| i != victim).collect();
        let start = sim.now();
        let (mut first, mut everyone) = (None, None);
        // Bounded: 300 periods at most, in tenths of a period.
        for _ in 0..3000 {
            if first.is_none() && live.iter().any(|&i| !sim.sees(i, victim)) {
                first = Some(sim.now().saturating_duration_since(start));
            }
            if live.iter().all(|&i| !sim.sees(i, victim)) {
                everyone = Some(sim.now().saturating_duration_since(start));
                break;
            }
            if out_of_time() {
                break;
            }
            sim.run_for(PERIOD / 10);
        }
        let periods = |d: Duration| d.as_secs_f64() / PERIOD.as_secs_f64();
        figures.crash_first.push(first.map(periods));
        figures.crash_all.push(everyone.map(periods));
    }
    for seed in 0..seeds(n) {
        if out_of_time() || quick() {
            break;
        }
        let mut sim = S::new(n, seed, loss);
        sim.join_all();
        if periods_until(&mut sim, join_limit, |s| s.converged_on(&all(n))).is_none() {
            figures.heal.push(None);
            continue;
        }
        let left: Vec<u32> = (0..n / 2).collect();
        let right: Vec<u32> = (n / 2..n).collect();
        sim.partition(&left, &right);
        let left_set: BTreeSet<u32> = left.iter().copied().collect();
        let right_set: BTreeSet<u32> = right.iter().copied().collect();
        let split = periods_until(&mut sim, join_limit, |s| {
            s.converged_on(&left_set) && s.converged_on(&right_set)
        });
        if split.is_none() {
            figures.heal.push(None);
            continue;
        }
        sim.heal();
        let healed = periods_until(&mut sim, 1200, |s| s.converged_on(&all(n)));
        figures
            .heal
            .push(healed.map(|p| f64::from(p) * PERIOD.as_secs_f64()));
    }
    eprintln!(
        "{:8} n={n} loss={:.0}%: {figures:?} ({:.0} s wall)",
        S::NAME,
        loss * 100.0,
        started.elapsed().as_secs_f64()
    );
    figures
}

/// `phalanx / foca (ratio)`, `-` where a figure is missing.
fn cell(ours: &[Option<f64>], theirs: &[Option<f64>], digits: usize) -> String {
    let show = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"));
    let (a, b) = (mean(ours), mean(theirs));
    let ratio = match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!(" ({:.2}x)", a / b),
        _ => String::new(),
    };
    format!("{} / {}{ratio}", show(a), show(b))
}

#[test]
#[ignore = "measurement; run with --release --ignored --nocapture"]
fn measure_grid() {
    let budget = Duration::from_secs(env_u64("GRID_CELL_SECS", 900));
    let mut table = String::from(
        "| n | loss | join (periods) | crash seen by first (periods) | crash seen by all (periods) \
         | false DOWN / 10 min | datagrams / member / period | bytes / member / period \
         | 50/50 heal (s) |\n|---:|---:|---|---|---|---|---|---|---|\n",
    );
    for n in env_list("GRID_N", &[10, 100, 1000]) {
        for loss in env_list("GRID_LOSS", &[0, 5, 10, 20]) {
            let p = f64::from(loss) / 100.0;
            let ours = measure::<Phalanx>(n, p, budget);
            let theirs = measure::<Foca>(n, p, budget);
            let _ = writeln!(
                table,
                "| {n} | {loss} % | {} | {} | {} | {} | {} | {} | {} |",
                cell(&ours.join, &theirs.join, 1),
                cell(&ours.crash_first, &theirs.crash_first, 1),
                cell(&ours.crash_all, &theirs.crash_all, 1),
                cell(&ours.false_downs, &theirs.false_downs, 1),
                cell(&ours.datagrams, &theirs.datagrams, 2),
                cell(&ours.bytes, &theirs.bytes, 0),
                cell(&ours.heal, &theirs.heal, 1),
            );
            println!("{table}");
        }
    }
    println!("heal times in push-pull intervals of {PUSH_PULL_SECS} s: divide by {PUSH_PULL_SECS}");
}

/// phalanx's gossip in its own harness.
struct Phalanx(Cluster);

impl Sim for Phalanx {
    const NAME: &'static str = "phalanx";

    fn new(n: u32, seed: u64, loss: f64) -> Self {
        Self(Cluster::new(n, seed, Config::default(), faults(loss)))
    }
    fn join_all(&mut self) {
        self.0.join_all_via_first();
    }
    fn run_for(&mut self, duration: Duration) {
        self.0.run_for(duration);
    }
    fn now(&self) -> SimInstant {
        self.0.now()
    }
    fn view(&self, i: u32) -> BTreeSet<u32> {
        self.0.view(i)
    }
    fn sees(&self, i: u32, j: u32) -> bool {
        self.0
            .node(i)
            .and_then(|m| m.member_state(NodeId(u64::from(j))))
            .is_some_and(|(state, _)| matches!(state, MemberState::Alive | MemberState::Suspect))
    }
    fn crash(&mut self, i: u32) {
        self.0.crash(i);
    }
    fn partition(&mut self, left: &[u32], right: &[u32]) {
        self.0.net().partition_groups(left, right);
    }
    fn heal(&mut self) {
        self.0.net().heal_all();
    }
    fn downs(&self) -> usize {
        self.0
            .nodes
            .iter()
            .map(|node| {
                node.notifications
                    .iter()
                    .filter(|(_, n)| matches!(n, Notification::Down { .. }))
                    .count()
            })
            .sum()
    }
    fn datagrams(&self) -> u64 {
        self.0.nodes.iter().map(|node| node.datagrams_sent).sum()
    }
    fn bytes(&self) -> u64 {
        self.0.datagram_bytes
    }
    fn seed(&self) -> u64 {
        self.0.seed()
    }
}

/// foca's identity for the comparison: an address plus a bump counter, so that foca rejoins
/// by itself after being declared down (its `renew`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct FocaId {
    addr: u32,
    bump: u16,
}

impl foca::Identity for FocaId {
    type Addr = u32;

    fn renew(&self) -> Option<Self> {
        Some(Self {
            addr: self.addr,
            bump: self.bump.wrapping_add(1),
        })
    }

    fn addr(&self) -> u32 {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.bump.wrapping_sub(adversary.bump) < u16::MAX / 2
    }
}

type FocaNode = foca::Foca<FocaId, foca::PostcardCodec, StdRng, foca::NoCustomBroadcast>;

/// foca 2 over the same simulated network.
struct Foca {
    seed: u64,
    clock: SimClock,
    net: SimNetwork<u32, Vec<u8>>,
    nodes: Vec<Option<FocaNode>>,
    /// Pending timers by `(due, order)`.
    timers: BTreeMap<(SimInstant, u64), (u32, foca::Timer<FocaId>)>,
    next_order: u64,
    downs: usize,
    datagrams: u64,
    bytes: u64,
    /// Whether nodes that know nobody should announce themselves again.
    joining: bool,
}

impl Foca {
    fn drive(
        &mut self,
        i: u32,
        f: impl FnOnce(&mut FocaNode, &mut foca::AccumulatingRuntime<FocaId>),
    ) {
        let mut runtime = foca::AccumulatingRuntime::new();
        let Some(node) = self.nodes.get_mut(i as usize).and_then(Option::as_mut) else {
            return;
        };
        f(node, &mut runtime);
        let now = self.clock.now();
        while let Some((to, data)) = runtime.to_send() {
            self.datagrams += 1;
            self.bytes += data.len() as u64;
            self.net.send(i, to.addr, data.to_vec(), now);
        }
        while let Some((after, timer)) = runtime.to_schedule() {
            self.timers
                .insert((now + after, self.next_order), (i, timer));
            self.next_order += 1;
        }
        while let Some(notification) = runtime.to_notify() {
            if matches!(notification, foca::OwnedNotification::MemberDown(_)) {
                self.downs += 1;
            }
        }
    }
}

impl Sim for Foca {
    const NAME: &'static str = "foca";

    fn new(n: u32, seed: u64, loss: f64) -> Self {
        let size = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        let nodes = (0..n)
            .map(|i| {
                let rng = StdRng::seed_from_u64(seed.wrapping_mul(1_000_003) + u64::from(i));
                let id = FocaId { addr: i, bump: 0 };
                Some(foca::Foca::new(
                    id,
                    foca::Config::new_lan(size),
                    rng,
                    foca::PostcardCodec,
                ))
            })
            .collect();
        Self {
            seed,
            clock: SimClock::new(),
            net: SimNetwork::new(seed, faults(loss)),
            nodes,
            timers: BTreeMap::new(),
            next_order: 0,
            downs: 0,
            datagrams: 0,
            bytes: 0,
            joining: false,
        }
    }

    fn join_all(&mut self) {
        self.joining = true;
        let seed = FocaId { addr: 0, bump: 0 };
        for i in 1..u32::try_from(self.nodes.len()).unwrap_or(0) {
            self.drive(i, |foca, runtime| {
                let _ = foca.announce(seed, runtime);
            });
        }
    }

    fn run_for(&mut self, duration: Duration) {
        // A driver retries the announce while a node knows nobody (the join packet may be
        // lost), as phalanx's core does with its seeds once per period.
        if self.joining {
            let seed = FocaId { addr: 0, bump: 0 };
            for i in 1..u32::try_from(self.nodes.len()).unwrap_or(0) {
                let alone = self
                    .nodes
                    .get(i as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|foca| foca.iter_members().next().is_none());
                if alone {
                    self.drive(i, |foca, runtime| {
                        let _ = foca.announce(seed, runtime);
                    });
                }
            }
        }
        let end = self.clock.now() + duration;
        loop {
            let next_packet = self.net.next_due();
            let next_timer = self.timers.keys().next().map(|k| k.0);
            let next = match (next_packet, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => break,
            };
            if next > end {
                break;
            }
            self.clock.advance_to(next);
            while let Some((_, to, data)) = self.net.pop_due(next) {
                self.drive(to, |foca, runtime| {
                    let _ = foca.handle_data(&data, runtime);
                });
            }
            while let Some(entry) = self.timers.first_entry() {
                if entry.key().0 > next {
                    break;
                }
                let (node, timer) = entry.remove();
                self.drive(node, |foca, runtime| {
                    let _ = foca.handle_timer(timer, runtime);
                });
            }
        }
        self.clock.advance_to(end);
    }

    fn now(&self) -> SimInstant {
        self.clock.now()
    }

    fn view(&self, i: u32) -> BTreeSet<u32> {
        self.nodes
            .get(i as usize)
            .and_then(Option::as_ref)
            .map(|foca| foca.iter_members().map(|m| m.id().addr).collect())
            .unwrap_or_default()
    }

    fn sees(&self, i: u32, j: u32) -> bool {
        self.nodes
            .get(i as usize)
            .and_then(Option::as_ref)
            .is_some_and(|foca| foca.iter_members().any(|m| m.id().addr == j))
    }

    fn crash(&mut self, i: u32) {
        self.net.crash(i);
        if let Some(node) = self.nodes.get_mut(i as usize) {
            *node = None;
        }
    }

    fn partition(&mut self, left: &[u32], right: &[u32]) {
        self.net.partition_groups(left, right);
    }

    fn heal(&mut self) {
        self.net.heal_all();
    }

    fn downs(&self) -> usize {
        self.downs
    }

    fn datagrams(&self) -> u64 {
        self.datagrams
    }

    fn bytes(&self) -> u64 {
        self.bytes
    }

    fn seed(&self) -> u64 {
        self.seed
    }
}
