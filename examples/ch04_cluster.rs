//! Listing for "Clusters": three nodes in one process form a cluster through a seed.
// `mdbook test` passes no --extern, so the listing names the crate itself.
#[allow(unused_extern_crates)]
extern crate phalanx;
#[allow(unused_extern_crates)]
extern crate serde;

use std::time::Duration;

use phalanx::node::{Node, NodeConfig};
use phalanx::transports::{Key, RemoteMessage};
use phalanx::{Actor, Context, HandlerError, Reply, Runtime, spawn_actor};
use serde::{Deserialize, Serialize};

// ANCHOR: message
/// A message that can cross nodes: serde for the wire, and a stable tag naming the type.
#[derive(Serialize, Deserialize)]
enum Clock {
    Now(Reply<String>),
}

impl RemoteMessage for Clock {
    const TAG: &'static str = "book.Clock.v1";
}

struct Timekeeper;

impl Actor for Timekeeper {
    type Message = Clock;

    async fn handle(&mut self, _: &mut Context<Self>, msg: Clock) -> Result<(), HandlerError> {
        let Clock::Now(reply) = msg;
        let _ = reply.send("it is time".to_owned());
        Ok(())
    }
}
// ANCHOR_END: message

pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = Runtime::builder().worker_threads(2).build()?;
    runtime.block_on(async {
        // ANCHOR: start
        let key = Key::generate()?;
        let config = |seeds: Vec<std::net::SocketAddr>| {
            // Port 0: the system picks a free port; `local_addr` tells which.
            let mut config = NodeConfig::new("127.0.0.1:0".parse().expect("an address"));
            config.key = Some(key.clone());
            config.seeds = seeds;
            // Faster than the defaults, for a demonstration on one machine.
            config.gossip.probe_interval = Duration::from_millis(200);
            config.gossip.probe_timeout = Duration::from_millis(100);
            config
        };
        let first = Node::start(config(vec![])).await?;
        let second = Node::start(config(vec![first.local_addr()])).await?;
        let third = Node::start(config(vec![first.local_addr()])).await?;
        // ANCHOR_END: start

        // ANCHOR: converge
        let mut converged = false;
        for _ in 0..100 {
            let alive = [&first, &second, &third].iter().all(|node| {
                node.members()
                    .iter()
                    .filter(|row| row.state == "alive")
                    .count()
                    == 3
            });
            if alive {
                converged = true;
                break;
            }
            phalanx::sleep(Duration::from_millis(50)).await;
        }
        if !converged {
            return Err("the nodes did not converge".into());
        }
        for row in first.members() {
            println!("{row}");
        }
        // ANCHOR_END: converge

        // ANCHOR: registry
        // Register on the first node; find and use it from the third.
        let keeper = spawn_actor(Timekeeper);
        first.register("timekeeper", &keeper).await?;
        let mut found = None;
        for _ in 0..100 {
            if let Some(actor) = third.whereis::<Clock>("timekeeper").await? {
                found = Some(actor);
                break;
            }
            phalanx::sleep(Duration::from_millis(50)).await;
        }
        let remote = found.ok_or("the registration did not spread")?;
        let answer = remote.ask(Clock::Now, Duration::from_secs(2)).await?;
        assert_eq!(answer, "it is time");
        // ANCHOR_END: registry

        // ANCHOR: leave
        let leaving = third.local_addr();
        third.shutdown().await;
        let mut seen = false;
        for _ in 0..100 {
            let rows = first.members();
            if rows
                .iter()
                .any(|row| row.addr == leaving && row.state == "left")
            {
                seen = true;
                break;
            }
            phalanx::sleep(Duration::from_millis(50)).await;
        }
        if !seen {
            return Err("the leave was not seen".into());
        }
        // ANCHOR_END: leave
        second.shutdown().await;
        first.shutdown().await;
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    runtime.shutdown(Duration::from_secs(2))?;
    Ok(())
}
