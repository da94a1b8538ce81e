//! Measurements of the gossip protocol in simulation. Ignored by default (they take minutes
//! in debug builds); run them with
//!
//! ```text
//! cargo test -p phalanx-actors --release --test gossip_measure -- --ignored --nocapture
//! ```
//!
//! Each prints its figure; `SIM_SEEDS` sets how many seeds are averaged.

use std::collections::BTreeSet;
use std::time::Duration;

use phalanx_actors::gossip::{Config, Notification};
use phalanx_actors::sim::Cluster;
use phalanx_transports::SimFaults;

const PERIOD: Duration = Duration::from_secs(1);

fn faults(loss: f64) -> SimFaults {
    SimFaults::none()
        .with_loss(loss)
        .with_delay(Duration::from_millis(1), Duration::from_millis(20))
}

fn seeds() -> u64 {
    std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
}

fn all(n: u32) -> BTreeSet<u32> {
    (0..n).collect()
}

/// Runs in whole periods until `done`, checking once per period; returns periods taken.
fn periods_until(cluster: &mut Cluster, limit: u32, done: impl Fn(&Cluster) -> bool) -> u32 {
    for period in 0..limit {
        if done(cluster) {
            return period;
        }
        cluster.run_for(PERIOD);
    }
    panic!("not done within {limit} periods (seed {})", cluster.seed());
}

fn joined(n: u32, seed: u64, loss: f64) -> (Cluster, u32) {
    let mut cluster = Cluster::new(n, seed, Config::default(), faults(loss));
    cluster.join_all_via_first();
    let periods = periods_until(&mut cluster, 600, |c| c.converged_on(&all(n)));
    (cluster, periods)
}

fn false_downs(cluster: &Cluster) -> usize {
    cluster
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

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

#[test]
#[ignore = "measurement; run with --release --ignored --nocapture"]
fn measure_join_and_crash_detection_n100_loss10() {
    let mut join = Vec::new();
    let mut first = Vec::new();
    let mut everyone = Vec::new();
    for seed in 0..seeds() {
        let (mut cluster, periods) = joined(100, seed, 0.10);
        join.push(f64::from(periods));
        cluster.run_for(PERIOD * 10);
        let victim = 37;
        cluster.crash(victim);
        let live: BTreeSet<u32> = all(100).into_iter().filter(|&i| i != victim).collect();
        let start = cluster.now();
        let step = PERIOD / 10;
        let mut first_seen = None;
        // Bounded: 300 periods at most.
        for _ in 0..3000 {
            if first_seen.is_none() && live.iter().any(|&i| !cluster.view(i).contains(&victim)) {
                first_seen = Some(cluster.now().saturating_duration_since(start));
            }
            if live.iter().all(|&i| !cluster.view(i).contains(&victim)) {
                break;
            }
            cluster.run_for(step);
        }
        let all_seen = cluster.now().saturating_duration_since(start);
        first.push(first_seen.unwrap_or(all_seen).as_secs_f64() / PERIOD.as_secs_f64());
        everyone.push(all_seen.as_secs_f64() / PERIOD.as_secs_f64());
    }
    println!(
        "n=100 loss=10%: join convergence {:.1} periods (mean of {}: {join:?})",
        mean(&join),
        join.len()
    );
    println!(
        "n=100 loss=10%: crash detection: first member {:.1} periods, all members {:.1} periods (means of {})",
        mean(&first),
        mean(&everyone),
        everyone.len()
    );
}

#[test]
#[ignore = "measurement; run with --release --ignored --nocapture"]
fn measure_false_downs_n100_ten_minutes() {
    for loss in [0.10, 0.20] {
        let mut counts = Vec::new();
        for seed in 0..seeds() {
            let (mut cluster, _) = joined(100, seed, loss);
            let before = false_downs(&cluster);
            cluster.run_for(Duration::from_secs(600));
            counts.push(false_downs(&cluster) - before);
        }
        println!(
            "n=100 loss={:.0}%: false DOWN notifications over 10 simulated minutes (all observers summed), per seed: {counts:?}",
            loss * 100.0
        );
    }
}

#[test]
#[ignore = "measurement; run with --release --ignored --nocapture"]
fn measure_load_per_member() {
    for n in [10u32, 1000] {
        let (mut cluster, _) = joined(n, 0, 0.0);
        cluster.run_for(PERIOD * 30);
        let sent_before: u64 = cluster.nodes.iter().map(|node| node.datagrams_sent).sum();
        let bytes_before = cluster.datagram_bytes;
        let periods = 60u32;
        cluster.run_for(PERIOD * periods);
        let sent: u64 = cluster
            .nodes
            .iter()
            .map(|node| node.datagrams_sent)
            .sum::<u64>()
            - sent_before;
        let bytes = cluster.datagram_bytes - bytes_before;
        let per = f64::from(n) * f64::from(periods);
        println!(
            "n={n} no loss, steady state: {:.2} datagrams and {:.0} bytes sent per member per period (push-pull excluded)",
            sent as f64 / per,
            bytes as f64 / per
        );
    }
}

#[test]
#[ignore = "measurement; run with --release --ignored --nocapture"]
fn measure_partition_heal_n100() {
    let config = Config::default();
    let interval = config.push_pull_interval.as_secs_f64();
    let mut heals = Vec::new();
    for seed in 0..seeds() {
        let (mut cluster, _) = joined(100, seed, 0.0);
        let left: Vec<u32> = (0..50).collect();
        let right: Vec<u32> = (50..100).collect();
        cluster.net().partition_groups(&left, &right);
        let left_set: BTreeSet<u32> = left.iter().copied().collect();
        let right_set: BTreeSet<u32> = right.iter().copied().collect();
        periods_until(&mut cluster, 600, |c| {
            c.converged_on(&left_set) && c.converged_on(&right_set)
        });
        cluster.net().heal_all();
        let periods = periods_until(&mut cluster, 1200, |c| c.converged_on(&all(100)));
        heals.push(f64::from(periods) * PERIOD.as_secs_f64() / interval);
    }
    println!(
        "n=100 50/50 partition heal: {:.2} push-pull intervals ({interval} s each) (mean of {}: {heals:?})",
        mean(&heals),
        heals.len()
    );
}
