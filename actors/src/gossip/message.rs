//! The gossip wire messages and their codec (serde + postcard).
//!
//! Every datagram is one [`Message`]: the sender's node id, a [`Body`], piggybacked
//! membership [`Update`]s and [`UserEvent`]s, and small actor messages ([`DirectMessage`])
//! addressed to the receiver. Push-pull state syncs are messages too; the
//! driver carries them over a stream because they can exceed one datagram.
//!
//! [`Message::decode`] is the only way bytes from a peer become a message. It never panics
//! and never allocates on the peer's say-so: the input length is checked first, and every
//! vector and string is checked against its limit before anything is reserved.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::NodeId;
use crate::bounded;

/// The most membership updates piggybacked on one datagram.
pub const MAX_UPDATES: usize = 256;
/// The most user events piggybacked on one datagram.
pub const MAX_EVENTS: usize = 64;
/// The most members in one push-pull state sync.
pub const MAX_PUSH_PULL_MEMBERS: usize = 65_536;
/// The longest user event name, in bytes.
pub const MAX_EVENT_NAME: usize = 64;
/// The largest user event payload, in bytes.
pub const MAX_EVENT_PAYLOAD: usize = 512;
/// The most actor messages carried by one datagram.
pub const MAX_DIRECT_MESSAGES: usize = 32;
/// The largest payload of one actor message carried by a datagram, in bytes (the datagram
/// budget usually allows less: see [`Membership::max_message_payload`](super::Membership)).
pub const MAX_DIRECT_PAYLOAD: usize = 1400;
/// The largest encoded message [`Message::decode`] accepts (push-pull included), in bytes.
pub const MAX_MESSAGE_LEN: usize = 8 * 1024 * 1024;

/// One gossip message, as sent in a datagram (or, for push-pull, on a stream).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "A: Deserialize<'de>"))]
pub struct Message<A> {
    /// The node that sent it.
    pub sender: NodeId,
    /// What the message asks or answers.
    pub body: Body<A>,
    /// Membership changes piggybacked for dissemination.
    #[serde(deserialize_with = "bounded::vec::<_, _, MAX_UPDATES>")]
    pub updates: Vec<Update<A>>,
    /// User events piggybacked for dissemination.
    #[serde(deserialize_with = "bounded::vec::<_, _, MAX_EVENTS>")]
    pub events: Vec<UserEvent>,
    /// Small actor messages for the receiver, riding this datagram.
    #[serde(deserialize_with = "bounded::vec::<_, _, MAX_DIRECT_MESSAGES>")]
    pub messages: Vec<DirectMessage>,
}

/// What a [`Message`] asks or answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "A: Deserialize<'de>"))]
#[non_exhaustive]
pub enum Body<A> {
    /// A direct probe: the receiver answers [`Body::Ack`] with the same `seq` if it is
    /// `target`.
    Ping {
        /// Chosen by the prober to match the answer.
        seq: u32,
        /// The node the prober thinks it is talking to.
        target: NodeId,
    },
    /// Asks the receiver to probe `target` on the sender's behalf and forward the ack, or
    /// answer [`Body::Nack`] if none comes in time.
    PingReq {
        /// The requester's probe sequence number, echoed in the forwarded ack or nack.
        seq: u32,
        /// The node to probe.
        target: NodeId,
        /// Where to probe it.
        target_addr: A,
    },
    /// The answer to a ping, direct or forwarded.
    Ack {
        /// The sequence number of the ping answered.
        seq: u32,
    },
    /// A helper's report that the indirect probe `seq` got no ack in time (Lifeguard): it
    /// tells the requester that its own network works.
    Nack {
        /// The sequence number of the indirect probe.
        seq: u32,
    },
    /// A full membership state sync, request or response.
    PushPull {
        /// Whether this asks for the receiver's state in return.
        kind: PushPullKind,
        /// Everything the sender knows, itself included.
        #[serde(deserialize_with = "bounded::vec::<_, _, MAX_PUSH_PULL_MEMBERS>")]
        members: Vec<Update<A>>,
    },
    /// Nothing but piggybacked updates and events (used to announce a leave).
    Gossip,
}

/// Whether a push-pull asks for an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PushPullKind {
    /// The receiver merges this state and answers with its own.
    Request,
    /// The answer to a request; the receiver merges it and does not answer.
    Response,
}

/// The state of a member as one node asserts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Failed a probe; declared dead unless it refutes in time.
    Suspect,
    /// Declared failed.
    Dead,
    /// Left the cluster on purpose.
    Left,
}

/// A membership assertion: `node`, at `addr`, was in `state` at `incarnation`, according to
/// `origin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update<A> {
    /// The member the assertion is about.
    pub node: NodeId,
    /// Where the member listens.
    pub addr: A,
    /// The member's incarnation the assertion is about.
    pub incarnation: u64,
    /// The asserted state.
    pub state: MemberState,
    /// The node that made the assertion (for a suspicion: the suspecting node, so that
    /// independent confirmations can be counted).
    pub origin: NodeId,
}

/// A small user-defined event, disseminated to every member and delivered once per member.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserEvent {
    /// The node that raised it.
    pub origin: NodeId,
    /// The origin's sequence number; `(origin, seq)` identifies the event.
    pub seq: u64,
    /// What kind of event this is, at most [`MAX_EVENT_NAME`] bytes.
    #[serde(deserialize_with = "bounded::string::<_, MAX_EVENT_NAME>")]
    pub name: String,
    /// Opaque data, at most [`MAX_EVENT_PAYLOAD`] bytes.
    #[serde(deserialize_with = "bounded::bytes::<_, MAX_EVENT_PAYLOAD>")]
    pub payload: Vec<u8>,
}

/// A small actor message carried by a gossip datagram to one member: best effort (lost with
/// the datagram, never retransmitted, possibly reordered against other messages), delivered
/// at most once (the receiver drops duplicates and replays by `seq`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectMessage {
    /// The member it is for; a receiver with another id drops it.
    pub to: NodeId,
    /// The sender's sequence number for messages to anyone, rising: the receiver keeps a
    /// window of recent numbers per sender to drop duplicates.
    pub seq: u64,
    /// Opaque bytes (the remoting layer's encoded actor message), at most
    /// [`MAX_DIRECT_PAYLOAD`] bytes.
    #[serde(deserialize_with = "bounded::bytes::<_, MAX_DIRECT_PAYLOAD>")]
    pub payload: Vec<u8>,
}

impl<A> Message<A>
where
    A: Serialize + DeserializeOwned,
{
    /// Encodes the message with postcard.
    ///
    /// # Errors
    ///
    /// [`EncodeError`] if serialization fails, which only a broken `Serialize` impl of the
    /// address type can cause.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        postcard::to_allocvec(self).map_err(EncodeError)
    }

    /// Decodes a message received from a peer.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] if `bytes` is longer than [`MAX_MESSAGE_LEN`], is not exactly one
    /// well-formed message, or exceeds one of the limits on vectors and strings.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_MESSAGE_LEN {
            return Err(DecodeError::TooLong { len: bytes.len() });
        }
        let (message, rest) = postcard::take_from_bytes(bytes).map_err(DecodeError::Malformed)?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes { len: rest.len() });
        }
        Ok(message)
    }
}

/// Why bytes from a peer are not a valid gossip message. The bytes are dropped; no state
/// changes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is longer than [`MAX_MESSAGE_LEN`].
    #[error("gossip message of {len} bytes exceeds the limit of {MAX_MESSAGE_LEN}")]
    TooLong {
        /// The input length.
        len: usize,
    },
    /// The input is not a well-formed message within the limits.
    #[error("malformed gossip message")]
    Malformed(#[source] postcard::Error),
    /// A message was followed by more bytes.
    #[error("{len} bytes after the end of the gossip message")]
    TrailingBytes {
        /// How many bytes were left over.
        len: usize,
    },
}

/// A message could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("could not encode gossip message")]
pub struct EncodeError(#[source] postcard::Error);

/// The encoded size of a value, or `usize::MAX` if it cannot be encoded (so that it never
/// fits a budget).
pub(crate) fn encoded_len<T: Serialize>(value: &T) -> usize {
    postcard::experimental::serialized_size(value).unwrap_or(usize::MAX)
}
