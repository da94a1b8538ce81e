//! The executor: tasks, blocking work, timers and worker placement.

#[path = "support/common.rs"]
mod common;

use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use phalanx_runtime::{Runtime, spawn, spawn_blocking, timeout};

#[test]
fn spawn_and_spawn_blocking_return_results() {
    let rt = Runtime::builder()
        .worker_threads(3)
        .build()
        .expect("runtime");
    assert_eq!(rt.worker_threads(), 3);
    let (a, b) = rt.block_on(async {
        let a = spawn(async { 40 + 2 });
        let b = spawn_blocking(|| std::thread::current().name().map(str::to_owned));
        (a.await, b.await)
    });
    assert_eq!(a, 42);
    assert!(
        !b.unwrap_or_default().starts_with("phalanx-worker"),
        "blocking work left the workers"
    );
}

#[test]
fn timeout_and_interval() {
    let rt = common::runtime();
    rt.block_on(async {
        assert!(
            timeout(
                Duration::from_millis(5),
                phalanx_runtime::sleep(Duration::from_secs(60))
            )
            .await
            .is_err()
        );
        let start = Instant::now();
        let mut ticks = phalanx_runtime::interval(Duration::from_millis(2));
        for _ in 0..5 {
            ticks.next().await;
        }
        assert!(start.elapsed() >= Duration::from_millis(10));
    });
}

#[test]
fn many_tasks_complete_across_workers() {
    let rt = common::runtime();
    let total: u64 = rt.block_on(async {
        let tasks: Vec<_> = (0..10_000u64).map(|n| spawn(async move { n })).collect();
        let mut total = 0;
        for task in tasks {
            total += task.await;
        }
        total
    });
    assert_eq!(total, (0..10_000u64).sum());
}
