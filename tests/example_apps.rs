//! Runs the example applications (`examples/worker_pool.rs`, `examples/chat.rs`), each of
//! which asserts its own outcome.

#[path = "../examples/chat.rs"]
mod chat;
#[path = "../examples/worker_pool.rs"]
mod worker_pool;

#[test]
fn worker_pool_survives_panics() {
    worker_pool::main().expect("the worker pool runs");
}

#[test]
fn chat_fans_out_over_process_groups() {
    chat::main().expect("the chat runs");
}
