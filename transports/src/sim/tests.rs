use std::time::Duration;

use super::*;

fn drain(net: &mut SimNetwork<u8, u32>, clock: &mut SimClock) -> Vec<(SimInstant, u8, u8, u32)> {
    let mut out = Vec::new();
    // Bounded: every datagram is popped once and none are added.
    for _ in 0..100_000 {
        let Some(due) = net.next_due() else { break };
        clock.advance_to(due);
        while let Some((from, to, payload)) = net.pop_due(clock.now()) {
            out.push((clock.now(), from, to, payload));
        }
    }
    out
}

fn faulty() -> SimFaults {
    SimFaults::none()
        .with_loss(0.2)
        .with_duplicate(0.1)
        .with_delay(Duration::from_millis(1), Duration::from_millis(20))
        .with_reorder(0.3, Duration::from_millis(50))
}

fn run(seed: u64) -> (Vec<(SimInstant, u8, u8, u32)>, SimStats) {
    let mut clock = SimClock::new();
    let mut net = SimNetwork::new(seed, faulty());
    for i in 0..500 {
        net.send((i % 5) as u8, ((i + 1) % 5) as u8, i, clock.now());
        clock.advance(Duration::from_micros(300));
    }
    let out = drain(&mut net, &mut clock);
    (out, net.stats())
}

#[test]
fn same_seed_same_run() {
    assert_eq!(run(1), run(1));
    assert_ne!(run(1).0, run(2).0);
}

#[test]
fn faults_are_applied_and_counted() {
    let (out, stats) = run(3);
    assert_eq!(stats.sent, 500);
    assert!(stats.lost > 50 && stats.lost < 150, "{stats:?}");
    assert!(stats.duplicated > 10, "{stats:?}");
    assert_eq!(stats.delivered as usize, out.len());
    assert_eq!(stats.delivered, stats.sent - stats.lost + stats.duplicated);
    let reordered = out.windows(2).filter(|w| w[1].3 < w[0].3).count();
    assert!(reordered > 0);
}

#[test]
fn perfect_network_delivers_everything_in_order_after_the_delay() {
    let mut clock = SimClock::new();
    let mut net = SimNetwork::new(9, SimFaults::none());
    for i in 0..10 {
        net.send(1, 2, i, clock.now());
    }
    assert_eq!(net.pop_due(clock.now()), None);
    assert_eq!(net.in_flight(), 10);
    let out = drain(&mut net, &mut clock);
    let payloads: Vec<u32> = out.iter().map(|d| d.3).collect();
    assert_eq!(payloads, (0..10).collect::<Vec<_>>());
    assert!(out.iter().all(|d| d.0 == SimInstant::from_nanos(1_000_000)));
}

#[test]
fn one_way_partition_blocks_one_direction_until_healed() {
    let mut clock = SimClock::new();
    let mut net = SimNetwork::new(0, SimFaults::none());
    net.partition_one_way(1, 2);
    net.send(1, 2, 10, clock.now());
    net.send(2, 1, 20, clock.now());
    assert_eq!(drain(&mut net, &mut clock).len(), 1);
    assert_eq!(net.stats().partitioned, 1);
    net.heal(&1, &2);
    net.send(1, 2, 30, clock.now());
    assert_eq!(drain(&mut net, &mut clock)[0].3, 30);
}

#[test]
fn partition_drops_datagrams_in_flight_and_groups_block_both_ways() {
    let mut clock = SimClock::new();
    let mut net = SimNetwork::new(0, SimFaults::none());
    net.send(1, 3, 1, clock.now());
    net.partition_groups(&[1, 2], &[3, 4]);
    net.send(4, 2, 2, clock.now());
    net.send(1, 2, 3, clock.now());
    let out = drain(&mut net, &mut clock);
    assert_eq!(out.iter().map(|d| d.3).collect::<Vec<_>>(), vec![3]);
    net.heal_all();
    net.send(4, 2, 4, clock.now());
    assert_eq!(drain(&mut net, &mut clock).len(), 1);
}

#[test]
fn crashed_node_neither_sends_nor_receives_until_restarted() {
    let mut clock = SimClock::new();
    let mut net = SimNetwork::new(0, SimFaults::none());
    net.send(1, 2, 1, clock.now());
    net.crash(2);
    assert_eq!(net.in_flight(), 0);
    net.send(2, 1, 2, clock.now());
    net.send(1, 2, 3, clock.now());
    assert!(drain(&mut net, &mut clock).is_empty());
    assert_eq!(net.stats().crashed, 3);
    net.restart(&2);
    net.send(2, 1, 4, clock.now());
    assert_eq!(drain(&mut net, &mut clock).len(), 1);
}
