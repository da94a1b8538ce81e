//! A Disque-like job queue on the chain: at-least-once delivery with leases.
//!
//! Jobs live in the chain's replicated key-value map (`Node::kv`), one key per job, so they
//! survive the loss of any node. A worker *leases* a job with a compare-and-set that marks it
//! taken until a deadline; *ack* deletes it; *nack* makes it visible again at once; a lease
//! that runs out (its worker died mid-job) makes it visible again to the next worker. A job is
//! therefore done at least once, and possibly more than once: handlers should be idempotent.
//!
//! The run: three nodes form a chain, five jobs are queued, a worker leases one and dies
//! mid-job, another worker drains the queue, redoing the dead worker's job once its lease
//! runs out, and nacking a flaky job once before doing it.
//!
//! Kept small for reading: the queue finds jobs by scanning ids up to a counter (the map has
//! no range queries), and leases use the wall clock, so the nodes' clocks must agree to well
//! within a lease (they share one clock here).
//!
//! Run it with `cargo run --example job_queue`.

// `mdbook test` passes no --extern, so the listing names the crate itself.
#[allow(unused_extern_crates)]
extern crate phalanx;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use phalanx::node::{Kv, KvError, Node, NodeConfig};
use phalanx::transports::Key;
use phalanx::{Actor, Context, HandlerError, Reply, Runtime, spawn_actor};

/// How long a lease lasts before its job is offered again.
const LEASE: Duration = Duration::from_millis(400);
/// The job that fails once and is nacked.
const FLAKY: &str = "resize image 3";
/// Jobs queued.
const JOBS: [&str; 5] = [
    "send welcome mail",
    "charge card",
    FLAKY,
    "update index",
    "notify shipping",
];

// ANCHOR: record
/// The queue: a handle over the chain's map. Cheap to clone.
#[derive(Clone)]
struct JobQueue {
    kv: Kv,
}

/// A job as stored under `job/<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    payload: String,
    /// How many times it has been leased.
    attempts: u32,
    lease: Option<Lease>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Lease {
    worker: String,
    /// Milliseconds since the Unix epoch.
    until: u64,
}

/// A job leased to a worker.
#[derive(Debug, Clone)]
struct Leased {
    id: u64,
    payload: String,
    attempts: u32,
}
// ANCHOR_END: record

const NEXT_ID: &str = "jobs.next";

impl JobQueue {
    // ANCHOR: enqueue
    /// Queues `payload`; returns its id.
    async fn enqueue(&self, payload: &str) -> Result<u64, KvError> {
        let id = self.allocate_id().await?;
        let record = Record {
            payload: payload.to_owned(),
            attempts: 0,
            lease: None,
        };
        self.kv.put(job_key(id), record.encode()).await?;
        Ok(id)
    }

    /// Takes the counter one step with compare-and-set, so concurrent producers never share an
    /// id.
    async fn allocate_id(&self) -> Result<u64, KvError> {
        for _ in 0..100 {
            let current = self.kv.get(NEXT_ID).await?;
            let last = current.as_deref().and_then(parse_u64).unwrap_or(0);
            let next = (last + 1).to_string().into_bytes();
            if self
                .kv
                .compare_and_set(NEXT_ID, current, Some(next))
                .await?
            {
                return Ok(last + 1);
            }
        }
        Err(KvError::Overloaded)
    }

    // ANCHOR_END: enqueue
    // ANCHOR: lease
    /// Leases the first job that is free or whose lease ran out, for `worker`.
    async fn lease(&self, worker: &str) -> Result<Option<Leased>, KvError> {
        let now = now_ms();
        for id in 1..=self.last_id().await? {
            let Some(old) = self.kv.get(job_key(id)).await? else {
                continue; // done
            };
            let Some(record) = Record::decode(&old) else {
                continue; // not ours to touch
            };
            if record.lease.as_ref().is_some_and(|lease| lease.until > now) {
                continue; // someone is on it
            }
            let taken = Record {
                attempts: record.attempts + 1,
                lease: Some(Lease {
                    worker: worker.to_owned(),
                    until: now + LEASE.as_millis() as u64,
                }),
                ..record
            };
            let new = taken.encode();
            if self
                .kv
                .compare_and_set(job_key(id), Some(old), Some(new))
                .await?
            {
                return Ok(Some(Leased {
                    id,
                    payload: taken.payload,
                    attempts: taken.attempts,
                }));
            }
        }
        Ok(None)
    }

    // ANCHOR_END: lease
    // ANCHOR: ack
    /// Acknowledges job `id`: done, removed. False if `worker` no longer holds its lease (it
    /// ran out and someone else took it: that one will finish it).
    async fn ack(&self, id: u64, worker: &str) -> Result<bool, KvError> {
        self.release(id, worker, |_| None).await
    }

    /// Gives job `id` back at once, to be leased again.
    async fn nack(&self, id: u64, worker: &str) -> Result<bool, KvError> {
        self.release(id, worker, |record| {
            Some(Record {
                lease: None,
                ..record
            })
        })
        .await
    }

    async fn release(
        &self,
        id: u64,
        worker: &str,
        next: impl FnOnce(Record) -> Option<Record>,
    ) -> Result<bool, KvError> {
        let Some(old) = self.kv.get(job_key(id)).await? else {
            return Ok(false);
        };
        let Some(record) = Record::decode(&old) else {
            return Ok(false);
        };
        if record
            .lease
            .as_ref()
            .is_none_or(|lease| lease.worker != worker)
        {
            return Ok(false);
        }
        let new = next(record).map(|record| record.encode());
        self.kv.compare_and_set(job_key(id), Some(old), new).await
    }

    // ANCHOR_END: ack
    /// Whether every job queued so far has been acknowledged.
    async fn is_empty(&self) -> Result<bool, KvError> {
        for id in 1..=self.last_id().await? {
            if self.kv.get(job_key(id)).await?.is_some() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn last_id(&self) -> Result<u64, KvError> {
        let current = self.kv.get(NEXT_ID).await?;
        Ok(current.as_deref().and_then(parse_u64).unwrap_or(0))
    }
}

impl Record {
    /// `attempts|until|worker|payload`, with `0||` for no lease: the payload last, so it may
    /// hold anything.
    fn encode(&self) -> Vec<u8> {
        let (until, worker) = match &self.lease {
            Some(lease) => (lease.until, lease.worker.as_str()),
            None => (0, ""),
        };
        format!("{}|{until}|{worker}|{}", self.attempts, self.payload).into_bytes()
    }

    /// Reads a record; `None` for bytes that are not one (never panics).
    fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut fields = text.splitn(4, '|');
        let attempts = fields.next()?.parse().ok()?;
        let until = fields.next()?.parse().ok()?;
        let worker = fields.next()?;
        let payload = fields.next()?.to_owned();
        let lease = (!worker.is_empty()).then(|| Lease {
            worker: worker.to_owned(),
            until,
        });
        Some(Self {
            payload,
            attempts,
            lease,
        })
    }
}

fn job_key(id: u64) -> String {
    format!("job/{id}")
}

fn parse_u64(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

// ANCHOR: worker
/// What a worker is asked to do.
enum Work {
    /// Lease one job, then die in the middle of it; answers the job's id first.
    TakeOneAndDie(Reply<Option<u64>>),
    /// Work until the queue is empty; answers the jobs done, with the attempt that did each.
    Drain(Reply<Vec<(u64, String, u32)>>),
}

struct Worker {
    name: &'static str,
    queue: JobQueue,
}

impl Actor for Worker {
    type Message = Work;

    async fn handle(&mut self, _: &mut Context<Self>, work: Work) -> Result<(), HandlerError> {
        match work {
            Work::TakeOneAndDie(reply) => {
                let job = self.queue.lease(self.name).await?;
                let _ = reply.send(job.as_ref().map(|job| job.id));
                if let Some(job) = job {
                    panic!("{} died while doing {:?}", self.name, job.payload);
                }
            }
            Work::Drain(reply) => {
                let done = self.drain().await?;
                let _ = reply.send(done);
            }
        }
        Ok(())
    }
}

impl Worker {
    async fn drain(&self) -> Result<Vec<(u64, String, u32)>, KvError> {
        let mut done = Vec::new();
        // Bounded: about 30 s of polling at most.
        for _ in 0..600 {
            let job = match self.queue.lease(self.name).await {
                Ok(job) => job,
                // The chain is busy or reconfiguring: try again shortly.
                Err(KvError::Timeout | KvError::NoChain | KvError::Overloaded) => None,
                Err(other) => return Err(other),
            };
            let Some(job) = job else {
                if self.queue.is_empty().await.unwrap_or(false) {
                    return Ok(done);
                }
                // Only leased jobs are left: wait for their acks or their leases to run out.
                phalanx::sleep(Duration::from_millis(50)).await;
                continue;
            };
            if job.payload == FLAKY && job.attempts == 1 {
                println!("{}: {:?} failed, nack", self.name, job.payload);
                self.queue.nack(job.id, self.name).await?;
                continue;
            }
            println!(
                "{}: did {:?} (attempt {})",
                self.name, job.payload, job.attempts
            );
            if self.queue.ack(job.id, self.name).await? {
                done.push((job.id, job.payload, job.attempts));
            }
        }
        Ok(done)
    }
}

// ANCHOR_END: worker
/// A loopback address whose port was free for both TCP and UDP a moment ago.
fn free_addr() -> Result<SocketAddr, Box<dyn std::error::Error>> {
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

/// Waits (bounded: about 15 s) until the chain takes writes.
async fn wait_for_chain(kv: &Kv) -> Result<(), Box<dyn std::error::Error>> {
    for _ in 0..300 {
        if kv.put("jobs.ready", "yes").await.is_ok() {
            return Ok(());
        }
        phalanx::sleep(Duration::from_millis(50)).await;
    }
    Err("no chain formed".into())
}

pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = Runtime::builder().worker_threads(2).build()?;
    runtime.block_on(async {
        let key = Key::generate()?;
        let addrs = [free_addr()?, free_addr()?, free_addr()?];
        let mut nodes = Vec::new();
        for (i, addr) in addrs.iter().enumerate() {
            let mut config = NodeConfig::new(*addr);
            config.key = Some(key.clone());
            config.seeds = if i == 0 { vec![] } else { vec![addrs[0]] };
            config.chain_group = addrs.to_vec();
            config.gossip.probe_interval = Duration::from_millis(100);
            config.gossip.probe_timeout = Duration::from_millis(50);
            config.gossip.gossip_interval = Some(Duration::from_millis(20));
            nodes.push(Node::start(config).await?);
        }
        wait_for_chain(&nodes[0].kv()).await?;

        // ANCHOR: run
        let producer = JobQueue { kv: nodes[0].kv() };
        for payload in JOBS {
            producer.enqueue(payload).await?;
        }

        // A worker on the second node takes a job and dies in the middle of it.
        let doomed = spawn_actor(Worker {
            name: "doomed",
            queue: JobQueue { kv: nodes[1].kv() },
        });
        let lost = doomed
            .ask(Work::TakeOneAndDie, Duration::from_secs(20))
            .await?
            .ok_or("the doomed worker found no job")?;
        doomed.wait().await;

        // A worker on the third node drains the queue; the lost job comes back to it once the
        // dead worker's lease has run out.
        let steady = spawn_actor(Worker {
            name: "steady",
            queue: JobQueue { kv: nodes[2].kv() },
        });
        let done = steady.ask(Work::Drain, Duration::from_secs(60)).await?;
        steady.stop();

        // ANCHOR_END: run
        let mut payloads: Vec<&str> = done
            .iter()
            .map(|(_, payload, _)| payload.as_str())
            .collect();
        payloads.sort_unstable();
        let mut expected = JOBS.to_vec();
        expected.sort_unstable();
        assert_eq!(payloads, expected, "every job done once acknowledged");
        let redone = done.iter().find(|(id, ..)| *id == lost).ok_or("lost job")?;
        assert!(
            redone.2 >= 2,
            "the dead worker's job was redone on a later lease"
        );
        let flaky = done
            .iter()
            .find(|(_, p, _)| p == FLAKY)
            .ok_or("flaky job")?;
        assert!(flaky.2 >= 2, "the nacked job was leased again");
        assert!(producer.is_empty().await?);
        println!(
            "{} jobs done; job {lost} ({:?}) redone after its worker died",
            done.len(),
            redone.1
        );

        for node in nodes {
            node.shutdown().await;
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    runtime.shutdown(Duration::from_secs(5))?;
    Ok(())
}
