//! The node: everything that runs inside `dynakv node`.
//!
//! Read it in this order (each part builds on the ones before):
//!
//! 1. [`config`] — the validated settings, from defaults, a TOML file,
//!    environment and flags;
//! 2. [`metrics`] — what the node counts, exported at `/metrics`;
//! 3. [`rpc`] — the node-to-node protocol: framing, authentication,
//!    connections, the request and response types;
//! 4. [`cluster`] — gossip over RPC, and the ring every node computes from
//!    the cluster's agreed change log;
//! 5. [`node`] — the [`node::Node`] that holds storage, cluster view, RPC
//!    client and metrics, serves RPC requests, and starts the workers;
//! 6. [`coordinator`] — quorum reads and writes, sloppy quorum, read repair
//!    (the request path);
//! 7. [`handoff`] — hinted handoff: returning missed writes to recovered
//!    replicas;
//! 8. [`antientropy`] — Merkle-tree repair of replicas that drifted apart,
//!    and tombstone purge;
//! 9. [`transfer`] — ownership handoff when nodes join, leave or are removed;
//! 10. [`worker`] — every background loop as a named, supervised worker;
//! 11. [`http`] — the client-facing API.
//!
//! The coordinator, handoff, anti-entropy and transfer parts are `impl
//! Node` blocks: each reads and is tested on its own, but they reach storage,
//! the cluster view and RPC through [`node::Node`] rather than through narrow
//! interfaces of their own.

pub mod antientropy;
pub mod cluster;
pub mod config;
pub mod coordinator;
pub mod handoff;
pub mod http;
pub mod metrics;
pub mod node;
pub mod rpc;
pub mod transfer;
pub mod worker;
