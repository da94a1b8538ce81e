//! The chain through real nodes in one process on loopback: three nodes form a chain from an
//! empty first configuration, serve puts, gets, compare-and-sets and deletes through
//! `Node::kv`, and keep serving, losing nothing acknowledged, when a replica node stops.

#[path = "support/nodes.rs"]
mod nodes;

use std::net::SocketAddr;
use std::time::Duration;

use phalanx::Runtime;
use phalanx::node::{KvError, Node, NodeConfig};
use phalanx::transports::Key;

use nodes::free_addr;

fn config(
    key: &Key,
    listen: SocketAddr,
    seeds: Vec<SocketAddr>,
    group: &[SocketAddr],
) -> NodeConfig {
    let mut config = NodeConfig::new(listen);
    config.key = Some(key.clone());
    config.seeds = seeds;
    config.chain_group = group.to_vec();
    config.gossip.probe_interval = Duration::from_millis(100);
    config.gossip.probe_timeout = Duration::from_millis(50);
    config.gossip.gossip_interval = Some(Duration::from_millis(20));
    config
}

/// Waits (bounded) until `node` sees a chain of `length` members.
async fn wait_for_chain(node: &Node, length: usize) {
    let kv = node.kv();
    for _ in 0..300 {
        // A write is the real test of a usable chain.
        if kv.put("probe", "x").await.is_ok() {
            let report = node.chain_status().await;
            if report
                .config
                .as_ref()
                .is_some_and(|c| c.members.len() == length)
            {
                return;
            }
        }
        phalanx::sleep(Duration::from_millis(50)).await;
    }
    panic!("no chain of {length} members formed");
}

#[test]
fn three_nodes_serve_a_chain_and_survive_a_node_stopping() {
    let runtime = Runtime::builder()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let metrics = phalanx::metrics::Metrics::install().expect("a metrics recorder");
    runtime.block_on(async {
        let key = Key::generate().expect("key");
        let addrs: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect();
        let mut nodes = Vec::new();
        for (i, addr) in addrs.iter().enumerate() {
            let seeds = if i == 0 { vec![] } else { vec![addrs[0]] };
            let node = Node::start(config(&key, *addr, seeds, &addrs))
                .await
                .expect("node starts");
            nodes.push(node);
        }
        wait_for_chain(&nodes[0], 3).await;

        let kv = nodes[0].kv();
        kv.put("a", "1").await.expect("put");
        assert_eq!(kv.get("a").await.expect("get"), Some(b"1".to_vec()));
        // Acknowledged writes feed the node's write-latency histogram.
        let rendered = metrics.render();
        let node = nodes[0].id().to_string();
        assert!(
            rendered.contains("phalanx_chain_write_seconds_bucket")
                && rendered.contains(&format!("node=\"{node}\"")),
            "{rendered}"
        );
        let other = nodes[2].kv();
        assert_eq!(other.get("a").await.expect("get"), Some(b"1".to_vec()));
        assert!(
            other
                .compare_and_set("a", Some(b"1".to_vec()), Some(b"2".to_vec()))
                .await
                .expect("cas")
        );
        assert!(
            !kv.compare_and_set("a", Some(b"1".to_vec()), Some(b"3".to_vec()))
                .await
                .expect("cas")
        );
        kv.delete("a").await.expect("delete");
        assert_eq!(kv.get("a").await.expect("get"), None);

        let mut acked = Vec::new();
        for i in 0..20 {
            let key = format!("before{i}");
            kv.put(key.clone(), "v").await.expect("put");
            acked.push(key);
        }

        // Stop the node whose replica is in the middle of the chain (unless it is node 0, the
        // client's node; then node 2).
        let report = nodes[0].chain_status().await;
        let config = report.config.expect("a configuration");
        let middle = config.members.get(1).map(|m| m.id.0);
        let mut victim = 2;
        for (i, node) in nodes.iter().enumerate() {
            if i != 0 && Some(node.chain_status().await.replica_id) == middle {
                victim = i;
            }
        }
        let stopped = nodes.remove(victim);
        stopped.shutdown().await;
        let kv = nodes[0].kv();
        let mut after = 0;
        for i in 0..20 {
            let key = format!("after{i}");
            match kv.put(key.clone(), "w").await {
                Ok(()) => {
                    acked.push(key);
                    after += 1;
                }
                Err(KvError::Timeout | KvError::NoChain) => {}
                Err(other) => panic!("unexpected error {other}"),
            }
        }
        assert!(after > 0, "writes continue after a node stops");
        for key in &acked {
            assert!(
                kv.get(key.clone()).await.expect("get").is_some(),
                "acknowledged write {key} lost"
            );
        }
        for node in nodes {
            node.shutdown().await;
        }
    });
}

#[test]
fn a_node_without_a_chain_group_says_so() {
    let runtime = Runtime::builder()
        .worker_threads(1)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let node = Node::start(NodeConfig::new("127.0.0.1:0".parse().expect("addr")))
            .await
            .expect("node starts");
        assert_eq!(node.kv().put("k", "v").await, Err(KvError::Disabled));
        node.shutdown().await;
        let mut config = NodeConfig::new("127.0.0.1:0".parse().expect("addr"));
        config.chain_group = vec![free_addr()];
        assert!(Node::start(config).await.is_err(), "chains need a key");
    });
}
