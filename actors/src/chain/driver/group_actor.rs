//! The actor that drives a configuration-group [`ConfigNode`] with real time and a
//! [`ChainTransport`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use phalanx_runtime::{Actor, Context, HandlerError, Reply, Task};
use protobuf::Message as _;
use raft::prelude::Message as RaftMessage;
use serde::{Deserialize, Serialize};

use super::replica_actor::{DriverSettings, start_ticker};
use super::routes::Routes;
use super::{Body, ChainTransport, DriverCounters, Inbound, Packet};
use crate::chain::config::{ChainConfig, GroupSeat};
use crate::chain::group::{ConfigNode, GroupAction, GroupChangeError, GroupSettings};
use crate::chain::message::{ControlMessage, MAX_MESSAGE_BYTES, Peer, decode, encode};
use crate::checkpoint::{GroupStore, Storage};

/// The messages of a [`GroupActor`].
#[derive(Debug)]
#[non_exhaustive]
pub enum GroupInput {
    /// A packet from the transport.
    Packet(Inbound),
    /// The interval timer fired.
    Tick,
    /// Report the node's state.
    Status(Reply<GroupStatus>),
    /// Start changing the group's membership to these voters
    /// ([`ConfigNode::change_group`]).
    ChangeGroup(Vec<GroupSeat>, Reply<Result<(), GroupChangeError>>),
}

/// Told the group seats a node knows of when they change (see
/// [`GroupActor::with_seats_listener`]).
struct SeatsListener(Box<SeatsFn>);

type SeatsFn = dyn Fn(&[GroupSeat]) + Send + Sync;

impl std::fmt::Debug for SeatsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeatsListener")
    }
}

/// A configuration-group node's state, as reported to operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GroupStatus {
    /// Its raft id.
    pub id: u64,
    /// Whether it is the raft leader.
    pub leader: bool,
    /// The latest committed chain configuration.
    pub committed: ChainConfig,
    /// The raft leader it knows of.
    pub leader_id: Option<u64>,
    /// The group's voters as it applied them.
    pub voters: Vec<u64>,
    /// While a membership change is under way, the voters it moves away from (else empty).
    pub outgoing: Vec<u64>,
    /// What the driver counted.
    pub counters: DriverCounters,
}

/// Drives one [`ConfigNode`].
#[derive(Debug)]
pub struct GroupActor<T: ChainTransport> {
    /// The node; `None` until [`started`](Actor::started) builds it from `pending`.
    node: Option<ConfigNode>,
    /// The raft id and settings of a node still to build.
    pending: Option<(u64, GroupSettings)>,
    /// Where the node to build keeps its raft state (none: in memory).
    journal: Option<(Arc<dyn Storage>, PathBuf)>,
    transport: Arc<T>,
    settings: DriverSettings,
    routes: Routes,
    counters: DriverCounters,
    /// The interval timer's task; dropping the actor cancels it.
    ticker: Option<Task<()>>,
    /// Told the seats the node knows of when they change.
    seats_listener: Option<SeatsListener>,
    /// The seats last told.
    seats_told: Vec<GroupSeat>,
}

impl<T: ChainTransport> GroupActor<T> {
    /// An actor driving `node` over `transport`; `settings.tick` is also raft's tick.
    pub fn new(node: ConfigNode, transport: Arc<T>, settings: DriverSettings) -> Self {
        Self {
            node: Some(node),
            pending: None,
            journal: None,
            transport,
            settings,
            routes: Routes::default(),
            counters: DriverCounters::default(),
            ticker: None,
            seats_listener: None,
            seats_told: Vec::new(),
        }
    }

    /// An actor that builds its node (raft id `id`, `group`) when it starts, and fails to
    /// start if raft-rs refuses the settings: the form a supervisor's child factory needs.
    pub fn with_settings(
        id: u64,
        group: GroupSettings,
        transport: Arc<T>,
        settings: DriverSettings,
    ) -> Self {
        Self {
            node: None,
            pending: Some((id, group)),
            journal: None,
            transport,
            settings,
            routes: Routes::default(),
            counters: DriverCounters::default(),
            ticker: None,
            seats_listener: None,
            seats_told: Vec::new(),
        }
    }

    /// Like [`with_settings`](Self::with_settings), with the node's raft state kept in a
    /// [`GroupStore`] in `dir`: a restarted node (or a restarted actor) rebuilds it from there.
    /// Writes are synced on the actor's thread (the group writes rarely: elections and
    /// reconfigurations); a failed write fails the actor, which its supervisor restarts from
    /// the store.
    pub fn durable(
        id: u64,
        group: GroupSettings,
        storage: Arc<dyn Storage>,
        dir: PathBuf,
        transport: Arc<T>,
        settings: DriverSettings,
    ) -> Self {
        let mut actor = Self::with_settings(id, group, transport, settings);
        actor.journal = Some((storage, dir));
        actor
    }

    /// Tells `listener` the group seats (raft ids with addresses) this node knows of whenever
    /// they change: the voters a membership change moves to, then those the committed
    /// configuration names. A driver that routes by address learns new group nodes from it.
    #[must_use]
    pub fn with_seats_listener(
        mut self,
        listener: impl Fn(&[GroupSeat]) + Send + Sync + 'static,
    ) -> Self {
        self.seats_listener = Some(SeatsListener(Box::new(listener)));
        self
    }

    fn tell_seats(&mut self) {
        let (Some(listener), Some(node)) = (&self.seats_listener, &self.node) else {
            return;
        };
        let seats = node
            .change_target()
            .unwrap_or(&node.committed().group)
            .to_vec();
        if seats != self.seats_told {
            (listener.0)(&seats);
            self.seats_told = seats;
        }
    }

    fn on_packet(&mut self, inbound: Inbound, now: Instant) {
        self.counters.received += 1;
        let Some(node) = self.node.as_mut() else {
            return;
        };
        let Packet {
            from,
            to,
            body,
            routes,
        } = inbound.packet;
        if to != Peer::Config(node.id()) {
            self.counters.misaddressed += 1;
            return;
        }
        match body {
            Body::Raft(bytes) => {
                if !inbound.authenticated {
                    // protobuf 2 must never see bytes an attacker could have crafted.
                    self.counters.unauthenticated += 1;
                    return;
                }
                if !matches!(from, Peer::Config(_)) || bytes.len() > MAX_MESSAGE_BYTES {
                    self.counters.misaddressed += 1;
                    return;
                }
                match RaftMessage::parse_from_bytes(&bytes) {
                    Ok(message) if message.to == node.id() => {
                        node.handle_raft(message, now);
                    }
                    Ok(_) => self.counters.misaddressed += 1,
                    Err(_) => self.counters.malformed += 1,
                }
            }
            Body::Control(bytes) => match decode::<ControlMessage>(&bytes) {
                Ok(message) => {
                    self.routes.learn(&routes);
                    node.handle_control(from, message, now);
                }
                Err(_) => self.counters.malformed += 1,
            },
            Body::Chain(_) => self.counters.misaddressed += 1,
        }
    }

    fn send_actions(&mut self) {
        let Some(node) = self.node.as_mut() else {
            return;
        };
        let me = Peer::Config(node.id());
        while let Some(action) = node.poll_action() {
            let packet = match action {
                GroupAction::Raft { to, message } => {
                    let Ok(bytes) = message.write_to_bytes() else {
                        self.counters.unencodable += 1;
                        continue;
                    };
                    Packet {
                        from: me,
                        to: Peer::Config(to),
                        body: Body::Raft(bytes),
                        routes: Vec::new(),
                    }
                }
                GroupAction::Send { to, message } => {
                    let Ok(bytes) = encode(&message) else {
                        self.counters.unencodable += 1;
                        continue;
                    };
                    let routes = match to {
                        Peer::Client(client) => self.routes.of([client]),
                        _ => Vec::new(),
                    };
                    Packet {
                        from: me,
                        to,
                        body: Body::Control(bytes),
                        routes,
                    }
                }
            };
            self.counters.sent += 1;
            self.transport.send(packet);
        }
    }
}

impl<T: ChainTransport> Actor for GroupActor<T> {
    type Message = GroupInput;

    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), HandlerError> {
        if let Some((id, group)) = self.pending.take() {
            self.node = Some(match self.journal.take() {
                Some((storage, dir)) => {
                    let (store, recovered, _) = GroupStore::open(storage, &dir)?;
                    ConfigNode::with_journal(id, group, recovered, Box::new(store))?
                }
                None => ConfigNode::new(id, group)?,
            });
        }
        self.ticker = Some(start_ticker(ctx.myself(), self.settings.tick, || {
            GroupInput::Tick
        }));
        Ok(())
    }

    async fn handle(&mut self, _: &mut Context<Self>, msg: GroupInput) -> Result<(), HandlerError> {
        let now = self.settings.clock.now();
        match msg {
            GroupInput::Packet(inbound) => self.on_packet(inbound, now),
            GroupInput::Tick => {
                if let Some(node) = self.node.as_mut() {
                    node.handle_tick(now);
                }
            }
            GroupInput::Status(reply) => {
                if let Some(node) = &self.node {
                    let (voters, outgoing) = node.voters();
                    let _ = reply.send(GroupStatus {
                        id: node.id(),
                        leader: node.is_leader(),
                        committed: node.committed().clone(),
                        leader_id: node.leader(),
                        voters,
                        outgoing,
                        counters: self.counters,
                    });
                }
            }
            GroupInput::ChangeGroup(voters, reply) => {
                let outcome = match self.node.as_mut() {
                    Some(node) => node.change_group(voters),
                    None => Err(GroupChangeError::NotLeader { leader: None }),
                };
                let _ = reply.send(outcome);
            }
        }
        self.tell_seats();
        self.send_actions();
        if let Some(failure) = self.node.as_ref().and_then(ConfigNode::failure) {
            return Err(failure.to_owned().into());
        }
        Ok(())
    }
}
