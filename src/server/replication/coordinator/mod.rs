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

use crate::server::cluster::rpc::{Request, Response, RpcError, WireError};
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

/// Why the write closure refused.
enum Refused {
    Siblings(TooManySiblings),
    Clock(usize),
}

/// Extra time a forwarder waits beyond the replica's own deadline.
const FORWARD_MARGIN: Duration = Duration::from_millis(1000);

/// Times a write is placed and forwarded while the replicas it reaches
/// refuse it as not theirs (their ring moved on before this node's did).
const FORWARD_ATTEMPTS: usize = 3;

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
    /// This node has not joined a cluster ring yet (started with seeds, it
    /// is still finding them): it cannot place the key. Nothing was written.
    #[error(
        "this node has not joined a cluster ring yet; nothing was written; retry, or wait for GET /health/ready"
    )]
    NotReady,
    /// Every replica refused a forwarded write because it no longer (or not
    /// yet) serves the key, and this node's ring did not catch up in time.
    /// Nothing was written.
    #[error(
        "the key's replicas are changing and none accepted the write; nothing was written; retry"
    )]
    RingChanging,
    /// A broken invariant (a ring that gives a key no replica): logged and
    /// counted.
    #[error("internal error: {0}")]
    Internal(String),
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
            WireError::NotReady => CoordError::NotReady,
            WireError::RingChanging => CoordError::RingChanging,
            WireError::Internal(s) => CoordError::Internal(s),
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
            CoordError::NotReady => WireError::NotReady,
            CoordError::RingChanging => WireError::RingChanging,
            CoordError::Internal(s) => WireError::Internal(s.clone()),
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
    /// The replicas the key is placed on once its partition's handoff
    /// completes (the serving ones when nothing moves).
    target: Vec<String>,
    /// The rest of the preference list, in order: fallbacks for a sloppy quorum.
    fallbacks: Vec<String>,
}

impl Placement {
    fn of(ring: &Ring, key: &[u8]) -> Placement {
        let partition = Ring::partition_of(token(key));
        let replicas: Vec<String> = ring.replicas(partition).map(str::to_string).collect();
        let pending: Vec<String> = ring.pending(partition).map(str::to_string).collect();
        let target: Vec<String> = ring
            .target_replicas(partition)
            .map(str::to_string)
            .collect();
        let fallbacks = ring
            .preference_list(partition)
            .filter(|n| !replicas.iter().any(|r| r == n) && !pending.iter().any(|p| p == n))
            .map(str::to_string)
            .collect();
        Placement {
            replicas,
            pending,
            target,
            fallbacks,
        }
    }
}

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
struct WriteQuorum {
    serving: Vec<String>,
    target: Vec<String>,
    need_serving: usize,
    need_target: usize,
}

impl WriteQuorum {
    /// The quorum of a write at `w` to a key placed by `placement`.
    fn new(placement: &Placement, w: Quorum, n: usize) -> Self {
        WriteQuorum {
            serving: placement.replicas.clone(),
            target: placement.target.clone(),
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
        Self::count(&self.serving, acked) >= self.need_serving
            && Self::count(&self.target, acked) >= self.need_target
    }

    /// True if enough replicas gossip reports up (`reachable`) could make the
    /// quorum (strict mode refuses before storing anything otherwise).
    fn reachable(&self, reachable: impl Fn(&str) -> bool) -> bool {
        let up = |set: &[String]| set.iter().filter(|r| reachable(r)).count();
        up(&self.serving) >= self.need_serving && up(&self.target) >= self.need_target
    }

    /// The failure to answer when `acked` fell short: the set that is short,
    /// with how many it needed and how many it got.
    fn shortfall(&self, acked: &[String]) -> CoordError {
        let serving = Self::count(&self.serving, acked);
        let (needed, acked) = if serving < self.need_serving {
            (self.need_serving, serving)
        } else {
            (self.need_target, Self::count(&self.target, acked))
        };
        CoordError::QuorumUnavailable { needed, acked }
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
            let placement = Placement::of(&ring, &key);
            if placement.replicas.is_empty() {
                return Err(self.unplaceable(&ring, Op::Put));
            }
            let quorum = WriteQuorum::new(&placement, opts.quorum, ring.n());
            if placement.replicas.iter().any(|r| r == self.core.me()) {
                return self
                    .put_as_replica(placement, quorum, key, context, version, opts)
                    .await;
            }
            let request = Request::CoordinateWrite {
                key: key.clone(),
                context: context.clone(),
                version: version.clone(),
                // The requested W; the replica caps it by its own placement.
                w: opts.quorum.resolve(ring.n(), ring.n()),
                strict: opts.mode == QuorumMode::Strict,
                timeout_ms: opts.timeout.as_millis() as u64,
            };
            let needed = opts.quorum.resolve(ring.n(), placement.replicas.len());
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
                Ok(Response::Failed(e)) => return Some(Err(e.into())),
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
    async fn put_as_replica(
        self: &Arc<Self>,
        placement: Placement,
        quorum: WriteQuorum,
        key: Bytes,
        context: VersionVector,
        version: Version,
        opts: RequestOptions,
    ) -> Result<VersionVector, CoordError> {
        let sloppy = opts.mode == QuorumMode::Sloppy;
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
        if placement.replicas.is_empty() {
            return Err(self.unplaceable(&ring, Op::Get));
        }
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
    /// or receiving it as a new replica). A node with no ring yet (the ring
    /// founded a moment ago has not reached it) takes the word of the peer
    /// whose ring names it a replica, rather than refusing the writes of the
    /// cluster's first seconds.
    fn holds_key(&self, key: &[u8]) -> bool {
        let ring = self.core.cluster.ring();
        ring.is_empty() || ring.holds(self.core.me(), Ring::partition_of(token(key)))
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
        let ring = self.core.cluster.ring();
        let placement = Placement::of(&ring, &key);
        // Only a serving replica coordinates: one that gave the partition up
        // (the forwarder's ring is older) must not count itself toward W.
        if !placement.replicas.iter().any(|r| r == self.core.me()) {
            return Response::NotReplica;
        }
        let quorum = WriteQuorum::new(&placement, opts.quorum, ring.n());
        match self
            .put_as_replica(placement, quorum, key, context, version, opts)
            .await
        {
            Ok(ctx) => Response::Written(ctx),
            Err(e) => Response::Failed((&e).into()),
        }
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

    fn quorum(p: &Placement, w: usize) -> WriteQuorum {
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
