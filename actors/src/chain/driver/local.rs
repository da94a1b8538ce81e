//! An in-process [`ChainTransport`]: packets go straight to the receivers' mailboxes.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use super::{ChainTransport, Inbound, Packet};
use crate::chain::message::Peer;

type Sink = Arc<dyn Fn(Inbound) + Send + Sync>;

/// Delivers packets between drivers in one process, for tests and single-process setups.
/// Every packet counts as authenticated (it never left the process).
///
/// A receiver is attached with a sink (usually a closure that `try_tell`s an actor);
/// detaching it models a crash or a partition of that participant.
#[derive(Clone, Default)]
pub struct LocalNetwork {
    sinks: Arc<RwLock<HashMap<Peer, Sink>>>,
}

impl LocalNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// Delivers packets for `peer` to `sink` (replacing an earlier one).
    pub fn attach(&self, peer: Peer, sink: impl Fn(Inbound) + Send + Sync + 'static) {
        if let Ok(mut sinks) = self.sinks.write() {
            sinks.insert(peer, Arc::new(sink));
        }
    }

    /// Drops packets for `peer` from now on.
    pub fn detach(&self, peer: Peer) {
        if let Ok(mut sinks) = self.sinks.write() {
            sinks.remove(&peer);
        }
    }
}

impl ChainTransport for LocalNetwork {
    fn send(&self, packet: Packet) {
        let sink = self
            .sinks
            .read()
            .ok()
            .and_then(|sinks| sinks.get(&packet.to).cloned());
        if let Some(sink) = sink {
            sink(Inbound {
                packet,
                authenticated: true,
            });
        }
    }
}

impl fmt::Debug for LocalNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let peers = self.sinks.read().map(|sinks| sinks.len()).unwrap_or(0);
        f.debug_struct("LocalNetwork")
            .field("peers", &peers)
            .finish()
    }
}
