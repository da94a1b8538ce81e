//! Model-based property tests: `Restarter` against an obviously-correct reference model over
//! random sequences of child additions, removals, exits, delayed starts and clock advances.

use std::collections::HashMap;
use std::time::Duration;

use phalanx_supervisors::{
    Backoff, ChildKey, Decision, ExitKind, Intensity, IntensityWindow, RestartPolicy, Restarter,
    Strategy as SupStrategy,
};
use proptest::prelude::*;

/// The reference: a plain vector in start order, every rule written out with linear scans.
#[derive(Debug)]
struct Model {
    strategy: SupStrategy,
    max_restarts: usize,
    period: Duration,
    children: Vec<ModelChild>,
    /// Every restart ever decided.
    restarts: Vec<Duration>,
    next_plan: u64,
    /// Children removed by the latest exit, in removal order.
    last_removed: Vec<usize>,
}

#[derive(Debug, Clone)]
struct ModelChild {
    id: usize,
    policy: RestartPolicy,
    backoff: Backoff,
    pending: Option<u64>,
    attempt: u32,
    last_restart: Option<Duration>,
}

/// A decision in model terms: child ids instead of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ModelDecision {
    Ignore,
    Remove,
    Restart {
        plan: u64,
        stop: Vec<usize>,
        start: Vec<usize>,
        delay: Duration,
    },
    Escalate {
        stop: Vec<usize>,
    },
}

fn model_delay(backoff: Backoff, attempt: u32, random: u64) -> Duration {
    match backoff {
        Backoff::None => Duration::ZERO,
        Backoff::Fixed(d) => d,
        Backoff::Exponential(e) => {
            let mut base = e.initial().min(e.max());
            for _ in 0..attempt {
                base = (base * 2).min(e.max());
            }
            let permille = (e.jitter() * 1000.0).round() as u128;
            let range = base.as_nanos() * permille / 1000;
            let cut = u128::from(random) % (range + 1);
            Duration::from_nanos((base.as_nanos() - cut) as u64)
        }
    }
}

impl Model {
    fn exit(&mut self, id: usize, exit: ExitKind, now: Duration, random: u64) -> ModelDecision {
        self.last_removed.clear();
        let Some(pos) = self.children.iter().position(|c| c.id == id) else {
            return ModelDecision::Ignore;
        };
        if self.children[pos].pending.is_some() {
            return ModelDecision::Ignore;
        }
        let restart = match self.children[pos].policy {
            RestartPolicy::Permanent => true,
            RestartPolicy::Transient => exit == ExitKind::Failure || exit == ExitKind::Killed,
            RestartPolicy::Temporary => false,
        };
        if !restart {
            self.children.remove(pos);
            self.last_removed.push(id);
            return ModelDecision::Remove;
        }
        self.restarts.push(now);
        let in_window = self
            .restarts
            .iter()
            .filter(|&&t| now - t <= self.period)
            .count();
        if in_window > self.max_restarts {
            let mut stop: Vec<usize> = self
                .children
                .iter()
                .filter(|c| c.id != id && c.pending.is_none())
                .map(|c| c.id)
                .collect();
            stop.reverse();
            self.last_removed = self.children.iter().map(|c| c.id).collect();
            self.children.clear();
            return ModelDecision::Escalate { stop };
        }
        let plan = self.next_plan;
        self.next_plan += 1;
        let child = &mut self.children[pos];
        let recent = child.last_restart.is_some_and(|t| now - t <= self.period);
        child.attempt = if recent { child.attempt + 1 } else { 0 };
        child.last_restart = Some(now);
        let delay = model_delay(child.backoff, child.attempt, random);

        let affected: Vec<usize> = match self.strategy {
            SupStrategy::OneForOne => vec![pos],
            SupStrategy::OneForAll => (0..self.children.len()).collect(),
            SupStrategy::RestForOne => (pos..self.children.len()).collect(),
        };
        let mut stop = Vec::new();
        let mut start = Vec::new();
        let mut removed = Vec::new();
        for &p in &affected {
            let c = &mut self.children[p];
            if c.id != id && c.pending.is_none() {
                stop.push(c.id);
            }
            if c.id != id && c.policy == RestartPolicy::Temporary {
                removed.push(c.id);
            } else {
                c.pending = Some(plan);
                start.push(c.id);
            }
        }
        self.children.retain(|c| !removed.contains(&c.id));
        self.last_removed = removed;
        stop.reverse();
        ModelDecision::Restart {
            plan,
            stop,
            start,
            delay,
        }
    }

    fn start_due(&mut self, id: usize, plan: u64) -> bool {
        match self.children.iter_mut().find(|c| c.id == id) {
            Some(c) if c.pending == Some(plan) => {
                c.pending = None;
                true
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Add(RestartPolicy, Backoff),
    Exit(usize, ExitKind, u64),
    Remove(usize),
    /// Advance the clock: 0 = by exactly the period (the window's edge), else by n - 1 ms.
    Advance(u64),
    Due(usize),
}

fn policy() -> impl Strategy<Value = RestartPolicy> {
    prop_oneof![
        Just(RestartPolicy::Permanent),
        Just(RestartPolicy::Transient),
        Just(RestartPolicy::Temporary),
    ]
}

fn exit_kind() -> impl Strategy<Value = ExitKind> {
    prop_oneof![
        Just(ExitKind::Normal),
        Just(ExitKind::Shutdown),
        Just(ExitKind::Failure),
        Just(ExitKind::Killed),
    ]
}

fn backoff() -> impl Strategy<Value = Backoff> {
    prop_oneof![
        Just(Backoff::None),
        (0u64..100).prop_map(|ms| Backoff::Fixed(Duration::from_millis(ms))),
        (1u64..50, 1u64..1000, 0.0f64..=1.0).prop_map(|(i, m, j)| {
            Backoff::exponential(Duration::from_millis(i), Duration::from_millis(m)).with_jitter(j)
        }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (policy(), backoff()).prop_map(|(p, b)| Op::Add(p, b)),
        5 => (any::<usize>(), exit_kind(), any::<u64>()).prop_map(|(i, e, r)| Op::Exit(i, e, r)),
        1 => any::<usize>().prop_map(Op::Remove),
        3 => prop_oneof![Just(0u64), Just(1), 0u64..3000].prop_map(Op::Advance),
        3 => any::<usize>().prop_map(Op::Due),
    ]
}

// proptest's `Strategy` trait and our enum share a name; ours is imported as `SupStrategy`.
fn strategy() -> impl Strategy<Value = SupStrategy> {
    prop_oneof![
        Just(SupStrategy::OneForOne),
        Just(SupStrategy::OneForAll),
        Just(SupStrategy::RestForOne),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn restarter_matches_model(
        strat in strategy(),
        max in 0u32..5,
        period_ms in 0u64..5000,
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let period = Duration::from_millis(period_ms);
        let mut core: Restarter<usize> = Restarter::new(strat, Intensity::new(max, period));
        let mut model = Model {
            strategy: strat,
            max_restarts: max as usize,
            period,
            children: Vec::new(),
            restarts: Vec::new(),
            next_plan: 0,
            last_removed: Vec::new(),
        };
        let mut keys: HashMap<usize, ChildKey> = HashMap::new();
        let mut ids: HashMap<ChildKey, usize> = HashMap::new();
        let mut plans = Vec::new(); // (model plan, core plan id, start ids)
        let mut now = Duration::ZERO;
        let mut next_id = 0;
        // Ids ever added, so exits and removals also hit removed (stale) children.
        let mut all_ids = Vec::new();

        for op in ops {
            match op {
                Op::Add(p, b) => {
                    let key = core.add_child(p, b, next_id);
                    prop_assert!(!ids.contains_key(&key), "key reused");
                    model.children.push(ModelChild {
                        id: next_id, policy: p, backoff: b, pending: None, attempt: 0,
                        last_restart: None,
                    });
                    keys.insert(next_id, key);
                    ids.insert(key, next_id);
                    all_ids.push(next_id);
                    next_id += 1;
                }
                Op::Exit(sel, exit, random) => {
                    if all_ids.is_empty() { continue; }
                    let id = all_ids[sel % all_ids.len()];
                    let expected = model.exit(id, exit, now, random);
                    let got = match core.handle_exit(keys[&id], exit, now, random) {
                        Decision::Ignore => ModelDecision::Ignore,
                        Decision::Remove => ModelDecision::Remove,
                        Decision::Escalate { stop } => ModelDecision::Escalate {
                            stop: stop.iter().map(|k| ids[k]).collect(),
                        },
                        Decision::Restart(plan) => {
                            let start: Vec<usize> = plan.start.iter().map(|k| ids[k]).collect();
                            let model_plan = match &expected {
                                ModelDecision::Restart { plan, .. } => *plan,
                                _ => u64::MAX,
                            };
                            plans.push((model_plan, plan.id, start.clone()));
                            ModelDecision::Restart {
                                plan: model_plan,
                                stop: plan.stop.iter().map(|k| ids[k]).collect(),
                                start,
                                delay: plan.delay,
                            }
                        }
                    };
                    prop_assert_eq!(got, expected);
                    let removed: Vec<usize> = core.drain_removed().map(|(_, id)| id).collect();
                    prop_assert_eq!(&removed, &model.last_removed);
                }
                Op::Remove(sel) => {
                    if all_ids.is_empty() { continue; }
                    let id = all_ids[sel % all_ids.len()];
                    let got = core.remove_child(keys[&id]);
                    let pos = model.children.iter().position(|c| c.id == id);
                    prop_assert_eq!(got.is_some(), pos.is_some());
                    if let Some(pos) = pos {
                        prop_assert_eq!(got, Some(id));
                        model.children.remove(pos);
                    }
                }
                Op::Advance(0) => now += period,
                Op::Advance(n) => now += Duration::from_millis(n - 1),
                Op::Due(sel) => {
                    if plans.is_empty() { continue; }
                    let (model_plan, id, start) = plans.remove(sel % plans.len());
                    for child in start {
                        let got = core.start_due(keys[&child], id);
                        prop_assert_eq!(got, model.start_due(child, model_plan));
                    }
                }
            }
            // The same children, in the same order, with the same running state.
            let order: Vec<(usize, bool)> =
                core.keys().map(|k| (ids[&k], core.is_running(k))).collect();
            let expected: Vec<(usize, bool)> =
                model.children.iter().map(|c| (c.id, c.pending.is_none())).collect();
            prop_assert_eq!(order, expected);
            prop_assert_eq!(core.len(), model.children.len());
            let running_rev: Vec<usize> = core.running_rev().map(|k| ids[&k]).collect();
            let expected_rev: Vec<usize> = model.children.iter().rev()
                .filter(|c| c.pending.is_none()).map(|c| c.id).collect();
            prop_assert_eq!(running_rev, expected_rev);
        }
    }

    #[test]
    fn intensity_window_matches_naive_count(
        max in 0u32..6,
        period_ms in 0u64..2000,
        gaps in proptest::collection::vec(0u64..1500, 1..60),
    ) {
        let period = Duration::from_millis(period_ms);
        let mut window = IntensityWindow::new(Intensity::new(max, period));
        let mut all = Vec::new();
        let mut now = Duration::ZERO;
        for gap in gaps {
            now += Duration::from_millis(gap);
            all.push(now);
            let naive = all.iter().filter(|&&t| now - t <= period).count();
            prop_assert_eq!(window.record(now), naive > max as usize);
            prop_assert_eq!(window.count(now), naive.min(max as usize + 1));
        }
    }

    #[test]
    fn exponential_backoff_is_bounded_and_monotone_without_jitter(
        initial_ms in 0u64..10_000,
        max_ms in 0u64..100_000,
        jitter in 0.0f64..=1.0,
        attempt in 0u32..200,
        random in any::<u64>(),
    ) {
        let initial = Duration::from_millis(initial_ms);
        let max = Duration::from_millis(max_ms);
        let plain = Backoff::exponential(initial, max);
        let jittered = plain.with_jitter(jitter);
        let base = plain.delay(attempt, random);
        prop_assert!(base <= max);
        prop_assert!(plain.delay(attempt + 1, random) >= base);
        let d = jittered.delay(attempt, random);
        prop_assert!(d <= base);
        // The ratio is stored in thousandths.
        let Backoff::Exponential(e) = jittered else { unreachable!() };
        prop_assert!((e.jitter() - jitter).abs() <= 0.0005 + 1e-9);
        prop_assert!(d.as_secs_f64() >= base.as_secs_f64() * (1.0 - e.jitter()) - 1e-6);
        if attempt < 30 {
            prop_assert_eq!(base, model_delay(plain, attempt, random));
            prop_assert_eq!(d, model_delay(jittered, attempt, random));
        }
    }
}
