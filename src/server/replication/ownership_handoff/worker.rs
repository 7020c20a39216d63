//! The ownership-handoff worker: each round starts pulls for the partitions
//! this node is pending for, catches copied ones up, drops what it handed
//! off, and stops a node that has left.

use std::collections::{BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;

use crate::server::metrics::Reason;
use crate::server::worker::{Next, Worker, WorkerHandle, panic_message};

use super::{
    Copied, DROP_SCAN_ROUNDS, ROUND, TransferError, TransferState, TransferView, Transfers,
};

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
        let reported = transfers.report_promotions(&snapshot, &pending);
        for &p in &pending.receive {
            if self.active.len() >= transfers.core.config.transfer_limit {
                break;
            }
            if reported.contains(&p)
                || self.active.contains(&p)
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
                // A pull that panics must still end as a pull (its
                // partition would otherwise hold a transfer slot for ever).
                let pulled = AssertUnwindSafe(n.receive_partition(p, since))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|panic| {
                        Err(TransferError::Panicked(panic_message(panic.as_ref())))
                    });
                (p, since, started, pulled)
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
