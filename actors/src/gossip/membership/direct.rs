//! Actor messages carried by gossip datagrams: the outbox that places them (on a datagram
//! already going to their member when there is room, else in datagrams of their own) and the
//! inbox that drops duplicates.
//!
//! Space accounting is exact: a message is added to a datagram only if the encoded datagram
//! stays within [`Config::max_datagram`](crate::gossip::Config::max_datagram). The count of
//! messages in a datagram is encoded in one byte (at most [`MAX_DIRECT_MESSAGES`], below 128),
//! so adding one adds exactly its own encoded length.

use std::collections::{BTreeMap, VecDeque};

use super::{Address, Membership};
use crate::gossip::NodeId;
use crate::gossip::action::{Action, Notification};
use crate::gossip::broadcast::retransmit_limit;
use crate::gossip::message::{
    Body, DirectMessage, MAX_DIRECT_MESSAGES, MAX_DIRECT_PAYLOAD, Message, encoded_len,
};

/// The most actor messages queued for datagrams at once, all members together.
const MAX_QUEUED: usize = 1024;

/// How far behind the newest number a message may arrive and still be accepted.
const WINDOW: u64 = 64;

/// Counters of the actor messages carried by gossip datagrams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageStats {
    /// Messages sent on a datagram that was going to their member anyway.
    pub piggybacked: u64,
    /// Messages sent in datagrams of their own.
    pub own_datagram: u64,
    /// Messages received and handed out as [`Notification::Message`].
    pub received: u64,
    /// Messages received and dropped: addressed to another node, from a sender this node does
    /// not hold live, or duplicates; and queued messages whose member went down before they
    /// left.
    pub dropped: u64,
}

/// An actor message was not queued; no state changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The payload does not fit one datagram; send it another way (a stream).
    #[error("message of {len} bytes exceeds the datagram budget of {max}")]
    TooLarge {
        /// The payload's length.
        len: usize,
        /// The largest payload that fits ([`Membership::max_message_payload`]).
        max: usize,
    },
    /// The destination is not a live member in this node's view.
    #[error("{0:?} is not a live member")]
    NotLive(NodeId),
    /// Too many messages wait for datagrams already.
    #[error("too many messages queued for datagrams")]
    QueueFull,
    /// This node has left the cluster.
    #[error("this node has left the cluster")]
    Left,
}

/// Messages waiting to be placed on datagrams.
#[derive(Debug)]
pub(super) struct Outbox {
    queues: BTreeMap<NodeId, VecDeque<DirectMessage>>,
    queued: usize,
    next_seq: u64,
    stats: MessageStats,
}

impl Outbox {
    /// An empty outbox whose first message number is `first_seq` (see the event numbers in
    /// the parent module: a new life starts above the numbers of the one before).
    pub(super) fn new(first_seq: u64) -> Self {
        Self {
            queues: BTreeMap::new(),
            queued: 0,
            next_seq: first_seq,
            stats: MessageStats::default(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queued == 0
    }
}

/// Per-sender windows of accepted message numbers.
#[derive(Debug, Default)]
pub(super) struct Inbox {
    windows: BTreeMap<NodeId, Window>,
}

/// The newest number accepted from one sender, and which of the `WINDOW` before it were.
#[derive(Debug, Clone, Copy)]
struct Window {
    top: u64,
    /// Bit `i` set: number `top - i` was accepted.
    seen: u64,
}

impl Window {
    fn accept(&mut self, seq: u64) -> bool {
        if seq > self.top {
            let shift = seq - self.top;
            self.seen = if shift >= WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.top = seq;
            return true;
        }
        let back = self.top - seq;
        if back >= WINDOW || self.seen & (1 << back) != 0 {
            return false;
        }
        self.seen |= 1 << back;
        true
    }
}

impl<A: Address> Membership<A> {
    /// The largest payload [`send_message`](Self::send_message) accepts: what one datagram
    /// holds besides the message's own framing.
    pub fn max_message_payload(&self) -> usize {
        let framing = Message::<A> {
            sender: self.me,
            body: Body::Gossip,
            updates: Vec::new(),
            events: Vec::new(),
            messages: vec![DirectMessage {
                to: NodeId(u64::MAX),
                seq: u64::MAX,
                payload: Vec::new(),
            }],
        };
        // Two more bytes for the payload's length prefix (up to 16,383 bytes).
        self.config
            .max_datagram
            .saturating_sub(encoded_len(&framing) + 2)
            .min(MAX_DIRECT_PAYLOAD)
    }

    /// Queues a small actor message for the member `to`. It rides a datagram going to `to`
    /// before the driver next drains [`poll_action`](Self::poll_action), or gets one of its
    /// own then; the receiver hands it out as [`Notification::Message`]. Best effort: a lost
    /// datagram loses it, and nothing orders it against other messages.
    ///
    /// # Errors
    ///
    /// [`MessageError`] if the payload is larger than
    /// [`max_message_payload`](Self::max_message_payload), `to` is not a live member, too many
    /// messages are queued, or this node has left; nothing is queued then.
    pub fn send_message(&mut self, to: NodeId, payload: Vec<u8>) -> Result<(), MessageError> {
        if self.left {
            return Err(MessageError::Left);
        }
        let max = self.max_message_payload();
        if payload.len() > max {
            return Err(MessageError::TooLarge {
                len: payload.len(),
                max,
            });
        }
        if !self.members.get(&to).is_some_and(|m| m.is_live()) {
            return Err(MessageError::NotLive(to));
        }
        if self.outbox.queued >= MAX_QUEUED {
            return Err(MessageError::QueueFull);
        }
        let seq = self.outbox.next_seq;
        self.outbox.next_seq = seq.wrapping_add(1);
        self.outbox
            .queues
            .entry(to)
            .or_default()
            .push_back(DirectMessage { to, seq, payload });
        self.outbox.queued += 1;
        Ok(())
    }

    /// Counters of the actor messages sent and received in datagrams.
    pub fn message_stats(&self) -> MessageStats {
        self.outbox.stats
    }

    /// Places every queued message: on waiting datagrams to its member while they have room,
    /// the rest in datagrams of their own (which carry piggybacked membership news as well).
    pub(super) fn place_messages(&mut self) {
        let queues = std::mem::take(&mut self.outbox.queues);
        self.outbox.queued = 0;
        let max = self.config.max_datagram;
        for (node, mut queue) in queues {
            let addr = self
                .members
                .get(&node)
                .filter(|m| m.is_live() && !self.left)
                .map(|m| m.addr.clone());
            let Some(addr) = addr else {
                self.outbox.stats.dropped += queue.len() as u64;
                continue;
            };
            for action in &mut self.actions {
                let Action::Send { to, message } = action else {
                    continue;
                };
                if *to != addr || queue.is_empty() {
                    continue;
                }
                let mut room = max.saturating_sub(encoded_len(message));
                while let Some(front) = queue.front() {
                    let len = encoded_len(front);
                    if len > room || message.messages.len() >= MAX_DIRECT_MESSAGES {
                        break;
                    }
                    room -= len;
                    if let Some(front) = queue.pop_front() {
                        message.messages.push(front);
                        self.outbox.stats.piggybacked += 1;
                    }
                }
            }
            while !queue.is_empty() {
                self.send_own_datagram(addr.clone(), &mut queue);
            }
        }
    }

    /// Sends as many of `queue`'s messages as fit in one datagram to `to`, and fills the room
    /// left with piggybacked membership news.
    fn send_own_datagram(&mut self, to: A, queue: &mut VecDeque<DirectMessage>) {
        let max = self.config.max_datagram;
        let mut message = Message {
            sender: self.me,
            body: Body::Gossip,
            updates: Vec::new(),
            events: Vec::new(),
            messages: Vec::new(),
        };
        let mut room = max.saturating_sub(encoded_len(&message));
        while let Some(front) = queue.front() {
            let len = encoded_len(front);
            // The first message always goes: `send_message` checked that it fits alone.
            if !message.messages.is_empty()
                && (len > room || message.messages.len() >= MAX_DIRECT_MESSAGES)
            {
                break;
            }
            room = room.saturating_sub(len);
            if let Some(front) = queue.pop_front() {
                message.messages.push(front);
                self.outbox.stats.own_datagram += 1;
            }
        }
        // The update count may take a second byte (up to MAX_UPDATES entries); the event count
        // stays below 128.
        let budget = room.saturating_sub(1);
        let limit = retransmit_limit(self.config.retransmit_mult, self.cluster_size());
        let (updates, events) = self.broadcasts.select(budget, limit, None);
        message.updates = updates;
        message.events = events;
        self.actions.push_back(Action::Send { to, message });
    }

    /// Hands out the messages of a datagram from `sender` that are for this node, new, and
    /// from a live member.
    pub(super) fn receive_messages(&mut self, sender: NodeId, messages: Vec<DirectMessage>) {
        let Some(from) = self
            .members
            .get(&sender)
            .filter(|m| m.is_live())
            .map(|m| m.id())
        else {
            self.outbox.stats.dropped += messages.len() as u64;
            return;
        };
        if self.inbox.windows.len() > 2 * self.members.len() + 64 {
            // Forget the windows of forgotten members, so that the table stays bounded.
            let members = &self.members;
            self.inbox
                .windows
                .retain(|node, _| members.contains_key(node));
        }
        for message in messages {
            let window = self.inbox.windows.entry(sender).or_insert(Window {
                top: message.seq,
                seen: 0,
            });
            if message.to != self.me || !window.accept(message.seq) {
                self.outbox.stats.dropped += 1;
                continue;
            }
            self.outbox.stats.received += 1;
            self.notify(Notification::Message {
                from,
                payload: message.payload,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Window;

    #[test]
    fn window_accepts_each_number_once_and_forgets_the_far_past() {
        let mut window = Window { top: 10, seen: 0 };
        assert!(window.accept(10));
        assert!(!window.accept(10));
        assert!(window.accept(12));
        assert!(window.accept(11));
        assert!(!window.accept(11));
        assert!(window.accept(200));
        assert!(!window.accept(12), "more than a window behind");
        assert!(window.accept(199));
        assert!(!window.accept(199));
    }
}
