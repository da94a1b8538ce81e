//! Remote actors across real processes on loopback: a node process killed with SIGKILL is
//! seen as `Down(NodeDown)` by the monitors of its actors, and the process restarted with a new
//! incarnation on the same address is a new node (references to the old one stay dead).
//!
//! The node processes are this test binary itself, run again with `PHALANX_TEST_NODE` set and
//! filtered to the `node_process` test, which then runs a node until its stdin closes. This
//! needs no extra binary target and works under any `cargo test` invocation.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use phalanx_runtime::{
    Actor, Context, Down, ExitReason, HandlerError, Reply, Runtime, spawn_actor,
};
use phalanx_transports::{
    ClusterId, EndpointConfig, EndpointSecurity, Incarnation, Key, NodeId, RemoteMessage, Remoting,
    SharedKeyring,
};
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(10);

#[path = "support/watch.rs"]
mod watch;

use watch::watch;
const NODE_ENV: &str = "PHALANX_TEST_NODE";
/// A node process ends by itself after this long, should its parent never close its stdin.
const NODE_LIFETIME: Duration = Duration::from_secs(120);

#[derive(Serialize, Deserialize)]
enum Count {
    Add(u64),
    Get(Reply<Vec<u64>>),
}

impl RemoteMessage for Count {
    const TAG: &'static str = "test.process.Count.v1";
}

#[derive(Default)]
struct Counter {
    seen: Vec<u64>,
}

impl Actor for Counter {
    type Message = Count;

    async fn handle(&mut self, _: &mut Context<Self>, msg: Count) -> Result<(), HandlerError> {
        match msg {
            Count::Add(n) => self.seen.push(n),
            Count::Get(reply) => {
                let _ = reply.send(self.seen.clone());
            }
        }
        Ok(())
    }
}

fn security() -> EndpointSecurity {
    EndpointSecurity::Keyring(SharedKeyring::new(Key::from_bytes([9; 32])))
}

fn config(node: u128, incarnation: u64) -> EndpointConfig {
    EndpointConfig::new(
        ClusterId(11),
        NodeId::from_u128(node),
        Incarnation(incarnation),
    )
}

/// The node process: `PHALANX_TEST_NODE=<node id> <incarnation> <bind address>`. Prints
/// `LISTEN <address>` once it accepts connections, then runs until its stdin closes. Without
/// the variable (a normal test run) it does nothing.
#[test]
fn node_process() {
    let Ok(spec) = std::env::var(NODE_ENV) else {
        return;
    };
    let mut parts = spec.split_whitespace();
    let node: u128 = parts.next().unwrap().parse().unwrap();
    let incarnation: u64 = parts.next().unwrap().parse().unwrap();
    let bind: SocketAddr = parts.next().unwrap().parse().unwrap();
    let (stop_tx, stop_rx) = flume::bounded::<()>(1);
    std::thread::spawn(move || {
        // Stdin closes when the parent drops its end or dies.
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        let _ = stop_tx.send(());
    });
    let runtime = Runtime::builder().worker_threads(2).build().unwrap();
    runtime.block_on(async move {
        let mut remoting = None;
        // The address may still be held for a moment by the process this one replaces.
        for _ in 0..100 {
            match Remoting::bind(bind, config(node, incarnation), security()).await {
                Ok(bound) => {
                    remoting = Some(bound);
                    break;
                }
                Err(_) => phalanx_runtime::sleep(Duration::from_millis(50)).await,
            }
        }
        let remoting = remoting.expect("could not bind");
        remoting
            .register("counter", &spawn_actor(Counter::default()))
            .unwrap();
        println!("LISTEN {}", remoting.local_addr());
        let _ = phalanx_runtime::timeout(NODE_LIFETIME, stop_rx.recv_async()).await;
    });
}

/// A node process started by the test; killed (SIGKILL) and reaped when dropped.
struct NodeProcess {
    child: Child,
    addr: SocketAddr,
}

impl NodeProcess {
    fn start(node: u128, incarnation: u64, bind: SocketAddr) -> NodeProcess {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["node_process", "--exact", "--nocapture", "--test-threads=1"])
            .env(NODE_ENV, format!("{node} {incarnation} {bind}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                // The harness may have printed the test's name on the same line.
                if let Some((_, addr)) = line.split_once("LISTEN ") {
                    let _ = tx.send(addr.trim().parse::<SocketAddr>().unwrap());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(error) => {
                let _ = child.kill();
                panic!("node process did not start: {error}");
            }
        };
        NodeProcess { child, addr }
    }

    /// SIGKILL: the process gets no chance to close anything itself.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn next_down(rx: &flume::Receiver<Down>) -> Down {
    phalanx_runtime::timeout(WAIT, rx.recv_async())
        .await
        .expect("no Down in time")
        .unwrap()
}

#[test]
fn a_killed_node_process_is_down_and_its_restart_is_a_new_node() {
    let runtime = Runtime::builder().worker_threads(2).build().unwrap();
    runtime.block_on(async {
        let me = Remoting::bind("127.0.0.1:0".parse().unwrap(), config(1, 1), security())
            .await
            .unwrap();
        let mut first = NodeProcess::start(2, 1, "127.0.0.1:0".parse().unwrap());
        let node = me.connect(first.addr, WAIT).await.unwrap();
        assert_eq!(node, NodeId::from_u128(2));
        assert_eq!(me.endpoint().peer_incarnation(node), Some(Incarnation(1)));
        let old = me.lookup::<Count>(node, "counter", WAIT).await.unwrap();
        for n in 0..100 {
            old.tell(Count::Add(n)).await.unwrap();
        }
        assert_eq!(
            old.ask(Count::Get, WAIT).await.unwrap(),
            (0..100).collect::<Vec<_>>()
        );

        let downs = watch(old.addr(), WAIT).await;
        let killed = Instant::now();
        first.kill();
        let down = next_down(&downs).await;
        eprintln!("NodeDown {:?} after SIGKILL", killed.elapsed());
        assert_eq!(down.id, old.id());
        assert_eq!(down.reason, ExitReason::NodeDown);
        assert!(!old.is_alive());
        assert!(old.tell(Count::Add(1)).await.is_err());
        assert!(old.ask(Count::Get, WAIT).await.is_err());

        // The same node id restarted on the same address, with a new incarnation.
        let mut second = NodeProcess::start(2, 2, first.addr);
        assert_eq!(second.addr, first.addr);
        assert_eq!(me.connect(second.addr, WAIT).await.unwrap(), node);
        assert_eq!(me.endpoint().peer_incarnation(node), Some(Incarnation(2)));
        assert!(
            old.tell(Count::Add(1)).await.is_err(),
            "a reference to the old incarnation must not reach the new one"
        );
        let new = me.lookup::<Count>(node, "counter", WAIT).await.unwrap();
        assert_ne!(new.id(), old.id());
        assert_eq!(
            new.ask(Count::Get, WAIT).await.unwrap(),
            Vec::<u64>::new(),
            "the new incarnation starts fresh"
        );
        new.tell(Count::Add(7)).await.unwrap();
        assert_eq!(new.ask(Count::Get, WAIT).await.unwrap(), vec![7]);

        // And its death is seen the same way.
        let downs = watch(new.addr(), WAIT).await;
        second.kill();
        assert_eq!(next_down(&downs).await.reason, ExitReason::NodeDown);
        assert_eq!(me.endpoint().drop_counters().total(), 0);
    });
}
