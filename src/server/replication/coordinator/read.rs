//! The read path: R replicas asked (this node first), more when one fails or
//! is slow (speculative retry), fallbacks in sloppy mode, the merge of the
//! answers returned, and read repair of the stale replicas afterwards.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dynakv_storage::{ObjectStore, StorageError};
use dynakv_versioning::Object;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rand::seq::SliceRandom;
use tokio::time::Instant;

use crate::server::cluster::rpc::{Request, Response};
use crate::server::config::QuorumMode;
use crate::server::core::Core;
use crate::server::metrics::Op;

use super::{CoordError, Coordinator, Placement, RequestOptions};

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
        let placement = Placement::of(&ring, &key, self.core.buckets.n_val_of(&key));
        if placement.replicas.is_empty() {
            return Err(self.unplaceable(&ring, Op::Get));
        }
        let needed = opts.quorum.resolve(placement.n, placement.replicas.len());
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
            let read = move |core: &Core| -> Result<Option<Object>, StorageError> {
                let mut object = core.storage.get(&k)?;
                for target in &hints_for {
                    if let Some(h) = core.storage.get_hint(target, &k)? {
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
                    .write_now(move |core| core.storage.merge(&k, &m).map(|_| ()))
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
}
