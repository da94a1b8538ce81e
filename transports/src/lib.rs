//! Wire format, encryption and transports for phalanx.
//!
//! Work in progress: see the issues.
