//! Counters of dropped input, one per reason.

use crate::error::DecodeError;

/// How many inputs the codec dropped, by reason.
///
/// Every [`DecodeError`] the codec returns (except [`DecodeError::Poisoned`], which only repeats
/// an earlier one) adds one to exactly one counter. Counters only grow; they wrap at `u64::MAX`
/// which is never reached in practice.
///
/// # Examples
///
/// ```
/// use phalanx_transports::{ClusterId, Codec, CodecConfig, Incarnation, NodeId, Security};
///
/// let config = CodecConfig::new(ClusterId(1), NodeId::from_u128(1), Incarnation(0));
/// let mut codec = Codec::new(config, Security::Plaintext);
/// assert!(codec.open_datagram(b"not a frame").is_err());
/// assert_eq!(codec.counters().truncated + codec.counters().garbled, 1);
/// assert_eq!(codec.counters().total(), 1);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DropCounters {
    /// Not a phalanx frame, or a header that does not parse.
    pub garbled: u64,
    /// Shorter than its headers say it must be.
    pub truncated: u64,
    /// Longer than the configured maximum.
    pub oversized: u64,
    /// Failed authentication with every installed key, or wrong security mode.
    pub unauthenticated: u64,
    /// Sent to another cluster.
    pub wrong_cluster: u64,
    /// Already seen, too old, or from an older incarnation.
    pub replayed: u64,
    /// A protocol version this node does not speak.
    pub unknown_version: u64,
    /// A frame kind this node does not know.
    pub unknown_kind: u64,
}

impl DropCounters {
    /// The sum of all counters.
    pub fn total(&self) -> u64 {
        [
            self.garbled,
            self.truncated,
            self.oversized,
            self.unauthenticated,
            self.wrong_cluster,
            self.replayed,
            self.unknown_version,
            self.unknown_kind,
        ]
        .iter()
        .fold(0u64, |sum, n| sum.wrapping_add(*n))
    }

    /// Counts one drop and emits its `tracing` event; `what` says where the input came from.
    /// Adds every counter of `other` to this one's.
    pub(crate) fn merge(&mut self, other: &DropCounters) {
        let pairs = [
            (&mut self.garbled, other.garbled),
            (&mut self.truncated, other.truncated),
            (&mut self.oversized, other.oversized),
            (&mut self.unauthenticated, other.unauthenticated),
            (&mut self.wrong_cluster, other.wrong_cluster),
            (&mut self.replayed, other.replayed),
            (&mut self.unknown_version, other.unknown_version),
            (&mut self.unknown_kind, other.unknown_kind),
        ];
        for (mine, theirs) in pairs {
            *mine = mine.wrapping_add(theirs);
        }
    }

    pub(crate) fn record(&mut self, error: &DecodeError, what: &'static str, len: usize) {
        let (counter, reason) = match error {
            DecodeError::Garbled { .. } => (&mut self.garbled, "garbled"),
            DecodeError::Truncated { .. } => (&mut self.truncated, "truncated"),
            DecodeError::Oversized { .. } => (&mut self.oversized, "oversized"),
            DecodeError::Unauthenticated => (&mut self.unauthenticated, "unauthenticated"),
            DecodeError::WrongCluster { .. } => (&mut self.wrong_cluster, "wrong_cluster"),
            DecodeError::Replayed { .. } => (&mut self.replayed, "replayed"),
            DecodeError::UnknownVersion(_) => (&mut self.unknown_version, "unknown_version"),
            DecodeError::UnknownKind(_) => (&mut self.unknown_kind, "unknown_kind"),
            DecodeError::Poisoned => return,
        };
        *counter = counter.wrapping_add(1);
        tracing::debug!(reason, input = what, len, %error, "dropped input");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_has_its_own_counter() {
        let errors = [
            DecodeError::Garbled { what: "magic" },
            DecodeError::Truncated { len: 1, needed: 2 },
            DecodeError::Oversized { len: 2, max: 1 },
            DecodeError::Unauthenticated,
            DecodeError::WrongCluster {
                expected: crate::ClusterId(1),
                found: crate::ClusterId(2),
            },
            DecodeError::Replayed {
                sender: crate::NodeId::from_u128(1),
                incarnation: crate::Incarnation(0),
                sequence: 3,
            },
            DecodeError::UnknownVersion(9),
            DecodeError::UnknownKind(9),
        ];
        let mut counters = DropCounters::default();
        for error in &errors {
            counters.record(error, "test", 0);
        }
        counters.record(&DecodeError::Poisoned, "test", 0);
        let expected = DropCounters {
            garbled: 1,
            truncated: 1,
            oversized: 1,
            unauthenticated: 1,
            wrong_cluster: 1,
            replayed: 1,
            unknown_version: 1,
            unknown_kind: 1,
        };
        assert_eq!(counters, expected);
        assert_eq!(counters.total(), 8);
    }
}
