//! Placement of several chains (one per shard) by rendezvous hashing.

use phalanx_actors::chain::{ReplicaId, place_chain};

#[test]
fn removing_a_node_moves_only_the_shards_it_served() {
    let nodes: Vec<ReplicaId> = (1..=8).map(ReplicaId).collect();
    let without: Vec<ReplicaId> = nodes
        .iter()
        .copied()
        .filter(|&n| n != ReplicaId(3))
        .collect();
    let mut load = [0usize; 9];
    for shard in 0..512 {
        let before = place_chain(shard, &nodes, 3);
        let after = place_chain(shard, &without, 3);
        assert_eq!(before.len(), 3);
        for &node in &before {
            load[node.0 as usize] += 1;
        }
        if before.contains(&ReplicaId(3)) {
            // The survivors keep their relative order; one replacement joins at the end.
            let kept: Vec<ReplicaId> = before
                .iter()
                .copied()
                .filter(|&n| n != ReplicaId(3))
                .collect();
            assert_eq!(&after[..2], &kept[..]);
        } else {
            assert_eq!(
                before, after,
                "shard {shard} moved although node 3 did not serve it"
            );
        }
    }
    // Spread: each node serves 512 * 3 / 8 = 192 chains on average; none is far off.
    for (node, &count) in load.iter().enumerate().skip(1) {
        assert!(
            (120..=264).contains(&count),
            "node {node} serves {count} chains"
        );
    }
}
