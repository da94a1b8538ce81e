//! The exporter end to end: a recorder, a supervisor that restarts a child, a collector, and
//! raw TCP scrapes on loopback, good and bad; and a one-node chain's own figures.

use std::net::SocketAddr;
use std::time::Duration;

use async_net::TcpStream;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use phalanx_runtime::{Actor, Context, HandlerError, Reply, Runtime, Spawn};
use phalanx_supervisors::{ChildSpec, Intensity, Strategy, Supervisor};
use phalanx_transports::Key;

use super::Metrics;
use super::http::MAX_REQUEST;
use crate::node::{Node, NodeConfig};

struct Fragile;

impl Actor for Fragile {
    type Message = (bool, Reply<()>);

    async fn handle(
        &mut self,
        _: &mut Context<Self>,
        (fail, reply): Self::Message,
    ) -> Result<(), HandlerError> {
        assert!(!fail, "asked to fail");
        let _ = reply.send(());
        Ok(())
    }
}

/// Holds back in `started` until released, so that its mailbox fills up first.
struct Backlogged {
    release: flume::Receiver<()>,
}

impl Actor for Backlogged {
    type Message = u32;

    async fn started(&mut self, _: &mut Context<Self>) -> Result<(), HandlerError> {
        let _ = self.release.recv_async().await;
        Ok(())
    }

    async fn handle(&mut self, _: &mut Context<Self>, _: u32) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// Sends `request` and returns everything the server wrote before it closed.
async fn exchange(addr: SocketAddr, request: &[u8]) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request).await?;
    // Half-closes: a truncated request then ends instead of waiting for the deadline.
    stream.close().await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or("")
}

#[test]
fn scrapes_show_runtime_supervisor_and_collector_metrics() -> Result<(), Box<dyn std::error::Error>>
{
    let metrics = Metrics::install()?;
    // A second install hands back the same recorder.
    assert!(std::ptr::eq(metrics, Metrics::install()?));
    assert!(Metrics::installed().is_some_and(|installed| std::ptr::eq(metrics, installed)));
    let runtime = Runtime::builder().worker_threads(2).build()?;
    runtime.block_on(async {
        let _collector = metrics.register_collector(|sink| {
            sink.gauge("test_probe_rtt_seconds", &[("node", "n1".to_owned())], 0.25);
            sink.counter(
                "test_dropped_frames_total",
                &[("reason", "mac".to_owned())],
                7,
            );
        });
        let server = metrics.serve("127.0.0.1:0".parse()?).await?;
        let addr = server.local_addr();

        let supervisor = Supervisor::new(Strategy::OneForOne)
            .child(ChildSpec::new("fragile", || Fragile))
            .start()?;
        let first = supervisor
            .child::<(bool, Reply<()>)>("fragile")
            .await?
            .ok_or("no child")?;
        let ask = Duration::from_secs(5);
        first.ask(|reply| (false, reply), ask).await?;
        let _ = first.ask(|reply| (true, reply), ask).await;
        first.wait().await;
        // Wait (bounded) for the restarted child, so the restart has been recorded.
        let mut restarted = false;
        for _ in 0..500 {
            if let Some(child) = supervisor.child::<(bool, Reply<()>)>("fragile").await?
                && child.id() != first.id()
            {
                restarted = true;
                break;
            }
            phalanx_runtime::sleep(Duration::from_millis(2)).await;
        }
        assert!(restarted, "the child was not restarted");

        // An escalation: no restart allowed, so the first failure gives up.
        let brittle = Supervisor::new(Strategy::OneForOne)
            .intensity(Intensity::new(0, Duration::from_secs(10)))
            .child(ChildSpec::new("fragile", || Fragile))
            .start()?;
        let child = brittle
            .child::<(bool, Reply<()>)>("fragile")
            .await?
            .ok_or("no child")?;
        let _ = child.ask(|reply| (true, reply), ask).await;
        assert!(brittle.wait().await.is_err(), "the supervisor escalates");

        // A backlog: 300 messages wait before the actor handles any, so it yields with a
        // full mailbox behind it and its depth is sampled.
        let (release, held) = flume::bounded(1);
        let backlogged = Spawn::new(Backlogged { release: held }).start()?;
        for n in 0..300 {
            backlogged.try_tell(n).map_err(|_| "mailbox full")?;
        }
        release.send_async(()).await?;
        for _ in 0..1000 {
            if backlogged.mailbox_len() == 0 {
                break;
            }
            phalanx_runtime::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(backlogged.mailbox_len(), 0);

        metrics::histogram!(super::CHAIN_WRITE_SECONDS, "node" => "n1").record(0.003);
        let ok = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await?;
        assert_eq!(status_line(&ok), "HTTP/1.1 200 OK");
        assert!(ok.contains("text/plain; version=0.0.4"), "{ok}");
        for expected in [
            "phalanx_actor_messages_total ",
            "phalanx_actors_started_total ",
            "phalanx_actor_failures_total{kind=\"panic\"} ",
            "phalanx_actors_stopped_total{reason=\"failed\"} ",
            "phalanx_actors_live ",
            "phalanx_supervisor_restarts_total{strategy=\"one_for_one\"} ",
            "test_probe_rtt_seconds{node=\"n1\"} 0.25",
            "test_dropped_frames_total{reason=\"mac\"} 7",
            "# HELP phalanx_actor_messages_total",
            "phalanx_supervisor_escalations_total ",
            "phalanx_mailbox_depth_bucket{le=\"256\"} ",
            "phalanx_chain_write_seconds_bucket{node=\"n1\",le=\"0.005\"} 1",
        ] {
            assert!(ok.contains(expected), "missing {expected:?} in\n{ok}");
        }

        let deepest = ok
            .lines()
            .find_map(|line| line.strip_prefix("phalanx_mailbox_depth_max "))
            .and_then(|value| value.parse::<f64>().ok())
            .ok_or("no mailbox depth maximum")?;
        assert!(deepest >= 1.0, "a backlog was sampled: {deepest}");

        let head = exchange(addr, b"HEAD /metrics HTTP/1.0\r\n\r\n").await?;
        assert_eq!(status_line(&head), "HTTP/1.1 200 OK");
        assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");

        let cases: [(&[u8], &str); 5] = [
            (b"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found"),
            (
                b"DELETE /metrics HTTP/1.1\r\n\r\n",
                "HTTP/1.1 405 Method Not Allowed",
            ),
            (b"\x00\xff\x13garbage\r\n\r\n", "HTTP/1.1 400 Bad Request"),
            (
                b"GET /metrics HTTP/1.1\r\nHost: x\r\n",
                "HTTP/1.1 400 Bad Request",
            ),
            (
                &[b'A'; MAX_REQUEST],
                "HTTP/1.1 431 Request Header Fields Too Large",
            ),
        ];
        for (request, expected) in cases {
            let response = exchange(addr, request).await?;
            assert_eq!(status_line(&response), expected);
            // One-line error bodies.
            let body = response.split("\r\n\r\n").nth(1).unwrap_or("");
            assert_eq!(body.lines().count(), 1, "{response}");
        }
        // A client that connects and leaves at once gets nothing, and harms nothing.
        drop(TcpStream::connect(addr).await?);
        let again = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await?;
        assert_eq!(status_line(&again), "HTTP/1.1 200 OK");

        drop(server);
        supervisor.shutdown().await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    runtime.shutdown(Duration::from_secs(5))?;
    Ok(())
}

/// The value of the series `name{node="<node>"}` in rendered text.
fn series(text: &str, name: &str, node: &str) -> Option<f64> {
    let prefix = format!("{name}{{node=\"{node}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|value| value.parse().ok())
}

/// A loopback address whose port was free for both TCP and UDP a moment ago.
fn free_addr() -> Result<SocketAddr, Box<dyn std::error::Error>> {
    for _ in 0..100 {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = tcp.local_addr()?;
        if std::net::UdpSocket::bind(addr).is_ok() {
            return Ok(addr);
        }
    }
    Err("no free loopback port".into())
}

#[test]
fn a_node_publishes_membership_and_chain_progress() -> Result<(), Box<dyn std::error::Error>> {
    let metrics = Metrics::install()?;
    let runtime = Runtime::builder().worker_threads(2).build()?;
    runtime.block_on(async {
        // One node that is the whole configuration group and the whole chain.
        let listen = free_addr()?;
        let mut config = NodeConfig::new(listen);
        config.key = Some(Key::generate()?);
        config.chain_group = vec![listen];
        config.gossip.probe_interval = Duration::from_millis(100);
        config.gossip.probe_timeout = Duration::from_millis(50);
        let node = Node::start(config).await?;
        let id = node.id().to_string();
        let kv = node.kv();
        let mut written = 0;
        for _ in 0..200 {
            if kv.put("k", "v").await.is_ok() {
                written += 1;
                if written == 3 {
                    break;
                }
            } else {
                phalanx_runtime::sleep(Duration::from_millis(50)).await;
            }
        }
        assert_eq!(written, 3, "the one-node chain never took three writes");
        // The chain's figures come from a poller: wait (bounded) until it saw the writes.
        let mut text = String::new();
        for _ in 0..100 {
            text = metrics.render();
            if series(&text, super::CHAIN_COMMITTED, &id).is_some_and(|c| c >= 3.0) {
                break;
            }
            phalanx_runtime::sleep(Duration::from_millis(50)).await;
        }
        let value = |name| series(&text, name, &id).ok_or(format!("no {name} in\n{text}"));
        let committed = value(super::CHAIN_COMMITTED)?;
        let received = value(super::CHAIN_RECEIVED)?;
        assert!(committed >= 3.0, "{text}");
        assert!(received >= committed, "{text}");
        assert_eq!(value(super::CHAIN_LAG)?, received - committed);
        assert!(value(super::CHAIN_EPOCH)? >= 1.0, "{text}");
        assert_eq!(value(super::CHAIN_SYNCED)?, 1.0);
        assert_eq!(value(super::CHAIN_GROUP_LEADER)?, 1.0);
        let alive = format!(
            "{}{{node=\"{id}\",state=\"alive\"}} 1",
            super::GOSSIP_MEMBERS
        );
        let suspect = format!(
            "{}{{node=\"{id}\",state=\"suspect\"}} 0",
            super::GOSSIP_MEMBERS
        );
        assert!(text.contains(&alive) && text.contains(&suspect), "{text}");
        // The failure detector's series exist from the start (a lone node probes no one).
        assert_eq!(value(super::GOSSIP_LOCAL_HEALTH)?, 0.0);
        for result in ["ack", "indirect_ack", "timeout"] {
            let probes = format!(
                "{}{{node=\"{id}\",result=\"{result}\"}} 0",
                super::GOSSIP_PROBES
            );
            assert!(text.contains(&probes), "no {probes} in\n{text}");
        }
        for event in ["raised", "refuted"] {
            let suspicions = format!(
                "{}{{node=\"{id}\",event=\"{event}\"}} 0",
                super::GOSSIP_SUSPICIONS
            );
            assert!(text.contains(&suspicions), "no {suspicions} in\n{text}");
        }
        node.shutdown().await;
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    runtime.shutdown(Duration::from_secs(5))?;
    Ok(())
}
