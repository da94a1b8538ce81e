//! The log against a `Vec` model: random appends, commits, syncs, prefix truncations, crashes
//! (unsynced data lost or torn) and reopens, under every fsync policy.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use phalanx_actors::checkpoint::{FsyncPolicy, Log, LogConfig, MemStorage, decode_record};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>),
    Commit {
        later_ms: u64,
    },
    /// A group commit: the sync job (if any) is held until `RunHeld` (or lost at a crash).
    CommitDeferred {
        later_ms: u64,
    },
    RunHeld,
    Sync,
    TruncatePrefix(u8),
    Crash {
        keep: u8,
    },
    Reopen,
    Read {
        from: u8,
        max: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Op::Append),
        2 => (0u64..20).prop_map(|later_ms| Op::Commit { later_ms }),
        2 => (0u64..20).prop_map(|later_ms| Op::CommitDeferred { later_ms }),
        1 => Just(Op::RunHeld),
        1 => Just(Op::Sync),
        1 => any::<u8>().prop_map(Op::TruncatePrefix),
        1 => any::<u8>().prop_map(|keep| Op::Crash { keep }),
        1 => Just(Op::Reopen),
        1 => (any::<u8>(), 1u16..300).prop_map(|(from, max)| Op::Read { from, max }),
    ]
}

fn policy() -> impl Strategy<Value = FsyncPolicy> {
    prop_oneof![
        Just(FsyncPolicy::Always),
        Just(FsyncPolicy::Never),
        (1u64..10, 1u64..200).prop_map(|(ms, bytes)| FsyncPolicy::Batched {
            max_delay: Duration::from_millis(ms),
            max_bytes: bytes,
        }),
    ]
}

/// The model: payloads by index (1-based; truncated ones stay, the log may keep more), the
/// log's first index as far as the model knows, and how far it is durable.
struct Model {
    entries: Vec<Vec<u8>>,
    first: u64,
    synced: u64,
}

fn check(log: &mut Log, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.next_index(), model.entries.len() as u64 + 1);
    prop_assert!(log.first_index() <= model.first.max(1));
    let mut index = log.first_index();
    while index < log.next_index() {
        let records = log
            .read(index, 100)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(!records.is_empty());
        for (at, bytes) in records {
            prop_assert_eq!(at, index);
            prop_assert_eq!(&bytes, &model.entries[(at - 1) as usize]);
            index += 1;
        }
    }
    // A detached reader sees the same records.
    let mut reader = log
        .reader()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut index = reader.first_index();
    while index < reader.next_index() {
        let bytes = reader
            .read(index, 64)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(!bytes.is_empty());
        let mut at = 0;
        while at < bytes.len() {
            let (found, payload, used) = decode_record(&bytes[at..]).expect("verified record");
            prop_assert_eq!(found, index);
            prop_assert_eq!(payload, &model.entries[(index - 1) as usize][..]);
            at += used;
            index += 1;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn the_log_behaves_like_a_vec(policy in policy(), ops in proptest::collection::vec(op(), 1..80)) {
        let dir = Path::new("/n/log");
        let storage = Arc::new(MemStorage::new());
        let config = LogConfig::new(policy).with_segment_bytes(150);
        let (mut log, _) = Log::open(storage.clone(), dir, config).expect("open");
        let mut model = Model { entries: Vec::new(), first: 1, synced: 0 };
        let start = Instant::now();
        let mut clock = 0;
        let mut held: Option<phalanx_actors::checkpoint::SyncJob> = None;
        for op in ops {
            match op {
                Op::Append(payload) => {
                    let index = log.append(&payload).expect("append");
                    model.entries.push(payload);
                    prop_assert_eq!(index, model.entries.len() as u64);
                }
                Op::Commit { later_ms } => {
                    clock += later_ms;
                    let commit = log.commit(start + Duration::from_millis(clock)).expect("commit");
                    prop_assert!(commit.synced >= model.synced);
                    prop_assert!(commit.synced <= model.entries.len() as u64);
                    if policy == FsyncPolicy::Always {
                        prop_assert_eq!(commit.synced, model.entries.len() as u64);
                    }
                    model.synced = commit.synced;
                }
                Op::CommitDeferred { later_ms } => {
                    clock += later_ms;
                    let now = start + Duration::from_millis(clock);
                    let (commit, job) = log.commit_deferred(now).expect("commit");
                    prop_assert!(commit.synced >= model.synced);
                    model.synced = commit.synced;
                    if let Some(job) = job {
                        prop_assert!(held.is_none(), "one sync job at a time");
                        held = Some(job);
                    }
                }
                Op::RunHeld => {
                    if let Some(job) = held.take() {
                        let done = job.run().expect("sync");
                        model.synced = log.handle_synced(done);
                    }
                }
                Op::Sync => {
                    log.sync().expect("sync");
                    model.synced = model.entries.len() as u64;
                }
                Op::TruncatePrefix(below) => {
                    let below = u64::from(below) % (model.entries.len() as u64 + 2);
                    let before = log.first_index();
                    log.truncate_prefix(below).expect("truncate");
                    // Never past `below`, never past the segment being written.
                    prop_assert!(log.first_index() <= below.max(before));
                    model.first = model.first.max(log.first_index());
                }
                Op::Crash { keep } => {
                    // A sync job still held never ran.
                    held = None;
                    model.synced = model.synced.max(log.synced_below() - 1);
                    drop(log);
                    storage.crash(&mut |n| n * usize::from(keep) / 255);
                    let (reopened, _) = Log::open(storage.clone(), dir, config).expect("reopen");
                    log = reopened;
                    let recovered = log.next_index() - 1;
                    prop_assert!(recovered >= model.synced, "lost synced records");
                    prop_assert!(recovered <= model.entries.len() as u64);
                    model.entries.truncate(recovered as usize);
                    model.synced = recovered;
                    model.first = log.first_index();
                }
                Op::Reopen => {
                    held = None;
                    log.sync().expect("sync");
                    drop(log);
                    let (reopened, recovery) =
                        Log::open(storage.clone(), dir, config).expect("reopen");
                    prop_assert!(recovery.torn_tail.is_none());
                    log = reopened;
                    model.synced = model.entries.len() as u64;
                }
                Op::Read { from, max } => {
                    let span = log.next_index() - log.first_index() + 1;
                    let from = log.first_index() + u64::from(from) % span;
                    let records = log.read(from, usize::from(max)).expect("read");
                    if from < log.next_index() {
                        prop_assert!(!records.is_empty());
                    }
                    for (at, bytes) in records {
                        prop_assert_eq!(&bytes, &model.entries[(at - 1) as usize]);
                    }
                }
            }
            check(&mut log, &model)?;
        }
    }
}
