//! Remote tell throughput and ask RTT between two nodes on loopback, next to raw TCP in the
//! same run. Run with `cargo run --release -p phalanx-transports --example remote_bench`; run
//! it under `taskset -c 0` for the pinned figures (every thread on one core).
//!
//! The tell payloads are 64 bytes and 1 KiB byte strings (one length byte or two on the wire,
//! then the bytes, copied in one go), like the raw stream's messages of the same sizes; a
//! third run sends the 64 bytes as two `[u8; 32]` arrays, which serde visits byte by byte, to
//! show that cost apart; a last row sends the same messages to a local actor (no network), the
//! mailbox's own ceiling. The raw stream writes 64 KiB chunks, so its message rate is its byte
//! rate divided by the payload size. `BENCH_ONLY=encrypted|plaintext|raw|local` runs one part
//! (for profiling); `BENCH_TELLS` and `BENCH_ASKS` set the counts.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use phalanx_runtime::{Actor, ActorRef, Context, HandlerError, Reply, Runtime, spawn_actor};
use phalanx_transports::{
    ClusterId, EndpointConfig, EndpointSecurity, Incarnation, Key, NodeId, RemoteMessage, Remoting,
    SharedKeyring,
};
use serde::{Deserialize, Serialize};

const TELLS: u64 = 1_000_000;
const ASKS: usize = 2_000;
const WAIT: Duration = Duration::from_secs(30);

#[derive(Serialize, Deserialize)]
enum Msg {
    /// 64 bytes as a byte string: what a payload of bytes looks like to serde.
    Data(Payload<64>),
    /// 1 KiB as a byte string.
    Big(Box<Payload<1024>>),
    /// 64 bytes as two arrays, which serde visits byte by byte.
    Arrays([u8; 32], [u8; 32]),
    Ping(Reply<()>),
    Count(Reply<u64>),
}

impl RemoteMessage for Msg {
    const TAG: &'static str = "bench.Msg";
}

struct Sink(u64);

impl Actor for Sink {
    type Message = Msg;
    async fn handle(&mut self, _: &mut Context<Self>, msg: Msg) -> Result<(), HandlerError> {
        match msg {
            Msg::Data(_) | Msg::Big(_) | Msg::Arrays(..) => self.0 += 1,
            Msg::Ping(reply) => {
                let _ = reply.send(());
            }
            Msg::Count(reply) => {
                let _ = reply.send(self.0);
            }
        }
        Ok(())
    }
}

/// `N` bytes that serde sees as one byte string (as `serde_bytes` would make them), so that
/// postcard copies them in one go instead of visiting each byte.
struct Payload<const N: usize>([u8; N]);

impl<const N: usize> Serialize for Payload<N> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de, const N: usize> Deserialize<'de> for Payload<N> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<const N: usize>;
        impl<const N: usize> serde::de::Visitor<'_> for Visit<N> {
            type Value = Payload<N>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{N} bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Payload<N>, E> {
                bytes
                    .try_into()
                    .map(Payload)
                    .map_err(|_| E::invalid_length(bytes.len(), &self))
            }
        }
        deserializer.deserialize_bytes(Visit)
    }
}

/// One row of the table.
struct Row {
    p50: f64,
    p99: f64,
    small: f64,
    big: f64,
    arrays: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = Runtime::builder().worker_threads(2).build()?;
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let raw = if only.is_empty() || only == "raw" {
        let (p50, p99) = raw_ping_pong();
        let bytes = raw_stream();
        Row {
            p50,
            p99,
            small: bytes / 64.0,
            big: bytes / 1024.0,
            arrays: bytes / 64.0,
        }
    } else {
        Row {
            p50: f64::NAN,
            p99: f64::NAN,
            small: f64::NAN,
            big: f64::NAN,
            arrays: f64::NAN,
        }
    };
    println!(
        "{:<20} {:>9} {:>9} {:>12} {:>8} {:>11} {:>8} {:>12}   vs raw: RTT p50, 64 B, 1 KiB, arrays",
        "", "ask p50", "ask p99", "tell 64 B/s", "MB/s", "1 KiB/s", "MB/s", "arrays/s"
    );
    print_row("raw TCP", &raw, &raw);
    for (label, security) in [
        (
            "remote, encrypted",
            EndpointSecurity::Keyring(SharedKeyring::new(Key::generate()?)),
        ),
        ("remote, plaintext", EndpointSecurity::Plaintext),
    ] {
        if !only.is_empty() && !label.ends_with(only.as_str()) {
            continue;
        }
        let row = runtime.block_on(remote(security))?;
        print_row(label, &row, &raw);
    }
    if only.is_empty() || only == "local" {
        // The same actor and messages without a network: the mailbox's own ceiling.
        let row = runtime.block_on(measure(spawn_actor(Sink(0))))?;
        print_row("local (no network)", &row, &raw);
    }
    Ok(())
}

fn print_row(label: &str, row: &Row, raw: &Row) {
    println!(
        "{label:<20} {:>7.1}us {:>7.1}us {:>12.0} {:>8.1} {:>11.0} {:>8.1} {:>12.0}   {:.2}x, {:.0}%, {:.0}%, {:.0}%",
        row.p50,
        row.p99,
        row.small,
        row.small * 64.0 / 1e6,
        row.big,
        row.big * 1024.0 / 1e6,
        row.arrays,
        row.p50 / raw.p50,
        100.0 * row.small / raw.small,
        100.0 * row.big / raw.big,
        100.0 * row.arrays / raw.arrays,
    );
}

async fn remote(security: EndpointSecurity) -> Result<Row, Box<dyn std::error::Error>> {
    let config = |n| EndpointConfig::new(ClusterId(1), NodeId::from_u128(n), Incarnation(1));
    let a = Remoting::bind("127.0.0.1:0".parse()?, config(1), security.clone()).await?;
    let b = Remoting::bind("127.0.0.1:0".parse()?, config(2), security).await?;
    b.register("sink", &spawn_actor(Sink(0)))?;
    let node = a.connect(b.local_addr(), WAIT).await?;
    measure(a.lookup::<Msg>(node, "sink", WAIT).await?).await
}

/// Ask round trips, then tell rates, through `sink`.
async fn measure(sink: ActorRef<Msg>) -> Result<Row, Box<dyn std::error::Error>> {
    let asks = env_or("BENCH_ASKS", ASKS as u64) as usize;
    let mut rtts = Vec::with_capacity(asks);
    for _ in 0..asks {
        let start = Instant::now();
        sink.ask(Msg::Ping, WAIT).await?;
        rtts.push(start.elapsed());
    }
    rtts.sort();
    let tells = env_or("BENCH_TELLS", TELLS);
    let small = rate(&sink, tells, || Msg::Data(Payload([7; 64]))).await?;
    let big = rate(&sink, tells / 8, || Msg::Big(Box::new(Payload([3; 1024])))).await?;
    let arrays = rate(&sink, tells, || Msg::Arrays([7; 32], [9; 32])).await?;
    Ok(Row {
        p50: micros(rtts[asks / 2]),
        p99: micros(rtts[asks * 99 / 100]),
        small,
        big,
        arrays,
    })
}

/// Sends `count` messages made by `make` and returns messages per second, counted until the
/// sink has handled them all.
async fn rate(
    sink: &ActorRef<Msg>,
    count: u64,
    make: impl Fn() -> Msg,
) -> Result<f64, Box<dyn std::error::Error>> {
    let before = sink.ask(Msg::Count, WAIT).await?;
    let start = Instant::now();
    for _ in 0..count {
        if let Err(error) = sink.try_tell(make()) {
            sink.tell(error.into_inner()).await?;
        }
    }
    let mut seen = before;
    while seen < before + count {
        seen = sink.ask(Msg::Count, WAIT).await?;
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// A count from the environment (`BENCH_TELLS`, `BENCH_ASKS`), else `default`.
fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn raw_ping_pong() -> (f64, f64) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_nodelay(true).unwrap();
        let mut buf = [0; 64];
        while s.read_exact(&mut buf).is_ok() {
            if s.write_all(&buf).is_err() {
                break;
            }
        }
    });
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    let mut buf = [0; 64];
    let mut rtts = Vec::with_capacity(ASKS);
    for _ in 0..ASKS {
        let start = Instant::now();
        c.write_all(&buf).unwrap();
        c.read_exact(&mut buf).unwrap();
        rtts.push(start.elapsed());
    }
    drop(c);
    let _ = server.join();
    rtts.sort();
    (micros(rtts[ASKS / 2]), micros(rtts[ASKS * 99 / 100]))
}

/// Bytes per second of a raw TCP stream written in 64 KiB chunks.
fn raw_stream() -> f64 {
    const BYTES: u64 = 256 << 20;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0; 64 * 1024];
        let mut total = 0u64;
        while total < BYTES {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n as u64,
            }
        }
    });
    let mut c = TcpStream::connect(addr).unwrap();
    let chunk = vec![7u8; 64 * 1024];
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < BYTES {
        c.write_all(&chunk).unwrap();
        sent += chunk.len() as u64;
    }
    let _ = server.join();
    BYTES as f64 / start.elapsed().as_secs_f64()
}
