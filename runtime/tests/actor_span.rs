//! Every actor runs inside a span carrying its id, name and type, created once per actor life
//! and parented where it was spawned: events its handlers emit carry them.
//!
//! Alone in its own binary: it installs a global subscriber (actors run on worker threads, so a
//! thread-local default would not see them).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use phalanx_runtime::{Actor, Context, HandlerError, Reply, Runtime, Spawn};

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut buffer) = self.0.lock() {
            buffer.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Greeter;

impl Actor for Greeter {
    type Message = (String, Reply<()>);

    async fn handle(
        &mut self,
        _: &mut Context<Self>,
        (name, reply): Self::Message,
    ) -> Result<(), HandlerError> {
        tracing::info!(%name, "greeting");
        let _ = reply.send(());
        Ok(())
    }
}

#[test]
fn handler_events_carry_the_actor_span_inside_the_spawners_span() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let runtime = Runtime::builder()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let id = runtime.block_on(async {
        let node = tracing::info_span!("node", id = "n1");
        let greeter = node.in_scope(|| Spawn::new(Greeter).name("greeter").start())?;
        greeter
            .ask(|reply| ("ada".to_owned(), reply), Duration::from_secs(5))
            .await?;
        greeter.stop();
        greeter.wait().await;
        Ok::<_, Box<dyn std::error::Error>>(greeter.id())
    });
    let id = id.expect("the greeter answers");
    runtime
        .shutdown(Duration::from_secs(5))
        .expect("clean shutdown");

    let text = String::from_utf8(captured.0.lock().expect("buffer").clone()).expect("utf-8");
    let expected = format!(
        "node{{id=\"n1\"}}:actor{{id={} name=\"greeter\" actor=\"Greeter\"}}: ",
        id.as_u64()
    );
    let line = text
        .lines()
        .find(|line| line.contains("greeting"))
        .unwrap_or_else(|| panic!("no greeting event in:\n{text}"));
    assert!(line.contains(&expected), "{expected:?} not in {line:?}");
    assert!(line.contains("name=ada"), "{line}");
}
