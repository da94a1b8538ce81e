//! Remote tell throughput and ask RTT between two nodes on loopback, next to raw TCP in the
//! same run. Run with `cargo run --release -p phalanx-transports --example remote_bench`; run
//! it under `taskset -c 0` for the pinned figures (every thread on one core).
//!
//! The tell payload is 64 bytes on the wire (two `[u8; 32]`, which postcard writes as they
//! are), like the raw stream's 64-byte messages. `BENCH_ONLY=encrypted|plaintext|raw` runs one
//! part (for profiling).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use phalanx_runtime::{Actor, Context, HandlerError, Reply, Runtime, spawn_actor};
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
    Data([u8; 32], [u8; 32]),
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
            Msg::Data(..) => self.0 += 1,
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = Runtime::builder().worker_threads(2).build()?;
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let (raw_rtt, raw_rate) = if only.is_empty() || only == "raw" {
        (raw_ping_pong(), raw_stream())
    } else {
        (f64::NAN, f64::NAN)
    };
    println!("{:<28} {:>14} {:>14}", "", "ask RTT p50", "tell 64 B/s");
    println!("{:<28} {:>12.1}us {:>14.0}", "raw TCP", raw_rtt, raw_rate);
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
        let (rtt, rate) = runtime.block_on(remote(security))?;
        println!(
            "{label:<28} {rtt:>12.1}us {rate:>14.0}   ({:.2}x RTT, {:.0}% rate)",
            rtt / raw_rtt,
            100.0 * rate / raw_rate
        );
    }
    Ok(())
}

async fn remote(security: EndpointSecurity) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let config = |n| EndpointConfig::new(ClusterId(1), NodeId::from_u128(n), Incarnation(1));
    let a = Remoting::bind("127.0.0.1:0".parse()?, config(1), security.clone()).await?;
    let b = Remoting::bind("127.0.0.1:0".parse()?, config(2), security).await?;
    b.register("sink", &spawn_actor(Sink(0)))?;
    let node = a.connect(b.local_addr(), WAIT).await?;
    let sink = a.lookup::<Msg>(node, "sink", WAIT).await?;
    let mut rtts = Vec::with_capacity(ASKS);
    for _ in 0..ASKS {
        let start = Instant::now();
        sink.ask(Msg::Ping, WAIT).await?;
        rtts.push(start.elapsed());
    }
    rtts.sort();
    let start = Instant::now();
    let tells = tells();
    for _ in 0..tells {
        if let Err(error) = sink.try_tell(Msg::Data([7; 32], [9; 32])) {
            sink.tell(error.into_inner()).await?;
        }
    }
    let mut count = 0;
    while count < tells {
        count = sink.ask(Msg::Count, WAIT).await?;
    }
    let rate = tells as f64 / start.elapsed().as_secs_f64();
    Ok((rtts[ASKS / 2].as_secs_f64() * 1e6, rate))
}

/// Messages per throughput run: `BENCH_TELLS`, default [`TELLS`].
fn tells() -> u64 {
    std::env::var("BENCH_TELLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(TELLS)
}

fn raw_ping_pong() -> f64 {
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
    rtts[ASKS / 2].as_secs_f64() * 1e6
}

fn raw_stream() -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0; 64 * 1024];
        let mut total = 0u64;
        while total < TELLS * 64 {
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
    while sent < TELLS * 64 {
        c.write_all(&chunk).unwrap();
        sent += chunk.len() as u64;
    }
    let _ = server.join();
    TELLS as f64 / start.elapsed().as_secs_f64()
}
