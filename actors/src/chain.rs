//! Strongly consistent replicated state: chain replication with CRAQ apportioned reads, and
//! chain configurations committed through consensus.
//!
//! # Protocol
//!
//! A chain is an ordered list of replicas ([`ChainConfig`]). Writes enter at the head, which
//! numbers them (a total order per chain), and flow down the chain in pipelined batches;
//! the tail commits a write when it receives it, answers the client, and acknowledgements
//! flow back up, committing on every replica. Reads (CRAQ): every replica answers a read of
//! an object without uncommitted writes ("clean") from its committed state; for a dirty object
//! it forwards the read to the tail, which answers from the committed state.
//!
//! Clients number their requests; each replica keeps a per-client table of results
//! ([`Session`]), replicated with the state, so a retried write is applied once.
//!
//! # Reconfiguration
//!
//! Configurations are epoch-numbered and committed by a small configuration group (3 or 5
//! [`ConfigNode`]s) through **raft-rs 0.7** (`RawNode`). Both candidates build here:
//! omnipaxos 0.2.4 (few dependencies, fast build) and raft-rs 0.7 (protobuf 2, slog, about
//! 2 minutes to build from scratch). raft-rs was chosen because it is the core proven in
//! production by TiKV for years, its sans-IO `RawNode` fits our `handle_*`/`poll` style
//! exactly, and its pre-vote and check-quorum keep a partitioned group node from disrupting
//! the others; the price is protobuf 2 (RUSTSEC-2024-0437), so raft messages must be decoded
//! only from authenticated frames.
//!
//! The group's leader runs the failure detector (lease requests double as heartbeats, and
//! replicas report stalled neighbours), but it only *proposes*: a configuration takes effect
//! when raft commits it, and replicas adopt committed configurations only. Configurations
//! change only by removing members or by appending one at the tail, so every member's log
//! stays a prefix of its predecessor's and no acknowledged write is lost on failover. On
//! adopting epoch `e`, each replica syncs with its predecessor (log suffix, or snapshot plus
//! log for a replica that is new or returning), and messages of other epochs are dropped.
//!
//! Fencing: a replica serves reads only under a lease for its epoch granted by a majority of
//! the group, and a group node refuses leases for an epoch once a newer configuration is in
//! its log. A replica of a new epoch neither commits nor reads until `fence_wait` (longer
//! than a lease, with a margin for clock drift) after adopting it, so every replica of the old
//! epoch, the old tail included, is fenced before the new tail serves.
//!
//! The group's detector never removes a member if the chain would then start with a replica
//! that has not caught up since it was added, or that it has not heard from lately: such a
//! head might lack committed writes. The chain then waits (it is unavailable, it loses
//! nothing) until the member comes back or its successor catches up.
//!
//! # Guarantees and limits
//!
//! - Linearizable reads and writes per chain, and no acknowledged write lost, as long as one
//!   member of the current configuration that has caught up keeps its state. A replica with
//!   [`ReplicaSettings::journal`] set records its durable-state changes ([`JournalOp`]); a
//!   driver that writes them before sending anything the replica asked for afterwards
//!   ([`driver::DurableReplica`] over a [`ReplicaStore`](crate::checkpoint::ReplicaStore))
//!   can restart it with [`Replica::recover`] as the same member, so even losing every member
//!   at once loses nothing acknowledged. A replica without a journal keeps state in memory and
//!   returns with a new incarnation, catching up anew.
//! - Catch-up is chunked: entries from the log and a bounded history of committed entries
//!   ([`ReplicaSettings::history`]), or, for a successor too far behind, the committed state
//!   as a snapshot sent one chunk per request ([`Message::SnapshotChunk`]), resumable.
//! - Reads need clock *rates* to agree within the margin `fence_wait` allows over `lease`
//!   (offsets do not matter); the defaults allow about 20 %.
//! - A configuration-group node keeps its raft log in memory unless given a [`GroupJournal`]
//!   ([`ConfigNode::with_journal`]); raft's safety needs it on disk in production.
//! - Not here yet: changing the configuration group's own membership (raft-rs supports it
//!   with `ConfChangeV2`; replicas would then need the new group to count lease majorities)
//!   and compaction of the group's raft log (it grows by one entry per reconfiguration).

//! # Examples
//!
//! A one-replica chain (head and tail at once) applying a write and answering a read:
//!
//! ```
//! use std::time::Instant;
//!
//! use phalanx_actors::chain::{
//!     Action, ChainConfig, ClientId, ControlMessage, KvCommand, KvMap, KvOutput, KvQuery,
//!     Message, Peer, Replica, ReplicaId, ReplicaSettings,
//! };
//!
//! let now = Instant::now();
//! let config = ChainConfig::initial(&[ReplicaId(1)]);
//! let mut replica: Replica<KvMap> = Replica::new(ReplicaId(1), 0, ReplicaSettings::new(vec![9]));
//! replica.handle_config(config.clone(), now);
//! // A one-node group grants the read lease.
//! replica.handle_tick(now);
//! let round = match replica.poll_action() {
//!     Some(Action::Control { message: ControlMessage::LeaseRequest { round, .. }, .. }) => round,
//!     other => panic!("expected a lease request, got {other:?}"),
//! };
//! replica.handle_control(9, ControlMessage::LeaseReply { round, granted: true, config }, now);
//!
//! let client = ClientId(7);
//! let command = KvCommand::Put { key: "k".into(), value: b"v".to_vec() };
//! let write = Message::Write { client, request: 1, acked_below: 1, command };
//! replica.handle_message(Peer::Client(client), write, now);
//! let read = Message::Read { client, request: 2, query: KvQuery { key: "k".into() } };
//! replica.handle_message(Peer::Client(client), read, now);
//! let replies: Vec<_> = std::iter::from_fn(|| replica.poll_action()).collect();
//! assert_eq!(replies, vec![
//!     Action::Send {
//!         to: Peer::Client(client),
//!         message: Message::WriteReply { request: 1, output: KvOutput::Done },
//!     },
//!     Action::Send {
//!         to: Peer::Client(client),
//!         message: Message::ReadReply { request: 2, reply: Some(b"v".to_vec()) },
//!     },
//! ]);
//! ```
//!
//! # Layout
//!
//! - `config`: [`ReplicaId`], [`ClientId`], [`Member`], [`ChainConfig`], [`place_chain`].
//! - `machine`: the [`StateMachine`] trait and the default [`KvMap`].
//! - `message`: [`Message`], [`ControlMessage`], [`Entry`], [`Snapshot`], [`encode`]/[`decode`].
//! - `replica`: the sans-IO [`Replica`] (about 950 lines: one state machine whose handlers
//!   share every field), with its catch-up handlers in `replica/sync.rs` and the durable-state
//!   records ([`JournalOp`], [`Recovered`]) in `replica/journal.rs`.
//! - `group`: the raft-rs [`ConfigNode`].
//! - [`driver`]: the actors that drive a [`Replica`], a [`ConfigNode`] and a chain client with
//!   real time over a small transport trait (the node runs them over the remoting layer).
//! - [`linearizability`]: the WGL checker and the key-value model.
//! - [`sim`]: the deterministic simulation: event loop, clients (`sim/client.rs`), fault
//!   injector (`sim/nemesis.rs`), and the recording state machine (`sim/recording.rs`).
//!
//! # Placement
//!
//! Several chains per cluster (one per shard) are placed by rendezvous hashing:
//! [`place_chain`].

mod config;
pub mod driver;
mod group;
pub mod linearizability;
mod machine;
mod message;
pub mod reads;
mod replica;
pub mod sim;

pub use config::{ChainConfig, ClientId, GroupSeat, Member, ReplicaId, place_chain};
pub use group::{
    ConfigNode, GroupAction, GroupChangeError, GroupError, GroupJournal, GroupRecovered,
    GroupSettings,
};
pub use machine::{KvCommand, KvMap, KvOutput, KvQuery, RestoreError, StateMachine};
pub use message::{
    ControlMessage, Entry, MAX_MESSAGE_BYTES, Message, MessageDecodeError, Peer, Session, Snapshot,
    SnapshotCursor, decode, encode,
};
pub use replica::{Action, JournalOp, Recovered, Replica, ReplicaSettings};
