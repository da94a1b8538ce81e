//! What a [`Membership`](super::Membership) asks its driver to do.

use std::time::Duration;

use super::message::{Message, UserEvent};
use super::{MemberId, NodeId};

/// One output of the membership state machine, drained with
/// [`Membership::poll_action`](super::Membership::poll_action).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action<A> {
    /// Send `message` to `to` in one datagram.
    Send {
        /// The destination address.
        to: A,
        /// The message to encode and send.
        message: Message<A>,
    },
    /// Send `message` (a push-pull state sync) to `to` over a stream, and hand the answer,
    /// if any, to [`Membership::handle_datagram`](super::Membership::handle_datagram) like
    /// any message.
    SendStream {
        /// The destination address.
        to: A,
        /// The message to encode and send.
        message: Message<A>,
    },
    /// Call [`Membership::handle_timer`](super::Membership::handle_timer) with `timer` once
    /// `after` has passed. Timers are never cancelled: a stale one is ignored.
    ScheduleTimer {
        /// What to hand back.
        timer: Timer,
        /// How long from now.
        after: Duration,
    },
    /// Tell the application about a membership change or an event.
    Notify(Notification<A>),
}

/// A timer the state machine asked for; opaque to the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Timer {
    /// The start of the next protocol period.
    Probe {
        /// Invalidates ticks of an earlier run (after a leave).
        epoch: u64,
    },
    /// The direct ack for probe `seq` is late: time for indirect probes.
    ProbeTimeout {
        /// The probe.
        seq: u32,
    },
    /// The indirect probe `seq` run for another node is late: answer with a nack.
    RelayTimeout {
        /// The local sequence number of the relayed ping.
        seq: u32,
    },
    /// A suspicion may have expired.
    Suspicion {
        /// The suspected node.
        node: NodeId,
        /// The incarnation suspected.
        incarnation: u64,
    },
    /// Time for a gossip round.
    Gossip {
        /// Invalidates ticks of an earlier run (after a leave).
        epoch: u64,
    },
    /// A one-off push-pull a few periods after joining, to pick up members that joined at
    /// the same time and whose announcements were missed.
    SettleSync {
        /// Invalidates ticks of an earlier run (after a leave).
        epoch: u64,
    },
    /// Time for a periodic push-pull.
    PushPull {
        /// Invalidates ticks of an earlier run (after a leave).
        epoch: u64,
    },
}

/// A change the application hears about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notification<A> {
    /// A member joined, or came back in a new life.
    Up {
        /// The member.
        member: MemberId,
        /// Where it listens.
        addr: A,
    },
    /// A member is suspected of having failed.
    Suspect {
        /// The member.
        member: MemberId,
    },
    /// A suspected member refuted the suspicion and is alive.
    Alive {
        /// The member.
        member: MemberId,
    },
    /// A member is gone.
    Down {
        /// The member.
        member: MemberId,
        /// Failure or graceful leave.
        reason: DownReason,
    },
    /// This node learned that others declared it dead or suspected, and refuted with a new
    /// incarnation.
    Refuted {
        /// The new incarnation.
        incarnation: u64,
        /// Whether others had declared this node dead (it rejoins as a new member).
        was_dead: bool,
    },
    /// A user event, delivered once.
    Event(UserEvent),
    /// An actor message another member sent to this one in a datagram (see
    /// [`Membership::send_message`](super::Membership::send_message)), delivered at most once.
    Message {
        /// The sender, as this node knows it (its current incarnation).
        from: MemberId,
        /// The opaque payload.
        payload: Vec<u8>,
    },
}

/// Why a member went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DownReason {
    /// The failure detector declared it dead.
    Failed,
    /// It left on purpose.
    Left,
}
