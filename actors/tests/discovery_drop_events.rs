//! Every beacon the discovery core drops is counted and emits exactly one `tracing` event of
//! this crate (the codec underneath logs its own drops too; those are not counted here).
//!
//! This is the only test of its binary: see the helper's module comment for why.

#[path = "../../transports/tests/support/events.rs"]
mod events;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use phalanx_actors::discovery::{Action, Discovery, DiscoveryConfig};
use phalanx_transports::{ClusterId, Key, Keyring, NodeId, Security};

use events::EventCounter;

fn keyed(byte: u8) -> Security {
    Security::Keyring(Keyring::new(Key::from_bytes([byte; 32])))
}

fn core(node: u128, security: Security, now: Instant) -> Discovery {
    let mut config = DiscoveryConfig::new(ClusterId(7), NodeId::from_u128(node));
    config.gossip = Some(SocketAddr::from(([10, 0, 0, node as u8], 7946)));
    config.beacon_interval = Some(Duration::from_secs(5));
    Discovery::new(config, security, now)
}

fn beacon_from(node: u128, security: Security, now: Instant) -> Result<Vec<u8>, String> {
    let mut sender = core(node, security, now);
    sender.handle_timeout(now);
    let mut last = None;
    while let Some(action) = sender.poll_action() {
        last = Some(action);
    }
    match last {
        Some(Action::SendBeacon(bytes)) => Ok(bytes),
        other => Err(format!("expected a beacon, got {other:?}")),
    }
}

#[test]
fn every_dropped_beacon_emits_one_tracing_event_of_ours() -> Result<(), String> {
    let now = Instant::now();
    let good = beacon_from(2, keyed(1), now)?;
    let wrong_key = beacon_from(3, keyed(2), now)?;
    let (subscriber, events) = EventCounter::new("phalanx_actors");
    let dropped = tracing::subscriber::with_default(subscriber, || {
        let mut receiver = core(1, keyed(1), now);
        let from = SocketAddr::from(([10, 0, 0, 9], 9));
        let _ = receiver.handle_beacon(&good, from, now); // accepted: no event
        let _ = receiver.handle_beacon(&good, from, now); // replayed
        let _ = receiver.handle_beacon(&wrong_key, from, now); // unauthenticated
        let _ = receiver.handle_beacon(&[0; 300], from, now); // oversized
        let _ = receiver.handle_beacon(b"PX", from, now); // truncated
        receiver.counters().beacons.dropped()
    });
    assert_eq!(dropped, 4);
    assert_eq!(events.load(Ordering::Relaxed), 4);
    Ok(())
}
