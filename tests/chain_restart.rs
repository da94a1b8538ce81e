//! Durable chain state across process restarts: three `phalanx node` processes, each a
//! configuration-group node and a replica with its own `--data-dir`. A node killed with
//! SIGKILL and restarted on its data directory comes back and rejoins; then the whole cluster
//! is killed at once and started again, and every write acknowledged before is still there.
//! (Without data directories both would lose state: the second would lose everything.)

#[path = "support/nodes.rs"]
mod nodes;

use std::net::SocketAddr;
use std::path::Path;

use nodes::{
    NodeProcess, assert_all_readable, free_addr, keygen, start_chain_node, until_chain_of, write,
};

fn start(key: &Path, listen: SocketAddr, group: &[SocketAddr], data: &Path) -> NodeProcess {
    let data = data.to_string_lossy().into_owned();
    start_chain_node(key, listen, group, group, &["--data-dir", &data])
}

#[test]
fn restarted_nodes_and_a_restarted_cluster_keep_every_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = keygen(dir.path());
    let addrs: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect();
    let data: Vec<_> = (0..3)
        .map(|i| dir.path().join(format!("node{i}")))
        .collect();
    let mut processes: Vec<NodeProcess> = addrs
        .iter()
        .zip(&data)
        .map(|(addr, data)| start(&key, *addr, &addrs, data))
        .collect();
    until_chain_of(&key, &addrs, 3, 0);
    let mut acked = write(&key, &addrs, 0, 30);
    assert!(
        acked.len() >= 20,
        "only {} of 30 writes acknowledged",
        acked.len()
    );

    // One node (a group node and a replica) killed and restarted on its data directory.
    let members = until_chain_of(&key, &addrs, 3, acked.len() as u64);
    let victim = addrs
        .iter()
        .position(|a| *a == members[0])
        .expect("a known node");
    processes[victim].child.kill().expect("SIGKILL");
    let _ = processes[victim].child.wait();
    acked.extend(write(&key, &addrs, 100, 10));
    processes[victim] = start(&key, addrs[victim], &addrs, &data[victim]);
    until_chain_of(&key, &addrs, 3, acked.len() as u64);
    assert_all_readable(&key, &addrs, &acked);

    // The whole cluster at once: every process killed, then started again.
    acked.extend(write(&key, &addrs, 200, 10));
    for process in &mut processes {
        process.child.kill().expect("SIGKILL");
        let _ = process.child.wait();
    }
    let processes: Vec<NodeProcess> = addrs
        .iter()
        .zip(&data)
        .map(|(addr, data)| start(&key, *addr, &addrs, data))
        .collect();
    until_chain_of(&key, &addrs, 3, acked.len() as u64);
    assert_all_readable(&key, &addrs, &acked);
    eprintln!(
        "{} acknowledged writes kept through a node restart and a cluster restart",
        acked.len()
    );
    drop(processes);
}
