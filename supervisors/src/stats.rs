//! Supervision metrics, recorded through the [`metrics`] facade when they happen.
//!
//! Restarts and escalations are rare next to messages, so they go straight to the facade
//! (one registry look-up each) rather than through counters of their own. Without an
//! installed recorder they cost nothing.
//!
//! The names are the constants below; the one list of every phalanx metric, with labels and
//! meanings, is in the docs of the `phalanx::metrics` module.

use crate::Strategy;

/// Restart decisions, labelled by `strategy` (counter).
pub const RESTARTS: &str = "phalanx_supervisor_restarts_total";
/// Children started again by restarts, labelled by `strategy` (counter).
pub const RESTARTED_CHILDREN: &str = "phalanx_supervisor_restarted_children_total";
/// Supervisors that exceeded their restart intensity and escalated (counter).
pub const ESCALATIONS: &str = "phalanx_supervisor_escalations_total";

/// Describes the supervision metrics (help texts) to the installed recorder.
pub fn describe() {
    metrics::describe_counter!(RESTARTS, "Restart decisions of supervisors, by strategy");
    metrics::describe_counter!(
        RESTARTED_CHILDREN,
        "Children started again by restarts, by strategy"
    );
    metrics::describe_counter!(
        ESCALATIONS,
        "Supervisors that exceeded their restart intensity and escalated"
    );
}

/// Records a restart decision that starts `children` children again.
pub(crate) fn restart(strategy: Strategy, children: usize) {
    let label = label(strategy);
    metrics::counter!(RESTARTS, "strategy" => label).increment(1);
    metrics::counter!(RESTARTED_CHILDREN, "strategy" => label).increment(children as u64);
}

/// Records an escalation.
pub(crate) fn escalation() {
    metrics::counter!(ESCALATIONS).increment(1);
}

fn label(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::OneForOne => "one_for_one",
        Strategy::OneForAll => "one_for_all",
        Strategy::RestForOne => "rest_for_one",
    }
}
