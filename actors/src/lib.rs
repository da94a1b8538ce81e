//! The node's system actors: discovery, gossip, chain, checkpoint.
//!
//! Each service is a sans-IO protocol core plus the actor that drives it. So far this crate
//! holds the gossip membership core ([`gossip`]) and a deterministic simulation harness for
//! it ([`sim`]).

/// Finding other nodes: seeds, DNS, LAN beacons and mDNS, as a sans-IO core plus its actor.
pub mod discovery;
pub mod gossip;
pub mod sim;
