//! Catch-up of a new or restarted replica: the newest snapshot in checksummed chunks, then
//! the log suffix, over one stream; resumable after a dropped connection, and verified before
//! anything is installed.
//!
//! # Protocol
//!
//! The receiver opens with [`CatchUpMessage::Hello`]: the next log index it needs and, if a
//! transfer was cut, the snapshot it has partly received and how far. The sender answers with
//! either the log from there (if its log still holds that index) or
//! [`SnapshotStart`](CatchUpMessage::SnapshotStart) (resuming at the receiver's offset if it
//! is the same snapshot), [`SnapshotChunk`](CatchUpMessage::SnapshotChunk)s each with its own
//! CRC, [`SnapshotEnd`](CatchUpMessage::SnapshotEnd) with the whole body's CRC, then
//! [`Entries`](CatchUpMessage::Entries) (records in the log's own checksummed framing) and
//! [`Done`](CatchUpMessage::Done).
//!
//! The receiver appends chunks to a partial file. A dropped connection keeps it; the next
//! `Hello` resumes. A snapshot whose whole body does not match its checksum is removed and
//! the receiver starts again from zero; a bad chunk or record ends the attempt before it is
//! written. Nothing is installed or appended unverified.
//!
//! Both sides are sans-IO cores ([`CatchUpSender`], [`CatchUpReceiver`]) over the storage
//! types; [`serve`] and [`fetch`] drive them over any async byte stream (blocking storage
//! calls inline: run them where blocking is fine, or on a blocking thread with a real disk).

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use serde::{Deserialize, Serialize, Serializer};

use super::log::{Log, LogError};
use super::reader::LogReader;
use super::record::{MAX_RECORD_LEN, RECORD_HEADER_LEN, decode_record};
use super::snapshot::{SnapshotError, SnapshotHeader, SnapshotMeta, SnapshotStore};
use crate::bounded;

/// The largest chunk (snapshot bytes, or encoded records) a message may carry: one record of
/// the largest size the log accepts fits.
pub const MAX_CHUNK: usize = MAX_RECORD_LEN + RECORD_HEADER_LEN;

/// The largest encoded message [`decode`] accepts.
pub const MAX_FRAME: usize = MAX_CHUNK + 1024;

/// One message of the catch-up stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CatchUpMessage {
    /// Receiver to sender: what it needs.
    Hello {
        /// The next log index the receiver needs.
        log_next: u64,
        /// A partly received snapshot.
        partial: Option<Partial>,
    },
    /// Sender to receiver: a snapshot follows, from body offset `from`.
    SnapshotStart {
        /// The snapshot's header.
        header: WireHeader,
        /// Where the chunks start (the receiver's offset when resuming, else 0).
        from: u64,
    },
    /// Sender to receiver: snapshot body bytes at `offset`.
    SnapshotChunk {
        /// Offset in the body.
        offset: u64,
        /// CRC-32 of `bytes`.
        crc: u32,
        /// The bytes (at most [`MAX_CHUNK`]).
        #[serde(
            serialize_with = "as_bytes",
            deserialize_with = "bounded::bytes::<_, MAX_CHUNK>"
        )]
        bytes: Vec<u8>,
    },
    /// Sender to receiver: the snapshot is complete; `crc` is its whole body's CRC-32.
    SnapshotEnd {
        /// CRC-32 of the whole body.
        crc: u32,
    },
    /// Sender to receiver: log records from `first`, in the log's framing.
    Entries {
        /// The first record's index.
        first: u64,
        /// Encoded records (at most [`MAX_CHUNK`] bytes).
        #[serde(
            serialize_with = "as_bytes",
            deserialize_with = "bounded::bytes::<_, MAX_CHUNK>"
        )]
        records: Vec<u8>,
    },
    /// Sender to receiver: everything up to `last` was sent.
    Done {
        /// The last index sent.
        last: u64,
    },
}

/// A snapshot partly received before a connection dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partial {
    /// Its index.
    pub index: u64,
    /// Its body's CRC-32 (with the index, it names the snapshot).
    pub crc: u32,
    /// Body bytes received.
    pub received: u64,
}

/// A snapshot header on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireHeader {
    /// The last log index the snapshot includes.
    pub index: u64,
    /// Its configuration epoch.
    pub epoch: u64,
    /// Its body's length.
    pub len: u64,
    /// Its body's CRC-32.
    pub crc: u32,
}

/// A catch-up failed. The receiver's state stays consistent: retry with a new
/// [`CatchUpReceiver::hello`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatchUpError {
    /// A message does not decode (or exceeds [`MAX_FRAME`]).
    #[error("undecodable catch-up message: {0}")]
    Decode(String),
    /// A message came out of order or does not fit what was said before.
    #[error("catch-up protocol violation: {0}")]
    Protocol(&'static str),
    /// A chunk's bytes do not match its CRC; nothing of it was written.
    #[error("corrupt snapshot chunk at offset {offset}")]
    CorruptChunk {
        /// Its offset.
        offset: u64,
    },
    /// The received snapshot does not verify; it was removed, the next attempt starts over.
    #[error("received snapshot rejected: {0}")]
    SnapshotRejected(SnapshotError),
    /// A received log record does not verify; nothing of it was appended.
    #[error("corrupt log record in catch-up at index {index}")]
    CorruptRecord {
        /// The index expected there.
        index: u64,
    },
    /// The snapshot store failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The stream failed or ended early.
    #[error("catch-up stream: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes a message.
///
/// # Errors
///
/// [`CatchUpError::Decode`] if it cannot be encoded (it always can).
pub fn encode(message: &CatchUpMessage) -> Result<Vec<u8>, CatchUpError> {
    postcard::to_allocvec(message).map_err(|e| CatchUpError::Decode(e.to_string()))
}

/// Decodes a message, never allocating more than [`MAX_CHUNK`] whatever it claims.
///
/// # Errors
///
/// [`CatchUpError::Decode`].
pub fn decode(bytes: &[u8]) -> Result<CatchUpMessage, CatchUpError> {
    if bytes.len() > MAX_FRAME {
        return Err(CatchUpError::Decode(format!("{} bytes", bytes.len())));
    }
    postcard::from_bytes(bytes).map_err(|e| CatchUpError::Decode(e.to_string()))
}

fn as_bytes<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes)
}

impl From<SnapshotHeader> for WireHeader {
    fn from(h: SnapshotHeader) -> Self {
        Self {
            index: h.index,
            epoch: h.epoch,
            len: h.len,
            crc: h.crc,
        }
    }
}

impl From<WireHeader> for SnapshotHeader {
    fn from(h: WireHeader) -> Self {
        Self {
            index: h.index,
            epoch: h.epoch,
            len: h.len,
            crc: h.crc,
        }
    }
}

/// The sending side (sans-IO): answer one `Hello`, then produce messages until `None`.
#[derive(Debug)]
pub struct CatchUpSender {
    chunk: usize,
    state: SenderState,
}

#[derive(Debug)]
enum SenderState {
    AwaitHello,
    Start { meta: SnapshotMeta, offset: u64 },
    Chunks { meta: SnapshotMeta, offset: u64 },
    Log { next: u64, last: u64 },
    Finished,
}

impl CatchUpSender {
    /// A sender that sends `chunk` bytes per message (capped at [`MAX_CHUNK`]).
    pub fn new(chunk: usize) -> Self {
        Self {
            chunk: chunk.clamp(1, MAX_CHUNK),
            state: SenderState::AwaitHello,
        }
    }

    /// Answers the receiver's `Hello`; returns the first log index this catch-up will send,
    /// which the caller should pin ([`Checkpointer::pin`](super::Checkpointer::pin)) until
    /// it ends.
    ///
    /// # Errors
    ///
    /// [`CatchUpError::Protocol`] if `message` is not a `Hello` or the log lacks entries the
    /// receiver needs and there is no snapshot to bridge them; storage errors.
    pub fn handle_hello(
        &mut self,
        message: CatchUpMessage,
        store: &SnapshotStore,
        log: &LogReader,
    ) -> Result<u64, CatchUpError> {
        let CatchUpMessage::Hello { log_next, partial } = message else {
            return Err(CatchUpError::Protocol("expected Hello"));
        };
        if log_next >= log.first_index() {
            let next = log_next.min(log.next_index());
            self.state = SenderState::Log {
                next,
                last: log.next_index().saturating_sub(1),
            };
            return Ok(next);
        }
        let meta = store
            .latest()?
            .ok_or(CatchUpError::Protocol("log truncated and no snapshot"))?;
        if meta.header.index + 1 < log.first_index() {
            return Err(CatchUpError::Protocol("log truncated past the snapshot"));
        }
        let offset = match partial {
            Some(p) if p.index == meta.header.index && p.crc == meta.header.crc => {
                p.received.min(meta.header.len)
            }
            _ => 0,
        };
        let next = meta.header.index + 1;
        self.state = SenderState::Start { meta, offset };
        Ok(next)
    }

    /// The next message to send, or `None` when the catch-up is complete.
    ///
    /// # Errors
    ///
    /// Storage errors; the caller drops the connection.
    pub fn next_message(
        &mut self,
        store: &SnapshotStore,
        log: &mut LogReader,
    ) -> Result<Option<CatchUpMessage>, CatchUpError> {
        let state = std::mem::replace(&mut self.state, SenderState::Finished);
        let (message, state) = match state {
            SenderState::AwaitHello => return Err(CatchUpError::Protocol("no Hello yet")),
            SenderState::Finished => (None, SenderState::Finished),
            SenderState::Start { meta, offset } => (
                Some(CatchUpMessage::SnapshotStart {
                    header: meta.header.into(),
                    from: offset,
                }),
                SenderState::Chunks { meta, offset },
            ),
            SenderState::Chunks { meta, offset } if offset < meta.header.len => {
                let len = (meta.header.len - offset).min(self.chunk as u64) as usize;
                let bytes = store.read_body(&meta, offset, len)?;
                if bytes.len() != len {
                    return Err(CatchUpError::Protocol(
                        "snapshot file shorter than its header",
                    ));
                }
                let message = CatchUpMessage::SnapshotChunk {
                    offset,
                    crc: crc32fast::hash(&bytes),
                    bytes,
                };
                let offset = offset + len as u64;
                (Some(message), SenderState::Chunks { meta, offset })
            }
            SenderState::Chunks { meta, .. } => (
                Some(CatchUpMessage::SnapshotEnd {
                    crc: meta.header.crc,
                }),
                SenderState::Log {
                    next: meta.header.index + 1,
                    last: log.next_index().saturating_sub(1),
                },
            ),
            SenderState::Log { next, last } if next > last => {
                (Some(CatchUpMessage::Done { last }), SenderState::Finished)
            }
            SenderState::Log { next, last } => {
                let mut records = log.read(next, self.chunk)?;
                let first = next;
                // Never past `last`, nor past a chunk.
                let (count, used) = leading_records(&records, last - next + 1);
                if count == 0 {
                    return Err(CatchUpError::Protocol(
                        "log record unreadable or over a chunk",
                    ));
                }
                records.truncate(used);
                let message = CatchUpMessage::Entries { first, records };
                (
                    Some(message),
                    SenderState::Log {
                        next: next + count,
                        last,
                    },
                )
            }
        };
        self.state = state;
        Ok(message)
    }
}

/// What the receiver did with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Received {
    /// Progress; nothing to act on yet.
    Progress,
    /// A verified snapshot was installed and the log reset after it: restore the state
    /// machine from [`SnapshotStore::load`] of this snapshot before applying the entries that
    /// follow.
    SnapshotInstalled(SnapshotMeta),
    /// Verified entries were appended up to this index.
    Appended(u64),
    /// The catch-up is complete up to `last` (the log is synced).
    Done {
        /// The last index the sender sent.
        last: u64,
    },
}

/// The receiving side (sans-IO): send [`hello`](Self::hello), then feed every message to
/// [`handle`](Self::handle).
#[derive(Debug)]
pub struct CatchUpReceiver {
    incoming: Option<super::snapshot::Incoming>,
    sync_every: u64,
    unsynced: u64,
    done: bool,
}

impl CatchUpReceiver {
    /// Starts an attempt: the receiver and its `Hello` (naming a partial snapshot left by a
    /// dropped attempt, so the sender resumes it). The partial file is synced every
    /// `sync_every` bytes.
    ///
    /// # Errors
    ///
    /// Storage errors.
    pub fn hello(
        store: &SnapshotStore,
        log: &Log,
        sync_every: u64,
    ) -> Result<(Self, CatchUpMessage), CatchUpError> {
        let partial = store.partial()?;
        Ok((
            Self {
                incoming: None,
                sync_every: sync_every.max(1),
                unsynced: 0,
                done: false,
            },
            CatchUpMessage::Hello {
                log_next: log.next_index(),
                partial,
            },
        ))
    }

    /// Whether [`Done`](CatchUpMessage::Done) was received.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Handles one message from the sender.
    ///
    /// # Errors
    ///
    /// [`CatchUpError`]: drop the connection and start a new attempt. Nothing unverified was
    /// installed or appended; a rejected snapshot was removed.
    pub fn handle(
        &mut self,
        message: CatchUpMessage,
        store: &SnapshotStore,
        log: &mut Log,
    ) -> Result<Received, CatchUpError> {
        match message {
            CatchUpMessage::Hello { .. } => Err(CatchUpError::Protocol("unexpected Hello")),
            CatchUpMessage::SnapshotStart { header, from } => {
                let incoming = store.incoming(header.into())?;
                if incoming.received() != from {
                    return Err(CatchUpError::Protocol(
                        "snapshot resumes at the wrong offset",
                    ));
                }
                self.incoming = Some(incoming);
                Ok(Received::Progress)
            }
            CatchUpMessage::SnapshotChunk { offset, crc, bytes } => {
                let incoming = self
                    .incoming
                    .as_mut()
                    .ok_or(CatchUpError::Protocol("chunk without a snapshot"))?;
                if offset != incoming.received() {
                    return Err(CatchUpError::Protocol("chunk out of order"));
                }
                if crc32fast::hash(&bytes) != crc {
                    return Err(CatchUpError::CorruptChunk { offset });
                }
                incoming.append(&bytes)?;
                self.unsynced += bytes.len() as u64;
                if self.unsynced >= self.sync_every {
                    incoming.sync()?;
                    self.unsynced = 0;
                }
                Ok(Received::Progress)
            }
            CatchUpMessage::SnapshotEnd { crc } => {
                let incoming = self
                    .incoming
                    .take()
                    .ok_or(CatchUpError::Protocol("end without a snapshot"))?;
                if crc != incoming.header().crc {
                    return Err(CatchUpError::Protocol(
                        "end checksum differs from the header",
                    ));
                }
                let meta = match incoming.finish() {
                    Ok(meta) => meta,
                    Err(error @ SnapshotError::Corrupt { .. }) => {
                        return Err(CatchUpError::SnapshotRejected(error));
                    }
                    Err(error) => return Err(error.into()),
                };
                log.reset(meta.header.index + 1)?;
                Ok(Received::SnapshotInstalled(meta))
            }
            CatchUpMessage::Entries { first, records } => {
                if first != log.next_index() {
                    return Err(CatchUpError::Protocol("entries do not continue the log"));
                }
                // Verify the whole batch before appending any of it.
                let mut payloads = Vec::new();
                let mut at = 0;
                while at < records.len() {
                    let expected = first + payloads.len() as u64;
                    match decode_record(&records[at..]) {
                        Ok((index, payload, used)) if index == expected => {
                            payloads.push(payload);
                            at += used;
                        }
                        _ => return Err(CatchUpError::CorruptRecord { index: expected }),
                    }
                }
                for payload in payloads {
                    log.append(payload)?;
                }
                Ok(Received::Appended(log.next_index().saturating_sub(1)))
            }
            CatchUpMessage::Done { last } => {
                log.sync()?;
                self.done = true;
                Ok(Received::Done { last })
            }
        }
    }
}

/// Serves one catch-up on `stream` from a [`LogReader`] (so the log's owner keeps appending
/// meanwhile): reads the `Hello`, sends until done. `pin` is called with the first log index
/// the catch-up sends (pin it in the checkpointer until this returns).
///
/// # Errors
///
/// The stream's, the storage's or the protocol's errors.
pub async fn serve<S>(
    stream: &mut S,
    store: &SnapshotStore,
    log: &mut LogReader,
    chunk: usize,
    pin: impl FnOnce(u64),
) -> Result<(), CatchUpError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let hello = read_frame(stream).await?;
    let mut sender = CatchUpSender::new(chunk);
    pin(sender.handle_hello(hello, store, log)?);
    let mut buffer = Vec::new();
    while let Some(message) = sender.next_message(store, log)? {
        // One write per message: the length prefix, then the body encoded right after it.
        buffer.clear();
        buffer.extend_from_slice(&[0; 4]);
        buffer = postcard::to_extend(&message, std::mem::take(&mut buffer))
            .map_err(|e| CatchUpError::Decode(e.to_string()))?;
        let len = u32::try_from(buffer.len() - 4)
            .map_err(|_| CatchUpError::Protocol("frame too long"))?;
        buffer[..4].copy_from_slice(&len.to_le_bytes());
        stream.write_all(&buffer).await?;
    }
    stream.flush().await?;
    Ok(())
}

/// Runs one catch-up attempt on `stream` as the receiver, calling `on_event` for every
/// [`Received`] (restore the state on `SnapshotInstalled`). Returns the last index sent.
///
/// # Errors
///
/// As [`CatchUpReceiver::handle`], and the stream's errors: start a new attempt on a new
/// connection; it resumes.
pub async fn fetch<S>(
    stream: &mut S,
    store: &SnapshotStore,
    log: &mut Log,
    sync_every: u64,
    mut on_event: impl FnMut(&Received),
) -> Result<u64, CatchUpError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut receiver, hello) = CatchUpReceiver::hello(store, log, sync_every)?;
    write_frame(stream, &hello).await?;
    loop {
        let message = read_frame(stream).await?;
        let event = receiver.handle(message, store, log)?;
        on_event(&event);
        if let Received::Done { last } = event {
            return Ok(last);
        }
    }
}

/// Writes one length-prefixed message.
///
/// # Errors
///
/// The stream's errors.
pub async fn write_frame<S: AsyncWrite + Unpin>(
    stream: &mut S,
    message: &CatchUpMessage,
) -> Result<(), CatchUpError> {
    let body = encode(message)?;
    let len = u32::try_from(body.len()).map_err(|_| CatchUpError::Protocol("frame too long"))?;
    stream.write_all(&len.to_le_bytes()).await?;
    stream.write_all(&body).await?;
    stream.flush().await?;
    Ok(())
}

/// Reads one length-prefixed message (at most [`MAX_FRAME`] bytes, checked before
/// allocating).
///
/// # Errors
///
/// The stream's errors, or [`CatchUpError::Decode`].
pub async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<CatchUpMessage, CatchUpError> {
    let mut len = [0; 4];
    stream.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(CatchUpError::Decode(format!("frame of {len} bytes")));
    }
    let mut body = vec![0; len];
    stream.read_exact(&mut body).await?;
    decode(&body)
}

/// How many whole records (at most `max`) start `bytes`, and how many bytes they take.
fn leading_records(bytes: &[u8], max: u64) -> (u64, usize) {
    let mut count = 0;
    let mut at = 0;
    while count < max {
        match decode_record(&bytes[at..]) {
            Ok((_, _, used)) => {
                at += used;
                count += 1;
            }
            Err(_) => break,
        }
    }
    (count, at)
}
