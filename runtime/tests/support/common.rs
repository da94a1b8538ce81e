//! Helpers shared by the runtime's integration tests.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    missing_debug_implementations
)]

use std::time::Duration;

use phalanx_runtime::{Actor, Context, HandlerError, Reply, Runtime};

pub const LONG: Duration = Duration::from_secs(10);

pub fn runtime() -> Runtime {
    Runtime::builder()
        .worker_threads(2)
        .build()
        .expect("runtime starts")
}

/// A test actor with a few behaviours selected by message.
pub enum Cmd {
    Push(u64),
    Get(Reply<Vec<u64>>),
    Panic(&'static str),
    Fail(&'static str),
    /// Sleeps (awaiting), then records the value.
    Slow(Duration, u64),
    /// Never answers: drops the reply.
    Drop(Reply<Vec<u64>>),
}

#[derive(Default)]
pub struct Recorder {
    pub seen: Vec<u64>,
    /// Told when `stopped` runs, with the values seen.
    pub on_stop: Option<flume::Sender<(String, Vec<u64>)>>,
}

impl Actor for Recorder {
    type Message = Cmd;

    async fn handle(&mut self, _: &mut Context<Self>, msg: Cmd) -> Result<(), HandlerError> {
        match msg {
            Cmd::Push(value) => self.seen.push(value),
            Cmd::Get(reply) => {
                let _ = reply.send(self.seen.clone());
            }
            Cmd::Panic(text) => panic!("{text}"),
            Cmd::Fail(text) => return Err(text.into()),
            Cmd::Slow(duration, value) => {
                phalanx_runtime::sleep(duration).await;
                self.seen.push(value);
            }
            Cmd::Drop(reply) => drop(reply),
        }
        Ok(())
    }

    async fn stopped(&mut self, _: &mut Context<Self>, reason: &phalanx_runtime::ExitReason) {
        if let Some(tx) = &self.on_stop {
            let _ = tx.send((reason.to_string(), self.seen.clone()));
        }
    }
}
