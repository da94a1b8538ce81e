//! The checkpointer actor: drives a [`Checkpointer`] with a real snapshot store.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use phalanx_runtime::{Actor, Context, HandlerError, Reply};

use super::policy::{CheckpointPolicy, Checkpointer, PinId};
use super::snapshot::SnapshotStore;

/// A state captured for a snapshot: where it is, and how to turn it into bytes.
///
/// Capturing must be cheap (clone the state machine: the owner's writes pause only for
/// that); `serialize` runs later on a blocking thread, off every actor.
pub struct Captured {
    /// The last log index the state includes.
    pub index: u64,
    /// The configuration epoch.
    pub epoch: u64,
    /// Produces the snapshot body (for a chain: the encoded state and sessions).
    pub serialize: Box<dyn FnOnce() -> Vec<u8> + Send>,
}

impl fmt::Debug for Captured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Captured")
            .field("index", &self.index)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// What the checkpointer needs from the actor that owns the state and the log (the chain's
/// replica driver).
pub trait CheckpointOwner: Send + 'static {
    /// Captures the current applied state (cheaply; see [`Captured`]).
    fn capture(&mut self) -> impl Future<Output = Result<Captured, HandlerError>> + Send;
    /// Truncates the log below `below` ([`Log::truncate_prefix`](super::Log::truncate_prefix)).
    fn truncate_log(&mut self, below: u64)
    -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// A message to the [`CheckpointActor`].
#[derive(Debug)]
#[non_exhaustive]
pub enum CheckpointMessage {
    /// Entries up to `index` were appended, with `bytes` of payload (send with `try_tell`:
    /// losing one only delays the next snapshot).
    Appended {
        /// The newest index.
        index: u64,
        /// Payload bytes appended since the last such message.
        bytes: u64,
    },
    /// Check the policy now (the actor also ticks by itself).
    Tick,
    /// Take a snapshot now (if anything was appended since the last); replies with the
    /// index the newest snapshot covers afterwards.
    SnapshotNow(Reply<u64>),
    /// Keep the log from `index` on until unpinned (a catch-up starting).
    Pin {
        /// The first index the catch-up will send.
        index: u64,
        /// The pin, for [`Unpin`](Self::Unpin).
        reply: Reply<PinId>,
    },
    /// Release a pin.
    Unpin(PinId),
    /// Report the state.
    Status(Reply<CheckpointStatus>),
}

/// The checkpointer's state, as [`CheckpointMessage::Status`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointStatus {
    /// The index the newest durable snapshot covers.
    pub snapshot_index: u64,
    /// Snapshots written by this actor.
    pub snapshots_written: u64,
    /// The log was last truncated below this index.
    pub truncated_below: u64,
}

/// Takes snapshots as the [`CheckpointPolicy`] says, writes them to a [`SnapshotStore`] on a
/// blocking thread, then has the owner truncate its log.
///
/// A failed capture, write or truncation fails the actor (its supervisor restarts it; the
/// store is left consistent).
pub struct CheckpointActor<O> {
    core: Checkpointer,
    owner: O,
    store: SnapshotStore,
    tick: Duration,
    written: u64,
    truncated_below: u64,
}

impl<O: CheckpointOwner> CheckpointActor<O> {
    /// A checkpointer for `owner`'s state, writing to `store`, checking the policy every
    /// `tick`; `snapshot_index` and `log_first` describe what is on disk now.
    pub fn new(
        owner: O,
        store: SnapshotStore,
        policy: CheckpointPolicy,
        snapshot_index: u64,
        log_first: u64,
        tick: Duration,
    ) -> Self {
        Self {
            core: Checkpointer::new(policy, snapshot_index, log_first, Instant::now()),
            owner,
            store,
            tick,
            written: 0,
            truncated_below: log_first,
        }
    }

    async fn step(&mut self) -> Result<(), HandlerError> {
        if self.core.poll_snapshot(Instant::now()) {
            match self.snapshot().await {
                Ok(index) => {
                    self.written += 1;
                    self.core.handle_snapshot_written(index, Instant::now());
                }
                Err(error) => {
                    self.core.handle_snapshot_failed(Instant::now());
                    return Err(error);
                }
            }
        }
        if let Some(below) = self.core.poll_truncate() {
            self.owner.truncate_log(below).await?;
            self.truncated_below = below;
        }
        Ok(())
    }

    async fn snapshot(&mut self) -> Result<u64, HandlerError> {
        let captured = self.owner.capture().await?;
        let store = self.store.clone();
        let (index, epoch) = (captured.index, captured.epoch);
        phalanx_runtime::spawn_blocking(move || {
            let body = (captured.serialize)();
            store.write(index, epoch, &body)
        })
        .await?;
        Ok(index)
    }
}

impl<O> fmt::Debug for CheckpointActor<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointActor")
            .field("core", &self.core)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl<O: CheckpointOwner> Actor for CheckpointActor<O> {
    type Message = CheckpointMessage;

    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), HandlerError> {
        let me = ctx.myself();
        let tick = self.tick;
        phalanx_runtime::spawn(async move {
            let mut ticks = phalanx_runtime::interval(tick);
            // Ends when the actor is gone (its mailbox closed); a full mailbox skips a tick.
            while ticks.next().await.is_some() {
                if let Err(phalanx_runtime::TrySendError::Closed(_)) =
                    me.try_tell(CheckpointMessage::Tick)
                {
                    break;
                }
            }
        })
        .detach();
        Ok(())
    }

    async fn handle(
        &mut self,
        _: &mut Context<Self>,
        msg: CheckpointMessage,
    ) -> Result<(), HandlerError> {
        match msg {
            CheckpointMessage::Appended { index, bytes } => {
                self.core.handle_appended(index, bytes);
                self.step().await
            }
            CheckpointMessage::Tick => self.step().await,
            CheckpointMessage::SnapshotNow(reply) => {
                self.core.request_snapshot();
                let result = self.step().await;
                let _ = reply.send(self.core.snapshot_index());
                result
            }
            CheckpointMessage::Pin { index, reply } => {
                let _ = reply.send(self.core.pin(index));
                Ok(())
            }
            CheckpointMessage::Unpin(pin) => {
                self.core.unpin(pin);
                self.step().await
            }
            CheckpointMessage::Status(reply) => {
                let _ = reply.send(CheckpointStatus {
                    snapshot_index: self.core.snapshot_index(),
                    snapshots_written: self.written,
                    truncated_below: self.truncated_below,
                });
                Ok(())
            }
        }
    }
}
