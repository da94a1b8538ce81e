//! kameo 0.22 on a tokio multi-thread runtime with two workers.
//!
//! Actors are spawned with `Spawn::spawn` (default bounded mailbox of 64) or
//! `spawn_with_mailbox` where a scenario needs a given capacity; messages go with
//! `tell(..).await` (waits for mailbox capacity) and requests with `ask(..).await`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kameo::Actor;
use kameo::actor::{ActorRef, Spawn};
use kameo::mailbox;
use kameo::message::{Context, Message};
use tokio::sync::oneshot;

use crate::contender::{self, Tally};
use crate::memory;
use crate::scenario::{Measurement, Outcome, Scenario};

/// Runs one scenario on a fresh tokio runtime.
pub(crate) fn run(scenario: Scenario, count: usize) -> Outcome {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(contender::TOKIO_WORKERS)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return Outcome::Failed(format!("tokio runtime: {e}")),
    };
    let result = match scenario {
        Scenario::AskPingPong => runtime.block_on(ping_pong(count)),
        Scenario::TellOneToOne => runtime.block_on(tell(count, 1)),
        Scenario::TellEightToOne => runtime.block_on(tell(count, contender::PRODUCERS)),
        Scenario::Spawn100k | Scenario::Spawn1M => runtime.block_on(spawn_idle(count)),
        _ => return Outcome::NotApplicable(contender::SUPERVISION_PEERS.to_owned()),
    };
    match result {
        Ok(m) => Outcome::Measured(m),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// Boxed error of a scenario run.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Answers every ping with the same number.
#[derive(Actor)]
struct Ponger;

/// A request to the ponger: reply with the number.
struct Ping(u64);

impl Message<Ping> for Ponger {
    type Reply = u64;

    async fn handle(&mut self, Ping(n): Ping, _: &mut Context<Self, Self::Reply>) -> u64 {
        n
    }
}

/// Spawns a ponger linked to itself and drives round trips to it on request.
struct Pinger {
    /// The child it pings.
    ponger: ActorRef<Ponger>,
}

impl Actor for Pinger {
    type Args = ();
    type Error = Infallible;

    async fn on_start(_: (), myself: ActorRef<Self>) -> Result<Self, Infallible> {
        let ponger = Ponger::spawn_link(&myself, Ponger).await;
        Ok(Pinger { ponger })
    }
}

/// A request to the pinger: do this many sequential round trips, reply with the time taken.
struct Run(usize);

impl Message<Run> for Pinger {
    type Reply = Result<Duration, String>;

    async fn handle(
        &mut self,
        Run(count): Run,
        _: &mut Context<Self, Self::Reply>,
    ) -> Result<Duration, String> {
        let start = Instant::now();
        for i in 0..count as u64 {
            let n = self.ponger.ask(Ping(i)).await.map_err(|e| e.to_string())?;
            debug_assert_eq!(n, i);
        }
        Ok(start.elapsed())
    }
}

/// Sequential asks from one actor to its linked child.
async fn ping_pong(count: usize) -> Result<Measurement, BoxError> {
    let pinger = Pinger::spawn(());
    let ask = |n| {
        let pinger = pinger.clone();
        async move { pinger.ask(Run(n)).await.map_err(|e| e.to_string()) }
    };
    ask(contender::warm_up(count)).await?;
    let mut runs = Vec::new();
    for _ in 0..contender::REPEATS {
        runs.push(ask(count).await?);
    }
    pinger.kill();
    Ok(Measurement::rate(count, contender::median(runs))
        .with_note("ponger spawn_link'ed from pinger's on_start; tokio places both"))
}

/// Counts messages and reports when it has seen them all.
struct Counter {
    /// Messages seen so far.
    seen: usize,
    /// Messages to wait for.
    target: usize,
    /// Receives the moment the last message was handled.
    done: Option<oneshot::Sender<Instant>>,
}

impl Actor for Counter {
    type Args = (usize, oneshot::Sender<Instant>);
    type Error = Infallible;

    async fn on_start((target, done): Self::Args, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(Counter {
            seen: 0,
            target,
            done: Some(done),
        })
    }
}

impl Message<u64> for Counter {
    type Reply = ();

    async fn handle(&mut self, _: u64, _: &mut Context<Self, Self::Reply>) {
        self.seen += 1;
        if self.seen == self.target
            && let Some(done) = self.done.take()
        {
            let _ = done.send(Instant::now());
        }
    }
}

/// `producers` tasks tell `count` messages in total to one counter.
async fn tell(count: usize, producers: usize) -> Result<Measurement, BoxError> {
    tell_once(contender::warm_up(count), producers).await?;
    let mut runs = Vec::new();
    for _ in 0..contender::REPEATS {
        runs.push(tell_once(count, producers).await?);
    }
    Ok(
        Measurement::rate(count, contender::median(runs)).with_note(format!(
            "producers are tokio tasks; bounded mailbox of {}",
            contender::MAILBOX_CAPACITY
        )),
    )
}

/// One run of [`tell`].
async fn tell_once(count: usize, producers: usize) -> Result<Duration, BoxError> {
    let (done, finished) = oneshot::channel();
    let counter =
        Counter::spawn_with_mailbox((count, done), mailbox::bounded(contender::MAILBOX_CAPACITY));
    counter.wait_for_startup().await;
    let start = Instant::now();
    for p in 0..producers {
        let counter = counter.clone();
        let share = contender::share(count, producers, p);
        tokio::spawn(async move {
            for i in 0..share as u64 {
                if counter.tell(i).await.is_err() {
                    break;
                }
            }
        });
    }
    let end = tokio::time::timeout(contender::STEP_TIMEOUT, finished).await??;
    counter.kill();
    Ok(contender::between(start, end))
}

/// An actor that does nothing after reporting its start.
struct Idle;

impl Actor for Idle {
    type Args = Arc<Tally>;
    type Error = Infallible;

    async fn on_start(tally: Arc<Tally>, _: ActorRef<Self>) -> Result<Self, Infallible> {
        tally.hit();
        Ok(Idle)
    }
}

/// Spawns `count` idle actors from one task and keeps their references.
async fn spawn_idle(count: usize) -> Result<Measurement, BoxError> {
    let (tally, started) = Tally::new(count);
    let spawner = tokio::spawn(async move {
        let mut refs = Vec::with_capacity(count);
        let before = memory::rss();
        let start = Instant::now();
        for _ in 0..count {
            refs.push(Idle::spawn(Arc::clone(&tally)));
        }
        let end = tokio::time::timeout(contender::STEP_TIMEOUT, started).await??;
        let after = memory::rss();
        let elapsed = contender::between(start, end);
        Ok::<_, BoxError>((
            Measurement::spawn(elapsed, after.saturating_sub(before), count),
            refs,
        ))
    });
    let (measurement, _refs) = spawner.await??;
    Ok(measurement.with_note("spawned from one tokio task; default mailbox (bounded 64)"))
}
