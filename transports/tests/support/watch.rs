//! Watching an actor from the tests: a monitor whose `Down` notices arrive on a channel.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    missing_debug_implementations
)]

use std::time::Duration;

use phalanx_runtime::{Actor, Addr, Context, Down, HandlerError, spawn_actor};

/// Monitors an address and forwards its `Down`.
struct Watcher {
    target: Addr,
    downs: flume::Sender<Down>,
    monitoring: flume::Sender<()>,
}

impl Actor for Watcher {
    type Message = ();

    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), HandlerError> {
        ctx.monitor(&self.target);
        let _ = self.monitoring.send(());
        Ok(())
    }

    async fn handle(&mut self, _: &mut Context<Self>, (): ()) -> Result<(), HandlerError> {
        Ok(())
    }

    async fn down(&mut self, _: &mut Context<Self>, down: Down) -> Result<(), HandlerError> {
        let _ = self.downs.send(down);
        Ok(())
    }
}

/// Monitors `target` from a new actor; returns once the monitor is in place (a monitor set
/// after the end would report `NoProc` instead of the reason), waiting at most `wait`.
pub async fn watch(target: &Addr, wait: Duration) -> flume::Receiver<Down> {
    let (downs, rx) = flume::unbounded();
    let (monitoring, started) = flume::bounded(1);
    spawn_actor(Watcher {
        target: target.clone(),
        downs,
        monitoring,
    });
    phalanx_runtime::timeout(wait, started.recv_async())
        .await
        .expect("watcher did not start")
        .expect("watcher started");
    rx
}
