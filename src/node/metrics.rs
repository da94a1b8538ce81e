//! The node's own figures for the metrics endpoint: frames dropped by the transports, by
//! reason, the failure detector's probe outcomes, suspicions and local health, the membership
//! table by state, and the chain's progress on this node.
//!
//! Transport and membership figures are read at scrape time, so the hot paths pay nothing for
//! them. The chain's figures live in its actors, which answer only by message, and a collector
//! must not wait: a small task asks the node's replica and group node for their status every
//! [`CHAIN_POLL`] and the collector publishes the latest answers (so they are at most that
//! old).

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use phalanx_actors::chain::driver::{GroupStatus, ReplicaStatus};
use phalanx_runtime::Task;
use phalanx_transports::{NodeId, Remoting};

use super::MemberRow;
use super::chain::ChainServices;
use super::gossip::Detector;
use crate::metrics::{
    CHAIN_COMMITTED, CHAIN_EPOCH, CHAIN_GROUP_LEADER, CHAIN_LAG, CHAIN_RECEIVED, CHAIN_SYNCED,
    CollectorGuard, GOSSIP_LOCAL_HEALTH, GOSSIP_MEMBERS, GOSSIP_PROBES, GOSSIP_SUSPICIONS, Metrics,
    Sink, TRANSPORT_DROPPED_FRAMES,
};

/// The states a member can be in, each reported even when no member is in it.
const STATES: [&str; 4] = ["alive", "suspect", "dead", "left"];
/// How often the chain's figures are fetched from its actors.
pub(crate) const CHAIN_POLL: Duration = Duration::from_millis(500);

/// The latest status answers of the node's chain actors.
#[derive(Debug, Default)]
struct ChainFigures {
    replica: Option<ReplicaStatus>,
    group: Option<GroupStatus>,
}

/// Registers the node's collector if a metrics recorder is installed; the node keeps the
/// guard, so its figures go away with it (and so does the chain poller, which the collector
/// owns).
pub(super) fn collect(
    node: NodeId,
    remoting: &Arc<Remoting>,
    (table, detector): (&Arc<Mutex<Vec<MemberRow>>>, &Detector),
    chain: Option<&Arc<ChainServices>>,
) -> Option<CollectorGuard> {
    let metrics = Metrics::installed()?;
    let remoting = Arc::downgrade(remoting);
    let table = table.clone();
    let detector = detector.clone();
    let id = node.to_string();
    let figures: Arc<Mutex<ChainFigures>> = Arc::default();
    // Dropped with the collector, which cancels the task.
    let poller: Option<Task<()>> =
        chain.map(|chain| phalanx_runtime::spawn(poll(Arc::downgrade(chain), figures.clone())));
    Some(metrics.register_collector(move |sink| {
        let _owned = &poller;
        if let Some(remoting) = remoting.upgrade() {
            let drops = remoting.endpoint().drop_counters();
            let reasons = [
                ("garbled", drops.garbled),
                ("truncated", drops.truncated),
                ("oversized", drops.oversized),
                ("unauthenticated", drops.unauthenticated),
                ("wrong_cluster", drops.wrong_cluster),
                ("replayed", drops.replayed),
                ("unknown_version", drops.unknown_version),
                ("unknown_kind", drops.unknown_kind),
            ];
            for (reason, total) in reasons {
                let labels = [("node", id.clone()), ("reason", reason.to_owned())];
                sink.counter(TRANSPORT_DROPPED_FRAMES, &labels, total);
            }
        }
        let (probes, health) = *detector.lock().unwrap_or_else(PoisonError::into_inner);
        let outcomes = [
            ("ack", probes.acked),
            ("indirect_ack", probes.indirect_acked),
            ("timeout", probes.timed_out),
        ];
        for (result, total) in outcomes {
            let labels = [("node", id.clone()), ("result", result.to_owned())];
            sink.counter(GOSSIP_PROBES, &labels, total);
        }
        let events = [
            ("raised", probes.suspicions),
            ("refuted", probes.refutations),
        ];
        for (event, total) in events {
            let labels = [("node", id.clone()), ("event", event.to_owned())];
            sink.counter(GOSSIP_SUSPICIONS, &labels, total);
        }
        sink.gauge(
            GOSSIP_LOCAL_HEALTH,
            &[("node", id.clone())],
            f64::from(health),
        );
        let rows = table.lock().map(|rows| rows.clone()).unwrap_or_default();
        for state in STATES {
            let count = rows.iter().filter(|row| row.state == state).count();
            let labels = [("node", id.clone()), ("state", state.to_owned())];
            sink.gauge(GOSSIP_MEMBERS, &labels, count as f64);
        }
        if poller.is_some() {
            let figures = figures.lock().unwrap_or_else(PoisonError::into_inner);
            publish_chain(sink, &id, &figures);
        }
    }))
}

/// Writes the chain figures; a figure whose actor has not answered yet is left out.
fn publish_chain(sink: &mut Sink, id: &str, figures: &ChainFigures) {
    let labels = [("node", id.to_owned())];
    if let Some(replica) = &figures.replica {
        let lag = replica.received.saturating_sub(replica.committed);
        sink.gauge(CHAIN_LAG, &labels, lag as f64);
        sink.gauge(CHAIN_COMMITTED, &labels, replica.committed as f64);
        sink.gauge(CHAIN_RECEIVED, &labels, replica.received as f64);
        let epoch = replica.config.as_ref().map_or(0, |config| config.epoch);
        sink.gauge(CHAIN_EPOCH, &labels, epoch as f64);
        sink.gauge(CHAIN_SYNCED, &labels, f64::from(u8::from(replica.synced)));
    }
    if let Some(group) = &figures.group {
        sink.gauge(
            CHAIN_GROUP_LEADER,
            &labels,
            f64::from(u8::from(group.leader)),
        );
    }
}

/// Asks the chain actors for their status every [`CHAIN_POLL`] while the node's chain
/// services exist; an actor that does not answer (it is restarting) keeps its last figures.
async fn poll(chain: Weak<ChainServices>, figures: Arc<Mutex<ChainFigures>>) {
    loop {
        let Some(services) = chain.upgrade() else {
            return;
        };
        let replica = services.replica_status().await;
        let group = services.group_status().await;
        drop(services);
        {
            let mut figures = figures.lock().unwrap_or_else(PoisonError::into_inner);
            if replica.is_some() {
                figures.replica = replica;
            }
            if group.is_some() {
                figures.group = group;
            }
        }
        phalanx_runtime::sleep(CHAIN_POLL).await;
    }
}
