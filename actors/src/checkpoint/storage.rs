//! The filesystem seen by the log and the snapshot store: a small trait, a `std::fs` backend,
//! and an in-memory backend that can simulate a crash.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The few filesystem operations durable storage needs, with their durability made explicit.
///
/// A write is durable only after [`AppendFile::sync`]; a file's *name* (creation, rename,
/// removal) is durable only after [`sync_dir`](Storage::sync_dir) on its directory. Every call
/// blocks: call it from a blocking thread ([`phalanx_runtime::spawn_blocking`]) when inside an
/// actor.
pub trait Storage: Send + Sync + Debug + 'static {
    /// Creates `dir` and its parents.
    ///
    /// # Errors
    ///
    /// The I/O error; nothing was created past the failing component.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names of the files directly in `dir`, sorted.
    ///
    /// # Errors
    ///
    /// The I/O error (for example, `dir` does not exist).
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// The whole content of `path`.
    ///
    /// # Errors
    ///
    /// The I/O error.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Up to `len` bytes of `path` from `offset` (fewer at the end of the file).
    ///
    /// # Errors
    ///
    /// The I/O error.
    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    /// The length of `path` in bytes.
    ///
    /// # Errors
    ///
    /// The I/O error (for example, `path` does not exist).
    fn len(&self, path: &Path) -> io::Result<u64>;
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> bool;
    /// Opens `path` for appending, creating it empty if it does not exist.
    ///
    /// # Errors
    ///
    /// The I/O error.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>>;
    /// Creates `path` with `bytes`, failing if it already exists. Not synced.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::AlreadyExists`] if `path` exists, or another I/O error.
    fn create_new(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// Cuts `path` to `len` bytes and syncs it.
    ///
    /// # Errors
    ///
    /// The I/O error.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to` atomically if it exists.
    ///
    /// # Errors
    ///
    /// The I/O error; then nothing was renamed.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file `path`.
    ///
    /// # Errors
    ///
    /// The I/O error.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the names in `dir` (creations, renames, removals) durable.
    ///
    /// # Errors
    ///
    /// The I/O error.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// A file open for appending.
pub trait AppendFile: Send + Debug {
    /// Appends `bytes` (handed to the operating system; durable only after
    /// [`sync`](Self::sync)).
    ///
    /// # Errors
    ///
    /// The I/O error; a prefix of `bytes` may have been written.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes everything appended so far durable (`fdatasync`).
    ///
    /// # Errors
    ///
    /// The I/O error; what was appended may or may not be durable.
    fn sync(&mut self) -> io::Result<()>;
    /// A handle that syncs this file from another thread, while appends go on here.
    ///
    /// # Errors
    ///
    /// The I/O error (for example, no file descriptor left to duplicate).
    fn sync_handle(&self) -> io::Result<Box<dyn SyncHandle>>;
}

/// Syncs one file from any thread (see [`AppendFile::sync_handle`]).
pub trait SyncHandle: Send + Sync + std::fmt::Debug {
    /// Makes everything appended to the file before this call durable.
    ///
    /// # Errors
    ///
    /// The I/O error; what was appended may or may not be durable.
    fn sync(&self) -> io::Result<()>;
}

/// The real filesystem through `std::fs`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsStorage;

impl Storage for FsStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file()
                && let Some(name) = entry.file_name().to_str()
            {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        let mut out = Vec::with_capacity(len.min(1 << 20));
        file.take(len as u64).read_to_end(&mut out)?;
        Ok(out)
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        Ok(fs::metadata(path)?.len())
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Box::new(FsFile(file)))
    }

    fn create_new(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
        file.write_all(bytes)
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        // Opening a directory read-only and calling fsync on it is how POSIX makes its entries
        // durable; Windows cannot open directories this way and has no equivalent need.
        if cfg!(unix) {
            File::open(dir)?.sync_all()
        } else {
            Ok(())
        }
    }
}

#[derive(Debug)]
struct FsFile(File);

impl AppendFile for FsFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_handle(&self) -> io::Result<Box<dyn SyncHandle>> {
        Ok(Box::new(FsSync(self.0.try_clone()?)))
    }
}

#[derive(Debug)]
struct FsSync(File);

impl SyncHandle for FsSync {
    fn sync(&self) -> io::Result<()> {
        self.0.sync_data()
    }
}

/// An in-memory filesystem for tests, which can simulate a crash.
///
/// It keeps, for every file, what has been written and what has been synced, and for every
/// directory, the names as they are and as they were at the last [`Storage::sync_dir`].
/// [`crash`](Self::crash) throws away everything that was not durable: names revert to their
/// last synced state and each file keeps its synced content plus, as chosen by the caller, a
/// prefix of what was appended after it (a torn write).
///
/// [`fail_at`](Self::fail_at) stops the "process" at its `n`-th mutating operation: that
/// operation (an append is torn after a chosen number of bytes) and every later one fail, as
/// if the process had been killed there. Clones share the same files.
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    inner: Arc<Mutex<MemState>>,
}

#[derive(Debug, Default)]
struct MemState {
    files: BTreeMap<u64, MemFile>,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    dirs: BTreeMap<PathBuf, ()>,
    next_file: u64,
    ops: u64,
    fail_at: Option<(u64, usize)>,
    dead: bool,
    /// Bumped by every crash: handles opened before it belong to the dead process.
    boot: u64,
}

#[derive(Debug, Default, Clone)]
struct MemFile {
    current: Vec<u8>,
    durable: Vec<u8>,
    /// How many leading bytes of `current` are known equal to `durable` (a truncation that was
    /// not synced breaks the prefix relation).
    common: usize,
}

impl MemStorage {
    /// An empty filesystem.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many mutating operations (appends, syncs, creations, truncations, renames,
    /// removals, directory syncs) have been made so far.
    pub fn ops(&self) -> u64 {
        self.state().ops
    }

    /// Makes mutating operation number `op` (0-based, as [`ops`](Self::ops) counts them since
    /// the last crash) fail, and every one after it: the process "dies" there. If it is an
    /// append, its first `torn` bytes still land (unsynced).
    pub fn fail_at(&self, op: u64, torn: usize) {
        self.state().fail_at = Some((op, torn));
    }

    /// Simulates a crash and restart: unsynced names are lost, and each file keeps its synced
    /// content plus `keep(unsynced)` bytes of what was appended after it (clamped). Clears
    /// [`fail_at`](Self::fail_at) and the operation counter.
    pub fn crash(&self, keep: &mut dyn FnMut(usize) -> usize) {
        let mut state = self.state();
        state.names = state.durable_names.clone();
        let live: Vec<u64> = state.names.values().copied().collect();
        state.files.retain(|id, _| live.contains(id));
        for file in state.files.values_mut() {
            let mut survivor = file.durable.clone();
            if file.common >= file.durable.len() {
                let unsynced = file.current.len().saturating_sub(file.durable.len());
                let kept = keep(unsynced).min(unsynced);
                let start = file.durable.len();
                survivor.extend_from_slice(&file.current[start..start + kept]);
            }
            file.common = survivor.len();
            file.current = survivor.clone();
            file.durable = survivor;
        }
        state.ops = 0;
        state.fail_at = None;
        state.dead = false;
        state.boot += 1;
    }

    /// Flips the bits of `mask` in byte `offset` of `path` (as synced and as written):
    /// corruption on the medium.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] if there is no such file or byte.
    pub fn corrupt(&self, path: &Path, offset: usize, mask: u8) -> io::Result<()> {
        let mut state = self.state();
        let id = *state.names.get(path).ok_or_else(not_found)?;
        let file = state.files.get_mut(&id).ok_or_else(not_found)?;
        for content in [&mut file.current, &mut file.durable] {
            if let Some(byte) = content.get_mut(offset) {
                *byte ^= mask;
            }
        }
        if offset >= file.current.len() {
            return Err(not_found());
        }
        Ok(())
    }

    fn state(&self) -> MutexGuard<'_, MemState> {
        // A test that panicked while holding the lock leaves consistent data behind: every
        // operation updates the state in one step.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl MemState {
    /// Counts one mutating operation; `Some(torn)` if it is the one that dies (an append keeps
    /// `torn` bytes), an error if the process is already dead.
    fn step(&mut self) -> io::Result<Option<usize>> {
        if self.dead {
            return Err(crashed());
        }
        let op = self.ops;
        self.ops += 1;
        match self.fail_at {
            Some((at, torn)) if at == op => {
                self.dead = true;
                Ok(Some(torn))
            }
            _ => Ok(None),
        }
    }

    fn file(&self, path: &Path) -> io::Result<&MemFile> {
        let id = self.names.get(path).ok_or_else(not_found)?;
        self.files.get(id).ok_or_else(not_found)
    }

    fn file_mut(&mut self, path: &Path) -> io::Result<&mut MemFile> {
        let id = *self.names.get(path).ok_or_else(not_found)?;
        self.files.get_mut(&id).ok_or_else(not_found)
    }

    fn create(&mut self, path: &Path, content: Vec<u8>) -> io::Result<()> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
            && !self.dirs.contains_key(parent)
        {
            return Err(not_found());
        }
        let id = self.next_file;
        self.next_file += 1;
        self.files.insert(
            id,
            MemFile {
                current: content,
                ..MemFile::default()
            },
        );
        self.names.insert(path.to_path_buf(), id);
        Ok(())
    }
}

impl Storage for MemStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        // Directories themselves are durable at once: the crash model is about files.
        let mut state = self.state();
        for ancestor in dir.ancestors() {
            if !ancestor.as_os_str().is_empty() {
                state.dirs.insert(ancestor.to_path_buf(), ());
            }
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.state();
        if !state.dirs.contains_key(dir) {
            return Err(not_found());
        }
        Ok(state
            .names
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .filter_map(|path| path.file_name()?.to_str().map(str::to_string))
            .collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        Ok(self.state().file(path)?.current.clone())
    }

    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let state = self.state();
        let content = &state.file(path)?.current;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(content.len());
        let end = start.saturating_add(len).min(content.len());
        Ok(content[start..end].to_vec())
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        Ok(self.state().file(path)?.current.len() as u64)
    }

    fn exists(&self, path: &Path) -> bool {
        self.state().names.contains_key(path)
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        let mut state = self.state();
        if !state.names.contains_key(path) {
            if state.step()?.is_some() {
                return Err(crashed());
            }
            state.create(path, Vec::new())?;
        }
        let id = *state.names.get(path).ok_or_else(not_found)?;
        Ok(Box::new(MemAppend {
            storage: self.clone(),
            id,
            boot: state.boot,
        }))
    }

    fn create_new(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.state();
        if state.names.contains_key(path) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        if state.step()?.is_some() {
            return Err(crashed());
        }
        state.create(path, bytes.to_vec())
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut state = self.state();
        if state.step()?.is_some() {
            return Err(crashed());
        }
        let file = state.file_mut(path)?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        file.current.truncate(len);
        file.durable = file.current.clone();
        file.common = file.current.len();
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state();
        if state.step()?.is_some() {
            return Err(crashed());
        }
        let id = state.names.remove(from).ok_or_else(not_found)?;
        state.names.insert(to.to_path_buf(), id);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        if state.step()?.is_some() {
            return Err(crashed());
        }
        state.names.remove(path).map(drop).ok_or_else(not_found)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state();
        if state.step()?.is_some() {
            return Err(crashed());
        }
        let in_dir = |path: &PathBuf| path.parent() == Some(dir);
        state.durable_names.retain(|path, _| !in_dir(path));
        let current: Vec<(PathBuf, u64)> = state
            .names
            .iter()
            .filter(|(path, _)| in_dir(path))
            .map(|(path, id)| (path.clone(), *id))
            .collect();
        state.durable_names.extend(current);
        Ok(())
    }
}

#[derive(Debug)]
struct MemAppend {
    storage: MemStorage,
    /// The file itself, not its name: like a file descriptor, it still works after the name
    /// is renamed or removed.
    id: u64,
    boot: u64,
}

impl AppendFile for MemAppend {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.storage.state();
        if state.boot != self.boot {
            return Err(crashed());
        }
        let torn = state.step()?;
        let file = state.files.get_mut(&self.id).ok_or_else(not_found)?;
        match torn {
            Some(torn) => {
                file.current
                    .extend_from_slice(&bytes[..torn.min(bytes.len())]);
                Err(crashed())
            }
            None => {
                file.current.extend_from_slice(bytes);
                Ok(())
            }
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        sync_mem(&self.storage, self.id, self.boot)
    }

    fn sync_handle(&self) -> io::Result<Box<dyn SyncHandle>> {
        Ok(Box::new(MemSync {
            storage: self.storage.clone(),
            id: self.id,
            boot: self.boot,
        }))
    }
}

#[derive(Debug)]
struct MemSync {
    storage: MemStorage,
    id: u64,
    boot: u64,
}

impl SyncHandle for MemSync {
    fn sync(&self) -> io::Result<()> {
        sync_mem(&self.storage, self.id, self.boot)
    }
}

fn sync_mem(storage: &MemStorage, id: u64, boot: u64) -> io::Result<()> {
    let mut state = storage.state();
    if state.boot != boot {
        return Err(crashed());
    }
    if state.step()?.is_some() {
        return Err(crashed());
    }
    let file = state.files.get_mut(&id).ok_or_else(not_found)?;
    file.durable = file.current.clone();
    file.common = file.current.len();
    Ok(())
}

fn not_found() -> io::Error {
    io::Error::from(io::ErrorKind::NotFound)
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_keeps_only_what_was_synced() {
        let storage = MemStorage::new();
        let dir = Path::new("/d");
        storage.create_dir_all(dir).unwrap();
        let path = dir.join("f");
        let mut file = storage.open_append(&path).unwrap();
        file.append(b"abc").unwrap();
        file.sync().unwrap();
        file.append(b"def").unwrap();
        // The name was never synced: the file disappears.
        storage.crash(&mut |n| n);
        assert!(!storage.exists(&path));

        let mut file = storage.open_append(&path).unwrap();
        storage.sync_dir(dir).unwrap();
        file.append(b"abc").unwrap();
        file.sync().unwrap();
        file.append(b"def").unwrap();
        storage.crash(&mut |n| n - 1);
        assert_eq!(storage.read(&path).unwrap(), b"abcde");
        storage.crash(&mut |_| 0);
        assert_eq!(storage.read(&path).unwrap(), b"abcde");
    }

    #[test]
    fn the_failing_operation_and_all_after_it_fail() {
        let storage = MemStorage::new();
        let dir = Path::new("/d");
        storage.create_dir_all(dir).unwrap();
        let mut file = storage.open_append(&dir.join("f")).unwrap();
        storage.fail_at(storage.ops() + 1, 2);
        file.append(b"xy").unwrap();
        assert!(file.append(b"abcd").is_err());
        assert!(file.sync().is_err());
        assert_eq!(storage.read(&dir.join("f")).unwrap(), b"xyab");
    }
}
