//! The actor that drives a [`Replica`] with real time and a [`ChainTransport`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use phalanx_runtime::{Actor, ActorRef, Context, HandlerError, Reply, Task, TrySendError};
use serde::{Deserialize, Serialize};

use super::routes::Routes;
use super::{Body, ChainTransport, DriverCounters, Inbound, Packet};
use crate::chain::config::{ChainConfig, ClientId, ReplicaId};
use crate::chain::machine::StateMachine;
use crate::chain::message::{ControlMessage, Message, Peer, decode, encode};
use crate::chain::replica::{Action, Replica};
use crate::clock::Clock;

/// How often a driver ticks its core and how it batches.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriverSettings {
    /// The period of the core's `handle_tick`.
    pub tick: Duration,
    /// The most inputs handled between two flushes when the mailbox never drains (a flush
    /// happens anyway whenever the mailbox is empty).
    pub flush_every: usize,
    /// Where the driver reads `now` (a fault injector can skew it).
    pub clock: Clock,
}

impl Default for DriverSettings {
    /// Ticks every 5 ms, flushes at least every 256 inputs, reads a [`Clock::system`].
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(5),
            flush_every: 256,
            clock: Clock::system(),
        }
    }
}

/// The messages of a [`ReplicaActor`].
#[derive(Debug)]
#[non_exhaustive]
pub enum ReplicaInput {
    /// A packet from the transport.
    Packet(Inbound),
    /// The interval timer fired.
    Tick,
    /// Report the replica's state.
    Status(Reply<ReplicaStatus>),
}

/// A replica's state, as reported to operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReplicaStatus {
    /// The replica.
    pub id: ReplicaId,
    /// Its incarnation.
    pub incarnation: u64,
    /// The latest configuration it adopted.
    pub config: Option<ChainConfig>,
    /// Highest committed sequence number.
    pub committed: u64,
    /// Highest received sequence number.
    pub received: u64,
    /// Whether it caught up in its configuration.
    pub synced: bool,
    /// What the driver counted.
    pub counters: DriverCounters,
}

/// Drives one [`Replica`]: decodes packets, ticks it, flushes it when the mailbox is drained
/// and sends what it asks for.
#[derive(Debug)]
pub struct ReplicaActor<S: StateMachine, T: ChainTransport> {
    replica: Replica<S>,
    transport: Arc<T>,
    settings: DriverSettings,
    routes: Routes,
    counters: DriverCounters,
    /// Inputs handled since the last flush.
    unflushed: usize,
    /// The interval timer's task; dropping the actor cancels it.
    ticker: Option<Task<()>>,
}

impl<S: StateMachine, T: ChainTransport> ReplicaActor<S, T> {
    /// An actor driving `replica` over `transport`.
    pub fn new(replica: Replica<S>, transport: Arc<T>, settings: DriverSettings) -> Self {
        Self {
            replica,
            transport,
            settings,
            routes: Routes::default(),
            counters: DriverCounters::default(),
            unflushed: 0,
            ticker: None,
        }
    }

    fn on_packet(&mut self, inbound: Inbound, now: Instant) {
        self.counters.received += 1;
        let Packet {
            from,
            to,
            body,
            routes,
        } = inbound.packet;
        if to != Peer::Replica(self.replica.id()) {
            self.counters.misaddressed += 1;
            return;
        }
        self.routes.learn(&routes);
        match (body, from) {
            (Body::Chain(bytes), from) => match decode::<Message<S>>(&bytes) {
                Ok(message) => self.replica.handle_message(from, message, now),
                Err(_) => self.counters.malformed += 1,
            },
            (Body::Control(bytes), Peer::Config(group)) => match decode::<ControlMessage>(&bytes) {
                Ok(message) => self.replica.handle_control(group, message, now),
                Err(_) => self.counters.malformed += 1,
            },
            _ => self.counters.misaddressed += 1,
        }
    }

    fn status(&self) -> ReplicaStatus {
        ReplicaStatus {
            id: self.replica.id(),
            incarnation: self.replica.incarnation(),
            config: self.replica.config().cloned(),
            committed: self.replica.committed(),
            received: self.replica.received(),
            synced: self.replica.is_synced(),
            counters: self.counters,
        }
    }

    fn send_actions(&mut self) {
        let me = Peer::Replica(self.replica.id());
        while let Some(action) = self.replica.poll_action() {
            let packet = match action {
                Action::Send { to, message } => {
                    let routes = self.routes.of(clients_named(to, &message));
                    let Ok(bytes) = encode(&message) else {
                        self.counters.unencodable += 1;
                        continue;
                    };
                    Packet {
                        from: me,
                        to,
                        body: Body::Chain(bytes),
                        routes,
                    }
                }
                Action::Control { to, message } => {
                    let Ok(bytes) = encode(&message) else {
                        self.counters.unencodable += 1;
                        continue;
                    };
                    Packet {
                        from: me,
                        to: Peer::Config(to),
                        body: Body::Control(bytes),
                        routes: Vec::new(),
                    }
                }
            };
            self.counters.sent += 1;
            self.transport.send(packet);
        }
    }
}

/// The clients a message names (the receiver, forwarded entries, tail reads), whose routes go
/// with it.
fn clients_named<S: StateMachine>(to: Peer, message: &Message<S>) -> Vec<ClientId> {
    let mut clients = Vec::new();
    if let Peer::Client(client) = to {
        clients.push(client);
    }
    match message {
        Message::Forward { entries, .. } | Message::SyncReply { entries, .. } => {
            clients.extend(entries.iter().map(|entry| entry.client));
        }
        Message::TailRead { client, .. } => clients.push(*client),
        _ => {}
    }
    clients
}

/// Starts a task that tells `actor` `tick()` every `period` until it ends. A full mailbox
/// skips a tick (the actor is busy; the next tick comes soon).
pub(super) fn start_ticker<M: Send + 'static>(
    actor: ActorRef<M>,
    period: Duration,
    tick: fn() -> M,
) -> Task<()> {
    phalanx_runtime::spawn(async move {
        let mut ticks = phalanx_runtime::interval(period);
        while ticks.next().await.is_some() {
            if let Err(TrySendError::Closed(_)) = actor.try_tell(tick()) {
                break;
            }
        }
    })
}

impl<S, T> Actor for ReplicaActor<S, T>
where
    S: StateMachine + Send + 'static,
    S::Key: Send,
    S::Command: Send,
    S::Output: Send,
    S::Query: Send,
    S::Reply: Send,
    T: ChainTransport,
{
    type Message = ReplicaInput;

    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), HandlerError> {
        self.ticker = Some(start_ticker(ctx.myself(), self.settings.tick, || {
            ReplicaInput::Tick
        }));
        // Ask the group for a lease (and so to be appended) at once.
        self.replica.handle_tick(self.settings.clock.now());
        self.send_actions();
        Ok(())
    }

    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        msg: ReplicaInput,
    ) -> Result<(), HandlerError> {
        let now = self.settings.clock.now();
        match msg {
            ReplicaInput::Packet(inbound) => self.on_packet(inbound, now),
            ReplicaInput::Tick => self.replica.handle_tick(now),
            ReplicaInput::Status(reply) => {
                let _ = reply.send(self.status());
            }
        }
        self.unflushed += 1;
        if self.unflushed >= self.settings.flush_every || ctx.myself().mailbox_len() == 0 {
            self.unflushed = 0;
            self.replica.flush(now);
        }
        self.send_actions();
        Ok(())
    }
}
