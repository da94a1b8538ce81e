//! The remoting layer on the simulated network: three nodes in one process, encrypted,
//! talking over `SimTransport`s on one `SimHub` whose clock a background task moves.
//!
//! The endpoint and remoting layers run their own tasks and real-time timers on top, so these
//! runs are not replayed event for event (see the `sim` module docs); the seed fixes the
//! network's faults and the assertions hold for every interleaving. Each test prints its
//! seed, and `SIM_SEED=n` runs with seed `n`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use phalanx_runtime::{
    Actor, ActorRef, AskError, Context, Down, ExitReason, HandlerError, Reply, Runtime, Task,
    spawn_actor,
};
use phalanx_transports::{
    ClusterId, EndpointConfig, EndpointSecurity, Incarnation, Key, NodeId, RemoteMessage, Remoting,
    SharedKeyring, SimFaults, SimHub,
};
use serde::{Deserialize, Serialize};

#[path = "support/watch.rs"]
mod watch;

use watch::watch;

/// How long a step may take before the test gives up; a bound on a wait, never a measure.
const WAIT: Duration = Duration::from_secs(10);

#[derive(Serialize, Deserialize)]
enum Count {
    Add(u64),
    Get(Reply<Vec<u64>>),
    Hold(Reply<u64>),
    Held(Reply<usize>),
}

impl RemoteMessage for Count {
    const TAG: &'static str = "test.SimCount.v1";
}

#[derive(Default)]
struct Counter {
    seen: Vec<u64>,
    held: Vec<Reply<u64>>,
}

impl Actor for Counter {
    type Message = Count;

    async fn handle(&mut self, _: &mut Context<Self>, msg: Count) -> Result<(), HandlerError> {
        match msg {
            Count::Add(n) => self.seen.push(n),
            Count::Get(reply) => {
                let _ = reply.send(self.seen.clone());
            }
            Count::Hold(reply) => self.held.push(reply),
            Count::Held(reply) => {
                let _ = reply.send(self.held.len());
            }
        }
        Ok(())
    }
}

/// `SIM_SEED` if set, else a fresh seed; printed either way.
fn seed() -> u64 {
    let seed = match std::env::var("SIM_SEED") {
        Ok(seed) => seed.parse().expect("SIM_SEED is a u64"),
        Err(_) => fastrand::u64(..),
    };
    println!("seed {seed} (replay with SIM_SEED={seed})");
    seed
}

/// A simulated cluster: the hub, its driver, and one remoting layer per node.
struct Cluster {
    hub: SimHub,
    nodes: Vec<Remoting>,
    security: EndpointSecurity,
    /// The endpoints' idle timeout, when a test shortens it (heartbeats every sixth of it).
    idle_timeout: Option<Duration>,
    _driver: Task<()>,
}

impl Cluster {
    fn start(seed: u64, count: u8) -> Cluster {
        Cluster::start_with(seed, count, None)
    }

    fn start_with(seed: u64, count: u8, idle_timeout: Option<Duration>) -> Cluster {
        // Datagram faults do not touch the remoting layer (it only uses streams), but they
        // are on to show that they do not have to be off; streams take a few virtual ms.
        let faults = SimFaults::none()
            .with_loss(0.1)
            .with_delay(Duration::from_millis(1), Duration::from_millis(10));
        let hub = SimHub::new(seed, faults);
        hub.set_stream_delay(Duration::from_millis(2));
        let security =
            EndpointSecurity::Keyring(SharedKeyring::new(Key::from_bytes([seed as u8; 32])));
        let driver = phalanx_runtime::spawn(hub.clone().run());
        let mut cluster = Cluster {
            hub,
            nodes: Vec::new(),
            security,
            idle_timeout,
            _driver: driver,
        };
        for n in 1..=count {
            let node = cluster.boot(n, Incarnation(1));
            cluster.nodes.push(node);
        }
        cluster
    }

    /// Starts node `n` (id `n`, address 10.0.0.`n`) with `incarnation`.
    fn boot(&self, n: u8, incarnation: Incarnation) -> Remoting {
        let addr = SocketAddr::from(([10, 0, 0, n], 7946));
        let transport = self.hub.bind(addr).unwrap();
        let mut config =
            EndpointConfig::new(ClusterId(7), NodeId::from_u128(n.into()), incarnation);
        if let Some(idle) = self.idle_timeout {
            config.idle_timeout = idle;
            config.heartbeat_interval = idle / 6;
        }
        Remoting::with_transport(Arc::new(transport), config, self.security.clone())
    }

    fn addr(&self, n: usize) -> SocketAddr {
        self.nodes[n].local_addr()
    }

    /// Registers a new counter on node `on` as `name`.
    fn serve(&self, on: usize, name: &str) {
        self.nodes[on]
            .register(name, &spawn_actor(Counter::default()))
            .unwrap();
    }

    /// The counter `name` on node `on`, looked up from node `from`.
    async fn lookup(&self, on: usize, from: usize, name: &str) -> ActorRef<Count> {
        let node = self.nodes[from]
            .connect(self.addr(on), WAIT)
            .await
            .expect("connect over the simulated network");
        assert_eq!(node, self.nodes[on].node());
        let remote = self.nodes[from]
            .lookup::<Count>(node, name, WAIT)
            .await
            .expect("lookup over the simulated network");
        assert!(remote.is_remote());
        remote
    }
}

fn run<F: std::future::Future>(future: F) -> F::Output {
    let runtime = Runtime::builder().worker_threads(2).build().unwrap();
    runtime.block_on(future)
}

async fn next_down(rx: &flume::Receiver<Down>) -> Down {
    phalanx_runtime::timeout(WAIT, rx.recv_async())
        .await
        .expect("no Down in time")
        .unwrap()
}

#[test]
fn three_nodes_tell_and_ask_in_order_over_the_simulated_network() {
    let seed = seed();
    run(async {
        let cluster = Cluster::start(seed, 3);
        cluster.serve(1, "counter");
        let from_a = cluster.lookup(1, 0, "counter").await;
        let from_c = cluster.lookup(1, 2, "counter").await;
        for n in 0..500 {
            from_a.tell(Count::Add(n)).await.unwrap();
        }
        let seen = from_a.ask(Count::Get, WAIT).await.unwrap();
        assert_eq!(seen, (0..500).collect::<Vec<_>>(), "seed {seed}");
        // C sees everything A's asks saw (A's tells were all answered first).
        let seen = from_c.ask(Count::Get, WAIT).await.unwrap();
        assert_eq!(seen.len(), 500, "seed {seed}");
        for node in &cluster.nodes {
            assert_eq!(node.endpoint().drop_counters().total(), 0, "seed {seed}");
            assert_eq!(node.malformed_records(), 0, "seed {seed}");
        }
        // The traffic crossed the simulated network, on its virtual clock.
        assert!(cluster.hub.now().elapsed_since_start() >= Duration::from_millis(2));
    });
}

#[test]
fn a_partition_makes_asks_time_out_cleanly_and_healing_brings_them_back() {
    let seed = seed();
    run(async {
        let cluster = Cluster::start(seed, 3);
        cluster.serve(1, "counter");
        let from_a = cluster.lookup(1, 0, "counter").await;
        let from_c = cluster.lookup(1, 2, "counter").await;
        from_a.tell(Count::Add(1)).await.unwrap();
        assert_eq!(from_a.ask(Count::Get, WAIT).await.unwrap(), vec![1]);

        cluster.hub.partition(cluster.addr(0), cluster.addr(1));
        // The ask's request stalls in the partitioned stream: no answer, a clean timeout.
        // (The ask's timeout is real time; it only has to end before the endpoint's idle
        // timeout, 5 s, would declare the node down.)
        let cut = from_a.ask(Count::Get, Duration::from_millis(300)).await;
        assert!(
            matches!(cut, Err(AskError::Timeout)),
            "seed {seed}: {cut:?}"
        );
        assert!(from_a.is_alive(), "seed {seed}");
        // The other side of the partition still reaches B.
        assert_eq!(from_c.ask(Count::Get, WAIT).await.unwrap(), vec![1]);

        cluster.hub.heal(cluster.addr(0), cluster.addr(1));
        // The stalled stream resumes in order: the tell after the partition arrives after
        // the one before it, and the same reference answers again.
        from_a.tell(Count::Add(2)).await.unwrap();
        assert_eq!(
            from_a.ask(Count::Get, WAIT).await.unwrap(),
            vec![1, 2],
            "seed {seed}"
        );
    });
}

#[test]
fn a_crashed_node_fires_node_down_ends_its_asks_and_restarts_with_a_new_incarnation() {
    let seed = seed();
    run(async {
        let mut cluster = Cluster::start(seed, 3);
        cluster.serve(1, "counter");
        let from_a = cluster.lookup(1, 0, "counter").await;
        let from_c = cluster.lookup(1, 2, "counter").await;
        let downs_a = watch(from_a.addr(), WAIT).await;
        let downs_c = watch(from_c.addr(), WAIT).await;
        let held = {
            let from_a = from_a.clone();
            phalanx_runtime::spawn(async move { from_a.ask(Count::Hold, WAIT).await })
        };
        // Wait (bounded) until the held ask is with B's actor: the spawned task may send it
        // after a later ask of this one.
        let mut holding = false;
        for _ in 0..200 {
            if from_a.ask(Count::Held, WAIT).await.unwrap() == 1 {
                holding = true;
                break;
            }
            phalanx_runtime::sleep(Duration::from_millis(5)).await;
        }
        assert!(holding, "seed {seed}: the held ask never reached B");

        cluster.hub.crash(cluster.addr(1));
        for downs in [&downs_a, &downs_c] {
            let down = next_down(downs).await;
            assert_eq!(down.reason, ExitReason::NodeDown, "seed {seed}");
        }
        let outcome = held.await;
        assert!(
            matches!(outcome, Err(AskError::NoReply)),
            "seed {seed}: {outcome:?}"
        );
        assert!(!from_a.is_alive() && !from_c.is_alive(), "seed {seed}");
        assert!(cluster.hub.is_crashed(cluster.addr(1)));
        // A and C still talk to each other.
        cluster.serve(2, "survivor");
        let on_c = cluster.lookup(2, 0, "survivor").await;
        assert_eq!(on_c.ask(Count::Get, WAIT).await.unwrap(), Vec::<u64>::new());
        assert!(cluster.nodes[0].peers().contains(&cluster.nodes[2].node()));

        // B restarts on the same address with a new incarnation; A reaches its new actors.
        cluster.nodes[1] = cluster.boot(2, Incarnation(2));
        assert!(!cluster.hub.is_crashed(cluster.addr(1)));
        cluster.serve(1, "counter");
        let again = cluster.lookup(1, 0, "counter").await;
        again.tell(Count::Add(7)).await.unwrap();
        assert_eq!(
            again.ask(Count::Get, WAIT).await.unwrap(),
            vec![7],
            "seed {seed}"
        );
        assert_eq!(
            cluster.nodes[0]
                .endpoint()
                .peer_incarnation(cluster.nodes[1].node()),
            Some(Incarnation(2))
        );
    });
}

#[test]
fn a_long_partition_ends_the_connection_with_node_down_and_a_new_lookup_works_once_healed() {
    let seed = seed();
    run(async {
        // The endpoints' idle timeout is real time: shortened so that the test is quick.
        let cluster = Cluster::start_with(seed, 2, Some(Duration::from_millis(1_200)));
        cluster.serve(1, "counter");
        let remote = cluster.lookup(1, 0, "counter").await;
        let downs = watch(remote.addr(), WAIT).await;
        cluster.hub.partition(cluster.addr(0), cluster.addr(1));
        // Heartbeats stall with everything else; the idle timeout ends the connection.
        let down = next_down(&downs).await;
        assert_eq!(down.reason, ExitReason::NodeDown, "seed {seed}");
        let cut = cluster.nodes[0]
            .connect(cluster.addr(1), Duration::from_millis(200))
            .await;
        assert!(cut.is_err(), "seed {seed}: {cut:?}");
        cluster.hub.heal_all();
        // Redialing follows the endpoint's backoff; a bounded number of tries.
        let mut again = None;
        for _ in 0..50 {
            if let Ok(node) = cluster.nodes[0].connect(cluster.addr(1), WAIT).await {
                again = Some(node);
                break;
            }
            phalanx_runtime::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(again, Some(cluster.nodes[1].node()), "seed {seed}");
        let remote = cluster.lookup(1, 0, "counter").await;
        assert_eq!(
            remote.ask(Count::Get, WAIT).await.unwrap(),
            Vec::<u64>::new()
        );
    });
}
