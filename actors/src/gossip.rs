//! SWIM membership with the Lifeguard refinements, as a sans-IO state machine.
//!
//! [`Membership`] is one node's view of the cluster. It detects failures with direct and
//! indirect probes, suspects before it declares dead, lets a suspected member refute with a
//! higher incarnation, and spreads every change by piggybacking it on its datagrams a bounded
//! number of times (`lambda * ceil(log10(n + 1))`); while changes are pending, gossip rounds
//! (memberlist's gossip interval) send them to a few random members as well, recently dead
//! ones included. A node that receives stale news (an incarnation older than its own record)
//! answers the sender with the fresher record at once. A periodic push-pull exchanges full
//! state with one random member (and one member believed dead, to heal partitions); a join is
//! a push-pull with the seeds, retried until a full state arrives and followed by one
//! settling push-pull a few periods later; a message from an unknown sender also starts one.
//!
//! Lifeguard: the local health score stretches this node's own probe interval and timeout
//! when it misses nacks from helpers; suspicion timeouts start long and shrink with
//! independent confirmations; a suspected node hears of its suspicion first from whoever
//! probes it (buddy system).
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
pub use membership::{Address, EventError, Membership};
pub use message::{
    Body, DecodeError, EncodeError, MAX_EVENT_NAME, MAX_EVENT_PAYLOAD, MAX_EVENTS, MAX_MESSAGE_LEN,
    MAX_PUSH_PULL_MEMBERS, MAX_UPDATES, MemberState, Message, PushPullKind, Update, UserEvent,
};

#[cfg(test)]
mod tests;
