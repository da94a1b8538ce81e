//! Supervision scenarios on phalanx-supervisors: restart latency and many children.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use phalanx::supervisors::{ChildSpec, Intensity, Strategy, Supervisor, SupervisorRef};
use phalanx::{Actor, ActorRef, Context, HandlerError, Reply};
use tokio::sync::mpsc;

use crate::contender::{self, Tally};
use crate::memory;
use crate::scenario::{Measurement, Scenario};

/// Size of the one-for-all group in the group restart scenario.
const GROUP: usize = 1000;

/// Runs one supervision scenario.
pub(super) async fn run(scenario: Scenario, count: usize) -> Result<Measurement, HandlerError> {
    match scenario {
        Scenario::RestartOne => restarts(1, Strategy::OneForOne, count).await,
        Scenario::RestartGroup => restarts(GROUP, Strategy::OneForAll, count).await,
        _ => many_children(count).await,
    }
}

/// A command to a supervised child.
enum Command {
    /// Answer with `()`.
    Ping(Reply<()>),
    /// Panic.
    Crash,
}

/// How a child announces that an instance of it started.
#[derive(Clone)]
enum Report {
    /// Send the child's index and reference on a channel.
    Channel(usize, mpsc::UnboundedSender<(usize, ActorRef<Command>)>),
    /// Count it.
    Tally(Arc<Tally>),
}

/// A supervised child that reports each start, answers pings and panics on request.
struct Victim {
    /// Where to report the start.
    report: Report,
}

impl Actor for Victim {
    type Message = Command;

    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), HandlerError> {
        match &self.report {
            Report::Channel(index, starts) => {
                // The bench may have finished; a lost report is harmless then.
                let _ = starts.send((*index, ctx.myself()));
            }
            Report::Tally(tally) => tally.hit(),
        }
        Ok(())
    }

    async fn handle(&mut self, _: &mut Context<Self>, msg: Command) -> Result<(), HandlerError> {
        match msg {
            Command::Ping(reply) => {
                let _ = reply.send(());
                Ok(())
            }
            Command::Crash => panic!("crash requested by the benchmark"),
        }
    }
}

/// A limit no benchmark reaches: restarts must never escalate here.
fn unlimited() -> Intensity {
    Intensity::new(u32::MAX - 1, Duration::from_millis(1))
}

/// Measures `count` restarts of child 0 in a group of `size` under `strategy`: from the crash
/// request until every member has started again and the new child 0 answered a ping.
async fn restarts(
    size: usize,
    strategy: Strategy,
    count: usize,
) -> Result<Measurement, HandlerError> {
    let (starts, mut started) = mpsc::unbounded_channel();
    let specs = (0..size).map(|i| {
        let report = Report::Channel(i, starts.clone());
        ChildSpec::new(format!("child-{i}"), move || Victim {
            report: report.clone(),
        })
    });
    let supervisor = Supervisor::new(strategy)
        .intensity(unlimited())
        .children(specs)
        .start()?;
    let mut first = wait_for_starts(&mut started, size).await?;
    let mut latencies = Histogram::<u64>::new(3)?;
    for _ in 0..count {
        let start = Instant::now();
        first
            .tell(Command::Crash)
            .await
            .map_err(|e| e.to_string())?;
        first = wait_for_starts(&mut started, size).await?;
        first
            .ask(Command::Ping, contender::STEP_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        latencies.record(start.elapsed().as_nanos() as u64)?;
    }
    shut(&supervisor).await;
    Ok(contender::latency(&latencies).with_note(format!(
        "{strategy:?} supervisor of {size}: crash (panic) until all {size} restarted and child 0 \
         answered an ask"
    )))
}

/// Waits until `size` children have reported a start; returns child 0's reference.
async fn wait_for_starts(
    started: &mut mpsc::UnboundedReceiver<(usize, ActorRef<Command>)>,
    size: usize,
) -> Result<ActorRef<Command>, HandlerError> {
    let mut first = None;
    for _ in 0..size {
        let (index, actor) = phalanx::timeout(contender::STEP_TIMEOUT, started.recv())
            .await?
            .ok_or("every child is gone")?;
        if index == 0 {
            first = Some(actor);
        }
    }
    Ok(first.ok_or("child 0 did not restart")?)
}

/// Starts one one-for-one supervisor with `count` children and waits until all started.
async fn many_children(count: usize) -> Result<Measurement, HandlerError> {
    let (tally, all_started) = Tally::new(count);
    let before = memory::rss();
    let start = Instant::now();
    let template = ChildSpec::new("child", move || Victim {
        report: Report::Tally(Arc::clone(&tally)),
    });
    let supervisor = Supervisor::new(Strategy::OneForOne)
        .children((0..count).map(|i| template.with_id(format!("child-{i}"))))
        .start()?;
    let end = phalanx::timeout(contender::STEP_TIMEOUT, all_started).await??;
    let after = memory::rss();
    let measurement = Measurement::spawn(
        contender::between(start, end),
        after.saturating_sub(before),
        count,
    );
    drop(supervisor);
    Ok(measurement.with_note(
        "one OneForOne supervisor, children from template.with_id, time includes building specs",
    ))
}

/// Shuts the supervisor down, bounded; the process ends right after anyway.
async fn shut(supervisor: &SupervisorRef) {
    let _ = phalanx::timeout(Duration::from_secs(5), supervisor.shutdown()).await;
}
