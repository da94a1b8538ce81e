//! A chain of three real `phalanx node` processes on loopback: while a client writes through
//! `phalanx kv put`, the head, then the middle, then the tail is killed with SIGKILL and
//! restarted before the next kill. The client sees only successes or one-line errors, and
//! afterwards every acknowledged write is readable.
//!
//! The configuration group runs on three more nodes that hold no replica (`--no-replica`), so
//! the chain is exactly the three replica nodes, and the kills never hit a group node: a
//! group node keeps its raft log in memory, and killing group nodes in turn can leave the
//! group unable to reconfigure the chain (a known limit until the group's log is durable).

#[path = "support/nodes.rs"]
mod nodes;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nodes::{NodeProcess, free_addr, keygen, start_chain_node, until_chain_of};

/// A replica node of the configuration group `group`, joining through `seeds`.
fn start(
    key: &Path,
    listen: SocketAddr,
    group: &[SocketAddr],
    seeds: &[SocketAddr],
) -> NodeProcess {
    start_chain_node(key, listen, group, seeds, &[])
}

fn cli(key: &Path, args: &[&str]) -> Output {
    nodes::cli(key, Duration::from_secs(10), args)
}

/// Waits until the chain has three members that hold at least `committed` entries.
fn until_three(key: &Path, nodes: &[SocketAddr], committed: usize) -> Vec<SocketAddr> {
    until_chain_of(key, nodes, 3, committed as u64)
}

fn assert_one_line_error(output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn killing_head_middle_and_tail_in_turn_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = keygen(dir.path());
    let group: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect();
    let _group: Vec<NodeProcess> = group
        .iter()
        .map(|a| start_chain_node(&key, *a, &group, &group, &["--no-replica"]))
        .collect();
    let addrs: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect();
    let mut processes: Vec<NodeProcess> = addrs
        .iter()
        .map(|a| start(&key, *a, &group, &group))
        .collect();
    until_three(&key, &addrs, 0);
    // `phalanx members` shows what each member does (once the asked node knows the chain).
    let roles = ["group", "head", "middle", "tail"];
    let mut table = String::new();
    for _ in 0..100 {
        let output = cli(&key, &["members", "--node", &group[0].to_string()]);
        table = String::from_utf8_lossy(&output.stdout).into_owned();
        if roles.iter().all(|role| table.contains(role)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for role in roles {
        assert!(table.contains(role), "no {role} in\n{table}");
    }

    // The client: writes through the nodes in turn until told to stop (bounded).
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let (stop, acked, key, addrs) = (stop.clone(), acked.clone(), key.clone(), addrs.clone());
        std::thread::spawn(move || {
            let mut failures = 0;
            for i in 0..5_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let node = addrs[i % addrs.len()].to_string();
                let (name, value) = (format!("k{i}"), format!("v{i}"));
                let output = cli(&key, &["kv", "put", "--node", &node, &name, &value]);
                if output.status.success() {
                    acked.lock().expect("acked").push((name, value));
                } else {
                    assert_one_line_error(&output);
                    failures += 1;
                }
            }
            failures
        })
    };

    for position in 0..3 {
        let before = acked.lock().expect("acked").len();
        // Only kill once every member holds what was acknowledged so far (a node restarted
        // by the previous round has caught up): with state in memory, killing the last
        // member holding a write would lose it, and the chain rightly stops instead.
        let members = until_three(&key, &addrs, before);
        let victim = members[position];
        let index = addrs
            .iter()
            .position(|a| *a == victim)
            .expect("a known node");
        processes[index].child.kill().expect("SIGKILL");
        let _ = processes[index].child.wait();
        // Let the client write through the failure (bounded), then restart the node.
        for _ in 0..100 {
            if acked.lock().expect("acked").len() >= before + 10 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        processes[index] = start(&key, victim, &group, &group);
    }
    until_three(&key, &addrs, 0);
    stop.store(true, Ordering::Relaxed);
    let failures = writer.join().expect("the writer ends");

    let acked = acked.lock().expect("acked").clone();
    assert!(!acked.is_empty(), "no write was acknowledged");
    eprintln!("{} writes acknowledged, {failures} failed", acked.len());
    for (i, (name, value)) in acked.iter().enumerate() {
        let node = addrs[i % addrs.len()].to_string();
        let output = cli(&key, &["kv", "get", "--node", &node, name]);
        let read = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "acknowledged {name} unreadable: {output:?}"
        );
        assert_eq!(read.trim(), value, "acknowledged {name} lost");
    }
}
