//! The executor and the actor core of phalanx.
//!
//! This crate is the bottom layer of phalanx: a multi-threaded executor built on the smol
//! crates (async-executor, async-io, blocking), and local actors on top of it: the [`Actor`]
//! trait, typed [`ActorRef`]s with `tell`, `try_tell` and `ask`, bounded mailboxes, system
//! signals that overtake user messages, stop versus kill, panics caught at the actor boundary,
//! links, monitors and a registry of names. It knows nothing about supervision strategies,
//! networks or clusters; those live in the crates above it.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//!
//! use phalanx_runtime::{Actor, Context, HandlerError, Reply, Runtime, spawn_actor};
//!
//! struct Greeter;
//!
//! impl Actor for Greeter {
//!     type Message = (String, Reply<String>);
//!
//!     async fn handle(
//!         &mut self,
//!         _: &mut Context<Self>,
//!         (name, reply): Self::Message,
//!     ) -> Result<(), HandlerError> {
//!         let _ = reply.send(format!("hello, {name}"));
//!         Ok(())
//!     }
//! }
//!
//! let runtime = Runtime::builder().worker_threads(2).build()?;
//! let greeting = runtime.block_on(async {
//!     let greeter = spawn_actor(Greeter);
//!     greeter.ask(|reply| ("ada".to_string(), reply), Duration::from_secs(1)).await
//! })?;
//! assert_eq!(greeting, "hello, ada");
//! runtime.shutdown(Duration::from_secs(1))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![doc(test(attr(deny(warnings))))]

mod actor;
mod actor_ref;
mod ask;
mod cell;
mod context;
mod error;
mod executor;
mod exit;
pub mod registry;
pub mod remote;
mod spawn;
pub mod stats;
mod timer;

pub use actor::{Actor, HandlerError};
pub use actor_ref::ActorRef;
pub use ask::{DEFAULT_ASK_TIMEOUT, Reply};
pub use async_task::Task;
pub use cell::{ActorId, Addr};
pub use context::Context;
pub use error::{AskError, Elapsed, SendError, ShutdownError, SpawnError, TrySendError};
pub use executor::{Handle, Runtime, RuntimeBuilder, block_on, spawn, spawn_blocking};
pub use exit::{Down, Exit, ExitReason, Failure, FailureKind, MonitorRef};
pub use spawn::{DEFAULT_MAILBOX_CAPACITY, Spawn, spawn_actor};
pub use timer::{Interval, interval, sleep, sleep_until, timeout, timeout_at};
