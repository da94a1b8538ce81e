//! A segmented, append-only log of byte records with an fsync policy and crash recovery.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::record::{MAX_RECORD_LEN, RecordError, decode_record, encode_record};
use super::storage::{AppendFile, Storage, SyncHandle};

/// When the log calls `fsync`, and so what a crash can lose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FsyncPolicy {
    /// Every [`Log::commit`] syncs: a committed record survives a power failure.
    Always,
    /// A commit syncs once `max_delay` has passed since the oldest unsynced record, or once
    /// `max_bytes` are unsynced; a power failure (not a process crash) can lose up to that
    /// window of committed records.
    Batched {
        /// The longest a committed record stays unsynced (if commits keep coming, or the
        /// owner calls [`Log::sync`] at [`Commit::sync_deadline`]).
        max_delay: Duration,
        /// The most unsynced bytes.
        max_bytes: u64,
    },
    /// Never syncs records (only sealed segments): committed records survive a process crash
    /// (they are in the operating system's cache) but a power failure or kernel crash can lose
    /// any of them.
    Never,
}

/// How a [`Log`] is laid out and synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogConfig {
    /// When to fsync.
    pub fsync: FsyncPolicy,
    /// A segment is sealed and a new one started once it holds this many bytes.
    pub segment_bytes: u64,
    /// Appended records are handed to the operating system once this many bytes are buffered
    /// (and always at [`Log::commit`]).
    pub buffer_bytes: usize,
}

impl LogConfig {
    /// The defaults (64 MiB segments, 256 KiB buffer) with `fsync`.
    pub fn new(fsync: FsyncPolicy) -> Self {
        Self {
            fsync,
            segment_bytes: 64 * 1024 * 1024,
            buffer_bytes: 256 * 1024,
        }
    }

    /// The same configuration with segments of `bytes`.
    #[must_use]
    pub fn with_segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes.max(1);
        self
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self::new(FsyncPolicy::Batched {
            max_delay: Duration::from_millis(5),
            max_bytes: 1024 * 1024,
        })
    }
}

/// What [`Log::commit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// Every record up to this index is durable.
    pub synced: u64,
    /// When the owner should call [`Log::sync`] if no commit comes first (batched policy,
    /// records unsynced).
    pub sync_deadline: Option<Instant>,
}

/// What [`Log::open`] cut while recovering.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The newest segment ended in a torn or corrupt record and was cut there.
    pub torn_tail: Option<TornTail>,
    /// Older segments that did not connect to the newest (left behind by an interrupted
    /// truncation or reset) and were removed.
    pub dropped_segments: Vec<PathBuf>,
}

/// A torn or corrupt end of the newest segment, cut off at recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file.
    pub file: PathBuf,
    /// Where its last good record ends (its new length).
    pub offset: u64,
    /// How many bytes were cut.
    pub bytes_cut: u64,
    /// What was wrong with the first bad record.
    pub problem: RecordError,
}

/// A log operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// I/O on `file` failed. After a failed append or sync the log's state on disk is unknown:
    /// drop the `Log` and [`open`](Log::open) it again.
    #[error("log I/O on {}: {source}", file.display())]
    Io {
        /// The file or directory.
        file: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A sealed (not the newest) segment holds a bad record: corruption on the medium, not a
    /// torn write. Nothing was changed; restore the node from a peer or a backup.
    #[error("corrupt log segment {}: at byte {offset}: {problem}", file.display())]
    Corrupt {
        /// The segment file.
        file: PathBuf,
        /// Where the bad record starts.
        offset: u64,
        /// What is wrong with it.
        problem: RecordError,
    },
    /// A record in `file` carries another index than its position says.
    #[error("log segment {}: record at byte {offset} has index {found}, expected {expected}", file.display())]
    Misplaced {
        /// The segment file.
        file: PathBuf,
        /// Where the record starts.
        offset: u64,
        /// Its position's index.
        expected: u64,
        /// The index it carries.
        found: u64,
    },
    /// A payload exceeds [`MAX_RECORD_LEN`]; nothing was appended.
    #[error("record of {0} bytes exceeds the maximum")]
    TooLong(usize),
    /// A read asked for an index outside the log.
    #[error("index {index} is outside the log ({first}..{next})")]
    OutOfRange {
        /// The index asked for.
        index: u64,
        /// The first index the log holds.
        first: u64,
        /// The next index to be appended.
        next: u64,
    },
}

/// A segmented append-only log of byte records numbered 1, 2, ... (or from a
/// [`reset`](Log::reset) point).
///
/// Segments are files named by their first index (`00000000000000000001.log`). Appends are
/// buffered and reach the operating system at [`commit`](Self::commit) (or when the buffer
/// fills), and disk as the [`FsyncPolicy`] says. A segment is synced before the next one is
/// created, so only the newest segment can end in a torn write; [`open`](Self::open) cuts such
/// a tail and reports it, and fails on corruption anywhere else.
pub struct Log {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    config: LogConfig,
    /// Oldest first; the last one is the one appended to.
    segments: Vec<Segment>,
    active: Box<dyn AppendFile>,
    /// Encoded records not yet handed to the operating system (they belong to the active
    /// segment, after its `written` bytes).
    buffer: Vec<u8>,
    next: u64,
    /// Records below this index are durable.
    synced_below: u64,
    unsynced_bytes: u64,
    unsynced_since: Option<Instant>,
    /// A sync handed out by [`commit_deferred`](Self::commit_deferred) and not yet reported
    /// back: the index it covers below.
    sync_in_flight: Option<u64>,
    /// Bumped by [`reset`](Self::reset), so a sync job of the old log cannot vouch for the new.
    generation: u64,
}

/// A sync to run off the appending thread (see [`Log::commit_deferred`]).
#[derive(Debug)]
pub struct SyncJob {
    handle: Box<dyn SyncHandle>,
    below: u64,
    generation: u64,
}

impl SyncJob {
    /// Runs the sync (blocking: on a blocking thread); hand the result to
    /// [`Log::handle_synced`].
    ///
    /// # Errors
    ///
    /// The I/O error; the records stay unsynced (reopen the log: the state of the file is
    /// unknown).
    pub fn run(self) -> io::Result<SyncDone> {
        self.handle.sync()?;
        Ok(SyncDone {
            below: self.below,
            generation: self.generation,
        })
    }
}

/// A finished [`SyncJob`]: every record below [`SyncDone::below`] is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncDone {
    below: u64,
    generation: u64,
}

impl SyncDone {
    /// Records below this index are durable.
    pub fn below(&self) -> u64 {
        self.below
    }
}

#[derive(Debug)]
struct Segment {
    first: u64,
    path: PathBuf,
    /// Byte offset of each record (`first + i`).
    offsets: Vec<u64>,
    /// Bytes in the segment, buffered ones included.
    bytes: u64,
    /// Bytes handed to the operating system.
    written: u64,
}

impl Log {
    /// Opens the log in `dir` (creating it if needed), recovering from a crash: a torn or
    /// corrupt end of the newest segment is cut, and older segments that do not connect to it
    /// are removed, both reported in the [`Recovery`].
    ///
    /// # Errors
    ///
    /// [`LogError::Corrupt`] or [`LogError::Misplaced`] naming the file if a sealed segment is
    /// damaged (nothing is changed then), or [`LogError::Io`].
    pub fn open(
        storage: Arc<dyn Storage>,
        dir: &Path,
        config: LogConfig,
    ) -> Result<(Self, Recovery), LogError> {
        let io = |file: &Path| {
            let file = file.to_path_buf();
            move |source| LogError::Io { file, source }
        };
        storage.create_dir_all(dir).map_err(io(dir))?;
        let mut firsts: Vec<u64> = storage
            .list(dir)
            .map_err(io(dir))?
            .iter()
            .filter_map(|name| name.strip_suffix(".log")?.parse().ok())
            .collect();
        firsts.sort_unstable();
        let mut recovery = Recovery::default();
        let mut segments: Vec<Segment> = Vec::new();
        // Newest first: the newest may end torn; each older one must be whole and end right
        // before the newer one starts, or it (and everything older) is stale.
        for (position, &first) in firsts.iter().enumerate().rev() {
            let path = segment_path(dir, first);
            if let Some(newer) = segments.last() {
                let (offsets, bytes) = scan(&*storage, &path, first)?;
                if first + offsets.len() as u64 != newer.first {
                    for &stale in &firsts[..=position] {
                        let stale = segment_path(dir, stale);
                        storage.remove_file(&stale).map_err(io(&stale))?;
                        recovery.dropped_segments.push(stale);
                    }
                    storage.sync_dir(dir).map_err(io(dir))?;
                    break;
                }
                segments.push(Segment::sealed(first, path, offsets, bytes));
            } else {
                let content = storage.read(&path).map_err(io(&path))?;
                let (offsets, good, problem) = scan_bytes(&content, first, &path)?;
                if let Some(problem) = problem {
                    storage.truncate(&path, good).map_err(io(&path))?;
                    recovery.torn_tail = Some(TornTail {
                        file: path.clone(),
                        offset: good,
                        bytes_cut: content.len() as u64 - good,
                        problem,
                    });
                }
                segments.push(Segment::sealed(first, path, offsets, good));
            }
        }
        segments.reverse();
        if segments.is_empty() {
            let path = segment_path(dir, 1);
            drop(storage.open_append(&path).map_err(io(&path))?);
            storage.sync_dir(dir).map_err(io(dir))?;
            segments.push(Segment::sealed(1, path, Vec::new(), 0));
        }
        let newest = segments.last().ok_or_else(|| LogError::Io {
            file: dir.to_path_buf(),
            source: io::Error::other("no segment"),
        })?;
        let active = storage
            .open_append(&newest.path)
            .map_err(io(&newest.path))?;
        let next = newest.first + newest.offsets.len() as u64;
        Ok((
            Self {
                storage,
                dir: dir.to_path_buf(),
                config,
                segments,
                active,
                buffer: Vec::new(),
                next,
                synced_below: next,
                unsynced_bytes: 0,
                unsynced_since: None,
                sync_in_flight: None,
                generation: 0,
            },
            recovery,
        ))
    }

    /// The first index the log holds (equal to [`next_index`](Self::next_index) when empty).
    pub fn first_index(&self) -> u64 {
        self.segments
            .first()
            .map_or(self.next, |segment| segment.first)
    }

    /// The index the next append gets.
    pub fn next_index(&self) -> u64 {
        self.next
    }

    /// Every record below this index is durable.
    pub fn synced_below(&self) -> u64 {
        self.synced_below
    }

    /// The directory holding the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The segment files, oldest first.
    pub fn segment_files(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }

    /// The first index of every segment, oldest first.
    pub(super) fn segment_firsts(&self) -> Vec<u64> {
        self.segments.iter().map(|s| s.first).collect()
    }

    /// The storage the log lives on.
    pub(super) fn storage(&self) -> Arc<dyn Storage> {
        self.storage.clone()
    }

    /// Hands buffered records to the operating system (no sync).
    pub(super) fn flush_buffer(&mut self) -> Result<(), LogError> {
        self.flush()
    }

    /// Appends a record and returns its index. It reaches the operating system at the next
    /// [`commit`](Self::commit) (or earlier, when the buffer fills).
    ///
    /// # Errors
    ///
    /// [`LogError::TooLong`] (nothing appended), or [`LogError::Io`] from sealing a full
    /// segment or flushing the buffer (reopen the log then).
    pub fn append(&mut self, payload: &[u8]) -> Result<u64, LogError> {
        if payload.len() > MAX_RECORD_LEN {
            return Err(LogError::TooLong(payload.len()));
        }
        if self.active_segment().bytes >= self.config.segment_bytes {
            self.roll()?;
        }
        let index = self.next;
        let before = self.buffer.len();
        encode_record(index, payload, &mut self.buffer);
        let added = (self.buffer.len() - before) as u64;
        let segment = self.active_segment_mut();
        segment.offsets.push(segment.bytes);
        segment.bytes += added;
        self.next += 1;
        if self.buffer.len() >= self.config.buffer_bytes {
            self.flush()?;
        }
        Ok(index)
    }

    /// Hands every appended record to the operating system and syncs as the policy says.
    ///
    /// # Errors
    ///
    /// [`LogError::Io`]; reopen the log then.
    pub fn commit(&mut self, now: Instant) -> Result<Commit, LogError> {
        self.flush()?;
        let due = match self.config.fsync {
            FsyncPolicy::Always => self.synced_below < self.next,
            FsyncPolicy::Batched {
                max_delay,
                max_bytes,
            } => {
                self.unsynced_bytes >= max_bytes
                    || self
                        .unsynced_since
                        .is_some_and(|since| now.saturating_duration_since(since) >= max_delay)
            }
            FsyncPolicy::Never => false,
        };
        if due {
            self.sync()?;
        } else if self.synced_below < self.next && self.unsynced_since.is_none() {
            self.unsynced_since = Some(now);
        }
        let sync_deadline = match (self.config.fsync, self.unsynced_since) {
            (FsyncPolicy::Batched { max_delay, .. }, Some(since)) => Some(since + max_delay),
            _ => None,
        };
        Ok(Commit {
            synced: self.synced_below.saturating_sub(1),
            sync_deadline,
        })
    }

    /// As [`commit`](Self::commit), but a sync the batched policy calls for is not run here:
    /// it comes back as a [`SyncJob`] to run on another thread while appends go on (group
    /// commit). Report its result with [`handle_synced`](Self::handle_synced); at most one
    /// job is out at a time. Other policies behave as with `commit`.
    ///
    /// # Errors
    ///
    /// [`LogError::Io`]; reopen the log then.
    pub fn commit_deferred(&mut self, now: Instant) -> Result<(Commit, Option<SyncJob>), LogError> {
        let FsyncPolicy::Batched {
            max_delay,
            max_bytes,
        } = self.config.fsync
        else {
            return Ok((self.commit(now)?, None));
        };
        self.flush()?;
        if self.synced_below < self.next && self.unsynced_since.is_none() {
            self.unsynced_since = Some(now);
        }
        let due = self.unsynced_bytes >= max_bytes
            || self
                .unsynced_since
                .is_some_and(|since| now.saturating_duration_since(since) >= max_delay);
        let mut job = None;
        if due && self.sync_in_flight.is_none() && self.synced_below < self.next {
            let path = self.active_segment().path.clone();
            let handle = self
                .active
                .sync_handle()
                .map_err(|source| LogError::Io { file: path, source })?;
            self.sync_in_flight = Some(self.next);
            self.unsynced_bytes = 0;
            self.unsynced_since = None;
            job = Some(SyncJob {
                handle,
                below: self.next,
                generation: self.generation,
            });
        }
        let sync_deadline = self.unsynced_since.map(|since| since + max_delay);
        let commit = Commit {
            synced: self.synced_below.saturating_sub(1),
            sync_deadline,
        };
        Ok((commit, job))
    }

    /// A [`SyncJob`] finished: its records are durable. Returns the new durable watermark
    /// (every record up to it is durable).
    pub fn handle_synced(&mut self, done: SyncDone) -> u64 {
        if done.generation == self.generation {
            self.synced_below = self.synced_below.max(done.below.min(self.next));
            self.sync_in_flight = None;
        }
        self.synced_below.saturating_sub(1)
    }

    /// Hands every appended record to the operating system and syncs the active segment.
    ///
    /// # Errors
    ///
    /// [`LogError::Io`]; reopen the log then.
    pub fn sync(&mut self) -> Result<(), LogError> {
        self.flush()?;
        if self.synced_below < self.next {
            let path = self.active_segment().path.clone();
            self.active
                .sync()
                .map_err(|source| LogError::Io { file: path, source })?;
            self.synced_below = self.next;
        }
        self.unsynced_bytes = 0;
        self.unsynced_since = None;
        Ok(())
    }

    /// Reads records from `from` on, as `(index, payload)`, stopping once their payloads
    /// exceed `max_bytes` (at least one record if `from` is in the log, none if it is
    /// [`next_index`](Self::next_index)).
    ///
    /// # Errors
    ///
    /// [`LogError::OutOfRange`], or the errors of reading a file back (a record that no
    /// longer verifies is [`LogError::Corrupt`]).
    pub fn read(&mut self, from: u64, max_bytes: usize) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
        let (first, bytes, path) = self.read_encoded(from, max_bytes)?;
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let (index, payload, used) =
                decode_record(&bytes[at..]).map_err(|problem| LogError::Corrupt {
                    file: path.clone(),
                    offset: at as u64,
                    problem,
                })?;
            let expected = first + out.len() as u64;
            if index != expected {
                return Err(LogError::Misplaced {
                    file: path,
                    offset: at as u64,
                    expected,
                    found: index,
                });
            }
            out.push((index, payload.to_vec()));
            at += used;
        }
        Ok(out)
    }

    /// Reads encoded records (the framing of [`encode_record`]) from `from` on, within one
    /// segment, about `max_bytes` of them (at least one record): the index of the first, the
    /// bytes, and the segment file they came from.
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read).
    pub fn read_encoded(
        &mut self,
        from: u64,
        max_bytes: usize,
    ) -> Result<(u64, Vec<u8>, PathBuf), LogError> {
        if from < self.first_index() || from > self.next {
            return Err(LogError::OutOfRange {
                index: from,
                first: self.first_index(),
                next: self.next,
            });
        }
        if from == self.next {
            return Ok((from, Vec::new(), self.active_segment().path.clone()));
        }
        let position = self
            .segments
            .partition_point(|segment| segment.first <= from)
            .saturating_sub(1);
        let segment = &self.segments[position];
        let start_slot = (from - segment.first) as usize;
        let start = segment.offsets[start_slot];
        let limit = start.saturating_add(max_bytes as u64);
        // The end of the last record that starts within the limit (at least one record).
        let end_slot = segment.offsets[start_slot + 1..]
            .iter()
            .position(|&offset| offset > limit)
            .map_or(segment.offsets.len(), |p| start_slot + 1 + p);
        let end = segment
            .offsets
            .get(end_slot)
            .copied()
            .unwrap_or(segment.bytes);
        let path = segment.path.clone();
        if end > segment.written {
            self.flush()?;
        }
        let bytes = self
            .storage
            .read_at(&path, start, (end - start) as usize)
            .map_err(io_at(&path))?;
        Ok((from, bytes, path))
    }

    /// Removes whole segments all of whose records are below `below` (never the segment
    /// being appended to), and returns how many were removed.
    ///
    /// # Errors
    ///
    /// [`LogError::Io`]; some segments may have been removed (the log stays consistent: a
    /// crash in between leaves a longer prefix).
    pub fn truncate_prefix(&mut self, below: u64) -> Result<usize, LogError> {
        let mut removed = 0;
        while self.segments.len() > 1 && self.segments[1].first <= below {
            let path = self.segments[0].path.clone();
            self.storage
                .remove_file(&path)
                .map_err(|source| LogError::Io { file: path, source })?;
            self.segments.remove(0);
            removed += 1;
        }
        if removed > 0 {
            self.storage.sync_dir(&self.dir).map_err(io_at(&self.dir))?;
        }
        Ok(removed)
    }

    /// Throws away every record and starts again at `next` (after installing a snapshot
    /// of index `next - 1`). The new segment is made durable before the old ones are removed,
    /// so a crash in between leaves either log, never a mix.
    ///
    /// # Errors
    ///
    /// [`LogError::Io`]; reopen the log then.
    pub fn reset(&mut self, next: u64) -> Result<(), LogError> {
        let next = next.max(1);
        let path = segment_path(&self.dir, next);
        let old: Vec<PathBuf> = self
            .segments
            .drain(..)
            .map(|s| s.path)
            .filter(|p| *p != path)
            .collect();
        // The old newest segment may share the name only if it is empty and starts at `next`.
        if self.storage.exists(&path) {
            self.storage.truncate(&path, 0).map_err(io_at(&path))?;
        }
        self.buffer.clear();
        self.active = self.storage.open_append(&path).map_err(io_at(&path))?;
        let dir_error = io_at(&self.dir);
        self.storage.sync_dir(&self.dir).map_err(dir_error)?;
        for stale in &old {
            self.storage.remove_file(stale).map_err(io_at(stale))?;
        }
        self.storage.sync_dir(&self.dir).map_err(io_at(&self.dir))?;
        self.segments
            .push(Segment::sealed(next, path, Vec::new(), 0));
        self.next = next;
        self.synced_below = next;
        self.generation += 1;
        self.sync_in_flight = None;
        self.unsynced_bytes = 0;
        self.unsynced_since = None;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), LogError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let segment = self.segments.last_mut().ok_or_else(|| LogError::Io {
            file: self.dir.clone(),
            source: io::Error::other("no segment"),
        })?;
        self.active
            .append(&self.buffer)
            .map_err(io_at(&segment.path))?;
        segment.written += self.buffer.len() as u64;
        self.unsynced_bytes += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }

    /// Seals the active segment (flush, sync) and starts the next one (create, sync the
    /// directory).
    fn roll(&mut self) -> Result<(), LogError> {
        self.sync()?;
        let path = segment_path(&self.dir, self.next);
        self.active = self.storage.open_append(&path).map_err(io_at(&path))?;
        self.storage.sync_dir(&self.dir).map_err(io_at(&self.dir))?;
        self.segments
            .push(Segment::sealed(self.next, path, Vec::new(), 0));
        Ok(())
    }

    fn active_segment(&self) -> &Segment {
        // Invariant: a log always has at least one segment (open and reset create one).
        &self.segments[self.segments.len() - 1]
    }

    fn active_segment_mut(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }
}

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("first", &self.first_index())
            .field("next", &self.next)
            .field("synced_below", &self.synced_below)
            .field("segments", &self.segments.len())
            .finish_non_exhaustive()
    }
}

impl Segment {
    fn sealed(first: u64, path: PathBuf, offsets: Vec<u64>, bytes: u64) -> Self {
        Self {
            first,
            path,
            offsets,
            bytes,
            written: bytes,
        }
    }
}

/// The file of the segment whose first record is `first`.
pub fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.log"))
}

/// Scans a sealed segment: every record must verify.
fn scan(storage: &dyn Storage, path: &Path, first: u64) -> Result<(Vec<u64>, u64), LogError> {
    let content = storage.read(path).map_err(|source| LogError::Io {
        file: path.to_path_buf(),
        source,
    })?;
    let (offsets, good, problem) = scan_bytes(&content, first, path)?;
    if let Some(problem) = problem {
        return Err(LogError::Corrupt {
            file: path.to_path_buf(),
            offset: good,
            problem,
        });
    }
    Ok((offsets, good))
}

/// The offsets of the good records at the start of `content`, where they end, and what is
/// wrong after them if anything.
fn scan_bytes(
    content: &[u8],
    first: u64,
    path: &Path,
) -> Result<(Vec<u64>, u64, Option<RecordError>), LogError> {
    let mut offsets = Vec::new();
    let mut at = 0;
    while at < content.len() {
        match decode_record(&content[at..]) {
            Ok((index, _, used)) => {
                let expected = first + offsets.len() as u64;
                if index != expected {
                    return Err(LogError::Misplaced {
                        file: path.to_path_buf(),
                        offset: at as u64,
                        expected,
                        found: index,
                    });
                }
                offsets.push(at as u64);
                at += used;
            }
            Err(problem) => return Ok((offsets, at as u64, Some(problem))),
        }
    }
    Ok((offsets, at as u64, None))
}

/// Maps an I/O error on `file` to [`LogError::Io`] naming that file.
fn io_at(file: &Path) -> impl FnOnce(io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        file: file.to_path_buf(),
        source,
    }
}
