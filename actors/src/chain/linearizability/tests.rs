use proptest::prelude::*;

use super::*;

const BUDGET: u64 = 1_000_000;

fn op(
    call: u64,
    ret: Option<u64>,
    input: KvInput,
    output: Option<KvResult>,
) -> Operation<KvInput, KvResult> {
    Operation {
        call,
        ret,
        input,
        output,
    }
}

fn put(call: u64, ret: u64, value: u8) -> Operation<KvInput, KvResult> {
    op(
        call,
        Some(ret),
        KvInput::Put(vec![value]),
        Some(KvResult::Done),
    )
}

fn get(call: u64, ret: u64, value: Option<u8>) -> Operation<KvInput, KvResult> {
    op(
        call,
        Some(ret),
        KvInput::Get,
        Some(KvResult::Value(value.map(|v| vec![v]))),
    )
}

fn verdict(history: Vec<Operation<KvInput, KvResult>>) -> Verdict {
    check(&KvModel, &history, BUDGET)
}

#[test]
fn sequential_history_is_linearizable() {
    assert_eq!(
        verdict(vec![
            put(0, 1, 1),
            get(2, 3, Some(1)),
            put(4, 5, 2),
            get(6, 7, Some(2))
        ]),
        Verdict::Linearizable
    );
}

#[test]
fn stale_read_after_completed_write_is_not_linearizable() {
    assert_eq!(
        verdict(vec![put(0, 1, 1), put(2, 3, 2), get(4, 5, Some(1))]),
        Verdict::NotLinearizable
    );
}

#[test]
fn concurrent_read_may_see_either_value() {
    for seen in [Some(1), Some(2)] {
        assert_eq!(
            verdict(vec![put(0, 1, 1), put(2, 10, 2), get(3, 4, seen)]),
            Verdict::Linearizable
        );
    }
    assert_eq!(
        verdict(vec![put(0, 1, 1), put(2, 10, 2), get(3, 4, None)]),
        Verdict::NotLinearizable
    );
}

#[test]
fn read_of_a_value_never_written_is_not_linearizable() {
    assert_eq!(verdict(vec![get(0, 1, Some(9))]), Verdict::NotLinearizable);
}

#[test]
fn non_monotonic_reads_are_not_linearizable() {
    // Two sequential reads during a slow write: new then old is impossible.
    assert_eq!(
        verdict(vec![
            put(0, 1, 1),
            put(2, 20, 2),
            get(3, 4, Some(2)),
            get(5, 6, Some(1))
        ]),
        Verdict::NotLinearizable
    );
    assert_eq!(
        verdict(vec![
            put(0, 1, 1),
            put(2, 20, 2),
            get(3, 4, Some(1)),
            get(5, 6, Some(2))
        ]),
        Verdict::Linearizable
    );
}

#[test]
fn pending_write_may_take_effect_or_not() {
    let pending = op(2, None, KvInput::Put(vec![2]), None);
    assert_eq!(
        verdict(vec![
            put(0, 1, 1),
            pending.clone(),
            get(5, 6, Some(2)),
            get(7, 8, Some(2))
        ]),
        Verdict::Linearizable
    );
    assert_eq!(
        verdict(vec![put(0, 1, 1), pending.clone(), get(5, 6, Some(1))]),
        Verdict::Linearizable
    );
    // But once seen, it cannot be unseen.
    assert_eq!(
        verdict(vec![
            put(0, 1, 1),
            pending,
            get(5, 6, Some(2)),
            get(7, 8, Some(1))
        ]),
        Verdict::NotLinearizable
    );
}

#[test]
fn pending_write_cannot_take_effect_before_its_call() {
    let pending = op(10, None, KvInput::Put(vec![2]), None);
    assert_eq!(
        verdict(vec![put(0, 1, 1), get(2, 3, Some(2)), pending]),
        Verdict::NotLinearizable
    );
}

#[test]
fn compare_and_set_semantics() {
    let cas = |call, ret, expected: Option<u8>, new: u8, swapped| {
        op(
            call,
            Some(ret),
            KvInput::CompareAndSet {
                expected: expected.map(|v| vec![v]),
                new: Some(vec![new]),
            },
            Some(KvResult::Swapped(swapped)),
        )
    };
    assert_eq!(
        verdict(vec![
            cas(0, 1, None, 1, true),
            cas(2, 3, Some(1), 2, true),
            get(4, 5, Some(2))
        ]),
        Verdict::Linearizable
    );
    // Two concurrent CAS from the same expected value cannot both succeed.
    assert_eq!(
        verdict(vec![
            put(0, 1, 0),
            cas(2, 5, Some(0), 1, true),
            cas(3, 6, Some(0), 2, true)
        ]),
        Verdict::NotLinearizable
    );
    assert_eq!(
        verdict(vec![
            put(0, 1, 0),
            cas(2, 5, Some(0), 1, true),
            cas(3, 6, Some(0), 2, false)
        ]),
        Verdict::Linearizable
    );
}

#[test]
fn keys_are_checked_independently() {
    let history = vec![
        ("a".to_string(), put(0, 1, 1)),
        ("b".to_string(), put(0, 1, 2)),
        ("a".to_string(), get(2, 3, Some(1))),
        ("b".to_string(), get(2, 3, Some(1))),
    ];
    assert_eq!(check_kv(&history, BUDGET), Verdict::NotLinearizable);
    assert_eq!(check_kv(&history[..3], BUDGET), Verdict::Linearizable);
}

#[test]
fn step_budget_gives_unknown() {
    let mut history = Vec::new();
    for i in 0..12u8 {
        history.push(op(
            0,
            Some(100),
            KvInput::Put(vec![i]),
            Some(KvResult::Done),
        ));
    }
    history.push(get(200, 201, Some(99)));
    assert_eq!(check(&KvModel, &history, 10), Verdict::Unknown);
}

proptest! {
    /// Any history produced by applying operations atomically at some instant inside their
    /// interval is linearizable.
    #[test]
    fn histories_of_an_atomic_register_are_linearizable(
        ops in proptest::collection::vec((0u8..4, 0u8..3, 0u64..50, 1u64..50, any::<bool>()), 1..14)
    ) {
        // Linearization points are distinct: op i takes effect at 100 * i + 50 and its call
        // and return surround it by random margins.
        let mut state: Option<Vec<u8>> = None;
        let mut history = Vec::new();
        for (i, &(kind, value, before, after, pending)) in ops.iter().enumerate() {
            let point = 100 * i as u64 + 50;
            let value = vec![value];
            let (input, output) = match kind {
                0 => { state = Some(value.clone()); (KvInput::Put(value), KvResult::Done) }
                1 => (KvInput::Get, KvResult::Value(state.clone())),
                2 => { state = None; (KvInput::Delete, KvResult::Done) }
                _ => {
                    let swapped = state.is_none();
                    if swapped { state = Some(value.clone()); }
                    (KvInput::CompareAndSet { expected: None, new: Some(value) }, KvResult::Swapped(swapped))
                }
            };
            let ret = (!pending).then_some(point + after * 3);
            history.push(op(point.saturating_sub(before * 3), ret, input, Some(output)));
        }
        prop_assert_eq!(verdict(history), Verdict::Linearizable);
    }
}

/// A brute-force reference: tries every order of the operations (and, for pending ones,
/// leaving them out) that respects real time.
fn brute_force(history: &[Operation<KvInput, KvResult>]) -> bool {
    fn search(
        history: &[Operation<KvInput, KvResult>],
        done: &mut Vec<bool>,
        state: &Option<Vec<u8>>,
    ) -> bool {
        let remaining: Vec<usize> = (0..history.len()).filter(|&i| !done[i]).collect();
        if remaining.iter().all(|&i| history[i].ret.is_none()) {
            return true;
        }
        for &i in &remaining {
            // `i` may go next only if no other remaining operation returned before it was
            // called.
            let blocked = remaining
                .iter()
                .any(|&j| j != i && history[j].ret.is_some_and(|ret| ret < history[i].call));
            if blocked {
                continue;
            }
            let output = if history[i].ret.is_some() {
                history[i].output.as_ref()
            } else {
                None
            };
            if let Some(next) = KvModel.step(state, &history[i].input, output) {
                done[i] = true;
                if search(history, done, &next) {
                    return true;
                }
                done[i] = false;
            }
        }
        false
    }
    search(history, &mut vec![false; history.len()], &None)
}

proptest! {
    /// On small random histories (most of them not linearizable) the checker agrees with
    /// brute force.
    #[test]
    fn agrees_with_brute_force(
        ops in proptest::collection::vec(
            (0u8..4, 0u8..3, 0u64..20, 0u64..10, 0u8..8, proptest::option::of(0u8..3)),
            1..7,
        )
    ) {
        let history: Vec<_> = ops
            .iter()
            .map(|&(kind, value, call, length, pending, seen)| {
                let ret = (pending != 0).then_some(call + length);
                let (input, output) = match kind {
                    0 => (KvInput::Put(vec![value]), KvResult::Done),
                    1 => (KvInput::Get, KvResult::Value(seen.map(|v| vec![v]))),
                    2 => (KvInput::Delete, KvResult::Done),
                    _ => (
                        KvInput::CompareAndSet { expected: seen.map(|v| vec![v]), new: Some(vec![value]) },
                        KvResult::Swapped(pending % 2 == 0),
                    ),
                };
                op(call, ret, input, Some(output))
            })
            .collect();
        let expected = if brute_force(&history) { Verdict::Linearizable } else { Verdict::NotLinearizable };
        prop_assert_eq!(verdict(history), expected);
    }
}
