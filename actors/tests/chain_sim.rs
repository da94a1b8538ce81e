//! Chain replication under simulated faults: every history is checked for linearizability
//! and for lost acknowledged writes. `CHAIN_SEEDS=n` runs n seeds, `SIM_SEED=n` replays one.

use phalanx_actors::chain::linearizability::Verdict;
use phalanx_actors::chain::sim::{ChainSim, SimSettings, for_each_seed};

#[test]
fn fault_free_run_is_linearizable_and_makes_progress() {
    let mut settings = SimSettings::faulty(1);
    settings.nemesis = false;
    let report = ChainSim::new(settings).run();
    println!("{report:?}");
    assert_eq!(report.verdict, Verdict::Linearizable);
    assert_eq!(report.lost_writes, 0);
    assert_eq!(report.given_up, 0);
    assert!(report.completed > 300, "{report:?}");
    assert_eq!(report.reconfigurations, 0);
    assert!(!report.stuck);
}

/// Runs `settings(seed)` over the seeds, checks every run, and prints the totals.
fn check_seeds(label: &str, default_seeds: u64, settings: fn(u64) -> SimSettings) {
    let mut totals = (0u64, 0u64, 0u64, 0u64, 0u64, 0u64, (0u64, 0u64));
    for_each_seed(default_seeds, |seed| {
        let report = ChainSim::new(settings(seed)).run();
        assert_eq!(
            report.verdict,
            Verdict::Linearizable,
            "seed {seed}: {report:?}"
        );
        assert_eq!(report.lost_writes, 0, "seed {seed}: {report:?}");
        totals.0 += 1;
        totals.1 += report.completed;
        totals.2 += report.given_up;
        totals.3 += report.reconfigurations;
        totals.4 += report.faults;
        totals.5 += u64::from(report.stuck);
        totals.6.0 += report.group_changes;
        totals.6.1 += report.group_changes_done;
    });
    println!(
        "{label} seeds {} completed {} given up {} reconfigurations {} faults {} stuck {} \
         group changes started {} done {}",
        totals.0, totals.1, totals.2, totals.3, totals.4, totals.5, totals.6.0, totals.6.1
    );
}

#[test]
fn faulty_runs_are_linearizable_and_lose_no_acknowledged_write() {
    check_seeds("in-memory", 50, SimSettings::faulty);
}

/// Durable replicas: crashes keep what was synced (a torn last write at most), restarted
/// replicas keep their incarnation and recover from their disk, and the whole cluster may
/// crash at once. Nothing acknowledged may be lost, and every history stays linearizable.
#[test]
fn durable_runs_survive_whole_cluster_crashes() {
    check_seeds("durable", 40, SimSettings::faulty_durable);
}

/// Rendezvous placement: besides failures, the group moves members of a settled chain to
/// the best-placed replicas, one at a time.
#[test]
fn placed_runs_are_linearizable_and_lose_no_acknowledged_write() {
    check_seeds("placed", 30, SimSettings::faulty_placed);
}

/// The group changes its own membership while everything else fails: the nemesis replaces
/// voters with spare group nodes through joint consensus, leases follow the voters, and
/// whole-cluster crashes (durable replicas) make group nodes replay their conf changes.
#[test]
fn regrouped_runs_are_linearizable_and_lose_no_acknowledged_write() {
    check_seeds("regrouped", 40, SimSettings::faulty_regrouped);
}

/// The checker has teeth: with fencing disabled (no fence wait, long leases) a removed
/// replica keeps serving reads while the new chain commits writes, and some seed must show a
/// non-linearizable history.
#[test]
fn disabling_fencing_is_caught_by_the_checker() {
    let mut caught = None;
    for seed in 0..60 {
        let mut settings = SimSettings::faulty(seed);
        settings.lease = std::time::Duration::from_secs(3);
        settings.fence_wait = std::time::Duration::ZERO;
        let report = ChainSim::new(settings).run();
        if report.verdict == Verdict::NotLinearizable {
            caught = Some(seed);
            break;
        }
    }
    println!("fencing disabled: first non-linearizable seed {caught:?}");
    assert!(caught.is_some(), "no seed exposed the missing fence");
}

#[test]
fn larger_clusters_under_faults_are_linearizable() {
    let mut stuck = 0;
    for_each_seed(10, |seed| {
        let mut settings = SimSettings::faulty(seed);
        settings.group_size = 5;
        settings.chain_length = 4;
        settings.spares = 2;
        settings.clients = 6;
        settings.keys = 4;
        let report = ChainSim::new(settings).run();
        assert_eq!(
            report.verdict,
            Verdict::Linearizable,
            "seed {seed}: {report:?}"
        );
        assert_eq!(report.lost_writes, 0, "seed {seed}: {report:?}");
        stuck += u64::from(report.stuck);
    });
    println!("larger clusters: stuck {stuck}");
}
