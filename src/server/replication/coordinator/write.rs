//! The write path: a coordinated write applied on this replica (group
//! commit), sent to the other replicas and pending ones, acknowledged by a
//! [`WriteQuorum`]; a write for a key this node does not serve is forwarded
//! to a replica.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dynakv_ring::Ring;
use dynakv_storage::{BatchUpdate, ObjectStore, UpdateOutcome};
use dynakv_versioning::{Object, TooManySiblings, Version, VersionVector};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::server::cluster::rpc::{ForwardedWrite, Request, Response, RpcError};
use crate::server::config::QuorumMode;
use crate::server::metrics::Op;

use super::{
    CoordError, Coordinator, MAX_CLOCK_ACTORS, MAX_OBJECT_BYTES, Placement, Quorum, RequestOptions,
};

/// The version a counter increment stores: the merge of every counter
/// among `object`'s siblings, plus `by` as `actor`.
fn counter_version(
    object: &Object,
    actor: dynakv_versioning::ActorId,
    by: i64,
    timestamp_ms: u64,
) -> Version {
    let mut counter = dynakv_versioning::PnCounter::default();
    for v in object.values() {
        if let Some(c) = v
            .data
            .as_deref()
            .and_then(dynakv_versioning::PnCounter::decode)
        {
            counter.merge(&c);
        }
    }
    counter.increment(actor, by);
    Version::value(
        counter.encode(),
        dynakv_versioning::COUNTER_CONTENT_TYPE,
        timestamp_ms,
    )
}

/// Why the write closure refused.
pub(super) enum Refused {
    Siblings(TooManySiblings),
    Clock(usize),
    /// The key's values would add up to this many bytes.
    TooLarge(usize),
}

/// Extra time a forwarder waits beyond the replica's own deadline.
const FORWARD_MARGIN: Duration = Duration::from_millis(1000);

/// Times a write is placed and forwarded while the replicas it reaches
/// refuse it as not theirs (their ring moved on before this node's did).
const FORWARD_ATTEMPTS: usize = 3;

/// The acknowledgements a write needs before it is answered.
///
/// Outside a ring change the serving and target replicas are the same N and
/// this is W of them. While the key's partition is in transit it is a joint
/// quorum: W of the serving replicas (which answer reads until the switch)
/// **and** W of the target replicas (which answer them after), each capped
/// at the size of its set. An acknowledgement counts for every set its
/// replica is in; in sloppy mode a fallback's hint for a replica counts as
/// that replica's, as it does outside a ring change.
///
/// So every acknowledged write is held by W replicas of whichever set
/// serves the key, before the switch and after it, whatever the pending
/// replicas' copies, reports or liveness: a read at R (R + W > N) meets it,
/// and a former replica that deletes its copy after the switch takes no
/// needed copy with it. And a pending replica adds no requirement of its
/// own: one that is down, slow or unreachable blocks a write only when the
/// target set, without it, has fewer than W replicas up, which is when the
/// cluster after the change could not take the write either.
///
/// Cassandra's rule (W plus one acknowledgement per pending replica) makes
/// every pending replica necessary: a joiner that died made its partitions
/// unwritable, and so did a cluster still forming (every partition in
/// transit from a lone founder to the others). dynakv used it until then.
#[derive(Debug)]
pub(super) struct WriteQuorum<'a> {
    serving: &'a [String],
    target: &'a [String],
    need_serving: usize,
    need_target: usize,
}

impl<'a> WriteQuorum<'a> {
    /// The quorum of a write at `w` to a key placed by `placement`.
    pub(super) fn new(placement: &'a Placement, w: Quorum, n: usize) -> Self {
        WriteQuorum {
            serving: &placement.replicas,
            target: &placement.target,
            need_serving: w.resolve(n, placement.replicas.len()),
            need_target: w.resolve(n, placement.target.len()),
        }
    }

    /// Acknowledgements among `set` by the replicas in `acked`.
    fn count(set: &[String], acked: &[String]) -> usize {
        set.iter().filter(|r| acked.contains(r)).count()
    }

    /// True once the replicas in `acked` (distinct) make the quorum.
    fn is_met(&self, acked: &[String]) -> bool {
        Self::count(self.serving, acked) >= self.need_serving
            && Self::count(self.target, acked) >= self.need_target
    }

    /// True if enough replicas gossip reports up (`reachable`) could make the
    /// quorum (strict mode refuses before storing anything otherwise).
    fn reachable(&self, reachable: impl Fn(&str) -> bool) -> bool {
        let up = |set: &[String]| set.iter().filter(|r| reachable(r)).count();
        up(self.serving) >= self.need_serving && up(self.target) >= self.need_target
    }

    /// The failure to answer when `acked` fell short: the set that is short,
    /// with how many it needed and how many it got.
    fn shortfall(&self, acked: &[String]) -> CoordError {
        let serving = Self::count(self.serving, acked);
        let (needed, acked) = if serving < self.need_serving {
            (self.need_serving, serving)
        } else {
            (self.need_target, Self::count(self.target, acked))
        };
        CoordError::QuorumUnavailable { needed, acked }
    }
}

impl Coordinator {
    /// Applies a coordinated write's update to the local copy of its key,
    /// as [`ObjectStore::update`]. Unsynced writes share their storage write
    /// with concurrent ones ([`GroupCommit`]); with `sync_writes` each runs
    /// on the blocking pool, where RocksDB's write group shares the fsync.
    /// `bytes` is about what the update writes (key and value).
    async fn update_local(
        self: &Arc<Self>,
        update: BatchUpdate<Refused>,
        bytes: usize,
    ) -> UpdateOutcome<Refused> {
        if self.core.config.sync_writes {
            return self
                .core
                .blocking(move |core| {
                    core.storage
                        .update(&update.key, update.apply)
                        .map(|r| r.map(|((), object)| object))
                })
                .await;
        }
        let this = Arc::clone(self);
        self.local_writes
            .update(&self.core.storage, update, bytes, move || {
                tokio::spawn(async move {
                    while this.local_writes.write_queued(&this.core.storage) {
                        tokio::task::yield_now().await;
                    }
                });
            })
            .await
    }

    /// Coordinates a write of `version` (a value or a tombstone) that supersedes
    /// what `context` covers. Returns the context covering the new write.
    ///
    /// A replica of the key coordinates it here; any other node forwards it
    /// to a replica. If every replica refuses it because their ring moved on,
    /// the write is placed again once this node's ring changed too (at most
    /// `FORWARD_ATTEMPTS` times).
    pub async fn coordinate_put(
        self: &Arc<Self>,
        key: Bytes,
        context: VersionVector,
        version: Version,
        opts: RequestOptions,
    ) -> Result<VersionVector, CoordError> {
        let deadline = Instant::now() + opts.timeout;
        let mut ring = self.core.cluster.ring();
        let mut opts = opts;
        for _ in 0..FORWARD_ATTEMPTS {
            // A write placed again has what is left of the request's time.
            opts.timeout = deadline.saturating_duration_since(Instant::now());
            if opts.timeout.is_zero() {
                break;
            }
            let placement = Placement::of(&ring, &key, self.core.buckets.n_val_of(&key));
            if placement.replicas.is_empty() {
                return Err(self.unplaceable(&ring, Op::Put));
            }
            if placement.replicas.iter().any(|r| r == self.core.me()) {
                return self
                    .put_as_replica(placement, key, context, version, opts)
                    .await;
            }
            let request = Request::CoordinateWrite(ForwardedWrite {
                key: key.clone(),
                context: context.clone(),
                version: version.clone(),
                // The requested W; the replica caps it by its own placement.
                w: opts.quorum.resolve(placement.n, placement.n),
                strict: opts.mode == QuorumMode::Strict,
                replace: opts.replace,
                increment: opts.increment,
                timeout_ms: opts.timeout.as_millis() as u64,
            });
            let needed = opts.quorum.resolve(placement.n, placement.replicas.len());
            match self.forward_put(&placement, request, needed, opts).await {
                Some(answer) => return answer,
                None => {
                    // Every replica's ring differs from ours: wait (bounded)
                    // for gossip to bring ours up to date, then place it again.
                    let newer = self.next_ring(&ring, deadline).await;
                    if Arc::ptr_eq(&newer, &ring) {
                        break;
                    }
                    ring = newer;
                }
            }
        }
        self.quorum_failed(Op::Put);
        Err(CoordError::RingChanging)
    }

    /// Forwards a write to the first reachable serving replica; it
    /// coordinates it with its actor. `None` if every replica tried refused
    /// it as not theirs (nothing was written).
    async fn forward_put(
        self: &Arc<Self>,
        placement: &Placement,
        request: Request,
        needed: usize,
        opts: RequestOptions,
    ) -> Option<Result<VersionVector, CoordError>> {
        self.core.metrics.forwarded_writes.inc();
        // The replica waits up to the whole timeout for its quorum and answers
        // either way, so the forwarder gives it that plus a margin. A write the
        // replica may have applied (no answer in time, connection lost) is never
        // sent to another replica: that would coordinate it twice, under two
        // actors. Only a refusal or a failure to connect moves on.
        let forward_timeout = opts.timeout + FORWARD_MARGIN;
        let mut refused = false;
        for replica in placement.replicas.iter().filter(|r| !self.core.is_down(r)) {
            let Some(addr) = self.core.cluster.rpc_addr(replica) else {
                continue;
            };
            match self
                .core
                .rpc
                .call(addr, Some(replica), request.clone(), forward_timeout)
                .await
            {
                Ok(Response::Written(ctx)) => return Some(Ok(ctx)),
                Ok(Response::Failed(e)) => return Some(Err(e)),
                Ok(Response::NotReplica) => {
                    refused = true;
                    tracing::debug!(
                        replica,
                        "forwarded write refused: the replica's ring differs; trying the next"
                    )
                }
                Ok(other) => {
                    tracing::warn!(?other, replica, "unexpected answer to a forwarded write")
                }
                Err(e @ (RpcError::Unreachable(_) | RpcError::Dropped | RpcError::Auth(_))) => {
                    tracing::debug!(error = %e, replica, "forwarding a write failed before it was sent; trying the next replica")
                }
                Err(e) => {
                    tracing::warn!(error = %e, replica, "a forwarded write got no answer; it may have been applied, so it is not retried elsewhere");
                    self.quorum_failed(Op::Put);
                    return Some(Err(CoordError::QuorumUnavailable { needed, acked: 0 }));
                }
            }
        }
        if refused {
            return None;
        }
        self.quorum_failed(Op::Put);
        Some(Err(CoordError::QuorumUnavailable { needed, acked: 0 }))
    }

    /// The ring once it differs from `ring`, waiting at most two gossip
    /// intervals (and never past `deadline`); `ring` itself if it did not
    /// change.
    async fn next_ring(&self, ring: &Arc<Ring>, deadline: Instant) -> Arc<Ring> {
        let interval = Duration::from_millis(self.core.config.gossip_interval_ms);
        let until = (Instant::now() + 2 * interval).min(deadline);
        loop {
            let now = self.core.cluster.ring();
            if !Arc::ptr_eq(&now, ring) || Instant::now() >= until {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(10).min(interval)).await;
        }
    }

    /// Coordinates a write on this node, a replica of the key placed by
    /// `placement`.
    pub(super) async fn put_as_replica(
        self: &Arc<Self>,
        placement: Placement,
        key: Bytes,
        context: VersionVector,
        version: Version,
        opts: RequestOptions,
    ) -> Result<VersionVector, CoordError> {
        let sloppy = opts.mode == QuorumMode::Sloppy;
        let replace = opts.replace;
        let increment = opts.increment;
        let quorum = WriteQuorum::new(&placement, opts.quorum, placement.n);
        if !sloppy && !quorum.reachable(|r| !self.core.is_down(r)) {
            // Refuse before storing anything: nothing is acknowledged.
            self.quorum_failed(Op::Put);
            return Err(quorum.shortfall(&[]));
        }
        let write_key = key.clone();
        let max = self.core.config.max_siblings;
        let core = Arc::clone(&self.core);
        let bytes = key.len() + version.data.as_ref().map_or(0, |d| d.len());
        let object = self
            .update_local(
                BatchUpdate {
                    key: key.clone(),
                    apply: Box::new(move |o| {
                        // A context naming actors the key never saw grows its
                        // clock: refused past the cap. Ordinary writes (which only
                        // ever add this node's own actor) are never refused here.
                        let known = o.context();
                        let unknown = context.iter().filter(|&(a, _)| known.get(a) == 0).count();
                        let actors = known.len() + unknown + 1;
                        if unknown > 0 && actors > MAX_CLOCK_ACTORS {
                            return Err(Refused::Clock(actors));
                        }
                        // An actor of this process, continued only while the local
                        // copy holds its newest dot (SPEC §2; see
                        // `dynakv_versioning::Incarnation`).
                        let actor = core.storage.actor_for(&write_key, o);
                        // A counter increment: the merge of the local siblings
                        // plus this one, over everything held here.
                        let (context, version) = match increment {
                            Some(by) => {
                                (known, counter_version(o, actor, by, version.timestamp_ms))
                            }
                            // A `last_write_wins` bucket: replace what is held here.
                            None if replace => (known, version),
                            None => (context, version),
                        };
                        o.write_capped(&context, actor, version, max)
                            .map_err(Refused::Siblings)?;
                        // Not stored (the closure's error leaves the key as
                        // it was) if no frame could carry it to a replica.
                        let bytes: usize = o
                            .live()
                            .iter()
                            .map(|v| v.data.as_ref().map_or(0, |d| d.len()) + 64)
                            .sum();
                        if bytes > MAX_OBJECT_BYTES {
                            return Err(Refused::TooLarge(bytes));
                        }
                        Ok(())
                    }),
                },
                bytes,
            )
            .await
            .inspect_err(|e| self.core.note_storage_error(e))?
            .map_err(|r| match r {
                Refused::Siblings(t) => CoordError::TooManySiblings(t),
                Refused::Clock(actors) => CoordError::ClockTooLarge {
                    actors,
                    limit: MAX_CLOCK_ACTORS,
                },
                Refused::TooLarge(bytes) => CoordError::ObjectTooLarge {
                    bytes,
                    limit: MAX_OBJECT_BYTES,
                },
            })?;
        let object = Arc::new(object);

        let others: Vec<String> = placement
            .replicas
            .iter()
            .chain(&placement.pending)
            .filter(|r| *r != self.core.me())
            .cloned()
            .collect();
        let spare: VecDeque<String> = if sloppy {
            placement
                .fallbacks
                .iter()
                .filter(|f| !self.core.is_down(f))
                .cloned()
                .collect()
        } else {
            VecDeque::new()
        };
        let spare = Arc::new(Mutex::new(spare));
        // The replica writes run inside this request's task (no task per
        // replica, no channel: each acknowledgement used to cost a cross-thread
        // wake-up); once W acknowledged, or the time is up, the ones still
        // running move to one background task, which completes them (and
        // stores hints for replicas that missed the write).
        let mut writes: FuturesUnordered<_> = others
            .iter()
            .map(|replica| {
                Arc::clone(self).replicate(
                    key.clone(),
                    Arc::clone(&object),
                    replica.clone(),
                    Arc::clone(&spare),
                    opts.timeout,
                )
            })
            .collect();
        // The replicas holding the write (directly, or as a fallback's hint
        // for them), this one first.
        let mut acked: Vec<String> = vec![self.core.me().to_string()];
        let deadline = Instant::now() + opts.timeout;
        while !quorum.is_met(&acked) {
            match tokio::time::timeout_at(deadline, writes.next()).await {
                Ok(Some((replica, counts))) => {
                    if counts {
                        acked.push(replica);
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        if !writes.is_empty() {
            tokio::spawn(async move { while writes.next().await.is_some() {} });
        }
        if quorum.is_met(&acked) {
            Ok(object.context())
        } else {
            self.quorum_failed(Op::Put);
            Err(quorum.shortfall(&acked))
        }
    }

    /// Delivers a coordinated write to one replica: directly, else (sloppy) to a
    /// fallback holding a hint for it, else as a hint kept here. Returns the
    /// replica and whether its acknowledgement counts toward the quorum.
    async fn replicate(
        self: Arc<Self>,
        key: Bytes,
        object: Arc<Object>,
        replica: String,
        spare: Arc<Mutex<VecDeque<String>>>,
        timeout: Duration,
    ) -> (String, bool) {
        let counts = self.deliver(key, object, &replica, spare, timeout).await;
        (replica, counts)
    }

    /// [`Coordinator::replicate`]'s delivery: true if the replica or a
    /// fallback for it acknowledged.
    async fn deliver(
        self: &Arc<Self>,
        key: Bytes,
        object: Arc<Object>,
        replica: &str,
        spare: Arc<Mutex<VecDeque<String>>>,
        timeout: Duration,
    ) -> bool {
        if !self.core.is_down(replica)
            && let Some(addr) = self.core.cluster.rpc_addr(replica)
        {
            let request = Request::ReplicaWrite {
                key: key.clone(),
                object: (*object).clone(),
                hint_for: None,
            };
            match self
                .core
                .rpc
                .call(addr, Some(replica), request, timeout)
                .await
            {
                Ok(Response::Ack) => return true,
                Ok(other) => tracing::warn!(?other, %replica, "replica refused a write"),
                Err(e) => tracing::debug!(error = %e, %replica, "replica write failed"),
            }
        }
        loop {
            let Some(fallback) = spare.lock().pop_front() else {
                break;
            };
            let Some(addr) = self.core.cluster.rpc_addr(&fallback) else {
                continue;
            };
            let request = Request::ReplicaWrite {
                key: key.clone(),
                object: (*object).clone(),
                hint_for: Some(replica.to_string()),
            };
            if let Ok(Response::Ack) = self
                .core
                .rpc
                .call(addr, Some(&fallback), request, timeout)
                .await
            {
                tracing::debug!(%replica, %fallback, "hinted write stored on a fallback");
                return true;
            }
        }
        // No fallback took it: keep the hint here so the replica gets it later.
        // On this task, as the coordinator's own write: while a replica is
        // down every write stores one, and a hop to the blocking pool per hint
        // held a 3-node cluster with one node down to 0.50-0.76x of its all-up
        // PUT rate (wrk and `dynakv bench` runs; 1.17x on the request's task).
        let hint_key = key.clone();
        let hint_object = Arc::clone(&object);
        let target = replica.to_string();
        let stored = self
            .core
            .write_now(move |core| core.storage.put_hint(&target, &hint_key, &hint_object))
            .await;
        match stored {
            Ok(()) => {
                self.core.metrics.hints_stored.inc();
            }
            Err(e) => {
                tracing::error!(error = %e, %replica, "cannot store a hint; anti-entropy will repair the key")
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// A placement serving `serving` and moving to `target`.
    fn placement(serving: &[&str], target: &[&str]) -> Placement {
        Placement {
            n: 3,
            replicas: names(serving),
            pending: target
                .iter()
                .filter(|t| !serving.contains(t))
                .map(|t| t.to_string())
                .collect(),
            target: names(target),
            fallbacks: Vec::new(),
        }
    }

    fn quorum(p: &Placement, w: usize) -> WriteQuorum<'_> {
        WriteQuorum::new(p, Quorum::Exactly(w), 3)
    }

    #[test]
    fn outside_a_ring_change_a_write_needs_w_of_its_n_replicas() {
        let p = placement(&["a", "b", "c"], &["a", "b", "c"]);
        let q = quorum(&p, 2);
        assert!(!q.is_met(&names(&["a"])));
        assert!(q.is_met(&names(&["a", "c"])));
        assert!(matches!(
            q.shortfall(&names(&["a"])),
            CoordError::QuorumUnavailable {
                needed: 2,
                acked: 1
            }
        ));
    }

    /// A join moves the partition from {a, b, c} to {a, b, d}: W of each set.
    #[test]
    fn in_transit_a_write_needs_w_of_the_serving_and_w_of_the_target_replicas() {
        let p = placement(&["a", "b", "c"], &["a", "b", "d"]);
        let q = quorum(&p, 2);
        // a and b are in both sets: no need to wait for the new replica.
        assert!(q.is_met(&names(&["a", "b"])));
        // a and c: W of the serving set, one of the target set.
        assert!(!q.is_met(&names(&["a", "c"])));
        assert!(matches!(
            q.shortfall(&names(&["a", "c"])),
            CoordError::QuorumUnavailable {
                needed: 2,
                acked: 1
            }
        ));
        // The new replica's acknowledgement completes the target set.
        assert!(q.is_met(&names(&["a", "c", "d"])));
    }

    #[test]
    fn a_pending_replica_adds_nothing_beyond_the_target_sets_own_quorum() {
        // d (the joiner) died: a and b make both quorums without it.
        let p = placement(&["a", "b", "c"], &["a", "b", "d"]);
        assert!(quorum(&p, 2).is_met(&names(&["a", "b"])));
        // Two nodes taking in a third that died: the two make both.
        let p = placement(&["a", "b"], &["a", "b", "c"]);
        assert!(quorum(&p, 2).is_met(&names(&["a", "b"])));
        // One node taking in a second: W = 2 of the two-node target set,
        // as a two-node cluster would need.
        let p = placement(&["a"], &["a", "b"]);
        let q = quorum(&p, 2);
        assert!(!q.is_met(&names(&["a"])));
        assert!(matches!(
            q.shortfall(&names(&["a"])),
            CoordError::QuorumUnavailable {
                needed: 2,
                acked: 1
            }
        ));
        // Two joiners of one partition: W of the target set, whichever
        // reported their copy, so the switch never leaves fewer than W.
        let p = placement(&["a", "b", "c"], &["a", "d", "e"]);
        assert!(!quorum(&p, 2).is_met(&names(&["a", "b", "c"])));
        assert!(quorum(&p, 2).is_met(&names(&["a", "b", "e"])));
    }

    #[test]
    fn a_serving_replica_that_is_down_still_counts_in_its_sets() {
        // c serves and is down: W of the serving set are still needed
        // (a hint on a fallback stands for it in sloppy mode).
        let p = placement(&["a", "b", "c"], &["a", "b", "d"]);
        let q = quorum(&p, 3);
        assert!(!q.is_met(&names(&["a", "b", "d"])));
        assert!(q.is_met(&names(&["a", "b", "c", "d"])));
        assert!(!q.reachable(|r| r != "c"));
    }
}
