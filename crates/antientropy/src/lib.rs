//! Merkle-tree anti-entropy for dynakv (Dynamo §4.7).
//!
//! Hinted handoff repairs short failures; replicas that drifted apart for longer
//! (a lost disk, a long partition, expired hints) are reconciled by comparing
//! **Merkle trees**: a tree whose every node hashes what lies below it, so two
//! replicas prove a whole key range identical by comparing one hash, and find
//! their differences by descending only into subtrees whose hashes differ.
//!
//! # Shape
//!
//! One tree per key range (a ring partition). A node covers a slice of the
//! range's tokens and has 16 children, each covering a sixteenth. A node holding
//! at most [`LEAF_KEYS`] keys is a **leaf** that lists its exact `(key, digest)`
//! pairs, so a difference is pinned to the exact keys that differ instead of
//! dragging a whole coarse leaf range along (Cassandra's fixed-depth trees
//! overstream that way). The shape is a function of the key set alone, so equal
//! key sets give equal trees and equal roots.
//!
//! Trees are built from a sorted stream of `(token, key, digest)` — on a node, a
//! sequential scan of the digest column family, never a read of every value.
//!
//! # Diff
//!
//! [`Tree::node`] answers for any [`NodeId`] with a [`NodeView`]: empty, a leaf
//! listing, or the hashes of the children. [`compare`] takes the local and remote
//! views of one node and returns the child ids still to explore and the keys
//! found to differ. Driving it level by level (the node batches every frontier of
//! every partition into one request per level) exchanges a number of nodes that
//! grows with the number of differences times the depth, not with the key count.
//!
//! No I/O happens here: the node does the scanning and the messaging.

mod tree;

pub use tree::{Diff, Hash, LEAF_KEYS, NodeId, NodeView, Tree, compare};
