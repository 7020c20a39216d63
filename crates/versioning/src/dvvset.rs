//! The dotted version vector set (DVVSet) itself.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{ActorId, VersionVector};

/// One event of one actor: the `counter`-th write that `actor` coordinated for a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dot {
    /// The replica that coordinated the write.
    pub actor: ActorId,
    /// Its sequence number among that actor's writes of the key (starting at 1).
    pub counter: u64,
}

/// What a DVVSet knows about one actor. Decoding validates the invariants
/// (`values.len() <= counter <= MAX_COUNTER`), so no record from a disk or a
/// peer can make the arithmetic below underflow or overflow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawEntry<V>")]
struct Entry<V> {
    /// Every event `1..=counter` of this actor has been seen.
    counter: u64,
    /// The still-concurrent values among those events, newest first: `values[i]`
    /// carries the dot `(actor, counter - i)`. Always `values.len() <= counter`.
    values: Vec<V>,
}

/// An entry as decoded, before its invariants are checked.
#[derive(Deserialize)]
struct RawEntry<V> {
    counter: u64,
    values: Vec<V>,
}

impl<V> TryFrom<RawEntry<V>> for Entry<V> {
    type Error = String;

    fn try_from(raw: RawEntry<V>) -> Result<Self, String> {
        if raw.values.len() as u64 > raw.counter {
            return Err(format!(
                "a clock entry holds {} values for {} events",
                raw.values.len(),
                raw.counter
            ));
        }
        if raw.counter > crate::MAX_COUNTER {
            return Err(format!(
                "a clock counter of {} is out of bounds",
                raw.counter
            ));
        }
        Ok(Entry {
            counter: raw.counter,
            values: raw.values,
        })
    }
}

impl<V> Entry<V> {
    /// The highest counter whose value has been superseded (or never kept): the
    /// entry's values have exactly the dots `floor + 1 ..= counter`.
    fn floor(&self) -> u64 {
        self.counter - self.values.len() as u64
    }
}

/// A dotted version vector set: the causal history of one key and its current
/// sibling values. See the crate documentation for the algorithm.
///
/// Generic over the value type so the laws can be tested with small values; the
/// store uses [`crate::Object`] (`DvvSet<Version>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DvvSet<V> {
    entries: BTreeMap<ActorId, Entry<V>>,
}

impl<V> Default for DvvSet<V> {
    fn default() -> Self {
        DvvSet {
            entries: BTreeMap::new(),
        }
    }
}

impl<V: Clone> DvvSet<V> {
    /// An empty set: no history, no values.
    pub fn new() -> Self {
        Self::default()
    }

    /// True if the set has seen no event at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The version vector of everything this set has seen (Riak's `join`). This is
    /// the causal context handed to clients.
    pub fn context(&self) -> VersionVector {
        self.entries.iter().map(|(&a, e)| (a, e.counter)).collect()
    }

    /// The sibling values with their dots, in actor order, newest first per actor.
    pub fn dotted_values(&self) -> impl Iterator<Item = (Dot, &V)> + '_ {
        self.entries.iter().flat_map(|(&actor, e)| {
            e.values.iter().enumerate().map(move |(i, v)| {
                let dot = Dot {
                    actor,
                    counter: e.counter - i as u64,
                };
                (dot, v)
            })
        })
    }

    /// The sibling values (live values and tombstones alike).
    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.entries.values().flat_map(|e| e.values.iter())
    }

    /// Number of sibling values.
    pub fn len(&self) -> usize {
        self.entries.values().map(|e| e.values.len()).sum()
    }

    /// Discards every value whose dot `context` covers, and records the context as
    /// seen. Values the context does not cover stay as siblings.
    pub fn discard(&mut self, context: &VersionVector) {
        for (actor, seen) in context.iter() {
            let entry = self.entries.entry(actor).or_insert_with(|| Entry {
                counter: 0,
                values: Vec::new(),
            });
            if seen >= entry.counter {
                entry.counter = seen;
                entry.values.clear();
            } else {
                // Keep only dots above `seen`: the newest `counter - seen` values.
                let keep = (entry.counter - seen) as usize;
                entry.values.truncate(keep);
            }
        }
    }

    /// Records a new event of `actor` carrying `value`, concurrent with every value
    /// currently in the set. Returns its dot.
    pub fn event(&mut self, actor: ActorId, value: V) -> Dot {
        let entry = self.entries.entry(actor).or_insert_with(|| Entry {
            counter: 0,
            values: Vec::new(),
        });
        // Saturating: counters are bounded where they enter (tokens, peers),
        // so this never saturates in practice, and no input can make it panic.
        entry.counter = entry.counter.saturating_add(1);
        entry.values.insert(0, value);
        Dot {
            actor,
            counter: entry.counter,
        }
    }

    /// A coordinator's write: the new `value` supersedes exactly the values that
    /// `context` covers, and gets the next dot of `actor` (Riak's `update/3`).
    /// A write with an empty context therefore becomes one more sibling.
    pub fn update(&mut self, context: &VersionVector, actor: ActorId, value: V) -> Dot {
        self.discard(context);
        self.event(actor, value)
    }

    /// Merges another replica's set into this one (Riak's `sync`).
    ///
    /// Per actor the result has the higher counter, and keeps a value only if
    /// neither side had already superseded its dot. Commutative, associative and
    /// idempotent, so replicas converge however they exchange state.
    pub fn sync(&mut self, other: &DvvSet<V>) {
        for (actor, theirs) in &other.entries {
            let Some(ours) = self.entries.get_mut(actor) else {
                self.entries.insert(*actor, theirs.clone());
                continue;
            };
            // Values survive only above both floors; the side with the higher
            // counter holds all of them, newest first.
            let floor = ours.floor().max(theirs.floor());
            if theirs.counter > ours.counter {
                let keep = (theirs.counter - floor) as usize;
                ours.counter = theirs.counter;
                ours.values = theirs.values[..keep].to_vec();
            } else {
                let keep = (ours.counter - floor) as usize;
                ours.values.truncate(keep);
            }
        }
    }

    /// The same history with every value passed through `f` (a value type
    /// read from an older record format, brought to the current one).
    pub fn map_values<U>(self, mut f: impl FnMut(V) -> U) -> DvvSet<U> {
        DvvSet {
            entries: self
                .entries
                .into_iter()
                .map(|(actor, e)| {
                    let values = e.values.into_iter().map(&mut f).collect();
                    (
                        actor,
                        Entry {
                            counter: e.counter,
                            values,
                        },
                    )
                })
                .collect(),
        }
    }

    /// Returns the merge of `self` and `other` without modifying either.
    pub fn synced(&self, other: &DvvSet<V>) -> DvvSet<V> {
        let mut merged = self.clone();
        merged.sync(other);
        merged
    }

    /// True if this set has seen every event `other` has (a merge would add
    /// nothing to it).
    pub fn descends(&self, other: &DvvSet<V>) -> bool {
        self.context().descends(&other.context())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ActorId = ActorId(1);
    const B: ActorId = ActorId(2);

    fn vals(s: &DvvSet<&'static str>) -> Vec<&'static str> {
        let mut v: Vec<_> = s.values().copied().collect();
        v.sort();
        v
    }

    #[test]
    fn write_with_read_context_replaces_the_value() {
        let mut s = DvvSet::new();
        s.update(&VersionVector::new(), A, "v1");
        let ctx = s.context();
        s.update(&ctx, A, "v2");
        assert_eq!(vals(&s), vec!["v2"]);
    }

    #[test]
    fn two_writes_with_the_same_context_are_siblings() {
        let mut s = DvvSet::new();
        s.update(&VersionVector::new(), A, "v1");
        let ctx = s.context();
        s.update(&ctx, A, "x");
        s.update(&ctx, A, "y");
        assert_eq!(vals(&s), vec!["x", "y"]);
        let ctx = s.context();
        s.update(&ctx, B, "merged");
        assert_eq!(vals(&s), vec!["merged"]);
    }

    #[test]
    fn sync_keeps_concurrent_writes_of_two_replicas() {
        let mut a = DvvSet::new();
        let mut b = DvvSet::new();
        a.update(&VersionVector::new(), A, "from-a");
        b.update(&VersionVector::new(), B, "from-b");
        a.sync(&b);
        assert_eq!(vals(&a), vec!["from-a", "from-b"]);
        // A write on b that saw both resolves them once synced.
        b.sync(&a);
        let ctx = b.context();
        b.update(&ctx, B, "resolved");
        a.sync(&b);
        assert_eq!(vals(&a), vec!["resolved"]);
    }

    #[test]
    fn context_from_an_unknown_actor_is_remembered() {
        // A client read from replica B, then wrote through A before A heard of B's
        // write: when B's set arrives, its value must already count as covered.
        let mut b = DvvSet::new();
        b.update(&VersionVector::new(), B, "old");
        let ctx = b.context();
        let mut a = DvvSet::new();
        a.update(&ctx, A, "new");
        a.sync(&b);
        assert_eq!(vals(&a), vec!["new"]);
    }
}
