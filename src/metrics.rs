//! Metrics as Prometheus text: a recorder for the [`metrics`] facade, collectors that fill in
//! figures at scrape time, and a tiny HTTP responder for `GET /metrics`.
//!
//! The layers below record through the `metrics` facade ([`runtime::stats`] publishes the
//! actor counters, [`supervisors::stats`] records restarts and escalations). This module
//! installs the one process-wide recorder that turns them into Prometheus text, and serves it.
//!
//! # Why `metrics-exporter-prometheus`, without its default features
//!
//! The lower crates already speak the `metrics` facade, so its own Prometheus recorder is the
//! shortest path: it renders the exposition format itself (nothing hand-written here), and with
//! its default features off it pulls no tokio, hyper or TLS: only the recorder and
//! [`render`](metrics_exporter_prometheus::PrometheusHandle::render). `prometheus-client` would
//! have needed a bridge from the facade to its registry, written and maintained here. The HTTP
//! side is ours ([`serve`](Metrics::serve), on async-net) because the exporter's listener runs
//! on tokio.
//!
//! # Collectors
//!
//! Figures that something else owns (a transport's drop counters, gossip's probe results,
//! chain lag) are read when a scrape comes, by a collector registered with
//! [`Metrics::register_collector`]. It writes them into a [`Sink`], which hands them to the
//! recorder as gauges or absolute counters.
//!
//! # Metric names
//!
//! Every metric phalanx exports, in one place. Labels come from small fixed sets, never from
//! actor ids or message contents, so the number of series stays bounded.
//!
//! Recorded by the runtime ([`runtime::stats`], published at each scrape):
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `phalanx_actor_messages_total` | counter | | messages and system notices handled by actors |
//! | `phalanx_actors_started_total` | counter | | actors started |
//! | `phalanx_actors_stopped_total` | counter | `reason` = `normal`, `killed`, `failed`, `lost` | actors ended, by exit reason |
//! | `phalanx_actor_failures_total` | counter | `kind` = `panic`, `error`, `linked` | actors that failed, by cause |
//! | `phalanx_actors_live` | gauge | | actors started and not ended yet |
//! | `phalanx_mailbox_depth_max` | gauge | | deepest mailbox sampled since the previous scrape |
//! | `phalanx_mailbox_depth` | histogram | | mailbox depth of busy actors, sampled when they yield their worker |
//!
//! Recorded by supervisors ([`supervisors::stats`], as they happen):
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `phalanx_supervisor_restarts_total` | counter | `strategy` = `one_for_one`, `one_for_all`, `rest_for_one` | restart decisions |
//! | `phalanx_supervisor_restarted_children_total` | counter | `strategy` | children started again by those decisions |
//! | `phalanx_supervisor_escalations_total` | counter | | supervisors that exceeded their restart intensity |
//!
//! Reserved for the node, each labelled with `node` (the node id); the constants below name
//! them ([`TRANSPORT_DROPPED_FRAMES`] and the rest):
//!
//! | name | type | extra labels | meaning |
//! |---|---|---|---|
//! | `phalanx_transport_dropped_frames_total` | counter | `reason` (the transport's drop reasons) | frames dropped on receipt |
//! | `phalanx_gossip_probes_total` | counter | `result` = `ack`, `indirect_ack`, `timeout` | failure-detector probes, by outcome |
//! | `phalanx_gossip_suspicions_total` | counter | `event` = `raised` (this node began to suspect a member), `refuted` (this node refuted a suspicion of itself) | suspicion |
//! | `phalanx_gossip_members` | gauge | `state` = `alive`, `suspect`, `dead`, `left` | members as this node sees them |
//! | `phalanx_gossip_local_health` | gauge | | Lifeguard local health (0 = healthy) |
//! | `phalanx_chain_lag` | gauge | | versions this replica's clean state trails the newest it holds (received minus committed) |
//! | `phalanx_chain_committed` | gauge | | highest sequence number this replica has committed (clean) |
//! | `phalanx_chain_received` | gauge | | highest sequence number this replica has received (dirty included) |
//! | `phalanx_chain_epoch` | gauge | | epoch of the chain configuration this replica adopted (0: none yet) |
//! | `phalanx_chain_synced` | gauge | | 1 once this replica has caught up in its configuration, else 0 |
//! | `phalanx_chain_group_leader` | gauge | | on configuration-group nodes: 1 on the raft leader, else 0 |
//! | `phalanx_chain_write_seconds` | histogram | | write latency seen by this node's chain client, request to acknowledgement |
//!
//! The chain gauges are fetched from the chain actors every half second, so they are at most
//! that old. A replica's lag behind the chain, rather than behind itself, is the difference
//! between nodes: `max(phalanx_chain_received) - phalanx_chain_committed` across the cluster.
//! The gossip counters start again from 0 when the gossip actor is restarted by its
//! supervisor (Prometheus's `rate` treats that as a counter reset).
//!
//! Histograms whose names end in `_seconds` are exported as Prometheus histograms with
//! latency buckets from 100 µs to 10 s; `phalanx_mailbox_depth` with buckets from 1 to 65,536.
//!
//! # Wiring a node
//!
//! The program installs the recorder and serves it (`--metrics ADDR`) before it starts nodes;
//! each node, when [`Metrics::installed`] says metrics are on, registers one collector for the
//! figures it owns, keeps the [`CollectorGuard`] for its life and labels everything with its
//! id:
//!
//! ```no_run
//! # #[allow(dead_code)]
//! # async fn demo(addr: std::net::SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! use phalanx::metrics::{Metrics, TRANSPORT_DROPPED_FRAMES};
//!
//! // In the program, for --metrics ADDR:
//! let server = Metrics::install()?.serve(addr).await?;
//!
//! // In the node (here one drop counter stands for the transport's counters by reason):
//! let node_id = "0af3".to_owned();
//! let dropped_bad_mac = Arc::new(AtomicU64::new(0));
//! let guard = Metrics::installed().map(|metrics| {
//!     let dropped = dropped_bad_mac.clone();
//!     metrics.register_collector(move |sink| {
//!         let labels = [("node", node_id.clone()), ("reason", "bad_mac".to_owned())];
//!         sink.counter(TRANSPORT_DROPPED_FRAMES, &labels, dropped.load(Ordering::Relaxed));
//!     })
//! });
//! # drop((server, guard));
//! # Ok(())
//! # }
//! ```
//!
//! Latencies are events, not state: record them where they happen, with
//! `metrics::histogram!(CHAIN_WRITE_SECONDS, "node" => id).record(seconds)`.
//!
//! # Examples
//!
//! ```
//! use phalanx::metrics::Metrics;
//!
//! let metrics = Metrics::install()?;
//! let _collector = metrics.register_collector(|sink| {
//!     sink.gauge("example_queue_length", &[("queue", "jobs".to_owned())], 3.0);
//! });
//! let text = metrics.render();
//! assert!(text.contains("example_queue_length{queue=\"jobs\"} 3"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`runtime::stats`]: crate::runtime::stats
//! [`supervisors::stats`]: crate::supervisors::stats

mod http;

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub use http::MetricsServer;

/// The process-wide Prometheus recorder and the collectors run at every scrape.
///
/// There is one per process, because the `metrics` facade has one global recorder: get it
/// with [`Metrics::install`], from anywhere, as often as needed.
pub struct Metrics {
    handle: PrometheusHandle,
    collectors: Arc<Mutex<Vec<(u64, Collector)>>>,
    next_collector: AtomicU64,
}

/// A function run at every scrape that writes figures into a [`Sink`].
type Collector = Box<dyn Fn(&mut Sink) + Send + Sync>;

/// Where a collector writes its figures at scrape time.
///
/// Names should be Prometheus names (`snake_case`, with a unit suffix where one applies);
/// labels should come from small fixed sets (a node id, a reason), never from message contents.
#[derive(Debug)]
pub struct Sink {
    _private: (),
}

/// Keeps a collector registered; dropping it removes the collector.
///
/// The figures it wrote last stay in the rendered text with their last values.
#[must_use = "dropping the guard removes the collector at once"]
pub struct CollectorGuard {
    id: u64,
    collectors: Arc<Mutex<Vec<(u64, Collector)>>>,
}

/// Why metrics could not be installed or served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// Another recorder is already installed for the `metrics` facade in this process. Nothing
    /// was installed.
    #[error("another metrics recorder is already installed")]
    RecorderTaken,
    /// The recorder could not be configured (its histogram buckets). Nothing was installed.
    #[error("the metrics recorder could not be built: {0}")]
    Build(String),
    /// The HTTP listener could not bind its address. Nothing is served.
    #[error("could not listen for metrics scrapes on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
}

/// Frames a transport dropped on receipt, labelled `node` and `reason` (counter).
pub const TRANSPORT_DROPPED_FRAMES: &str = "phalanx_transport_dropped_frames_total";
/// Failure-detector probes, labelled `node` and `result` (counter).
pub const GOSSIP_PROBES: &str = "phalanx_gossip_probes_total";
/// Suspicions raised and refuted, labelled `node` and `event` (counter).
pub const GOSSIP_SUSPICIONS: &str = "phalanx_gossip_suspicions_total";
/// Members by state as a node sees them, labelled `node` and `state` (gauge).
pub const GOSSIP_MEMBERS: &str = "phalanx_gossip_members";
/// Lifeguard local health score, labelled `node` (gauge).
pub const GOSSIP_LOCAL_HEALTH: &str = "phalanx_gossip_local_health";
/// How far a replica's clean state trails the newest version it holds, labelled `node` (gauge).
pub const CHAIN_LAG: &str = "phalanx_chain_lag";
/// Highest sequence number a replica committed, labelled `node` (gauge).
pub const CHAIN_COMMITTED: &str = "phalanx_chain_committed";
/// Highest sequence number a replica received, labelled `node` (gauge).
pub const CHAIN_RECEIVED: &str = "phalanx_chain_received";
/// Epoch of the configuration a replica adopted, labelled `node` (gauge).
pub const CHAIN_EPOCH: &str = "phalanx_chain_epoch";
/// Whether a replica has caught up in its configuration (1) or not (0), labelled `node`
/// (gauge).
pub const CHAIN_SYNCED: &str = "phalanx_chain_synced";
/// Whether a configuration-group node is the raft leader (1) or not (0), labelled `node`
/// (gauge).
pub const CHAIN_GROUP_LEADER: &str = "phalanx_chain_group_leader";
/// Chain write latency from request to acknowledgement, labelled `node` (histogram, seconds).
pub const CHAIN_WRITE_SECONDS: &str = "phalanx_chain_write_seconds";

/// Buckets of every `*_seconds` histogram: 100 µs to 10 s.
const LATENCY_BUCKETS: [f64; 16] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Buckets of the mailbox-depth histogram.
const DEPTH_BUCKETS: [f64; 9] = [
    1.0, 8.0, 64.0, 128.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0,
];

static INSTALLED: OnceLock<Metrics> = OnceLock::new();

impl Metrics {
    /// Installs the Prometheus recorder for this process on first call, and returns it.
    ///
    /// Later calls return the same recorder. Metrics recorded before the first call are lost.
    ///
    /// # Errors
    ///
    /// [`MetricsError::RecorderTaken`] if a recorder not from this module is installed;
    /// [`MetricsError::Build`] if the recorder could not be configured.
    pub fn install() -> Result<&'static Self, MetricsError> {
        if let Some(metrics) = INSTALLED.get() {
            return Ok(metrics);
        }
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full(phalanx_runtime::stats::MAILBOX_DEPTH.into()),
                    &DEPTH_BUCKETS,
                )
            })
            .map_err(|error| MetricsError::Build(error.to_string()))?;
        let mut result = Ok(());
        let metrics = INSTALLED.get_or_init(|| {
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                result = Err(MetricsError::RecorderTaken);
            } else {
                phalanx_runtime::stats::describe();
                phalanx_supervisors::stats::describe();
            }
            Self {
                handle,
                collectors: Arc::default(),
                next_collector: AtomicU64::new(0),
            }
        });
        result.map(|()| metrics)
    }

    /// The recorder, if [`install`](Self::install) has been called in this process.
    ///
    /// For library code (a node) that adds collectors only when the program exports metrics.
    pub fn installed() -> Option<&'static Self> {
        INSTALLED.get()
    }

    /// Registers `collector`, run at every scrape (every [`render`](Self::render)) to write
    /// figures this process owns into the [`Sink`]; it stays registered while the returned
    /// guard lives.
    ///
    /// Collectors run on the scraping task, one after the other: keep them quick (read a few
    /// atomics or a snapshot) and never block.
    pub fn register_collector(
        &self,
        collector: impl Fn(&mut Sink) + Send + Sync + 'static,
    ) -> CollectorGuard {
        let id = self.next_collector.fetch_add(1, Ordering::Relaxed);
        lock(&self.collectors).push((id, Box::new(collector)));
        CollectorGuard {
            id,
            collectors: self.collectors.clone(),
        }
    }

    /// Runs the collectors, publishes the runtime's counters and renders every metric as
    /// Prometheus text (exposition format 0.0.4).
    pub fn render(&self) -> String {
        phalanx_runtime::stats::publish();
        {
            let collectors = lock(&self.collectors);
            let mut sink = Sink { _private: () };
            for (id, collector) in collectors.iter() {
                // One collector's bug must not take the scrape (or the responder) down.
                let run = std::panic::AssertUnwindSafe(|| collector(&mut sink));
                if std::panic::catch_unwind(run).is_err() {
                    tracing::warn!(collector = id, "a metrics collector panicked");
                }
            }
        }
        self.handle.run_upkeep();
        self.handle.render()
    }

    /// Serves `GET /metrics` as Prometheus text on `addr` (port 0 picks a free port), on the
    /// current runtime, until the returned server is dropped.
    ///
    /// Anything else gets a one-line error: 404 for another path, 405 for another method, 400
    /// for a malformed request, 431 for one larger than 8 KiB. At most 32 connections are
    /// served at once; more are closed at once.
    ///
    /// # Errors
    ///
    /// [`MetricsError::Bind`] if the address cannot be bound.
    pub async fn serve(&'static self, addr: SocketAddr) -> Result<MetricsServer, MetricsError> {
        http::serve(self, addr).await
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("collectors", &lock(&self.collectors).len())
            .finish_non_exhaustive()
    }
}

impl Sink {
    /// Sets the gauge `name` with these labels to `value`.
    pub fn gauge(&mut self, name: &str, labels: &[(&'static str, String)], value: f64) {
        metrics::gauge!(name.to_owned(), to_labels(labels)).set(value);
    }

    /// Sets the counter `name` with these labels to `total`, a count that only grows (a
    /// transport's dropped frames so far, say). The counter is never lowered.
    pub fn counter(&mut self, name: &str, labels: &[(&'static str, String)], total: u64) {
        metrics::counter!(name.to_owned(), to_labels(labels)).absolute(total);
    }
}

impl Drop for CollectorGuard {
    fn drop(&mut self) {
        lock(&self.collectors).retain(|(id, _)| *id != self.id);
    }
}

impl fmt::Debug for CollectorGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CollectorGuard")
            .field("id", &self.id)
            .finish()
    }
}

fn to_labels(labels: &[(&'static str, String)]) -> Vec<metrics::Label> {
    labels
        .iter()
        .map(|(key, value)| metrics::Label::new(*key, value.clone()))
        .collect()
}

/// Locks the collectors; a collector that panicked while they were held leaves them usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
