//! Runs the example applications (`examples/worker_pool.rs`, `examples/chat.rs`,
//! `examples/job_queue.rs`), each of which asserts its own outcome.

#[path = "../examples/chat.rs"]
mod chat;
#[path = "../examples/job_queue.rs"]
mod job_queue;
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

#[test]
fn job_queue_redoes_the_job_of_a_worker_that_died() {
    job_queue::main().expect("the job queue runs");
}
