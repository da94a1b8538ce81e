//! phalanx on its own executor, with two workers like the tokio runtimes of the peers.
//!
//! Actors are started with `spawn_actor`, `Spawn` or `Context::spawn_child` (bounded mailbox of
//! `DEFAULT_MAILBOX_CAPACITY`, 1024), messages go with `tell(..).await` (waits for capacity) and
//! requests with `ask(..)`. An actor spawned from a worker stays on that worker; one spawned
//! from outside goes to the next worker in turn.

use std::sync::Arc;
use std::time::{Duration, Instant};

use phalanx::{Actor, ActorRef, Context, HandlerError, Reply, Runtime, Spawn};

use crate::contender::{self, Tally};
use crate::memory;
use crate::scenario::{Measurement, Outcome, Scenario};

mod supervision;

/// Worker threads of the phalanx runtime.
const WORKERS: usize = 2;

/// Runs one scenario on a fresh phalanx runtime.
pub(crate) fn run(scenario: Scenario, count: usize) -> Outcome {
    let runtime = match Runtime::builder().worker_threads(WORKERS).build() {
        Ok(rt) => rt,
        Err(e) => return Outcome::Failed(format!("phalanx runtime: {e}")),
    };
    let result = match scenario {
        Scenario::AskPingPong => runtime.block_on(ping_pong(count)),
        Scenario::TellOneToOne => runtime.block_on(tell(count, 1)),
        Scenario::TellEightToOne => runtime.block_on(tell(count, contender::PRODUCERS)),
        Scenario::Spawn100k | Scenario::Spawn1M => runtime.block_on(spawn_idle(count)),
        Scenario::RestartOne
        | Scenario::RestartGroup
        | Scenario::Supervise10k
        | Scenario::Supervise100k => {
            contender::silence_panics();
            runtime.block_on(supervision::run(scenario, count))
        }
    };
    match result {
        Ok(m) => Outcome::Measured(m),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// A ping: reply with the number.
type Ping = (u64, Reply<u64>);

/// Answers every ping with the same number.
struct Ponger;

impl Actor for Ponger {
    type Message = Ping;

    async fn handle(
        &mut self,
        _: &mut Context<Self>,
        (n, reply): Ping,
    ) -> Result<(), HandlerError> {
        // The asker may have timed out; a lost reply is its problem.
        let _ = reply.send(n);
        Ok(())
    }
}

/// A request to the pinger: do this many sequential round trips, reply with the time taken.
type Drive = (usize, Reply<Duration>);

/// Spawns a ponger as its child (same worker) and drives round trips to it on request.
struct Pinger {
    /// The child it pings, once started.
    ponger: Option<ActorRef<Ping>>,
}

impl Actor for Pinger {
    type Message = Drive;

    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), HandlerError> {
        self.ponger = Some(ctx.spawn_child(Ponger));
        Ok(())
    }

    async fn handle(
        &mut self,
        _: &mut Context<Self>,
        (count, reply): Drive,
    ) -> Result<(), HandlerError> {
        let ponger = self.ponger.as_ref().ok_or("pinger has no ponger")?;
        let start = Instant::now();
        for i in 0..count as u64 {
            let n = ponger
                .ask(|r| (i, r), contender::STEP_TIMEOUT)
                .await
                .map_err(|e| e.to_string())?;
            debug_assert_eq!(n, i);
        }
        let _ = reply.send(start.elapsed());
        Ok(())
    }
}

/// Sequential asks from one actor to its child.
async fn ping_pong(count: usize) -> Result<Measurement, HandlerError> {
    let pinger = phalanx::spawn_actor(Pinger { ponger: None });
    let drive = |n: usize| {
        let pinger = pinger.clone();
        async move {
            pinger
                .ask(|r| (n, r), contender::STEP_TIMEOUT)
                .await
                .map_err(|e| e.to_string())
        }
    };
    drive(contender::warm_up(count)).await?;
    let mut runs = Vec::new();
    for _ in 0..contender::REPEATS {
        runs.push(drive(count).await?);
    }
    pinger.kill();
    Ok(Measurement::rate(count, contender::median(runs))
        .with_note("ponger started with ctx.spawn_child from pinger's started hook: same worker"))
}

/// Counts messages and reports when it has seen them all.
struct Counter {
    /// Messages seen so far.
    seen: usize,
    /// Messages to wait for.
    target: usize,
    /// Receives the moment the last message was handled.
    done: Option<tokio::sync::oneshot::Sender<Instant>>,
}

impl Actor for Counter {
    type Message = u64;

    async fn handle(&mut self, _: &mut Context<Self>, _: u64) -> Result<(), HandlerError> {
        self.seen += 1;
        if self.seen == self.target
            && let Some(done) = self.done.take()
        {
            let _ = done.send(Instant::now());
        }
        Ok(())
    }
}

/// `producers` tasks tell `count` messages in total to one counter.
async fn tell(count: usize, producers: usize) -> Result<Measurement, HandlerError> {
    tell_once(contender::warm_up(count), producers).await?;
    let mut runs = Vec::new();
    for _ in 0..contender::REPEATS {
        runs.push(tell_once(count, producers).await?);
    }
    Ok(
        Measurement::rate(count, contender::median(runs)).with_note(format!(
            "producers are phalanx tasks (shared executor); bounded mailbox of {}",
            contender::MAILBOX_CAPACITY
        )),
    )
}

/// One run of [`tell`].
async fn tell_once(count: usize, producers: usize) -> Result<Duration, HandlerError> {
    let (done, finished) = tokio::sync::oneshot::channel();
    let counter = Spawn::new(Counter {
        seen: 0,
        target: count,
        done: Some(done),
    })
    .capacity(contender::MAILBOX_CAPACITY)
    .start()?;
    let start = Instant::now();
    for p in 0..producers {
        let counter = counter.clone();
        let share = contender::share(count, producers, p);
        phalanx::spawn(async move {
            for i in 0..share as u64 {
                if counter.tell(i).await.is_err() {
                    break;
                }
            }
        })
        .detach();
    }
    let end = phalanx::timeout(contender::STEP_TIMEOUT, finished).await??;
    counter.kill();
    Ok(contender::between(start, end))
}

/// An actor that does nothing after reporting its start.
struct Idle {
    /// Hit once in `started`, then dropped.
    tally: Option<Arc<Tally>>,
}

impl Actor for Idle {
    type Message = ();

    async fn started(&mut self, _: &mut Context<Self>) -> Result<(), HandlerError> {
        if let Some(tally) = self.tally.take() {
            tally.hit();
        }
        Ok(())
    }

    async fn handle(&mut self, _: &mut Context<Self>, (): ()) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// Spawns `count` idle actors from one phalanx task and keeps their references.
///
/// Like the tokio peers, the loop runs inside the runtime: every actor stays on the worker that
/// runs the task. The same loop on the main thread (`block_on`, actors handed to the workers in
/// turn) took about twice as long, since every spawn then crosses threads.
async fn spawn_idle(count: usize) -> Result<Measurement, HandlerError> {
    let (tally, started) = Tally::new(count);
    let before = memory::rss();
    let start = Instant::now();
    let _refs = phalanx::spawn(async move {
        let mut refs = Vec::with_capacity(count);
        for _ in 0..count {
            refs.push(phalanx::spawn_actor(Idle {
                tally: Some(Arc::clone(&tally)),
            }));
        }
        refs
    })
    .await;
    let end = phalanx::timeout(contender::STEP_TIMEOUT, started).await??;
    let after = memory::rss();
    let measurement = Measurement::spawn(
        contender::between(start, end),
        after.saturating_sub(before),
        count,
    );
    Ok(measurement.with_note("spawn_actor from one phalanx task: all on that task's worker"))
}
