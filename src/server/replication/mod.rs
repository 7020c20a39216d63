//! Replication: how a key's N copies are written, read, kept and moved
//! (Dynamo §4.5-§4.9). Each part works over a [`crate::server::core::Core`]
//! and knows nothing of the others, except ownership handoff, which runs
//! anti-entropy's exchange after a copy.
//!
//! * [`coordinator`] — the request path: quorum reads and writes, sloppy
//!   quorum, read repair, forwarding to a replica;
//! * [`group_commit`] — concurrent writes sharing one storage write;
//! * [`hinted_handoff`] — hints held for a replica that was down, delivered
//!   when it returns;
//! * [`anti_entropy`] — Merkle-tree comparison of replicas, repair of what
//!   differs, tombstone purge;
//! * [`ownership_handoff`] — partitions moved to their new replicas when the
//!   ring changes (joins, leaves, removes);
//! * [`ingest`] — bulk load written as SST files on every replica.

pub mod anti_entropy;
pub mod coordinator;
pub mod group_commit;
pub mod hinted_handoff;
pub mod ingest;
pub mod ownership_handoff;
