//! Snapshot files: a checksummed header and body, written crash-safely (temp file, fsync,
//! rename, directory fsync), the newest few kept.
//!
//! ```text
//! | magic "PHXSNAP1" | version: u32 | flags: u32 | index: u64 | epoch: u64 |
//! | body_len: u64 | body_crc: u32 | header_crc: u32 | body: body_len bytes |
//! ```
//!
//! All integers little-endian; `header_crc` is CRC-32 over the 44 bytes before it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::storage::{AppendFile, Storage};

/// The bytes of a snapshot header.
pub const SNAPSHOT_HEADER_LEN: usize = 48;

const MAGIC: &[u8; 8] = b"PHXSNAP1";
const VERSION: u32 = 1;

/// What a snapshot covers: the state after applying every log entry up to `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// The last log index the snapshot includes.
    pub index: u64,
    /// The configuration epoch it was taken in.
    pub epoch: u64,
    /// The body's length in bytes.
    pub len: u64,
    /// CRC-32 of the body.
    pub crc: u32,
}

/// What is wrong with a snapshot file or header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotProblem {
    /// Shorter than a header.
    #[error("shorter than a header ({0} bytes)")]
    TooShort(usize),
    /// The file does not start with the snapshot magic.
    #[error("not a snapshot (bad magic)")]
    BadMagic,
    /// A format version this build cannot read.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u32),
    /// The header's checksum does not match.
    #[error("header checksum mismatch")]
    HeaderChecksum,
    /// The body is not as long as the header says.
    #[error("body is {found} bytes, header says {expected}")]
    Length {
        /// The length in the header.
        expected: u64,
        /// The body's length.
        found: u64,
    },
    /// The body's checksum does not match the header.
    #[error("body checksum mismatch (header {stored:#010x}, body {computed:#010x})")]
    BodyChecksum {
        /// The checksum in the header.
        stored: u32,
        /// The body's checksum.
        computed: u32,
    },
    /// The file name's index differs from the header's.
    #[error("file name says index {name}, header says {header}")]
    NameMismatch {
        /// The index in the name.
        name: u64,
        /// The index in the header.
        header: u64,
    },
}

/// A snapshot operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The snapshot file is damaged; it is left as it is (nothing of it was used).
    #[error("corrupt snapshot {}: {problem}", file.display())]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        problem: SnapshotProblem,
    },
    /// I/O on `file` failed.
    #[error("snapshot I/O on {}: {source}", file.display())]
    Io {
        /// The file or directory.
        file: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// An incoming snapshot received more or fewer bytes than its header announced.
    #[error("incoming snapshot {}: {received} bytes received, {expected} announced", file.display())]
    Incomplete {
        /// The partial file.
        file: PathBuf,
        /// Bytes announced.
        expected: u64,
        /// Bytes received.
        received: u64,
    },
}

/// A stored snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// Its header.
    pub header: SnapshotHeader,
    /// Its file.
    pub file: PathBuf,
}

impl SnapshotHeader {
    /// The header of `body` at `index` and `epoch`.
    pub fn of(index: u64, epoch: u64, body: &[u8]) -> Self {
        Self {
            index,
            epoch,
            len: body.len() as u64,
            crc: crc32fast::hash(body),
        }
    }

    /// The header's bytes.
    pub fn encode(&self) -> [u8; SNAPSHOT_HEADER_LEN] {
        let mut out = [0; SNAPSHOT_HEADER_LEN];
        out[..8].copy_from_slice(MAGIC);
        out[8..12].copy_from_slice(&VERSION.to_le_bytes());
        out[16..24].copy_from_slice(&self.index.to_le_bytes());
        out[24..32].copy_from_slice(&self.epoch.to_le_bytes());
        out[32..40].copy_from_slice(&self.len.to_le_bytes());
        out[40..44].copy_from_slice(&self.crc.to_le_bytes());
        let header_crc = crc32fast::hash(&out[..44]);
        out[44..48].copy_from_slice(&header_crc.to_le_bytes());
        out
    }

    /// Decodes the header at the start of `bytes` (which may go on with the body).
    ///
    /// # Errors
    ///
    /// The [`SnapshotProblem`] if the bytes do not start with a valid header.
    pub fn decode(bytes: &[u8]) -> Result<Self, SnapshotProblem> {
        let header = bytes
            .get(..SNAPSHOT_HEADER_LEN)
            .ok_or(SnapshotProblem::TooShort(bytes.len()))?;
        if &header[..8] != MAGIC {
            return Err(SnapshotProblem::BadMagic);
        }
        let word = |at: usize| {
            let mut b = [0; 4];
            b.copy_from_slice(&header[at..at + 4]);
            u32::from_le_bytes(b)
        };
        let long = |at: usize| {
            let mut b = [0; 8];
            b.copy_from_slice(&header[at..at + 8]);
            u64::from_le_bytes(b)
        };
        if word(44) != crc32fast::hash(&header[..44]) {
            return Err(SnapshotProblem::HeaderChecksum);
        }
        let version = word(8);
        if version != VERSION {
            return Err(SnapshotProblem::UnsupportedVersion(version));
        }
        Ok(Self {
            index: long(16),
            epoch: long(24),
            len: long(32),
            crc: word(40),
        })
    }
}

/// Checks a whole snapshot file's bytes and returns its header and body.
///
/// # Errors
///
/// The [`SnapshotProblem`] if anything does not verify.
pub fn verify_snapshot(bytes: &[u8]) -> Result<(SnapshotHeader, &[u8]), SnapshotProblem> {
    let header = SnapshotHeader::decode(bytes)?;
    let body = &bytes[SNAPSHOT_HEADER_LEN..];
    if body.len() as u64 != header.len {
        return Err(SnapshotProblem::Length {
            expected: header.len,
            found: body.len() as u64,
        });
    }
    let computed = crc32fast::hash(body);
    if computed != header.crc {
        return Err(SnapshotProblem::BodyChecksum {
            stored: header.crc,
            computed,
        });
    }
    Ok((header, body))
}

/// The snapshots of one chain in one directory: `<index>.snap` files, the newest `keep`
/// of them kept, and `<index>-<crc>.partial` files of snapshots being received.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    keep: usize,
}

impl SnapshotStore {
    /// Opens the store in `dir` (creating it), removing temp files left by a crash.
    ///
    /// # Errors
    ///
    /// [`SnapshotError::Io`].
    pub fn open(storage: Arc<dyn Storage>, dir: &Path, keep: usize) -> Result<Self, SnapshotError> {
        storage.create_dir_all(dir).map_err(io_error(dir))?;
        for name in storage.list(dir).map_err(io_error(dir))? {
            if name.ends_with(".tmp") {
                let path = dir.join(name);
                storage.remove_file(&path).map_err(io_error(&path))?;
            }
        }
        Ok(Self {
            storage,
            dir: dir.to_path_buf(),
            keep: keep.max(1),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a snapshot crash-safely (temp file, sync, rename, directory sync) and removes
    /// all but the newest `keep`.
    ///
    /// # Errors
    ///
    /// [`SnapshotError::Io`]; the previous snapshots are intact, a temp file may remain (it is
    /// removed at the next open).
    pub fn write(
        &self,
        index: u64,
        epoch: u64,
        body: &[u8],
    ) -> Result<SnapshotMeta, SnapshotError> {
        let header = SnapshotHeader::of(index, epoch, body);
        let temp = self.dir.join(format!("{index:020}.snap.tmp"));
        if self.storage.exists(&temp) {
            self.storage.remove_file(&temp).map_err(io_error(&temp))?;
        }
        let mut file = self.storage.open_append(&temp).map_err(io_error(&temp))?;
        file.append(&header.encode()).map_err(io_error(&temp))?;
        file.append(body).map_err(io_error(&temp))?;
        file.sync().map_err(io_error(&temp))?;
        drop(file);
        self.install(&temp, header)
    }

    /// Every snapshot, newest first (headers verified, bodies not).
    ///
    /// # Errors
    ///
    /// [`SnapshotError::Corrupt`] naming the first file whose header is bad, or
    /// [`SnapshotError::Io`].
    pub fn list(&self) -> Result<Vec<SnapshotMeta>, SnapshotError> {
        let mut out = Vec::new();
        for name in self.storage.list(&self.dir).map_err(io_error(&self.dir))? {
            let Some(index) = name
                .strip_suffix(".snap")
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let file = self.dir.join(&name);
            let bytes = self
                .storage
                .read_at(&file, 0, SNAPSHOT_HEADER_LEN)
                .map_err(io_error(&file))?;
            let header =
                SnapshotHeader::decode(&bytes).map_err(|problem| SnapshotError::Corrupt {
                    file: file.clone(),
                    problem,
                })?;
            if header.index != index {
                return Err(SnapshotError::Corrupt {
                    file,
                    problem: SnapshotProblem::NameMismatch {
                        name: index,
                        header: header.index,
                    },
                });
            }
            out.push(SnapshotMeta { header, file });
        }
        out.sort_by_key(|meta| std::cmp::Reverse(meta.header.index));
        Ok(out)
    }

    /// The newest snapshot, if any (header verified).
    ///
    /// # Errors
    ///
    /// As [`list`](Self::list).
    pub fn latest(&self) -> Result<Option<SnapshotMeta>, SnapshotError> {
        Ok(self.list()?.into_iter().next())
    }

    /// Reads and verifies a snapshot's body.
    ///
    /// # Errors
    ///
    /// [`SnapshotError::Corrupt`] naming the file and what is wrong, or [`SnapshotError::Io`].
    pub fn load(&self, meta: &SnapshotMeta) -> Result<Vec<u8>, SnapshotError> {
        let bytes = self
            .storage
            .read(&meta.file)
            .map_err(io_error(&meta.file))?;
        let (header, body) = verify_snapshot(&bytes).map_err(|problem| SnapshotError::Corrupt {
            file: meta.file.clone(),
            problem,
        })?;
        if header != meta.header {
            return Err(SnapshotError::Corrupt {
                file: meta.file.clone(),
                problem: SnapshotProblem::HeaderChecksum,
            });
        }
        Ok(body.to_vec())
    }

    /// The newest snapshot and its verified body, if there is one.
    ///
    /// # Errors
    ///
    /// As [`list`](Self::list) and [`load`](Self::load): a damaged newest snapshot is an
    /// error, never skipped silently.
    pub fn load_latest(&self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, SnapshotError> {
        match self.latest()? {
            Some(meta) => {
                let body = self.load(&meta)?;
                Ok(Some((meta, body)))
            }
            None => Ok(None),
        }
    }

    /// Up to `len` bytes of a snapshot's body from `offset` (unverified: the receiver checks
    /// the whole body against the header).
    ///
    /// # Errors
    ///
    /// [`SnapshotError::Io`].
    pub fn read_body(
        &self,
        meta: &SnapshotMeta,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>, SnapshotError> {
        self.storage
            .read_at(&meta.file, SNAPSHOT_HEADER_LEN as u64 + offset, len)
            .map_err(io_error(&meta.file))
    }

    /// Starts (or resumes) receiving the snapshot `header` describes: a partial file of the
    /// same snapshot left by a dropped transfer is continued where it ends.
    ///
    /// # Errors
    ///
    /// [`SnapshotError::Io`].
    pub fn incoming(&self, header: SnapshotHeader) -> Result<Incoming, SnapshotError> {
        let path = self
            .dir
            .join(format!("{:020}-{:08x}.partial", header.index, header.crc));
        // Partials of other snapshots are useless now.
        for name in self.storage.list(&self.dir).map_err(io_error(&self.dir))? {
            let other = self.dir.join(&name);
            if name.ends_with(".partial") && other != path {
                self.storage.remove_file(&other).map_err(io_error(&other))?;
            }
        }
        let mut hasher = crc32fast::Hasher::new();
        let mut received = 0;
        if self.storage.exists(&path) {
            let bytes = self.storage.read(&path).map_err(io_error(&path))?;
            if bytes.len() >= SNAPSHOT_HEADER_LEN
                && SnapshotHeader::decode(&bytes).ok() == Some(header)
                && (bytes.len() - SNAPSHOT_HEADER_LEN) as u64 <= header.len
            {
                hasher.update(&bytes[SNAPSHOT_HEADER_LEN..]);
                received = (bytes.len() - SNAPSHOT_HEADER_LEN) as u64;
            } else {
                self.storage.remove_file(&path).map_err(io_error(&path))?;
            }
        }
        let mut file = self.storage.open_append(&path).map_err(io_error(&path))?;
        if received == 0 && self.storage.len(&path).map_err(io_error(&path))? == 0 {
            file.append(&header.encode()).map_err(io_error(&path))?;
        }
        Ok(Incoming {
            store: self.clone(),
            header,
            path,
            file,
            received,
            hasher,
        })
    }

    /// The snapshot partly received by a dropped catch-up, if a partial file is here.
    ///
    /// # Errors
    ///
    /// [`SnapshotError::Io`].
    pub fn partial(&self) -> Result<Option<crate::checkpoint::catchup::Partial>, SnapshotError> {
        for name in self.storage.list(&self.dir).map_err(io_error(&self.dir))? {
            let Some(stem) = name.strip_suffix(".partial") else {
                continue;
            };
            let Some((index, crc)) = stem.split_once('-') else {
                continue;
            };
            let (Ok(index), Ok(crc)) = (index.parse(), u32::from_str_radix(crc, 16)) else {
                continue;
            };
            let path = self.dir.join(&name);
            let len = self.storage.len(&path).map_err(io_error(&path))?;
            return Ok(Some(crate::checkpoint::catchup::Partial {
                index,
                crc,
                received: len.saturating_sub(SNAPSHOT_HEADER_LEN as u64),
            }));
        }
        Ok(None)
    }

    /// Renames a complete, synced file into place as the snapshot `header`.
    fn install(&self, from: &Path, header: SnapshotHeader) -> Result<SnapshotMeta, SnapshotError> {
        let file = self.dir.join(format!("{:020}.snap", header.index));
        self.storage.rename(from, &file).map_err(io_error(&file))?;
        self.storage
            .sync_dir(&self.dir)
            .map_err(io_error(&self.dir))?;
        self.prune()?;
        Ok(SnapshotMeta { header, file })
    }

    /// Removes every snapshot (the state they hold was replaced), durably.
    ///
    /// # Errors
    ///
    /// [`SnapshotError::Io`], or [`SnapshotError::Corrupt`] from listing.
    pub fn remove_all(&self) -> Result<(), SnapshotError> {
        let all = self.list()?;
        if all.is_empty() {
            return Ok(());
        }
        for old in &all {
            self.storage
                .remove_file(&old.file)
                .map_err(io_error(&old.file))?;
        }
        self.storage
            .sync_dir(&self.dir)
            .map_err(io_error(&self.dir))
    }

    /// Removes all but the newest `keep` snapshots.
    fn prune(&self) -> Result<(), SnapshotError> {
        let all = self.list()?;
        if all.len() > self.keep {
            for old in &all[self.keep..] {
                self.storage
                    .remove_file(&old.file)
                    .map_err(io_error(&old.file))?;
            }
            self.storage
                .sync_dir(&self.dir)
                .map_err(io_error(&self.dir))?;
        }
        Ok(())
    }
}

/// A snapshot being received, written to a partial file that survives a dropped connection.
#[derive(Debug)]
pub struct Incoming {
    store: SnapshotStore,
    header: SnapshotHeader,
    path: PathBuf,
    file: Box<dyn AppendFile>,
    received: u64,
    hasher: crc32fast::Hasher,
}

impl Incoming {
    /// The header of the snapshot being received.
    pub fn header(&self) -> SnapshotHeader {
        self.header
    }

    /// How many body bytes are in the partial file: the offset to resume from.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Appends the next body bytes.
    ///
    /// # Errors
    ///
    /// [`SnapshotError::Incomplete`] if they go past the announced length (nothing written),
    /// or [`SnapshotError::Io`].
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        let after = self.received + bytes.len() as u64;
        if after > self.header.len {
            return Err(SnapshotError::Incomplete {
                file: self.path.clone(),
                expected: self.header.len,
                received: after,
            });
        }
        self.file.append(bytes).map_err(io_error(&self.path))?;
        self.hasher.update(bytes);
        self.received = after;
        Ok(())
    }

    /// Makes what was received so far durable.
    ///
    /// # Errors
    ///
    /// [`SnapshotError::Io`].
    pub fn sync(&mut self) -> Result<(), SnapshotError> {
        self.file.sync().map_err(io_error(&self.path))
    }

    /// Verifies the whole body against the header and installs the snapshot (sync, rename,
    /// directory sync). A body that does not verify is removed, so the next attempt starts
    /// from zero.
    ///
    /// # Errors
    ///
    /// [`SnapshotError::Incomplete`], [`SnapshotError::Corrupt`] (the partial file is removed),
    /// or [`SnapshotError::Io`].
    pub fn finish(mut self) -> Result<SnapshotMeta, SnapshotError> {
        if self.received != self.header.len {
            return Err(SnapshotError::Incomplete {
                file: self.path.clone(),
                expected: self.header.len,
                received: self.received,
            });
        }
        let computed = self.hasher.clone().finalize();
        if computed != self.header.crc {
            drop(self.file);
            let _ = self.store.storage.remove_file(&self.path);
            return Err(SnapshotError::Corrupt {
                file: self.path,
                problem: SnapshotProblem::BodyChecksum {
                    stored: self.header.crc,
                    computed,
                },
            });
        }
        self.sync()?;
        drop(self.file);
        self.store.install(&self.path, self.header)
    }
}

fn io_error(file: &Path) -> impl FnOnce(io::Error) -> SnapshotError {
    let file = file.to_path_buf();
    move |source| SnapshotError::Io { file, source }
}
