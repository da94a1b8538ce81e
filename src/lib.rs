//! phalanx: a fault-tolerant actor runtime for Rust, with clustering built in.
//!
//! A phalanx node is a tree of supervised actors. Actors that panic or fail are restarted by
//! their supervisor, OTP style; the node's own services (discovery, membership gossip, chain
//! replication, checkpoints) are actors in the same tree. This crate is the facade: it
//! re-exports the layers below and holds the `phalanx` command-line tool. It adds no logic of
//! its own.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//!
//! use phalanx::{Actor, Context, HandlerError, Reply, spawn_actor};
//!
//! struct Doubler;
//!
//! impl Actor for Doubler {
//!     type Message = (u64, Reply<u64>);
//!
//!     async fn handle(&mut self, _: &mut Context<Self>, (n, reply): Self::Message) -> Result<(), HandlerError> {
//!         let _ = reply.send(n * 2);
//!         Ok(())
//!     }
//! }
//!
//! let doubled = phalanx::block_on(async {
//!     let doubler = spawn_actor(Doubler);
//!     doubler.ask(|reply| (21, reply), Duration::from_secs(1)).await
//! })?;
//! assert_eq!(doubled, 42);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//!
//! - [`runtime`] (`phalanx-runtime`): the executor and the actor core, re-exported at the
//!   root: [`Actor`], [`ActorRef`], [`Context`], [`Spawn`], [`Runtime`], timers, registry.
//! - [`supervisors`] (`phalanx-supervisors`): supervisors, strategies, restart policies,
//!   backoff, restart intensity and escalation.
//! - [`transports`] (`phalanx-transports`): the wire format, encryption, transports and the
//!   simulated network.
//! - [`actors`] (`phalanx-actors`): the node's system actors: discovery, gossip, chain,
//!   checkpoint.
//! - [`node`]: a node, with its services in a supervision tree.
#![doc(test(attr(deny(warnings))))]

pub mod metrics;
pub mod node;

pub use phalanx_actors as actors;
pub use phalanx_runtime as runtime;
pub use phalanx_runtime::*;
pub use phalanx_supervisors as supervisors;
pub use phalanx_transports as transports;

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
