//! ractor 0.16 on a tokio multi-thread runtime with two workers.
//!
//! Every actor is spawned with `Actor::spawn` (which awaits `pre_start`), messages are sent with
//! `cast` (unbounded mailbox, never waits) and requests with `call` (ractor's `call!`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
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
struct Ponger;

/// A request to the ponger.
enum Ping {
    /// Reply with the number.
    Ping(u64, RpcReplyPort<u64>),
}

impl Actor for Ponger {
    type Msg = Ping;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Ping>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Ping>,
        msg: Ping,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let Ping::Ping(n, reply) = msg;
        // The caller may have timed out; a lost reply is its problem.
        let _ = reply.send(n);
        Ok(())
    }
}

/// Spawns a ponger as its linked child and drives round trips to it on request.
struct Pinger;

/// A request to the pinger.
enum Drive {
    /// Do this many sequential round trips and reply with the time they took.
    Run(usize, RpcReplyPort<Duration>),
}

impl Actor for Pinger {
    type Msg = Drive;
    type State = ActorRef<Ping>;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<Drive>,
        _: (),
    ) -> Result<ActorRef<Ping>, ActorProcessingErr> {
        let (ponger, _) = Actor::spawn_linked(None, Ponger, (), myself.get_cell()).await?;
        Ok(ponger)
    }

    async fn handle(
        &self,
        _: ActorRef<Drive>,
        msg: Drive,
        ponger: &mut ActorRef<Ping>,
    ) -> Result<(), ActorProcessingErr> {
        let Drive::Run(count, reply) = msg;
        let start = Instant::now();
        for i in 0..count as u64 {
            let n = ractor::call!(ponger, Ping::Ping, i)?;
            debug_assert_eq!(n, i);
        }
        let _ = reply.send(start.elapsed());
        Ok(())
    }
}

/// Sequential asks from one actor to its child.
async fn ping_pong(count: usize) -> Result<Measurement, BoxError> {
    let (pinger, _) = Actor::spawn(None, Pinger, ()).await?;
    ractor::call!(pinger, Drive::Run, contender::warm_up(count))?;
    let mut runs = Vec::new();
    for _ in 0..contender::REPEATS {
        runs.push(ractor::call!(pinger, Drive::Run, count)?);
    }
    pinger.stop(None);
    Ok(Measurement::rate(count, contender::median(runs))
        .with_note("ponger spawned linked from pinger's pre_start; tokio places both"))
}

/// Counts messages and reports when it has seen them all.
struct Counter;

/// Arguments of a counter: how many messages to expect and where to report.
struct Expect {
    /// Messages to wait for.
    target: usize,
    /// Receives the moment the last message was handled.
    done: oneshot::Sender<Instant>,
}

/// State of a counter.
struct Counting {
    /// Messages seen so far.
    seen: usize,
    /// What to expect.
    expect: Option<Expect>,
}

impl Actor for Counter {
    type Msg = u64;
    type State = Counting;
    type Arguments = Expect;

    async fn pre_start(
        &self,
        _: ActorRef<u64>,
        expect: Expect,
    ) -> Result<Counting, ActorProcessingErr> {
        Ok(Counting {
            seen: 0,
            expect: Some(expect),
        })
    }

    async fn handle(
        &self,
        _: ActorRef<u64>,
        _: u64,
        state: &mut Counting,
    ) -> Result<(), ActorProcessingErr> {
        state.seen += 1;
        if state
            .expect
            .as_ref()
            .is_some_and(|e| e.target == state.seen)
            && let Some(expect) = state.expect.take()
        {
            let _ = expect.done.send(Instant::now());
        }
        Ok(())
    }
}

/// `producers` tasks cast `count` messages in total to one counter.
async fn tell(count: usize, producers: usize) -> Result<Measurement, BoxError> {
    tell_once(contender::warm_up(count), producers).await?;
    let mut runs = Vec::new();
    for _ in 0..contender::REPEATS {
        runs.push(tell_once(count, producers).await?);
    }
    Ok(Measurement::rate(count, contender::median(runs))
        .with_note("producers are tokio tasks; unbounded mailbox"))
}

/// One run of [`tell`].
async fn tell_once(count: usize, producers: usize) -> Result<Duration, BoxError> {
    let (done, finished) = oneshot::channel();
    let expect = Expect {
        target: count,
        done,
    };
    let (counter, _) = Actor::spawn(None, Counter, expect).await?;
    let start = Instant::now();
    for p in 0..producers {
        let counter = counter.clone();
        let share = contender::share(count, producers, p);
        tokio::spawn(async move {
            for i in 0..share as u64 {
                if counter.cast(i).is_err() {
                    break;
                }
            }
        });
    }
    let end = tokio::time::timeout(contender::STEP_TIMEOUT, finished).await??;
    counter.stop(None);
    Ok(contender::between(start, end))
}

/// An actor that does nothing after reporting its start.
struct Idle;

impl Actor for Idle {
    type Msg = ();
    type State = ();
    type Arguments = Arc<Tally>;

    async fn pre_start(
        &self,
        _: ActorRef<()>,
        tally: Arc<Tally>,
    ) -> Result<(), ActorProcessingErr> {
        tally.hit();
        Ok(())
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
            let (actor, _) = Actor::spawn(None, Idle, Arc::clone(&tally)).await?;
            refs.push(actor);
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
    Ok(measurement.with_note("spawned sequentially from one tokio task (spawn awaits pre_start)"))
}
