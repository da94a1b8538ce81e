//! The gossip actor: drives the sans-IO SWIM core with real datagrams, timers and streams.
//!
//! Datagrams are sealed with the cluster key (frame kind `Gossip`) and carry one encoded
//! membership message each. Push-pull state syncs, which can exceed a datagram, travel as a
//! remote message to the peer's gossip actor over the node-to-node stream. Membership
//! changes update the node's membership table, which the admin actor serves.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use phalanx_actors::gossip::{
    Action, Config, MemberState, Membership, Message, NodeId as MemberNode, Notification, Timer,
};
use phalanx_actors::registry::{ClusterRegistry, DELTA_EVENT, Delta, Notice, State};
use phalanx_runtime::{Actor, ActorRef, Context, HandlerError, Reply, Task};
use phalanx_transports::{
    ClusterId, Codec, CodecConfig, FrameKind, Incarnation, Key, NetTransport, NodeId,
    RemoteMessage, Remoting, Transport,
};
use serde::{Deserialize, Serialize};

use super::{GOSSIP_NAME, MemberRow, security_for};

/// What a node's gossip actor needs, shared by every instance the supervisor builds.
#[derive(Clone)]
pub(crate) struct Services {
    pub(crate) transport: Arc<NetTransport>,
    pub(crate) remoting: Arc<Remoting>,
    pub(crate) cluster: ClusterId,
    pub(crate) node: NodeId,
    pub(crate) incarnation: u64,
    pub(crate) listen: SocketAddr,
    pub(crate) key: Option<Key>,
    pub(crate) seeds: Vec<SocketAddr>,
    pub(crate) config: Config,
    pub(crate) table: Arc<Mutex<Vec<MemberRow>>>,
    /// The cluster-wide registry replica; it outlives restarts of the gossip actor.
    pub(crate) registry: Arc<Mutex<ClusterRegistry>>,
}

/// The messages of the gossip actor.
#[derive(Debug)]
pub struct GossipMessage(Request);

#[derive(Debug)]
enum Request {
    Datagram(Vec<u8>, SocketAddr),
    Stream(GossipWire),
    Timer(Timer),
    Join(Vec<SocketAddr>),
    Leave(Reply<()>),
    Register(String, u64, Reply<Result<(), String>>),
    JoinGroup(String, u64, Reply<Result<(), String>>),
}

/// A membership message carried over the node-to-node stream (push-pull).
#[derive(Debug, Serialize, Deserialize)]
pub struct GossipWire {
    /// The sender's gossip address.
    pub from: SocketAddr,
    /// The encoded membership message.
    pub bytes: Vec<u8>,
    /// The sender's whole cluster registry (encoded), or empty: push-pull carries it so
    /// that a node that joins late, or missed deltas, catches up with every name and group.
    pub registry: Vec<u8>,
}

impl RemoteMessage for GossipWire {
    const TAG: &'static str = "phalanx.GossipWire.v2";
}

/// The largest registry state a push-pull carries; a larger registry relies on its deltas.
const MAX_REGISTRY_SYNC: usize = 512 * 1024;

impl GossipMessage {
    /// Join the cluster through `seeds`.
    pub fn join(seeds: Vec<SocketAddr>) -> GossipMessage {
        GossipMessage(Request::Join(seeds))
    }

    /// Leave the cluster gracefully; the reply comes once the leave is announced.
    pub fn leave(reply: Reply<()>) -> GossipMessage {
        GossipMessage(Request::Leave(reply))
    }

    /// Register the local actor `actor` under `name` in the cluster-wide registry.
    pub(crate) fn register(name: String, actor: u64, reply: Reply<Result<(), String>>) -> Self {
        GossipMessage(Request::Register(name, actor, reply))
    }

    /// Add the local actor `actor` to the process group `group`, cluster-wide.
    pub(crate) fn join_group(group: String, actor: u64, reply: Reply<Result<(), String>>) -> Self {
        GossipMessage(Request::JoinGroup(group, actor, reply))
    }
}

/// Drives one node's membership.
pub(crate) struct GossipActor {
    services: Services,
    membership: Membership<SocketAddr>,
    codec: Codec,
    /// Forwards push-pull messages arriving over streams to the current gossip actor.
    wire: Option<ActorRef<GossipWire>>,
    rows: HashMap<MemberNode, MemberRow>,
    /// Full 128-bit node ids by membership id, learned from registry deltas, so that a member
    /// declared down can be removed from the registry.
    origins: HashMap<MemberNode, u128>,
}

impl GossipActor {
    pub(crate) fn new(services: Services) -> GossipActor {
        let me = member_node(services.node);
        let seed = u64::try_from(services.node.as_u128() >> 64).unwrap_or(0) ^ services.incarnation;
        let membership = Membership::new(
            me,
            services.listen,
            services.incarnation,
            services.config.clone(),
            seed,
        );
        let codec_config = CodecConfig::new(
            services.cluster,
            services.node,
            Incarnation(services.incarnation),
        );
        let codec = Codec::new(codec_config, security_for(services.key.as_ref()));
        GossipActor {
            services,
            membership,
            codec,
            wire: None,
            rows: HashMap::new(),
            origins: HashMap::new(),
        }
    }

    /// Carries out the core's actions; returns the datagram sends still in flight.
    fn carry_out(&mut self, ctx: &mut Context<Self>) -> Vec<Task<()>> {
        let mut sends = Vec::new();
        while let Some(action) = self.membership.poll_action() {
            match action {
                Action::Send { to, message } => sends.extend(self.send_datagram(to, &message)),
                Action::SendStream { to, message } => self.send_stream(to, &message),
                Action::ScheduleTimer { timer, after } => {
                    let me = ctx.myself();
                    phalanx_runtime::spawn(async move {
                        phalanx_runtime::sleep(after).await;
                        let _ = me.tell(GossipMessage(Request::Timer(timer))).await;
                    })
                    .detach();
                }
                Action::Notify(notification) => self.notify(notification),
                _ => {}
            }
        }
        self.publish();
        sends
    }

    /// Carries out the core's actions and lets the datagram sends finish on their own.
    fn act(&mut self, ctx: &mut Context<Self>) {
        for send in self.carry_out(ctx) {
            send.detach();
        }
    }

    /// Seals and sends one datagram on a task; the task is handed back so that a leave can
    /// wait until its announcements are out.
    fn send_datagram(&mut self, to: SocketAddr, message: &Message<SocketAddr>) -> Option<Task<()>> {
        let bytes = message.encode().ok()?;
        let Ok(sealed) = self.codec.seal_datagram(FrameKind::Gossip, &bytes) else {
            tracing::debug!(%to, len = bytes.len(), "gossip message does not fit a datagram");
            return None;
        };
        let transport = self.services.transport.clone();
        Some(phalanx_runtime::spawn(async move {
            if let Err(error) = transport.send_datagram(to, &sealed).await {
                tracing::debug!(%to, %error, "gossip datagram not sent");
            }
        }))
    }

    fn send_stream(&mut self, to: SocketAddr, message: &Message<SocketAddr>) {
        let Ok(bytes) = message.encode() else {
            return;
        };
        let registry = self
            .services
            .registry
            .lock()
            .ok()
            .and_then(|registry| registry.full_state().encode().ok())
            .filter(|state| state.len() <= MAX_REGISTRY_SYNC)
            .unwrap_or_default();
        let wire = GossipWire {
            from: self.services.listen,
            bytes,
            registry,
        };
        let remoting = self.services.remoting.clone();
        phalanx_runtime::spawn(async move {
            let timeout = Duration::from_secs(2);
            let peer = match remoting.connect(to, timeout).await {
                Ok(peer) => peer,
                Err(error) => {
                    tracing::debug!(%to, %error, "push-pull: peer unreachable");
                    return;
                }
            };
            match remoting
                .lookup::<GossipWire>(peer, GOSSIP_NAME, timeout)
                .await
            {
                Ok(gossip) => {
                    let _ = gossip.tell(wire).await;
                }
                Err(error) => tracing::debug!(%to, %error, "push-pull: no gossip actor there"),
            }
        })
        .detach();
    }

    fn notify(&mut self, notification: Notification<SocketAddr>) {
        match notification {
            Notification::Up { member, addr } => {
                tracing::info!(node = %member.node.0, %addr, "member up");
                self.rows.insert(
                    member.node,
                    MemberRow::new(member.node.0, member.incarnation, addr, "alive"),
                );
            }
            Notification::Suspect { member } => self.mark(member.node, "suspect"),
            Notification::Alive { member } => self.mark(member.node, "alive"),
            Notification::Down { member, reason } => {
                tracing::info!(node = %member.node.0, ?reason, "member down");
                let state = match reason {
                    phalanx_actors::gossip::DownReason::Left => "left",
                    _ => "dead",
                };
                self.mark(member.node, state);
                // Failure detection feeds the actor layer: references to the member's actors
                // end with NodeDown, whether or not a connection to it is still open.
                for peer in self.services.remoting.peers() {
                    if member_node(peer) == member.node {
                        self.services.remoting.declare_down(peer);
                    }
                }
                if let Some(node) = self.origins.get(&member.node)
                    && let Ok(mut registry) = self.services.registry.lock()
                {
                    report(registry.node_down(*node, member.incarnation));
                }
            }
            Notification::Event(event) if event.name == DELTA_EVENT => {
                match Delta::decode(&event.payload) {
                    Ok(delta) => {
                        let origin = delta.origin();
                        self.origins
                            .insert(member_node(NodeId::from_u128(origin.node)), origin.node);
                        if let Ok(mut registry) = self.services.registry.lock() {
                            report(registry.merge_delta(delta));
                        }
                        self.broadcast_withdrawals();
                    }
                    Err(error) => tracing::debug!(%error, "bad registry delta"),
                }
            }
            Notification::Refuted {
                incarnation,
                was_dead,
            } => {
                tracing::warn!(incarnation, was_dead, "refuted a suspicion of this node");
            }
            _ => {}
        }
    }

    /// Merges a peer's whole registry, received with a push-pull.
    fn merge_registry(&mut self, from: SocketAddr, bytes: &[u8]) {
        match State::decode(bytes) {
            Ok(state) => {
                for origin in state.origins() {
                    self.origins
                        .insert(member_node(NodeId::from_u128(origin.node)), origin.node);
                }
                if let Ok(mut registry) = self.services.registry.lock() {
                    report(registry.merge_state(state));
                }
                self.broadcast_withdrawals();
            }
            Err(error) => tracing::debug!(%from, %error, "bad registry state in a push-pull"),
        }
    }

    /// Spreads the withdrawals of names this node lost in a conflict.
    fn broadcast_withdrawals(&mut self) {
        let deltas: Vec<Delta> = match self.services.registry.lock() {
            Ok(mut registry) => std::iter::from_fn(|| registry.poll_delta()).collect(),
            Err(_) => Vec::new(),
        };
        for delta in deltas {
            self.broadcast(&delta);
        }
    }

    fn broadcast(&mut self, delta: &Delta) {
        match delta.encode() {
            Ok(bytes) => {
                if let Err(error) = self.membership.broadcast_event(DELTA_EVENT, &bytes) {
                    tracing::warn!(%error, "registry delta not broadcast");
                }
            }
            Err(error) => tracing::warn!(%error, "registry delta not encoded"),
        }
    }

    fn mark(&mut self, node: MemberNode, state: &str) {
        if let Some(row) = self.rows.get_mut(&node) {
            row.state = state.to_owned();
        }
    }

    fn publish(&self) {
        let me = self.membership.node();
        let mut rows: Vec<MemberRow> = self.rows.values().cloned().collect();
        rows.sort_by_key(|row| row.addr);
        let state = match self.membership.member_state(me) {
            Some((MemberState::Left, _)) => "left",
            _ => "alive",
        };
        let mut own = MemberRow::new(
            me.0,
            self.membership.incarnation(),
            self.services.listen,
            state,
        );
        own.is_self = true;
        rows.insert(0, own);
        if let Ok(mut table) = self.services.table.lock() {
            *table = rows;
        }
    }
}

impl Actor for GossipActor {
    type Message = GossipMessage;

    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), HandlerError> {
        // Datagrams: one receive loop per instance; it ends when this instance does.
        let me = ctx.myself();
        let transport = self.services.transport.clone();
        phalanx_runtime::spawn(async move {
            let mut buffer = vec![0; transport.max_datagram()];
            while me.is_alive() {
                match transport.recv_datagram(&mut buffer).await {
                    Ok((len, from)) => {
                        let datagram = buffer[..len].to_vec();
                        // A full mailbox drops the datagram, as the network would.
                        let _ = me.try_tell(GossipMessage(Request::Datagram(datagram, from)));
                    }
                    Err(error) => {
                        tracing::debug!(%error, "gossip socket");
                        phalanx_runtime::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        })
        .detach();
        // Streams: push-pull messages from other nodes come through a small forwarding actor
        // registered with the remoting layer.
        let wire = ctx.spawn_child(WireForwarder {
            gossip: ctx.myself(),
        });
        self.services.remoting.unregister(GOSSIP_NAME);
        self.services.remoting.register(GOSSIP_NAME, &wire)?;
        self.wire = Some(wire);
        let now = Instant::now();
        self.membership.start(now);
        if !self.services.seeds.is_empty() {
            self.membership.join(self.services.seeds.clone(), now);
        }
        self.act(ctx);
        Ok(())
    }

    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        msg: GossipMessage,
    ) -> Result<(), HandlerError> {
        let now = Instant::now();
        match msg.0 {
            Request::Datagram(bytes, from) => match self.codec.open_datagram(&bytes) {
                Ok(frame) if frame.header.kind == FrameKind::Gossip => {
                    match Message::decode(&frame.payload) {
                        Ok(message) => self.membership.handle_datagram(from, message, now),
                        Err(error) => tracing::debug!(%from, %error, "bad gossip message"),
                    }
                }
                // Counted by the codec, with a tracing event; nothing reaches the core.
                Ok(_) | Err(_) => {}
            },
            Request::Stream(wire) => {
                match Message::decode(&wire.bytes) {
                    Ok(message) => self.membership.handle_datagram(wire.from, message, now),
                    Err(error) => {
                        tracing::debug!(from = %wire.from, %error, "bad push-pull message");
                    }
                }
                if !wire.registry.is_empty() {
                    self.merge_registry(wire.from, &wire.registry);
                }
            }
            Request::Timer(timer) => self.membership.handle_timer(timer, now),
            Request::Join(seeds) => self.membership.join(seeds, now),
            Request::Register(name, actor, reply) => {
                let registered = match self.services.registry.lock() {
                    Ok(mut registry) => registry.register(&name, actor).map_err(|e| e.to_string()),
                    Err(_) => Err("the registry is unavailable".to_owned()),
                };
                let outcome = registered.map(|delta| self.broadcast(&delta));
                let _ = reply.send(outcome);
            }
            Request::JoinGroup(group, actor, reply) => {
                let joined = match self.services.registry.lock() {
                    Ok(mut registry) => registry.join(&group, actor).map_err(|e| e.to_string()),
                    Err(_) => Err("the registry is unavailable".to_owned()),
                };
                let outcome = joined.map(|delta| {
                    if let Some(delta) = delta {
                        self.broadcast(&delta);
                    }
                });
                let _ = reply.send(outcome);
            }
            Request::Leave(reply) => {
                self.membership.leave(now);
                // The process may stop right after: the announcements must be out first.
                let sends = self.carry_out(ctx);
                let _ = phalanx_runtime::timeout(Duration::from_secs(1), async {
                    for send in sends {
                        send.await;
                    }
                })
                .await;
                let _ = reply.send(());
                return Ok(());
            }
        }
        self.act(ctx);
        Ok(())
    }
}

/// Logs what the registry reports; a lost name conflict is worth a warning.
fn report(notices: Vec<Notice>) {
    for notice in notices {
        match notice {
            Notice::Lost {
                name,
                loser,
                winner,
            } => {
                tracing::warn!(%name, ?loser, ?winner, "a name registration lost a conflict");
            }
            other => tracing::debug!(?other, "registry"),
        }
    }
}

/// Hands push-pull messages from the remoting layer to the gossip actor.
struct WireForwarder {
    gossip: ActorRef<GossipMessage>,
}

impl Actor for WireForwarder {
    type Message = GossipWire;

    async fn handle(
        &mut self,
        _: &mut Context<Self>,
        wire: GossipWire,
    ) -> Result<(), HandlerError> {
        let _ = self.gossip.try_tell(GossipMessage(Request::Stream(wire)));
        Ok(())
    }
}

/// The membership id of a node: the low 64 bits of its 128-bit id.
pub(crate) fn member_node(node: NodeId) -> MemberNode {
    // Truncation is the point: membership ids are 64-bit, and random 128-bit node ids stay
    // unique in their low half for any realistic cluster.
    #[allow(clippy::cast_possible_truncation)]
    MemberNode(node.as_u128() as u64)
}
