//! Runs every book listing (the `examples/chNN_*.rs` programs) and so checks their assertions.

#[path = "../examples/ch01_hello.rs"]
mod ch01_hello;
#[path = "../examples/ch02_actors.rs"]
mod ch02_actors;
#[path = "../examples/ch03_supervision.rs"]
mod ch03_supervision;
#[path = "../examples/ch04_cluster.rs"]
mod ch04_cluster;

#[test]
fn ch01_hello() {
    ch01_hello::main().expect("listing runs");
}

#[test]
fn ch02_actors() {
    ch02_actors::main().expect("listing runs");
}

#[test]
fn ch03_supervision() {
    ch03_supervision::main().expect("listing runs");
}

#[test]
fn ch04_cluster() {
    ch04_cluster::main().expect("listing runs");
}
