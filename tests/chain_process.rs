//! A chain of three real `phalanx node` processes on loopback: while a client writes through
//! `phalanx kv put`, the head, then the middle, then the tail is killed with SIGKILL and
//! restarted before the next kill. The client sees only successes or one-line errors, and
//! afterwards every acknowledged write is readable.

#[path = "support/nodes.rs"]
mod nodes;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nodes::{NodeProcess, free_addr, keygen, start_chain_node, until_chain_of};

/// A chain node whose configuration group and seeds are all of `all`.
fn start(key: &Path, listen: SocketAddr, all: &[SocketAddr]) -> NodeProcess {
    start_chain_node(key, listen, all, all)
}

fn cli(key: &Path, args: &[&str]) -> Output {
    nodes::cli(key, Duration::from_secs(10), args)
}

fn until_three(key: &Path, nodes: &[SocketAddr]) -> Vec<SocketAddr> {
    until_chain_of(key, nodes, 3)
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
    let addrs: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect();
    let mut processes: Vec<NodeProcess> = addrs.iter().map(|a| start(&key, *a, &addrs)).collect();
    until_three(&key, &addrs);
    // `phalanx members` shows what each member does.
    let table = cli(&key, &["members", "--node", &addrs[0].to_string()]);
    let table = String::from_utf8_lossy(&table.stdout);
    for role in ["group", "head", "middle", "tail"] {
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
        let members = until_three(&key, &addrs);
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
        processes[index] = start(&key, victim, &addrs);
    }
    until_three(&key, &addrs);
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
