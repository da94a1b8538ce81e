//! Supervision trees with OTP semantics for phalanx.
//!
//! A supervisor starts children, watches them, and restarts them when they end according to
//! a [`Strategy`] (one-for-one, one-for-all, rest-for-one), each child's [`RestartPolicy`]
//! (permanent, transient, temporary) and [`Backoff`], and a restart [`Intensity`] limit beyond
//! which it gives up, stops its children and fails so that its own supervisor takes over
//! (escalation).
//!
//! The decisions are made by [`Restarter`], a sans-IO state machine with no clock, no I/O and
//! no randomness of its own, which makes them property-testable. This crate is not an
//! executor or an actor core: those are in `phalanx-runtime`.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use phalanx_supervisors::{
//!     Backoff, Decision, ExitKind, Intensity, RestartPolicy, Restarter, Strategy,
//! };
//!
//! let mut core = Restarter::new(Strategy::OneForOne, Intensity::new(3, Duration::from_secs(5)));
//! let worker = core.add_child(
//!     RestartPolicy::Transient,
//!     Backoff::Fixed(Duration::from_millis(100)),
//!     (),
//! );
//! match core.handle_exit(worker, ExitKind::Failure, Duration::ZERO, 0) {
//!     Decision::Restart(plan) => assert_eq!(plan.delay, Duration::from_millis(100)),
//!     other => panic!("unexpected {other:?}"),
//! }
//! ```

#![doc(test(attr(deny(warnings))))]

mod backoff;
mod decision;
mod error;
mod intensity;
mod policy;
mod restarter;
mod spec;
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
