//! The actors that drive the chain's sans-IO cores with real time and a real transport.
//!
//! - [`ReplicaActor`] owns a [`Replica`](super::Replica): it feeds it decoded packets and
//!   ticks from an interval timer, flushes it when its mailbox is drained (so a burst of
//!   writes becomes one forwarded batch), and sends its actions as [`Packet`]s.
//! - [`GroupActor`] owns a [`ConfigNode`](super::ConfigNode) the same way; raft messages
//!   travel as protobuf bytes and are decoded only from authenticated frames (raft-rs 0.7's
//!   protobuf 2 carries RUSTSEC-2024-0437).
//! - [`ClientActor`] is a chain client: writes go to the head, reads to any member (CRAQ),
//!   many requests may be outstanding (pipelining), a retry reuses the request id so the chain
//!   applies it once, and it learns configurations from the group.
//!
//! They talk through a [`ChainTransport`], a small trait: the node implements it over the
//! remoting layer, and [`LocalNetwork`] implements it in-process for tests.
//!
//! Every inbound packet is untrusted: its body is decoded with the bounded
//! [`decode`](super::decode) (or, for raft, only if the frame was authenticated), and what
//! does not decode or is misaddressed is counted ([`DriverCounters`]) and dropped.
//!
//! Clients are reached through *routes*: a client's packets name the node that hosts it
//! ([`Packet::routes`]), drivers remember that, and attach the routes of the clients named in
//! what they forward, so that the tail, which answers writes it never received from the client
//! directly, knows where to send the reply. A reply without a route is dropped; the client's
//! retry (same request id) is then answered by the head from its deduplication table.

mod client;
mod group_actor;
mod local;
mod replica_actor;
mod routes;

use serde::{Deserialize, Serialize};

pub use client::{ClientActor, ClientError, ClientInput, ClientSettings};
pub use group_actor::{GroupActor, GroupInput, GroupStatus};
pub use local::LocalNetwork;
pub use replica_actor::{
    DriverSettings, DurableReplica, ReplicaActor, ReplicaInput, ReplicaStatus,
};

use super::config::ClientId;
use super::message::Peer;

/// What travels between chain participants: one encoded message, addressed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packet {
    /// The sender, as it names itself (trusted only as far as the frame is).
    pub from: Peer,
    /// The receiver.
    pub to: Peer,
    /// The encoded message.
    pub body: Body,
    /// Where clients named in this packet are hosted: `(client, node)`, the node being
    /// whatever the transport routes by (the node's 64-bit membership id).
    pub routes: Vec<(ClientId, u64)>,
}

/// The encoded message inside a [`Packet`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Body {
    /// A chain or client [`Message`](super::Message), [`encode`](super::encode)d.
    Chain(#[serde(with = "crate::chain::message::byte_buf")] Vec<u8>),
    /// A [`ControlMessage`](super::ControlMessage), [`encode`](super::encode)d.
    Control(#[serde(with = "crate::chain::message::byte_buf")] Vec<u8>),
    /// A raft-rs message between configuration-group nodes, protobuf-encoded.
    Raft(#[serde(with = "crate::chain::message::byte_buf")] Vec<u8>),
}

/// A packet as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The packet.
    pub packet: Packet,
    /// Whether the frame that carried it was authenticated (sealed with the cluster key).
    pub authenticated: bool,
}

/// How the driver actors send packets.
pub trait ChainTransport: Send + Sync + 'static {
    /// Sends `packet` to `packet.to`. Never blocks: a packet that cannot be sent now is
    /// dropped (the protocols retransmit). For a client receiver, `packet.routes` holds its
    /// route if the sender knows one.
    fn send(&self, packet: Packet);
}

/// What a driver dropped or did, for operators and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DriverCounters {
    /// Packets received.
    pub received: u64,
    /// Packets sent.
    pub sent: u64,
    /// Packets whose body did not decode; dropped.
    pub malformed: u64,
    /// Raft packets that did not come in an authenticated frame; dropped undecoded.
    pub unauthenticated: u64,
    /// Packets for another receiver, or of a kind this receiver does not take; dropped.
    pub misaddressed: u64,
    /// Messages that could not be encoded (a bug); dropped.
    pub unencodable: u64,
}
