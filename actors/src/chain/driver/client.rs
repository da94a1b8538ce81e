//! A chain client as an actor: pipelined requests, idempotent retries, configuration
//! learning.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use phalanx_runtime::{Actor, Context, HandlerError, Reply, Task};
use serde::{Deserialize, Serialize};

use super::replica_actor::start_ticker;
use super::{Body, ChainTransport, DriverCounters, Inbound, Packet};
use crate::chain::config::{ChainConfig, ClientId, ReplicaId};
use crate::chain::machine::StateMachine;
use crate::chain::message::{ControlMessage, Message, Peer, decode, encode};
use crate::chain::reads::ReadBalancer;
use crate::clock::Clock;

/// How often an idle client asks the group for the latest configuration.
const REFRESH: Duration = Duration::from_secs(1);

/// A chain request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClientError {
    /// No answer before the deadline. A write may or may not have been applied (once at
    /// most); retrying it through the same client is not possible after this, so read to find
    /// out.
    #[error("no answer from the chain in time (a write may or may not have been applied)")]
    Timeout,
    /// No chain configuration with members was learnt before the deadline: the configuration
    /// group is unreachable or no replica joined yet. Nothing was applied.
    #[error("no chain is configured yet (is the configuration group up, with replicas?)")]
    NoChain,
    /// Too many requests outstanding on this client; nothing was sent.
    #[error("too many requests outstanding on this client")]
    Overloaded,
}

/// Settings of a [`ClientActor`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientSettings {
    /// The client's id: random, so that two clients never share a deduplication session.
    pub id: ClientId,
    /// The route replies come back by (the hosting node's id, for the transport).
    pub route: u64,
    /// The raft ids of the configuration group.
    pub group: Vec<u64>,
    /// Read from any member (CRAQ) rather than the tail only.
    pub craq: bool,
    /// An unanswered request is sent again (same request id) after this long.
    pub retry: Duration,
    /// A request fails with [`ClientError::Timeout`] after this long.
    pub deadline: Duration,
    /// The most requests outstanding at once.
    pub max_outstanding: usize,
    /// How often deadlines and retries are checked.
    pub tick: Duration,
    /// Where the client reads `now` (a fault injector can skew it).
    pub clock: Clock,
}

impl ClientSettings {
    /// Settings for client `id`, reached by `route`, of the group `group`: CRAQ reads, retries
    /// after 200 ms, 5 s deadline, up to 65,536 outstanding, 10 ms ticks, a [`Clock::system`].
    pub fn new(id: ClientId, route: u64, group: Vec<u64>) -> Self {
        Self {
            id,
            route,
            group,
            craq: true,
            retry: Duration::from_millis(200),
            deadline: Duration::from_secs(5),
            max_outstanding: 65_536,
            tick: Duration::from_millis(10),
            clock: Clock::system(),
        }
    }
}

/// The messages of a [`ClientActor`].
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientInput<S: StateMachine> {
    /// Apply a write once; answers with its output.
    Write(S::Command, Reply<Result<S::Output, ClientError>>),
    /// Answer a read, linearizably.
    Read(S::Query, Reply<Result<S::Reply, ClientError>>),
    /// The latest configuration this client knows.
    Config(Reply<Option<ChainConfig>>),
    /// A packet from the transport.
    Packet(Inbound),
    /// Packets from the transport that arrived together (one decoded batch), handled in order:
    /// one mailbox operation for the whole batch.
    Packets(Vec<Inbound>),
    /// The interval timer fired.
    Tick,
}

/// One outstanding request.
#[derive(Debug)]
struct Pending<S: StateMachine> {
    op: Operation<S>,
    deadline: Instant,
    retry_at: Instant,
    /// A read's last target and when it was sent there (for the read balancer).
    read_sent: Option<(ReplicaId, Instant)>,
}

#[derive(Debug)]
enum Operation<S: StateMachine> {
    Write(S::Command, Reply<Result<S::Output, ClientError>>),
    Read(S::Query, Reply<Result<S::Reply, ClientError>>),
}

/// A chain client: sends writes to the head and reads to the tail or, under CRAQ, to a member
/// a [`ReadBalancer`] chooses (the faster of two random ones), keeps many requests outstanding, retries each with its own request id until answered or
/// past its deadline, and follows configuration changes.
#[derive(Debug)]
pub struct ClientActor<S: StateMachine, T: ChainTransport> {
    settings: ClientSettings,
    transport: Arc<T>,
    config: Option<ChainConfig>,
    next_request: u64,
    pending: BTreeMap<u64, Pending<S>>,
    last_query: Option<Instant>,
    rng: fastrand::Rng,
    /// Where CRAQ reads go, from their latencies and the reads outstanding per replica.
    reads: ReadBalancer,
    /// The origin of the balancer's time.
    origin: Instant,
    counters: DriverCounters,
    /// The interval timer's task; dropping the actor cancels it.
    ticker: Option<Task<()>>,
}

impl<S: StateMachine, T: ChainTransport> ClientActor<S, T> {
    /// A client with `settings` over `transport`.
    pub fn new(settings: ClientSettings, transport: Arc<T>) -> Self {
        let rng = fastrand::Rng::with_seed(settings.id.0);
        let origin = settings.clock.now();
        Self {
            settings,
            transport,
            config: None,
            next_request: 1,
            pending: BTreeMap::new(),
            last_query: None,
            rng,
            reads: ReadBalancer::default(),
            origin,
            counters: DriverCounters::default(),
            ticker: None,
        }
    }

    fn start(&mut self, op: Operation<S>, now: Instant) {
        if self.pending.len() >= self.settings.max_outstanding {
            fail(op, ClientError::Overloaded);
            return;
        }
        let request = self.next_request;
        self.next_request += 1;
        self.pending.insert(
            request,
            Pending {
                op,
                deadline: now + self.settings.deadline,
                retry_at: now + self.settings.retry,
                read_sent: None,
            },
        );
        self.send_request(request, now);
    }

    /// Sends request `request` (again) to where the configuration says it goes.
    fn send_request(&mut self, request: u64, now: Instant) {
        let acked_below = self.acked_below();
        let at = now.saturating_duration_since(self.origin);
        let Some(pending) = self.pending.get_mut(&request) else {
            return;
        };
        let Some(config) = self.config.as_ref().filter(|c| !c.members.is_empty()) else {
            self.query_config(now);
            return;
        };
        let client = self.settings.id;
        // A read sent again leaves its previous target: the wait counts against it.
        if let Some((replica, sent)) = pending.read_sent.take() {
            self.reads
                .abandoned(replica, now.saturating_duration_since(sent), at);
        }
        let (target, message) = match &pending.op {
            Operation::Write(command, _) => (
                config.head(),
                Message::<S>::Write {
                    client,
                    request,
                    acked_below,
                    command: command.clone(),
                },
            ),
            Operation::Read(query, _) => {
                let target = if self.settings.craq {
                    let rng = &mut self.rng;
                    let target = self.reads.pick(&config.members, at, |n| rng.usize(..n));
                    pending.read_sent = target.map(|member| (member.id, now));
                    target
                } else {
                    config.tail()
                };
                let message = Message::<S>::Read {
                    client,
                    request,
                    query: query.clone(),
                };
                (target, message)
            }
        };
        if let Some(member) = target {
            self.send(Peer::Replica(member.id), Body::Chain, &message);
        }
    }

    /// Every request below this id was answered.
    fn acked_below(&self) -> u64 {
        self.pending
            .keys()
            .next()
            .copied()
            .unwrap_or(self.next_request)
    }

    /// Asks a random group node for the latest configuration, at most once per retry period.
    fn query_config(&mut self, now: Instant) {
        if self
            .last_query
            .is_some_and(|at| now < at + self.settings.retry / 4)
        {
            return;
        }
        self.last_query = Some(now);
        if self.settings.group.is_empty() {
            return;
        }
        let index = self.rng.usize(..self.settings.group.len());
        if let Some(&node) = self.settings.group.get(index) {
            self.send(
                Peer::Config(node),
                Body::Control,
                &ControlMessage::ConfigQuery,
            );
        }
    }

    fn send<M: Serialize>(&mut self, to: Peer, body: fn(Vec<u8>) -> Body, message: &M) {
        let Ok(bytes) = encode(message) else {
            self.counters.unencodable += 1;
            return;
        };
        self.counters.sent += 1;
        self.transport.send(Packet {
            from: Peer::Client(self.settings.id),
            to,
            body: body(bytes),
            routes: vec![(self.settings.id, self.settings.route)],
        });
    }

    fn on_packet(&mut self, inbound: Inbound, now: Instant) {
        self.counters.received += 1;
        let packet = inbound.packet;
        if packet.to != Peer::Client(self.settings.id) {
            self.counters.misaddressed += 1;
            return;
        }
        match packet.body {
            Body::Chain(bytes) => match decode::<Message<S>>(&bytes) {
                Ok(message) => self.on_message(message, now),
                Err(_) => self.counters.malformed += 1,
            },
            Body::Control(bytes) => match decode::<ControlMessage>(&bytes) {
                Ok(ControlMessage::ConfigUpdate { config })
                | Ok(ControlMessage::LeaseReply { config, .. }) => self.adopt(config, now),
                Ok(_) => self.counters.misaddressed += 1,
                Err(_) => self.counters.malformed += 1,
            },
            Body::Raft(_) => self.counters.misaddressed += 1,
        }
    }

    fn on_message(&mut self, message: Message<S>, now: Instant) {
        match message {
            Message::WriteReply { request, output } => {
                if matches!(
                    self.pending.get(&request).map(|p| &p.op),
                    Some(Operation::Write(..))
                ) && let Some(Pending {
                    op: Operation::Write(_, reply),
                    ..
                }) = self.pending.remove(&request)
                {
                    let _ = reply.send(Ok(output));
                }
            }
            Message::ReadReply { request, reply } => {
                if matches!(
                    self.pending.get(&request).map(|p| &p.op),
                    Some(Operation::Read(..))
                ) && let Some(Pending {
                    op: Operation::Read(_, answer),
                    read_sent,
                    ..
                }) = self.pending.remove(&request)
                {
                    if let Some((replica, sent)) = read_sent {
                        let at = now.saturating_duration_since(self.origin);
                        let latency = now.saturating_duration_since(sent);
                        self.reads.completed(replica, latency, at);
                    }
                    let _ = answer.send(Ok(reply));
                }
            }
            Message::NotServing { request, .. } => {
                // The configuration moved on, or the replica is not ready: ask the group, and
                // try again soon.
                if let Some(pending) = self.pending.get_mut(&request) {
                    let soon = now + self.settings.retry / 10;
                    pending.retry_at = pending.retry_at.min(soon);
                }
                self.query_config(now);
            }
            _ => self.counters.misaddressed += 1,
        }
    }

    /// Adopts a newer configuration and sends every outstanding request again under it.
    fn adopt(&mut self, config: ChainConfig, now: Instant) {
        if self
            .config
            .as_ref()
            .is_some_and(|c| c.epoch >= config.epoch)
        {
            return;
        }
        self.reads.retain(&config.members);
        self.config = Some(config);
        let requests: Vec<u64> = self.pending.keys().copied().collect();
        for request in requests {
            if let Some(pending) = self.pending.get_mut(&request) {
                pending.retry_at = now + self.settings.retry;
            }
            self.send_request(request, now);
        }
    }

    fn on_tick(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| now >= p.deadline)
            .map(|(&request, _)| request)
            .collect();
        let chain_known = self.config.as_ref().is_some_and(|c| !c.members.is_empty());
        for request in expired {
            if let Some(pending) = self.pending.remove(&request) {
                if let Some((replica, sent)) = pending.read_sent {
                    let at = now.saturating_duration_since(self.origin);
                    let waited = now.saturating_duration_since(sent);
                    self.reads.abandoned(replica, waited, at);
                }
                let error = if chain_known {
                    ClientError::Timeout
                } else {
                    ClientError::NoChain
                };
                fail(pending.op, error);
            }
        }
        let due: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| now >= p.retry_at)
            .map(|(&request, _)| request)
            .collect();
        // Outstanding retries refresh the configuration; so does an idle client now and then.
        let stale = self.last_query.is_none_or(|at| now >= at + REFRESH);
        if !due.is_empty() || stale {
            self.query_config(now);
        }
        for request in due {
            if let Some(pending) = self.pending.get_mut(&request) {
                pending.retry_at = now + self.settings.retry;
            }
            self.send_request(request, now);
        }
    }
}

fn fail<S: StateMachine>(op: Operation<S>, error: ClientError) {
    match op {
        Operation::Write(_, reply) => {
            let _ = reply.send(Err(error));
        }
        Operation::Read(_, reply) => {
            let _ = reply.send(Err(error));
        }
    }
}

impl<S, T> Actor for ClientActor<S, T>
where
    S: StateMachine + Send + 'static,
    S::Key: Send,
    S::Command: Send,
    S::Output: Send,
    S::Query: Send,
    S::Reply: Send,
    T: ChainTransport,
{
    type Message = ClientInput<S>;

    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), HandlerError> {
        self.ticker = Some(start_ticker(ctx.myself(), self.settings.tick, || {
            ClientInput::Tick
        }));
        self.query_config(self.settings.clock.now());
        Ok(())
    }

    async fn handle(
        &mut self,
        _: &mut Context<Self>,
        msg: ClientInput<S>,
    ) -> Result<(), HandlerError> {
        let now = self.settings.clock.now();
        match msg {
            ClientInput::Write(command, reply) => {
                self.start(Operation::Write(command, reply), now);
            }
            ClientInput::Read(query, reply) => self.start(Operation::Read(query, reply), now),
            ClientInput::Config(reply) => {
                let _ = reply.send(self.config.clone());
                self.query_config(now);
            }
            ClientInput::Packet(inbound) => self.on_packet(inbound, now),
            ClientInput::Packets(batch) => {
                for inbound in batch {
                    self.on_packet(inbound, now);
                }
            }
            ClientInput::Tick => self.on_tick(now),
        }
        Ok(())
    }
}
