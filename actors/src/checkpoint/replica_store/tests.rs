use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::*;
use crate::chain::{ClientId, KvCommand, KvMap, StateMachine};
use crate::checkpoint::MemStorage;

fn entry(seq: u64) -> Entry<KvMap> {
    Entry {
        seq,
        client: ClientId(1),
        request: seq,
        acked_below: 0,
        command: KvCommand::Put {
            key: format!("k{seq}"),
            value: vec![seq as u8; 4],
        },
    }
}

fn snapshot(committed: u64) -> Snapshot<KvMap> {
    let mut machine = KvMap::default();
    for seq in 1..=committed {
        machine.apply(&entry(seq).command);
    }
    Snapshot {
        committed,
        state: machine.snapshot(),
        sessions: BTreeMap::new(),
    }
}

fn open(storage: &Arc<MemStorage>) -> (ReplicaStore, Opened<KvMap>) {
    // Small segments, so that truncation removes some.
    let config = LogConfig::new(FsyncPolicy::Always).with_segment_bytes(64);
    ReplicaStore::open(storage.clone(), Path::new("/r"), config).unwrap()
}

/// A store with incarnation 1 holding entries `1..=last`, caught up in `epoch`.
fn holding(storage: &Arc<MemStorage>, last: u64, epoch: u64) -> ReplicaStore {
    let (mut store, _) = open(storage);
    store.set_incarnation(1).unwrap();
    store
        .write(
            vec![
                JournalOp::Append((1..=last).map(entry).collect()),
                JournalOp::Synced(epoch),
            ],
            Instant::now(),
        )
        .unwrap();
    store
}

#[test]
fn a_fresh_store_recovers_nothing_and_keeps_its_incarnation() {
    let storage = Arc::new(MemStorage::new());
    let (mut store, opened) = open(&storage);
    assert_eq!(opened.meta, None);
    assert_eq!(opened.recovered, Recovered::empty());
    store.set_incarnation(7).unwrap();
    drop(store);
    storage.crash(&mut |_| 0);
    let (_, opened) = open(&storage);
    assert_eq!(
        opened.meta,
        Some(ReplicaMeta {
            incarnation: 7,
            synced_epoch: 0,
            adopted_epoch: 0,
        })
    );
}

#[test]
fn appended_and_synced_state_survives_a_crash() {
    let storage = Arc::new(MemStorage::new());
    let (mut store, _) = open(&storage);
    store.set_incarnation(3).unwrap();
    let ops = vec![
        JournalOp::Append((1..=3).map(entry).collect()),
        JournalOp::Synced(2),
        JournalOp::Append(vec![entry(4)]),
    ];
    store.write(ops, Instant::now()).unwrap();
    drop(store);
    storage.crash(&mut |_| 0);
    let (_, opened) = open(&storage);
    assert_eq!(opened.meta.map(|m| m.incarnation), Some(3));
    assert_eq!(opened.recovered.synced_epoch, 2);
    assert_eq!(opened.recovered.snapshot, None);
    assert_eq!(
        opened.recovered.entries,
        (1..=4).map(entry).collect::<Vec<_>>()
    );
}

#[test]
fn a_replaced_state_vouches_for_nothing_until_synced_again() {
    let storage = Arc::new(MemStorage::new());
    let mut store = holding(&storage, 2, 4);
    store
        .write::<KvMap>(vec![JournalOp::Reset(Some(snapshot(5)))], Instant::now())
        .unwrap();
    let (_, opened) = open(&storage);
    assert_eq!(opened.recovered.synced_epoch, 0);
    assert_eq!(opened.recovered.snapshot, Some(snapshot(5)));
    assert!(opened.recovered.entries.is_empty());

    let (mut store, _) = open(&storage);
    store
        .write(
            vec![JournalOp::Append(vec![entry(6)]), JournalOp::Synced(5)],
            Instant::now(),
        )
        .unwrap();
    drop(store);
    storage.crash(&mut |_| 0);
    let (_, opened) = open(&storage);
    assert_eq!(opened.recovered.synced_epoch, 5);
    assert_eq!(opened.recovered.snapshot, Some(snapshot(5)));
    assert_eq!(opened.recovered.entries, vec![entry(6)]);
}

#[test]
fn a_crash_at_any_step_of_a_replacement_never_vouches_for_a_mixed_state() {
    // Count the storage operations of a whole replacement, then crash after each of them.
    let prepare = |storage: &Arc<MemStorage>| holding(storage, 6, 2);
    let storage = Arc::new(MemStorage::new());
    let mut store = prepare(&storage);
    let before = storage.ops();
    store
        .write::<KvMap>(
            vec![
                JournalOp::Reset(Some(snapshot(3))),
                JournalOp::Append(vec![entry(4)]),
                JournalOp::Synced(3),
            ],
            Instant::now(),
        )
        .unwrap();
    let steps = storage.ops() - before;
    assert!(steps > 5, "a replacement takes several storage operations");
    for step in 0..steps {
        let storage = Arc::new(MemStorage::new());
        let mut store = prepare(&storage);
        storage.fail_at(storage.ops() + step, 1);
        let result = store.write::<KvMap>(
            vec![
                JournalOp::Reset(Some(snapshot(3))),
                JournalOp::Append(vec![entry(4)]),
                JournalOp::Synced(3),
            ],
            Instant::now(),
        );
        assert!(result.is_err(), "step {step} of {steps} should fail");
        drop(store);
        storage.crash(&mut |len| len / 2);
        let (_, opened) = open(&storage);
        let recovered = opened.recovered;
        let old: Vec<_> = (1..=6).map(entry).collect();
        match recovered.synced_epoch {
            // Still vouching: the old state, whole.
            2 => {
                assert_eq!(recovered.snapshot, None, "step {step}");
                assert_eq!(recovered.entries, old, "step {step}");
            }
            // Vouching for nothing: anything is allowed (it will be replaced).
            0 => {}
            other => panic!("step {step}: synced epoch {other}"),
        }
    }
}

#[test]
fn a_stale_snapshot_is_not_installed_after_a_replacement() {
    let storage = Arc::new(MemStorage::new());
    let (mut store, _) = open(&storage);
    store.set_incarnation(1).unwrap();
    let stale = snapshot(9);
    let job = store.snapshot_job(
        9,
        1,
        Box::new(move || postcard::to_allocvec(&stale).unwrap_or_default()),
    );
    store
        .write::<KvMap>(vec![JournalOp::Reset(None)], Instant::now())
        .unwrap();
    assert!(job.run().unwrap().is_none());
    let (_, opened) = open(&storage);
    assert_eq!(opened.recovered.snapshot, None);
}

#[test]
fn snapshots_and_truncation_keep_the_state() {
    let storage = Arc::new(MemStorage::new());
    let mut store = holding(&storage, 8, 1);
    let snap = snapshot(5);
    let job = store.snapshot_job(
        5,
        1,
        Box::new(move || postcard::to_allocvec(&snap).unwrap_or_default()),
    );
    assert!(job.run().unwrap().is_some());
    store.truncate_below(100).unwrap();
    assert!(
        (2..=6).contains(&store.log_first()),
        "{}",
        store.log_first()
    );
    drop(store);
    storage.crash(&mut |_| 0);
    let (_, opened) = open(&storage);
    assert_eq!(opened.recovered.snapshot, Some(snapshot(5)));
    assert_eq!(
        opened.recovered.entries,
        (6..=8).map(entry).collect::<Vec<_>>()
    );
    assert_eq!(opened.recovered.synced_epoch, 1);
}

#[test]
fn a_corrupt_metadata_file_is_an_error_naming_it() {
    let storage = Arc::new(MemStorage::new());
    let (mut store, _) = open(&storage);
    store.set_incarnation(1).unwrap();
    drop(store);
    storage
        .corrupt(Path::new("/r/replica.meta"), 9, 0x40)
        .unwrap();
    let error = ReplicaStore::open::<KvMap>(
        storage.clone(),
        Path::new("/r"),
        LogConfig::new(FsyncPolicy::Always),
    )
    .unwrap_err();
    assert!(error.to_string().contains("/r/replica.meta"), "{error}");
}

#[test]
fn without_fsync_on_every_commit_a_restarted_replica_vouches_for_nothing() {
    let storage = Arc::new(MemStorage::new());
    let config = LogConfig::new(FsyncPolicy::Never);
    let (mut store, _) =
        ReplicaStore::open::<KvMap>(storage.clone(), Path::new("/r"), config).unwrap();
    store.set_incarnation(1).unwrap();
    store
        .write(
            vec![JournalOp::Append(vec![entry(1)]), JournalOp::Synced(3)],
            Instant::now(),
        )
        .unwrap();
    let (_, opened) = ReplicaStore::open::<KvMap>(storage, Path::new("/r"), config).unwrap();
    assert_eq!(opened.recovered.synced_epoch, 0);
}
