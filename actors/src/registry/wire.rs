//! What the registry sends: [`Delta`]s (one node's recent operations, small enough for one
//! gossip event) and [`State`]s (everything a node knows, for push-pull), and their codec.
//!
//! [`Delta::decode`] and [`State::decode`] are the only ways bytes from a peer become
//! registry data. They never panic and never allocate on the peer's say-so: the input length
//! is checked first, then every vector and string against its limit before anything is
//! reserved (see `bounded`), so an allocation is never larger than the input justifies.

use serde::{Deserialize, Serialize};

use crate::bounded;

/// The gossip user-event name under which deltas travel.
pub const DELTA_EVENT: &str = "phalanx.registry";
/// The longest name or group name, in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// The most operations in one [`Delta`].
pub const MAX_DELTA_OPS: usize = 64;
/// The largest encoded [`Delta`], in bytes: one gossip user event payload.
///
/// Deltas made by [`ClusterRegistry`](super::ClusterRegistry) always fit; one operation on a
/// name of [`MAX_NAME_LEN`] bytes takes about 320.
pub const MAX_DELTA_LEN: usize = 512;
/// The most origins (node lives) and the most dead-incarnation floors in one [`State`].
pub const MAX_STATE_ORIGINS: usize = 65_536;
/// The most names, and the most group memberships, of one origin in one [`State`].
pub const MAX_ORIGIN_RECORDS: usize = 1 << 20;
/// The largest encoded [`State`] [`State::decode`] accepts, in bytes.
pub const MAX_STATE_LEN: usize = 8 * 1024 * 1024;

/// A node in one life: its id and the incarnation it runs as.
///
/// The incarnation must change whenever the node restarts or rejoins after being declared
/// dead, and only then: the registry treats a higher incarnation as proof that every lower
/// one is gone and drops their entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Origin {
    /// The node's id.
    pub node: u128,
    /// The node's incarnation.
    pub incarnation: u64,
}

/// A cluster-wide actor address: the actor `actor` on node `node` in incarnation
/// `incarnation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ActorAddr {
    /// The hosting node's id.
    pub node: u128,
    /// The hosting node's incarnation.
    pub incarnation: u64,
    /// The actor's id on that node.
    pub actor: u64,
}

impl ActorAddr {
    /// The node life that hosts this actor.
    pub fn origin(&self) -> Origin {
        Origin {
            node: self.node,
            incarnation: self.incarnation,
        }
    }

    pub(crate) fn new(origin: Origin, actor: u64) -> Self {
        Self {
            node: origin.node,
            incarnation: origin.incarnation,
            actor,
        }
    }
}

/// Operations one node made on its own entries, to disseminate as a gossip event.
///
/// Opaque: encode it, carry it, decode it and hand it to
/// [`ClusterRegistry::merge_delta`](super::ClusterRegistry::merge_delta) on every node. Deltas
/// may arrive in any order, twice, or never (push-pull repairs what gossip loses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    pub(crate) origin: Origin,
    #[serde(deserialize_with = "bounded::vec::<_, _, MAX_DELTA_OPS>")]
    pub(crate) ops: Vec<Op>,
}

/// Everything one node knows about the registry, for a push-pull exchange.
///
/// Opaque like [`Delta`]; merge it with
/// [`ClusterRegistry::merge_state`](super::ClusterRegistry::merge_state).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Per node, the lowest incarnation not known to be dead.
    #[serde(deserialize_with = "bounded::vec::<_, _, MAX_STATE_ORIGINS>")]
    pub(crate) floors: Vec<(u128, u64)>,
    #[serde(deserialize_with = "bounded::vec::<_, _, MAX_STATE_ORIGINS>")]
    pub(crate) origins: Vec<OriginState>,
}

/// One operation of an origin on its own entries; `seq` numbers them 1, 2, 3, ... per origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Op {
    pub(crate) seq: u64,
    pub(crate) kind: OpKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum OpKind {
    Register {
        #[serde(deserialize_with = "bounded::string::<_, MAX_NAME_LEN>")]
        name: String,
        claim: Claim,
    },
    Unregister {
        #[serde(deserialize_with = "bounded::string::<_, MAX_NAME_LEN>")]
        name: String,
    },
    Join {
        #[serde(deserialize_with = "bounded::string::<_, MAX_NAME_LEN>")]
        group: String,
        actor: u64,
    },
    Leave {
        #[serde(deserialize_with = "bounded::string::<_, MAX_NAME_LEN>")]
        group: String,
        actor: u64,
    },
}

/// A registration of a name by an actor of the origin, stamped with the Lamport clock at the
/// moment it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct Claim {
    pub(crate) lamport: u64,
    pub(crate) actor: u64,
}

/// One origin's entries as a replica knows them: complete up to operation `base`, plus the
/// latest record (live or tombstone) of every key touched by a later operation it has seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OriginState {
    pub(crate) origin: Origin,
    pub(crate) base: u64,
    #[serde(deserialize_with = "bounded::vec::<_, _, MAX_ORIGIN_RECORDS>")]
    pub(crate) names: Vec<NameRecord>,
    #[serde(deserialize_with = "bounded::vec::<_, _, MAX_ORIGIN_RECORDS>")]
    pub(crate) groups: Vec<GroupRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NameRecord {
    #[serde(deserialize_with = "bounded::string::<_, MAX_NAME_LEN>")]
    pub(crate) name: String,
    pub(crate) seq: u64,
    /// `None` is a tombstone: the name was unregistered by operation `seq`.
    pub(crate) claim: Option<Claim>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GroupRecord {
    #[serde(deserialize_with = "bounded::string::<_, MAX_NAME_LEN>")]
    pub(crate) group: String,
    pub(crate) actor: u64,
    pub(crate) seq: u64,
    /// `false` is a tombstone: the actor left by operation `seq`.
    pub(crate) joined: bool,
}

impl Delta {
    /// The node life whose operations these are.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// How many operations the delta carries.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the delta carries no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Encodes the delta with postcard.
    ///
    /// # Errors
    ///
    /// [`EncodeError`] if postcard fails, which the registry's own types never cause.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        postcard::to_allocvec(self).map_err(EncodeError)
    }

    /// Decodes a delta received from a peer.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] if `bytes` is longer than [`MAX_DELTA_LEN`], is not exactly one
    /// well-formed delta, or exceeds a limit on names or operations.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_exact(bytes, MAX_DELTA_LEN)
    }

    /// The encoded length, or `usize::MAX` if it cannot be encoded (so it never fits).
    pub(crate) fn encoded_len(&self) -> usize {
        postcard::experimental::serialized_size(self).unwrap_or(usize::MAX)
    }
}

impl State {
    /// The node lives whose entries the state carries.
    pub fn origins(&self) -> impl Iterator<Item = Origin> + '_ {
        self.origins.iter().map(|origin| origin.origin)
    }

    /// Encodes the state with postcard.
    ///
    /// # Errors
    ///
    /// [`EncodeError`] if postcard fails, which the registry's own types never cause.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        postcard::to_allocvec(self).map_err(EncodeError)
    }

    /// Decodes a state received from a peer.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] if `bytes` is longer than [`MAX_STATE_LEN`], is not exactly one
    /// well-formed state, or exceeds a limit on names, records or origins.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_exact(bytes, MAX_STATE_LEN)
    }
}

fn decode_exact<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    max: usize,
) -> Result<T, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLong {
            len: bytes.len(),
            max,
        });
    }
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(DecodeError::Malformed)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes { len: rest.len() });
    }
    Ok(value)
}

/// Why bytes from a peer are not a valid delta or state. They are dropped; the registry does
/// not change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is longer than the limit for its kind.
    #[error("registry message of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// The input length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The input is not well-formed, or exceeds a limit on names or element counts.
    #[error("malformed registry message")]
    Malformed(#[source] postcard::Error),
    /// A complete message was followed by more bytes.
    #[error("{len} bytes after the end of the registry message")]
    TrailingBytes {
        /// How many bytes were left over.
        len: usize,
    },
}

/// A delta or state could not be encoded. Nothing changes.
#[derive(Debug, thiserror::Error)]
#[error("could not encode registry message")]
pub struct EncodeError(#[source] postcard::Error);
