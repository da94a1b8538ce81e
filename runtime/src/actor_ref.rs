//! [`ActorRef`]: the typed, cloneable handle to send an actor messages, local or remote.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ask::{Outcome, reply_pair};
use crate::remote::RemoteRoute;
use crate::{ActorId, Addr, AskError, ExitReason, Reply, SendError, TrySendError};

/// A typed reference to an actor whose messages are `M`.
///
/// Cheap to clone; `Send` and `Sync`. Messages from one sender arrive in the order sent. The
/// same type names actors on other nodes (see [`remote`](crate::remote)): `tell`, `try_tell`
/// and `ask` work the same way.
pub struct ActorRef<M> {
    addr: Addr,
    route: Route<M>,
}

enum Route<M> {
    Local(flume::Sender<M>),
    Remote(Arc<dyn RemoteRoute<M>>),
}

impl<M: Send + 'static> ActorRef<M> {
    pub(crate) fn new(addr: Addr, mailbox: flume::Sender<M>) -> Self {
        Self {
            addr,
            route: Route::Local(mailbox),
        }
    }

    /// A reference that delivers through `route` to an actor on another node, whose local
    /// stand-in is `proxy` (see [`remote::proxy`](crate::remote::proxy)).
    pub fn remote(proxy: Addr, route: Arc<dyn RemoteRoute<M>>) -> Self {
        Self {
            addr: proxy,
            route: Route::Remote(route),
        }
    }

    /// The actor's id (for a remote actor, the id of its local stand-in).
    pub fn id(&self) -> ActorId {
        self.addr.id()
    }

    /// The untyped reference, for stopping, monitoring and linking.
    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// Whether the actor lives on another node.
    pub fn is_remote(&self) -> bool {
        matches!(self.route, Route::Remote(_))
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
        match &self.route {
            Route::Local(mailbox) => {
                let sent = match mailbox.try_send(msg) {
                    Ok(()) => Ok(()),
                    Err(flume::TrySendError::Disconnected(msg)) => Err(SendError::Closed(msg)),
                    Err(flume::TrySendError::Full(msg)) => mailbox
                        .send_async(msg)
                        .await
                        .map_err(|error| SendError::Closed(error.into_inner())),
                };
                self.addr.cell.waker.wake();
                sent
            }
            Route::Remote(route) => route.send(msg).await,
        }
    }

    /// Sends a message if there is room right now.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] or [`TrySendError::Closed`], with the message.
    pub fn try_tell(&self, msg: M) -> Result<(), TrySendError<M>> {
        match &self.route {
            Route::Local(mailbox) => match mailbox.try_send(msg) {
                Ok(()) => {
                    self.addr.cell.waker.wake();
                    Ok(())
                }
                Err(flume::TrySendError::Full(msg)) => Err(TrySendError::Full(msg)),
                Err(flume::TrySendError::Disconnected(msg)) => Err(TrySendError::Closed(msg)),
            },
            Route::Remote(route) => route.try_send(msg),
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
        let sent = match self.try_tell(msg) {
            Ok(()) => Ok(()),
            Err(TrySendError::Closed(msg)) => Err(AskError::Closed(msg)),
            Err(TrySendError::Full(msg)) => {
                match crate::timer::timeout_at(deadline, self.tell(msg)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(SendError::Closed(msg))) => Err(AskError::Closed(msg)),
                    Err(_) => Err(AskError::Timeout),
                }
            }
        };
        sent?;
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

    /// Whether the actor has not ended yet (as far as this node knows, for a remote one).
    pub fn is_alive(&self) -> bool {
        self.addr.is_alive()
    }

    /// How many messages wait in the mailbox (0 for a remote actor: not known here).
    pub fn mailbox_len(&self) -> usize {
        match &self.route {
            Route::Local(mailbox) => mailbox.len(),
            Route::Remote(_) => 0,
        }
    }
}

impl<M> Clone for ActorRef<M> {
    fn clone(&self) -> Self {
        let route = match &self.route {
            Route::Local(mailbox) => Route::Local(mailbox.clone()),
            Route::Remote(route) => Route::Remote(route.clone()),
        };
        Self {
            addr: self.addr.clone(),
            route,
        }
    }
}

impl<M> fmt::Debug for ActorRef<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut tuple = f.debug_tuple("ActorRef");
        tuple.field(&self.addr.id());
        if matches!(self.route, Route::Remote(_)) {
            tuple.field(&"remote");
        }
        tuple.finish()
    }
}

impl<M> PartialEq for ActorRef<M> {
    fn eq(&self, other: &Self) -> bool {
        self.addr == other.addr
    }
}

impl<M> Eq for ActorRef<M> {}
