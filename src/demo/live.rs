//! The live half of the demo's cluster story: a client that keeps writing to the replicated
//! key-value chain, and a status line refreshed every second (members, chain, writes).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use phalanx::node::{ChainReport, KvAnswer, KvRequest, chain_status_of, cluster_id, kv_of};
use phalanx::transports::Key;
use phalanx::{Task, spawn};

/// How long one client request may take.
const REQUEST: Duration = Duration::from_secs(2);

/// What the client saw.
#[derive(Debug, Default)]
pub(crate) struct Writes {
    /// Acknowledged writes: key and value.
    pub(crate) acked: Vec<(String, String)>,
    /// Writes that failed or timed out (their outcome is unknown).
    pub(crate) failed: usize,
}

/// A client writing `demo-N = value-N` through one node, until stopped.
pub(crate) struct Writer {
    writes: Arc<Mutex<Writes>>,
    stop: Arc<AtomicBool>,
    task: Task<()>,
}

impl Writer {
    /// Starts writing through the node at `node`.
    pub(crate) fn start(node: SocketAddr, key: Key) -> Writer {
        let writes = Arc::new(Mutex::new(Writes::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (writes, stop) = (writes.clone(), stop.clone());
            spawn(async move {
                let cluster = cluster_id("phalanx");
                for i in 0..1_000_000u64 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let (name, value) = (format!("demo-{i}"), format!("value-{i}"));
                    let request = KvRequest::Put {
                        key: name.clone(),
                        value: value.clone().into_bytes(),
                    };
                    let outcome = kv_of(node, cluster, Some(key.clone()), request, REQUEST).await;
                    if let Ok(mut writes) = writes.lock() {
                        match outcome {
                            Ok(Ok(KvAnswer::Done)) => writes.acked.push((name, value)),
                            _ => writes.failed += 1,
                        }
                    }
                }
            })
        };
        Writer { writes, stop, task }
    }

    /// How many writes were acknowledged and how many failed so far.
    pub(crate) fn counts(&self) -> (usize, usize) {
        self.writes
            .lock()
            .map(|w| (w.acked.len(), w.failed))
            .unwrap_or_default()
    }

    /// Stops the client and hands back what it saw.
    pub(crate) async fn finish(self) -> Writes {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await;
        self.writes
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default()
    }
}

/// Reads every acknowledged write back through `node`; returns how many were missing or
/// different.
pub(crate) async fn lost(node: SocketAddr, key: &Key, writes: &Writes) -> usize {
    let cluster = cluster_id("phalanx");
    let mut lost = 0;
    for (name, value) in &writes.acked {
        let mut read = None;
        for _ in 0..5 {
            let request = KvRequest::Get { key: name.clone() };
            if let Ok(Ok(KvAnswer::Value(found))) =
                kv_of(node, cluster, Some(key.clone()), request, REQUEST).await
            {
                read = Some(found);
                break;
            }
        }
        if read.flatten().as_deref() != Some(value.as_bytes()) {
            lost += 1;
        }
    }
    lost
}

/// The chain as the node at `node` sees it, or `None` if it did not answer.
pub(crate) async fn chain(node: SocketAddr, key: &Key) -> Option<ChainReport> {
    chain_status_of(
        node,
        cluster_id("phalanx"),
        Some(key.clone()),
        Duration::from_secs(1),
    )
    .await
    .ok()
}

/// The chain's epoch and member addresses, head first (`?` for a member whose address the
/// node does not know).
pub(crate) fn describe(report: &ChainReport) -> (u64, Vec<Option<SocketAddr>>) {
    let Some(config) = &report.config else {
        return (0, Vec::new());
    };
    let members = config
        .members
        .iter()
        .map(|member| {
            report
                .addresses
                .iter()
                .find(|(id, _)| *id == member.id.0)
                .and_then(|(_, addr)| *addr)
        })
        .collect();
    (config.epoch, members)
}

/// One line: the chain, head to tail.
pub(crate) fn chain_line(report: &ChainReport) -> String {
    let (epoch, members) = describe(report);
    let members: Vec<String> = members
        .iter()
        .map(|m| m.map_or_else(|| "?".to_owned(), |a| a.to_string()))
        .collect();
    format!("epoch {epoch}: {}", members.join(" -> "))
}

/// Prints a status line every second until dropped: members alive, the chain, the writes.
pub(crate) struct Ticker {
    stop: Arc<AtomicBool>,
    task: Option<Task<()>>,
}

impl Ticker {
    /// Starts the status line, asking the node at `node`.
    pub(crate) fn start(node: SocketAddr, key: Key, writer: Arc<Writer>) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = spawn(async move {
            let started = Instant::now();
            let mut last = (0, Instant::now());
            while !flag.load(Ordering::Relaxed) {
                phalanx::sleep(Duration::from_secs(1)).await;
                let members = phalanx::node::members_of(
                    node,
                    cluster_id("phalanx"),
                    Some(key.clone()),
                    Duration::from_secs(1),
                )
                .await
                .map(|rows| rows.iter().filter(|r| r.state == "alive").count())
                .unwrap_or(0);
                let chain = chain(node, &key)
                    .await
                    .map_or_else(|| "unknown".to_owned(), |r| chain_line(&r));
                let (acked, failed) = writer.counts();
                let rate = (acked - last.0) as f64 / last.1.elapsed().as_secs_f64().max(0.001);
                last = (acked, Instant::now());
                println!(
                    "            live {:>5.1}s | {members} alive | chain {chain} | writes {acked} \
                     acked ({rate:.0}/s), {failed} failed",
                    started.elapsed().as_secs_f64()
                );
            }
        });
        Ticker {
            stop,
            task: Some(task),
        }
    }

    /// Stops the status line.
    pub(crate) async fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(task) = self.task.take() {
            task.await;
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
