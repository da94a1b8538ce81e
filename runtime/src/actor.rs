//! The [`Actor`] trait: state plus async handlers and lifecycle hooks.

use std::future::Future;

use crate::{Context, Down, Exit, ExitReason, Failure};

/// The error type handlers return. Every error is a failure of the actor, handled by its
/// supervisor like a panic.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// An actor: private state that handles one message at a time.
///
/// Implement [`handle`](Actor::handle); the other hooks have defaults that do nothing.
/// Implementations may write the methods as `async fn`.
///
/// A panic in any handler or hook is caught at the actor's boundary and ends the actor with
/// [`ExitReason::Failed`] carrying the panic message; an `Err` from `started`, `handle`, `down`
/// or `linked_exit` does the same with the error's text.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// use phalanx_runtime::{Actor, Context, HandlerError, Reply, spawn_actor};
///
/// enum Counter {
///     Add(u64),
///     Get(Reply<u64>),
/// }
///
/// struct Total(u64);
///
/// impl Actor for Total {
///     type Message = Counter;
///
///     async fn handle(&mut self, _: &mut Context<Self>, msg: Counter) -> Result<(), HandlerError> {
///         match msg {
///             Counter::Add(n) => self.0 += n,
///             Counter::Get(reply) => {
///                 let _ = reply.send(self.0);
///             }
///         }
///         Ok(())
///     }
/// }
///
/// phalanx_runtime::block_on(async {
///     let total = spawn_actor(Total(0));
///     total.tell(Counter::Add(2)).await?;
///     total.tell(Counter::Add(40)).await?;
///     assert_eq!(total.ask(Counter::Get, Duration::from_secs(1)).await?, 42);
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Actor: Send + Sized + 'static {
    /// The type of the messages in this actor's mailbox.
    type Message: Send + 'static;

    /// Runs once before the first message.
    fn started(
        &mut self,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Handles one message. The next message is taken only when this returns.
    fn handle(
        &mut self,
        ctx: &mut Context<Self>,
        msg: Self::Message,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// An actor this one monitors (see [`Context::monitor`]) has ended.
    fn down(
        &mut self,
        ctx: &mut Context<Self>,
        down: Down,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let _ = (ctx, down);
        async { Ok(()) }
    }

    /// A linked actor (see [`Context::link`]) ended abnormally and this actor traps exits
    /// ([`Context::trap_exit`]). Without trapping, this actor would have failed instead.
    fn linked_exit(
        &mut self,
        ctx: &mut Context<Self>,
        exit: Exit,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let _ = (ctx, exit);
        async { Ok(()) }
    }

    /// Runs on a new instance, before [`started`](Actor::started), when it replaces an
    /// instance that failed; `failure` says how the old one failed. A restart keeps nothing of
    /// the old instance but its name: the mailbox and the state are new.
    fn restarting(
        &mut self,
        ctx: &mut Context<Self>,
        failure: &Failure,
    ) -> impl Future<Output = ()> + Send {
        let _ = (ctx, failure);
        async {}
    }

    /// Runs once when the actor begins to end (it was asked to stop, or it failed), before the
    /// runtime stops its remaining children, unless the actor was killed.
    ///
    /// A supervisor stops its children here, in its own order and with per-child timeouts;
    /// the runtime then stops whatever children are left, newest first.
    fn stopping(
        &mut self,
        ctx: &mut Context<Self>,
        reason: &ExitReason,
    ) -> impl Future<Output = ()> + Send {
        let _ = (ctx, reason);
        async {}
    }

    /// Runs once at the end, after the children have ended, unless the actor was killed.
    fn stopped(
        &mut self,
        ctx: &mut Context<Self>,
        reason: &ExitReason,
    ) -> impl Future<Output = ()> + Send {
        let _ = (ctx, reason);
        async {}
    }
}
