//! Property test of the actor messages carried by gossip datagrams: whatever the membership
//! news pending and the messages queued, no datagram exceeds the budget, and every accepted
//! message leaves exactly once, to its member.

use std::collections::BTreeMap;
use std::time::Instant;

use phalanx_actors::gossip::{
    Action, Body, Config, MemberState, Membership, Message, NodeId, PushPullKind, Timer, Update,
};
use proptest::prelude::*;

fn alive(id: u64, incarnation: u64) -> Update<u32> {
    Update {
        node: NodeId(id),
        addr: id as u32,
        incarnation,
        state: MemberState::Alive,
        origin: NodeId(id),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn datagrams_stay_within_budget_and_carry_each_message_once(
        members in 2u64..40,
        max_datagram in 200usize..1400,
        news in prop::collection::vec((2u64..40, 0u64..5, 0u8..3), 0..60),
        sends in prop::collection::vec((2u64..40, 0usize..1400), 1..40),
        probe_first in any::<bool>(),
    ) {
        let now = Instant::now();
        let mut config = Config::default();
        config.max_datagram = max_datagram;
        let mut m = Membership::new(NodeId(1), 1, 0, config, 7);
        m.start(now);
        let state: Vec<Update<u32>> = (2..=members).map(|id| alive(id, 0)).collect();
        let sync = Message {
            sender: NodeId(2),
            body: Body::PushPull { kind: PushPullKind::Response, members: state },
            updates: Vec::new(),
            events: Vec::new(),
            messages: Vec::new(),
        };
        m.handle_datagram(2, sync, now);
        // Pending news of every kind, to compete with the messages for room.
        let updates: Vec<Update<u32>> = news
            .into_iter()
            .filter(|(id, _, _)| *id <= members)
            .map(|(id, incarnation, state)| Update {
                state: [MemberState::Alive, MemberState::Suspect, MemberState::Alive][state as usize],
                origin: NodeId(2),
                ..alive(id, incarnation)
            })
            .collect();
        let gossip = Message {
            sender: NodeId(2),
            body: Body::Gossip,
            updates,
            events: Vec::new(),
            messages: Vec::new(),
        };
        m.handle_datagram(2, gossip, now);
        while m.poll_action().is_some() {}
        if probe_first {
            m.handle_timer(Timer::Probe { epoch: 0 }, now);
        }
        let max = m.max_message_payload();
        let mut expected: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (to, len) in sends {
            let len = len.min(max);
            if m.send_message(NodeId(to), vec![0xab; len]).is_ok() {
                expected.entry(to as u32).or_default().push(len);
            }
        }
        let mut carried: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        while let Some(action) = m.poll_action() {
            if let Action::Send { to, message } = action {
                let encoded = message.encode().unwrap();
                prop_assert!(encoded.len() <= max_datagram, "{} > {}", encoded.len(), max_datagram);
                prop_assert_eq!(&Message::<u32>::decode(&encoded).unwrap(), &message);
                for direct in message.messages {
                    prop_assert_eq!(direct.to, NodeId(u64::from(to)));
                    carried.entry(to).or_default().push(direct.payload.len());
                }
            }
        }
        let queued: usize = expected.values().map(Vec::len).sum();
        prop_assert_eq!(carried, expected);
        let stats = m.message_stats();
        prop_assert_eq!((stats.piggybacked + stats.own_datagram) as usize, queued);
    }
}
