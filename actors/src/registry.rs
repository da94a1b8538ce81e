//! The cluster-wide name registry and process groups, as a sans-IO CRDT replicated by gossip.
//!
//! [`ClusterRegistry`] is one node's replica. Local actors register names
//! ([`register`](ClusterRegistry::register)) and join groups
//! ([`join`](ClusterRegistry::join)); each such operation returns a small [`Delta`] that the
//! node disseminates as a gossip user event, and every node merges what it receives
//! ([`merge_delta`](ClusterRegistry::merge_delta)). Periodic push-pull exchanges carry the
//! whole [`State`] ([`full_state`](ClusterRegistry::full_state),
//! [`merge_state`](ClusterRegistry::merge_state)) and repair whatever gossip lost. When
//! membership declares a node dead, [`node_down`](ClusterRegistry::node_down) drops its
//! entries. Nothing here reads a clock, owns a socket or spawns anything.
//!
//! # What "eventually consistent" means here
//!
//! Every node answers [`whereis`](ClusterRegistry::whereis) and
//! [`members`](ClusterRegistry::members) from its own replica, at once and without asking
//! anyone, also during partitions. Two nodes may therefore disagree for a while: a new
//! registration is visible where its delta has arrived, and a dead node's entries linger
//! until its death is known. The guarantee is convergence: once two nodes have received the
//! same operations (in any order, any number of times, directly or through a third node's
//! state) they hold the same names, the same winners and the same group members. Merging is
//! commutative, associative and idempotent, which the property tests check against a
//! reference model. Callers that need a name to be unique at every instant need consensus
//! (the chain service), not this registry.
//!
//! # Who writes what
//!
//! A node writes only entries of its own actors, as in OTP's `pg`: an [`Origin`] (a node in
//! one life: node id and incarnation) is the single writer of its entries and numbers its
//! operations 1, 2, 3, ... Entries name actors as [`ActorAddr`] (node id, incarnation,
//! actor id). A replica keeps, per origin, the latest record per key and a `base` below
//! which it knows every operation; unregistering and leaving write tombstones, and a
//! tombstone is collected as soon as the `base` covers it (the next push-pull with a node
//! that has it), because from then on any older record that still arrives is recognised as
//! stale. So tombstones do not pile up, and an unregistration is never undone by a
//! registration delta that arrives late.
//!
//! # Names and conflicts
//!
//! [`register`](ClusterRegistry::register) fails if the name already resolves to an actor in
//! the local view, so conflicts arise only from registrations that were concurrent (neither
//! node had seen the other's). Every claim carries a Lamport stamp; a name resolves to the
//! claim with the lowest `(lamport, node id, incarnation)`: the earlier registration wins, so
//! an established name is not taken over by a newcomer after a partition heals. Every node
//! applies the same rule to the same claims, so every node picks the same winner.
//!
//! The node of each losing claim, once it sees the winner, withdraws its claim (an ordinary
//! unregistration, waiting in [`poll_delta`](ClusterRegistry::poll_delta) for dissemination)
//! and reports [`Notice::Lost`] with the loser and the winner, so it can tell the losing
//! actor (OTP's `global` kills one of the two by default; we leave that choice to the
//! node). Until the withdrawal has spread, [`claimants`](ClusterRegistry::claimants) shows
//! every claim, and every node resolves the name to the winner all the same.
//!
//! # Groups
//!
//! Each group is an observed-remove set of actors. Since only an actor's own node adds or
//! removes it, a leave has observed every join of the same actor, so add-wins and
//! remove-wins coincide: the last operation of the writer counts. Joining twice is one
//! membership; [`actor_stopped`](ClusterRegistry::actor_stopped) removes a stopped actor
//! from every group and name.
//!
//! # Dead nodes and new lives
//!
//! A node declared dead, or seen again with a higher incarnation, loses every entry of its
//! older lives everywhere: each replica keeps, per node, the lowest incarnation still
//! alive (it travels in the [`State`], and a delta from a newer life raises it too), drops
//! everything below it and ignores late deltas from below it. A node that was wrongly
//! declared dead and rejoins with a new incarnation calls [`rejoin`](ClusterRegistry::rejoin)
//! to make its actors' names and memberships again under the new life; the old stamps are
//! kept, so a name it held keeps winning over a registration made while it was away.
//!
//! # Driving it
//!
//! The node's gossip actor owns the registry next to its membership core:
//!
//! * a local operation's [`Delta`] is encoded and broadcast as a user event named
//!   [`DELTA_EVENT`] (it always fits one); withdrawals from
//!   [`poll_delta`](ClusterRegistry::poll_delta) go the same way after every merge;
//! * a received event of that name is decoded with [`Delta::decode`] and merged;
//! * every push-pull also carries [`full_state`](ClusterRegistry::full_state) (encoded,
//!   at most [`MAX_STATE_LEN`] bytes) both ways, and the receiver merges it;
//! * a member that goes down (`Notification::Down` from gossip) is passed to
//!   [`node_down`](ClusterRegistry::node_down) with the incarnation it ran as, and a stopped
//!   local actor to [`actor_stopped`](ClusterRegistry::actor_stopped);
//! * the [`Notice`]s go to the node: name watchers, group subscribers, and [`Notice::Lost`]
//!   to the losing actor.
//!
//! # Wire
//!
//! [`Delta::decode`] and [`State::decode`] never panic and never allocate on a peer's say-so;
//! every length is bounded ([`MAX_NAME_LEN`], [`MAX_DELTA_OPS`], [`MAX_DELTA_LEN`],
//! [`MAX_STATE_ORIGINS`], [`MAX_ORIGIN_RECORDS`], [`MAX_STATE_LEN`]). A delta from
//! [`ClusterRegistry`] always encodes to at most [`MAX_DELTA_LEN`] bytes, one gossip event.

mod cluster;
mod notice;
mod replica;
mod view;
mod wire;

pub use cluster::{Claimant, ClusterRegistry};
pub use notice::{JoinError, Notice, RegisterError, RejoinError, UnregisterError};
pub use wire::{
    ActorAddr, DELTA_EVENT, DecodeError, Delta, EncodeError, MAX_DELTA_LEN, MAX_DELTA_OPS,
    MAX_NAME_LEN, MAX_ORIGIN_RECORDS, MAX_STATE_LEN, MAX_STATE_ORIGINS, Origin, State,
};

#[cfg(test)]
mod tests;
