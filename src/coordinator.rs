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
//! also goes to the partition's pending replicas and needs one more
//! acknowledgement per pending replica, so W of whichever set ends up serving
//! the key hold it; reads go to the replicas serving it until the switch. The
//! coordinator applies the write to its own copy (the DVVSet update: what the
//! client's context covers is superseded, the rest stays as siblings), sends the
//! resulting object to the other replicas, and answers once W acknowledged
//! (itself included). The rest complete in the background.
//!
//! **Sloppy quorum**: a replica that is down (by gossip) or fails to answer is
//! replaced by the next healthy node of the extended preference list, which holds
//! the object as a *hint* for it; that acknowledgement counts toward W. When no
//! spare node exists (three nodes, N = 3), the coordinator keeps the hint itself.
//! Either way, every replica that missed a write ends up with a durable hint
//! somewhere, delivered when it returns ([`crate::handoff`]).
//!
//! **Strict quorum**: only the first N count. If fewer than W of them are
//! reachable the write is refused before anything is stored.
//!
//! A `503` means fewer than W acknowledged in time; the write may survive on
//! those that did and is not rolled back, as in every Dynamo-style store.
//!
//! # Reads
//!
//! A read asks every reachable replica (and, in sloppy mode, fallbacks when too
//! few replicas are up), answers with the merge (DVVSet sync) of the first R
//! answers, and then, once the stragglers answered, writes the merge of all
//! answers back to every replica whose copy was stale or missing (read repair).
//!
//! A cluster with fewer members than N keeps every key on every member, and R and
//! W are capped at that count (SPEC §3).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dynakv_membership::Status;
use dynakv_ring::{Ring, token};
use dynakv_storage::{ObjectStore, StorageError};
use dynakv_versioning::{Object, TooManySiblings, Version, VersionVector};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::config::QuorumMode;
use crate::metrics::{Op, OpLabels};
use crate::node::Node;
use crate::rpc::{Request, Response, RpcError, WireError};

/// Most actors a write may leave in a key's clock when its context names
/// actors the key never saw. A clock has one entry per (incarnation, key) that
/// coordinated a write, so real keys stay far below; only a crafted context
/// could reach it. Kept well within what a context token in an HTTP header can
/// carry (about 12 KB at this size), so every key's context stays usable.
pub const MAX_CLOCK_ACTORS: usize = 1024;

/// Why the write closure refused.
enum Refused {
    Siblings(TooManySiblings),
    Clock(usize),
}

/// Extra time a forwarder waits beyond the replica's own deadline.
const FORWARD_MARGIN: Duration = Duration::from_millis(1000);

/// A requested quorum size, as given per request (`r=2`, `w=quorum`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quorum {
    /// One replica.
    One,
    /// A majority of N.
    Majority,
    /// All N replicas.
    All,
    /// Exactly this many (1..=N).
    Exactly(usize),
}

impl Quorum {
    /// Parses `1..n`, `one`, `quorum` or `all`; `n` is the configured replica count.
    pub fn parse(s: &str, n: usize) -> Result<Quorum, String> {
        match s {
            "one" => Ok(Quorum::One),
            "quorum" => Ok(Quorum::Majority),
            "all" => Ok(Quorum::All),
            _ => match s.parse::<usize>() {
                Ok(k) if (1..=n).contains(&k) => Ok(Quorum::Exactly(k)),
                _ => Err(format!("must be 1..{n}, one, quorum or all, not {s:?}")),
            },
        }
    }

    /// The number of replies needed with `n` replicas, capped at `replicas`
    /// (a cluster smaller than N keeps every key on every member).
    pub fn resolve(self, n: usize, replicas: usize) -> usize {
        let k = match self {
            Quorum::One => 1,
            Quorum::Majority => n / 2 + 1,
            Quorum::All => n,
            Quorum::Exactly(k) => k,
        };
        k.min(replicas).max(1)
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
}

/// Why a coordinated request failed.
#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    /// Fewer replicas than the quorum answered in time. A write may still have
    /// been stored on those that did; it is not rolled back.
    #[error("{acked} of {needed} required replicas answered in time")]
    QuorumUnavailable {
        /// Replies required.
        needed: usize,
        /// Replies received.
        acked: usize,
    },
    /// The write would leave too many live siblings.
    #[error(transparent)]
    TooManySiblings(#[from] TooManySiblings),
    /// The client's context names so many replica actors that the key's clock
    /// would exceed [`MAX_CLOCK_ACTORS`] (only a crafted context can).
    #[error("the causal context would grow the key's clock to {actors} actors (at most {limit})")]
    ClockTooLarge {
        /// Actors the clock would hold.
        actors: usize,
        /// The limit.
        limit: usize,
    },
    /// The local record is corrupt and awaits repair from a replica.
    #[error("stored record is corrupt and awaits repair from another replica")]
    Corrupt,
    /// The storage engine failed.
    #[error("storage: {0}")]
    Storage(String),
}

impl From<StorageError> for CoordError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Corrupt { .. } => CoordError::Corrupt,
            other => CoordError::Storage(other.to_string()),
        }
    }
}

impl From<WireError> for CoordError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::QuorumUnavailable { needed, acked } => {
                CoordError::QuorumUnavailable { needed, acked }
            }
            WireError::TooManySiblings { live, limit } => {
                CoordError::TooManySiblings(TooManySiblings { live, limit })
            }
            WireError::Corrupt => CoordError::Corrupt,
            WireError::Storage(s) => CoordError::Storage(s),
            WireError::ClockTooLarge { actors, limit } => {
                CoordError::ClockTooLarge { actors, limit }
            }
        }
    }
}

impl From<&CoordError> for WireError {
    fn from(e: &CoordError) -> Self {
        match e {
            CoordError::QuorumUnavailable { needed, acked } => WireError::QuorumUnavailable {
                needed: *needed,
                acked: *acked,
            },
            CoordError::TooManySiblings(t) => WireError::TooManySiblings {
                live: t.live,
                limit: t.limit,
            },
            CoordError::Corrupt => WireError::Corrupt,
            CoordError::Storage(s) => WireError::Storage(s.clone()),
            CoordError::ClockTooLarge { actors, limit } => WireError::ClockTooLarge {
                actors: *actors,
                limit: *limit,
            },
        }
    }
}

/// Where a key lives under the current ring.
struct Placement {
    /// The replicas serving the key (the first N of its preference list, or,
    /// while its partition is handed off, the replicas it moves from).
    replicas: Vec<String>,
    /// New replicas still receiving the partition: they get every write (so
    /// their copy is complete when they take over) but serve no reads yet.
    pending: Vec<String>,
    /// The rest of the preference list, in order: fallbacks for a sloppy quorum.
    fallbacks: Vec<String>,
}

impl Placement {
    fn of(ring: &Ring, key: &[u8]) -> Placement {
        let partition = Ring::partition_of(token(key));
        let replicas: Vec<String> = ring.replicas(partition).map(str::to_string).collect();
        let pending: Vec<String> = ring.pending(partition).map(str::to_string).collect();
        let fallbacks = ring
            .preference_list(partition)
            .filter(|n| !replicas.iter().any(|r| r == n) && !pending.iter().any(|p| p == n))
            .map(str::to_string)
            .collect();
        Placement {
            replicas,
            pending,
            fallbacks,
        }
    }

    /// Acknowledgements a write needs: W among the serving replicas, plus one
    /// per pending replica (Cassandra's rule for pending ranges). Whichever way
    /// the handoff ends, W of the replicas that then serve the key hold it.
    fn write_quorum(&self, w: usize) -> usize {
        (w + self.pending.len()).min(self.replicas.len() + self.pending.len())
    }
}

impl Node {
    fn me(&self) -> &str {
        &self.identity.name
    }

    /// True if gossip says `name` is down or gone (never this node).
    pub fn is_down(&self, name: &str) -> bool {
        name != self.me() && matches!(self.cluster.status(name), Status::Down | Status::Left)
    }

    fn quorum_failed(&self, op: Op) {
        self.metrics
            .quorum_failures
            .get_or_create(&OpLabels { op })
            .inc();
    }

    /// Coordinates a write of `version` (a value or a tombstone) that supersedes
    /// what `context` covers. Returns the context covering the new write.
    pub async fn coordinate_put(
        self: &Arc<Self>,
        key: Bytes,
        context: VersionVector,
        version: Version,
        opts: RequestOptions,
    ) -> Result<VersionVector, CoordError> {
        let ring = self.cluster.ring();
        let placement = Placement::of(&ring, &key);
        let needed =
            placement.write_quorum(opts.quorum.resolve(ring.n(), placement.replicas.len()));
        if placement.replicas.iter().any(|r| r == self.me()) {
            return self
                .put_as_replica(placement, key, context, version, needed, opts)
                .await;
        }
        // Forward to the first reachable replica; it coordinates with its actor.
        let request = Request::CoordinateWrite {
            key,
            context,
            version,
            w: opts.quorum.resolve(ring.n(), placement.replicas.len()),
            strict: opts.mode == QuorumMode::Strict,
            timeout_ms: opts.timeout.as_millis() as u64,
        };
        // The replica waits up to the whole timeout for its quorum and answers
        // either way, so the forwarder gives it that plus a margin. A write the
        // replica may have applied (no answer in time, connection lost) is never
        // sent to another replica: that would coordinate it twice, under two
        // actors. Only a refusal or a failure to connect moves on.
        let forward_timeout = opts.timeout + FORWARD_MARGIN;
        for replica in placement.replicas.iter().filter(|r| !self.is_down(r)) {
            let Some(addr) = self.cluster.rpc_addr(replica) else {
                continue;
            };
            match self
                .rpc
                .call(addr, Some(replica), request.clone(), forward_timeout)
                .await
            {
                Ok(Response::Written(ctx)) => return Ok(ctx),
                Ok(Response::Failed(e)) => return Err(e.into()),
                Ok(Response::NotReplica) => {
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
                    return Err(CoordError::QuorumUnavailable { needed, acked: 0 });
                }
            }
        }
        self.quorum_failed(Op::Put);
        Err(CoordError::QuorumUnavailable { needed, acked: 0 })
    }

    /// Coordinates a write on this node, a replica of the key placed by
    /// `placement`.
    async fn put_as_replica(
        self: &Arc<Self>,
        placement: Placement,
        key: Bytes,
        context: VersionVector,
        version: Version,
        needed: usize,
        opts: RequestOptions,
    ) -> Result<VersionVector, CoordError> {
        let sloppy = opts.mode == QuorumMode::Sloppy;
        if !sloppy {
            // Refuse before storing anything: nothing is acknowledged.
            let reachable = placement
                .replicas
                .iter()
                .chain(&placement.pending)
                .filter(|r| !self.is_down(r))
                .count();
            if reachable < needed {
                self.quorum_failed(Op::Put);
                return Err(CoordError::QuorumUnavailable { needed, acked: 0 });
            }
        }
        let write_key = key.clone();
        let (_dot, object) = self
            .write_now(move |node| {
                let max = node.config.max_siblings;
                node.storage.update(&write_key, |o| {
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
                    let actor = node.storage.actor_for(&write_key, o);
                    o.write_capped(&context, actor, version, max)
                        .map_err(Refused::Siblings)
                })
            })
            .await
            .inspect_err(|e| self.note_storage_error(e))?
            .map_err(|r| match r {
                Refused::Siblings(t) => CoordError::TooManySiblings(t),
                Refused::Clock(actors) => CoordError::ClockTooLarge {
                    actors,
                    limit: MAX_CLOCK_ACTORS,
                },
            })?;
        let object = Arc::new(object);

        let others: Vec<String> = placement
            .replicas
            .iter()
            .chain(&placement.pending)
            .filter(|r| *r != self.me())
            .cloned()
            .collect();
        let spare: VecDeque<String> = if sloppy {
            placement
                .fallbacks
                .iter()
                .filter(|f| !self.is_down(f))
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
        let mut acked = 1;
        let deadline = Instant::now() + opts.timeout;
        while acked < needed {
            match tokio::time::timeout_at(deadline, writes.next()).await {
                Ok(Some(ok)) => {
                    if ok {
                        acked += 1;
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        if !writes.is_empty() {
            tokio::spawn(async move { while writes.next().await.is_some() {} });
        }
        if acked >= needed {
            Ok(object.context())
        } else {
            self.quorum_failed(Op::Put);
            Err(CoordError::QuorumUnavailable { needed, acked })
        }
    }

    /// Delivers a coordinated write to one replica: directly, else (sloppy) to a
    /// fallback holding a hint for it, else as a hint kept here. Returns whether
    /// the acknowledgement counts toward W.
    async fn replicate(
        self: Arc<Self>,
        key: Bytes,
        object: Arc<Object>,
        replica: String,
        spare: Arc<Mutex<VecDeque<String>>>,
        timeout: Duration,
    ) -> bool {
        if !self.is_down(&replica)
            && let Some(addr) = self.cluster.rpc_addr(&replica)
        {
            let request = Request::ReplicaWrite {
                key: key.clone(),
                object: (*object).clone(),
                hint_for: None,
            };
            match self.rpc.call(addr, Some(&replica), request, timeout).await {
                Ok(Response::Ack) => return true,
                Ok(other) => tracing::warn!(?other, %replica, "replica refused a write"),
                Err(e) => tracing::debug!(error = %e, %replica, "replica write failed"),
            }
        }
        loop {
            let Some(fallback) = spare.lock().pop_front() else {
                break;
            };
            let Some(addr) = self.cluster.rpc_addr(&fallback) else {
                continue;
            };
            let request = Request::ReplicaWrite {
                key: key.clone(),
                object: (*object).clone(),
                hint_for: Some(replica.clone()),
            };
            if let Ok(Response::Ack) = self.rpc.call(addr, Some(&fallback), request, timeout).await
            {
                tracing::debug!(%replica, %fallback, "hinted write stored on a fallback");
                return true;
            }
        }
        // No fallback took it: keep the hint here so the replica gets it later.
        let hint_key = key.clone();
        let hint_object = Arc::clone(&object);
        let target = replica.clone();
        let stored = self
            .blocking(move |node| node.storage.put_hint(&target, &hint_key, &hint_object))
            .await;
        match stored {
            Ok(()) => {
                self.metrics.hints_stored.inc();
            }
            Err(e) => {
                tracing::error!(error = %e, %replica, "cannot store a hint; anti-entropy will repair the key")
            }
        }
        false
    }

    /// Coordinates a read: the merged sibling set of the first R answers; read
    /// repair follows in the background.
    pub async fn coordinate_get(
        self: &Arc<Self>,
        key: Bytes,
        opts: RequestOptions,
    ) -> Result<Object, CoordError> {
        let ring = self.cluster.ring();
        let placement = Placement::of(&ring, &key);
        let needed = opts.quorum.resolve(ring.n(), placement.replicas.len());
        let mut targets: Vec<(String, bool)> = placement
            .replicas
            .iter()
            .filter(|r| !self.is_down(r))
            .map(|r| (r.clone(), false))
            .collect();
        if opts.mode == QuorumMode::Sloppy {
            let missing = needed.saturating_sub(targets.len());
            let extra = placement
                .fallbacks
                .iter()
                .filter(|f| !self.is_down(f))
                .take(missing);
            targets.extend(extra.map(|f| (f.clone(), true)));
        }
        if targets.len() < needed {
            self.quorum_failed(Op::Get);
            return Err(CoordError::QuorumUnavailable { needed, acked: 0 });
        }
        let asked: Vec<String> = targets.iter().map(|(n, _)| n.clone()).collect();
        let (tx, mut rx) = mpsc::channel::<(String, bool, Option<Option<Object>>)>(
            targets.len() + placement.fallbacks.len(),
        );
        for (name, fallback) in targets.iter().cloned() {
            let hints_for = if fallback {
                placement.replicas.clone()
            } else {
                Vec::new()
            };
            tokio::spawn(Arc::clone(self).read_one(
                key.clone(),
                name,
                fallback,
                hints_for,
                opts.timeout,
                tx.clone(),
            ));
        }
        // Sloppy mode: fallbacks not asked yet, for replicas that fail or are
        // slow to answer (gossip may not have noticed them yet).
        // Liveness is checked only if one is needed.
        let mut spare: VecDeque<String> = if opts.mode == QuorumMode::Sloppy {
            placement
                .fallbacks
                .iter()
                .filter(|f| !asked.contains(f))
                .cloned()
                .collect()
        } else {
            VecDeque::new()
        };

        let (quorum_tx, quorum_rx) = oneshot::channel::<Result<Object, CoordError>>();
        let node = Arc::clone(self);
        let mut total = targets.len();
        let replicas = placement.replicas.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let deadline = start + opts.timeout;
            let mut hedge_at = Some(start + opts.timeout / 2);
            let mut answers: Vec<(String, bool, Option<Object>)> = Vec::new();
            let mut merged = Object::new();
            let mut quorum_tx = Some(quorum_tx);
            let mut received = 0;
            while received < total {
                let wake = hedge_at.map_or(deadline, |h| h.min(deadline));
                let answer = tokio::time::timeout_at(wake, rx.recv()).await;
                let mut ask_more = 0;
                match answer {
                    Ok(Some((name, fallback, answer))) => {
                        received += 1;
                        match answer {
                            Some(object) => {
                                if let Some(o) = &object {
                                    merged.sync(o);
                                }
                                answers.push((name, fallback, object));
                                // A fallback that holds no hint knows nothing of
                                // the key: a quorum that is empty only because
                                // fallbacks answered waits for the replicas (and
                                // ends in 503, never in a false 404).
                                let blind =
                                    merged.is_empty() && answers.iter().any(|(_, fb, _)| *fb);
                                if answers.len() >= needed
                                    && !blind
                                    && let Some(q) = quorum_tx.take()
                                {
                                    let _ = q.send(Ok(merged.clone()));
                                }
                            }
                            // A failed answer: replace it with a fallback.
                            None if quorum_tx.is_some() => ask_more = 1,
                            None => {}
                        }
                    }
                    Ok(None) => break,
                    Err(_) if Instant::now() >= deadline => break,
                    Err(_) => {
                        // Half the time is gone without a quorum: ask as many
                        // fallbacks as answers are missing.
                        hedge_at = None;
                        if quorum_tx.is_some() {
                            ask_more = needed.saturating_sub(answers.len());
                        }
                    }
                }
                for _ in 0..ask_more {
                    let Some(f) =
                        std::iter::from_fn(|| spare.pop_front()).find(|f| !node.is_down(f))
                    else {
                        break;
                    };
                    total += 1;
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    tokio::spawn(Arc::clone(&node).read_one(
                        key.clone(),
                        f,
                        true,
                        replicas.clone(),
                        remaining,
                        tx.clone(),
                    ));
                }
            }
            drop(tx);
            if let Some(q) = quorum_tx.take() {
                let _ = q.send(Err(CoordError::QuorumUnavailable {
                    needed,
                    acked: answers.len(),
                }));
            }
            node.read_repair(key, merged, answers, opts.timeout).await;
        });
        match quorum_rx.await {
            Ok(Ok(object)) => Ok(object),
            Ok(Err(e)) => {
                self.quorum_failed(Op::Get);
                Err(e)
            }
            Err(_) => Err(CoordError::QuorumUnavailable { needed, acked: 0 }),
        }
    }

    /// One replica's (or fallback's) answer to a read: `None` if it failed.
    async fn read_one(
        self: Arc<Self>,
        key: Bytes,
        name: String,
        fallback: bool,
        hints_for: Vec<String>,
        timeout: Duration,
        done: mpsc::Sender<(String, bool, Option<Option<Object>>)>,
    ) {
        let answer = if name == self.me() {
            let k = key.clone();
            match self.read_now(move |node| node.storage.get(&k)).await {
                Ok(o) => Some(o),
                Err(e) => {
                    self.note_storage_error(&e);
                    None
                }
            }
        } else {
            match self.cluster.rpc_addr(&name) {
                None => None,
                Some(addr) => match self
                    .rpc
                    .call(
                        addr,
                        Some(&name),
                        Request::ReplicaRead { key, hints_for },
                        timeout,
                    )
                    .await
                {
                    Ok(Response::Object(o)) => Some(o),
                    _ => None,
                },
            }
        };
        let _ = done.send((name, fallback, answer)).await;
    }

    /// Writes the merge of every answer back to the replicas whose copy lacked
    /// part of it.
    async fn read_repair(
        self: &Arc<Self>,
        key: Bytes,
        merged: Object,
        answers: Vec<(String, bool, Option<Object>)>,
        timeout: Duration,
    ) {
        if merged.is_empty() {
            return;
        }
        for (name, fallback, object) in answers {
            if fallback || object.as_ref() == Some(&merged) {
                continue;
            }
            let repaired = if name == self.me() {
                let (k, m) = (key.clone(), merged.clone());
                self.write_now(move |node| node.storage.merge(&k, &m).map(|_| ()))
                    .await
                    .is_ok()
            } else if let Some(addr) = self.cluster.rpc_addr(&name) {
                let request = Request::ReplicaWrite {
                    key: key.clone(),
                    object: merged.clone(),
                    hint_for: None,
                };
                matches!(
                    self.rpc.call(addr, Some(&name), request, timeout).await,
                    Ok(Response::Ack)
                )
            } else {
                false
            };
            if repaired {
                self.metrics.read_repairs.inc();
                tracing::debug!(replica = %name, "read repair");
            }
        }
    }

    /// True if this node keeps `key`'s partition under its ring (serving it,
    /// or receiving it as a new replica).
    fn holds_key(&self, key: &[u8]) -> bool {
        let ring = self.cluster.ring();
        ring.holds(self.me(), Ring::partition_of(token(key)))
    }

    /// Serves a replica write from a peer: merge, or hold as a hint. A write for
    /// a partition this node does not hold (the sender's ring is older, or
    /// newer) is refused, so it is not counted and lands where it belongs.
    pub async fn on_replica_write(
        self: &Arc<Self>,
        key: Bytes,
        object: Object,
        hint_for: Option<String>,
    ) -> Response {
        if hint_for.is_none() && !self.holds_key(&key) {
            return Response::NotReplica;
        }
        let result = self
            .write_now(move |node| match hint_for {
                Some(target) if target != node.identity.name => {
                    node.storage.put_hint(&target, &key, &object).map(|()| true)
                }
                _ => node.storage.merge(&key, &object).map(|_| false),
            })
            .await;
        match result {
            Ok(hinted) => {
                if hinted {
                    self.metrics.hints_stored.inc();
                }
                Response::Ack
            }
            Err(e) => {
                self.note_storage_error(&e);
                Response::Error(e.to_string())
            }
        }
    }

    /// Serves a replica read from a peer (with the hints it holds, as a fallback).
    pub async fn on_replica_read(self: &Arc<Self>, key: Bytes, hints_for: Vec<String>) -> Response {
        if hints_for.is_empty() && !self.holds_key(&key) {
            return Response::NotReplica;
        }
        let result = self
            .read_now(move |node| -> Result<Option<Object>, StorageError> {
                let mut object = node.storage.get(&key)?;
                for target in &hints_for {
                    if let Some(h) = node.storage.get_hint(target, &key)? {
                        object.get_or_insert_with(Object::new).sync(&h.object);
                    }
                }
                Ok(object)
            })
            .await;
        match result {
            Ok(o) => Response::Object(o),
            Err(e) => {
                self.note_storage_error(&e);
                Response::Error(e.to_string())
            }
        }
    }

    /// Serves a write forwarded by a non-replica.
    pub async fn on_coordinate_write(
        self: &Arc<Self>,
        key: Bytes,
        context: VersionVector,
        version: Version,
        w: usize,
        strict: bool,
        timeout_ms: u64,
    ) -> Response {
        let opts = RequestOptions {
            quorum: Quorum::Exactly(w),
            mode: if strict {
                QuorumMode::Strict
            } else {
                QuorumMode::Sloppy
            },
            timeout: Duration::from_millis(timeout_ms.clamp(1, 120_000)),
        };
        let placement = Placement::of(&self.cluster.ring(), &key);
        // Only a serving replica coordinates: one that gave the partition up
        // (the forwarder's ring is older) must not count itself toward W.
        if !placement.replicas.iter().any(|r| r == self.me()) {
            return Response::NotReplica;
        }
        let needed = placement.write_quorum(w.max(1));
        match self
            .put_as_replica(placement, key, context, version, needed, opts)
            .await
        {
            Ok(ctx) => Response::Written(ctx),
            Err(e) => Response::Failed((&e).into()),
        }
    }

    fn note_storage_error(&self, e: &StorageError) {
        if let StorageError::Corrupt { key, reason } = e {
            self.metrics.corrupt_records.inc();
            tracing::error!(key = ?String::from_utf8_lossy(key), %reason, "corrupt record on disk; it will be repaired from a replica");
        } else {
            tracing::error!(error = %e, "storage error");
        }
    }
}
