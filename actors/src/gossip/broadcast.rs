//! The dissemination queue: what to piggyback on the next datagram.
//!
//! Each entry is sent a bounded number of times (`lambda * ceil(log10(n + 1))`), the least
//! sent first and, among equals, the newest first. A newer update about a member replaces
//! the queued one, which is then never sent again.
//!
//! An entry is *urgent* when this node is its source or it changes who is in the cluster: this
//! node's own news (its refutations, its own suspicions and confirmations, events it raised) and
//! joins, deaths and leaves. Only urgent entries start the dedicated gossip rounds; everything
//! else rides the probes, acks and indirect probes that are sent anyway (pure SWIM
//! dissemination). That keeps the datagram count per member independent of the cluster size:
//! the rate of news a member originates does not grow with n, while the rate of news it relays
//! (other members' suspicions and refutations under loss) does.

use std::collections::BTreeMap;

use super::NodeId;
use super::message::{Update, UserEvent, encoded_len};

/// What one piggybacked item is about; one queued entry per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Member(NodeId),
    Event(NodeId, u64),
}

#[derive(Debug)]
enum Item<A> {
    Update(Update<A>),
    Event(UserEvent),
}

#[derive(Debug)]
struct Entry<A> {
    item: Item<A>,
    transmits: u32,
    /// Whether this entry justifies a dedicated gossip round (see the module docs).
    urgent: bool,
    /// Encoded size, computed once when queued.
    len: usize,
    /// Queue order, to prefer newer entries among those sent equally often.
    order: u64,
}

/// The piggyback queue.
#[derive(Debug)]
pub(crate) struct Broadcasts<A> {
    entries: BTreeMap<Key, Entry<A>>,
    next_order: u64,
}

impl<A: Clone + serde::Serialize> Broadcasts<A> {
    pub(crate) fn new() -> Self {
        Self {
            entries: BTreeMap::new(),
            next_order: 0,
        }
    }

    /// Queues `update`, replacing any queued update about the same member.
    pub(crate) fn push_update(&mut self, update: Update<A>, urgency: Urgency) {
        let key = Key::Member(update.node);
        let len = encoded_len(&update);
        self.insert(key, Item::Update(update), len, urgency);
    }

    /// Queues `event`.
    pub(crate) fn push_event(&mut self, event: UserEvent, urgency: Urgency) {
        let key = Key::Event(event.origin, event.seq);
        let len = encoded_len(&event);
        self.insert(key, Item::Event(event), len, urgency);
    }

    /// How many entries are queued.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether an urgent entry sent fewer than `transmits` times waits: only then is a
    /// dedicated gossip round worth sending. The bound is a constant, not the retransmit
    /// limit (which grows with log n): past it, an urgent entry rides the datagrams sent
    /// anyway, like relayed news, so the rounds' cost per entry does not grow with n.
    pub(crate) fn has_urgent(&self, transmits: u32) -> bool {
        self.entries
            .values()
            .any(|entry| entry.urgent && entry.transmits < transmits)
    }

    /// Takes what fits in `budget` bytes, counting one transmission for each, and drops the
    /// entries sent `limit` times. `skip` names a member whose update the caller already
    /// added.
    pub(crate) fn select(
        &mut self,
        mut budget: usize,
        limit: u32,
        skip: Option<NodeId>,
    ) -> (Vec<Update<A>>, Vec<UserEvent>) {
        let mut order: Vec<(u32, std::cmp::Reverse<u64>, Key)> = self
            .entries
            .iter()
            .map(|(key, entry)| (entry.transmits, std::cmp::Reverse(entry.order), *key))
            .collect();
        order.sort_unstable();
        let mut updates = Vec::new();
        let mut events = Vec::new();
        for (_, _, key) in order {
            if skip.is_some_and(|node| key == Key::Member(node)) {
                continue;
            }
            let Some(entry) = self.entries.get_mut(&key) else {
                continue;
            };
            if entry.len > budget {
                continue;
            }
            budget -= entry.len;
            entry.transmits += 1;
            match &entry.item {
                Item::Update(update) => updates.push(update.clone()),
                Item::Event(event) => events.push(event.clone()),
            }
            if entry.transmits >= limit {
                self.entries.remove(&key);
            }
            if updates.len() >= super::message::MAX_UPDATES
                || events.len() >= super::message::MAX_EVENTS
            {
                break;
            }
        }
        (updates, events)
    }

    fn insert(&mut self, key: Key, item: Item<A>, len: usize, urgency: Urgency) {
        let order = self.next_order;
        self.next_order += 1;
        self.entries.insert(
            key,
            Entry {
                item,
                transmits: 0,
                urgent: urgency == Urgency::Urgent,
                len,
                order,
            },
        );
    }
}

/// Whether a queued entry starts dedicated gossip rounds (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Urgency {
    /// This node's own news, or a join, death or leave: sent in gossip rounds too.
    Urgent,
    /// Relayed news: piggybacked only on datagrams sent anyway.
    Relayed,
}

/// How many times each update is piggybacked in a cluster of `members` nodes.
pub(crate) fn retransmit_limit(mult: u32, members: usize) -> u32 {
    // log10 of a member count is small and positive; the cast back is exact enough.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let scale = ((members as f64) + 1.0).log10().ceil() as u32;
    mult.saturating_mul(scale.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::MemberState;

    fn update(node: u64, incarnation: u64) -> Update<u32> {
        Update {
            node: NodeId(node),
            addr: 1,
            incarnation,
            state: MemberState::Alive,
            origin: NodeId(node),
        }
    }

    #[test]
    fn each_entry_is_sent_limit_times_then_dropped() {
        let mut queue = Broadcasts::new();
        queue.push_update(update(1, 0), Urgency::Relayed);
        for _ in 0..3 {
            assert_eq!(queue.select(1000, 3, None).0.len(), 1);
        }
        assert!(queue.select(1000, 3, None).0.is_empty());
    }

    #[test]
    fn newer_update_replaces_older_and_least_sent_goes_first() {
        let mut queue = Broadcasts::new();
        queue.push_update(update(1, 0), Urgency::Relayed);
        queue.select(1000, 10, None);
        queue.push_update(update(2, 0), Urgency::Relayed);
        queue.push_update(update(1, 5), Urgency::Relayed);
        let one = encoded_len(&update(1, 5));
        let (sent, _) = queue.select(one, 10, None);
        assert_eq!(sent.len(), 1);
        assert_eq!(queue.len(), 2);
        let (sent, _) = queue.select(1000, 10, Some(NodeId(2)));
        assert_eq!(sent, vec![update(1, 5)]);
    }

    #[test]
    fn limit_grows_with_log_of_cluster_size() {
        assert_eq!(retransmit_limit(4, 1), 4);
        assert_eq!(retransmit_limit(4, 9), 4);
        assert_eq!(retransmit_limit(4, 10), 8);
        assert_eq!(retransmit_limit(4, 1000), 16);
    }
}
