//! Errors of the codec: one enum for opening frames, one for sealing them.

use crate::frame::{ClusterId, Incarnation, NodeId, RandomUnavailableError};

/// Why bytes from the network were not accepted as a frame.
///
/// Every variant except [`DecodeError::Poisoned`] is also counted in
/// [`DropCounters`](crate::DropCounters) and logged as a `tracing` debug event. None of them
/// changes the codec's replay state or keyring: the bytes are simply dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes are not a phalanx frame: wrong magic, unknown security mode, or a header that
    /// does not parse.
    #[error("garbled frame: {what}")]
    Garbled {
        /// Which part was wrong.
        what: &'static str,
    },
    /// The bytes end before the frame does.
    #[error("truncated frame: {len} bytes, at least {needed} needed")]
    Truncated {
        /// How many bytes there were.
        len: usize,
        /// How many bytes were needed at least.
        needed: usize,
    },
    /// The frame is larger than the configured maximum; for a stream this is detected from the
    /// length prefix alone, before any of the frame is buffered.
    #[error("oversized frame: {len} bytes, at most {max} allowed")]
    Oversized {
        /// The size the datagram had or the length prefix claimed.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// No installed key authenticates the frame, or its security mode is not the one this codec
    /// is configured for (for example a plaintext frame sent to an encrypting node).
    #[error("frame failed authentication")]
    Unauthenticated,
    /// The frame belongs to another cluster.
    #[error("frame for cluster {found}, this is cluster {expected}")]
    WrongCluster {
        /// This codec's cluster.
        expected: ClusterId,
        /// The cluster named in the frame.
        found: ClusterId,
    },
    /// The frame was already accepted once, is too old for the replay window, comes from an
    /// older incarnation of its sender, or (on a stream) does not advance the sequence.
    #[error("replayed frame {sequence} from {sender} (incarnation {})", incarnation.0)]
    Replayed {
        /// The claimed sender (authenticated unless the codec runs in plaintext).
        sender: NodeId,
        /// The claimed incarnation.
        incarnation: Incarnation,
        /// The replayed sequence number.
        sequence: u64,
    },
    /// The frame uses a protocol version this node does not speak.
    #[error("unknown protocol version {0}")]
    UnknownVersion(u8),
    /// The frame's kind code is not one this node knows.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// An earlier error ended this stream; its framing cannot be trusted any more. Close the
    /// connection. Not counted again.
    #[error("stream already failed; close the connection")]
    Poisoned,
}

/// Why a frame could not be sealed. Nothing was sent and the codec is unchanged, except that a
/// sequence number may have been used up (sequence numbers may have gaps).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The sealed frame would exceed the configured maximum: send it on a stream, or split it.
    #[error("sealed frame would be {len} bytes, at most {max} allowed")]
    TooLarge {
        /// The size the sealed frame would have had.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// No random nonce could be drawn.
    #[error(transparent)]
    RandomUnavailable(#[from] RandomUnavailableError),
    /// The cipher or the header serializer refused; neither happens for frames within the
    /// size limits, so this signals a bug.
    #[error("encryption failed")]
    Encrypt,
}
