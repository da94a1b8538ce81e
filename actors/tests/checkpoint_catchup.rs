//! Catch-up: over loopback TCP, and through an in-memory lossy driver that drops the
//! connection at random points, corrupts chunks and records in flight, crashes the receiver
//! and damages the sender's snapshot (seeded, bounded). The receiver must end with exactly
//! the sender's snapshot and log suffix, and never install anything corrupt.

use std::path::Path;
use std::sync::Arc;

use phalanx_actors::checkpoint::catchup::{
    self, CatchUpError, CatchUpMessage, CatchUpReceiver, CatchUpSender, Received,
};
use phalanx_actors::checkpoint::{FsyncPolicy, Log, LogConfig, MemStorage, SnapshotStore};

struct Side {
    storage: Arc<MemStorage>,
    store: SnapshotStore,
    log: Log,
}

fn side(root: &str) -> Side {
    let storage = Arc::new(MemStorage::new());
    let root = Path::new(root);
    let store = SnapshotStore::open(storage.clone(), &root.join("snapshots"), 2).unwrap();
    let config = LogConfig::new(FsyncPolicy::Never).with_segment_bytes(4096);
    let (log, _) = Log::open(storage.clone(), &root.join("log"), config).unwrap();
    Side {
        storage,
        store,
        log,
    }
}

fn entry(i: u64) -> Vec<u8> {
    format!("entry {i}").into_bytes()
}

/// A sender with entries 1..=600, a snapshot at 400 (a 20 KB body), and its log truncated
/// below the snapshot.
fn sender() -> (Side, Vec<u8>) {
    let mut side = side("/sender");
    for i in 1..=600 {
        side.log.append(&entry(i)).unwrap();
    }
    side.log.sync().unwrap();
    let body: Vec<u8> = (0..20_000u32).map(|i| (i * 31 % 251) as u8).collect();
    side.store.write(400, 2, &body).unwrap();
    side.log.truncate_prefix(401).unwrap();
    assert!(side.log.first_index() > 1, "the log no longer starts at 1");
    (side, body)
}

fn check_caught_up(receiver: &mut Side, body: &[u8]) {
    let (meta, installed) = receiver.store.load_latest().unwrap().expect("installed");
    assert_eq!((meta.header.index, meta.header.epoch), (400, 2));
    assert_eq!(installed, body);
    assert_eq!(receiver.log.first_index(), 401);
    assert_eq!(receiver.log.next_index(), 601);
    let mut index = 401;
    while index < 601 {
        for (at, bytes) in receiver.log.read(index, 1000).unwrap() {
            assert_eq!(bytes, entry(at));
            index = at + 1;
        }
    }
}

#[test]
fn catch_up_over_loopback_tcp() {
    let (mut sender, body) = sender();
    let mut receiver = side("/receiver");
    phalanx_runtime::block_on(async {
        let listener = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let serving = async {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut pinned = None;
            let mut reader = sender.log.reader().unwrap();
            catchup::serve(&mut stream, &sender.store, &mut reader, 4096, |i| {
                pinned = Some(i)
            })
            .await
            .unwrap();
            pinned
        };
        let fetching = async {
            let mut stream = async_net::TcpStream::connect(address).await.unwrap();
            let mut events = Vec::new();
            let last = catchup::fetch(&mut stream, &receiver.store, &mut receiver.log, 8192, |e| {
                events.push(e.clone())
            })
            .await
            .unwrap();
            (last, events)
        };
        let (pinned, (last, events)) = futures_lite::future::zip(serving, fetching).await;
        assert_eq!(pinned, Some(401));
        assert_eq!(last, 600);
        assert!(matches!(events[0], Received::Progress));
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Received::SnapshotInstalled(m) if m.header.index == 400))
        );
    });
    check_caught_up(&mut receiver, &body);
}

#[test]
fn catch_up_survives_drops_corruption_and_crashes() {
    let seed: u64 = std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xC4EC);
    let (mut attempts, mut rejections) = (0, 0);
    for run in 0..12u64 {
        let (a, r) = lossy_run(seed.wrapping_add(run));
        attempts += a;
        rejections += r;
    }
    // The faults happened: connections were cut and damaged snapshots were rejected.
    assert!(attempts > 24, "only {attempts} attempts in 12 runs");
    assert!(rejections > 0, "no damaged snapshot was ever rejected");
}

/// One seeded run: attempts until caught up, each attempt possibly cut, corrupted or crashed.
/// Returns the number of attempts and of rejected snapshots.
fn lossy_run(seed: u64) -> (u32, u32) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let (mut sender, body) = sender();
    let mut receiver = side("/receiver");
    let mut rejected = 0;
    let mut damaged_sender = false;
    for attempt in 0..200u32 {
        // Sometimes the sender's snapshot file is damaged on disk; it is repaired (rewritten)
        // after the receiver rejects it.
        if attempt == 1 && seed.is_multiple_of(2) {
            let meta = sender.store.latest().unwrap().unwrap();
            sender.storage.corrupt(&meta.file, 1000, 0x20).unwrap();
            damaged_sender = true;
        }
        let (mut rx, hello) = CatchUpReceiver::hello(&receiver.store, &receiver.log, 4096).unwrap();
        let hello = catchup::decode(&catchup::encode(&hello).unwrap()).unwrap();
        let mut tx = CatchUpSender::new(rng.usize(1000..4000));
        let mut reader = sender.log.reader().unwrap();
        tx.handle_hello(hello, &sender.store, &reader).unwrap();
        let cut_after = rng.u32(0..12);
        let mut outcome = Ok(());
        for sent in 0..1000u32 {
            let Some(message) = tx.next_message(&sender.store, &mut reader).unwrap() else {
                break;
            };
            if sent == cut_after && attempt < 30 {
                outcome = Err("dropped");
                break;
            }
            let mut bytes = catchup::encode(&message).unwrap();
            // Corruption in flight (a broken middlebox; TLS would catch it first).
            if attempt < 30 && rng.u32(0..50) == 0 {
                let at = rng.usize(0..bytes.len());
                bytes[at] ^= 0x08;
            }
            let Ok(message) = catchup::decode(&bytes) else {
                outcome = Err("undecodable");
                break;
            };
            match rx.handle(message, &receiver.store, &mut receiver.log) {
                Ok(_) => {}
                Err(CatchUpError::SnapshotRejected(_)) => {
                    rejected += 1;
                    outcome = Err("rejected");
                    break;
                }
                Err(_) => {
                    outcome = Err("error");
                    break;
                }
            }
        }
        // Nothing corrupt is ever installed.
        if let Some((meta, installed)) = receiver.store.load_latest().unwrap() {
            assert_eq!(meta.header.index, 400, "seed {seed}");
            assert_eq!(installed, body, "seed {seed}");
        }
        if outcome.is_ok() && rx.is_done() {
            check_caught_up(&mut receiver, &body);
            return (attempt + 1, rejected);
        }
        if damaged_sender && rejected > 0 {
            // The sender repairs its snapshot (in a cluster: it takes a new one).
            sender.store.write(400, 2, &body).unwrap();
            damaged_sender = false;
        }
        // Sometimes the receiver crashes between attempts; its partial file may be torn.
        if rng.u32(0..4) == 0 {
            receiver.storage.crash(&mut |n| n / 2);
            receiver = reopen(receiver);
        }
    }
    panic!("seed {seed}: no catch-up within 200 attempts");
}

fn reopen(old: Side) -> Side {
    let storage = old.storage;
    drop(old.log);
    let root = Path::new("/receiver");
    let store = SnapshotStore::open(storage.clone(), &root.join("snapshots"), 2).unwrap();
    let config = LogConfig::new(FsyncPolicy::Never).with_segment_bytes(4096);
    let (log, _) = Log::open(storage.clone(), &root.join("log"), config).unwrap();
    Side {
        storage,
        store,
        log,
    }
}

#[test]
fn a_receiver_that_has_the_log_gets_only_the_suffix_while_the_sender_appends() {
    let (mut sender, _) = sender();
    let mut receiver = side("/receiver");
    receiver.log.reset(451).unwrap();
    for round in 0..2u64 {
        let (mut rx, hello) = CatchUpReceiver::hello(&receiver.store, &receiver.log, 4096).unwrap();
        let mut tx = CatchUpSender::new(512);
        let mut reader = sender.log.reader().unwrap();
        let first = tx.handle_hello(hello, &sender.store, &reader).unwrap();
        assert_eq!(first, [451, 601][round as usize]);
        let mut messages = 0;
        while let Some(message) = tx.next_message(&sender.store, &mut reader).unwrap() {
            assert!(!matches!(message, CatchUpMessage::SnapshotStart { .. }));
            rx.handle(message, &receiver.store, &mut receiver.log)
                .unwrap();
            // The chain keeps writing while the catch-up streams (segments roll, too).
            if round == 0 {
                let next = sender.log.next_index();
                sender.log.append(&entry(next)).unwrap();
            }
            messages += 1;
            assert!(messages < 1000);
        }
        assert!(rx.is_done());
        if round == 0 {
            assert_eq!(receiver.log.next_index(), 601, "what the reader saw");
            sender.log.sync().unwrap();
        }
    }
    let next = sender.log.next_index();
    assert!(next > 601);
    assert_eq!(
        receiver.log.next_index(),
        next,
        "the second round got the rest"
    );
    let mut index = 451;
    while index < next {
        for (at, bytes) in receiver.log.read(index, 1000).unwrap() {
            assert_eq!(bytes, entry(at));
            index = at + 1;
        }
    }
}

#[test]
fn records_larger_than_a_chunk_still_go_through() {
    let mut sender = side("/sender");
    for i in 0..5u8 {
        sender.log.append(&[i; 3000]).unwrap();
    }
    let mut receiver = side("/receiver");
    let (mut rx, hello) = CatchUpReceiver::hello(&receiver.store, &receiver.log, 4096).unwrap();
    let mut tx = CatchUpSender::new(1000);
    let mut reader = sender.log.reader().unwrap();
    tx.handle_hello(hello, &sender.store, &reader).unwrap();
    let mut messages = 0;
    while let Some(message) = tx.next_message(&sender.store, &mut reader).unwrap() {
        let message = catchup::decode(&catchup::encode(&message).unwrap()).unwrap();
        rx.handle(message, &receiver.store, &mut receiver.log)
            .unwrap();
        messages += 1;
        assert!(messages < 100);
    }
    assert_eq!(messages, 6, "one record per message, then Done");
    assert_eq!(
        receiver.log.read(5, 10_000).unwrap(),
        vec![(5, vec![4; 3000])]
    );
}
