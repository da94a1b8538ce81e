//! The receiving side: local actors exported to other nodes, and factories that spawn them.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use phalanx_runtime::remote::{ReplySink, importing_replies};
use phalanx_runtime::{ActorRef, Addr, SpawnError, TrySendError};
use serde::de::DeserializeOwned;

use super::route::AnswerSink;
use super::{Carrier, Inner, RemoteMessage};
use crate::frame::NodeId;

/// A local actor that other nodes may send to.
pub(crate) trait Export: Send + Sync + 'static {
    fn tag(&self) -> &'static str;

    fn addr(&self) -> &Addr;

    /// Whether the type opted in to datagrams: only then are datagram messages accepted.
    fn takes_datagrams(&self) -> bool;

    /// Decodes a message that came by datagram and puts it in the mailbox if there is room
    /// now; returns whether it was delivered. Undecodable bodies are dropped (never a panic).
    fn deliver_datagram(&self, body: &[u8]) -> bool;

    /// Decodes `body` and puts it in the mailbox. Returns a future to await when the mailbox
    /// is full (backpressure), `None` when done (delivered, or dropped as undecodable or for
    /// an ended actor).
    fn deliver<'a>(
        &'a self,
        inner: &Arc<Inner>,
        from: NodeId,
        replies: bool,
        body: &[u8],
    ) -> Option<Pin<Box<dyn Future<Output = ()> + Send + 'a>>>;
}

pub(crate) struct Exported<M> {
    pub(crate) actor: ActorRef<M>,
}

impl<M: RemoteMessage> Export for Exported<M> {
    fn tag(&self) -> &'static str {
        M::TAG
    }

    fn addr(&self) -> &Addr {
        self.actor.addr()
    }

    fn takes_datagrams(&self) -> bool {
        M::CARRIER == Carrier::Datagram
    }

    fn deliver_datagram(&self, body: &[u8]) -> bool {
        // No `importing_replies`: a datagram never carries a reply, and one that claims to
        // fails to decode here.
        postcard::from_bytes::<M>(body).is_ok_and(|msg| self.actor.try_tell(msg).is_ok())
    }

    fn deliver<'a>(
        &'a self,
        inner: &Arc<Inner>,
        from: NodeId,
        replies: bool,
        body: &[u8],
    ) -> Option<Pin<Box<dyn Future<Output = ()> + Send + 'a>>> {
        let decoded = if replies {
            let inner = Arc::clone(inner);
            let importer = move |reply| {
                Box::new(AnswerSink {
                    inner: Arc::clone(&inner),
                    node: from,
                    reply,
                }) as Box<dyn ReplySink>
            };
            importing_replies(importer, || postcard::from_bytes::<M>(body))
        } else {
            postcard::from_bytes::<M>(body)
        };
        let msg = match decoded {
            Ok(msg) => msg,
            Err(error) => {
                inner.count_malformed();
                tracing::debug!(%error, tag = M::TAG, "undecodable remote message dropped");
                return None;
            }
        };
        match self.actor.try_tell(msg) {
            Ok(()) | Err(TrySendError::Closed(_)) => None,
            Err(TrySendError::Full(msg)) => Some(Box::pin(async move {
                let _ = self.actor.tell(msg).await;
            })),
            Err(_) => None,
        }
    }
}

/// Spawns actors for other nodes.
pub(crate) trait Factory: Send + Sync + 'static {
    fn tag(&self) -> &'static str;

    fn spawn(&self, args: &[u8]) -> Result<Arc<dyn Export>, String>;
}

pub(crate) struct TypedFactory<M, Args, F> {
    pub(crate) make: F,
    pub(crate) types: PhantomData<fn(Args) -> M>,
}

impl<M, Args, F> Factory for TypedFactory<M, Args, F>
where
    M: RemoteMessage,
    Args: DeserializeOwned + 'static,
    F: Fn(Args) -> Result<ActorRef<M>, SpawnError> + Send + Sync + 'static,
{
    fn tag(&self) -> &'static str {
        M::TAG
    }

    fn spawn(&self, args: &[u8]) -> Result<Arc<dyn Export>, String> {
        let args = postcard::from_bytes::<Args>(args).map_err(|e| format!("bad arguments: {e}"))?;
        let actor = (self.make)(args).map_err(|e| e.to_string())?;
        Ok(Arc::new(Exported { actor }))
    }
}
