//! Location-transparent actors: `ActorRef`s to actors on other nodes.
//!
//! A [`Remoting`] runs a node's [`Endpoint`] and plugs into the runtime's remote hooks
//! (`phalanx_runtime::remote`). Local actors are made reachable with
//! [`register`](Remoting::register) (by name) or through a factory
//! ([`register_factory`](Remoting::register_factory)); other nodes get an ordinary
//! `ActorRef<M>` for them with [`lookup`](Remoting::lookup) or [`spawn`](Remoting::spawn).
//! `tell`, `try_tell` and `ask` on it work as for a local actor:
//!
//! - messages are serialized with postcard straight into the peer's open batch (see
//!   `endpoint`), so many messages share one frame, one AEAD pass and one write;
//! - all messages from this node to a node travel on one connection, in order: FIFO per
//!   sender-receiver pair;
//! - a [`Reply`](phalanx_runtime::Reply) inside a message becomes an id; the answer comes back
//!   as an `Answer` record, and a dropped reply, a lost node or the ask's own timeout end the
//!   ask cleanly;
//! - the reference's address is a local *proxy*: monitor or link it as any actor. It ends
//!   with the remote actor's exit reason, or with `ExitReason::NodeDown` when the connection
//!   to the node is lost. An ended reference stays ended: `tell` hands the message back, and
//!   nothing sent on it reaches a restarted node (a new incarnation, whose actors get fresh
//!   random-based ids);
//! - a link to the proxy is two-way, as between local actors: the remote node links the real
//!   actor to a stand-in of the local one (a *linker* proxy), which ends with the local
//!   actor's exit reason, or with `NodeDown` when the connection is lost; an abnormal end
//!   reaches the remote actor as a linked exit (a failure, or a notice if it traps exits).
//!   Unlinking, or a normal exit, removes the stand-in quietly;
//! - `stop` and `kill` on the reference reach the remote actor.
//!
//! The message type names itself with [`RemoteMessage::TAG`]; lookups and spawns check it, so
//! a reference never sends a type the remote actor does not expect.
//!
//! A type may opt out of the stream's guarantees with [`RemoteMessage::CARRIER`] set to
//! [`Carrier::Datagram`]: its messages that fit ride the membership layer's gossip datagrams
//! (installed with [`Remoting::set_datagram_carrier`]), best effort and unordered, and the
//! rest still go on the stream. Only the types that opt in are affected; the default keeps
//! every message on the ordered, reliable stream. Inbound datagram messages
//! ([`Remoting::deliver_datagram`]) pass the same checks as stream messages: the export must
//! exist, its tag must match, the body must decode within the datagram's bounds, and the type
//! must have opted in; anything else is counted ([`Remoting::datagram_stats`]) and dropped.
//!
//! `NodeDown` comes from the connection layer: a connection that closes, fails, or stays
//! silent past [`EndpointConfig::idle_timeout`] (heartbeats keep live ones busy); and from
//! membership: a node declared dead by the failure detector is handed to
//! [`Remoting::declare_down`], which ends every reference to it the same way.

mod control;
mod datagram;
mod export;
mod record;
mod route;

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, Weak};
use std::time::Duration;

use phalanx_runtime::remote::{ExportedReply, end_proxy, link_proxy, proxy};
use phalanx_runtime::{ActorRef, Addr, ExitReason, Handle, SpawnError, Task};
use serde::Serialize;
use serde::de::DeserializeOwned;

use self::control::{Control, WireReason};
use self::datagram::DatagramRecord;
pub use self::datagram::{
    Carrier, DatagramCarrier, DatagramStats, decode_datagram_record, encode_datagram_record,
};
use self::export::{Export, Exported, Factory, TypedFactory};
use self::record::{Record, Records};
use self::route::{LinkerControl, ProxyControl, PushError, Route};
use crate::endpoint::{
    ConnectError, Delivery, Endpoint, EndpointConfig, EndpointSecurity, Handler, PeerSender,
};
use crate::frame::{FrameKind, Incarnation, NodeId};
use crate::net::NetTransport;
use crate::transport::{Transport, TransportError};

/// A message type that may cross nodes.
///
/// `TAG` names the type on the wire; keep it stable across versions of the program (for
/// example `"myapp.Counter.v1"`), and change it when the encoding changes.
///
/// # Examples
///
/// ```
/// use phalanx_runtime::Reply;
/// use phalanx_transports::RemoteMessage;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// enum Counter {
///     Add(u64),
///     Get(Reply<u64>),
/// }
///
/// impl RemoteMessage for Counter {
///     const TAG: &'static str = "example.Counter.v1";
/// }
/// ```
pub trait RemoteMessage: Serialize + DeserializeOwned + Send + 'static {
    /// The stable name of this type on the wire.
    const TAG: &'static str;

    /// How messages of this type travel. [`Carrier::Stream`], the default, keeps them on the
    /// node-to-node stream: FIFO per sender-receiver pair, reliable while the connection
    /// lives. [`Carrier::Datagram`] sends each message that fits in a gossip datagram
    /// instead: best effort (a lost datagram loses it), at most once, unordered; messages
    /// that do not fit, or carry a `Reply`, still take the stream. Choose it for small,
    /// frequent, self-contained messages whose loss the receiver tolerates (heartbeats,
    /// samples, hints), never for anything that must arrive or arrive in order.
    const CARRIER: Carrier = Carrier::Stream;
}

/// Why a remote operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// No connection to the node's address could be made.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// This node never connected to, or heard from, that node.
    #[error("unknown node {0}")]
    UnknownNode(NodeId),
    /// The other node refused: no such name or factory, another message type, or the
    /// factory failed. The text says which.
    #[error("refused by the remote node: {0}")]
    Refused(String),
    /// No answer within the timeout.
    #[error("no answer within the timeout")]
    Timeout,
    /// The node was lost before it answered.
    #[error("node down")]
    NodeDown,
    /// A name is already registered on this node.
    #[error("the name {0:?} is already registered")]
    NameTaken(String),
    /// The transport could not be set up.
    #[error("transport: {0}")]
    Transport(String),
}

/// A node's remoting layer: its endpoint, its exported actors and its remote references.
///
/// Dropping it (or [`shutdown`](Self::shutdown)) closes every connection and ends every
/// proxy with `NodeDown`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// use phalanx_runtime::{Actor, Context, HandlerError, Reply, spawn_actor};
/// use phalanx_transports::{
///     ClusterId, EndpointConfig, EndpointSecurity, Incarnation, Key, NodeId, RemoteMessage,
///     Remoting, SharedKeyring,
/// };
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Echo(String, Reply<String>);
/// impl RemoteMessage for Echo {
///     const TAG: &'static str = "doc.Echo";
/// }
///
/// struct Echoer;
/// impl Actor for Echoer {
///     type Message = Echo;
///     async fn handle(&mut self, _: &mut Context<Self>, Echo(text, reply): Echo) -> Result<(), HandlerError> {
///         let _ = reply.send(text);
///         Ok(())
///     }
/// }
///
/// phalanx_runtime::block_on(async {
///     let keys = SharedKeyring::new(Key::generate()?);
///     let config = |n| EndpointConfig::new(ClusterId(1), NodeId::from_u128(n), Incarnation(1));
///     let security = EndpointSecurity::Keyring(keys);
///     let a = Remoting::bind("127.0.0.1:0".parse()?, config(1), security.clone()).await?;
///     let b = Remoting::bind("127.0.0.1:0".parse()?, config(2), security).await?;
///     b.register("echo", &spawn_actor(Echoer))?;
///
///     let node = a.connect(b.local_addr(), Duration::from_secs(5)).await?;
///     let echo = a.lookup::<Echo>(node, "echo", Duration::from_secs(5)).await?;
///     let answer = echo.ask(|r| Echo("hi".into(), r), Duration::from_secs(5)).await?;
///     assert_eq!(answer, "hi");
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Remoting {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    me: Weak<Inner>,
    endpoint: Endpoint,
    runtime: Handle,
    exports: RwLock<Exports>,
    factories: RwLock<HashMap<String, Arc<dyn Factory>>>,
    /// Replies serialized into requests to other nodes, by reply id.
    awaiting: Mutex<HashMap<u64, (NodeId, ExportedReply)>>,
    /// Lookups and spawns waiting for `Resolved`.
    requests: Mutex<HashMap<u64, PendingRequest>>,
    /// Local proxies of remote actors, by watch id, with their routes' end flags.
    proxies: Mutex<HashMap<u64, ProxyEntry>>,
    /// Tasks reporting the end of local exports to watching nodes.
    watches: Mutex<HashMap<(NodeId, u64), Task<()>>>,
    /// Linker proxies: stand-ins of actors on other nodes linked to local exports, by node
    /// and link id.
    linkers: Mutex<HashMap<(NodeId, u64), Addr>>,
    next_id: AtomicU64,
    malformed: AtomicU64,
    /// The membership layer's datagram path, if one is installed.
    carrier: RwLock<Option<Arc<dyn DatagramCarrier>>>,
    datagram_sent: AtomicU64,
    datagram_fell_back: AtomicU64,
    datagram_delivered: AtomicU64,
    datagram_dropped: AtomicU64,
}

/// A local proxy of a remote actor.
struct ProxyEntry {
    node: NodeId,
    addr: Addr,
    /// Shared with the reference's route, which stops sending once it is set.
    ended: Arc<AtomicBool>,
}

impl ProxyEntry {
    fn end(self, reason: &ExitReason) {
        self.ended.store(true, Ordering::Relaxed);
        end_proxy(&self.addr, reason);
    }
}

/// A lookup or spawn sent to `node`, waiting for its `Resolved`.
struct PendingRequest {
    node: NodeId,
    answer: flume::Sender<Result<u64, String>>,
}

#[derive(Default)]
struct Exports {
    by_id: HashMap<u64, Arc<dyn Export>>,
    names: HashMap<String, u64>,
}

impl Remoting {
    /// Binds TCP and UDP on `addr` and starts the node's remoting layer there.
    ///
    /// # Errors
    ///
    /// [`RemoteError::Transport`] if the sockets cannot be bound.
    pub async fn bind(
        addr: SocketAddr,
        config: EndpointConfig,
        security: EndpointSecurity,
    ) -> Result<Remoting, RemoteError> {
        let transport = NetTransport::bind(addr)
            .await
            .map_err(|e: TransportError| RemoteError::Transport(e.to_string()))?;
        Ok(Remoting::with_transport(
            Arc::new(transport),
            config,
            security,
        ))
    }

    /// Starts the remoting layer on any transport (real or simulated).
    pub fn with_transport(
        transport: Arc<dyn Transport>,
        config: EndpointConfig,
        security: EndpointSecurity,
    ) -> Remoting {
        let inner = Arc::new_cyclic(|me: &Weak<Inner>| {
            let handler: Weak<dyn Handler> = me.clone();
            Inner {
                me: me.clone(),
                endpoint: Endpoint::new(transport, config, security, handler),
                runtime: Handle::current(),
                exports: RwLock::new(Exports::default()),
                factories: RwLock::new(HashMap::new()),
                awaiting: Mutex::new(HashMap::new()),
                requests: Mutex::new(HashMap::new()),
                proxies: Mutex::new(HashMap::new()),
                watches: Mutex::new(HashMap::new()),
                linkers: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(first_id()),
                malformed: AtomicU64::new(0),
                carrier: RwLock::new(None),
                datagram_sent: AtomicU64::new(0),
                datagram_fell_back: AtomicU64::new(0),
                datagram_delivered: AtomicU64::new(0),
                datagram_dropped: AtomicU64::new(0),
            }
        });
        inner.endpoint.start();
        Remoting { inner }
    }

    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.inner.endpoint.node()
    }

    /// The address other nodes connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.endpoint.local_addr()
    }

    /// The connection layer, for its counters and keys.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// Records of authenticated batches that did not decode (a peer with a bug or another
    /// version); they were dropped.
    pub fn malformed_records(&self) -> u64 {
        self.inner.malformed.load(Ordering::Relaxed)
    }

    /// Installs (or removes, with `None`) the datagram path for message types whose
    /// [`RemoteMessage::CARRIER`] is [`Carrier::Datagram`]. Without one, they use the stream.
    pub fn set_datagram_carrier(&self, carrier: Option<Arc<dyn DatagramCarrier>>) {
        *write(&self.inner.carrier) = carrier;
    }

    /// Hands a remote message that arrived in a datagram from `from` to its actor. The
    /// caller must have authenticated the datagram (opened it with the cluster's keyring) and
    /// taken `from` from its sealed header. The record passes the checks of a stream message:
    /// the export must exist and be alive, the tag must match its type, that type must have
    /// opted in to datagrams, and the body must decode; the message is then put in the
    /// mailbox if there is room now (a datagram never waits). Returns whether it was
    /// delivered; a dropped message is counted in [`datagram_stats`](Self::datagram_stats).
    pub fn deliver_datagram(&self, from: NodeId, payload: &[u8]) -> bool {
        let inner = &self.inner;
        let delivered = DatagramRecord::decode(payload).is_some_and(|record| {
            let export = read(&inner.exports).by_id.get(&record.target).cloned();
            export.is_some_and(|export| {
                export.tag() == record.tag
                    && export.takes_datagrams()
                    && export.deliver_datagram(record.body)
            })
        });
        let counter = if delivered {
            &inner.datagram_delivered
        } else {
            tracing::trace!(%from, len = payload.len(), "remote datagram message dropped");
            &inner.datagram_dropped
        };
        counter.fetch_add(1, Ordering::Relaxed);
        delivered
    }

    /// Counters of the messages that went, or came, by datagram.
    pub fn datagram_stats(&self) -> DatagramStats {
        let inner = &self.inner;
        DatagramStats {
            sent: inner.datagram_sent.load(Ordering::Relaxed),
            fell_back: inner.datagram_fell_back.load(Ordering::Relaxed),
            delivered: inner.datagram_delivered.load(Ordering::Relaxed),
            dropped: inner.datagram_dropped.load(Ordering::Relaxed),
        }
    }

    /// Makes `actor` reachable from other nodes as `name`.
    ///
    /// # Errors
    ///
    /// [`RemoteError::NameTaken`] if a live actor already has the name.
    pub fn register<M: RemoteMessage>(
        &self,
        name: &str,
        actor: &ActorRef<M>,
    ) -> Result<(), RemoteError> {
        let export: Arc<dyn Export> = Arc::new(Exported {
            actor: actor.clone(),
        });
        let exports = write(&self.inner.exports);
        if let Some(id) = exports.names.get(name)
            && exports.by_id.get(id).is_some_and(|e| e.addr().is_alive())
        {
            return Err(RemoteError::NameTaken(name.to_owned()));
        }
        drop(exports);
        let id = self.inner.export(export);
        write(&self.inner.exports).names.insert(name.to_owned(), id);
        Ok(())
    }

    /// Removes a name; the actor stays reachable through references already handed out.
    pub fn unregister(&self, name: &str) -> bool {
        write(&self.inner.exports).names.remove(name).is_some()
    }

    /// Registers a factory that other nodes call with [`spawn`](Self::spawn): `make` receives
    /// the decoded arguments and spawns the actor (with the runtime's `spawn_actor` or
    /// `Spawn`).
    pub fn register_factory<M, Args, F>(&self, name: &str, make: F)
    where
        M: RemoteMessage,
        Args: DeserializeOwned + 'static,
        F: Fn(Args) -> Result<ActorRef<M>, SpawnError> + Send + Sync + 'static,
    {
        let factory: Arc<dyn Factory> = Arc::new(TypedFactory {
            make,
            types: PhantomData,
        });
        write(&self.inner.factories).insert(name.to_owned(), factory);
    }

    /// Connects to the node at `addr` and returns its id.
    ///
    /// # Errors
    ///
    /// [`RemoteError::Connect`] if no connection could be made within `timeout`.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<NodeId, RemoteError> {
        Ok(self.inner.endpoint.connect(addr, timeout).await?)
    }

    /// A reference to the actor registered as `name` on `node`.
    ///
    /// # Errors
    ///
    /// [`RemoteError`]: unknown node, refused (no such name, or another message type), timeout
    /// or node down.
    pub async fn lookup<M: RemoteMessage>(
        &self,
        node: NodeId,
        name: &str,
        timeout: Duration,
    ) -> Result<ActorRef<M>, RemoteError> {
        let (sender, target) = self
            .inner
            .request(node, timeout, |request| Control::Lookup {
                request,
                name: name.to_owned(),
                tag: M::TAG.to_owned(),
            })
            .await?;
        Ok(self
            .inner
            .remote_ref(node, sender, target, Some(name.to_owned())))
    }

    /// Spawns an actor on `node` with its factory `factory`, passing `args`.
    ///
    /// # Errors
    ///
    /// [`RemoteError`]: unknown node, refused (no such factory, another message type, bad
    /// arguments, or the factory failed), timeout or node down.
    pub async fn spawn<M: RemoteMessage, Args: Serialize>(
        &self,
        node: NodeId,
        factory: &str,
        args: &Args,
        timeout: Duration,
    ) -> Result<ActorRef<M>, RemoteError> {
        let args = postcard::to_allocvec(args).map_err(|e| RemoteError::Refused(e.to_string()))?;
        let (sender, target) = self
            .inner
            .request(node, timeout, |request| Control::Spawn {
                request,
                factory: factory.to_owned(),
                tag: M::TAG.to_owned(),
                args,
            })
            .await?;
        Ok(self.inner.remote_ref(node, sender, target, None))
    }

    /// Declares `node` down, as membership's failure detector does: every reference to an
    /// actor there ends with [`ExitReason::NodeDown`] (monitors and links fire), and every
    /// ask awaiting an answer from it fails, exactly as when its connection is lost. A later
    /// lookup makes new references; a node that really is alive answers them.
    pub fn declare_down(&self, node: NodeId) {
        self.inner.node_down(node);
    }

    /// The nodes this node holds actor references to, awaits answers from, or whose actors
    /// are linked to local ones: the nodes a [`declare_down`](Self::declare_down) can concern.
    pub fn peers(&self) -> Vec<NodeId> {
        let mut nodes: Vec<NodeId> = lock(&self.inner.proxies)
            .values()
            .map(|entry| entry.node)
            .chain(lock(&self.inner.awaiting).values().map(|(node, _)| *node))
            .chain(lock(&self.inner.linkers).keys().map(|(node, _)| *node))
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }

    /// Closes every connection and ends every proxy with `NodeDown`. Idempotent.
    pub fn shutdown(&self) {
        self.inner.endpoint.close();
        let mut nodes: Vec<NodeId> = lock(&self.inner.proxies)
            .values()
            .map(|entry| entry.node)
            .chain(lock(&self.inner.linkers).keys().map(|(node, _)| *node))
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        for node in nodes {
            self.inner.node_down(node);
        }
    }
}

impl Drop for Remoting {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for Remoting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remoting")
            .field("endpoint", &self.inner.endpoint)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn next(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn count_malformed(&self) {
        self.malformed.fetch_add(1, Ordering::Relaxed);
    }

    /// Sends `msg` for export `target` on `node` by datagram if it can: the type opted in, a
    /// carrier is installed and reaches `node`, the message carries no reply and fits.
    /// Returns false, having sent nothing, if the stream must take it.
    pub(crate) fn try_datagram<M: RemoteMessage>(
        &self,
        node: NodeId,
        target: u64,
        msg: &M,
    ) -> bool {
        if M::CARRIER != Carrier::Datagram {
            return false;
        }
        let carrier = read(&self.carrier).clone();
        // Serialized outside `exporting_replies`: a message carrying a `Reply` fails here and
        // goes on the stream, whose serialization exports the reply.
        let sent = carrier.is_some_and(|carrier| {
            let max = carrier.max_payload(node);
            max > 0
                && postcard::to_allocvec(msg)
                    .ok()
                    .and_then(|body| {
                        DatagramRecord {
                            target,
                            tag: M::TAG,
                            body: &body,
                        }
                        .encode()
                    })
                    .filter(|record| record.len() <= max)
                    .is_some_and(|record| carrier.carry(node, record))
        });
        let counter = if sent {
            &self.datagram_sent
        } else {
            &self.datagram_fell_back
        };
        counter.fetch_add(1, Ordering::Relaxed);
        sent
    }

    /// Exports an actor under a fresh id; the export is forgotten when the actor ends.
    fn export(&self, export: Arc<dyn Export>) -> u64 {
        let id = self.next();
        let addr = export.addr().clone();
        write(&self.exports).by_id.insert(id, export);
        let me = self.me.clone();
        self.runtime
            .spawn(async move {
                addr.wait().await;
                if let Some(inner) = me.upgrade() {
                    let mut exports = write(&inner.exports);
                    exports.by_id.remove(&id);
                    exports.names.retain(|_, v| *v != id);
                }
            })
            .detach();
        id
    }

    pub(crate) fn await_answers(&self, node: NodeId, exported: Vec<ExportedReply>) {
        let mut awaiting = lock(&self.awaiting);
        for reply in exported {
            awaiting.insert(reply.id(), (node, reply));
        }
    }

    pub(crate) fn send_to_node(&self, node: NodeId, write: impl FnOnce(&mut Vec<u8>)) {
        if let Some(sender) = self.endpoint.sender_to_node(node) {
            let queued = sender.push::<PushError>(|buf| {
                write(buf);
                Ok(())
            });
            // Answers and control messages are rare and someone waits for each: send now.
            if queued.is_ok() {
                sender.flush_now();
            }
        }
    }

    fn send_control(&self, node: NodeId, control: &Control) {
        let body = control.encode();
        self.send_to_node(node, |buf| record::control(buf, &body));
    }

    async fn request(
        &self,
        node: NodeId,
        timeout: Duration,
        make: impl FnOnce(u64) -> Control,
    ) -> Result<(PeerSender, u64), RemoteError> {
        let sender = self
            .endpoint
            .sender_to_node(node)
            .ok_or(RemoteError::UnknownNode(node))?;
        let request = self.next();
        let (tx, rx) = flume::bounded(1);
        lock(&self.requests).insert(request, PendingRequest { node, answer: tx });
        let body = make(request).encode();
        let queued = sender.push::<PushError>(|buf| {
            record::control(buf, &body);
            Ok(())
        });
        if queued.is_err() {
            lock(&self.requests).remove(&request);
            return Err(RemoteError::NodeDown);
        }
        let outcome = phalanx_runtime::timeout(timeout, rx.recv_async()).await;
        lock(&self.requests).remove(&request);
        match outcome {
            Ok(Ok(Ok(target))) => Ok((sender, target)),
            Ok(Ok(Err(why))) => Err(RemoteError::Refused(why)),
            Ok(Err(_)) => Err(RemoteError::NodeDown),
            Err(_) => Err(RemoteError::Timeout),
        }
    }

    /// Builds the proxy and the reference for export `target` on `node`, and asks `node` to
    /// report the actor's end.
    fn remote_ref<M: RemoteMessage>(
        self: &Arc<Self>,
        node: NodeId,
        sender: PeerSender,
        target: u64,
        name: Option<String>,
    ) -> ActorRef<M> {
        let control = Arc::new(ProxyControl {
            sender: sender.clone(),
            target,
            inner: Arc::downgrade(self),
            links: Mutex::new(HashMap::new()),
        });
        let proxy = proxy(control, name);
        let watch = self.next();
        let ended = Arc::new(AtomicBool::new(false));
        let entry = ProxyEntry {
            node,
            addr: proxy.clone(),
            ended: Arc::clone(&ended),
        };
        lock(&self.proxies).insert(watch, entry);
        self.send_control(node, &Control::Watch { target, watch });
        if !self.endpoint.is_up(node) {
            self.node_down(node);
        }
        let route = Route {
            inner: Arc::clone(self),
            node,
            sender,
            target,
            ended,
            message: PhantomData,
        };
        ActorRef::remote(proxy, Arc::new(route))
    }

    fn node_down(&self, node: NodeId) {
        let ended: Vec<ProxyEntry> = {
            let mut proxies = lock(&self.proxies);
            let watches: Vec<u64> = proxies
                .iter()
                .filter(|(_, entry)| entry.node == node)
                .map(|(w, _)| *w)
                .collect();
            watches
                .into_iter()
                .filter_map(|w| proxies.remove(&w))
                .collect()
        };
        for entry in ended {
            entry.end(&ExitReason::NodeDown);
        }
        // Dropping an exported reply tells its asker that no answer will come.
        let dropped: Vec<ExportedReply> = {
            let mut awaiting = lock(&self.awaiting);
            let ids: Vec<u64> = awaiting
                .iter()
                .filter(|(_, (n, _))| *n == node)
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter()
                .filter_map(|id| awaiting.remove(&id).map(|(_, r)| r))
                .collect()
        };
        drop(dropped);
        lock(&self.requests).retain(|_, pending| pending.node != node);
        let cancelled: Vec<Task<()>> = {
            let mut watches = lock(&self.watches);
            let keys: Vec<(NodeId, u64)> = watches
                .keys()
                .filter(|(n, _)| *n == node)
                .copied()
                .collect();
            keys.into_iter()
                .filter_map(|k| watches.remove(&k))
                .collect()
        };
        drop(cancelled);
        let linkers: Vec<Addr> = {
            let mut linkers = lock(&self.linkers);
            let keys: Vec<(NodeId, u64)> = linkers
                .keys()
                .filter(|(n, _)| *n == node)
                .copied()
                .collect();
            keys.into_iter()
                .filter_map(|k| linkers.remove(&k))
                .collect()
        };
        for linker in linkers {
            end_proxy(&linker, &ExitReason::NodeDown);
        }
    }

    /// Ends the stand-in of link `link` from `node`, if it still exists, with `reason`: an
    /// abnormal reason reaches the linked local actor as a linked exit.
    fn end_linker(&self, node: NodeId, link: u64, reason: &ExitReason) {
        let linker = lock(&self.linkers).remove(&(node, link));
        if let Some(linker) = linker {
            end_proxy(&linker, reason);
        }
    }

    /// An actor on `from` linked itself to export `target`: link the export to a stand-in of
    /// it. An ended or unknown export is not linked; the remote side learns of its end through
    /// the watch of its proxy.
    fn link(&self, from: NodeId, target: u64, link: u64) {
        let actor = read(&self.exports)
            .by_id
            .get(&target)
            .map(|e| e.addr().clone());
        let Some(actor) = actor else { return };
        let control = Arc::new(LinkerControl {
            inner: self.me.clone(),
            node: from,
            link,
        });
        let linker = proxy(control, None);
        lock(&self.linkers).insert((from, link), linker.clone());
        if !link_proxy(&linker, &actor) {
            self.end_linker(from, link, &ExitReason::Normal);
        }
    }

    fn handle_control(&self, from: NodeId, control: Control) {
        match control {
            Control::Lookup { request, name, tag } => {
                let result = {
                    let exports = read(&self.exports);
                    match exports.names.get(&name) {
                        None => Err(format!("no actor registered as {name:?}")),
                        Some(id) => match exports.by_id.get(id) {
                            Some(e) if e.tag() != tag => {
                                Err(format!("{name:?} takes {}, not {tag}", e.tag()))
                            }
                            Some(e) if e.addr().is_alive() => Ok(*id),
                            _ => Err(format!("{name:?} has ended")),
                        },
                    }
                };
                self.send_control(from, &Control::Resolved { request, result });
            }
            Control::Spawn {
                request,
                factory,
                tag,
                args,
            } => {
                let found = read(&self.factories).get(&factory).cloned();
                let result = match found {
                    None => Err(format!("no factory {factory:?}")),
                    Some(f) if f.tag() != tag => {
                        Err(format!("{factory:?} makes {}, not {tag}", f.tag()))
                    }
                    Some(f) => f.spawn(&args).map(|export| self.export(export)),
                };
                self.send_control(from, &Control::Resolved { request, result });
            }
            Control::Resolved { request, result } => {
                if let Some(pending) = lock(&self.requests).remove(&request)
                    && pending.node == from
                {
                    let _ = pending.answer.try_send(result);
                }
            }
            Control::Watch { target, watch } => self.watch(from, target, watch),
            Control::Down { watch, reason } => {
                let proxy = {
                    let mut proxies = lock(&self.proxies);
                    match proxies.get(&watch) {
                        Some(entry) if entry.node == from => proxies.remove(&watch),
                        _ => None,
                    }
                };
                if let Some(entry) = proxy {
                    entry.end(&ExitReason::from(reason));
                }
            }
            Control::Link { target, link } => self.link(from, target, link),
            Control::Unlink { link, reason } => {
                let reason = reason.map_or(ExitReason::Normal, ExitReason::from);
                self.end_linker(from, link, &reason);
            }
            Control::Stop { target } | Control::Kill { target } => {
                let kill = matches!(control, Control::Kill { .. });
                if let Some(export) = read(&self.exports).by_id.get(&target) {
                    if kill {
                        export.addr().kill();
                    } else {
                        export.addr().stop();
                    }
                }
            }
        }
    }

    fn watch(&self, from: NodeId, target: u64, watch: u64) {
        let addr = read(&self.exports)
            .by_id
            .get(&target)
            .map(|e| e.addr().clone());
        let Some(addr) = addr else {
            let reason = WireReason::NoProc;
            self.send_control(from, &Control::Down { watch, reason });
            return;
        };
        let me = self.me.clone();
        let mut watches = lock(&self.watches);
        let task = self.runtime.spawn(async move {
            let reason = addr.wait().await;
            if let Some(inner) = me.upgrade() {
                let reason = WireReason::from(&reason);
                inner.send_control(from, &Control::Down { watch, reason });
                let finished = lock(&inner.watches).remove(&(from, watch));
                if let Some(task) = finished {
                    task.detach();
                }
            }
        });
        watches.insert((from, watch), task);
    }

    async fn process(&self, from: NodeId, payload: &[u8]) {
        let Some(me) = self.me.upgrade() else { return };
        let mut cached: Option<(u64, Arc<dyn Export>)> = None;
        for record in Records::new(payload) {
            match record {
                Err(error) => {
                    self.count_malformed();
                    tracing::debug!(%from, %error, "malformed batch; rest dropped");
                    break;
                }
                Ok(Record::Tell {
                    target,
                    replies,
                    body,
                }) => {
                    if cached.as_ref().is_none_or(|(id, _)| *id != target) {
                        cached = read(&self.exports)
                            .by_id
                            .get(&target)
                            .map(|e| (target, Arc::clone(e)));
                    }
                    match &cached {
                        Some((_, export)) => {
                            if let Some(wait) = export.deliver(&me, from, replies, body) {
                                wait.await;
                            }
                        }
                        None => tracing::trace!(%from, target, "message for an ended actor"),
                    }
                }
                Ok(Record::Answer { reply, body }) => {
                    let waiting = lock(&self.awaiting).remove(&reply);
                    if let Some((node, reply)) = waiting
                        && node == from
                        && reply.complete(body).is_err()
                    {
                        self.count_malformed();
                    }
                }
                Ok(Record::NoAnswer { reply }) => {
                    drop(lock(&self.awaiting).remove(&reply));
                }
                Ok(Record::Control { body }) => match Control::decode(body) {
                    Some(control) => self.handle_control(from, control),
                    None => self.count_malformed(),
                },
            }
        }
    }
}

impl Handler for Inner {
    fn frame<'a>(&'a self, from: NodeId, kind: FrameKind, payload: &'a [u8]) -> Delivery<'a> {
        if kind != FrameKind::ActorMessage {
            return Delivery::done();
        }
        Delivery::pending(self.process(from, payload))
    }

    fn peer_up(&self, node: NodeId, incarnation: Incarnation, addr: SocketAddr) {
        tracing::debug!(%node, incarnation = incarnation.0, %addr, "remote node up");
    }

    fn peer_down(&self, node: NodeId) {
        self.node_down(node);
    }
}

/// The first of a node's ids for exports, replies, watches and requests: random, so that the
/// ids of a restarted node (a new incarnation) do not repeat those of the node it replaces,
/// and a reference to an actor of the old incarnation reaches nothing in the new one.
fn first_id() -> u64 {
    let mut bytes = [0; 8];
    // Without randomness, fall back to the clock: still very unlikely to repeat.
    if crate::keyring::fill_random(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos());
        bytes = (nanos as u64).to_le_bytes();
    }
    // Half the range, so that counting up from here never wraps in practice.
    (u64::from_le_bytes(bytes) >> 1).max(1)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Critical sections only move values in and out of maps.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
