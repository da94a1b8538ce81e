//! The state machine the simulation replicates: a [`KvMap`] that also records which writes
//! it applied, so that lost acknowledged writes can be counted.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::chain::machine::{KvCommand, KvMap, KvOutput, KvQuery, RestoreError, StateMachine};

/// A [`KvCommand`] tagged with the id of the write that carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaggedCommand {
    /// `(client, request)`.
    pub id: (u64, u64),
    /// The write.
    pub command: KvCommand,
}

/// A [`KvMap`] plus the set of write ids applied to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingKv {
    /// The map.
    pub map: KvMap,
    /// Every write applied, by `(client, request)`.
    pub applied: BTreeSet<(u64, u64)>,
}

impl StateMachine for RecordingKv {
    type Key = String;
    type Command = TaggedCommand;
    type Output = KvOutput;
    type Query = KvQuery;
    type Reply = Option<Vec<u8>>;

    fn command_key(command: &TaggedCommand) -> String {
        KvMap::command_key(&command.command)
    }

    fn query_key(query: &KvQuery) -> String {
        KvMap::query_key(query)
    }

    fn apply(&mut self, command: &TaggedCommand) -> KvOutput {
        // The chain's session table must make this the only application of this id.
        assert!(
            self.applied.insert(command.id),
            "write {:?} applied twice",
            command.id
        );
        self.map.apply(&command.command)
    }

    fn read(&self, query: &KvQuery) -> Option<Vec<u8>> {
        self.map.read(query)
    }

    fn snapshot(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), RestoreError> {
        *self = postcard::from_bytes(snapshot)?;
        Ok(())
    }
}
