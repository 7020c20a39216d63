//! Hinted handoff (Dynamo §4.6): writes a replica missed while it was down are
//! held as hints — on a fallback node or on the coordinator — and delivered once
//! gossip shows the replica `up` again.
//!
//! The worker delivers each target's hints in ring order, in batches, a bounded
//! number in flight at once and paced by the node's handoff byte budget
//! (`transfer_rate_mb_s`, shared with ownership handoff), so a returning node
//! is not flooded and client traffic keeps its latency. It deletes a hint only
//! after the target acknowledged it — and only if no newer hinted write
//! arrived for the key meanwhile. Delivery is a DVVSet
//! merge on the target, so redelivery after a crash is harmless and the worker is
//! resumable: hints live in RocksDB. Hints older than `hint_window_s` are dropped
//! (counted as expired); anti-entropy repairs those keys. A hint's age counts
//! from the last write merged into it; a hint for a target that is up is
//! delivered before its age is considered; and delivery walks each target's
//! hints with a cursor, so one hint that keeps failing does not block the
//! others.
//!
//! A hint whose target no longer holds the key's partition (the target left,
//! was removed, or the partition was handed off meanwhile) is **rehomed**: sent
//! to the replicas that hold the partition now, then deleted.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dynakv_membership::Status;
use dynakv_ring::{Ring, token};
use dynakv_storage::{Hint, HintId, ObjectStore, StorageError};
use dynakv_versioning::Object;
use futures::{StreamExt, stream};

use crate::server::clock::now_ms;
use crate::server::cluster::rpc::{Request, Response};
use crate::server::core::Core;
use crate::server::worker::{Next, Worker, WorkerHandle};

/// Time between delivery rounds, unless a target is catching up.
const ROUND: Duration = Duration::from_millis(250);
/// Hints read per target per round.
const BATCH: usize = 500;
/// Time between sweeps that expire the hints of targets still down.
const EXPIRY_SWEEP: Duration = Duration::from_secs(60);

/// Hinted handoff (Dynamo §4.6): delivers the hints this node holds to their
/// targets once they are up again, rehomes hints whose target no longer
/// holds the key, and expires hints older than `hint_window_s`.
pub struct HintedHandoffWorker {
    core: Arc<Core>,
    last_sweep: tokio::time::Instant,
    /// Per target, where the next batch starts: one hint that keeps failing
    /// does not hold up the ones behind it.
    cursors: HashMap<String, HintId>,
    /// Targets that are up, took hints in their last batch and have more
    /// waiting: they get their next batch at once (the handoff budget paces
    /// delivery, not the round), and no other target is looked at meanwhile.
    catching_up: BTreeSet<String>,
}

impl HintedHandoffWorker {
    /// A hinted-handoff worker over `core`.
    pub fn new(core: Arc<Core>) -> HintedHandoffWorker {
        HintedHandoffWorker {
            core,
            last_sweep: tokio::time::Instant::now(),
            cursors: HashMap::new(),
            catching_up: BTreeSet::new(),
        }
    }
}

impl Worker for HintedHandoffWorker {
    const NAME: &'static str = "hinted_handoff";

    async fn wait_for_work(&mut self) {
        tokio::time::sleep(ROUND).await;
    }

    async fn work(&mut self, status: &WorkerHandle) -> Next {
        status.idle();
        let core = &self.core;
        let sweep = self.last_sweep.elapsed() >= EXPIRY_SWEEP;
        let targets: Vec<String> = if self.catching_up.is_empty() || sweep {
            match core.blocking(|n| n.storage.hint_targets()).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(error = %e, "cannot list hints");
                    status.error(format!("cannot list hints: {e}"));
                    return Next::Wait;
                }
            }
        } else {
            self.catching_up.iter().cloned().collect()
        };
        if sweep {
            self.last_sweep = tokio::time::Instant::now();
        }
        self.catching_up.clear();
        if targets.is_empty() {
            return Next::Wait;
        }
        status.busy();
        for target in targets {
            let liveness = core.cluster.status(&target);
            let up = matches!(liveness, Status::Up | Status::Leaving);
            let gone = liveness == Status::Left || core.cluster.rpc_addr(&target).is_none();
            if up || gone || sweep {
                let after = self.cursors.remove(&target);
                let (next, progress) = deliver(core, &target, up, gone, after).await;
                if let Some(next) = next {
                    if up && progress {
                        self.catching_up.insert(target.clone());
                    }
                    self.cursors.insert(target, next);
                }
            }
        }
        status.idle();
        if self.catching_up.is_empty() {
            Next::Wait
        } else {
            Next::AtOnce
        }
    }
}

/// Sends a hint to the nodes that hold its key's partition now (other than its
/// old target), merging it here if this node is one. True once all took it.
async fn rehome(core: &Arc<Core>, target: &str, hint: &Hint) -> bool {
    let ring = core.cluster.ring();
    let p = Ring::partition_of(token(&hint.key));
    let holders: Vec<String> = ring
        .replicas(p)
        .chain(ring.pending(p))
        .filter(|h| *h != target)
        .map(str::to_string)
        .collect();
    if holders.is_empty() {
        return false;
    }
    for holder in holders {
        let ok = if holder == core.identity.name {
            let (k, o) = (hint.key.clone(), hint.object.clone());
            core.blocking(move |n| n.storage.merge(&k, &o))
                .await
                .is_ok()
        } else if core.is_down(&holder) {
            false
        } else if let Some(addr) = core.cluster.rpc_addr(&holder) {
            let request = Request::ReplicaWrite {
                key: hint.key.clone().into(),
                object: hint.object.clone(),
                hint_for: None,
            };
            matches!(
                core.rpc
                    .call(addr, Some(&holder), request, Duration::from_secs(5))
                    .await,
                Ok(Response::Ack)
            )
        } else {
            false
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Deletes a hint once delivered (only if unchanged since it was read, when
/// `delivered` is given) or expired; true if it was deleted.
async fn forget(
    core: &Arc<Core>,
    id: HintId,
    delivered: Option<dynakv_versioning::Object>,
) -> bool {
    core.blocking(move |n| n.storage.delete_hint(&id, delivered.as_ref()))
        .await
        .unwrap_or(false)
}

/// Failed deliveries, with no success answered since, after which a target
/// counts as unreachable for the rest of the round (sends already in flight
/// finish).
const MAX_FAILURES: usize = 3;

/// Hints sent to one target at once. One at a time, each waited for its
/// answer and then for its own deletion, delivery ran at about 1,600 hints a
/// second: a returning node took 97 s to get what it missed in 5 s of writes.
/// The node's handoff byte budget still paces them.
const HINTS_IN_FLIGHT: usize = 32;

/// Sends hints to `target` at `addr`, [`HINTS_IN_FLIGHT`] at a time, each
/// once the handoff budget has room for it; starts no more after
/// [`MAX_FAILURES`] failures with no success between (the target is up but
/// not taking hints now: the rest wait for a later round, and nothing expires
/// while it could take them). Returns the hints the target acknowledged, with
/// the object each carried.
async fn send_hints(
    core: &Arc<Core>,
    target: &str,
    addr: std::net::SocketAddr,
    hints: Vec<(HintId, Hint)>,
) -> Vec<(HintId, Object)> {
    let failures = AtomicUsize::new(0);
    let failures = &failures;
    stream::iter(hints)
        .map(|(id, hint)| async move {
            if failures.load(Ordering::Relaxed) >= MAX_FAILURES {
                return None;
            }
            core.handoff_budget.take(hint_bytes(&hint)).await;
            let request = Request::ReplicaWrite {
                key: hint.key.into(),
                object: hint.object.clone(),
                hint_for: None,
            };
            match core
                .rpc
                .call(addr, Some(target), request, Duration::from_secs(5))
                .await
            {
                Ok(Response::Ack) => {
                    failures.store(0, Ordering::Relaxed);
                    Some((id, hint.object))
                }
                other => {
                    tracing::debug!(%target, answer = ?other.err(), "hint delivery failed; retrying later");
                    failures.fetch_add(1, Ordering::Relaxed);
                    None
                }
            }
        })
        .buffer_unordered(HINTS_IN_FLIGHT)
        .filter_map(|sent| async move { sent })
        .collect()
        .await
}

/// About the bytes a hint puts on the wire: its key and its siblings' values.
fn hint_bytes(hint: &Hint) -> usize {
    let values: usize = hint
        .object
        .values()
        .map(|v| v.data.as_ref().map_or(0, |d| d.len()))
        .sum();
    hint.key.len() + values
}

/// One batch for one target, from the hint after `after`: deliver (when
/// `up`; before any expiry is considered, so a hint is never dropped while its
/// target could take it), rehome (when the target is `gone` or no longer
/// holds a key), or expire. Returns where the next batch starts (`None`: from
/// the first hint again), and whether any hint was delivered or expired.
async fn deliver(
    core: &Arc<Core>,
    target: &str,
    up: bool,
    gone: bool,
    after: Option<HintId>,
) -> (Option<HintId>, bool) {
    let t = target.to_string();
    let batch: Vec<(HintId, Result<Hint, StorageError>)> = match core
        .blocking(move |n| n.storage.hints_after(&t, after.as_ref(), BATCH))
        .await
    {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, %target, "cannot read hints");
            return (None, false);
        }
    };
    let full = batch.len() == BATCH;
    let mut last: Option<HintId> = None;
    let window_ms = core.config.hint_window_s.saturating_mul(1000);
    let ring = core.cluster.ring();
    let (mut delivered, mut expired) = (0u64, 0u64);
    // Hints for the target itself, sent below, many at a time.
    let mut to_send: Vec<(HintId, Hint)> = Vec::new();
    for (id, hint) in batch {
        last = Some(id.clone());
        let hint = match hint {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, %target, "dropping a corrupt hint; anti-entropy repairs the key");
                forget(core, id, None).await;
                continue;
            }
        };
        let expired_now = now_ms().saturating_sub(hint.created_ms) > window_ms;
        let held = ring.holds(target, Ring::partition_of(token(&hint.key)));
        if gone || !held {
            if rehome(core, target, &hint).await {
                if forget(core, id, Some(hint.object)).await {
                    delivered += 1;
                    core.metrics.hints_delivered.inc();
                }
            } else if expired_now && forget(core, id, None).await {
                expired += 1;
                core.metrics.hints_expired.inc();
            }
            continue;
        }
        if up {
            to_send.push((id, hint));
        } else if expired_now && forget(core, id, None).await {
            expired += 1;
            core.metrics.hints_expired.inc();
        }
    }
    if !to_send.is_empty()
        && let Some(addr) = core.cluster.rpc_addr(target)
    {
        let sent = send_hints(core, target, addr, to_send).await;
        // One trip to the blocking pool deletes them all, each only if no newer
        // write was merged into it meanwhile.
        let deleted = core
            .blocking(move |n| {
                sent.into_iter()
                    .filter(|(id, object)| n.storage.delete_hint(id, Some(object)).unwrap_or(false))
                    .count() as u64
            })
            .await;
        delivered += deleted;
        core.metrics.hints_delivered.inc_by(deleted);
    }
    if delivered > 0 || expired > 0 {
        tracing::info!(%target, delivered, expired, "hinted handoff");
    }
    (if full { last } else { None }, delivered + expired > 0)
}
