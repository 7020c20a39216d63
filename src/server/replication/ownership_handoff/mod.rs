//! Ownership handoff (Dynamo §4.9; Riak's handoff, Cassandra's pending ranges):
//! moving partitions to their new replicas when the membership changes, without
//! losing or hiding an acknowledged write.
//!
//! # The protocol
//!
//! 1. The claimant records every partition whose replica set changes as
//!    *moving*, with the replicas that serve it until the handoff completes
//!    (`dynakv_membership::claim`). Reads keep going to those; writes go to
//!    them **and** to the new (pending) replicas, and are acknowledged by W of
//!    the serving replicas and W of the target ones, so whichever set serves
//!    the key holds W copies of every acknowledged write; a pending replica
//!    that is down adds no requirement of its own (see the coordinator's
//!    `WriteQuorum`).
//!    A replica that only moves up the partition's list is in transit the
//!    same way ([`Ring::promoted`]): with a bucket of fewer replicas than N it
//!    lacks that bucket's keys for its new place. Without such buckets it
//!    has nothing to fetch and reports its copy at once.
//! 2. Each pending replica **pulls** the partition from one serving replica,
//!    preferring one that is giving it up: batches of about
//!    [`BATCH_BYTES`] from one contiguous scan of the objects column family in
//!    token order, each merged with DVVSet sync (never overwriting what
//!    concurrent writes already put there). After every batch the receiver
//!    checkpoints the last key it merged, so a transfer resumes where it
//!    stopped after either side restarts, and never asks for what it already
//!    confirmed.
//! 3. A copy from one replica may lack a write acknowledged by the others
//!    (W < N), so the receiver then runs an anti-entropy exchange of the
//!    copied partitions with every other live serving replica (batched: one
//!    exchange per peer covers every partition copied meanwhile).
//! 4. It reports the copy complete in its gossiped member entry, naming the
//!    transit version. When every pending replica of a partition has, the
//!    claimant switches the partition to its new replicas.
//! 5. A node that handed a partition off (it served it in a transit that left
//!    it out) deletes its copy once the transit settled and every member
//!    serves exactly the same ring, so no coordinator still reads from it.
//!    A node never deletes a partition it did not hand off itself.
//!
//! A sender serves at most `transfer_limit` batches at once and caps its
//! outgoing handoff traffic at `transfer_rate_mb_s`; a receiver pulls at most
//! `transfer_limit` partitions at once.

mod handed_off;
mod receive;
mod send;
mod worker;

pub use worker::OwnershipHandoffWorker;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dynakv_ring::Ring;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::server::cluster::RingSnapshot;
use crate::server::core::Core;
use crate::server::replication::anti_entropy::AntiEntropy;

/// Records asked for per handoff batch.
pub const BATCH_BYTES: u32 = 1 << 20;
/// Largest batch a sender serves, whatever the receiver asks.
const MAX_BATCH_BYTES: usize = 8 << 20;
/// How long one batch may take (a throttled sender waits before answering).
const BATCH_TIMEOUT: Duration = Duration::from_secs(60);
/// Time between worker rounds when nothing wakes it.
const ROUND: Duration = Duration::from_millis(500);
/// Rounds between scans for partitions to delete.
const DROP_SCAN_ROUNDS: u64 = 4;

/// Where an interrupted transfer resumes (meta record per partition).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Checkpoint {
    /// The transit it belongs to.
    since: u64,
    /// Storage key of the last record merged.
    after: Option<Vec<u8>>,
    /// Keys merged so far.
    keys: u64,
    /// Record bytes merged so far.
    bytes: u64,
}

/// The meta record listing partitions handed off and not yet deleted.
pub const META_HANDED_OFF: &str = "handed_off";

fn checkpoint_name(partition: usize) -> String {
    format!("transfer/{partition}")
}

/// Where a transfer stands, as `/admin/status` shows it (`"receiving"`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferState {
    /// Waiting for a free `transfer_limit` slot.
    Queued,
    /// Copying batches from a serving replica.
    Receiving,
    /// Copied; running anti-entropy with the other serving replicas.
    CatchingUp,
    /// Failed; tried again shortly.
    Failed,
    /// Serving batches to a new replica.
    Sending,
    /// Every batch served to the new replica.
    Sent,
}

/// Why receiving a partition failed (it is tried again).
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// No live serving replica to copy from.
    #[error("no live serving replica to copy from")]
    NoSource,
    /// The ring changed while copying: the partition is judged again.
    #[error("the ring changed; transfer abandoned")]
    RingChanged,
    /// The source no longer serves the partition (its ring is newer).
    #[error("{0} no longer serves it")]
    NotServed(String),
    /// The source answered something else than a batch, or nothing.
    #[error("{from}: {message}")]
    Rpc {
        /// The serving replica copied from.
        from: String,
        /// What went wrong.
        message: String,
    },
    /// Storing a batch failed.
    #[error("storing a batch: {0}")]
    Storage(#[from] dynakv_storage::StorageError),
    /// The pull panicked (a broken invariant): logged, and tried again.
    #[error("the pull panicked: {0}")]
    Panicked(String),
}

impl TransferError {
    /// The `reason` label of `dynakv_transfer_failures_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            TransferError::NoSource => "no_source",
            TransferError::RingChanged => "ring_changed",
            TransferError::Storage(_) => "storage",
            TransferError::Panicked(_) => "panic",
            TransferError::NotServed(_) | TransferError::Rpc { .. } => "rpc",
        }
    }
}

/// One transfer, as `/admin/status` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct TransferView {
    /// The partition.
    pub partition: usize,
    /// Sending node.
    pub from: String,
    /// Receiving node.
    pub to: String,
    /// Keys done.
    pub keys: u64,
    /// Record bytes done.
    pub bytes: u64,
    /// Where it stands.
    pub state: TransferState,
}

/// Ownership handoff over the node's storage, cluster view and RPC
/// ([`Core`]), with anti-entropy for the catch-up after a copy; its progress
/// and limits.
pub struct Transfers {
    /// Storage, cluster view, RPC.
    pub core: Arc<Core>,
    /// The anti-entropy exchange a new replica runs after its copy.
    pub ae: Arc<AntiEntropy>,
    /// Inbound transfers by partition.
    inbound: Mutex<BTreeMap<usize, TransferView>>,
    /// Outbound batches recently served, by (partition, receiver).
    outbound: Mutex<HashMap<(usize, String), (TransferView, Instant)>>,
    /// Batches served at once.
    send_slots: Semaphore,
    /// The member table needs persisting (a completed copy).
    dirty: Mutex<bool>,
    /// Partitions this node handed off and may delete once safe (persisted).
    handed_off: Mutex<BTreeSet<u16>>,
}

impl Transfers {
    /// Ownership handoff over `core`, with the limits of its configuration.
    pub fn new(core: Arc<Core>, ae: Arc<AntiEntropy>) -> Transfers {
        let limit = core.config.transfer_limit;
        Transfers {
            core,
            ae,
            inbound: Mutex::new(BTreeMap::new()),
            outbound: Mutex::new(HashMap::new()),
            send_slots: Semaphore::new(limit),
            dirty: Mutex::new(false),
            handed_off: Mutex::new(BTreeSet::new()),
        }
    }

    /// Restores the partitions this node had handed off before a restart.
    pub fn restore_handed_off(&self, parts: BTreeSet<u16>) {
        *self.handed_off.lock() = parts;
    }

    /// In-flight and queued transfers, inbound then recent outbound.
    pub fn views(&self) -> Vec<TransferView> {
        let mut out: Vec<TransferView> = self.inbound.lock().values().cloned().collect();
        let mut outbound = self.outbound.lock();
        outbound.retain(|_, (_, at)| at.elapsed() < Duration::from_secs(30));
        let mut sending: Vec<TransferView> = outbound.values().map(|(v, _)| v.clone()).collect();
        sending.sort_by_key(|v| (v.partition, v.to.clone()));
        out.extend(sending);
        out
    }
}

/// A partition copied to this node, awaiting its catch-up and report.
pub(super) struct Copied {
    partition: usize,
    since: u64,
    source: String,
    started: Instant,
}

/// True if `me` receives partition `p` in its transit: a new (pending)
/// replica, or one moving up the list (`Ring::promoted`).
fn receives(ring: &Ring, p: usize, me: &str) -> bool {
    ring.pending(p).chain(ring.promoted(p)).any(|g| g == me)
}

/// What this node still has to do for the current ring change.
#[derive(Debug, Default)]
pub struct Pending {
    /// Partitions to receive (pending here, copy not reported yet).
    pub receive: BTreeSet<usize>,
    /// Partitions to send (served here, some new replica has no copy yet).
    pub send: BTreeSet<usize>,
}

impl Transfers {
    /// Partitions this node still has to send or receive in one ring
    /// version; empty when settled.
    pub fn pending_in(&self, snapshot: &RingSnapshot) -> Pending {
        let me = self.core.identity.name.as_str();
        let (ring, state) = (&snapshot.placement, &snapshot.state);
        let own = self.core.cluster.own();
        let mut pending = Pending::default();
        for (&p, transit) in &state.moving {
            let p = usize::from(p);
            if receives(ring, p, me) && own.received.get(&(p as u16)) != Some(&transit.since) {
                pending.receive.insert(p);
            }
            if transit.from.iter().any(|f| f == me) {
                pending.send.insert(p);
            }
        }
        pending
    }

    /// True while this node is still a pending replica of `p` for transit `since`.
    fn still_pending(&self, p: usize, since: u64) -> bool {
        let me = self.core.identity.name.as_str();
        let snapshot = self.core.cluster.snapshot();
        snapshot
            .state
            .moving
            .get(&(p as u16))
            .is_some_and(|t| t.since == since)
            && receives(&snapshot.placement, p, me)
    }

    /// Serving replicas to copy `p` from: live ones, those giving the partition
    /// up first (they are being drained), then by name.
    fn sources(&self, ring: &Ring, p: usize) -> Vec<String> {
        let me = self.core.identity.name.as_str();
        let mut sources: Vec<(bool, String)> = ring
            .replicas(p)
            .filter(|r| *r != me && !self.core.is_down(r))
            .map(|r| (ring.target_replicas(p).any(|t| t == r), r.to_string()))
            .collect();
        // With buckets of fewer replicas than N, only the partition's first
        // replicas hold every key: ask them in order.
        if !self.core.buckets.sets_n_val() {
            sources.sort();
        }
        sources.into_iter().map(|(_, r)| r).collect()
    }

    fn set_inbound(&self, p: usize, f: impl FnOnce(&mut TransferView)) {
        if let Some(v) = self.inbound.lock().get_mut(&p) {
            f(v);
        }
    }

    /// Reports at once the partitions this node only moves up in, when no
    /// bucket keeps fewer replicas than N (it already holds every key its
    /// new place needs) or no other serving replica is up to copy from.
    /// Returns them (nothing to pull).
    fn report_promotions(&self, snapshot: &RingSnapshot, pending: &Pending) -> BTreeSet<usize> {
        let short = self.core.buckets.sets_n_val();
        let me = self.core.identity.name.as_str();
        let ring = &snapshot.placement;
        let mut received = self.core.cluster.own().received;
        let mut reported = BTreeSet::new();
        for &p in &pending.receive {
            if ring.pending(p).any(|g| g == me) {
                continue;
            }
            // With buckets of fewer replicas than N, a node moving up pulls
            // their keys, unless no other serving replica is up to give
            // them: then there is nothing it could still get, and waiting
            // would hold the partition in transit for ever.
            if short && !self.sources(ring, p).is_empty() {
                continue;
            }
            if let Some(t) = snapshot.state.moving.get(&(p as u16)) {
                received.insert(p as u16, t.since);
                reported.insert(p);
            }
        }
        if !reported.is_empty() {
            self.inbound.lock().retain(|p, _| !reported.contains(p));
            self.core.cluster.set_received(received);
            *self.dirty.lock() = true;
        }
        reported
    }

    /// Forgets copies reported for transits that ended or changed.
    fn prune_received(&self) {
        let me = self.core.identity.name.as_str();
        let snapshot = self.core.cluster.snapshot();
        let (ring, state) = (&snapshot.placement, &snapshot.state);
        let own = self.core.cluster.own();
        let mut received = own.received.clone();
        received.retain(|&p, since| {
            state.moving.get(&p).is_some_and(|t| t.since == *since)
                && receives(ring, usize::from(p), me)
        });
        if received != own.received {
            self.core.cluster.set_received(received);
            *self.dirty.lock() = true;
        }
    }
}
