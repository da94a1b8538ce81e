//! The connection layer: sealed, batched, reconnecting streams between nodes, on any
//! [`Transport`].
//!
//! An [`Endpoint`] keeps one *outbound* connection per peer address. A node writes only on the
//! connections it dialed, so a pair of nodes shares two connections, one per direction (as
//! Akka's Artery does): there is never a race between two nodes dialing each other at once,
//! and order per sender-receiver pair follows from the single writer per direction. Each
//! connection starts with a challenge-response handshake (see `handshake`), then the dialer
//! sends batches of records, each batch one sealed frame (one AEAD pass and usually one write
//! for many messages), while the acceptor hands every frame's payload to the [`Handler`].
//!
//! A failed connection, or a failed dial, drops what was queued for that peer (at-most-once,
//! like Erlang's distribution) and reports the peer down; the connection is dialed again,
//! with exponential backoff, once there is something to send.
//!
//! Both ends of a connection send heartbeats and close it when the peer has been silent for
//! [`EndpointConfig::idle_timeout`] (see `keepalive`), so a peer that vanished without closing
//! its sockets is reported down too. A node reported down also loses the outbound connection
//! to it.

mod handshake;
mod keepalive;
mod key_follower;
mod outbox;
mod writer;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncReadExt, future};
use phalanx_runtime::Handle;

use crate::backoff::Backoff;
use crate::codec::{Codec, CodecConfig, DEFAULT_MAX_STREAM_FRAME};
use crate::counters::DropCounters;
use crate::error::{DecodeError, EncodeError};
use crate::frame::{ClusterId, FrameKind, Incarnation, NodeId};
use crate::shared_keyring::SharedKeyring;
use crate::stream::StreamDecoder;
use crate::transport::{ByteStream, Transport, TransportError};
use keepalive::Liveness;
use key_follower::KeyFollower;
pub(crate) use outbox::{Mode, Outbox, TooLarge};
use writer::Writer;

/// Bytes asked of the socket per read on an inbound connection.
const READ_SIZE: usize = 64 * 1024;

/// Default payload bytes per batch (one sealed frame).
pub const DEFAULT_BATCH_BYTES: usize = 64 * 1024;

/// Settings of an [`Endpoint`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EndpointConfig {
    /// The cluster this node belongs to; frames of other clusters are dropped.
    pub cluster: ClusterId,
    /// This node's id.
    pub node: NodeId,
    /// This node's incarnation (bump it on every restart).
    pub incarnation: Incarnation,
    /// Largest stream frame, sent or accepted (default
    /// [`DEFAULT_MAX_STREAM_FRAME`]).
    pub max_stream_frame: usize,
    /// Payload bytes after which a batch is closed and a new one started (default
    /// [`DEFAULT_BATCH_BYTES`]).
    pub batch_bytes: usize,
    /// Bytes queued per peer before senders wait (default 4 MiB).
    pub outbox_limit: usize,
    /// How long a handshake may take (default 5 s).
    pub handshake_timeout: Duration,
    /// First reconnection delay (default 20 ms), doubled per failure up to `backoff_cap`.
    pub backoff_base: Duration,
    /// Longest reconnection delay (default 2 s).
    pub backoff_cap: Duration,
    /// How long an inbound connection still opens frames sealed with a key this node removed,
    /// while its peer has not switched to another key yet (default 30 s; see
    /// [`SharedKeyring`]).
    pub removed_key_grace: Duration,
    /// Both ends of every connection send a heartbeat this often (default 1 s).
    pub heartbeat_interval: Duration,
    /// A connection on which nothing arrived for this long, while its reader was waiting, is
    /// closed and its node reported down (default 5 s): this is how a peer that went silent
    /// without closing its connections is detected. Keep it several heartbeat intervals long.
    pub idle_timeout: Duration,
}

impl EndpointConfig {
    /// Defaults for a node.
    pub fn new(cluster: ClusterId, node: NodeId, incarnation: Incarnation) -> EndpointConfig {
        EndpointConfig {
            cluster,
            node,
            incarnation,
            max_stream_frame: DEFAULT_MAX_STREAM_FRAME,
            batch_bytes: DEFAULT_BATCH_BYTES,
            outbox_limit: 4 << 20,
            handshake_timeout: Duration::from_secs(5),
            backoff_base: Duration::from_millis(20),
            backoff_cap: Duration::from_secs(2),
            removed_key_grace: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(5),
        }
    }
}

/// How an [`Endpoint`] protects its connections.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum EndpointSecurity {
    /// **Development only**: no encryption, no authentication. A warning is logged when an
    /// endpoint starts in this mode.
    Plaintext,
    /// Every frame is sealed with the shared keyring's primary key.
    Keyring(SharedKeyring),
}

/// What an [`Endpoint`] calls when frames arrive and peers come and go.
///
/// Calls for one connection are sequential: the next frame is read only after the
/// [`Delivery`] of the previous one completes, which is how backpressure reaches the sender.
pub trait Handler: Send + Sync + 'static {
    /// A frame's payload arrived from `from` (authenticated unless in plaintext mode).
    fn frame<'a>(&'a self, from: NodeId, kind: FrameKind, payload: &'a [u8]) -> Delivery<'a>;

    /// A connection to or from `node` completed its handshake, and the node was not up.
    fn peer_up(&self, node: NodeId, incarnation: Incarnation, addr: SocketAddr) {
        let _ = (node, incarnation, addr);
    }

    /// A connection to or from `node` was lost, or a dial to it failed: it is down.
    fn peer_down(&self, node: NodeId) {
        let _ = node;
    }
}

/// The rest of a [`Handler::frame`] call: nothing, or a future to await before the connection
/// reads on.
#[must_use = "a pending delivery must be awaited"]
pub struct Delivery<'a>(Option<Pin<Box<dyn Future<Output = ()> + Send + 'a>>>);

impl<'a> Delivery<'a> {
    /// The frame was handled completely.
    pub fn done() -> Delivery<'a> {
        Delivery(None)
    }

    /// The frame is handled once `future` completes (for example, waiting for room in a full
    /// mailbox).
    pub fn pending(future: impl Future<Output = ()> + Send + 'a) -> Delivery<'a> {
        Delivery(Some(Box::pin(future)))
    }

    async fn finish(self) {
        if let Some(future) = self.0 {
            future.await;
        }
    }
}

impl fmt::Debug for Delivery<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Delivery").field(&self.0.is_some()).finish()
    }
}

/// Why [`Endpoint::connect`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The dial or the handshake failed; the endpoint retries later with backoff.
    #[error("could not connect to {0}")]
    Failed(SocketAddr),
    /// No connection within the time given.
    #[error("no connection to {0} within the timeout")]
    Timeout(SocketAddr),
    /// The endpoint was closed.
    #[error("endpoint closed")]
    Closed,
}

/// Why a record could not be queued for a peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendBytesError {
    /// The record is larger than a frame can carry; nothing was queued.
    #[error("record of {len} bytes exceeds the largest frame payload of {max}")]
    TooLarge {
        /// The record's size.
        len: usize,
        /// The largest payload a frame carries.
        max: usize,
    },
    /// The peer is unreachable right now; the record was dropped.
    #[error("peer unreachable; record dropped")]
    Unreachable,
    /// The endpoint was closed.
    #[error("endpoint closed")]
    Closed,
}

impl From<TooLarge> for SendBytesError {
    fn from(error: TooLarge) -> Self {
        SendBytesError::TooLarge {
            len: error.len,
            max: error.max,
        }
    }
}

/// The connection layer of a node. Cheap to clone; [`close`](Self::close) ends it.
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Weak};
///
/// use phalanx_transports::{
///     ClusterId, Delivery, Endpoint, EndpointConfig, EndpointSecurity, FrameKind, Handler,
///     Incarnation, Key, NetTransport, NodeId, SharedKeyring,
/// };
///
/// struct Print;
/// impl Handler for Print {
///     fn frame<'a>(&'a self, from: NodeId, _: FrameKind, payload: &'a [u8]) -> Delivery<'a> {
///         println!("{from}: {payload:?}");
///         Delivery::done()
///     }
/// }
///
/// phalanx_runtime::block_on(async {
///     let keys = SharedKeyring::new(Key::generate()?);
///     let handler: Arc<dyn Handler> = Arc::new(Print);
///     let mut endpoints = Vec::new();
///     for n in 1..=2 {
///         let transport = Arc::new(NetTransport::bind("127.0.0.1:0".parse()?).await?);
///         let config = EndpointConfig::new(ClusterId(1), NodeId::from_u128(n), Incarnation(1));
///         let security = EndpointSecurity::Keyring(keys.clone());
///         let endpoint = Endpoint::new(transport, config, security, Arc::downgrade(&handler));
///         endpoint.start();
///         endpoints.push(endpoint);
///     }
///     let to = endpoints[1].local_addr();
///     let node = endpoints[0].connect(to, std::time::Duration::from_secs(5)).await?;
///     assert_eq!(node, NodeId::from_u128(2));
///     endpoints[0].sender(to).send(b"hello")?;
///     endpoints.iter().for_each(Endpoint::close);
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Endpoint {
    shared: Arc<Shared>,
}

struct Shared {
    config: EndpointConfig,
    security: EndpointSecurity,
    transport: Arc<dyn Transport>,
    handler: Weak<dyn Handler>,
    runtime: Handle,
    /// Outbound peers by dial address.
    peers: Mutex<HashMap<SocketAddr, Arc<Peer>>>,
    nodes: Mutex<HashMap<NodeId, NodeEntry>>,
    drops: Mutex<DropCounters>,
    handshake_failures: AtomicU64,
    discarded_bytes: AtomicU64,
    /// Every task races against this channel; dropping the sender ends them all.
    close_tx: Mutex<Option<flume::Sender<()>>>,
    close_rx: flume::Receiver<()>,
}

#[derive(Debug)]
struct NodeEntry {
    incarnation: Incarnation,
    /// Where the node accepts connections.
    listen: SocketAddr,
    up: bool,
}

struct Peer {
    addr: SocketAddr,
    outbox: Outbox,
    /// Waiting [`Endpoint::connect`] calls.
    waiters: Mutex<Vec<flume::Sender<Option<NodeId>>>>,
    /// The node at the other end while the connection is up.
    connected: Mutex<Option<NodeId>>,
    /// The connection's writer while it is up and not busy in the connection task (see
    /// `writer`).
    writer: Mutex<Option<Writer>>,
}

/// A handle for queueing records to one peer, from [`Endpoint::sender`].
#[derive(Clone)]
pub struct PeerSender {
    peer: Arc<Peer>,
}

impl Endpoint {
    /// An endpoint on `transport`; call [`start`](Self::start) to accept connections.
    /// `handler` is held weakly, so that a handler may own its endpoint.
    pub fn new(
        transport: Arc<dyn Transport>,
        config: EndpointConfig,
        security: EndpointSecurity,
        handler: Weak<dyn Handler>,
    ) -> Endpoint {
        let (close_tx, close_rx) = flume::bounded(1);
        Endpoint {
            shared: Arc::new(Shared {
                config,
                security,
                transport,
                handler,
                runtime: Handle::current(),
                peers: Mutex::new(HashMap::new()),
                nodes: Mutex::new(HashMap::new()),
                drops: Mutex::new(DropCounters::default()),
                handshake_failures: AtomicU64::new(0),
                discarded_bytes: AtomicU64::new(0),
                close_tx: Mutex::new(Some(close_tx)),
                close_rx,
            }),
        }
    }

    /// Starts accepting connections. Call it once.
    pub fn start(&self) {
        if matches!(self.shared.security, EndpointSecurity::Plaintext) {
            tracing::warn!(
                node = %self.shared.config.node,
                "endpoint runs in PLAINTEXT: no encryption, no authentication (development only)"
            );
        }
        let shared = Arc::clone(&self.shared);
        self.shared.spawn(async move { accept_loop(shared).await });
    }

    /// The address other nodes dial to reach this one.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.transport.local_addr()
    }

    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.shared.config.node
    }

    /// The settings.
    pub fn config(&self) -> &EndpointConfig {
        &self.shared.config
    }

    /// The sender for the peer at `addr`, creating its connection task on first use.
    pub fn sender(&self, addr: SocketAddr) -> PeerSender {
        PeerSender {
            peer: self.shared.peer(addr),
        }
    }

    /// The sender for `node`, if a connection to or from it was ever made.
    pub fn sender_to_node(&self, node: NodeId) -> Option<PeerSender> {
        let listen = lock(&self.shared.nodes).get(&node)?.listen;
        Some(self.sender(listen))
    }

    /// Connects to `addr` (if not connected yet) and returns the node there.
    ///
    /// # Errors
    ///
    /// [`ConnectError`]: the dial or handshake failed, took longer than `timeout`, or the
    /// endpoint was closed.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<NodeId, ConnectError> {
        let peer = self.shared.peer(addr);
        let (tx, rx) = flume::bounded(1);
        {
            let connected = lock(&peer.connected);
            if let Some(node) = *connected {
                return Ok(node);
            }
            // Registered under the `connected` lock, so an ongoing connection attempt either
            // saw this waiter or had already set `connected`.
            lock(&peer.waiters).push(tx);
        }
        peer.outbox.want_connection();
        match phalanx_runtime::timeout(timeout, rx.recv_async()).await {
            Ok(Ok(Some(node))) => Ok(node),
            Ok(Ok(None)) => Err(ConnectError::Failed(addr)),
            Ok(Err(_)) => Err(ConnectError::Closed),
            Err(_) => Err(ConnectError::Timeout(addr)),
        }
    }

    /// Whether `node` is up (a connection to or from it is established).
    pub fn is_up(&self, node: NodeId) -> bool {
        lock(&self.shared.nodes).get(&node).is_some_and(|e| e.up)
    }

    /// The incarnation `node` last connected with, if it ever did (up or not).
    pub fn peer_incarnation(&self, node: NodeId) -> Option<Incarnation> {
        lock(&self.shared.nodes).get(&node).map(|e| e.incarnation)
    }

    /// Input dropped by this endpoint's connections so far, per reason (counted when a
    /// connection ends, which every decode error causes).
    pub fn drop_counters(&self) -> DropCounters {
        *lock(&self.shared.drops)
    }

    /// Connections whose handshake failed or timed out.
    pub fn handshake_failures(&self) -> u64 {
        self.shared.handshake_failures.load(Ordering::Relaxed)
    }

    /// Bytes of queued records dropped because their peer became unreachable.
    pub fn discarded_bytes(&self) -> u64 {
        self.shared.discarded_bytes.load(Ordering::Relaxed)
    }

    /// Closes every connection and stops accepting; queued records are dropped. Idempotent.
    pub fn close(&self) {
        lock(&self.shared.close_tx).take();
        let peers: Vec<Arc<Peer>> = lock(&self.shared.peers).values().cloned().collect();
        for peer in peers {
            peer.outbox.set_mode(Mode::Closed);
            lock(&peer.waiters).clear();
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("node", &self.shared.config.node)
            .field("addr", &self.local_addr())
            .finish_non_exhaustive()
    }
}

impl PeerSender {
    /// The peer's dial address.
    pub fn addr(&self) -> SocketAddr {
        self.peer.addr
    }

    /// Queues one record (an opaque byte string; the handler on the other side receives
    /// batches of records concatenated, so records must delimit themselves).
    ///
    /// # Errors
    ///
    /// [`SendBytesError`]: too large, peer unreachable (dropped), or endpoint closed.
    pub fn send(&self, record: &[u8]) -> Result<(), SendBytesError> {
        self.push(|buf| {
            buf.extend_from_slice(record);
            Ok(())
        })
    }

    /// Waits until the peer's queue has room; [`send`](Self::send) never waits by itself.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn ready(&self) {
        self.peer.outbox.ready().await;
    }

    /// Queues a record written by `write` straight into the batch buffer.
    pub(crate) fn push<E>(&self, write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<(), E>
    where
        E: From<TooLarge> + From<SendBytesError>,
    {
        match self.peer.outbox.push(write)? {
            Mode::Queue => Ok(()),
            Mode::Discard => Err(SendBytesError::Unreachable.into()),
            Mode::Closed => Err(SendBytesError::Closed.into()),
        }
    }

    /// Queues a record written by `write` if the peer's queue has room; `Ok(false)` (nothing
    /// written) if it is full.
    pub(crate) fn try_push<E>(
        &self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<bool, E>
    where
        E: From<TooLarge> + From<SendBytesError>,
    {
        match self.peer.outbox.push_if_room(write)? {
            None => Ok(false),
            Some(Mode::Queue) => Ok(true),
            Some(Mode::Discard) => Err(SendBytesError::Unreachable.into()),
            Some(Mode::Closed) => Err(SendBytesError::Closed.into()),
        }
    }

    /// Puts what is queued on the wire from this thread if the connection's writer is free,
    /// instead of waking the connection task (which saves a hop between threads for a
    /// latency-sensitive record). Never waits; what cannot be written at once is left to the
    /// connection task.
    pub(crate) fn flush_now(&self) {
        let Ok(mut slot) = self.peer.writer.try_lock() else {
            return;
        };
        let Some(writer) = slot.as_mut() else { return };
        if writer.is_pending() {
            // The connection task is finishing a write and will take the rest.
            return;
        }
        match writer.fill(&self.peer.outbox) {
            Ok(true) if writer.write_now() => {}
            Ok(false) => {}
            Ok(true) | Err(_) => self.peer.outbox.kick(),
        }
    }

    /// Whether the peer's queue is full, so that [`ready`](Self::ready) would wait.
    pub fn is_full(&self) -> bool {
        self.peer.outbox.is_full()
    }

    /// Whether records are currently dropped because the peer is unreachable.
    pub fn is_unreachable(&self) -> bool {
        self.peer.outbox.mode() == Mode::Discard
    }
}

impl fmt::Debug for PeerSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PeerSender").field(&self.peer.addr).finish()
    }
}

impl Shared {
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let closed = self.close_rx.clone();
        self.runtime
            .spawn(future::or(task, async move {
                let _ = closed.recv_async().await;
            }))
            .detach();
    }

    fn peer(self: &Arc<Self>, addr: SocketAddr) -> Arc<Peer> {
        let mut peers = lock(&self.peers);
        if let Some(peer) = peers.get(&addr) {
            return Arc::clone(peer);
        }
        let max_payload = self
            .codec_config()
            .stream_frame_limit()
            .saturating_sub(crate::envelope::MAX_OVERHEAD);
        let peer = Arc::new(Peer {
            addr,
            outbox: Outbox::new(
                self.config.batch_bytes,
                max_payload,
                self.config.outbox_limit,
                crate::codec::STREAM_HEADROOM,
            ),
            waiters: Mutex::new(Vec::new()),
            connected: Mutex::new(None),
            writer: Mutex::new(None),
        });
        if lock(&self.close_tx).is_none() {
            peer.outbox.set_mode(Mode::Closed);
        }
        peers.insert(addr, Arc::clone(&peer));
        drop(peers);
        let (shared, task_peer) = (Arc::clone(self), Arc::clone(&peer));
        self.spawn(async move { outbound(shared, task_peer).await });
        peer
    }

    fn codec_config(&self) -> CodecConfig {
        let mut config = CodecConfig::new(
            self.config.cluster,
            self.config.node,
            self.config.incarnation,
        );
        config.max_stream_frame = self.config.max_stream_frame;
        config
    }

    /// A codec for a new connection and the follower that keeps its keys current.
    fn connection_codec(&self) -> (Codec, KeyFollower) {
        KeyFollower::codec(
            self.codec_config(),
            &self.security,
            self.config.removed_key_grace,
        )
    }

    fn link_up(&self, node: NodeId, incarnation: Incarnation, listen: SocketAddr) {
        let (mut down, mut up) = (false, false);
        {
            let mut nodes = lock(&self.nodes);
            let entry = nodes.entry(node).or_insert(NodeEntry {
                incarnation,
                listen,
                up: false,
            });
            if entry.up && entry.incarnation != incarnation {
                down = true;
                entry.up = false;
            }
            entry.incarnation = incarnation;
            entry.listen = listen;
            if !entry.up {
                entry.up = true;
                up = true;
            }
        }
        if down {
            self.close_outbound_to(node);
        }
        if let Some(handler) = self.handler.upgrade() {
            if down {
                handler.peer_down(node);
            }
            if up {
                tracing::debug!(%node, %listen, "peer up");
                handler.peer_up(node, incarnation, listen);
            }
        }
    }

    fn link_down(&self, node: NodeId, incarnation: Incarnation) {
        let down = {
            let mut nodes = lock(&self.nodes);
            match nodes.get_mut(&node) {
                Some(entry) if entry.up && entry.incarnation == incarnation => {
                    entry.up = false;
                    true
                }
                _ => false,
            }
        };
        if down {
            tracing::debug!(%node, "peer down");
            self.close_outbound_to(node);
            if let Some(handler) = self.handler.upgrade() {
                handler.peer_down(node);
            }
        }
    }

    /// Ends the outbound connections to `node`, just declared down (its inbound connection
    /// ended, or it came back with a new incarnation): what the old incarnation did not read
    /// is lost either way, and [`Endpoint::connect`] must not report a stale connection as up.
    fn close_outbound_to(&self, node: NodeId) {
        let peers: Vec<Arc<Peer>> = lock(&self.peers).values().cloned().collect();
        for peer in peers {
            let mut connected = lock(&peer.connected);
            if *connected == Some(node) {
                *connected = None;
                drop(connected);
                let dropped = peer.outbox.set_mode(Mode::Discard);
                self.discarded_bytes
                    .fetch_add(dropped as u64, Ordering::Relaxed);
            }
        }
    }

    fn count(&self, codec: &Codec) {
        lock(&self.drops).merge(codec.counters());
    }
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    #[error("connection closed")]
    Closed,
    #[error("handshake failed: {0}")]
    Handshake(&'static str),
    #[error("handshake timed out")]
    Timeout,
    #[error("nothing heard from the peer within the idle timeout")]
    Idle,
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

async fn accept_loop(shared: Arc<Shared>) {
    loop {
        match shared.transport.accept_stream().await {
            Ok((stream, from)) => {
                let task_shared = Arc::clone(&shared);
                shared.spawn(async move { inbound(task_shared, stream, from).await });
            }
            Err(TransportError::Closed) => return,
            Err(error) => {
                // For example, too many open files: wait a little rather than spin.
                tracing::warn!(%error, "accept failed");
                phalanx_runtime::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn inbound(shared: Arc<Shared>, mut stream: Box<dyn ByteStream>, from: SocketAddr) {
    let (mut codec, mut keys) = shared.connection_codec();
    let mut decoder = StreamDecoder::new();
    let handshake = phalanx_runtime::timeout(
        shared.config.handshake_timeout,
        handshake::answer(&mut stream, &mut codec, &mut decoder),
    )
    .await
    .unwrap_or(Err(LinkError::Timeout));
    let peer = match handshake {
        Ok(peer) => peer,
        Err(error) => {
            tracing::debug!(%from, %error, "inbound handshake failed");
            shared.handshake_failures.fetch_add(1, Ordering::Relaxed);
            shared.count(&codec);
            return;
        }
    };
    let node = peer.header.sender;
    let incarnation = peer.header.incarnation;
    let mut listen = peer.listen;
    if listen.ip().is_unspecified() {
        listen.set_ip(from.ip());
    }
    shared.link_up(node, incarnation, listen);
    let (mut reader, mut writer) = futures_lite::io::split(stream);
    let liveness = Liveness::default();
    let (mut reverse, mut reverse_keys) = shared.connection_codec();
    let read = read_loop(
        &shared,
        &mut reader,
        &liveness,
        &mut codec,
        &mut keys,
        &mut decoder,
        node,
    );
    let heartbeats = async {
        Err(keepalive::send_heartbeats(
            &mut writer,
            &mut reverse,
            &mut reverse_keys,
            shared.config.heartbeat_interval,
            shared.config.idle_timeout,
        )
        .await)
    };
    let idle = async { Err(liveness.watch(shared.config.idle_timeout).await) };
    let result = future::or(read, future::or(heartbeats, idle)).await;
    tracing::debug!(%node, ?result, "inbound connection ended");
    shared.count(&codec);
    shared.link_down(node, incarnation);
}

async fn read_loop(
    shared: &Shared,
    stream: &mut (impl AsyncRead + Unpin),
    liveness: &Liveness,
    codec: &mut Codec,
    keys: &mut KeyFollower,
    decoder: &mut StreamDecoder,
    node: NodeId,
) -> Result<(), LinkError> {
    loop {
        loop {
            keys.refresh(codec, decoder.last_key());
            // The payload is opened where it was read and lent to the handler: no copy and no
            // allocation per frame.
            let Some((header, payload)) = decoder.next_payload(codec)? else {
                break;
            };
            if keepalive::is_heartbeat(header.kind) {
                continue;
            }
            match shared.handler.upgrade() {
                Some(handler) => {
                    handler.frame(node, header.kind, payload).finish().await;
                }
                None => return Err(LinkError::Closed),
            }
        }
        let n = liveness
            .read(stream.read(decoder.read_space(READ_SIZE)))
            .await?;
        if n == 0 {
            return Err(LinkError::Closed);
        }
        decoder.filled(n);
    }
}

async fn outbound(shared: Arc<Shared>, peer: Arc<Peer>) {
    let mut hasher = DefaultHasher::new();
    (shared.config.node, peer.addr).hash(&mut hasher);
    let mut backoff = Backoff::new(
        shared.config.backoff_base,
        shared.config.backoff_cap,
        hasher.finish(),
    );
    while peer.outbox.wait_for_work().await {
        let (mut codec, keys) = shared.connection_codec();
        match dial(&shared, &peer, &mut codec).await {
            Ok((stream, header)) => {
                backoff.reset();
                let node = header.sender;
                shared.link_up(node, header.incarnation, peer.addr);
                {
                    let mut connected = lock(&peer.connected);
                    *connected = Some(node);
                    for waiter in lock(&peer.waiters).drain(..) {
                        let _ = waiter.try_send(Some(node));
                    }
                }
                let result = write_loop(&shared, &peer, stream, codec, keys).await;
                tracing::debug!(%node, addr = %peer.addr, ?result, "outbound connection ended");
                lock(&peer.writer).take();
                *lock(&peer.connected) = None;
                let dropped = peer.outbox.set_mode(Mode::Discard);
                shared.link_down(node, header.incarnation);
                shared
                    .discarded_bytes
                    .fetch_add(dropped as u64, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::debug!(addr = %peer.addr, %error, "dial failed");
                if !matches!(error, LinkError::Transport(_)) {
                    shared.handshake_failures.fetch_add(1, Ordering::Relaxed);
                }
                shared.count(&codec);
                let dropped = peer.outbox.set_mode(Mode::Discard);
                shared
                    .discarded_bytes
                    .fetch_add(dropped as u64, Ordering::Relaxed);
                for waiter in lock(&peer.waiters).drain(..) {
                    let _ = waiter.try_send(None);
                }
                let node = lock(&shared.nodes)
                    .iter()
                    .find(|(_, e)| e.listen == peer.addr)
                    .map(|(node, e)| (*node, e.incarnation));
                if let Some((node, incarnation)) = node {
                    shared.link_down(node, incarnation);
                }
            }
        }
        phalanx_runtime::sleep(backoff.next_delay()).await;
        peer.outbox.set_mode(Mode::Queue);
    }
}

async fn dial(
    shared: &Shared,
    peer: &Peer,
    codec: &mut Codec,
) -> Result<(Box<dyn ByteStream>, crate::FrameHeader), LinkError> {
    let attempt = async {
        let mut stream = shared.transport.open_stream(peer.addr).await?;
        let mut decoder = StreamDecoder::new();
        let listen = shared.transport.local_addr();
        let header = handshake::dial(&mut stream, codec, &mut decoder, listen).await?;
        Ok((stream, header))
    };
    phalanx_runtime::timeout(shared.config.handshake_timeout, attempt)
        .await
        .unwrap_or(Err(LinkError::Timeout))
}

async fn write_loop(
    shared: &Shared,
    peer: &Peer,
    stream: Box<dyn ByteStream>,
    codec: Codec,
    keys: KeyFollower,
) -> Result<(), LinkError> {
    let outbox = &peer.outbox;
    let (mut reader, writer) = futures_lite::io::split(stream);
    *lock(&peer.writer) = Some(Writer::new(writer, codec, keys));
    let liveness = Liveness::default();
    // The acceptor sends only heartbeats after the handshake, sealed by a codec of its own
    // (so with their own sequence numbers): a fresh decoder and codec read them.
    let watch = async {
        let (mut codec, mut keys) = shared.connection_codec();
        let mut decoder = StreamDecoder::new();
        let mut buf = [0; 1_024];
        loop {
            keys.refresh(&mut codec, decoder.last_key());
            while let Some(frame) = decoder.next_frame(&mut codec)? {
                if !keepalive::is_heartbeat(frame.header.kind) {
                    return Err(LinkError::Handshake("data from the acceptor"));
                }
            }
            let n = liveness.read(reader.read(&mut buf)).await?;
            if n == 0 {
                return Err(LinkError::Closed);
            }
            decoder.push(&buf[..n]);
        }
    };
    let idle = async { Err(liveness.watch(shared.config.idle_timeout).await) };
    let heartbeats = async {
        loop {
            phalanx_runtime::sleep(shared.config.heartbeat_interval).await;
            outbox.request_heartbeat();
        }
    };
    let write = async {
        while outbox.wait_for_data().await {
            // Taken out of its slot for the awaits below; a sender holds the slot's lock only
            // for a write that never waits, so this lock is short.
            let Some(mut writer) = lock(&peer.writer).take() else {
                return Err(LinkError::Closed);
            };
            let result = async {
                writer.write_all().await?;
                if writer.fill(outbox)? {
                    writer.write_all().await?;
                }
                Ok::<(), LinkError>(())
            }
            .await;
            *lock(&peer.writer) = Some(writer);
            result?;
        }
        Ok(())
    };
    future::or(write, future::or(watch, future::or(idle, heartbeats))).await
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Critical sections here only move values in and out of maps; a panic cannot leave one
    // half-done.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
