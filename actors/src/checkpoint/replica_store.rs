//! A chain replica's durable state ([`ReplicaStore`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use crate::chain::{Entry, JournalOp, Recovered, Snapshot, StateMachine};

use super::layout::{read_small_file, write_small_file};
use super::log::{FsyncPolicy, Log, LogConfig, Recovery};
use super::snapshot::{SnapshotMeta, SnapshotStore};
use super::storage::Storage;
use super::typed::{ChainStoreError, load_snapshot, read_entries};

const META: &str = "replica.meta";
const META_MAGIC: &[u8; 8] = b"PHXREPL2";
const META_LEN: usize = 8 + 8 + 8 + 8 + 4;
/// Snapshots kept on disk.
const KEEP_SNAPSHOTS: usize = 2;
/// Bytes read from the log per batch while recovering.
const READ_BATCH: usize = 4 * 1024 * 1024;

/// What a replica stores besides its log and snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaMeta {
    /// The replica's incarnation, kept across restarts.
    pub incarnation: u64,
    /// The last epoch the stored state caught up in (0: it vouches for nothing).
    pub synced_epoch: u64,
    /// The newest configuration epoch the replica adopted: after a restart it never adopts
    /// an older one (a lagging group node may still hand one out).
    pub adopted_epoch: u64,
}

/// A replica store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaStoreError {
    /// The log or the snapshots failed (the error names the file).
    #[error(transparent)]
    Store(#[from] ChainStoreError),
    /// The metadata file is damaged; it was left as it is.
    #[error("corrupt replica metadata {}: {problem}", file.display())]
    CorruptMeta {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        problem: &'static str,
    },
    /// I/O on `file` failed.
    #[error("replica store I/O on {}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl From<super::log::LogError> for ReplicaStoreError {
    fn from(error: super::log::LogError) -> Self {
        Self::Store(error.into())
    }
}

impl From<super::snapshot::SnapshotError> for ReplicaStoreError {
    fn from(error: super::snapshot::SnapshotError) -> Self {
        Self::Store(error.into())
    }
}

/// What [`ReplicaStore::open`] found.
#[derive(Debug)]
pub struct Opened<S: StateMachine> {
    /// The stored metadata, if the replica stored anything before.
    pub meta: Option<ReplicaMeta>,
    /// The state to restart from ([`Recovered::empty`] if nothing was stored).
    pub recovered: Recovered<S>,
    /// What opening the log cut (a torn tail).
    pub log_recovery: Recovery,
    /// Whether the log did not continue the snapshot (a crash in the middle of a state
    /// replacement) and was dropped; the synced epoch is then 0.
    pub gap: bool,
}

/// A chain replica's durable state: its journal ([`JournalOp`]s) applied to a log, a
/// snapshot store and a small metadata file, and what a restarted replica recovers from them.
///
/// ```text
/// <dir>/replica.meta   incarnation, synced and adopted epochs; checksummed, replaced atomically
/// <dir>/log/           the entries (log index = sequence number)
/// <dir>/snapshots/     committed state + deduplication table
/// ```
///
/// # Crash safety
///
/// [`ReplicaStore::write`] applies a batch of journal operations in order and commits the log
/// once at the end (the group commit: with [`FsyncPolicy::Always`] one `fsync` per batch).
/// The replica vouches for its state through the *synced epoch* in `replica.meta`: a state
/// replacement ([`JournalOp::Reset`]) first lowers it to 0 on disk, and only a later
/// [`JournalOp::Synced`], written after the log is committed, raises it again. A crash in the
/// middle of a replacement therefore leaves a state that vouches for nothing: the replica
/// comes back, finds its configuration entry newer than its synced epoch, and catches up from
/// scratch. The group never makes such a replica head.
///
/// A state is reused across a restart (same incarnation) only with [`FsyncPolicy::Always`]:
/// with a weaker policy a power failure can lose records the replica acknowledged, so
/// [`ReplicaStore::open`] then reports the synced epoch as 0.
pub struct ReplicaStore {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    log: Log,
    snapshots: SnapshotStore,
    meta: ReplicaMeta,
    /// Bumped by every state replacement; held while a snapshot is installed, so that a
    /// snapshot of a replaced state is never installed after the replacement.
    generation: Arc<Mutex<u64>>,
    always: bool,
}

impl fmt::Debug for ReplicaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicaStore")
            .field("dir", &self.dir)
            .field("log", &self.log)
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// A snapshot to write off the replica's thread ([`ReplicaStore::snapshot_job`]).
pub struct SnapshotJob {
    store: SnapshotStore,
    generation: Arc<Mutex<u64>>,
    taken_in: u64,
    index: u64,
    epoch: u64,
    serialize: Box<dyn FnOnce() -> Vec<u8> + Send>,
}

impl fmt::Debug for SnapshotJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotJob")
            .field("index", &self.index)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl SnapshotJob {
    /// Serialises and writes the snapshot (blocking: run it on a blocking thread). Returns
    /// `Ok(None)` if the replica's state was replaced since it was captured (the snapshot
    /// is then stale and is not installed).
    ///
    /// # Errors
    ///
    /// The snapshot store's errors.
    pub fn run(self) -> Result<Option<SnapshotMeta>, ReplicaStoreError> {
        let body = (self.serialize)();
        let generation = self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *generation != self.taken_in {
            return Ok(None);
        }
        let meta = self.store.write(self.index, self.epoch, &body)?;
        drop(generation);
        Ok(Some(meta))
    }
}

impl ReplicaStore {
    /// Opens (creating) the store in `dir` and recovers what it holds.
    ///
    /// # Errors
    ///
    /// A damaged log segment, snapshot or metadata file, named in the error; nothing is
    /// changed then (restore the directory from a peer: delete it and restart the node).
    pub fn open<S: StateMachine>(
        storage: Arc<dyn Storage>,
        dir: &Path,
        config: LogConfig,
    ) -> Result<(Self, Opened<S>), ReplicaStoreError> {
        storage
            .create_dir_all(dir)
            .map_err(|source| ReplicaStoreError::Io {
                file: dir.to_path_buf(),
                source,
            })?;
        let meta_file = dir.join(META);
        let meta = match read_small_file(storage.as_ref(), &meta_file) {
            Ok(Some(bytes)) => {
                Some(
                    decode_meta(&bytes).map_err(|problem| ReplicaStoreError::CorruptMeta {
                        file: meta_file.clone(),
                        problem,
                    })?,
                )
            }
            Ok(None) => None,
            Err(source) => {
                return Err(ReplicaStoreError::Io {
                    file: meta_file,
                    source,
                });
            }
        };
        let snapshots =
            SnapshotStore::open(storage.clone(), &dir.join("snapshots"), KEEP_SNAPSHOTS)?;
        let (mut log, log_recovery) = Log::open(storage.clone(), &dir.join("log"), config)?;
        let snapshot: Option<Snapshot<S>> = load_snapshot(&snapshots)?.map(|(_, s)| s);
        let base = snapshot.as_ref().map_or(0, |s| s.committed);
        let mut entries: Vec<Entry<S>> = Vec::new();
        let gap = log.first_index() > base + 1;
        if gap || log.next_index() <= base {
            log.reset(base + 1)?;
        } else {
            let mut from = base + 1;
            while from < log.next_index() {
                let batch = read_entries::<S>(&mut log, from, READ_BATCH)?;
                let Some(last) = batch.last() else { break };
                from = last.seq + 1;
                entries.extend(batch);
            }
        }
        let always = matches!(config.fsync, FsyncPolicy::Always);
        let synced_epoch = match meta {
            Some(meta) if always && !gap => meta.synced_epoch,
            _ => 0,
        };
        let store = Self {
            storage,
            dir: dir.to_path_buf(),
            log,
            snapshots,
            meta: meta.unwrap_or(ReplicaMeta {
                incarnation: 0,
                synced_epoch: 0,
                adopted_epoch: 0,
            }),
            generation: Arc::new(Mutex::new(0)),
            always,
        };
        let opened = Opened {
            meta,
            recovered: Recovered {
                synced_epoch,
                snapshot,
                entries,
                fresh: meta.is_none(),
                adopted_epoch: meta.map_or(0, |m| m.adopted_epoch),
            },
            log_recovery,
            gap,
        };
        Ok((store, opened))
    }

    /// The stored metadata.
    pub fn meta(&self) -> ReplicaMeta {
        self.meta
    }

    /// Whether a restarted replica may keep its incarnation (the log syncs every commit).
    pub fn keeps_acknowledged(&self) -> bool {
        self.always
    }

    /// Records the replica's incarnation (and a synced epoch of 0), durably.
    ///
    /// # Errors
    ///
    /// [`ReplicaStoreError::Io`].
    pub fn set_incarnation(&mut self, incarnation: u64) -> Result<(), ReplicaStoreError> {
        self.write_meta(ReplicaMeta {
            incarnation,
            synced_epoch: 0,
            adopted_epoch: 0,
        })
    }

    /// Applies `ops` in order and commits the log; when this returns, they are as durable as
    /// the log's [`FsyncPolicy`] makes them. Returns the bytes of entries appended.
    ///
    /// # Errors
    ///
    /// The log's, the snapshots' or the metadata's errors. The store's state on disk is then
    /// unknown: drop it and [`open`](Self::open) it again (the replica restarts from it).
    pub fn write<S: StateMachine>(
        &mut self,
        ops: Vec<JournalOp<S>>,
        now: Instant,
    ) -> Result<u64, ReplicaStoreError> {
        let mut buffer = Vec::new();
        let mut bytes = 0;
        for op in ops {
            match op {
                JournalOp::Append(entries) => {
                    for entry in &entries {
                        if entry.seq != self.log.next_index() {
                            return Err(ChainStoreError::OutOfOrder {
                                seq: entry.seq,
                                next: self.log.next_index(),
                            }
                            .into());
                        }
                        buffer.clear();
                        buffer = postcard::to_extend(entry, std::mem::take(&mut buffer))
                            .map_err(ChainStoreError::from)?;
                        self.log.append(&buffer)?;
                        bytes += buffer.len() as u64;
                    }
                }
                JournalOp::Reset(snapshot) => self.replace(snapshot)?,
                JournalOp::Synced(epoch) => {
                    self.log.commit(now)?;
                    self.write_meta(ReplicaMeta {
                        synced_epoch: epoch,
                        ..self.meta
                    })?;
                }
                JournalOp::Adopted(epoch) => {
                    self.write_meta(ReplicaMeta {
                        adopted_epoch: epoch.max(self.meta.adopted_epoch),
                        ..self.meta
                    })?;
                }
            }
        }
        self.log.commit(now)?;
        Ok(bytes)
    }

    /// A job that writes a snapshot of the committed state at `index` (captured by the
    /// replica; `serialize` produces the encoded [`Snapshot`]).
    pub fn snapshot_job(
        &self,
        index: u64,
        epoch: u64,
        serialize: Box<dyn FnOnce() -> Vec<u8> + Send>,
    ) -> SnapshotJob {
        let taken_in = *self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        SnapshotJob {
            store: self.snapshots.clone(),
            generation: self.generation.clone(),
            taken_in,
            index,
            epoch,
            serialize,
        }
    }

    /// Drops log entries below `below` (never past the newest snapshot).
    ///
    /// # Errors
    ///
    /// The log's or the snapshot store's errors.
    pub fn truncate_below(&mut self, below: u64) -> Result<(), ReplicaStoreError> {
        let covered = self.snapshots.latest()?.map_or(0, |m| m.header.index);
        self.log.truncate_prefix(below.min(covered + 1))?;
        Ok(())
    }

    /// The first index the log still holds.
    pub fn log_first(&self) -> u64 {
        self.log.first_index()
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn replace<S: StateMachine>(
        &mut self,
        snapshot: Option<Snapshot<S>>,
    ) -> Result<(), ReplicaStoreError> {
        self.log.commit(Instant::now())?;
        self.write_meta(ReplicaMeta {
            synced_epoch: 0,
            ..self.meta
        })?;
        let mut generation = self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *generation += 1;
        self.snapshots.remove_all()?;
        let base = snapshot.as_ref().map_or(0, |s| s.committed);
        self.log.reset(base + 1)?;
        if let Some(snapshot) = snapshot {
            let body = postcard::to_allocvec(&snapshot).map_err(ChainStoreError::from)?;
            self.snapshots.write(base, 0, &body)?;
        }
        drop(generation);
        Ok(())
    }

    fn write_meta(&mut self, meta: ReplicaMeta) -> Result<(), ReplicaStoreError> {
        write_small_file(self.storage.as_ref(), &self.dir, META, &encode_meta(meta)).map_err(
            |source| ReplicaStoreError::Io {
                file: self.dir.join(META),
                source,
            },
        )?;
        self.meta = meta;
        Ok(())
    }
}

fn encode_meta(meta: ReplicaMeta) -> [u8; META_LEN] {
    let mut out = [0; META_LEN];
    out[..8].copy_from_slice(META_MAGIC);
    out[8..16].copy_from_slice(&meta.incarnation.to_le_bytes());
    out[16..24].copy_from_slice(&meta.synced_epoch.to_le_bytes());
    out[24..32].copy_from_slice(&meta.adopted_epoch.to_le_bytes());
    let crc = crc32fast::hash(&out[..32]);
    out[32..].copy_from_slice(&crc.to_le_bytes());
    out
}

fn decode_meta(bytes: &[u8]) -> Result<ReplicaMeta, &'static str> {
    let bytes: &[u8; META_LEN] = bytes.try_into().map_err(|_| "wrong length")?;
    if &bytes[..8] != META_MAGIC {
        return Err("bad magic");
    }
    let word = |at: usize| {
        let mut out = [0; 8];
        out.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(out)
    };
    let mut crc = [0; 4];
    crc.copy_from_slice(&bytes[32..]);
    if u32::from_le_bytes(crc) != crc32fast::hash(&bytes[..32]) {
        return Err("checksum mismatch");
    }
    Ok(ReplicaMeta {
        incarnation: word(8),
        synced_epoch: word(16),
        adopted_epoch: word(24),
    })
}

#[cfg(test)]
mod tests;
