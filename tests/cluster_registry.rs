//! The cluster-wide registry through real nodes in one process: a name registered on one
//! node is found and used from another, and a name claimed on two nodes at once resolves to
//! the same winner everywhere.

use std::net::SocketAddr;
use std::time::Duration;

use phalanx::node::{Node, NodeConfig};
use phalanx::transports::{Key, RemoteMessage};
use phalanx::{Actor, ActorRef, Context, HandlerError, Reply, Runtime, spawn_actor};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
enum Greet {
    Hello(String, Reply<String>),
}

impl RemoteMessage for Greet {
    const TAG: &'static str = "tests.Greet.v1";
}

struct Greeter(&'static str);

impl Actor for Greeter {
    type Message = Greet;

    async fn handle(&mut self, _: &mut Context<Self>, msg: Greet) -> Result<(), HandlerError> {
        let Greet::Hello(name, reply) = msg;
        let _ = reply.send(format!("{} greets {name}", self.0));
        Ok(())
    }
}

/// A node on a free loopback port joining through `seeds`, with a fast protocol period.
fn node_config(key: &Key, seeds: Vec<SocketAddr>) -> NodeConfig {
    let mut config = NodeConfig::new("127.0.0.1:0".parse().expect("address"));
    config.key = Some(key.clone());
    config.seeds = seeds;
    config.gossip.probe_interval = Duration::from_millis(100);
    config.gossip.probe_timeout = Duration::from_millis(50);
    config.gossip.gossip_interval = Some(Duration::from_millis(20));
    config
}

/// Runs `test` on a formed three-node cluster, then shuts the nodes down.
fn with_cluster(test: impl AsyncFnOnce(&Key, &[Node])) {
    let runtime = Runtime::builder()
        .worker_threads(2)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let key = Key::generate().expect("key");
        let nodes = cluster(&key).await;
        test(&key, &nodes).await;
        for node in nodes {
            node.shutdown().await;
        }
    });
}

async fn cluster(key: &Key) -> Vec<Node> {
    let config = |seeds| node_config(key, seeds);
    let first = Node::start(config(vec![])).await.expect("node starts");
    let seed = first.local_addr();
    let mut nodes = vec![first];
    for _ in 0..2 {
        nodes.push(Node::start(config(vec![seed])).await.expect("node starts"));
    }
    for _ in 0..200 {
        if nodes
            .iter()
            .all(|n| n.members().iter().filter(|r| r.state == "alive").count() == 3)
        {
            return nodes;
        }
        phalanx::sleep(Duration::from_millis(25)).await;
    }
    panic!("the cluster did not form");
}

/// Polls `node.whereis(name)` until it finds an actor (bounded: 10 s).
async fn find(node: &Node, name: &str) -> ActorRef<Greet> {
    for _ in 0..400 {
        if let Ok(Some(found)) = node.whereis::<Greet>(name).await {
            return found;
        }
        phalanx::sleep(Duration::from_millis(25)).await;
    }
    panic!("{name} was never found");
}

#[test]
fn a_name_registered_on_one_node_is_used_from_another() {
    with_cluster(async |_, nodes| {
        let greeter = spawn_actor(Greeter("node 0"));
        nodes[0]
            .register("greeter", &greeter)
            .await
            .expect("registered");
        let remote = find(&nodes[2], "greeter").await;
        assert!(remote.is_remote());
        let answer = remote
            .ask(
                |reply| Greet::Hello("node 2".into(), reply),
                Duration::from_secs(5),
            )
            .await
            .expect("answer");
        assert_eq!(answer, "node 0 greets node 2");
        let local = find(&nodes[0], "greeter").await;
        assert!(!local.is_remote());
    });
}

#[test]
fn concurrent_claims_resolve_to_one_winner_everywhere() {
    with_cluster(async |_, nodes| {
        let one = spawn_actor(Greeter("node 1"));
        let two = spawn_actor(Greeter("node 2"));
        let (a, b) = futures_lite::future::zip(
            nodes[1].register("leader", &one),
            nodes[2].register("leader", &two),
        )
        .await;
        assert!(a.is_ok() || b.is_ok());
        // Every node converges on the same holder.
        let mut answers = Vec::new();
        for _ in 0..400 {
            answers.clear();
            for node in nodes {
                let found = node.whereis::<Greet>("leader").await.ok().flatten();
                let answer = match found {
                    Some(actor) => actor
                        .ask(|r| Greet::Hello("x".into(), r), Duration::from_secs(5))
                        .await
                        .ok(),
                    None => None,
                };
                answers.push(answer);
            }
            if answers.iter().all(|a| a.is_some() && *a == answers[0]) {
                break;
            }
            phalanx::sleep(Duration::from_millis(25)).await;
        }
        assert!(
            answers.iter().all(|a| a.is_some() && *a == answers[0]),
            "{answers:?}"
        );
    });
}

#[test]
fn process_groups_span_nodes() {
    with_cluster(async |_, nodes| {
        let on_zero = spawn_actor(Greeter("member on node 0"));
        let on_one = spawn_actor(Greeter("member on node 1"));
        nodes[0].join_group("chat", &on_zero).await.expect("joined");
        nodes[1].join_group("chat", &on_one).await.expect("joined");
        // Node 2 has no member of its own, yet sees both, and can talk to them.
        let mut members = Vec::new();
        for _ in 0..400 {
            members = nodes[2].group::<Greet>("chat").await.expect("group");
            if members.len() == 2 {
                break;
            }
            phalanx::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(members.len(), 2);
        let mut answers = Vec::new();
        for member in &members {
            let answer = member
                .ask(|r| Greet::Hello("node 2".into(), r), Duration::from_secs(5))
                .await
                .expect("answer");
            answers.push(answer);
        }
        answers.sort();
        assert_eq!(
            answers,
            [
                "member on node 0 greets node 2",
                "member on node 1 greets node 2"
            ]
        );
    });
}

#[test]
fn a_node_that_joins_late_learns_every_name_through_push_pull() {
    with_cluster(async |key, nodes| {
        // More registrations than gossip keeps as recent events (64): a late joiner cannot
        // learn the first ones from event dissemination alone.
        let greeter = spawn_actor(Greeter("node 0"));
        for i in 0..100 {
            nodes[0]
                .register(&format!("name-{i}"), &greeter)
                .await
                .expect("registered");
        }
        // Let gossip finish disseminating them (its retransmissions are few periods long).
        find(&nodes[2], "name-99").await;
        phalanx::sleep(Duration::from_secs(3)).await;
        let late = Node::start(node_config(key, vec![nodes[1].local_addr()]))
            .await
            .expect("node starts");
        let first = find(&late, "name-0").await;
        let answer = first
            .ask(|r| Greet::Hello("late".into(), r), Duration::from_secs(5))
            .await
            .expect("answer");
        assert_eq!(answer, "node 0 greets late");
        late.shutdown().await;
    });
}
