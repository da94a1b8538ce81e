//! Listing for "Membership and discovery": the node's SWIM + Lifeguard state machine in the
//! deterministic simulation: twenty nodes over a lossy network, a crash, a partition.
// `mdbook test` passes no --extern, so the listing names the crate itself.
#[allow(unused_extern_crates)]
extern crate phalanx;

use std::collections::BTreeSet;

use phalanx::actors::gossip::Config;
use phalanx::actors::sim::Cluster;
use phalanx::transports::SimFaults;

pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    // ANCHOR: form
    // Twenty nodes; every datagram has a 10 % chance of being lost. Everything random
    // (loss, delays, the protocol's own choices) follows from the seed: a run replays exactly.
    let config = Config::default();
    let period = config.probe_interval;
    let mut cluster = Cluster::new(20, 7, config, SimFaults::default().with_loss(0.10));
    cluster.join_all_via_first();
    let everyone: BTreeSet<u32> = (0..20).collect();
    let joined = cluster
        .run_until(period * 60, |c| c.converged_on(&everyone))
        .ok_or("the cluster did not form")?;
    println!("20 nodes agree on the membership after {joined:?} of virtual time");
    // ANCHOR_END: form

    // ANCHOR: crash
    // Node 7 crashes: no leave message, it simply stops answering. Every other node must
    // stop listing it: probes fail, indirect probes fail, suspicion times out.
    cluster.crash(7);
    let survivors: BTreeSet<u32> = everyone.iter().copied().filter(|&i| i != 7).collect();
    let detected = cluster
        .run_until(period * 60, |c| {
            survivors.iter().all(|&i| !c.view(i).contains(&7))
        })
        .ok_or("the crash was not detected")?;
    let periods = detected.as_secs_f64() / period.as_secs_f64();
    println!("every survivor dropped node 7 after {periods:.1} protocol periods");
    // ANCHOR_END: crash

    // ANCHOR: partition
    // Cut the survivors in two halves long enough for each side to declare the other dead,
    // then heal the network: the periodic push-pull exchange of full state merges the views.
    let (left, right): (Vec<u32>, Vec<u32>) = survivors.iter().partition(|&&i| i < 10);
    cluster.net().partition_groups(&left, &right);
    cluster.run_for(period * 60);
    let split = !cluster.view(left[0]).contains(&right[0]);
    cluster.net().heal_all();
    let healed = cluster
        .run_until(period * 120, |c| c.converged_on(&survivors))
        .ok_or("the partition did not heal")?;
    println!("after the partition (split seen: {split}), one view again after {healed:?}");
    // ANCHOR_END: partition
    Ok(())
}
