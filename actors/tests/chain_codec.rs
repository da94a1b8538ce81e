//! The chain's wire decoder: round trips, and arbitrary bytes never panic (proptest and a
//! bolero target, which runs as an ordinary test on stable).

use phalanx_actors::chain::{
    ChainConfig, ClientId, ControlMessage, Entry, GroupSeat, KvCommand, KvMap, KvQuery, Message,
    ReplicaId, SnapshotCursor, decode, encode,
};
use proptest::prelude::*;

fn command() -> impl Strategy<Value = KvCommand> {
    prop_oneof![
        ("[a-z]{0,8}", proptest::collection::vec(any::<u8>(), 0..16))
            .prop_map(|(key, value)| KvCommand::Put { key, value }),
        "[a-z]{0,8}".prop_map(|key| KvCommand::Delete { key }),
        (
            "[a-z]{0,8}",
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
        )
            .prop_map(|(key, expected, new)| KvCommand::CompareAndSet {
                key,
                expected,
                new
            }),
    ]
}

fn entry() -> impl Strategy<Value = Entry<KvMap>> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        command(),
    )
        .prop_map(|(seq, client, request, acked_below, command)| Entry {
            seq,
            client: ClientId(client),
            request,
            acked_below,
            command,
        })
}

fn message() -> impl Strategy<Value = Message<KvMap>> {
    prop_oneof![
        (any::<u64>(), any::<u64>(), command()).prop_map(|(client, request, command)| {
            Message::Write {
                client: ClientId(client),
                request,
                acked_below: request,
                command,
            }
        }),
        (any::<u64>(), "[a-z]{0,8}").prop_map(|(request, key)| Message::Read {
            client: ClientId(1),
            request,
            query: KvQuery { key },
        }),
        (any::<u64>(), proptest::collection::vec(entry(), 0..4))
            .prop_map(|(epoch, entries)| Message::Forward { epoch, entries }),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(epoch, received, committed)| {
            Message::Ack {
                epoch,
                received,
                committed,
            }
        }),
        (
            any::<u64>(),
            proptest::collection::vec(entry(), 0..3),
            any::<bool>()
        )
            .prop_map(|(epoch, entries, complete)| Message::SyncReply {
                epoch,
                entries,
                complete,
                more: !complete,
            }),
        (any::<u64>(), any::<u64>(), any::<Option<(u64, u64)>>()).prop_map(
            |(epoch, have, cursor)| Message::SyncRequest {
                epoch,
                have,
                snapshot: cursor.map(|(index, offset)| SnapshotCursor { index, offset }),
            }
        ),
        (
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..32)
        )
            .prop_map(|(epoch, offset, bytes)| Message::SnapshotChunk {
                epoch,
                index: epoch,
                total: offset.saturating_add(bytes.len() as u64),
                offset,
                bytes,
                more: offset % 2 == 0,
            }),
    ]
}

proptest! {
    #[test]
    fn chain_messages_round_trip(message in message()) {
        let bytes = encode(&message).unwrap();
        prop_assert_eq!(decode::<Message<KvMap>>(&bytes).unwrap(), message);
    }

    #[test]
    fn control_messages_round_trip(
        epoch in any::<u64>(),
        round in any::<u64>(),
        ids in proptest::collection::vec(any::<u64>(), 0..5),
        seats in proptest::collection::vec((any::<u64>(), ".{0,24}"), 0..6),
    ) {
        let mut config = ChainConfig::initial(&ids.iter().map(|&id| ReplicaId(id)).collect::<Vec<_>>());
        config.group = seats.into_iter().map(|(id, address)| GroupSeat { id, address }).collect();
        for message in [
            ControlMessage::LeaseRequest { replica: ReplicaId(round), incarnation: 1, epoch, round, synced_epoch: epoch },
            ControlMessage::LeaseReply { round, granted: true, config: config.clone() },
            ControlMessage::Suspect { epoch, suspect: ReplicaId(round) },
            ControlMessage::ConfigQuery,
            ControlMessage::ConfigUpdate { config: config.clone() },
        ] {
            let bytes = encode(&message).unwrap();
            prop_assert_eq!(decode::<ControlMessage>(&bytes).unwrap(), message);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode::<Message<KvMap>>(&bytes);
        let _ = decode::<ControlMessage>(&bytes);
    }
}

#[test]
fn fuzz_decode() {
    let iterations = std::env::var("BOLERO_ITERATIONS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(2_000);
    bolero::check!()
        .with_iterations(iterations)
        .for_each(|bytes: &[u8]| {
            let _ = decode::<Message<KvMap>>(bytes);
            let _ = decode::<ControlMessage>(bytes);
        });
}

#[test]
fn oversized_input_is_refused_without_parsing() {
    let bytes = vec![0u8; phalanx_actors::chain::MAX_MESSAGE_BYTES + 1];
    assert!(decode::<ControlMessage>(&bytes).is_err());
}
