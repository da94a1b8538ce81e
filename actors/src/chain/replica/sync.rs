//! Catching a successor up: entries from the log and the history of committed entries, or
//! the committed state as a snapshot in chunks.

use std::sync::Arc;
use std::time::Instant;

use super::{JournalOp, Replica, Successor};
use crate::chain::machine::StateMachine;
use crate::chain::message::{Entry, Message, Peer, Snapshot, SnapshotCursor};

impl<S: StateMachine> Replica<S> {
    /// The first sequence number this replica can still send as an entry (older ones live
    /// only in its state).
    pub(super) fn first_sendable(&self) -> u64 {
        self.history
            .front()
            .map_or(self.committed + 1, |entry| entry.seq)
    }

    pub(super) fn on_sync_request(
        &mut self,
        have: u64,
        cursor: Option<SnapshotCursor>,
        now: Instant,
    ) {
        if !self.synced {
            return;
        }
        let (Some(epoch), Some(successor)) = (self.epoch(), self.successor_member()) else {
            return;
        };
        // Every request is progress: a long catch-up is not a stalled successor.
        self.successor = Successor {
            known: true,
            received: have.min(self.received),
            sent: self.received,
            last_progress: Some(now),
            last_send: Some(now),
        };
        let to = Peer::Replica(successor.id);
        if have <= self.received && have + 1 >= self.first_sendable() {
            // The successor's log is a prefix of ours: send what follows, a window of chunks
            // per request.
            self.outgoing = None;
            let history = self.history.iter().skip_while(|e| e.seq <= have);
            let mut following = history.chain(self.log.range(have + 1..).map(|(_, e)| e));
            let mut replies = Vec::new();
            for _ in 0..self.settings.sync_window.max(1) {
                let mut entries = Vec::new();
                let mut bytes = 0;
                for entry in following.by_ref() {
                    bytes += postcard::serialize_with_flavor(
                        entry,
                        postcard::ser_flavors::Size::default(),
                    )
                    .unwrap_or(0);
                    entries.push(entry.clone());
                    if bytes >= self.settings.sync_chunk {
                        break;
                    }
                }
                let complete = entries.last().is_none_or(|e| e.seq == self.received);
                replies.push((entries, complete));
                if complete {
                    break;
                }
            }
            let last = replies.len().saturating_sub(1);
            for (i, (entries, complete)) in replies.into_iter().enumerate() {
                self.send(
                    to,
                    Message::SyncReply {
                        epoch,
                        entries,
                        complete,
                        more: i < last,
                    },
                );
            }
            return;
        }
        // Too far behind (or ahead: a log that cannot be ours): our committed state, in
        // chunks. A resumed transfer continues the snapshot it started with. A window of a
        // large snapshot can take longer to arrive than the successor's retransmission
        // interval: a repeat of the request just answered waits for `sync_resend`, or the
        // window would be sent many times over. (Answers from the log are small and cheap;
        // they are never held back.)
        if self
            .last_sync_answer
            .is_some_and(|(last, last_cursor, at)| {
                last == have && last_cursor == cursor && now < at + self.settings.sync_resend
            })
        {
            return;
        }
        self.last_sync_answer = Some((have, cursor, now));
        let (index, encoded) = match (&self.outgoing, cursor) {
            // The transfer the successor is receiving, or (a new request, or a repeat that
            // waited while we encoded) the snapshot of our committed state we already hold.
            (Some((index, encoded)), Some(SnapshotCursor { index: wanted, .. }))
                if wanted == *index =>
            {
                (*index, encoded.clone())
            }
            (Some((index, encoded)), None) if *index == self.committed => (*index, encoded.clone()),
            _ => {
                let snapshot = Snapshot::of(self.committed, &self.machine, self.sessions.clone());
                let encoded = Arc::new(postcard::to_allocvec(&snapshot).unwrap_or_default());
                self.outgoing = Some((self.committed, encoded.clone()));
                (self.committed, encoded)
            }
        };
        let offset = cursor
            .filter(|c| c.index == index)
            .map_or(0, |c| c.offset)
            .min(encoded.len() as u64);
        let chunk = self.settings.sync_chunk.max(1);
        let window = self.settings.sync_window.max(1);
        let mut start = offset as usize;
        for i in 0..window {
            let end = start.saturating_add(chunk).min(encoded.len());
            let more = i + 1 < window && end < encoded.len();
            self.send(
                to,
                Message::SnapshotChunk {
                    epoch,
                    index,
                    total: encoded.len() as u64,
                    offset: start as u64,
                    bytes: encoded[start..end].to_vec(),
                    more,
                },
            );
            if !more {
                break;
            }
            start = end;
        }
    }

    pub(super) fn on_snapshot_chunk(
        &mut self,
        index: u64,
        total: u64,
        offset: u64,
        bytes: Vec<u8>,
        more: bool,
        now: Instant,
    ) {
        let fresh = self
            .incoming
            .as_ref()
            .is_none_or(|(known, length, _)| *known != index || *length != total);
        if fresh {
            if offset != 0 {
                // A chunk of a transfer we do not hold (its start was lost, or it is from an
                // older request): the retransmission timer asks again from where we are.
                return;
            }
            self.incoming = Some((index, total, Vec::new()));
        }
        let Some((_, _, received)) = self.incoming.as_mut() else {
            return;
        };
        if offset != received.len() as u64 || offset + bytes.len() as u64 > total {
            // A duplicate, or a chunk after a lost one: the retransmission timer asks again
            // from where we are (asking at once for every such chunk of a window would
            // multiply the windows in flight).
            return;
        }
        received.extend_from_slice(&bytes);
        if (received.len() as u64) < total {
            if more {
                // More of this window is on its way: that is progress, not silence.
                self.last_sync_request = Some(now);
            } else {
                self.request_sync(now);
            }
            return;
        }
        let Some((_, _, encoded)) = self.incoming.take() else {
            return;
        };
        let snapshot: Snapshot<S> = match postcard::from_bytes(&encoded) {
            Ok(snapshot) => snapshot,
            Err(_) => {
                // Not a snapshot of our state machine (a bug or a mismatched version): ask
                // for it again rather than install anything.
                self.request_sync(now);
                return;
            }
        };
        let mut machine = S::default();
        if snapshot.committed != index || machine.restore(&snapshot.state).is_err() {
            self.request_sync(now);
            return;
        }
        self.reset();
        self.machine = machine;
        self.committed = snapshot.committed;
        self.received = snapshot.committed;
        if self.settings.journal {
            // The reset above recorded an empty state; this snapshot replaces it.
            self.journal.pop();
            self.journal.push(JournalOp::Reset(Some(snapshot.clone())));
        }
        self.sessions = snapshot.sessions;
        // Now the entries after it.
        self.request_sync(now);
    }

    pub(super) fn on_sync_reply(
        &mut self,
        entries: Vec<Entry<S>>,
        complete: bool,
        more: bool,
        now: Instant,
    ) {
        self.incoming = None;
        let last = entries.last().map(|entry| entry.seq);
        self.append(entries);
        // Replies of one window can overtake each other: the last one only completes the
        // catch-up if everything before it arrived (else its entries wait in `early`).
        let complete = complete && last.is_none_or(|last| self.received >= last);
        if !complete {
            if more {
                self.last_sync_request = Some(now);
            } else {
                self.request_sync(now);
            }
            return;
        }
        self.mark_synced();
        if !self.commit_if_tail(now) {
            self.send_ack();
        }
    }

    pub(super) fn request_sync(&mut self, now: Instant) {
        let (Some(epoch), Some(predecessor)) = (self.epoch(), self.predecessor_member()) else {
            return;
        };
        self.last_sync_request = Some(now);
        let have = self.received;
        let snapshot = self
            .incoming
            .as_ref()
            .map(|(index, _, bytes)| SnapshotCursor {
                index: *index,
                offset: bytes.len() as u64,
            });
        self.send(
            Peer::Replica(predecessor.id),
            Message::SyncRequest {
                epoch,
                have,
                snapshot,
            },
        );
    }
}
