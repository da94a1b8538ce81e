//! Lifecycle: panics become failures, stop versus kill, hooks, children, shutdown.

#[path = "support/common.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Cmd, LONG, Recorder, runtime};
use phalanx_runtime::{
    Actor, Context, ExitReason, Failure, FailureKind, HandlerError, ShutdownError, Spawn,
    spawn_actor,
};

#[test]
fn panic_is_caught_and_carries_its_message() {
    let rt = runtime();
    rt.block_on(async {
        let actor = spawn_actor(Recorder::default());
        actor
            .tell(Cmd::Panic("the disk is on fire"))
            .await
            .expect("alive");
        let reason = actor.wait().await;
        let failure = reason.failure().expect("failed");
        assert_eq!(failure.kind(), FailureKind::Panic);
        assert_eq!(failure.message(), "the disk is on fire");
        assert!(reason.is_abnormal());
    });
    // The runtime survives: new actors still work.
    rt.block_on(async {
        let actor = spawn_actor(Recorder::default());
        assert!(actor.ask(Cmd::Get, LONG).await.is_ok());
    });
}

#[test]
fn handler_error_is_a_failure() {
    let rt = runtime();
    rt.block_on(async {
        let actor = spawn_actor(Recorder::default());
        actor.tell(Cmd::Fail("bad input")).await.expect("alive");
        let reason = actor.wait().await;
        assert_eq!(reason, ExitReason::Failed(Failure::error("bad input")));
    });
}

#[test]
fn stop_finishes_the_current_message_and_skips_the_rest() {
    let rt = runtime();
    rt.block_on(async {
        let (tx, rx) = flume::unbounded();
        let actor = spawn_actor(Recorder {
            on_stop: Some(tx),
            ..Recorder::default()
        });
        actor
            .tell(Cmd::Slow(Duration::from_millis(100), 1))
            .await
            .expect("alive");
        actor.tell(Cmd::Push(2)).await.expect("alive");
        // Once the slow message has started (only Push(2) is left in the mailbox), stop: the
        // slow message must finish, and Push(2) must not run.
        until_mailbox_holds(&actor, 1).await;
        actor.stop();
        assert_eq!(actor.wait().await, ExitReason::Normal);
        let (reason, seen) = rx.recv_async().await.expect("stopped hook ran");
        assert_eq!(reason, "normal");
        assert_eq!(seen, vec![1]);
    });
}

#[test]
fn kill_abandons_the_current_message_and_skips_stopped() {
    let rt = runtime();
    rt.block_on(async {
        let (tx, rx) = flume::unbounded();
        let actor = spawn_actor(Recorder {
            on_stop: Some(tx),
            ..Recorder::default()
        });
        actor
            .tell(Cmd::Slow(Duration::from_secs(3600), 1))
            .await
            .expect("alive");
        phalanx_runtime::sleep(Duration::from_millis(20)).await;
        actor.kill();
        assert_eq!(actor.wait().await, ExitReason::Killed);
        assert!(rx.try_recv().is_err(), "stopped must not run after a kill");
    });
}

/// Records hook calls in a shared log.
struct Hooked {
    log: Arc<Mutex<Vec<String>>>,
    label: &'static str,
}

impl Actor for Hooked {
    type Message = ();

    async fn started(&mut self, _: &mut Context<Self>) -> Result<(), HandlerError> {
        self.log
            .lock()
            .expect("log")
            .push(format!("{} started", self.label));
        Ok(())
    }

    async fn handle(&mut self, _: &mut Context<Self>, _: ()) -> Result<(), HandlerError> {
        Ok(())
    }

    async fn restarting(&mut self, _: &mut Context<Self>, failure: &Failure) {
        self.log
            .lock()
            .expect("log")
            .push(format!("{} restarting after {failure}", self.label));
    }

    async fn stopped(&mut self, _: &mut Context<Self>, reason: &ExitReason) {
        self.log
            .lock()
            .expect("log")
            .push(format!("{} stopped: {reason}", self.label));
    }
}

#[test]
fn restarting_receives_the_failure_before_started() {
    let rt = runtime();
    rt.block_on(async {
        let log = Arc::new(Mutex::new(Vec::new()));
        let actor = Spawn::new(Hooked {
            log: log.clone(),
            label: "a",
        })
        .restart_of(Failure::panic("index out of bounds"))
        .start()
        .expect("spawn");
        actor.stop();
        actor.wait().await;
        let log = log.lock().expect("log").clone();
        assert_eq!(
            log,
            vec![
                "a restarting after panicked: index out of bounds",
                "a started",
                "a stopped: normal"
            ]
        );
    });
}

/// A parent that spawns three children on start.
struct Parent {
    log: Arc<Mutex<Vec<String>>>,
}

impl Actor for Parent {
    type Message = ();

    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), HandlerError> {
        for label in ["child-1", "child-2", "child-3"] {
            ctx.spawn_child(Hooked {
                log: self.log.clone(),
                label,
            });
        }
        Ok(())
    }

    async fn handle(&mut self, _: &mut Context<Self>, _: ()) -> Result<(), HandlerError> {
        Ok(())
    }

    async fn stopped(&mut self, _: &mut Context<Self>, reason: &ExitReason) {
        self.log
            .lock()
            .expect("log")
            .push(format!("parent stopped: {reason}"));
    }
}

#[test]
fn children_stop_newest_first_before_their_parent() {
    let rt = runtime();
    let log = Arc::new(Mutex::new(Vec::new()));
    rt.block_on(async {
        let parent = spawn_actor(Parent { log: log.clone() });
        // A round trip makes sure `started` (and so the spawns) ran.
        parent.tell(()).await.expect("alive");
        phalanx_runtime::sleep(Duration::from_millis(20)).await;
        parent.stop();
        parent.wait().await;
    });
    let stops: Vec<String> = log
        .lock()
        .expect("log")
        .iter()
        .filter(|l| l.contains("stopped"))
        .cloned()
        .collect();
    assert_eq!(
        stops,
        vec![
            "child-3 stopped: normal",
            "child-2 stopped: normal",
            "child-1 stopped: normal",
            "parent stopped: normal"
        ]
    );
}

#[test]
fn shutdown_stops_roots_newest_first_and_trees_in_order() {
    let rt = runtime();
    let log = Arc::new(Mutex::new(Vec::new()));
    rt.block_on(async {
        let first = spawn_actor(Hooked {
            log: log.clone(),
            label: "first",
        });
        let parent = spawn_actor(Parent { log: log.clone() });
        parent.tell(()).await.expect("alive");
        first.tell(()).await.expect("alive");
        phalanx_runtime::sleep(Duration::from_millis(20)).await;
    });
    rt.shutdown(LONG).expect("orderly shutdown");
    let stops: Vec<String> = log
        .lock()
        .expect("log")
        .iter()
        .filter(|l| l.contains("stopped"))
        .cloned()
        .collect();
    assert_eq!(
        stops,
        vec![
            "child-3 stopped: normal",
            "child-2 stopped: normal",
            "child-1 stopped: normal",
            "parent stopped: normal",
            "first stopped: normal"
        ]
    );
}

#[test]
fn shutdown_kills_what_misses_the_deadline() {
    let rt = runtime();
    let stuck = rt.block_on(async {
        let stuck = spawn_actor(Recorder::default());
        stuck
            .tell(Cmd::Slow(Duration::from_secs(3600), 1))
            .await
            .expect("alive");
        // The actor is inside the endless handler once its mailbox is empty.
        until_mailbox_holds(&stuck, 0).await;
        stuck
    });
    let result = rt.shutdown(Duration::from_millis(100));
    assert_eq!(result, Err(ShutdownError::DeadlineExceeded { killed: 1 }));
    assert!(!stuck.is_alive());
}

#[test]
fn spawns_are_refused_after_shutdown() {
    let rt = runtime();
    let handle = rt.handle();
    rt.shutdown(LONG).expect("nothing to stop");
    let refused = Spawn::new(Recorder::default()).runtime(&handle).start();
    assert_eq!(refused.err(), Some(phalanx_runtime::SpawnError::ShutDown));
}

/// Waits (bounded: 10 s) until `actor`'s mailbox holds exactly `count` messages.
async fn until_mailbox_holds(actor: &phalanx_runtime::ActorRef<Cmd>, count: usize) {
    for _ in 0..10_000 {
        if actor.mailbox_len() == count {
            return;
        }
        phalanx_runtime::sleep(Duration::from_millis(1)).await;
    }
    panic!("the mailbox never held {count} messages");
}
