//! Supervision trees with OTP semantics for phalanx.
//!
//! A [`Supervisor`] starts child actors in order, monitors them, and when one ends decides
//! from its [`Strategy`], the child's [`RestartPolicy`] and [`Backoff`], and a restart
//! [`Intensity`] limit whether to restart it (and which siblings with it), or to give up:
//! stop all its children in reverse start order and fail, so that its own supervisor takes
//! over (escalation). Supervisors nest to any depth; a [`SupervisorRef`] adds and removes
//! children at run time, shuts the tree down in order and reports how the root ended.
//!
//! The decisions are made by [`Restarter`], a sans-IO state machine (no clock, no I/O, no
//! randomness of its own; `now` and the jitter's random number are arguments), property-tested
//! against a reference model. This crate is not an executor or an actor core; those are in
//! `phalanx-runtime`, whose [`Actor`](phalanx_runtime::Actor) trait every child implements.
//!
//! # Semantics
//!
//! | | |
//! |---|---|
//! | one-for-one | only the exited child is restarted |
//! | one-for-all | the other running children are stopped (reverse start order), then all restart in start order |
//! | rest-for-one | the children started after the exited one are stopped (reverse order), then it and they restart in start order |
//! | permanent | always restarted |
//! | transient | restarted after an abnormal exit (failure, kill, node down) only |
//! | temporary | never restarted; removed whenever it ends |
//! | intensity | more than N restarts within T (sliding, inclusive window) escalates |
//! | backoff | none, fixed, or exponential with cap and jitter; a timer message, never a sleep |
//! | shutdown | per child: stop then kill after a timeout, kill at once, or wait indefinitely |
//!
//! * A child that is not restarted never affects its siblings, and is removed.
//! * In a group restart, each old sibling has *fully ended* before the next is stopped, and all
//!   have before any new instance starts.
//! * A restarted child's [`Actor::restarting`](phalanx_runtime::Actor::restarting) receives the
//!   previous instance's [`Failure`](phalanx_runtime::Failure).
//! * A group restart counts as one restart against the intensity.
//! * The root's end is observed with [`SupervisorRef::wait`]: `Ok(())` after an ordered
//!   shutdown, [`SupervisorError::IntensityExceeded`] after escalation.
//!
//! # Examples
//!
//! A tree: a root (rest-for-one) over a database actor and a one-for-one pool of workers.
//!
//! ```
//! use std::time::Duration;
//!
//! use phalanx_runtime::{Actor, Context, Failure, HandlerError};
//! use phalanx_supervisors::{
//!     Backoff, ChildSpec, Intensity, RestartPolicy, Strategy, Supervisor,
//! };
//!
//! struct Worker;
//!
//! impl Actor for Worker {
//!     type Message = &'static str;
//!
//!     async fn restarting(&mut self, _: &mut Context<Self>, failure: &Failure) {
//!         eprintln!("restarted after: {failure}");
//!     }
//!
//!     async fn handle(
//!         &mut self,
//!         _: &mut Context<Self>,
//!         msg: &'static str,
//!     ) -> Result<(), HandlerError> {
//!         if msg == "crash" {
//!             return Err("asked to crash".into());
//!         }
//!         Ok(())
//!     }
//! }
//!
//! phalanx_runtime::block_on(async {
//!     let worker = ChildSpec::new("worker", || Worker)
//!         .restart(RestartPolicy::Transient)
//!         .backoff(Backoff::exponential(Duration::from_millis(10), Duration::from_secs(1)));
//!     let pool = Supervisor::new(Strategy::OneForOne)
//!         .intensity(Intensity::new(10, Duration::from_secs(5)))
//!         .children((0..4).map(|i| worker.with_id(format!("worker-{i}"))));
//!     let root = Supervisor::new(Strategy::RestForOne)
//!         .child(ChildSpec::new("db", || Worker))
//!         .child(pool.into_child_spec("pool"))
//!         .start()?;
//!
//!     // Reach into the tree, crash a worker: only it restarts, after its backoff.
//!     let pool = root.child_supervisor("pool").await?.expect("pool is running");
//!     let w0 = pool.child::<&'static str>("worker-0").await?.expect("running");
//!     w0.tell("crash").await?;
//!
//!     // Dynamic children come and go at run time.
//!     pool.start_child(worker.with_id("extra")).await?;
//!     pool.terminate_child("extra").await?;
//!
//!     // Orderly shutdown: pool (its workers newest first), then db.
//!     root.shutdown().await?;
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Escalation out of the root, observed by the node:
//!
//! ```
//! use std::time::Duration;
//!
//! use phalanx_runtime::{Actor, Context, HandlerError};
//! use phalanx_supervisors::{ChildSpec, Intensity, Strategy, Supervisor, SupervisorError};
//!
//! struct Fragile;
//!
//! impl Actor for Fragile {
//!     type Message = ();
//!
//!     async fn started(&mut self, _: &mut Context<Self>) -> Result<(), HandlerError> {
//!         Err("cannot connect".into())
//!     }
//!
//!     async fn handle(&mut self, _: &mut Context<Self>, _: ()) -> Result<(), HandlerError> {
//!         Ok(())
//!     }
//! }
//!
//! phalanx_runtime::block_on(async {
//!     let root = Supervisor::new(Strategy::OneForOne)
//!         .intensity(Intensity::new(2, Duration::from_secs(60)))
//!         .child(ChildSpec::new("fragile", || Fragile))
//!         .start()?;
//!     match root.wait().await {
//!         Err(SupervisorError::IntensityExceeded { child, .. }) => assert_eq!(child, "fragile"),
//!         other => panic!("unexpected {other:?}"),
//!     }
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//!
//! * [`Restarter`], [`Decision`], [`RestartPlan`], [`IntensityWindow`]: the sans-IO core.
//! * [`Strategy`], [`RestartPolicy`], [`Intensity`], [`Backoff`], [`ExitKind`]: its inputs.
//! * [`Supervisor`] (configuration and start), [`ChildSpec`] and [`Shutdown`] (one child),
//!   [`SupervisorRef`] (the running supervisor), [`SupervisorError`].

#![doc(test(attr(deny(warnings))))]

mod backoff;
mod decision;
mod error;
mod intensity;
mod policy;
mod restarter;
mod spec;
pub mod stats;
mod strategy;
mod supervisor;
mod supervisor_ref;

pub use backoff::{Backoff, Exponential};
pub use decision::{Decision, ExitKind, RestartId, RestartPlan};
pub use error::SupervisorError;
pub use intensity::{Intensity, IntensityWindow};
pub use policy::RestartPolicy;
pub use restarter::{ChildKey, Restarter};
pub use spec::{ChildSpec, DEFAULT_SHUTDOWN, Shutdown};
pub use strategy::Strategy;
pub use supervisor::Supervisor;
pub use supervisor_ref::{ChildInfo, DEFAULT_CALL_TIMEOUT, SupervisorMessage, SupervisorRef};
