//! Property tests and a fuzz target for the gossip message decoder.

use phalanx_actors::gossip::{
    Body, DirectMessage, MAX_DIRECT_MESSAGES, MAX_DIRECT_PAYLOAD, MAX_EVENT_NAME,
    MAX_EVENT_PAYLOAD, MAX_EVENTS, MAX_MESSAGE_LEN, MAX_UPDATES, MemberState, Message, NodeId,
    PushPullKind, Update, UserEvent,
};
use proptest::prelude::*;

fn node() -> impl Strategy<Value = NodeId> {
    any::<u64>().prop_map(NodeId)
}

fn state() -> impl Strategy<Value = MemberState> {
    prop_oneof![
        Just(MemberState::Alive),
        Just(MemberState::Suspect),
        Just(MemberState::Dead),
        Just(MemberState::Left),
    ]
}

fn update() -> impl Strategy<Value = Update<u32>> {
    (node(), any::<u32>(), any::<u64>(), state(), node()).prop_map(
        |(node, addr, incarnation, state, origin)| Update {
            node,
            addr,
            incarnation,
            state,
            origin,
        },
    )
}

fn event() -> impl Strategy<Value = UserEvent> {
    (
        node(),
        any::<u64>(),
        "[a-z]{0,64}",
        prop::collection::vec(any::<u8>(), 0..=MAX_EVENT_PAYLOAD),
    )
        .prop_map(|(origin, seq, name, payload)| UserEvent {
            origin,
            seq,
            name,
            payload,
        })
}

fn body() -> impl Strategy<Value = Body<u32>> {
    prop_oneof![
        (any::<u32>(), node()).prop_map(|(seq, target)| Body::Ping { seq, target }),
        (any::<u32>(), node(), any::<u32>()).prop_map(|(seq, target, target_addr)| {
            Body::PingReq {
                seq,
                target,
                target_addr,
            }
        }),
        any::<u32>().prop_map(|seq| Body::Ack { seq }),
        any::<u32>().prop_map(|seq| Body::Nack { seq }),
        (any::<bool>(), prop::collection::vec(update(), 0..40)).prop_map(|(request, members)| {
            let kind = if request {
                PushPullKind::Request
            } else {
                PushPullKind::Response
            };
            Body::PushPull { kind, members }
        }),
        Just(Body::Gossip),
    ]
}

fn direct() -> impl Strategy<Value = DirectMessage> {
    (
        node(),
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(to, seq, payload)| DirectMessage { to, seq, payload })
}

fn message() -> impl Strategy<Value = Message<u32>> {
    (
        node(),
        body(),
        prop::collection::vec(update(), 0..20),
        prop::collection::vec(event(), 0..4),
        prop::collection::vec(direct(), 0..4),
    )
        .prop_map(|(sender, body, updates, events, messages)| Message {
            sender,
            body,
            updates,
            events,
            messages,
        })
}

proptest! {
    #[test]
    fn round_trip(message in message()) {
        let bytes = message.encode().unwrap();
        prop_assert_eq!(Message::<u32>::decode(&bytes).unwrap(), message);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Message::<u32>::decode(&bytes);
    }

    #[test]
    fn corrupted_encodings_never_panic(
        message in message(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = message.encode().unwrap();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= value;
        }
        let _ = Message::<u32>::decode(&bytes);
        let _ = Message::<u32>::decode(&bytes[..cut.index(bytes.len() + 1)]);
    }
}

fn gossip(updates: Vec<Update<u32>>, events: Vec<UserEvent>) -> Message<u32> {
    Message {
        sender: NodeId(1),
        body: Body::Gossip,
        updates,
        events,
        messages: Vec::new(),
    }
}

fn sample_update() -> Update<u32> {
    Update {
        node: NodeId(2),
        addr: 3,
        incarnation: 4,
        state: MemberState::Alive,
        origin: NodeId(2),
    }
}

fn sample_event(name_len: usize, payload_len: usize) -> UserEvent {
    UserEvent {
        origin: NodeId(1),
        seq: 0,
        name: "x".repeat(name_len),
        payload: vec![7; payload_len],
    }
}

#[test]
fn limits_are_enforced_on_decode() {
    let at_limit = gossip(vec![sample_update(); MAX_UPDATES], Vec::new());
    assert!(Message::<u32>::decode(&at_limit.encode().unwrap()).is_ok());
    let over = gossip(vec![sample_update(); MAX_UPDATES + 1], Vec::new());
    assert!(Message::<u32>::decode(&over.encode().unwrap()).is_err());

    let events = vec![sample_event(1, 1); MAX_EVENTS + 1];
    assert!(Message::<u32>::decode(&gossip(Vec::new(), events).encode().unwrap()).is_err());
    let long_name = vec![sample_event(MAX_EVENT_NAME + 1, 0)];
    assert!(Message::<u32>::decode(&gossip(Vec::new(), long_name).encode().unwrap()).is_err());
    let big = vec![sample_event(0, MAX_EVENT_PAYLOAD + 1)];
    assert!(Message::<u32>::decode(&gossip(Vec::new(), big).encode().unwrap()).is_err());

    let direct = |count: usize, len: usize| {
        let mut message = gossip(Vec::new(), Vec::new());
        message.messages = vec![
            DirectMessage {
                to: NodeId(2),
                seq: 1,
                payload: vec![1; len],
            };
            count
        ];
        Message::<u32>::decode(&message.encode().unwrap())
    };
    assert!(direct(MAX_DIRECT_MESSAGES, MAX_DIRECT_PAYLOAD).is_ok());
    assert!(direct(MAX_DIRECT_MESSAGES + 1, 0).is_err());
    assert!(direct(1, MAX_DIRECT_PAYLOAD + 1).is_err());

    let mut trailing = gossip(Vec::new(), Vec::new()).encode().unwrap();
    trailing.push(0);
    assert!(Message::<u32>::decode(&trailing).is_err());
    assert!(Message::<u32>::decode(&vec![0; MAX_MESSAGE_LEN + 1]).is_err());
}

#[test]
fn huge_claimed_lengths_are_rejected_without_allocating() {
    // sender 1, body Gossip (variant 6), then an update count of u32::MAX as a varint.
    let bytes = [1, 6, 0xff, 0xff, 0xff, 0xff, 0x0f];
    assert!(Message::<u32>::decode(&bytes).is_err());
    // A push-pull claiming 2^35 members.
    let bytes = [1, 4, 0, 0xff, 0xff, 0xff, 0xff, 0x7f];
    assert!(Message::<u32>::decode(&bytes).is_err());
}

/// Fuzz target for [`Message::decode`]; runs as a normal test with a small budget
/// (`BOLERO_RANDOM_ITERATIONS` raises it).
#[test]
fn fuzz_decode() {
    bolero::check!()
        .with_iterations(2_000)
        .for_each(|bytes: &[u8]| {
            if let Ok(message) = Message::<u32>::decode(bytes) {
                // Whatever decodes must encode and decode to itself.
                let again = message.encode().unwrap();
                assert_eq!(Message::<u32>::decode(&again).unwrap(), message);
            }
        });
}
