//! SWIM membership with the Lifeguard refinements, as a sans-IO state machine.
//!
//! [`Membership`] is one node's view of the cluster. It detects failures with direct and
//! indirect probes, suspects before it declares dead, lets a suspected member refute with a
//! higher incarnation, and spreads every change by piggybacking it on its datagrams a bounded
//! number of times (`lambda * ceil(log10(n + 1))`); while this node's own news or a change of
//! who is in the cluster is fresh, gossip rounds (memberlist's gossip interval) send the queue
//! to a few random members as well, recently dead ones included (relayed news only rides the
//! probes, so that the load per member does not grow with n). A node that receives a stale
//! accusation (suspect or dead at an incarnation older than its own record) answers the
//! sender with the fresher record: on the ack if it came on a ping, else in a datagram of its
//! own, at most one per protocol period. A periodic push-pull exchanges full
//! state with one random member (and one member believed dead, to heal partitions); a join is
//! a push-pull with the seeds, retried until a full state arrives and followed by one
//! settling push-pull a few periods later; a message from an unknown sender also starts one.
//!
//! Lifeguard: the local health score stretches this node's own probe interval and timeout
//! when it misses nacks from helpers; suspicion timeouts start long and shrink with
//! independent confirmations; a suspected node hears of its suspicion first from whoever
//! probes it (buddy system).
//!
//! Actor messages: [`Membership::send_message`] queues a small opaque payload for one member.
//! It rides any datagram this node sends to that member before the driver next drains
//! [`Membership::poll_action`] (a probe, an ack, a gossip round), and otherwise goes out in a
//! datagram of its own, which carries piggybacked membership news too. No datagram ever
//! exceeds [`Config::max_datagram`]. The receiver drops messages not addressed to it, from
//! senders it does not hold live, and duplicates; the rest come out as
//! [`Notification::Message`]. Delivery is best effort: no retransmission, no ordering. The
//! remoting layer uses this only for message types that opt in, and keeps everything else on
//! its ordered, reliable streams.
//!
//! Undying: a node that learns it was declared dead bumps its incarnation and announces
//! itself again; a node that knows no live member keeps contacting its seeds.
//!
//! The state machine reads no clock, owns no socket and spawns nothing: the driver feeds it
//! messages and timers with the current time and carries out the [`Action`]s it returns.

mod action;
mod broadcast;
mod config;
mod member;
mod membership;
mod message;
mod suspicion;

pub use action::{Action, DownReason, Notification, Timer};
pub use config::Config;
pub use member::{MemberId, NodeId};
pub use membership::{Address, EventError, Membership, MessageError, MessageStats, ProbeStats};
pub use message::{
    Body, DecodeError, DirectMessage, EncodeError, MAX_DIRECT_MESSAGES, MAX_DIRECT_PAYLOAD,
    MAX_EVENT_NAME, MAX_EVENT_PAYLOAD, MAX_EVENTS, MAX_MESSAGE_LEN, MAX_PUSH_PULL_MEMBERS,
    MAX_UPDATES, MemberState, Message, PushPullKind, Update, UserEvent,
};

#[cfg(test)]
mod tests;
