//! Runs the "Replicated state" book listing (`examples/ch07_replicated_state.rs`) and so
//! checks its assertions.

#[path = "../examples/ch07_replicated_state.rs"]
mod ch07_replicated_state;

#[test]
fn ch07_replicated_state() {
    ch07_replicated_state::main().expect("listing runs");
}
