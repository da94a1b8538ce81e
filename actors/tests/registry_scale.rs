//! Size and cost of a full registry state at a moderate scale, printed for the record
//! (`cargo test -p phalanx-actors --test registry_scale -- --nocapture`). Asserts only
//! correctness: no timing thresholds.

use std::time::Instant;

use phalanx_actors::registry::{ClusterRegistry, State};

const NODES: u128 = 100;
const NAMES_PER_NODE: u64 = 100;
const GROUPS: u64 = 10;

#[test]
fn full_state_of_ten_thousand_names_and_memberships() {
    let mut hub = ClusterRegistry::new(0, 1);
    let mut deltas = 0usize;
    let mut delta_bytes = 0usize;
    for node in 1..=NODES {
        let mut registry = ClusterRegistry::new(node * 0x9E37_79B9_7F4A_7C15, 1);
        for actor in 0..NAMES_PER_NODE {
            let delta = registry
                .register(&format!("service-{node}-{actor}"), actor)
                .expect("free");
            delta_bytes += delta.encode().expect("encodes").len();
            deltas += 1;
            hub.merge_delta(delta);
            let delta = registry
                .join(&format!("group-{}", actor % GROUPS), actor)
                .expect("short")
                .expect("new");
            delta_bytes += delta.encode().expect("encodes").len();
            deltas += 1;
            hub.merge_delta(delta);
        }
    }
    let entries = NODES as usize * NAMES_PER_NODE as usize;
    let state = hub.full_state();
    let bytes = state.encode().expect("encodes");

    let started = Instant::now();
    let decoded = State::decode(&bytes).expect("decodes");
    let decode_time = started.elapsed();
    let mut fresh = ClusterRegistry::new(u128::MAX, 1);
    let started = Instant::now();
    let notices = fresh.merge_state(decoded.clone());
    let merge_time = started.elapsed();
    let started = Instant::now();
    let again = fresh.merge_state(decoded);
    let remerge_time = started.elapsed();

    assert_eq!(fresh.names().len(), entries);
    assert_eq!(notices.len(), 2 * entries);
    assert!(again.is_empty());
    assert_eq!(fresh.groups(), hub.groups());
    println!(
        "registry scale ({} build): {NODES} nodes, {entries} names + {entries} memberships; \
         delta {} B avg; full state {} B ({} B per entry); decode {decode_time:?}, \
         merge into empty {merge_time:?} ({} notices), idempotent re-merge {remerge_time:?}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        delta_bytes / deltas,
        bytes.len(),
        bytes.len() / (2 * entries),
        notices.len(),
    );
}
