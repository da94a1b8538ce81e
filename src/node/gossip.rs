//! The gossip actor: drives the sans-IO SWIM core with real datagrams, timers and streams.
//!
//! Datagrams are sealed with the cluster key (frame kind `Gossip`) and carry one encoded
//! membership message each. Push-pull state syncs, which can exceed a datagram, travel as a
//! remote message to the peer's gossip actor over the node-to-node stream. Membership
//! changes update the node's membership table, which the admin actor serves.
//!
//! The actor is also the remoting layer's datagram carrier ([`GossipCarrier`]): remote
//! messages of types that opt in to datagrams (`RemoteMessage::CARRIER`) and fit are handed
//! to the core, which puts them on a datagram to the member (one going there anyway when
//! there is room). Inbound, only messages from an authenticated datagram (opened with the
//! keyring when one is configured) whose sealed sender matches the membership sender reach
//! the remoting layer, which checks them like stream messages.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use phalanx_actors::gossip::{
    Action, Config, MemberState, Membership, Message, NodeId as MemberNode, Notification,
    ProbeStats, Timer,
};
use phalanx_actors::registry::{ClusterRegistry, DELTA_EVENT, Delta, Notice, State};
use phalanx_runtime::{Actor, ActorRef, Context, HandlerError, Reply, Task};
use phalanx_transports::{
    ClusterId, Codec, CodecConfig, DatagramCarrier, FrameKind, Incarnation, Key, NetTransport,
    NodeId, RemoteMessage, Remoting, Transport,
};
use serde::{Deserialize, Serialize};

use super::{GOSSIP_NAME, MemberRow, security_for};

/// The failure detector's figures as the gossip actor last published them: probe outcomes and
/// suspicions, and the local health score.
pub(crate) type Detector = Arc<Mutex<(ProbeStats, u32)>>;

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
    /// The failure detector's figures for the metrics endpoint: probe outcomes and
    /// suspicions (counted since the gossip actor started) and the local health score.
    pub(crate) detector: Detector,
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
    /// A remote message for a member, to send by datagram (from [`GossipCarrier`]).
    Message(MemberNode, Vec<u8>),
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
    /// What the datagram carrier may promise: the live members and the payload budget.
    carrier: Arc<Mutex<CarrierView>>,
    /// The authenticated sender of the datagram being handled: actor messages it carries are
    /// delivered as from this node, and only if it is the membership sender too.
    datagram_sender: Option<NodeId>,
}

/// The carrier's view of membership, refreshed after every step of the core.
#[derive(Debug, Default)]
struct CarrierView {
    live: HashSet<MemberNode>,
    max_payload: usize,
}

/// The remoting layer's datagram path: hands messages to the gossip actor for members it
/// holds live; anything else goes back to the stream.
struct GossipCarrier {
    gossip: ActorRef<GossipMessage>,
    view: Arc<Mutex<CarrierView>>,
}

impl DatagramCarrier for GossipCarrier {
    fn max_payload(&self, node: NodeId) -> usize {
        match self.view.lock() {
            Ok(view) if view.live.contains(&member_node(node)) => view.max_payload,
            _ => 0,
        }
    }

    fn carry(&self, node: NodeId, payload: Vec<u8>) -> bool {
        if payload.len() > self.max_payload(node) {
            return false;
        }
        // A full gossip mailbox sends the message on the stream instead.
        let request = Request::Message(member_node(node), payload);
        self.gossip.try_tell(GossipMessage(request)).is_ok()
    }
}

impl GossipActor {
    pub(crate) fn new(services: Services) -> GossipActor {
        let me = member_node(services.node);
        let seed = u64::try_from(services.node.as_u128() >> 64).unwrap_or(0) ^ services.incarnation;
        let codec_config = CodecConfig::new(
            services.cluster,
            services.node,
            Incarnation(services.incarnation),
        );
        let codec = Codec::new(codec_config, security_for(services.key.as_ref()));
        // The core's datagram budget is what the codec can seal: its frame header and AEAD
        // tag come on top of the membership message.
        let mut config = services.config.clone();
        config.max_datagram = config.max_datagram.min(codec.max_datagram_payload());
        let membership = Membership::new(me, services.listen, services.incarnation, config, seed);
        GossipActor {
            services,
            membership,
            codec,
            wire: None,
            rows: HashMap::new(),
            origins: HashMap::new(),
            carrier: Arc::new(Mutex::new(CarrierView::default())),
            datagram_sender: None,
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
            Notification::Message { from, payload } => match self.datagram_sender {
                Some(sender) if member_node(sender) == from.node => {
                    self.services.remoting.deliver_datagram(sender, &payload);
                }
                _ => tracing::debug!(node = %from.node.0, "actor message from a mismatched sender"),
            },
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
        if let Ok(mut detector) = self.services.detector.lock() {
            *detector = (
                self.membership.probe_stats(),
                self.membership.health_score(),
            );
        }
        if let Ok(mut view) = self.carrier.lock() {
            view.live.clear();
            view.live.extend(
                self.membership
                    .live_members()
                    .map(|(member, _)| member.node),
            );
            view.max_payload = self.membership.max_message_payload();
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
        let carrier = GossipCarrier {
            gossip: ctx.myself(),
            view: Arc::clone(&self.carrier),
        };
        self.services
            .remoting
            .set_datagram_carrier(Some(Arc::new(carrier)));
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
                        Ok(message) => {
                            self.datagram_sender = Some(frame.header.sender);
                            self.membership.handle_datagram(from, message, now);
                        }
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
            Request::Message(node, payload) => {
                if let Err(error) = self.membership.send_message(node, payload) {
                    // Taken by the carrier, so the sender already counts it as sent: like a
                    // datagram lost on the way (the member went down in between).
                    tracing::debug!(node = %node.0, %error, "actor message not sent by datagram");
                }
            }
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
        self.datagram_sender = None;
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use phalanx_runtime::{Actor, Context, HandlerError, Reply, Runtime, spawn_actor};
    use phalanx_transports::{Carrier, Key, RemoteMessage};
    use serde::{Deserialize, Serialize};

    use crate::node::{Node, NodeConfig};

    const WAIT: Duration = Duration::from_secs(10);

    #[derive(Serialize, Deserialize)]
    enum Sample {
        Value(u64),
        Get(Reply<Vec<u64>>),
    }

    impl RemoteMessage for Sample {
        const TAG: &'static str = "test.node.Sample.v1";
        const CARRIER: Carrier = Carrier::Datagram;
    }

    #[derive(Default)]
    struct Sampler {
        seen: Vec<u64>,
    }

    impl Actor for Sampler {
        type Message = Sample;

        async fn handle(&mut self, _: &mut Context<Self>, msg: Sample) -> Result<(), HandlerError> {
            match msg {
                Sample::Value(n) => self.seen.push(n),
                Sample::Get(reply) => {
                    let _ = reply.send(self.seen.clone());
                }
            }
            Ok(())
        }
    }

    fn config(key: &Key, seeds: Vec<std::net::SocketAddr>) -> NodeConfig {
        let mut config = NodeConfig::new("127.0.0.1:0".parse().expect("address"));
        config.key = Some(key.clone());
        config.seeds = seeds;
        config.gossip.probe_interval = Duration::from_millis(100);
        config.gossip.probe_timeout = Duration::from_millis(50);
        config
    }

    /// Two nodes in one process on loopback, encrypted: a message type that opts in to
    /// datagrams reaches the remote actor through the gossip actors (the counters say which
    /// path it took), and its ask still goes on the stream.
    #[test]
    fn an_opted_in_message_rides_gossip_datagrams_between_two_nodes() {
        let runtime = Runtime::builder()
            .worker_threads(2)
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let key = Key::generate().expect("key");
            let a = Node::start(config(&key, vec![])).await.expect("node a");
            let b = Node::start(config(&key, vec![a.local_addr()]))
                .await
                .expect("node b");
            let alive = |node: &Node| node.members().iter().filter(|r| r.state == "alive").count();
            for _ in 0..400 {
                if alive(&a) == 2 && alive(&b) == 2 {
                    break;
                }
                phalanx_runtime::sleep(Duration::from_millis(25)).await;
            }
            assert_eq!(
                (alive(&a), alive(&b)),
                (2, 2),
                "the two nodes see each other"
            );
            let sampler = spawn_actor(Sampler::default());
            b.remoting()
                .register("sampler", &sampler)
                .expect("register");
            let node = a
                .remoting()
                .connect(b.local_addr(), WAIT)
                .await
                .expect("connect");
            let remote = a
                .remoting()
                .lookup::<Sample>(node, "sampler", WAIT)
                .await
                .expect("lookup");
            for n in 0..20 {
                remote.tell(Sample::Value(n)).await.expect("tell");
            }
            let stats = a.remoting().datagram_stats();
            assert_eq!((stats.sent, stats.fell_back), (20, 0), "{stats:?}");
            // Datagrams may be overtaken by the ask on the stream: ask until all are in.
            let mut seen = Vec::new();
            let mut asks = 0;
            for _ in 0..200 {
                asks += 1;
                seen = remote.ask(Sample::Get, WAIT).await.expect("ask");
                if seen.len() == 20 {
                    break;
                }
                phalanx_runtime::sleep(Duration::from_millis(25)).await;
            }
            seen.sort_unstable();
            assert_eq!(
                seen,
                (0..20).collect::<Vec<_>>(),
                "every datagram arrived on loopback"
            );
            let stats = b.remoting().datagram_stats();
            assert_eq!((stats.delivered, stats.dropped), (20, 0), "{stats:?}");
            let fell_back = a.remoting().datagram_stats().fell_back;
            assert_eq!(fell_back, asks, "the asks, and only they, took the stream");
            a.shutdown().await;
            b.shutdown().await;
        });
    }
}
