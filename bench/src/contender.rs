//! The runtimes under comparison, each driven idiomatically through its own API.

mod bastion;
mod kameo;
mod phalanx;
mod ractor;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::scenario::{Measurement, Outcome, Scenario};

/// Number of producers in the many-to-one tell scenario.
pub(crate) const PRODUCERS: usize = 8;

/// Mailbox capacity used where a runtime's mailbox is bounded (phalanx, kameo).
pub(crate) const MAILBOX_CAPACITY: usize = 1024;

/// Worker threads of the tokio runtime that ractor and kameo run on.
pub(crate) const TOKIO_WORKERS: usize = 2;

/// One runtime under comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Contender {
    /// phalanx itself.
    Phalanx,
    /// bastion 0.4.5 on its own executor.
    Bastion,
    /// ractor 0.16 on tokio.
    Ractor,
    /// kameo 0.22 on tokio.
    Kameo,
}

impl Contender {
    /// Every contender, in column order.
    pub(crate) const ALL: [Contender; 4] = [
        Contender::Phalanx,
        Contender::Bastion,
        Contender::Ractor,
        Contender::Kameo,
    ];

    /// The name used on the command line, in the child protocol and as column heading.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Contender::Phalanx => "phalanx",
            Contender::Bastion => "bastion",
            Contender::Ractor => "ractor",
            Contender::Kameo => "kameo",
        }
    }

    /// Parses [`Contender::key`].
    pub(crate) fn from_key(key: &str) -> Option<Contender> {
        Contender::ALL.into_iter().find(|c| c.key() == key)
    }

    /// Runs one scenario in this process (the child side of the harness).
    pub(crate) fn run(self, scenario: Scenario, count: usize) -> Outcome {
        match self {
            Contender::Phalanx => phalanx::run(scenario, count),
            Contender::Bastion => bastion::run(scenario, count),
            Contender::Ractor => ractor::run(scenario, count),
            Contender::Kameo => kameo::run(scenario, count),
        }
    }
}

/// How long a child waits for one step of a scenario before giving up.
///
/// The parent enforces the real bound by killing the child; this one only turns a lost
/// message into a readable failure instead of a hang.
pub(crate) const STEP_TIMEOUT: Duration = Duration::from_secs(55);

/// Splits `count` messages over `producers` as evenly as possible.
pub(crate) fn share(count: usize, producers: usize, index: usize) -> usize {
    count / producers + usize::from(index < count % producers)
}

/// A warm-up size for `count`: a tenth, at least one.
pub(crate) fn warm_up(count: usize) -> usize {
    (count / 10).max(1)
}

/// The time between `start` and `end`, whichever order the clocks were read in.
pub(crate) fn between(start: Instant, end: Instant) -> Duration {
    end.saturating_duration_since(start)
}

/// Repetitions of each throughput measurement; the median is reported.
pub(crate) const REPEATS: usize = 3;

/// The median of some durations (the upper one for an even count); zero if there are none.
pub(crate) fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort_unstable();
    runs.get(runs.len() / 2).copied().unwrap_or_default()
}

/// Counts actors that have started and reports the moment the last one did.
#[derive(Debug)]
pub(crate) struct Tally {
    /// Actors started so far.
    seen: AtomicUsize,
    /// How many must start before `done` fires.
    target: usize,
    /// Fired once, by the actor that brings `seen` to `target`.
    done: Mutex<Option<oneshot::Sender<Instant>>>,
}

impl Tally {
    /// A tally expecting `target` hits, and the receiver of the moment it is reached.
    pub(crate) fn new(target: usize) -> (Arc<Tally>, oneshot::Receiver<Instant>) {
        let (tx, rx) = oneshot::channel();
        let tally = Tally {
            seen: AtomicUsize::new(0),
            target,
            done: Mutex::new(Some(tx)),
        };
        (Arc::new(tally), rx)
    }

    /// Records one started actor.
    pub(crate) fn hit(&self) {
        if self.seen.fetch_add(1, Ordering::AcqRel) + 1 == self.target {
            let now = Instant::now();
            let sender = self.done.lock().ok().and_then(|mut done| done.take());
            if let Some(sender) = sender {
                // The receiver may have given up already; nothing to do then.
                let _ = sender.send(now);
            }
        }
    }
}

/// The n/a reason of the supervision scenarios for runtimes outside that comparison.
pub(crate) const SUPERVISION_PEERS: &str =
    "supervision scenarios compare phalanx with bastion only";

/// A latency measurement (nanosecond histogram) as p50 and p99 in microseconds.
pub(crate) fn latency(histogram: &hdrhistogram::Histogram<u64>) -> Measurement {
    Measurement {
        values: vec![
            ("p50", histogram.value_at_quantile(0.50) as f64 / 1e3),
            ("p99", histogram.value_at_quantile(0.99) as f64 / 1e3),
        ],
        note: None,
    }
}

/// Silences the panic message of every panic from now on: the supervision scenarios panic
/// on purpose thousands of times, and printing each would dominate what is measured.
pub(crate) fn silence_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}
