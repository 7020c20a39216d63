//! dynakv: a leaderless, replicated, persistent key-value store in the style of
//! Amazon's Dynamo.
//!
//! Read the crates in order to learn Dynamo: `dynakv-ring` (where keys live),
//! `dynakv-versioning` (how concurrent writes become siblings),
//! `dynakv-membership` (who is in the cluster and alive), `dynakv-storage` (how
//! a replica keeps its data), `dynakv-antientropy` (how replicas find what
//! differs), then this crate:
//!
//! * [`server`] — the node: RPC, gossip, the request coordinator, hinted
//!   handoff, anti-entropy, ownership handoff, the HTTP API (its module docs
//!   give the reading order);
//! * [`tools`] — the command-line tools around it (client commands, the
//!   local-cluster launcher, the load generator), all speaking to nodes
//!   through the `dynakv-client` library.
//!
//! `ARCHITECTURE.md` draws the request path and the background workers.

pub mod server;
pub mod tools;
