//! The replica core driven by hand: a perfect in-memory network, a fake group that grants
//! leases, and a virtual clock. Scenarios that the simulation covers only statistically.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use phalanx_actors::chain::{
    Action, ChainConfig, ClientId, ControlMessage, GroupSeat, KvCommand, KvMap, KvOutput, KvQuery,
    Message, Peer, Replica, ReplicaId, ReplicaSettings,
};

const CLIENT: ClientId = ClientId(7);

struct Harness {
    now: Instant,
    replicas: Vec<Replica<KvMap>>,
    config: ChainConfig,
    /// What reached the client.
    client: Vec<Message<KvMap>>,
    /// Chain messages between replicas, delivered in order.
    wire: VecDeque<(Peer, ReplicaId, Message<KvMap>)>,
    /// Drop chain messages to this replica (a partition).
    cut: Option<ReplicaId>,
    /// The group nodes that grant leases (all when `None`).
    granting: Option<Vec<u64>>,
}

impl Harness {
    fn new(length: u64) -> Self {
        let ids: Vec<ReplicaId> = (1..=length).map(ReplicaId).collect();
        let config = ChainConfig::initial(&ids);
        let now = Instant::now();
        let replicas = ids
            .iter()
            .map(|&id| {
                let mut replica = Replica::new(id, 0, ReplicaSettings::new(vec![1, 2, 3]));
                replica.handle_config(config.clone(), now);
                replica
            })
            .collect();
        let mut harness = Self {
            now,
            replicas,
            config,
            client: Vec::new(),
            wire: VecDeque::new(),
            cut: None,
            granting: None,
        };
        harness.settle();
        harness
    }

    fn index(&self, id: ReplicaId) -> usize {
        (id.0 - 1) as usize
    }

    /// Delivers everything, ticking and flushing, until quiet (bounded).
    fn settle(&mut self) {
        for _ in 0..200 {
            for i in 0..self.replicas.len() {
                self.replicas[i].handle_tick(self.now);
                self.replicas[i].flush(self.now);
                self.collect(i);
            }
            while let Some((from, to, message)) = self.wire.pop_front() {
                if self.cut == Some(to) {
                    continue;
                }
                let i = self.index(to);
                self.replicas[i].handle_message(from, message, self.now);
                self.replicas[i].flush(self.now);
                self.collect(i);
            }
            self.now += Duration::from_millis(5);
        }
    }

    fn collect(&mut self, i: usize) {
        let from = self.replicas[i].id();
        while let Some(action) = self.replicas[i].poll_action() {
            match action {
                Action::Send {
                    to: Peer::Replica(to),
                    message,
                } => self.wire.push_back((Peer::Replica(from), to, message)),
                Action::Send {
                    to: Peer::Client(_),
                    message,
                } => self.client.push(message),
                Action::Control {
                    to,
                    message: ControlMessage::LeaseRequest { round, .. },
                } if self.granting.as_ref().is_none_or(|g| g.contains(&to)) => {
                    // A fake group: every node grants the current configuration.
                    let reply = ControlMessage::LeaseReply {
                        round,
                        granted: true,
                        config: self.config.clone(),
                    };
                    self.replicas[i].handle_control(to, reply, self.now);
                }
                _ => {}
            }
        }
    }

    fn to(&mut self, id: ReplicaId, message: Message<KvMap>) {
        let i = self.index(id);
        self.replicas[i].handle_message(Peer::Client(CLIENT), message, self.now);
        self.replicas[i].flush(self.now);
        self.collect(i);
    }
}

fn put(request: u64, value: &[u8]) -> Message<KvMap> {
    Message::Write {
        client: CLIENT,
        request,
        acked_below: request,
        command: KvCommand::Put {
            key: "k".into(),
            value: value.to_vec(),
        },
    }
}

fn read(request: u64) -> Message<KvMap> {
    Message::Read {
        client: CLIENT,
        request,
        query: KvQuery { key: "k".into() },
    }
}

#[test]
fn write_flows_down_and_the_tail_answers_then_every_replica_reads_it() {
    let mut h = Harness::new(3);
    h.to(ReplicaId(1), put(1, b"a"));
    h.settle();
    assert_eq!(
        h.client,
        vec![Message::WriteReply {
            request: 1,
            output: KvOutput::Done
        }]
    );
    for replica in &h.replicas {
        assert_eq!(replica.committed(), 1);
    }
    for (i, id) in (1..=3).map(ReplicaId).enumerate() {
        h.to(id, read(10 + i as u64));
    }
    let reads = h
        .client
        .iter()
        .filter(|m| matches!(m, Message::ReadReply { reply: Some(v), .. } if v == b"a"))
        .count();
    assert_eq!(reads, 3);
}

#[test]
fn a_retried_write_is_applied_once_and_answered_from_the_session_table() {
    let mut h = Harness::new(2);
    let cas = Message::Write {
        client: CLIENT,
        request: 1,
        acked_below: 1,
        command: KvCommand::CompareAndSet {
            key: "k".into(),
            expected: None,
            new: Some(b"x".to_vec()),
        },
    };
    h.to(ReplicaId(1), cas.clone());
    h.to(ReplicaId(1), cas.clone()); // a duplicate while in flight: ignored
    h.settle();
    h.to(ReplicaId(1), cas); // a retry after commit: the cached result
    h.settle();
    let outputs: Vec<_> = h
        .client
        .iter()
        .filter_map(|m| match m {
            Message::WriteReply { output, .. } => Some(output.clone()),
            _ => None,
        })
        .collect();
    // Applied once (swapped); the retry gets the same answer, not a failed CAS.
    assert_eq!(
        outputs,
        vec![KvOutput::Swapped(true), KvOutput::Swapped(true)]
    );
    assert_eq!(h.replicas[0].committed(), 1);
}

#[test]
fn a_dirty_read_is_answered_by_the_tail_with_the_committed_value() {
    let mut h = Harness::new(3);
    h.to(ReplicaId(1), put(1, b"old"));
    h.settle();
    // Cut the tail off: the next write stays uncommitted (dirty) at the head and middle.
    h.cut = Some(ReplicaId(3));
    h.to(ReplicaId(1), put(2, b"new"));
    h.settle();
    h.cut = None;
    h.client.clear();
    // Read at the head: dirty, so it goes to the tail, which has only "old" committed.
    let head = h.index(ReplicaId(1));
    h.replicas[head].handle_message(Peer::Client(CLIENT), read(3), h.now);
    h.collect(head);
    let (from, to, message) = h.wire.pop_front().unwrap();
    assert!(matches!(message, Message::TailRead { .. }));
    assert_eq!(to, ReplicaId(3));
    let tail = h.index(to);
    h.replicas[tail].handle_message(from, message, h.now);
    h.collect(tail);
    assert_eq!(
        h.client,
        vec![Message::ReadReply {
            request: 3,
            reply: Some(b"old".to_vec())
        }]
    );
}

#[test]
fn messages_of_another_epoch_are_ignored() {
    let mut h = Harness::new(2);
    let tail = h.index(ReplicaId(2));
    let stale = Message::Forward {
        epoch: 99,
        entries: Vec::new(),
    };
    h.replicas[tail].handle_message(Peer::Replica(ReplicaId(1)), stale, h.now);
    // Nothing but a query for the newer configuration to the group.
    while let Some(action) = h.replicas[tail].poll_action() {
        assert!(matches!(
            action,
            Action::Control {
                message: ControlMessage::ConfigQuery,
                ..
            }
        ));
    }
    assert_eq!(h.replicas[tail].received(), 0);
}

#[test]
fn a_removed_replica_stops_serving_and_a_new_tail_waits_out_the_fence() {
    let mut h = Harness::new(3);
    h.to(ReplicaId(1), put(1, b"a"));
    h.settle();
    let next = h.config.without(ReplicaId(3));
    h.config = next.clone();
    for replica in &mut h.replicas {
        replica.handle_config(next.clone(), h.now);
    }
    h.client.clear();
    // The removed tail refuses reads; the new tail is inside its fence wait.
    h.to(ReplicaId(3), read(2));
    h.to(ReplicaId(2), read(3));
    assert!(
        h.client
            .iter()
            .all(|m| matches!(m, Message::NotServing { .. })),
        "{:?}",
        h.client
    );
    h.settle(); // 1 s of virtual time: the fence wait is over
    h.client.clear();
    h.to(ReplicaId(2), read(4));
    assert_eq!(
        h.client,
        vec![Message::ReadReply {
            request: 4,
            reply: Some(b"a".to_vec())
        }]
    );
}

#[test]
fn leases_count_only_the_voters_the_epoch_names() {
    let mut h = Harness::new(3);
    h.to(ReplicaId(1), put(1, b"a"));
    h.settle();
    // The group replaced its voters 1, 2, 3 with 4, 5, 6 and named them in a new epoch.
    let mut next = h.config.clone();
    next.epoch += 1;
    next.group = (4..=6).map(GroupSeat::id).collect();
    h.config = next.clone();
    for replica in &mut h.replicas {
        replica.handle_config(next.clone(), h.now);
    }
    // Grants from all of the old voters are no lease in this epoch.
    h.granting = Some(vec![1, 2, 3]);
    h.settle();
    h.client.clear();
    h.to(ReplicaId(3), read(2));
    assert!(
        matches!(h.client[..], [Message::NotServing { .. }]),
        "{:?}",
        h.client
    );
    // A majority of the new voters is.
    h.granting = Some(vec![4, 6]);
    h.settle();
    h.client.clear();
    h.to(ReplicaId(3), read(3));
    assert_eq!(
        h.client,
        vec![Message::ReadReply {
            request: 3,
            reply: Some(b"a".to_vec())
        }]
    );
}
