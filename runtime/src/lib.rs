//! Executor and actor core of phalanx.
