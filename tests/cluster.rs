//! Real node processes on loopback: a cluster forms through a seed, a node killed with
//! SIGKILL is declared dead by the others, a node stopped with SIGTERM leaves gracefully, and
//! operator commands fail with one clear line.

#[path = "support/nodes.rs"]
mod nodes;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use nodes::{BIN, NodeProcess, free_addr, keygen_named as keygen, start_node};

fn start(key: &Path, seed: Option<SocketAddr>) -> NodeProcess {
    match seed {
        Some(seed) => start_with(key, &["--seed", &seed.to_string()]),
        None => start_with(key, &[]),
    }
}

/// Starts a node on a free loopback port with extra `phalanx node` arguments.
fn start_with(key: &Path, args: &[&str]) -> NodeProcess {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    start_node(key, free_addr(), &args)
}

fn members(node: SocketAddr, key: &Path) -> Output {
    Command::new(BIN)
        .args(["members", "--node", &node.to_string(), "--cluster-key-file"])
        .arg(key)
        .output()
        .expect("members runs")
}

/// Polls `members` on `node` until `check` accepts its table (bounded: 30 s).
fn until(node: SocketAddr, key: &Path, what: &str, check: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..150 {
        let output = members(node, key);
        last = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() && check(&last) {
            return last;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{what}: never happened; last table from {node}:\n{last}");
}

fn state_of(table: &str, addr: SocketAddr) -> Option<String> {
    let addr = addr.to_string();
    table
        .lines()
        .find(|line| line.split_whitespace().nth(3) == Some(addr.as_str()))
        .and_then(|line| line.split_whitespace().nth(1).map(str::to_owned))
}

#[test]
fn a_cluster_forms_detects_a_killed_node_and_sees_a_graceful_leave() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = keygen(dir.path(), "cluster.key");

    let first = start(&key, None);
    let second = start(&key, Some(first.addr));
    let mut third = start(&key, Some(first.addr));
    let all = [first.addr, second.addr, third.addr];
    until(second.addr, &key, "three alive members", |table| {
        all.iter()
            .all(|addr| state_of(table, *addr).as_deref() == Some("alive"))
    });

    // An operator with another cluster's key is refused at the handshake, in one line.
    let wrong = keygen(dir.path(), "other.key");
    let output = members(first.addr, &wrong);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a wrong key was accepted");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // SIGKILL: no goodbye; the failure detector must notice.
    third.child.kill().expect("SIGKILL");
    let _ = third.child.wait();
    until(first.addr, &key, "the killed node declared dead", |table| {
        state_of(table, third.addr).as_deref() == Some("dead")
    });

    // SIGTERM: the node leaves the cluster before it stops.
    let status = Command::new("kill")
        .args(["-TERM", &second.child.id().to_string()])
        .status();
    assert!(status.is_ok_and(|s| s.success()));
    until(first.addr, &key, "the stopped node seen leaving", |table| {
        state_of(table, second.addr).as_deref() == Some("left")
    });
}

#[test]
fn operator_errors_are_one_clear_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("cluster.key");
    let cases: [(&[&str], &str); 4] = [
        (&["members", "--node", "127.0.0.1:1"], "no cluster key"),
        (
            &[
                "members",
                "--node",
                "127.0.0.1:1",
                "--cluster-key-file",
                "/nonexistent/key",
            ],
            "cannot read the cluster key file",
        ),
        (
            &["members", "--node", "127.0.0.1:1", "--insecure"],
            "cannot get the members",
        ),
        (&["node", "--listen", "not-an-address"], "invalid value"),
    ];
    for (args, expected) in cases {
        let output = Command::new(BIN).args(args).output().expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    std::fs::write(&key, "not a key").expect("write");
    let output = Command::new(BIN)
        .args(["members", "--cluster-key-file"])
        .arg(&key)
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&output.stderr).contains("must hold 64 hex digits"));
}

/// Multicast discovery between real node processes, with no seeds at all. The test re-runs
/// itself in a network namespace of its own whose only interface is loopback (`unshare -n`,
/// which CI has as root), so its beacons can never leave the machine or meet another test's;
/// where no namespace can be made it is skipped with a message.
#[test]
fn multicast_discovery_forms_a_cluster_without_seeds() {
    if std::env::var_os("PHALANX_NETNS_TEST").is_some() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = keygen(dir.path(), "cluster.key");
        let nodes: Vec<NodeProcess> = (0..3)
            .map(|_| start_with(&key, &["--multicast", "--probe-interval", "200"]))
            .collect();
        until(
            nodes[0].addr,
            &key,
            "three members found by beacons",
            |table| {
                nodes
                    .iter()
                    .all(|node| state_of(table, node.addr).as_deref() == Some("alive"))
            },
        );
        return;
    }
    let namespaces = Command::new("unshare")
        .args(["-n", "true"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !namespaces {
        eprintln!("skipped: no network namespace available (unshare -n failed)");
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let script = "ip link set lo up && ip link set lo multicast on && exec \"$0\" multicast_discovery_forms_a_cluster_without_seeds \
                  --exact --nocapture";
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", script])
        .arg(&exe)
        .env("PHALANX_NETNS_TEST", "1")
        .output()
        .expect("run the test in a network namespace");
    assert!(
        out.status.success(),
        "multicast test in a network namespace failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `phalanx node --metrics ADDR` serves Prometheus text with the runtime's figures.
#[test]
fn a_node_serves_its_metrics() {
    use std::io::{Read, Write};

    let dir = tempfile::tempdir().expect("tempdir");
    let key = keygen(dir.path(), "cluster.key");
    let metrics = free_addr();
    let _node = start_with(&key, &["--metrics", &metrics.to_string()]);
    let mut text = String::new();
    for _ in 0..100 {
        text.clear();
        if let Ok(mut stream) = std::net::TcpStream::connect(metrics) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
            if stream.write_all(request).is_ok() && stream.read_to_string(&mut text).is_ok() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("phalanx_actors_started_total"), "{text}");
    // The node's own figures: its membership by state, and dropped frames by reason.
    assert!(
        text.contains("phalanx_gossip_members{node=") && text.contains("state=\"alive\""),
        "{text}"
    );
    assert!(text.contains("reason=\"unauthenticated\""), "{text}");
}

/// A node restarted on the same data directory is the same node with a new incarnation, and
/// a second process cannot use a directory that a running node holds.
#[test]
fn a_data_dir_keeps_the_node_identity_and_is_locked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = keygen(dir.path(), "cluster.key");
    let data = dir.path().join("data");
    let data = data.to_str().expect("a UTF-8 path");
    let own_row = |addr: SocketAddr| {
        let table = until(addr, &key, "the node answering", |t| {
            t.contains("(this node)")
        });
        table
            .lines()
            .find(|line| line.contains("(this node)"))
            .map(|line| {
                let fields: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
                (fields[0].clone(), fields[2].clone())
            })
            .expect("its own row")
    };
    let mut first = start_with(&key, &["--data-dir", data]);
    let (id, incarnation) = own_row(first.addr);

    let second = std::process::Command::new(BIN)
        .args([
            "node",
            "--listen",
            &free_addr().to_string(),
            "--data-dir",
            data,
        ])
        .arg("--cluster-key-file")
        .arg(&key)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "two nodes shared a data dir");
    assert!(stderr.contains("in use by process"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    first.child.kill().expect("SIGKILL");
    let _ = first.child.wait();
    let again = start_node(
        &key,
        first.addr,
        &["--data-dir".to_owned(), data.to_owned()],
    );
    let (same, later) = own_row(again.addr);
    assert_eq!(same, id, "a new identity after a restart");
    assert_ne!(later, incarnation, "the same incarnation after a restart");
}
