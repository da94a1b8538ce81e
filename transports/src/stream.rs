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

use crate::codec::Codec;
use crate::envelope;
use crate::error::DecodeError;
use crate::frame::{Frame, Incarnation, NodeId};
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
    /// Bytes pushed but not yet consumed start at `start`; consumed bytes before it are dropped
    /// lazily so that consuming a frame does not shift the buffer every time.
    buffer: Vec<u8>,
    start: usize,
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
        if self.start > 0 && self.start >= self.buffer.len() / 2 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
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
        if self.poisoned {
            return Err(DecodeError::Poisoned);
        }
        match self.decode(codec) {
            Ok(frame) => Ok(frame),
            Err(error) => {
                let len = self.buffered();
                self.poisoned = true;
                self.buffer = Vec::new();
                self.start = 0;
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
        self.buffer.len() - self.start
    }

    fn decode(&mut self, codec: &mut Codec) -> Result<Option<Frame>, DecodeError> {
        let pending = &self.buffer[self.start..];
        let Some((prefix, rest)) = pending.split_first_chunk::<LENGTH_PREFIX>() else {
            return Ok(None);
        };
        // A u32 always fits in usize on the 32- and 64-bit targets we build for; saturate
        // anyway so that a 16-bit target would reject the frame as oversized.
        let len = usize::try_from(u32::from_be_bytes(*prefix)).unwrap_or(usize::MAX);
        let max = codec.config().stream_frame_limit();
        if len > max {
            return Err(DecodeError::Oversized { len, max });
        }
        let Some(envelope) = rest.get(..len) else {
            return Ok(None);
        };
        let frame = codec.open_stream_envelope(envelope)?;
        let key = envelope::key_id(envelope);
        self.start += LENGTH_PREFIX + len;
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        }
        let header = frame.header;
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
                Ok(Some(frame))
            }
        }
    }
}

#[cfg(test)]
mod tests;
