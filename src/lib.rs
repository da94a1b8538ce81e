//! phalanx: a fault-tolerant actor runtime with clustering built in.

pub use phalanx_runtime as runtime;
