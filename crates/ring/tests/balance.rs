//! Balance and movement of the ring (SPEC §7 targets), printed as a table:
//! `cargo test -p dynakv-ring --test balance -- --nocapture`.

use dynakv_ring::{NodeSpec, PARTITIONS, Ring, diff};

/// `k` nodes that joined one after another.
fn nodes(k: usize) -> Vec<NodeSpec> {
    (0..k)
        .map(|i| NodeSpec::new(format!("node-{i}")).joined_at(i as u64))
        .collect()
}

/// The same history, with the node in the middle leaving last.
fn without_middle(k: usize) -> Vec<NodeSpec> {
    let mut h = nodes(k);
    h[k / 2].left_at = Some(1_000);
    h
}

/// Fraction of (partition, replica) slots that change owner between two rings.
fn moved_fraction(old: &Ring, new: &Ring) -> f64 {
    let moved: usize = diff(old, new).iter().map(|m| m.gained.len()).sum();
    moved as f64 / (PARTITIONS * new.replica_count().max(1)) as f64
}

/// Fraction of partitions whose owner (primary) changed.
fn primary_moved(old: &Ring, new: &Ring) -> f64 {
    (0..PARTITIONS)
        .filter(|&p| old.owner(p) != new.owner(p))
        .count() as f64
        / PARTITIONS as f64
}

#[test]
fn ownership_is_within_ten_percent_of_fair_and_moves_are_small() {
    println!(
        "{:>5} {:>10} {:>10} {:>12} {:>12} {:>12} {:>12}",
        "nodes", "min/fair", "max/fair", "join moved", "join bound", "leave moved", "leave bound"
    );
    for s in [3usize, 4, 5, 6, 8, 10, 12, 16] {
        let ring = Ring::new(nodes(s), 3);
        let fair = 1.0 / s as f64;
        let own = ring.ownership();
        let min = own.values().cloned().fold(f64::MAX, f64::min) / fair;
        let max = own.values().cloned().fold(0.0, f64::max) / fair;
        assert!(min >= 0.9 && max <= 1.1, "{s} nodes: {own:?}");
        // Replica ownership (partitions replicated) is balanced too.
        for n in ring.nodes() {
            let share = ring.partitions_of(&n.name).len() as f64 / (PARTITIONS * 3) as f64;
            assert!(
                (share * s as f64 - 1.0).abs() <= 0.1,
                "{s} nodes: {} replicates {share}",
                n.name
            );
        }

        let joined = Ring::new(nodes(s + 1), 3);
        let join = moved_fraction(&ring, &joined);
        let join_primary = primary_moved(&ring, &joined);
        let bound = 1.2 / (s + 1) as f64;
        let left = Ring::new(without_middle(s), 3);
        let leave = moved_fraction(&ring, &left);
        let leave_bound = 1.2 / s as f64;
        println!(
            "{s:>5} {min:>10.3} {max:>10.3} {join:>12.4} {bound:>12.4} {leave:>12.4} {leave_bound:>12.4}   (primary: join {join_primary:.4})"
        );
        assert!(
            join_primary <= bound,
            "{s} nodes: join moved {join_primary} of partition owners"
        );
        assert!(
            join <= bound,
            "{s} nodes: join moved {join} of replicas > {bound}"
        );
        assert!(
            leave <= leave_bound,
            "{s} nodes: leave moved {leave} > {leave_bound}"
        );
    }
}
