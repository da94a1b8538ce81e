//! `SimTransport` on its own, its clock moved by the test: the `Transport` contract, the
//! datagram faults (same seed, same trace), partitions both ways, crashes, and streams.
//!
//! Every test drives the hub from one thread, so each run is a pure function of its seed.
//! Seeded tests print their seed; `SIM_SEED=n` runs seed `n` only.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures_lite::future::{block_on, poll_once};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use phalanx_transports::{
    ByteStream, SimFaults, SimHub, SimInstant, SimTransport, Transport, TransportError,
};

fn addr(n: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, n], 7000))
}

fn nodes(hub: &SimHub, count: u8) -> Vec<SimTransport> {
    (1..=count).map(|n| hub.bind(addr(n)).unwrap()).collect()
}

/// The seeds to run: `SIM_SEED` alone if set, else `defaults`.
fn seeds(defaults: std::ops::Range<u64>) -> Vec<u64> {
    match std::env::var("SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("SIM_SEED is a u64")],
        Err(_) => defaults.collect(),
    }
}

/// Every datagram waiting at `transport`, without waiting.
fn drain(transport: &SimTransport) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf = vec![0; transport.max_datagram() + 1];
    // Bounded by the inbox's capacity.
    for _ in 0..10_000 {
        match block_on(poll_once(transport.recv_datagram(&mut buf))) {
            Some(Ok((len, from))) => out.push((from, buf[..len].to_vec())),
            Some(Err(error)) => panic!("recv failed: {error}"),
            None => break,
        }
    }
    out
}

/// Bytes readable on `stream` right now, without waiting.
fn readable(stream: &mut Box<dyn ByteStream>) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0; 4_096];
    for _ in 0..10_000 {
        match block_on(poll_once(stream.read(&mut buf))) {
            Some(Ok(0)) | None => break,
            Some(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Some(Err(error)) => return Err(error),
        }
    }
    Ok(out)
}

#[test]
fn datagrams_too_large_are_refused_and_short_buffers_truncate() {
    let hub = SimHub::new(0, SimFaults::none());
    let a = hub.bind(addr(1)).unwrap();
    let b = hub.bind(addr(2)).unwrap().with_max_datagram(100);
    block_on(async {
        let error = a.send_datagram(b.local_addr(), &[0; 1_401]).await;
        assert!(
            matches!(
                error,
                Err(TransportError::DatagramTooLarge {
                    len: 1_401,
                    max: 1_400
                })
            ),
            "{error:?}"
        );
        let error = b.send_datagram(a.local_addr(), &[0; 101]).await;
        assert!(
            matches!(
                error,
                Err(TransportError::DatagramTooLarge { len: 101, max: 100 })
            ),
            "{error:?}"
        );
        a.send_datagram(b.local_addr(), &[7; 1_400]).await.unwrap();
        hub.run_until_idle();
        let mut short = [0; 10];
        let (len, from) = b.recv_datagram(&mut short).await.unwrap();
        assert_eq!((len, from, short), (10, a.local_addr(), [7; 10]));
    });
    assert_eq!(hub.stats().sent, 1);
}

#[test]
fn a_closed_transport_stays_closed_and_frees_its_address() {
    let hub = SimHub::new(0, SimFaults::none());
    let a = hub.bind(addr(1)).unwrap();
    let b = hub.bind(addr(2)).unwrap();
    assert!(matches!(hub.bind(addr(1)), Err(TransportError::Io(_))));
    block_on(async {
        a.send_datagram(b.local_addr(), b"late").await.unwrap();
        hub.run_until_idle();
        let mut buf = [0; 16];
        {
            let mut accept = b.accept_stream();
            assert!(poll_once(&mut accept).await.is_none());
            b.close();
            assert!(matches!(accept.await, Err(TransportError::Closed)));
        }
        assert!(b.is_closed());
        let recv = b.recv_datagram(&mut buf).await;
        assert!(matches!(recv, Err(TransportError::Closed)), "{recv:?}");
        let send = b.send_datagram(a.local_addr(), b"x").await;
        assert!(matches!(send, Err(TransportError::Closed)), "{send:?}");
        assert!(matches!(
            b.open_stream(a.local_addr()).await,
            Err(TransportError::Closed)
        ));
        // Nothing is bound at the address any more: datagrams go nowhere, streams fail.
        a.send_datagram(addr(2), b"lost").await.unwrap();
        hub.run_until_idle();
        assert_eq!(hub.unclaimed_datagrams(), 1);
        assert!(matches!(
            a.open_stream(addr(2)).await,
            Err(TransportError::Unreachable(to)) if to == addr(2)
        ));
    });
    // The address is free again, and a dropped transport frees its own.
    let again = hub.bind(addr(2)).unwrap();
    drop(again);
    let c = hub.bind(addr(2)).unwrap();
    assert!(!c.is_closed());
    let any = hub.bind(SocketAddr::from(([10, 0, 0, 9], 0))).unwrap();
    let other = hub.bind(SocketAddr::from(([10, 0, 0, 9], 0))).unwrap();
    assert_ne!(any.local_addr().port(), 0);
    assert_ne!(any.local_addr(), other.local_addr());
}

#[test]
fn a_perfect_network_delivers_in_order_after_the_delay() {
    let hub = SimHub::new(0, SimFaults::none());
    let [a, b] = <[SimTransport; 2]>::try_from(nodes(&hub, 2)).unwrap();
    block_on(async {
        for i in 0..10u8 {
            a.send_datagram(b.local_addr(), &[i]).await.unwrap();
        }
    });
    hub.advance(Duration::from_micros(999));
    assert!(drain(&b).is_empty());
    hub.advance(Duration::from_micros(1));
    let got: Vec<u8> = drain(&b).into_iter().map(|(_, d)| d[0]).collect();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    assert_eq!(hub.now(), SimInstant::from_nanos(1_000_000));
}

/// One arrival: when, where, from where, what.
type Arrival = (SimInstant, SocketAddr, SocketAddr, Vec<u8>);

fn faulty() -> SimFaults {
    SimFaults::none()
        .with_loss(0.2)
        .with_duplicate(0.1)
        .with_delay(Duration::from_millis(1), Duration::from_millis(20))
        .with_reorder(0.3, Duration::from_millis(50))
}

/// Three nodes send 600 numbered datagrams round-robin, one every 200 us of virtual time,
/// then the network drains; returns every arrival in order.
fn trace(seed: u64) -> (Vec<Arrival>, phalanx_transports::SimStats) {
    let hub = SimHub::new(seed, faulty());
    let transports = nodes(&hub, 3);
    let mut arrivals = Vec::new();
    let collect = |hub: &SimHub, arrivals: &mut Vec<Arrival>| {
        for t in &transports {
            for (from, datagram) in drain(t) {
                arrivals.push((hub.now(), t.local_addr(), from, datagram));
            }
        }
    };
    for i in 0..600u32 {
        let from = &transports[i as usize % 3];
        let to = transports[(i as usize + 1) % 3].local_addr();
        block_on(from.send_datagram(to, &i.to_be_bytes())).unwrap();
        // Steps deliver one instant at a time, so each arrival is stamped exactly.
        let until = hub.now() + Duration::from_micros(200);
        for _ in 0..10_000 {
            if hub.next_due().is_none_or(|due| due > until) {
                break;
            }
            hub.step();
            collect(&hub, &mut arrivals);
        }
        hub.advance(until.saturating_duration_since(hub.now()));
        collect(&hub, &mut arrivals);
    }
    for _ in 0..100_000 {
        if hub.step().is_none() {
            break;
        }
        collect(&hub, &mut arrivals);
    }
    (arrivals, hub.stats())
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    for seed in seeds(0..4) {
        println!("seed {seed} (replay with SIM_SEED={seed})");
        let (first, stats) = trace(seed);
        let (second, again) = trace(seed);
        assert_eq!(first, second, "seed {seed}");
        assert_eq!(stats, again, "seed {seed}");
        let (other, _) = trace(seed.wrapping_add(1));
        assert_ne!(first, other, "seed {seed}");
    }
}

#[test]
fn faults_are_applied_and_counted() {
    for seed in seeds(10..14) {
        println!("seed {seed} (replay with SIM_SEED={seed})");
        let (arrivals, stats) = trace(seed);
        assert_eq!(stats.sent, 600);
        // Loss 0.2 of 600: 120 expected, standard deviation about 10.
        assert!((60..180).contains(&stats.lost), "seed {seed}: {stats:?}");
        // Duplication 0.1 of the 480 or so not lost: about 48.
        assert!(
            (15..90).contains(&stats.duplicated),
            "seed {seed}: {stats:?}"
        );
        assert_eq!(arrivals.len() as u64, stats.delivered, "seed {seed}");
        assert_eq!(stats.delivered, stats.sent - stats.lost + stats.duplicated);
        // Reordering: some datagram on a link arrives after a later-numbered one.
        let number = |d: &[u8]| u32::from_be_bytes(d.try_into().unwrap());
        let overtaken = arrivals
            .windows(2)
            .filter(|w| w[0].1 == w[1].1 && number(&w[1].3) < number(&w[0].3))
            .count();
        assert!(overtaken > 0, "seed {seed}");
        // Delays stay within [1 ms, 20 ms + 50 ms].
        for (at, _, _, d) in &arrivals {
            let sent = SimInstant::ZERO + Duration::from_micros(200) * number(d);
            let delay = at.saturating_duration_since(sent);
            assert!(delay >= Duration::from_millis(1), "seed {seed}");
            assert!(delay <= Duration::from_millis(71), "seed {seed}: {delay:?}");
        }
    }
}

#[test]
fn a_one_way_partition_blocks_one_direction_until_healed() {
    let hub = SimHub::new(0, SimFaults::none());
    let [a, b] = <[SimTransport; 2]>::try_from(nodes(&hub, 2)).unwrap();
    hub.partition_one_way(a.local_addr(), b.local_addr());
    block_on(async {
        a.send_datagram(b.local_addr(), b"a to b").await.unwrap();
        b.send_datagram(a.local_addr(), b"b to a").await.unwrap();
    });
    hub.run_until_idle();
    assert!(drain(&b).is_empty());
    assert_eq!(drain(&a), vec![(b.local_addr(), b"b to a".to_vec())]);
    assert_eq!(hub.stats().partitioned, 1);
    hub.heal(b.local_addr(), a.local_addr());
    block_on(a.send_datagram(b.local_addr(), b"healed")).unwrap();
    hub.run_until_idle();
    assert_eq!(drain(&b), vec![(a.local_addr(), b"healed".to_vec())]);
}

#[test]
fn a_group_partition_blocks_both_ways_and_drops_what_is_in_flight() {
    let hub = SimHub::new(0, SimFaults::none());
    let t = nodes(&hub, 4);
    block_on(t[0].send_datagram(t[2].local_addr(), b"in flight")).unwrap();
    hub.partition_groups(&[addr(1), addr(2)], &[addr(3), addr(4)]);
    block_on(async {
        t[3].send_datagram(t[1].local_addr(), b"across")
            .await
            .unwrap();
        t[1].send_datagram(t[3].local_addr(), b"across")
            .await
            .unwrap();
        t[0].send_datagram(t[1].local_addr(), b"same side")
            .await
            .unwrap();
    });
    hub.run_until_idle();
    assert!(drain(&t[2]).is_empty() && drain(&t[3]).is_empty());
    assert_eq!(drain(&t[1]), vec![(addr(1), b"same side".to_vec())]);
    assert_eq!(hub.stats().partitioned, 3);
    hub.heal_all();
    block_on(t[3].send_datagram(t[1].local_addr(), b"healed")).unwrap();
    hub.run_until_idle();
    assert_eq!(drain(&t[1]).len(), 1);
}

/// A stream from `a` to `b`: the dialer's end and the acceptor's end.
fn connect(a: &SimTransport, b: &SimTransport) -> (Box<dyn ByteStream>, Box<dyn ByteStream>) {
    block_on(async {
        let out = a.open_stream(b.local_addr()).await.unwrap();
        let (incoming, from) = b.accept_stream().await.unwrap();
        assert_eq!(from, a.local_addr());
        (out, incoming)
    })
}

#[test]
fn streams_are_reliable_and_ordered_under_datagram_faults_and_take_the_stream_delay() {
    let hub = SimHub::new(5, faulty().with_loss(0.9));
    hub.set_stream_delay(Duration::from_millis(3));
    let [a, b] = <[SimTransport; 2]>::try_from(nodes(&hub, 2)).unwrap();
    let (mut out, mut incoming) = connect(&a, &b);
    let sent: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    block_on(async {
        for chunk in sent.chunks(1_000) {
            out.write_all(chunk).await.unwrap();
            hub.advance(Duration::from_micros(10));
        }
        incoming.write_all(b"reply").await.unwrap();
    });
    assert!(readable(&mut incoming).unwrap().is_empty());
    hub.advance(Duration::from_millis(3) - Duration::from_micros(1_000));
    let mut got = readable(&mut incoming).unwrap();
    assert!(!got.is_empty() && got.len() < sent.len());
    hub.run_until_idle();
    got.extend(readable(&mut incoming).unwrap());
    assert_eq!(got, sent);
    assert_eq!(readable(&mut out).unwrap(), b"reply");
    // Closing one end is seen as end-of-stream by the other, after the delay.
    block_on(out.close()).unwrap();
    assert!(block_on(out.write_all(b"more")).is_err());
    hub.run_until_idle();
    assert_eq!(block_on(incoming.read(&mut [0; 8])).unwrap(), 0);
}

#[test]
fn a_stream_across_a_partition_stalls_and_resumes_in_order_when_healed() {
    let hub = SimHub::new(0, SimFaults::none());
    let [a, b] = <[SimTransport; 2]>::try_from(nodes(&hub, 2)).unwrap();
    let (mut out, mut incoming) = connect(&a, &b);
    block_on(out.write_all(b"before ")).unwrap();
    hub.partition_one_way(a.local_addr(), b.local_addr());
    block_on(async {
        out.write_all(b"during").await.unwrap();
        incoming.write_all(b"back").await.unwrap();
    });
    hub.run_until_idle();
    assert!(readable(&mut incoming).unwrap().is_empty());
    // The other direction still flows.
    assert_eq!(readable(&mut out).unwrap(), b"back");
    // A writer that keeps writing into the partition waits once its window is full.
    let big = vec![1; 1 << 20];
    assert!(block_on(poll_once(out.write_all(&big))).is_none());
    // New streams cannot be opened across it, either way.
    let open = block_on(b.open_stream(a.local_addr()));
    assert!(
        matches!(open, Err(TransportError::Unreachable(_))),
        "{open:?}"
    );
    hub.heal(a.local_addr(), b.local_addr());
    hub.run_until_idle();
    let got = readable(&mut incoming).unwrap();
    assert!(got.starts_with(b"before during"), "{:?}", &got[..20]);
    assert!(got[13..].iter().all(|&byte| byte == 1));
}

#[test]
fn a_crash_resets_streams_closes_the_transport_and_loses_datagrams_until_rebound() {
    let hub = SimHub::new(0, SimFaults::none());
    let [a, b] = <[SimTransport; 2]>::try_from(nodes(&hub, 2)).unwrap();
    let (mut out, mut incoming) = connect(&a, &b);
    block_on(async {
        out.write_all(b"lost").await.unwrap();
        a.send_datagram(b.local_addr(), b"lost").await.unwrap();
        b.send_datagram(a.local_addr(), b"lost").await.unwrap();
    });
    let mut buf = [0; 8];
    {
        let mut read = out.read(&mut buf);
        assert!(block_on(poll_once(&mut read)).is_none());
        hub.crash(b.local_addr());
        let error = block_on(read).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
    }
    assert!(hub.is_crashed(b.local_addr()));
    assert!(b.is_closed());
    let error = block_on(incoming.read(&mut buf)).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
    assert!(block_on(out.write_all(b"x")).is_err());
    assert!(matches!(
        block_on(b.recv_datagram(&mut buf)),
        Err(TransportError::Closed)
    ));
    assert!(matches!(
        block_on(a.open_stream(b.local_addr())),
        Err(TransportError::Unreachable(_))
    ));
    hub.run_until_idle();
    assert!(drain(&a).is_empty());
    assert_eq!(hub.stats().crashed, 2);
    // A new process binds the address again.
    drop(b);
    let b = hub.bind(addr(2)).unwrap();
    assert!(!hub.is_crashed(b.local_addr()));
    block_on(a.send_datagram(b.local_addr(), b"again")).unwrap();
    hub.run_until_idle();
    assert_eq!(drain(&b), vec![(a.local_addr(), b"again".to_vec())]);
    let (_, _) = connect(&a, &b);
}
