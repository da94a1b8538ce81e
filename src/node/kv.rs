//! [`Kv`]: the replicated key-value map of a node's chain, as a cheap handle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use phalanx_actors::chain::driver::{ClientError, ClientInput};
use phalanx_actors::chain::{KvCommand, KvMap, KvOutput, KvQuery};
use phalanx_runtime::{ActorRef, AskError, Reply};

/// The chain's key-value map, through this node's chain client.
///
/// With several shards ([`NodeConfig::chain_shards`](super::NodeConfig::chain_shards)) each
/// key lives in the chain of its shard ([`shard_of`](super::shard_of)), through that shard's
/// client; the guarantees below hold per key (operations on keys of different shards are not
/// ordered with each other beyond real time, which linearizability per key already implies).
///
/// Writes go to the chain's head and reads to any replica (CRAQ); both are linearizable. A
/// write is retried with its request id until answered, so it is applied at most once, and
/// exactly once when it returns `Ok`. Cloning is cheap; all clones share the node's client,
/// and concurrent calls are pipelined.
///
/// # Examples
///
/// ```no_run
/// # async fn _demo(node: &phalanx::node::Node) -> Result<(), phalanx::node::KvError> {
/// let kv = node.kv();
/// kv.put("greeting", "hello").await?;
/// assert_eq!(kv.get("greeting").await?, Some(b"hello".to_vec()));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Kv {
    /// The local registry names of the node's client actors, by shard (`None`: chains
    /// disabled).
    clients: Option<Arc<[String]>>,
    /// The node's id, the label of its write-latency histogram.
    node: String,
    /// How long to wait for the client beyond its own deadline.
    timeout: Duration,
}

/// A key-value operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// This node runs no chain services (no `--chain-group`). Nothing was sent.
    #[error("chains are not enabled on this node (start it with --chain-group)")]
    Disabled,
    /// The node's chain client is not running (restarting, or the node stopped).
    #[error("the node's chain client is not running")]
    Stopped,
    /// No answer in time: a write may or may not have been applied (at most once).
    #[error("no answer from the chain in time (a write may or may not have been applied)")]
    Timeout,
    /// No chain is configured yet: the configuration group is unreachable or no replica has
    /// joined. Nothing was applied.
    #[error("no chain is configured yet (is a majority of the configuration group up?)")]
    NoChain,
    /// Too many requests outstanding on this node's client; nothing was sent.
    #[error("too many requests outstanding; try again")]
    Overloaded,
}

impl Kv {
    pub(crate) fn new(clients: Option<Vec<String>>, node: String) -> Kv {
        Kv {
            clients: clients.filter(|c| !c.is_empty()).map(Arc::from),
            node,
            timeout: Duration::from_secs(7),
        }
    }

    /// Sets `key` to `value`.
    ///
    /// # Errors
    ///
    /// [`KvError`]; after [`KvError::Timeout`] the write may or may not have been applied.
    pub async fn put(
        &self,
        key: impl Into<String>,
        value: impl Into<Vec<u8>>,
    ) -> Result<(), KvError> {
        let key = key.into();
        let shard = self.shard(&key);
        let command = KvCommand::Put {
            key,
            value: value.into(),
        };
        self.write(shard, command).await.map(|_| ())
    }

    /// Removes `key` (whether or not it was there).
    ///
    /// # Errors
    ///
    /// [`KvError`]; after [`KvError::Timeout`] the delete may or may not have been applied.
    pub async fn delete(&self, key: impl Into<String>) -> Result<(), KvError> {
        let key = key.into();
        let shard = self.shard(&key);
        let command = KvCommand::Delete { key };
        self.write(shard, command).await.map(|_| ())
    }

    /// Sets `key` to `new` (or removes it, for `None`) if its value is `expected` (`None`:
    /// absent). Returns whether it matched and was applied.
    ///
    /// # Errors
    ///
    /// [`KvError`]; after [`KvError::Timeout`] it may or may not have been applied.
    pub async fn compare_and_set(
        &self,
        key: impl Into<String>,
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    ) -> Result<bool, KvError> {
        let key = key.into();
        let shard = self.shard(&key);
        let command = KvCommand::CompareAndSet { key, expected, new };
        match self.write(shard, command).await? {
            KvOutput::Swapped(swapped) => Ok(swapped),
            _ => Ok(false),
        }
    }

    /// The value of `key`, if it has one.
    ///
    /// # Errors
    ///
    /// [`KvError`].
    pub async fn get(&self, key: impl Into<String>) -> Result<Option<Vec<u8>>, KvError> {
        let key = key.into();
        let shard = self.shard(&key);
        let query = KvQuery { key };
        self.ask(shard, |reply| ClientInput::Read(query, reply))
            .await
    }

    /// The shard of `key` among this node's shards.
    fn shard(&self, key: &str) -> usize {
        let shards = self.clients.as_ref().map_or(1, |c| c.len());
        // `shard_of` is below `shards`, which is at most a u32.
        super::shard_of(key, u32::try_from(shards).unwrap_or(u32::MAX)) as usize
    }

    async fn write(&self, shard: usize, command: KvCommand) -> Result<KvOutput, KvError> {
        let started = Instant::now();
        let output = self
            .ask(shard, |reply| ClientInput::Write(command, reply))
            .await?;
        // Acknowledged writes only: a failed write has no latency to speak of.
        metrics::histogram!(crate::metrics::CHAIN_WRITE_SECONDS, "node" => self.node.clone())
            .record(started.elapsed().as_secs_f64());
        Ok(output)
    }

    async fn ask<R: Send + 'static>(
        &self,
        shard: usize,
        request: impl FnOnce(Reply<Result<R, ClientError>>) -> ClientInput<KvMap>,
    ) -> Result<R, KvError> {
        let clients = self.clients.as_ref().ok_or(KvError::Disabled)?;
        let name = clients.get(shard).ok_or(KvError::Disabled)?;
        let client = client_actor(name).await.ok_or(KvError::Stopped)?;
        match client.ask(request, self.timeout).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(ClientError::NoChain)) => Err(KvError::NoChain),
            Ok(Err(ClientError::Overloaded)) => Err(KvError::Overloaded),
            Ok(Err(_)) | Err(AskError::Timeout) => Err(KvError::Timeout),
            Err(_) => Err(KvError::Stopped),
        }
    }
}

/// The node's client actor. Right after the node starts, or while the supervisor restarts
/// it, it may not be registered yet: wait a little (bounded) before giving up.
async fn client_actor(name: &str) -> Option<ActorRef<ClientInput<KvMap>>> {
    for _ in 0..50 {
        if let Some(client) = phalanx_runtime::registry::whereis(name) {
            return Some(client);
        }
        phalanx_runtime::sleep(Duration::from_millis(10)).await;
    }
    None
}
