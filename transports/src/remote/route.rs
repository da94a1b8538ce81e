//! The sending side of remote references: the route behind a remote `ActorRef`, the control
//! behind its proxy, and the sink that answers a remote asker.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use phalanx_runtime::remote::{
    RemoteControl, RemoteRoute, ReplySink, exit_reason, exporting_replies,
};
use phalanx_runtime::{ActorId, Addr, ExitReason, SendError, TrySendError};
use postcard::ser_flavors::Flavor;

use super::control::{Control, WireReason};
use super::{Inner, RemoteMessage, record};
use crate::endpoint::{PeerSender, SendBytesError, TooLarge};
use crate::frame::NodeId;

/// Carries the messages of a remote `ActorRef<M>` into the peer's outbox.
pub(crate) struct Route<M> {
    pub(crate) inner: Arc<Inner>,
    pub(crate) node: NodeId,
    pub(crate) sender: PeerSender,
    pub(crate) target: u64,
    /// Set when the proxy ends (remote actor ended, or its node was lost): from then on
    /// messages come back to the sender as for an ended local actor, and never reach a later
    /// incarnation of the node.
    pub(crate) ended: Arc<AtomicBool>,
    pub(crate) message: PhantomData<fn(M)>,
}

/// Why a message was not queued.
#[derive(Debug)]
pub(crate) enum PushError {
    Encode,
    Refused,
}

impl From<TooLarge> for PushError {
    fn from(_: TooLarge) -> Self {
        PushError::Encode
    }
}

impl From<SendBytesError> for PushError {
    fn from(_: SendBytesError) -> Self {
        PushError::Refused
    }
}

impl<M: RemoteMessage> Route<M> {
    /// Serializes `msg` straight into the open batch; hands it back if it was not queued,
    /// and says whether that was for want of room (only when `only_if_room`).
    fn push(&self, msg: M, only_if_room: bool, datagram: bool) -> Result<(), (M, bool)> {
        if self.ended.load(Ordering::Relaxed) {
            return Err((msg, false));
        }
        // A type that opted in to datagrams tries them first (see `datagram`).
        if datagram && self.inner.try_datagram(self.node, self.target, &msg) {
            return Ok(());
        }
        // A message carrying a reply is an ask: its round trip is what the caller waits for.
        let mut ask = false;
        let write = |buf: &mut Vec<u8>| {
            let start = buf.len();
            let len_at = record::begin_tell(buf, self.target);
            let (serialized, exported) =
                exporting_replies(|| postcard::serialize_with_flavor(&msg, VecTail(&mut *buf)));
            if let Err(error) = serialized {
                tracing::warn!(%error, "cannot serialize a remote message");
                buf.truncate(start);
                return Err(PushError::Encode);
            }
            if !record::finish(buf, len_at, !exported.is_empty()) {
                buf.truncate(start);
                return Err(PushError::Encode);
            }
            if !exported.is_empty() {
                // Registered before the batch can leave, so the answer always finds it.
                self.inner.await_answers(self.node, exported);
                ask = true;
            }
            Ok(())
        };
        let result = if only_if_room {
            self.sender.try_push(write)
        } else {
            self.sender.push(write).map(|()| true)
        };
        match result {
            Ok(true) => {
                if ask {
                    self.sender.flush_now();
                }
                Ok(())
            }
            Ok(false) => Err((msg, true)),
            Err(_) => Err((msg, false)),
        }
    }
}

impl<M: RemoteMessage> RemoteRoute<M> for Route<M> {
    fn try_send(&self, msg: M) -> Result<(), TrySendError<M>> {
        self.push(msg, true, true).map_err(|(msg, full)| {
            if full {
                TrySendError::Full(msg)
            } else {
                TrySendError::Closed(msg)
            }
        })
    }

    fn send(&self, msg: M) -> Pin<Box<dyn Future<Output = Result<(), SendError<M>>> + Send + '_>> {
        Box::pin(async move {
            // A datagram never waits for room on the stream.
            if !self.ended.load(Ordering::Relaxed)
                && self.inner.try_datagram(self.node, self.target, &msg)
            {
                return Ok(());
            }
            self.sender.ready().await;
            self.push(msg, false, false)
                .map_err(|(msg, _)| SendError::Closed(msg))
        })
    }
}

/// A postcard flavor that appends to a `Vec` in place: no intermediate buffer per message.
struct VecTail<'a>(&'a mut Vec<u8>);

impl Flavor for VecTail<'_> {
    type Output = ();

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    // Called once per byte of a byte array: inlined, it is a store and a length bump.
    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// `stop` and `kill` on a proxy, sent to the node of the real actor, and the links of local
/// actors to it (see `link` in the parent module).
pub(crate) struct ProxyControl {
    pub(crate) sender: PeerSender,
    pub(crate) target: u64,
    /// Weak: the remoting layer owns the proxies, which own this control.
    pub(crate) inner: Weak<Inner>,
    /// The link id of each local actor linked to the proxy.
    pub(crate) links: Mutex<HashMap<ActorId, u64>>,
}

impl ProxyControl {
    fn send(&self, control: &Control) {
        let _ = self.sender.push::<PushError>(|buf| {
            record::control(buf, &control.encode());
            Ok(())
        });
    }

    fn links(&self) -> MutexGuard<'_, HashMap<ActorId, u64>> {
        // Critical sections only insert and remove.
        self.links.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RemoteControl for ProxyControl {
    fn stop(&self) {
        self.send(&Control::Stop {
            target: self.target,
        });
    }

    fn kill(&self) {
        self.send(&Control::Kill {
            target: self.target,
        });
    }

    fn link(&self, local: &Addr) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let link = inner.next();
        self.links().insert(local.id(), link);
        self.send(&Control::Link {
            target: self.target,
            link,
        });
    }

    fn unlink(&self, local: &Addr) {
        let Some(link) = self.links().remove(&local.id()) else {
            return;
        };
        let reason = exit_reason(local).map(|reason| WireReason::from(&reason));
        self.send(&Control::Unlink { link, reason });
    }
}

/// The control of a *linker* proxy: the stand-in, on this node, of an actor on another node
/// that linked itself to a local actor. Its end (the remote actor's exit, or `NodeDown`)
/// reaches the local actor as a linked exit.
pub(crate) struct LinkerControl {
    pub(crate) inner: Weak<Inner>,
    pub(crate) node: NodeId,
    pub(crate) link: u64,
}

impl RemoteControl for LinkerControl {
    // The local actor holds no reference to act on the linker with, so stop and kill have no
    // caller; the remote linker learns of the local actor's end through its own proxy's watch.
    fn stop(&self) {}

    fn kill(&self) {}

    fn unlink(&self, _local: &Addr) {
        // The local actor ended (or dropped the link): the stand-in has no more purpose.
        if let Some(inner) = self.inner.upgrade() {
            inner.end_linker(self.node, self.link, &ExitReason::Normal);
        }
    }
}

/// Answers an asker on another node.
pub(crate) struct AnswerSink {
    pub(crate) inner: Arc<Inner>,
    pub(crate) node: NodeId,
    pub(crate) reply: u64,
}

impl ReplySink for AnswerSink {
    fn answer(self: Box<Self>, bytes: Vec<u8>) {
        self.inner
            .send_to_node(self.node, |buf| record::answer(buf, self.reply, &bytes));
    }

    fn unanswered(self: Box<Self>) {
        self.inner
            .send_to_node(self.node, |buf| record::no_answer(buf, self.reply));
    }
}
