//! The local registry: actors by name, within one runtime.
//!
//! Names are released when their actor ends. Register at spawn time with
//! [`Spawn::name`](crate::Spawn::name), or later with [`register`].

use std::any::Any;
use std::collections::HashMap;
use std::sync::Mutex;

use crate::executor::{current, lock};
use crate::{ActorId, ActorRef, Addr, SpawnError};

#[derive(Default)]
pub(crate) struct Registry {
    names: Mutex<HashMap<Box<str>, Entry>>,
}

struct Entry {
    addr: Addr,
    /// The `ActorRef<M>` itself, for typed look-ups.
    typed: Box<dyn Any + Send + Sync>,
}

impl Registry {
    pub(crate) fn insert<M: Send + 'static>(
        &self,
        name: &str,
        actor: &ActorRef<M>,
    ) -> Result<(), SpawnError> {
        let mut names = lock(&self.names);
        if let Some(entry) = names.get(name)
            && entry.addr.is_alive()
            && entry.addr != *actor.addr()
        {
            return Err(SpawnError::NameTaken(name.to_owned()));
        }
        let entry = Entry {
            addr: actor.addr().clone(),
            typed: Box::new(actor.clone()),
        };
        names.insert(name.into(), entry);
        Ok(())
    }

    fn lookup<M: Send + 'static>(&self, name: &str) -> Option<ActorRef<M>> {
        let names = lock(&self.names);
        names
            .get(name)?
            .typed
            .downcast_ref::<ActorRef<M>>()
            .cloned()
    }

    /// Removes `name` if it still names the actor `id`.
    pub(crate) fn remove_if(&self, name: &str, id: ActorId) {
        let mut names = lock(&self.names);
        if names.get(name).is_some_and(|entry| entry.addr.id() == id) {
            names.remove(name);
        }
    }

    fn remove(&self, name: &str) -> bool {
        lock(&self.names).remove(name).is_some()
    }

    fn names(&self) -> Vec<(String, ActorId)> {
        lock(&self.names)
            .iter()
            .map(|(name, entry)| (name.to_string(), entry.addr.id()))
            .collect()
    }
}

/// Registers `actor` under `name` in the current runtime.
///
/// # Errors
///
/// [`SpawnError::NameTaken`] if another live actor has the name.
pub fn register<M: Send + 'static>(name: &str, actor: &ActorRef<M>) -> Result<(), SpawnError> {
    current().registry.insert(name, actor)
}

/// Looks up the actor registered under `name` in the current runtime, if it has messages of
/// type `M`.
///
/// # Examples
///
/// ```
/// use phalanx_runtime::{Actor, Context, HandlerError, Spawn, registry};
///
/// struct Sink;
/// impl Actor for Sink {
///     type Message = ();
///     async fn handle(&mut self, _: &mut Context<Self>, _: ()) -> Result<(), HandlerError> {
///         Ok(())
///     }
/// }
///
/// phalanx_runtime::block_on(async {
///     let sink = Spawn::new(Sink).name("sink").start()?;
///     assert_eq!(registry::whereis::<()>("sink"), Some(sink));
///     assert!(registry::whereis::<u32>("sink").is_none(), "wrong message type");
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn whereis<M: Send + 'static>(name: &str) -> Option<ActorRef<M>> {
    current().registry.lookup(name)
}

/// Removes `name` from the current runtime's registry; returns whether it was there.
pub fn unregister(name: &str) -> bool {
    current().registry.remove(name)
}

/// Every registered name and its actor's id, in no particular order.
pub fn registered() -> Vec<(String, ActorId)> {
    current().registry.names()
}
