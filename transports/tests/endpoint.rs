//! The connection layer over real loopback sockets: delivery, order, IPv6, reconnection, and
//! bad input of every kind, which must be counted and dropped without reaching the handler.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use phalanx_transports::{
    ClusterId, Codec, CodecConfig, Delivery, Endpoint, EndpointConfig, EndpointSecurity, FrameKind,
    Handler, Incarnation, Key, Keyring, NetTransport, NodeId, Security, SendBytesError,
    SharedKeyring, StreamDecoder, Transport,
};
use serde::{Deserialize, Serialize};

const CLUSTER: ClusterId = ClusterId(42);
const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, PartialEq, Eq)]
enum Event {
    Frame(NodeId, Vec<u8>),
    Up(NodeId),
    Down(NodeId),
}

struct Collect(flume::Sender<Event>);

impl Handler for Collect {
    fn frame<'a>(&'a self, from: NodeId, kind: FrameKind, payload: &'a [u8]) -> Delivery<'a> {
        assert_eq!(kind, FrameKind::ActorMessage);
        let _ = self.0.send(Event::Frame(from, payload.to_vec()));
        Delivery::done()
    }
    fn peer_up(&self, node: NodeId, _: Incarnation, _: SocketAddr) {
        let _ = self.0.send(Event::Up(node));
    }
    fn peer_down(&self, node: NodeId) {
        let _ = self.0.send(Event::Down(node));
    }
}

struct Node {
    endpoint: Endpoint,
    events: flume::Receiver<Event>,
    _handler: Arc<dyn Handler>,
}

async fn node(n: u128, bind: &str, security: EndpointSecurity) -> Node {
    let transport = Arc::new(NetTransport::bind(bind.parse().unwrap()).await.unwrap());
    node_on(n, transport, security)
}

fn node_on(n: u128, transport: Arc<NetTransport>, security: EndpointSecurity) -> Node {
    let config = EndpointConfig::new(CLUSTER, NodeId::from_u128(n), Incarnation(1));
    node_with(transport, config, security)
}

fn node_with(
    transport: Arc<NetTransport>,
    config: EndpointConfig,
    security: EndpointSecurity,
) -> Node {
    let (tx, events) = flume::unbounded();
    let handler: Arc<dyn Handler> = Arc::new(Collect(tx));
    let endpoint = Endpoint::new(transport, config, security, Arc::downgrade(&handler));
    endpoint.start();
    Node {
        endpoint,
        events,
        _handler: handler,
    }
}

fn keys() -> SharedKeyring {
    SharedKeyring::new(Key::from_bytes([9; 32]))
}

async fn next_frame(events: &flume::Receiver<Event>) -> (NodeId, Vec<u8>) {
    loop {
        match phalanx_runtime::timeout(WAIT, events.recv_async()).await {
            Ok(Ok(Event::Frame(from, bytes))) => return (from, bytes),
            Ok(Ok(_)) => continue,
            other => panic!("no frame: {other:?}"),
        }
    }
}

/// Receives records of 8 bytes (a big-endian counter) until `count` arrived; checks order.
async fn expect_counter(events: &flume::Receiver<Event>, from: NodeId, count: u64) {
    let mut next = 0u64;
    while next < count {
        let (sender, batch) = next_frame(events).await;
        assert_eq!(sender, from);
        assert_eq!(batch.len() % 8, 0);
        for record in batch.chunks(8) {
            let value = u64::from_be_bytes(record.try_into().unwrap());
            assert_eq!(value, next, "records out of order");
            next += 1;
        }
    }
}

fn run<F: std::future::Future>(future: F) -> F::Output {
    let runtime = phalanx_runtime::Runtime::builder()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(future)
}

#[test]
fn records_arrive_in_order_in_batches_ipv4_and_ipv6() {
    run(async {
        for (bind, security) in [
            ("127.0.0.1:0", EndpointSecurity::Keyring(keys())),
            ("[::1]:0", EndpointSecurity::Keyring(keys())),
            ("127.0.0.1:0", EndpointSecurity::Plaintext),
        ] {
            let a = node(1, bind, security.clone()).await;
            let b = node(2, bind, security).await;
            let to = b.endpoint.local_addr();
            let sender = a.endpoint.sender(to);
            const COUNT: u64 = 50_000;
            for i in 0..COUNT {
                sender.ready().await;
                sender.send(&i.to_be_bytes()).unwrap();
            }
            expect_counter(&b.events, NodeId::from_u128(1), COUNT).await;
            assert!(a.endpoint.is_up(NodeId::from_u128(2)));
            assert_eq!(b.endpoint.drop_counters().total(), 0);
            a.endpoint.close();
            b.endpoint.close();
        }
    });
}

#[test]
fn a_record_larger_than_a_frame_is_refused() {
    run(async {
        let a = node(1, "127.0.0.1:0", EndpointSecurity::Keyring(keys())).await;
        let sender = a.endpoint.sender("127.0.0.1:9".parse().unwrap());
        let error = sender.send(&vec![0; 2 << 20]).unwrap_err();
        assert!(
            matches!(error, SendBytesError::TooLarge { .. }),
            "{error:?}"
        );
        a.endpoint.close();
    });
}

#[test]
fn peer_down_on_loss_and_reconnect_with_backoff() {
    run(async {
        let a = node(1, "127.0.0.1:0", EndpointSecurity::Keyring(keys())).await;
        let b = node(2, "127.0.0.1:0", EndpointSecurity::Keyring(keys())).await;
        let to = b.endpoint.local_addr();
        let b_id = a.endpoint.connect(to, WAIT).await.unwrap();
        assert_eq!(b_id, NodeId::from_u128(2));
        b.endpoint.close();
        drop(b);
        // A sees B go down when the connection ends.
        loop {
            match phalanx_runtime::timeout(WAIT, a.events.recv_async()).await {
                Ok(Ok(Event::Down(node))) if node == b_id => break,
                Ok(Ok(_)) => continue,
                other => panic!("no Down: {other:?}"),
            }
        }
        assert!(!a.endpoint.is_up(b_id));
        // B comes back on the same port; A reconnects after its backoff.
        let mut transport = None;
        for _ in 0..200 {
            match NetTransport::bind(to).await {
                Ok(t) => {
                    transport = Some(t);
                    break;
                }
                Err(_) => phalanx_runtime::sleep(Duration::from_millis(10)).await,
            }
        }
        let b2 = node_on(
            2,
            Arc::new(transport.expect("port never freed")),
            EndpointSecurity::Keyring(keys()),
        );
        let mut connected = false;
        for _ in 0..50 {
            if a.endpoint.connect(to, WAIT).await.is_ok() {
                connected = true;
                break;
            }
            phalanx_runtime::sleep(Duration::from_millis(20)).await;
        }
        assert!(connected);
        a.endpoint.sender(to).send(&7u64.to_be_bytes()).unwrap();
        let (from, bytes) = next_frame(&b2.events).await;
        assert_eq!(
            (from, bytes),
            (NodeId::from_u128(1), 7u64.to_be_bytes().to_vec())
        );
        a.endpoint.close();
        b2.endpoint.close();
    });
}

/// The handshake messages, mirrored here to speak the protocol by hand.
#[derive(Serialize, Deserialize)]
enum Handshake {
    Hello {
        listen: SocketAddr,
        challenge: [u8; 16],
    },
    Welcome {
        echo: [u8; 16],
        challenge: [u8; 16],
    },
    Ack {
        echo: [u8; 16],
    },
}

fn raw_codec(node: u128, cluster: ClusterId, key: [u8; 32]) -> Codec {
    let config = CodecConfig::new(cluster, NodeId::from_u128(node), Incarnation(1));
    Codec::new(
        config,
        Security::Keyring(Keyring::new(Key::from_bytes(key))),
    )
}

/// Dials `to` by hand, runs the handshake, and returns the stream and every byte written.
async fn handshake_by_hand(to: SocketAddr, codec: &mut Codec) -> (async_net::TcpStream, Vec<u8>) {
    let mut stream = async_net::TcpStream::connect(to).await.unwrap();
    let mut written = Vec::new();
    let hello = Handshake::Hello {
        listen: "127.0.0.1:1".parse().unwrap(),
        challenge: [1; 16],
    };
    let bytes = codec
        .seal_stream_frame(FrameKind::Control, &postcard::to_allocvec(&hello).unwrap())
        .unwrap();
    stream.write_all(&bytes).await.unwrap();
    written.extend_from_slice(&bytes);
    let mut decoder = StreamDecoder::new();
    let mut buf = [0; 1024];
    let welcome = loop {
        if let Some(frame) = decoder.next_frame(codec).unwrap() {
            break frame;
        }
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0);
        decoder.push(&buf[..n]);
    };
    let Ok(Handshake::Welcome { echo, challenge }) = postcard::from_bytes(&welcome.payload) else {
        panic!("no Welcome");
    };
    assert_eq!(echo, [1; 16]);
    let bytes = codec
        .seal_stream_frame(
            FrameKind::Control,
            &postcard::to_allocvec(&Handshake::Ack { echo: challenge }).unwrap(),
        )
        .unwrap();
    stream.write_all(&bytes).await.unwrap();
    written.extend_from_slice(&bytes);
    (stream, written)
}

/// Sends `bytes` on a fresh connection to `to` and waits until the node closes it.
async fn send_raw(to: SocketAddr, bytes: &[u8]) {
    let mut stream = async_net::TcpStream::connect(to).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let _ = stream.close().await;
    drain(&mut stream).await;
}

async fn drain(stream: &mut async_net::TcpStream) {
    let mut buf = [0; 1024];
    for _ in 0..1_000 {
        match phalanx_runtime::timeout(WAIT, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("node kept a bad connection open"),
        }
    }
}

async fn wait_for(mut check: impl FnMut() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        phalanx_runtime::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition never held");
}

#[test]
fn bad_input_is_counted_dropped_and_never_delivered() {
    run(async {
        let b = node(2, "127.0.0.1:0", EndpointSecurity::Keyring(keys())).await;
        let to = b.endpoint.local_addr();
        let counters = || b.endpoint.drop_counters();

        // Garbled: not a frame at all.
        send_raw(to, b"\x00\x00\x00\x10GET / HTTP/1.1\r\n\r\n").await;
        wait_for(|| counters().garbled == 1).await;

        // Truncated: a valid frame cut short, then the connection closes.
        let mut good = raw_codec(5, CLUSTER, [9; 32]);
        let hello = postcard::to_allocvec(&Handshake::Hello {
            listen: "127.0.0.1:1".parse().unwrap(),
            challenge: [0; 16],
        })
        .unwrap();
        let frame = good.seal_stream_frame(FrameKind::Control, &hello).unwrap();
        send_raw(to, &frame[..frame.len() / 2]).await;

        // Oversized: a length prefix above the maximum; nothing is buffered for it.
        send_raw(to, &[0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3]).await;
        wait_for(|| counters().oversized == 1).await;

        // Unauthenticated: sealed with a key the node does not have.
        let mut stranger = raw_codec(6, CLUSTER, [1; 32]);
        let frame = stranger
            .seal_stream_frame(FrameKind::Control, &hello)
            .unwrap();
        send_raw(to, &frame).await;
        wait_for(|| counters().unauthenticated == 1).await;

        // Wrong cluster, right key.
        let mut other_cluster = raw_codec(7, ClusterId(43), [9; 32]);
        let frame = other_cluster
            .seal_stream_frame(FrameKind::Control, &hello)
            .unwrap();
        send_raw(to, &frame).await;
        wait_for(|| counters().wrong_cluster == 1).await;

        // Replayed within a stream: one data frame sent twice after a good handshake.
        let mut codec = raw_codec(8, CLUSTER, [9; 32]);
        let (mut stream, recorded) = handshake_by_hand(to, &mut codec).await;
        let data = codec
            .seal_stream_frame(FrameKind::ActorMessage, b"once")
            .unwrap();
        stream.write_all(&data).await.unwrap();
        stream.write_all(&data).await.unwrap();
        assert_eq!(
            next_frame(&b.events).await,
            (NodeId::from_u128(8), b"once".to_vec())
        );
        drain(&mut stream).await;
        wait_for(|| counters().replayed == 1).await;

        // A whole recorded connection replayed: the handshake's fresh challenge stops it.
        let mut replayed = recorded;
        replayed.extend_from_slice(&data);
        let failures = b.endpoint.handshake_failures();
        send_raw(to, &replayed).await;
        wait_for(|| b.endpoint.handshake_failures() > failures).await;

        // A plaintext frame to an encrypting node.
        let mut plain = Codec::new(
            CodecConfig::new(CLUSTER, NodeId::from_u128(9), Incarnation(1)),
            Security::Plaintext,
        );
        let frame = plain.seal_stream_frame(FrameKind::Control, &hello).unwrap();
        send_raw(to, &frame).await;
        wait_for(|| counters().unauthenticated == 2).await;

        // Truncated streams are handshake failures (the peer hung up mid-frame), not counted
        // as decode drops; nothing above reached the handler except the one good frame.
        assert!(b.endpoint.handshake_failures() >= 7);
        while let Ok(event) = b.events.try_recv() {
            assert!(!matches!(event, Event::Frame(..)), "{event:?}");
        }

        // The node still works.
        let a = node(1, "127.0.0.1:0", EndpointSecurity::Keyring(keys())).await;
        a.endpoint.sender(to).send(b"still alive").unwrap();
        loop {
            let (from, bytes) = next_frame(&b.events).await;
            if from == NodeId::from_u128(1) {
                assert_eq!(bytes, b"still alive");
                break;
            }
        }
        a.endpoint.close();
        b.endpoint.close();
    });
}

#[test]
fn udp_datagrams_through_the_codec_reject_bad_input() {
    run(async {
        let a = NetTransport::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let b = NetTransport::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let mut sender = raw_codec(1, CLUSTER, [9; 32]);
        let mut receiver = raw_codec(2, CLUSTER, [9; 32]);
        let good = sender.seal_datagram(FrameKind::Gossip, b"ping").unwrap();
        let mut forged = good.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        let mut stranger = raw_codec(3, ClusterId(1), [9; 32]);
        let wrong_cluster = stranger.seal_datagram(FrameKind::Gossip, b"x").unwrap();
        let inputs: Vec<Vec<u8>> = vec![
            good.clone(),
            good.clone(),
            forged,
            good[..10].to_vec(),
            vec![0xAB; 1_400],
            wrong_cluster,
        ];
        for input in &inputs {
            a.send_datagram(b.local_addr(), input).await.unwrap();
        }
        assert!(
            a.send_datagram(b.local_addr(), &vec![0; 1_401])
                .await
                .is_err()
        );
        let mut buf = vec![0; b.max_datagram() + 1];
        let mut accepted = Vec::new();
        for _ in 0..inputs.len() {
            let (len, from) = phalanx_runtime::timeout(WAIT, b.recv_datagram(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(from, a.local_addr());
            if let Ok(frame) = receiver.open_datagram(&buf[..len]) {
                accepted.push(frame.payload);
            }
        }
        assert_eq!(accepted, vec![b"ping".to_vec()]);
        let counters = *receiver.counters();
        assert_eq!(counters.replayed, 1);
        assert_eq!(counters.unauthenticated, 1);
        assert_eq!(counters.truncated, 1);
        assert_eq!(counters.garbled, 1);
        assert_eq!(counters.wrong_cluster, 1);
    });
}

/// A node that sends heartbeats every 20 ms and gives up on a silent peer after `idle_timeout`.
async fn impatient_node(n: u128, idle_timeout: Duration) -> Node {
    let transport = Arc::new(
        NetTransport::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap(),
    );
    let mut config = EndpointConfig::new(CLUSTER, NodeId::from_u128(n), Incarnation(1));
    config.heartbeat_interval = Duration::from_millis(20);
    config.idle_timeout = idle_timeout;
    node_with(transport, config, EndpointSecurity::Keyring(keys()))
}

async fn next_event(events: &flume::Receiver<Event>) -> Event {
    phalanx_runtime::timeout(WAIT, events.recv_async())
        .await
        .expect("no event in time")
        .unwrap()
}

#[test]
fn a_dialer_that_goes_silent_is_declared_down() {
    run(async {
        let a = impatient_node(1, Duration::from_millis(300)).await;
        let mut codec = raw_codec(3, CLUSTER, [9; 32]);
        // Node 3 completes the handshake, then neither writes nor reads, nor closes.
        let (mut stream, _) = handshake_by_hand(a.endpoint.local_addr(), &mut codec).await;
        assert_eq!(next_event(&a.events).await, Event::Up(NodeId::from_u128(3)));
        assert_eq!(
            next_event(&a.events).await,
            Event::Down(NodeId::from_u128(3))
        );
        assert!(!a.endpoint.is_up(NodeId::from_u128(3)));
        // A closed its end (after sending its own heartbeats, which are read and dropped here).
        drain(&mut stream).await;
        a.endpoint.close();
    });
}

#[test]
fn an_acceptor_that_goes_silent_is_declared_down() {
    run(async {
        let a = impatient_node(1, Duration::from_millis(300)).await;
        let listener = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let to = listener.local_addr().unwrap();
        // Node 3 answers the handshake, then never sends a heartbeat.
        let silent = phalanx_runtime::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut codec = raw_codec(3, CLUSTER, [9; 32]);
            let mut decoder = StreamDecoder::new();
            let mut buf = [0; 1024];
            let hello = read_by_hand(&mut stream, &mut decoder, &mut codec, &mut buf).await;
            let Ok(Handshake::Hello { challenge, .. }) = postcard::from_bytes(&hello) else {
                panic!("no Hello");
            };
            let welcome = Handshake::Welcome {
                echo: challenge,
                challenge: [5; 16],
            };
            let bytes = codec
                .seal_stream_frame(
                    FrameKind::Control,
                    &postcard::to_allocvec(&welcome).unwrap(),
                )
                .unwrap();
            stream.write_all(&bytes).await.unwrap();
            let ack = read_by_hand(&mut stream, &mut decoder, &mut codec, &mut buf).await;
            assert!(matches!(
                postcard::from_bytes(&ack),
                Ok(Handshake::Ack { echo }) if echo == [5; 16]
            ));
            stream
        });
        assert_eq!(
            a.endpoint.connect(to, WAIT).await.unwrap(),
            NodeId::from_u128(3)
        );
        let _stream = silent.await;
        assert_eq!(next_event(&a.events).await, Event::Up(NodeId::from_u128(3)));
        assert_eq!(
            next_event(&a.events).await,
            Event::Down(NodeId::from_u128(3))
        );
        assert!(!a.endpoint.is_up(NodeId::from_u128(3)));
        a.endpoint.close();
    });
}

/// Reads until one frame decodes; returns its payload.
async fn read_by_hand(
    stream: &mut async_net::TcpStream,
    decoder: &mut StreamDecoder,
    codec: &mut Codec,
    buf: &mut [u8],
) -> Vec<u8> {
    loop {
        if let Some(frame) = decoder.next_frame(codec).unwrap() {
            return frame.payload;
        }
        let n = stream.read(buf).await.unwrap();
        assert!(n > 0);
        decoder.push(&buf[..n]);
    }
}

#[test]
fn idle_connections_between_live_nodes_stay_up() {
    run(async {
        // Heartbeats every 20 ms, a generous 1 s timeout: only a stall of the whole machine
        // for most of a second could look like silence.
        let a = impatient_node(1, Duration::from_secs(1)).await;
        let b = impatient_node(2, Duration::from_secs(1)).await;
        a.endpoint
            .connect(b.endpoint.local_addr(), WAIT)
            .await
            .unwrap();
        assert_eq!(next_event(&a.events).await, Event::Up(NodeId::from_u128(2)));
        assert_eq!(next_event(&b.events).await, Event::Up(NodeId::from_u128(1)));
        phalanx_runtime::sleep(Duration::from_secs(2)).await;
        assert!(
            a.events.is_empty() && b.events.is_empty(),
            "a live peer was declared down"
        );
        a.endpoint
            .sender(b.endpoint.local_addr())
            .send(b"still here")
            .unwrap();
        assert_eq!(
            next_frame(&b.events).await,
            (NodeId::from_u128(1), b"still here".to_vec())
        );
        a.endpoint.close();
        b.endpoint.close();
    });
}
