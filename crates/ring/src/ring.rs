//! Partition assignment and preference lists.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{Token, TokenRange};

/// Number of partitions the ring is cut into (a power of two).
pub const PARTITIONS: usize = 1024;
const PARTITION_BITS: u32 = PARTITIONS.trailing_zeros();

/// A member as the ring sees it, with the times it joined and left: the ring is
/// a function of this history, not only of the current member set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Unique node name.
    pub name: String,
    /// Relative share of partitions (> 0).
    pub weight: f64,
    /// Availability zone, if any.
    pub zone: Option<String>,
    /// When the node joined (any monotonic clock shared by convention; ties are
    /// broken by name).
    pub joined_at: u64,
    /// When the node left the ring for good, if it did.
    pub left_at: Option<u64>,
}

impl NodeSpec {
    /// A node of weight 1, no zone, joined at time 0.
    pub fn new(name: impl Into<String>) -> Self {
        NodeSpec {
            name: name.into(),
            weight: 1.0,
            zone: None,
            joined_at: 0,
            left_at: None,
        }
    }

    /// The same node with another join time.
    pub fn joined_at(mut self, t: u64) -> Self {
        self.joined_at = t;
        self
    }
}

/// The assignment of partitions to nodes and every partition's preference list.
#[derive(Clone, Debug)]
pub struct Ring {
    /// Current members (not left), sorted by name.
    nodes: Vec<NodeSpec>,
    n: usize,
    /// Per partition, every node index in preference order (replicas first).
    preference: Vec<Vec<u16>>,
}

/// A change of one partition's replica set between two rings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    /// The partition.
    pub partition: usize,
    /// Nodes that replicate it in the new ring but not in the old one.
    pub gained: Vec<String>,
    /// Nodes that replicated it in the old ring but not in the new one.
    pub lost: Vec<String>,
}

fn score(name: &str, partition: usize) -> u64 {
    let mut buf = Vec::with_capacity(name.len() + 8);
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(&(partition as u64).to_le_bytes());
    xxhash_rust::xxh3::xxh3_64(&buf)
}

/// Partition counts proportional to weight, summing to [`PARTITIONS`].
fn quotas(weights: &[f64]) -> Vec<usize> {
    let total: f64 = weights.iter().sum();
    let exact: Vec<f64> = weights
        .iter()
        .map(|w| PARTITIONS as f64 * w / total)
        .collect();
    let mut q: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut left = PARTITIONS - q.iter().sum::<usize>();
    // Largest remainder first; ties by position (callers keep a stable order).
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    for &i in order.iter().cycle() {
        if left == 0 {
            break;
        }
        q[i] += 1;
        left -= 1;
    }
    q
}

/// Partition ownership while the membership history is replayed.
struct Assignment<'a> {
    /// Owner of each partition, by name; `None` while orphaned.
    owners: Vec<Option<&'a NodeSpec>>,
    /// Present members in join order.
    present: Vec<&'a NodeSpec>,
}

impl<'a> Assignment<'a> {
    /// Rebalances to exact quotas, moving as few partitions as possible: a node
    /// over its quota releases the partitions it scores lowest, and orphaned or
    /// released partitions go to the under-quota node that scores them highest.
    fn rebalance(&mut self) {
        if self.present.is_empty() {
            self.owners.iter_mut().for_each(|o| *o = None);
            return;
        }
        let weights: Vec<f64> = self.present.iter().map(|n| n.weight).collect();
        let quota = quotas(&weights);
        let index = |name: &str| self.present.iter().position(|n| n.name == name);
        let mut owned: Vec<Vec<usize>> = vec![Vec::new(); self.present.len()];
        let mut pool: Vec<usize> = Vec::new();
        for (p, owner) in self.owners.iter().enumerate() {
            match owner.and_then(|o| index(&o.name)) {
                Some(i) => owned[i].push(p),
                None => pool.push(p),
            }
        }
        for (i, parts) in owned.iter_mut().enumerate() {
            if parts.len() > quota[i] {
                let name = &self.present[i].name;
                parts.sort_by_key(|&p| (score(name, p), p));
                let surplus = parts.len() - quota[i];
                pool.extend(parts.drain(..surplus));
            }
        }
        let mut room: Vec<usize> = owned
            .iter()
            .enumerate()
            .map(|(i, parts)| quota[i] - parts.len())
            .collect();
        let mut pairs: Vec<(u64, usize, usize)> = Vec::new();
        for &p in &pool {
            for (i, node) in self.present.iter().enumerate() {
                if room[i] > 0 {
                    pairs.push((score(&node.name, p), p, i));
                }
            }
        }
        pairs.sort_unstable_by(|a, b| b.cmp(a));
        for &p in &pool {
            self.owners[p] = None;
        }
        for (_, p, i) in pairs {
            if self.owners[p].is_none() && room[i] > 0 {
                self.owners[p] = Some(self.present[i]);
                room[i] -= 1;
            }
        }
    }
}

impl Ring {
    /// The ring of a membership history with `n` replicas per key.
    ///
    /// Deterministic: the same history (in any order) gives the same ring. The
    /// history is replayed in time order — each join or leave rebalances to exact
    /// weighted quotas while moving the fewest partitions — so adding or removing
    /// a node moves only what the new quotas require.
    pub fn new(history: Vec<NodeSpec>, n: usize) -> Ring {
        let mut history = history;
        history.sort_by(|a, b| a.name.cmp(&b.name));
        history.dedup_by(|a, b| a.name == b.name);
        // Events in time order: (time, 0 = join / 1 = leave, name index).
        let mut events: Vec<(u64, u8, usize)> = Vec::new();
        for (i, node) in history.iter().enumerate() {
            events.push((node.joined_at, 0, i));
            if let Some(t) = node.left_at {
                events.push((t.max(node.joined_at), 1, i));
            }
        }
        events.sort_by(|a, b| (a.0, a.1, &history[a.2].name).cmp(&(b.0, b.1, &history[b.2].name)));
        let mut state = Assignment {
            owners: vec![None; PARTITIONS],
            present: Vec::new(),
        };
        for (_, kind, i) in events {
            let node = &history[i];
            if kind == 0 {
                state.present.push(node);
            } else {
                state.present.retain(|m| m.name != node.name);
            }
            state.rebalance();
        }
        let owners: Vec<Option<String>> = state
            .owners
            .iter()
            .map(|o| o.map(|n| n.name.clone()))
            .collect();
        let nodes: Vec<NodeSpec> = history
            .iter()
            .filter(|n| n.left_at.is_none())
            .cloned()
            .collect();
        let owner_index: Vec<u16> = owners
            .iter()
            .map(|o| {
                o.as_ref()
                    .and_then(|name| nodes.iter().position(|n| &n.name == name))
                    .map_or(u16::MAX, |i| i as u16)
            })
            .collect();
        let mut ring = Ring {
            nodes,
            n,
            preference: Vec::new(),
        };
        if !ring.nodes.is_empty() {
            ring.preference = (0..PARTITIONS)
                .map(|p| ring.walk(&owner_index, p))
                .collect();
        }
        ring
    }

    /// Every node in the order a clockwise walk from `partition` meets them,
    /// with distinct zones preferred for the first N.
    fn walk(&self, owners: &[u16], partition: usize) -> Vec<u16> {
        let mut order: Vec<u16> = Vec::with_capacity(self.nodes.len());
        for step in 0..PARTITIONS {
            let owner = owners[(partition + step) % PARTITIONS];
            if owner != u16::MAX && !order.contains(&owner) {
                order.push(owner);
                if order.len() == self.nodes.len() {
                    break;
                }
            }
        }
        let replicas = self.n.min(order.len());
        let zones: BTreeSet<&Option<String>> = self.nodes.iter().map(|n| &n.zone).collect();
        if zones.len() < 2 || self.nodes.iter().all(|n| n.zone.is_none()) {
            return order;
        }
        // Pick replicas from unused zones first, then fill in walk order.
        let mut chosen: Vec<u16> = Vec::with_capacity(order.len());
        let mut used: BTreeSet<&Option<String>> = BTreeSet::new();
        for &i in &order {
            if chosen.len() < replicas && used.insert(&self.nodes[i as usize].zone) {
                chosen.push(i);
            }
        }
        for &i in &order {
            if !chosen.contains(&i) {
                chosen.push(i);
            }
        }
        // Keep the extended tail in walk order but after the chosen replicas.
        let (head, tail) = chosen.split_at(replicas.min(chosen.len()));
        let mut head = head.to_vec();
        if head.len() < replicas {
            head.extend(tail.iter().take(replicas - head.len()));
        }
        let rest: Vec<u16> = order
            .iter()
            .copied()
            .filter(|i| !head.contains(i))
            .collect();
        head.extend(rest);
        head
    }

    /// The partition a token falls in.
    pub fn partition_of(token: Token) -> usize {
        (token >> (64 - PARTITION_BITS)) as usize
    }

    /// The token range of a partition.
    pub fn range_of(partition: usize) -> TokenRange {
        let width = 1u64 << (64 - PARTITION_BITS);
        let start = partition as u64 * width;
        TokenRange {
            start,
            end: start + (width - 1),
        }
    }

    /// The members, sorted by name.
    pub fn nodes(&self) -> &[NodeSpec] {
        &self.nodes
    }

    /// Replicas per key (N), as configured.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Replicas a key actually has: N, or every member when there are fewer.
    pub fn replica_count(&self) -> usize {
        self.n.min(self.nodes.len())
    }

    /// True if the ring has no members.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The node owning a partition (first in its preference list).
    pub fn owner(&self, partition: usize) -> Option<&str> {
        self.preference
            .get(partition)
            .and_then(|p| p.first())
            .map(|&i| self.nodes[i as usize].name.as_str())
    }

    /// The extended preference list of a partition: its replicas first, then
    /// every other node as fallbacks, in walk order.
    pub fn preference_list(&self, partition: usize) -> impl Iterator<Item = &str> + '_ {
        self.preference
            .get(partition)
            .into_iter()
            .flatten()
            .map(|&i| self.nodes[i as usize].name.as_str())
    }

    /// The replicas of a partition (the first N of its preference list).
    pub fn replicas(&self, partition: usize) -> impl Iterator<Item = &str> + '_ {
        self.preference_list(partition).take(self.replica_count())
    }

    /// The replicas of the key with `token`.
    pub fn replicas_for_token(&self, token: Token) -> impl Iterator<Item = &str> + '_ {
        self.replicas(Self::partition_of(token))
    }

    /// The partitions `node` replicates.
    pub fn partitions_of(&self, node: &str) -> Vec<usize> {
        (0..self.preference.len())
            .filter(|&p| self.replicas(p).any(|r| r == node))
            .collect()
    }

    /// Each node's share of the partitions it owns (primary ownership).
    pub fn ownership(&self) -> BTreeMap<String, f64> {
        let mut counts: BTreeMap<String, f64> =
            self.nodes.iter().map(|n| (n.name.clone(), 0.0)).collect();
        for p in 0..self.preference.len() {
            if let Some(o) = self.owner(p)
                && let Some(c) = counts.get_mut(o)
            {
                *c += 1.0 / PARTITIONS as f64;
            }
        }
        counts
    }
}

/// The replica-set changes between two rings, partition by partition.
pub fn diff(old: &Ring, new: &Ring) -> Vec<Move> {
    (0..PARTITIONS)
        .filter_map(|p| {
            let before: BTreeSet<&str> = old.replicas(p).collect();
            let after: BTreeSet<&str> = new.replicas(p).collect();
            if before == after {
                return None;
            }
            Some(Move {
                partition: p,
                gained: after.difference(&before).map(|s| s.to_string()).collect(),
                lost: before.difference(&after).map(|s| s.to_string()).collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(k: usize) -> Vec<NodeSpec> {
        (0..k).map(|i| NodeSpec::new(format!("node-{i}"))).collect()
    }

    #[test]
    fn partitions_tile_the_ring() {
        assert_eq!(Ring::range_of(0).start, 0);
        assert_eq!(Ring::range_of(PARTITIONS - 1).end, u64::MAX);
        for p in 0..PARTITIONS - 1 {
            assert_eq!(Ring::range_of(p).end + 1, Ring::range_of(p + 1).start);
            assert_eq!(Ring::partition_of(Ring::range_of(p).start), p);
            assert_eq!(Ring::partition_of(Ring::range_of(p).end), p);
        }
    }

    #[test]
    fn fewer_members_than_n_replicate_everything_everywhere() {
        let ring = Ring::new(nodes(2), 3);
        assert_eq!(ring.replica_count(), 2);
        for p in 0..PARTITIONS {
            assert_eq!(ring.replicas(p).count(), 2);
        }
        assert_eq!(ring.partitions_of("node-0").len(), PARTITIONS);
    }

    #[test]
    fn weights_set_the_share() {
        let mut ns = nodes(3);
        ns[0].weight = 2.0;
        let own = Ring::new(ns, 3).ownership();
        assert!((own["node-0"] - 0.5).abs() < 0.002, "{own:?}");
        assert!((own["node-1"] - 0.25).abs() < 0.002, "{own:?}");
    }

    #[test]
    fn replicas_span_zones_when_there_are_enough() {
        let ns: Vec<NodeSpec> = (0..6)
            .map(|i| NodeSpec {
                zone: Some(format!("z{}", i % 3)),
                ..NodeSpec::new(format!("n{i}"))
            })
            .collect();
        let ring = Ring::new(ns.clone(), 3);
        for p in 0..PARTITIONS {
            let zones: BTreeSet<_> = ring
                .replicas(p)
                .map(|r| ns.iter().find(|n| n.name == r).map(|n| n.zone.clone()))
                .collect();
            assert_eq!(zones.len(), 3, "partition {p}");
        }
    }

    #[test]
    fn empty_ring_has_no_replicas() {
        let ring = Ring::new(Vec::new(), 3);
        assert!(ring.is_empty());
        assert_eq!(ring.replicas(0).count(), 0);
        assert_eq!(ring.owner(0), None);
    }
}
