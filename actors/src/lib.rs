//! The node's system actors: discovery, gossip, chain, checkpoint.
//!
//! Each service is a sans-IO protocol core plus the actor that drives it. So far this crate
//! holds the gossip membership core ([`gossip`]) and a deterministic simulation harness for
//! it ([`sim`]).

// Chain replication with CRAQ reads and consensus-committed reconfiguration (sans-IO), its
// simulation and a linearizability checker (docs inside, as for discovery).
pub mod chain;
// Finding other nodes: seeds, DNS, LAN beacons and mDNS (docs inside: an outer doc comment
// here would make rustdoc resolve the module's intra-doc links in the crate root).
pub mod discovery;
pub mod gossip;
pub mod registry;
pub mod sim;
