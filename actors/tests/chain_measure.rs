//! CRAQ read scaling in the simulation, with a modelled service rate per replica (100 µs per
//! message): read throughput on a 95/5 mix against chain length 1, 3, 5 and 7, CRAQ (reads
//! placed by the client's `ReadBalancer`) next to plain chain replication (reads at the tail).
//! Prints a table; run with `--nocapture` to see it.
//!
//! Two CRAQ figures per length: over the whole 600 ms of load of
//! [`SimSettings::measurement`], which includes the chain's start (every member syncs with
//! its predecessor, through queues already full of reads), and in the steady state, the reads completed between 600 ms and 1,200 ms of
//! a run loaded for 1,200 ms (runs are deterministic, so its first 600 ms are the shorter
//! run's).

use std::time::Duration;

use phalanx_actors::chain::linearizability::Verdict;
use phalanx_actors::chain::sim::{ChainSim, SimReport, SimSettings};

const LENGTHS: [usize; 4] = [1, 3, 5, 7];

/// A measurement run loaded for `duration`.
fn run(length: usize, craq: bool, duration: Duration) -> SimReport {
    let mut settings = SimSettings::measurement(length, craq);
    settings.duration = duration;
    let report = ChainSim::new(settings).run();
    assert_eq!(report.verdict, Verdict::Linearizable);
    assert_eq!(report.lost_writes, 0);
    report
}

#[test]
fn craq_read_throughput_scales_with_chain_length() {
    let short = Duration::from_millis(600);
    let long = 2 * short;
    let mut rows = Vec::new();
    for length in LENGTHS {
        let craq = run(length, true, short);
        let craq_long = run(length, true, long);
        let plain = run(length, false, short);
        // Reads completed in the second half of the long run, per second.
        let steady = (craq_long.read_throughput * long.as_secs_f64()
            - craq.read_throughput * short.as_secs_f64())
            / (long - short).as_secs_f64();
        println!(
            "length {length}: CRAQ mean read {:?}, write {:?}; CR mean read {:?}, write {:?}",
            craq.read_latency, craq.write_latency, plain.read_latency, plain.write_latency
        );
        rows.push((length, craq.read_throughput, steady, plain.read_throughput));
    }
    let (base, steady_base) = (rows[0].1, rows[0].2);
    println!(
        "chain length | CRAQ reads/s | vs linear | steady reads/s | vs linear | CR (tail) reads/s"
    );
    for &(length, craq, steady, plain) in &rows {
        let linear = craq / (base * length as f64);
        let steady_linear = steady / (steady_base * length as f64);
        println!(
            "{length:>12} | {craq:>12.0} | {linear:>9.2} | {steady:>14.0} | {steady_linear:>9.2} \
             | {plain:>17.0}"
        );
    }
    // Simulated time, so the figures are deterministic. CRAQ grows at least 0.8x linearly
    // at every length, over the whole run (0.93x, 0.88x, 0.84x measured) and in the steady
    // state (0.94x, 0.92x, 0.91x).
    for &(length, craq, steady, plain) in &rows {
        let length = length as f64;
        assert!(
            steady >= 0.8 * steady_base * length,
            "length {length}: steady {steady:.0} reads/s < 0.8 x {length} x {steady_base:.0}"
        );
        assert!(
            craq >= 0.8 * base * length,
            "length {length}: {craq:.0} reads/s < 0.8 x {length} x {base:.0}"
        );
        // Plain chain replication reads only at the tail: flat.
        assert!(plain <= 1.1 * base);
    }
}
