//! The property map converges however nodes exchange it: merge is
//! commutative, associative and idempotent over maps built by any changes.

use dynakv_buckets::{BucketMetadata, Namespace, Stamp};
use proptest::prelude::*;
use serde_json::json;

#[derive(Clone, Debug)]
enum Change {
    Create(u8),
    Activate(u8),
    SetN(u8, u8, u8),
    Reset(u8, u8),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (0u8..3).prop_map(Change::Create),
        (0u8..3).prop_map(Change::Activate),
        (0u8..3, 0u8..3, 1u8..4).prop_map(|(t, b, n)| Change::SetN(t, b, n)),
        (0u8..3, 0u8..3).prop_map(|(t, b)| Change::Reset(t, b)),
    ]
}

/// A node's map after its own changes, at times `t0 + i`.
fn build(node: &str, changes: &[(u64, Change)]) -> BucketMetadata {
    let mut m = BucketMetadata::new();
    for (ms, c) in changes {
        let stamp = Stamp {
            ms: *ms,
            node: node.into(),
        };
        let ty = |t: &u8| format!("t{t}").into_bytes();
        // Refused changes (a type not active yet, …) leave the map as it was.
        let _ = match c {
            Change::Create(t) => m.create_type(&ty(t), &json!({}), 3, stamp),
            Change::Activate(t) => m.activate_type(&ty(t), stamp),
            Change::SetN(t, b, n) => m.set_bucket(
                &Namespace::new(ty(t), vec![*b]),
                &json!({"n_val": n}),
                3,
                stamp,
            ),
            Change::Reset(t, b) => m.reset_bucket(&Namespace::new(ty(t), vec![*b]), stamp),
        };
    }
    m
}

fn history() -> impl Strategy<Value = Vec<(u64, Change)>> {
    proptest::collection::vec((0u64..20, change()), 0..12)
}

fn merged(a: &BucketMetadata, b: &BucketMetadata) -> BucketMetadata {
    let mut m = a.clone();
    m.merge(b);
    m
}

proptest! {
    #[test]
    fn merge_is_commutative_associative_and_idempotent(
        ha in history(), hb in history(), hc in history()
    ) {
        let (a, b, c) = (build("a", &ha), build("b", &hb), build("c", &hc));
        prop_assert_eq!(merged(&a, &b), merged(&b, &a));
        prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
        prop_assert_eq!(merged(&a, &a), a.clone());
        let ab = merged(&a, &b);
        prop_assert_eq!(ab.digest(), merged(&b, &a).digest());
    }
}
