//! What a change may affect, and the notices that describe how it changed the view.

use std::collections::{BTreeMap, BTreeSet};

use super::notice::Notice;
use super::replica::Replica;
use super::wire::{ActorAddr, Origin};

/// Which part of the view a change may affect.
#[derive(Debug)]
pub(crate) enum Scope {
    /// Only these names and groups (a delta, a node going down).
    Keys(Touched),
    /// Anything (a full state).
    Everything,
}

/// Names, and groups per origin, a change may affect.
///
/// Groups are tracked per origin because a group can have many members: a delta changes
/// only its own origin's members, and reporting it must not cost the size of the group.
#[derive(Debug, Default)]
pub(crate) struct Touched {
    pub(crate) names: BTreeSet<String>,
    pub(crate) groups: BTreeSet<(String, Origin)>,
}

/// The resolved view of a scope: the names that resolve, and the members of groups (for
/// [`Scope::Keys`], only the members from the touched origins).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct View {
    pub(crate) names: BTreeMap<String, ActorAddr>,
    pub(crate) groups: BTreeMap<String, BTreeSet<ActorAddr>>,
}

impl Scope {
    /// Whether a change in this scope may affect `name`.
    pub(crate) fn covers_name(&self, name: &str) -> bool {
        match self {
            Self::Keys(touched) => touched.names.contains(name),
            Self::Everything => true,
        }
    }
}

impl Touched {
    /// Adds every key `replica`, of `origin`, has a record of.
    pub(crate) fn add_keys(&mut self, origin: Origin, replica: &Replica) {
        self.names.extend(replica.name_keys().map(str::to_owned));
        let groups = replica.group_keys().map(|group| (group.to_owned(), origin));
        self.groups.extend(groups);
    }
}

impl View {
    /// The notices that take a watcher from `self` to `after`.
    pub(crate) fn diff(&self, after: &View) -> Vec<Notice> {
        let mut notices = Vec::new();
        let names: BTreeSet<&String> = self.names.keys().chain(after.names.keys()).collect();
        for name in names {
            let old = self.names.get(name).copied();
            match (old, after.names.get(name).copied()) {
                (old, Some(actor)) if old != Some(actor) => notices.push(Notice::Registered {
                    name: name.clone(),
                    actor,
                    replaced: old,
                }),
                (Some(actor), None) => notices.push(Notice::Unregistered {
                    name: name.clone(),
                    actor,
                }),
                _ => {}
            }
        }
        let empty = BTreeSet::new();
        let groups: BTreeSet<&String> = self.groups.keys().chain(after.groups.keys()).collect();
        for group in groups {
            let old = self.groups.get(group).unwrap_or(&empty);
            let new = after.groups.get(group).unwrap_or(&empty);
            for actor in new.difference(old) {
                notices.push(Notice::Joined {
                    group: group.clone(),
                    actor: *actor,
                });
            }
            for actor in old.difference(new) {
                notices.push(Notice::Left {
                    group: group.clone(),
                    actor: *actor,
                });
            }
        }
        notices
    }
}
