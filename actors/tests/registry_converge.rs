//! Model-based property tests of the cluster registry: replicas that receive random local
//! operations, deltas in random orders with duplicates and losses, full-state syncs, crashes
//! with restarts and node-down reports converge to the same view, and that view is the one a
//! simple reference model (the union of every live origin's own operations, earliest stamp
//! wins) predicts.

use std::collections::{BTreeMap, BTreeSet};

use phalanx_actors::registry::{ActorAddr, ClusterRegistry, Delta, Notice, Origin, State};
use proptest::prelude::*;

/// Node ids chosen to exercise the whole u128 range and the node-id tie-break.
const IDS: [u128; 4] = [3, u128::MAX, 1 << 64, 7];
const NAMES: [&str; 3] = ["alpha", "beta", "gamma"];
const GROUPS: [&str; 2] = ["workers", "watchers"];

#[derive(Debug, Clone)]
enum Step {
    Register {
        node: usize,
        name: usize,
        actor: u64,
    },
    Unregister {
        node: usize,
        name: usize,
    },
    Join {
        node: usize,
        group: usize,
        actor: u64,
    },
    Leave {
        node: usize,
        group: usize,
        actor: u64,
    },
    Stopped {
        node: usize,
        actor: u64,
    },
    Deliver {
        to: usize,
        pick: usize,
    },
    Sync {
        to: usize,
        from: usize,
    },
    Crash {
        node: usize,
        told: Vec<bool>,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let node = 0..IDS.len();
    let actor = 0..3u64;
    prop_oneof![
        3 => (node.clone(), 0..NAMES.len(), actor.clone())
            .prop_map(|(node, name, actor)| Step::Register { node, name, actor }),
        1 => (node.clone(), 0..NAMES.len())
            .prop_map(|(node, name)| Step::Unregister { node, name }),
        3 => (node.clone(), 0..GROUPS.len(), actor.clone())
            .prop_map(|(node, group, actor)| Step::Join { node, group, actor }),
        2 => (node.clone(), 0..GROUPS.len(), actor.clone())
            .prop_map(|(node, group, actor)| Step::Leave { node, group, actor }),
        1 => (node.clone(), actor).prop_map(|(node, actor)| Step::Stopped { node, actor }),
        6 => (node.clone(), any::<usize>()).prop_map(|(to, pick)| Step::Deliver { to, pick }),
        2 => (node.clone(), node.clone()).prop_map(|(to, from)| Step::Sync { to, from }),
        1 => (node, proptest::collection::vec(any::<bool>(), IDS.len()))
            .prop_map(|(node, told)| Step::Crash { node, told }),
    ]
}

/// What one origin has done to its own entries: the reference model.
#[derive(Debug, Default, Clone)]
struct OriginModel {
    names: BTreeMap<String, (u64, u64)>,
    groups: BTreeSet<(String, u64)>,
}

struct Cluster {
    replicas: Vec<ClusterRegistry>,
    /// Every delta ever sent; delivery picks from it, so duplicates and reordering happen.
    pool: Vec<Delta>,
    model: BTreeMap<Origin, OriginModel>,
    /// Per replica, the lives it was told are dead: it must never show their entries again.
    told_dead: Vec<BTreeSet<Origin>>,
}

impl Cluster {
    fn new() -> Self {
        let replicas: Vec<_> = IDS.iter().map(|id| ClusterRegistry::new(*id, 1)).collect();
        let model = replicas
            .iter()
            .map(|r| (r.origin(), OriginModel::default()))
            .collect();
        Self {
            replicas,
            pool: Vec::new(),
            model,
            told_dead: vec![BTreeSet::new(); IDS.len()],
        }
    }

    fn own_model(&mut self, node: usize) -> &mut OriginModel {
        let origin = self.replicas[node].origin();
        self.model.entry(origin).or_default()
    }

    fn run(&mut self, step: Step) {
        match step {
            Step::Register { node, name, actor } => {
                let name = NAMES[name];
                if let Ok(delta) = self.replicas[node].register(name, actor) {
                    let me = self.replicas[node].origin();
                    let lamport = self.replicas[node]
                        .claimants(name)
                        .iter()
                        .find(|c| c.actor.origin() == me)
                        .map(|c| c.lamport)
                        .expect("own claim is visible");
                    self.own_model(node)
                        .names
                        .insert(name.to_owned(), (lamport, actor));
                    self.pool.push(delta);
                }
            }
            Step::Unregister { node, name } => {
                let name = NAMES[name];
                if let Ok(delta) = self.replicas[node].unregister(name) {
                    self.own_model(node).names.remove(name);
                    self.pool.push(delta);
                }
            }
            Step::Join { node, group, actor } => {
                let group = GROUPS[group];
                if let Some(delta) = self.replicas[node].join(group, actor).expect("short name") {
                    self.pool.push(delta);
                }
                self.own_model(node)
                    .groups
                    .insert((group.to_owned(), actor));
            }
            Step::Leave { node, group, actor } => {
                let group = GROUPS[group];
                self.pool.extend(self.replicas[node].leave(group, actor));
                self.own_model(node)
                    .groups
                    .remove(&(group.to_owned(), actor));
            }
            Step::Stopped { node, actor } => {
                let deltas = self.replicas[node].actor_stopped(actor);
                self.pool.extend(deltas);
                let model = self.own_model(node);
                model.names.retain(|_, (_, holder)| *holder != actor);
                model.groups.retain(|(_, member)| *member != actor);
            }
            Step::Deliver { to, pick } => {
                if !self.pool.is_empty() {
                    let delta = self.pool[pick % self.pool.len()].clone();
                    let before = snapshot(&self.replicas[to]);
                    let notices = self.replicas[to].merge_delta(delta);
                    self.settle(to, before, notices);
                }
            }
            Step::Sync { to, from } => {
                let state = self.replicas[from].full_state();
                let before = snapshot(&self.replicas[to]);
                let notices = self.replicas[to].merge_state(state);
                self.settle(to, before, notices);
            }
            Step::Crash { node, told } => {
                let old = self.replicas[node].origin();
                self.model.remove(&old);
                let new = ClusterRegistry::new(old.node, old.incarnation + 1);
                self.model.insert(new.origin(), OriginModel::default());
                self.replicas[node] = new;
                // A restarted node remembers nothing, not even who died.
                self.told_dead[node].clear();
                for (to, told) in told.into_iter().enumerate() {
                    if told {
                        let before = snapshot(&self.replicas[to]);
                        let notices = self.replicas[to].node_down(old.node, old.incarnation);
                        self.told_dead[to].insert(old);
                        self.settle(to, before, notices);
                    }
                }
            }
        }
    }

    /// Checks that the notices of a merge take a watcher from `before` to the new view,
    /// applies the withdrawals the merge made to the model and sends them.
    fn settle(&mut self, at: usize, before: Snapshot, notices: Vec<Notice>) {
        let me = self.replicas[at].origin();
        let (mut names, mut groups) = before;
        for notice in notices {
            match notice {
                Notice::Lost {
                    name,
                    loser,
                    winner,
                } => {
                    assert_eq!(loser.origin(), me, "only the loser's node reports Lost");
                    assert_ne!(loser, winner);
                    assert_eq!(self.replicas[at].whereis(&name), Some(winner));
                    self.own_model(at).names.remove(&name);
                }
                Notice::Registered {
                    name,
                    actor,
                    replaced,
                } => {
                    assert_eq!(names.insert(name, actor), replaced);
                }
                Notice::Unregistered { name, actor } => {
                    assert_eq!(names.remove(&name), Some(actor));
                }
                Notice::Joined { group, actor } => {
                    assert!(groups.entry(group).or_default().insert(actor));
                }
                Notice::Left { group, actor } => {
                    let members = groups.get_mut(&group).expect("left a known group");
                    assert!(members.remove(&actor));
                    if members.is_empty() {
                        groups.remove(&group);
                    }
                }
                other => panic!("unexpected notice {other:?}"),
            }
        }
        assert_eq!(
            (names, groups),
            snapshot(&self.replicas[at]),
            "notices describe the change"
        );
        while let Some(delta) = self.replicas[at].poll_delta() {
            self.pool.push(delta);
        }
        let replica = &self.replicas[at];
        let dead = &self.told_dead[at];
        let shown = replica.names().into_values();
        let members = replica.groups().into_values().flatten();
        for actor in shown.chain(members) {
            assert!(!dead.contains(&actor.origin()), "{at} shows dead {actor:?}");
        }
    }

    /// Delivers about half of all deltas (gossip loses the rest) to everyone in a seeded
    /// order, then syncs every pair (push-pull must repair the losses), until no replica has
    /// anything new to withdraw.
    fn quiesce(&mut self, seed: u64) {
        let mut rng = seed | 1;
        for _round in 0..6 {
            let sent = self.pool.len();
            let mut order: Vec<(usize, usize)> = (0..self.pool.len())
                .flat_map(|d| (0..self.replicas.len()).map(move |r| (r, d)))
                .collect();
            shuffle(&mut order, &mut rng);
            order.truncate(order.len() / 2);
            for (to, pick) in order {
                self.run(Step::Deliver { to, pick });
            }
            for to in 0..self.replicas.len() {
                for from in 0..self.replicas.len() {
                    self.run(Step::Sync { to, from });
                }
            }
            if self.pool.len() == sent {
                return;
            }
        }
        panic!("withdrawals did not settle in 6 rounds");
    }

    fn expected(
        &self,
    ) -> (
        BTreeMap<String, ActorAddr>,
        BTreeMap<String, BTreeSet<ActorAddr>>,
    ) {
        let mut names: BTreeMap<String, ((u64, u128, u64), ActorAddr)> = BTreeMap::new();
        let mut groups: BTreeMap<String, BTreeSet<ActorAddr>> = BTreeMap::new();
        for (origin, model) in &self.model {
            for (name, (lamport, actor)) in &model.names {
                let addr = addr(*origin, *actor);
                let stamp = ((*lamport, origin.node, origin.incarnation), addr);
                names
                    .entry(name.clone())
                    .and_modify(|best| *best = (*best).min(stamp))
                    .or_insert(stamp);
            }
            for (group, actor) in &model.groups {
                groups
                    .entry(group.clone())
                    .or_default()
                    .insert(addr(*origin, *actor));
            }
        }
        let names = names
            .into_iter()
            .map(|(name, (_, addr))| (name, addr))
            .collect();
        (names, groups)
    }
}

type Snapshot = (
    BTreeMap<String, ActorAddr>,
    BTreeMap<String, BTreeSet<ActorAddr>>,
);

fn snapshot(registry: &ClusterRegistry) -> Snapshot {
    (registry.names(), registry.groups())
}

/// A bystander that merges `states` in the given order.
fn join_all<'a>(states: impl IntoIterator<Item = &'a State>) -> State {
    let mut observer = ClusterRegistry::new(0, 0);
    for state in states {
        observer.merge_state(state.clone());
    }
    observer.full_state()
}

fn addr(origin: Origin, actor: u64) -> ActorAddr {
    ActorAddr {
        node: origin.node,
        incarnation: origin.incarnation,
        actor,
    }
}

fn shuffle<T>(items: &mut [T], rng: &mut u64) {
    for i in (1..items.len()).rev() {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        let j = (*rng % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn replicas_converge_to_the_model(
        steps in proptest::collection::vec(step(), 0..80),
        seed in any::<u64>(),
    ) {
        let mut cluster = Cluster::new();
        for step in steps {
            cluster.run(step);
        }
        cluster.quiesce(seed);
        let (names, groups) = cluster.expected();
        for replica in &cluster.replicas {
            prop_assert_eq!(&replica.names(), &names, "names at {:?}", replica.origin());
            prop_assert_eq!(&replica.groups(), &groups, "groups at {:?}", replica.origin());
            for name in names.keys() {
                prop_assert_eq!(replica.claimants(name).len(), 1, "losers withdrew {}", name);
            }
        }
    }

    /// Merging full states is commutative, associative and idempotent, on the exact
    /// representation and not only on the visible view.
    #[test]
    fn state_merge_is_a_join(
        steps in proptest::collection::vec(step(), 0..60),
        order in Just((0..IDS.len()).collect::<Vec<_>>()).prop_shuffle(),
    ) {
        let mut cluster = Cluster::new();
        for step in steps {
            cluster.run(step);
        }
        let states: Vec<State> = cluster.replicas.iter().map(ClusterRegistry::full_state).collect();
        let all = join_all(&states);
        prop_assert_eq!(&join_all(order.iter().map(|i| &states[*i])), &all, "commutative");
        let left = join_all(&states[..2]);
        let right = join_all(&states[2..]);
        prop_assert_eq!(&join_all([&left, &right]), &all, "associative");
        let twice = join_all(states.iter().chain(&states).chain(states.iter().rev()));
        prop_assert_eq!(&twice, &all, "idempotent");
        prop_assert_eq!(&join_all([&all, &all]), &all, "idempotent on itself");
    }

    /// Concurrent registrations of one name, delivered to observers in different orders with
    /// duplicates, resolve to the same winner everywhere, before any withdrawal spreads.
    #[test]
    fn conflicts_resolve_to_the_same_winner_in_any_order(
        claims in proptest::collection::vec((any::<u128>(), 0..4u64, 0..3u64), 1..6),
        orders in proptest::collection::vec(
            proptest::collection::vec(any::<prop::sample::Index>(), 0..20), 3),
    ) {
        let mut deltas = Vec::new();
        for (node, incarnation, bumps) in &claims {
            let mut registry = ClusterRegistry::new(*node, *incarnation);
            // Some nodes' clocks are ahead: they register other names first.
            for bump in 0..*bumps {
                let _ = registry.register(&format!("other{bump}"), 0);
            }
            if let Ok(delta) = registry.register("contested", 9) {
                deltas.push(delta);
            }
        }
        let mut winners = BTreeSet::new();
        for order in &orders {
            let mut observer = ClusterRegistry::new(0, 0);
            for index in order {
                observer.merge_delta(index.get(&deltas).clone());
            }
            for delta in &deltas {
                observer.merge_delta(delta.clone());
            }
            winners.insert(observer.whereis("contested"));
        }
        prop_assert_eq!(winners.len(), 1);
    }
}
