//! The tree, its node views, and the comparison of two views.

use std::collections::BTreeMap;

use dynakv_ring::{Token, TokenRange};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// A node hash: SHA-256 truncated to 128 bits (collisions stay negligible; the
/// bytes exchanged halve).
pub type Hash = [u8; 16];

/// A node with at most this many keys is a leaf listing them.
pub const LEAF_KEYS: usize = 8;
const FANOUT_BITS: u32 = 4;
const FANOUT: u64 = 1 << FANOUT_BITS;

/// A node of a range's tree: the `index`-th of the 16^`depth` equal slices of
/// the range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId {
    /// Distance from the root.
    pub depth: u8,
    /// Position among the nodes of that depth, in token order.
    pub index: u64,
}

impl NodeId {
    /// The root.
    pub const ROOT: NodeId = NodeId { depth: 0, index: 0 };

    /// Deepest level a tree over 64-bit tokens can have.
    pub const MAX_DEPTH: u8 = (64 / FANOUT_BITS) as u8;

    /// True if the node can exist in a tree (a peer may send anything): depth
    /// at most [`NodeId::MAX_DEPTH`] and an index within its level.
    pub fn is_valid(self) -> bool {
        self.depth <= Self::MAX_DEPTH
            && (self.depth == Self::MAX_DEPTH
                || self.index < 1u64 << (FANOUT_BITS * u32::from(self.depth)))
    }

    fn child(self, i: u64) -> NodeId {
        NodeId {
            depth: self.depth + 1,
            index: self.index * FANOUT + i,
        }
    }
}

/// What one replica knows about one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeView {
    /// No keys below.
    Empty,
    /// Few keys below: the exact `(key, digest)` pairs, in order.
    Leaf(Vec<(Vec<u8>, u64)>),
    /// Many keys below: the hash of every non-empty child, by child number.
    Inner(Vec<(u8, Hash)>),
}

/// One `(token, key, digest)` of the stream a tree is built from.
type Item = (Token, Vec<u8>, u64);

/// The Merkle tree of one token range.
#[derive(Clone, Debug)]
pub struct Tree {
    range: TokenRange,
    items: Vec<Item>,
    /// Hashes of the nodes that exist (non-empty), computed at build.
    hashes: BTreeMap<NodeId, Hash>,
}

fn leaf_hash(items: &[Item]) -> Hash {
    let mut h = Sha256::new();
    h.update(b"leaf");
    for (_, key, digest) in items {
        h.update((key.len() as u32).to_le_bytes());
        h.update(key);
        h.update(digest.to_le_bytes());
    }
    truncate(h.finalize().as_slice())
}

fn truncate(full: &[u8]) -> Hash {
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

impl Tree {
    /// Builds the tree of `range` from its `(token, key, digest)` items, which
    /// must be sorted by (token, key) and lie in the range (as a storage scan
    /// yields them). Items outside the range are ignored.
    pub fn build(
        range: TokenRange,
        items: impl IntoIterator<Item = (Token, Vec<u8>, u64)>,
    ) -> Tree {
        let mut items: Vec<Item> = items
            .into_iter()
            .filter(|(t, _, _)| range.contains(*t))
            .collect();
        // Cheap when already sorted; makes the shape independent of input order.
        items.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        items.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
        let mut tree = Tree {
            range,
            items,
            hashes: BTreeMap::new(),
        };
        let all = tree.items.len();
        tree.hash_node(NodeId::ROOT, 0, all);
        tree
    }

    /// Number of keys in the tree.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True if the range holds no key.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The range's root hash (all zeros when empty).
    pub fn root(&self) -> Hash {
        self.hashes.get(&NodeId::ROOT).copied().unwrap_or_default()
    }

    /// The token bounds `[lo, hi)` of a node, as u128 so the full ring fits.
    fn bounds(&self, id: NodeId) -> (u128, u128) {
        let width = u128::from(self.range.end - self.range.start) + 1;
        let slice = width >> (FANOUT_BITS * u32::from(id.depth));
        let lo = u128::from(self.range.start) + slice * u128::from(id.index);
        (lo, lo + slice)
    }

    /// True if a node's slice cannot be split further.
    fn is_finest(&self, id: NodeId) -> bool {
        let (lo, hi) = self.bounds(id);
        hi - lo < u128::from(FANOUT)
    }

    /// The items below a node, as index bounds into `items`.
    fn span(&self, id: NodeId) -> (usize, usize) {
        let (lo, hi) = self.bounds(id);
        let start = self.items.partition_point(|(t, _, _)| u128::from(*t) < lo);
        let end = self.items.partition_point(|(t, _, _)| u128::from(*t) < hi);
        (start, end)
    }

    fn hash_node(&mut self, id: NodeId, start: usize, end: usize) -> Option<Hash> {
        if start == end {
            return None;
        }
        let hash = if end - start <= LEAF_KEYS || self.is_finest(id) {
            leaf_hash(&self.items[start..end])
        } else {
            let mut h = Sha256::new();
            h.update(b"inner");
            let mut at = start;
            for i in 0..FANOUT {
                let child = id.child(i);
                let (_, hi) = self.bounds(child);
                let child_end =
                    at + self.items[at..end].partition_point(|(t, _, _)| u128::from(*t) < hi);
                if let Some(ch) = self.hash_node(child, at, child_end) {
                    h.update([i as u8]);
                    h.update(ch);
                }
                at = child_end;
            }
            truncate(h.finalize().as_slice())
        };
        self.hashes.insert(id, hash);
        Some(hash)
    }

    /// This replica's view of a node.
    pub fn node(&self, id: NodeId) -> NodeView {
        if !id.is_valid() {
            return NodeView::Empty;
        }
        let (start, end) = self.span(id);
        if start == end {
            return NodeView::Empty;
        }
        if end - start <= LEAF_KEYS || self.is_finest(id) {
            return NodeView::Leaf(self.listing(start, end));
        }
        NodeView::Inner(self.children(id))
    }

    fn listing(&self, start: usize, end: usize) -> Vec<(Vec<u8>, u64)> {
        self.items[start..end]
            .iter()
            .map(|(_, k, d)| (k.clone(), *d))
            .collect()
    }

    /// Every `(key, digest)` below a node, however many.
    pub fn keys_under(&self, id: NodeId) -> Vec<(Vec<u8>, u64)> {
        if !id.is_valid() {
            return Vec::new();
        }
        let (start, end) = self.span(id);
        self.listing(start, end)
    }

    /// The hashes of a node's non-empty children (computed on demand for nodes
    /// that are leaves in this tree).
    fn children(&self, id: NodeId) -> Vec<(u8, Hash)> {
        (0..FANOUT)
            .filter_map(|i| {
                let child = id.child(i);
                if let Some(h) = self.hashes.get(&child) {
                    return Some((i as u8, *h));
                }
                let (start, end) = self.span(child);
                (start < end).then(|| (i as u8, leaf_or_rebuilt_hash(self, child, start, end)))
            })
            .collect()
    }

    /// The hash this tree gives a node (none when empty).
    pub fn hash_of(&self, id: NodeId) -> Option<Hash> {
        if !id.is_valid() {
            return None;
        }
        if let Some(h) = self.hashes.get(&id) {
            return Some(*h);
        }
        let (start, end) = self.span(id);
        (start < end).then(|| leaf_or_rebuilt_hash(self, id, start, end))
    }
}

/// The hash of a node that was not stored at build (below a leaf): the node is
/// rebuilt from its items in a scratch tree so the hash follows the same rules.
fn leaf_or_rebuilt_hash(tree: &Tree, id: NodeId, start: usize, end: usize) -> Hash {
    let mut scratch = Tree {
        range: tree.range,
        items: tree.items[start..end].to_vec(),
        hashes: BTreeMap::new(),
    };
    let n = scratch.items.len();
    scratch.hash_node(id, 0, n).unwrap_or_default()
}

/// What comparing two views of one node found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// Children whose hashes differ: compare their views next.
    pub explore: Vec<NodeId>,
    /// Keys the remote side has in a different version (or we lack): fetch them.
    pub fetch: Vec<Vec<u8>>,
    /// Keys we have in a different version (or the remote lacks): push them.
    pub push: Vec<Vec<u8>>,
}

/// Compares the local tree's node `id` with the remote view of it.
///
/// * both inner: the children whose hashes differ are explored next;
/// * a remote leaf or empty node: compared key by key against every local key
///   below `id` (computed locally, nothing more is transferred);
/// * a remote inner node against a local leaf: the remote children that differ
///   from the local ones are explored.
pub fn compare(local: &Tree, id: NodeId, remote: &NodeView) -> Diff {
    let mut diff = Diff::default();
    match remote {
        NodeView::Empty | NodeView::Leaf(_) => {
            let theirs: &[(Vec<u8>, u64)] = match remote {
                NodeView::Leaf(l) => l,
                _ => &[],
            };
            let ours = local.keys_under(id);
            let (mut i, mut j) = (0, 0);
            while i < ours.len() || j < theirs.len() {
                match (ours.get(i), theirs.get(j)) {
                    (Some(a), Some(b)) if a.0 == b.0 => {
                        if a.1 != b.1 {
                            diff.fetch.push(b.0.clone());
                            diff.push.push(a.0.clone());
                        }
                        i += 1;
                        j += 1;
                    }
                    (Some(a), Some(b)) if listed_order(a) < listed_order(b) => {
                        diff.push.push(a.0.clone());
                        i += 1;
                    }
                    (Some(_), Some(b)) | (None, Some(b)) => {
                        diff.fetch.push(b.0.clone());
                        j += 1;
                    }
                    (Some(a), None) => {
                        diff.push.push(a.0.clone());
                        i += 1;
                    }
                    (None, None) => break,
                }
            }
        }
        NodeView::Inner(children) => {
            let mine: BTreeMap<u8, Hash> = match local.node(id) {
                NodeView::Inner(c) => c.into_iter().collect(),
                _ => local_children(local, id),
            };
            let theirs: BTreeMap<u8, Hash> = children.iter().copied().collect();
            for i in 0..FANOUT as u8 {
                if mine.get(&i) != theirs.get(&i) {
                    diff.explore.push(id.child(u64::from(i)));
                }
            }
        }
    }
    diff
}

fn local_children(tree: &Tree, id: NodeId) -> BTreeMap<u8, Hash> {
    tree.children(id).into_iter().collect()
}

/// The (token, key) order in which leaves list their keys.
fn listed_order(item: &(Vec<u8>, u64)) -> (Token, &[u8]) {
    (dynakv_ring::token(&item.0), &item.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(keys: &[&str]) -> Vec<(Token, Vec<u8>, u64)> {
        keys.iter()
            .map(|k| (dynakv_ring::token(k.as_bytes()), k.as_bytes().to_vec(), 7))
            .collect()
    }

    #[test]
    fn empty_trees_are_equal_and_have_a_zero_root() {
        let a = Tree::build(TokenRange::FULL, Vec::new());
        assert_eq!(a.root(), [0u8; 16]);
        assert_eq!(a.node(NodeId::ROOT), NodeView::Empty);
    }

    #[test]
    fn input_order_does_not_change_the_tree() {
        let mut i = items(&["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"]);
        let a = Tree::build(TokenRange::FULL, i.clone());
        i.reverse();
        let b = Tree::build(TokenRange::FULL, i);
        assert_eq!(a.root(), b.root());
    }

    #[test]
    fn a_small_tree_is_one_leaf_listing_its_keys() {
        let t = Tree::build(TokenRange::FULL, items(&["x", "y"]));
        match t.node(NodeId::ROOT) {
            NodeView::Leaf(l) => assert_eq!(l.len(), 2),
            other => panic!("expected a leaf, got {other:?}"),
        }
    }
}
