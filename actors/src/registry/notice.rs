//! What merges report, and what local operations refuse.

use super::wire::{ActorAddr, MAX_NAME_LEN};

/// A change in this node's view of the registry caused by a merge (of a delta or a state,
/// or a node declared down).
///
/// Local operations report nothing: the caller knows what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// `name` now resolves to `actor`; it resolved to `replaced` before (`None`: it was free).
    Registered {
        /// The name.
        name: String,
        /// The actor it now resolves to.
        actor: ActorAddr,
        /// The actor it resolved to before, if any.
        replaced: Option<ActorAddr>,
    },
    /// `name` no longer resolves to anything; it resolved to `actor`.
    Unregistered {
        /// The name.
        name: String,
        /// The actor it resolved to.
        actor: ActorAddr,
    },
    /// A registration made on this node lost a conflict to `winner`, registered concurrently
    /// elsewhere. The registry has already withdrawn it (the withdrawal waits in
    /// [`ClusterRegistry::poll_delta`](super::ClusterRegistry::poll_delta)); tell `loser`.
    Lost {
        /// The contested name.
        name: String,
        /// The local actor whose registration was withdrawn.
        loser: ActorAddr,
        /// The actor that holds the name.
        winner: ActorAddr,
    },
    /// `actor` is now a member of `group`.
    Joined {
        /// The group.
        group: String,
        /// The new member.
        actor: ActorAddr,
    },
    /// `actor` is no longer a member of `group` (it left, or its node is gone).
    Left {
        /// The group.
        group: String,
        /// The former member.
        actor: ActorAddr,
    },
}

/// Why [`ClusterRegistry::register`](super::ClusterRegistry::register) refused. Nothing
/// changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    #[error("name of {len} bytes exceeds the limit of {MAX_NAME_LEN}")]
    NameTooLong {
        /// The name's length.
        len: usize,
    },
    /// The name already resolves to `holder` in this node's view.
    #[error("name already registered to {holder:?}")]
    AlreadyRegistered {
        /// The actor the name resolves to.
        holder: ActorAddr,
    },
}

/// Why [`ClusterRegistry::unregister`](super::ClusterRegistry::unregister) refused. Nothing
/// changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnregisterError {
    /// No actor of this node holds the name.
    #[error("name not registered by this node")]
    NotRegistered,
}

/// Why [`ClusterRegistry::join`](super::ClusterRegistry::join) refused. Nothing changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The group name is longer than [`MAX_NAME_LEN`] bytes.
    #[error("group name of {len} bytes exceeds the limit of {MAX_NAME_LEN}")]
    NameTooLong {
        /// The group name's length.
        len: usize,
    },
}

/// Why [`ClusterRegistry::rejoin`](super::ClusterRegistry::rejoin) refused. Nothing changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RejoinError {
    /// The new incarnation is not above the current one.
    #[error("incarnation {requested} is not above the current {current}")]
    NotNewer {
        /// The current incarnation.
        current: u64,
        /// The incarnation asked for.
        requested: u64,
    },
}
