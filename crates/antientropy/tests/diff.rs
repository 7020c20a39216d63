//! Laws of the Merkle diff, over random key sets.

use std::collections::{BTreeMap, BTreeSet};

use dynakv_antientropy::{NodeId, Tree, compare};
use dynakv_ring::{Ring, TokenRange, token};
use proptest::prelude::*;

fn tree(range: TokenRange, keys: &BTreeMap<Vec<u8>, u64>) -> Tree {
    Tree::build(range, keys.iter().map(|(k, d)| (token(k), k.clone(), *d)))
}

/// Runs a full top-down diff of `local` against `remote`, level by level, as the
/// node does over the network. Returns the keys to fetch, to push, and the number
/// of node views the remote had to send.
fn run(local: &Tree, remote: &Tree) -> (BTreeSet<Vec<u8>>, BTreeSet<Vec<u8>>, usize) {
    let (mut fetch, mut push, mut exchanged) = (BTreeSet::new(), BTreeSet::new(), 0);
    if local.root() == remote.root() {
        return (fetch, push, 0);
    }
    let mut frontier = vec![NodeId::ROOT];
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for id in frontier {
            exchanged += 1;
            let d = compare(local, id, &remote.node(id));
            fetch.extend(d.fetch);
            push.extend(d.push);
            next.extend(d.explore);
        }
        frontier = next;
    }
    (fetch, push, exchanged)
}

fn key_set(n: usize, seed: u64) -> BTreeMap<Vec<u8>, u64> {
    (0..n)
        .map(|i| {
            (
                format!("key-{seed}-{i}").into_bytes(),
                (i as u64).wrapping_mul(0x9e37_79b9) ^ seed,
            )
        })
        .collect()
}

/// Applies `k` differences to a copy: changed digests, removals, additions.
fn perturb(
    keys: &BTreeMap<Vec<u8>, u64>,
    k: usize,
    seed: u64,
) -> (BTreeMap<Vec<u8>, u64>, BTreeSet<Vec<u8>>) {
    let mut other = keys.clone();
    let mut differing = BTreeSet::new();
    let all: Vec<Vec<u8>> = keys.keys().cloned().collect();
    for j in 0..k {
        match j % 3 {
            0 if !all.is_empty() => {
                let key = all[(seed as usize + j * 7919) % all.len()].clone();
                if differing.insert(key.clone()) {
                    *other.get_mut(&key).expect("present") ^= 0xdead_beef;
                }
            }
            1 if !all.is_empty() => {
                let key = all[(seed as usize + j * 104_729) % all.len()].clone();
                if differing.insert(key.clone()) {
                    other.remove(&key);
                }
            }
            _ => {
                let key = format!("extra-{seed}-{j}").into_bytes();
                differing.insert(key.clone());
                other.insert(key, j as u64);
            }
        }
    }
    (other, differing)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn equal_key_sets_give_equal_roots(n in 0usize..3000, seed in any::<u64>()) {
        let keys = key_set(n, seed);
        let range = TokenRange::FULL;
        prop_assert_eq!(tree(range, &keys).root(), tree(range, &keys).root());
        prop_assert_eq!(run(&tree(range, &keys), &tree(range, &keys)).2, 0);
    }

    #[test]
    fn the_diff_finds_exactly_the_differing_keys(n in 0usize..3000, k in 0usize..40, seed in any::<u64>()) {
        let keys = key_set(n, seed);
        let (other, differing) = perturb(&keys, k, seed);
        let range = TokenRange::FULL;
        let (a, b) = (tree(range, &keys), tree(range, &other));
        prop_assert_eq!(a.root() == b.root(), differing.is_empty());
        let (fetch, push, _) = run(&a, &b);
        // Fetch what the remote has differently, push what we have differently.
        let expect_fetch: BTreeSet<Vec<u8>> = differing.iter().filter(|k| other.contains_key(*k)).cloned().collect();
        let expect_push: BTreeSet<Vec<u8>> = differing.iter().filter(|k| keys.contains_key(*k)).cloned().collect();
        prop_assert_eq!(fetch, expect_fetch);
        prop_assert_eq!(push, expect_push);
    }

    #[test]
    fn one_partition_of_the_ring_diffs_like_the_whole(n in 0usize..2000, k in 0usize..10, seed in any::<u64>()) {
        // Trees over a partition range ignore keys outside it.
        let range = Ring::range_of((seed % 1024) as usize);
        let keys: BTreeMap<Vec<u8>, u64> = key_set(n * 50, seed).into_iter().filter(|(key, _)| range.contains(token(key))).collect();
        let (other, _) = perturb(&keys, k, seed);
        let (a, b) = (tree(range, &keys), tree(range, &other));
        let (fetch, push, _) = run(&a, &b);
        for key in fetch.iter().chain(push.iter()) {
            prop_assert!(keys.get(key) != other.get(key));
        }
    }
}

#[test]
fn nodes_exchanged_grow_with_differences_not_with_key_count() {
    for k in [1usize, 10, 100] {
        let small = key_set(2_000, 1);
        let large = key_set(200_000, 1);
        let (small_other, _) = perturb(&small, k, 3);
        let (large_other, _) = perturb(&large, k, 3);
        let exchanged_small = run(
            &tree(TokenRange::FULL, &small),
            &tree(TokenRange::FULL, &small_other),
        )
        .2;
        let exchanged_large = run(
            &tree(TokenRange::FULL, &large),
            &tree(TokenRange::FULL, &large_other),
        )
        .2;
        println!(
            "k={k}: {exchanged_small} nodes for 2,000 keys, {exchanged_large} for 200,000 keys"
        );
        // A difference costs one node per level; 100x the keys adds under two levels.
        assert!(
            exchanged_large <= exchanged_small + 2 * k + 2,
            "k={k}: {exchanged_small} vs {exchanged_large}"
        );
        assert!(
            exchanged_large <= 8 * k + 1,
            "k={k}: {exchanged_large} nodes for {k} differences"
        );
    }
    // Identical replicas exchange nothing beyond the root.
    let keys = key_set(200_000, 9);
    assert_eq!(
        run(
            &tree(TokenRange::FULL, &keys),
            &tree(TokenRange::FULL, &keys)
        )
        .2,
        0
    );
}

proptest! {
    /// A peer may name any node: invalid ones are recognised and answered
    /// empty, valid ones answered; nothing panics.
    #[test]
    fn any_node_id_a_peer_sends_is_answered_without_panicking(depth in any::<u8>(), index in any::<u64>()) {
        use dynakv_antientropy::{NodeId, NodeView, Tree};
        use dynakv_ring::TokenRange;
        let items: Vec<(u64, Vec<u8>, u64)> = (0..200u64).map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15), i.to_be_bytes().to_vec(), i)).collect();
        let mut items = items;
        items.sort();
        let tree = Tree::build(TokenRange::FULL, items);
        let id = NodeId { depth, index };
        let view = tree.node(id);
        if !id.is_valid() {
            prop_assert_eq!(view, NodeView::Empty);
            prop_assert!(tree.keys_under(id).is_empty());
            prop_assert!(tree.hash_of(id).is_none());
        }
    }
}
