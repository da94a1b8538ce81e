//! A linearizability checker: Wing & Gong's search with Lowe's memoisation (the algorithm
//! of porcupine and knossos's `wgl`), for any sequential [`Model`], and a key-value
//! register model ([`KvModel`]) checked key by key (linearizability is compositional, so
//! a history of independent keys is linearizable iff each key's sub-history is).
//!
//! Pending operations (no response: timed out, lost, or still running when the test ended)
//! are handled as in porcupine: their response is placed after every other event and the
//! model accepts any output for them, so each may take effect at any point after its call or
//! not at all.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;

/// A sequential specification.
pub trait Model {
    /// The state of the object.
    type State: Clone + Eq + Hash + Debug;
    /// An operation's input.
    type Input: Debug;
    /// An operation's output.
    type Output: Debug;

    /// The initial state.
    fn init(&self) -> Self::State;

    /// The state after applying `input` to `state`, if the operation could have returned
    /// `output` there (`None` output: unknown, any output is possible).
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;
}

/// One operation of a concurrent history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// When it was invoked.
    pub call: u64,
    /// When it returned; `None` for a pending operation.
    pub ret: Option<u64>,
    /// What was asked.
    pub input: I,
    /// What was returned; ignored (treated as unknown) for a pending operation.
    pub output: Option<O>,
}

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Some linearization exists.
    Linearizable,
    /// No linearization exists.
    NotLinearizable,
    /// The search exceeded its step budget.
    Unknown,
}

/// Checks `history` against `model`, giving up after `max_steps` search steps.
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    max_steps: u64,
) -> Verdict {
    let n = history.len();
    if n == 0 {
        return Verdict::Linearizable;
    }
    let events = build_events(history);
    // Doubly linked list over `events` with a sentinel head at index `len`.
    let len = events.len();
    let head = len;
    let mut next: Vec<usize> = (1..=len + 1).collect();
    let mut prev: Vec<usize> = Vec::with_capacity(len + 1);
    prev.extend((0..len).map(|i| if i == 0 { head } else { i - 1 }));
    prev.push(usize::MAX);
    next[len - 1] = usize::MAX;
    next[head] = 0;
    // Index of each operation's return event.
    let mut ret_of = vec![0usize; n];
    for (index, event) in events.iter().enumerate() {
        if !event.is_call {
            ret_of[event.op] = index;
        }
    }
    let mut linearized = vec![0u64; n.div_ceil(64)];
    let mut cache: HashSet<(Vec<u64>, M::State)> = HashSet::new();
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut state = model.init();
    let mut entry = next[head];
    let mut steps = 0u64;
    while next[head] != usize::MAX {
        steps += 1;
        if steps > max_steps {
            return Verdict::Unknown;
        }
        if entry == usize::MAX {
            // Cannot happen: the list always ends with a return event, handled below.
            return Verdict::NotLinearizable;
        }
        let event = &events[entry];
        if event.is_call {
            let op = &history[event.op];
            let output = if op.ret.is_some() {
                op.output.as_ref()
            } else {
                None
            };
            let candidate = model.step(&state, &op.input, output);
            let mut lifted = false;
            if let Some(new_state) = candidate {
                linearized[event.op / 64] |= 1 << (event.op % 64);
                if cache.insert((linearized.clone(), new_state.clone())) {
                    stack.push((entry, state));
                    state = new_state;
                    lift(&mut next, &mut prev, entry, ret_of[event.op]);
                    entry = next[head];
                    lifted = true;
                } else {
                    linearized[event.op / 64] &= !(1 << (event.op % 64));
                }
            }
            if !lifted {
                entry = next[entry];
            }
        } else {
            // A return reached before its operation was linearized: backtrack.
            let Some((call_entry, old_state)) = stack.pop() else {
                return Verdict::NotLinearizable;
            };
            let op = events[call_entry].op;
            linearized[op / 64] &= !(1 << (op % 64));
            state = old_state;
            unlift(&mut next, &mut prev, call_entry, ret_of[op]);
            entry = next[call_entry];
        }
    }
    Verdict::Linearizable
}

#[derive(Debug, Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
}

fn build_events<I, O>(history: &[Operation<I, O>]) -> Vec<Event> {
    let mut keyed: Vec<(u64, u8, usize, Event)> = Vec::with_capacity(history.len() * 2);
    for (op, operation) in history.iter().enumerate() {
        keyed.push((operation.call, 0, op, Event { op, is_call: true }));
        // A pending operation's return goes after everything; calls sort before returns at
        // equal times, which treats touching operations as concurrent (the permissive choice).
        let ret = operation.ret.map_or((u64::MAX, 2), |ret| (ret, 1));
        keyed.push((ret.0, ret.1, op, Event { op, is_call: false }));
    }
    keyed.sort_by_key(|&(time, kind, op, _)| (time, kind, op));
    keyed.into_iter().map(|(_, _, _, event)| event).collect()
}

fn lift(next: &mut [usize], prev: &mut [usize], call: usize, ret: usize) {
    for node in [call, ret] {
        let (p, n) = (prev[node], next[node]);
        next[p] = n;
        if n != usize::MAX {
            prev[n] = p;
        }
    }
}

fn unlift(next: &mut [usize], prev: &mut [usize], call: usize, ret: usize) {
    for node in [ret, call] {
        let (p, n) = (prev[node], next[node]);
        next[p] = node;
        if n != usize::MAX {
            prev[n] = node;
        }
    }
}

/// An operation on one key of a key-value store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KvInput {
    /// Set the value.
    Put(Vec<u8>),
    /// Read the value.
    Get,
    /// Remove the key.
    Delete,
    /// Set to `new` if the value is `expected`.
    CompareAndSet {
        /// Required current value (`None`: absent).
        expected: Option<Vec<u8>>,
        /// New value (`None`: remove).
        new: Option<Vec<u8>>,
    },
}

/// What a [`KvInput`] returned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KvResult {
    /// A put or delete completed.
    Done,
    /// A read returned this value.
    Value(Option<Vec<u8>>),
    /// A compare-and-set returned whether it swapped.
    Swapped(bool),
}

/// The sequential specification of one key: a register that may be absent.
#[derive(Debug, Clone, Copy, Default)]
pub struct KvModel;

impl Model for KvModel {
    type State = Option<Vec<u8>>;
    type Input = KvInput;
    type Output = KvResult;

    fn init(&self) -> Self::State {
        None
    }

    fn step(
        &self,
        state: &Self::State,
        input: &KvInput,
        output: Option<&KvResult>,
    ) -> Option<Self::State> {
        match (input, output) {
            (KvInput::Put(value), None | Some(KvResult::Done)) => Some(Some(value.clone())),
            (KvInput::Delete, None | Some(KvResult::Done)) => Some(None),
            (KvInput::Get, None) => Some(state.clone()),
            (KvInput::Get, Some(KvResult::Value(value))) => (value == state).then(|| state.clone()),
            (KvInput::CompareAndSet { expected, new }, output) => {
                let matches = expected == state;
                match output {
                    None | Some(KvResult::Swapped(true)) if matches => Some(new.clone()),
                    None | Some(KvResult::Swapped(false)) if !matches => Some(state.clone()),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// Checks a key-value history key by key; the verdict is the worst over all keys.
pub fn check_kv(
    history: &[(String, Operation<KvInput, KvResult>)],
    max_steps_per_key: u64,
) -> Verdict {
    check_kv_explained(history, max_steps_per_key).0
}

/// Like [`check_kv`], and also names the first key whose sub-history is not linearizable.
pub fn check_kv_explained(
    history: &[(String, Operation<KvInput, KvResult>)],
    max_steps_per_key: u64,
) -> (Verdict, Option<String>) {
    let mut by_key: BTreeMap<&str, Vec<Operation<KvInput, KvResult>>> = BTreeMap::new();
    for (key, operation) in history {
        by_key
            .entry(key.as_str())
            .or_default()
            .push(operation.clone());
    }
    let mut verdict = Verdict::Linearizable;
    for (key, operations) in &by_key {
        match check(&KvModel, operations, max_steps_per_key) {
            Verdict::NotLinearizable => {
                return (Verdict::NotLinearizable, Some((*key).to_string()));
            }
            Verdict::Unknown => verdict = Verdict::Unknown,
            Verdict::Linearizable => {}
        }
    }
    (verdict, None)
}

#[cfg(test)]
mod tests;
