//! Runs the listing of the "Membership and discovery" chapter.

#[path = "../examples/ch06_membership.rs"]
mod ch06_membership;

#[test]
fn ch06_membership() -> Result<(), Box<dyn std::error::Error>> {
    ch06_membership::main()
}

#[path = "../examples/ch06_datagrams.rs"]
mod ch06_datagrams;

#[test]
fn ch06_datagrams() -> Result<(), Box<dyn std::error::Error>> {
    ch06_datagrams::main()
}
