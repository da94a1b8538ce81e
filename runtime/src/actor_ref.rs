//! [`ActorRef`]: the typed, cloneable handle to send an actor messages.

use std::fmt;
use std::time::{Duration, Instant};

use crate::ask::{Outcome, reply_pair};
use crate::{ActorId, Addr, AskError, ExitReason, Reply, SendError, TrySendError};

/// A typed reference to an actor whose messages are `M`.
///
/// Cheap to clone; `Send` and `Sync`. Messages from one sender arrive in the order sent.
pub struct ActorRef<M> {
    addr: Addr,
    mailbox: flume::Sender<M>,
}

impl<M: Send + 'static> ActorRef<M> {
    pub(crate) fn new(addr: Addr, mailbox: flume::Sender<M>) -> Self {
        Self { addr, mailbox }
    }

    /// The actor's id.
    pub fn id(&self) -> ActorId {
        self.addr.id()
    }

    /// The untyped reference, for stopping, monitoring and linking.
    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// Sends a message, waiting for room if the mailbox is full.
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] with the message if the actor has ended.
    ///
    /// # Cancel safety
    ///
    /// If cancelled while waiting for room, the message is dropped undelivered.
    pub async fn tell(&self, msg: M) -> Result<(), SendError<M>> {
        let sent = match self.mailbox.try_send(msg) {
            Ok(()) => Ok(()),
            Err(flume::TrySendError::Disconnected(msg)) => Err(SendError::Closed(msg)),
            Err(flume::TrySendError::Full(msg)) => self
                .mailbox
                .send_async(msg)
                .await
                .map_err(|error| SendError::Closed(error.into_inner())),
        };
        self.addr.cell.waker.wake();
        sent
    }

    /// Sends a message if there is room right now.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] or [`TrySendError::Closed`], with the message.
    pub fn try_tell(&self, msg: M) -> Result<(), TrySendError<M>> {
        match self.mailbox.try_send(msg) {
            Ok(()) => {
                self.addr.cell.waker.wake();
                Ok(())
            }
            Err(flume::TrySendError::Full(msg)) => Err(TrySendError::Full(msg)),
            Err(flume::TrySendError::Disconnected(msg)) => Err(TrySendError::Closed(msg)),
        }
    }

    /// Sends a request built around a [`Reply`] and waits up to `timeout` for the answer.
    ///
    /// # Errors
    ///
    /// - [`AskError::Closed`] with the request if the actor had ended;
    /// - [`AskError::NoReply`] if the actor ended or dropped the reply without answering;
    /// - [`AskError::Timeout`] if no answer came in time.
    ///
    /// # Examples
    ///
    /// See [`Actor`](crate::Actor).
    pub async fn ask<R, F>(&self, request: F, timeout: Duration) -> Result<R, AskError<M>>
    where
        R: Send + 'static,
        F: FnOnce(Reply<R>) -> M,
    {
        let deadline = Instant::now() + timeout;
        let runtime = match self.addr.cell.runtime.upgrade() {
            Some(runtime) => runtime,
            None => crate::executor::current(),
        };
        let (reply, wait) = reply_pair(&runtime);
        drop(runtime);
        let msg = request(reply);
        match self.mailbox.try_send(msg) {
            Ok(()) => {}
            Err(flume::TrySendError::Disconnected(msg)) => return Err(AskError::Closed(msg)),
            Err(flume::TrySendError::Full(msg)) => {
                self.addr.cell.waker.wake();
                match crate::timer::timeout_at(deadline, self.mailbox.send_async(msg)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => return Err(AskError::Closed(error.into_inner())),
                    Err(_) => return Err(AskError::Timeout),
                }
            }
        }
        self.addr.cell.waker.wake();
        match wait(deadline).outcome().await {
            Outcome::Answered(value) => Ok(value),
            Outcome::NoReply => Err(AskError::NoReply),
            Outcome::TimedOut => Err(AskError::Timeout),
        }
    }

    /// Asks the actor to stop gracefully; see [`Addr::stop`].
    pub fn stop(&self) {
        self.addr.stop();
    }

    /// Kills the actor; see [`Addr::kill`].
    pub fn kill(&self) {
        self.addr.kill();
    }

    /// Waits until the actor has ended; see [`Addr::wait`].
    pub async fn wait(&self) -> ExitReason {
        self.addr.wait().await
    }

    /// Whether the actor has not ended yet.
    pub fn is_alive(&self) -> bool {
        self.addr.is_alive()
    }

    /// How many messages wait in the mailbox.
    pub fn mailbox_len(&self) -> usize {
        self.mailbox.len()
    }
}

impl<M> Clone for ActorRef<M> {
    fn clone(&self) -> Self {
        Self {
            addr: self.addr.clone(),
            mailbox: self.mailbox.clone(),
        }
    }
}

impl<M> fmt::Debug for ActorRef<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ActorRef").field(&self.addr.id()).finish()
    }
}

impl<M> PartialEq for ActorRef<M> {
    fn eq(&self, other: &Self) -> bool {
        self.addr == other.addr
    }
}

impl<M> Eq for ActorRef<M> {}
