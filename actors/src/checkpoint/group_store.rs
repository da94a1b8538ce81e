//! The configuration group's raft state on disk: a [`GroupJournal`] over a [`Log`].
//!
//! Each record is one postcard-encoded [`GroupRecord`]: a batch of raft entries (each in
//! raft-rs's protobuf encoding) or a hard state. Opening replays the records in order,
//! applying raft's truncation rule (an entry replaces the stored one of its index and
//! everything after it). The group's log is tiny (one entry per reconfiguration, one hard
//! state per election or commit), so it is never compacted.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use protobuf::Message as _;
use raft::prelude::{Entry as RaftEntry, HardState};
use serde::{Deserialize, Serialize};

use crate::chain::{GroupJournal, GroupRecovered};

use super::log::{FsyncPolicy, Log, LogConfig, LogError, Recovery};
use super::storage::Storage;

/// Bytes read per batch while opening.
const READ_BATCH: usize = 1024 * 1024;

/// One record of the group's journal.
#[derive(Debug, Serialize, Deserialize)]
enum GroupRecord {
    /// Raft entries, protobuf-encoded, in index order.
    Entries(Vec<Vec<u8>>),
    /// A hard state.
    HardState {
        /// The term.
        term: u64,
        /// The vote.
        vote: u64,
        /// The commit index.
        commit: u64,
    },
}

/// Opening the group's journal failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GroupStoreError {
    /// The log failed (the error names the file).
    #[error(transparent)]
    Log(#[from] LogError),
    /// A record passed its checksum but does not decode (written by another version).
    #[error("configuration-group journal in {}: record {index} does not decode", dir.display())]
    Decode {
        /// The journal's directory.
        dir: std::path::PathBuf,
        /// The record's index.
        index: u64,
    },
}

/// The configuration group's raft state in a [`Log`] synced on every
/// [`sync`](GroupJournal::sync).
#[derive(Debug)]
pub struct GroupStore {
    log: Log,
    /// Records were appended since the last sync.
    unsynced: bool,
}

impl GroupStore {
    /// Opens (creating) the journal in `dir` and replays it.
    ///
    /// # Errors
    ///
    /// A damaged segment, or a record that does not decode, named in the error.
    pub fn open(
        storage: Arc<dyn Storage>,
        dir: &Path,
    ) -> Result<(Self, GroupRecovered, Recovery), GroupStoreError> {
        let (mut log, recovery) = Log::open(storage, dir, LogConfig::new(FsyncPolicy::Always))?;
        let mut recovered = GroupRecovered::default();
        let mut from = log.first_index();
        let undecodable = |index| GroupStoreError::Decode {
            dir: dir.to_path_buf(),
            index,
        };
        while from < log.next_index() {
            let batch = log.read(from, READ_BATCH)?;
            let Some(&(last, _)) = batch.last() else {
                break;
            };
            for (index, bytes) in batch {
                match postcard::from_bytes(&bytes).map_err(|_| undecodable(index))? {
                    GroupRecord::Entries(entries) => {
                        for bytes in entries {
                            let entry = RaftEntry::parse_from_bytes(&bytes)
                                .map_err(|_| undecodable(index))?;
                            recovered.entries.retain(|e| e.index < entry.index);
                            recovered.entries.push(entry);
                        }
                    }
                    GroupRecord::HardState { term, vote, commit } => {
                        let hard_state = HardState {
                            term,
                            vote,
                            commit,
                            ..HardState::default()
                        };
                        recovered.hard_state = Some(hard_state);
                    }
                }
            }
            from = last + 1;
        }
        Ok((
            Self {
                log,
                unsynced: false,
            },
            recovered,
            recovery,
        ))
    }

    fn append_record(&mut self, record: &GroupRecord) -> io::Result<()> {
        let bytes = postcard::to_allocvec(record).map_err(io::Error::other)?;
        self.log.append(&bytes).map_err(io::Error::other)?;
        self.unsynced = true;
        Ok(())
    }
}

impl GroupJournal for GroupStore {
    fn append(&mut self, entries: &[RaftEntry]) -> io::Result<()> {
        let encoded = entries
            .iter()
            .map(|entry| entry.write_to_bytes().map_err(io::Error::other))
            .collect::<io::Result<Vec<_>>>()?;
        self.append_record(&GroupRecord::Entries(encoded))
    }

    fn set_hard_state(&mut self, hard_state: &HardState) -> io::Result<()> {
        self.append_record(&GroupRecord::HardState {
            term: hard_state.term,
            vote: hard_state.vote,
            commit: hard_state.commit,
        })
    }

    fn sync(&mut self) -> io::Result<()> {
        // Most raft rounds (heartbeats) write nothing: no fsync for them.
        if std::mem::take(&mut self.unsynced) {
            self.log.commit(Instant::now()).map_err(io::Error::other)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
