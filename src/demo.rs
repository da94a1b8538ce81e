//! `phalanx demo`: a cluster of node processes with a replicated key-value chain on this
//! machine, then a supervised actor tree with a panic and a restart.
//!
//! The demo is a checked story, not a slideshow: every step verifies what it shows, and the
//! demo fails (non-zero exit) if any step did not happen as described.

mod cluster;
mod live;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use phalanx::supervisors::{Backoff, ChildSpec, Intensity, Strategy, Supervisor, SupervisorRef};
use phalanx::{Actor, ActorRef, Context, Failure, HandlerError, Reply, Runtime};

/// Options of `phalanx demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    /// Print the story without pauses and exit non-zero if any step failed (for tests and CI).
    #[arg(long)]
    non_interactive: bool,
    /// Number of worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

const ASK: Duration = Duration::from_secs(2);

/// Runs the demo.
pub(crate) fn run(options: &Options) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = Runtime::builder().worker_threads(options.workers).build()?;
    let story = Story {
        start: Instant::now(),
        pause: !options.non_interactive,
    };
    // Ctrl-C ends the story at the next step; the node processes and files are cleaned up.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))?;

    println!("phalanx demo\n\npart 1: a cluster of node processes on this machine\n");
    let cluster = runtime.block_on(cluster::tell(&story, stop));
    let cluster = match cluster {
        Ok(facts) => facts,
        Err(error) => {
            let _ = runtime.shutdown(Duration::from_secs(5));
            return Err(error);
        }
    };
    println!(
        "\npart 2: a supervised actor tree on {} worker threads\n",
        options.workers
    );
    let outcome = runtime.block_on(tell_the_story(&story));
    runtime.shutdown(Duration::from_secs(5))?;
    let summary = outcome?;
    println!("\nsummary");
    println!("  cluster formed      {:.1?} (5 nodes)", cluster.formed_in);
    println!(
        "  crash detected      {:.1?} after SIGKILL",
        cluster.detected_in
    );
    println!(
        "  chain reconfigured  {:.1?} after SIGKILL, no write lost",
        cluster.reconfigured_in
    );
    println!(
        "  node rejoined       {:.1?} after its restart",
        cluster.rejoined_in
    );
    println!(
        "  writes              {} acknowledged, {} failed or timed out, {} lost",
        cluster.writes_acked, cluster.writes_failed, cluster.writes_lost
    );
    println!("  graceful leave      seen by the others");
    println!("  messages answered   {}", summary.answered);
    println!("  panics caught       {}", summary.panics);
    println!("  restarts            {}", summary.restarts);
    println!("  shutdown            orderly, children before their supervisor");
    println!("\nall steps worked");
    Ok(())
}

pub(crate) struct Story {
    start: Instant,
    pause: bool,
}

impl Story {
    pub(crate) fn say(&self, line: impl AsRef<str>) {
        println!(
            "[{:>7.3}s] {}",
            self.start.elapsed().as_secs_f64(),
            line.as_ref()
        );
    }

    pub(crate) async fn beat(&self) {
        if self.pause {
            phalanx::sleep(Duration::from_millis(400)).await;
        }
    }
}

#[derive(Debug, Default)]
struct Summary {
    answered: u32,
    panics: u32,
    restarts: u32,
}

async fn tell_the_story(story: &Story) -> Result<Summary, Box<dyn std::error::Error>> {
    let generation = Arc::new(AtomicU32::new(0));
    let restarted_after = Arc::new(std::sync::Mutex::new(None::<String>));
    let worker_spec = {
        let generation = generation.clone();
        let restarted_after = restarted_after.clone();
        ChildSpec::new("squarer", move || Squarer {
            instance: generation.fetch_add(1, Ordering::SeqCst) + 1,
            restarted_after: restarted_after.clone(),
        })
        .backoff(Backoff::Fixed(Duration::from_millis(50)))
    };
    let supervisor = Supervisor::new(Strategy::OneForOne)
        .intensity(Intensity::new(3, Duration::from_secs(5)))
        .child(ChildSpec::new("greeter", || Greeter))
        .child(worker_spec)
        .start()?;
    story.say("supervisor started with children: greeter, squarer (one-for-one)");
    story.beat().await;

    let mut summary = Summary::default();
    let greeter: ActorRef<Greeting> = child(&supervisor, "greeter").await?;
    let greeting = greeter
        .ask(|reply| Greeting("ada".into(), reply), ASK)
        .await?;
    story.say(format!(
        "client -> greeter: \"hello, I am ada\"   greeter -> client: {greeting:?}"
    ));
    summary.answered += 1;
    story.beat().await;

    let squarer: ActorRef<Job> = child(&supervisor, "squarer").await?;
    for n in [3, 7] {
        let (square, instance) = squarer.ask(|reply| Job::Square(n, reply), ASK).await?;
        check(square == n * n, "the squarer computed a wrong square")?;
        story.say(format!(
            "client -> squarer: {n}^2?   squarer #{instance} -> client: {square}"
        ));
        summary.answered += 1;
        story.beat().await;
    }

    story.say("client -> squarer: a poison pill (the handler will panic)");
    squarer.tell(Job::Poison).await?;
    let reason = squarer.wait().await;
    let failure = reason.failure().ok_or("the squarer did not fail")?;
    story.say(format!("squarer #1 ended: {reason}"));
    summary.panics += 1;
    story.beat().await;

    let restarted = wait_for_restart(&supervisor, squarer.id()).await?;
    let seen = restarted_after
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    check(
        seen.as_deref() == Some(&failure.to_string()),
        "the restart did not see the failure",
    )?;
    story.say(format!(
        "supervisor restarted squarer; the new instance was told why: {failure}"
    ));
    summary.restarts += 1;
    story.beat().await;

    let (square, instance) = restarted.ask(|reply| Job::Square(9, reply), ASK).await?;
    check(
        square == 81 && instance == 2,
        "the restarted squarer did not answer",
    )?;
    story.say(format!(
        "client -> squarer: 9^2?   squarer #{instance} -> client: {square}"
    ));
    summary.answered += 1;
    let greeting = greeter
        .ask(|reply| Greeting("ada".into(), reply), ASK)
        .await?;
    check(
        greeter.is_alive(),
        "one-for-one must leave the greeter alone",
    )?;
    story.say(format!(
        "the greeter was not touched (one-for-one): {greeting:?}"
    ));
    summary.answered += 1;
    story.beat().await;

    story.say("shutting down: children first, newest first, then the supervisor");
    supervisor.shutdown().await?;
    check(
        !greeter.is_alive() && !restarted.is_alive(),
        "children outlived the shutdown",
    )?;
    Ok(summary)
}

async fn child<M: Send + 'static>(
    supervisor: &SupervisorRef,
    id: &str,
) -> Result<ActorRef<M>, Box<dyn std::error::Error>> {
    Ok(supervisor
        .child::<M>(id)
        .await?
        .ok_or_else(|| format!("no child {id}"))?)
}

/// Waits (bounded) until the supervisor runs a new instance of the squarer.
async fn wait_for_restart(
    supervisor: &SupervisorRef,
    old: phalanx::ActorId,
) -> Result<ActorRef<Job>, Box<dyn std::error::Error>> {
    for _ in 0..200 {
        if let Some(current) = supervisor.child::<Job>("squarer").await?
            && current.id() != old
        {
            return Ok(current);
        }
        phalanx::sleep(Duration::from_millis(10)).await;
    }
    Err("the squarer was not restarted within 2 s".into())
}

pub(crate) fn check(condition: bool, what: &str) -> Result<(), Box<dyn std::error::Error>> {
    if condition { Ok(()) } else { Err(what.into()) }
}

/// A request to greet someone.
struct Greeting(String, Reply<String>);

struct Greeter;

impl Actor for Greeter {
    type Message = Greeting;

    async fn handle(&mut self, _: &mut Context<Self>, msg: Greeting) -> Result<(), HandlerError> {
        let Greeting(name, reply) = msg;
        let _ = reply.send(format!("welcome, {name}"));
        Ok(())
    }
}

enum Job {
    /// Square a number; the answer names the instance that computed it.
    Square(u64, Reply<(u64, u32)>),
    /// A job the worker cannot survive.
    Poison,
}

struct Squarer {
    instance: u32,
    restarted_after: Arc<std::sync::Mutex<Option<String>>>,
}

impl Actor for Squarer {
    type Message = Job;

    async fn handle(&mut self, _: &mut Context<Self>, job: Job) -> Result<(), HandlerError> {
        match job {
            Job::Square(n, reply) => {
                let _ = reply.send((n * n, self.instance));
            }
            Job::Poison => panic!("poisoned job"),
        }
        Ok(())
    }

    async fn restarting(&mut self, _: &mut Context<Self>, failure: &Failure) {
        if let Ok(mut seen) = self.restarted_after.lock() {
            *seen = Some(failure.to_string());
        }
    }
}
