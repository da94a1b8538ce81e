//! Checkpoint figures: snapshot time and size for 1M keys, catch-up of a fresh replica over
//! loopback TCP next to a raw TCP copy of the same bytes in the same run, and log write
//! throughput under each fsync policy next to the in-memory backend.
//!
//! Run with `cargo run --release -p phalanx-actors --example checkpoint_bench`.
//! `BENCH_KEYS=n` changes the number of keys (default 1,000,000); files go to a fresh
//! directory under the system temp dir (on the same disk a data dir would use), removed at
//! the end.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use phalanx_actors::chain::{KvCommand, KvMap, StateMachine};
use phalanx_actors::checkpoint::{
    FsStorage, FsyncPolicy, Log, LogConfig, LogReader, MemStorage, SnapshotStore, Storage, SyncJob,
    catchup,
};

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const VALUE: usize = 100;
const LOG_ENTRIES: u64 = 10_000;

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main() -> BenchResult<()> {
    let keys: u64 = std::env::var("BENCH_KEYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let temp =
        TempDir(std::env::temp_dir().join(format!("phalanx-ckpt-bench-{}", std::process::id())));
    let fs: Arc<dyn Storage> = Arc::new(FsStorage);

    // 1. Snapshot of a KvMap with `keys` keys of 100-byte values.
    let mut map = KvMap::default();
    for i in 0..keys {
        map.apply(&KvCommand::Put {
            key: format!("key{i:010}"),
            value: vec![(i % 251) as u8; VALUE],
        });
    }
    let start = Instant::now();
    let copy = map.clone();
    let clone = start.elapsed();
    let start = Instant::now();
    let body = copy.snapshot();
    let serialize = start.elapsed();
    let store = SnapshotStore::open(fs.clone(), &temp.0.join("sender/snapshots"), 2)?;
    let start = Instant::now();
    let meta = store.write(keys, 1, &body)?;
    let write = start.elapsed();
    let start = Instant::now();
    let loaded = store.load(&meta)?;
    let mut restored = KvMap::default();
    restored.restore(&loaded)?;
    let restore = start.elapsed();
    assert_eq!(restored.len() as u64, keys);
    drop((copy, loaded, restored, map));
    println!("snapshot of {keys} keys ({VALUE} B values):");
    println!(
        "  size {:.1} MB; clone (writes pause) {}; serialize {}; write+fsync+rename {}; load+verify+restore {}",
        body.len() as f64 / 1e6,
        ms(clone),
        ms(serialize),
        ms(write),
        ms(restore)
    );

    // 2. Catch-up of a fresh replica: the snapshot plus a log suffix, over loopback TCP.
    let (mut sender_log, _) = Log::open(
        fs.clone(),
        &temp.0.join("sender/log"),
        LogConfig::new(FsyncPolicy::Never),
    )?;
    sender_log.reset(keys + 1)?;
    for i in 0..LOG_ENTRIES {
        sender_log.append(&[(i % 251) as u8; VALUE])?;
    }
    sender_log.sync()?;
    let log_bytes: u64 = sender_log
        .segment_files()
        .iter()
        .map(|f| fs.len(f).unwrap_or(0))
        .sum();
    let total = meta.header.len + log_bytes;
    let raw = raw_copy(total, None)?;
    let raw_file = raw_copy(total, Some(temp.0.join("raw-copy")))?;
    let _ = std::fs::remove_file(temp.0.join("raw-copy"));
    // The same catch-up into the in-memory backend: the protocol's cost without the disk.
    let memory: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let mut reader = sender_log.reader()?;
    let (in_memory, _) = catch_up(&memory, Path::new("/mem"), store.clone(), &mut reader)?;
    let (catch_up, last) = catch_up(&fs, &temp.0, store, &mut reader)?;
    assert_eq!(last, keys + LOG_ENTRIES);
    drop(memory);
    let _ = std::fs::remove_dir_all(temp.0.join("receiver"));
    println!(
        "catch-up of a fresh replica ({:.1} MB: snapshot + {LOG_ENTRIES} log entries):",
        total as f64 / 1e6
    );
    let row = |label: &str, d: Duration| {
        println!(
            "  {label:<44} {:>8} {:>6.0} MB/s {:>6.2}x raw",
            ms(d),
            total as f64 / 1e6 / d.as_secs_f64(),
            d.as_secs_f64() / raw.as_secs_f64()
        );
    };
    row("raw TCP copy, memory to memory", raw);
    row("raw TCP copy into a file + fsync", raw_file);
    row("catch-up into the in-memory backend", in_memory);
    row("catch-up to disk, durable install", catch_up);

    // 3. Log write throughput, 100-byte records committed in batches of 100.
    println!("log writes, {VALUE} B records, commit every 100:");
    let memory = log_throughput(
        Arc::new(MemStorage::new()),
        Path::new("/mem/log"),
        FsyncPolicy::Never,
        keys,
    )?;
    println!(
        "  {:<40} {:>10.0} records/s {:>7.1} MB/s",
        "in-memory backend",
        memory,
        memory * VALUE as f64 / 1e6
    );
    let batched = FsyncPolicy::Batched {
        max_delay: Duration::from_millis(5),
        max_bytes: 1 << 20,
    };
    let policies = [
        ("fsync never", FsyncPolicy::Never, keys, false),
        (
            "fsync batched (5 ms or 1 MiB), inline",
            batched,
            keys,
            false,
        ),
        ("fsync batched, group commit", batched, keys, true),
        (
            "fsync always (every commit)",
            FsyncPolicy::Always,
            keys / 20,
            false,
        ),
    ];
    for (n, (label, policy, records, group)) in policies.into_iter().enumerate() {
        let dir = temp.0.join(format!("log-{n}"));
        let rate = if group {
            group_commit_throughput(fs.clone(), &dir, policy, records)?
        } else {
            log_throughput(fs.clone(), &dir, policy, records)?
        };
        let _ = std::fs::remove_dir_all(&dir);
        println!(
            "  {label:<40} {rate:>10.0} records/s {:>7.1} MB/s   {:.0}% of in-memory",
            rate * VALUE as f64 / 1e6,
            100.0 * rate / memory
        );
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

/// Appends `records` records and commits every 100; records per second.
fn log_throughput(
    storage: Arc<dyn Storage>,
    dir: &Path,
    policy: FsyncPolicy,
    records: u64,
) -> BenchResult<f64> {
    let (mut log, _) = Log::open(storage, dir, LogConfig::new(policy))?;
    let payload = [7u8; VALUE];
    let start = Instant::now();
    for i in 1..=records {
        log.append(&payload)?;
        if i % 100 == 0 {
            log.commit(Instant::now())?;
        }
    }
    log.sync()?;
    Ok(records as f64 / start.elapsed().as_secs_f64())
}

/// As [`log_throughput`], with the batched policy's syncs run on a second thread while
/// appends go on (what a driver does with `commit_deferred` and a blocking thread).
fn group_commit_throughput(
    storage: Arc<dyn Storage>,
    dir: &Path,
    policy: FsyncPolicy,
    records: u64,
) -> BenchResult<f64> {
    let (mut log, _) = Log::open(storage, dir, LogConfig::new(policy))?;
    let (jobs, job_rx) = std::sync::mpsc::channel::<SyncJob>();
    let (done_tx, done) = std::sync::mpsc::channel();
    let syncer = std::thread::spawn(move || {
        for job in job_rx {
            if done_tx.send(job.run()).is_err() {
                break;
            }
        }
    });
    let payload = [7u8; VALUE];
    let start = Instant::now();
    for i in 1..=records {
        log.append(&payload)?;
        if i % 100 == 0 {
            while let Ok(finished) = done.try_recv() {
                log.handle_synced(finished?);
            }
            if let (_, Some(job)) = log.commit_deferred(Instant::now())? {
                jobs.send(job)?;
            }
        }
    }
    drop(jobs);
    for finished in done.iter() {
        log.handle_synced(finished?);
    }
    log.sync()?;
    let rate = records as f64 / start.elapsed().as_secs_f64();
    let _ = syncer.join();
    Ok(rate)
}

/// Copies `total` bytes over loopback TCP with plain threads and 64 KiB writes, into memory
/// or into a file that is then synced.
fn raw_copy(total: u64, file: Option<PathBuf>) -> BenchResult<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let start = Instant::now();
    let server = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut stream, _) = listener.accept()?;
        let chunk = vec![7u8; 64 * 1024];
        let mut sent = 0;
        while sent < total {
            let n = (total - sent).min(chunk.len() as u64) as usize;
            stream.write_all(&chunk[..n])?;
            sent += n as u64;
        }
        Ok(sent)
    });
    let mut stream = TcpStream::connect(address)?;
    let mut out = match &file {
        Some(path) => Some(std::fs::File::create(path)?),
        None => None,
    };
    let mut buffer = vec![0; 64 * 1024];
    let mut received = 0;
    while received < total {
        match stream.read(&mut buffer)? {
            0 => break,
            n => {
                if let Some(out) = &mut out {
                    out.write_all(&buffer[..n])?;
                }
                received += n as u64;
            }
        }
    }
    if let Some(out) = out {
        out.sync_all()?;
    }
    let elapsed = start.elapsed();
    let _ = server.join();
    assert_eq!(received, total);
    Ok(elapsed)
}

/// Serves a catch-up from `store` and `log` in a thread, fetches it into a fresh replica's
/// directories on disk, and returns the time to a durable install and the last index.
fn catch_up(
    fs: &Arc<dyn Storage>,
    root: &Path,
    store: SnapshotStore,
    log: &mut LogReader,
) -> BenchResult<(Duration, u64)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let receiver_store = SnapshotStore::open(fs.clone(), &root.join("receiver/snapshots"), 2)?;
    let (mut receiver_log, _) = Log::open(
        fs.clone(),
        &root.join("receiver/log"),
        LogConfig::new(FsyncPolicy::Never),
    )?;
    let start = Instant::now();
    std::thread::scope(|scope| {
        let server = scope.spawn(move || -> BenchResult<()> {
            let (stream, _) = listener.accept()?;
            let mut stream = async_net::TcpStream::try_from(stream)?;
            let serve = catchup::serve(&mut stream, &store, log, 1 << 20, |_| {});
            phalanx_runtime::block_on(serve)?;
            Ok(())
        });
        let stream = TcpStream::connect(address)?;
        let mut stream = async_net::TcpStream::try_from(stream)?;
        let fetch = catchup::fetch(
            &mut stream,
            &receiver_store,
            &mut receiver_log,
            64 << 20,
            |_| {},
        );
        let last = phalanx_runtime::block_on(fetch)?;
        let elapsed = start.elapsed();
        server.join().map_err(|_| "server thread panicked")??;
        Ok((elapsed, last))
    })
}
