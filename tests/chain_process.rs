//! A chain of three real `phalanx node` processes on loopback: while a client writes through
//! `phalanx kv put`, the head, then the middle, then the tail is killed with SIGKILL and
//! restarted before the next kill. The client sees only successes or one-line errors, and
//! afterwards every acknowledged write is readable.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_phalanx");

/// A node process, killed when dropped so that a failing test leaves nothing behind.
struct NodeProcess {
    child: Child,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address whose port was free for both TCP and UDP a moment ago.
fn free_addr() -> SocketAddr {
    for _ in 0..100 {
        let Ok(tcp) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = tcp.local_addr() else { continue };
        if UdpSocket::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no free loopback port");
}

fn keygen(dir: &Path) -> PathBuf {
    let key = dir.join("cluster.key");
    let output = Command::new(BIN)
        .args(["keygen", "--out"])
        .arg(&key)
        .output()
        .expect("keygen");
    assert!(output.status.success(), "{output:?}");
    key
}

fn start(key: &Path, listen: SocketAddr, all: &[SocketAddr]) -> NodeProcess {
    let group: Vec<String> = all.iter().map(ToString::to_string).collect();
    let mut command = Command::new(BIN);
    command
        .args([
            "node",
            "--listen",
            &listen.to_string(),
            "--probe-interval",
            "100",
        ])
        .args(["--chain-group", &group.join(",")])
        .arg("--cluster-key-file")
        .arg(key);
    for seed in all.iter().filter(|a| **a != listen) {
        command.args(["--seed", &seed.to_string()]);
    }
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node starts");
    NodeProcess { child }
}

fn cli(key: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--cluster-key-file")
        .arg(key)
        .args(["--timeout", "10"])
        .output()
        .expect("the CLI runs")
}

/// The chain's member addresses, head first, when all of them report their progress.
fn chain_members(key: &Path, node: SocketAddr) -> Option<Vec<SocketAddr>> {
    let output = cli(key, &["chain", "status", "--node", &node.to_string()]);
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut members = Vec::new();
    for line in text.lines().skip_while(|l| !l.starts_with("POS")).skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != 6 || !fields[0].chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if fields[3] == "?" {
            return None;
        }
        members.push(fields[2].parse().ok()?);
    }
    Some(members)
}

/// Waits (bounded: 60 s) until the chain has three members that all answer.
fn until_three(key: &Path, nodes: &[SocketAddr]) -> Vec<SocketAddr> {
    for round in 0..300 {
        let node = nodes[round % nodes.len()];
        if let Some(members) = chain_members(key, node)
            && members.len() == 3
        {
            return members;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the chain never had three answering members");
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
