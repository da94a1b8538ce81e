//! What replicas, clients and the configuration group say to each other, and its encoding.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::config::{ChainConfig, ClientId, ReplicaId};
use super::machine::StateMachine;

/// The largest chain message [`decode`] accepts, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// One write in a chain's log, numbered by the head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Entry<S: StateMachine> {
    /// Position in the chain's total order (1, 2, ...); assigned by the head.
    pub seq: u64,
    /// The client that sent the write.
    pub client: ClientId,
    /// The client's request id; `(client, request)` is applied at most once.
    pub request: u64,
    /// Every request of this client below this id has been answered, so its result can be
    /// forgotten.
    pub acked_below: u64,
    /// The write.
    pub command: S::Command,
}

/// The results of one client's recent writes, kept to answer retries without applying twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Session<S: StateMachine> {
    /// Requests below this id were answered and are forgotten; a retry of one is ignored.
    pub acked_below: u64,
    /// Results of applied requests at or above `acked_below`.
    pub results: BTreeMap<u64, S::Output>,
}

/// A replica's committed state, sent to a successor that is too far behind to catch up from
/// the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Snapshot<S: StateMachine> {
    /// The last sequence number applied to `state`.
    pub committed: u64,
    /// [`StateMachine::snapshot`] of the committed state.
    #[serde(with = "byte_buf")]
    pub state: Vec<u8>,
    /// The deduplication table.
    pub sessions: BTreeMap<ClientId, Session<S>>,
}

impl<S: StateMachine> Snapshot<S> {
    /// The snapshot of `machine` after applying everything up to `committed`, with its
    /// deduplication table.
    pub fn of(committed: u64, machine: &S, sessions: BTreeMap<ClientId, Session<S>>) -> Self {
        Self {
            committed,
            state: machine.snapshot(),
            sessions,
        }
    }
}

/// How far a successor has received a snapshot ([`Message::SyncRequest`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotCursor {
    /// The snapshot's index.
    pub index: u64,
    /// Bytes received so far.
    pub offset: u64,
}

/// A message between chain replicas, or between clients and replicas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
#[non_exhaustive]
pub enum Message<S: StateMachine> {
    /// Client to head: apply `command` once.
    Write {
        /// The client.
        client: ClientId,
        /// Its request id (a retry reuses it).
        request: u64,
        /// Every request of this client below this id was answered.
        acked_below: u64,
        /// The write.
        command: S::Command,
    },
    /// Client to any replica: answer `query`.
    Read {
        /// The client.
        client: ClientId,
        /// Its request id.
        request: u64,
        /// The read.
        query: S::Query,
    },
    /// Tail (or head, for a retry of a committed write) to client.
    WriteReply {
        /// The request answered.
        request: u64,
        /// What applying it returned.
        output: S::Output,
    },
    /// Replica to client.
    ReadReply {
        /// The request answered.
        request: u64,
        /// The result.
        reply: S::Reply,
    },
    /// Replica to client: this replica cannot serve the request now (not a member, not the
    /// head, not caught up, or without a read lease); try the configuration `epoch` names.
    NotServing {
        /// The request refused.
        request: u64,
        /// The replica's configuration epoch.
        epoch: u64,
    },
    /// Successor to predecessor, until it has caught up in a configuration: "I hold entries
    /// up to `have`" (and, while receiving a snapshot, how much of it).
    SyncRequest {
        /// The configuration epoch.
        epoch: u64,
        /// The successor's highest received sequence number.
        have: u64,
        /// The snapshot being received, if any: resume it.
        snapshot: Option<SnapshotCursor>,
    },
    /// Predecessor to successor: entries after the successor's `have`, at most about
    /// [`ReplicaSettings::sync_chunk`](super::ReplicaSettings::sync_chunk) bytes of them.
    SyncReply {
        /// The configuration epoch.
        epoch: u64,
        /// Entries after the successor's `have`, in order.
        entries: Vec<Entry<S>>,
        /// Whether these reach the predecessor's newest entry (the successor has then caught
        /// up); if not, the successor asks for more.
        complete: bool,
        /// More replies to the same request follow (the successor waits for the last one of
        /// the window before it asks again).
        more: bool,
    },
    /// Predecessor to successor, when its log no longer holds what the successor lacks: a
    /// chunk of its committed state (an encoded [`Snapshot`]), a window of chunks per request,
    /// so that a dropped connection costs only the window in flight.
    SnapshotChunk {
        /// The configuration epoch.
        epoch: u64,
        /// The last sequence number the snapshot includes.
        index: u64,
        /// The encoded snapshot's whole length.
        total: u64,
        /// Where these bytes start.
        offset: u64,
        /// The bytes.
        #[serde(with = "byte_buf")]
        bytes: Vec<u8>,
        /// More chunks answering the same request follow.
        more: bool,
    },
    /// Predecessor to successor: writes flowing down the chain (a batch, in order).
    Forward {
        /// The configuration epoch.
        epoch: u64,
        /// Consecutive entries.
        entries: Vec<Entry<S>>,
    },
    /// Successor to predecessor: cumulative progress.
    Ack {
        /// The configuration epoch.
        epoch: u64,
        /// Highest sequence number received in order.
        received: u64,
        /// Highest sequence number known committed (applied at the tail).
        committed: u64,
    },
    /// Replica to tail: a read of a dirty object, to be answered by the tail to `client`.
    TailRead {
        /// The configuration epoch.
        epoch: u64,
        /// The client to answer.
        client: ClientId,
        /// The client's request id.
        request: u64,
        /// The read.
        query: S::Query,
    },
}

/// A message between replicas (or clients) and the configuration group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ControlMessage {
    /// Replica to every configuration node: "may I serve epoch `epoch`?" Also a heartbeat
    /// that the group's failure detector watches.
    LeaseRequest {
        /// The replica asking.
        replica: ReplicaId,
        /// Its incarnation.
        incarnation: u64,
        /// The epoch it serves.
        epoch: u64,
        /// Its round number, echoed in the reply.
        round: u64,
        /// The last epoch in which it caught up with its predecessor (0: never).
        synced_epoch: u64,
    },
    /// Configuration node to replica.
    LeaseReply {
        /// The round answered.
        round: u64,
        /// Whether the lease for the requested epoch is granted by this node.
        granted: bool,
        /// This node's latest committed configuration.
        config: ChainConfig,
    },
    /// Replica to configuration nodes: `suspect` (its neighbour) made no progress.
    Suspect {
        /// The epoch in which it was suspected.
        epoch: u64,
        /// The suspected replica.
        suspect: ReplicaId,
    },
    /// Anyone to a configuration node: send me the latest committed configuration.
    ConfigQuery,
    /// Configuration node to replica or client: the latest committed configuration.
    ConfigUpdate {
        /// The configuration.
        config: ChainConfig,
    },
}

/// A chain message could not be decoded; nothing was changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessageDecodeError {
    /// Longer than [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes exceeds the limit")]
    TooLong(usize),
    /// Not a valid encoding.
    #[error("message does not decode")]
    Malformed(#[from] postcard::Error),
}

/// Encodes a chain or control message (postcard).
///
/// # Errors
///
/// The serialiser's error (only for values that cannot be encoded, which the message types
/// here never contain).
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_allocvec(message)
}

/// Decodes bytes from a peer. Never panics; refuses inputs over [`MAX_MESSAGE_BYTES`].
///
/// # Errors
///
/// [`MessageDecodeError`] for oversized or malformed input.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, MessageDecodeError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(MessageDecodeError::TooLong(bytes.len()));
    }
    Ok(postcard::from_bytes(bytes)?)
}

/// The replica a chain message came from is needed by handlers; this names the sender of a
/// message as the driver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Peer {
    /// A chain replica.
    Replica(ReplicaId),
    /// A client.
    Client(ClientId),
    /// A configuration-group node (its raft id).
    Config(u64),
}

/// Serde for large byte vectors as one byte string: postcard writes the same bytes as for a
/// sequence of `u8`, but reads them with one copy instead of one visit per byte.
pub(crate) mod byte_buf {
    use std::fmt;

    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        deserializer.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("bytes")
        }

        fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
            Ok(bytes.to_vec())
        }

        fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(bytes)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            // Never trust a claimed length: grow as bytes actually arrive.
            let mut out = Vec::new();
            while let Some(byte) = seq.next_element()? {
                out.push(byte);
            }
            Ok(out)
        }
    }
}
