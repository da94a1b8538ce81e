//! The configuration group changes its own voters in a real cluster: five `phalanx node`
//! processes, three of them the bootstrap group (`--chain-group`), two standbys
//! (`--chain-group-standby`). The chain's replicas are the last bootstrap node and the two
//! standbys; the first two bootstrap nodes hold no replica. `phalanx chain group` moves the
//! group to the three replica nodes; then the two other bootstrap nodes are SIGKILLed, so the
//! old group has lost its majority, and then one chain member. Only the new group can remove
//! it from the chain: it does, writes go on, and every acknowledged write is still there.
//! (One member at a time: the group never makes a silent replica head, so two dead members
//! at the front of a chain wait for one of them to return, whichever group decides.)

#[path = "support/nodes.rs"]
mod nodes;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use nodes::{
    NodeProcess, assert_all_readable, cli, free_addr, keygen, start_chain_node, until_chain_of,
    write,
};

#[test]
fn the_group_moves_to_standbys_and_the_chain_outlives_the_old_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = keygen(dir.path());
    let addrs: Vec<SocketAddr> = (0..5).map(|_| free_addr()).collect();
    let bootstrap = &addrs[..3];
    let mut processes: Vec<Option<NodeProcess>> = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let extra: &[&str] = match i {
                0 | 1 => &["--no-replica"],
                2 => &[],
                _ => &["--chain-group-standby"],
            };
            Some(start_chain_node(&key, *addr, bootstrap, &addrs, extra))
        })
        .collect();
    until_chain_of(&key, &addrs, 3, 0);
    let mut acked = write(&key, &addrs, 0, 20);
    assert!(acked.len() >= 15, "only {} of 20 acknowledged", acked.len());

    // Voters: the last bootstrap node and the two standbys.
    let voters: Vec<String> = addrs[2..].iter().map(ToString::to_string).collect();
    let voters = voters.join(",");
    let output = cli(
        &key,
        Duration::from_secs(10),
        &[
            "chain",
            "group",
            "--node",
            &addrs[0].to_string(),
            "--voters",
            &voters,
        ],
    );
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // The two bootstrap nodes that left the group die: the old group has no majority now.
    for process in processes.iter_mut().take(2) {
        if let Some(mut process) = process.take() {
            process.child.kill().expect("SIGKILL");
            let _ = process.child.wait();
        }
    }
    // Then a chain member (and voter) dies: only the new group can remove it.
    if let Some(mut process) = processes[4].take() {
        process.child.kill().expect("SIGKILL");
        let _ = process.child.wait();
    }
    let live = &addrs[2..4];
    let after = write(&key, live, 100, 20);
    assert!(after.len() >= 10, "only {} of 20 acknowledged", after.len());
    acked.extend(after);
    let members = until_chain_of(&key, live, 2, acked.len() as u64);
    assert!(members.iter().all(|m| live.contains(m)), "{members:?}");
    assert_all_readable(&key, live, &acked);
    let status = cli(
        &key,
        Duration::from_secs(10),
        &["chain", "status", "--node", &addrs[3].to_string()],
    );
    let text = String::from_utf8_lossy(&status.stdout);
    let named: BTreeSet<&str> = text
        .lines()
        .find_map(|line| line.strip_prefix("configuration group (voters): "))
        .map(|list| list.split(',').collect())
        .unwrap_or_default();
    assert_eq!(named, voters.split(',').collect::<BTreeSet<_>>(), "{text}");
    eprintln!(
        "{} acknowledged writes kept; the chain reconfigured through the new group",
        acked.len()
    );
    drop(processes);
}
