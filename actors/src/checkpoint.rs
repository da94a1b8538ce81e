//! Durable chain state: a segmented log and snapshots on disk, the checkpointer that takes
//! snapshots and truncates the log, and the catch-up protocol that brings a new or restarted
//! replica up to date.
//!
//! # Design
//!
//! Everything here is byte-oriented and independent of the chain's types: the log stores
//! numbered byte records, a snapshot is a byte body under a header (index, epoch, length,
//! checksum). Plain files with CRC-32 checksums rather than an embedded store: the log is
//! append-only and snapshots are whole files, so we need no B-tree or LSM, and we control
//! exactly when `fsync` happens (a store's own write-ahead log would sync a second time).
//!
//! - [`Storage`]: the filesystem, as a trait: [`FsStorage`] (`std::fs`, blocking: call it
//!   from [`phalanx_runtime::spawn_blocking`] inside actors) and [`MemStorage`] (tests; it
//!   simulates crashes: unsynced data lost, the last write torn at any byte).
//! - [`Log`]: records `len | crc | index | payload` in segment files; appends are buffered
//!   and synced as the [`FsyncPolicy`] says, inline ([`Log::commit`]) or on another thread
//!   while appends go on ([`Log::commit_deferred`], group commit); [`Log::open`] cuts a torn
//!   tail and reports it.
//! - [`SnapshotStore`]: `<index>.snap` files written crash-safely (temp, fsync, rename,
//!   directory fsync); a damaged file is an error naming it, never used.
//! - [`DataDir`]: a node's data directory (lock, identity, per-chain log and snapshots).
//! - [`Checkpointer`] (sans-IO policy) and [`CheckpointActor`]: when to snapshot and how far
//!   to truncate, keeping what in-flight catch-ups pin.
//! - [`append_entries`], [`read_entries`], [`write_snapshot`], [`load_snapshot`]: a thin
//!   typed layer for chain replicas (log index = entry sequence number).
//! - [`ReplicaStore`]: a chain replica's durable state (its journal applied to a log,
//!   snapshots and a metadata file), and what a restarted replica recovers from it.
//! - [`GroupStore`]: the configuration group's raft state (a
//!   [`GroupJournal`](crate::chain::GroupJournal) over a [`Log`]).
//! - [`catchup`]: the catch-up stream (snapshot chunks, then the log suffix), resumable and
//!   verified before anything is installed.
//!
//! # Examples
//!
//! ```
//! use std::path::Path;
//! use std::sync::Arc;
//! use std::time::Instant;
//!
//! use phalanx_actors::checkpoint::{FsyncPolicy, Log, LogConfig, MemStorage, SnapshotStore};
//!
//! let storage = Arc::new(MemStorage::new());
//! let dir = Path::new("/data/chain/0");
//! let config = LogConfig::new(FsyncPolicy::Always);
//! let (mut log, _) = Log::open(storage.clone(), &dir.join("log"), config)?;
//! for value in [&b"a"[..], b"b", b"c"] {
//!     log.append(value)?;
//! }
//! log.commit(Instant::now())?;
//! let snapshots = SnapshotStore::open(storage.clone(), &dir.join("snapshots"), 2)?;
//! snapshots.write(2, 1, b"state after a and b")?;
//! log.truncate_prefix(3)?;
//!
//! // A crash loses nothing that was synced.
//! storage.crash(&mut |_| 0);
//! let (mut log, recovery) = Log::open(storage.clone(), &dir.join("log"), LogConfig::default())?;
//! assert!(recovery.torn_tail.is_none());
//! assert_eq!(log.read(3, 1024)?, vec![(3, b"c".to_vec())]);
//! let (meta, body) = snapshots.load_latest()?.expect("a snapshot");
//! assert_eq!((meta.header.index, &body[..]), (2, &b"state after a and b"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod actor;
pub mod catchup;
mod group_store;
mod layout;
mod log;
mod policy;
mod reader;
mod record;
mod replica_store;
mod snapshot;
mod storage;
mod typed;

pub use actor::{Captured, CheckpointActor, CheckpointMessage, CheckpointOwner, CheckpointStatus};
pub use group_store::{GroupStore, GroupStoreError};
pub use layout::{DataDir, DataDirError, NodeIdentity, ShardStore};
pub use log::{
    Commit, FsyncPolicy, Log, LogConfig, LogError, Recovery, SyncDone, SyncJob, TornTail,
    segment_path,
};
pub use policy::{CheckpointPolicy, Checkpointer, PinId};
pub use reader::LogReader;
pub use record::{MAX_RECORD_LEN, RECORD_HEADER_LEN, RecordError, decode_record, encode_record};
pub use replica_store::{Opened, ReplicaMeta, ReplicaStore, ReplicaStoreError, SnapshotJob};
pub use snapshot::{
    Incoming, SNAPSHOT_HEADER_LEN, SnapshotError, SnapshotHeader, SnapshotMeta, SnapshotProblem,
    SnapshotStore, verify_snapshot,
};
pub use storage::{AppendFile, FsStorage, MemStorage, Storage, SyncHandle};
pub use typed::{ChainStoreError, append_entries, load_snapshot, read_entries, write_snapshot};
