//! A reader of a log's records that works apart from the [`Log`]: a catch-up streams from it
//! on another thread while the owner keeps appending.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use super::log::{Log, LogError};
use super::record::{RECORD_HEADER_LEN, decode_record};
use super::storage::Storage;

/// Reads the records a [`Log`] held when [`Log::reader`] was called, straight from the segment
/// files, in order.
///
/// It does not see later appends, and it needs the segments it reads to stay: pin its range
/// in the [`Checkpointer`](super::Checkpointer) so the log is not truncated under it (a
/// removed segment makes a read fail with [`LogError::Io`]; nothing wrong is returned).
pub struct LogReader {
    storage: Arc<dyn Storage>,
    /// `(first index, file)` of every segment, oldest first.
    segments: Vec<(u64, PathBuf)>,
    first: u64,
    next: u64,
    /// Where the next sequential read starts: segment position, index, byte offset.
    cursor: Option<(usize, u64, u64)>,
}

impl Log {
    /// A reader of every record appended so far (they are handed to the operating system
    /// first, so the reader finds them in the files).
    ///
    /// # Errors
    ///
    /// [`LogError::Io`] from handing buffered records over.
    pub fn reader(&mut self) -> Result<LogReader, LogError> {
        self.flush_buffer()?;
        let segments = self
            .segment_files()
            .into_iter()
            .zip(self.segment_firsts())
            .map(|(path, first)| (first, path))
            .collect();
        Ok(LogReader {
            storage: self.storage(),
            segments,
            first: self.first_index(),
            next: self.next_index(),
            cursor: None,
        })
    }
}

impl LogReader {
    /// The first index the log held.
    pub fn first_index(&self) -> u64 {
        self.first
    }

    /// One past the last index the reader can read.
    pub fn next_index(&self) -> u64 {
        self.next
    }

    /// Encoded records (the framing of [`encode_record`](super::encode_record)) from `from`
    /// on, about `max_bytes` of them within one segment (at least one record while `from` is
    /// below [`next_index`](Self::next_index); none at it). Sequential calls continue where
    /// the last ended without rescanning.
    ///
    /// # Errors
    ///
    /// [`LogError::OutOfRange`]; [`LogError::Corrupt`] if a record does not verify;
    /// [`LogError::Io`] (for example, a segment was removed).
    pub fn read(&mut self, from: u64, max_bytes: usize) -> Result<Vec<u8>, LogError> {
        if from < self.first || from > self.next {
            return Err(LogError::OutOfRange {
                index: from,
                first: self.first,
                next: self.next,
            });
        }
        if from == self.next {
            return Ok(Vec::new());
        }
        let (mut position, index, mut offset) = match self.cursor {
            Some(cursor @ (_, index, _)) if index == from => cursor,
            _ => self.seek(from)?,
        };
        let mut index = index;
        loop {
            let (_, path) = &self.segments[position];
            let path = path.clone();
            let mut bytes = self
                .storage
                .read_at(&path, offset, max_bytes.max(RECORD_HEADER_LEN))
                .map_err(|source| LogError::Io {
                    file: path.clone(),
                    source,
                })?;
            // A record longer than `max_bytes`: read exactly it.
            if let Some(len) = whole_record_len(&bytes)
                && len > bytes.len()
            {
                bytes =
                    self.storage
                        .read_at(&path, offset, len)
                        .map_err(|source| LogError::Io {
                            file: path.clone(),
                            source,
                        })?;
            }
            let mut used = 0;
            while index < self.next {
                match decode_record(&bytes[used..]) {
                    Ok((found, _, len)) if found == index => {
                        used += len;
                        index += 1;
                    }
                    Ok((found, _, _)) => {
                        return Err(LogError::Misplaced {
                            file: path,
                            offset: offset + used as u64,
                            expected: index,
                            found,
                        });
                    }
                    // The end of what was read (or of the segment).
                    Err(_) if used > 0 || bytes.len() < max_bytes => break,
                    Err(problem) => {
                        return Err(LogError::Corrupt {
                            file: path,
                            offset,
                            problem,
                        });
                    }
                }
            }
            if used > 0 {
                bytes.truncate(used);
                self.cursor = Some((position, index, offset + used as u64));
                return Ok(bytes);
            }
            // Nothing whole here: the segment ends; the next one must start at `index`.
            match self.segments.get(position + 1) {
                Some(&(first, _)) if first == index => {
                    position += 1;
                    offset = 0;
                }
                _ => {
                    return Err(LogError::Corrupt {
                        file: path,
                        offset,
                        problem: decode_record(&bytes).err().unwrap_or(
                            super::RecordError::Truncated {
                                needed: RECORD_HEADER_LEN,
                                available: 0,
                            },
                        ),
                    });
                }
            }
        }
    }

    /// Finds where record `from` starts by scanning its segment.
    fn seek(&self, from: u64) -> Result<(usize, u64, u64), LogError> {
        let position = self
            .segments
            .partition_point(|(first, _)| *first <= from)
            .saturating_sub(1);
        let (first, path) = &self.segments[position];
        let content = self.storage.read(path).map_err(|source| LogError::Io {
            file: path.clone(),
            source,
        })?;
        let mut offset = 0;
        let mut index = *first;
        while index < from {
            let (_, _, len) =
                decode_record(&content[offset..]).map_err(|problem| LogError::Corrupt {
                    file: path.clone(),
                    offset: offset as u64,
                    problem,
                })?;
            offset += len;
            index += 1;
        }
        Ok((position, from, offset as u64))
    }
}

impl fmt::Debug for LogReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogReader")
            .field("first", &self.first)
            .field("next", &self.next)
            .field("segments", &self.segments.len())
            .finish_non_exhaustive()
    }
}

/// The length of the record starting `bytes`, if its header is there.
fn whole_record_len(bytes: &[u8]) -> Option<usize> {
    let header = bytes.get(..4)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    Some(RECORD_HEADER_LEN + len.min(super::MAX_RECORD_LEN))
}
