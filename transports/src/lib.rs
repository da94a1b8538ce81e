//! Wire format, encryption and transports for phalanx.
//!
//! Work in progress: see the issues.

mod sim;
pub use sim::{SimClock, SimFaults, SimInstant, SimNetwork, SimStats};
