//! The codec: the single entry point that turns payloads into sealed bytes and back.
//!
//! A [`Codec`] is a sans-IO state machine: it owns the node's identity, the keyring, the
//! sequence counters, the replay windows and the drop counters, and it never touches a socket
//! or reads a clock. The transport hands it bytes (and the current time) and sends the bytes it
//! returns.

use crate::counters::DropCounters;
use crate::envelope;
use crate::error::{DecodeError, EncodeError};
use crate::frame::{ClusterId, Frame, FrameHeader, FrameKind, Incarnation, NodeId};
use crate::keyring::{Keyring, Nonces};
use crate::replay::{ReplayTable, Verdict};

/// Default largest datagram: fits a 1,500-byte Ethernet MTU with room for IP and UDP headers.
pub const DEFAULT_MAX_DATAGRAM: usize = 1_400;

/// Default largest stream frame (envelope without its length prefix): 1 MiB.
pub const DEFAULT_MAX_STREAM_FRAME: usize = 1 << 20;

/// Default number of senders whose replay windows are kept.
pub const DEFAULT_REPLAY_SENDERS: usize = 4_096;

/// Bytes to leave free in front of a payload that
/// [`Codec::seal_stream_frame_in_place`] seals: the length prefix and the largest envelope and
/// frame headers.
pub(crate) const STREAM_HEADROOM: usize = 4 + envelope::MAX_HEADER_LEN;

/// How frames are protected on the wire.
#[derive(Debug)]
#[non_exhaustive]
pub enum Security {
    /// **Development only.** No encryption and no authentication: anyone who can reach the
    /// node can read, forge and replay frames (replays are still rejected, but forging a
    /// fresh sequence number is trivial). Never use this on a network you do not fully trust.
    Plaintext,
    /// Every frame is sealed with the keyring's primary key (XChaCha20-Poly1305) and opened
    /// with any installed key.
    Keyring(Keyring),
}

/// Identity and limits of a [`Codec`].
///
/// # Examples
///
/// ```
/// use phalanx_transports::{ClusterId, CodecConfig, Incarnation, NodeId};
///
/// let mut config = CodecConfig::new(ClusterId(42), NodeId::from_u128(1), Incarnation(0));
/// config.max_datagram = 1_200; // a path with a smaller MTU
/// assert_eq!(config.max_datagram, 1_200);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CodecConfig {
    /// The cluster this node belongs to; frames for other clusters are dropped.
    pub cluster: ClusterId,
    /// This node's id, written into every frame it seals.
    pub node: NodeId,
    /// This node's incarnation, written into every frame it seals.
    pub incarnation: Incarnation,
    /// Largest datagram sealed or accepted, in bytes. Default [`DEFAULT_MAX_DATAGRAM`].
    pub max_datagram: usize,
    /// Largest stream frame sealed or accepted, without its 4-byte length prefix; values above
    /// `u32::MAX` act as `u32::MAX`. Default [`DEFAULT_MAX_STREAM_FRAME`].
    pub max_stream_frame: usize,
    /// How many senders' replay windows are kept before the least recent is forgotten.
    /// Default [`DEFAULT_REPLAY_SENDERS`].
    pub replay_senders: usize,
}

impl CodecConfig {
    /// A configuration with the default limits.
    pub fn new(cluster: ClusterId, node: NodeId, incarnation: Incarnation) -> CodecConfig {
        CodecConfig {
            cluster,
            node,
            incarnation,
            max_datagram: DEFAULT_MAX_DATAGRAM,
            max_stream_frame: DEFAULT_MAX_STREAM_FRAME,
            replay_senders: DEFAULT_REPLAY_SENDERS,
        }
    }

    pub(crate) fn stream_frame_limit(&self) -> usize {
        self.max_stream_frame.min(u32::MAX as usize)
    }
}

/// Seals outgoing frames and opens incoming ones, counting everything it drops.
///
/// Nothing in the codec depends on time, so none of its methods takes a clock reading: replay
/// windows slide with sequence numbers, and the replay table forgets senders by how recently
/// it accepted from them, counted in accepted datagrams.
///
/// # Examples
///
/// ```
/// use phalanx_transports::{
///     ClusterId, Codec, CodecConfig, FrameKind, Incarnation, Key, Keyring, NodeId, Security,
/// };
///
/// let key = Key::from_bytes([9; 32]); // in real life: Key::generate(), shared out of band
/// let config = |node| CodecConfig::new(ClusterId(1), NodeId::from_u128(node), Incarnation(0));
/// let mut alice = Codec::new(config(1), Security::Keyring(Keyring::new(key.clone())));
/// let mut bob = Codec::new(config(2), Security::Keyring(Keyring::new(key)));
///
/// let datagram = alice.seal_datagram(FrameKind::Gossip, b"ping")?;
/// let frame = bob.open_datagram(&datagram)?;
/// assert_eq!(frame.payload, b"ping");
/// assert_eq!(frame.header.sender, NodeId::from_u128(1));
///
/// // The same bytes again are a replay.
/// assert!(bob.open_datagram(&datagram).is_err());
/// assert_eq!(bob.counters().replayed, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Codec {
    config: CodecConfig,
    security: Security,
    /// Sequence of the last datagram sealed; datagrams and stream frames count separately so
    /// that a long stream transfer does not push in-flight datagrams out of the receiver's
    /// replay window.
    datagram_sequence: u64,
    /// Sequence of the last stream frame sealed.
    stream_sequence: u64,
    replay: ReplayTable,
    counters: DropCounters,
    /// Where sealing nonces come from.
    nonces: Nonces,
}

impl Codec {
    /// A codec for this node with the given protection.
    pub fn new(config: CodecConfig, security: Security) -> Codec {
        let replay = ReplayTable::new(config.replay_senders);
        Codec {
            config,
            security,
            datagram_sequence: 0,
            stream_sequence: 0,
            replay,
            counters: DropCounters::default(),
            nonces: Nonces::new(),
        }
    }

    /// Seals one datagram of the given kind.
    ///
    /// # Errors
    ///
    /// [`EncodeError::TooLarge`] if the sealed datagram would exceed
    /// [`CodecConfig::max_datagram`] (see [`Codec::max_datagram_payload`]);
    /// [`EncodeError::RandomUnavailable`] if no nonce could be drawn.
    pub fn seal_datagram(
        &mut self,
        kind: FrameKind,
        payload: &[u8],
    ) -> Result<Vec<u8>, EncodeError> {
        self.datagram_sequence += 1;
        let header = self.header(kind, self.datagram_sequence);
        let mut out = Vec::new();
        envelope::seal(
            &mut out,
            &self.security,
            &mut self.nonces,
            &header,
            payload,
            self.config.max_datagram,
        )?;
        Ok(out)
    }

    /// Opens one received datagram, accepting each datagram at most once.
    ///
    /// # Errors
    ///
    /// Any [`DecodeError`] except [`DecodeError::Poisoned`]; each is counted in
    /// [`Codec::counters`] and the datagram is dropped without changing any other state.
    pub fn open_datagram(&mut self, bytes: &[u8]) -> Result<Frame, DecodeError> {
        let result = self.open_datagram_uncounted(bytes);
        if let Err(error) = &result {
            self.counters.record(error, "datagram", bytes.len());
        }
        result
    }

    /// Seals one stream frame, length prefix included, ready to be written to the stream.
    ///
    /// Write frames to a stream in the order they were sealed: the receiver rejects a stream
    /// frame whose sequence number does not exceed the previous one's.
    ///
    /// # Errors
    ///
    /// [`EncodeError::TooLarge`] if the envelope would exceed [`CodecConfig::max_stream_frame`];
    /// [`EncodeError::RandomUnavailable`] if no nonce could be drawn.
    pub fn seal_stream_frame(
        &mut self,
        kind: FrameKind,
        payload: &[u8],
    ) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.seal_stream_frame_into(kind, payload, &mut out)?;
        Ok(out)
    }

    /// Like [`seal_stream_frame`](Self::seal_stream_frame), but appends the frame (length
    /// prefix included) to `out`, so that several frames can share one buffer and one write.
    /// On error `out` is left as it was.
    ///
    /// # Errors
    ///
    /// As [`seal_stream_frame`](Self::seal_stream_frame).
    pub fn seal_stream_frame_into(
        &mut self,
        kind: FrameKind,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        self.stream_sequence += 1;
        let header = self.header(kind, self.stream_sequence);
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        if let Err(error) = envelope::seal(
            out,
            &self.security,
            &mut self.nonces,
            &header,
            payload,
            self.config.stream_frame_limit(),
        ) {
            out.truncate(start);
            return Err(error);
        }
        // Fits: the envelope is at most stream_frame_limit() <= u32::MAX bytes.
        let envelope_len = out.len() - start - 4;
        let Ok(len) = u32::try_from(envelope_len) else {
            out.truncate(start);
            return Err(EncodeError::TooLarge {
                len: envelope_len,
                max: self.config.stream_frame_limit(),
            });
        };
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    /// Seals the stream frame whose payload is `buf[STREAM_HEADROOM..]` where it lies (see
    /// [`STREAM_HEADROOM`]); returns where the frame, length prefix included, starts in
    /// `buf`. Order rules as for [`seal_stream_frame`](Self::seal_stream_frame); on error the
    /// frame must not be written.
    pub(crate) fn seal_stream_frame_in_place(
        &mut self,
        kind: FrameKind,
        buf: &mut Vec<u8>,
    ) -> Result<usize, EncodeError> {
        self.stream_sequence += 1;
        let header = self.header(kind, self.stream_sequence);
        let max = self.config.stream_frame_limit();
        let envelope = envelope::seal_in_place(
            buf,
            STREAM_HEADROOM,
            &self.security,
            &mut self.nonces,
            &header,
            max,
        )?;
        let envelope_len = buf.len() - envelope;
        let (Some(start), Ok(len)) = (envelope.checked_sub(4), u32::try_from(envelope_len)) else {
            return Err(EncodeError::TooLarge {
                len: envelope_len,
                max,
            });
        };
        buf[start..envelope].copy_from_slice(&len.to_be_bytes());
        Ok(start)
    }

    /// The largest payload whose stream frame stays within
    /// [`CodecConfig::max_stream_frame`], whatever the frame header's size.
    pub fn max_stream_payload(&self) -> usize {
        self.config
            .stream_frame_limit()
            .saturating_sub(envelope::MAX_OVERHEAD)
    }

    /// The largest payload that [`Codec::seal_datagram`] always accepts.
    pub fn max_datagram_payload(&self) -> usize {
        self.config
            .max_datagram
            .saturating_sub(envelope::MAX_OVERHEAD)
    }

    /// What this codec has dropped so far.
    pub fn counters(&self) -> &DropCounters {
        &self.counters
    }

    /// This codec's configuration.
    pub fn config(&self) -> &CodecConfig {
        &self.config
    }

    /// The keyring, for rotating keys; `None` in plaintext mode.
    pub fn keyring_mut(&mut self) -> Option<&mut Keyring> {
        match &mut self.security {
            Security::Keyring(ring) => Some(ring),
            Security::Plaintext => None,
        }
    }

    /// Changes the incarnation written into frames sealed from now on.
    pub fn set_incarnation(&mut self, incarnation: Incarnation) {
        self.config.incarnation = incarnation;
    }

    /// Forgets a sender's replay window, for a node that has left the cluster for good.
    pub fn forget_sender(&mut self, sender: NodeId) {
        self.replay.forget(sender);
    }

    /// Opens a stream envelope where it lies (decrypting in place); returns the header and
    /// where the payload is in `bytes`.
    pub(crate) fn open_stream_envelope_in_place(
        &mut self,
        bytes: &mut [u8],
    ) -> Result<(FrameHeader, std::ops::Range<usize>), DecodeError> {
        envelope::open_in_place(
            bytes,
            &self.security,
            self.config.cluster,
            self.config.stream_frame_limit(),
        )
    }

    pub(crate) fn counters_mut(&mut self) -> &mut DropCounters {
        &mut self.counters
    }

    fn open_datagram_uncounted(&mut self, bytes: &[u8]) -> Result<Frame, DecodeError> {
        let frame = envelope::open(
            bytes,
            &self.security,
            self.config.cluster,
            self.config.max_datagram,
        )?;
        let FrameHeader {
            sender,
            incarnation,
            sequence,
            ..
        } = frame.header;
        match self.replay.check_and_insert(sender, incarnation, sequence) {
            Verdict::Fresh => Ok(frame),
            Verdict::Replayed => Err(DecodeError::Replayed {
                sender,
                incarnation,
                sequence,
            }),
        }
    }

    fn header(&self, kind: FrameKind, sequence: u64) -> FrameHeader {
        FrameHeader {
            cluster: self.config.cluster,
            sender: self.config.node,
            incarnation: self.config.incarnation,
            sequence,
            kind,
        }
    }
}

#[cfg(test)]
mod tests;
