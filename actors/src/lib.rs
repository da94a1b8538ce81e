//! The node's system actors: discovery, gossip, chain, checkpoint.
//!
//! Each service is a sans-IO protocol core plus the actor that drives it: membership gossip
//! ([`gossip`]), discovery ([`discovery`]), the cluster registry ([`registry`]) and chain
//! replication ([`chain`]), with a deterministic simulation harness ([`sim`]).

// Chain replication with CRAQ reads and consensus-committed reconfiguration (sans-IO), its
// simulation and a linearizability checker (docs inside, as for discovery).
mod bounded;
pub mod chain;
pub mod checkpoint;
pub mod clock;
// Finding other nodes: seeds, DNS, LAN beacons and mDNS (docs inside: an outer doc comment
// here would make rustdoc resolve the module's intra-doc links in the crate root).
pub mod discovery;
pub mod gossip;
pub mod registry;
pub mod sim;
