//! Heartbeats and silence detection, so that a peer that stops talking without closing its
//! connection (a crashed host, a cut cable, a frozen process) is declared down.
//!
//! Data flows one way on a connection (dialer to acceptor), but both ends send a heartbeat,
//! an empty sealed [`FrameKind::Control`] frame, every `heartbeat_interval`: the dialer through
//! its outbox (in order with its batches), the acceptor on the otherwise unused reverse
//! direction. Each end declares the connection dead when it has been *waiting to read* for
//! `idle_timeout` without receiving a byte. Time spent delivering frames to a slow handler does
//! not count, so backpressure is never mistaken for a dead peer.
//!
//! The watchdog costs the read path one relaxed atomic increment per read; its timer runs in
//! its own future, a few times per timeout.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_lite::{AsyncWrite, AsyncWriteExt};

use super::LinkError;
use super::key_follower::KeyFollower;
use crate::codec::Codec;
use crate::frame::FrameKind;

/// Whether one direction of a connection still hears from the peer.
#[derive(Debug, Default)]
pub(super) struct Liveness {
    /// Bumped after every read that returned bytes.
    reads: AtomicU64,
    /// The reader is waiting for bytes (as opposed to delivering what it read).
    waiting: AtomicBool,
}

impl Liveness {
    /// Runs `read` as a wait for the peer's bytes.
    pub(super) async fn read<T>(&self, read: impl Future<Output = T>) -> T {
        self.waiting.store(true, Ordering::Relaxed);
        let result = read.await;
        self.waiting.store(false, Ordering::Relaxed);
        self.reads.fetch_add(1, Ordering::Relaxed);
        result
    }

    /// Completes with [`LinkError::Idle`] once the reader has waited `timeout` in a row
    /// without a read completing; never completes otherwise.
    pub(super) async fn watch(&self, timeout: Duration) -> LinkError {
        let tick = (timeout / 4).max(Duration::from_millis(1));
        let mut last = self.reads.load(Ordering::Relaxed);
        let mut silent = Duration::ZERO;
        loop {
            phalanx_runtime::sleep(tick).await;
            let reads = self.reads.load(Ordering::Relaxed);
            if reads != last || !self.waiting.load(Ordering::Relaxed) {
                last = reads;
                silent = Duration::ZERO;
                continue;
            }
            silent += tick;
            if silent >= timeout {
                return LinkError::Idle;
            }
        }
    }
}

/// The acceptor's side: a heartbeat on the reverse direction every `interval`, until a write
/// fails or takes longer than `timeout`.
pub(super) async fn send_heartbeats<W: AsyncWrite + Unpin>(
    writer: &mut W,
    codec: &mut Codec,
    keys: &mut KeyFollower,
    interval: Duration,
    timeout: Duration,
) -> LinkError {
    let mut frame = Vec::new();
    loop {
        phalanx_runtime::sleep(interval).await;
        keys.refresh(codec, None);
        frame.clear();
        if let Err(error) = codec.seal_stream_frame_into(FrameKind::Control, &[], &mut frame) {
            return error.into();
        }
        let write = async {
            writer.write_all(&frame).await?;
            writer.flush().await
        };
        match phalanx_runtime::timeout(timeout, write).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return error.into(),
            Err(_) => return LinkError::Idle,
        }
    }
}

/// Whether a frame read after the handshake is a heartbeat (consumed by the endpoint).
pub(super) fn is_heartbeat(kind: FrameKind) -> bool {
    kind == FrameKind::Control
}

#[cfg(test)]
mod tests {
    use futures_lite::future;

    use super::*;

    #[test]
    fn silence_while_waiting_is_detected_and_delivery_time_is_not() {
        phalanx_runtime::block_on(async {
            let liveness = Liveness::default();
            // Busy delivering (not waiting): never idle.
            let busy = future::or(
                async {
                    phalanx_runtime::sleep(Duration::from_millis(50)).await;
                    None
                },
                async { Some(liveness.watch(Duration::from_millis(10)).await) },
            )
            .await;
            assert!(busy.is_none());
            // Waiting for bytes that never come: idle.
            let idle = future::or(
                async { Some(liveness.watch(Duration::from_millis(10)).await) },
                async {
                    liveness.read(future::pending::<()>()).await;
                    None
                },
            )
            .await;
            assert!(matches!(idle, Some(LinkError::Idle)));
        });
    }
}
