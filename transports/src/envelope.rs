//! The byte layout of a frame on the wire, and the functions that seal and open it.
//!
//! # Layout
//!
//! Every frame, datagram or stream, is one *envelope*. All integers are little-endian.
//!
//! ```text
//! offset  size  field
//!      0     4  magic "PHLX"
//!      4     1  protocol version (1)
//!      5     1  security mode: 0 = plaintext, 1 = XChaCha20-Poly1305
//!      6     8  cluster id (u64)
//! -- mode 1 only --------------------------------------------------------------
//!     14     4  key id: fingerprint of the key that sealed the frame (u32)
//!     18    24  nonce: 24 random bytes, fresh for every frame
//! -- body: plaintext in mode 0, ciphertext in mode 1 --------------------------
//!     14|42  ..  frame header, postcard: sender node id ([u8; 16]), incarnation (varint u64),
//!                sequence (varint u64), kind (u8); at most 37 bytes
//!        ..  ..  payload, to the end of the body (its length is implied by the envelope's)
//! -- mode 1 only --------------------------------------------------------------
//!   len-16  16  Poly1305 tag
//! ```
//!
//! In mode 1, everything before the body (magic, version, mode, cluster id, key id, nonce) is
//! the AEAD's associated data: it travels in the clear so that the receiver can reject other
//! versions and clusters cheaply and pick the key, yet changing any bit of it makes
//! authentication fail. The key id tells an observer which key sealed a frame (which helps to
//! watch a rotation), and nothing about the key itself. The sender's identity, sequence number
//! and kind are inside the ciphertext, so they are both secret and authenticated. The overhead
//! is 42 + 16 bytes of envelope plus up to 37 bytes of frame header.
//!
//! On a stream each envelope is preceded by its length as a big-endian `u32` (network order);
//! the length is not authenticated on its own, but a changed length breaks the envelope and so
//! fails authentication.
//!
//! Mode 0 (plaintext) has no key id, nonce or tag: anyone on the network can read and forge
//! such frames. It exists for local development only.

use std::ops::Range;

use chacha20poly1305::XNonce;
use chacha20poly1305::aead::AeadInPlace;
use serde::{Deserialize, Serialize};

use crate::codec::Security;
use crate::error::{DecodeError, EncodeError};
use crate::frame::{
    ClusterId, Frame, FrameHeader, FrameKind, Incarnation, NodeId, PROTOCOL_VERSION,
};
use crate::keyring::{KeyId, Nonces};

/// The first four bytes of every envelope.
pub(crate) const MAGIC: [u8; 4] = *b"PHLX";

/// Bytes of envelope and frame header that a sealed frame may add to its payload, at most.
pub(crate) const MAX_OVERHEAD: usize = MAX_HEADER_LEN + TAG_LEN;

/// Bytes of envelope and frame header before the payload, at most: the room
/// [`seal_in_place`] needs in front of a payload.
pub(crate) const MAX_HEADER_LEN: usize = SEALED_HEADER_LEN + MAX_FRAME_HEADER_LEN;

/// The frame header as postcard encodes it. Kept apart from [`FrameHeader`] so that the kind
/// travels as a raw code and an unknown code becomes [`DecodeError::UnknownKind`].
#[derive(Serialize, Deserialize)]
struct WireHeader {
    sender: [u8; 16],
    incarnation: u64,
    sequence: u64,
    kind: u8,
}

/// Appends one sealed envelope to `out`, or leaves `out` as it was on error.
pub(crate) fn seal(
    out: &mut Vec<u8>,
    security: &Security,
    nonces: &mut Nonces,
    header: &FrameHeader,
    payload: &[u8],
    max: usize,
) -> Result<(), EncodeError> {
    let start = out.len();
    let result = seal_unchecked(out, security, nonces, header, payload, max);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn seal_unchecked(
    out: &mut Vec<u8>,
    security: &Security,
    nonces: &mut Nonces,
    header: &FrameHeader,
    payload: &[u8],
    max: usize,
) -> Result<(), EncodeError> {
    let start = out.len();
    let mut header_buf = [0u8; MAX_FRAME_HEADER_LEN];
    let frame_header = encode_frame_header(header, &mut header_buf)?;
    let (mode, envelope_header_len, tag_len) = layout(security);
    let len = envelope_header_len + frame_header.len() + payload.len() + tag_len;
    if len > max {
        return Err(EncodeError::TooLarge { len, max });
    }
    out.reserve(len);
    out.extend_from_slice(&MAGIC);
    out.push(PROTOCOL_VERSION);
    out.push(mode);
    out.extend_from_slice(&header.cluster.0.to_le_bytes());
    match security {
        Security::Plaintext => {
            out.extend_from_slice(frame_header);
            out.extend_from_slice(payload);
        }
        Security::Keyring(ring) => {
            let key = ring.primary_key();
            let nonce = nonces.next()?;
            out.extend_from_slice(&key.id.0.to_le_bytes());
            out.extend_from_slice(&nonce);
            out.extend_from_slice(frame_header);
            out.extend_from_slice(payload);
            let (associated, body) = out[start..].split_at_mut(SEALED_HEADER_LEN);
            let tag = key
                .cipher
                .encrypt_in_place_detached(&nonce, associated, body)
                .map_err(|_| EncodeError::Encrypt)?;
            out.extend_from_slice(&tag);
        }
    }
    Ok(())
}

/// Encodes the frame header into `buf`, which fits the largest possible encoding (see
/// [`MAX_FRAME_HEADER_LEN`]): this cannot fail, and should it ever, it is reported like the
/// other can't-happen error rather than a panic.
fn encode_frame_header<'b>(
    header: &FrameHeader,
    buf: &'b mut [u8; MAX_FRAME_HEADER_LEN],
) -> Result<&'b mut [u8], EncodeError> {
    let wire = WireHeader {
        sender: header.sender.to_bytes(),
        incarnation: header.incarnation.0,
        sequence: header.sequence,
        kind: header.kind.code(),
    };
    postcard::to_slice(&wire, buf).map_err(|_| EncodeError::Encrypt)
}

/// The envelope's mode byte, header length and tag length under `security`.
fn layout(security: &Security) -> (u8, usize, usize) {
    match security {
        Security::Plaintext => (MODE_PLAINTEXT, PREFIX_LEN, 0),
        Security::Keyring(_) => (MODE_XCHACHA20_POLY1305, SEALED_HEADER_LEN, TAG_LEN),
    }
}

/// Seals the payload `buf[headroom..]` where it lies: writes the envelope and frame headers
/// into the end of the headroom, encrypts in place and appends the tag, so that a batch
/// written straight into its buffer is sealed without being copied. Returns where the envelope
/// starts in `buf`. `headroom` must be at least [`MAX_HEADER_LEN`]. On error the connection
/// must not use `buf`.
pub(crate) fn seal_in_place(
    buf: &mut Vec<u8>,
    headroom: usize,
    security: &Security,
    nonces: &mut Nonces,
    header: &FrameHeader,
    max: usize,
) -> Result<usize, EncodeError> {
    let mut header_buf = [0u8; MAX_FRAME_HEADER_LEN];
    let frame_header = encode_frame_header(header, &mut header_buf)?;
    let (mode, envelope_header_len, tag_len) = layout(security);
    let headers = envelope_header_len + frame_header.len();
    let len = headers + buf.len().saturating_sub(headroom) + tag_len;
    let start = headroom.checked_sub(headers);
    let (Some(start), true) = (start, len <= max && buf.len() >= headroom) else {
        return Err(EncodeError::TooLarge { len, max });
    };
    let envelope = &mut buf[start..];
    envelope[..4].copy_from_slice(&MAGIC);
    envelope[4] = PROTOCOL_VERSION;
    envelope[5] = mode;
    envelope[6..PREFIX_LEN].copy_from_slice(&header.cluster.0.to_le_bytes());
    envelope[envelope_header_len..headers].copy_from_slice(frame_header);
    if let Security::Keyring(ring) = security {
        let key = ring.primary_key();
        let nonce = nonces.next()?;
        envelope[PREFIX_LEN..PREFIX_LEN + 4].copy_from_slice(&key.id.0.to_le_bytes());
        envelope[PREFIX_LEN + 4..SEALED_HEADER_LEN].copy_from_slice(&nonce);
        let (associated, body) = envelope.split_at_mut(SEALED_HEADER_LEN);
        let tag = key
            .cipher
            .encrypt_in_place_detached(&nonce, associated, body)
            .map_err(|_| EncodeError::Encrypt)?;
        buf.extend_from_slice(&tag);
    }
    Ok(start)
}

/// Opens one envelope: checks size, magic, version, cluster and authenticity, parses the frame
/// header. Replay checks are the caller's.
pub(crate) fn open(
    bytes: &[u8],
    security: &Security,
    cluster: ClusterId,
    max: usize,
) -> Result<Frame, DecodeError> {
    // Checked before the copy too, so that an oversized input is never copied.
    if bytes.len() > max {
        return Err(DecodeError::Oversized {
            len: bytes.len(),
            max,
        });
    }
    let mut body = bytes.to_vec();
    let (header, payload) = open_in_place(&mut body, security, cluster, max)?;
    // Reuse the allocation for the payload.
    body.truncate(payload.end);
    body.drain(..payload.start);
    Ok(Frame {
        header,
        payload: body,
    })
}

/// Opens one envelope inside `bytes` (decrypting in place): the same checks as [`open`], and
/// returns the frame header and where the payload lies in `bytes`. Whatever the outcome,
/// `bytes` may have changed, so it must not be opened again.
pub(crate) fn open_in_place(
    bytes: &mut [u8],
    security: &Security,
    cluster: ClusterId,
    max: usize,
) -> Result<(FrameHeader, Range<usize>), DecodeError> {
    let len = bytes.len();
    if len > max {
        return Err(DecodeError::Oversized { len, max });
    }
    if bytes[..len.min(MAGIC.len())] != MAGIC[..len.min(MAGIC.len())] {
        return Err(DecodeError::Garbled { what: "magic" });
    }
    let Some(prefix) = bytes.first_chunk::<PREFIX_LEN>() else {
        return Err(DecodeError::Truncated {
            len,
            needed: PREFIX_LEN,
        });
    };
    let [_, _, _, _, version, mode, cluster_bytes @ ..] = *prefix;
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let found = ClusterId(u64::from_le_bytes(cluster_bytes));
    if found != cluster {
        return Err(DecodeError::WrongCluster {
            expected: cluster,
            found,
        });
    }
    let body = match (mode, security) {
        (MODE_PLAINTEXT, Security::Plaintext) => PREFIX_LEN..len,
        (MODE_XCHACHA20_POLY1305, Security::Keyring(ring)) => decrypt(bytes, ring)?,
        (MODE_PLAINTEXT | MODE_XCHACHA20_POLY1305, _) => return Err(DecodeError::Unauthenticated),
        _ => {
            return Err(DecodeError::Garbled {
                what: "security mode",
            });
        }
    };
    let (header, payload) = parse_body(&bytes[body.clone()], cluster)?;
    Ok((header, body.start + payload.start..body.start + payload.end))
}

/// The key id an envelope names, if it is sealed. Trustworthy once the envelope has opened:
/// the id is associated data.
pub(crate) fn key_id(bytes: &[u8]) -> Option<KeyId> {
    if bytes.get(5) != Some(&MODE_XCHACHA20_POLY1305) {
        return None;
    }
    let id = bytes.get(PREFIX_LEN..PREFIX_LEN + 4)?;
    Some(KeyId(u32::from_le_bytes([id[0], id[1], id[2], id[3]])))
}

/// Authenticates and decrypts the body of a sealed envelope in place; returns where the
/// plaintext body lies.
fn decrypt(bytes: &mut [u8], ring: &crate::Keyring) -> Result<Range<usize>, DecodeError> {
    let len = bytes.len();
    let needed = SEALED_HEADER_LEN + TAG_LEN;
    if len < needed {
        return Err(DecodeError::Truncated { len, needed });
    }
    let (associated, sealed) = bytes.split_at_mut(SEALED_HEADER_LEN);
    let (ciphertext, tag) = sealed.split_at_mut(sealed.len() - TAG_LEN);
    let key_id = KeyId(u32::from_le_bytes([
        associated[PREFIX_LEN],
        associated[PREFIX_LEN + 1],
        associated[PREFIX_LEN + 2],
        associated[PREFIX_LEN + 3],
    ]));
    let nonce = XNonce::from_slice(&associated[PREFIX_LEN + 4..]);
    let tag = chacha20poly1305::Tag::from_slice(tag);
    let mut candidates = ring.candidates(key_id).peekable();
    // With one key (no rotation under way) the ciphertext is opened where it lies. With more,
    // a copy is kept so that every key starts from the ciphertext: a failed attempt must not
    // leave a partly decrypted buffer behind, whatever the cipher implementation does on
    // failure.
    let mut original: Option<Vec<u8>> = None;
    while let Some(key) = candidates.next() {
        if candidates.peek().is_some() || original.is_some() {
            match &original {
                Some(copy) => ciphertext.copy_from_slice(copy),
                None => original = Some(ciphertext.to_vec()),
            }
        }
        if key
            .cipher
            .decrypt_in_place_detached(nonce, associated, ciphertext, tag)
            .is_ok()
        {
            return Ok(SEALED_HEADER_LEN..len - TAG_LEN);
        }
    }
    Err(DecodeError::Unauthenticated)
}

/// Parses the frame header at the start of `body`; returns it and where the payload lies in
/// `body`.
fn parse_body(body: &[u8], cluster: ClusterId) -> Result<(FrameHeader, Range<usize>), DecodeError> {
    let (wire, payload_len) = match postcard::take_from_bytes::<WireHeader>(body) {
        Ok((wire, payload)) => (wire, payload.len()),
        Err(postcard::Error::DeserializeUnexpectedEnd) => {
            return Err(DecodeError::Truncated {
                len: body.len(),
                needed: body.len() + 1,
            });
        }
        Err(_) => {
            return Err(DecodeError::Garbled {
                what: "frame header",
            });
        }
    };
    let kind = FrameKind::from_code(wire.kind).ok_or(DecodeError::UnknownKind(wire.kind))?;
    let header = FrameHeader {
        cluster,
        sender: NodeId::from_bytes(wire.sender),
        incarnation: Incarnation(wire.incarnation),
        sequence: wire.sequence,
        kind,
    };
    Ok((header, body.len() - payload_len..body.len()))
}

const MODE_PLAINTEXT: u8 = 0;
const MODE_XCHACHA20_POLY1305: u8 = 1;
/// Magic, version, mode and cluster id.
const PREFIX_LEN: usize = 14;
/// The prefix plus key id and nonce.
const SEALED_HEADER_LEN: usize = PREFIX_LEN + 4 + 24;
const TAG_LEN: usize = 16;
/// 16 bytes of node id, two varint u64 of at most 10 bytes each, one kind byte.
const MAX_FRAME_HEADER_LEN: usize = 16 + 10 + 10 + 1;
