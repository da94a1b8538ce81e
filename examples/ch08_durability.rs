//! Listing for "Durability and operations": a data directory on disk, a log and snapshots,
//! recovery after a restart, and what a damaged snapshot looks like.
// `mdbook test` passes no --extern, so the listing names the crate itself.
#[allow(unused_extern_crates)]
extern crate phalanx;

use std::sync::Arc;
use std::time::{Duration, Instant};

use phalanx::actors::checkpoint::{
    DataDir, FsStorage, FsyncPolicy, LogConfig, SnapshotError, Storage,
};

pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::temp_dir().join(format!("phalanx-ch08-{}", std::process::id()));
    let result = run(&root);
    let _ = std::fs::remove_dir_all(&root);
    result
}

fn run(root: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    // ANCHOR: open
    let storage: Arc<dyn Storage> = Arc::new(FsStorage);
    let dir = DataDir::open(storage.clone(), root)?; // takes the LOCK
    let identity = dir.load_or_create_identity()?; // node.id: same id, incarnation + 1
    let fsync = FsyncPolicy::Batched {
        max_delay: Duration::from_millis(5),
        max_bytes: 1 << 20,
    };
    let mut shard = dir.open_shard(0, LogConfig::new(fsync), 2)?;
    // ANCHOR_END: open
    assert_eq!(identity.incarnation, 1);

    // ANCHOR: write
    for i in 0..1_000u32 {
        shard.log.append(format!("write {i}").as_bytes())?;
    }
    // Hands the batch to the OS; syncs if 5 ms or 1 MiB have gone by unsynced.
    let commit = shard.log.commit(Instant::now())?;
    if commit.sync_deadline.is_some() {
        shard.log.sync()?; // what a driver's timer does at the deadline
    }
    // A snapshot of the state after entry 900, then the log below it can go.
    let meta = shard
        .snapshots
        .write(900, 1, b"the state machine's bytes")?;
    shard.log.truncate_prefix(901)?;
    // ANCHOR_END: write
    let snapshot_file = meta.file.clone();
    drop(shard);
    drop(dir); // releases the LOCK

    // ANCHOR: recover
    let dir = DataDir::open(storage.clone(), root)?;
    let restarted = dir.load_or_create_identity()?;
    assert_eq!((restarted.id, restarted.incarnation), (identity.id, 2));
    let mut shard = dir.open_shard(0, LogConfig::new(fsync), 2)?;
    assert!(shard.recovery.torn_tail.is_none()); // a cut tail would be reported here
    let (meta, state) = shard.snapshots.load_latest()?.ok_or("no snapshot")?;
    assert_eq!(
        (meta.header.index, &state[..]),
        (900, &b"the state machine's bytes"[..])
    );
    // Replay the log after the snapshot.
    let entries = shard.log.read(meta.header.index + 1, 1 << 20)?;
    assert_eq!(entries.len(), 100);
    assert_eq!(entries[0], (901, b"write 900".to_vec()));
    // ANCHOR_END: recover

    // ANCHOR: corrupt
    // Flip one byte of the snapshot body on disk.
    let mut bytes = std::fs::read(&snapshot_file)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&snapshot_file, &bytes)?;
    match shard.snapshots.load_latest() {
        Err(error @ SnapshotError::Corrupt { .. }) => {
            // "corrupt snapshot <dir>/chain/0/snapshots/00000000000000000900.snap:
            //  body checksum mismatch (header 0x…, body 0x…)"
            assert!(error.to_string().contains("00000000000000000900.snap"));
        }
        other => return Err(format!("expected a corrupt snapshot, got {other:?}").into()),
    }
    // ANCHOR_END: corrupt
    Ok(())
}
