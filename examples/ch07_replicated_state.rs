//! Listing for "Replicated state": three nodes in one process run a chain; the key-value map
//! is written and read from different nodes, and survives a node stopping.
// `mdbook test` passes no --extern, so the listing names the crate itself.
#[allow(unused_extern_crates)]
extern crate phalanx;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use phalanx::Runtime;
use phalanx::node::{KvError, Node, NodeConfig};
use phalanx::transports::Key;

/// A loopback address with a port that was free a moment ago: the configuration group must be
/// named by addresses known before the nodes start.
fn free_addr() -> Result<SocketAddr, std::io::Error> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = Runtime::builder().worker_threads(2).build()?;
    runtime.block_on(async {
        // ANCHOR: start
        let key = Key::generate()?;
        let group = vec![free_addr()?, free_addr()?, free_addr()?];
        let mut nodes = Vec::new();
        for &listen in &group {
            let mut config = NodeConfig::new(listen);
            // Chains need a key: raft messages are accepted only from authenticated frames.
            config.key = Some(key.clone());
            config.seeds = group.iter().copied().filter(|a| *a != listen).collect();
            // The same list on every node: these three run the configuration group.
            config.chain_group = group.clone();
            config.gossip.probe_interval = Duration::from_millis(200);
            config.gossip.probe_timeout = Duration::from_millis(100);
            nodes.push(Node::start(config).await?);
        }
        // ANCHOR_END: start

        // ANCHOR: wait
        // The chain starts empty; the group appends each replica it hears from at the tail.
        // Until a replica is caught up and the head's fence has passed, writes wait or fail
        // with `NoChain`/`Timeout`: retry.
        let kv = nodes[0].kv();
        let mut ready = false;
        for _ in 0..100 {
            let status = nodes[0].chain_status().await;
            let full = status.config.is_some_and(|c| c.members.len() == 3);
            if full && kv.put("hello", "world").await.is_ok() {
                ready = true;
                break;
            }
            phalanx::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "the chain formed");
        // ANCHOR_END: wait

        // ANCHOR: use
        // Any node's client reaches the same chain: writes go to the head, reads to any
        // replica (CRAQ), and both are linearizable.
        let other = nodes[2].kv();
        assert_eq!(other.get("hello").await?, Some(b"world".to_vec()));
        let swapped = other
            .compare_and_set("hello", Some(b"world".to_vec()), Some(b"there".to_vec()))
            .await?;
        assert!(swapped);
        // The value moved on, so a second compare-and-set from the old value fails.
        let again = kv
            .compare_and_set("hello", Some(b"world".to_vec()), Some(b"again".to_vec()))
            .await?;
        assert!(!again);
        kv.delete("hello").await?;
        assert_eq!(kv.get("hello").await?, None);
        // ANCHOR_END: use

        // ANCHOR: failover
        kv.put("durable", "yes").await?;
        // Stop a node: the group removes its replica and the chain goes on with two.
        let stopped = nodes.remove(1);
        stopped.shutdown().await;
        let mut written = false;
        for _ in 0..10 {
            match kv.put("after", "stop").await {
                Ok(()) => {
                    written = true;
                    break;
                }
                // During the reconfiguration a write may time out; the retry is safe.
                Err(KvError::Timeout | KvError::NoChain) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        assert!(written, "writes continue");
        assert_eq!(kv.get("durable").await?, Some(b"yes".to_vec()));
        // ANCHOR_END: failover

        for node in nodes {
            node.shutdown().await;
        }
        Ok(())
    })
}
