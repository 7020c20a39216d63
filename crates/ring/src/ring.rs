//! Partition assignment and preference lists.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{Token, TokenRange};

/// Number of partitions the ring is cut into (a power of two).
pub const PARTITIONS: usize = 1024;
const PARTITION_BITS: u32 = PARTITIONS.trailing_zeros();

/// A member as the ring sees it, with its place in the cluster's change log: the
/// ring is a function of this history, not only of the current member set.
///
/// `joined_at` and `left_at` are positions in the log of membership changes the
/// cluster agreed on (see `dynakv-membership`), never wall-clock times, so every
/// node replays the same history whatever its clock says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Unique node name.
    pub name: String,
    /// Relative share of partitions (> 0).
    pub weight: f64,
    /// Availability zone, if any.
    pub zone: Option<String>,
    /// Position of the node's join in the change log (ties broken by name).
    pub joined_at: u64,
    /// Position of its departure, if it left the ring for good.
    pub left_at: Option<u64>,
}

impl NodeSpec {
    /// A node of weight 1, no zone, joined at position 0.
    pub fn new(name: impl Into<String>) -> Self {
        NodeSpec {
            name: name.into(),
            weight: 1.0,
            zone: None,
            joined_at: 0,
            left_at: None,
        }
    }

    /// The same node joined at another position of the log.
    pub fn joined_at(mut self, t: u64) -> Self {
        self.joined_at = t;
        self
    }
}

/// One entry of the membership change log the ring is replayed from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RingEvent {
    /// The member concerned.
    pub name: String,
    /// What changed.
    pub change: Change,
}

/// A membership change, as the ring sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Change {
    /// The member enters the ring.
    Join {
        /// Relative share of partitions (> 0).
        weight: f64,
        /// Availability zone.
        zone: Option<String>,
    },
    /// The member's weight or zone changed.
    Update {
        /// New weight.
        weight: f64,
        /// New zone.
        zone: Option<String>,
    },
    /// The member leaves the ring (it left, or was removed).
    Leave,
}

/// The assignment of partitions to nodes and every partition's preference list.
///
/// A ring has a **target** placement — the replay of the membership log — and,
/// for partitions still being handed off to new replicas, the **serving**
/// replicas that keep answering for them until the new ones hold a full copy
/// (SPEC §6, "Membership changes"). [`Ring::replicas`] are the serving replicas;
/// [`Ring::target_replicas`] where the partition is going; [`Ring::pending`] the
/// difference, which receives writes but does not serve reads yet.
#[derive(Clone, Debug)]
pub struct Ring {
    /// Current members (not left), sorted by name.
    nodes: Vec<NodeSpec>,
    /// Names indexed by the preference lists: the members, then nodes that left
    /// the target but still serve a partition in transit.
    names: Vec<String>,
    n: usize,
    /// Per partition, every member index in target preference order (replicas first).
    preference: Vec<Vec<u16>>,
    /// Per partition in transit, the replicas serving it until handoff completes.
    serving: Vec<Option<Vec<u16>>>,
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
struct Assignment {
    /// Owner of each partition, by index into `present`; `None` while orphaned.
    owners: Vec<Option<String>>,
    /// Present members in join order.
    present: Vec<NodeSpec>,
}

impl Assignment {
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
            match owner.as_deref().and_then(index) {
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
                self.owners[p] = Some(self.present[i].name.clone());
                room[i] -= 1;
            }
        }
    }
}

impl Ring {
    /// The ring of a membership history with `n` replicas per key.
    ///
    /// Deterministic: the same history (in any order) gives the same ring. Joins
    /// and leaves are replayed in the order of their log positions (ties: joins
    /// before leaves, then by name); see [`Ring::replay`].
    pub fn new(history: Vec<NodeSpec>, n: usize) -> Ring {
        let mut history = history;
        history.sort_by(|a, b| a.name.cmp(&b.name));
        history.dedup_by(|a, b| a.name == b.name);
        // Events in log order: (position, 0 = join / 1 = leave, name index).
        let mut order: Vec<(u64, u8, usize)> = Vec::new();
        for (i, node) in history.iter().enumerate() {
            order.push((node.joined_at, 0, i));
            if let Some(t) = node.left_at {
                order.push((t.max(node.joined_at), 1, i));
            }
        }
        order.sort_by(|a, b| (a.0, a.1, &history[a.2].name).cmp(&(b.0, b.1, &history[b.2].name)));
        let events: Vec<RingEvent> = order
            .into_iter()
            .map(|(_, kind, i)| {
                let node = &history[i];
                RingEvent {
                    name: node.name.clone(),
                    change: if kind == 0 {
                        Change::Join {
                            weight: node.weight,
                            zone: node.zone.clone(),
                        }
                    } else {
                        Change::Leave
                    },
                }
            })
            .collect();
        Ring::replay(&events, n)
    }

    /// The ring of a change log with `n` replicas per key.
    ///
    /// The log is replayed in order — each join, leave or weight change
    /// rebalances to exact weighted quotas while moving the fewest partitions —
    /// so a change moves only what the new quotas require. A join of a name
    /// already present, or a leave or update of an absent one, is ignored.
    pub fn replay(events: &[RingEvent], n: usize) -> Ring {
        let mut state = Assignment {
            owners: vec![None; PARTITIONS],
            present: Vec::new(),
        };
        for event in events {
            let at = state.present.iter().position(|m| m.name == event.name);
            match (&event.change, at) {
                (Change::Join { weight, zone }, None) => state.present.push(NodeSpec {
                    weight: *weight,
                    zone: zone.clone(),
                    ..NodeSpec::new(event.name.clone())
                }),
                (Change::Update { weight, zone }, Some(i)) => {
                    state.present[i].weight = *weight;
                    state.present[i].zone = zone.clone();
                }
                (Change::Leave, Some(i)) => {
                    state.present.remove(i);
                }
                _ => continue,
            }
            state.rebalance();
        }
        let mut nodes = state.present.clone();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let owner_index: Vec<u16> = state
            .owners
            .iter()
            .map(|o| {
                o.as_ref()
                    .and_then(|name| nodes.iter().position(|n| &n.name == name))
                    .map_or(u16::MAX, |i| i as u16)
            })
            .collect();
        let mut ring = Ring {
            names: nodes.iter().map(|n| n.name.clone()).collect(),
            nodes,
            n,
            preference: Vec::new(),
            serving: vec![None; PARTITIONS],
        };
        if !ring.nodes.is_empty() {
            ring.preference = (0..PARTITIONS)
                .map(|p| ring.walk(&owner_index, p))
                .collect();
        }
        ring
    }

    /// The same ring with partitions in transit: `moving` maps a partition to
    /// the replicas that serve it until its new replicas hold a full copy. A
    /// partition whose serving list equals its target list, in order, is not
    /// in transit.
    pub fn with_serving(mut self, moving: &BTreeMap<u16, Vec<String>>) -> Ring {
        for (&p, holders) in moving {
            let p = usize::from(p);
            if p >= PARTITIONS || holders.is_empty() {
                continue;
            }
            let mut idx = Vec::with_capacity(holders.len());
            for h in holders {
                let i = match self.names.iter().position(|n| n == h) {
                    Some(i) => i,
                    None => {
                        self.names.push(h.clone());
                        self.names.len() - 1
                    }
                };
                if !idx.contains(&(i as u16)) {
                    idx.push(i as u16);
                }
            }
            // In order: a node that moves up the list without joining the
            // set is in transit too (it lacks keys of buckets with fewer
            // replicas than N).
            if self.target_idx(p) != idx.as_slice() {
                self.serving[p] = Some(idx);
            }
        }
        self
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

    /// True if `name` is a member of the ring (its target placement).
    pub fn is_member(&self, name: &str) -> bool {
        self.nodes.iter().any(|n| n.name == name)
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

    fn target_idx(&self, partition: usize) -> &[u16] {
        self.preference
            .get(partition)
            .map_or(&[][..], |p| &p[..self.replica_count().min(p.len())])
    }

    fn serving_idx(&self, partition: usize) -> &[u16] {
        match self.serving.get(partition) {
            Some(Some(s)) => s,
            _ => self.target_idx(partition),
        }
    }

    fn name(&self, i: u16) -> &str {
        &self.names[i as usize]
    }

    /// The node owning a partition in the target placement (first replica).
    pub fn owner(&self, partition: usize) -> Option<&str> {
        self.target_idx(partition).first().map(|&i| self.name(i))
    }

    /// The extended preference list of a partition: its serving replicas first,
    /// then every other member in walk order (pending replicas first among them).
    pub fn preference_list(&self, partition: usize) -> impl Iterator<Item = &str> + '_ {
        let serving = self.serving_idx(partition);
        let rest = self
            .preference
            .get(partition)
            .into_iter()
            .flatten()
            .filter(move |i| !serving.contains(i));
        serving.iter().chain(rest).map(|&i| self.name(i))
    }

    /// The replicas serving a partition: the first N of its preference list,
    /// or, while the partition is in transit, the replicas it is moving from.
    pub fn replicas(&self, partition: usize) -> impl Iterator<Item = &str> + '_ {
        self.serving_idx(partition).iter().map(|&i| self.name(i))
    }

    /// The replicas a partition is placed on once every handoff completes.
    pub fn target_replicas(&self, partition: usize) -> impl Iterator<Item = &str> + '_ {
        self.target_idx(partition).iter().map(|&i| self.name(i))
    }

    /// Target replicas that do not serve the partition yet: they receive its
    /// writes and a copy of its data, and take over once the copy is complete.
    pub fn pending(&self, partition: usize) -> impl Iterator<Item = &str> + '_ {
        let serving = self.serving_idx(partition);
        self.target_idx(partition)
            .iter()
            .filter(move |i| !serving.contains(i))
            .map(|&i| self.name(i))
    }

    /// Target replicas that serve the partition already but at a later place
    /// of its list than their target one: they hold its keys of N replicas,
    /// but not those of buckets with fewer replicas than their new place, so
    /// they receive those before the partition switches.
    pub fn promoted(&self, partition: usize) -> impl Iterator<Item = &str> + '_ {
        let serving = self.serving_idx(partition);
        self.target_idx(partition)
            .iter()
            .enumerate()
            .filter(move |&(rank, i)| {
                serving
                    .iter()
                    .position(|s| s == i)
                    .is_some_and(|r| r > rank)
            })
            .map(|(_, &i)| self.name(i))
    }

    /// True if the partition's serving replicas differ from its target ones
    /// (as a set, or in order).
    pub fn is_moving(&self, partition: usize) -> bool {
        matches!(self.serving.get(partition), Some(Some(_)))
    }

    /// Partitions in transit.
    pub fn moving(&self) -> impl Iterator<Item = usize> + '_ {
        (0..PARTITIONS).filter(|&p| self.is_moving(p))
    }

    /// The replicas of the key with `token`.
    pub fn replicas_for_token(&self, token: Token) -> impl Iterator<Item = &str> + '_ {
        self.replicas(Self::partition_of(token))
    }

    /// The partitions `node` serves.
    pub fn partitions_of(&self, node: &str) -> Vec<usize> {
        (0..self.preference.len())
            .filter(|&p| self.replicas(p).any(|r| r == node))
            .collect()
    }

    /// True if `node` serves the partition or is one of its target replicas:
    /// it must keep (or is receiving) the partition's data.
    pub fn holds(&self, node: &str, partition: usize) -> bool {
        self.replicas(partition)
            .chain(self.target_replicas(partition))
            .any(|r| r == node)
    }

    /// Each node's share of the partitions it owns (primary ownership, target).
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

/// The target replica-set changes between two rings, partition by partition.
pub fn diff(old: &Ring, new: &Ring) -> Vec<Move> {
    (0..PARTITIONS)
        .filter_map(|p| {
            let before: BTreeSet<&str> = old.target_replicas(p).collect();
            let after: BTreeSet<&str> = new.target_replicas(p).collect();
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
    fn the_log_order_not_the_positions_decides() {
        let events = |names: &[&str]| -> Vec<RingEvent> {
            names
                .iter()
                .map(|n| RingEvent {
                    name: n.to_string(),
                    change: Change::Join {
                        weight: 1.0,
                        zone: None,
                    },
                })
                .collect()
        };
        let a = Ring::replay(&events(&["a", "b", "c"]), 3);
        let b = Ring::new(
            vec![
                NodeSpec::new("a").joined_at(7),
                NodeSpec::new("b").joined_at(90),
                NodeSpec::new("c").joined_at(1_000_000),
            ],
            3,
        );
        for p in 0..PARTITIONS {
            assert!(
                a.target_replicas(p).eq(b.target_replicas(p)),
                "partition {p}"
            );
        }
    }

    #[test]
    fn a_weight_update_moves_only_toward_the_new_quota() {
        let mut log: Vec<RingEvent> = ["a", "b", "c"]
            .iter()
            .map(|n| RingEvent {
                name: n.to_string(),
                change: Change::Join {
                    weight: 1.0,
                    zone: None,
                },
            })
            .collect();
        let before = Ring::replay(&log, 3);
        log.push(RingEvent {
            name: "a".into(),
            change: Change::Update {
                weight: 2.0,
                zone: None,
            },
        });
        let after = Ring::replay(&log, 3);
        assert!((after.ownership()["a"] - 0.5).abs() < 0.002);
        let moved = (0..PARTITIONS)
            .filter(|&p| before.owner(p) != after.owner(p))
            .count();
        // a goes from 1/3 to 1/2 of the owners: about 1/6 of them move.
        assert!(moved <= PARTITIONS / 6 + 2, "{moved} owners moved");
    }

    #[test]
    fn partitions_in_transit_serve_from_their_old_replicas() {
        let old = Ring::new(nodes(3), 3);
        let new = Ring::new(
            nodes(3)
                .into_iter()
                .chain([NodeSpec::new("node-3").joined_at(1)])
                .collect(),
            3,
        );
        let moves = diff(&old, &new);
        assert!(!moves.is_empty());
        let moving: BTreeMap<u16, Vec<String>> = moves
            .iter()
            .map(|m| {
                (
                    m.partition as u16,
                    old.replicas(m.partition).map(str::to_string).collect(),
                )
            })
            .collect();
        let ring = new.clone().with_serving(&moving);
        for m in &moves {
            let p = m.partition;
            assert!(ring.is_moving(p));
            assert!(ring.replicas(p).eq(old.replicas(p)));
            assert!(ring.target_replicas(p).eq(new.replicas(p)));
            let pending: Vec<&str> = ring.pending(p).collect();
            assert_eq!(pending, vec!["node-3"]);
            assert!(ring.holds("node-3", p));
            for lost in &m.lost {
                assert!(ring.holds(lost, p));
            }
            // Serving replicas lead the preference list, the pending one follows.
            let prefs: Vec<&str> = ring.preference_list(p).collect();
            assert_eq!(prefs.len(), 4);
            assert_eq!(prefs[3], "node-3");
        }
        assert_eq!(ring.moving().count(), moves.len());
        // Unmoved partitions are untouched, and a settled map is no transit.
        let settled: BTreeMap<u16, Vec<String>> = moves
            .iter()
            .map(|m| {
                (
                    m.partition as u16,
                    new.replicas(m.partition).map(str::to_string).collect(),
                )
            })
            .collect();
        assert_eq!(new.with_serving(&settled).moving().count(), 0);
    }

    #[test]
    fn a_removed_node_can_still_serve_a_partition_in_transit() {
        let old = Ring::new(nodes(4), 3);
        let mut history = nodes(4);
        history[1].left_at = Some(10);
        let new = Ring::new(history, 3);
        let p = (0..PARTITIONS)
            .find(|&p| old.replicas(p).any(|r| r == "node-1"))
            .expect("node-1 replicates something");
        let moving = BTreeMap::from([(p as u16, old.replicas(p).map(str::to_string).collect())]);
        let ring = new.with_serving(&moving);
        assert!(ring.replicas(p).any(|r| r == "node-1"));
        assert!(!ring.is_member("node-1"));
        assert!(ring.holds("node-1", p));
    }

    #[test]
    fn empty_ring_has_no_replicas() {
        let ring = Ring::new(Vec::new(), 3);
        assert!(ring.is_empty());
        assert_eq!(ring.replicas(0).count(), 0);
        assert_eq!(ring.owner(0), None);
    }
}
