//! Runs the listing of the "Durability and operations" chapter and so checks its assertions.

#[path = "../examples/ch08_durability.rs"]
mod ch08_durability;

#[test]
fn ch08_durability() {
    ch08_durability::main().expect("listing runs");
}
