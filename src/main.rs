//! The `phalanx` command-line tool.

fn main() {}
