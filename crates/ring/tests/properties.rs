//! Laws of the ring, as properties over random memberships.

use std::collections::BTreeSet;

use dynakv_ring::{NodeSpec, PARTITIONS, Ring, diff};
use proptest::prelude::*;

fn history(k: usize) -> Vec<NodeSpec> {
    (0..k)
        .map(|i| NodeSpec::new(format!("n{i}")).joined_at(i as u64 * 10))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_partition_has_n_distinct_replicas(k in 1usize..12, n in 1usize..6) {
        let ring = Ring::new(history(k), n);
        for p in 0..PARTITIONS {
            let replicas: Vec<&str> = ring.replicas(p).collect();
            let distinct: BTreeSet<&str> = replicas.iter().copied().collect();
            prop_assert_eq!(replicas.len(), n.min(k));
            prop_assert_eq!(distinct.len(), replicas.len());
            // The extended list names every member once, replicas first.
            let all: Vec<&str> = ring.preference_list(p).collect();
            prop_assert_eq!(all.len(), k);
            prop_assert_eq!(&all[..replicas.len()], &replicas[..]);
        }
    }

    #[test]
    fn the_ring_does_not_depend_on_input_order(k in 1usize..10, seed in any::<u64>()) {
        let h = history(k);
        let mut shuffled = h.clone();
        // A deterministic shuffle from the seed.
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let (a, b) = (Ring::new(h, 3), Ring::new(shuffled, 3));
        for p in 0..PARTITIONS {
            prop_assert!(a.preference_list(p).eq(b.preference_list(p)));
        }
    }

    /// Replica sets change only where membership changed: after a join every
    /// changed set contains the newcomer and partitions change owner only to it;
    /// after a leave every changed set lost the leaver and only its partitions
    /// change owner. (A newcomer owning consecutive partitions can extend the
    /// clockwise walk by one more node; that is still a set the newcomer entered.)
    #[test]
    fn replicas_change_only_where_membership_changed(k in 2usize..12, n in 1usize..4, leaver in any::<prop::sample::Index>()) {
        let before = Ring::new(history(k), n);
        let joined = Ring::new(history(k + 1), n);
        let newcomer = format!("n{k}");
        for m in diff(&before, &joined) {
            prop_assert!(m.gained.contains(&newcomer), "{m:?}");
        }
        for p in 0..PARTITIONS {
            if before.owner(p) != joined.owner(p) {
                prop_assert_eq!(joined.owner(p), Some(newcomer.as_str()));
            }
        }
        let mut h = history(k);
        let who = leaver.index(k);
        let gone = format!("n{who}");
        h[who].left_at = Some(10_000);
        let left = Ring::new(h, n);
        for m in diff(&before, &left) {
            prop_assert!(m.lost.contains(&gone), "{m:?}");
        }
        for p in 0..PARTITIONS {
            if before.owner(p) != left.owner(p) {
                prop_assert_eq!(before.owner(p), Some(gone.as_str()));
            }
        }
    }

    #[test]
    fn ownership_follows_weight(weights in proptest::collection::vec(1.0f64..3.0, 3..12)) {
        let total: f64 = weights.iter().sum();
        let nodes: Vec<NodeSpec> = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| NodeSpec { weight: w, ..NodeSpec::new(format!("n{i}")).joined_at(i as u64) })
            .collect();
        let own = Ring::new(nodes, 3).ownership();
        for (i, w) in weights.iter().enumerate() {
            let fair = w / total;
            let share = own[&format!("n{i}")];
            prop_assert!((share / fair - 1.0).abs() <= 0.1, "n{i}: {share} vs fair {fair}");
        }
    }
}
