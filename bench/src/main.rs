//! Benchmarks of phalanx against its peers.

fn main() {}
