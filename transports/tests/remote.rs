//! Remote actors on loopback, several nodes in one process: tell, ask, order, timeouts,
//! monitors across nodes, NodeDown, remote spawn, and key rotation under traffic.

use std::net::SocketAddr;
use std::time::Duration;

use phalanx_runtime::{
    Actor, ActorRef, AskError, Context, Down, ExitReason, HandlerError, Reply, Runtime, spawn_actor,
};
use phalanx_transports::{
    ClusterId, EndpointConfig, EndpointSecurity, Incarnation, Key, NodeId, RemoteError,
    RemoteMessage, Remoting, SharedKeyring,
};
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(10);

#[path = "support/watch.rs"]
mod watch;

use watch::watch;

#[derive(Serialize, Deserialize)]
enum Count {
    Add(u64),
    Get(Reply<Vec<u64>>),
    Hold(Reply<u64>),
    Ignore(Reply<u64>),
    Panic,
}

impl RemoteMessage for Count {
    const TAG: &'static str = "test.Count.v1";
}

#[derive(Serialize, Deserialize)]
struct Other;

impl RemoteMessage for Other {
    const TAG: &'static str = "test.Other.v1";
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
            Count::Ignore(_) => {}
            Count::Panic => panic!("counter exploded"),
        }
        Ok(())
    }
}

async fn next_down(rx: &flume::Receiver<Down>) -> Down {
    phalanx_runtime::timeout(WAIT, rx.recv_async())
        .await
        .expect("no Down in time")
        .unwrap()
}

fn run<F: std::future::Future>(future: F) -> F::Output {
    let runtime = Runtime::builder().worker_threads(2).build().unwrap();
    runtime.block_on(future)
}

fn config(n: u128) -> EndpointConfig {
    EndpointConfig::new(ClusterId(7), NodeId::from_u128(n), Incarnation(1))
}

async fn node(n: u128, bind: &str, security: &EndpointSecurity) -> Remoting {
    let addr: SocketAddr = bind.parse().unwrap();
    Remoting::bind(addr, config(n), security.clone())
        .await
        .unwrap()
}

fn encrypted() -> EndpointSecurity {
    EndpointSecurity::Keyring(SharedKeyring::new(Key::from_bytes([3; 32])))
}

async fn counter_on(b: &Remoting, a: &Remoting, name: &str) -> (ActorRef<Count>, ActorRef<Count>) {
    let local = spawn_actor(Counter::default());
    b.register(name, &local).unwrap();
    let node = a.connect(b.local_addr(), WAIT).await.unwrap();
    assert_eq!(node, b.node());
    let remote = a.lookup::<Count>(node, name, WAIT).await.unwrap();
    assert!(remote.is_remote());
    (local, remote)
}

#[test]
fn tell_and_ask_keep_order_on_ipv4_and_ipv6() {
    run(async {
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            let security = encrypted();
            let a = node(1, bind, &security).await;
            let b = node(2, bind, &security).await;
            let (_, remote) = counter_on(&b, &a, "counter").await;
            for n in 0..5_000 {
                remote.tell(Count::Add(n)).await.unwrap();
            }
            let seen = remote.ask(Count::Get, WAIT).await.unwrap();
            assert_eq!(seen, (0..5_000).collect::<Vec<_>>());
            assert_eq!(a.endpoint().drop_counters().total(), 0);
            assert_eq!(b.malformed_records(), 0);
        }
    });
}

#[test]
fn asks_flushed_by_the_caller_stay_in_order_with_tells() {
    run(async {
        let security = encrypted();
        let a = node(1, "127.0.0.1:0", &security).await;
        let b = node(2, "127.0.0.1:0", &security).await;
        let (_, remote) = counter_on(&b, &a, "counter").await;
        // Tells go through the connection task, asks are written by the caller when the
        // writer is free: every ask must still see every tell sent before it.
        for n in 0..2_000u64 {
            remote.tell(Count::Add(n)).await.unwrap();
            if n % 7 == 0 {
                let seen = remote.ask(Count::Get, WAIT).await.unwrap();
                assert_eq!(seen, (0..=n).collect::<Vec<_>>());
            }
        }
        assert_eq!(a.endpoint().drop_counters().total(), 0);
    });
}

#[test]
fn plaintext_works_too() {
    run(async {
        let security = EndpointSecurity::Plaintext;
        let a = node(1, "127.0.0.1:0", &security).await;
        let b = node(2, "127.0.0.1:0", &security).await;
        let (_, remote) = counter_on(&b, &a, "counter").await;
        remote.try_tell(Count::Add(1)).unwrap();
        assert_eq!(remote.ask(Count::Get, WAIT).await.unwrap(), vec![1]);
    });
}

#[test]
fn remote_ask_times_out_or_fails_cleanly() {
    run(async {
        let security = encrypted();
        let a = node(1, "127.0.0.1:0", &security).await;
        let b = node(2, "127.0.0.1:0", &security).await;
        let (_, remote) = counter_on(&b, &a, "counter").await;
        let held = remote.ask(Count::Hold, Duration::from_millis(100)).await;
        assert!(matches!(held, Err(AskError::Timeout)), "{held:?}");
        let dropped = remote.ask(Count::Ignore, WAIT).await;
        assert!(matches!(dropped, Err(AskError::NoReply)), "{dropped:?}");
        // The node still answers afterwards.
        assert_eq!(
            remote.ask(Count::Get, WAIT).await.unwrap(),
            Vec::<u64>::new()
        );
    });
}

#[test]
fn lookups_check_names_and_types() {
    run(async {
        let security = encrypted();
        let a = node(1, "127.0.0.1:0", &security).await;
        let b = node(2, "127.0.0.1:0", &security).await;
        let (_, _) = counter_on(&b, &a, "counter").await;
        let missing = a.lookup::<Count>(b.node(), "nobody", WAIT).await;
        assert!(
            matches!(missing, Err(RemoteError::Refused(_))),
            "{missing:?}"
        );
        let wrong = a.lookup::<Other>(b.node(), "counter", WAIT).await;
        assert!(matches!(wrong, Err(RemoteError::Refused(_))), "{wrong:?}");
        let unknown = a
            .lookup::<Count>(NodeId::from_u128(99), "counter", WAIT)
            .await;
        assert!(
            matches!(unknown, Err(RemoteError::UnknownNode(_))),
            "{unknown:?}"
        );
        let taken = b.register("counter", &spawn_actor(Counter::default()));
        assert!(matches!(taken, Err(RemoteError::NameTaken(_))), "{taken:?}");
    });
}

#[test]
fn a_remote_actors_death_fires_down_with_its_reason() {
    run(async {
        let security = encrypted();
        let a = node(1, "127.0.0.1:0", &security).await;
        let b = node(2, "127.0.0.1:0", &security).await;
        let (_, remote) = counter_on(&b, &a, "counter").await;
        let downs = watch(remote.addr(), WAIT).await;
        remote.tell(Count::Panic).await.unwrap();
        let down = next_down(&downs).await;
        assert_eq!(down.id, remote.id());
        match &down.reason {
            ExitReason::Failed(failure) => assert!(failure.message().contains("counter exploded")),
            other => panic!("unexpected reason {other}"),
        }
        assert!(!remote.is_alive());

        // stop() on the proxy stops the remote actor; Down says Normal.
        let (local, remote) = counter_on(&b, &a, "second").await;
        let downs = watch(remote.addr(), WAIT).await;
        remote.stop();
        assert_eq!(next_down(&downs).await.reason, ExitReason::Normal);
        assert_eq!(local.wait().await, ExitReason::Normal);
    });
}

#[test]
fn losing_the_node_fires_node_down_and_ends_asks() {
    run(async {
        let security = encrypted();
        let a = node(1, "127.0.0.1:0", &security).await;
        let b = node(2, "127.0.0.1:0", &security).await;
        let (_, remote) = counter_on(&b, &a, "counter").await;
        let downs = watch(remote.addr(), WAIT).await;
        let asker = {
            let remote = remote.clone();
            phalanx_runtime::spawn(async move { remote.ask(Count::Hold, WAIT).await })
        };
        // Let the ask reach B before B goes away.
        for _ in 0..100 {
            phalanx_runtime::sleep(Duration::from_millis(5)).await;
            if remote.ask(Count::Get, WAIT).await.is_ok() {
                break;
            }
        }
        drop(b);
        let down = next_down(&downs).await;
        assert_eq!(down.reason, ExitReason::NodeDown);
        let outcome = asker.await;
        assert!(matches!(outcome, Err(AskError::NoReply)), "{outcome:?}");
        assert!(matches!(remote.tell(Count::Add(1)).await, Err(_) | Ok(())));
    });
}

#[test]
fn a_node_declared_down_by_membership_fires_node_down() {
    run(async {
        let security = encrypted();
        let a = node(1, "127.0.0.1:0", &security).await;
        let b = node(2, "127.0.0.1:0", &security).await;
        let (local, remote) = counter_on(&b, &a, "counter").await;
        let downs = watch(remote.addr(), WAIT).await;
        assert_eq!(a.peers(), vec![b.node()]);
        // The connection is fine; the failure detector says otherwise, and it wins.
        a.declare_down(b.node());
        let down = next_down(&downs).await;
        assert_eq!(down.reason, ExitReason::NodeDown);
        assert!(!remote.is_alive());
        assert!(a.peers().is_empty());
        // The actor itself is untouched, and a new lookup reaches it.
        assert!(local.is_alive());
        let again = a
            .lookup::<Count>(b.node(), "counter", WAIT)
            .await
            .expect("lookup after NodeDown");
        assert!(again.ask(Count::Get, WAIT).await.is_ok());
    });
}

#[test]
fn spawning_on_a_remote_node_from_a_factory() {
    run(async {
        let security = encrypted();
        let a = node(1, "127.0.0.1:0", &security).await;
        let b = node(2, "127.0.0.1:0", &security).await;
        b.register_factory("counter", |start: Vec<u64>| {
            Ok(spawn_actor(Counter {
                seen: start,
                held: Vec::new(),
            }))
        });
        let node = a.connect(b.local_addr(), WAIT).await.unwrap();
        let spawned: ActorRef<Count> = a
            .spawn(node, "counter", &vec![40u64, 2], WAIT)
            .await
            .unwrap();
        spawned.tell(Count::Add(7)).await.unwrap();
        assert_eq!(spawned.ask(Count::Get, WAIT).await.unwrap(), vec![40, 2, 7]);
        let missing = a.spawn::<Count, _>(node, "nothing", &(), WAIT).await;
        assert!(
            matches!(missing, Err(RemoteError::Refused(_))),
            "{missing:?}"
        );
        let wrong = a
            .spawn::<Other, _>(node, "counter", &Vec::<u64>::new(), WAIT)
            .await;
        assert!(matches!(wrong, Err(RemoteError::Refused(_))), "{wrong:?}");
    });
}

/// The whole rotation runs while messages are queued and in flight: no step waits for the
/// traffic before it, so frames sealed with the old key are still unread when the old key is
/// removed (which once ended the connections and lost everything behind those frames).
#[test]
fn key_rotation_across_a_running_three_node_cluster_loses_nothing() {
    run(async {
        let old = Key::from_bytes([1; 32]);
        let new = Key::from_bytes([2; 32]);
        let rings: Vec<SharedKeyring> = (0..3).map(|_| SharedKeyring::new(old.clone())).collect();
        let mut nodes = Vec::new();
        for (i, ring) in rings.iter().enumerate() {
            let security = EndpointSecurity::Keyring(ring.clone());
            nodes.push(node(i as u128 + 1, "127.0.0.1:0", &security).await);
        }
        // Every node runs a counter; every node sends to every other node's counter.
        let mut refs = Vec::new();
        for (i, from) in nodes.iter().enumerate() {
            for (j, to) in nodes.iter().enumerate() {
                if i == j {
                    continue;
                }
                let name = format!("counter-{i}-{j}");
                to.register(&name, &spawn_actor(Counter::default()))
                    .unwrap();
                let node = from.connect(to.local_addr(), WAIT).await.unwrap();
                refs.push(from.lookup::<Count>(node, &name, WAIT).await.unwrap());
            }
        }
        let mut sent = 0u64;
        let mut send_round = async |refs: &[ActorRef<Count>]| {
            for _ in 0..200 {
                for r in refs {
                    r.tell(Count::Add(sent)).await.unwrap();
                }
                sent += 1;
            }
        };
        send_round(&refs).await;
        for ring in &rings {
            ring.install(new.clone()).unwrap();
        }
        send_round(&refs).await;
        for ring in &rings {
            ring.use_key(new.id()).unwrap();
            send_round(&refs).await;
        }
        for ring in &rings {
            ring.remove(old.id()).unwrap();
        }
        send_round(&refs).await;
        for r in &refs {
            let seen = r.ask(Count::Get, WAIT).await.unwrap();
            assert_eq!(
                seen,
                (0..sent).collect::<Vec<_>>(),
                "messages lost or reordered"
            );
        }
        for n in &nodes {
            assert_eq!(n.endpoint().drop_counters().total(), 0);
            assert_eq!(n.endpoint().handshake_failures(), 0);
        }
        assert_eq!(rings[0].key_ids(), vec![new.id()]);
    });
}
