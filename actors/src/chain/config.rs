//! Identities and chain configurations: who is in a chain, in which order, in which epoch.

use serde::{Deserialize, Serialize};

/// The id of a chain replica (a node's chain service).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReplicaId(pub u64);

/// The id of a client session; request ids are unique per client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientId(pub u64);

/// One incarnation of a replica: a replica that restarts without its state comes back with a
/// new incarnation, so that a configuration naming its earlier life never counts it as a
/// member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Member {
    /// The replica.
    pub id: ReplicaId,
    /// Its incarnation.
    pub incarnation: u64,
    /// The epoch in which this member was (re)added; a replica that last synchronised before
    /// it throws its state away and takes a snapshot instead.
    pub since: u64,
}

/// A seat in the configuration group: a raft id and where its node is reached.
///
/// The address is opaque to the chain core: the node binary writes a socket address there
/// (`"127.0.0.1:7001"`), the simulation nothing. Drivers read it to route packets for
/// [`Peer::Config`](super::Peer::Config) to group nodes added after startup.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupSeat {
    /// The group node's raft id (never 0).
    pub id: u64,
    /// Where the driver reaches it.
    pub address: String,
}

impl GroupSeat {
    /// A seat with no address (for drivers that route by raft id alone).
    pub fn id(id: u64) -> Self {
        Self {
            id,
            address: String::new(),
        }
    }
}

/// A committed chain configuration: the members in chain order (head first, tail last), the
/// epoch that numbers it, and the configuration group whose majority grants its read leases.
///
/// Configurations only ever change by removing members (the others keep their relative
/// order) or by appending a member at the tail. That keeps the invariant that every member's
/// log is a prefix of its predecessor's, which is what makes failover lose nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainConfig {
    /// Epoch number; each committed configuration has the previous one's epoch plus one.
    pub epoch: u64,
    /// Members in chain order.
    pub members: Vec<Member>,
    /// The configuration group's voters for this epoch: a read lease for this epoch needs the
    /// grants of a majority of them. Empty means the group the replicas were started with
    /// ([`ReplicaSettings::group`](super::ReplicaSettings::group)); a change of the group's
    /// own membership commits a configuration naming the new voters (see
    /// [`ConfigNode::change_group`](super::ConfigNode::change_group)).
    pub group: Vec<GroupSeat>,
}

impl ChainConfig {
    /// The first configuration (epoch 1) with `members` in this order, each at incarnation 0.
    pub fn initial(members: &[ReplicaId]) -> Self {
        Self {
            epoch: 1,
            members: members
                .iter()
                .map(|&id| Member {
                    id,
                    incarnation: 0,
                    since: 1,
                })
                .collect(),
            group: Vec::new(),
        }
    }

    /// The raft ids whose majority grants this epoch's leases: [`group`](Self::group), or
    /// `bootstrap` (the group the nodes were started with) while that is empty.
    pub fn lease_group(&self, bootstrap: &[u64]) -> Vec<u64> {
        if self.group.is_empty() {
            bootstrap.to_vec()
        } else {
            self.group.iter().map(|seat| seat.id).collect()
        }
    }

    /// The head (first member), if the chain is not empty.
    pub fn head(&self) -> Option<Member> {
        self.members.first().copied()
    }

    /// The tail (last member), if the chain is not empty.
    pub fn tail(&self) -> Option<Member> {
        self.members.last().copied()
    }

    /// The position of `id` in the chain, if it is a member.
    pub fn position(&self, id: ReplicaId) -> Option<usize> {
        self.members.iter().position(|member| member.id == id)
    }

    /// The member entry of `id`, if it is a member.
    pub fn member(&self, id: ReplicaId) -> Option<Member> {
        self.members.iter().copied().find(|member| member.id == id)
    }

    /// The member before `id` in the chain (towards the head).
    pub fn predecessor(&self, id: ReplicaId) -> Option<Member> {
        let position = self.position(id)?;
        position
            .checked_sub(1)
            .and_then(|before| self.members.get(before).copied())
    }

    /// The member after `id` in the chain (towards the tail).
    pub fn successor(&self, id: ReplicaId) -> Option<Member> {
        let position = self.position(id)?;
        self.members.get(position + 1).copied()
    }

    /// The next configuration without `id` (the others keep their order).
    #[must_use]
    pub fn without(&self, id: ReplicaId) -> Self {
        Self {
            epoch: self.epoch + 1,
            members: self
                .members
                .iter()
                .copied()
                .filter(|member| member.id != id)
                .collect(),
            group: self.group.clone(),
        }
    }

    /// The next configuration with `id` at `incarnation` appended at the tail (replacing any
    /// earlier entry for `id`).
    #[must_use]
    pub fn with_tail(&self, id: ReplicaId, incarnation: u64) -> Self {
        let mut next = self.without(id);
        next.members.push(Member {
            id,
            incarnation,
            since: next.epoch,
        });
        next
    }
}

/// The placement rule for several chains (one per shard) over a cluster: rendezvous (highest
/// random weight) hashing. Each replica gets a score per shard; the `length` best-scoring
/// replicas form that shard's chain, ordered by score. Adding or removing a replica moves
/// only the shards for which it is (or was) among the best, and every node computes the same
/// placement from the same member list without coordination.
///
/// The score is a SplitMix64 mix of the shard number and the replica id: fixed constants, so
/// the placement is the same in every process and every version. A shard's configuration
/// group applies this rule with [`GroupSettings::placement`](super::GroupSettings::placement):
/// it appends the best-scoring live candidate at the tail and, once the chain is full and
/// caught up, swaps out a member that a better-scoring live replica should replace.
///
/// # Examples
///
/// ```
/// use phalanx_actors::chain::{ReplicaId, place_chain};
///
/// let nodes: Vec<ReplicaId> = (1..=5).map(ReplicaId).collect();
/// let chain = place_chain(7, &nodes, 3);
/// assert_eq!(chain.len(), 3);
/// assert_eq!(chain, place_chain(7, &nodes, 3)); // deterministic
/// ```
pub fn place_chain(shard: u64, replicas: &[ReplicaId], length: usize) -> Vec<ReplicaId> {
    let mut scored: Vec<(u64, ReplicaId)> = replicas
        .iter()
        .map(|&replica| (rendezvous_score(shard, replica), replica))
        .collect();
    scored.sort_by(|a, b| b.cmp(a));
    scored
        .into_iter()
        .take(length)
        .map(|(_, replica)| replica)
        .collect()
}

/// A 64-bit mix (SplitMix64 finaliser) of the shard and the replica: stable across
/// processes and versions, unlike `std`'s randomly keyed hasher. The higher the score, the
/// more shard `shard` wants `replica` in its chain (see [`place_chain`]).
pub(crate) fn rendezvous_score(shard: u64, replica: ReplicaId) -> u64 {
    let mut z = shard
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(replica.0)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
