//! Version vectors: the summary of a causal history that clients carry as context.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ActorId;

/// A version vector: for every actor, the number of its events that have been seen.
///
/// Kept in a `BTreeMap` so iteration, encoding and comparison are deterministic.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionVector(BTreeMap<ActorId, u64>);

impl VersionVector {
    /// The empty vector: has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many events of `actor` this vector has seen.
    pub fn get(&self, actor: ActorId) -> u64 {
        self.0.get(&actor).copied().unwrap_or(0)
    }

    /// Records that `actor`'s events up to `counter` have been seen (keeps the max).
    pub fn observe(&mut self, actor: ActorId, counter: u64) {
        if counter == 0 {
            return;
        }
        let entry = self.0.entry(actor).or_insert(0);
        *entry = (*entry).max(counter);
    }

    /// The least upper bound of two vectors.
    pub fn merge(&mut self, other: &VersionVector) {
        for (&actor, &counter) in &other.0 {
            self.observe(actor, counter);
        }
    }

    /// True if this vector has seen everything `other` has.
    pub fn descends(&self, other: &VersionVector) -> bool {
        other.0.iter().all(|(&a, &c)| self.get(a) >= c)
    }

    /// True if the vector has seen no event.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The (actor, counter) pairs in actor order.
    pub fn iter(&self) -> impl Iterator<Item = (ActorId, u64)> + '_ {
        self.0.iter().map(|(&a, &c)| (a, c))
    }

    /// Number of actors in the vector.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl FromIterator<(ActorId, u64)> for VersionVector {
    fn from_iter<I: IntoIterator<Item = (ActorId, u64)>>(iter: I) -> Self {
        let mut vv = VersionVector::new();
        for (a, c) in iter {
            vv.observe(a, c);
        }
        vv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_takes_the_maximum_per_actor() {
        let mut a: VersionVector = [(ActorId(1), 3), (ActorId(2), 1)].into_iter().collect();
        let b: VersionVector = [(ActorId(2), 4), (ActorId(3), 2)].into_iter().collect();
        a.merge(&b);
        assert_eq!(a.get(ActorId(1)), 3);
        assert_eq!(a.get(ActorId(2)), 4);
        assert_eq!(a.get(ActorId(3)), 2);
        assert!(a.descends(&b));
        assert!(!b.descends(&a));
    }

    #[test]
    fn zero_counters_are_not_stored() {
        let vv: VersionVector = [(ActorId(9), 0)].into_iter().collect();
        assert!(vv.is_empty());
    }
}
