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
}

#[test]
fn faulty_runs_are_linearizable_and_lose_no_acknowledged_write() {
    let mut totals = (0u64, 0u64, 0u64, 0u64, 0u64);
    for_each_seed(12, |seed| {
        let report = ChainSim::new(SimSettings::faulty(seed)).run();
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
    });
    println!(
        "seeds {} completed {} given up {} reconfigurations {} faults {}",
        totals.0, totals.1, totals.2, totals.3, totals.4
    );
}
