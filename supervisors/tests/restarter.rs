//! Hand-written scenarios for the sans-IO `Restarter`, one OTP rule each (the model-based
//! property tests in restarter_model.rs cover random sequences).

use std::time::Duration;

use phalanx_supervisors::{
    Backoff, Decision, ExitKind, Intensity, RestartPlan, RestartPolicy, Restarter, Strategy,
};

const S: Duration = Duration::from_secs(1);

fn plan(decision: Decision) -> RestartPlan {
    match decision {
        Decision::Restart(plan) => plan,
        other => panic!("expected a restart, got {other:?}"),
    }
}

#[test]
fn transient_children_restart_only_after_abnormal_exits() {
    let mut core: Restarter = Restarter::new(Strategy::OneForOne, Intensity::new(10, S));
    let t = core.add_child(RestartPolicy::Transient, Backoff::None, ());
    let p = plan(core.handle_exit(t, ExitKind::Killed, Duration::ZERO, 0));
    assert!(core.start_due(t, p.id));
    assert_eq!(
        core.handle_exit(t, ExitKind::Shutdown, Duration::ZERO, 0),
        Decision::Remove
    );
    assert!(!core.contains(t));
    assert_eq!(
        core.handle_exit(t, ExitKind::Failure, Duration::ZERO, 0),
        Decision::Ignore
    );
}

#[test]
fn a_child_that_is_not_restarted_never_affects_siblings() {
    let mut core: Restarter = Restarter::new(Strategy::OneForAll, Intensity::new(10, S));
    let a = core.add_child(RestartPolicy::Permanent, Backoff::None, ());
    let tmp = core.add_child(RestartPolicy::Temporary, Backoff::None, ());
    assert_eq!(
        core.handle_exit(tmp, ExitKind::Failure, Duration::ZERO, 0),
        Decision::Remove
    );
    assert!(core.is_running(a));
    assert_eq!(core.len(), 1);
}

#[test]
fn intensity_window_is_inclusive_and_slides() {
    // At most 2 restarts in 10 s.
    let mut core: Restarter = Restarter::new(Strategy::OneForOne, Intensity::new(2, 10 * S));
    let a = core.add_child(RestartPolicy::Permanent, Backoff::None, ());
    for t in [0, 5] {
        let p = plan(core.handle_exit(a, ExitKind::Failure, t * S, 0));
        assert!(core.start_due(a, p.id));
    }
    // At t = 11 the restart at 0 has left the window (11 - 0 > 10): 2 restarts, fine.
    let p = plan(core.handle_exit(a, ExitKind::Failure, 11 * S, 0));
    assert!(core.start_due(a, p.id));
    // At t = 15 the restarts at 5, 11 and 15 are all within 10 s (15 - 5 = 10 counts).
    assert_eq!(
        core.handle_exit(a, ExitKind::Failure, 15 * S, 0),
        Decision::Escalate { stop: vec![] }
    );
    assert!(core.is_empty());
}

#[test]
fn a_group_restart_counts_once() {
    let mut core: Restarter = Restarter::new(Strategy::OneForAll, Intensity::new(1, 10 * S));
    let keys: Vec<_> = (0..5)
        .map(|_| core.add_child(RestartPolicy::Permanent, Backoff::None, ()))
        .collect();
    let p = plan(core.handle_exit(keys[2], ExitKind::Failure, Duration::ZERO, 0));
    assert_eq!(p.stop, [keys[4], keys[3], keys[1], keys[0]]);
    assert_eq!(p.start, keys);
    for &k in &keys {
        assert!(core.start_due(k, p.id));
    }
    // The second restart within the period exceeds the limit of 1.
    let decision = core.handle_exit(keys[0], ExitKind::Failure, S, 0);
    assert_eq!(
        decision,
        Decision::Escalate {
            stop: vec![keys[4], keys[3], keys[2], keys[1]]
        }
    );
}

#[test]
fn a_pending_child_is_taken_over_by_a_newer_group_restart() {
    let mut core: Restarter = Restarter::new(Strategy::OneForAll, Intensity::new(10, S));
    let slow = core.add_child(RestartPolicy::Permanent, Backoff::Fixed(60 * S), ());
    let b = core.add_child(RestartPolicy::Permanent, Backoff::None, ());
    let first = plan(core.handle_exit(slow, ExitKind::Failure, Duration::ZERO, 0));
    assert_eq!(first.delay, 60 * S);
    assert_eq!(first.stop, [b]);
    // While everything waits for the first plan, nothing is running: a stale exit is ignored.
    assert_eq!(
        core.handle_exit(b, ExitKind::Failure, Duration::ZERO, 0),
        Decision::Ignore
    );
    for k in [slow, b] {
        assert!(core.start_due(k, first.id));
    }
    // b fails: one-for-all again; slow is stopped and restarted without waiting.
    let second = plan(core.handle_exit(b, ExitKind::Failure, S, 0));
    assert_eq!(second.stop, [slow]);
    assert_eq!(second.delay, Duration::ZERO);
    // A stale timer of the first plan would not start anything.
    assert!(!core.start_due(slow, first.id));
    assert!(core.start_due(slow, second.id));
}

#[test]
fn exponential_backoff_grows_while_restarts_are_close_and_resets_after_a_quiet_period() {
    let backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1));
    let mut core: Restarter = Restarter::new(Strategy::OneForOne, Intensity::new(100, 5 * S));
    let a = core.add_child(RestartPolicy::Permanent, backoff, ());
    let mut delays = Vec::new();
    for t in [0, 1, 2, 3, 4, 5, 20] {
        let p = plan(core.handle_exit(a, ExitKind::Failure, t * S, 0));
        delays.push(p.delay.as_millis());
        assert!(core.start_due(a, p.id));
    }
    assert_eq!(delays, [100, 200, 400, 800, 1000, 1000, 100]);
}

#[test]
fn removed_children_are_handed_back_for_stopping() {
    let mut core: Restarter<&str> = Restarter::new(Strategy::RestForOne, Intensity::new(10, S));
    let a = core.add_child(RestartPolicy::Permanent, Backoff::None, "a");
    let tmp = core.add_child(RestartPolicy::Temporary, Backoff::None, "tmp");
    let c = core.add_child(RestartPolicy::Transient, Backoff::None, "c");
    let p = plan(core.handle_exit(a, ExitKind::Failure, Duration::ZERO, 0));
    assert_eq!(p.stop, [c, tmp]);
    assert_eq!(p.start, [a, c]);
    let removed: Vec<_> = core.drain_removed().collect();
    assert_eq!(removed, [(tmp, "tmp")]);
    assert_eq!(core.child(c), Some(&"c"));
}
