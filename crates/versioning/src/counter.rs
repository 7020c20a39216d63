//! A PN-counter: Riak 1.4's counters (`/buckets/B/counters/K`). One entry of
//! increments and one of decrements per actor; merging takes each entry's
//! maximum, so it is commutative, associative and idempotent, and the
//! siblings a counter key gathers merge into its value.
//!
//! Correct only if each actor's entries grow only where that actor's latest
//! entries are known: the node applies an increment under the key's lock to
//! the merge of its local siblings, with an actor of its own incarnation
//! that it continues only while its local copy holds that actor's newest
//! write (see [`crate::Incarnation`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ActorId;

/// The content type a counter's value is stored with.
pub const COUNTER_CONTENT_TYPE: &str = "application/riak_pncounter";

/// A counter that can go up and down.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PnCounter {
    /// Increments per actor.
    p: BTreeMap<u64, u64>,
    /// Decrements per actor.
    n: BTreeMap<u64, u64>,
}

impl PnCounter {
    /// The counter's value.
    pub fn value(&self) -> i64 {
        let p: u64 = self.p.values().fold(0u64, |a, b| a.saturating_add(*b));
        let n: u64 = self.n.values().fold(0u64, |a, b| a.saturating_add(*b));
        (i128::from(p) - i128::from(n)).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// Adds `by` (negative: subtracts) as `actor`.
    pub fn increment(&mut self, actor: ActorId, by: i64) {
        let side = if by >= 0 { &mut self.p } else { &mut self.n };
        let e = side.entry(actor.0).or_default();
        *e = e.saturating_add(by.unsigned_abs());
    }

    /// Merges another replica's counter into this one.
    pub fn merge(&mut self, other: &PnCounter) {
        for (side, theirs) in [(&mut self.p, &other.p), (&mut self.n, &other.n)] {
            for (&a, &v) in theirs {
                let e = side.entry(a).or_default();
                *e = (*e).max(v);
            }
        }
    }

    /// The stored form (JSON).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a counter always serializes")
    }

    /// Reads the stored form; `None` if it is not a counter.
    pub fn decode(bytes: &[u8]) -> Option<PnCounter> {
        serde_json::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn counter() -> impl Strategy<Value = PnCounter> {
        proptest::collection::vec((0u64..4, -50i64..50), 0..8).prop_map(|ops| {
            let mut c = PnCounter::default();
            for (a, by) in ops {
                c.increment(ActorId(a), by);
            }
            c
        })
    }

    fn merged(a: &PnCounter, b: &PnCounter) -> PnCounter {
        let mut m = a.clone();
        m.merge(b);
        m
    }

    proptest! {
        #[test]
        fn merge_is_commutative_associative_and_idempotent(a in counter(), b in counter(), c in counter()) {
            prop_assert_eq!(merged(&a, &b), merged(&b, &a));
            prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
            prop_assert_eq!(merged(&a, &a), a.clone());
            prop_assert_eq!(PnCounter::decode(&a.encode()), Some(a));
        }

        #[test]
        fn increments_by_different_actors_all_count(incs in proptest::collection::vec((0u64..4, -50i64..50), 0..20)) {
            // Each actor applies its own increments to its own replica; the
            // merge of all replicas counts every one.
            let mut replicas: BTreeMap<u64, PnCounter> = BTreeMap::new();
            for &(a, by) in &incs {
                replicas.entry(a).or_default().increment(ActorId(a), by);
            }
            let all = replicas.values().fold(PnCounter::default(), |acc, r| merged(&acc, r));
            prop_assert_eq!(all.value(), incs.iter().map(|(_, b)| b).sum::<i64>());
        }
    }
}
