//! Frames: the unit that every datagram and stream carries.
//!
//! A [`Frame`] is a [`FrameHeader`] (who sent it, to which cluster, what kind it is) plus an
//! opaque payload that the layer above encodes. The byte layout on the wire is described in the
//! `envelope` module docs and produced by [`Codec`](crate::Codec).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks; frames with another version are rejected.
pub const PROTOCOL_VERSION: u8 = 1;

/// Identity of a node: 128 bits, normally drawn at random when the node starts.
///
/// Displayed as 32 lower-case hex digits.
///
/// # Examples
///
/// ```
/// use phalanx_transports::NodeId;
///
/// let id = NodeId::from_u128(0xab);
/// assert_eq!(id.to_string(), "000000000000000000000000000000ab");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(u128);

impl NodeId {
    /// Wraps a raw 128-bit id.
    pub const fn from_u128(raw: u128) -> NodeId {
        NodeId(raw)
    }

    /// Draws a fresh id from the operating system's random number generator.
    ///
    /// # Errors
    ///
    /// Returns [`RandomUnavailableError`] if the operating system could not supply random bytes.
    pub fn random() -> Result<NodeId, RandomUnavailableError> {
        let mut bytes = [0u8; 16];
        crate::keyring::fill_random(&mut bytes)?;
        Ok(NodeId(u128::from_le_bytes(bytes)))
    }

    /// The raw 128-bit value.
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    pub(crate) const fn to_bytes(self) -> [u8; 16] {
        self.0.to_le_bytes()
    }

    pub(crate) const fn from_bytes(bytes: [u8; 16]) -> NodeId {
        NodeId(u128::from_le_bytes(bytes))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

/// How many times a node has (re)started or refuted a suspicion; higher is newer.
///
/// A node must never send two different frames with the same (node id, incarnation, sequence):
/// after a restart it comes back with a new node id or a higher incarnation.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Incarnation(pub u64);

/// Identity of a cluster; frames for another cluster are dropped and counted.
///
/// This is a label, not a secret: the keyring is what keeps strangers out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClusterId(pub u64);

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// What a frame carries; decides which layer above gets its payload.
///
/// The wire code of each kind is fixed forever; new kinds get new codes, and a receiver that
/// does not know a code rejects the frame with
/// [`DecodeError::UnknownKind`](crate::DecodeError::UnknownKind).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameKind {
    /// Membership traffic: probes, acks, piggybacked dissemination.
    Gossip,
    /// A one-way message to a remote actor.
    ActorMessage,
    /// A request to a remote actor that expects a [`FrameKind::Reply`].
    Ask,
    /// The answer to an [`FrameKind::Ask`].
    Reply,
    /// Transport-level control: handshakes, close, keep-alive.
    Control,
    /// One chunk of a large transfer on a stream (state sync, snapshots).
    StreamChunk,
}

impl FrameKind {
    /// Every kind this version knows, in wire-code order.
    pub const ALL: [FrameKind; 6] = [
        FrameKind::Gossip,
        FrameKind::ActorMessage,
        FrameKind::Ask,
        FrameKind::Reply,
        FrameKind::Control,
        FrameKind::StreamChunk,
    ];

    /// The one-byte code on the wire. Code 0 is reserved and never valid.
    pub(crate) const fn code(self) -> u8 {
        match self {
            FrameKind::Gossip => 1,
            FrameKind::ActorMessage => 2,
            FrameKind::Ask => 3,
            FrameKind::Reply => 4,
            FrameKind::Control => 5,
            FrameKind::StreamChunk => 6,
        }
    }

    pub(crate) const fn from_code(code: u8) -> Option<FrameKind> {
        Some(match code {
            1 => FrameKind::Gossip,
            2 => FrameKind::ActorMessage,
            3 => FrameKind::Ask,
            4 => FrameKind::Reply,
            5 => FrameKind::Control,
            6 => FrameKind::StreamChunk,
            _ => return None,
        })
    }
}

/// Everything about a frame except its payload.
///
/// The version and magic are checked by the codec and therefore not repeated here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameHeader {
    /// The cluster the sender belongs to (always the receiver's own, once accepted).
    pub cluster: ClusterId,
    /// The sending node.
    pub sender: NodeId,
    /// The sender's incarnation when it sealed the frame.
    pub incarnation: Incarnation,
    /// Per-sender sequence number, strictly increasing; datagrams and streams count separately.
    pub sequence: u64,
    /// What the payload is.
    pub kind: FrameKind,
}

/// A decoded frame: header plus the payload bytes for the layer above.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Sender, cluster, sequence and kind.
    pub header: FrameHeader,
    /// Opaque payload, encoded by the layer above (normally with postcard).
    pub payload: Vec<u8>,
}

/// The operating system could not supply random bytes.
///
/// Nothing was changed; retrying later may succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random number generator is unavailable")]
#[non_exhaustive]
pub struct RandomUnavailableError;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_codes_round_trip_and_zero_is_reserved() {
        for kind in FrameKind::ALL {
            assert_eq!(FrameKind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(FrameKind::from_code(0), None);
        assert_eq!(FrameKind::from_code(7), None);
        assert_eq!(FrameKind::from_code(255), None);
    }

    #[test]
    fn node_id_displays_as_fixed_width_hex() {
        let id = NodeId::from_u128(u128::MAX);
        assert_eq!(id.to_string(), "f".repeat(32));
        assert_eq!(NodeId::from_bytes(id.to_bytes()), id);
        assert_eq!(
            format!("{:?}", NodeId::from_u128(1)),
            format!("NodeId({:032x})", 1)
        );
    }

    #[test]
    fn random_node_ids_differ() {
        let a = NodeId::random();
        let b = NodeId::random();
        assert!(matches!((a, b), (Ok(a), Ok(b)) if a != b));
    }
}
