//! Gossip membership and failure detection for dynakv (Dynamo §4.8).
//!
//! There is no coordinator that knows who is in the cluster. Every node keeps a
//! **member table** and, every gossip interval, increments its own **heartbeat**
//! and sends its table to a few random peers, which keep the newer entry of every
//! member and answer with their own table (push-pull). News of a join, a leave or
//! an address change spreads to every node in O(log n) rounds.
//!
//! # Failure detection
//!
//! A node never asks "are you alive?". It watches each member's heartbeat
//! counter: a member whose counter has not risen for `failure_timeout_ms` is
//! `down` (`suspect` from half of it), and is `up` again as soon as it rises.
//! A paused process (SIGSTOP) stops incrementing, so it is detected like a dead
//! one. Liveness is each node's local opinion; it is never gossiped.
//!
//! # Incarnations
//!
//! Every entry carries a **generation** (the start time of the member's current
//! process) next to its heartbeat, and entries are ordered by (generation,
//! heartbeat). A restarted node's heartbeat starts again from zero, but with a
//! larger generation, so it is never mistaken for an older entry.
//!
//! # The ring
//!
//! The member table says who wants to be in the cluster; the **cluster ring**
//! ([`ClusterRing`], gossiped with the table) says who is, in which order they
//! joined, and which partitions are still being handed off. One member, the
//! claimant, advances it ([`claim`]); every node adopts the newest version.
//!
//! # No I/O
//!
//! [`Membership`] is a plain state machine: time comes in as an argument (ms),
//! randomness from an injected RNG, and messages go out as values. The node binary
//! moves them over the network; the tests here move them through a simulated
//! network with partitions, in microseconds and deterministically.

pub mod claim;
mod member;
mod ring;
mod state;

pub use member::{Entry, MemberInfo, MemberState, valid_weight, valid_zone};
pub use ring::{ClusterRing, RingStamp, Transit};
pub use state::{
    FORGET_AFTER_MS, GossipConfig, GossipMessage, MAX_MEMBERS, MemberView, Membership, Outgoing,
    Status, Transition,
};
