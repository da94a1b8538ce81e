//! Simulated byte streams: two one-way pipes through the hub, reliable and ordered.
//!
//! A write becomes a segment due one stream delay later on the hub's virtual clock (never
//! before the segment written ahead of it, so order holds); the hub moves due segments into
//! the reading end's buffer. A pipe whose link is partitioned *stalls*: its segments wait,
//! in order, until the partition heals, and once a window of bytes is queued the writer waits
//! too (as TCP's retransmissions and flow control would). A crash of either end *resets*
//! the pipe: both ends get `ConnectionReset`.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures_lite::{AsyncRead, AsyncWrite};

use super::SimInstant;
use super::hub::HubShared;

/// Bytes a pipe holds (in flight plus unread) before its writer waits.
pub(super) const WINDOW: usize = 256 * 1024;

/// One direction of a simulated stream.
#[derive(Debug)]
pub(super) struct Pipe {
    pub(super) from: SocketAddr,
    pub(super) to: SocketAddr,
    /// Segments written and not yet delivered, due times non-decreasing.
    in_flight: VecDeque<(SimInstant, Segment)>,
    /// Delivered bytes the reader has not taken yet.
    readable: VecDeque<u8>,
    /// Bytes in `in_flight` and `readable`: the writer waits while this is [`WINDOW`].
    queued: usize,
    /// The writer closed (or dropped) its end: a `Fin` is in flight or delivered.
    fin_sent: bool,
    /// The `Fin` was delivered: reads return end-of-stream once `readable` is empty.
    eof: bool,
    /// An end crashed: both ends fail with `ConnectionReset`.
    reset: bool,
    writer_alive: bool,
    reader_alive: bool,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
}

#[derive(Debug)]
enum Segment {
    Data(Vec<u8>),
    Fin,
}

impl Pipe {
    pub(super) fn new(from: SocketAddr, to: SocketAddr) -> Pipe {
        Pipe {
            from,
            to,
            in_flight: VecDeque::new(),
            readable: VecDeque::new(),
            queued: 0,
            fin_sent: false,
            eof: false,
            reset: false,
            writer_alive: true,
            reader_alive: true,
            read_waker: None,
            write_waker: None,
        }
    }

    /// When the next segment is due, if one is in flight and the pipe is not reset.
    pub(super) fn next_due(&self) -> Option<SimInstant> {
        if self.reset {
            return None;
        }
        self.in_flight.front().map(|(due, _)| *due)
    }

    /// Moves the segments due at or before `now` to the reader; returns the waker to call.
    pub(super) fn deliver(&mut self, now: SimInstant) -> Option<Waker> {
        let mut delivered = false;
        while self.in_flight.front().is_some_and(|(due, _)| *due <= now) {
            let Some((_, segment)) = self.in_flight.pop_front() else {
                break;
            };
            delivered = true;
            match segment {
                Segment::Data(bytes) if self.reader_alive => self.readable.extend(bytes),
                Segment::Data(bytes) => self.queued -= bytes.len(),
                Segment::Fin => self.eof = true,
            }
        }
        if delivered {
            self.read_waker.take()
        } else {
            None
        }
    }

    /// Resets the pipe (an end crashed): everything queued is lost; returns the wakers.
    pub(super) fn reset(&mut self) -> impl Iterator<Item = Waker> {
        self.reset = true;
        self.in_flight.clear();
        self.readable.clear();
        self.queued = 0;
        self.read_waker
            .take()
            .into_iter()
            .chain(self.write_waker.take())
    }

    pub(super) fn is_unused(&self) -> bool {
        !self.writer_alive && !self.reader_alive
    }

    fn push(&mut self, due: SimInstant, segment: Segment) {
        // Never before the segment ahead: a stream keeps its order whatever the delays.
        let due = self
            .in_flight
            .back()
            .map_or(due, |(last, _)| due.max(*last));
        if let Segment::Data(bytes) = &segment {
            self.queued += bytes.len();
        }
        self.in_flight.push_back((due, segment));
    }
}

/// One end of a simulated stream, as handed out by
/// [`SimTransport`](super::SimTransport)'s `open_stream` and `accept_stream`.
pub(super) struct SimStream {
    hub: Arc<HubShared>,
    /// The pipe this end reads from, and the one it writes to, by id in the hub.
    read: u64,
    write: u64,
    local: SocketAddr,
    peer: SocketAddr,
}

impl SimStream {
    pub(super) fn new(
        hub: Arc<HubShared>,
        read: u64,
        write: u64,
        local: SocketAddr,
        peer: SocketAddr,
    ) -> SimStream {
        SimStream {
            hub,
            read,
            write,
            local,
            peer,
        }
    }
}

impl AsyncRead for SimStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut state = self.hub.lock();
        let Some(pipe) = state.pipes.get_mut(&self.read) else {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        };
        if pipe.reset {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if pipe.readable.is_empty() {
            if pipe.eof {
                return Poll::Ready(Ok(0));
            }
            pipe.read_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(pipe.readable.len());
        for (slot, byte) in buf.iter_mut().zip(pipe.readable.drain(..n)) {
            *slot = byte;
        }
        pipe.queued -= n;
        let writer = pipe.write_waker.take();
        drop(state);
        if let Some(waker) = writer {
            waker.wake();
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut state = self.hub.lock();
        let due = state.now() + state.stream_delay;
        let Some(pipe) = state.pipes.get_mut(&self.write) else {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        };
        if pipe.reset {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        if pipe.fin_sent || !pipe.reader_alive {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let room = WINDOW.saturating_sub(pipe.queued);
        if room == 0 {
            pipe.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(room);
        pipe.push(due, Segment::Data(buf[..n].to_vec()));
        drop(state);
        self.hub.notify();
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Every accepted byte is already on its way; there is no buffer to flush.
        let state = self.hub.lock();
        match state.pipes.get(&self.write) {
            Some(pipe) if !pipe.reset => Poll::Ready(Ok(())),
            _ => Poll::Ready(Err(io::ErrorKind::ConnectionReset.into())),
        }
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.hub.lock();
        let due = state.now() + state.stream_delay;
        if let Some(pipe) = state.pipes.get_mut(&self.write)
            && !pipe.reset
            && !pipe.fin_sent
        {
            pipe.fin_sent = true;
            pipe.push(due, Segment::Fin);
            drop(state);
            self.hub.notify();
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for SimStream {
    fn drop(&mut self) {
        let mut wakers = Vec::new();
        {
            let mut state = self.hub.lock();
            let due = state.now() + state.stream_delay;
            if let Some(pipe) = state.pipes.get_mut(&self.write) {
                pipe.writer_alive = false;
                if !pipe.reset && !pipe.fin_sent {
                    // Dropping an end closes it, as dropping a socket does.
                    pipe.fin_sent = true;
                    pipe.push(due, Segment::Fin);
                }
            }
            if let Some(pipe) = state.pipes.get_mut(&self.read) {
                pipe.reader_alive = false;
                // What was delivered and never read is gone; a waiting writer learns that the
                // reader left (its next write fails with `BrokenPipe`).
                pipe.queued -= pipe.readable.len();
                pipe.readable.clear();
                wakers.extend(pipe.write_waker.take());
            }
            for id in [self.read, self.write] {
                if state.pipes.get(&id).is_some_and(Pipe::is_unused) {
                    state.pipes.remove(&id);
                }
            }
        }
        self.hub.notify();
        wakers.into_iter().for_each(Waker::wake);
    }
}

impl fmt::Debug for SimStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimStream")
            .field("local", &self.local)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}
