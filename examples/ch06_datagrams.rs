//! Listing for "Membership and discovery": a remote message type that opts in to riding the
//! gossip datagrams, between two nodes in one process on loopback.
// `mdbook test` passes no --extern, so the listing names the crates itself.
#[allow(unused_extern_crates)]
extern crate phalanx;
#[allow(unused_extern_crates)]
extern crate serde;

use std::time::Duration;

use phalanx::node::{Node, NodeConfig};
use phalanx::transports::{Carrier, Key, RemoteMessage};
use phalanx::{Actor, Context, HandlerError, Reply, spawn_actor};
use serde::{Deserialize, Serialize};

// ANCHOR: opt_in
/// A load report: small, frequent, and superseded by the next one, so losing one is fine.
#[derive(Serialize, Deserialize)]
enum Load {
    Report {
        node: u8,
        queue: u32,
    },
    /// Asks carry a `Reply`: they always take the stream, whatever the type's carrier.
    Latest(Reply<Option<u32>>),
}

impl RemoteMessage for Load {
    const TAG: &'static str = "example.Load.v1";
    // Best effort, unordered, at most once: ride gossip datagrams when it fits.
    const CARRIER: Carrier = Carrier::Datagram;
}
// ANCHOR_END: opt_in

#[derive(Default)]
struct Balancer {
    latest: Option<u32>,
}

impl Actor for Balancer {
    type Message = Load;

    async fn handle(&mut self, _: &mut Context<Self>, msg: Load) -> Result<(), HandlerError> {
        match msg {
            Load::Report { queue, .. } => self.latest = Some(queue),
            Load::Latest(reply) => {
                let _ = reply.send(self.latest);
            }
        }
        Ok(())
    }
}

fn config(key: &Key, seeds: Vec<std::net::SocketAddr>) -> NodeConfig {
    let mut config = NodeConfig::new("127.0.0.1:0".parse().expect("a loopback address"));
    config.key = Some(key.clone());
    config.seeds = seeds;
    config.gossip.probe_interval = Duration::from_millis(100);
    config.gossip.probe_timeout = Duration::from_millis(50);
    config
}

pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    phalanx::block_on(async {
        let key = Key::generate()?;
        let a = Node::start(config(&key, vec![])).await?;
        let b = Node::start(config(&key, vec![a.local_addr()])).await?;
        // The datagram path needs membership: wait until each node holds the other live.
        let live = |n: &Node| n.members().iter().filter(|r| r.state == "alive").count();
        for _ in 0..400 {
            if live(&a) == 2 && live(&b) == 2 {
                break;
            }
            phalanx::sleep(Duration::from_millis(25)).await;
        }

        // ANCHOR: send
        b.remoting()
            .register("balancer", &spawn_actor(Balancer::default()))?;
        let node = a
            .remoting()
            .connect(b.local_addr(), Duration::from_secs(5))
            .await?;
        let balancer = a
            .remoting()
            .lookup::<Load>(node, "balancer", Duration::from_secs(5))
            .await?;
        for queue in 1..=10 {
            balancer.tell(Load::Report { node: 1, queue }).await?;
        }
        let sent = a.remoting().datagram_stats();
        println!(
            "{} reports by datagram, {} on the stream",
            sent.sent, sent.fell_back
        );
        // ANCHOR_END: send

        // Datagrams and the stream are not ordered with each other: the ask may arrive first.
        let mut latest = None;
        for _ in 0..200 {
            latest = balancer.ask(Load::Latest, Duration::from_secs(5)).await?;
            if b.remoting().datagram_stats().delivered == 10 {
                break;
            }
            phalanx::sleep(Duration::from_millis(25)).await;
        }
        let received = b.remoting().datagram_stats();
        println!(
            "{} delivered, {} dropped; latest {latest:?}",
            received.delivered, received.dropped
        );
        assert_eq!(sent.sent, 10, "every report fit a datagram");
        assert_eq!(received.delivered, 10, "loopback lost none");
        a.shutdown().await;
        b.shutdown().await;
        Ok(())
    })
}
