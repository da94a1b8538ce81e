//! Crash-point tests: a workload runs against the in-memory storage and the process "dies" at
//! every mutating operation in turn (appends torn at several byte counts); after the crash,
//! with unsynced data lost, kept or torn, recovery must give a prefix of what was written that
//! contains everything that was synced, and never garbage.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use phalanx_actors::checkpoint::{FsyncPolicy, Log, LogConfig, MemStorage, SnapshotStore, Storage};

/// What a workload knows when it dies: every payload it appended, in order (index i + 1), and
/// how many of them were durable (acknowledged by a sync).
#[derive(Debug, Default)]
struct Written {
    payloads: Vec<Vec<u8>>,
    synced: u64,
}

fn payload(i: u64) -> Vec<u8> {
    // Varying lengths, so segment boundaries fall at different records.
    let len = 5 + (i * 7 % 23) as usize;
    vec![(i % 251) as u8; len]
}

fn config(fsync: FsyncPolicy) -> LogConfig {
    LogConfig::new(fsync).with_segment_bytes(256)
}

/// Appends 40 records in commits of 3, truncating the prefix halfway; stops at the first
/// error (the "death").
fn log_workload(storage: &Arc<MemStorage>, dir: &Path, fsync: FsyncPolicy, written: &mut Written) {
    let Ok((mut log, _)) = Log::open(storage.clone(), dir, config(fsync)) else {
        return;
    };
    let now = Instant::now();
    for i in 1..=40u64 {
        if log.append(&payload(i)).is_err() {
            return;
        }
        written.payloads.push(payload(i));
        if i.is_multiple_of(3) {
            match log.commit(now) {
                Ok(commit) => written.synced = written.synced.max(commit.synced),
                Err(_) => return,
            }
        }
        if i == 20 && log.truncate_prefix(12).is_err() {
            return;
        }
    }
    if log.sync().is_ok() {
        written.synced = 40;
    }
}

/// Opens the log after a crash and checks it against what was written.
fn check_log(storage: &Arc<MemStorage>, dir: &Path, written: &Written, context: &str) {
    let (mut log, _recovery) = Log::open(storage.clone(), dir, config(FsyncPolicy::Always))
        .unwrap_or_else(|e| panic!("{context}: reopen failed: {e}"));
    let first = log.first_index();
    let next = log.next_index();
    assert!(
        next > written.synced,
        "{context}: synced up to {} but recovered up to {}",
        written.synced,
        next - 1
    );
    assert!(
        next - 1 <= written.payloads.len() as u64,
        "{context}: recovered more than was written"
    );
    let mut index = first;
    while index < next {
        let records = log
            .read(index, 64)
            .unwrap_or_else(|e| panic!("{context}: read failed: {e}"));
        assert!(!records.is_empty(), "{context}: empty read at {index}");
        for (at, bytes) in records {
            assert_eq!(at, index, "{context}");
            assert_eq!(
                bytes,
                written.payloads[(at - 1) as usize],
                "{context}: record {at} differs"
            );
            index += 1;
        }
    }
    // The log goes on working after recovery.
    let appended = log.append(b"after").expect("append after recovery");
    assert_eq!(appended, next);
    log.sync().expect("sync after recovery");
}

fn total_ops(run: impl Fn(&Arc<MemStorage>)) -> u64 {
    let storage = Arc::new(MemStorage::new());
    run(&storage);
    storage.ops()
}

#[test]
fn log_recovers_a_synced_prefix_at_every_crash_point() {
    let dir = Path::new("/node/chain/0/log");
    for fsync in [
        FsyncPolicy::Always,
        FsyncPolicy::Never,
        FsyncPolicy::Batched {
            max_delay: std::time::Duration::from_secs(3600),
            max_bytes: 100,
        },
    ] {
        let ops = total_ops(|s| log_workload(s, dir, fsync, &mut Written::default()));
        assert!(ops > 20, "the workload makes real operations");
        for op in 0..=ops {
            for torn in [0, 1, 7, 15, 16, 17, 10_000] {
                for keep in 0..3 {
                    let storage = Arc::new(MemStorage::new());
                    storage.fail_at(op, torn);
                    let mut written = Written::default();
                    log_workload(&storage, dir, fsync, &mut written);
                    storage.crash(&mut |unsynced| match keep {
                        0 => 0,
                        1 => unsynced,
                        _ => unsynced / 2 + 3,
                    });
                    let context = format!("{fsync:?}, crash at op {op}, torn {torn}, keep {keep}");
                    check_log(&storage, dir, &written, &context);
                }
            }
        }
    }
}

#[test]
fn log_reset_is_all_or_nothing_at_every_crash_point() {
    let dir = Path::new("/node/chain/0/log");
    let setup = |storage: &Arc<MemStorage>| {
        let (mut log, _) = Log::open(storage.clone(), dir, config(FsyncPolicy::Always)).unwrap();
        for i in 1..=30 {
            log.append(&payload(i)).unwrap();
        }
        log.sync().unwrap();
        log
    };
    let probe = Arc::new(MemStorage::new());
    let mut log = setup(&probe);
    let before = probe.ops();
    log.reset(101).unwrap();
    let ops = probe.ops() - before;
    for op in 0..=ops {
        let storage = Arc::new(MemStorage::new());
        let mut log = setup(&storage);
        storage.fail_at(storage.ops() + op, 0);
        let done = log.reset(101).is_ok();
        drop(log);
        storage.crash(&mut |_| 0);
        let (mut log, _) = Log::open(storage.clone(), dir, config(FsyncPolicy::Always))
            .unwrap_or_else(|e| panic!("crash at op {op}: {e}"));
        if log.next_index() == 101 {
            assert_eq!(
                log.first_index(),
                101,
                "crash at op {op}: a mix of old and new"
            );
        } else {
            assert!(!done, "crash at op {op}: a completed reset was undone");
            assert_eq!((log.first_index(), log.next_index()), (1, 31), "op {op}");
            assert_eq!(log.read(30, 10).unwrap()[0].1, payload(30));
        }
    }
}

#[test]
fn snapshot_write_is_atomic_at_every_crash_point() {
    let dir = Path::new("/node/chain/0/snapshots");
    let old_body = vec![1u8; 300];
    let new_body = vec![2u8; 500];
    let setup = |storage: &Arc<MemStorage>| {
        let store = SnapshotStore::open(storage.clone(), dir, 1).unwrap();
        store.write(10, 1, &old_body).unwrap();
        store
    };
    let probe = Arc::new(MemStorage::new());
    let store = setup(&probe);
    let before = probe.ops();
    store.write(20, 1, &new_body).unwrap();
    let ops = probe.ops() - before;
    assert!(ops >= 5, "temp write, sync, rename, dir sync, prune");
    for op in 0..=ops {
        for torn in [0, 10, 48, 100, 10_000] {
            for keep_unsynced in [false, true] {
                let storage = Arc::new(MemStorage::new());
                let store = setup(&storage);
                storage.fail_at(storage.ops() + op, torn);
                let done = store.write(20, 1, &new_body).is_ok();
                storage.crash(&mut |n| if keep_unsynced { n } else { 0 });
                let store = SnapshotStore::open(storage.clone(), dir, 1)
                    .unwrap_or_else(|e| panic!("op {op}: {e}"));
                let (meta, body) = store
                    .load_latest()
                    .unwrap_or_else(|e| panic!("op {op} torn {torn}: {e}"))
                    .expect("a snapshot survives");
                match meta.header.index {
                    20 => assert_eq!(body, new_body),
                    10 => {
                        assert!(!done, "op {op}: a completed write was lost");
                        assert_eq!(body, old_body);
                    }
                    other => panic!("op {op}: unexpected snapshot {other}"),
                }
                // No temp file survives a reopen.
                let names = storage.list(dir).unwrap();
                assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
            }
        }
    }
}

#[test]
fn identity_survives_a_crash_at_every_point() {
    use phalanx_actors::checkpoint::DataDir;
    let root = Path::new("/node");
    let probe = Arc::new(MemStorage::new());
    let first = {
        let dir = DataDir::open(probe.clone(), root).unwrap();
        dir.load_or_create_identity().unwrap()
    };
    let before = probe.ops();
    {
        let dir = DataDir::open(probe.clone(), root).unwrap();
        dir.load_or_create_identity().unwrap();
    }
    let ops = probe.ops() - before;
    for op in 0..=ops {
        let storage = Arc::new(MemStorage::new());
        let id = {
            let dir = DataDir::open(storage.clone(), root).unwrap();
            dir.load_or_create_identity().unwrap()
        };
        storage.fail_at(storage.ops() + op, 5);
        if let Ok(dir) = DataDir::open(storage.clone(), root) {
            let _ = dir.load_or_create_identity();
            std::mem::forget(dir);
        }
        storage.crash(&mut |n| n);
        // A lock left by this (same) process: remove it as an operator would after a crash.
        let _ = storage.remove_file(&root.join("LOCK"));
        let dir = DataDir::open(storage.clone(), root).unwrap();
        let again = dir
            .load_or_create_identity()
            .unwrap_or_else(|e| panic!("op {op}: {e}"));
        assert_eq!(again.id, id.id, "op {op}: identity lost");
        assert!(again.incarnation > id.incarnation, "op {op}");
    }
    assert_eq!(first.incarnation, 1);
}
