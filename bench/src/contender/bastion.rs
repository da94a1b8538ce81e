//! bastion 0.4.5 on its own executor (`Bastion::init` + `Bastion::start`).
//!
//! Every actor is a child in a children group (bastion has no unsupervised actors); messages go
//! with `tell_anonymously` (unbounded mailbox, never waits), requests with `ctx.ask(..)` or
//! `ask_anonymously(..)` and are matched with `MessageHandler`. Placement is up to bastion's
//! executor; it offers no control over it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bastion::prelude::*;

use crate::contender::{self, Tally};
use crate::memory;
use crate::scenario::{Measurement, Outcome, Scenario};

mod supervision;

/// Runs one scenario on the process-wide bastion system.
pub(crate) fn run(scenario: Scenario, count: usize) -> Outcome {
    Bastion::init();
    Bastion::start();
    let result = match scenario {
        Scenario::AskPingPong => ping_pong(count),
        Scenario::TellOneToOne => tell(count, 1),
        Scenario::TellEightToOne => tell(count, contender::PRODUCERS),
        Scenario::Spawn100k | Scenario::Spawn1M => spawn_idle(count),
        Scenario::RestartOne
        | Scenario::RestartGroup
        | Scenario::Supervise10k
        | Scenario::Supervise100k => {
            contender::silence_panics();
            supervision::run(scenario, count)
        }
    };
    match result {
        Ok(m) => Outcome::Measured(m),
        Err(e) => Outcome::Failed(e),
    }
}

/// A request to the pinger: do this many sequential round trips, reply with the time taken.
#[derive(Debug)]
struct Run(usize);

/// Starts a one-child group whose child answers every `u64` question with the same number.
fn ponger() -> Result<ChildRef, String> {
    let group = Bastion::children(|children| {
        children.with_exec(|ctx: BastionContext| async move {
            loop {
                MessageHandler::new(ctx.recv().await?)
                    .on_question(|n: u64, sender| {
                        // The asker may be gone; nothing to do then.
                        let _ = sender.reply(n);
                    })
                    .on_fallback(|_, _| ());
            }
        })
    })
    .map_err(|()| "cannot start the ponger group".to_owned())?;
    first_child(&group)
}

/// Starts a one-child group whose child asks `target` sequentially when asked to [`Run`].
fn pinger(target: ChildRef) -> Result<ChildRef, String> {
    let group = Bastion::children(move |children| {
        children.with_exec(move |ctx: BastionContext| {
            let target = target.clone();
            async move {
                loop {
                    let job = MessageHandler::new(ctx.recv().await?)
                        .on_question(|Run(n), sender| Some((n, sender)))
                        .on_fallback(|_, _| None);
                    let Some((n, sender)) = job else { continue };
                    let start = Instant::now();
                    for i in 0..n as u64 {
                        let answer = ctx.ask(&target.addr(), i).map_err(|_| ())?;
                        let reply = answer.await?;
                        let echoed = MessageHandler::new(reply)
                            .on_tell(|n: u64, _| Some(n))
                            .on_fallback(|_, _| None);
                        debug_assert_eq!(echoed, Some(i));
                    }
                    let _ = sender.reply(start.elapsed());
                }
            }
        })
    })
    .map_err(|()| "cannot start the pinger group".to_owned())?;
    first_child(&group)
}

/// The single child of a one-child group.
fn first_child(group: &ChildrenRef) -> Result<ChildRef, String> {
    group
        .elems()
        .first()
        .cloned()
        .ok_or_else(|| "children group has no child".to_owned())
}

/// Asks the pinger for one run, blocking this (non-executor) thread on the answer.
fn drive(pinger: &ChildRef, count: usize) -> Result<Duration, String> {
    let answer = pinger
        .ask_anonymously(Run(count))
        .map_err(|_| "pinger is gone".to_owned())?;
    let reply = run!(answer).map_err(|()| "pinger dropped the question".to_owned())?;
    MessageHandler::new(reply)
        .on_tell(|elapsed: Duration, _| Some(elapsed))
        .on_fallback(|_, _| None)
        .ok_or_else(|| "pinger answered something else".to_owned())
}

/// Sequential asks from one child to another.
fn ping_pong(count: usize) -> Result<Measurement, String> {
    let pinger = pinger(ponger()?)?;
    drive(&pinger, contender::warm_up(count))?;
    let mut runs = Vec::new();
    for _ in 0..contender::REPEATS {
        runs.push(drive(&pinger, count)?);
    }
    Ok(Measurement::rate(count, contender::median(runs))
        .with_note("two one-child groups; bastion's executor places them"))
}

/// `producers` tasks on bastion's executor tell `count` messages in total to one child.
fn tell(count: usize, producers: usize) -> Result<Measurement, String> {
    tell_once(contender::warm_up(count), producers)?;
    let mut runs = Vec::new();
    for _ in 0..contender::REPEATS {
        runs.push(tell_once(count, producers)?);
    }
    Ok(Measurement::rate(count, contender::median(runs))
        .with_note("producers spawned on bastion's executor; unbounded mailbox"))
}

/// One run of [`tell`].
fn tell_once(count: usize, producers: usize) -> Result<Duration, String> {
    // A tally of one: the counter hits it once it has seen every message.
    let (last, finished) = Tally::new(1);
    let (up, ready) = Tally::new(1);
    let group = Bastion::children(move |children| {
        children.with_exec(move |ctx: BastionContext| {
            let (last, up) = (Arc::clone(&last), Arc::clone(&up));
            async move {
                up.hit();
                let mut seen = 0;
                loop {
                    let msg = ctx.recv().await?;
                    MessageHandler::new(msg)
                        .on_tell(|_: u64, _| seen += 1)
                        .on_fallback(|_, _| ());
                    if seen == count {
                        last.hit();
                    }
                }
            }
        })
    })
    .map_err(|()| "cannot start the counter group".to_owned())?;
    let counter = first_child(&group)?;
    run!(ready).map_err(|_| "counter never started".to_owned())?;
    let start = Instant::now();
    for p in 0..producers {
        let counter = counter.clone();
        let share = contender::share(count, producers, p);
        spawn!(async move {
            for i in 0..share as u64 {
                if counter.tell_anonymously(i).is_err() {
                    break;
                }
            }
        });
    }
    let end = run!(finished).map_err(|_| "counter never finished".to_owned())?;
    let _ = group.kill();
    Ok(contender::between(start, end))
}

/// Starts `count` one-child groups of an idle child each.
///
/// One group `with_redundancy(count)` would be the shorter spelling, but bastion hands every
/// child of a group a `ChildrenRef` listing all its siblings so far, which makes it quadratic
/// in time and memory (1,000 children: 0.36 s and 240 KB each; 5,000: 10 s and 1.2 MB each).
fn spawn_idle(count: usize) -> Result<Measurement, String> {
    let (tally, started) = Tally::new(count);
    let mut groups = Vec::with_capacity(count);
    let before = memory::rss();
    let start = Instant::now();
    for _ in 0..count {
        let tally = Arc::clone(&tally);
        let group = Bastion::children(move |children| {
            children.with_exec(move |ctx: BastionContext| {
                let tally = Arc::clone(&tally);
                async move {
                    tally.hit();
                    loop {
                        ctx.recv().await?;
                    }
                }
            })
        })
        .map_err(|()| "cannot start a children group".to_owned())?;
        groups.push(group);
    }
    let end = run!(started).map_err(|_| "children never all started".to_owned())?;
    let after = memory::rss();
    let measurement = Measurement::spawn(
        contender::between(start, end),
        after.saturating_sub(before),
        count,
    );
    Ok(measurement.with_note("one one-child group per actor, built from the main thread"))
}
