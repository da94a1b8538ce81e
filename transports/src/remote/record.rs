//! Records: what a batch (one frame payload) of the remoting layer is made of.
//!
//! ```text
//! record := kind u8, then
//!   1 Tell           target u64, len u32, body      a message, no Reply inside
//!   2 TellWithReply  target u64, len u32, body      a message with Reply ids inside
//!   3 Answer         reply u64,  len u32, body      the answer to an exported Reply
//!   4 NoAnswer       reply u64                      that Reply was dropped unanswered
//!   5 Control        len u32, body                  postcard `Control` message
//! ```
//!
//! Integers are little-endian and fixed-width: decoding is a few bounds-checked loads. Bodies
//! borrow from the payload, so reading a batch allocates nothing.

/// One decoded record, borrowing its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    Tell {
        target: u64,
        replies: bool,
        body: &'a [u8],
    },
    Answer {
        reply: u64,
        body: &'a [u8],
    },
    NoAnswer {
        reply: u64,
    },
    Control {
        body: &'a [u8],
    },
}

/// A batch did not parse; the rest of it is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed record at byte {at}")]
pub(crate) struct MalformedRecord {
    pub(crate) at: usize,
}

pub(crate) const TELL: u8 = 1;
pub(crate) const TELL_WITH_REPLY: u8 = 2;
const ANSWER: u8 = 3;
const NO_ANSWER: u8 = 4;
const CONTROL: u8 = 5;

/// Appends a record header whose length is patched by [`finish`] once the body is written;
/// returns where the length goes.
pub(crate) fn begin_tell(buf: &mut Vec<u8>, target: u64) -> usize {
    buf.push(TELL);
    buf.extend_from_slice(&target.to_le_bytes());
    let at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    at
}

/// Patches the body length written after [`begin_tell`], and the kind if the body carries
/// reply ids. `false` if the body is too long for the length field.
pub(crate) fn finish(buf: &mut [u8], len_at: usize, replies: bool) -> bool {
    let body = buf.len() - len_at - 4;
    let Ok(len) = u32::try_from(body) else {
        return false;
    };
    buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
    if replies {
        buf[len_at - 9] = TELL_WITH_REPLY;
    }
    true
}

pub(crate) fn answer(buf: &mut Vec<u8>, reply: u64, body: &[u8]) {
    buf.push(ANSWER);
    buf.extend_from_slice(&reply.to_le_bytes());
    push_body(buf, body);
}

pub(crate) fn no_answer(buf: &mut Vec<u8>, reply: u64) {
    buf.push(NO_ANSWER);
    buf.extend_from_slice(&reply.to_le_bytes());
}

pub(crate) fn control(buf: &mut Vec<u8>, body: &[u8]) {
    buf.push(CONTROL);
    push_body(buf, body);
}

fn push_body(buf: &mut Vec<u8>, body: &[u8]) {
    // Bodies come from this node's own encoders and are far below 4 GiB (frames are smaller).
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(body);
}

/// Iterates over the records of a batch; stops at the first malformed one.
#[derive(Debug)]
pub(crate) struct Records<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Records<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Records<'a> {
        Records { bytes, at: 0 }
    }

    fn u64(&mut self) -> Option<u64> {
        let bytes = self.bytes.get(self.at..self.at + 8)?;
        self.at += 8;
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }

    fn body(&mut self) -> Option<&'a [u8]> {
        let bytes = self.bytes.get(self.at..self.at + 4)?;
        let len = u32::from_le_bytes(bytes.try_into().ok()?) as usize;
        let body = self
            .bytes
            .get(self.at + 4..(self.at + 4).checked_add(len)?)?;
        self.at += 4 + len;
        Some(body)
    }

    fn record(&mut self) -> Option<Record<'a>> {
        let kind = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(match kind {
            TELL | TELL_WITH_REPLY => Record::Tell {
                target: self.u64()?,
                body: self.body()?,
                replies: kind == TELL_WITH_REPLY,
            },
            ANSWER => Record::Answer {
                reply: self.u64()?,
                body: self.body()?,
            },
            NO_ANSWER => Record::NoAnswer { reply: self.u64()? },
            CONTROL => Record::Control { body: self.body()? },
            _ => return None,
        })
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, MalformedRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.bytes.len() {
            return None;
        }
        let start = self.at;
        match self.record() {
            Some(record) => Some(Ok(record)),
            None => {
                self.at = self.bytes.len();
                Some(Err(MalformedRecord { at: start }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn encode(records: &[Record<'_>]) -> Vec<u8> {
        let mut buf = Vec::new();
        for record in records {
            match *record {
                Record::Tell {
                    target,
                    replies,
                    body,
                } => {
                    let at = begin_tell(&mut buf, target);
                    buf.extend_from_slice(body);
                    assert!(finish(&mut buf, at, replies));
                }
                Record::Answer { reply, body } => answer(&mut buf, reply, body),
                Record::NoAnswer { reply } => no_answer(&mut buf, reply),
                Record::Control { body } => control(&mut buf, body),
            }
        }
        buf
    }

    fn record() -> impl Strategy<Value = (u8, u64, bool, Vec<u8>)> {
        (
            0u8..4,
            any::<u64>(),
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..40),
        )
    }

    fn to_record((kind, n, flag, body): &(u8, u64, bool, Vec<u8>)) -> Record<'_> {
        match kind {
            0 => Record::Tell {
                target: *n,
                replies: *flag,
                body,
            },
            1 => Record::Answer { reply: *n, body },
            2 => Record::NoAnswer { reply: *n },
            _ => Record::Control { body },
        }
    }

    proptest! {
        #[test]
        fn batches_round_trip(raw in proptest::collection::vec(record(), 0..20)) {
            let records: Vec<Record<'_>> = raw.iter().map(to_record).collect();
            let bytes = encode(&records);
            let decoded: Vec<Record<'_>> = Records::new(&bytes).map(Result::unwrap).collect();
            prop_assert_eq!(decoded, records);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut seen = 0;
            for record in Records::new(&bytes) {
                seen += 1;
                prop_assert!(seen <= bytes.len());
                if record.is_err() { break; }
            }
        }
    }

    #[test]
    fn truncation_is_malformed() {
        let bytes = encode(&[Record::Answer {
            reply: 1,
            body: b"hello",
        }]);
        for cut in 1..bytes.len() {
            let mut records = Records::new(&bytes[..cut]);
            assert_eq!(records.next(), Some(Err(MalformedRecord { at: 0 })));
            assert_eq!(records.next(), None);
        }
    }

    #[test]
    fn fuzz_records() {
        bolero::check!()
            .with_iterations(2_000)
            .for_each(|bytes: &[u8]| {
                for record in Records::new(bytes) {
                    if record.is_err() {
                        break;
                    }
                }
            });
    }
}
