//! Timers: sleep, timeouts and intervals, on the async-io reactor.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_io::Timer;
use futures_lite::Stream;

use crate::Elapsed;

/// Waits for `duration`.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let start = Instant::now();
/// phalanx_runtime::block_on(phalanx_runtime::sleep(Duration::from_millis(5)));
/// assert!(start.elapsed() >= Duration::from_millis(5));
/// ```
pub async fn sleep(duration: Duration) {
    Timer::after(duration).await;
}

/// Waits until `deadline`.
pub async fn sleep_until(deadline: Instant) {
    Timer::at(deadline).await;
}

/// Runs `future`, giving up after `duration`.
///
/// # Errors
///
/// [`Elapsed`] if `future` did not complete in time; it is dropped then.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// use phalanx_runtime::{sleep, timeout};
///
/// phalanx_runtime::block_on(async {
///     let slow = timeout(Duration::from_millis(1), sleep(Duration::from_secs(10))).await;
///     assert!(slow.is_err());
///     let fast = timeout(Duration::from_secs(10), async { 7 }).await;
///     assert_eq!(fast, Ok(7));
/// });
/// ```
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, Elapsed> {
    timeout_at(Instant::now() + duration, future).await
}

/// Runs `future`, giving up at `deadline`.
///
/// # Errors
///
/// [`Elapsed`] if `future` did not complete in time; it is dropped then.
pub async fn timeout_at<F: Future>(deadline: Instant, future: F) -> Result<F::Output, Elapsed> {
    futures_lite::future::or(async { Ok(future.await) }, async {
        Timer::at(deadline).await;
        Err(Elapsed(()))
    })
    .await
}

/// Creates a stream that yields every `period`, starting one period from now.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// use futures_lite::StreamExt;
///
/// phalanx_runtime::block_on(async {
///     let mut ticks = phalanx_runtime::interval(Duration::from_millis(1));
///     for _ in 0..3 {
///         ticks.next().await;
///     }
/// });
/// ```
pub fn interval(period: Duration) -> Interval {
    Interval {
        timer: Timer::interval(period),
    }
}

/// A stream of instants, one every period; see [`interval`].
#[derive(Debug)]
pub struct Interval {
    timer: Timer,
}

impl Stream for Interval {
    type Item = Instant;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        Pin::new(&mut self.timer).poll_next(cx)
    }
}
