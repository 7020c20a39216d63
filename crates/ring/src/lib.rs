//! Consistent hashing for dynakv (Dynamo §4.2, §6.2).
//!
//! # Tokens
//!
//! Every key is hashed to a 64-bit **ring token** ([`token`]). The token fixes
//! which partition holds the key, which replicas store it, and its place in the
//! on-disk order: the storage engine prefixes keys with their big-endian token, so
//! every partition is one contiguous scan of the disk.
//!
//! # Partitions: Dynamo's strategy 3
//!
//! The Dynamo paper (§6.2) compares three ways of splitting the ring:
//!
//! 1. T random tokens per node, ranges between consecutive tokens;
//! 2. T random tokens per node, Q equal-sized partitions;
//! 3. Q/S tokens per node, Q equal-sized partitions.
//!
//! dynakv uses **strategy 3**: the ring is cut into [`PARTITIONS`] (1,024) equal
//! partitions — the top 10 bits of the token — and partitions are assigned to
//! nodes. The paper found it the most balanced and the cheapest to operate, and it
//! suits us for the same reasons: a partition is the unit of placement, of
//! hand-off, and of anti-entropy (one Merkle tree per partition), its boundaries
//! never move, and ownership can be balanced exactly instead of statistically
//! (random tokens leave some nodes with 1/√T more than their share).
//!
//! # Assignment
//!
//! Every node must compute the same ring from the same membership, so the
//! assignment is a pure function of the cluster's **change log** — joins,
//! leaves and weight changes in the order the cluster agreed on
//! ([`Ring::replay`]; the log itself is kept by `dynakv-membership`). Wall
//! clocks play no part: a node whose clock is hours off computes the same ring.
//! Each step of the replay rebalances:
//!
//! * each node gets a **quota** of partitions proportional to its weight (largest
//!   remainder rounding, ties by name);
//! * every (partition, node) pair has a pseudo-random **score** (rendezvous
//!   hashing: a hash of the node name and partition number);
//! * pairs are taken in descending score order, and a partition goes to the first
//!   node whose quota is not yet full.
//!
//! A node's score for a partition does not depend on who else is in the cluster,
//! so a joining node takes the partitions where it scores highest, and the other
//! assignments mostly stay put (measured in the tests: at most 1.2 × 1/(S+1) of
//! the partitions move when a node joins or leaves S nodes).
//!
//! # Preference lists
//!
//! The replicas of a partition are the first N *distinct* nodes met walking
//! clockwise from it — nodes of zones not yet used first, when there are enough
//! zones — and the **extended preference list** continues the walk over every
//! other node: those are the fallbacks a sloppy quorum uses while replicas are
//! down (§4.6).
//!
//! # Partitions in transit
//!
//! When the membership changes, some partitions get new replicas. A new replica
//! must receive the partition before it serves it (Dynamo §4.9; Cassandra's
//! pending ranges, Riak's ownership handoff), so a [`Ring`] carries, next to the
//! target placement, the **serving** replicas of every partition still in
//! transit ([`Ring::with_serving`]): reads go to the serving replicas, writes to
//! them and to the [`pending`](Ring::pending) ones, and the partition switches
//! to its target once every pending replica holds a full copy.

mod ring;
mod token;

pub use ring::{Change, Move, NodeSpec, PARTITIONS, Ring, RingEvent, diff};
pub use token::{Token, TokenRange, token};
