//! The node's own figures for the metrics endpoint: frames dropped by the transports, by
//! reason, and the membership table by state. They are read at scrape time, so the hot
//! paths pay nothing for them.

use std::sync::{Arc, Mutex};

use phalanx_transports::{NodeId, Remoting};

use super::MemberRow;
use crate::metrics::{CollectorGuard, GOSSIP_MEMBERS, Metrics, TRANSPORT_DROPPED_FRAMES};

/// The states a member can be in, each reported even when no member is in it.
const STATES: [&str; 4] = ["alive", "suspect", "dead", "left"];

/// Registers the node's collector if a metrics recorder is installed; the node keeps the
/// guard, so its figures go away with it.
pub(super) fn collect(
    node: NodeId,
    remoting: &Arc<Remoting>,
    table: &Arc<Mutex<Vec<MemberRow>>>,
) -> Option<CollectorGuard> {
    let metrics = Metrics::installed()?;
    let remoting = Arc::downgrade(remoting);
    let table = table.clone();
    let id = node.to_string();
    Some(metrics.register_collector(move |sink| {
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
        let rows = table.lock().map(|rows| rows.clone()).unwrap_or_default();
        for state in STATES {
            let count = rows.iter().filter(|row| row.state == state).count();
            let labels = [("node", id.clone()), ("state", state.to_owned())];
            sink.gauge(GOSSIP_MEMBERS, &labels, count as f64);
        }
    }))
}
