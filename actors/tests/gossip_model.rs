//! Model-based property test of the membership state machine: random sequences of messages,
//! timers and time steps, checked against the notification lifecycle every member must
//! follow.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use phalanx_actors::gossip::{
    Action, Body, Config, MemberId, MemberState, Membership, Message, NodeId, Notification,
    PushPullKind, Timer, Update,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Receive {
        sender: u64,
        body: u8,
        seq: u32,
        updates: Vec<(u64, u64, MemberState)>,
    },
    Timer(Timer),
    Advance(u64),
    Event,
    Leave,
}

fn state() -> impl Strategy<Value = MemberState> {
    prop_oneof![
        4 => Just(MemberState::Alive),
        2 => Just(MemberState::Suspect),
        1 => Just(MemberState::Dead),
        1 => Just(MemberState::Left),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let update = (1u64..6, 0u64..4, state());
    prop_oneof![
        8 => (2u64..6, 0u8..6, 0u32..8, prop::collection::vec(update, 0..6))
            .prop_map(|(sender, body, seq, updates)| Op::Receive { sender, body, seq, updates }),
        2 => Just(Op::Timer(Timer::Probe { epoch: 0 })),
        1 => (0u32..8).prop_map(|seq| Op::Timer(Timer::ProbeTimeout { seq })),
        1 => (0u32..8).prop_map(|seq| Op::Timer(Timer::RelayTimeout { seq })),
        1 => (2u64..6, 0u64..4).prop_map(|(node, incarnation)| {
            Op::Timer(Timer::Suspicion { node: NodeId(node), incarnation })
        }),
        1 => Just(Op::Timer(Timer::PushPull { epoch: 0 })),
        1 => Just(Op::Timer(Timer::Gossip { epoch: 0 })),
        3 => (0u64..30_000).prop_map(Op::Advance),
        1 => Just(Op::Event),
        1 => (0u8..20).prop_map(|roll| if roll == 0 { Op::Leave } else { Op::Event }),
    ]
}

/// What the model expects of each member's notifications.
#[derive(Debug, Default)]
struct Lifecycle {
    /// The member currently up, if any.
    up: Option<MemberId>,
    /// The last life that went down.
    last_down: Option<MemberId>,
}

fn check(lifecycles: &mut BTreeMap<NodeId, Lifecycle>, notification: &Notification<u32>) {
    let (node, member) = match notification {
        Notification::Up { member, .. }
        | Notification::Suspect { member }
        | Notification::Alive { member }
        | Notification::Down { member, .. } => (member.node, *member),
        _ => return,
    };
    assert_ne!(node, NodeId(1), "notification about self: {notification:?}");
    let life = lifecycles.entry(node).or_default();
    match notification {
        Notification::Up { .. } => {
            assert!(
                life.up.is_none(),
                "up twice: {notification:?} after {life:?}"
            );
            if let Some(down) = life.last_down {
                assert!(
                    member.incarnation > down.incarnation,
                    "{member:?} after {down:?}"
                );
            }
            life.up = Some(member);
        }
        Notification::Down { .. } => {
            assert_eq!(life.up, Some(member), "down without up");
            life.up = None;
            life.last_down = Some(member);
        }
        _ => assert_eq!(
            life.up,
            Some(member),
            "{notification:?} for a member not up"
        ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn notifications_follow_the_member_lifecycle(ops in prop::collection::vec(op(), 1..80)) {
        let start = Instant::now();
        let mut now = start;
        let mut m = Membership::new(NodeId(1), 1u32, 0, Config::default(), 9);
        m.join([2u32], now);
        let mut lifecycles = BTreeMap::new();
        let mut incarnation = m.incarnation();
        for op in ops {
            match op {
                Op::Receive { sender, body, seq, updates } => {
                    let updates: Vec<Update<u32>> = updates
                        .into_iter()
                        .map(|(node, incarnation, state)| Update {
                            node: NodeId(node),
                            addr: node as u32,
                            incarnation,
                            state,
                            origin: NodeId(sender),
                        })
                        .collect();
                    let body = match body {
                        0 => Body::Ping { seq, target: NodeId(1) },
                        1 => Body::Ack { seq },
                        2 => Body::Nack { seq },
                        3 => Body::PingReq { seq, target: NodeId(3), target_addr: 3 },
                        4 => Body::PushPull {
                            kind: PushPullKind::Request,
                            members: updates.clone(),
                        },
                        _ => Body::Gossip,
                    };
                    let message = Message { sender: NodeId(sender), body, updates, events: Vec::new(), messages: Vec::new() };
                    m.handle_datagram(sender as u32, message, now);
                }
                Op::Timer(timer) => m.handle_timer(timer, now),
                Op::Advance(ms) => now += Duration::from_millis(ms),
                Op::Event => {
                    let _ = m.broadcast_event("e", b"x");
                }
                Op::Leave => m.leave(now),
            }
            while let Some(action) = m.poll_action() {
                match action {
                    Action::Notify(notification) => check(&mut lifecycles, &notification),
                    Action::Send { message, .. } | Action::SendStream { message, .. } => {
                        // Whatever the core sends must decode on the other side.
                        let bytes = message.encode().unwrap();
                        prop_assert_eq!(Message::<u32>::decode(&bytes).unwrap(), message);
                    }
                    _ => {}
                }
            }
            prop_assert!(m.incarnation() >= incarnation);
            incarnation = m.incarnation();
        }
    }
}
