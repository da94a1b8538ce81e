//! Runtime statistics: counters kept on the actor paths at the cost of one uncontended atomic
//! add, and published through the [`metrics`] facade only when someone asks ([`publish`]).
//!
//! Calling the `metrics` macros on every message would cost a registry look-up per message once
//! a recorder is installed (the facade resolves a handle on each call). Instead the runtime
//! counts into per-thread shards of plain atomics, and [`publish`] hands the totals to the
//! facade as absolute values, typically right before a scrape renders them. An actor counts
//! the messages it handled once per poll (when its mailbox runs empty, when it yields after
//! its budget, when it ends), not once per message.
//!
//! The figures are for the whole process: every runtime in it adds to the same counters.
//!
//! The names are the constants below; the one list of every phalanx metric, with labels and
//! meanings, is in the docs of the `phalanx::metrics` module.
//!
//! Mailbox depth is sampled only where it costs nothing extra: when an actor has handled a full
//! budget of events in one poll and yields its worker, that is, only for actors with a backlog.
//! An actor that keeps up with its mailbox never appears in it.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::{ExitReason, FailureKind};

/// Messages and system notices handled by actors (counter).
pub const MESSAGES: &str = "phalanx_actor_messages_total";
/// Actors started (counter).
pub const STARTED: &str = "phalanx_actors_started_total";
/// Actors ended, labelled by `reason` (counter).
pub const STOPPED: &str = "phalanx_actors_stopped_total";
/// Actors that failed, labelled by `kind` (counter).
pub const FAILURES: &str = "phalanx_actor_failures_total";
/// Actors alive now (gauge).
pub const LIVE: &str = "phalanx_actors_live";
/// The deepest mailbox sampled since the previous [`publish`] (gauge).
pub const MAILBOX_DEPTH_MAX: &str = "phalanx_mailbox_depth_max";
/// Mailbox depths sampled when busy actors yield (histogram).
pub const MAILBOX_DEPTH: &str = "phalanx_mailbox_depth";

/// A snapshot of the runtime's counters, for the whole process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Messages and system notices handled by actors.
    pub messages: u64,
    /// Actors started.
    pub started: u64,
    /// Actors that ended normally (stopped).
    pub stopped_normal: u64,
    /// Actors that were killed.
    pub stopped_killed: u64,
    /// Actors that failed (see the `failed_*` fields for why).
    pub stopped_failed: u64,
    /// Actors that ended as lost (no such actor, node down).
    pub stopped_lost: u64,
    /// Failures caused by a panic.
    pub failed_panic: u64,
    /// Failures caused by a handler or hook error.
    pub failed_error: u64,
    /// Failures caused by a linked actor's abnormal exit.
    pub failed_linked: u64,
}

impl Stats {
    /// Actors started and not ended yet.
    ///
    /// Actors cancelled where they stood, by dropping a runtime without
    /// [`shutdown`](crate::Runtime::shutdown), never end and stay counted here.
    pub fn live(&self) -> u64 {
        let ended = self.stopped_normal + self.stopped_killed + self.stopped_failed;
        self.started.saturating_sub(ended + self.stopped_lost)
    }
}

/// The runtime's counters now, summed over all threads.
pub fn snapshot() -> Stats {
    let sum = |counter: Counter| -> u64 {
        SHARDS
            .iter()
            .map(|shard| shard.counts[counter as usize].load(Ordering::Relaxed))
            .sum()
    };
    Stats {
        messages: sum(Counter::Messages),
        started: sum(Counter::Started),
        stopped_normal: sum(Counter::StoppedNormal),
        stopped_killed: sum(Counter::StoppedKilled),
        stopped_failed: sum(Counter::StoppedFailed),
        stopped_lost: sum(Counter::StoppedLost),
        failed_panic: sum(Counter::FailedPanic),
        failed_error: sum(Counter::FailedError),
        failed_linked: sum(Counter::FailedLinked),
    }
}

/// Hands the runtime's counters to the installed [`metrics`] recorder, as absolute values.
///
/// Call it right before rendering a scrape. Without a recorder it does nothing. It also resets
/// the mailbox-depth maximum, so each scrape shows the deepest mailbox since the one before.
pub fn publish() {
    let stats = snapshot();
    metrics::counter!(MESSAGES).absolute(stats.messages);
    metrics::counter!(STARTED).absolute(stats.started);
    metrics::counter!(STOPPED, "reason" => "normal").absolute(stats.stopped_normal);
    metrics::counter!(STOPPED, "reason" => "killed").absolute(stats.stopped_killed);
    metrics::counter!(STOPPED, "reason" => "failed").absolute(stats.stopped_failed);
    metrics::counter!(STOPPED, "reason" => "lost").absolute(stats.stopped_lost);
    metrics::counter!(FAILURES, "kind" => "panic").absolute(stats.failed_panic);
    metrics::counter!(FAILURES, "kind" => "error").absolute(stats.failed_error);
    metrics::counter!(FAILURES, "kind" => "linked").absolute(stats.failed_linked);
    // Counts are far below 2^52, where f64 stops being exact.
    #[allow(clippy::cast_precision_loss)]
    let live = stats.live() as f64;
    metrics::gauge!(LIVE).set(live);
    #[allow(clippy::cast_precision_loss)]
    let deepest = DEEPEST.swap(0, Ordering::Relaxed) as f64;
    metrics::gauge!(MAILBOX_DEPTH_MAX).set(deepest);
}

/// Describes the runtime's metrics (help texts) to the installed recorder.
pub fn describe() {
    metrics::describe_counter!(MESSAGES, "Messages and system notices handled by actors");
    metrics::describe_counter!(STARTED, "Actors started");
    metrics::describe_counter!(STOPPED, "Actors ended, by exit reason");
    metrics::describe_counter!(FAILURES, "Actors that failed, by what failed them");
    metrics::describe_gauge!(LIVE, "Actors started and not ended yet");
    metrics::describe_gauge!(
        MAILBOX_DEPTH_MAX,
        "Deepest mailbox sampled since the previous scrape"
    );
    metrics::describe_histogram!(
        MAILBOX_DEPTH,
        "Mailbox depth of busy actors, sampled when they yield their worker"
    );
}

/// Counts `n` handled messages (a whole poll's worth at once).
#[inline]
pub(crate) fn handled(n: u32) {
    add(Counter::Messages, u64::from(n));
}

/// Counts an actor start.
pub(crate) fn started() {
    add(Counter::Started, 1);
}

/// Counts an actor end by its reason.
pub(crate) fn ended(reason: &ExitReason) {
    let counter = match reason {
        ExitReason::Normal => Counter::StoppedNormal,
        ExitReason::Killed => Counter::StoppedKilled,
        ExitReason::Failed(failure) => {
            add(
                match failure.kind() {
                    FailureKind::Panic => Counter::FailedPanic,
                    FailureKind::LinkedExit(_) => Counter::FailedLinked,
                    _ => Counter::FailedError,
                },
                1,
            );
            Counter::StoppedFailed
        }
        _ => Counter::StoppedLost,
    };
    add(counter, 1);
}

/// Samples the mailbox depth of a busy actor.
pub(crate) fn mailbox_depth(len: usize) {
    let len = len as u64;
    DEEPEST.fetch_max(len, Ordering::Relaxed);
    // Depths are far below 2^52, where f64 stops being exact.
    #[allow(clippy::cast_precision_loss)]
    metrics::histogram!(MAILBOX_DEPTH).record(len as f64);
}

#[derive(Clone, Copy)]
enum Counter {
    Messages,
    Started,
    StoppedNormal,
    StoppedKilled,
    StoppedFailed,
    StoppedLost,
    FailedPanic,
    FailedError,
    FailedLinked,
}

const COUNTERS: usize = 9;

/// Enough shards that worker threads rarely share one; more would only slow the sum.
const SHARD_COUNT: usize = 16;

/// One thread's share of the counters, on its own cache lines so that threads never contend.
#[repr(align(128))]
struct Shard {
    counts: [AtomicU64; COUNTERS],
}

static SHARDS: [Shard; SHARD_COUNT] = [const {
    Shard {
        counts: [const { AtomicU64::new(0) }; COUNTERS],
    }
}; SHARD_COUNT];

static DEEPEST: AtomicU64 = AtomicU64::new(0);

/// Marks a thread that has no shard yet.
const UNASSIGNED: usize = usize::MAX;

thread_local! {
    /// This thread's shard, assigned round robin at its first count. Const-initialised (no
    /// lazy-initialisation check, no destructor), so reading it is one thread-local load.
    static SHARD: Cell<usize> = const { Cell::new(UNASSIGNED) };
}

#[inline]
fn add(counter: Counter, n: u64) {
    let shard = SHARD.with(|shard| {
        let index = shard.get();
        if index != UNASSIGNED {
            return index;
        }
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let index = NEXT.fetch_add(1, Ordering::Relaxed) % SHARD_COUNT;
        shard.set(index);
        index
    });
    SHARDS[shard].counts[counter as usize].fetch_add(n, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Failure;

    #[test]
    fn ends_are_counted_by_reason_and_kind() {
        let before = snapshot();
        started();
        started();
        started();
        ended(&ExitReason::Normal);
        ended(&ExitReason::Failed(Failure::panic("boom")));
        ended(&ExitReason::Killed);
        handled(5);
        let after = snapshot();
        assert!(after.started >= before.started + 3);
        assert!(after.stopped_normal > before.stopped_normal);
        assert!(after.stopped_failed > before.stopped_failed);
        assert!(after.failed_panic > before.failed_panic);
        assert!(after.stopped_killed > before.stopped_killed);
        assert!(after.messages >= before.messages + 5);
    }
}
