//! Bucket types and bucket properties on a node: the cluster-wide map
//! (`dynakv_buckets::BucketMetadata`) kept in memory, persisted in the
//! metadata column family, exchanged with peers each gossip round, and
//! resolved into each key's properties (its `n_val` above all) for every part
//! of the node that places or compares keys.
//!
//! Spreading: a change made here is persisted, then pushed to every member at
//! once; each gossip round also compares digests with one peer and sends the
//! map where they differ, so a node that was down or joins later converges.

use std::collections::HashMap;
use std::sync::Arc;

use dynakv_buckets::{
    BucketMetadata, MetadataError, Namespace, Props, QuorumMode, Stamp, decode_key,
};
use parking_lot::RwLock;

use crate::server::clock::now_ms;
use crate::server::config::{self, Config};

/// Most buckets whose resolved properties are cached.
const MAX_CACHED: usize = 10_000;

/// The metadata record the map is persisted under.
pub const META_BUCKETS: &str = "buckets";

/// The node's copy of the cluster's bucket metadata, with resolved
/// properties cached per bucket.
pub struct Buckets {
    map: RwLock<BucketMetadata>,
    cache: RwLock<HashMap<Namespace, Arc<Props>>>,
    /// The default bucket's properties (the native API's), resolved once per
    /// change: most keys live there.
    default_props: RwLock<Arc<Props>>,
    /// True if any type or bucket sets `n_val`: otherwise every key has N
    /// replicas and nothing needs to look at a key's bucket to place it.
    sets_n_val: std::sync::atomic::AtomicBool,
    /// Bumped on every change of the map: properties computed from an older
    /// map are not cached.
    generation: std::sync::atomic::AtomicU64,
    n: usize,
    quorum: QuorumMode,
    me: String,
}

/// The default quorum mode of buckets: the node's `quorum` setting.
fn mode_of(config: &Config) -> QuorumMode {
    match config.quorum {
        config::QuorumMode::Sloppy => QuorumMode::Sloppy,
        config::QuorumMode::Strict => QuorumMode::Strict,
    }
}

impl Buckets {
    /// The registry over `map` (as persisted, or empty).
    pub fn new(config: &Config, me: &str, map: BucketMetadata) -> Buckets {
        let b = Buckets {
            default_props: RwLock::new(Arc::new(Props::defaults(config.n, true, mode_of(config)))),
            map: RwLock::new(map),
            cache: RwLock::default(),
            sets_n_val: Default::default(),
            generation: Default::default(),
            n: config.n,
            quorum: mode_of(config),
            me: me.to_string(),
        };
        b.refresh();
        b
    }

    /// Changes whenever the map does (caches of anything derived from it
    /// compare it).
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The cluster's N (the largest `n_val`).
    pub fn n(&self) -> usize {
        self.n
    }

    fn refresh(&self) {
        let map = self.map.read();
        {
            let mut cache = self.cache.write();
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            cache.clear();
        }
        if let Ok(p) = map.props(&Namespace::default_bucket(), self.n, self.quorum) {
            *self.default_props.write() = Arc::new(p);
        }
        self.sets_n_val
            .store(map.sets_n_val(), std::sync::atomic::Ordering::Relaxed);
    }

    /// A copy of the whole map (to persist or send).
    pub fn snapshot(&self) -> BucketMetadata {
        self.map.read().clone()
    }

    /// The digest of the map (see [`BucketMetadata::digest`]).
    pub fn digest(&self) -> u64 {
        self.map.read().digest()
    }

    /// Merges a peer's map; true if ours changed (the caller persists it).
    pub fn merge(&self, other: &BucketMetadata) -> bool {
        let changed = self.map.write().merge(other);
        if changed {
            self.refresh();
        }
        changed
    }

    /// Applies a change made on this node, stamped above everything seen.
    pub fn change(
        &self,
        f: impl FnOnce(&mut BucketMetadata, Stamp, usize) -> Result<(), MetadataError>,
    ) -> Result<(), MetadataError> {
        {
            let mut map = self.map.write();
            let stamp = map.next_stamp(now_ms(), &self.me);
            let mut next = map.clone();
            f(&mut next, stamp, self.n)?;
            *map = next;
        }
        self.refresh();
        Ok(())
    }

    /// The properties of bucket `ns`.
    pub fn props(&self, ns: &Namespace) -> Result<Arc<Props>, MetadataError> {
        if ns.is_default_bucket() {
            return Ok(Arc::clone(&self.default_props.read()));
        }
        if let Some(p) = self.cache.read().get(ns) {
            return Ok(Arc::clone(p));
        }
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        let props = Arc::new(self.map.read().props(ns, self.n, self.quorum)?);
        let mut cache = self.cache.write();
        // Cached only if the map did not change meanwhile (its refresh
        // clears the cache under this lock), and the cache stays bounded
        // whatever bucket names clients make up.
        if self.generation.load(std::sync::atomic::Ordering::SeqCst) == generation {
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(ns.clone(), Arc::clone(&props));
        }
        Ok(props)
    }

    /// The properties of bucket type `name` itself.
    pub fn type_props(&self, name: &[u8]) -> Result<Props, MetadataError> {
        self.map.read().type_props(name, self.n, self.quorum)
    }

    /// Checks that buckets of type `name` can be used.
    pub fn usable(&self, name: &[u8]) -> Result<(), MetadataError> {
        self.map.read().usable(name)
    }

    /// The replicas of a stored key: its bucket's `n_val`. A key of a type
    /// this node has not heard of yet (its metadata still on the way) gets N,
    /// which places it on more replicas rather than fewer.
    pub fn n_val_of(&self, key: &[u8]) -> usize {
        if !self.sets_n_val.load(std::sync::atomic::Ordering::Relaxed) {
            return self.n;
        }
        let nk = decode_key(key);
        if nk.is_default_bucket() {
            return self.default_props.read().n_val;
        }
        self.props(&nk.namespace()).map_or(self.n, |p| p.n_val)
    }

    /// True if some bucket sets `n_val`, so keys may have fewer than N
    /// replicas.
    pub fn sets_n_val(&self) -> bool {
        self.sets_n_val.load(std::sync::atomic::Ordering::Relaxed)
    }
}
