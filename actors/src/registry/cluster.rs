//! [`ClusterRegistry`]: one node's replica of the cluster-wide names and groups.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::notice::{JoinError, Notice, RegisterError, RejoinError, UnregisterError};
use super::replica::Replica;
use super::view::{Scope, Touched, View};
use super::wire::{
    ActorAddr, Claim, Delta, MAX_DELTA_LEN, MAX_DELTA_OPS, MAX_NAME_LEN, Op, OpKind, Origin, State,
};

/// One node's replica of the cluster-wide name registry and process groups.
///
/// A sans-IO state machine: local operations ([`register`](Self::register),
/// [`join`](Self::join), ...) change the local replica and return [`Delta`]s for the caller
/// to disseminate by gossip; the caller feeds in what peers send
/// ([`merge_delta`](Self::merge_delta), [`merge_state`](Self::merge_state)) and what
/// membership decides ([`node_down`](Self::node_down)), and acts on the [`Notice`]s that
/// come back. See the [module docs](super) for the semantics.
///
/// # Examples
///
/// ```
/// use phalanx_actors::registry::{ClusterRegistry, Notice};
///
/// let mut a = ClusterRegistry::new(1, 1);
/// let mut b = ClusterRegistry::new(2, 1);
/// // Both register "leader" before hearing of each other.
/// let from_a = a.register("leader", 10)?;
/// let from_b = b.register("leader", 20)?;
/// a.merge_delta(from_b);
/// let on_b = b.merge_delta(from_a);
/// // The same winner everywhere: the earlier stamp, and with equal clocks the lower node id.
/// assert_eq!(a.whereis("leader"), b.whereis("leader"));
/// assert_eq!(a.whereis("leader").map(|addr| addr.node), Some(1));
/// // The loser's node is told, and has withdrawn its claim; the withdrawal spreads.
/// let lost = |notice: &Notice| matches!(notice, Notice::Lost { loser, .. } if loser.node == 2);
/// assert!(on_b.iter().any(lost));
/// let withdrawal = b.poll_delta().ok_or("no withdrawal")?;
/// a.merge_delta(withdrawal);
/// assert_eq!(a.claimants("leader").len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClusterRegistry {
    me: Origin,
    /// Lamport clock: at least every claim stamp seen, ticked for every local registration.
    clock: u64,
    /// The sequence number of this origin's last operation.
    seq: u64,
    /// What is known of every origin, this node's own included (own is always complete).
    replicas: BTreeMap<Origin, Replica>,
    /// Per node, the lowest incarnation not known to be dead.
    floors: BTreeMap<u128, u64>,
    /// Withdrawals of lost registrations, waiting for the caller to disseminate them.
    outbox: VecDeque<Delta>,
}

/// One claim on a name, as [`ClusterRegistry::claimants`] lists them.
///
/// Claims are ordered by `(lamport, actor.node, actor.incarnation)`; the lowest wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Claimant {
    /// The claiming actor.
    pub actor: ActorAddr,
    /// The Lamport stamp of the registration.
    pub lamport: u64,
}

impl ClusterRegistry {
    /// An empty registry for node `node` running as `incarnation`.
    pub fn new(node: u128, incarnation: u64) -> Self {
        let me = Origin { node, incarnation };
        Self {
            me,
            clock: 0,
            seq: 0,
            replicas: BTreeMap::from([(me, Replica::default())]),
            floors: BTreeMap::from([(node, incarnation)]),
            outbox: VecDeque::new(),
        }
    }

    /// This node in its current life.
    pub fn origin(&self) -> Origin {
        self.me
    }

    /// The actor `name` resolves to in this node's view, if any.
    pub fn whereis(&self, name: &str) -> Option<ActorAddr> {
        self.replicas
            .iter()
            .filter_map(|(origin, replica)| Some(stamped(*origin, replica.claim(name)?)))
            .min()
            .map(|(_, actor)| actor)
    }

    /// Every live claim on `name` in this node's view, the winner first.
    ///
    /// More than one means a conflict that has not yet been settled: the losers' nodes
    /// withdraw their claims when they see the winner's.
    pub fn claimants(&self, name: &str) -> Vec<Claimant> {
        let mut claims: Vec<_> = self
            .replicas
            .iter()
            .filter_map(|(origin, replica)| Some(stamped(*origin, replica.claim(name)?)))
            .collect();
        claims.sort_unstable();
        claims
            .into_iter()
            .map(|((lamport, _, _), actor)| Claimant { actor, lamport })
            .collect()
    }

    /// Every registered name and the actor it resolves to.
    pub fn names(&self) -> BTreeMap<String, ActorAddr> {
        let mut best: BTreeMap<&str, ((u64, u128, u64), ActorAddr)> = BTreeMap::new();
        for (origin, replica) in &self.replicas {
            for (name, claim) in replica.claims() {
                let candidate = stamped(*origin, claim);
                best.entry(name)
                    .and_modify(|current| *current = (*current).min(candidate))
                    .or_insert(candidate);
            }
        }
        best.into_iter()
            .map(|(name, (_, addr))| (name.to_owned(), addr))
            .collect()
    }

    /// The members of `group` across the cluster, in this node's view, sorted.
    pub fn members(&self, group: &str) -> Vec<ActorAddr> {
        let mut members: Vec<_> = self
            .replicas
            .iter()
            .flat_map(|(origin, replica)| {
                replica
                    .members(group)
                    .map(|actor| ActorAddr::new(*origin, actor))
            })
            .collect();
        members.sort_unstable();
        members
    }

    /// Every non-empty group and its members.
    pub fn groups(&self) -> BTreeMap<String, BTreeSet<ActorAddr>> {
        let mut groups: BTreeMap<String, BTreeSet<ActorAddr>> = BTreeMap::new();
        for (origin, replica) in &self.replicas {
            for (group, actor) in replica.memberships() {
                groups
                    .entry(group.to_owned())
                    .or_default()
                    .insert(ActorAddr::new(*origin, actor));
            }
        }
        groups
    }

    /// Registers `name` for the local actor `actor`.
    ///
    /// Succeeds only if the name is free in this node's view; a concurrent registration
    /// elsewhere is settled later (see the module docs).
    ///
    /// # Errors
    ///
    /// [`RegisterError`] if the name is too long or already resolves to an actor; nothing
    /// changes then.
    pub fn register(&mut self, name: &str, actor: u64) -> Result<Delta, RegisterError> {
        if name.len() > MAX_NAME_LEN {
            return Err(RegisterError::NameTooLong { len: name.len() });
        }
        if let Some(holder) = self.whereis(name) {
            return Err(RegisterError::AlreadyRegistered { holder });
        }
        self.clock = self.clock.saturating_add(1);
        let claim = Claim {
            lamport: self.clock,
            actor,
        };
        let op = self.own_op(OpKind::Register {
            name: name.to_owned(),
            claim,
        });
        Ok(self.delta(vec![op]))
    }

    /// Unregisters `name`, held by an actor of this node.
    ///
    /// # Errors
    ///
    /// [`UnregisterError::NotRegistered`] if no local actor holds it; nothing changes then.
    pub fn unregister(&mut self, name: &str) -> Result<Delta, UnregisterError> {
        if self.own().claim(name).is_none() {
            return Err(UnregisterError::NotRegistered);
        }
        let op = self.own_op(OpKind::Unregister {
            name: name.to_owned(),
        });
        Ok(self.delta(vec![op]))
    }

    /// Adds the local actor `actor` to `group`; `None` if it already is a member.
    ///
    /// # Errors
    ///
    /// [`JoinError::NameTooLong`] if the group name is too long; nothing changes then.
    pub fn join(&mut self, group: &str, actor: u64) -> Result<Option<Delta>, JoinError> {
        if group.len() > MAX_NAME_LEN {
            return Err(JoinError::NameTooLong { len: group.len() });
        }
        if self.own().is_member(group, actor) {
            return Ok(None);
        }
        let op = self.own_op(OpKind::Join {
            group: group.to_owned(),
            actor,
        });
        Ok(Some(self.delta(vec![op])))
    }

    /// Removes the local actor `actor` from `group`; `None` if it is not a member.
    pub fn leave(&mut self, group: &str, actor: u64) -> Option<Delta> {
        if !self.own().is_member(group, actor) {
            return None;
        }
        let op = self.own_op(OpKind::Leave {
            group: group.to_owned(),
            actor,
        });
        Some(self.delta(vec![op]))
    }

    /// Unregisters every name of the local actor `actor` and removes it from every group:
    /// call it when the actor stops. Empty if it held nothing.
    pub fn actor_stopped(&mut self, actor: u64) -> Vec<Delta> {
        let own = self.own();
        let names: Vec<String> = own
            .claims()
            .filter(|(_, claim)| claim.actor == actor)
            .map(|(name, _)| name.to_owned())
            .collect();
        let groups: Vec<String> = own
            .memberships()
            .filter(|(_, member)| *member == actor)
            .map(|(group, _)| group.to_owned())
            .collect();
        let mut ops = Vec::with_capacity(names.len() + groups.len());
        for name in names {
            ops.push(self.own_op(OpKind::Unregister { name }));
        }
        for group in groups {
            ops.push(self.own_op(OpKind::Leave { group, actor }));
        }
        self.pack(ops)
    }

    /// Moves this node's entries to a new life after it was declared dead and rejoined with
    /// `incarnation`: the old incarnation's entries are dropped everywhere, so the local
    /// actors' names and memberships are made again under the new one (keeping their
    /// registration stamps). Returns the deltas that announce them.
    ///
    /// # Errors
    ///
    /// [`RejoinError::NotNewer`] if `incarnation` is not above the current one; nothing
    /// changes then.
    pub fn rejoin(&mut self, incarnation: u64) -> Result<Vec<Delta>, RejoinError> {
        if incarnation <= self.me.incarnation {
            return Err(RejoinError::NotNewer {
                current: self.me.incarnation,
                requested: incarnation,
            });
        }
        let old = self.replicas.remove(&self.me).unwrap_or_default();
        self.me.incarnation = incarnation;
        self.seq = 0;
        self.replicas.insert(self.me, Replica::default());
        self.raise_floor(self.me.node, incarnation);
        let mut ops = Vec::new();
        for (name, claim) in old.claims() {
            let name = name.to_owned();
            ops.push(self.own_op(OpKind::Register { name, claim }));
        }
        for (group, actor) in old.memberships() {
            let group = group.to_owned();
            ops.push(self.own_op(OpKind::Join { group, actor }));
        }
        Ok(self.pack(ops))
    }

    /// The next withdrawal of a lost registration to disseminate, if any.
    ///
    /// Merges queue one when a local registration loses a conflict ([`Notice::Lost`]).
    pub fn poll_delta(&mut self) -> Option<Delta> {
        self.outbox.pop_front()
    }

    /// Merges a delta from a peer (in any order, any number of times).
    ///
    /// Deltas from this node's own life, or from a life known to be dead, change nothing.
    pub fn merge_delta(&mut self, delta: Delta) -> Vec<Notice> {
        let origin = delta.origin;
        if origin == self.me || !self.is_admitted(origin) {
            return Vec::new();
        }
        let mut touched = self.doomed_keys(origin.node, origin.incarnation);
        for op in &delta.ops {
            match &op.kind {
                OpKind::Register { name, .. } | OpKind::Unregister { name } => {
                    touched.names.insert(name.clone());
                }
                OpKind::Join { group, .. } | OpKind::Leave { group, .. } => {
                    touched.groups.insert((group.clone(), origin));
                }
            }
        }
        self.change(Scope::Keys(touched), |registry| {
            registry.raise_floor(origin.node, origin.incarnation);
            let replica = registry.replicas.entry(origin).or_default();
            for op in delta.ops {
                if let OpKind::Register { claim, .. } = &op.kind {
                    registry.clock = registry.clock.max(claim.lamport);
                }
                replica.apply(op);
            }
        })
    }

    /// Everything this node knows, for a push-pull exchange.
    pub fn full_state(&self) -> State {
        State {
            floors: self
                .floors
                .iter()
                .map(|(node, floor)| (*node, *floor))
                .collect(),
            origins: self
                .replicas
                .iter()
                .map(|(origin, replica)| replica.to_wire(*origin))
                .collect(),
        }
    }

    /// Merges a peer's full state (in any order, any number of times).
    pub fn merge_state(&mut self, state: State) -> Vec<Notice> {
        self.change(Scope::Everything, |registry| {
            for (node, floor) in state.floors {
                registry.raise_floor(node, floor);
            }
            for origin_state in state.origins {
                let origin = origin_state.origin;
                if origin == registry.me || !registry.is_admitted(origin) {
                    continue;
                }
                registry.raise_floor(origin.node, origin.incarnation);
                let replica = Replica::from_wire(origin_state);
                let lamport = replica.claims().map(|(_, claim)| claim.lamport).max();
                registry.clock = registry.clock.max(lamport.unwrap_or(0));
                registry.replicas.entry(origin).or_default().merge(replica);
            }
        })
    }

    /// Drops every entry of `node` in `incarnation` and earlier lives: membership declared
    /// it dead (or it left). Later deltas from those lives are ignored.
    ///
    /// For this node's own current life it only records the fact (the entries stay in the
    /// local view until [`rejoin`](Self::rejoin) moves them to the new life).
    pub fn node_down(&mut self, node: u128, incarnation: u64) -> Vec<Notice> {
        let floor = incarnation.saturating_add(1);
        let touched = self.doomed_keys(node, floor);
        self.change(Scope::Keys(touched), |registry| {
            registry.raise_floor(node, floor);
        })
    }

    /// Whether membership elsewhere has declared this node's current life dead (seen through
    /// [`node_down`](Self::node_down) or a merged state); it should [`rejoin`](Self::rejoin).
    pub fn is_declared_down(&self) -> bool {
        self.floors
            .get(&self.me.node)
            .is_some_and(|floor| *floor > self.me.incarnation)
    }

    fn own(&self) -> &Replica {
        self.replicas.get(&self.me).unwrap_or(&EMPTY)
    }

    fn own_op(&mut self, kind: OpKind) -> Op {
        self.seq += 1;
        let op = Op {
            seq: self.seq,
            kind,
        };
        self.replicas
            .entry(self.me)
            .or_default()
            .apply_own(op.clone());
        op
    }

    fn delta(&self, ops: Vec<Op>) -> Delta {
        Delta {
            origin: self.me,
            ops,
        }
    }

    /// Packs own operations into as few deltas as fit [`MAX_DELTA_LEN`] and
    /// [`MAX_DELTA_OPS`] (one operation always fits: names are at most [`MAX_NAME_LEN`]).
    fn pack(&self, ops: Vec<Op>) -> Vec<Delta> {
        let mut deltas = Vec::new();
        let mut current = self.delta(Vec::new());
        for op in ops {
            current.ops.push(op);
            if current.ops.len() > MAX_DELTA_OPS || current.encoded_len() > MAX_DELTA_LEN {
                let overflow = current.ops.pop();
                if !current.ops.is_empty() {
                    deltas.push(std::mem::replace(&mut current, self.delta(Vec::new())));
                }
                current.ops.extend(overflow);
            }
        }
        if !current.ops.is_empty() {
            deltas.push(current);
        }
        deltas
    }

    fn is_admitted(&self, origin: Origin) -> bool {
        origin.incarnation >= self.floors.get(&origin.node).copied().unwrap_or(0)
    }

    /// Records that every life of `node` below `floor` is dead and drops their entries
    /// (never this node's own current life).
    fn raise_floor(&mut self, node: u128, floor: u64) {
        let current = self.floors.entry(node).or_insert(floor);
        if *current > floor {
            return;
        }
        *current = floor;
        let me = self.me;
        self.replicas.retain(|origin, _| {
            *origin == me || origin.node != node || origin.incarnation >= floor
        });
    }

    /// The keys of every replica that raising `node`'s floor to `floor` would drop.
    fn doomed_keys(&self, node: u128, floor: u64) -> Touched {
        let mut touched = Touched::default();
        let lives = self.replicas.range(
            Origin {
                node,
                incarnation: 0,
            }..Origin {
                node,
                incarnation: floor,
            },
        );
        for (origin, replica) in lives {
            if *origin != self.me {
                touched.add_keys(*origin, replica);
            }
        }
        touched
    }

    /// Runs `mutate`, reports how the view of `scope` changed, and withdraws local
    /// registrations that now lose a conflict.
    fn change(&mut self, scope: Scope, mutate: impl FnOnce(&mut Self)) -> Vec<Notice> {
        let before = self.view(&scope);
        mutate(self);
        let after = self.view(&scope);
        let mut notices = before.diff(&after);
        let contested: Vec<String> = self
            .own()
            .claims()
            .map(|(name, _)| name)
            .filter(|name| scope.covers_name(name))
            .map(str::to_owned)
            .collect();
        self.withdraw_losers(contested, &mut notices);
        notices
    }

    fn view(&self, scope: &Scope) -> View {
        match scope {
            Scope::Keys(touched) => View {
                names: touched
                    .names
                    .iter()
                    .filter_map(|name| Some((name.clone(), self.whereis(name)?)))
                    .collect(),
                groups: self.touched_members(&touched.groups),
            },
            // One pass over everything rather than one lookup per key in every replica.
            Scope::Everything => View {
                names: self.names(),
                groups: self.groups(),
            },
        }
    }

    /// The members of each touched group from the touched origins only.
    fn touched_members(
        &self,
        groups: &BTreeSet<(String, Origin)>,
    ) -> BTreeMap<String, BTreeSet<ActorAddr>> {
        let mut members: BTreeMap<String, BTreeSet<ActorAddr>> = BTreeMap::new();
        for (group, origin) in groups {
            let Some(replica) = self.replicas.get(origin) else {
                continue;
            };
            for actor in replica.members(group) {
                members
                    .entry(group.clone())
                    .or_default()
                    .insert(ActorAddr::new(*origin, actor));
            }
        }
        members
    }

    /// Withdraws every local claim among `names` that is not the winner, reporting each.
    fn withdraw_losers(&mut self, names: Vec<String>, notices: &mut Vec<Notice>) {
        let mut ops = Vec::new();
        for name in names {
            let Some(claim) = self.own().claim(&name) else {
                continue;
            };
            let loser = ActorAddr::new(self.me, claim.actor);
            let Some(winner) = self.whereis(&name).filter(|winner| *winner != loser) else {
                continue;
            };
            ops.push(self.own_op(OpKind::Unregister { name: name.clone() }));
            notices.push(Notice::Lost {
                name: name.clone(),
                loser,
                winner,
            });
        }
        let deltas = self.pack(ops);
        self.outbox.extend(deltas);
    }
}

/// The empty replica, for an own replica that is (impossibly) missing.
static EMPTY: Replica = Replica::EMPTY;

/// A claim with the key that orders it: the lowest `(lamport, node, incarnation)` wins.
fn stamped(origin: Origin, claim: Claim) -> ((u64, u128, u64), ActorAddr) {
    (
        (claim.lamport, origin.node, origin.incarnation),
        ActorAddr::new(origin, claim.actor),
    )
}
