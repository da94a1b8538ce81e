//! One origin's entries as this node knows them, and the join that merges two such views.
//!
//! Every origin (a node in one life) is the only writer of its own entries, and numbers its
//! operations 1, 2, 3, ... A replica of an origin knows a set of those operations and keeps,
//! per key, only the record of the latest one it knows. It also keeps `base`: every operation
//! up to `base` is known. That makes tombstones collectable: a tombstone at or below `base`
//! says nothing a missing key does not, because any older record for the key that could still
//! arrive is at or below `base` too and is therefore recognised as stale and dropped.
//!
//! Merging is the union of the known operation sets, computed on the compact form:
//!
//! * a key both sides hold keeps the record with the higher sequence number;
//! * a key only one side holds, at sequence `s`, survives iff `s` is above the other side's
//!   `base` (otherwise the other side knew that operation and something later replaced it);
//! * `base` becomes the larger of the two, and tombstones at or below it go.
//!
//! Since the live entries are a function of the known operation set, and union is
//! commutative, associative and idempotent, so is this merge on everything a user can see.
//! A delta is the same merge with a replica that knows just its operations (`base` 0).

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use super::wire::{Claim, GroupRecord, NameRecord, Op, OpKind, Origin, OriginState};

/// One origin's entries; see the module docs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Replica {
    /// Every operation up to this one is reflected below.
    base: u64,
    names: BTreeMap<String, Versioned<Claim>>,
    groups: BTreeMap<(String, u64), Versioned<()>>,
}

/// The latest known record of one key: `None` is a tombstone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Versioned<V> {
    seq: u64,
    value: Option<V>,
}

impl Replica {
    /// A replica that knows nothing.
    pub(crate) const EMPTY: Self = Self {
        base: 0,
        names: BTreeMap::new(),
        groups: BTreeMap::new(),
    };

    /// Rebuilds a replica from the wire form (any bytes a peer sent: duplicates are merged).
    pub(crate) fn from_wire(state: OriginState) -> Self {
        let mut replica = Self {
            base: 0,
            ..Self::default()
        };
        for record in state.names {
            upsert(
                &mut replica.names,
                0,
                record.name,
                Versioned {
                    seq: record.seq,
                    value: record.claim,
                },
            );
        }
        for record in state.groups {
            upsert(
                &mut replica.groups,
                0,
                (record.group, record.actor),
                Versioned {
                    seq: record.seq,
                    value: record.joined.then_some(()),
                },
            );
        }
        replica.base = state.base;
        replica.collect_garbage();
        replica
    }

    /// The wire form of this replica.
    pub(crate) fn to_wire(&self, origin: Origin) -> OriginState {
        OriginState {
            origin,
            base: self.base,
            names: self
                .names
                .iter()
                .map(|(name, record)| NameRecord {
                    name: name.clone(),
                    seq: record.seq,
                    claim: record.value,
                })
                .collect(),
            groups: self
                .groups
                .iter()
                .map(|((group, actor), record)| GroupRecord {
                    group: group.clone(),
                    actor: *actor,
                    seq: record.seq,
                    joined: record.value.is_some(),
                })
                .collect(),
        }
    }

    /// Merges one operation received in a delta.
    pub(crate) fn apply(&mut self, op: Op) {
        let seq = op.seq;
        match op.kind {
            OpKind::Register { name, claim } => {
                upsert(
                    &mut self.names,
                    self.base,
                    name,
                    Versioned {
                        seq,
                        value: Some(claim),
                    },
                );
            }
            OpKind::Unregister { name } => {
                upsert(
                    &mut self.names,
                    self.base,
                    name,
                    Versioned { seq, value: None },
                );
            }
            OpKind::Join { group, actor } => {
                let key = (group, actor);
                upsert(
                    &mut self.groups,
                    self.base,
                    key,
                    Versioned {
                        seq,
                        value: Some(()),
                    },
                );
            }
            OpKind::Leave { group, actor } => {
                upsert(
                    &mut self.groups,
                    self.base,
                    (group, actor),
                    Versioned { seq, value: None },
                );
            }
        }
        self.collect_garbage();
    }

    /// Applies an operation of this node's own origin, whose replica is always complete.
    pub(crate) fn apply_own(&mut self, op: Op) {
        let seq = op.seq;
        self.apply(op);
        self.base = self.base.max(seq);
        self.collect_garbage();
    }

    /// Merges another replica of the same origin (the join described in the module docs).
    pub(crate) fn merge(&mut self, other: Replica) {
        merge_map(&mut self.names, self.base, other.names, other.base);
        merge_map(&mut self.groups, self.base, other.groups, other.base);
        self.base = self.base.max(other.base);
        self.collect_garbage();
    }

    /// The live claim on `name`, if any.
    pub(crate) fn claim(&self, name: &str) -> Option<Claim> {
        self.names.get(name).and_then(|record| record.value)
    }

    /// Every live claim.
    pub(crate) fn claims(&self) -> impl Iterator<Item = (&str, Claim)> + '_ {
        self.names
            .iter()
            .filter_map(|(name, record)| Some((name.as_str(), record.value?)))
    }

    /// Every name with a record, live or not.
    pub(crate) fn name_keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.names.keys().map(String::as_str)
    }

    /// The actors of this origin currently in `group`.
    pub(crate) fn members<'a>(&'a self, group: &'a str) -> impl Iterator<Item = u64> + 'a {
        self.groups
            .range((group.to_owned(), 0)..=(group.to_owned(), u64::MAX))
            .filter(|(_, record)| record.value.is_some())
            .map(|((_, actor), _)| *actor)
    }

    /// Whether `actor` of this origin is in `group`.
    pub(crate) fn is_member(&self, group: &str, actor: u64) -> bool {
        self.groups
            .get(&(group.to_owned(), actor))
            .is_some_and(|record| record.value.is_some())
    }

    /// Every live (group, actor) membership.
    pub(crate) fn memberships(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.groups
            .iter()
            .filter(|(_, record)| record.value.is_some())
            .map(|((group, actor), _)| (group.as_str(), *actor))
    }

    /// Every group with a record, live or not.
    pub(crate) fn group_keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.groups.keys().map(|(group, _)| group.as_str())
    }

    /// Drops the tombstones that `base` makes redundant.
    fn collect_garbage(&mut self) {
        let base = self.base;
        self.names
            .retain(|_, record| record.value.is_some() || record.seq > base);
        self.groups
            .retain(|_, record| record.value.is_some() || record.seq > base);
    }
}

/// Puts `record` under `key` if it is newer than what is there, or if nothing is there and it
/// is above `base` (at or below, the operation is known and was superseded).
///
/// Two records with the same sequence number only differ if a peer lied; the larger one wins
/// so that the result still does not depend on the order of arrival.
fn upsert<K: Ord, V: Ord>(
    map: &mut BTreeMap<K, Versioned<V>>,
    base: u64,
    key: K,
    record: Versioned<V>,
) {
    match map.entry(key) {
        Entry::Occupied(mut entry) => {
            if record > *entry.get() {
                entry.insert(record);
            }
        }
        Entry::Vacant(entry) => {
            if record.seq > base {
                entry.insert(record);
            }
        }
    }
}

fn merge_map<K: Ord, V: Ord>(
    mine: &mut BTreeMap<K, Versioned<V>>,
    my_base: u64,
    theirs: BTreeMap<K, Versioned<V>>,
    their_base: u64,
) {
    // A key only this side holds, at or below their base: they know that operation and
    // have since dropped the key, so a later operation removed it.
    mine.retain(|key, record| record.seq > their_base || theirs.contains_key(key));
    for (key, record) in theirs {
        upsert(mine, my_base, key, record);
    }
}
