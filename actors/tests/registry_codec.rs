//! The registry's decoders on untrusted bytes: round trips, arbitrary and corrupted input
//! never panic (neither decoding nor merging what decodes), limits hold, and a bolero fuzz
//! target over the same path.

use phalanx_actors::registry::{
    ClusterRegistry, Delta, MAX_DELTA_LEN, MAX_NAME_LEN, MAX_STATE_LEN, State,
};
use proptest::prelude::*;

/// Decodes `bytes` as both a delta and a state and merges whatever decodes into a registry
/// that already holds entries; re-encoding what decoded must give it back.
fn exercise(bytes: &[u8]) {
    let mut registry = ClusterRegistry::new(5, 2);
    let _ = registry.register("held", 1);
    let _ = registry.join("group", 1);
    if let Ok(delta) = Delta::decode(bytes) {
        let again = Delta::decode(&delta.encode().expect("encodes")).expect("round trip");
        assert_eq!(again, delta);
        registry.merge_delta(delta);
    }
    if let Ok(state) = State::decode(bytes) {
        let again = State::decode(&state.encode().expect("encodes")).expect("round trip");
        assert_eq!(again, state);
        registry.merge_state(state);
    }
    // Whatever merged, the registry still answers and still produces valid state.
    let _ = registry.names();
    let _ = registry.groups();
    let state = registry.full_state().encode().expect("encodes");
    State::decode(&state).expect("own state decodes");
}

/// A registry with some history, from a compact script.
fn populated(node: u128, script: &[(u8, u8, u8)]) -> ClusterRegistry {
    let mut registry = ClusterRegistry::new(node, 1);
    for (kind, key, actor) in script {
        let name = format!("key{}", key % 8);
        let actor = u64::from(actor % 4);
        match kind % 5 {
            0 => drop(registry.register(&name, actor)),
            1 => drop(registry.unregister(&name)),
            2 => drop(registry.join(&name, actor)),
            3 => drop(registry.leave(&name, actor)),
            _ => drop(registry.actor_stopped(actor)),
        }
    }
    registry
}

#[test]
fn oversized_input_is_rejected_before_parsing() {
    assert!(Delta::decode(&vec![0; MAX_DELTA_LEN + 1]).is_err());
    assert!(State::decode(&vec![0; MAX_STATE_LEN + 1]).is_err());
}

#[test]
fn a_huge_claimed_length_allocates_nothing() {
    // An empty floors list, then an origins list that claims 2^62 elements.
    let mut bytes = vec![0u8];
    bytes.extend([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]);
    assert!(State::decode(&bytes).is_err());
    // A delta whose operation list claims u64::MAX elements.
    let mut delta = Delta::decode(&{
        let mut registry = ClusterRegistry::new(1, 1);
        registry
            .register("x", 1)
            .expect("free")
            .encode()
            .expect("encodes")
    })
    .expect("decodes")
    .encode()
    .expect("encodes");
    // origin: node (1 byte varint) + incarnation (1 byte); then the op count.
    delta.truncate(2);
    delta.extend([0xff; 9]);
    delta.push(0x01);
    assert!(Delta::decode(&delta).is_err());
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut registry = ClusterRegistry::new(1, 1);
    let mut bytes = registry
        .register("x", 1)
        .expect("free")
        .encode()
        .expect("encodes");
    bytes.push(0);
    assert!(Delta::decode(&bytes).is_err());
}

#[test]
fn a_delta_for_the_longest_name_fits_one_gossip_event() {
    let name = "n".repeat(MAX_NAME_LEN);
    let mut registry = ClusterRegistry::new(u128::MAX, u64::MAX - 1);
    for actor in [u64::MAX, 1] {
        let delta = registry.register(&name, actor);
        if let Ok(delta) = delta {
            let bytes = delta.encode().expect("encodes");
            assert!(bytes.len() <= MAX_DELTA_LEN, "{} bytes", bytes.len());
            assert!(bytes.len() <= phalanx_actors::gossip::MAX_EVENT_PAYLOAD);
        }
    }
    // Many long names stopped at once are split into deltas that each fit.
    for index in 0..40 {
        let name = format!("{index:03}{}", "m".repeat(MAX_NAME_LEN - 3));
        registry.register(&name, 7).expect("free");
        registry.join(&name, 7).expect("short enough");
    }
    let deltas = registry.actor_stopped(7);
    assert!(deltas.len() > 1);
    for delta in deltas {
        assert!(delta.encode().expect("encodes").len() <= MAX_DELTA_LEN);
    }
    assert!(registry.register(&"n".repeat(MAX_NAME_LEN + 1), 1).is_err());
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&bytes);
    }

    #[test]
    fn states_and_deltas_round_trip(
        script in proptest::collection::vec((any::<u8>(), any::<u8>(), any::<u8>()), 0..40),
        node in any::<u128>(),
    ) {
        let mut registry = populated(node, &script);
        let state = registry.full_state();
        let bytes = state.encode().expect("encodes");
        prop_assert_eq!(&State::decode(&bytes).expect("decodes"), &state);
        // A fresh replica that merges the state sees the same names and groups.
        let mut copy = ClusterRegistry::new(node ^ 1, 1);
        copy.merge_state(state);
        prop_assert_eq!(copy.names(), registry.names());
        prop_assert_eq!(copy.groups(), registry.groups());
        if let Ok(delta) = registry.register("fresh", 1) {
            let bytes = delta.encode().expect("encodes");
            prop_assert!(bytes.len() <= MAX_DELTA_LEN);
            prop_assert_eq!(Delta::decode(&bytes).expect("decodes"), delta);
        }
    }

    #[test]
    fn corrupted_states_never_panic(
        script in proptest::collection::vec((any::<u8>(), any::<u8>(), any::<u8>()), 0..30),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = populated(9, &script).full_state().encode().expect("encodes");
        for (index, value) in flips {
            let at = index.index(bytes.len());
            bytes[at] = value;
        }
        exercise(&bytes);
    }
}

#[test]
fn fuzz_decode_and_merge() {
    bolero::check!()
        .with_iterations(2_000)
        .for_each(|bytes: &[u8]| exercise(bytes));
}

#[test]
fn the_event_name_fits_gossip() {
    assert!(phalanx_actors::registry::DELTA_EVENT.len() <= phalanx_actors::gossip::MAX_EVENT_NAME);
}
