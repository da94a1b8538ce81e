//! `phalanx node` processes on loopback for the real-process tests, and the CLI that talks to
//! them. Every process is killed when its handle is dropped, so a failing test leaves
//! nothing behind.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The `phalanx` binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_phalanx");

/// A node process, killed when dropped.
pub(crate) struct NodeProcess {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address whose port was free for both TCP and UDP a moment ago.
pub(crate) fn free_addr() -> SocketAddr {
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

/// Makes a cluster key in `dir`.
pub(crate) fn keygen(dir: &Path) -> PathBuf {
    keygen_named(dir, "cluster.key")
}

/// Makes a cluster key in the file `name` of `dir`.
pub(crate) fn keygen_named(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(name);
    let output = Command::new(BIN)
        .args(["keygen", "--out"])
        .arg(&key)
        .output()
        .expect("keygen");
    assert!(output.status.success(), "{output:?}");
    key
}

/// Starts `phalanx node` at `listen` with the cluster key and extra arguments.
pub(crate) fn start_node(key: &Path, listen: SocketAddr, args: &[String]) -> NodeProcess {
    let child = Command::new(BIN)
        .args([
            "node",
            "--listen",
            &listen.to_string(),
            "--cluster-key-file",
        ])
        .arg(key)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node starts");
    NodeProcess {
        child,
        addr: listen,
    }
}

/// Starts a chain node at `listen` with a 100 ms protocol period, the configuration group
/// `group`, every address of `seeds` other than its own as a seed, and `extra` arguments.
pub(crate) fn start_chain_node(
    key: &Path,
    listen: SocketAddr,
    group: &[SocketAddr],
    seeds: &[SocketAddr],
    extra: &[&str],
) -> NodeProcess {
    let group: Vec<String> = group.iter().map(ToString::to_string).collect();
    let mut args = vec![
        "--probe-interval".to_owned(),
        "100".to_owned(),
        "--chain-group".to_owned(),
        group.join(","),
    ];
    for seed in seeds.iter().filter(|a| **a != listen) {
        args.extend(["--seed".to_owned(), seed.to_string()]);
    }
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    start_node(key, listen, &args)
}

/// Runs the CLI with the cluster key and a bound on how long it waits for the node.
pub(crate) fn cli(key: &Path, timeout: Duration, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--cluster-key-file")
        .arg(key)
        .args(["--timeout", &timeout.as_secs().max(1).to_string()])
        .output()
        .expect("the CLI runs")
}

/// The chain's members, head first, with how far each has committed, when every member
/// reports its progress.
pub(crate) fn chain_members(key: &Path, node: SocketAddr) -> Option<Vec<(SocketAddr, u64)>> {
    let output = cli(
        key,
        Duration::from_secs(10),
        &["chain", "status", "--node", &node.to_string()],
    );
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
        members.push((fields[2].parse().ok()?, fields[3].parse().ok()?));
    }
    Some(members)
}

/// Waits (bounded: 60 s) until the chain has `length` members that all answer and have all
/// committed at least `committed` entries (so that each holds every write acknowledged
/// before: killing any one of them then loses nothing).
pub(crate) fn until_chain_of(
    key: &Path,
    nodes: &[SocketAddr],
    length: usize,
    committed: u64,
) -> Vec<SocketAddr> {
    for round in 0..300 {
        let node = nodes[round % nodes.len()];
        if let Some(members) = chain_members(key, node)
            && members.len() == length
            && members.iter().all(|(_, done)| *done >= committed)
        {
            return members.into_iter().map(|(addr, _)| addr).collect();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let views: Vec<String> = nodes
        .iter()
        .map(|node| {
            let output = cli(
                key,
                Duration::from_secs(5),
                &["chain", "status", "--node", &node.to_string()],
            );
            format!(
                "{node}:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        })
        .collect();
    panic!(
        "the chain never had {length} answering members; the nodes' views:\n{}",
        views.join("\n")
    );
}

/// Writes `count` keys from `from` on through the nodes in turn; returns those acknowledged.
pub(crate) fn write(
    key: &Path,
    nodes: &[SocketAddr],
    from: usize,
    count: usize,
) -> Vec<(String, String)> {
    let mut acked = Vec::new();
    for i in from..from + count {
        let node = nodes[i % nodes.len()].to_string();
        let (name, value) = (format!("k{i}"), format!("v{i}"));
        let output = cli(
            key,
            Duration::from_secs(10),
            &["kv", "put", "--node", &node, &name, &value],
        );
        if output.status.success() {
            acked.push((name, value));
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
    acked
}

/// Reads every acknowledged key back (retrying while the chain settles, bounded).
pub(crate) fn assert_all_readable(key: &Path, nodes: &[SocketAddr], acked: &[(String, String)]) {
    for (i, (name, value)) in acked.iter().enumerate() {
        let mut last = None;
        for attempt in 0..20 {
            let node = nodes[(i + attempt) % nodes.len()].to_string();
            let output = cli(
                key,
                Duration::from_secs(10),
                &["kv", "get", "--node", &node, name],
            );
            if output.status.success() {
                last = Some(String::from_utf8_lossy(&output.stdout).trim().to_owned());
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(last.as_deref(), Some(value.as_str()), "acknowledged {name}");
    }
}
