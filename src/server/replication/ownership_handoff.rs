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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dynakv_membership::MemberState;
use dynakv_ring::{PARTITIONS, Ring};
use dynakv_storage::Storage;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::server::cluster::RingSnapshot;
use crate::server::cluster::rpc::{Request, Response};
use crate::server::core::Core;
use crate::server::metrics::Reason;
use crate::server::replication::anti_entropy::AntiEntropy;
use crate::server::replication::anti_entropy::PassSummary;
use crate::server::worker::{Next, Worker, WorkerHandle};

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
}

impl TransferError {
    /// The `reason` label of `dynakv_transfer_failures_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            TransferError::NoSource => "no_source",
            TransferError::RingChanged => "ring_changed",
            TransferError::Storage(_) => "storage",
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
struct Copied {
    partition: usize,
    since: u64,
    source: String,
    started: Instant,
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
            if ring.pending(p).any(|g| g == me)
                && own.received.get(&(p as u16)) != Some(&transit.since)
            {
                pending.receive.insert(p);
            }
            if transit.from.iter().any(|f| f == me) {
                pending.send.insert(p);
            }
        }
        pending
    }

    /// Serves one batch of a partition to a new replica.
    pub async fn on_transfer_fetch(
        self: &Arc<Self>,
        peer: String,
        partition: u16,
        after: Option<Bytes>,
        max_bytes: u32,
    ) -> Response {
        let p = usize::from(partition);
        if p >= PARTITIONS {
            return Response::Error(format!("no partition {p}"));
        }
        // Only a serving replica has the whole partition to give.
        if !self
            .core
            .cluster
            .ring()
            .replicas(p)
            .any(|r| r == self.core.identity.name)
        {
            return Response::NotReplica;
        }
        let Ok(_slot) = self.send_slots.try_acquire() else {
            return Response::Busy;
        };
        // About 100 ms of the rate budget per batch, so a throttled transfer
        // moves in small steps (and resumes close to where it stopped).
        let budget = self.core.handoff_budget.per_tenth_of_a_second();
        let limit = (max_bytes as usize)
            .min(budget)
            .clamp(4096, MAX_BATCH_BYTES);
        let scanned = self
            .core
            .blocking(move |core| {
                core.storage
                    .scan_objects(Ring::range_of(p), after.as_deref(), limit)
            })
            .await;
        let batch = match scanned {
            Ok(b) => b,
            Err(e) => return Response::Error(e.to_string()),
        };
        let bytes: usize = batch.items.iter().map(|(k, _, n)| k.len() + n).sum();
        self.core.handoff_budget.take(bytes).await;
        let keys = batch.items.len() as u64;
        let m = &self.core.metrics;
        m.transfer_keys_sent.inc_by(keys);
        m.transfer_bytes_sent.inc_by(bytes as u64);
        if batch.done {
            m.transfer_partitions_sent.inc();
        }
        {
            let mut outbound = self.outbound.lock();
            let (view, at) = outbound.entry((p, peer.clone())).or_insert_with(|| {
                (
                    TransferView {
                        partition: p,
                        from: self.core.identity.name.clone(),
                        to: peer,
                        keys: 0,
                        bytes: 0,
                        state: TransferState::Sending,
                    },
                    Instant::now(),
                )
            });
            view.keys += keys;
            view.bytes += bytes as u64;
            view.state = if batch.done {
                TransferState::Sent
            } else {
                TransferState::Sending
            };
            *at = Instant::now();
        }
        Response::TransferBatch {
            items: batch
                .items
                .into_iter()
                .map(|(k, o, _)| (Bytes::from(k), o))
                .collect(),
            resume_after: batch.resume_after.map(Bytes::from),
            done: batch.done,
        }
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
            && snapshot.placement.pending(p).any(|g| g == me)
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
        sources.sort();
        sources.into_iter().map(|(_, r)| r).collect()
    }

    fn set_inbound(&self, p: usize, f: impl FnOnce(&mut TransferView)) {
        if let Some(v) = self.inbound.lock().get_mut(&p) {
            f(v);
        }
    }

    /// Copies partition `p` for transit `since` (steps 2 of the protocol).
    async fn receive_partition(
        self: &Arc<Self>,
        p: usize,
        since: u64,
    ) -> Result<String, TransferError> {
        let name = checkpoint_name(p);
        let cp_name = name.clone();
        let mut cp: Checkpoint = self
            .core
            .blocking(move |core| core.storage.get_meta::<Checkpoint>(&cp_name))
            .await
            .ok()
            .flatten()
            .filter(|c| c.since == since)
            .unwrap_or(Checkpoint {
                since,
                ..Checkpoint::default()
            });
        let sources = self.sources(&self.core.cluster.ring(), p);
        let Some(source) = sources.first().cloned() else {
            return Err(TransferError::NoSource);
        };
        let addr = self
            .core
            .cluster
            .rpc_addr(&source)
            .ok_or_else(|| TransferError::Rpc {
                from: source.clone(),
                message: "has no address".into(),
            })?;
        self.set_inbound(p, |v| {
            v.from = source.clone();
            v.keys = cp.keys;
            v.bytes = cp.bytes;
            v.state = TransferState::Receiving;
        });
        if cp.after.is_some() {
            tracing::info!(partition = p, from = %source, keys = cp.keys, "resuming a transfer from its checkpoint");
        }
        loop {
            if !self.still_pending(p, since) {
                return Err(TransferError::RingChanged);
            }
            let request = Request::TransferFetch {
                partition: p as u16,
                after: cp.after.clone().map(Bytes::from),
                max_bytes: BATCH_BYTES,
            };
            let (items, resume_after, done) = match self
                .core
                .rpc
                .call(addr, Some(&source), request, BATCH_TIMEOUT)
                .await
            {
                Ok(Response::TransferBatch {
                    items,
                    resume_after,
                    done,
                }) => (items, resume_after, done),
                Ok(Response::Busy) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Ok(Response::NotReplica) => return Err(TransferError::NotServed(source)),
                Ok(other) => {
                    return Err(TransferError::Rpc {
                        from: source,
                        message: format!("unexpected answer {other:?}"),
                    });
                }
                Err(e) => {
                    return Err(TransferError::Rpc {
                        from: source,
                        message: e.to_string(),
                    });
                }
            };
            if items.is_empty() && !done && resume_after.is_none() {
                return Err(TransferError::Rpc {
                    from: source,
                    message: "sent a batch that makes no progress".into(),
                });
            }
            let keys = items.len() as u64;
            let bytes: u64 = items
                .iter()
                .map(|(k, o)| (k.len() + dynakv_storage::codec::encode(o).len()) as u64)
                .sum();
            cp.after = resume_after.map(|b| b.to_vec()).or(cp.after);
            cp.keys += keys;
            cp.bytes += bytes;
            let save = cp.clone();
            let cp_name = name.clone();
            self.core
                .blocking(move |core| -> Result<(), dynakv_storage::StorageError> {
                    core.storage.merge_batch(&items)?;
                    // The checkpoint follows the merges: after a crash the batch is
                    // at worst merged again, which changes nothing.
                    core.storage.put_meta_lazy(&cp_name, &save)
                })
                .await?;
            self.core.metrics.transfer_keys_received.inc_by(keys);
            self.core.metrics.transfer_bytes_received.inc_by(bytes);
            self.set_inbound(p, |v| {
                v.keys = cp.keys;
                v.bytes = cp.bytes;
            });
            if done {
                break;
            }
        }
        let cp_name = name;
        let _ = self
            .core
            .blocking(move |core| core.storage.delete_meta(&cp_name))
            .await;
        self.set_inbound(p, |v| v.state = TransferState::CatchingUp);
        tracing::debug!(partition = p, from = %source, keys = cp.keys, bytes = cp.bytes, "partition copied");
        Ok(source)
    }

    /// Step 3 of the protocol for a set of copied partitions: one anti-entropy
    /// exchange per other live serving replica covers all of them (identical
    /// trees cost one round trip). A partition is reported complete only if
    /// its copy's source and the replicas it caught up with number at least
    /// `serving - W + 1`, so they include a replica of every write a quorum
    /// acknowledged. Returns the partitions that must try again.
    async fn catch_up_and_report(self: &Arc<Self>, copied: Vec<Copied>) -> Vec<Copied> {
        // The replicas caught up with and the number needed are of one ring
        // version; the report checks below that the transits are still those.
        let snapshot = self.core.cluster.snapshot();
        let ring = &snapshot.placement;
        let mut by_peer: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for c in &copied {
            for peer in self.sources(ring, c.partition) {
                if peer != c.source {
                    by_peer.entry(peer).or_default().push(c.partition);
                }
            }
        }
        let mut reached: HashMap<usize, usize> = HashMap::new();
        for (peer, parts) in by_peer {
            let mut summary = PassSummary::default();
            let mut differing = BTreeSet::new();
            match self
                .ae
                .exchange(&peer, &parts, false, &mut summary, &mut differing)
                .await
            {
                Ok(()) => {
                    for p in parts {
                        *reached.entry(p).or_default() += 1;
                    }
                    if summary.keys_repaired > 0 {
                        tracing::info!(%peer, keys = summary.keys_repaired, "handoff catch-up repaired keys the copy lacked");
                    }
                }
                Err(e) => {
                    tracing::warn!(%peer, partitions = parts.len(), error = %e, "handoff catch-up with a replica failed")
                }
            }
        }
        let mut received = self.core.cluster.own().received;
        let mut retry = Vec::new();
        let mut reported = 0;
        let now = self.core.cluster.snapshot();
        for c in copied {
            let p = c.partition;
            if !self.still_pending(p, c.since) {
                self.inbound.lock().remove(&p);
                continue;
            }
            // A transit that changed during the catch-up (a ring from another
            // claimant's history can reuse a version number) has other
            // serving replicas than the ones counted: judge it again.
            if now.state.moving.get(&(p as u16)) != snapshot.state.moving.get(&(p as u16)) {
                retry.push(c);
                continue;
            }
            let serving = ring.replicas(p).count();
            let needed = serving
                .saturating_sub(self.core.config.w.min(serving))
                .saturating_add(1);
            let have = 1 + reached.get(&p).copied().unwrap_or(0);
            if have < needed {
                self.core
                    .metrics
                    .transfer_failures
                    .get_or_create(&Reason::from("catch_up"))
                    .inc();
                retry.push(c);
                continue;
            }
            received.insert(p as u16, c.since);
            reported += 1;
            self.core.metrics.transfer_partitions_received.inc();
            self.core
                .metrics
                .transfer_duration
                .observe(c.started.elapsed().as_secs_f64());
            self.inbound.lock().remove(&p);
        }
        self.core.cluster.set_received(received);
        *self.dirty.lock() = true;
        if reported > 0 {
            tracing::info!(
                partitions = reported,
                "partitions received and reported complete"
            );
        }
        if !retry.is_empty() {
            tracing::warn!(
                partitions = retry.len(),
                "handoff catch-up reached too few replicas; retrying"
            );
        }
        retry
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
                && ring.pending(usize::from(p)).any(|g| g == me)
        });
        if received != own.received {
            self.core.cluster.set_received(received);
            *self.dirty.lock() = true;
        }
    }

    /// Notes the partitions this node is handing off (it serves them in a
    /// transit whose target leaves it out): only those may be deleted later.
    async fn note_handoffs(self: &Arc<Self>) {
        let me = self.core.identity.name.as_str();
        let snapshot = self.core.cluster.snapshot();
        let (ring, state) = (&snapshot.placement, &snapshot.state);
        let mut giving: BTreeSet<u16> = state
            .moving
            .iter()
            .filter(|(p, t)| {
                t.from.iter().any(|f| f == me)
                    && !ring.target_replicas(usize::from(**p)).any(|r| r == me)
            })
            .map(|(&p, _)| p)
            .collect();
        let before = self.handed_off.lock().clone();
        giving.extend(before.iter().copied());
        if giving != before {
            *self.handed_off.lock() = giving.clone();
            let _ = self
                .core
                .blocking(move |core| core.storage.put_meta_lazy(META_HANDED_OFF, &giving))
                .await;
        }
    }

    /// Deletes partitions this node handed off, once their transit settled
    /// and every member — down ones included — serves exactly this ring, so no
    /// coordinator still reads from or writes to this copy. Partitions this
    /// node did not hand off itself (it adopted a ring from a different
    /// history, say) are never deleted here.
    async fn drop_handed_off(self: &Arc<Self>) {
        // The placement judged is the one every member confirmed serving.
        let snapshot = self.core.cluster.snapshot();
        if !self.core.cluster.all_members_at(snapshot.stamp) {
            return;
        }
        let ring = &snapshot.placement;
        let me = self.core.identity.name.clone();
        let candidates: Vec<usize> = self
            .handed_off
            .lock()
            .iter()
            .map(|&p| usize::from(p))
            .filter(|&p| !ring.is_moving(p) && !ring.holds(&me, p))
            .collect();
        if candidates.is_empty() {
            return;
        }
        let judged = snapshot.stamp;
        let dropped = self
            .core
            .blocking(move |core| {
                // A ring change while partitions are dropped may hand one of
                // them back to this core, and its writes would land here just
                // before the delete. Checking before each partition narrows
                // that window to one partition's delete (what is left is
                // judged again, against the new ring, in a later round). It
                // does not close it, and need not for safety: a write to a
                // pending replica needs W acknowledgements besides it, and
                // the pull that makes this core a replica again copies them.
                drop_partitions(&core.storage, candidates, || {
                    core.cluster.snapshot().stamp == judged
                })
            })
            .await;
        let remaining = {
            let mut h = self.handed_off.lock();
            for (p, _) in &dropped {
                h.remove(&(*p as u16));
            }
            h.clone()
        };
        let _ = self
            .core
            .blocking(move |core| core.storage.put_meta_lazy(META_HANDED_OFF, &remaining))
            .await;
        for (p, keys) in dropped {
            self.core.metrics.partitions_dropped.inc();
            self.core.metrics.keys_dropped.inc_by(keys);
            tracing::info!(
                partition = p,
                keys,
                "partition handed off; local copy deleted"
            );
        }
    }

    /// A leaving node that holds nothing any more has left.
    async fn finish_leaving(self: &Arc<Self>) -> bool {
        if self.core.cluster.own_state() == MemberState::Removed {
            tracing::warn!("an operator removed this node from the cluster");
            self.core.persist_members().await;
            return true;
        }
        if self.core.cluster.own_state() != MemberState::Leaving {
            return false;
        }
        // Hints held here for others are delivered (or rehomed) first.
        if self.core.storage.stats().hints > 0 {
            return false;
        }
        let ring = self.core.cluster.ring();
        let me = self.core.identity.name.as_str();
        if ring.is_member(me) || (0..PARTITIONS).any(|p| ring.holds(me, p)) {
            return false;
        }
        self.core.cluster.set_left();
        self.core.persist_members().await;
        tracing::info!("every partition handed off: this node has left the cluster");
        true
    }
}

/// Deletes each candidate partition's local copy, stopping at the first one
/// for which `still_judged` says the ring it was judged against has changed.
/// Returns the partitions dropped, each with the number of keys deleted.
fn drop_partitions(
    storage: &Storage,
    candidates: Vec<usize>,
    still_judged: impl Fn() -> bool,
) -> Vec<(usize, u64)> {
    let mut dropped = Vec::new();
    for p in candidates {
        if !still_judged() {
            tracing::info!(
                partition = p,
                "ring changed while dropping handed-off partitions; the rest wait"
            );
            break;
        }
        match storage.drop_range(Ring::range_of(p)) {
            Ok(keys) => dropped.push((p, keys)),
            Err(e) => tracing::error!(partition = p, error = %e, "cannot drop a partition"),
        }
    }
    dropped
}

/// A partition copy in flight: the partition, its transit, when it started,
/// and how it ended.
type Pull = (usize, u64, Instant, Result<String, TransferError>);

/// Ownership handoff (Dynamo §4.9): starts pulls for partitions this node is
/// pending for, catches copied ones up and reports them, drops partitions it
/// handed off, and stops a node that has left.
pub struct OwnershipHandoffWorker {
    transfers: Arc<Transfers>,
    /// Pulls in flight.
    running: tokio::task::JoinSet<Pull>,
    /// Copied partitions awaiting their catch-up and report.
    copied: Vec<Copied>,
    catch_up_retry_at: Instant,
    /// Partitions being pulled.
    active: BTreeSet<usize>,
    round: u64,
    /// When this node reported itself gone.
    left_at: Option<Instant>,
    /// Partitions whose pull failed, and when to try again.
    retry_at: HashMap<usize, Instant>,
    /// A pull that ended while waiting for work, handled by the next round.
    ended: Option<Result<Pull, tokio::task::JoinError>>,
}

impl OwnershipHandoffWorker {
    /// An ownership-handoff worker over `transfers`.
    pub fn new(transfers: Arc<Transfers>) -> OwnershipHandoffWorker {
        OwnershipHandoffWorker {
            transfers,
            running: tokio::task::JoinSet::new(),
            copied: Vec::new(),
            catch_up_retry_at: Instant::now(),
            active: BTreeSet::new(),
            round: 0,
            left_at: None,
            retry_at: HashMap::new(),
            ended: None,
        }
    }

    /// A pull that ended: copied (to catch up), or failed (tried again).
    fn pulled(&mut self, status: &WorkerHandle, (p, since, started, result): Pull) {
        let transfers = &self.transfers;
        self.active.remove(&p);
        match result {
            Ok(source) => self.copied.push(Copied {
                partition: p,
                since,
                source,
                started,
            }),
            Err(e) => {
                tracing::warn!(partition = p, error = %e, "transfer failed; retrying");
                status.error(format!("partition {p}: {e}"));
                transfers
                    .core
                    .metrics
                    .transfer_failures
                    .get_or_create(&Reason::from(e.kind()))
                    .inc();
                transfers.set_inbound(p, |v| v.state = TransferState::Failed);
                self.retry_at
                    .insert(p, Instant::now() + Duration::from_millis(500));
            }
        }
    }
}

impl Worker for OwnershipHandoffWorker {
    const NAME: &'static str = "ownership_handoff";

    /// A ring change, a pull that ended, or the next round.
    async fn wait_for_work(&mut self) {
        tokio::select! {
            _ = self.transfers.core.ring_changed.notified() => {}
            Some(done) = self.running.join_next(), if !self.running.is_empty() => {
                self.ended = Some(done);
            }
            _ = tokio::time::sleep(ROUND) => {}
        }
    }

    async fn work(&mut self, status: &WorkerHandle) -> Next {
        if let Some(Ok(done)) = self.ended.take() {
            self.pulled(status, done);
        }
        self.round += 1;
        status.busy();
        let transfers = Arc::clone(&self.transfers);
        transfers.prune_received();
        // One ring version for the whole round: the partitions pending and
        // the transits they are fetched for.
        let snapshot = transfers.core.cluster.snapshot();
        let pending = transfers.pending_in(&snapshot);
        transfers
            .core
            .metrics
            .transfers_pending
            .set((pending.receive.len() + pending.send.len()) as i64);
        transfers
            .core
            .metrics
            .ring_version
            .set(snapshot.stamp.version as i64);
        {
            let mut inbound = transfers.inbound.lock();
            inbound.retain(|p, _| pending.receive.contains(p));
            // Copied partitions are still pending until reported; keep them out
            // of the queue.
            for &p in &pending.receive {
                inbound.entry(p).or_insert_with(|| TransferView {
                    partition: p,
                    from: String::new(),
                    to: transfers.core.identity.name.clone(),
                    keys: 0,
                    bytes: 0,
                    state: TransferState::Queued,
                });
            }
        }
        let state = &snapshot.state;
        for &p in &pending.receive {
            if self.active.len() >= transfers.core.config.transfer_limit {
                break;
            }
            if self.active.contains(&p)
                || self.copied.iter().any(|c| c.partition == p)
                || self.retry_at.get(&p).is_some_and(|t| *t > Instant::now())
            {
                continue;
            }
            let Some(since) = state.moving.get(&(p as u16)).map(|t| t.since) else {
                continue;
            };
            self.active.insert(p);
            let n = Arc::clone(&transfers);
            self.running.spawn(async move {
                let started = Instant::now();
                (p, since, started, n.receive_partition(p, since).await)
            });
        }
        // Catch up in batches: when the pulls are done, or enough have piled up.
        if !self.copied.is_empty()
            && (self.active.is_empty() || self.copied.len() >= 128)
            && Instant::now() >= self.catch_up_retry_at
        {
            self.copied = transfers
                .catch_up_and_report(std::mem::take(&mut self.copied))
                .await;
            if !self.copied.is_empty() {
                self.catch_up_retry_at = Instant::now() + Duration::from_secs(1);
            }
        }
        if std::mem::take(&mut *transfers.dirty.lock()) {
            transfers.core.persist_members().await;
        }
        transfers.note_handoffs().await;
        if self.round.is_multiple_of(DROP_SCAN_ROUNDS) {
            transfers.drop_handed_off().await;
        }
        match self.left_at {
            None => {
                if transfers.finish_leaving().await {
                    self.left_at = Some(Instant::now());
                }
            }
            // Gossip the departure for a few rounds, then stop the process.
            Some(t)
                if t.elapsed()
                    > Duration::from_millis(transfers.core.config.gossip_interval_ms * 5) =>
            {
                tracing::info!("stopping: this node has left the cluster");
                transfers.core.stop.cancel();
                return Next::Done;
            }
            Some(_) => {}
        }
        if self.active.is_empty() {
            status.idle();
        }
        Next::Wait
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use dynakv_ring::token;
    use dynakv_storage::{ObjectStore, StorageConfig};
    use dynakv_versioning::{ActorId, Version, VersionVector};

    use super::*;

    /// One key in each of two partitions.
    fn keys_in_two_partitions() -> [(String, usize); 2] {
        let first = ("k0".to_string(), Ring::partition_of(token(b"k0")));
        let second = (0..)
            .map(|i| format!("k{i}"))
            .map(|k| {
                let p = Ring::partition_of(token(k.as_bytes()));
                (k, p)
            })
            .find(|(_, p)| *p != first.1)
            .expect("some key falls in another partition");
        [first, second]
    }

    #[test]
    fn dropping_stops_at_the_first_partition_judged_against_an_old_ring() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(&StorageConfig {
            path: dir.path().to_path_buf(),
            block_cache_mb: 8,
            sync_writes: false,
        })
        .expect("open");
        let keys = keys_in_two_partitions();
        for (k, _) in &keys {
            storage
                .update(k.as_bytes(), |o| -> Result<(), ()> {
                    o.update(
                        &VersionVector::new(),
                        ActorId(1),
                        Version::value(b"v".to_vec(), "", 0),
                    );
                    Ok(())
                })
                .expect("storage")
                .expect("update");
        }
        // The ring changes after the first partition is dropped.
        let checks = Cell::new(0);
        let dropped = drop_partitions(&storage, vec![keys[0].1, keys[1].1], || {
            checks.set(checks.get() + 1);
            checks.get() == 1
        });
        assert_eq!(dropped, vec![(keys[0].1, 1)]);
        assert!(storage.get(keys[0].0.as_bytes()).expect("get").is_none());
        assert!(
            storage.get(keys[1].0.as_bytes()).expect("get").is_some(),
            "a partition judged against an old ring was dropped"
        );
        // With the ring unchanged, both go.
        let dropped = drop_partitions(&storage, vec![keys[1].1], || true);
        assert_eq!(dropped, vec![(keys[1].1, 1)]);
        assert!(storage.get(keys[1].0.as_bytes()).expect("get").is_none());
    }
}
