//! Remote message types that opt in to datagrams (`RemoteMessage::CARRIER`): two nodes on
//! loopback, with an in-process carrier standing in for the membership layer. What fits goes
//! by datagram; what does not, what carries a reply, and everything without a carrier goes on
//! the stream; inbound records pass the same checks as stream messages. Plus a property test
//! and a fuzz target for the datagram record decoder.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use phalanx_runtime::{Actor, ActorRef, Context, HandlerError, Reply, Runtime, spawn_actor};
use phalanx_transports::{
    Carrier, ClusterId, DatagramCarrier, EndpointConfig, EndpointSecurity, Incarnation, Key,
    NodeId, RemoteMessage, Remoting, SharedKeyring, decode_datagram_record, encode_datagram_record,
};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(10);

#[derive(Serialize, Deserialize)]
enum Sample {
    Value(u64),
    Blob(Vec<u8>),
    Get(Reply<Vec<u64>>),
}

impl RemoteMessage for Sample {
    const TAG: &'static str = "test.Sample.v1";
    const CARRIER: Carrier = Carrier::Datagram;
}

/// The same encoding under another name, on the stream only.
#[derive(Serialize, Deserialize)]
enum Streamed {
    Value(u64),
}

impl RemoteMessage for Streamed {
    const TAG: &'static str = "test.Streamed.v1";
}

#[derive(Default)]
struct Sampler {
    seen: Vec<u64>,
}

impl Actor for Sampler {
    type Message = Sample;

    async fn handle(&mut self, _: &mut Context<Self>, msg: Sample) -> Result<(), HandlerError> {
        match msg {
            Sample::Value(n) => self.seen.push(n),
            Sample::Blob(bytes) => self.seen.push(bytes.len() as u64),
            Sample::Get(reply) => {
                let _ = reply.send(self.seen.clone());
            }
        }
        Ok(())
    }
}

struct Sink;

impl Actor for Sink {
    type Message = Streamed;

    async fn handle(&mut self, _: &mut Context<Self>, _: Streamed) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// Hands datagram records straight to the other node's `deliver_datagram`, like a lossless
/// network; remembers the last record so that tests can forge variants of it.
struct Loopback {
    from: NodeId,
    to: Arc<Remoting>,
    max: usize,
    reachable: AtomicBool,
    last: Mutex<Vec<u8>>,
}

impl DatagramCarrier for Loopback {
    fn max_payload(&self, node: NodeId) -> usize {
        if node == self.to.node() && self.reachable.load(Ordering::Relaxed) {
            self.max
        } else {
            0
        }
    }

    fn carry(&self, node: NodeId, payload: Vec<u8>) -> bool {
        if self.max_payload(node) < payload.len() {
            return false;
        }
        self.to.deliver_datagram(self.from, &payload);
        *self.last.lock().unwrap() = payload;
        true
    }
}

fn run<F: std::future::Future>(future: F) -> F::Output {
    let runtime = Runtime::builder().worker_threads(2).build().unwrap();
    runtime.block_on(future)
}

async fn pair() -> (Remoting, Arc<Remoting>) {
    let security = EndpointSecurity::Keyring(SharedKeyring::new(Key::from_bytes([5; 32])));
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = |n| EndpointConfig::new(ClusterId(9), NodeId::from_u128(n), Incarnation(1));
    let a = Remoting::bind(addr, config(1), security.clone())
        .await
        .unwrap();
    let b = Remoting::bind(addr, config(2), security).await.unwrap();
    (a, Arc::new(b))
}

async fn sampler_on(a: &Remoting, b: &Remoting) -> (ActorRef<Sample>, ActorRef<Sample>) {
    let local = spawn_actor(Sampler::default());
    b.register("sampler", &local).unwrap();
    let node = a.connect(b.local_addr(), WAIT).await.unwrap();
    let remote = a.lookup::<Sample>(node, "sampler", WAIT).await.unwrap();
    (local, remote)
}

#[test]
fn opted_in_messages_that_fit_go_by_datagram_and_the_rest_by_stream() {
    run(async {
        let (a, b) = pair().await;
        let carrier = Arc::new(Loopback {
            from: a.node(),
            to: Arc::clone(&b),
            max: 1200,
            reachable: AtomicBool::new(true),
            last: Mutex::new(Vec::new()),
        });
        a.set_datagram_carrier(Some(carrier.clone()));
        let (_, remote) = sampler_on(&a, &b).await;
        for n in 0..100 {
            remote.tell(Sample::Value(n)).await.unwrap();
        }
        remote.try_tell(Sample::Value(100)).unwrap();
        assert_eq!(a.datagram_stats().sent, 101);
        assert_eq!(b.datagram_stats().delivered, 101);
        // Too large for a datagram: the stream takes it.
        remote.tell(Sample::Blob(vec![1; 5000])).await.unwrap();
        // No route to the node by datagram: the stream takes it.
        carrier.reachable.store(false, Ordering::Relaxed);
        remote.tell(Sample::Value(101)).await.unwrap();
        carrier.reachable.store(true, Ordering::Relaxed);
        // An ask needs its answer reliably: the stream takes it, and it comes after the blob
        // (FIFO on the stream) and after every datagram (delivered synchronously here).
        let seen = remote.ask(Sample::Get, WAIT).await.unwrap();
        let mut expected: Vec<u64> = (0..=100).collect();
        expected.extend([5000, 101]);
        assert_eq!(seen, expected);
        let stats = a.datagram_stats();
        assert_eq!((stats.sent, stats.fell_back), (101, 3));
        assert_eq!(b.datagram_stats().dropped, 0);
    });
}

#[test]
fn without_a_carrier_everything_goes_on_the_stream_in_order() {
    run(async {
        let (a, b) = pair().await;
        let (_, remote) = sampler_on(&a, &b).await;
        for n in 0..50 {
            remote.tell(Sample::Value(n)).await.unwrap();
        }
        let seen = remote.ask(Sample::Get, WAIT).await.unwrap();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
        assert_eq!(a.datagram_stats().sent, 0);
        assert_eq!(a.datagram_stats().fell_back, 51);
    });
}

#[test]
fn inbound_records_are_checked_like_stream_messages() {
    run(async {
        let (a, b) = pair().await;
        let carrier = Arc::new(Loopback {
            from: a.node(),
            to: Arc::clone(&b),
            max: 1200,
            reachable: AtomicBool::new(true),
            last: Mutex::new(Vec::new()),
        });
        a.set_datagram_carrier(Some(carrier.clone()));
        let (_, remote) = sampler_on(&a, &b).await;
        remote.tell(Sample::Value(7)).await.unwrap();
        let good = carrier.last.lock().unwrap().clone();
        let (target, tag, body) = decode_datagram_record(&good).expect("a valid record");
        assert_eq!(tag, Sample::TAG);
        let body = body.to_vec();
        // The same record again is delivered again: deduplication is the carrier's job
        // (gossip drops duplicated datagrams by sequence number).
        assert!(b.deliver_datagram(a.node(), &good));
        let forged = [
            encode_datagram_record(target ^ 1, Sample::TAG, &body).unwrap(),
            encode_datagram_record(target, Streamed::TAG, &body).unwrap(),
            encode_datagram_record(target, Sample::TAG, &[0xff, 0xff, 0xff]).unwrap(),
            // A reply id where the variant `Get` expects one: replies never come by datagram.
            encode_datagram_record(target, Sample::TAG, &[2, 5]).unwrap(),
            good[..good.len() - 1].to_vec(),
            vec![0xff; 40],
            Vec::new(),
        ];
        for record in &forged {
            assert!(!b.deliver_datagram(a.node(), record));
        }
        // A type that did not opt in takes nothing by datagram, even with the right tag.
        let sink = spawn_actor(Sink);
        b.register("sink", &sink).unwrap();
        let streamed = a.lookup::<Streamed>(b.node(), "sink", WAIT).await.unwrap();
        streamed.tell(Streamed::Value(1)).await.unwrap();
        let mut refused = 0;
        // Its export id is near the sampler's: try the neighbourhood.
        for id in target.saturating_sub(8)..target + 8 {
            let record = encode_datagram_record(id, Streamed::TAG, &[0, 1]).unwrap();
            refused += usize::from(!b.deliver_datagram(a.node(), &record));
        }
        assert_eq!(refused, 16);
        let seen = remote.ask(Sample::Get, WAIT).await.unwrap();
        assert_eq!(seen, vec![7, 7]);
        let stats = b.datagram_stats();
        assert_eq!(stats.delivered, 2);
        assert_eq!(stats.dropped, forged.len() as u64 + 16);
    });
}

proptest! {
    #[test]
    fn record_round_trip(
        target in any::<u64>(),
        tag in "[a-zA-Z0-9.]{0,64}",
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let bytes = encode_datagram_record(target, &tag, &body).unwrap();
        let (t, g, b) = decode_datagram_record(&bytes).unwrap();
        prop_assert_eq!((t, g, b), (target, tag.as_str(), body.as_slice()));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Some((target, tag, body)) = decode_datagram_record(&bytes) {
            prop_assert!(tag.len() <= 256);
            let again = encode_datagram_record(target, tag, body).unwrap();
            prop_assert_eq!(decode_datagram_record(&again), Some((target, tag, body)));
        }
    }
}

/// Fuzz target for the datagram record decoder; runs as a normal test with a small budget
/// (`BOLERO_RANDOM_ITERATIONS` raises it).
#[test]
fn fuzz_decode_datagram_record() {
    bolero::check!()
        .with_iterations(2_000)
        .for_each(|bytes: &[u8]| {
            if let Some((target, tag, body)) = decode_datagram_record(bytes) {
                let again = encode_datagram_record(target, tag, body).unwrap();
                assert_eq!(decode_datagram_record(&again), Some((target, tag, body)));
            }
        });
}
