//! Member identity and the local record of each member.

use std::fmt;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::message::{MemberState, Update};

/// A node's stable identifier, chosen by the node (for example at random on first start).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u64);

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// A member as notifications name it: a node in one life.
///
/// `incarnation` is the incarnation at which the node (re)appeared. A node that was declared
/// down and comes back with a higher incarnation is a different member: it gets a new `Up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberId {
    /// The node.
    pub node: NodeId,
    /// The incarnation at which this life of the node came up.
    pub incarnation: u64,
}

/// What a node knows about another member.
#[derive(Debug, Clone)]
pub(crate) struct Member<A> {
    pub(crate) node: NodeId,
    pub(crate) addr: A,
    pub(crate) incarnation: u64,
    pub(crate) state: MemberState,
    /// The incarnation at which the current life came up, for [`MemberId`].
    pub(crate) up_incarnation: u64,
    /// When `state` last changed.
    pub(crate) since: Instant,
}

impl<A: Clone> Member<A> {
    pub(crate) fn id(&self) -> MemberId {
        MemberId {
            node: self.node,
            incarnation: self.up_incarnation,
        }
    }

    /// Whether the member counts as part of the cluster: probed, chosen as a helper.
    pub(crate) fn is_live(&self) -> bool {
        matches!(self.state, MemberState::Alive | MemberState::Suspect)
    }

    pub(crate) fn to_update(&self, origin: super::NodeId) -> Update<A> {
        Update {
            node: self.node,
            addr: self.addr.clone(),
            incarnation: self.incarnation,
            state: self.state,
            origin,
        }
    }
}
