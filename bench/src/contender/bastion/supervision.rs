//! Supervision scenarios on bastion: restart latency and many children under one supervisor.
//!
//! A bastion supervisor supervises children *groups*; the OTP shape "a supervisor of N
//! workers" maps to a supervisor of N one-child groups, and its strategy (one-for-one,
//! one-for-all) applies across those groups. The default restart strategy (always,
//! immediately) is used; bastion has no restart intensity limit.

use std::sync::Arc;
use std::time::Instant;

use bastion::prelude::*;
use hdrhistogram::Histogram;
use tokio::sync::mpsc;

use crate::contender::{self, Tally};
use crate::memory;
use crate::scenario::{Measurement, Scenario};

/// Size of the one-for-all group in the group restart scenario.
const GROUP: usize = 1000;

/// Runs one supervision scenario.
pub(super) fn run(scenario: Scenario, count: usize) -> Result<Measurement, String> {
    match scenario {
        Scenario::RestartOne => restarts(1, SupervisionStrategy::OneForOne, count),
        Scenario::RestartGroup => restarts(GROUP, SupervisionStrategy::OneForAll, count),
        _ => many_children(count),
    }
}

/// A question a child answers with `()`.
#[derive(Debug)]
struct Ping;

/// A message that makes a child panic.
#[derive(Debug)]
struct Crash;

/// How a child announces that an instance of it started.
#[derive(Clone, Debug)]
enum Report {
    /// Send the child's index and reference on a channel.
    Channel(usize, mpsc::UnboundedSender<(usize, ChildRef)>),
    /// Count it.
    Tally(Arc<Tally>),
}

/// Adds a one-child group to `supervisor` whose child reports its start, answers [`Ping`] and
/// panics on [`Crash`].
fn victim(supervisor: Supervisor, report: Report) -> Supervisor {
    supervisor.children(move |children| {
        children.with_exec(move |ctx: BastionContext| {
            let report = report.clone();
            async move {
                match report {
                    Report::Channel(index, starts) => {
                        let _ = starts.send((index, ctx.current().clone()));
                    }
                    Report::Tally(tally) => tally.hit(),
                }
                loop {
                    let crash = MessageHandler::new(ctx.recv().await?)
                        .on_question(|Ping, sender| {
                            let _ = sender.reply(());
                            false
                        })
                        .on_tell(|Crash, _| true)
                        .on_fallback(|_, _| false);
                    if crash {
                        panic!("crash requested by the benchmark");
                    }
                }
            }
        })
    })
}

/// Measures `count` restarts of child 0 in a group of `size` under `strategy`: from the crash
/// request until every member has started again and the new child 0 answered a question.
fn restarts(
    size: usize,
    strategy: SupervisionStrategy,
    count: usize,
) -> Result<Measurement, String> {
    let label = format!("{strategy:?}");
    let (starts, mut started) = mpsc::unbounded_channel();
    let supervisor = Bastion::supervisor(move |supervisor| {
        (0..size).fold(supervisor.with_strategy(strategy), |sp, i| {
            victim(sp, Report::Channel(i, starts.clone()))
        })
    })
    .map_err(|()| "cannot start the supervisor".to_owned())?;
    let mut first = wait_for_starts(&mut started, size)?;
    let mut latencies = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    for _ in 0..count {
        let start = Instant::now();
        first
            .tell_anonymously(Crash)
            .map_err(|_| "child 0 is gone".to_owned())?;
        first = wait_for_starts(&mut started, size)?;
        let answer = first
            .ask_anonymously(Ping)
            .map_err(|_| "new child 0 is gone".to_owned())?;
        run!(answer).map_err(|()| "new child 0 did not answer".to_owned())?;
        latencies
            .record(start.elapsed().as_nanos() as u64)
            .map_err(|e| e.to_string())?;
    }
    drop(supervisor);
    Ok(contender::latency(&latencies).with_note(format!(
        "{label} supervisor of {size} one-child groups: crash (panic) until all {size} \
         restarted and child 0 answered an ask"
    )))
}

/// Waits until `size` children have reported a start; returns child 0's reference.
fn wait_for_starts(
    started: &mut mpsc::UnboundedReceiver<(usize, ChildRef)>,
    size: usize,
) -> Result<ChildRef, String> {
    let mut first = None;
    for _ in 0..size {
        let (index, child) = run!(started.recv()).ok_or("every child is gone")?;
        if index == 0 {
            first = Some(child);
        }
    }
    first.ok_or_else(|| "child 0 did not restart".to_owned())
}

/// Starts one supervisor with `count` one-child groups and waits until all started.
fn many_children(count: usize) -> Result<Measurement, String> {
    let (tally, all_started) = Tally::new(count);
    let before = memory::rss();
    let start = Instant::now();
    let supervisor = Bastion::supervisor(move |supervisor| {
        (0..count).fold(supervisor, |sp, _| {
            victim(sp, Report::Tally(Arc::clone(&tally)))
        })
    })
    .map_err(|()| "cannot start the supervisor".to_owned())?;
    let end = run!(all_started).map_err(|_| "children never all started".to_owned())?;
    let after = memory::rss();
    let measurement = Measurement::spawn(
        contender::between(start, end),
        after.saturating_sub(before),
        count,
    );
    drop(supervisor);
    Ok(measurement.with_note("one OneForOne supervisor of one-child groups"))
}
