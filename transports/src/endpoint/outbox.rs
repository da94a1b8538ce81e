//! The queue of bytes waiting to go to one peer, cut into batches.
//!
//! Senders append records to the open batch under a short lock; the connection's writer takes
//! every finished batch at once and seals each into one frame. Batches form by themselves
//! while the writer is busy (a lone message goes out at once, a burst goes out in few large
//! frames), which is what keeps the per-message cost of AEAD and system calls low.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::mem;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};

/// What the outbox does with new records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Keep them for the writer (connected, or about to connect).
    Queue,
    /// Drop them: the peer is unreachable (at-most-once delivery, like Erlang's).
    Discard,
    /// The endpoint was closed.
    Closed,
}

#[derive(Debug)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    batch_bytes: usize,
    /// The largest batch a frame carries.
    max_payload: usize,
    limit: usize,
    /// Bytes left free at the start of every batch, where the writer seals the frame's
    /// headers in place (see `Codec::seal_stream_frame_in_place`): records are serialized
    /// straight into what becomes the frame, and never copied.
    headroom: usize,
}

/// A record larger than a frame can carry; it was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLarge {
    pub(crate) len: usize,
    pub(crate) max: usize,
}

#[derive(Debug)]
struct State {
    mode: Mode,
    /// Finished batches, oldest first; the last one is open for appends.
    batches: VecDeque<Vec<u8>>,
    /// Bytes in `batches`.
    queued: usize,
    /// Emptied batches handed back by the writer, to reuse their allocations.
    spare: Vec<Vec<u8>>,
    /// Someone asked for a connection even though nothing is queued.
    connect_wanted: bool,
    /// The connection is due to send a heartbeat.
    heartbeat: bool,
    /// The connection task should write even with nothing queued.
    kick: bool,
    writer: Option<Waker>,
    blocked: Vec<Waker>,
}

impl Outbox {
    pub(crate) fn new(
        batch_bytes: usize,
        max_payload: usize,
        limit: usize,
        headroom: usize,
    ) -> Outbox {
        Outbox {
            state: Mutex::new(State {
                mode: Mode::Queue,
                batches: VecDeque::new(),
                queued: 0,
                spare: Vec::new(),
                connect_wanted: false,
                heartbeat: false,
                kick: false,
                writer: None,
                blocked: Vec::new(),
            }),
            batch_bytes: batch_bytes.clamp(1, max_payload.max(1)),
            max_payload,
            limit: limit.max(batch_bytes),
            headroom,
        }
    }

    /// Appends one record with `write`, which must append to the buffer it is given and
    /// return `Ok`, or leave it as it was and return `Err`. Returns the mode in force: the
    /// record was kept only under [`Mode::Queue`]. A record larger than a frame's payload is
    /// taken back out and refused.
    pub(crate) fn push<E: From<TooLarge>>(
        &self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<Mode, E> {
        self.push_inner(false, write)
            .map(|mode| mode.unwrap_or(Mode::Queue))
    }

    /// [`push`](Self::push), unless the outbox is full: then nothing is written and the result
    /// is `None`. One lock for the check and the append.
    pub(crate) fn push_if_room<E: From<TooLarge>>(
        &self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<Option<Mode>, E> {
        self.push_inner(true, write)
    }

    fn push_inner<E: From<TooLarge>>(
        &self,
        only_if_room: bool,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<Option<Mode>, E> {
        let mut state = self.lock();
        if state.mode != Mode::Queue {
            return Ok(Some(state.mode));
        }
        if only_if_room && state.queued >= self.limit {
            return Ok(None);
        }
        let headroom = self.headroom;
        let open =
            matches!(state.batches.back(), Some(last) if last.len() < headroom + self.batch_bytes);
        if !open {
            let mut fresh = state.spare.pop().unwrap_or_default();
            fresh.resize(headroom, 0);
            state.batches.push_back(fresh);
        }
        let State {
            batches,
            queued,
            spare,
            ..
        } = &mut *state;
        // Invariant: a batch was pushed just above if none was open.
        let Some(batch) = batches.back_mut() else {
            return Ok(Some(Mode::Discard));
        };
        let before = batch.len();
        write(batch)?;
        let len = batch.len() - before;
        if len > self.max_payload {
            batch.truncate(before);
            return Err(E::from(TooLarge {
                len,
                max: self.max_payload,
            }));
        }
        if batch.len() - headroom > self.max_payload {
            // The record fits a frame, but not after what the open batch already holds.
            let mut next = spare.pop().unwrap_or_default();
            next.resize(headroom, 0);
            next.extend_from_slice(&batch[before..]);
            batch.truncate(before);
            batches.push_back(next);
        }
        *queued += len;
        let waker = state.writer.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(Some(Mode::Queue))
    }

    /// Waits until there is room for more records (or the outbox stops queueing).
    pub(crate) async fn ready(&self) {
        poll_fn(|cx| {
            let mut state = self.lock();
            if state.mode != Mode::Queue || state.queued < self.limit {
                Poll::Ready(())
            } else {
                state.blocked.push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }

    /// Whether a sender would wait in [`ready`](Self::ready) now.
    pub(crate) fn is_full(&self) -> bool {
        let state = self.lock();
        state.mode == Mode::Queue && state.queued >= self.limit
    }

    /// Waits until there is something to send or a connection was asked for; `false` once
    /// the outbox is closed.
    pub(crate) async fn wait_for_work(&self) -> bool {
        poll_fn(|cx| {
            let mut state = self.lock();
            match state.mode {
                Mode::Closed => Poll::Ready(false),
                _ if state.queued > 0 || state.connect_wanted => {
                    state.connect_wanted = false;
                    Poll::Ready(true)
                }
                _ => {
                    state.writer = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Waits until there are batches to take, a heartbeat is due or the writer was asked to
    /// write; `false` once the outbox stops queueing. Takes nothing.
    pub(crate) async fn wait_for_data(&self) -> bool {
        poll_fn(|cx| {
            let mut state = self.lock();
            if state.mode != Mode::Queue {
                return Poll::Ready(false);
            }
            if state.queued > 0 || state.heartbeat || mem::take(&mut state.kick) {
                return Poll::Ready(true);
            }
            state.writer = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Takes every queued batch into `out` (after recycling what `out` held), without waiting.
    /// `Some(heartbeat due)`, or `None` once the outbox stops queueing.
    pub(crate) fn take_now(&self, out: &mut Vec<Vec<u8>>) -> Option<bool> {
        let mut state = self.lock();
        for mut used in out.drain(..) {
            if state.spare.len() < 4 {
                used.clear();
                state.spare.push(used);
            }
        }
        if state.mode != Mode::Queue {
            return None;
        }
        let heartbeat = mem::take(&mut state.heartbeat);
        if state.queued == 0 {
            return Some(heartbeat);
        }
        let headroom = self.headroom;
        out.extend(state.batches.drain(..).filter(|b| b.len() > headroom));
        state.queued = 0;
        let blocked = mem::take(&mut state.blocked);
        drop(state);
        blocked.into_iter().for_each(Waker::wake);
        Some(heartbeat)
    }

    /// Wakes the connection task to write (bytes a sender sealed but could not write).
    pub(crate) fn kick(&self) {
        let mut state = self.lock();
        state.kick = true;
        let writer = state.writer.take();
        drop(state);
        if let Some(waker) = writer {
            waker.wake();
        }
    }

    /// Sets the mode; leaving [`Mode::Queue`] drops what was queued and releases waiting
    /// senders. Returns the bytes dropped. A closed outbox stays closed.
    pub(crate) fn set_mode(&self, mode: Mode) -> usize {
        let mut state = self.lock();
        if state.mode == Mode::Closed {
            return 0;
        }
        state.mode = mode;
        let mut dropped = 0;
        if mode != Mode::Queue {
            state.heartbeat = false;
            dropped = state.queued;
            state.batches.clear();
            state.queued = 0;
        }
        let blocked = mem::take(&mut state.blocked);
        let writer = state.writer.take();
        drop(state);
        blocked.into_iter().chain(writer).for_each(Waker::wake);
        dropped
    }

    /// Asks the connected writer to send a heartbeat (ignored while not queueing).
    pub(crate) fn request_heartbeat(&self) {
        let mut state = self.lock();
        if state.mode != Mode::Queue {
            return;
        }
        state.heartbeat = true;
        let writer = state.writer.take();
        drop(state);
        if let Some(waker) = writer {
            waker.wake();
        }
    }

    /// Asks the connection task to connect even with nothing to send.
    pub(crate) fn want_connection(&self) {
        let mut state = self.lock();
        state.connect_wanted = true;
        let writer = state.writer.take();
        drop(state);
        if let Some(waker) = writer {
            waker.wake();
        }
    }

    pub(crate) fn mode(&self) -> Mode {
        self.lock().mode
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent before anything can panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use futures_lite::future;

    use super::*;

    #[derive(Debug, PartialEq)]
    enum Refused {
        Writer(&'static str),
        TooLarge(TooLarge),
    }

    impl From<TooLarge> for Refused {
        fn from(error: TooLarge) -> Self {
            Refused::TooLarge(error)
        }
    }

    fn take(outbox: &Outbox, out: &mut Vec<Vec<u8>>) -> Option<bool> {
        if !future::block_on(outbox.wait_for_data()) {
            return None;
        }
        outbox.take_now(out)
    }

    fn push(outbox: &Outbox, bytes: &[u8]) -> Mode {
        outbox
            .push(|buf| {
                buf.extend_from_slice(bytes);
                Ok::<(), Refused>(())
            })
            .unwrap()
    }

    #[test]
    fn batches_are_cut_at_the_batch_size_and_taken_together() {
        let outbox = Outbox::new(4, 6, 100, 0);
        for byte in 0..10u8 {
            assert_eq!(push(&outbox, &[byte, byte]), Mode::Queue);
        }
        let mut out = Vec::new();
        assert_eq!(take(&outbox, &mut out), Some(false));
        assert_eq!(out.len(), 5);
        assert!(out.iter().all(|b| b.len() == 4));
        let all: Vec<u8> = out.concat();
        assert_eq!(all, (0..10u8).flat_map(|b| [b, b]).collect::<Vec<_>>());
        // A record that fits a frame but not the open batch starts a new batch.
        push(&outbox, &[1; 3]);
        push(&outbox, &[2; 5]);
        assert_eq!(take(&outbox, &mut out), Some(false));
        assert_eq!(out, vec![vec![1; 3], vec![2; 5]]);
    }

    #[test]
    fn every_batch_starts_with_the_headroom() {
        let outbox = Outbox::new(4, 6, 100, 3);
        for byte in 0..3u8 {
            push(&outbox, &[byte, byte]);
        }
        push(&outbox, &[9; 5]);
        let mut out = Vec::new();
        assert_eq!(take(&outbox, &mut out), Some(false));
        let expected: Vec<Vec<u8>> = vec![
            vec![0, 0, 0, 0, 0, 1, 1],
            vec![0, 0, 0, 2, 2],
            vec![0, 0, 0, 9, 9, 9, 9, 9],
        ];
        assert_eq!(out, expected);
        // Recycled buffers get their headroom back.
        push(&outbox, b"z");
        assert_eq!(take(&outbox, &mut out), Some(false));
        assert_eq!(out, vec![b"\0\0\0z".to_vec()]);
    }

    #[test]
    fn a_failing_writer_leaves_nothing_behind() {
        let outbox = Outbox::new(64, 64, 100, 0);
        let result = outbox.push(|_buf| Err::<(), _>(Refused::Writer("no")));
        assert_eq!(result, Err(Refused::Writer("no")));
        let result = outbox.push(|buf| {
            buf.extend_from_slice(&[0; 65]);
            Ok::<(), Refused>(())
        });
        assert_eq!(
            result,
            Err(Refused::TooLarge(TooLarge { len: 65, max: 64 }))
        );
        assert!(!outbox.is_full());
        push(&outbox, b"x");
        let mut out = Vec::new();
        assert_eq!(take(&outbox, &mut out), Some(false));
        assert_eq!(out, vec![b"x".to_vec()]);
    }

    #[test]
    fn discard_mode_drops_and_releases() {
        let outbox = Outbox::new(8, 8, 8, 0);
        push(&outbox, &[0; 8]);
        assert!(outbox.is_full());
        assert_eq!(outbox.set_mode(Mode::Discard), 8);
        assert!(!outbox.is_full());
        assert_eq!(push(&outbox, b"lost"), Mode::Discard);
        future::block_on(outbox.ready());
        let mut out = Vec::new();
        assert_eq!(take(&outbox, &mut out), None);
        outbox.set_mode(Mode::Closed);
        assert_eq!(outbox.set_mode(Mode::Queue), 0);
        assert_eq!(outbox.mode(), Mode::Closed);
        assert!(!future::block_on(outbox.wait_for_work()));
    }
}
