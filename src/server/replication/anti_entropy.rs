//! Anti-entropy in the node (Dynamo §4.7): for every partition it replicates, a
//! node compares its Merkle tree with each other replica's and copies only the
//! keys that differ, both ways.
//!
//! A pass, with one peer at a time:
//!
//! 1. **Summary** — one hash over our roots of every partition we share with the
//!    peer. Identical replicas stop here, having exchanged a few dozen bytes
//!    whatever their size.
//! 2. **Groups and roots** — otherwise the peer answers with one hash per group
//!    of 32 partitions; only differing groups are asked for their roots, and only
//!    partitions whose roots differ go on.
//! 3. **Descent** — level by level, every frontier node of every differing
//!    partition in one request, down to leaves listing exact `(key, digest)`
//!    pairs ([`dynakv_antientropy::compare`]).
//! 4. **Repair** — fetch the peer's objects for keys it has differently, push ours
//!    for keys we have differently; both sides merge (DVVSet sync), so repair
//!    never loses a concurrent write.
//!
//! Trees are built from a snapshot scan of the digest column family — a few
//! bytes per key, never the values — and cached per partition until a write to
//! the partition changes its generation.
//!
//! **Tombstone purge** — a key whose every version is a tombstone older than
//! `tombstone_grace_s` is removed once this pass has synced the partition with
//! every other replica and each of them removed its identical copy. Anti-entropy
//! must therefore reach every range within the grace period: a replica that
//! missed a delete and is not reconciled before the tombstone is purged would
//! bring the deleted value back. With the defaults (a pass every 600 s, 24 h of
//! grace) every range is compared about 144 times within the grace period.
//!
//! Passes run every `anti_entropy_interval_s` (with jitter), throttled between
//! batches so client traffic keeps its latency, and on demand through
//! `POST /admin/repair` / `dynakv repair`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dynakv_antientropy::{Hash, NodeId, Tree, compare};
use dynakv_ring::Ring;
use dynakv_storage::{ObjectStore, StorageError, codec};
use dynakv_versioning::Object;
use parking_lot::Mutex;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::server::clock::now_ms;
use crate::server::cluster::rpc::{Request, Response};
use crate::server::core::Core;
use crate::server::worker::{Next, Worker, WorkerHandle, jittered};

/// Nodes asked for per descent request.
const NODES_PER_REQUEST: usize = 2048;
/// Objects fetched or pushed per request, at most.
const OBJECTS_PER_REQUEST: usize = 256;
/// Bytes of objects per fetch answer or push request, about: large values
/// (up to `max_value_bytes`) must never make a frame exceed the limit.
const BYTES_PER_REQUEST: usize = 8 << 20;
/// Partitions per group hash (step 1b of the exchange).
const GROUP: usize = 32;
/// Pause between batches of a background pass.
const THROTTLE: Duration = Duration::from_millis(20);
/// How long an RPC of a pass may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A partition's tree and its tombstone-only keys (purge candidates).
pub struct PartitionTree {
    /// The Merkle tree.
    pub tree: Tree,
    /// `(key, digest, tombstone_since_ms)` of keys whose versions are all tombstones.
    pub tombstones: Vec<(Vec<u8>, u64, u64)>,
}

/// What a pass did (the summary of `POST /admin/repair`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct PassSummary {
    /// (partition, peer) pairs compared.
    pub ranges_compared: u64,
    /// Of those, pairs whose trees differed.
    pub ranges_differing: u64,
    /// Keys whose stored object changed, here or on a peer.
    pub keys_repaired: u64,
    /// Bytes of requests sent.
    pub bytes_sent: u64,
    /// Bytes of responses received.
    pub bytes_received: u64,
    /// Tombstones purged.
    pub tombstones_purged: u64,
    /// Keys held here although their bucket's `n_val` leaves this node out
    /// (a ring change moved it down a partition's list, or `n_val` was
    /// lowered), handed to their replicas and removed here.
    pub keys_rehomed: u64,
    /// Peers that could not be compared (down or failing).
    pub peers_skipped: Vec<String>,
    /// Duration.
    pub ms: u64,
}

/// A cached tree: the partition generation it was built at, when it was last
/// used, and the tree.
type CachedTree = (u64, Instant, Arc<PartitionTree>);

/// Most keys per push of keys to their replicas (well under the RPC's item
/// limit, whatever the records' size).
const PUSH_ITEMS: usize = 4096;

/// What [`push_to_replicas`] does with a key once its replicas hold it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterPush {
    /// Keep this copy (a handed-off partition, dropped whole afterwards).
    Keep,
    /// Remove this copy if it did not change meanwhile and the ring is
    /// still the one the push was placed by (a stray outside its `n_val`).
    Remove,
}

/// Sends the keys of partition `p` that `select` picks to their replicas
/// under the current ring (the first `n_val` of the partition's target
/// list; a merge, so what they hold already is unchanged), one scan batch at
/// a time. A replica that refuses (it does not hold the partition under its
/// ring) or fails to store counts as a failure. Returns the keys removed
/// (`AfterPush::Remove`), or `None` if a replica did not take its keys, or
/// the ring changed while the keys were being placed.
pub(crate) async fn push_to_replicas(
    core: &Arc<Core>,
    p: usize,
    select: impl Fn(&[u8]) -> bool,
    after_push: AfterPush,
) -> Option<u64> {
    let ring = core.cluster.ring();
    let mut removed = 0;
    let mut after: Option<Vec<u8>> = None;
    loop {
        let resume = after.clone();
        let batch = core
            .blocking(move |core| {
                core.storage
                    .scan_objects(Ring::range_of(p), resume.as_deref(), 4 << 20)
            })
            .await
            .ok()?;
        let mut by_target: BTreeMap<String, Vec<(Bytes, Object)>> = BTreeMap::new();
        let mut pushed = Vec::new();
        for (key, object, _) in batch.items {
            if !select(&key) {
                continue;
            }
            let n_val = core.buckets.n_val_of(&key);
            let key = Bytes::from(key);
            for target in ring.target_replicas(p).take(n_val) {
                if target != core.me() {
                    by_target
                        .entry(target.to_string())
                        .or_default()
                        .push((key.clone(), object.clone()));
                }
            }
            pushed.push((key, object));
        }
        for (target, items) in by_target {
            let addr = core.cluster.rpc_addr(&target)?;
            // Requests of at most PUSH_ITEMS keys and about BYTES_PER_REQUEST.
            let mut chunks: Vec<Vec<(Bytes, Object)>> = vec![Vec::new()];
            let mut bytes = 0;
            for item in items {
                let size = item.0.len()
                    + item
                        .1
                        .values()
                        .map(|v| v.data.as_ref().map_or(0, |d| d.len()))
                        .sum::<usize>();
                let last = chunks.last_mut().expect("never empty");
                if !last.is_empty()
                    && (last.len() >= PUSH_ITEMS || bytes + size > BYTES_PER_REQUEST)
                {
                    chunks.push(Vec::new());
                    bytes = 0;
                }
                bytes += size;
                chunks.last_mut().expect("never empty").push(item);
            }
            for chunk in chunks.into_iter().filter(|c| !c.is_empty()) {
                let request = Request::AeHandOver { items: chunk };
                let answer = core
                    .rpc
                    .call(addr, Some(&target), request, Duration::from_secs(30))
                    .await;
                if !matches!(answer, Ok(Response::AePushed(_))) {
                    tracing::info!(partition = p, %target, "could not hand keys to their replica yet");
                    return None;
                }
            }
        }
        if after_push == AfterPush::Remove && !pushed.is_empty() {
            // Placed by the ring read at the start: removed only if the
            // ring is still that one.
            if !Arc::ptr_eq(&core.cluster.ring(), &ring) {
                return None;
            }
            removed += core
                .blocking(move |core| {
                    pushed
                        .iter()
                        .filter(|(k, o)| core.storage.remove_if_same(k, o).unwrap_or(false))
                        .count() as u64
                })
                .await;
        }
        if batch.done {
            return Some(removed);
        }
        after = batch.resume_after;
    }
}

/// Trees unused for this long are dropped: the cache only has to live through
/// one exchange, and holding every tree would cost ~50 bytes per stored key.
const TREE_IDLE: Duration = Duration::from_secs(60);

/// Anti-entropy: Merkle-tree exchanges with the other replicas over the
/// node's storage, cluster view and RPC ([`Core`]), and their state.
pub struct AntiEntropy {
    /// Storage, cluster view, RPC.
    pub core: Arc<Core>,
    /// Trees by (partition, tier).
    trees: Mutex<HashMap<(usize, u8), CachedTree>>,
    /// One pass at a time.
    pass: tokio::sync::Mutex<()>,
    status: Mutex<Status>,
}

#[derive(Default)]
struct Status {
    running: bool,
    passes: u64,
    last: Option<(u64, PassSummary)>,
    totals: PassSummary,
    /// When each partition was last compared with all its peers (ms).
    compared_at: BTreeMap<usize, u64>,
    /// Partitions that differed in the last pass.
    differing: BTreeSet<usize>,
}

fn runs(parts: &[usize]) -> Vec<(u16, u16)> {
    let mut out: Vec<(u16, u16)> = Vec::new();
    for &p in parts {
        let p = p as u16;
        match out.last_mut() {
            Some((_, end)) if *end + 1 == p => *end = p,
            _ => out.push((p, p)),
        }
    }
    out
}

fn from_runs(runs: &[(u16, u16)]) -> Vec<usize> {
    runs.iter()
        .flat_map(|&(a, b)| usize::from(a)..=usize::from(b.min(dynakv_ring::PARTITIONS as u16 - 1)))
        .collect()
}

fn summary_of(roots: &[Hash]) -> Hash {
    let mut h = Sha256::new();
    for r in roots {
        h.update(r);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize()[..16]);
    out
}

fn groups_of(roots: &[Hash]) -> Vec<Hash> {
    roots.chunks(GROUP).map(summary_of).collect()
}

fn size<T: Serialize>(value: &T) -> u64 {
    codec::encode(value).len() as u64
}

impl AntiEntropy {
    /// Anti-entropy over `core`, with nothing cached yet.
    pub fn new(core: Arc<Core>) -> AntiEntropy {
        AntiEntropy {
            core,
            trees: Mutex::default(),
            pass: tokio::sync::Mutex::default(),
            status: Mutex::default(),
        }
    }

    /// The tree of a partition's keys whose bucket keeps more than `tier`
    /// replicas (every key at tier 0), from cache if no write touched the
    /// partition since.
    pub async fn partition_tree(
        self: &Arc<Self>,
        partition: usize,
        tier: u8,
    ) -> Result<Arc<PartitionTree>, StorageError> {
        // A write to the partition, or a change of bucket metadata (which
        // keys a tier holds), makes the cached tree stale.
        let generation = self
            .core
            .storage
            .generation(partition)
            .wrapping_add(self.core.buckets.generation() << 40);
        if let Some((g, used, t)) = self.trees.lock().get_mut(&(partition, tier))
            && *g == generation
        {
            *used = Instant::now();
            return Ok(Arc::clone(t));
        }
        let built = self
            .core
            .blocking(move |core| -> Result<PartitionTree, StorageError> {
                let mut items = Vec::new();
                let mut tombstones = Vec::new();
                core.storage
                    .for_each_digest(Ring::range_of(partition), &mut |t, key, entry| {
                        if tier > 0 && core.buckets.n_val_of(key) <= usize::from(tier) {
                            return true;
                        }
                        if let Some(since) = entry.tombstone_since {
                            tombstones.push((key.to_vec(), entry.digest, since));
                        }
                        items.push((t, key.to_vec(), entry.digest));
                        true
                    })?;
                Ok(PartitionTree {
                    tree: Tree::build(Ring::range_of(partition), items),
                    tombstones,
                })
            })
            .await?;
        let built = Arc::new(built);
        let mut cache = self.trees.lock();
        cache.retain(|_, (_, used, _)| used.elapsed() < TREE_IDLE);
        cache.insert(
            (partition, tier),
            (generation, Instant::now(), Arc::clone(&built)),
        );
        Ok(built)
    }

    async fn trees(
        self: &Arc<Self>,
        parts: &[usize],
        tier: u8,
    ) -> Result<Vec<Arc<PartitionTree>>, StorageError> {
        let mut out = Vec::with_capacity(parts.len());
        for &p in parts {
            out.push(self.partition_tree(p, tier).await?);
        }
        Ok(out)
    }

    /// Runs one anti-entropy pass over every partition this node replicates.
    pub async fn repair_pass(self: &Arc<Self>, throttle: bool) -> PassSummary {
        let _one_at_a_time = self.pass.lock().await;
        self.status.lock().running = true;
        let started = Instant::now();
        let ring = self.core.cluster.ring();
        let me = self.core.identity.name.clone();
        let mine = ring.partitions_of(&me);
        // Per peer and tier: the keys both replicate are those whose bucket
        // keeps more replicas than the later of the two nodes' places in the
        // partition's list (every key, when no bucket sets `n_val`).
        let tiered = self.core.buckets.sets_n_val();
        let mut by_peer: BTreeMap<(String, u8), Vec<usize>> = BTreeMap::new();
        for &p in &mine {
            let list: Vec<&str> = ring.replicas(p).collect();
            let rank_of = |n: &str| list.iter().position(|r| *r == n).unwrap_or(0);
            for r in list.iter().filter(|r| **r != me) {
                let tier = if tiered {
                    rank_of(&me).max(rank_of(r)) as u8
                } else {
                    0
                };
                by_peer.entry((r.to_string(), tier)).or_default().push(p);
            }
        }
        let mut summary = PassSummary::default();
        let mut synced: HashMap<usize, usize> = HashMap::new();
        let mut differing = BTreeSet::new();
        for ((peer, tier), parts) in &by_peer {
            if self.core.is_down(peer) {
                summary.peers_skipped.push(peer.clone());
                continue;
            }
            match self
                .exchange(peer, parts, *tier, throttle, &mut summary, &mut differing)
                .await
            {
                Ok(()) => {
                    for &p in parts {
                        *synced.entry(p).or_default() += 1;
                    }
                }
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "anti-entropy with a peer failed");
                    summary.peers_skipped.push(peer.clone());
                }
            }
        }
        // A partition in transit is not purged: its new replicas may still be
        // receiving tombstones the old ones would drop.
        let complete: Vec<usize> = mine
            .iter()
            .copied()
            .filter(|&p| {
                !ring.is_moving(p)
                    && synced.get(&p).copied().unwrap_or(0) + 1 >= ring.replicas(p).count()
            })
            .collect();
        summary.tombstones_purged = self.purge(&ring, &complete, &mut summary).await;
        if self.core.buckets.sets_n_val() {
            summary.keys_rehomed = self.rehome_strays(&mine).await;
        }
        summary.ms = started.elapsed().as_millis() as u64;
        self.record(&summary, &complete, differing);
        summary
    }

    fn record(&self, summary: &PassSummary, complete: &[usize], differing: BTreeSet<usize>) {
        let m = &self.core.metrics;
        m.ae_passes.inc();
        m.ae_ranges_compared.inc_by(summary.ranges_compared);
        m.ae_ranges_differing.inc_by(summary.ranges_differing);
        m.ae_keys_repaired.inc_by(summary.keys_repaired);
        m.ae_bytes_sent.inc_by(summary.bytes_sent);
        m.ae_bytes_received.inc_by(summary.bytes_received);
        m.ae_tombstones_purged.inc_by(summary.tombstones_purged);
        m.ae_last_pass_ms.set(summary.ms as i64);
        let now = now_ms();
        let mut st = self.status.lock();
        st.running = false;
        st.passes += 1;
        for &p in complete {
            st.compared_at.insert(p, now);
        }
        st.differing = differing;
        let t = &mut st.totals;
        t.ranges_compared += summary.ranges_compared;
        t.ranges_differing += summary.ranges_differing;
        t.keys_repaired += summary.keys_repaired;
        t.bytes_sent += summary.bytes_sent;
        t.bytes_received += summary.bytes_received;
        t.tombstones_purged += summary.tombstones_purged;
        t.ms += summary.ms;
        st.last = Some((now, summary.clone()));
        tracing::info!(
            ranges_compared = summary.ranges_compared,
            ranges_differing = summary.ranges_differing,
            keys_repaired = summary.keys_repaired,
            bytes_sent = summary.bytes_sent,
            bytes_received = summary.bytes_received,
            tombstones_purged = summary.tombstones_purged,
            ms = summary.ms,
            "anti-entropy pass"
        );
    }

    /// Anti-entropy figures for `/admin/status`.
    pub fn anti_entropy_status(&self) -> serde_json::Value {
        let st = self.status.lock();
        let now = now_ms();
        let replicated = self
            .core
            .cluster
            .ring()
            .partitions_of(&self.core.identity.name);
        let never = replicated
            .iter()
            .filter(|p| !st.compared_at.contains_key(p))
            .count();
        let oldest = replicated
            .iter()
            .filter_map(|p| st.compared_at.get(p))
            .min()
            .map(|t| now.saturating_sub(*t));
        serde_json::json!({
            "running": st.running,
            "passes": st.passes,
            "interval_s": self.core.config.anti_entropy_interval_s,
            "last_pass": st.last.as_ref().map(|(at, s)| serde_json::json!({"ms_ago": now.saturating_sub(*at), "summary": s})),
            "totals": st.totals,
            "partitions_replicated": replicated.len(),
            "partitions_never_compared": never,
            "oldest_comparison_ms_ago": oldest,
            "partitions_differing_last_pass": st.differing,
        })
    }

    async fn call_counted(
        self: &Arc<Self>,
        peer: &str,
        request: Request,
        summary: &mut PassSummary,
    ) -> Result<Response, String> {
        let addr = self
            .core
            .cluster
            .rpc_addr(peer)
            .ok_or_else(|| format!("{peer} has no address"))?;
        summary.bytes_sent += size(&request);
        let response = self
            .core
            .rpc
            .call(addr, Some(peer), request, CALL_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        summary.bytes_received += size(&response);
        Ok(response)
    }

    /// Compares and repairs the partitions shared with one peer.
    pub(crate) async fn exchange(
        self: &Arc<Self>,
        peer: &str,
        parts: &[usize],
        tier: u8,
        throttle: bool,
        summary: &mut PassSummary,
        differing_parts: &mut BTreeSet<usize>,
    ) -> Result<(), String> {
        let trees = self.trees(parts, tier).await.map_err(|e| e.to_string())?;
        let roots: Vec<Hash> = trees.iter().map(|t| t.tree.root()).collect();
        let request = Request::AeCompare {
            partitions: runs(parts),
            summary: summary_of(&roots),
            tier,
        };
        summary.ranges_compared += parts.len() as u64;
        let ours = groups_of(&roots);
        let theirs = match self.call_counted(peer, request, summary).await? {
            Response::AeSummary { equal: true, .. } => return Ok(()),
            Response::AeSummary {
                groups: Some(g), ..
            } if g.len() == ours.len() => g,
            other => return Err(format!("unexpected answer {other:?}")),
        };
        // Indexes (into `parts`) of the partitions in differing groups.
        let suspects: Vec<usize> = (0..ours.len())
            .filter(|&g| ours[g] != theirs[g])
            .flat_map(|g| g * GROUP..((g + 1) * GROUP).min(parts.len()))
            .collect();
        let suspect_parts: Vec<usize> = suspects.iter().map(|&i| parts[i]).collect();
        let request = Request::AeRoots {
            partitions: runs(&suspect_parts),
            tier,
        };
        let their_roots = match self.call_counted(peer, request, summary).await? {
            Response::AeRoots(r) if r.len() == suspects.len() => r,
            other => return Err(format!("unexpected answer {other:?}")),
        };
        let by_partition: HashMap<usize, &PartitionTree> = parts
            .iter()
            .copied()
            .zip(trees.iter().map(|t| t.as_ref()))
            .collect();
        let mut frontier: Vec<(u16, NodeId)> = Vec::new();
        for (&i, theirs) in suspects.iter().zip(their_roots.iter()) {
            if roots[i] != *theirs {
                let p = parts[i];
                frontier.push((p as u16, NodeId::ROOT));
                differing_parts.insert(p);
                summary.ranges_differing += 1;
            }
        }
        let (mut fetch, mut push) = (BTreeSet::<Vec<u8>>::new(), BTreeSet::<Vec<u8>>::new());
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for chunk in frontier.chunks(NODES_PER_REQUEST) {
                let request = Request::AeNodes {
                    nodes: chunk.to_vec(),
                    tier,
                };
                let views = match self.call_counted(peer, request, summary).await? {
                    Response::AeNodes(v) if v.len() == chunk.len() => v,
                    other => return Err(format!("unexpected answer {other:?}")),
                };
                for (&(p, id), view) in chunk.iter().zip(views.iter()) {
                    let Some(tree) = by_partition.get(&usize::from(p)) else {
                        continue;
                    };
                    let d = compare(&tree.tree, id, view);
                    next.extend(d.explore.into_iter().map(|c| (p, c)));
                    fetch.extend(d.fetch);
                    push.extend(d.push);
                }
                if throttle {
                    tokio::time::sleep(THROTTLE).await;
                }
            }
            frontier = next;
        }
        let mut repaired: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut fetch: std::collections::VecDeque<Bytes> =
            fetch.into_iter().map(Bytes::from).collect();
        while !fetch.is_empty() {
            let chunk: Vec<Bytes> = fetch.iter().take(OBJECTS_PER_REQUEST).cloned().collect();
            let request = Request::AeFetch { keys: chunk };
            let objects = match self.call_counted(peer, request, summary).await? {
                // The peer answers a prefix of the keys, cut by bytes.
                Response::AeObjects(o) if !o.is_empty() || fetch.is_empty() => o,
                other => return Err(format!("unexpected answer {other:?}")),
            };
            for _ in 0..objects.len() {
                fetch.pop_front();
            }
            let changed = self
                .core
                .blocking(move |core| {
                    let mut changed = Vec::new();
                    for (key, object) in objects.into_iter() {
                        let Some(object) = object else { continue };
                        match core.storage.merge(&key, &object) {
                            Ok(out) if out.changed => changed.push(key.to_vec()),
                            Ok(_) => {}
                            Err(e) => tracing::error!(error = %e, "anti-entropy merge failed"),
                        }
                    }
                    changed
                })
                .await;
            repaired.extend(changed);
            if throttle {
                tokio::time::sleep(THROTTLE).await;
            }
        }
        let mut push: std::collections::VecDeque<Vec<u8>> = push.into_iter().collect();
        while !push.is_empty() {
            // Read objects until the byte budget (at least one per request).
            let candidates: Vec<Vec<u8>> = push.iter().take(OBJECTS_PER_REQUEST).cloned().collect();
            let (items, taken): (Vec<(Bytes, Object)>, usize) = self
                .core
                .blocking(move |core| {
                    let mut items = Vec::new();
                    let mut bytes = 0usize;
                    let mut taken = 0usize;
                    for k in candidates {
                        if taken > 0 && bytes >= BYTES_PER_REQUEST {
                            break;
                        }
                        taken += 1;
                        if let Ok(Some(o)) = core.storage.get(&k) {
                            bytes += codec::encode(&o).len() + k.len();
                            items.push((Bytes::from(k), o));
                        }
                    }
                    (items, taken)
                })
                .await;
            for _ in 0..taken {
                push.pop_front();
            }
            if items.is_empty() {
                continue;
            }
            match self
                .call_counted(peer, Request::AePush { items }, summary)
                .await?
            {
                Response::AePushed(changed) => {
                    repaired.extend(changed.into_iter().map(|k| k.to_vec()))
                }
                other => return Err(format!("unexpected answer {other:?}")),
            }
            if throttle {
                tokio::time::sleep(THROTTLE).await;
            }
        }
        summary.keys_repaired += repaired.len() as u64;
        Ok(())
    }

    /// Hands the keys this node holds but whose bucket's `n_val` leaves it
    /// out (its place in the partition's list is `n_val` or later) to their
    /// replicas, then removes them here if they did not change meanwhile.
    /// Only in partitions at rest: a partition in transit is handed off by
    /// ownership handoff. Without this, a key of a bucket with fewer than N
    /// replicas could sit where no read looks after a ring change moved its
    /// first replica down the list.
    async fn rehome_strays(self: &Arc<Self>, mine: &[usize]) -> u64 {
        let me = self.core.me().to_string();
        let mut rehomed = 0;
        for &p in mine {
            // The ring as it is now, not as the pass began.
            let ring = self.core.cluster.ring();
            if ring.is_moving(p) {
                continue;
            }
            // The first replica of a partition holds every key of it.
            let Some(rank) = ring.replicas(p).position(|r| r == me).filter(|&r| r > 0) else {
                continue;
            };
            let core = &self.core;
            let select = |key: &[u8]| core.buckets.n_val_of(key) <= rank;
            rehomed += push_to_replicas(core, p, select, AfterPush::Remove)
                .await
                .unwrap_or(0);
        }
        if rehomed > 0 {
            tracing::info!(
                keys = rehomed,
                "keys held outside their bucket's n_val handed to their replicas"
            );
        }
        rehomed
    }

    /// Purges tombstones past their grace in partitions every replica synced.
    async fn purge(
        self: &Arc<Self>,
        ring: &Ring,
        complete: &[usize],
        summary: &mut PassSummary,
    ) -> u64 {
        let grace_ms = self.core.config.tombstone_grace_s.saturating_mul(1000);
        let cutoff = now_ms().saturating_sub(grace_ms);
        let mut purged = 0;
        for &p in complete {
            let Ok(tree) = self.partition_tree(p, 0).await else {
                continue;
            };
            let candidates: Vec<(Bytes, u64)> = tree
                .tombstones
                .iter()
                .filter(|(_, _, since)| *since <= cutoff)
                .map(|(k, d, _)| (Bytes::from(k.clone()), *d))
                .collect();
            if candidates.is_empty() {
                continue;
            }
            let mut agreed: BTreeSet<Bytes> = candidates.iter().map(|(k, _)| k.clone()).collect();
            let me = self.core.identity.name.clone();
            for peer in ring.replicas(p).filter(|r| *r != me) {
                let request = Request::AePurge {
                    items: candidates.clone(),
                };
                match self.call_counted(peer, request, summary).await {
                    Ok(Response::AePurged(removed)) => {
                        let removed: BTreeSet<Bytes> = removed.into_iter().collect();
                        agreed.retain(|k| removed.contains(k));
                    }
                    _ => agreed.clear(),
                }
            }
            let items: Vec<(Bytes, u64)> = candidates
                .into_iter()
                .filter(|(k, _)| agreed.contains(k))
                .collect();
            purged += self
                .core
                .blocking(move |core| {
                    items
                        .iter()
                        .filter(|(k, d)| core.storage.remove_if_unchanged(k, *d).unwrap_or(false))
                        .count() as u64
                })
                .await;
        }
        purged
    }

    /// Serves `AeCompare`.
    pub async fn on_ae_compare(
        self: &Arc<Self>,
        partitions: Vec<(u16, u16)>,
        summary: Hash,
        tier: u8,
    ) -> Response {
        let parts = from_runs(&partitions);
        match self.trees(&parts, tier).await {
            Ok(trees) => {
                let roots: Vec<Hash> = trees.iter().map(|t| t.tree.root()).collect();
                let equal = summary_of(&roots) == summary;
                Response::AeSummary {
                    equal,
                    groups: (!equal).then(|| groups_of(&roots)),
                }
            }
            Err(e) => Response::Error(e.to_string()),
        }
    }

    /// Serves `AeRoots`.
    pub async fn on_ae_roots(self: &Arc<Self>, partitions: Vec<(u16, u16)>, tier: u8) -> Response {
        match self.trees(&from_runs(&partitions), tier).await {
            Ok(trees) => Response::AeRoots(trees.iter().map(|t| t.tree.root()).collect()),
            Err(e) => Response::Error(e.to_string()),
        }
    }

    /// Serves `AeNodes`.
    pub async fn on_ae_nodes(self: &Arc<Self>, nodes: Vec<(u16, NodeId)>, tier: u8) -> Response {
        let mut views = Vec::with_capacity(nodes.len());
        for (p, id) in nodes {
            match self.partition_tree(usize::from(p), tier).await {
                Ok(t) => views.push(t.tree.node(id)),
                Err(e) => return Response::Error(e.to_string()),
            }
        }
        Response::AeNodes(views)
    }

    /// Serves `AeFetch`: the objects of a prefix of `keys`, cut at about
    /// 8 MiB (at least one key); the caller asks again for the
    /// rest.
    pub async fn on_ae_fetch(self: &Arc<Self>, keys: Vec<Bytes>) -> Response {
        let objects = self
            .core
            .blocking(move |core| {
                let mut out = Vec::new();
                let mut bytes = 0usize;
                for k in keys.into_iter().take(OBJECTS_PER_REQUEST) {
                    if !out.is_empty() && bytes >= BYTES_PER_REQUEST {
                        break;
                    }
                    let o = core.storage.get(&k).ok().flatten();
                    bytes += k.len() + o.as_ref().map_or(0, |o| codec::encode(o).len());
                    out.push((k, o));
                }
                out
            })
            .await;
        Response::AeObjects(objects)
    }

    /// Serves `AePush`.
    pub async fn on_ae_push(self: &Arc<Self>, items: Vec<(Bytes, Object)>) -> Response {
        let changed = self
            .core
            .blocking(move |core| {
                items
                    .into_iter()
                    .filter_map(|(k, o)| match core.storage.merge(&k, &o) {
                        Ok(out) if out.changed => Some(k),
                        _ => None,
                    })
                    .collect()
            })
            .await;
        Response::AePushed(changed)
    }

    /// Serves `AeHandOver`: keys whose sender is about to drop its copy.
    /// Refused unless this node holds every key's partition under its ring,
    /// and answered only once every key is stored: the sender deletes after
    /// this answer, so a failed merge must not look like a success.
    pub async fn on_hand_over(self: &Arc<Self>, items: Vec<(Bytes, Object)>) -> Response {
        let ring = self.core.cluster.ring();
        let me = self.core.me();
        if items
            .iter()
            .any(|(k, _)| !ring.holds(me, Ring::partition_of(dynakv_ring::token(k))))
        {
            return Response::NotReplica;
        }
        let result = self
            .core
            .blocking(move |core| -> Result<Vec<Bytes>, StorageError> {
                let mut changed = Vec::new();
                for (k, o) in items {
                    if core.storage.merge(&k, &o)?.changed {
                        changed.push(k);
                    }
                }
                Ok(changed)
            })
            .await;
        match result {
            Ok(changed) => Response::AePushed(changed),
            Err(e) => {
                self.core.note_storage_error(&e);
                Response::Error(e.to_string())
            }
        }
    }

    /// Serves `AePurge`.
    pub async fn on_ae_purge(self: &Arc<Self>, items: Vec<(Bytes, u64)>) -> Response {
        let removed = self
            .core
            .blocking(move |core| {
                items
                    .into_iter()
                    .filter(|(k, d)| core.storage.remove_if_unchanged(k, *d).unwrap_or(false))
                    .map(|(k, _)| k)
                    .collect()
            })
            .await;
        Response::AePurged(removed)
    }
}

/// Anti-entropy (Dynamo §4.7): every `anti_entropy_interval_s` (jittered),
/// one repair pass over every range this node replicates.
///
/// With buckets that keep fewer replicas than N, also a pass soon after the
/// ring settles on a new version: a ring change can move a node up a
/// partition's list, where it lacks keys of such buckets, or down, where it
/// holds keys no read looks for; the pass repairs the first and hands the
/// second to their replicas, in seconds instead of an interval.
pub struct AntiEntropyWorker {
    ae: Arc<AntiEntropy>,
    /// The ring of the last pass (or the node's first).
    last_ring: Option<Arc<Ring>>,
}

/// How often the worker looks whether the ring settled on a new version.
const RING_CHECK: Duration = Duration::from_secs(1);

impl AntiEntropyWorker {
    /// An anti-entropy worker over `ae`.
    pub fn new(ae: Arc<AntiEntropy>) -> AntiEntropyWorker {
        let ring = ae.core.cluster.ring();
        AntiEntropyWorker {
            ae,
            last_ring: Some(ring),
        }
    }

    /// True if some bucket keeps fewer than N replicas and the ring settled
    /// (nothing moving) on a version other than the last pass's.
    fn ring_settled_anew(&self) -> bool {
        let core = &self.ae.core;
        if !core.buckets.sets_n_val() {
            return false;
        }
        let ring = core.cluster.ring();
        let Some(last) = &self.last_ring else {
            return false;
        };
        !Arc::ptr_eq(last, &ring) && !ring.is_empty() && ring.moving().next().is_none()
    }
}

impl Worker for AntiEntropyWorker {
    const NAME: &'static str = "anti_entropy";
    // A pass can take minutes; it holds nothing that an interruption breaks.
    const INTERRUPTIBLE: bool = true;

    async fn wait_for_work(&mut self) {
        let interval = self
            .ae
            .core
            .config
            .anti_entropy_interval_s
            .saturating_mul(1000);
        let until = Instant::now() + jittered(interval);
        while Instant::now() < until {
            tokio::time::sleep(RING_CHECK.min(until.saturating_duration_since(Instant::now())))
                .await;
            if self.ring_settled_anew() {
                tracing::info!(
                    "the ring settled on a new version: anti-entropy now, for buckets with fewer replicas than N"
                );
                return;
            }
        }
    }

    async fn work(&mut self, status: &WorkerHandle) -> Next {
        status.busy();
        self.last_ring = Some(self.ae.core.cluster.ring());
        let summary = self.ae.repair_pass(true).await;
        if !summary.peers_skipped.is_empty() {
            status.error(format!(
                "peers skipped: {}",
                summary.peers_skipped.join(", ")
            ));
        }
        status.idle();
        Next::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_runs_round_trip() {
        let parts = vec![0, 1, 2, 5, 7, 8, 1023];
        assert_eq!(runs(&parts), vec![(0, 2), (5, 5), (7, 8), (1023, 1023)]);
        assert_eq!(from_runs(&runs(&parts)), parts);
        assert_eq!(runs(&(0..1024).collect::<Vec<_>>()), vec![(0, 1023)]);
    }
}
