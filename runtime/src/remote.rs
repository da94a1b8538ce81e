//! Hooks for the remoting layer: how an [`ActorRef`](crate::ActorRef) reaches an actor on
//! another node.
//!
//! The runtime knows nothing about networks; the remoting layer (in `phalanx-transports`)
//! plugs in here:
//!
//! - a **proxy** ([`proxy`]) is the local stand-in of a remote actor: an [`Addr`] without a
//!   task, which can be monitored and linked like any actor, and which the remoting layer ends
//!   ([`end_proxy`]) with the remote actor's exit reason, or [`ExitReason::NodeDown`] when the
//!   node is lost. `stop` and `kill` on it go to a [`RemoteControl`].
//! - a [`RemoteRoute`] carries the messages of an `ActorRef` built with
//!   [`ActorRef::remote`](crate::ActorRef::remote).
//! - a [`Reply`](crate::Reply) inside a remote request serializes to an id: serialize requests
//!   inside [`exporting_replies`], which hands back an [`ExportedReply`] per reply to complete
//!   when the answer arrives; deserialize them inside [`importing_replies`], which turns each id
//!   into a [`ReplySink`] that ships the answer back.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Addr, ExitReason, SendError, TrySendError};

/// Delivers the messages of a remote [`ActorRef`](crate::ActorRef).
pub trait RemoteRoute<M>: Send + Sync + 'static {
    /// Queues `msg` for the remote actor if there is room now.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] if the outbound queue is full, [`TrySendError::Closed`] if the
    /// remote actor or its node is gone; both hand the message back.
    fn try_send(&self, msg: M) -> Result<(), TrySendError<M>>;

    /// Queues `msg` for the remote actor, waiting for room.
    fn send(&self, msg: M) -> Pin<Box<dyn Future<Output = Result<(), SendError<M>>> + Send + '_>>;
}

/// Stops or kills a remote actor, for `stop` and `kill` on its proxy, and carries the links
/// of local actors to it.
pub trait RemoteControl: Send + Sync + 'static {
    /// Asks the remote actor to stop gracefully.
    fn stop(&self);
    /// Kills the remote actor.
    fn kill(&self);

    /// The local actor `local` linked itself to the proxy: the remote side should link the
    /// real actor back, so that an exit of either reaches the other. Called once per link,
    /// without locks held. By default nothing is done (the link is one-way: the proxy's end
    /// reaches `local`, nothing reaches the remote actor).
    fn link(&self, local: &Addr) {
        let _ = local;
    }

    /// The link with `local` was removed: by an unlink if `local` is alive, else because
    /// `local` ended, with the reason [`exit_reason`] gives (the remote actor then receives
    /// the exit signal, if the reason is abnormal). Called without locks held.
    fn unlink(&self, local: &Addr) {
        let _ = local;
    }
}

/// Ships the answer to a remote asker, for a [`Reply`](crate::Reply) that came from another
/// node.
pub trait ReplySink: Send + Sync + 'static {
    /// Sends the encoded answer back.
    fn answer(self: Box<Self>, bytes: Vec<u8>);
    /// Tells the asker that no answer will come.
    fn unanswered(self: Box<Self>);
}

/// The waiting end of a local ask whose request went to another node.
pub(crate) trait PendingReply: Send + 'static {
    fn complete(self: Box<Self>, bytes: &[u8]) -> Result<(), postcard::Error>;
    fn fail(self: Box<Self>);
}

/// A [`Reply`](crate::Reply) that was serialized into an outgoing request: complete it when the
/// answer arrives. Dropping it uncompleted tells the asker that no answer will come
/// ([`AskError::NoReply`](crate::AskError::NoReply)), which is what a lost node should do.
pub struct ExportedReply {
    id: u64,
    pending: Option<Box<dyn PendingReply>>,
}

impl ExportedReply {
    /// The id the reply was serialized as; the answer names it.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Completes the ask with the encoded answer.
    ///
    /// # Errors
    ///
    /// If the bytes do not decode as the answer type; the asker then gets `NoReply`.
    pub fn complete(mut self, bytes: &[u8]) -> Result<(), postcard::Error> {
        match self.pending.take() {
            Some(pending) => pending.complete(bytes),
            None => Ok(()),
        }
    }
}

impl Drop for ExportedReply {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.fail();
        }
    }
}

impl fmt::Debug for ExportedReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportedReply")
            .field("id", &self.id)
            .finish()
    }
}

/// Turns reply ids of an incoming request into sinks that answer the remote asker.
type Importer = Box<dyn FnMut(u64) -> Box<dyn ReplySink>>;

thread_local! {
    static EXPORTS: RefCell<Option<Vec<ExportedReply>>> = const { RefCell::new(None) };
    static IMPORTER: RefCell<Option<Importer>> = const { RefCell::new(None) };
}

/// Runs `serialize`, collecting every [`Reply`](crate::Reply) it serializes.
///
/// Serializing a `Reply` outside this function fails with a serde error.
pub fn exporting_replies<T>(serialize: impl FnOnce() -> T) -> (T, Vec<ExportedReply>) {
    let previous = EXPORTS.with(|exports| exports.borrow_mut().replace(Vec::new()));
    let output = serialize();
    let exported = EXPORTS.with(|exports| {
        let mut exports = exports.borrow_mut();
        let exported = exports.take().unwrap_or_default();
        *exports = previous;
        exported
    });
    (output, exported)
}

/// Runs `deserialize`, turning every [`Reply`](crate::Reply) id it meets into a sink made by
/// `importer`.
pub fn importing_replies<T>(
    importer: impl FnMut(u64) -> Box<dyn ReplySink> + 'static,
    deserialize: impl FnOnce() -> T,
) -> T {
    let previous = IMPORTER.with(|slot| slot.borrow_mut().replace(Box::new(importer)));
    let output = deserialize();
    IMPORTER.with(|slot| *slot.borrow_mut() = previous);
    output
}

/// Registers a serialized reply; `None` outside [`exporting_replies`].
pub(crate) fn export(pending: Box<dyn PendingReply>) -> Option<u64> {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    EXPORTS.with(|exports| {
        let mut exports = exports.borrow_mut();
        let exports = exports.as_mut()?;
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        exports.push(ExportedReply {
            id,
            pending: Some(pending),
        });
        Some(id)
    })
}

/// Makes the sink for a deserialized reply id; `None` outside [`importing_replies`].
pub(crate) fn import(id: u64) -> Option<Box<dyn ReplySink>> {
    IMPORTER.with(|slot| slot.borrow_mut().as_mut().map(|importer| importer(id)))
}

/// Creates the local stand-in of a remote actor. It has no task: `stop` and `kill` go to
/// `control`, and it ends only through [`end_proxy`].
pub fn proxy(control: Arc<dyn RemoteControl>, name: Option<String>) -> Addr {
    Addr::new_proxy(control, name.map(Into::into))
}

/// Why `addr` ended; `None` while it runs.
pub fn exit_reason(addr: &Addr) -> Option<ExitReason> {
    addr.exit_reason()
}

/// Links `actor` and the proxy `proxy` both ways, as [`Context::link`](crate::Context::link)
/// would from inside `actor`: for the remoting layer, which links an exported actor to the
/// proxy of a remote actor that linked itself to it. Returns false, and links nothing, if
/// either has ended.
pub fn link_proxy(proxy: &Addr, actor: &Addr) -> bool {
    if !actor.add_link(proxy) {
        return false;
    }
    if !proxy.add_link(actor) {
        actor.remove_link(proxy.id());
        return false;
    }
    true
}

/// Ends a proxy with `reason`: its monitors receive `Down`, its links the exit signal, its
/// waiters the reason. Ending an ended proxy does nothing.
pub fn end_proxy(proxy: &Addr, reason: &ExitReason) {
    if proxy.is_alive() {
        proxy.terminate(reason);
    }
}
