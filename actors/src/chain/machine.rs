//! The replicated state machine trait and the key-value map that ships as its default.

use std::collections::BTreeMap;
use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A deterministic state machine replicated by a chain.
///
/// Every replica applies the same commands in the same order, so `apply` must be a pure
/// function of the state and the command. Commands and queries name the object they touch
/// ([`command_key`](Self::command_key), [`query_key`](Self::query_key)): CRAQ tracks
/// dirtiness per object, so a read of an object without uncommitted writes is served by any
/// replica.
pub trait StateMachine: Clone + Debug + Default {
    /// The object a command or query touches.
    type Key: Clone + Ord + Debug + Serialize + DeserializeOwned;
    /// A write.
    type Command: Clone + Debug + PartialEq + Serialize + DeserializeOwned;
    /// What applying a write returns to its client.
    type Output: Clone + Debug + PartialEq + Serialize + DeserializeOwned;
    /// A read.
    type Query: Clone + Debug + PartialEq + Serialize + DeserializeOwned;
    /// What a read returns.
    type Reply: Clone + Debug + PartialEq + Serialize + DeserializeOwned;

    /// The object `command` writes.
    fn command_key(command: &Self::Command) -> Self::Key;
    /// The object `query` reads.
    fn query_key(query: &Self::Query) -> Self::Key;
    /// Applies a committed write.
    fn apply(&mut self, command: &Self::Command) -> Self::Output;
    /// Answers a read from the committed state.
    fn read(&self, query: &Self::Query) -> Self::Reply;
    /// The whole state, as bytes.
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the state with a [`snapshot`](Self::snapshot).
    ///
    /// # Errors
    ///
    /// [`RestoreError`] if the bytes are not a snapshot; the state is then unchanged.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), RestoreError>;
}

/// A snapshot could not be restored; the state machine is unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// The bytes do not decode as a snapshot of this state machine.
    #[error("snapshot does not decode")]
    Decode(#[from] postcard::Error),
}

/// A write to a [`KvMap`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KvCommand {
    /// Sets `key` to `value`.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: Vec<u8>,
    },
    /// Removes `key`.
    Delete {
        /// The key.
        key: String,
    },
    /// Sets `key` to `new` (or removes it if `new` is `None`) if its value is `expected`
    /// (`None`: absent).
    CompareAndSet {
        /// The key.
        key: String,
        /// The value the key must have.
        expected: Option<Vec<u8>>,
        /// The value to set.
        new: Option<Vec<u8>>,
    },
}

/// What a [`KvCommand`] returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KvOutput {
    /// A put or delete was applied.
    Done,
    /// A compare-and-set: whether it matched (and so was applied).
    Swapped(bool),
}

/// A read of a [`KvMap`]: the value of one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvQuery {
    /// The key.
    pub key: String,
}

/// The default replicated state machine: an ordered map from strings to bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvMap {
    entries: BTreeMap<String, Vec<u8>>,
}

impl KvMap {
    /// The number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl StateMachine for KvMap {
    type Key = String;
    type Command = KvCommand;
    type Output = KvOutput;
    type Query = KvQuery;
    type Reply = Option<Vec<u8>>;

    fn command_key(command: &KvCommand) -> String {
        match command {
            KvCommand::Put { key, .. }
            | KvCommand::Delete { key }
            | KvCommand::CompareAndSet { key, .. } => key.clone(),
        }
    }

    fn query_key(query: &KvQuery) -> String {
        query.key.clone()
    }

    fn apply(&mut self, command: &KvCommand) -> KvOutput {
        match command {
            KvCommand::Put { key, value } => {
                self.entries.insert(key.clone(), value.clone());
                KvOutput::Done
            }
            KvCommand::Delete { key } => {
                self.entries.remove(key);
                KvOutput::Done
            }
            KvCommand::CompareAndSet { key, expected, new } => {
                if self.entries.get(key) != expected.as_ref() {
                    return KvOutput::Swapped(false);
                }
                match new {
                    Some(value) => self.entries.insert(key.clone(), value.clone()),
                    None => self.entries.remove(key),
                };
                KvOutput::Swapped(true)
            }
        }
    }

    fn read(&self, query: &KvQuery) -> Option<Vec<u8>> {
        self.entries.get(&query.key).cloned()
    }

    fn snapshot(&self) -> Vec<u8> {
        // Serialising a map of strings and byte strings cannot fail.
        postcard::to_allocvec(&SnapshotOf(&self.entries)).unwrap_or_default()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), RestoreError> {
        let entries: BTreeMap<String, Value> = postcard::from_bytes(snapshot)?;
        self.entries = entries.into_iter().map(|(k, v)| (k, v.0)).collect();
        Ok(())
    }
}

/// A [`KvMap`]'s entries with their values as byte strings: the same bytes postcard writes
/// for a map of byte vectors, but each value is written and read as one piece rather than
/// one byte at a time.
struct SnapshotOf<'a>(&'a BTreeMap<String, Vec<u8>>);

impl Serialize for SnapshotOf<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(key, value)| (key, ValueRef(value))))
    }
}

struct ValueRef<'a>(&'a [u8]);

impl Serialize for ValueRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

#[derive(Deserialize)]
struct Value(#[serde(with = "super::message::byte_buf")] Vec<u8>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_operations_and_snapshot_round_trip() {
        let mut map = KvMap::default();
        let put = |value: &[u8]| KvCommand::Put {
            key: "k".into(),
            value: value.to_vec(),
        };
        assert_eq!(map.apply(&put(b"1")), KvOutput::Done);
        let cas = KvCommand::CompareAndSet {
            key: "k".into(),
            expected: Some(b"1".to_vec()),
            new: Some(b"2".to_vec()),
        };
        assert_eq!(map.apply(&cas), KvOutput::Swapped(true));
        assert_eq!(map.apply(&cas), KvOutput::Swapped(false));
        let query = KvQuery { key: "k".into() };
        assert_eq!(map.read(&query), Some(b"2".to_vec()));
        let mut copy = KvMap::default();
        copy.restore(&map.snapshot()).unwrap();
        assert_eq!(copy, map);
        map.apply(&KvCommand::Delete { key: "k".into() });
        assert_eq!(map.read(&query), None);
        assert!(copy.restore(&[0xff, 0xff, 0xff]).is_err());
    }
}
