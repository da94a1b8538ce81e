//! The node's root supervisor: when one of its services keeps failing past the restart
//! intensity, the root gives up, stops the node's services, and `Node::wait` says why.

use std::time::Duration;

use phalanx::node::{GOSSIP_NAME, GossipMessage, Node, NodeConfig};
use phalanx::{ActorRef, Runtime};

/// The node's gossip actor once it is (again) registered, bounded at about 5 s.
async fn gossip_of(node: &Node) -> Option<ActorRef<GossipMessage>> {
    let name = format!("{GOSSIP_NAME}.{}", node.id());
    for _ in 0..500 {
        if let Some(gossip) = phalanx::registry::whereis::<GossipMessage>(&name) {
            return Some(gossip);
        }
        phalanx::sleep(Duration::from_millis(10)).await;
    }
    None
}

#[test]
fn a_service_that_keeps_failing_makes_the_root_give_up_with_an_error() {
    let runtime = Runtime::builder()
        .worker_threads(2)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let config = NodeConfig::new("127.0.0.1:0".parse().expect("address"));
        let node = Node::start(config).await.expect("node starts");
        // The root allows 10 restarts in 10 s: the 11th kill of the same service escalates.
        let mut kills = 0;
        let outcome = futures_lite::future::or(async { Some(node.wait().await) }, async {
            while kills < 100 {
                let Some(gossip) = gossip_of(&node).await else {
                    break;
                };
                gossip.kill();
                kills += 1;
                let _ = gossip.addr().wait().await;
            }
            phalanx::sleep(Duration::from_secs(10)).await;
            None
        })
        .await;
        let error = match outcome {
            Some(Err(error)) => error.to_string(),
            other => panic!("the root did not give up after repeated kills: {other:?}"),
        };
        assert!(!error.is_empty());
        // The services were stopped: the gossip actor is not restarted any more.
        assert!(gossip_of(&node).await.is_none(), "gossip still running");
    });
}
