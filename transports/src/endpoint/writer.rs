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

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures_lite::io::WriteHalf;
use futures_lite::{AsyncWrite, AsyncWriteExt};

use super::LinkError;
use super::key_follower::KeyFollower;
use super::outbox::Outbox;
use crate::codec::{Codec, STREAM_HEADROOM};
use crate::frame::FrameKind;
use crate::transport::ByteStream;

/// The writing side of a connection: its stream half, its codec and the frames sealed but not
/// yet written.
pub(super) struct Writer {
    stream: WriteHalf<Box<dyn ByteStream>>,
    codec: Codec,
    keys: KeyFollower,
    /// Sealed frames, oldest first: each batch buffer as the outbox filled it and the writer
    /// sealed it in place, with the offset of its first byte not yet on the wire.
    frames: VecDeque<(Vec<u8>, usize)>,
    /// Buffers written out (handed back to the outbox for reuse at the next fill), then the
    /// batches taken from the outbox, until they are sealed.
    buffers: Vec<Vec<u8>>,
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
            frames: VecDeque::new(),
            buffers: Vec::new(),
            broken: false,
        }
    }

    /// Whether sealed bytes wait to be written.
    pub(super) fn is_pending(&self) -> bool {
        !self.frames.is_empty()
    }

    /// Seals what the outbox holds (and a heartbeat if one is due) after any unwritten frames,
    /// each batch in place. `false` once the outbox stopped queueing.
    pub(super) fn fill(&mut self, outbox: &Outbox) -> Result<bool, LinkError> {
        let Some(heartbeat) = outbox.take_now(&mut self.buffers) else {
            return Ok(false);
        };
        self.keys.refresh(&mut self.codec, None);
        let sealed = (|| {
            if heartbeat {
                let mut frame = vec![0; STREAM_HEADROOM];
                let start = self
                    .codec
                    .seal_stream_frame_in_place(FrameKind::Control, &mut frame)?;
                self.frames.push_back((frame, start));
            }
            for mut batch in self.buffers.drain(..) {
                let start = self
                    .codec
                    .seal_stream_frame_in_place(FrameKind::ActorMessage, &mut batch)?;
                self.frames.push_back((batch, start));
            }
            Ok::<(), LinkError>(())
        })();
        if sealed.is_err() {
            self.broken = true;
            self.buffers.clear();
        }
        sealed.map(|()| true)
    }

    /// Writes as much as the socket takes without waiting; `true` if nothing is left.
    pub(super) fn write_now(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        while let Some((frame, written)) = self.frames.front_mut() {
            match Pin::new(&mut self.stream).poll_write(&mut cx, &frame[*written..]) {
                Poll::Ready(Ok(n)) if n > 0 => *written += n,
                // Would block, or failed: the connection task retries and sees the error.
                _ => return false,
            }
            self.pop_written();
        }
        true
    }

    /// Writes every sealed byte, waiting as needed.
    pub(super) async fn write_all(&mut self) -> Result<(), LinkError> {
        if self.broken {
            return Err(LinkError::Closed);
        }
        while let Some((frame, written)) = self.frames.front_mut() {
            let n = self.stream.write(&frame[*written..]).await?;
            if n == 0 {
                return Err(LinkError::Closed);
            }
            *written += n;
            self.pop_written();
        }
        self.stream.flush().await?;
        Ok(())
    }

    /// Moves the first frame, if written out, to the buffers to reuse.
    fn pop_written(&mut self) {
        if self
            .frames
            .front()
            .is_some_and(|(frame, written)| *written >= frame.len())
            && let Some((frame, _)) = self.frames.pop_front()
        {
            self.buffers.push(frame);
        }
    }
}
