//! The node's system actors: discovery, gossip, chain, checkpoint.
//!
//! Work in progress: see the issues.
