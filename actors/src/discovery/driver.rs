//! [`DiscoveryActor`]: the actor that drives the [`Discovery`] core with real I/O and timers.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_net::UdpSocket;
use mdns_sd::ServiceEvent;
use phalanx_runtime::{
    Actor, ActorRef, Context, ExitReason, HandlerError, Reply, Task, sleep_until, spawn,
    spawn_blocking,
};
use phalanx_transports::{Incarnation, Security};

use super::mdns::{self, Mdns};
use super::socket::{broadcast_socket, multicast_socket};
use super::{
    Action, Candidate, Discovery, DiscoveryConfig, DiscoveryCounters, DnsName, MAX_BEACON_DATAGRAM,
    MdnsConfig, MdnsPeer, MulticastConfig,
};

/// How beacons travel.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BeaconTransport {
    /// No beacon socket: beacons are neither sent nor received.
    Off,
    /// UDP multicast to a group (see [`MulticastConfig`]).
    Multicast(MulticastConfig),
    /// UDP broadcast: receive on `bind` (normally `0.0.0.0:port`), send to `target`
    /// (normally `255.255.255.255:port` or a subnet's broadcast address). Unicast to a fixed
    /// address works the same way.
    Broadcast {
        /// Where the beacon socket is bound.
        bind: SocketAddr,
        /// Where beacons are sent.
        target: SocketAddr,
    },
}

/// Everything the [`DiscoveryActor`] needs besides its keys and its sink.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DriverConfig {
    /// The core's configuration: sources and limits.
    pub discovery: DiscoveryConfig,
    /// The beacon socket. Default [`BeaconTransport::Off`].
    pub beacons: BeaconTransport,
    /// mDNS registration and browsing, if wanted. Default `None`.
    pub mdns: Option<MdnsConfig>,
}

impl DriverConfig {
    /// A driver with no beacon socket and no mDNS.
    pub fn new(discovery: DiscoveryConfig) -> DriverConfig {
        DriverConfig {
            discovery,
            beacons: BeaconTransport::Off,
            mdns: None,
        }
    }
}

/// Where the discovery actor sends its candidates.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum CandidateSink {
    /// An actor, typically gossip's; `tell` waits while its mailbox is full.
    Actor(ActorRef<Candidate>),
    /// A channel; `send_async` waits while it is full.
    Channel(flume::Sender<Candidate>),
}

impl CandidateSink {
    /// Delivers one candidate; false if the receiver is gone.
    async fn deliver(&self, candidate: Candidate) -> bool {
        match self {
            CandidateSink::Actor(actor) => actor.tell(candidate).await.is_ok(),
            CandidateSink::Channel(channel) => channel.send_async(candidate).await.is_ok(),
        }
    }
}

/// A message to the [`DiscoveryActor`]. Most are sent by the actor's own tasks; others may
/// ask for its [`counters`](DiscoveryMessage::counters).
pub struct DiscoveryMessage(Message);

impl DiscoveryMessage {
    /// Asks for the core's counters, for [`ActorRef::ask`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(
    /// #     discovery: phalanx_runtime::ActorRef<phalanx_actors::discovery::DiscoveryMessage>,
    /// # ) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    ///
    /// use phalanx_actors::discovery::DiscoveryMessage;
    ///
    /// let counters = discovery
    ///     .ask(DiscoveryMessage::counters, Duration::from_secs(1))
    ///     .await
    ///     .map_err(|e| e.to_string())?;
    /// println!("{} beacons dropped", counters.beacons.dropped());
    /// # Ok(())
    /// # }
    /// ```
    pub fn counters(reply: Reply<DiscoveryCounters>) -> DiscoveryMessage {
        DiscoveryMessage(Message::Counters(reply))
    }
}

impl fmt::Debug for DiscoveryMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.0 {
            Message::Tick => "Tick",
            Message::Resolved { .. } => "Resolved",
            Message::Beacon { .. } => "Beacon",
            Message::Mdns(_) => "Mdns",
            Message::Counters(_) => "Counters",
        };
        f.debug_tuple("DiscoveryMessage").field(&kind).finish()
    }
}

enum Message {
    /// A timer fired.
    Tick,
    /// A DNS resolution finished.
    Resolved {
        name: DnsName,
        result: io::Result<Vec<SocketAddr>>,
    },
    /// A datagram arrived on the beacon socket (at most `MAX_BEACON_DATAGRAM + 1` bytes of it,
    /// so that an oversized one is still recognized as such).
    Beacon { bytes: Vec<u8>, from: SocketAddr },
    /// mDNS resolved a service instance.
    Mdns(MdnsPeer),
    /// Someone asks for the counters.
    Counters(Reply<DiscoveryCounters>),
}

/// The discovery actor: it owns the [`Discovery`] core, a beacon socket, an optional mDNS
/// daemon and the timers, and sends every candidate to its [`CandidateSink`].
///
/// If the beacon socket or the mDNS daemon cannot be set up, [`Actor::started`] fails and the
/// actor's supervisor decides. A supervisor builds a fresh actor for each restart: the
/// [`Security`] is consumed at start.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// use phalanx_actors::discovery::{
///     CandidateSink, DiscoveryActor, DiscoveryConfig, DriverConfig, Source,
/// };
/// use phalanx_transports::{ClusterId, NodeId, Security};
///
/// let mut config = DiscoveryConfig::new(ClusterId(7), NodeId::from_u128(1));
/// config.seeds.push("127.0.0.1:7946".parse()?);
/// let (tx, rx) = flume::bounded(16);
/// let sink = CandidateSink::Channel(tx);
/// phalanx_runtime::block_on(async {
///     let actor = phalanx_runtime::spawn_actor(DiscoveryActor::new(
///         DriverConfig::new(config),
///         Security::Plaintext,
///         sink,
///     ));
///     let candidate = phalanx_runtime::timeout(Duration::from_secs(10), rx.recv_async())
///         .await??;
///     assert_eq!(candidate.source, Source::Seed);
///     actor.stop();
///     actor.wait().await;
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct DiscoveryActor {
    config: DriverConfig,
    /// Taken by `started` to build the core's codec.
    security: Option<Security>,
    sink: CandidateSink,
    /// Everything that exists only while the actor runs.
    running: Option<Running>,
}

impl fmt::Debug for DiscoveryActor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscoveryActor")
            .field("config", &self.config)
            .field("running", &self.running.is_some())
            .finish_non_exhaustive()
    }
}

struct Running {
    core: Discovery,
    /// The socket beacons are sent from, and where to.
    sender: Option<(UdpSocket, SocketAddr)>,
    mdns: Option<Mdns>,
    /// The beacon receiver, the mDNS browser and DNS resolutions; dropping a task cancels it.
    tasks: Vec<Task<()>>,
    /// The pending wake-up and its deadline.
    timer: Option<(Instant, Task<()>)>,
    /// Set once the sink is gone, so that it is reported once.
    sink_closed: bool,
}

impl DiscoveryActor {
    /// A discovery actor; `security` seals and opens beacons (the cluster's keys, or
    /// plaintext for local development).
    pub fn new(config: DriverConfig, security: Security, sink: CandidateSink) -> DiscoveryActor {
        DiscoveryActor {
            config,
            security: Some(security),
            sink,
            running: None,
        }
    }

    /// Runs the core's timers, carries out its actions, delivers its candidates and sets the
    /// next wake-up.
    async fn drive(&mut self, ctx: &mut Context<Self>) {
        let Some(running) = &mut self.running else {
            return;
        };
        let now = Instant::now();
        running.core.handle_timeout(now);
        running.tasks.retain(|task| !task.is_finished());
        while let Some(action) = running.core.poll_action() {
            match action {
                Action::Resolve(name) => running.tasks.push(resolve(name, ctx.myself())),
                Action::SendBeacon(bytes) => {
                    if let Some((socket, target)) = &running.sender
                        && let Err(error) = socket.send_to(&bytes, *target).await
                    {
                        tracing::debug!(%error, %target, "could not send beacon");
                    }
                }
            }
        }
        while let Some(candidate) = running.core.poll_candidate(now) {
            if !self.sink.deliver(candidate).await && !running.sink_closed {
                running.sink_closed = true;
                tracing::warn!("discovery's candidate sink is closed; candidates are dropped");
            }
        }
        match running.core.poll_timeout() {
            None => running.timer = None,
            Some(deadline) => {
                if running.timer.as_ref().map(|(at, _)| *at) != Some(deadline) {
                    // Never a deadline in the past: that would spin.
                    let wake = deadline.max(now + Duration::from_millis(1));
                    let me = ctx.myself();
                    let task = spawn(async move {
                        sleep_until(wake).await;
                        let _ = me.tell(DiscoveryMessage(Message::Tick)).await;
                    });
                    running.timer = Some((deadline, task));
                }
            }
        }
    }
}

impl Actor for DiscoveryActor {
    type Message = DiscoveryMessage;

    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), HandlerError> {
        let security = self
            .security
            .take()
            .ok_or("discovery actor started twice")?;
        let mut tasks = Vec::new();
        let sender = match &self.config.beacons {
            BeaconTransport::Off => None,
            BeaconTransport::Multicast(multicast) => {
                let (receiver, sender) = multicast_socket(multicast)?;
                tasks.push(receive_beacons(receiver, ctx.myself()));
                Some((sender, multicast.target()))
            }
            BeaconTransport::Broadcast { bind, target } => {
                let socket = broadcast_socket(*bind)?;
                tasks.push(receive_beacons(socket.clone(), ctx.myself()));
                Some((socket, *target))
            }
        };
        let discovery = &self.config.discovery;
        let mdns = match &self.config.mdns {
            None => None,
            Some(config) => {
                let mut mdns =
                    Mdns::start(config, discovery.cluster, discovery.node, discovery.gossip)?;
                if let Some(events) = mdns.events.take() {
                    tasks.push(browse(events, ctx.myself()));
                }
                Some(mdns)
            }
        };
        let mut core_config = self.config.discovery.clone();
        if core_config.beacon_incarnation == Incarnation(0) {
            core_config.beacon_incarnation = wall_clock_incarnation();
        }
        let core = Discovery::new(core_config, security, Instant::now());
        self.running = Some(Running {
            core,
            sender,
            mdns,
            tasks,
            timer: None,
            sink_closed: false,
        });
        self.drive(ctx).await;
        Ok(())
    }

    async fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        DiscoveryMessage(msg): DiscoveryMessage,
    ) -> Result<(), HandlerError> {
        let Some(running) = &mut self.running else {
            return Ok(());
        };
        let now = Instant::now();
        match msg {
            Message::Tick => {}
            Message::Resolved { name, result } => running.core.handle_resolved(&name, result, now),
            Message::Beacon { bytes, from } => {
                // Counted and logged by the core; a bad beacon is not the actor's failure.
                let _ = running.core.handle_beacon(&bytes, from, now);
            }
            Message::Mdns(peer) => running.core.handle_mdns(peer, now),
            Message::Counters(reply) => {
                let _ = reply.send(*running.core.counters());
                return Ok(());
            }
        }
        self.drive(ctx).await;
        Ok(())
    }

    async fn stopped(&mut self, _: &mut Context<Self>, _: &ExitReason) {
        if let Some(running) = self.running.take()
            && let Some(mdns) = running.mdns
        {
            // Best effort: the daemon thread ends on its own once the handle is dropped too.
            let _ = mdns.daemon.shutdown();
        }
    }
}

/// The wall clock in microseconds since the Unix epoch: each start of a node's discovery
/// seals its beacons with a higher incarnation than the last, so receivers do not take them
/// for replays (unless the clock steps back, in which case beacons are ignored until it
/// catches up; seeds, DNS and mDNS are unaffected).
fn wall_clock_incarnation() -> Incarnation {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |since| since.as_micros());
    Incarnation(u64::try_from(micros).unwrap_or(u64::MAX).max(1))
}

/// Resolves `name` on the blocking pool and reports back.
fn resolve(name: DnsName, me: ActorRef<DiscoveryMessage>) -> Task<()> {
    spawn(async move {
        let (host, port) = (name.host.clone(), name.port);
        let result = spawn_blocking(move || {
            (host.as_str(), port)
                .to_socket_addrs()
                .map(|addrs| addrs.take(super::MAX_DNS_RECORDS + 1).collect())
        })
        .await;
        let _ = me
            .tell(DiscoveryMessage(Message::Resolved { name, result }))
            .await;
    })
}

/// Receives beacon datagrams and hands them to the actor until it is gone.
fn receive_beacons(socket: UdpSocket, me: ActorRef<DiscoveryMessage>) -> Task<()> {
    spawn(async move {
        // One byte more than the largest beacon, so that an oversized datagram is seen as one.
        let mut buf = vec![0u8; MAX_BEACON_DATAGRAM + 1];
        loop {
            match socket.recv_from(&mut buf).await {
                Ok((len, from)) => {
                    let bytes = buf[..len.min(buf.len())].to_vec();
                    let msg = DiscoveryMessage(Message::Beacon { bytes, from });
                    if me.tell(msg).await.is_err() {
                        break;
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "beacon socket error");
                    // Errors such as ICMP reports can repeat; do not spin on them.
                    phalanx_runtime::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    })
}

/// Forwards resolved mDNS services to the actor until the daemon or the actor is gone.
fn browse(events: flume::Receiver<ServiceEvent>, me: ActorRef<DiscoveryMessage>) -> Task<()> {
    spawn(async move {
        while let Ok(event) = events.recv_async().await {
            if let ServiceEvent::ServiceResolved(service) = event
                && let Some(peer) = mdns::peer(&service)
                && me
                    .tell(DiscoveryMessage(Message::Mdns(peer)))
                    .await
                    .is_err()
            {
                break;
            }
        }
    })
}
