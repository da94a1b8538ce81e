//! Typed errors of the runtime's operations.

use std::fmt;

/// [`ActorRef::tell`](crate::ActorRef::tell) could not deliver the message: the actor has ended.
///
/// The undelivered message comes back to the caller.
#[derive(thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError<M> {
    /// The actor has ended; its mailbox is closed. Nothing was delivered.
    #[error("the actor has ended; the message was not delivered")]
    Closed(M),
}

impl<M> SendError<M> {
    /// Takes back the message that was not delivered.
    pub fn into_inner(self) -> M {
        match self {
            Self::Closed(message) => message,
        }
    }
}

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

/// [`ActorRef::try_tell`](crate::ActorRef::try_tell) could not deliver the message.
///
/// The undelivered message comes back to the caller.
#[derive(thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrySendError<M> {
    /// The mailbox is full. Nothing was delivered; try again later or use `tell`.
    #[error("the actor's mailbox is full; the message was not delivered")]
    Full(M),
    /// The actor has ended; its mailbox is closed. Nothing was delivered.
    #[error("the actor has ended; the message was not delivered")]
    Closed(M),
}

impl<M> TrySendError<M> {
    /// Takes back the message that was not delivered.
    pub fn into_inner(self) -> M {
        match self {
            Self::Full(message) | Self::Closed(message) => message,
        }
    }
}

impl<M> fmt::Debug for TrySendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

/// [`ActorRef::ask`](crate::ActorRef::ask) got no answer.
#[derive(thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AskError<M> {
    /// The actor had ended before the request was delivered; the request comes back.
    #[error("the actor has ended; the request was not delivered")]
    Closed(M),
    /// No answer came within the timeout. The request may or may not have been handled; if
    /// the mailbox was full for the whole timeout it was dropped undelivered.
    #[error("no answer within the timeout")]
    Timeout,
    /// The request was delivered, but the actor ended or dropped the [`Reply`](crate::Reply)
    /// without answering.
    #[error("the actor ended or dropped the request without answering")]
    NoReply,
}

impl<M> fmt::Debug for AskError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed(_) => f.write_str("Closed(..)"),
            Self::Timeout => f.write_str("Timeout"),
            Self::NoReply => f.write_str("NoReply"),
        }
    }
}

/// An actor could not be started.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpawnError {
    /// Another live actor is registered under this name. Nothing was started.
    #[error("the name {0:?} is already registered")]
    NameTaken(String),
    /// The runtime is shutting down and accepts no new actors. Nothing was started.
    #[error("the runtime is shutting down")]
    ShutDown,
}

/// [`Runtime::shutdown`](crate::Runtime::shutdown) did not end every actor in an orderly way.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShutdownError {
    /// Some actors did not stop before the deadline and were killed.
    #[error("{killed} actor(s) did not stop before the deadline and were killed")]
    DeadlineExceeded {
        /// How many actors were killed.
        killed: usize,
    },
}

/// A future did not complete within its [`timeout`](crate::timeout).
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
#[error("timed out")]
pub struct Elapsed(pub(crate) ());
