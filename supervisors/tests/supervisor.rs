//! Supervisor actor tests on the real runtime. Every wait is bounded by a generous safety
//! timeout that only turns a hang into a failure; no assertion depends on timing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use phalanx_runtime::{
    Actor, ActorRef, Addr, Context, ExitReason, Failure, FailureKind, HandlerError, Reply,
    block_on, sleep, timeout,
};
use phalanx_supervisors::{
    Backoff, ChildSpec, Intensity, RestartPolicy, Shutdown, Strategy, Supervisor, SupervisorError,
    SupervisorRef,
};

const SAFETY: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Started(&'static str, usize),
    Restarting(&'static str, FailureKind, String),
    Stopped(&'static str, usize),
}

/// Shared test state: an event log, instance counters, and every instance's address with the
/// epoch it started in.
#[derive(Clone, Default)]
struct World {
    log: Arc<Mutex<Vec<Event>>>,
    instances: Arc<AtomicUsize>,
    epoch: Arc<AtomicUsize>,
    started: Arc<Mutex<Vec<Instance>>>,
    /// Set when an instance started while an instance of an older epoch was still alive.
    overlap: Arc<Mutex<Vec<String>>>,
}

impl World {
    fn events(&self) -> Vec<Event> {
        self.log.lock().unwrap().clone()
    }

    /// The names in the `Stopped` events, in order.
    fn stops(&self) -> Vec<&'static str> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Stopped(name, _) => Some(name),
                _ => None,
            })
            .collect()
    }

    fn spec(&self, name: &'static str) -> ChildSpec {
        let world = self.clone();
        ChildSpec::new(name, move || Probe {
            name,
            world: world.clone(),
            instance: 0,
            slow_stop: false,
        })
    }

    fn slow_spec(&self, name: &'static str) -> ChildSpec {
        let world = self.clone();
        ChildSpec::new(name, move || Probe {
            name,
            world: world.clone(),
            instance: 0,
            slow_stop: true,
        })
    }
}

/// A started instance: child id, the epoch it started in, address.
struct Instance {
    name: &'static str,
    epoch: usize,
    addr: Addr,
}

struct Probe {
    name: &'static str,
    world: World,
    instance: usize,
    /// Take a little while in `stopped`, to widen the window in which a buggy supervisor
    /// would start new siblings too early.
    slow_stop: bool,
}

enum Cmd {
    Panic(&'static str),
    Error,
    Exit,
    /// Answer, then never finish the handler.
    Hang(Reply<()>),
    Ping(Reply<usize>),
}

impl Actor for Probe {
    type Message = Cmd;

    async fn restarting(&mut self, _: &mut Context<Self>, failure: &Failure) {
        self.world.log.lock().unwrap().push(Event::Restarting(
            self.name,
            failure.kind(),
            failure.message().to_owned(),
        ));
    }

    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), HandlerError> {
        self.instance = self.world.instances.fetch_add(1, Ordering::SeqCst);
        let epoch = self.world.epoch.load(Ordering::SeqCst);
        let mut started = self.world.started.lock().unwrap();
        for Instance {
            name,
            epoch: old_epoch,
            addr,
        } in started.iter()
        {
            if *old_epoch < epoch && addr.is_alive() && *name != "keep" {
                self.world
                    .overlap
                    .lock()
                    .unwrap()
                    .push(format!("{} started while old {name} alive", self.name));
            }
        }
        started.push(Instance {
            name: self.name,
            epoch,
            addr: ctx.addr().clone(),
        });
        drop(started);
        self.world
            .log
            .lock()
            .unwrap()
            .push(Event::Started(self.name, self.instance));
        Ok(())
    }

    async fn handle(&mut self, ctx: &mut Context<Self>, cmd: Cmd) -> Result<(), HandlerError> {
        match cmd {
            Cmd::Panic(message) => panic!("{message}"),
            Cmd::Error => return Err("handler error".into()),
            Cmd::Exit => ctx.stop(),
            Cmd::Hang(reply) => {
                let _ = reply.send(());
                std::future::pending::<()>().await;
            }
            Cmd::Ping(reply) => {
                let _ = reply.send(self.instance);
            }
        }
        Ok(())
    }

    async fn stopped(&mut self, _: &mut Context<Self>, _: &ExitReason) {
        if self.slow_stop {
            sleep(Duration::from_millis(20)).await;
        }
        self.world
            .log
            .lock()
            .unwrap()
            .push(Event::Stopped(self.name, self.instance));
    }
}

async fn child(sup: &SupervisorRef, id: &str) -> ActorRef<Cmd> {
    sup.child::<Cmd>(id).await.unwrap().expect("child running")
}

/// Polls `sup` until child `id` runs an instance other than `old`.
async fn restarted(sup: &SupervisorRef, id: &str, old: &Addr) -> ActorRef<Cmd> {
    for _ in 0..2000 {
        if let Some(now) = sup.child::<Cmd>(id).await.unwrap()
            && now.addr() != old
        {
            return now;
        }
        sleep(Duration::from_millis(5)).await;
    }
    panic!("child {id} was not restarted");
}

fn run<F: std::future::Future<Output = ()>>(test: F) {
    block_on(async {
        timeout(SAFETY, test).await.expect("test timed out");
    });
}

#[test]
fn one_for_one_restarts_only_the_failed_child() {
    run(async {
        let world = World::default();
        let sup = Supervisor::new(Strategy::OneForOne)
            .intensity(Intensity::new(5, Duration::from_secs(5)))
            .children(["a", "b", "c"].map(|n| world.spec(n)))
            .start()
            .unwrap();
        let (a, b, c) = (
            child(&sup, "a").await,
            child(&sup, "b").await,
            child(&sup, "c").await,
        );
        b.tell(Cmd::Panic("boom")).await.unwrap();
        let b2 = restarted(&sup, "b", b.addr()).await;
        assert!(b2.is_alive());
        assert_eq!(child(&sup, "a").await, a);
        assert_eq!(child(&sup, "c").await, c);
        sup.shutdown().await.unwrap();
    });
}

#[test]
fn restarted_child_receives_the_failure_in_restarting() {
    run(async {
        let world = World::default();
        let sup = Supervisor::new(Strategy::OneForOne)
            .intensity(Intensity::new(5, Duration::from_secs(5)))
            .child(world.spec("a"))
            .start()
            .unwrap();
        let a = child(&sup, "a").await;
        a.tell(Cmd::Panic("disk on fire")).await.unwrap();
        let a2 = restarted(&sup, "a", a.addr()).await;
        a2.tell(Cmd::Error).await.unwrap();
        let a3 = restarted(&sup, "a", a2.addr()).await;
        // Answered after `restarting` and `started` ran.
        a3.ask(Cmd::Ping, SAFETY).await.unwrap();
        let restarts: Vec<Event> = world
            .events()
            .into_iter()
            .filter(|e| matches!(e, Event::Restarting(..)))
            .collect();
        assert_eq!(
            restarts,
            [
                Event::Restarting("a", FailureKind::Panic, "disk on fire".into()),
                Event::Restarting("a", FailureKind::Error, "handler error".into()),
            ]
        );
        sup.shutdown().await.unwrap();
    });
}

/// Would catch a runtime or supervisor that starts new siblings while old ones still run
/// (bastion's bug): every new instance checks at `started` that no instance of the previous
/// epoch is still alive.
#[test]
fn one_for_all_fully_stops_old_siblings_before_starting_new_ones() {
    run(async {
        let world = World::default();
        let sup = Supervisor::new(Strategy::OneForAll)
            .intensity(Intensity::new(5, Duration::from_secs(5)))
            .children(["a", "b", "c", "d"].map(|n| world.slow_spec(n)))
            .start()
            .unwrap();
        let old: Vec<_> = started_children(&sup, &["a", "b", "c", "d"]).await;
        world.epoch.store(1, Ordering::SeqCst);
        old[1].tell(Cmd::Panic("b failed")).await.unwrap();
        for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
            let new = restarted(&sup, id, old[i].addr()).await;
            // Answered once its `started` hook (which checks for overlap) has run.
            new.ask(Cmd::Ping, SAFETY).await.unwrap();
        }
        for old in &old {
            assert!(!old.is_alive());
        }
        assert_eq!(*world.overlap.lock().unwrap(), Vec::<String>::new());
        // Old instances stopped in reverse start order (b had already failed), new ones
        // started in start order.
        let events = world.events();
        let stops: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                Event::Stopped(n, i) if *i < 4 => Some(*n),
                _ => None,
            })
            .collect();
        assert_eq!(stops, ["b", "d", "c", "a"]);
        let starts: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                Event::Started(n, i) if *i >= 4 => Some(*n),
                _ => None,
            })
            .collect();
        assert_eq!(starts, ["a", "b", "c", "d"]);
        sup.shutdown().await.unwrap();
    });
}

#[test]
fn rest_for_one_restarts_the_failed_child_and_later_siblings_only() {
    run(async {
        let world = World::default();
        let sup = Supervisor::new(Strategy::RestForOne)
            .intensity(Intensity::new(5, Duration::from_secs(5)))
            .child(world.slow_spec("keep"))
            .children(["b", "c", "d"].map(|n| world.slow_spec(n)))
            .start()
            .unwrap();
        let old = started_children(&sup, &["keep", "b", "c", "d"]).await;
        world.epoch.store(1, Ordering::SeqCst);
        old[1].tell(Cmd::Panic("b failed")).await.unwrap();
        for (i, id) in ["b", "c", "d"].iter().enumerate() {
            let new = restarted(&sup, id, old[i + 1].addr()).await;
            new.ask(Cmd::Ping, SAFETY).await.unwrap();
        }
        assert_eq!(child(&sup, "keep").await, old[0]);
        assert!(old[0].is_alive());
        assert_eq!(*world.overlap.lock().unwrap(), Vec::<String>::new());
        sup.shutdown().await.unwrap();
    });
}

/// The children's references, each once its `started` hook has run.
async fn started_children(sup: &SupervisorRef, ids: &[&str]) -> Vec<ActorRef<Cmd>> {
    let mut refs = Vec::new();
    for id in ids {
        let r = child(sup, id).await;
        // Answered once its `started` hook has run.
        r.ask(Cmd::Ping, SAFETY).await.unwrap();
        refs.push(r);
    }
    refs
}

#[test]
fn a_child_in_backoff_does_not_delay_its_siblings() {
    run(async {
        let world = World::default();
        let sup = Supervisor::new(Strategy::OneForOne)
            .intensity(Intensity::new(10, Duration::from_secs(5)))
            .child(
                world
                    .spec("slow")
                    .backoff(Backoff::Fixed(Duration::from_secs(3600))),
            )
            .child(world.spec("fast"))
            .start()
            .unwrap();
        let slow = child(&sup, "slow").await;
        let fast = child(&sup, "fast").await;
        slow.tell(Cmd::Panic("slow failed")).await.unwrap();
        slow.wait().await;
        fast.tell(Cmd::Panic("fast failed")).await.unwrap();
        restarted(&sup, "fast", fast.addr()).await;
        // The slow child is still waiting for its hour-long backoff.
        let children = sup.children().await.unwrap();
        assert_eq!(children[0].id, "slow");
        assert_eq!(children[0].addr, None);
        assert!(children[1].addr.is_some());
        sup.shutdown().await.unwrap();
    });
}

#[test]
fn backoff_delays_the_restart_then_starts_the_child() {
    run(async {
        let world = World::default();
        let sup = Supervisor::new(Strategy::OneForOne)
            .intensity(Intensity::new(10, Duration::from_secs(5)))
            .child(
                world
                    .spec("a")
                    .backoff(Backoff::Fixed(Duration::from_millis(30))),
            )
            .start()
            .unwrap();
        let a = child(&sup, "a").await;
        a.tell(Cmd::Panic("a failed")).await.unwrap();
        restarted(&sup, "a", a.addr()).await;
        sup.shutdown().await.unwrap();
    });
}

#[test]
fn exceeding_intensity_at_the_root_stops_children_in_reverse_order_and_reports_it() {
    run(async {
        let world = World::default();
        let sup = Supervisor::new(Strategy::OneForOne)
            .intensity(Intensity::new(0, Duration::from_secs(5)))
            .children(["a", "b", "c"].map(|n| world.spec(n)))
            .start()
            .unwrap();
        let refs = started_children(&sup, &["a", "b", "c"]).await;
        refs[0].tell(Cmd::Panic("fatal")).await.unwrap();
        let error = sup.wait().await.unwrap_err();
        match &error {
            SupervisorError::IntensityExceeded {
                child,
                max_restarts,
                reason,
                ..
            } => {
                assert_eq!(child, "a");
                assert_eq!(*max_restarts, 0);
                assert_eq!(reason.failure().map(Failure::message), Some("fatal"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(error.to_string().contains("restart intensity exceeded"));
        for r in &refs {
            assert!(!r.is_alive());
        }
        assert_eq!(world.stops(), ["a", "c", "b"]);
    });
}

#[test]
fn nested_supervisor_escalates_to_its_parent() {
    run(async {
        let world = World::default();
        let inner = Supervisor::new(Strategy::OneForOne)
            .intensity(Intensity::new(0, Duration::from_secs(5)))
            .child(world.spec("w"));
        let root = Supervisor::new(Strategy::OneForAll)
            .intensity(Intensity::new(5, Duration::from_secs(5)))
            .child(world.spec("sibling"))
            .child(inner.into_child_spec("inner"))
            .start()
            .unwrap();
        let sibling = child(&root, "sibling").await;
        let inner1 = root.child_supervisor("inner").await.unwrap().unwrap();
        let w1 = child(&inner1, "w").await;
        w1.tell(Cmd::Panic("worker broke")).await.unwrap();

        // The inner supervisor gave up and failed with a typed error.
        let error = inner1.wait().await.unwrap_err();
        assert!(
            matches!(error, SupervisorError::IntensityExceeded { ref child, .. } if child == "w")
        );
        // The root applied one-for-all: the sibling restarted too, and a new inner
        // supervisor runs a new worker.
        restarted(&root, "sibling", sibling.addr()).await;
        let inner2 = loop {
            if let Some(s) = root.child_supervisor("inner").await.unwrap()
                && s.id() != inner1.id()
            {
                break s;
            }
            sleep(Duration::from_millis(5)).await;
        };
        let w2 = child(&inner2, "w").await;
        assert_ne!(w1, w2);
        assert!(root.is_alive());
        root.shutdown().await.unwrap();
        assert!(!inner2.is_alive() && !w2.is_alive());
    });
}

#[test]
fn escalation_through_two_levels_reaches_the_root() {
    run(async {
        let world = World::default();
        let leaf = Supervisor::new(Strategy::OneForOne)
            .intensity(Intensity::new(0, Duration::from_secs(5)))
            .child(world.spec("w"));
        let middle = Supervisor::new(Strategy::OneForOne)
            .intensity(Intensity::new(0, Duration::from_secs(5)))
            .child(leaf.into_child_spec("leaf"));
        let root = Supervisor::new(Strategy::OneForOne)
            .intensity(Intensity::new(0, Duration::from_secs(5)))
            .child(middle.into_child_spec("middle"))
            .start()
            .unwrap();
        let middle = root.child_supervisor("middle").await.unwrap().unwrap();
        let leaf = middle.child_supervisor("leaf").await.unwrap().unwrap();
        let w = child(&leaf, "w").await;
        w.tell(Cmd::Panic("deep failure")).await.unwrap();
        let error = root.wait().await.unwrap_err();
        match error {
            SupervisorError::IntensityExceeded { child, reason, .. } => {
                assert_eq!(child, "middle");
                let message = reason.failure().unwrap().message().to_owned();
                assert!(message.contains("leaf"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(!middle.is_alive() && !leaf.is_alive() && !w.is_alive());
    });
}

#[test]
fn a_plain_stop_still_stops_children_in_reverse_start_order_after_a_restart() {
    run(async {
        let world = World::default();
        let sup = Supervisor::new(Strategy::OneForOne)
            .intensity(Intensity::new(5, Duration::from_secs(5)))
            .children(["a", "b", "c"].map(|n| world.slow_spec(n)))
            .start()
            .unwrap();
        let children = started_children(&sup, &["a", "b", "c"]).await;
        // Restart "a": its new instance has the newest actor id, but must still stop last.
        children[0].tell(Cmd::Panic("first")).await.unwrap();
        restarted(&sup, "a", children[0].addr()).await;
        world.log.lock().unwrap().clear();
        // Not SupervisorRef::shutdown: the runtime's own stop, as Runtime::shutdown does.
        sup.addr().stop();
        sup.addr().wait().await;
        assert_eq!(world.stops(), ["c", "b", "a"]);
    });
}

#[test]
fn shutdown_stops_children_in_reverse_start_order() {
    run(async {
        let world = World::default();
        let sup = Supervisor::new(Strategy::OneForOne)
            .children(["a", "b", "c"].map(|n| world.slow_spec(n)))
            .start()
            .unwrap();
        started_children(&sup, &["a", "b", "c"]).await;
        sup.shutdown().await.unwrap();
        assert_eq!(world.stops(), ["c", "b", "a"]);
    });
}

#[test]
fn a_child_that_does_not_stop_in_time_is_killed() {
    run(async {
        let world = World::default();
        let sup = Supervisor::new(Strategy::OneForOne)
            .child(
                world
                    .spec("stuck")
                    .shutdown(Shutdown::Timeout(Duration::from_millis(20))),
            )
            .start()
            .unwrap();
        let stuck = child(&sup, "stuck").await;
        // Once it answered, the child is inside the handler that never ends.
        stuck.ask(Cmd::Hang, SAFETY).await.unwrap();
        sup.shutdown().await.unwrap();
        assert_eq!(stuck.wait().await, ExitReason::Killed);
    });
}

#[test]
fn dynamic_children_start_and_stop_at_run_time() {
    run(async {
        let world = World::default();
        let sup = Supervisor::new(Strategy::OneForOne)
            .intensity(Intensity::new(5, Duration::from_secs(5)))
            .child(world.spec("a"))
            .start()
            .unwrap();
        let addr = sup.start_child(world.spec("x")).await.unwrap();
        assert!(addr.is_alive());
        assert_eq!(
            sup.start_child(world.spec("x")).await,
            Err(SupervisorError::DuplicateChild("x".into()))
        );
        let ids: Vec<String> = sup
            .children()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, ["a", "x"]);
        sup.terminate_child("x").await.unwrap();
        assert!(!addr.is_alive());
        assert_eq!(
            sup.terminate_child("x").await,
            Err(SupervisorError::NoSuchChild("x".into()))
        );

        // Transient: a normal exit removes it; temporary: a failure removes it.
        sup.start_child(world.spec("t").restart(RestartPolicy::Transient))
            .await
            .unwrap();
        let t = child(&sup, "t").await;
        t.tell(Cmd::Exit).await.unwrap();
        t.wait().await;
        sup.start_child(world.spec("tmp").restart(RestartPolicy::Temporary))
            .await
            .unwrap();
        let tmp = child(&sup, "tmp").await;
        tmp.tell(Cmd::Panic("gone")).await.unwrap();
        tmp.wait().await;
        for _ in 0..1000 {
            if sup.children().await.unwrap().len() == 1 {
                break;
            }
            sleep(Duration::from_millis(5)).await;
        }
        let ids: Vec<String> = sup
            .children()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, ["a"]);
        let ping = child(&sup, "a")
            .await
            .ask(Cmd::Ping, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(ping, 0);
        sup.shutdown().await.unwrap();
    });
}

#[test]
fn duplicate_static_ids_are_rejected() {
    let world = World::default();
    let error = Supervisor::new(Strategy::OneForOne)
        .child(world.spec("a"))
        .child(world.spec("a"))
        .start()
        .unwrap_err();
    assert_eq!(error, SupervisorError::DuplicateChild("a".into()));
}

struct FailsAtStart(Arc<AtomicUsize>);

impl Actor for FailsAtStart {
    type Message = ();

    async fn started(&mut self, _: &mut Context<Self>) -> Result<(), HandlerError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err("cannot initialise".into())
    }

    async fn handle(&mut self, _: &mut Context<Self>, _: ()) -> Result<(), HandlerError> {
        Ok(())
    }
}

#[test]
fn a_child_failing_in_started_is_retried_until_the_intensity_is_exceeded() {
    run(async {
        let attempts = Arc::new(AtomicUsize::new(0));
        let counter = attempts.clone();
        let sup = Supervisor::new(Strategy::OneForOne)
            .intensity(Intensity::new(3, Duration::from_secs(60)))
            .child(ChildSpec::new("bad", move || FailsAtStart(counter.clone())))
            .start()
            .unwrap();
        let error = sup.wait().await.unwrap_err();
        assert!(
            matches!(&error, SupervisorError::IntensityExceeded { child, .. } if child == "bad"),
            "{error:?}"
        );
        // The first start and 3 restarts; the 4th restart exceeded the limit.
        assert_eq!(attempts.load(Ordering::SeqCst), 4);
    });
}

#[test]
fn a_registered_child_keeps_its_name_across_restarts() {
    run(async {
        let world = World::default();
        let sup = Supervisor::new(Strategy::OneForAll)
            .intensity(Intensity::new(5, Duration::from_secs(5)))
            .child(world.spec("a").registered("sup-test-registered-a"))
            .child(world.spec("b"))
            .start()
            .unwrap();
        // The supervisor answers once its `started` (which starts the children) is done.
        let b = child(&sup, "b").await;
        let a = phalanx_runtime::registry::whereis::<Cmd>("sup-test-registered-a").unwrap();
        b.tell(Cmd::Panic("b failed")).await.unwrap();
        let a2 = restarted(&sup, "a", a.addr()).await;
        let found = phalanx_runtime::registry::whereis::<Cmd>("sup-test-registered-a").unwrap();
        assert_eq!(found, a2);
        sup.shutdown().await.unwrap();
        assert!(phalanx_runtime::registry::whereis::<Cmd>("sup-test-registered-a").is_none());
    });
}

#[test]
fn a_child_that_cannot_be_spawned_at_start_up_fails_the_supervisor() {
    run(async {
        let world = World::default();
        let taken = World::default().spec("holder").registered("sup-test-taken");
        let holder = Supervisor::new(Strategy::OneForOne)
            .child(taken)
            .start()
            .unwrap();
        child(&holder, "holder").await;
        let sup = Supervisor::new(Strategy::OneForOne)
            .child(world.slow_spec("first"))
            .child(world.spec("clash").registered("sup-test-taken"))
            .start()
            .unwrap();
        let error = sup.wait().await.unwrap_err();
        assert!(
            matches!(&error, SupervisorError::Spawn { child, .. } if child == "clash"),
            "{error:?}"
        );
        // The child started before the clash was stopped.
        assert!(world.events().contains(&Event::Stopped("first", 0)));
        holder.shutdown().await.unwrap();
    });
}

#[test]
fn a_killed_child_is_restarted_and_told_it_was_killed() {
    run(async {
        let world = World::default();
        let sup = Supervisor::new(Strategy::OneForOne)
            .intensity(Intensity::new(5, Duration::from_secs(5)))
            .child(world.spec("a").restart(RestartPolicy::Transient))
            .start()
            .unwrap();
        let a = child(&sup, "a").await;
        a.kill();
        let a2 = restarted(&sup, "a", a.addr()).await;
        // Answered after `restarting` and `started` ran.
        a2.ask(Cmd::Ping, SAFETY).await.unwrap();
        assert!(world.events().contains(&Event::Restarting(
            "a",
            FailureKind::Error,
            "killed".into()
        )));
        sup.shutdown().await.unwrap();
    });
}

#[test]
fn supervisors_nest_deeply_and_escalation_climbs_every_level() {
    run(async {
        const DEPTH: usize = 20;
        let world = World::default();
        // Levels 1..DEPTH give up at the first restart; the root allows a few.
        let mut level = Supervisor::new(Strategy::OneForOne)
            .intensity(Intensity::new(0, Duration::from_secs(60)))
            .child(world.spec("w"));
        for _ in 1..DEPTH {
            level = Supervisor::new(Strategy::OneForOne)
                .intensity(Intensity::new(0, Duration::from_secs(60)))
                .child(level.into_child_spec("level"));
        }
        let root = Supervisor::new(Strategy::OneForOne)
            .intensity(Intensity::new(3, Duration::from_secs(60)))
            .child(level.into_child_spec("level"))
            .start()
            .unwrap();

        async fn bottom(root: &SupervisorRef) -> (Vec<SupervisorRef>, ActorRef<Cmd>) {
            let mut chain = vec![root.clone()];
            for _ in 0..DEPTH {
                let next = loop {
                    let parent = chain.last().unwrap();
                    if let Some(s) = parent.child_supervisor("level").await.unwrap() {
                        break s;
                    }
                    sleep(Duration::from_millis(5)).await;
                };
                chain.push(next);
            }
            let w = loop {
                if let Some(w) = chain.last().unwrap().child::<Cmd>("w").await.unwrap() {
                    break w;
                }
                sleep(Duration::from_millis(5)).await;
            };
            (chain, w)
        }

        let (chain, w) = bottom(&root).await;
        w.tell(Cmd::Panic("bottom failed")).await.unwrap();
        // Every level below the root failed in turn...
        for level in chain.iter().skip(1) {
            assert!(matches!(
                level.wait().await,
                Err(SupervisorError::IntensityExceeded { .. })
            ));
        }
        // ...and the root rebuilt the whole chain.
        let (new_chain, new_w) = bottom(&root).await;
        assert_ne!(new_w, w);
        assert!(new_chain.iter().all(SupervisorRef::is_alive));
        root.shutdown().await.unwrap();
        assert!(!new_w.is_alive());
    });
}

#[test]
fn a_killed_root_reports_how_it_ended() {
    run(async {
        let world = World::default();
        let root = Supervisor::new(Strategy::OneForOne)
            .child(world.spec("a"))
            .start()
            .unwrap();
        let a = child(&root, "a").await;
        root.kill();
        assert_eq!(
            root.wait().await,
            Err(SupervisorError::Exited(ExitReason::Killed))
        );
        // The runtime killed the child with its parent.
        assert_eq!(a.wait().await, ExitReason::Killed);
    });
}

#[test]
fn ordered_shutdown_walks_the_tree_depth_first_in_reverse_start_order() {
    run(async {
        let world = World::default();
        let inner = Supervisor::new(Strategy::OneForOne)
            .child(world.slow_spec("x"))
            .child(world.slow_spec("y"));
        let root = Supervisor::new(Strategy::OneForOne)
            .child(world.slow_spec("a"))
            .child(inner.into_child_spec("inner"))
            .child(world.slow_spec("b"))
            .start()
            .unwrap();
        let inner = root.child_supervisor("inner").await.unwrap().unwrap();
        started_children(&inner, &["x", "y"]).await;
        started_children(&root, &["a", "b"]).await;
        root.shutdown().await.unwrap();
        assert_eq!(world.stops(), ["b", "y", "x", "a"]);
    });
}

#[test]
fn a_nested_supervisor_that_does_not_stop_in_time_is_killed() {
    run(async {
        let world = World::default();
        let inner = Supervisor::new(Strategy::OneForOne).child(world.spec("stuck"));
        let root = Supervisor::new(Strategy::OneForOne)
            .child(
                inner
                    .into_child_spec("inner")
                    .shutdown(Shutdown::Timeout(Duration::from_millis(20))),
            )
            .start()
            .unwrap();
        let inner = root.child_supervisor("inner").await.unwrap().unwrap();
        let stuck = child(&inner, "stuck").await;
        stuck.ask(Cmd::Hang, SAFETY).await.unwrap();
        // "stuck" has the default 5 s shutdown timeout, longer than its supervisor's 20 ms.
        root.shutdown().await.unwrap();
        assert_eq!(
            inner.wait().await,
            Err(SupervisorError::Exited(ExitReason::Killed))
        );
        assert_eq!(stuck.wait().await, ExitReason::Killed);
    });
}
