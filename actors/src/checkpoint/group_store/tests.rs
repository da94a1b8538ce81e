use std::path::Path;
use std::sync::Arc;

use raft::prelude::{Entry as RaftEntry, HardState};

use super::*;
use crate::checkpoint::MemStorage;

fn entry(index: u64, term: u64) -> RaftEntry {
    RaftEntry {
        index,
        term,
        data: vec![index as u8, term as u8].into(),
        ..RaftEntry::default()
    }
}

#[test]
fn entries_and_hard_state_survive_a_crash_with_raft_truncation() {
    let storage = Arc::new(MemStorage::new());
    let (mut store, recovered, _) = GroupStore::open(storage.clone(), Path::new("/g")).unwrap();
    assert_eq!(recovered, GroupRecovered::default());
    store
        .append(&[entry(1, 1), entry(2, 1), entry(3, 1)])
        .unwrap();
    let hard_state = HardState {
        term: 2,
        vote: 3,
        commit: 1,
        ..HardState::default()
    };
    store.set_hard_state(&hard_state).unwrap();
    // A new leader overwrites the uncommitted suffix from index 2.
    store.append(&[entry(2, 2)]).unwrap();
    store.sync().unwrap();
    // Written but never synced: lost in the crash.
    store.append(&[entry(3, 2)]).unwrap();
    drop(store);
    storage.crash(&mut |len| len / 3);
    let (_, recovered, _) = GroupStore::open(storage, Path::new("/g")).unwrap();
    assert_eq!(recovered.entries, vec![entry(1, 1), entry(2, 2)]);
    assert_eq!(recovered.hard_state, Some(hard_state));
}

#[test]
fn a_record_that_does_not_decode_is_an_error_naming_the_journal() {
    let storage = Arc::new(MemStorage::new());
    let (mut log, _) = Log::open(
        storage.clone(),
        Path::new("/g"),
        LogConfig::new(FsyncPolicy::Always),
    )
    .unwrap();
    log.append(&[0xff, 0xff, 0xff]).unwrap();
    log.commit(Instant::now()).unwrap();
    drop(log);
    let error = GroupStore::open(storage, Path::new("/g")).unwrap_err();
    assert!(error.to_string().contains("/g"), "{error}");
}
