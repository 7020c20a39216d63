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
//! somewhere, delivered when it returns ([`crate::server::handoff`]).
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
use dynakv_ring::{Ring, token};
use dynakv_storage::{BatchUpdate, ObjectStore, StorageError, UpdateOutcome};
use dynakv_versioning::{Object, TooManySiblings, Version, VersionVector};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use parking_lot::Mutex;
use rand::seq::SliceRandom;
use tokio::time::Instant;

use crate::server::commit::GroupCommit;
use crate::server::config::QuorumMode;
use crate::server::core::Core;
use crate::server::metrics::{Op, OpLabels};
use crate::server::rpc::{Request, Response, RpcError, WireError};

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
}

/// A replica's (or fallback's) answer to a read: its name, whether it was
/// asked as a fallback, and its copy (`None` if it failed to answer).
type ReadAnswer = (String, bool, Option<Option<Object>>);

/// Who a read may still ask, in order.
struct Candidates {
    /// Live replicas not asked yet.
    replicas: VecDeque<String>,
    /// Fallbacks not asked yet (sloppy mode), liveness checked when one is
    /// needed.
    fallbacks: VecDeque<String>,
}

/// A read in progress: the replica reads in flight (driven by the request's
/// own task, so no task or channel per replica) and the answers so far.
struct QuorumRead {
    coordinator: Arc<Coordinator>,
    key: Bytes,
    hints_for: Arc<[String]>,
    reads: FuturesUnordered<futures::future::BoxFuture<'static, ReadAnswer>>,
    answers: Vec<(String, bool, Option<Object>)>,
    merged: Object,
    deadline: Instant,
}

impl QuorumRead {
    /// Asks the next replica not asked yet or, if `fallback` is allowed and
    /// none is left, the next live fallback. False if nobody is left.
    fn ask_next(&mut self, candidates: &mut Candidates, fallback: bool) -> bool {
        if let Some(replica) = candidates.replicas.pop_front() {
            self.ask(replica, false);
            true
        } else {
            fallback && self.ask_fallback(candidates)
        }
    }

    /// Asks the next fallback gossip does not report down.
    fn ask_fallback(&mut self, candidates: &mut Candidates) -> bool {
        let core = &self.coordinator.core;
        let next =
            std::iter::from_fn(|| candidates.fallbacks.pop_front()).find(|f| !core.is_down(f));
        match next {
            Some(f) => {
                self.ask(f, true);
                true
            }
            None => false,
        }
    }

    fn ask(&mut self, name: String, fallback: bool) {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        self.reads
            .push(Box::pin(Arc::clone(&self.coordinator).read_one(
                self.key.clone(),
                name,
                fallback,
                Arc::clone(&self.hints_for),
                remaining,
            )));
    }

    fn answer(&mut self, name: String, fallback: bool, object: Option<Object>) {
        if let Some(o) = &object {
            self.merged.sync(o);
        }
        self.answers.push((name, fallback, object));
    }

    /// True once R answered. A fallback that holds no hint knows nothing of
    /// the key: a quorum that is empty only because fallbacks answered does
    /// not count (it waits for replicas, and ends in 503, never in a false
    /// 404).
    fn quorum(&self, needed: usize) -> bool {
        let from_replicas = self.answers.iter().filter(|(_, fb, _)| !*fb).count();
        let blind = self.merged.is_empty() && from_replicas < needed;
        self.answers.len() >= needed && !blind
    }

    /// True if nothing is left to do once the read is answered: no replica
    /// read is in flight, and every replica that answered holds the merge
    /// already (what [`Coordinator::read_repair`] would find).
    fn settled(&self) -> bool {
        self.reads.is_empty()
            && (self.merged.is_empty()
                || self
                    .answers
                    .iter()
                    .all(|(_, fallback, o)| *fallback || o.as_ref() == Some(&self.merged)))
    }

    /// Collects the answers still in flight, then repairs stale replicas.
    async fn finish(mut self, timeout: Duration) {
        while let Ok(Some((name, fallback, answer))) =
            tokio::time::timeout_at(self.deadline, self.reads.next()).await
        {
            if let Some(object) = answer {
                self.answer(name, fallback, object);
            }
        }
        let coordinator = Arc::clone(&self.coordinator);
        coordinator
            .read_repair(self.key, self.merged, self.answers, timeout)
            .await;
    }
}

/// When a read asks one more replica because those asked are slow
/// (Cassandra's speculative retry). Tracks a moving average of how long
/// replicas take to answer a read and waits a few times that, so a loaded
/// cluster (where every answer is slow) does not double its own read load.
#[derive(Debug)]
pub struct ReadHedge {
    /// Moving average of remote read latency, in microseconds.
    average_us: std::sync::atomic::AtomicU64,
}

impl Default for ReadHedge {
    fn default() -> Self {
        ReadHedge {
            average_us: std::sync::atomic::AtomicU64::new(Self::FLOOR.as_micros() as u64),
        }
    }
}

impl ReadHedge {
    /// Never hedge sooner than this.
    const FLOOR: Duration = Duration::from_millis(5);
    /// Hedge after this many average latencies.
    const MULTIPLE: u32 = 4;

    /// Records one remote read's latency (a moving average weighting the
    /// newest sample 1/8).
    pub fn observe(&self, latency: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let sample = latency.as_micros().min(u64::MAX as u128) as u64;
        let old = self.average_us.load(Relaxed);
        // Lost updates under contention only skip a sample.
        let new = old - old / 8 + sample / 8;
        self.average_us.store(new, Relaxed);
    }

    /// How long a read waits for its first replicas before asking another:
    /// a few average latencies, at least 5 ms, at most half the
    /// request's timeout.
    pub fn delay(&self, timeout: Duration) -> Duration {
        let average =
            Duration::from_micros(self.average_us.load(std::sync::atomic::Ordering::Relaxed));
        (average * Self::MULTIPLE).max(Self::FLOOR).min(timeout / 2)
    }
}

impl Coordinator {
    fn quorum_failed(&self, op: Op) {
        self.core
            .metrics
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
        let ring = self.core.cluster.ring();
        let placement = Placement::of(&ring, &key);
        let needed =
            placement.write_quorum(opts.quorum.resolve(ring.n(), placement.replicas.len()));
        if placement.replicas.iter().any(|r| r == self.core.me()) {
            return self
                .put_as_replica(placement, key, context, version, needed, opts)
                .await;
        }
        // Forward to the first reachable replica; it coordinates with its actor.
        self.core.metrics.forwarded_writes.inc();
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
                .filter(|r| !self.core.is_down(r))
                .count();
            if reachable < needed {
                self.quorum_failed(Op::Put);
                return Err(CoordError::QuorumUnavailable { needed, acked: 0 });
            }
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
                        o.write_capped(&context, actor, version, max)
                            .map(|_dot| ())
                            .map_err(Refused::Siblings)
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
        if !self.core.is_down(&replica)
            && let Some(addr) = self.core.cluster.rpc_addr(&replica)
        {
            let request = Request::ReplicaWrite {
                key: key.clone(),
                object: (*object).clone(),
                hint_for: None,
            };
            match self
                .core
                .rpc
                .call(addr, Some(&replica), request, timeout)
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
                hint_for: Some(replica.clone()),
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
        let target = replica.clone();
        let stored = self
            .core
            .write_now(move |node| node.storage.put_hint(&target, &hint_key, &hint_object))
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

    /// Coordinates a read: the merged sibling set of the first R answers; read
    /// repair follows in the background.
    ///
    /// Only R replicas are asked at first (Cassandra's read path, not Dynamo's
    /// ask-all): this node first when it is one (no network), the others in
    /// random order so reads spread over them. Asking all N would cost every
    /// read N - R more round trips that only feed read repair, which
    /// anti-entropy already covers. Instead the read asks another replica at
    /// once when one fails, and speculatively when one is slow (after
    /// [`ReadHedge::delay`], a multiple of recent replica latency); in sloppy
    /// mode, fallbacks are asked when too few replicas are up, and at half the
    /// timeout for every answer still missing.
    pub async fn coordinate_get(
        self: &Arc<Self>,
        key: Bytes,
        opts: RequestOptions,
    ) -> Result<Object, CoordError> {
        let ring = self.core.cluster.ring();
        let placement = Placement::of(&ring, &key);
        let needed = opts.quorum.resolve(ring.n(), placement.replicas.len());
        let sloppy = opts.mode == QuorumMode::Sloppy;
        let mut replicas: Vec<String> = placement
            .replicas
            .iter()
            .filter(|r| !self.core.is_down(r))
            .cloned()
            .collect();
        let local = replicas.iter().position(|r| r == self.core.me());
        if let Some(i) = local {
            replicas.swap(0, i);
        }
        let skip = usize::from(local.is_some());
        replicas[skip..].shuffle(&mut rand::rng());
        let mut candidates = Candidates {
            replicas: replicas.into(),
            fallbacks: if sloppy {
                placement.fallbacks.iter().cloned().collect()
            } else {
                VecDeque::new()
            },
        };
        let hints_for: Arc<[String]> = placement.replicas.clone().into();
        let mut read = QuorumRead {
            coordinator: Arc::clone(self),
            key,
            hints_for,
            reads: FuturesUnordered::new(),
            answers: Vec::new(),
            merged: Object::new(),
            deadline: Instant::now() + opts.timeout,
        };
        // The first R: live replicas, then (sloppy) live fallbacks for the
        // replicas gossip reports down.
        for _ in 0..needed {
            if !read.ask_next(&mut candidates, true) {
                break;
            }
        }
        if read.reads.len() < needed {
            self.quorum_failed(Op::Get);
            return Err(CoordError::QuorumUnavailable { needed, acked: 0 });
        }
        let start = Instant::now();
        let mut speculate_at = Some(start + self.hedge.delay(opts.timeout));
        let mut fallbacks_at = sloppy.then(|| start + opts.timeout / 2);
        let outcome = loop {
            if read.quorum(needed) {
                break Ok(());
            }
            let wake = [speculate_at, fallbacks_at, Some(read.deadline)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(read.deadline);
            match tokio::time::timeout_at(wake, read.reads.next()).await {
                Ok(Some((name, fallback, answer))) => match answer {
                    Some(object) => read.answer(name, fallback, object),
                    // A failed answer: ask the next replica (or fallback).
                    None => {
                        read.ask_next(&mut candidates, sloppy);
                    }
                },
                Ok(None) if !read.ask_next(&mut candidates, sloppy) => {
                    // Nothing in flight and nobody left to ask.
                    break Err(needed);
                }
                Ok(None) => {}
                Err(_) if Instant::now() >= read.deadline => break Err(needed),
                Err(_) => {
                    let now = Instant::now();
                    if speculate_at.is_some_and(|t| t <= now) {
                        // A replica is slow: ask one that was not asked yet.
                        speculate_at = None;
                        if read.ask_next(&mut candidates, false) {
                            self.core.metrics.speculative_reads.inc();
                        }
                    }
                    if fallbacks_at.is_some_and(|t| t <= now) {
                        // Half the time is gone: ask as many fallbacks as
                        // answers are missing (gossip may not have noticed the
                        // replicas that are silent).
                        fallbacks_at = None;
                        for _ in read.answers.len()..needed {
                            read.ask_fallback(&mut candidates);
                        }
                    }
                }
            }
        };
        let acked = read.answers.len();
        // The reads still in flight finish in the background, then read repair
        // writes the merge of every answer back to the stale replicas. The
        // usual read (R replicas asked, all answered, all agreeing) has
        // nothing left to do, and spawns nothing.
        let merged = if read.settled() {
            read.merged
        } else {
            let merged = read.merged.clone();
            tokio::spawn(read.finish(opts.timeout));
            merged
        };
        match outcome {
            Ok(()) => Ok(merged),
            Err(needed) => {
                self.quorum_failed(Op::Get);
                Err(CoordError::QuorumUnavailable { needed, acked })
            }
        }
    }

    /// One replica's (or fallback's) answer to a read: `None` if it failed.
    async fn read_one(
        self: Arc<Self>,
        key: Bytes,
        name: String,
        fallback: bool,
        hints_for: Arc<[String]>,
        timeout: Duration,
    ) -> ReadAnswer {
        let answer = if name == self.core.me() {
            let k = key.clone();
            // As a fallback, this node's copy includes the hints it holds for
            // the replicas (as `on_replica_read` serves them to others).
            let hints_for = if fallback {
                hints_for.to_vec()
            } else {
                Vec::new()
            };
            let read = move |node: &Core| -> Result<Option<Object>, StorageError> {
                let mut object = node.storage.get(&k)?;
                for target in &hints_for {
                    if let Some(h) = node.storage.get_hint(target, &k)? {
                        object.get_or_insert_with(Object::new).sync(&h.object);
                    }
                }
                Ok(object)
            };
            match self.core.read_now(read).await {
                Ok(o) => Some(o),
                Err(e) => {
                    self.core.note_storage_error(&e);
                    None
                }
            }
        } else {
            match self.core.cluster.rpc_addr(&name) {
                None => None,
                Some(addr) => {
                    let hints_for = if fallback {
                        hints_for.to_vec()
                    } else {
                        Vec::new()
                    };
                    let started = Instant::now();
                    let reply = self
                        .core
                        .rpc
                        .call(
                            addr,
                            Some(&name),
                            Request::ReplicaRead { key, hints_for },
                            timeout,
                        )
                        .await;
                    match reply {
                        Ok(Response::Object(o)) => {
                            self.hedge.observe(started.elapsed());
                            Some(o)
                        }
                        _ => None,
                    }
                }
            }
        };
        (name, fallback, answer)
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
            let repaired = if name == self.core.me() {
                let (k, m) = (key.clone(), merged.clone());
                self.core
                    .write_now(move |node| node.storage.merge(&k, &m).map(|_| ()))
                    .await
                    .is_ok()
            } else if let Some(addr) = self.core.cluster.rpc_addr(&name) {
                let request = Request::ReplicaWrite {
                    key: key.clone(),
                    object: merged.clone(),
                    hint_for: None,
                };
                matches!(
                    self.core
                        .rpc
                        .call(addr, Some(&name), request, timeout)
                        .await,
                    Ok(Response::Ack)
                )
            } else {
                false
            };
            if repaired {
                self.core.metrics.read_repairs.inc();
                tracing::debug!(replica = %name, "read repair");
            }
        }
    }

    /// True if this node keeps `key`'s partition under its ring (serving it,
    /// or receiving it as a new replica).
    fn holds_key(&self, key: &[u8]) -> bool {
        let ring = self.core.cluster.ring();
        ring.holds(self.core.me(), Ring::partition_of(token(key)))
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
            .core
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
                    self.core.metrics.hints_stored.inc();
                }
                Response::Ack
            }
            Err(e) => {
                self.core.note_storage_error(&e);
                Response::Error(e.to_string())
            }
        }
    }

    /// Serves replica writes that arrived together from one peer (none a
    /// hint): merged in one storage write, so the run costs one write-ahead
    /// log append instead of one per write. Answers in order; a write for a
    /// partition this node does not hold is refused, as in
    /// [`Coordinator::on_replica_write`]. When a key's lock stripe is busy (a
    /// transfer or bulk load holds it) or the batch fails, the writes are
    /// served one by one instead: a run never waits holding other stripes,
    /// and one bad key does not fail the others.
    pub async fn on_replica_writes(
        self: &Arc<Self>,
        writes: Vec<(Bytes, Object)>,
    ) -> Vec<Response> {
        let held: Vec<bool> = writes.iter().map(|(key, _)| self.holds_key(key)).collect();
        // The writes this node holds, moved (not copied) into the storage
        // call and handed back for the one-by-one path.
        let items: Vec<(Bytes, Object)> = writes
            .into_iter()
            .zip(&held)
            .filter_map(|(w, &h)| h.then_some(w))
            .collect();
        let (merged, items) = if items.len() > 1 {
            self.core
                .write_now(move |node| (node.storage.try_merge_batch(&items), items))
                .await
        } else {
            (None, items)
        };
        match merged {
            Some(Ok(_)) => {
                self.core
                    .metrics
                    .replica_writes_merged
                    .inc_by(items.len() as u64);
                return held
                    .into_iter()
                    .map(|h| {
                        if h {
                            Response::Ack
                        } else {
                            Response::NotReplica
                        }
                    })
                    .collect();
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, writes = items.len(), "a run of replica writes failed; serving them one by one");
            }
            None => {}
        }
        let mut items = items.into_iter();
        let mut answers = Vec::with_capacity(held.len());
        for h in held {
            answers.push(match h.then(|| items.next()).flatten() {
                Some((key, object)) => self.on_replica_write(key, object, None).await,
                None => Response::NotReplica,
            });
        }
        answers
    }

    /// Serves a replica read from a peer (with the hints it holds, as a fallback).
    pub async fn on_replica_read(self: &Arc<Self>, key: Bytes, hints_for: Vec<String>) -> Response {
        if hints_for.is_empty() && !self.holds_key(&key) {
            return Response::NotReplica;
        }
        let result = self
            .core
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
                self.core.note_storage_error(&e);
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
        let placement = Placement::of(&self.core.cluster.ring(), &key);
        // Only a serving replica coordinates: one that gave the partition up
        // (the forwarder's ring is older) must not count itself toward W.
        if !placement.replicas.iter().any(|r| r == self.core.me()) {
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
}
