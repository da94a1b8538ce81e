//! Control messages of the remoting layer: lookups, spawns, watches, stop and kill.
//!
//! They are rare next to actor messages, so they are plain postcard enums inside a
//! `Control` record.

use phalanx_runtime::{ExitReason, Failure, FailureKind};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Control {
    /// Resolve a registered name to an export id, checking the message type tag.
    Lookup {
        request: u64,
        name: String,
        tag: String,
    },
    /// Spawn an actor from a registered factory with postcard-encoded arguments.
    Spawn {
        request: u64,
        factory: String,
        tag: String,
        args: Vec<u8>,
    },
    /// The answer to a `Lookup` or `Spawn`: an export id, or why not.
    Resolved {
        request: u64,
        result: Result<u64, String>,
    },
    /// Report the end of export `target` as `Down { watch }`.
    Watch {
        target: u64,
        watch: u64,
    },
    /// Export `target`, watched as `watch`, ended.
    Down {
        watch: u64,
        reason: WireReason,
    },
    Stop {
        target: u64,
    },
    Kill {
        target: u64,
    },
    /// An actor on the sending node linked itself to export `target`: link the export to a
    /// stand-in of it, known as `link`.
    Link {
        target: u64,
        link: u64,
    },
    /// The link `link` was removed: by an unlink (`None`), or because the linking actor ended
    /// (its reason; an abnormal one reaches the export as a linked exit).
    Unlink {
        link: u64,
        reason: Option<WireReason>,
    },
}

impl Control {
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Serializing this enum into a Vec cannot fail.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes untrusted bytes; never panics, allocates at most what the bytes hold.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Control> {
        postcard::from_bytes(bytes).ok()
    }
}

/// An [`ExitReason`] on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WireReason {
    Normal,
    Killed,
    Panicked(String),
    Failed(String),
    NoProc,
    NodeDown,
}

impl From<&ExitReason> for WireReason {
    fn from(reason: &ExitReason) -> Self {
        match reason {
            ExitReason::Normal => WireReason::Normal,
            ExitReason::Killed => WireReason::Killed,
            ExitReason::Failed(failure) if failure.kind() == FailureKind::Panic => {
                WireReason::Panicked(failure.message().to_owned())
            }
            ExitReason::Failed(failure) => WireReason::Failed(failure.message().to_owned()),
            ExitReason::NoProc => WireReason::NoProc,
            _ => WireReason::NodeDown,
        }
    }
}

impl From<WireReason> for ExitReason {
    fn from(reason: WireReason) -> Self {
        match reason {
            WireReason::Normal => ExitReason::Normal,
            WireReason::Killed => ExitReason::Killed,
            WireReason::Panicked(message) => ExitReason::Failed(Failure::panic(message)),
            WireReason::Failed(message) => ExitReason::Failed(Failure::error(message)),
            WireReason::NoProc => ExitReason::NoProc,
            WireReason::NodeDown => ExitReason::NodeDown,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn messages_and_reasons_round_trip() {
        let messages = [
            Control::Lookup {
                request: 1,
                name: "counter".into(),
                tag: "app.Count".into(),
            },
            Control::Resolved {
                request: 1,
                result: Err("no such name".into()),
            },
            Control::Down {
                watch: 3,
                reason: WireReason::Panicked("boom".into()),
            },
            Control::Link { target: 4, link: 5 },
            Control::Unlink {
                link: 5,
                reason: Some(WireReason::NodeDown),
            },
        ];
        for message in messages {
            assert_eq!(Control::decode(&message.encode()), Some(message));
        }
        let reason = ExitReason::Failed(Failure::panic("boom"));
        assert_eq!(ExitReason::from(WireReason::from(&reason)), reason);
    }

    #[test]
    fn fuzz_control_decode() {
        bolero::check!()
            .with_iterations(2_000)
            .for_each(|bytes: &[u8]| {
                let _ = Control::decode(bytes);
            });
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = Control::decode(&bytes);
        }
    }
}
