//! Deserializers that refuse to allocate more than a fixed bound, whatever a peer claims.
//!
//! serde's own `Vec` deserializer trusts the length prefix up to a cautious size hint; these
//! check the claimed length against the protocol's limit before taking anything and never
//! reserve more than a small, fixed capacity up front.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};

/// The most elements reserved before any has been read: a peer's length prefix alone never
/// makes us allocate more than this.
const MAX_PREALLOCATED: usize = 64;

/// Deserializes a sequence of at most `MAX` elements.
pub(crate) fn vec<'de, D, T, const MAX: usize>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_seq(BoundedVec::<T, MAX>(PhantomData))
}

/// Deserializes a UTF-8 string of at most `MAX` bytes.
pub(crate) fn string<'de, D, const MAX: usize>(deserializer: D) -> Result<String, D::Error>
where
    D: Deserializer<'de>,
{
    deserializer.deserialize_str(BoundedString::<MAX>)
}

/// Deserializes a byte string of at most `MAX` bytes.
pub(crate) fn bytes<'de, D, const MAX: usize>(deserializer: D) -> Result<Vec<u8>, D::Error>
where
    D: Deserializer<'de>,
{
    deserializer.deserialize_bytes(BoundedBytes::<MAX>)
}

struct BoundedVec<T, const MAX: usize>(PhantomData<T>);

impl<'de, T, const MAX: usize> Visitor<'de> for BoundedVec<T, MAX>
where
    T: Deserialize<'de>,
{
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a sequence of at most {MAX} elements")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        let claimed = seq.size_hint().unwrap_or(0);
        if claimed > MAX {
            return Err(de::Error::invalid_length(claimed, &self));
        }
        let mut out = Vec::with_capacity(claimed.min(MAX_PREALLOCATED));
        while let Some(item) = seq.next_element()? {
            if out.len() == MAX {
                return Err(de::Error::invalid_length(MAX + 1, &self));
            }
            out.push(item);
        }
        Ok(out)
    }
}

struct BoundedString<const MAX: usize>;

impl<const MAX: usize> Visitor<'_> for BoundedString<MAX> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a string of at most {MAX} bytes")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        if value.len() > MAX {
            return Err(E::invalid_length(value.len(), &self));
        }
        Ok(value.to_owned())
    }
}

struct BoundedBytes<const MAX: usize>;

impl<'de, const MAX: usize> Visitor<'de> for BoundedBytes<MAX> {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a byte string of at most {MAX} bytes")
    }

    fn visit_bytes<E: de::Error>(self, value: &[u8]) -> Result<Self::Value, E> {
        if value.len() > MAX {
            return Err(E::invalid_length(value.len(), &self));
        }
        Ok(value.to_vec())
    }

    fn visit_seq<S: SeqAccess<'de>>(self, seq: S) -> Result<Self::Value, S::Error> {
        BoundedVec::<u8, MAX>(PhantomData).visit_seq(seq)
    }
}
