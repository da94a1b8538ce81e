//! The sending half of an outbound connection, shared by its connection task and by senders
//! that want their record on the wire at once.
//!
//! Normally the connection task drains the outbox: a sender queues a record and wakes the
//! task, which seals and writes. That wake-up is a hop between threads, paid twice per remote
//! `ask` (request and answer). A sender of a latency-sensitive record (a request that carries
//! a reply, or an answer) may instead call [`PeerSender::flush_now`](super::PeerSender):
//! if the writer is free at that moment, the sender's own thread seals what is queued and
//! writes it without waiting; whatever the socket does not take at once is left for the task.
//!
//! Order is kept because the outbox is only ever drained by whoever holds the writer, and
//! the writer is held by one party at a time (the task takes it out of its slot for the
//! duration of an asynchronous write).

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures_lite::io::WriteHalf;
use futures_lite::{AsyncWrite, AsyncWriteExt};

use super::LinkError;
use super::key_follower::KeyFollower;
use super::outbox::Outbox;
use crate::codec::Codec;
use crate::frame::FrameKind;
use crate::transport::ByteStream;

/// The writing side of a connection: its stream half, its codec and the bytes sealed but not
/// yet written.
pub(super) struct Writer {
    stream: WriteHalf<Box<dyn ByteStream>>,
    codec: Codec,
    keys: KeyFollower,
    /// Sealed frames; the bytes before `written` are on the wire.
    out: Vec<u8>,
    written: usize,
    /// Batches taken from the outbox (kept to reuse their allocations).
    batches: Vec<Vec<u8>>,
    /// Sealing failed while a sender held the writer: the connection must end.
    broken: bool,
}

impl Writer {
    pub(super) fn new(
        stream: WriteHalf<Box<dyn ByteStream>>,
        codec: Codec,
        keys: KeyFollower,
    ) -> Writer {
        Writer {
            stream,
            codec,
            keys,
            out: Vec::new(),
            written: 0,
            batches: Vec::new(),
            broken: false,
        }
    }

    /// Whether sealed bytes wait to be written.
    pub(super) fn is_pending(&self) -> bool {
        self.written < self.out.len()
    }

    /// Seals what the outbox holds (and a heartbeat if one is due) after any unwritten bytes.
    /// `false` once the outbox stopped queueing.
    pub(super) fn fill(&mut self, outbox: &Outbox) -> Result<bool, LinkError> {
        if !self.is_pending() {
            self.out.clear();
            self.written = 0;
        }
        let Some(heartbeat) = outbox.take_now(&mut self.batches) else {
            return Ok(false);
        };
        self.keys.refresh(&mut self.codec, None);
        let sealed = (|| {
            if heartbeat {
                self.codec
                    .seal_stream_frame_into(FrameKind::Control, &[], &mut self.out)?;
            }
            for batch in &self.batches {
                self.codec
                    .seal_stream_frame_into(FrameKind::ActorMessage, batch, &mut self.out)?;
            }
            Ok::<(), LinkError>(())
        })();
        if sealed.is_err() {
            self.broken = true;
        }
        sealed.map(|()| true)
    }

    /// Writes as much as the socket takes without waiting; `true` if nothing is left.
    pub(super) fn write_now(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        while self.is_pending() {
            match Pin::new(&mut self.stream).poll_write(&mut cx, &self.out[self.written..]) {
                Poll::Ready(Ok(n)) if n > 0 => self.written += n,
                // Would block, or failed: the connection task retries and sees the error.
                _ => return false,
            }
        }
        true
    }

    /// Writes every sealed byte, waiting as needed.
    pub(super) async fn write_all(&mut self) -> Result<(), LinkError> {
        if self.broken {
            return Err(LinkError::Closed);
        }
        while self.is_pending() {
            let n = self.stream.write(&self.out[self.written..]).await?;
            if n == 0 {
                return Err(LinkError::Closed);
            }
            self.written += n;
        }
        self.stream.flush().await?;
        Ok(())
    }
}
