//! Monitors, links, signal priority and the registry.

#[path = "support/common.rs"]
mod common;

use std::time::Duration;

use common::{Cmd, LONG, Recorder, runtime};
use phalanx_runtime::{
    Actor, ActorRef, Addr, Context, Down, Exit, ExitReason, FailureKind, HandlerError, Reply,
    Spawn, SpawnError, registry, spawn_actor,
};

/// Watches actors and reports what it hears, in order, with user messages interleaved.
#[derive(Default)]
struct Watcher {
    heard: Vec<String>,
}

enum WatchCmd {
    Monitor(Addr),
    Link(Addr),
    Trap,
    Note(&'static str),
    Block(Duration),
    Heard(Reply<Vec<String>>),
}

impl Actor for Watcher {
    type Message = WatchCmd;

    async fn handle(&mut self, ctx: &mut Context<Self>, msg: WatchCmd) -> Result<(), HandlerError> {
        match msg {
            WatchCmd::Monitor(addr) => {
                ctx.monitor(&addr);
            }
            WatchCmd::Link(addr) => {
                ctx.link(&addr);
            }
            WatchCmd::Trap => ctx.trap_exit(true),
            WatchCmd::Note(text) => self.heard.push(text.to_string()),
            WatchCmd::Block(duration) => phalanx_runtime::sleep(duration).await,
            WatchCmd::Heard(reply) => {
                let _ = reply.send(self.heard.clone());
            }
        }
        Ok(())
    }

    async fn down(&mut self, _: &mut Context<Self>, down: Down) -> Result<(), HandlerError> {
        self.heard.push(format!("down {} {}", down.id, down.reason));
        Ok(())
    }

    async fn linked_exit(&mut self, _: &mut Context<Self>, exit: Exit) -> Result<(), HandlerError> {
        self.heard
            .push(format!("exit {} {}", exit.from, exit.reason));
        Ok(())
    }
}

async fn heard(watcher: &ActorRef<WatchCmd>) -> Vec<String> {
    watcher
        .ask(WatchCmd::Heard, LONG)
        .await
        .expect("watcher answers")
}

#[test]
fn monitor_receives_down_with_reason() {
    let rt = runtime();
    rt.block_on(async {
        let watcher = spawn_actor(Watcher::default());
        let target = spawn_actor(Recorder::default());
        watcher
            .tell(WatchCmd::Monitor(target.addr().clone()))
            .await
            .expect("alive");
        heard(&watcher).await;
        target.tell(Cmd::Panic("oops")).await.expect("alive");
        target.wait().await;
        let expected = format!("down {} failed: panicked: oops", target.id());
        for _ in 0..100 {
            if heard(&watcher).await.contains(&expected) {
                return;
            }
            phalanx_runtime::sleep(Duration::from_millis(10)).await;
        }
        panic!("no Down received: {:?}", heard(&watcher).await);
    });
}

#[test]
fn monitoring_an_ended_actor_gives_noproc() {
    let rt = runtime();
    rt.block_on(async {
        let target = spawn_actor(Recorder::default());
        target.stop();
        target.wait().await;
        let watcher = spawn_actor(Watcher::default());
        watcher
            .tell(WatchCmd::Monitor(target.addr().clone()))
            .await
            .expect("alive");
        assert_eq!(
            heard(&watcher).await,
            vec![format!("down {} no such actor", target.id())]
        );
    });
}

#[test]
fn signals_overtake_queued_user_messages() {
    let rt = runtime();
    rt.block_on(async {
        let watcher = spawn_actor(Watcher::default());
        let target = spawn_actor(Recorder::default());
        watcher
            .tell(WatchCmd::Monitor(target.addr().clone()))
            .await
            .expect("alive");
        // A round trip: the monitor is in place.
        heard(&watcher).await;
        // Keep the watcher busy, queue user messages behind it, then end the target.
        watcher
            .tell(WatchCmd::Block(Duration::from_millis(200)))
            .await
            .expect("alive");
        watcher
            .tell(WatchCmd::Note("first note"))
            .await
            .expect("alive");
        watcher
            .tell(WatchCmd::Note("second note"))
            .await
            .expect("alive");
        target.kill();
        target.wait().await;
        let heard = heard(&watcher).await;
        assert_eq!(
            heard,
            vec![
                format!("down {} killed", target.id()),
                "first note".into(),
                "second note".into()
            ]
        );
    });
}

#[test]
fn abnormal_exit_propagates_over_links_unless_trapped() {
    let rt = runtime();
    rt.block_on(async {
        let linked = spawn_actor(Watcher::default());
        let trapping = spawn_actor(Watcher::default());
        let target = spawn_actor(Recorder::default());
        trapping.tell(WatchCmd::Trap).await.expect("alive");
        linked
            .tell(WatchCmd::Link(target.addr().clone()))
            .await
            .expect("alive");
        trapping
            .tell(WatchCmd::Link(target.addr().clone()))
            .await
            .expect("alive");
        heard(&linked).await;
        heard(&trapping).await;
        target.tell(Cmd::Fail("broken")).await.expect("alive");
        target.wait().await;
        let reason = linked.wait().await;
        assert_eq!(
            reason.failure().map(|f| f.kind()),
            Some(FailureKind::LinkedExit(target.id()))
        );
        let expected = format!("exit {} failed: error: broken", target.id());
        for _ in 0..100 {
            if heard(&trapping).await.contains(&expected) {
                assert!(trapping.is_alive());
                return;
            }
            phalanx_runtime::sleep(Duration::from_millis(10)).await;
        }
        panic!("trapping watcher heard no exit");
    });
}

#[test]
fn normal_exit_does_not_propagate_over_links() {
    let rt = runtime();
    rt.block_on(async {
        let linked = spawn_actor(Watcher::default());
        let target = spawn_actor(Recorder::default());
        linked
            .tell(WatchCmd::Link(target.addr().clone()))
            .await
            .expect("alive");
        heard(&linked).await;
        target.stop();
        assert_eq!(target.wait().await, ExitReason::Normal);
        phalanx_runtime::sleep(Duration::from_millis(20)).await;
        assert!(linked.is_alive());
        assert!(heard(&linked).await.is_empty());
    });
}

#[test]
fn registry_names_are_unique_and_released_on_exit() {
    let rt = runtime();
    rt.block_on(async {
        let first = Spawn::new(Recorder::default())
            .name("store")
            .start()
            .expect("spawn");
        assert_eq!(registry::whereis::<Cmd>("store"), Some(first.clone()));
        let taken = Spawn::new(Recorder::default()).name("store").start();
        assert_eq!(taken.err(), Some(SpawnError::NameTaken("store".into())));
        first.stop();
        first.wait().await;
        assert!(registry::whereis::<Cmd>("store").is_none());
        let second = Spawn::new(Recorder::default())
            .name("store")
            .start()
            .expect("name free");
        assert_eq!(registry::whereis::<Cmd>("store"), Some(second));
    });
}
