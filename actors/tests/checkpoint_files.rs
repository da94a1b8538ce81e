//! The real filesystem backend, the data directory (lock, identity, shards), clear errors on
//! damaged files, and the checkpointer actor driving snapshots and truncation.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use phalanx_actors::checkpoint::{
    Captured, CheckpointActor, CheckpointMessage, CheckpointOwner, CheckpointPolicy, DataDir,
    DataDirError, FsStorage, FsyncPolicy, Log, LogConfig, LogError, MemStorage, SnapshotError,
    SnapshotStore, Storage,
};
use phalanx_runtime::{HandlerError, spawn_actor};

/// A unique directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "phalanx-ckpt-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_data_dir_on_disk_keeps_identity_log_and_snapshots() {
    let temp = TempDir::new("dir");
    let storage: Arc<dyn Storage> = Arc::new(FsStorage);
    let (id, snapshot_file) = {
        let dir = DataDir::open(storage.clone(), &temp.0).expect("open");
        // A second open while the first holds the lock fails.
        match DataDir::open(storage.clone(), &temp.0) {
            Err(DataDirError::Locked { pid, .. }) => assert_eq!(pid, std::process::id()),
            other => panic!("expected Locked, got {other:?}"),
        }
        let id = dir.load_or_create_identity().expect("identity");
        assert_eq!(id.incarnation, 1);
        let mut shard = dir
            .open_shard(
                7,
                LogConfig::new(FsyncPolicy::Always).with_segment_bytes(200),
                2,
            )
            .expect("shard");
        for i in 0..50u32 {
            shard.log.append(&i.to_le_bytes()).expect("append");
        }
        shard.log.commit(Instant::now()).expect("commit");
        let meta = shard
            .snapshots
            .write(40, 3, b"state at 40")
            .expect("snapshot");
        shard.log.truncate_prefix(30).expect("truncate");
        assert!(shard.log.first_index() <= 30);
        (id, meta.file)
    };
    assert!(snapshot_file.starts_with(temp.0.join("chain/7/snapshots")));
    let dir = DataDir::open(storage.clone(), &temp.0).expect("reopen after drop");
    let again = dir.load_or_create_identity().expect("identity");
    assert_eq!((again.id, again.incarnation), (id.id, 2));
    let mut shard = dir.open_shard(7, LogConfig::default(), 2).expect("shard");
    assert_eq!(shard.log.next_index(), 51);
    let last = shard.log.read(50, 100).expect("read");
    assert_eq!(last, vec![(50, 49u32.to_le_bytes().to_vec())]);
    let (meta, body) = shard.snapshots.load_latest().expect("load").expect("some");
    assert_eq!(
        (meta.header.index, meta.header.epoch, &body[..]),
        (40, 3, &b"state at 40"[..])
    );
}

#[test]
fn a_corrupt_sealed_segment_is_an_error_naming_the_file() {
    let storage = Arc::new(MemStorage::new());
    let dir = Path::new("/n/log");
    let config = LogConfig::new(FsyncPolicy::Always).with_segment_bytes(100);
    let (mut log, _) = Log::open(storage.clone(), dir, config).unwrap();
    for i in 0..30u8 {
        log.append(&[i; 20]).unwrap();
    }
    log.sync().unwrap();
    let first_segment = log.segment_files()[0].clone();
    drop(log);
    storage.corrupt(&first_segment, 20, 0x10).unwrap();
    let error = Log::open(storage.clone(), dir, config).unwrap_err();
    assert!(matches!(error, LogError::Corrupt { ref file, .. } if *file == first_segment));
    let text = error.to_string();
    assert!(
        text.contains(&first_segment.display().to_string()),
        "{text}"
    );
    assert!(text.contains("checksum"), "{text}");
}

#[test]
fn a_corrupt_tail_is_cut_and_reported() {
    let storage = Arc::new(MemStorage::new());
    let dir = Path::new("/n/log");
    let config = LogConfig::new(FsyncPolicy::Always);
    let (mut log, _) = Log::open(storage.clone(), dir, config).unwrap();
    for i in 0..10u8 {
        log.append(&[i; 10]).unwrap();
    }
    log.sync().unwrap();
    let segment = log.segment_files()[0].clone();
    drop(log);
    // Damage the 8th record (26 bytes each).
    storage.corrupt(&segment, 7 * 26 + 20, 0x01).unwrap();
    let (log, recovery) = Log::open(storage.clone(), dir, config).unwrap();
    assert_eq!(log.next_index(), 8);
    let torn = recovery.torn_tail.expect("reported");
    assert_eq!(
        (torn.file, torn.offset, torn.bytes_cut),
        (segment, 7 * 26, 3 * 26)
    );
}

#[test]
fn a_corrupt_snapshot_is_an_error_naming_the_file_and_the_problem() {
    let storage = Arc::new(MemStorage::new());
    let dir = Path::new("/n/snapshots");
    let store = SnapshotStore::open(storage.clone(), dir, 3).unwrap();
    let meta = store.write(5, 1, &[7; 100]).unwrap();
    storage.corrupt(&meta.file, 60, 0x04).unwrap();
    let error = store.load_latest().unwrap_err();
    assert!(matches!(error, SnapshotError::Corrupt { ref file, .. } if *file == meta.file));
    let text = error.to_string();
    assert!(
        text.contains("00000000000000000005.snap") && text.contains("body checksum"),
        "{text}"
    );
    // A damaged header is named too.
    storage.corrupt(&meta.file, 2, 0x04).unwrap();
    let text = store.latest().unwrap_err().to_string();
    assert!(text.contains("bad magic"), "{text}");
}

#[test]
fn a_corrupt_identity_file_is_an_error_naming_it() {
    let temp = TempDir::new("id");
    let storage: Arc<dyn Storage> = Arc::new(FsStorage);
    {
        let dir = DataDir::open(storage.clone(), &temp.0).unwrap();
        dir.load_or_create_identity().unwrap();
    }
    std::fs::write(temp.0.join("node.id"), b"garbage").unwrap();
    let dir = DataDir::open(storage, &temp.0).unwrap();
    let text = dir.load_or_create_identity().unwrap_err().to_string();
    assert!(
        text.contains("node.id") && text.contains("wrong length"),
        "{text}"
    );
}

/// A fake chain: a counter as the state, a log in memory, what was truncated.
struct Owner {
    applied: Arc<Mutex<u64>>,
    truncated: Arc<Mutex<Vec<u64>>>,
}

impl CheckpointOwner for Owner {
    async fn capture(&mut self) -> Result<Captured, HandlerError> {
        let index = *self.applied.lock().unwrap();
        Ok(Captured {
            index,
            epoch: 1,
            serialize: Box::new(move || index.to_le_bytes().to_vec()),
        })
    }

    async fn truncate_log(&mut self, below: u64) -> Result<(), HandlerError> {
        self.truncated.lock().unwrap().push(below);
        Ok(())
    }
}

#[test]
fn the_actor_snapshots_on_size_and_truncates_below() {
    let storage = Arc::new(MemStorage::new());
    let store = SnapshotStore::open(storage.clone(), Path::new("/n/snapshots"), 2).unwrap();
    let applied = Arc::new(Mutex::new(0));
    let truncated = Arc::new(Mutex::new(Vec::new()));
    let owner = Owner {
        applied: applied.clone(),
        truncated: truncated.clone(),
    };
    let policy = CheckpointPolicy {
        max_log_entries: 100,
        retain_entries: 10,
        ..CheckpointPolicy::default()
    };
    let actor = CheckpointActor::new(
        owner,
        store.clone(),
        policy,
        0,
        1,
        Duration::from_secs(3600),
    );
    phalanx_runtime::block_on(async {
        let checkpointer = spawn_actor(actor);
        let wait = Duration::from_secs(10);
        // A catch-up pins index 50 before the snapshot.
        let pin = checkpointer
            .ask(|reply| CheckpointMessage::Pin { index: 50, reply }, wait)
            .await
            .unwrap();
        *applied.lock().unwrap() = 150;
        checkpointer
            .tell(CheckpointMessage::Appended {
                index: 150,
                bytes: 1500,
            })
            .await
            .unwrap();
        let status = checkpointer
            .ask(CheckpointMessage::Status, wait)
            .await
            .unwrap();
        assert_eq!((status.snapshot_index, status.snapshots_written), (150, 1));
        assert_eq!(*truncated.lock().unwrap(), vec![50], "held at the pin");
        checkpointer
            .tell(CheckpointMessage::Unpin(pin))
            .await
            .unwrap();
        let status = checkpointer
            .ask(CheckpointMessage::Status, wait)
            .await
            .unwrap();
        assert_eq!(status.truncated_below, 141, "snapshot + 1 - retained");
        // Forced snapshot.
        *applied.lock().unwrap() = 160;
        checkpointer
            .tell(CheckpointMessage::Appended {
                index: 160,
                bytes: 10,
            })
            .await
            .unwrap();
        let index = checkpointer
            .ask(CheckpointMessage::SnapshotNow, wait)
            .await
            .unwrap();
        assert_eq!(index, 160);
        checkpointer.stop();
        checkpointer.wait().await;
    });
    let (meta, body) = store.load_latest().unwrap().unwrap();
    assert_eq!(
        (meta.header.index, body),
        (160, 160u64.to_le_bytes().to_vec())
    );
    assert_eq!(store.list().unwrap().len(), 2, "keeps the newest two");
}
