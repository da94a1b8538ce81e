//! Deterministic simulations of the gossip membership protocol.
//!
//! Each test runs over a small seed budget (`SIM_SEEDS=n` runs more, `SIM_SEED=n` replays
//! one seed).

use std::collections::BTreeSet;
use std::time::Duration;

use phalanx_actors::gossip::{Config, DownReason, MemberState, NodeId, Notification};
use phalanx_actors::sim::{Cluster, for_each_seed};
use phalanx_transports::SimFaults;

fn faults(loss: f64) -> SimFaults {
    SimFaults::none()
        .with_loss(loss)
        .with_delay(Duration::from_millis(1), Duration::from_millis(20))
        .with_duplicate(0.01)
        .with_reorder(0.05, Duration::from_millis(30))
}

fn config() -> Config {
    let mut config = Config::default();
    config.push_pull_interval = Duration::from_secs(10);
    config
}

fn all(n: u32) -> BTreeSet<u32> {
    (0..n).collect()
}

fn joined(n: u32, seed: u64, loss: f64) -> Cluster {
    let mut cluster = Cluster::new(n, seed, config(), faults(loss));
    cluster.join_all_via_first();
    let took = cluster.run_until(Duration::from_secs(120), |c| c.converged_on(&all(n)));
    assert!(took.is_some(), "no convergence on join (seed {seed})");
    cluster
}

fn downs(cluster: &Cluster, observer: u32, of: u32) -> Vec<DownReason> {
    cluster.nodes[observer as usize]
        .notifications
        .iter()
        .filter_map(|(_, n)| match n {
            Notification::Down { member, reason } if member.node == NodeId(u64::from(of)) => {
                Some(*reason)
            }
            _ => None,
        })
        .collect()
}

fn false_downs(cluster: &Cluster, alive: &BTreeSet<u32>) -> usize {
    alive
        .iter()
        .map(|&observer| {
            cluster.nodes[observer as usize]
                .notifications
                .iter()
                .filter(|(_, n)| {
                    matches!(n, Notification::Down { member, .. }
                    if alive.contains(&u32::try_from(member.node.0).unwrap_or(u32::MAX)))
                })
                .count()
        })
        .sum()
}

#[test]
fn join_converges() {
    for_each_seed(3, |seed| {
        let cluster = joined(12, seed, 0.05);
        assert_eq!(cluster.decode_errors, 0);
    });
}

#[test]
fn crash_is_detected_by_every_live_member() {
    for_each_seed(3, |seed| {
        let mut cluster = joined(10, seed, 0.05);
        cluster.crash(3);
        let live: BTreeSet<u32> = all(10).into_iter().filter(|&i| i != 3).collect();
        let took = cluster.run_until(Duration::from_secs(120), |c| c.converged_on(&live));
        assert!(took.is_some(), "crash not detected by all");
        for &observer in &live {
            assert_eq!(downs(&cluster, observer, 3), vec![DownReason::Failed]);
        }
    });
}

#[test]
fn no_false_positives_under_moderate_loss() {
    for_each_seed(2, |seed| {
        let mut cluster = joined(10, seed, 0.05);
        cluster.run_for(Duration::from_secs(120));
        assert_eq!(false_downs(&cluster, &all(10)), 0);
        assert!(cluster.converged_on(&all(10)));
    });
}

#[test]
fn false_suspicion_is_refuted() {
    for_each_seed(3, |seed| {
        let mut cluster = joined(8, seed, 0.0);
        // Node 5 cannot hear anyone for a while: it stops acking and gets suspected.
        for i in 0..8 {
            if i != 5 {
                cluster.net().partition_one_way(i, 5);
            }
        }
        let suspected = cluster.run_until(Duration::from_secs(30), |c| {
            (0..8).any(|i| {
                c.node(i)
                    .and_then(|m| m.member_state(NodeId(5)))
                    .map(|s| s.0)
                    == Some(MemberState::Suspect)
            })
        });
        assert!(suspected.is_some(), "node 5 never suspected");
        cluster.net().heal_all();
        let refuted = cluster.run_until(Duration::from_secs(30), |c| {
            c.node(5).is_some_and(|m| m.incarnation() > 0) && c.converged_on(&all(8))
        });
        assert!(refuted.is_some(), "suspicion not refuted");
        let notified = cluster.nodes[5]
            .notifications
            .iter()
            .any(|(_, n)| matches!(n, Notification::Refuted { .. }));
        assert!(notified);
    });
}

#[test]
fn partition_heals() {
    for_each_seed(2, |seed| {
        let mut cluster = joined(10, seed, 0.0);
        let left: Vec<u32> = (0..5).collect();
        let right: Vec<u32> = (5..10).collect();
        cluster.net().partition_groups(&left, &right);
        let split = cluster.run_until(Duration::from_secs(200), |c| {
            c.converged_on(&left.iter().copied().collect())
                && c.converged_on(&right.iter().copied().collect())
        });
        assert!(split.is_some(), "sides never saw each other down");
        cluster.net().heal_all();
        let healed = cluster.run_until(Duration::from_secs(120), |c| c.converged_on(&all(10)));
        assert!(healed.is_some(), "partition never healed");
    });
}

fn declared_dead_then_back(seed: u64, both_ways: bool) -> Cluster {
    let mut cluster = joined(6, seed, 0.0);
    // Node 2's outbound traffic is cut (and with `both_ways` its inbound too): it cannot
    // ack, so the others declare it dead.
    for i in 0..6 {
        if i != 2 {
            cluster.net().partition_one_way(2, i);
            if both_ways {
                cluster.net().partition_one_way(i, 2);
            }
        }
    }
    let others: BTreeSet<u32> = all(6).into_iter().filter(|&i| i != 2).collect();
    let dead = cluster.run_until(Duration::from_secs(200), |c| {
        others.iter().all(|&i| !c.view(i).contains(&2))
    });
    assert!(dead.is_some(), "node 2 never declared dead");
    cluster.net().heal_all();
    let back = cluster.run_until(Duration::from_secs(120), |c| c.converged_on(&all(6)));
    assert!(back.is_some(), "node 2 never rejoined");
    // Others saw it go down and come back up as a new member (higher incarnation).
    for &observer in &others {
        assert_eq!(downs(&cluster, observer, 2), vec![DownReason::Failed]);
        let ups: Vec<u64> = cluster.nodes[observer as usize]
            .notifications
            .iter()
            .filter_map(|(_, n)| match n {
                Notification::Up { member, .. } if member.node == NodeId(2) => {
                    Some(member.incarnation)
                }
                _ => None,
            })
            .collect();
        assert!(ups.len() == 2 && ups[1] > ups[0], "{ups:?}");
    }
    cluster
}

#[test]
fn node_declared_dead_while_it_hears_others_rejoins_with_a_new_incarnation() {
    for_each_seed(3, |seed| {
        let cluster = declared_dead_then_back(seed, false);
        assert!(cluster.node(2).is_some_and(|m| m.incarnation() > 0));
    });
}

#[test]
fn isolated_node_learns_it_was_declared_dead_and_rejoins() {
    for_each_seed(3, |seed| {
        let cluster = declared_dead_then_back(seed, true);
        let learned = cluster.nodes[2]
            .notifications
            .iter()
            .any(|(_, n)| matches!(n, Notification::Refuted { was_dead: true, .. }));
        assert!(learned, "node 2 never learned it was dead");
    });
}

#[test]
fn crashed_node_restarts_with_forgotten_incarnation_and_rejoins() {
    for_each_seed(2, |seed| {
        let mut cluster = joined(6, seed, 0.02);
        cluster.crash(4);
        let live: BTreeSet<u32> = all(6).into_iter().filter(|&i| i != 4).collect();
        assert!(
            cluster
                .run_until(Duration::from_secs(120), |c| c.converged_on(&live))
                .is_some()
        );
        cluster.restart(4, 0);
        let back = cluster.run_until(Duration::from_secs(120), |c| c.converged_on(&all(6)));
        assert!(back.is_some(), "restarted node never rejoined");
    });
}

#[test]
fn leave_is_reported_as_left() {
    for_each_seed(3, |seed| {
        let mut cluster = joined(8, seed, 0.05);
        cluster.leave(6);
        let rest: BTreeSet<u32> = all(8).into_iter().filter(|&i| i != 6).collect();
        let took = cluster.run_until(Duration::from_secs(60), |c| c.converged_on(&rest));
        assert!(took.is_some(), "leave not seen by all");
        for &observer in &rest {
            assert_eq!(downs(&cluster, observer, 6), vec![DownReason::Left]);
        }
    });
}

#[test]
fn user_events_reach_everyone_once() {
    for_each_seed(3, |seed| {
        let mut cluster = joined(10, seed, 0.05);
        cluster.broadcast_event(1, "deploy", b"v2");
        cluster.broadcast_event(7, "config", &[1, 2, 3]);
        cluster.run_for(Duration::from_secs(30));
        for i in 0..10u32 {
            let events: Vec<(u64, String)> = cluster.nodes[i as usize]
                .notifications
                .iter()
                .filter_map(|(_, n)| match n {
                    Notification::Event(event) => Some((event.origin.0, event.name.clone())),
                    _ => None,
                })
                .collect();
            let expected: usize = [1u32, 7].iter().filter(|&&o| o != i).count();
            assert_eq!(events.len(), expected, "node {i}: {events:?}");
        }
    });
}

#[test]
fn pure_swim_without_gossip_rounds_detects_crashes() {
    for_each_seed(2, |seed| {
        let mut config = config();
        config.gossip_interval = None;
        let mut cluster = Cluster::new(10, seed, config, faults(0.05));
        cluster.join_all_via_first();
        let joined = cluster.run_until(Duration::from_secs(120), |c| c.converged_on(&all(10)));
        assert!(joined.is_some(), "no convergence");
        cluster.crash(0);
        let live: BTreeSet<u32> = (1..10).collect();
        let took = cluster.run_until(Duration::from_secs(120), |c| c.converged_on(&live));
        assert!(took.is_some(), "crash not detected");
    });
}

#[test]
fn a_seed_replays_exactly() {
    let run = |seed: u64| {
        let mut cluster = joined(8, seed, 0.1);
        cluster.crash(3);
        cluster.net().partition(1, 2);
        cluster.run_for(Duration::from_secs(40));
        let logs: Vec<_> = cluster
            .nodes
            .iter()
            .map(|node| node.notifications.clone())
            .collect();
        (logs, cluster.net_stats())
    };
    for_each_seed(2, |seed| {
        assert_eq!(run(seed), run(seed));
    });
    assert_ne!(run(1).0, run(2).0);
}
