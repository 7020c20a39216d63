//! The request coordinator (Dynamo §4.5, §4.6): turns a client read or write
//! into operations on the key's replicas and decides when a quorum has answered.
//!
//! # Writes
//!
//! A write is coordinated by one of the key's N replicas — a node that is not one
//! forwards it, and a node that no longer serves the key refuses a forwarded
//! write — so the new version's dot is issued by a replica's actor.
//!
//! **Partitions in transit** (a node joined, left or was removed): the write
//! also goes to the partition's pending replicas (the new ones, still
//! receiving their copy), and is acknowledged once W of the *serving* replicas
//! and W of the *target* replicas hold it, a joint quorum (`WriteQuorum`).
//! A read at R of either set meets W of it, so a read before the partition
//! switches (served by the old replicas) and one after (served by the new
//! ones) both see the write. A pending replica adds no requirement of its own:
//! one that is down gets a hint, and blocks nothing while W of the target
//! set are up. So a joiner that dies mid-transfer never makes a key
//! unwritable while the cluster it was joining could take the write.
//!
//! The coordinator applies the write to its own copy (the DVVSet update: what
//! the client's context covers is superseded, the rest stays as siblings),
//! sends the resulting object to the other replicas, and answers once the
//! quorum acknowledged (itself included). The rest complete in the
//! background.
//!
//! **Sloppy quorum**: a replica that is down (by gossip) or fails to answer is
//! replaced by the next healthy node of the extended preference list, which holds
//! the object as a *hint* for it; that acknowledgement counts toward W. When no
//! spare node exists (three nodes, N = 3), the coordinator keeps the hint itself.
//! Either way, every replica that missed a write ends up with a durable hint
//! somewhere, delivered when it returns ([`crate::server::replication::hinted_handoff`]).
//!
//! **Strict quorum**: only the first N count. If fewer than W of them are
//! reachable the write is refused before anything is stored.
//!
//! A `503` means fewer than W acknowledged in time; the write may survive on
//! those that did and is not rolled back, as in every Dynamo-style store.
//!
//! # Reads
//!
//! A read asks R of the serving replicas (and, in sloppy mode, fallbacks when
//! too few replicas are up or answer), answers with the merge (DVVSet sync) of
//! their answers, and then, once the stragglers answered, writes the merge of
//! all answers back to every replica whose copy was stale or missing (read
//! repair). See [`Coordinator::coordinate_get`].
//!
//! # Where the code is
//!
//! This file holds the request types (`Quorum`, `RequestOptions`,
//! `CoordError`), where a key lives (`Placement`) and the `Coordinator`
//! itself; `write.rs` the write path (with the `WriteQuorum` rule),
//! `read.rs` the read path and read repair, `replica.rs` what this node
//! serves to peers as a replica.
//!
//! # Requests a node cannot place
//!
//! A node that has not joined a ring yet (started with seeds, still finding
//! them) answers `503 not_ready` instead of a quorum failure. A forwarded
//! write that every replica refuses because its ring is newer than the
//! forwarder's is sent again once the forwarder's ring changed, and otherwise
//! answered `503 ring_changing`: nothing was written. A ring that gives a
//! key no replica at all is a bug: logged, counted, answered `500`.
//!
//! A cluster with fewer members than N keeps every key on every member, and R and
//! W are capped at that count (SPEC §3).

mod listing;
mod read;
mod replica;
mod write;

pub use crate::server::error::CoordError;

pub use read::ReadHedge;
use write::Refused;

use std::sync::Arc;
use std::time::Duration;

use dynakv_ring::{Ring, token};

use crate::server::config::QuorumMode;
use crate::server::core::Core;
use crate::server::metrics::{Op, OpLabels};
use crate::server::replication::group_commit::GroupCommit;

/// Most actors a write may leave in a key's clock when its context names
/// actors the key never saw. A clock has one entry per (incarnation, key) that
/// coordinated a write, so real keys stay far below; only a crafted context
/// could reach it. Kept well within what a context token in an HTTP header can
/// carry (about 12 KB at this size), so every key's context stays usable.
pub const MAX_CLOCK_ACTORS: usize = 1024;

/// Most bytes of values one key may hold, its siblings together: an object
/// travels between nodes in one frame (`rpc::frame::MAX_FRAME_BYTES`, 96 MiB),
/// so a write that would make it larger is refused (413) rather than stored
/// where no replica, hint or handoff could carry it.
pub const MAX_OBJECT_BYTES: usize = 80 << 20;

/// A requested quorum size (`r=2`, `w=quorum`, …): the client library's
/// type, parsed here against the node's N ([`parse_quorum`]).
pub use dynakv_client::Quorum;

/// Parses `1..n`, `one`, `quorum` or `all`; `n` is the configured replica
/// count.
pub fn parse_quorum(s: &str, n: usize) -> Result<Quorum, String> {
    match s.parse::<Quorum>() {
        Ok(Quorum::Exactly(k)) if k > n => {
            Err(format!("must be 1..{n}, one, quorum or all, not {s:?}"))
        }
        Ok(q) => Ok(q),
        Err(_) => Err(format!("must be 1..{n}, one, quorum or all, not {s:?}")),
    }
}

/// Per-request options, with the node's defaults filled in.
#[derive(Clone, Copy, Debug)]
pub struct RequestOptions {
    /// R for reads, W for writes.
    pub quorum: Quorum,
    /// Sloppy or strict.
    pub mode: QuorumMode,
    /// How long to wait for the quorum.
    pub timeout: Duration,
    /// A write replaces every version its coordinator holds, whatever
    /// context the client sent (buckets with `last_write_wins`).
    pub replace: bool,
    /// The write adds this to a counter (Riak 1.4's): the coordinating
    /// replica merges the counter's siblings, adds it under its own actor
    /// and stores the result over everything it holds, all under the key's
    /// lock, so concurrent increments through one node never overwrite each
    /// other. The version passed with the write is not used.
    pub increment: Option<i64>,
}

/// Where a key lives under the current ring: the first `n` nodes of each
/// of its preference lists, `n` being its bucket's `n_val` (at most N).
struct Placement {
    /// The key's replica count: its bucket's `n_val`, at most the ring's N.
    n: usize,
    /// The replicas serving the key (the first N of its preference list, or,
    /// while its partition is handed off, the replicas it moves from).
    replicas: Vec<String>,
    /// New replicas still receiving the partition: they get every write (so
    /// their copy is complete when they take over) but serve no reads yet.
    pending: Vec<String>,
    /// The replicas the key is placed on once its partition's handoff
    /// completes (the serving ones when nothing moves).
    target: Vec<String>,
    /// The rest of the preference list, in order: fallbacks for a sloppy quorum.
    fallbacks: Vec<String>,
}

impl Placement {
    /// The placement of `key`, whose bucket keeps `n_val` replicas.
    fn of(ring: &Ring, key: &[u8], n_val: usize) -> Placement {
        let partition = Ring::partition_of(token(key));
        let n = n_val.clamp(1, ring.n());
        let replicas: Vec<String> = ring
            .replicas(partition)
            .take(n)
            .map(str::to_string)
            .collect();
        let target: Vec<String> = ring
            .target_replicas(partition)
            .take(n)
            .map(str::to_string)
            .collect();
        let pending: Vec<String> = target
            .iter()
            .filter(|t| !replicas.contains(t))
            .cloned()
            .collect();
        let fallbacks = ring
            .preference_list(partition)
            .filter(|n| !replicas.iter().any(|r| r == n) && !pending.iter().any(|p| p == n))
            .map(str::to_string)
            .collect();
        Placement {
            n,
            replicas,
            pending,
            target,
            fallbacks,
        }
    }
}

/// The request coordinator: quorum reads and writes over the node's storage,
/// cluster view and RPC ([`Core`]).
pub struct Coordinator {
    /// Storage, cluster view, RPC.
    pub core: Arc<Core>,
    /// When a read asks one more replica (speculative retry).
    pub hedge: ReadHedge,
    /// Shares storage writes between the local updates of concurrent
    /// coordinated writes.
    local_writes: GroupCommit<Refused>,
}

impl Coordinator {
    /// A coordinator over `core`.
    pub fn new(core: Arc<Core>) -> Coordinator {
        let batches = core.metrics.local_write_batches.clone();
        Coordinator {
            core,
            hedge: ReadHedge::default(),
            local_writes: GroupCommit::new(batches),
        }
    }
    fn quorum_failed(&self, op: Op) {
        self.core
            .metrics
            .quorum_failures
            .get_or_create(&OpLabels { op })
            .inc();
    }

    /// The answer to a request whose key the ring gives no replica: this
    /// node has no ring yet, or (a bug) the ring places nothing.
    fn unplaceable(&self, ring: &Ring, op: Op) -> CoordError {
        if ring.is_empty() {
            return CoordError::NotReady;
        }
        self.core.metrics.placement_errors.inc();
        tracing::error!(
            ?op,
            members = ring.nodes().len(),
            "the ring gives a key no replica"
        );
        CoordError::Internal("the ring gives this key no replica".into())
    }

    /// This node's own copy of `key` if it is one of the key's serving
    /// replicas: what a write it just coordinated left here (Riak's
    /// `returnbody` answers with the coordinating vnode's object, too).
    /// `None` on any other node, which reads back through a quorum.
    pub fn local_copy(&self, key: &[u8]) -> Option<dynakv_versioning::Object> {
        let ring = self.core.cluster.ring();
        let placement = Placement::of(&ring, key, self.core.buckets.n_val_of(key));
        if !placement.replicas.iter().any(|r| r == self.core.me()) {
            return None;
        }
        dynakv_storage::ObjectStore::get(&self.core.storage, key)
            .ok()
            .flatten()
    }

    /// True if this node keeps `key`'s partition under its ring (serving it,
    /// or receiving it as a new replica). A node with no ring yet (the ring
    /// founded a moment ago has not reached it) takes the word of the peer
    /// whose ring names it a replica, rather than refusing the writes of the
    /// cluster's first seconds.
    fn holds_key(&self, key: &[u8]) -> bool {
        let ring = self.core.cluster.ring();
        ring.is_empty() || ring.holds(self.core.me(), Ring::partition_of(token(key)))
    }
}
