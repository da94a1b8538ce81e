//! Code written for other runtimes runs inside phalanx actors: async-std's timers and network
//! types (they share the async-io reactor), and with the `tokio` feature, tokio's.

#[path = "support/common.rs"]
mod common;

use std::time::Duration;

use common::{LONG, runtime};
use phalanx_runtime::{Actor, Context, HandlerError, Reply, spawn_actor};

/// Echoes a line over a loopback TCP connection made with async-std, after an async-std sleep.
struct AsyncStdEcho;

impl Actor for AsyncStdEcho {
    type Message = (String, Reply<String>);

    async fn handle(
        &mut self,
        _: &mut Context<Self>,
        (line, reply): Self::Message,
    ) -> Result<(), HandlerError> {
        use async_std::io::{ReadExt, WriteExt};

        async_std::task::sleep(Duration::from_millis(5)).await;
        let listener = async_std::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let server = async move {
            let (mut stream, _) = listener.accept().await?;
            let mut buffer = vec![0; 64];
            let read = stream.read(&mut buffer).await?;
            stream.write_all(&buffer[..read]).await?;
            Ok::<(), std::io::Error>(())
        };
        let client = async move {
            let mut stream = async_std::net::TcpStream::connect(address).await?;
            stream.write_all(line.as_bytes()).await?;
            let mut echoed = String::new();
            stream.read_to_string(&mut echoed).await?;
            Ok::<String, std::io::Error>(echoed)
        };
        let (served, echoed) = futures_lite::future::zip(server, client).await;
        served?;
        let _ = reply.send(echoed?);
        Ok(())
    }
}

#[test]
fn async_std_timers_and_sockets_work_inside_an_actor() {
    let rt = runtime();
    let echoed = rt.block_on(async {
        let echo = spawn_actor(AsyncStdEcho);
        echo.ask(|reply| ("over async-std".to_string(), reply), LONG)
            .await
    });
    assert_eq!(echoed.expect("echoed"), "over async-std");
}

/// Uses tokio's timer, TCP and sync types: they need a tokio context, which the `tokio`
/// feature provides to every actor and task.
#[cfg(feature = "tokio")]
struct TokioEcho;

#[cfg(feature = "tokio")]
impl Actor for TokioEcho {
    type Message = (String, Reply<String>);

    async fn handle(
        &mut self,
        _: &mut Context<Self>,
        (line, reply): Self::Message,
    ) -> Result<(), HandlerError> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        tokio::time::sleep(Duration::from_millis(5)).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let server = async move {
            let (mut stream, _) = listener.accept().await?;
            let mut buffer = vec![0; 64];
            let read = stream.read(&mut buffer).await?;
            stream.write_all(&buffer[..read]).await?;
            let _ = done_tx.send(());
            Ok::<(), std::io::Error>(())
        };
        let client = async move {
            let mut stream = tokio::net::TcpStream::connect(address).await?;
            stream.write_all(line.as_bytes()).await?;
            let mut echoed = String::new();
            stream.read_to_string(&mut echoed).await?;
            Ok::<String, std::io::Error>(echoed)
        };
        let (served, echoed) = futures_lite::future::zip(server, client).await;
        served?;
        done_rx.await?;
        let _ = reply.send(echoed?);
        Ok(())
    }
}

#[cfg(feature = "tokio")]
#[test]
fn tokio_timers_and_sockets_work_inside_an_actor() {
    let rt = runtime();
    let echoed = rt.block_on(async {
        let echo = spawn_actor(TokioEcho);
        echo.ask(|reply| ("over tokio".to_string(), reply), LONG)
            .await
    });
    assert_eq!(echoed.expect("echoed"), "over tokio");
}
