//! Links across nodes are two-way: two nodes on loopback in one process, a local actor linked
//! to a remote one. Either side's abnormal exit reaches the other as a linked exit (a failure,
//! or an `Exit` notice when trapping), a normal exit or an unlink reaches nobody, and the loss
//! of the connection reaches both sides as `NodeDown`.

use std::net::SocketAddr;
use std::time::Duration;

use phalanx_runtime::{
    Actor, ActorRef, Addr, Context, Exit, ExitReason, FailureKind, HandlerError, Reply, Runtime,
    spawn_actor,
};
use phalanx_transports::{
    ClusterId, EndpointConfig, EndpointSecurity, Incarnation, Key, NodeId, RemoteMessage, Remoting,
    SharedKeyring,
};
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(10);

/// What the remote actor understands.
#[derive(Serialize, Deserialize)]
enum Remote {
    Ping(Reply<()>),
    Panic,
}

impl RemoteMessage for Remote {
    const TAG: &'static str = "test.link.Remote.v1";
}

/// The actor on node B: answers pings, panics on demand, and reports linked exits when it
/// traps them.
struct Target {
    trap: bool,
    exits: flume::Sender<Exit>,
}

impl Actor for Target {
    type Message = Remote;

    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), HandlerError> {
        ctx.trap_exit(self.trap);
        Ok(())
    }

    async fn handle(&mut self, _: &mut Context<Self>, msg: Remote) -> Result<(), HandlerError> {
        match msg {
            Remote::Ping(reply) => {
                let _ = reply.send(());
            }
            Remote::Panic => panic!("target exploded"),
        }
        Ok(())
    }

    async fn linked_exit(&mut self, _: &mut Context<Self>, exit: Exit) -> Result<(), HandlerError> {
        let _ = self.exits.send(exit);
        Ok(())
    }
}

/// What the local actor on node A is asked to do.
enum Local {
    Link(Addr, Reply<bool>),
    Unlink(Addr, Reply<()>),
    Panic,
    Stop,
}

/// The actor on node A that links itself to the remote actor.
struct Linker {
    trap: bool,
    exits: flume::Sender<Exit>,
}

impl Actor for Linker {
    type Message = Local;

    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), HandlerError> {
        ctx.trap_exit(self.trap);
        Ok(())
    }

    async fn handle(&mut self, ctx: &mut Context<Self>, msg: Local) -> Result<(), HandlerError> {
        match msg {
            Local::Link(other, reply) => {
                let _ = reply.send(ctx.link(&other));
            }
            Local::Unlink(other, reply) => {
                ctx.unlink(&other);
                let _ = reply.send(());
            }
            Local::Panic => panic!("linker exploded"),
            Local::Stop => ctx.stop(),
        }
        Ok(())
    }

    async fn linked_exit(&mut self, _: &mut Context<Self>, exit: Exit) -> Result<(), HandlerError> {
        let _ = self.exits.send(exit);
        Ok(())
    }
}

/// Two connected nodes, a target on B (trapping exits or not) and a linker on A (trapping
/// or not) linked to the target's remote reference.
struct Pair {
    a: Remoting,
    b: Remoting,
    target: ActorRef<Remote>,
    target_exits: flume::Receiver<Exit>,
    remote: ActorRef<Remote>,
    linker: ActorRef<Local>,
    linker_exits: flume::Receiver<Exit>,
}

async fn pair(target_traps: bool, linker_traps: bool) -> Pair {
    let security = EndpointSecurity::Keyring(SharedKeyring::new(Key::from_bytes([5; 32])));
    let config = |n| EndpointConfig::new(ClusterId(9), NodeId::from_u128(n), Incarnation(1));
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let a = Remoting::bind(bind, config(1), security.clone())
        .await
        .unwrap();
    let b = Remoting::bind(bind, config(2), security).await.unwrap();
    let (exits, target_exits) = flume::unbounded();
    let target = spawn_actor(Target {
        trap: target_traps,
        exits,
    });
    b.register("target", &target).unwrap();
    let node = a.connect(b.local_addr(), WAIT).await.unwrap();
    let remote = a.lookup::<Remote>(node, "target", WAIT).await.unwrap();
    let (exits, linker_exits) = flume::unbounded();
    let linker = spawn_actor(Linker {
        trap: linker_traps,
        exits,
    });
    let addr = remote.addr().clone();
    assert!(linker.ask(|r| Local::Link(addr, r), WAIT).await.unwrap());
    // The link request travels ahead of this ping on the one connection: once answered, the
    // target is linked on B.
    remote.ask(Remote::Ping, WAIT).await.unwrap();
    Pair {
        a,
        b,
        target,
        target_exits,
        remote,
        linker,
        linker_exits,
    }
}

async fn ended(addr: &Addr) -> ExitReason {
    phalanx_runtime::timeout(WAIT, addr.wait())
        .await
        .expect("the actor did not end in time")
}

async fn next_exit(exits: &flume::Receiver<Exit>) -> Exit {
    phalanx_runtime::timeout(WAIT, exits.recv_async())
        .await
        .expect("no linked exit in time")
        .unwrap()
}

fn run<F: std::future::Future>(future: F) -> F::Output {
    let runtime = Runtime::builder().worker_threads(2).build().unwrap();
    runtime.block_on(future)
}

fn is_linked_failure(reason: &ExitReason) -> bool {
    matches!(
        reason.failure().map(|f| f.kind()),
        Some(FailureKind::LinkedExit(_))
    )
}

#[test]
fn a_local_failure_brings_down_the_linked_remote_actor() {
    run(async {
        let pair = pair(false, false).await;
        pair.linker.tell(Local::Panic).await.unwrap();
        let linker_reason = ended(pair.linker.addr()).await;
        assert!(linker_reason.failure().is_some());
        // On B the target fails as linked to the linker's stand-in...
        let reason = ended(pair.target.addr()).await;
        assert!(is_linked_failure(&reason), "{reason:?}");
        assert!(reason.to_string().contains("linker exploded"), "{reason}");
        // ...and A's reference ends with the target's reason.
        let seen = ended(pair.remote.addr()).await;
        assert!(seen.failure().is_some(), "{seen:?}");
    });
}

#[test]
fn a_trapping_remote_actor_is_told_and_lives_on() {
    run(async {
        let pair = pair(true, false).await;
        pair.linker.tell(Local::Panic).await.unwrap();
        let exit = next_exit(&pair.target_exits).await;
        assert!(
            exit.reason.to_string().contains("linker exploded"),
            "{exit:?}"
        );
        pair.remote.ask(Remote::Ping, WAIT).await.unwrap();
        assert!(pair.target.addr().is_alive());
    });
}

#[test]
fn a_remote_failure_reaches_the_local_actor() {
    run(async {
        let pair = pair(false, true).await;
        pair.remote.tell(Remote::Panic).await.unwrap();
        let exit = next_exit(&pair.linker_exits).await;
        assert_eq!(exit.from, pair.remote.addr().id());
        assert!(
            exit.reason.to_string().contains("target exploded"),
            "{exit:?}"
        );
        assert!(pair.linker.addr().is_alive());
        // Not trapping, the linker would have failed: check with a fresh pair.
        let pair = self::pair(false, false).await;
        pair.remote.tell(Remote::Panic).await.unwrap();
        assert!(is_linked_failure(&ended(pair.linker.addr()).await));
    });
}

#[test]
fn a_normal_exit_or_an_unlink_reaches_nobody() {
    run(async {
        // A normal stop of the linker leaves the target alone.
        let pair = pair(false, false).await;
        pair.linker.tell(Local::Stop).await.unwrap();
        assert_eq!(ended(pair.linker.addr()).await, ExitReason::Normal);
        pair.remote.ask(Remote::Ping, WAIT).await.unwrap();
        assert!(pair.target.addr().is_alive());

        // After an unlink, neither side's failure reaches the other.
        let pair = self::pair(false, false).await;
        let addr = pair.remote.addr().clone();
        pair.linker
            .ask(|r| Local::Unlink(addr, r), WAIT)
            .await
            .unwrap();
        pair.linker.tell(Local::Panic).await.unwrap();
        ended(pair.linker.addr()).await;
        pair.remote.ask(Remote::Ping, WAIT).await.unwrap();
        assert!(pair.target.addr().is_alive());
        assert!(pair.target_exits.is_empty());
    });
}

#[test]
fn losing_the_connection_is_node_down_on_both_sides() {
    run(async {
        let pair = pair(true, true).await;
        let Pair {
            a,
            b,
            target,
            target_exits,
            remote,
            linker,
            linker_exits,
        } = pair;
        // A goes away: B's target hears NodeDown from the linker's stand-in, and A's linker
        // hears NodeDown from its reference to the target.
        a.shutdown();
        let exit = next_exit(&linker_exits).await;
        assert_eq!(
            (exit.from, exit.reason),
            (remote.addr().id(), ExitReason::NodeDown)
        );
        let exit = next_exit(&target_exits).await;
        assert_eq!(exit.reason, ExitReason::NodeDown);
        assert!(target.addr().is_alive() && linker.addr().is_alive());
        drop(b);
    });
}
