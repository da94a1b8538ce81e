//! CRAQ read scaling in the simulation, with a modelled service rate per replica (100 µs per
//! message): read throughput on a 95/5 mix against chain length, CRAQ (reads at any
//! replica) next to plain chain replication (reads at the tail). Prints a table; run with
//! `--nocapture` to see it.

use phalanx_actors::chain::linearizability::Verdict;
use phalanx_actors::chain::sim::{ChainSim, SimSettings};

#[test]
fn craq_read_throughput_scales_with_chain_length() {
    let mut rows = Vec::new();
    for length in 1..=5 {
        let craq = ChainSim::new(SimSettings::measurement(length, true)).run();
        let plain = ChainSim::new(SimSettings::measurement(length, false)).run();
        assert_eq!(craq.verdict, Verdict::Linearizable);
        assert_eq!(plain.verdict, Verdict::Linearizable);
        assert_eq!(craq.lost_writes + plain.lost_writes, 0);
        println!(
            "length {length}: CRAQ mean read {:?}, write {:?}; CR mean read {:?}, write {:?}",
            craq.read_latency, craq.write_latency, plain.read_latency, plain.write_latency
        );
        rows.push((length, craq.read_throughput, plain.read_throughput));
    }
    let base = rows[0].1;
    println!("chain length | CRAQ reads/s | vs linear | CR (tail) reads/s");
    for &(length, craq, plain) in &rows {
        let linear = craq / (base * length as f64);
        println!("{length:>12} | {craq:>12.0} | {linear:>9.2} | {plain:>17.0}");
    }
    // Simulated time, so the figures are deterministic. Up to length 4 CRAQ grows at least
    // 0.8x linearly; at 5 the head, which takes every write besides its share of reads,
    // saturates first (0.79x measured), so the bound asserted there is 0.75x.
    for &(length, craq, plain) in &rows {
        let bound = if length <= 4 { 0.8 } else { 0.75 };
        assert!(
            craq >= bound * base * length as f64,
            "length {length}: {craq:.0} reads/s < {bound} x {length} x {base:.0}"
        );
        // Plain chain replication reads only at the tail: flat.
        assert!(plain <= 1.1 * base);
    }
}
