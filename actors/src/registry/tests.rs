//! Scenario tests of the registry: local operations, conflicts and losers, tombstones,
//! dead and reborn nodes.

use super::wire::{Claim, NameRecord, OriginState};
use super::*;

fn addr(node: u128, incarnation: u64, actor: u64) -> ActorAddr {
    ActorAddr {
        node,
        incarnation,
        actor,
    }
}

#[test]
fn register_resolve_and_unregister_locally() {
    let mut registry = ClusterRegistry::new(1, 1);
    registry.register("db", 4).unwrap();
    assert_eq!(registry.whereis("db"), Some(addr(1, 1, 4)));
    assert_eq!(
        registry.register("db", 5),
        Err(RegisterError::AlreadyRegistered {
            holder: addr(1, 1, 4)
        })
    );
    registry.unregister("db").unwrap();
    assert_eq!(registry.whereis("db"), None);
    assert_eq!(
        registry.unregister("db"),
        Err(UnregisterError::NotRegistered)
    );
    let long = "x".repeat(MAX_NAME_LEN + 1);
    assert!(matches!(
        registry.register(&long, 1),
        Err(RegisterError::NameTooLong { .. })
    ));
    assert!(registry.join(&long, 1).is_err());
}

#[test]
fn a_remote_name_blocks_a_local_registration_and_is_reported() {
    let mut a = ClusterRegistry::new(1, 1);
    let mut b = ClusterRegistry::new(2, 1);
    let notices = b.merge_delta(a.register("db", 4).unwrap());
    assert_eq!(
        notices,
        [Notice::Registered {
            name: "db".into(),
            actor: addr(1, 1, 4),
            replaced: None
        }]
    );
    assert!(b.register("db", 9).is_err());
    let notices = b.merge_delta(a.unregister("db").unwrap());
    assert_eq!(
        notices,
        [Notice::Unregistered {
            name: "db".into(),
            actor: addr(1, 1, 4)
        }]
    );
    // The clock moved past the remote stamp: a later registration carries a later stamp.
    b.register("db", 9).unwrap();
    assert!(b.claimants("db")[0].lamport > 1);
}

#[test]
fn concurrent_registrations_keep_the_earliest_and_tell_the_loser() {
    let mut a = ClusterRegistry::new(1, 1);
    let mut b = ClusterRegistry::new(2, 1);
    b.register("warmup", 1).unwrap(); // b's clock is ahead: its claim is later
    let from_b = b.register("leader", 2).unwrap();
    let from_a = a.register("leader", 1).unwrap();
    // a wins on its own node without a word.
    assert_eq!(a.merge_delta(from_b), []);
    assert_eq!(a.poll_delta(), None);
    // b learns it lost, withdraws, and reports it.
    let notices = b.merge_delta(from_a);
    assert!(notices.contains(&Notice::Registered {
        name: "leader".into(),
        actor: addr(1, 1, 1),
        replaced: Some(addr(2, 1, 2)),
    }));
    assert!(notices.contains(&Notice::Lost {
        name: "leader".into(),
        loser: addr(2, 1, 2),
        winner: addr(1, 1, 1),
    }));
    let withdrawal = b.poll_delta().unwrap();
    assert_eq!(b.poll_delta(), None);
    assert_eq!(a.claimants("leader").len(), 2);
    a.merge_delta(withdrawal);
    assert_eq!(a.claimants("leader").len(), 1);
    assert_eq!(b.claimants("leader").len(), 1);
    assert_eq!(a.whereis("leader"), b.whereis("leader"));
}

#[test]
fn a_late_registration_delta_does_not_undo_an_unregistration() {
    let mut a = ClusterRegistry::new(1, 1);
    let mut b = ClusterRegistry::new(2, 1);
    let register = a.register("db", 4).unwrap();
    let unregister = a.unregister("db").unwrap();
    b.merge_delta(unregister.clone());
    assert_eq!(b.merge_delta(register.clone()), []);
    assert_eq!(b.whereis("db"), None);
    // The tombstone goes once a full state shows that everything up to it is known...
    assert!(b.full_state().origins.iter().any(|o| !o.names.is_empty()));
    b.merge_state(a.full_state());
    assert!(b.full_state().origins.iter().all(|o| o.names.is_empty()));
    // ... and the late delta is still recognised as stale.
    b.merge_delta(register);
    b.merge_delta(unregister);
    assert_eq!(b.whereis("db"), None);
}

#[test]
fn groups_span_nodes() {
    let mut a = ClusterRegistry::new(1, 1);
    let mut b = ClusterRegistry::new(2, 1);
    let join = a.join("workers", 1).unwrap().unwrap();
    assert!(a.join("workers", 1).unwrap().is_none());
    let notices = b.merge_delta(join);
    assert_eq!(
        notices,
        [Notice::Joined {
            group: "workers".into(),
            actor: addr(1, 1, 1)
        }]
    );
    a.merge_delta(b.join("workers", 7).unwrap().unwrap());
    assert_eq!(a.members("workers"), [addr(1, 1, 1), addr(2, 1, 7)]);
    assert_eq!(a.members("workers"), b.members("workers"));
    let leave = b.leave("workers", 7).unwrap();
    assert!(b.leave("workers", 7).is_none());
    let notices = a.merge_delta(leave);
    assert_eq!(
        notices,
        [Notice::Left {
            group: "workers".into(),
            actor: addr(2, 1, 7)
        }]
    );
    assert_eq!(a.members("workers"), [addr(1, 1, 1)]);
}

#[test]
fn a_stopped_actor_leaves_everything() {
    let mut a = ClusterRegistry::new(1, 1);
    let mut b = ClusterRegistry::new(2, 1);
    for delta in [
        a.register("one", 3).unwrap(),
        a.register("two", 3).unwrap(),
        a.register("other", 4).unwrap(),
        a.join("g", 3).unwrap().unwrap(),
        a.join("h", 3).unwrap().unwrap(),
    ] {
        b.merge_delta(delta);
    }
    for delta in a.actor_stopped(3) {
        b.merge_delta(delta);
    }
    assert!(a.actor_stopped(3).is_empty());
    assert_eq!(b.names().into_keys().collect::<Vec<_>>(), ["other"]);
    assert!(b.groups().is_empty());
}

#[test]
fn a_dead_node_loses_its_entries_and_its_late_deltas_are_ignored() {
    let mut a = ClusterRegistry::new(1, 1);
    let mut b = ClusterRegistry::new(2, 1);
    b.merge_delta(a.register("db", 4).unwrap());
    b.merge_delta(a.join("g", 4).unwrap().unwrap());
    let late = a.register("cache", 5).unwrap();
    let notices = b.node_down(1, 1);
    assert!(notices.contains(&Notice::Unregistered {
        name: "db".into(),
        actor: addr(1, 1, 4)
    }));
    assert!(notices.contains(&Notice::Left {
        group: "g".into(),
        actor: addr(1, 1, 4)
    }));
    assert_eq!(b.merge_delta(late), []);
    assert_eq!(b.merge_state(a.full_state()), []);
    assert!(b.names().is_empty());
    // A third node learns of the death from b's state.
    let mut c = ClusterRegistry::new(3, 1);
    c.merge_state(a.full_state());
    assert_eq!(c.names().len(), 2);
    c.merge_state(b.full_state());
    assert!(c.names().is_empty());
}

#[test]
fn a_new_incarnation_replaces_the_old_everywhere() {
    let mut old = ClusterRegistry::new(1, 1);
    let mut b = ClusterRegistry::new(2, 1);
    b.merge_delta(old.register("db", 4).unwrap());
    let mut new = ClusterRegistry::new(1, 2);
    let notices = b.merge_delta(new.join("g", 1).unwrap().unwrap());
    assert!(notices.contains(&Notice::Unregistered {
        name: "db".into(),
        actor: addr(1, 1, 4)
    }));
    assert_eq!(b.members("g"), [addr(1, 2, 1)]);
    assert_eq!(b.merge_delta(old.register("late", 1).unwrap()), []);
}

#[test]
fn rejoin_moves_entries_to_the_new_life_and_keeps_their_stamps() {
    let mut a = ClusterRegistry::new(1, 1);
    let mut b = ClusterRegistry::new(2, 1);
    b.merge_delta(a.register("db", 4).unwrap());
    b.merge_delta(a.join("g", 4).unwrap().unwrap());
    // b declares a dead; a hears of it through b's state.
    b.node_down(1, 1);
    a.merge_state(b.full_state());
    assert!(a.is_declared_down());
    assert_eq!(a.whereis("db"), Some(addr(1, 1, 4)));
    // Meanwhile b registers "db" itself, later than a did.
    b.register("db", 9).unwrap();
    assert_eq!(
        a.rejoin(1),
        Err(RejoinError::NotNewer {
            current: 1,
            requested: 1
        })
    );
    let deltas = a.rejoin(2).unwrap();
    assert!(!a.is_declared_down());
    let mut notices = Vec::new();
    for delta in deltas {
        notices.extend(b.merge_delta(delta));
    }
    assert!(notices.iter().any(|n| matches!(n, Notice::Lost { .. })));
    assert_eq!(b.whereis("db"), Some(addr(1, 2, 4)));
    assert_eq!(b.members("g"), [addr(1, 2, 4)]);
    a.merge_delta(b.poll_delta().unwrap());
    a.merge_state(b.full_state());
    b.merge_state(a.full_state());
    assert_eq!(a.names(), b.names());
    assert_eq!(a.claimants("db").len(), 1);
}

#[test]
fn a_peer_cannot_rewrite_this_nodes_own_entries() {
    let mut a = ClusterRegistry::new(1, 1);
    a.register("db", 4).unwrap();
    let forged = State {
        floors: Vec::new(),
        origins: vec![OriginState {
            origin: a.origin(),
            base: 100,
            names: vec![NameRecord {
                name: "db".into(),
                seq: 50,
                claim: Some(Claim {
                    lamport: 0,
                    actor: 666,
                }),
            }],
            groups: Vec::new(),
        }],
    };
    a.merge_state(forged);
    assert_eq!(a.whereis("db"), Some(addr(1, 1, 4)));
}

#[test]
fn duplicate_and_inconsistent_records_merge_the_same_in_any_order() {
    let record = |seq, actor| NameRecord {
        name: "x".into(),
        seq,
        claim: Some(Claim { lamport: 1, actor }),
    };
    let state = |names| State {
        floors: vec![(7, 1)],
        origins: vec![OriginState {
            origin: Origin {
                node: 7,
                incarnation: 1,
            },
            base: 0,
            names,
            groups: Vec::new(),
        }],
    };
    let one = state(vec![record(3, 1), record(3, 2)]);
    let two = state(vec![record(3, 2), record(3, 1), record(2, 9)]);
    let mut a = ClusterRegistry::new(1, 1);
    let mut b = ClusterRegistry::new(2, 1);
    a.merge_state(one.clone());
    a.merge_state(two.clone());
    b.merge_state(two);
    b.merge_state(one);
    assert_eq!(a.names(), b.names());
    assert_eq!(a.whereis("x"), Some(addr(7, 1, 2)));
}
