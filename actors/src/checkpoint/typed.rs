//! A thin typed layer over the byte log and snapshot store for chain replicas: log index =
//! the entry's sequence number, snapshot body = the encoded [`Snapshot`].

use std::time::Instant;

use crate::chain::{Entry, Snapshot, StateMachine};

use super::log::{Commit, Log, LogError};
use super::snapshot::{SnapshotError, SnapshotMeta, SnapshotStore};

/// A typed log or snapshot operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainStoreError {
    /// The log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The snapshot store failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// An entry's sequence number is not the log's next index; nothing of the batch from this
    /// entry on was appended.
    #[error("entry {seq} does not continue the log (next index {next})")]
    OutOfOrder {
        /// The entry's sequence number.
        seq: u64,
        /// The log's next index.
        next: u64,
    },
    /// A record or snapshot body verified but does not decode as this state machine's type
    /// (written by another version or another machine).
    #[error("stored chain data does not decode: {0}")]
    Decode(#[from] postcard::Error),
}

/// Appends a batch of entries (each must carry the log's next index as its `seq`) and
/// commits it; returns what the commit did.
///
/// # Errors
///
/// [`ChainStoreError::OutOfOrder`], or the log's errors.
pub fn append_entries<S: StateMachine>(
    log: &mut Log,
    entries: &[Entry<S>],
    now: Instant,
) -> Result<Commit, ChainStoreError> {
    let mut buffer = Vec::new();
    for entry in entries {
        if entry.seq != log.next_index() {
            return Err(ChainStoreError::OutOfOrder {
                seq: entry.seq,
                next: log.next_index(),
            });
        }
        buffer.clear();
        buffer = postcard::to_extend(entry, std::mem::take(&mut buffer))?;
        log.append(&buffer)?;
    }
    Ok(log.commit(now)?)
}

/// Reads entries from `from` on (about `max_bytes` of them), to replay after a snapshot.
///
/// # Errors
///
/// The log's errors, or [`ChainStoreError::Decode`].
pub fn read_entries<S: StateMachine>(
    log: &mut Log,
    from: u64,
    max_bytes: usize,
) -> Result<Vec<Entry<S>>, ChainStoreError> {
    log.read(from, max_bytes)?
        .into_iter()
        .map(|(_, bytes)| postcard::from_bytes(&bytes).map_err(ChainStoreError::from))
        .collect()
}

/// Writes a chain snapshot (at its `committed` index) crash-safely.
///
/// # Errors
///
/// The store's errors.
pub fn write_snapshot<S: StateMachine>(
    store: &SnapshotStore,
    epoch: u64,
    snapshot: &Snapshot<S>,
) -> Result<SnapshotMeta, ChainStoreError> {
    let body = postcard::to_allocvec(snapshot)?;
    Ok(store.write(snapshot.committed, epoch, &body)?)
}

/// Loads and verifies the newest chain snapshot, if any.
///
/// # Errors
///
/// The store's errors (a damaged file is named), or [`ChainStoreError::Decode`].
pub fn load_snapshot<S: StateMachine>(
    store: &SnapshotStore,
) -> Result<Option<(SnapshotMeta, Snapshot<S>)>, ChainStoreError> {
    match store.load_latest()? {
        Some((meta, body)) => Ok(Some((meta, postcard::from_bytes(&body)?))),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::chain::{ClientId, KvCommand, KvMap};
    use crate::checkpoint::{FsyncPolicy, LogConfig, MemStorage};

    #[test]
    fn entries_and_snapshots_round_trip() {
        let storage = Arc::new(MemStorage::new());
        let (mut log, _) = Log::open(
            storage.clone(),
            Path::new("/c/log"),
            LogConfig::new(FsyncPolicy::Always),
        )
        .unwrap();
        let entry = |seq| Entry::<KvMap> {
            seq,
            client: ClientId(1),
            request: seq,
            acked_below: 0,
            command: KvCommand::Put {
                key: format!("k{seq}"),
                value: vec![1; 3],
            },
        };
        let batch: Vec<_> = (1..=3).map(entry).collect();
        append_entries(&mut log, &batch, Instant::now()).unwrap();
        assert!(matches!(
            append_entries(&mut log, &[entry(9)], Instant::now()),
            Err(ChainStoreError::OutOfOrder { seq: 9, next: 4 })
        ));
        assert_eq!(
            read_entries::<KvMap>(&mut log, 2, 1 << 20).unwrap(),
            batch[1..]
        );
        let store = SnapshotStore::open(storage, Path::new("/c/snapshots"), 2).unwrap();
        let snapshot = Snapshot::<KvMap> {
            committed: 3,
            state: vec![4, 5],
            sessions: BTreeMap::new(),
        };
        write_snapshot(&store, 7, &snapshot).unwrap();
        let (meta, loaded) = load_snapshot::<KvMap>(&store).unwrap().unwrap();
        assert_eq!((meta.header.index, meta.header.epoch), (3, 7));
        assert_eq!(loaded, snapshot);
    }
}
