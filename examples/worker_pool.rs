//! A restart-tolerant service: a supervised pool of workers behind a dispatcher.
//!
//! Some jobs make a worker panic. The worker's supervisor restarts it; the dispatcher sees the
//! job unanswered and hands it to another worker. Every job completes, and the program counts
//! the restarts it took.
//!
//! Run it with `cargo run --example worker_pool`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use phalanx::supervisors::{ChildSpec, Intensity, RestartPolicy, Strategy, SupervisorRef};
use phalanx::{Actor, AskError, Context, Failure, HandlerError, Reply, Runtime, spawn_actor};

/// Workers in the pool.
const WORKERS: usize = 4;
/// Jobs submitted.
const JOBS: u64 = 40;
/// Every job whose number is a multiple of this makes the first worker that takes it panic.
const POISON_EVERY: u64 = 5;
/// How many times the dispatcher tries one job before giving up on it.
const ATTEMPTS: usize = 50;

/// A job: square a number.
struct Job {
    n: u64,
    reply: Reply<u64>,
}

/// A worker: squares numbers, and panics the first time it meets a poisoned one.
struct Worker {
    /// Poisoned jobs that already made a worker panic (shared by the pool, so that each one
    /// panics exactly once whichever worker takes it, and the restart count is exact).
    tripped: Arc<Mutex<HashSet<u64>>>,
    restarts: Arc<AtomicU32>,
}

impl Actor for Worker {
    type Message = Job;

    async fn restarting(&mut self, _: &mut Context<Self>, _: &Failure) {
        self.restarts.fetch_add(1, Ordering::SeqCst);
    }

    async fn handle(&mut self, _: &mut Context<Self>, job: Job) -> Result<(), HandlerError> {
        if job.n.is_multiple_of(POISON_EVERY) {
            let first_time = self
                .tripped
                .lock()
                .map(|mut tripped| tripped.insert(job.n))
                .unwrap_or(false);
            if first_time {
                panic!("job {} is poisoned", job.n);
            }
        }
        let _ = job.reply.send(job.n * job.n);
        Ok(())
    }
}

/// Requests to the dispatcher.
enum Dispatch {
    Submit(u64, Reply<Result<u64, String>>),
}

/// Hands jobs to the workers in turn, and retries a job whose worker died with it.
struct Dispatcher {
    pool: SupervisorRef,
    next: usize,
}

impl Actor for Dispatcher {
    type Message = Dispatch;

    async fn handle(&mut self, _: &mut Context<Self>, msg: Dispatch) -> Result<(), HandlerError> {
        let Dispatch::Submit(n, reply) = msg;
        let pool = self.pool.clone();
        let first = self.next;
        self.next = (self.next + 1) % WORKERS;
        // Each job runs in a task of its own, so the dispatcher never waits on a worker and
        // several jobs are in flight at once.
        phalanx::spawn(async move {
            let _ = reply.send(run_job(&pool, n, first).await);
        })
        .detach();
        Ok(())
    }
}

/// Tries `n` on the workers in turn from `first`, until one answers.
async fn run_job(pool: &SupervisorRef, n: u64, first: usize) -> Result<u64, String> {
    for attempt in 0..ATTEMPTS {
        let name = format!("worker-{}", (first + attempt) % WORKERS);
        let worker = match pool.child::<Job>(&name).await {
            Ok(Some(worker)) => worker,
            // Between a crash and its restart: try the next one after a moment.
            Ok(None) => {
                phalanx::sleep(Duration::from_millis(1)).await;
                continue;
            }
            Err(error) => return Err(format!("the pool is gone: {error}")),
        };
        match worker
            .ask(|reply| Job { n, reply }, Duration::from_secs(5))
            .await
        {
            Ok(square) => return Ok(square),
            // The worker died with the job (or before taking it): another one gets it.
            Err(AskError::NoReply | AskError::Closed(_)) => {}
            Err(error) => return Err(format!("job {n}: {error}")),
        }
    }
    Err(format!("job {n} failed {ATTEMPTS} times"))
}

pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = Runtime::builder().worker_threads(2).build()?;
    let restarts = Arc::new(AtomicU32::new(0));
    let tripped = Arc::new(Mutex::new(HashSet::new()));
    let completed = runtime.block_on(async {
        let mut pool = phalanx::supervisors::Supervisor::new(Strategy::OneForOne)
            // Generous: the poisoned jobs come in a burst.
            .intensity(Intensity::new(100, Duration::from_secs(10)));
        for index in 0..WORKERS {
            let (tripped, restarts) = (tripped.clone(), restarts.clone());
            let spec = ChildSpec::new(format!("worker-{index}"), move || Worker {
                tripped: tripped.clone(),
                restarts: restarts.clone(),
            })
            .restart(RestartPolicy::Permanent);
            pool = pool.child(spec);
        }
        let pool = pool.start()?;
        let dispatcher = spawn_actor(Dispatcher {
            pool: pool.clone(),
            next: 0,
        });

        let submissions: Vec<_> = (1..=JOBS)
            .map(|n| {
                let dispatcher = dispatcher.clone();
                phalanx::spawn(async move {
                    dispatcher
                        .ask(|reply| Dispatch::Submit(n, reply), Duration::from_secs(30))
                        .await
                })
            })
            .collect();
        let mut completed = 0;
        for (n, submission) in (1..=JOBS).zip(submissions) {
            let square = submission.await.map_err(|error| error.to_string())??;
            assert_eq!(square, n * n);
            completed += 1;
        }
        dispatcher.stop();
        dispatcher.wait().await;
        pool.shutdown().await?;
        Ok::<u64, Box<dyn std::error::Error>>(completed)
    })?;
    runtime.shutdown(Duration::from_secs(5))?;

    let restarts = restarts.load(Ordering::SeqCst);
    println!("{completed} jobs completed, {restarts} worker restarts");
    assert_eq!(completed, JOBS);
    // Each poisoned job panics exactly once, and each panic restarts one worker.
    assert_eq!(u64::from(restarts), JOBS / POISON_EVERY);
    Ok(())
}
