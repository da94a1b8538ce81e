//! A node's data directory: its identity, a lock, and per-chain logs and snapshots.
//!
//! ```text
//! <data-dir>/
//!   LOCK                      pid of the process using the directory
//!   node.id                   128-bit node id + incarnation counter, checksummed
//!   chain/<shard>/log/        segments: <first index>.log
//!   chain/<shard>/snapshots/  <index>.snap, <index>-<crc>.partial while receiving
//!   chain/<shard>/replica.meta  the replica's incarnation, synced and adopted epochs
//!   group/log/                the configuration group's raft log, shard 0 (group nodes only)
//!   group.<shard>/log/        the same for the other shards
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::log::{Log, LogConfig, LogError, Recovery};
use super::snapshot::{SnapshotError, SnapshotStore};
use super::storage::Storage;

const LOCK: &str = "LOCK";
const NODE_ID: &str = "node.id";
const NODE_ID_MAGIC: &[u8; 8] = b"PHXNODE1";
const NODE_ID_LEN: usize = 8 + 16 + 8 + 4;

/// A node's identity as kept in its data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeIdentity {
    /// The node's id, drawn at random when the directory was created.
    pub id: u128,
    /// Incremented at every start, so peers can tell a restarted node from its old self.
    pub incarnation: u64,
}

/// A data directory operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataDirError {
    /// Another live process holds the directory's lock.
    #[error("data directory {} is in use by process {pid} (lock file {})", dir.display(), lock.display())]
    Locked {
        /// The directory.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// The process named in it.
        pid: u32,
    },
    /// The identity file is damaged; it was left as it is.
    #[error("corrupt node identity file {}: {problem}", file.display())]
    CorruptIdentity {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        problem: &'static str,
    },
    /// I/O on `file` failed.
    #[error("data directory I/O on {}: {source}", file.display())]
    Io {
        /// The file or directory.
        file: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Opening a chain's log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// Opening a chain's snapshot store failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

/// An open data directory, locked against other processes until dropped.
#[derive(Debug)]
pub struct DataDir {
    storage: Arc<dyn Storage>,
    root: PathBuf,
}

/// One chain's durable state, as opened from a [`DataDir`].
#[derive(Debug)]
pub struct ShardStore {
    /// The chain's log.
    pub log: Log,
    /// What opening the log cut.
    pub recovery: Recovery,
    /// The chain's snapshots.
    pub snapshots: SnapshotStore,
}

impl DataDir {
    /// Opens (creating) the data directory `root` and takes its lock.
    ///
    /// A lock file left by a process that no longer runs is taken over (Linux: checked in
    /// `/proc`; elsewhere a lock file must be removed by hand).
    ///
    /// # Errors
    ///
    /// [`DataDirError::Locked`] if another live process (or this one) holds it, or
    /// [`DataDirError::Io`].
    pub fn open(storage: Arc<dyn Storage>, root: &Path) -> Result<Self, DataDirError> {
        storage.create_dir_all(root).map_err(io_error(root))?;
        let lock = root.join(LOCK);
        let pid = std::process::id();
        for _ in 0..2 {
            match storage.create_new(&lock, pid.to_string().as_bytes()) {
                Ok(()) => {
                    storage.sync_dir(root).map_err(io_error(root))?;
                    return Ok(Self {
                        storage,
                        root: root.to_path_buf(),
                    });
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    let holder = storage.read(&lock).map_err(io_error(&lock))?;
                    let holder: Option<u32> = std::str::from_utf8(&holder)
                        .ok()
                        .and_then(|s| s.trim().parse().ok());
                    match holder {
                        Some(holder) if holder == pid || process_alive(holder) => {
                            return Err(DataDirError::Locked {
                                dir: root.to_path_buf(),
                                lock,
                                pid: holder,
                            });
                        }
                        _ => storage.remove_file(&lock).map_err(io_error(&lock))?,
                    }
                }
                Err(error) => return Err(io_error(&lock)(error)),
            }
        }
        Err(DataDirError::Io {
            file: lock,
            source: io::Error::other("lock file keeps reappearing"),
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Loads the node's identity with its incarnation incremented (made durable before this
    /// returns), or creates a new random identity with incarnation 1.
    ///
    /// # Errors
    ///
    /// [`DataDirError::CorruptIdentity`] naming the file, or [`DataDirError::Io`].
    pub fn load_or_create_identity(&self) -> Result<NodeIdentity, DataDirError> {
        let file = self.root.join(NODE_ID);
        let identity = match read_small_file(self.storage.as_ref(), &file)
            .map_err(io_error(&file))?
        {
            Some(bytes) => {
                let old =
                    decode_identity(&bytes).map_err(|problem| DataDirError::CorruptIdentity {
                        file: file.clone(),
                        problem,
                    })?;
                NodeIdentity {
                    id: old.id,
                    incarnation: old.incarnation + 1,
                }
            }
            None => NodeIdentity {
                id: fastrand::u128(1..),
                incarnation: 1,
            },
        };
        write_small_file(
            self.storage.as_ref(),
            &self.root,
            NODE_ID,
            &encode_identity(identity),
        )
        .map_err(io_error(&file))?;
        Ok(identity)
    }

    /// The directory of chain `shard`'s replica ([`ReplicaStore`](super::ReplicaStore)).
    pub fn shard_dir(&self, shard: u64) -> PathBuf {
        self.root.join("chain").join(shard.to_string())
    }

    /// The directory of the configuration group's raft log.
    pub fn group_dir(&self) -> PathBuf {
        self.root.join("group")
    }

    /// The directory of chain `shard`'s configuration-group raft log: [`group_dir`](
    /// Self::group_dir) (`group/`) for shard 0, so directories written before shards existed
    /// keep working, and `group.<shard>/` beside it for every other shard.
    pub fn group_dir_of(&self, shard: u64) -> PathBuf {
        match shard {
            0 => self.group_dir(),
            shard => self.root.join(format!("group.{shard}")),
        }
    }

    /// The storage the directory lives on.
    pub fn storage(&self) -> Arc<dyn Storage> {
        self.storage.clone()
    }

    /// The log directory of chain `shard`.
    pub fn log_dir(&self, shard: u64) -> PathBuf {
        self.root.join("chain").join(shard.to_string()).join("log")
    }

    /// The snapshot directory of chain `shard`.
    pub fn snapshot_dir(&self, shard: u64) -> PathBuf {
        self.root
            .join("chain")
            .join(shard.to_string())
            .join("snapshots")
    }

    /// Opens chain `shard`'s log and snapshots, keeping the newest `keep` snapshots. If the
    /// newest snapshot is ahead of the log (a crash after installing a received snapshot),
    /// the log is reset to continue after it.
    ///
    /// # Errors
    ///
    /// The log's or the snapshot store's errors, each naming the damaged file.
    pub fn open_shard(
        &self,
        shard: u64,
        config: LogConfig,
        keep: usize,
    ) -> Result<ShardStore, DataDirError> {
        let snapshots = SnapshotStore::open(self.storage.clone(), &self.snapshot_dir(shard), keep)?;
        let (mut log, recovery) = Log::open(self.storage.clone(), &self.log_dir(shard), config)?;
        if let Some(latest) = snapshots.latest()?
            && (log.next_index() <= latest.header.index
                || log.first_index() > latest.header.index + 1)
        {
            log.reset(latest.header.index + 1)?;
        }
        Ok(ShardStore {
            log,
            recovery,
            snapshots,
        })
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        // Best effort: a lock left behind is taken over by the next start (its process is
        // gone).
        let _ = self.storage.remove_file(&self.root.join(LOCK));
    }
}

/// Reads a small file whole; `None` if it does not exist.
pub(super) fn read_small_file(storage: &dyn Storage, file: &Path) -> io::Result<Option<Vec<u8>>> {
    if !storage.exists(file) {
        return Ok(None);
    }
    storage.read(file).map(Some)
}

/// Replaces `dir/name` with `bytes` crash-safely: a temp file, synced, renamed over it, and
/// the directory synced. A crash leaves the old content or the new, never a mix.
pub(super) fn write_small_file(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> io::Result<()> {
    let temp = dir.join(format!("{name}.tmp"));
    if storage.exists(&temp) {
        storage.remove_file(&temp)?;
    }
    let mut out = storage.open_append(&temp)?;
    out.append(bytes)?;
    out.sync()?;
    drop(out);
    storage.rename(&temp, &dir.join(name))?;
    storage.sync_dir(dir)
}

fn encode_identity(identity: NodeIdentity) -> [u8; NODE_ID_LEN] {
    let mut out = [0; NODE_ID_LEN];
    out[..8].copy_from_slice(NODE_ID_MAGIC);
    out[8..24].copy_from_slice(&identity.id.to_le_bytes());
    out[24..32].copy_from_slice(&identity.incarnation.to_le_bytes());
    let crc = crc32fast::hash(&out[..32]);
    out[32..].copy_from_slice(&crc.to_le_bytes());
    out
}

fn decode_identity(bytes: &[u8]) -> Result<NodeIdentity, &'static str> {
    if bytes.len() != NODE_ID_LEN {
        return Err("wrong length");
    }
    if &bytes[..8] != NODE_ID_MAGIC {
        return Err("bad magic");
    }
    let mut crc = [0; 4];
    crc.copy_from_slice(&bytes[32..]);
    if u32::from_le_bytes(crc) != crc32fast::hash(&bytes[..32]) {
        return Err("checksum mismatch");
    }
    let mut id = [0; 16];
    id.copy_from_slice(&bytes[8..24]);
    let mut incarnation = [0; 8];
    incarnation.copy_from_slice(&bytes[24..32]);
    Ok(NodeIdentity {
        id: u128::from_le_bytes(id),
        incarnation: u64::from_le_bytes(incarnation),
    })
}

fn process_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    if proc.join("self").exists() {
        proc.join(pid.to_string()).exists()
    } else {
        // Cannot tell: assume the holder is alive, the safe answer.
        true
    }
}

fn io_error(file: &Path) -> impl FnOnce(io::Error) -> DataDirError {
    let file = file.to_path_buf();
    move |source| DataDirError::Io { file, source }
}
