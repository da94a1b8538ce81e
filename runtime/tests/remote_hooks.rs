//! The hooks the remoting layer builds on: remote routes, proxies, and replies that cross a
//! (simulated) wire as ids.

#[path = "support/common.rs"]
mod common;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{LONG, runtime};
use phalanx_runtime::remote::{
    self, ExportedReply, RemoteControl, RemoteRoute, ReplySink, exporting_replies,
    importing_replies,
};
use phalanx_runtime::{
    Actor, ActorRef, AskError, Context, Down, ExitReason, HandlerError, Reply, SendError,
    TrySendError, spawn_actor,
};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
enum Calc {
    Add(u64, u64, Reply<u64>),
    Ignore(Reply<u64>),
}

struct Calculator;

impl Actor for Calculator {
    type Message = Calc;

    async fn handle(&mut self, _: &mut Context<Self>, msg: Calc) -> Result<(), HandlerError> {
        match msg {
            Calc::Add(a, b, reply) => {
                let _ = reply.send(a + b);
            }
            Calc::Ignore(reply) => drop(reply),
        }
        Ok(())
    }
}

type Answers = flume::Sender<(u64, Option<Vec<u8>>)>;

/// A "network": requests are encoded to bytes, decoded on the "other node" and told to the
/// real actor there; answers come back as bytes and complete the exported replies.
struct Wire {
    target: ActorRef<Calc>,
    answers: Answers,
    pending: Arc<Mutex<HashMap<u64, ExportedReply>>>,
}

struct Answer {
    id: u64,
    answers: Answers,
}

impl ReplySink for Answer {
    fn answer(self: Box<Self>, bytes: Vec<u8>) {
        let _ = self.answers.send((self.id, Some(bytes)));
    }

    fn unanswered(self: Box<Self>) {
        let _ = self.answers.send((self.id, None));
    }
}

impl RemoteRoute<Calc> for Wire {
    fn try_send(&self, msg: Calc) -> Result<(), TrySendError<Calc>> {
        let (bytes, exported) = exporting_replies(|| postcard::to_allocvec(&msg));
        let Ok(bytes) = bytes else {
            return Err(TrySendError::Closed(msg));
        };
        for reply in exported {
            self.pending
                .lock()
                .expect("pending")
                .insert(reply.id(), reply);
        }
        let answers = self.answers.clone();
        let decoded: Result<Calc, _> = importing_replies(
            move |id| -> Box<dyn ReplySink> {
                Box::new(Answer {
                    id,
                    answers: answers.clone(),
                })
            },
            || postcard::from_bytes(&bytes),
        );
        match decoded {
            Ok(decoded) => self
                .target
                .try_tell(decoded)
                .map_err(|_| TrySendError::Closed(msg)),
            Err(_) => Err(TrySendError::Closed(msg)),
        }
    }

    fn send(
        &self,
        msg: Calc,
    ) -> Pin<Box<dyn Future<Output = Result<(), SendError<Calc>>> + Send + '_>> {
        let sent = self
            .try_send(msg)
            .map_err(|error| SendError::Closed(error.into_inner()));
        Box::pin(async move { sent })
    }
}

#[derive(Default)]
struct Control {
    stops: AtomicU32,
    kills: AtomicU32,
}

impl RemoteControl for Control {
    fn stop(&self) {
        self.stops.fetch_add(1, Ordering::SeqCst);
    }

    fn kill(&self) {
        self.kills.fetch_add(1, Ordering::SeqCst);
    }
}

fn remote_calculator() -> (ActorRef<Calc>, Arc<Control>) {
    let target = spawn_actor(Calculator);
    let (answers, answered) = flume::unbounded::<(u64, Option<Vec<u8>>)>();
    let pending = Arc::new(Mutex::new(HashMap::<u64, ExportedReply>::new()));
    let wire = Wire {
        target,
        answers,
        pending: pending.clone(),
    };
    phalanx_runtime::spawn(async move {
        while let Ok((id, bytes)) = answered.recv_async().await {
            let reply = pending.lock().expect("pending").remove(&id);
            if let (Some(reply), Some(bytes)) = (reply, bytes) {
                reply.complete(&bytes).expect("answer decodes");
            }
        }
    })
    .detach();
    let control = Arc::new(Control::default());
    let proxy = remote::proxy(control.clone(), Some("calculator".into()));
    (ActorRef::remote(proxy, Arc::new(wire)), control)
}

#[test]
fn ask_through_a_remote_route_gets_the_answer() {
    let rt = runtime();
    rt.block_on(async {
        let (calculator, _) = remote_calculator();
        assert!(calculator.is_remote());
        let sum = calculator.ask(|reply| Calc::Add(40, 2, reply), LONG).await;
        assert_eq!(sum.expect("answered"), 42);
    });
}

#[test]
fn a_remote_reply_dropped_unanswered_gives_no_reply() {
    let rt = runtime();
    rt.block_on(async {
        let (calculator, _) = remote_calculator();
        let ignored = calculator.ask(Calc::Ignore, LONG).await;
        assert!(matches!(ignored, Err(AskError::NoReply)), "{ignored:?}");
    });
}

#[test]
fn a_reply_cannot_be_serialized_outside_the_remoting_layer() {
    let rt = runtime();
    rt.block_on(async {
        let target = spawn_actor(Calculator);
        let (tx, rx) = flume::bounded(1);
        // Encode the request by hand, outside `exporting_replies`: refused.
        let _ = target
            .ask(
                |reply: Reply<u64>| {
                    let msg = Calc::Ignore(reply);
                    let _ = tx.send(postcard::to_allocvec(&msg).is_err());
                    msg
                },
                Duration::from_secs(1),
            )
            .await;
        assert_eq!(rx.recv_async().await.ok(), Some(true));
    });
}

#[test]
fn proxies_forward_control_and_fire_monitors_when_ended() {
    let rt = runtime();
    rt.block_on(async {
        let (calculator, control) = remote_calculator();
        calculator.stop();
        calculator.kill();
        assert_eq!(control.stops.load(Ordering::SeqCst), 1);
        assert_eq!(control.kills.load(Ordering::SeqCst), 1);
        assert!(
            calculator.is_alive(),
            "a proxy ends only when the remoting layer says so"
        );

        let watcher = spawn_actor(Watcher::default());
        watcher
            .tell(WatchCmd::Watch(calculator.addr().clone()))
            .await
            .expect("alive");
        let _ = watcher.ask(WatchCmd::Heard, LONG).await;
        remote::end_proxy(calculator.addr(), &ExitReason::NodeDown);
        remote::end_proxy(calculator.addr(), &ExitReason::Normal);
        assert_eq!(calculator.wait().await, ExitReason::NodeDown);
        for _ in 0..100 {
            let heard = watcher.ask(WatchCmd::Heard, LONG).await.expect("answer");
            if !heard.is_empty() {
                assert_eq!(heard, vec![ExitReason::NodeDown]);
                return;
            }
            phalanx_runtime::sleep(Duration::from_millis(5)).await;
        }
        panic!("no Down for the proxy");
    });
}

#[derive(Default)]
struct Watcher {
    heard: Vec<ExitReason>,
}

enum WatchCmd {
    Watch(phalanx_runtime::Addr),
    Heard(Reply<Vec<ExitReason>>),
}

impl Actor for Watcher {
    type Message = WatchCmd;

    async fn handle(&mut self, ctx: &mut Context<Self>, msg: WatchCmd) -> Result<(), HandlerError> {
        match msg {
            WatchCmd::Watch(addr) => {
                ctx.monitor(&addr);
            }
            WatchCmd::Heard(reply) => {
                let _ = reply.send(self.heard.clone());
            }
        }
        Ok(())
    }

    async fn down(&mut self, _: &mut Context<Self>, down: Down) -> Result<(), HandlerError> {
        self.heard.push(down.reason);
        Ok(())
    }
}
