//! Chain replication throughput and latency: a three-node chain of separate `serve` processes
//! of this binary on loopback, and a client-only node in this process keeping many requests
//! outstanding through `Node::kv` (pipelining; the replicas batch what they forward).
//!
//! `cargo run --release -p phalanx-bench --bin chain_bench -- [--seconds N] [--inflight N]
//! [--keys N] [--value BYTES] [--durable] [MIX...]` prints one markdown table: per mix,
//! operations and writes per second, and p50/p99 latency of writes and reads. Mixes: `write`
//! (100 % writes), `read` (100 % reads), `a` (YCSB-like A: 50 % reads), `b` (YCSB-like B:
//! 95 % reads). `--durable` gives every node a data directory in the system's temp dir (the
//! replicas then sync their journal at every group commit), removed at the end. Every process
//! runs one worker thread (`CHAIN_BENCH_WORKERS` sets the chain nodes',
//! `CHAIN_BENCH_CLIENT_WORKERS` the client's). The last column is the CPU time of all four
//! processes per operation.
//!
//! `--catchup` measures instead how long a fresh replica takes to catch up: after writing
//! every key once, a fourth node starts, one chain member is killed, and the time from the
//! new node's entry into the configuration until it holds every write is reported next to
//! copying the same key and value bytes over a raw loopback TCP connection in this process.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use phalanx::Runtime;
use phalanx::node::{Kv, Node, NodeConfig, chain_status_of, cluster_id};
use phalanx::transports::Key;

const USAGE: &str = "usage: chain_bench [--seconds N] [--inflight N] [--keys N] [--value BYTES] \
                     [--durable] [--catchup] [write|read|a|b ...]";
const SERVE: &str = "serve";

/// The `phalanx` binary's allocator, so that the node processes this binary starts run as
/// `phalanx node` does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
const KEY_VAR: &str = "CHAIN_BENCH_KEY";

#[derive(Debug, Clone)]
struct Options {
    seconds: u64,
    inflight: usize,
    keys: u64,
    value: usize,
    durable: bool,
    catchup: bool,
    mixes: Vec<(&'static str, u32)>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = if args.first().map(String::as_str) == Some(SERVE) {
        serve(&args[1..])
    } else {
        parse(&args).and_then(|options| run(&options))
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chain_bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        seconds: 5,
        inflight: 512,
        keys: 10_000,
        value: 100,
        durable: false,
        catchup: false,
        mixes: Vec::new(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number\n{USAGE}"))
        };
        match arg.as_str() {
            "--seconds" => options.seconds = number("--seconds")?.max(1),
            "--inflight" => options.inflight = number("--inflight")?.max(1) as usize,
            "--keys" => options.keys = number("--keys")?.max(1),
            "--value" => options.value = number("--value")? as usize,
            "--durable" => options.durable = true,
            "--catchup" => options.catchup = true,
            "write" => options.mixes.push(("write (0% reads)", 0)),
            "read" => options.mixes.push(("read (100% reads)", 100)),
            "a" => options.mixes.push(("YCSB A (50% reads)", 50)),
            "b" => options.mixes.push(("YCSB B (95% reads)", 95)),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if options.mixes.is_empty() {
        options.mixes = vec![
            ("write (0% reads)", 0),
            ("read (100% reads)", 100),
            ("YCSB A (50% reads)", 50),
            ("YCSB B (95% reads)", 95),
        ];
    }
    Ok(options)
}

/// A chain node process of this binary, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> Result<SocketAddr, String> {
    for _ in 0..100 {
        let Ok(tcp) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = tcp.local_addr() else { continue };
        if UdpSocket::bind(addr).is_ok() {
            return Ok(addr);
        }
    }
    Err("no free loopback port".into())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn key_from_env() -> Result<Key, String> {
    let text = std::env::var(KEY_VAR).map_err(|_| format!("{KEY_VAR} is not set"))?;
    let mut bytes = [0u8; 32];
    if text.len() != 64 || !text.is_ascii() {
        return Err(format!("{KEY_VAR} must be 64 hex digits"));
    }
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
            .map_err(|_| format!("{KEY_VAR} must be 64 hex digits"))?;
    }
    Ok(Key::from_bytes(bytes))
}

fn node_config(key: &Key, listen: SocketAddr, group: &[SocketAddr]) -> NodeConfig {
    let mut config = NodeConfig::new(listen);
    config.key = Some(key.clone());
    config.seeds = group.iter().copied().filter(|a| *a != listen).collect();
    config.chain_group = group.to_vec();
    config.gossip.probe_interval = Duration::from_millis(200);
    config.gossip.probe_timeout = Duration::from_millis(100);
    config
}

/// `serve ADDR GROUP [DATA_DIR]`: one chain node until stdin closes (the parent ended).
fn serve(args: &[String]) -> Result<(), String> {
    let (Some(listen), Some(group)) = (args.first(), args.get(1)) else {
        return Err("serve needs ADDR and GROUP".into());
    };
    let listen: SocketAddr = listen.parse().map_err(|e| format!("{listen}: {e}"))?;
    let group: Vec<SocketAddr> = group
        .split(',')
        .map(|a| a.parse().map_err(|e| format!("{a}: {e}")))
        .collect::<Result<_, String>>()?;
    let key = key_from_env()?;
    // One worker per node process: three nodes and the client share the machine's cores, and
    // more threads than cores only add context switches.
    let workers = std::env::var("CHAIN_BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let runtime = Runtime::builder()
        .worker_threads(workers)
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let mut config = node_config(&key, listen, &group);
        config.data_dir = args.get(2).map(std::path::PathBuf::from);
        let node = Node::start(config).await.map_err(|e| e.to_string())?;
        let _ = phalanx::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        })
        .await;
        node.shutdown().await;
        Ok::<(), String>(())
    })?;
    let _ = runtime.shutdown(Duration::from_secs(2));
    Ok(())
}

fn run(options: &Options) -> Result<(), String> {
    let key = Key::generate().map_err(|e| e.to_string())?;
    let group: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect::<Result<_, _>>()?;
    let list: Vec<String> = group.iter().map(ToString::to_string).collect();
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let data = std::env::temp_dir().join(format!("phalanx-chain-bench-{}", std::process::id()));
    let start = |i: usize, addr: SocketAddr| -> Result<Server, String> {
        let mut args = vec![SERVE.to_owned(), addr.to_string(), list.join(",")];
        if options.durable {
            args.push(data.join(format!("n{i}")).to_string_lossy().into_owned());
        }
        let child = Command::new(&exe)
            .args(&args)
            .env(KEY_VAR, hex(&key.to_bytes()))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start a chain node: {e}"))?;
        Ok(Server(child))
    };
    let mut servers = Vec::new();
    for (i, addr) in group.iter().enumerate() {
        servers.push(start(i, *addr)?);
    }
    // One worker in the client's process too (as in the chain's, see `serve`): with two, the
    // request loops and the client actor woke each other across threads (futex wake-ups and
    // context switches: 12.3-13.9 -> 11.7-12.1 CPU µs per write with one).
    let workers = std::env::var("CHAIN_BENCH_CLIENT_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let runtime = Runtime::builder()
        .worker_threads(workers)
        .build()
        .map_err(|e| e.to_string())?;
    let outcome = runtime.block_on(async {
        wait_for_chain(&key, group[0]).await?;
        eprintln!("chain_bench: the chain formed");
        let mut config = node_config(&key, free_addr()?, &group);
        config.chain_replica = false;
        let client = Node::start(config).await.map_err(|e| e.to_string())?;
        let kv = client.kv();
        let mut ready = false;
        for _ in 0..20 {
            match kv.put("warmup", "x").await {
                Ok(()) => {
                    ready = true;
                    break;
                }
                Err(error) => {
                    let members: Vec<String> = client
                        .members()
                        .iter()
                        .map(|row| format!("{:016x}@{}:{}", row.node, row.addr, row.state))
                        .collect();
                    let report = chain_status_of(
                        group[0],
                        cluster_id("phalanx"),
                        Some(key.clone()),
                        Duration::from_secs(2),
                    )
                    .await
                    .map(|r| format!("{:?}", r.config))
                    .unwrap_or_default();
                    eprintln!(
                        "chain_bench: warm-up write: {error}; client sees {members:?}; chain {report}"
                    );
                }
            }
            phalanx::sleep(Duration::from_millis(50)).await;
        }
        if !ready {
            return Err("the client node never reached the chain".to_owned());
        }
        eprintln!("chain_bench: the client reached the chain; writing every key once");
        preload(&kv, options).await?;
        if options.catchup {
            let fresh = free_addr()?;
            servers.push(start(3, fresh)?);
            let result = catchup(&key, fresh, &mut servers, options).await;
            client.shutdown().await;
            return result;
        }
        println!(
            "chain_bench: 3-node chain (separate processes) on loopback, 1 client node, {} in \
             flight, {} keys, {}-byte values, {} s per mix, {} cores",
            options.inflight,
            options.keys,
            options.value,
            options.seconds,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!();
        println!(
            "| mix | ops/s | writes/s | write p50 | write p99 | read p50 | read p99 | errors | CPU µs/op |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (name, reads) in &options.mixes {
            eprintln!("chain_bench: measuring {name}");
            let pids: Vec<u32> = std::iter::once(std::process::id())
                .chain(servers.iter().map(|s| s.0.id()))
                .collect();
            let cpu_before = cpu_nanos(&pids);
            let mut result = measure(&kv, options, *reads).await;
            result.cpu = cpu_before.zip(cpu_nanos(&pids)).map(|(a, b)| b.saturating_sub(a));
            println!("| {name} | {} |", result.row());
        }
        client.shutdown().await;
        Ok(())
    });
    drop(servers);
    let _ = runtime.shutdown(Duration::from_secs(2));
    if options.durable {
        let _ = std::fs::remove_dir_all(&data);
    }
    outcome
}

/// Kills chain member 2 (a group node too: the group keeps a majority) so that the group
/// appends the fresh node, and times its catch-up.
async fn catchup(
    key: &Key,
    fresh: SocketAddr,
    servers: &mut [Server],
    options: &Options,
) -> Result<(), String> {
    let cluster = cluster_id("phalanx");
    let status = |node| chain_status_of(node, cluster, Some(key.clone()), Duration::from_secs(2));
    // The fresh node must be a known member before the kill, or the group has no one to add.
    for _ in 0..200 {
        if status(fresh).await.is_ok_and(|r| r.replica.is_some()) {
            break;
        }
        phalanx::sleep(Duration::from_millis(50)).await;
    }
    let writes = options.keys + 1;
    let _ = servers[2].0.kill();
    let _ = servers[2].0.wait();
    let killed = Instant::now();
    let mut joined = None;
    let mut done = None;
    for _ in 0..12_000 {
        if let Ok(report) = status(fresh).await
            && let Some(replica) = report.replica
        {
            let member = replica.config.as_ref().is_some_and(|c| {
                c.members
                    .iter()
                    .any(|m| m.id == replica.id && m.incarnation == replica.incarnation)
            });
            if member && joined.is_none() {
                joined = Some(Instant::now());
            }
            if member && replica.synced && replica.received >= writes {
                done = Some(Instant::now());
                break;
            }
        }
        phalanx::sleep(Duration::from_millis(10)).await;
    }
    let (Some(joined), Some(done)) = (joined, done) else {
        return Err("the fresh replica never caught up".into());
    };
    let bytes = options.keys as usize * (options.value + format!("key{}", options.keys).len());
    let raw = raw_copy(bytes)?;
    let took = done - joined;
    println!(
        "chain_bench: catch-up of a fresh replica, {} keys of {} bytes ({:.1} MB of keys and \
         values), 2 cores",
        options.keys,
        options.value,
        bytes as f64 / 1e6
    );
    println!();
    println!("| | time | ratio to raw |");
    println!("|---|---:|---:|");
    println!(
        "| raw TCP copy of the same bytes (loopback, this process) | {:.0} ms | 1.00x |",
        raw.as_secs_f64() * 1000.0
    );
    println!(
        "| fresh replica: appended to the chain until it holds every write | {:.0} ms | {:.2}x |",
        took.as_secs_f64() * 1000.0,
        took.as_secs_f64() / raw.as_secs_f64().max(1e-9)
    );
    println!(
        "| (failure detection: kill until appended) | {:.0} ms | |",
        (joined - killed).as_secs_f64() * 1000.0
    );
    Ok(())
}

/// Copies `bytes` over a loopback TCP connection (64 KiB writes), returns how long it took.
fn raw_copy(bytes: usize) -> Result<Duration, String> {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let reader = std::thread::spawn(move || -> std::io::Result<usize> {
        let (mut stream, _) = listener.accept()?;
        let mut buffer = vec![0u8; 64 * 1024];
        let mut total = 0;
        loop {
            let n = stream.read(&mut buffer)?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    });
    let started = Instant::now();
    let mut stream = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let chunk = vec![b'v'; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        stream.write_all(&chunk[..n]).map_err(|e| e.to_string())?;
        left -= n;
    }
    drop(stream);
    let received = reader
        .join()
        .map_err(|_| "the reader thread panicked".to_owned())?
        .map_err(|e| e.to_string())?;
    if received != bytes {
        return Err(format!("raw copy moved {received} of {bytes} bytes"));
    }
    Ok(started.elapsed())
}

async fn wait_for_chain(key: &Key, node: SocketAddr) -> Result<(), String> {
    let cluster = cluster_id("phalanx");
    for _ in 0..300 {
        if let Ok(report) =
            chain_status_of(node, cluster, Some(key.clone()), Duration::from_secs(2)).await
            && report
                .config
                .is_some_and(|c| c.members.len() == phalanx::node::CHAIN_LENGTH)
        {
            return Ok(());
        }
        phalanx::sleep(Duration::from_millis(100)).await;
    }
    Err("the chain never formed".into())
}

/// Writes every key once, so that reads find values.
async fn preload(kv: &Kv, options: &Options) -> Result<(), String> {
    let value = vec![b'v'; options.value];
    let tasks: Vec<_> = (0..options.inflight as u64)
        .map(|lane| {
            let (kv, value, keys, lanes) = (
                kv.clone(),
                value.clone(),
                options.keys,
                options.inflight as u64,
            );
            phalanx::spawn(async move {
                let mut key = lane;
                while key < keys {
                    kv.put(format!("key{key}"), value.clone())
                        .await
                        .map_err(|e| e.to_string())?;
                    key += lanes;
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    Ok(())
}

struct Measured {
    elapsed: Duration,
    writes: Histogram<u64>,
    reads: Histogram<u64>,
    errors: u64,
    /// CPU time of the four processes (chain nodes and this one) over the run, where the
    /// system tells it.
    cpu: Option<u64>,
}

impl Measured {
    fn row(&self) -> String {
        let seconds = self.elapsed.as_secs_f64().max(1e-9);
        let ops = (self.writes.len() + self.reads.len()) as f64 / seconds;
        let writes = self.writes.len() as f64 / seconds;
        let quantile = |h: &Histogram<u64>, q: f64| {
            if h.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.2} ms", h.value_at_quantile(q) as f64 / 1000.0)
            }
        };
        format!(
            "{:.0} | {:.0} | {} | {} | {} | {} | {} | {}",
            ops,
            writes,
            quantile(&self.writes, 0.5),
            quantile(&self.writes, 0.99),
            quantile(&self.reads, 0.5),
            quantile(&self.reads, 0.99),
            self.errors,
            self.cpu_per_op()
        )
    }

    /// CPU time per operation, all processes together: on a machine shared with other work
    /// this moves much less than the throughput does.
    fn cpu_per_op(&self) -> String {
        let ops = self.writes.len() + self.reads.len();
        match self.cpu {
            Some(nanos) if ops > 0 => format!("{:.1}", nanos as f64 / 1000.0 / ops as f64),
            _ => "-".to_owned(),
        }
    }
}

/// Runs `options.inflight` request loops for `options.seconds`; `reads` percent are reads.
async fn measure(kv: &Kv, options: &Options, reads: u32) -> Measured {
    let stop = Arc::new(AtomicBool::new(false));
    let value = vec![b'w'; options.value];
    let started = Instant::now();
    let tasks: Vec<_> = (0..options.inflight as u64)
        .map(|lane| {
            let (kv, value, stop, keys) = (kv.clone(), value.clone(), stop.clone(), options.keys);
            phalanx::spawn(async move {
                // Latencies are collected as plain numbers and put into histograms after the
                // run: a record into one of 1,024 histograms of 40 KB each missed the cache
                // every time, and the client's process, which shares the two cores with the
                // chain, spent 12 % of its time there.
                let mut writes: Vec<u32> = Vec::new();
                let mut reads_h: Vec<u32> = Vec::new();
                let mut errors = 0u64;
                let mut state = lane.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                while !stop.load(Ordering::Relaxed) {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let key = format!("key{}", state % keys);
                    let read = (state >> 40) % 100 < u64::from(reads);
                    let begun = Instant::now();
                    let ok = if read {
                        kv.get(key).await.is_ok()
                    } else {
                        kv.put(key, value.clone()).await.is_ok()
                    };
                    let micros = u32::try_from(begun.elapsed().as_micros()).unwrap_or(u32::MAX);
                    let latencies = if read { &mut reads_h } else { &mut writes };
                    if ok {
                        latencies.push(micros.max(1));
                    } else {
                        errors += 1;
                    }
                }
                (writes, reads_h, errors)
            })
        })
        .collect();
    phalanx::sleep(Duration::from_secs(options.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let mut measured = Measured {
        elapsed,
        writes: histogram(),
        reads: histogram(),
        errors: 0,
        cpu: None,
    };
    for task in tasks {
        let (writes, reads, errors) = task.await;
        for micros in writes {
            let _ = measured.writes.record(u64::from(micros));
        }
        for micros in reads {
            let _ = measured.reads.record(u64::from(micros));
        }
        measured.errors += errors;
    }
    measured
}

/// The CPU time the threads of `pids` have run, in nanoseconds (Linux's per-thread
/// `schedstat`); `None` where it cannot be read.
fn cpu_nanos(pids: &[u32]) -> Option<u64> {
    let mut total = 0u64;
    for pid in pids {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
        }
    }
    Some(total)
}

fn histogram() -> Histogram<u64> {
    // Three significant figures is always a valid precision.
    Histogram::new(3).expect("a valid histogram precision")
}
