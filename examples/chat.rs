//! A cluster chat over process groups: three nodes in one process on loopback, a user on
//! each, all in the room `lobby`. A line said on any node fans out to every member of the
//! room, on every node. When one node leaves, the others chat on.
//!
//! Run it with `cargo run --example chat`.

use std::net::SocketAddr;
use std::time::Duration;

use phalanx::node::{Node, NodeConfig};
use phalanx::transports::{Key, RemoteMessage};
use phalanx::{Actor, ActorRef, Context, HandlerError, Reply, Runtime, spawn_actor};
use serde::{Deserialize, Serialize};

/// The process group of the room.
const ROOM: &str = "room.lobby";

/// What a chat user receives.
#[derive(Serialize, Deserialize)]
enum Chat {
    /// A line said in the room.
    Line { from: String, text: String },
    /// The lines received so far.
    Transcript(Reply<Vec<String>>),
}

impl RemoteMessage for Chat {
    const TAG: &'static str = "examples.Chat.v1";
}

/// A user in the room: keeps the lines that reach it.
struct User {
    name: &'static str,
    transcript: Vec<String>,
}

impl Actor for User {
    type Message = Chat;

    async fn handle(&mut self, _: &mut Context<Self>, msg: Chat) -> Result<(), HandlerError> {
        match msg {
            Chat::Line { from, text } => {
                println!("[{}] {from}: {text}", self.name);
                self.transcript.push(format!("{from}: {text}"));
            }
            Chat::Transcript(reply) => {
                let _ = reply.send(self.transcript.clone());
            }
        }
        Ok(())
    }
}

/// Says `text` in the room as `from`: one message to each member the node knows of, on any
/// node. Returns how many members it reached.
async fn say(node: &Node, from: &str, text: &str) -> Result<usize, Box<dyn std::error::Error>> {
    let mut reached = 0;
    for member in node.group::<Chat>(ROOM).await? {
        let line = Chat::Line {
            from: from.to_owned(),
            text: text.to_owned(),
        };
        if member.tell(line).await.is_ok() {
            reached += 1;
        }
    }
    Ok(reached)
}

/// Waits (bounded: 10 s) until `node` sees `count` members in the room.
async fn await_members(node: &Node, count: usize) -> Result<(), Box<dyn std::error::Error>> {
    for _ in 0..400 {
        if node.group::<Chat>(ROOM).await?.len() == count {
            return Ok(());
        }
        phalanx::sleep(Duration::from_millis(25)).await;
    }
    Err(format!(
        "the room never had {count} members as seen from {}",
        node.id()
    )
    .into())
}

/// Waits (bounded: 10 s) until `node` sees `count` members alive (itself included).
async fn await_alive(node: &Node, count: usize) -> Result<(), Box<dyn std::error::Error>> {
    for _ in 0..400 {
        let alive = node
            .members()
            .iter()
            .filter(|row| row.state == "alive")
            .count();
        if alive == count {
            return Ok(());
        }
        phalanx::sleep(Duration::from_millis(25)).await;
    }
    Err(format!("{} never saw {count} members alive", node.id()).into())
}

/// Waits (bounded: 10 s) until `user` has received `line`.
async fn await_line(user: &ActorRef<Chat>, line: &str) -> Result<(), Box<dyn std::error::Error>> {
    for _ in 0..400 {
        let transcript = user.ask(Chat::Transcript, Duration::from_secs(2)).await?;
        if transcript.iter().any(|seen| seen == line) {
            return Ok(());
        }
        phalanx::sleep(Duration::from_millis(25)).await;
    }
    Err(format!("{line:?} never arrived").into())
}

pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = Runtime::builder().worker_threads(2).build()?;
    runtime.block_on(async {
        let key = Key::generate()?;
        let config = |seeds: Vec<SocketAddr>| -> Result<NodeConfig, Box<dyn std::error::Error>> {
            let mut config = NodeConfig::new("127.0.0.1:0".parse()?);
            config.key = Some(key.clone());
            config.seeds = seeds;
            config.gossip.probe_interval = Duration::from_millis(100);
            config.gossip.probe_timeout = Duration::from_millis(50);
            config.gossip.gossip_interval = Some(Duration::from_millis(20));
            Ok(config)
        };
        let first = Node::start(config(vec![])?).await?;
        let seed = vec![first.local_addr()];
        let second = Node::start(config(seed.clone())?).await?;
        let third = Node::start(config(seed)?).await?;

        // Services start in the background: wait until every node sees all three alive.
        for node in [&first, &second, &third] {
            await_alive(node, 3).await?;
        }

        // One user per node, all in the same room.
        let mut users = Vec::new();
        for (node, name) in [(&first, "alice"), (&second, "bob"), (&third, "carol")] {
            let user = spawn_actor(User {
                name,
                transcript: Vec::new(),
            });
            node.join_group(ROOM, &user).await?;
            users.push(user);
        }
        for node in [&first, &second, &third] {
            await_members(node, 3).await?;
        }

        // A line said on the first node reaches everyone, on every node.
        assert_eq!(say(&first, "alice", "hello, room").await?, 3);
        for user in &users {
            await_line(user, "alice: hello, room").await?;
        }

        // Carol's node leaves; the others see the room shrink and chat on.
        third.shutdown().await;
        await_members(&first, 2).await?;
        await_members(&second, 2).await?;
        assert_eq!(say(&second, "bob", "carol has left").await?, 2);
        for user in &users[..2] {
            await_line(user, "bob: carol has left").await?;
        }
        println!("the room goes on with {} members", 2);

        second.shutdown().await;
        first.shutdown().await;
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    runtime.shutdown(Duration::from_secs(2))?;
    Ok(())
}
