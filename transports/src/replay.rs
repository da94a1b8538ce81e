//! Replay protection for datagrams: one sliding window per sender.
//!
//! Each sender numbers its datagrams 1, 2, 3, ... (the sequence lives in the authenticated part
//! of the frame). The receiver remembers, per sender node, the newest incarnation it accepted
//! and a bitmap of the last [`WINDOW`] sequence numbers below the highest one seen. A datagram
//! is accepted once; one that is older than the window, or from an older incarnation, is
//! rejected. A newer incarnation starts a fresh window (the node restarted and counts from 1).
//!
//! The table is bounded: when it holds `capacity` senders, the one accepted least recently is
//! forgotten. A forgotten sender starts afresh at its next datagram, so a replay of one of its
//! datagrams from within the window it had may then be accepted once. Forgetting only happens
//! with more live senders than `capacity`; membership also calls
//! [`Codec::forget_sender`](crate::Codec::forget_sender) for nodes that left.

use std::collections::HashMap;

use crate::frame::{Incarnation, NodeId};

/// How many sequence numbers below the highest one a datagram may lag and still be accepted.
pub(crate) const WINDOW: u64 = 1024;

const WORDS: usize = (WINDOW / 64) as usize;

/// Per-sender replay windows, bounded in size.
#[derive(Debug)]
pub(crate) struct ReplayTable {
    senders: HashMap<NodeId, SenderWindow>,
    capacity: usize,
    /// Counts accepted datagrams; orders senders by recency without reading a clock.
    tick: u64,
}

/// What the table says about a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// First time seen: accepted and remembered.
    Fresh,
    /// Seen before, too old, or from an older incarnation.
    Replayed,
}

impl ReplayTable {
    pub(crate) fn new(capacity: usize) -> ReplayTable {
        ReplayTable {
            senders: HashMap::new(),
            capacity: capacity.max(1),
            tick: 0,
        }
    }

    /// Checks a datagram and, if fresh, remembers it.
    pub(crate) fn check_and_insert(
        &mut self,
        sender: NodeId,
        incarnation: Incarnation,
        sequence: u64,
    ) -> Verdict {
        self.tick += 1;
        let now = self.tick;
        if let Some(window) = self.senders.get_mut(&sender) {
            if incarnation < window.incarnation {
                return Verdict::Replayed;
            }
            if incarnation > window.incarnation {
                *window = SenderWindow::new(incarnation, sequence, now);
                return Verdict::Fresh;
            }
            let verdict = window.bitmap.check_and_insert(sequence);
            if verdict == Verdict::Fresh {
                window.last_accepted = now;
            }
            return verdict;
        }
        if self.senders.len() >= self.capacity {
            self.evict_least_recent();
        }
        self.senders
            .insert(sender, SenderWindow::new(incarnation, sequence, now));
        Verdict::Fresh
    }

    pub(crate) fn forget(&mut self, sender: NodeId) {
        self.senders.remove(&sender);
    }

    /// O(n), but only runs when a new sender arrives at a full table.
    fn evict_least_recent(&mut self) {
        let oldest = self
            .senders
            .iter()
            .min_by_key(|(_, w)| w.last_accepted)
            .map(|(id, _)| *id);
        if let Some(id) = oldest {
            tracing::debug!(sender = %id, "replay table full, forgetting least recent sender");
            self.senders.remove(&id);
        }
    }
}

#[derive(Debug)]
struct SenderWindow {
    incarnation: Incarnation,
    bitmap: Bitmap,
    last_accepted: u64,
}

impl SenderWindow {
    fn new(incarnation: Incarnation, sequence: u64, now: u64) -> SenderWindow {
        SenderWindow {
            incarnation,
            bitmap: Bitmap::starting_at(sequence),
            last_accepted: now,
        }
    }
}

/// A sliding window of [`WINDOW`] bits: bit `s % WINDOW` stands for sequence `s` while
/// `highest - WINDOW < s <= highest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bitmap {
    highest: u64,
    bits: [u64; WORDS],
}

impl Bitmap {
    pub(crate) fn starting_at(sequence: u64) -> Bitmap {
        let mut bitmap = Bitmap {
            highest: sequence,
            bits: [0; WORDS],
        };
        bitmap.set(sequence);
        bitmap
    }

    pub(crate) fn check_and_insert(&mut self, sequence: u64) -> Verdict {
        if sequence > self.highest {
            let advance = sequence - self.highest;
            if advance >= WINDOW {
                self.bits = [0; WORDS];
            } else {
                // Clear the slots that now stand for the sequences we skipped over.
                for skipped in self.highest + 1..sequence {
                    self.clear(skipped);
                }
            }
            self.highest = sequence;
            self.set(sequence);
            return Verdict::Fresh;
        }
        if self.highest - sequence >= WINDOW || self.is_set(sequence) {
            return Verdict::Replayed;
        }
        self.set(sequence);
        Verdict::Fresh
    }

    fn slot(sequence: u64) -> (usize, u64) {
        let index = sequence % WINDOW;
        ((index / 64) as usize, 1u64 << (index % 64))
    }

    fn set(&mut self, sequence: u64) {
        let (word, mask) = Self::slot(sequence);
        self.bits[word] |= mask;
    }

    fn clear(&mut self, sequence: u64) {
        let (word, mask) = Self::slot(sequence);
        self.bits[word] &= !mask;
    }

    fn is_set(&self, sequence: u64) -> bool {
        let (word, mask) = Self::slot(sequence);
        self.bits[word] & mask != 0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn accepts_once_and_tolerates_reordering() {
        let mut bitmap = Bitmap::starting_at(10);
        assert_eq!(bitmap.check_and_insert(10), Verdict::Replayed);
        assert_eq!(bitmap.check_and_insert(12), Verdict::Fresh);
        assert_eq!(bitmap.check_and_insert(11), Verdict::Fresh);
        assert_eq!(bitmap.check_and_insert(11), Verdict::Replayed);
        assert_eq!(bitmap.check_and_insert(5), Verdict::Fresh);
        assert_eq!(bitmap.check_and_insert(12 + WINDOW), Verdict::Fresh);
        assert_eq!(bitmap.check_and_insert(12), Verdict::Replayed, "too old");
        assert_eq!(bitmap.check_and_insert(13), Verdict::Fresh);
    }

    #[test]
    fn incarnations_reset_or_reject() {
        let mut table = ReplayTable::new(8);
        let node = NodeId::from_u128(7);
        assert_eq!(
            table.check_and_insert(node, Incarnation(1), 50),
            Verdict::Fresh
        );
        assert_eq!(
            table.check_and_insert(node, Incarnation(1), 50),
            Verdict::Replayed
        );
        assert_eq!(
            table.check_and_insert(node, Incarnation(2), 1),
            Verdict::Fresh
        );
        assert_eq!(
            table.check_and_insert(node, Incarnation(1), 51),
            Verdict::Replayed
        );
        table.forget(node);
        assert_eq!(
            table.check_and_insert(node, Incarnation(1), 51),
            Verdict::Fresh
        );
    }

    #[test]
    fn full_table_forgets_least_recent_sender() {
        let mut table = ReplayTable::new(2);
        let (a, b, c) = (
            NodeId::from_u128(1),
            NodeId::from_u128(2),
            NodeId::from_u128(3),
        );
        table.check_and_insert(a, Incarnation(0), 1);
        table.check_and_insert(b, Incarnation(0), 1);
        table.check_and_insert(a, Incarnation(0), 2);
        table.check_and_insert(c, Incarnation(0), 1);
        assert_eq!(table.senders.len(), 2);
        assert!(!table.senders.contains_key(&b));
        assert_eq!(
            table.check_and_insert(a, Incarnation(0), 2),
            Verdict::Replayed
        );
    }

    proptest! {
        /// The bitmap agrees with a reference model: a set of everything seen plus the highest.
        #[test]
        fn bitmap_matches_model(first in 0u64..5_000, steps in proptest::collection::vec(0u64..3_000, 1..300)) {
            let mut bitmap = Bitmap::starting_at(first);
            let mut seen = BTreeSet::from([first]);
            let mut highest = first;
            for step in steps {
                // Mostly near the top of the window, sometimes far ahead.
                let sequence = (highest + 100).saturating_sub(step % 1_500) + step / 1_500 * 700;
                let expected = if seen.contains(&sequence) || sequence + WINDOW <= highest {
                    Verdict::Replayed
                } else {
                    Verdict::Fresh
                };
                prop_assert_eq!(bitmap.check_and_insert(sequence), expected, "sequence {}", sequence);
                if expected == Verdict::Fresh {
                    seen.insert(sequence);
                    highest = highest.max(sequence);
                }
            }
        }
    }
}
