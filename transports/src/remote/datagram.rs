//! Remote messages that ride datagrams: the opt-in ([`Carrier`]), the hook the membership
//! layer plugs in ([`DatagramCarrier`]), and the wire record with its decoder.
//!
//! Streams are the default and the guarantee: ordered (FIFO per sender-receiver pair) and
//! reliable while the connection lives. A message type that sets
//! [`RemoteMessage::CARRIER`](super::RemoteMessage::CARRIER) to [`Carrier::Datagram`] trades
//! that for latency and for not needing a connection: each message that fits goes in a gossip
//! datagram to the node (on one already going there when there is room), best effort, at most
//! once, in no particular order, and neither against the type's own other messages nor
//! against the stream. A message of such a type that does not fit, that carries a
//! [`Reply`](phalanx_runtime::Reply) (an ask needs its answer reliably), or that finds no
//! carrier (no membership, the node not a live member, the carrier's queue full) goes on the
//! stream as usual.

use serde::{Deserialize, Serialize};

use crate::frame::NodeId;

/// How the messages of a [`RemoteMessage`](super::RemoteMessage) type travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Carrier {
    /// On the node-to-node stream: ordered and reliable (the default).
    Stream,
    /// In a gossip datagram when it fits: faster to start, but lossy and unordered; the
    /// stream otherwise (see the module docs of
    /// [`Remoting`](super::Remoting)).
    Datagram,
}

/// Carries encoded remote messages to other nodes in datagrams: the membership layer (the
/// node's gossip actor) implements it and installs it with
/// [`Remoting::set_datagram_carrier`](super::Remoting::set_datagram_carrier). The receiving
/// side hands what arrives, after authenticating it, to
/// [`Remoting::deliver_datagram`](super::Remoting::deliver_datagram).
pub trait DatagramCarrier: Send + Sync + 'static {
    /// The largest payload [`carry`](Self::carry) can take for `node` now; 0 if it cannot
    /// reach `node` (not a live member, no membership).
    fn max_payload(&self, node: NodeId) -> usize;

    /// Takes `payload` for `node`, or returns false (not reachable, too large, queue full):
    /// the caller then sends the message on the stream. Taken means sent best effort, not
    /// delivered. Must not block.
    fn carry(&self, node: NodeId, payload: Vec<u8>) -> bool;
}

/// Counters of remote messages that went, or came, by datagram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DatagramStats {
    /// Messages of datagram types handed to the carrier.
    pub sent: u64,
    /// Messages of datagram types that went on the stream instead (too large, carrying a
    /// reply, or no carrier for the node).
    pub fell_back: u64,
    /// Messages received by datagram and put in an actor's mailbox.
    pub delivered: u64,
    /// Messages received by datagram and dropped: malformed, for an unknown or ended actor,
    /// of another type than the actor takes, a type that did not opt in, or a full mailbox.
    pub dropped: u64,
}

/// The longest type tag a datagram record may carry, in bytes.
pub(crate) const MAX_TAG_LEN: usize = 256;

/// The largest datagram record [`DatagramRecord::decode`] accepts (a datagram is far smaller).
pub(crate) const MAX_RECORD_LEN: usize = 64 * 1024;

/// One remote message in a datagram: the exported actor it is for, the message type's tag,
/// and the postcard-encoded message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DatagramRecord<'a> {
    pub(crate) target: u64,
    #[serde(borrow)]
    pub(crate) tag: &'a str,
    #[serde(borrow)]
    pub(crate) body: &'a [u8],
}

impl<'a> DatagramRecord<'a> {
    pub(crate) fn encode(&self) -> Option<Vec<u8>> {
        postcard::to_allocvec(self).ok()
    }

    /// Decodes a record received from a peer: borrowed from `bytes`, so nothing is allocated;
    /// `None` if it is longer than [`MAX_RECORD_LEN`], malformed, followed by more bytes, or
    /// its tag is longer than [`MAX_TAG_LEN`].
    pub(crate) fn decode(bytes: &'a [u8]) -> Option<Self> {
        if bytes.len() > MAX_RECORD_LEN {
            return None;
        }
        let (record, rest): (Self, _) = postcard::take_from_bytes(bytes).ok()?;
        (rest.is_empty() && record.tag.len() <= MAX_TAG_LEN).then_some(record)
    }
}

/// Decodes a datagram record as [`Remoting::deliver_datagram`](super::Remoting) does, for
/// fuzzing and property tests: the target, the tag and the body length, or `None`.
pub fn decode_datagram_record(bytes: &[u8]) -> Option<(u64, &str, &[u8])> {
    DatagramRecord::decode(bytes).map(|r| (r.target, r.tag, r.body))
}

/// Encodes a datagram record (the inverse of [`decode_datagram_record`]), for tests and carriers.
pub fn encode_datagram_record(target: u64, tag: &str, body: &[u8]) -> Option<Vec<u8>> {
    DatagramRecord { target, tag, body }.encode()
}
