//! Incremental decoding of length-delimited frames from a byte stream.
//!
//! Each frame on a stream is a big-endian `u32` length followed by that many bytes of envelope
//! (see [`Codec::seal_stream_frame`]). The decoder buffers only bytes it was actually given: a
//! length prefix above [`CodecConfig::max_stream_frame`](crate::CodecConfig::max_stream_frame)
//! is rejected as soon as its four bytes are in, before anything is reserved for the frame.
//!
//! Within one stream the first accepted frame fixes the peer (node id and incarnation), and
//! every later frame must come from the same peer with a higher sequence number. This stops
//! frames from being replayed or reordered within a connection. It does not stop a recorded
//! connection from being replayed as a whole into a new connection; that needs a handshake with
//! fresh challenges, which is the job of the connection layer above.

use std::ops::Range;

use crate::codec::Codec;
use crate::envelope;
use crate::error::DecodeError;
use crate::frame::{Frame, FrameHeader, Incarnation, NodeId};
use crate::keyring::KeyId;

const LENGTH_PREFIX: usize = 4;

/// Turns the bytes of one stream, pushed as they arrive, into frames.
///
/// After any error the decoder is poisoned and keeps returning [`DecodeError::Poisoned`]: the
/// connection must be closed, as its framing can no longer be trusted.
///
/// # Examples
///
/// ```
/// use phalanx_transports::{
///     ClusterId, Codec, CodecConfig, FrameKind, Incarnation, NodeId, Security, StreamDecoder,
/// };
///
/// let config = |node| CodecConfig::new(ClusterId(1), NodeId::from_u128(node), Incarnation(0));
/// let mut sender = Codec::new(config(1), Security::Plaintext);
/// let mut receiver = Codec::new(config(2), Security::Plaintext);
/// let bytes = sender.seal_stream_frame(FrameKind::StreamChunk, b"chunk")?;
///
/// let mut decoder = StreamDecoder::new();
/// let (first, second) = bytes.split_at(3);
/// decoder.push(first);
/// assert_eq!(decoder.next_frame(&mut receiver)?, None); // needs more bytes
/// decoder.push(second);
/// let frame = decoder.next_frame(&mut receiver)?.expect("a whole frame was pushed");
/// assert_eq!(frame.payload, b"chunk");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct StreamDecoder {
    /// Bytes pushed but not yet consumed lie in `start..end`; consumed bytes before `start` are
    /// dropped lazily (by moving what follows them to the front) so that consuming a frame does
    /// not shift the buffer every time. Bytes after `end` are room for the next read
    /// ([`read_space`](Self::read_space)): kept initialized so that a read goes straight into
    /// them, and never zeroed again.
    buffer: Vec<u8>,
    start: usize,
    end: usize,
    /// The peer fixed by the first accepted frame, and the last sequence number accepted.
    peer: Option<(NodeId, Incarnation, u64)>,
    /// The key that sealed the last accepted frame (the key the peer seals with now).
    last_key: Option<KeyId>,
    poisoned: bool,
}

impl StreamDecoder {
    /// A decoder for a new stream.
    pub fn new() -> StreamDecoder {
        StreamDecoder::default()
    }

    /// Appends bytes read from the stream. Call [`StreamDecoder::next_frame`] until it returns
    /// `Ok(None)` after each push, so that the buffer holds at most one partial frame.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.poisoned {
            return;
        }
        let room = self.read_space(bytes.len());
        room[..bytes.len()].copy_from_slice(bytes);
        self.filled(bytes.len());
    }

    /// Room for at least `at_least` more bytes after those pushed, to read the stream into
    /// directly; then call [`filled`](Self::filled) with the number of bytes read. Makes room
    /// by first dropping consumed bytes, then growing (by no more than `at_least`: what is
    /// buffered is at most one partial frame, whose length was checked against the maximum).
    pub(crate) fn read_space(&mut self, at_least: usize) -> &mut [u8] {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.buffer.len() - self.end < at_least && self.start > 0 {
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buffer.len() - self.end < at_least {
            self.buffer.resize(self.end + at_least, 0);
        }
        &mut self.buffer[self.end..]
    }

    /// Marks `n` bytes of [`read_space`](Self::read_space) as pushed.
    pub(crate) fn filled(&mut self, n: usize) {
        if !self.poisoned {
            self.end = (self.end + n).min(self.buffer.len());
        }
    }

    /// Decodes the next whole frame, if one has been pushed.
    ///
    /// # Errors
    ///
    /// Any [`DecodeError`]: a length above the maximum, a frame that fails to open, or one that
    /// does not continue this stream's sender and sequence ([`DecodeError::Replayed`] for a
    /// sequence that does not increase, [`DecodeError::Garbled`] for a change of sender). The
    /// error is counted in the codec's [`DropCounters`](crate::DropCounters) once, and the
    /// decoder is poisoned.
    pub fn next_frame(&mut self, codec: &mut Codec) -> Result<Option<Frame>, DecodeError> {
        Ok(self.next_payload(codec)?.map(|(header, payload)| Frame {
            header,
            payload: payload.to_vec(),
        }))
    }

    /// Like [`next_frame`](Self::next_frame), but opens the frame where it lies in the buffer
    /// and lends its payload, so that nothing is copied or allocated per frame.
    pub(crate) fn next_payload(
        &mut self,
        codec: &mut Codec,
    ) -> Result<Option<(FrameHeader, &[u8])>, DecodeError> {
        if self.poisoned {
            return Err(DecodeError::Poisoned);
        }
        match self.decode(codec) {
            Ok(Some((header, payload))) => Ok(Some((header, &self.buffer[payload]))),
            Ok(None) => Ok(None),
            Err(error) => {
                let len = self.buffered();
                self.poisoned = true;
                self.buffer = Vec::new();
                (self.start, self.end) = (0, 0);
                codec.counters_mut().record(&error, "stream", len);
                Err(error)
            }
        }
    }

    /// The key that sealed the last frame accepted, `None` in plaintext or before any frame.
    pub(crate) fn last_key(&self) -> Option<KeyId> {
        self.last_key
    }

    /// Bytes pushed and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    fn decode(
        &mut self,
        codec: &mut Codec,
    ) -> Result<Option<(FrameHeader, Range<usize>)>, DecodeError> {
        let pending = &mut self.buffer[self.start..self.end];
        let Some((prefix, rest)) = pending.split_first_chunk_mut::<LENGTH_PREFIX>() else {
            return Ok(None);
        };
        // A u32 always fits in usize on the 32- and 64-bit targets we build for; saturate
        // anyway so that a 16-bit target would reject the frame as oversized.
        let len = usize::try_from(u32::from_be_bytes(*prefix)).unwrap_or(usize::MAX);
        let max = codec.config().stream_frame_limit();
        if len > max {
            return Err(DecodeError::Oversized { len, max });
        }
        let Some(envelope) = rest.get_mut(..len) else {
            return Ok(None);
        };
        let key = envelope::key_id(envelope);
        let (header, payload) = codec.open_stream_envelope_in_place(envelope)?;
        let offset = self.start + LENGTH_PREFIX;
        self.start += LENGTH_PREFIX + len;
        match self.peer {
            Some((sender, incarnation, _))
                if (sender, incarnation) != (header.sender, header.incarnation) =>
            {
                Err(DecodeError::Garbled {
                    what: "sender changed within a stream",
                })
            }
            Some((_, _, last)) if header.sequence <= last => Err(DecodeError::Replayed {
                sender: header.sender,
                incarnation: header.incarnation,
                sequence: header.sequence,
            }),
            _ => {
                self.peer = Some((header.sender, header.incarnation, header.sequence));
                self.last_key = key;
                Ok(Some((header, offset + payload.start..offset + payload.end)))
            }
        }
    }
}

#[cfg(test)]
mod tests;
