//! What a durable replica records ([`JournalOp`]) and recovers ([`Recovered`]).

use crate::chain::machine::StateMachine;
use crate::chain::message::{Entry, Snapshot};

/// A change to a replica's durable state, in the order it happened.
///
/// With [`ReplicaSettings::journal`](super::ReplicaSettings::journal) set, a driver that makes these durable (in order)
/// before it sends anything the replica asked for afterwards can restart the replica with
/// [`Replica::recover`](super::Replica::recover) from what it stored, keeping its incarnation: everything the replica
/// ever acknowledged, forwarded or answered is then in its storage.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum JournalOp<S: StateMachine> {
    /// Entries appended to the log, with consecutive sequence numbers continuing it.
    Append(Vec<Entry<S>>),
    /// The state was replaced: by a snapshot received from the predecessor, or emptied
    /// (`None`); the log continues after it. Storage must stop claiming its last synced
    /// epoch until the next [`JournalOp::Synced`] (a crash in between leaves a state the
    /// replica must not vouch for).
    Reset(Option<Snapshot<S>>),
    /// The replica caught up in `epoch` (stored as its synced epoch).
    Synced(u64),
    /// The replica adopted the configuration of `epoch`; after a restart it must not adopt
    /// an older one.
    Adopted(u64),
}

/// What a restarted replica recovered from its storage, for [`Replica::recover`](super::Replica::recover).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Recovered<S: StateMachine> {
    /// The last epoch the stored state was caught up in (0: vouch for nothing).
    pub synced_epoch: u64,
    /// The newest snapshot, if any.
    pub snapshot: Option<Snapshot<S>>,
    /// The log after the snapshot, in order.
    pub entries: Vec<Entry<S>>,
    /// Nothing was ever stored: a brand-new replica. A replica whose storage exists but
    /// vouches for nothing (`synced_epoch` 0) is not fresh: it may have held data, so it never
    /// starts a chain empty.
    pub fresh: bool,
    /// The newest configuration epoch adopted before the restart (0: none).
    pub adopted_epoch: u64,
}

impl<S: StateMachine> Recovered<S> {
    /// What a replica that stored nothing recovers.
    pub fn empty() -> Self {
        Self {
            synced_epoch: 0,
            snapshot: None,
            entries: Vec::new(),
            fresh: true,
            adopted_epoch: 0,
        }
    }
}
