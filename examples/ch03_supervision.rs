//! Listings for "Supervision": a tree, a crash, a restart that knows why, and escalation.
// `mdbook test` passes no --extern, so the listing names the crate itself.
#[allow(unused_extern_crates)]
extern crate phalanx;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use phalanx::supervisors::{
    Backoff, ChildSpec, Intensity, RestartPolicy, Strategy, Supervisor, SupervisorError,
};
use phalanx::{Actor, ActorRef, Context, Failure, HandlerError, Reply, Runtime};

// ANCHOR: worker
/// A worker that parses numbers, and crashes on input it cannot handle.
struct Parser {
    /// How many instances the factory has built: shows restarts.
    generation: u32,
}

enum ParseRequest {
    Parse(String, Reply<(i64, u32)>),
}

impl Actor for Parser {
    type Message = ParseRequest;

    async fn restarting(&mut self, _: &mut Context<Self>, failure: &Failure) {
        println!(
            "parser #{} starts after its predecessor {failure}",
            self.generation
        );
    }

    async fn handle(
        &mut self,
        _: &mut Context<Self>,
        msg: ParseRequest,
    ) -> Result<(), HandlerError> {
        let ParseRequest::Parse(text, reply) = msg;
        // An error ends this instance; its supervisor decides what comes next.
        let number: i64 = text.trim().parse()?;
        let _ = reply.send((number, self.generation));
        Ok(())
    }
}
// ANCHOR_END: worker

pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = Runtime::builder().worker_threads(2).build()?;
    runtime.block_on(async {
        // ANCHOR: tree
        let built = Arc::new(AtomicU32::new(0));
        let parser = {
            let built = built.clone();
            ChildSpec::new("parser", move || Parser {
                generation: built.fetch_add(1, Ordering::SeqCst) + 1,
            })
            .restart(RestartPolicy::Permanent)
            .backoff(Backoff::exponential(
                Duration::from_millis(5),
                Duration::from_secs(1),
            ))
        };
        let root = Supervisor::new(Strategy::OneForOne)
            // At most 3 restarts in 10 seconds, else give up and escalate.
            .intensity(Intensity::new(3, Duration::from_secs(10)))
            .child(parser)
            .start()?;
        // ANCHOR_END: tree

        // ANCHOR: crash
        let first: ActorRef<ParseRequest> = root.child("parser").await?.ok_or("no parser")?;
        let ask = Duration::from_secs(1);
        let (n, generation) = first
            .ask(|r| ParseRequest::Parse("42".into(), r), ask)
            .await?;
        assert_eq!((n, generation), (42, 1));

        // Bad input: the handler returns an error, the instance fails, the supervisor restarts it.
        let _ = first
            .ask(|r| ParseRequest::Parse("forty-two".into(), r), ask)
            .await;
        first.wait().await;
        let second = loop {
            if let Some(current) = root.child::<ParseRequest>("parser").await?
                && current.id() != first.id()
            {
                break current;
            }
            phalanx::sleep(Duration::from_millis(5)).await;
        };
        let (n, generation) = second
            .ask(|r| ParseRequest::Parse("7".into(), r), ask)
            .await?;
        assert_eq!((n, generation), (7, 2));
        // ANCHOR_END: crash

        // ANCHOR: escalate
        // Three more failures within the window exceed the intensity: the supervisor stops
        // its children and fails, and whoever watches it learns why.
        for _ in 0..200 {
            match root.child::<ParseRequest>("parser").await {
                Ok(Some(parser)) => {
                    let _ = parser
                        .ask(|r| ParseRequest::Parse("?".into(), r), ask)
                        .await;
                    parser.wait().await;
                }
                // Between an end and its restart (the backoff): try again shortly.
                Ok(None) => phalanx::sleep(Duration::from_millis(5)).await,
                // The supervisor gave up and no longer answers.
                Err(_) => break,
            }
        }
        match phalanx::timeout(Duration::from_secs(10), root.wait()).await {
            Ok(Err(SupervisorError::IntensityExceeded { max_restarts, .. })) => {
                println!("the root gave up after {max_restarts} restarts");
            }
            other => return Err(format!("expected escalation, got {other:?}").into()),
        }
        // ANCHOR_END: escalate
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    runtime.shutdown(Duration::from_secs(1))?;
    Ok(())
}
