//! The receiving side: a partition pulled in checkpointed batches from a
//! serving replica, then caught up with the others by anti-entropy and
//! reported complete (steps 2-4 of the protocol).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::server::cluster::rpc::{Request, Response};
use crate::server::metrics::Reason;
use crate::server::replication::anti_entropy::PassSummary;

use super::{
    BATCH_BYTES, BATCH_TIMEOUT, Checkpoint, Copied, TransferError, TransferState, Transfers,
    checkpoint_name,
};

impl Transfers {
    /// Copies partition `p` for transit `since` (steps 2 of the protocol).
    pub(super) async fn receive_partition(
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
            // Keys of buckets with fewer replicas than this node's place in
            // the partition's list are not this node's to keep.
            let items = if self.core.buckets.sets_n_val() {
                let me = self.core.me();
                let rank = self
                    .core
                    .cluster
                    .ring()
                    .target_replicas(p)
                    .position(|r| r == me)
                    .unwrap_or(0);
                items
                    .into_iter()
                    .filter(|(k, _)| self.core.buckets.n_val_of(k) > rank)
                    .collect()
            } else {
                items
            };
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
    pub(super) async fn catch_up_and_report(self: &Arc<Self>, copied: Vec<Copied>) -> Vec<Copied> {
        // The replicas caught up with and the number needed are of one ring
        // version; the report checks below that the transits are still those.
        let snapshot = self.core.cluster.snapshot();
        let ring = &snapshot.placement;
        // Per peer and tier (see `anti_entropy`): this node's place in the
        // target list against the peer's in the serving one.
        let tiered = self.core.buckets.sets_n_val();
        let me = self.core.me();
        let mut by_peer: BTreeMap<(String, u8), Vec<usize>> = BTreeMap::new();
        for c in &copied {
            for peer in self.sources(ring, c.partition) {
                if peer != c.source {
                    let tier = if tiered {
                        let mine = ring.target_replicas(c.partition).position(|r| r == me);
                        let theirs = ring.replicas(c.partition).position(|r| r == peer);
                        mine.unwrap_or(0).max(theirs.unwrap_or(0)) as u8
                    } else {
                        0
                    };
                    by_peer.entry((peer, tier)).or_default().push(c.partition);
                }
            }
        }
        let mut reached: HashMap<usize, usize> = HashMap::new();
        for ((peer, tier), parts) in by_peer {
            let mut summary = PassSummary::default();
            let mut differing = BTreeSet::new();
            match self
                .ae
                .exchange(&peer, &parts, tier, false, &mut summary, &mut differing)
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
            // A replica moving up the list serves the partition already:
            // its own copy counts as one of the serving replicas'.
            let own = usize::from(ring.replicas(p).any(|r| r == me));
            let have = 1 + own + reached.get(&p).copied().unwrap_or(0);
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
}
