//! Supervision trees with OTP semantics for phalanx.
//!
//! Work in progress: see the issues.
