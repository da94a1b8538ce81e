//! The framing of one log record: length, checksum, index, payload.
//!
//! ```text
//! | len: u32 LE | crc: u32 LE | index: u64 LE | payload: len bytes |
//! ```
//!
//! `crc` is CRC-32 (IEEE, as `crc32fast` computes it) over `len`, `index` and the payload, so a
//! torn write, a flipped bit or a record copied to the wrong place is detected.

/// The bytes before a record's payload.
pub const RECORD_HEADER_LEN: usize = 16;

/// The largest payload a record may carry (and the most a decoder believes a length field).
pub const MAX_RECORD_LEN: usize = 16 * 1024 * 1024;

/// Why bytes are not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Fewer bytes than the header, or than the length the header gives (a torn write).
    #[error("record truncated: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes the record needs.
        needed: usize,
        /// Bytes there are.
        available: usize,
    },
    /// The length field exceeds [`MAX_RECORD_LEN`].
    #[error("record length {0} exceeds the maximum")]
    TooLong(u32),
    /// The checksum does not match the content.
    #[error("record checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum {
        /// The checksum in the header.
        stored: u32,
        /// The checksum of the bytes.
        computed: u32,
    },
}

/// Appends the record `(index, payload)` to `out`.
///
/// # Panics
///
/// If `payload` is longer than [`MAX_RECORD_LEN`] (a caller's bug: the log checks first).
pub fn encode_record(index: u64, payload: &[u8], out: &mut Vec<u8>) {
    assert!(payload.len() <= MAX_RECORD_LEN, "record payload too long");
    // Fits: MAX_RECORD_LEN < u32::MAX.
    let len = payload.len() as u32;
    let crc = checksum(len, index, payload);
    out.reserve(RECORD_HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Decodes the record at the start of `bytes`: its index, its payload and its encoded length.
///
/// # Errors
///
/// [`RecordError`] if the bytes do not start with a whole, intact record.
pub fn decode_record(bytes: &[u8]) -> Result<(u64, &[u8], usize), RecordError> {
    let header = bytes
        .get(..RECORD_HEADER_LEN)
        .ok_or(RecordError::Truncated {
            needed: RECORD_HEADER_LEN,
            available: bytes.len(),
        })?;
    let word = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let len = word(0);
    let stored = word(4);
    let mut index = [0; 8];
    index.copy_from_slice(&header[8..16]);
    let index = u64::from_le_bytes(index);
    if len as usize > MAX_RECORD_LEN {
        return Err(RecordError::TooLong(len));
    }
    let total = RECORD_HEADER_LEN + len as usize;
    let payload = bytes
        .get(RECORD_HEADER_LEN..total)
        .ok_or(RecordError::Truncated {
            needed: total,
            available: bytes.len(),
        })?;
    let computed = checksum(len, index, payload);
    if computed != stored {
        return Err(RecordError::Checksum { stored, computed });
    }
    Ok((index, payload, total))
}

fn checksum(len: u32, index: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len.to_le_bytes());
    hasher.update(&index.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_flipped_bit_is_caught() {
        let mut out = Vec::new();
        encode_record(7, b"hello", &mut out);
        assert_eq!(decode_record(&out), Ok((7, &b"hello"[..], out.len())));
        for byte in 0..out.len() {
            for bit in 0..8 {
                let mut bad = out.clone();
                bad[byte] ^= 1 << bit;
                assert!(decode_record(&bad).is_err(), "byte {byte} bit {bit}");
            }
        }
        for cut in 0..out.len() {
            assert!(matches!(
                decode_record(&out[..cut]),
                Err(RecordError::Truncated { .. })
            ));
        }
    }
}
