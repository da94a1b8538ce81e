//! Listing for "Getting started": one runtime, one actor, `tell` and `ask`.
// `mdbook test` passes no --extern, so the listing names the crate itself.
#[allow(unused_extern_crates)]
extern crate phalanx;

// ANCHOR: hello
use std::time::Duration;

use phalanx::{Actor, Context, HandlerError, Reply, Runtime, spawn_actor};

/// What the greeter understands.
enum Greeter {
    /// Remember a name.
    Meet(String),
    /// Answer with a greeting for everyone met so far.
    Greet(Reply<String>),
}

#[derive(Default)]
struct Host {
    met: Vec<String>,
}

impl Actor for Host {
    type Message = Greeter;

    async fn handle(&mut self, _: &mut Context<Self>, msg: Greeter) -> Result<(), HandlerError> {
        match msg {
            Greeter::Meet(name) => self.met.push(name),
            Greeter::Greet(reply) => {
                let _ = reply.send(format!("hello, {}", self.met.join(" and ")));
            }
        }
        Ok(())
    }
}

pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = Runtime::builder().worker_threads(2).build()?;
    let greeting = runtime.block_on(async {
        let host = spawn_actor(Host::default());
        host.tell(Greeter::Meet("ada".into())).await?;
        host.tell(Greeter::Meet("grace".into())).await?;
        let greeting = host.ask(Greeter::Greet, Duration::from_secs(1)).await?;
        Ok::<String, Box<dyn std::error::Error>>(greeting)
    })?;
    println!("{greeting}");
    assert_eq!(greeting, "hello, ada and grace");
    runtime.shutdown(Duration::from_secs(1))?;
    Ok(())
}
// ANCHOR_END: hello
