//! dynakv: a leaderless, replicated, persistent key-value store in the style of
//! Amazon's Dynamo.
//!
//! Read the crates in order to learn Dynamo: `dynakv-ring` (where keys live),
//! `dynakv-versioning` (how concurrent writes become siblings),
//! `dynakv-membership` (who is in the cluster and alive), `dynakv-storage` (how a
//! replica keeps its data), then this crate, the node itself:
//!
//! * [`config`] and [`cli`] — settings and the command line;
//! * [`rpc`] — the node-to-node protocol: framing, authentication, connections;
//! * [`cluster`] — gossip over RPC, the ring every node computes from it;
//! * [`coordinator`] — quorum reads and writes, sloppy quorum, read repair;
//! * [`handoff`] — hinted handoff: returning missed writes to recovered replicas;
//! * [`antientropy`] — Merkle-tree repair of replicas that drifted apart, and
//!   tombstone purge;
//! * [`transfer`] — ownership handoff: moving partitions to new replicas when
//!   nodes join, leave or are removed;
//! * [`http`] — the client-facing API;
//! * [`node`] and [`worker`] — wiring it together and running it, with every
//!   background loop as a named worker;
//! * [`dev`], [`client`] and [`bench`](mod@bench) — the local-cluster launcher, client
//!   commands and load generator.

pub mod antientropy;
pub mod bench;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod coordinator;
pub mod dev;
pub mod handoff;
pub mod http;
pub mod metrics;
pub mod node;
pub mod rpc;
pub mod transfer;
pub mod worker;
