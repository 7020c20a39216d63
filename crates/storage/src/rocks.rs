//! The RocksDB engine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use dynakv_ring::{PARTITIONS, Ring, TokenRange};
use dynakv_versioning::{ActorId, Incarnation, Object};
use parking_lot::Mutex;
use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB,
    DBCompressionType, Direction, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions,
};
use serde::{Deserialize, Serialize};

use crate::clock::now_ms;
use crate::store::{DigestEntry, DigestVisitor, IngestItem};
use crate::{MergeOutcome, ObjectStore, StorageError, codec, split_storage_key, storage_key};

/// One read-modify-write of [`Storage::try_update_batch`]: what
/// [`ObjectStore::update`] takes, boxed so updates of many callers (and
/// closures) travel in one batch.
pub struct BatchUpdate<E> {
    /// The user's key.
    pub key: bytes::Bytes,
    /// Changes the key's object (empty if absent); an error refuses the
    /// update and nothing of it is written.
    pub apply: ApplyUpdate<E>,
}

/// The change a [`BatchUpdate`] makes to its key's object.
pub type ApplyUpdate<E> = Box<dyn FnOnce(&mut Object) -> Result<(), E> + Send>;

/// What one update of [`Storage::try_update_batch`] did: as
/// [`ObjectStore::update`] returns, the object stored after it.
pub type UpdateOutcome<E> = Result<Result<Object, E>, StorageError>;

/// The answer for one update of [`Storage::try_update_batch`].
pub enum Updated<E> {
    /// Applied (or refused, or failed) in the batch.
    Done(UpdateOutcome<E>),
    /// Not applied: its key's lock stripe was held by another writer.
    Busy(BatchUpdate<E>),
}

/// The RocksDB options the engine runs with: LZ4 on upper levels and ZSTD on the
/// last, bloom filters for point reads, index and filter blocks in the block
/// cache. Public so benchmarks can measure bare RocksDB with identical tuning.
pub fn db_options(config: &StorageConfig) -> (Options, Cache) {
    let cache = Cache::new_lru_cache(config.block_cache_mb.max(1) << 20);
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&cache);
    table.set_bloom_filter(10.0, false);
    // Partitioned index and filters: only the small top level stays pinned, and a
    // point read loads one 4 KiB index/filter partition instead of a whole
    // file's index. With a cache much smaller than the data set, whole-file
    // index and filter blocks were evicted by data blocks and re-read on almost
    // every read (benches/disk_reads.sh measured 0.10x of in-memory reads).
    table.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
    table.set_partition_filters(true);
    table.set_metadata_block_size(4096);
    table.set_cache_index_and_filter_blocks(true);
    table.set_cache_index_and_filter_blocks_with_high_priority(true);
    table.set_pin_top_level_index_and_filter(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);

    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_max_background_jobs(2);
    // Tickers (block cache hits and misses, exported as metrics) but no
    // timers or histograms: those take a clock reading per operation.
    opts.enable_statistics();
    opts.set_statistics_level(rocksdb::statistics::StatsLevel::ExceptHistogramOrTimers);
    // A bloom filter over each memtable's whole keys. Every write reads the key
    // first (the DVVSet update needs the stored siblings), and for a new key
    // that read searched the whole memtable skiplist for nothing: about a
    // third of a put's time in the criterion profile.
    opts.set_memtable_prefix_bloom_ratio(0.02);
    opts.set_memtable_whole_key_filtering(true);
    // 16 MiB memtables instead of RocksDB's 64 MiB: a skiplist insert walks
    // about log2(entries) nodes, each a cache miss, and a key-value store with
    // 100-byte values puts several hundred thousand entries in 64 MiB. The
    // 3-node PUT path spent ~12% of its cycles in that walk; at 16 MiB the
    // cluster's CPU per PUT fell by ~8% (benches/peers.sh), for 4x the
    // flushes of small L0 files, which compaction merges.
    opts.set_write_buffer_size(16 << 20);
    opts.set_compression_type(DBCompressionType::Lz4);
    opts.set_bottommost_compression_type(DBCompressionType::Zstd);
    opts.set_block_based_table_factory(&table);
    (opts, cache)
}

impl Cf {
    /// The column family's options: the engine's, with a smaller memtable for
    /// the digests. Memtables flush by size, and a digest entry is a fifth of
    /// an object's, so at the same size the digests memtable would hold five
    /// times as many entries, and every insert into its skiplist (once per
    /// write) would walk more levels, each a cache miss.
    fn options(self, base: &Options) -> Options {
        let mut opts = base.clone();
        if self == Cf::Digests {
            opts.set_write_buffer_size(DIGESTS_WRITE_BUFFER);
            // Digests are scanned (anti-entropy) and rarely read by key, so
            // their memtable needs no bloom filter.
            opts.set_memtable_prefix_bloom_ratio(0.0);
        }
        opts
    }
}

/// Memtable size of the digests column family (objects: 16 MiB).
const DIGESTS_WRITE_BUFFER: usize = 4 << 20;

/// The column families, a fixed named set opened together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cf {
    /// Objects by storage key (token ++ key).
    Objects,
    /// 8-byte digests of objects, same keys, written in the same batch.
    Digests,
    /// Hinted writes held for down replicas.
    Hints,
    /// Node metadata: identity, cluster state.
    Meta,
}

impl Cf {
    const ALL: [Cf; 4] = [Cf::Objects, Cf::Digests, Cf::Hints, Cf::Meta];

    fn name(self) -> &'static str {
        match self {
            Cf::Objects => "objects",
            Cf::Digests => "digests",
            Cf::Hints => "hints",
            Cf::Meta => "meta",
        }
    }
}

/// Storage settings (from the node's configuration, SPEC §3).
#[derive(Clone, Debug)]
pub struct StorageConfig {
    /// The data directory; created if missing.
    pub path: PathBuf,
    /// RocksDB block cache size in MiB.
    pub block_cache_mb: usize,
    /// Fsync the write-ahead log before acknowledging a write.
    pub sync_writes: bool,
}

/// Who this data directory belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The node's name.
    pub name: String,
    /// The actor id created with this data directory.
    pub actor: ActorId,
}

/// A hinted write: an object a fallback node holds for a replica that was down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hint {
    /// The node the write was meant for.
    pub target: String,
    /// The user key.
    pub key: Vec<u8>,
    /// The object to merge into the target's copy.
    pub object: Object,
    /// When the hint was stored (ms since the epoch).
    pub created_ms: u64,
}

/// One batch of a range scan ([`Storage::scan_objects`]).
#[derive(Debug, Default)]
pub struct ObjectBatch {
    /// (user key, object, encoded record size), in on-disk order.
    pub items: Vec<(Vec<u8>, Object, usize)>,
    /// The storage key of the last record read: where the next batch resumes.
    pub resume_after: Option<Vec<u8>>,
    /// True if the scan reached the end of the range.
    pub done: bool,
}

/// The two SST files of a bulk load, until they are ingested.
struct SstFiles {
    objects: Vec<PathBuf>,
    digests: Vec<PathBuf>,
}

impl SstFiles {
    fn remove(&self) {
        for f in self.objects.iter().chain(&self.digests) {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// How a bulk load was applied on a replica ([`Storage::ingest`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Keys of empty partitions, ingested as SST files.
    pub sst: usize,
    /// Keys of partitions holding data that the merge changed.
    pub merged: usize,
}

/// A hint read back from disk: its id, and the hint or why it failed to decode.
pub type StoredHint = (HintId, Result<Hint, StorageError>);

/// The storage key of a hint, used to delete it once delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HintId(Vec<u8>);

/// Figures for `/metrics` and `/admin/status`.
#[derive(Clone, Debug, Default)]
pub struct StorageStats {
    /// Keys stored.
    pub keys: u64,
    /// Hints held for other nodes.
    pub hints: u64,
    /// Bytes of live SST files.
    pub sst_bytes: u64,
    /// Bytes in memtables.
    pub memtable_bytes: u64,
    /// Block cache hits since start.
    pub block_cache_hits: u64,
    /// Block cache misses since start.
    pub block_cache_misses: u64,
}

const LOCK_STRIPES: usize = 1024;
const META_IDENTITY: &str = "identity";

/// A node's RocksDB database.
pub struct Storage {
    db: DB,
    opts: Options,
    write_opts: WriteOptions,
    /// Serialises read-modify-write per key (by token stripe).
    locks: Vec<Mutex<()>>,
    keys: AtomicU64,
    hints: AtomicU64,
    /// Per ring partition, a counter bumped on every write: lets callers cache
    /// what they derive from a partition (Merkle trees) and know when it is stale.
    generations: Vec<AtomicU64>,
    /// This process's incarnation: the actors it issues dots with, and those
    /// it retired when local history was lost (see `dynakv_versioning::Incarnation`).
    incarnation: Incarnation,
    _cache: Cache,
}

impl Storage {
    /// Opens (or creates) the database in `config.path`.
    pub fn open(config: &StorageConfig) -> Result<Storage, StorageError> {
        let (opts, cache) = db_options(config);
        let descriptors = Cf::ALL
            .iter()
            .map(|cf| ColumnFamilyDescriptor::new(cf.name(), cf.options(&opts)));
        let db = DB::open_cf_descriptors(&opts, &config.path, descriptors)?;

        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(config.sync_writes);

        let storage = Storage {
            db,
            opts,
            write_opts,
            locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            keys: AtomicU64::new(0),
            hints: AtomicU64::new(0),
            generations: (0..PARTITIONS).map(|_| AtomicU64::new(0)).collect(),
            incarnation: Incarnation::random(),
            _cache: cache,
        };
        // SST files of a bulk load interrupted by a crash.
        let _ = std::fs::remove_dir_all(config.path.join("ingest"));
        // Exact counts, from key-only scans of the small families.
        let keys = storage.count(Cf::Digests)?;
        storage.keys.store(keys, Ordering::Relaxed);
        let hints = storage.count(Cf::Hints)?;
        storage.hints.store(hints, Ordering::Relaxed);
        Ok(storage)
    }

    fn cf(&self, cf: Cf) -> &ColumnFamily {
        self.db
            .cf_handle(cf.name())
            .expect("every column family is opened with the database")
    }

    fn lock(&self, skey: &[u8]) -> parking_lot::MutexGuard<'_, ()> {
        self.locks[stripe_of(skey)].lock()
    }

    fn touch(&self, skey: &[u8]) {
        if let Some((t, _)) = split_storage_key(skey) {
            self.generations[Ring::partition_of(t)].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// This process's incarnation: every open of the database starts a new one,
    /// so whatever the directory holds (a restored backup, a log that lost its
    /// tail), no dot an earlier process issued is issued again.
    pub fn incarnation(&self) -> &Incarnation {
        &self.incarnation
    }

    /// The actor a coordinator issues the next dot of `key` with, given the
    /// key's local object.
    pub fn actor_for(&self, key: &[u8], local: &Object) -> ActorId {
        let partition = Ring::partition_of(dynakv_ring::token(key)) as u32;
        self.incarnation.actor_for(partition, local)
    }

    /// Retires this incarnation's actors in an object whose local history is
    /// being lost.
    fn retire(&self, skey: &[u8], bytes: &[u8]) {
        let Some((t, _)) = split_storage_key(skey) else {
            return;
        };
        let scope = Ring::partition_of(t) as u32;
        match codec::decode::<Object>(bytes) {
            Ok(object) => self.incarnation.retire(scope, &object),
            // Unknown history: retire every actor minted for the partition.
            Err(_) => self.incarnation.retire_scope(scope),
        }
    }

    /// The write generation of a ring partition: changes whenever a key of the
    /// partition is written or removed.
    pub fn generation(&self, partition: usize) -> u64 {
        self.generations
            .get(partition)
            .map_or(0, |g| g.load(Ordering::Relaxed))
    }

    fn count(&self, cf: Cf) -> Result<u64, StorageError> {
        let mut ro = ReadOptions::default();
        ro.fill_cache(false);
        let mut it = self.db.raw_iterator_cf_opt(self.cf(cf), ro);
        it.seek_to_first();
        let mut n = 0;
        while it.valid() {
            n += 1;
            it.next();
        }
        it.status()?;
        Ok(n)
    }

    /// The identity recorded in this data directory, creating it (with a fresh
    /// actor id) if the directory is new. Refuses a directory of another node.
    pub fn load_or_create_identity(&self, name: &str) -> Result<Identity, StorageError> {
        if let Some(stored) = self.get_meta::<Identity>(META_IDENTITY)? {
            if stored.name != name {
                return Err(StorageError::WrongNode {
                    stored: stored.name,
                    requested: name.to_string(),
                });
            }
            return Ok(stored);
        }
        let identity = Identity {
            name: name.to_string(),
            actor: ActorId::random(),
        };
        self.put_meta(META_IDENTITY, &identity)?;
        Ok(identity)
    }

    /// Reads a metadata record.
    pub fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, StorageError> {
        match self.db.get_pinned_cf(self.cf(Cf::Meta), name.as_bytes())? {
            None => Ok(None),
            Some(bytes) => codec::decode(&bytes)
                .map(Some)
                .map_err(|e| StorageError::Corrupt {
                    key: name.as_bytes().to_vec(),
                    reason: e.to_string(),
                }),
        }
    }

    /// Writes a metadata record (always fsynced: metadata changes are rare and must
    /// survive a crash).
    pub fn put_meta<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StorageError> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(Cf::Meta), name.as_bytes(), codec::encode(value));
        self.db.write_opt(batch, &wo)?;
        Ok(())
    }

    fn read_object(&self, skey: &[u8]) -> Result<Option<Object>, StorageError> {
        match self.db.get_pinned_cf(self.cf(Cf::Objects), skey)? {
            None => Ok(None),
            Some(bytes) => codec::decode(&bytes)
                .map(Some)
                .map_err(|e| StorageError::Corrupt {
                    key: skey.to_vec(),
                    reason: e.to_string(),
                }),
        }
    }

    /// Writes an object and its digest in one batch; counts new keys.
    fn write_object(
        &self,
        skey: &[u8],
        object: &Object,
        existed: bool,
    ) -> Result<(), StorageError> {
        self.write_objects([(skey, object, existed)])
    }

    /// Writes objects and their digests in one atomic batch (one
    /// write-ahead-log append), `(storage key, object, whether the key
    /// existed)` each; counts new keys and bumps their partitions'
    /// generations once it is written.
    fn write_objects<'a>(
        &self,
        objects: impl IntoIterator<Item = (&'a [u8], &'a Object, bool)>,
    ) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        let mut fresh = 0u64;
        let mut written = Vec::new();
        for (skey, object, existed) in objects {
            let record = codec::encode(object);
            batch.put_cf(
                self.cf(Cf::Digests),
                skey,
                DigestEntry::of(object, &record).encode(),
            );
            batch.put_cf(self.cf(Cf::Objects), skey, record);
            fresh += u64::from(!existed);
            written.push(skey);
        }
        if written.is_empty() {
            return Ok(());
        }
        self.db.write_opt(batch, &self.write_opts)?;
        self.keys.fetch_add(fresh, Ordering::Relaxed);
        for skey in written {
            self.touch(skey);
        }
        Ok(())
    }

    /// Removes a key only if its stored object still has `digest` (tombstone
    /// purge: nothing newer arrived meanwhile). An absent key counts as removed.
    pub fn remove_if_unchanged(&self, key: &[u8], digest: u64) -> Result<bool, StorageError> {
        let skey = storage_key(key);
        let _guard = self.lock(&skey);
        let Some(entry) = self.db.get_pinned_cf(self.cf(Cf::Digests), &skey)? else {
            return Ok(true);
        };
        if DigestEntry::decode(&entry).map(|e| e.digest) != Some(digest) {
            return Ok(false);
        }
        drop(entry);
        if let Some(bytes) = self.db.get_pinned_cf(self.cf(Cf::Objects), &skey)? {
            self.retire(&skey, &bytes);
        }
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.cf(Cf::Objects), &skey);
        batch.delete_cf(self.cf(Cf::Digests), &skey);
        self.db.write_opt(batch, &self.write_opts)?;
        self.keys.fetch_sub(1, Ordering::Relaxed);
        self.touch(&skey);
        Ok(true)
    }

    fn scan(
        &self,
        cf: Cf,
        range: TokenRange,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StorageError> {
        let snapshot = self.db.snapshot();
        let mut ro = ReadOptions::default();
        ro.fill_cache(false);
        ro.set_iterate_lower_bound(range.start.to_be_bytes().to_vec());
        if range.end < u64::MAX {
            ro.set_iterate_upper_bound((range.end + 1).to_be_bytes().to_vec());
        }
        let start = range.start.to_be_bytes();
        let iter = snapshot.iterator_cf_opt(
            self.cf(cf),
            ro,
            IteratorMode::From(&start, Direction::Forward),
        );
        for item in iter {
            let (k, v) = item?;
            if !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    /// Objects of `range` in on-disk (token) order, starting after the storage
    /// key `after` (from the start of the range when `None`), until about
    /// `max_bytes` of encoded records are gathered: one contiguous scan, the
    /// unit of ownership handoff. Returns the batch (user key, object, record
    /// size), the storage key to resume after, and whether the range is done.
    /// Undecodable records are skipped (anti-entropy repairs them).
    pub fn scan_objects(
        &self,
        range: TokenRange,
        after: Option<&[u8]>,
        max_bytes: usize,
    ) -> Result<ObjectBatch, StorageError> {
        let mut batch = ObjectBatch::default();
        let mut bytes = 0usize;
        let mut ro = ReadOptions::default();
        ro.fill_cache(false);
        ro.set_iterate_lower_bound(range.start.to_be_bytes().to_vec());
        if range.end < u64::MAX {
            ro.set_iterate_upper_bound((range.end + 1).to_be_bytes().to_vec());
        }
        let mut it = self.db.raw_iterator_cf_opt(self.cf(Cf::Objects), ro);
        match after {
            Some(k) => {
                it.seek(k);
                if it.key() == Some(k) {
                    it.next();
                }
            }
            None => it.seek(range.start.to_be_bytes()),
        }
        while let (Some(skey), Some(value)) = (it.key(), it.value()) {
            if bytes >= max_bytes {
                it.status()?;
                return Ok(batch);
            }
            batch.resume_after = Some(skey.to_vec());
            if let Some((_, key)) = split_storage_key(skey) {
                match codec::decode::<Object>(value) {
                    Ok(object) => {
                        bytes += value.len() + key.len();
                        batch.items.push((key.to_vec(), object, value.len()));
                    }
                    Err(e) => {
                        tracing::warn!(key = ?String::from_utf8_lossy(key), reason = %e, "skipping a corrupt record in a range scan")
                    }
                }
            }
            it.next();
        }
        it.status()?;
        batch.done = true;
        Ok(batch)
    }

    /// Merges many objects (DVVSet sync, as [`ObjectStore::merge`]) in one
    /// atomic `WriteBatch`: one write-ahead-log append for the lot, which is
    /// what makes ownership handoff cheap. The keys' lock stripes are taken in
    /// ascending order and held until the batch is written, so a concurrent
    /// writer of any of them waits and nothing is lost. Returns how many keys
    /// changed.
    pub fn merge_batch(&self, items: &[(impl AsRef<[u8]>, Object)]) -> Result<usize, StorageError> {
        let skeys: Vec<Vec<u8>> = items.iter().map(|(k, _)| storage_key(k.as_ref())).collect();
        let _guards: Vec<_> = stripes_of(&skeys)
            .into_iter()
            .map(|i| self.locks[i].lock())
            .collect();
        self.merge_locked(&skeys, items)
    }

    /// [`Storage::merge_batch`] if none of the keys' lock stripes is held
    /// right now; `None` (nothing done) otherwise. For callers on an async
    /// worker: waiting for one busy stripe (a transfer batch, a bulk load)
    /// while holding the others would stall every writer of those too.
    pub fn try_merge_batch(
        &self,
        items: &[(impl AsRef<[u8]>, Object)],
    ) -> Option<Result<usize, StorageError>> {
        let skeys: Vec<Vec<u8>> = items.iter().map(|(k, _)| storage_key(k.as_ref())).collect();
        let mut guards = Vec::new();
        for i in stripes_of(&skeys) {
            guards.push(self.locks[i].try_lock()?);
        }
        Some(self.merge_locked(&skeys, items))
    }

    /// Applies many read-modify-writes (each as [`ObjectStore::update`]) in
    /// one atomic `WriteBatch`: the storage half of the coordinator's group
    /// commit, where concurrent single-key writes share one write-ahead-log
    /// append. An update whose key's lock stripe is held right now (another
    /// writer of a key of that stripe) is given back untouched, for its
    /// caller to apply alone: waiting for it while holding the other stripes
    /// would stall their writers too (as in [`Storage::try_merge_batch`]).
    ///
    /// Updates of the same key apply in order, each to the object the one
    /// before left. The answers come back in the order of `updates`, one
    /// each, the outcome as `update` would have returned it: an update whose
    /// closure refuses writes nothing (the key keeps what the updates before
    /// it left); a key whose record cannot be read fails its own updates
    /// only; a failed write fails every update that would have written.
    ///
    /// The closures run with the batch's stripes held: one that calls a
    /// locking method of this storage (`update`, `merge`, `put_hint`…)
    /// deadlocks.
    pub fn try_update_batch<E>(&self, updates: Vec<BatchUpdate<E>>) -> Vec<Updated<E>> {
        let skeys: Vec<Vec<u8>> = updates.iter().map(|u| storage_key(&u.key)).collect();
        let mut guards: BTreeMap<usize, Option<parking_lot::MutexGuard<'_, ()>>> = BTreeMap::new();
        for i in stripes_of(&skeys) {
            guards.insert(i, self.locks[i].try_lock());
        }
        let free = |skey: &[u8]| guards[&stripe_of(skey)].is_some();
        let mut answers: Vec<Option<Updated<E>>> = Vec::with_capacity(updates.len());
        let (mut held_skeys, mut held) = (Vec::new(), Vec::new());
        for (skey, update) in skeys.into_iter().zip(updates) {
            if free(&skey) {
                held_skeys.push(skey);
                held.push(update);
                answers.push(None);
            } else {
                answers.push(Some(Updated::Busy(update)));
            }
        }
        let mut outcomes = self.update_locked(&held_skeys, held).into_iter();
        answers
            .into_iter()
            .map(|answer| {
                answer.unwrap_or_else(|| {
                    Updated::Done(outcomes.next().expect("one outcome per update applied"))
                })
            })
            .collect()
    }

    /// [`Storage::try_update_batch`] with the keys' stripes held.
    fn update_locked<E>(
        &self,
        skeys: &[Vec<u8>],
        updates: Vec<BatchUpdate<E>>,
    ) -> Vec<UpdateOutcome<E>> {
        use std::collections::HashMap;
        use std::collections::hash_map::Entry;
        /// A key's object as the batch's updates so far leave it.
        struct Staged {
            object: Object,
            existed: bool,
            /// The last update that changed it (`None`: unchanged): its
            /// outcome is this object, moved in at the end (copied only if a
            /// later update changes it).
            last: Option<usize>,
        }
        let mut staged: HashMap<&[u8], Result<Staged, StorageError>> =
            HashMap::with_capacity(skeys.len());
        let mut order: Vec<&[u8]> = Vec::new();
        // `None`: an update that changed its key, its object filled in below.
        let mut outcomes: Vec<Option<UpdateOutcome<E>>> = Vec::with_capacity(updates.len());
        for (i, (skey, update)) in skeys.iter().zip(updates).enumerate() {
            let state = match staged.entry(skey.as_slice()) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    order.push(skey.as_slice());
                    // A corrupt record is never replaced here, as in `update`.
                    e.insert(self.read_object(skey).map(|current| Staged {
                        existed: current.is_some(),
                        object: current.unwrap_or_default(),
                        last: None,
                    }))
                }
            };
            let state = match state {
                Ok(state) => state,
                Err(e) => {
                    outcomes.push(Some(Err(e.clone())));
                    continue;
                }
            };
            // Each update works on a copy: one that refuses halfway through
            // leaves nothing of itself behind.
            let mut object = state.object.clone();
            match (update.apply)(&mut object) {
                Ok(()) => {
                    if let Some(j) = state.last {
                        outcomes[j] = Some(Ok(Ok(std::mem::replace(&mut state.object, object))));
                    } else {
                        state.object = object;
                    }
                    state.last = Some(i);
                    outcomes.push(None);
                }
                Err(refused) => outcomes.push(Some(Ok(Err(refused)))),
            }
        }

        let written = self.write_objects(order.iter().filter_map(|skey| match staged.get(skey) {
            Some(Ok(state)) if state.last.is_some() => Some((*skey, &state.object, state.existed)),
            _ => None,
        }));
        // Each key's final object goes to its last update; if the write
        // failed, nothing of the batch is stored and every update that
        // changed a key fails with it.
        let mut finals: HashMap<usize, Object> = staged
            .into_values()
            .filter_map(|state| {
                let state = state.ok()?;
                Some((state.last?, state.object))
            })
            .collect();
        outcomes
            .into_iter()
            .enumerate()
            .map(|(i, outcome)| match (outcome, &written) {
                (Some(Ok(Ok(_))) | None, Err(e)) => Err(e.clone()),
                (Some(outcome), _) => outcome,
                (None, Ok(())) => Ok(Ok(finals
                    .remove(&i)
                    .expect("a key's last change has its final object"))),
            })
            .collect()
    }

    /// [`Storage::merge_batch`] with the keys' stripes already held.
    fn merge_locked(
        &self,
        skeys: &[Vec<u8>],
        items: &[(impl AsRef<[u8]>, Object)],
    ) -> Result<usize, StorageError> {
        // Staged results by storage key (a key may appear twice in one batch),
        // with whether the key existed before the batch.
        let mut staged: std::collections::HashMap<&[u8], (Object, bool)> = Default::default();
        let mut order: Vec<&[u8]> = Vec::new();
        for (skey, (_, incoming)) in skeys.iter().zip(items) {
            let (current, existed) = match staged.get(skey.as_slice()) {
                Some((o, existed)) => (Some(o.clone()), *existed),
                None => match self.read_object(skey) {
                    Ok(c) => {
                        let existed = c.is_some();
                        (c, existed)
                    }
                    // A replica's copy replaces a corrupt record, as in `merge`.
                    Err(StorageError::Corrupt { reason, .. }) => {
                        tracing::warn!(key = ?String::from_utf8_lossy(skey.get(8..).unwrap_or_default()), %reason, "replacing corrupt record with a replica's copy");
                        if let Some((t, _)) = split_storage_key(skey) {
                            self.incarnation.retire_scope(Ring::partition_of(t) as u32);
                        }
                        (None, true)
                    }
                    Err(e) => return Err(e),
                },
            };
            let merged = match &current {
                Some(c) => c.synced(incoming),
                None => incoming.clone(),
            };
            if current.as_ref() != Some(&merged) {
                if !staged.contains_key(skey.as_slice()) {
                    order.push(skey.as_slice());
                }
                staged.insert(skey.as_slice(), (merged, existed));
            } else if existed && !staged.contains_key(skey.as_slice()) && !self.has_digest(skey)? {
                // An object without its digest: rewritten (see `merge`).
                order.push(skey.as_slice());
                staged.insert(skey.as_slice(), (merged, false));
            }
        }
        self.write_objects(order.iter().filter_map(|skey| {
            let (object, existed) = staged.get(skey)?;
            Some((*skey, object, *existed))
        }))?;
        Ok(order.len())
    }

    /// Bulk-loads `items` (objects already encoded, keys of any partitions)
    /// on this replica. The keys of every partition that holds no object yet
    /// are written as sorted SST files (objects and digests, the bytes as
    /// given; a pair per run of consecutive partitions, so no file overlaps
    /// another load's) and ingested whole: no memtable, no write-ahead log,
    /// no compaction, one ingestion for all of them. The keys of partitions
    /// that hold data, or that a batch names twice, are decoded and merged
    /// (DVVSet sync) like [`Storage::merge_batch`], so a version already
    /// stored is never lost.
    /// Every lock stripe is held from the emptiness checks to the end: a
    /// write landing in between would be shadowed by the ingested file (its
    /// keys get a newer sequence number). Objects are ingested before digests:
    /// after a crash in between, this replica's anti-entropy trees lack keys
    /// its peers have, so the next exchange sends them, and a merge that finds
    /// an object without its digest writes both again.
    pub fn ingest(&self, items: &[IngestItem]) -> Result<Ingested, StorageError> {
        let skeys: Vec<Vec<u8>> = items.iter().map(|i| storage_key(&i.key)).collect();
        let partition_of =
            |skey: &[u8]| split_storage_key(skey).map_or(0, |(t, _)| Ring::partition_of(t));
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_unstable_by(|&a, &b| skeys[a].cmp(&skeys[b]));
        // A key given twice cannot go into a file twice: its partition is
        // merged instead, which syncs both objects.
        let twice: BTreeSet<usize> = order
            .windows(2)
            .filter(|w| skeys[w[0]] == skeys[w[1]])
            .map(|w| partition_of(&skeys[w[0]]))
            .collect();
        // The files are built before the locks are taken, for the usual case
        // of a load into empty partitions: writes to this node wait only for
        // the check and the ingestion itself.
        let fileable = |i: &usize| !twice.contains(&partition_of(&skeys[*i]));
        let first: Vec<usize> = order.iter().copied().filter(fileable).collect();
        let prebuilt = self.write_ssts(&first, &skeys, items)?;
        let _guards: Vec<_> = self.locks.iter().map(|l| l.lock()).collect();
        let mut empty: BTreeMap<usize, bool> = BTreeMap::new();
        for skey in &skeys {
            let p = partition_of(skey);
            if let std::collections::btree_map::Entry::Vacant(slot) = empty.entry(p) {
                slot.insert(!twice.contains(&p) && !self.range_has_objects(Ring::range_of(p))?);
            }
        }
        if empty.values().all(|&e| e) {
            self.ingest_files(&prebuilt, &first, &skeys)?;
            return Ok(Ingested {
                sst: first.len(),
                merged: 0,
            });
        }
        prebuilt.remove();
        let (fresh, held): (Vec<usize>, Vec<usize>) = order
            .into_iter()
            .partition(|&i| empty[&partition_of(&skeys[i])]);
        let merged = if held.is_empty() {
            0
        } else {
            let held_keys: Vec<Vec<u8>> = held.iter().map(|&i| skeys[i].clone()).collect();
            let held_items = held
                .iter()
                .map(|&i| {
                    let item = &items[i];
                    codec::decode::<Object>(&item.record)
                        .map(|o| (item.key.as_ref(), o))
                        .map_err(|e| StorageError::Ingest(format!("an undecodable object: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.merge_locked(&held_keys, &held_items)?
        };
        if !fresh.is_empty() {
            let files = self.write_ssts(&fresh, &skeys, items)?;
            self.ingest_files(&files, &fresh, &skeys)?;
        }
        Ok(Ingested {
            sst: fresh.len(),
            merged,
        })
    }

    /// Writes `items[i]` for each `i` of `order` (distinct storage keys, in
    /// order) as SST files: a pair (objects, digests) for each run of
    /// consecutive partitions. A file spanning a gap could overlap the
    /// files of another load, into the partitions in between, and then be
    /// ingested above them and compacted; each run's files overlap nothing
    /// and go straight to the last level.
    fn write_ssts(
        &self,
        order: &[usize],
        skeys: &[Vec<u8>],
        items: &[IngestItem],
    ) -> Result<SstFiles, StorageError> {
        let dir = self.db.path().join("ingest");
        std::fs::create_dir_all(&dir).map_err(|e| StorageError::Ingest(e.to_string()))?;
        // Concurrent ingestions (a load's local share and a peer's) write
        // their files side by side: the sequence keeps the names apart.
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        let stamp = format!("{}-{}", now_ms(), SEQUENCE.fetch_add(1, Ordering::Relaxed));
        let partition_of =
            |skey: &[u8]| split_storage_key(skey).map_or(0, |(t, _)| Ring::partition_of(t));
        let mut files = SstFiles {
            objects: Vec::new(),
            digests: Vec::new(),
        };
        // LZ4 for the ingested files: they are written while a load waits,
        // and ZSTD (the last level's compression) took a tenth of a load's
        // CPU in the profile. Compaction recompresses them.
        let fast = |cf: Cf| {
            let mut o = cf.options(&self.opts);
            o.set_compression_type(DBCompressionType::Lz4);
            o.set_bottommost_compression_type(DBCompressionType::Lz4);
            o
        };
        let (objects_opts, digests_opts) = (fast(Cf::Objects), fast(Cf::Digests));
        let written = (|| -> Result<(), StorageError> {
            let mut start = 0;
            while start < order.len() {
                let mut end = start + 1;
                while end < order.len()
                    && partition_of(&skeys[order[end]]) <= partition_of(&skeys[order[end - 1]]) + 1
                {
                    end += 1;
                }
                let n = files.objects.len();
                let objects_path = dir.join(format!("{stamp}-{n}-objects.sst"));
                let digests_path = dir.join(format!("{stamp}-{n}-digests.sst"));
                files.objects.push(objects_path.clone());
                files.digests.push(digests_path.clone());
                let mut objects = rocksdb::SstFileWriter::create(&objects_opts);
                let mut digests = rocksdb::SstFileWriter::create(&digests_opts);
                objects.open(&objects_path)?;
                digests.open(&digests_path)?;
                for &i in &order[start..end] {
                    digests.put(&skeys[i], &items[i].digest)?;
                    objects.put(&skeys[i], &items[i].record)?;
                }
                objects.finish()?;
                digests.finish()?;
                start = end;
            }
            Ok(())
        })();
        if let Err(e) = written {
            files.remove();
            return Err(e);
        }
        Ok(files)
    }

    /// Ingests the files holding `order`'s keys (objects first: see
    /// [`Storage::ingest`]) and removes them.
    fn ingest_files(
        &self,
        files: &SstFiles,
        order: &[usize],
        skeys: &[Vec<u8>],
    ) -> Result<(), StorageError> {
        let result = (|| -> Result<(), StorageError> {
            if order.is_empty() {
                return Ok(());
            }
            self.db
                .ingest_external_file_cf(self.cf(Cf::Objects), files.objects.iter().collect())?;
            self.db
                .ingest_external_file_cf(self.cf(Cf::Digests), files.digests.iter().collect())?;
            Ok(())
        })();
        files.remove();
        result?;
        self.keys.fetch_add(order.len() as u64, Ordering::Relaxed);
        for &i in order {
            self.touch(&skeys[i]);
        }
        Ok(())
    }

    /// True if the key has a digest entry.
    fn has_digest(&self, skey: &[u8]) -> Result<bool, StorageError> {
        Ok(self.db.get_pinned_cf(self.cf(Cf::Digests), skey)?.is_some())
    }

    /// True if `range` holds at least one object.
    pub fn range_has_objects(&self, range: TokenRange) -> Result<bool, StorageError> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(range.start.to_be_bytes().to_vec());
        if range.end < u64::MAX {
            ro.set_iterate_upper_bound((range.end + 1).to_be_bytes().to_vec());
        }
        let mut it = self.db.raw_iterator_cf_opt(self.cf(Cf::Objects), ro);
        it.seek(range.start.to_be_bytes());
        let found = it.valid();
        it.status()?;
        Ok(found)
    }

    /// Deletes every object and digest of `range` (a partition this node no
    /// longer replicates, once its new replicas confirmed their copies).
    /// Returns the number of keys removed.
    pub fn drop_range(&self, range: TokenRange) -> Result<u64, StorageError> {
        self.incarnation
            .retire_scope(Ring::partition_of(range.start) as u32);
        let mut removed = 0u64;
        self.scan(Cf::Digests, range, &mut |_, _| {
            removed += 1;
            true
        })?;
        let start = range.start.to_be_bytes();
        let mut batch = WriteBatch::default();
        if range.end < u64::MAX {
            let end = (range.end + 1).to_be_bytes();
            batch.delete_range_cf(self.cf(Cf::Objects), start, end);
            batch.delete_range_cf(self.cf(Cf::Digests), start, end);
        } else {
            // No key sorts after the last token: range-delete up to it, then
            // the (rare) keys of the last token one by one.
            let end = u64::MAX.to_be_bytes();
            batch.delete_range_cf(self.cf(Cf::Objects), start, end);
            batch.delete_range_cf(self.cf(Cf::Digests), start, end);
            let last = TokenRange {
                start: u64::MAX,
                end: u64::MAX,
            };
            self.scan(Cf::Digests, last, &mut |skey, _| {
                batch.delete_cf(self.cf(Cf::Objects), skey);
                batch.delete_cf(self.cf(Cf::Digests), skey);
                true
            })?;
        }
        self.db.write_opt(batch, &self.write_opts)?;
        self.incarnation
            .retire_scope(Ring::partition_of(range.start) as u32);
        // Recount: writes may have raced with the range delete.
        let left = self.count_range(range)?;
        self.keys
            .fetch_sub(removed.saturating_sub(left), Ordering::Relaxed);
        self.generations[Ring::partition_of(range.start)].fetch_add(1, Ordering::Relaxed);
        Ok(removed.saturating_sub(left))
    }

    fn count_range(&self, range: TokenRange) -> Result<u64, StorageError> {
        let mut n = 0u64;
        self.scan(Cf::Digests, range, &mut |_, _| {
            n += 1;
            true
        })?;
        Ok(n)
    }

    /// True if a metadata record exists (whatever its format).
    pub fn has_meta(&self, name: &str) -> Result<bool, StorageError> {
        Ok(self
            .db
            .get_pinned_cf(self.cf(Cf::Meta), name.as_bytes())?
            .is_some())
    }

    /// Deletes a metadata record.
    pub fn delete_meta(&self, name: &str) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.cf(Cf::Meta), name.as_bytes());
        self.db.write_opt(batch, &self.write_opts)?;
        Ok(())
    }

    /// Writes a metadata record without waiting for fsync (progress records
    /// whose loss only repeats work).
    pub fn put_meta_lazy<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(Cf::Meta), name.as_bytes(), codec::encode(value));
        self.db.write_opt(batch, &self.write_opts)?;
        Ok(())
    }

    /// Stores a hint for `target` (a replica that missed this write). Hints are
    /// kept per (target, key) and merged, so repeated hinted writes of one key
    /// hold one object, and delivering it once delivers them all.
    pub fn put_hint(&self, target: &str, key: &[u8], object: &Object) -> Result<(), StorageError> {
        let id = hint_key(target, key);
        let _guard = self.lock(&storage_key(key));
        let existing = self.db.get_pinned_cf(self.cf(Cf::Hints), &id)?;
        let fresh = existing.is_none();
        // A corrupt hint is dropped from the merge; anti-entropy repairs the key.
        let hint = match existing.as_deref().map(codec::decode::<Hint>) {
            // A merged hint is as young as its newest write: the window
            // counts from the last write it carries.
            Some(Ok(mut h)) => {
                h.object.sync(object);
                h.created_ms = now_ms();
                h
            }
            _ => Hint {
                target: target.to_string(),
                key: key.to_vec(),
                object: object.clone(),
                created_ms: now_ms(),
            },
        };
        drop(existing);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(Cf::Hints), &id, codec::encode(&hint));
        self.db.write_opt(batch, &self.write_opts)?;
        if fresh {
            self.hints.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn read_hint(&self, id: &[u8]) -> Result<Option<Hint>, StorageError> {
        match self.db.get_pinned_cf(self.cf(Cf::Hints), id)? {
            None => Ok(None),
            Some(bytes) => match codec::decode::<Hint>(&bytes) {
                Ok(h) => Ok(Some(h)),
                // A corrupt hint is dropped from the merge; anti-entropy repairs the key.
                Err(e) => {
                    tracing::warn!(reason = %e, "corrupt hint replaced");
                    Ok(None)
                }
            },
        }
    }

    /// The hint held for `target` about `key`, if any (a fallback answering a
    /// sloppy read).
    pub fn get_hint(&self, target: &str, key: &[u8]) -> Result<Option<Hint>, StorageError> {
        self.read_hint(&hint_key(target, key))
    }

    /// Up to `limit` hints held for `target`, in ring order. Undecodable hints are
    /// returned as `Err` with their id so they can be dropped.
    pub fn hints_for(&self, target: &str, limit: usize) -> Result<Vec<StoredHint>, StorageError> {
        self.hints_after(target, None, limit)
    }

    /// Up to `limit` hints held for `target` after hint `after` (from the first
    /// when `None`), in ring order: a delivery cursor, so one hint that keeps
    /// failing does not hold up the ones behind it.
    pub fn hints_after(
        &self,
        target: &str,
        after: Option<&HintId>,
        limit: usize,
    ) -> Result<Vec<StoredHint>, StorageError> {
        let prefix = hint_prefix(target);
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(prefix.clone());
        let mut out = Vec::new();
        let start = after.map_or_else(|| prefix.clone(), |id| id.0.clone());
        let iter = self.db.iterator_cf_opt(
            self.cf(Cf::Hints),
            ro,
            IteratorMode::From(&start, Direction::Forward),
        );
        for item in iter {
            let (k, v) = item?;
            if after.is_some_and(|a| a.0 == *k) {
                continue;
            }
            if !k.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let hint = codec::decode::<Hint>(&v).map_err(|e| StorageError::Corrupt {
                key: k.to_vec(),
                reason: e.to_string(),
            });
            out.push((HintId(k.to_vec()), hint));
        }
        Ok(out)
    }

    /// The distinct nodes that hints are held for.
    pub fn hint_targets(&self) -> Result<Vec<String>, StorageError> {
        let mut targets = Vec::new();
        let mut it = self.db.raw_iterator_cf(self.cf(Cf::Hints));
        it.seek_to_first();
        while let Some(k) = it.key() {
            let Some(name) = hint_target(k) else { break };
            let name = name.to_string();
            // Skip to the first key past every key with this target's prefix.
            let next = prefix_successor(&hint_prefix(&name));
            targets.push(name);
            match next {
                Some(next) => it.seek(&next),
                None => break,
            }
        }
        it.status()?;
        Ok(targets)
    }

    /// Deletes a delivered (or expired) hint, unless it changed since it was
    /// read (a newer hinted write arrived meanwhile): returns whether it was
    /// deleted. `expected: None` deletes unconditionally (corrupt or expired).
    pub fn delete_hint(
        &self,
        id: &HintId,
        expected: Option<&Object>,
    ) -> Result<bool, StorageError> {
        let key_part =
            id.0.get(2 + hint_target(&id.0).map_or(0, str::len)..)
                .unwrap_or_default();
        let _guard = self.lock(key_part);
        let Some(stored) = self.db.get_pinned_cf(self.cf(Cf::Hints), &id.0)? else {
            return Ok(false);
        };
        if let Some(expected) = expected
            && codec::decode::<Hint>(&stored).is_ok_and(|h| &h.object != expected)
        {
            return Ok(false);
        }
        drop(stored);
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.cf(Cf::Hints), &id.0);
        self.db.write_opt(batch, &self.write_opts)?;
        self.hints.fetch_sub(1, Ordering::Relaxed);
        Ok(true)
    }

    /// Figures for metrics and status.
    pub fn stats(&self) -> StorageStats {
        let prop = |name: &str| -> u64 {
            Cf::ALL
                .iter()
                .filter_map(|cf| {
                    self.db
                        .property_int_value_cf(self.cf(*cf), name)
                        .ok()
                        .flatten()
                })
                .sum()
        };
        StorageStats {
            keys: self.keys.load(Ordering::Relaxed),
            hints: self.hints.load(Ordering::Relaxed),
            sst_bytes: prop("rocksdb.total-sst-files-size"),
            memtable_bytes: prop("rocksdb.cur-size-all-mem-tables"),
            block_cache_hits: self
                .opts
                .get_ticker_count(rocksdb::statistics::Ticker::BlockCacheHit),
            block_cache_misses: self
                .opts
                .get_ticker_count(rocksdb::statistics::Ticker::BlockCacheMiss),
        }
    }

    /// Flushes memtables to SST files (used by benchmarks to measure disk reads).
    pub fn flush(&self) -> Result<(), StorageError> {
        for cf in Cf::ALL {
            self.db.flush_cf(self.cf(cf))?;
        }
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn put_raw(&self, cf: Cf, key: &[u8], value: &[u8]) {
        self.db.put_cf(self.cf(cf), key, value).expect("raw put");
    }
}

fn hint_prefix(target: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(target.len() + 2);
    p.extend_from_slice(&(target.len() as u16).to_be_bytes());
    p.extend_from_slice(target.as_bytes());
    p
}

/// The lock stripes of storage keys, ascending and without repeats: the one
/// order in which every multi-key writer takes them, so none deadlocks.
fn stripes_of(skeys: &[Vec<u8>]) -> Vec<usize> {
    let mut stripes: Vec<usize> = skeys.iter().map(|sk| stripe_of(sk)).collect();
    stripes.sort_unstable();
    stripes.dedup();
    stripes
}

/// The lock stripe of a storage key (by its token: a partition's keys spread
/// over every stripe).
fn stripe_of(skey: &[u8]) -> usize {
    let t = split_storage_key(skey).map(|(t, _)| t).unwrap_or(0);
    (t % LOCK_STRIPES as u64) as usize
}

/// A hint's key: the target's length-prefixed name, then the object's storage
/// key, so one target's hints are contiguous and in ring order.
fn hint_key(target: &str, key: &[u8]) -> Vec<u8> {
    let mut k = hint_prefix(target);
    k.extend_from_slice(&storage_key(key));
    k
}

/// The smallest key greater than every key starting with `prefix` (`None` if
/// the prefix is all 0xff bytes: nothing sorts after it).
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < 0xff {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

fn hint_target(key: &[u8]) -> Option<&str> {
    let len = u16::from_be_bytes([*key.first()?, *key.get(1)?]) as usize;
    std::str::from_utf8(key.get(2..2 + len)?).ok()
}

impl ObjectStore for Storage {
    fn get(&self, key: &[u8]) -> Result<Option<Object>, StorageError> {
        self.read_object(&storage_key(key))
    }

    fn update<T, E>(
        &self,
        key: &[u8],
        f: impl FnOnce(&mut Object) -> Result<T, E>,
    ) -> Result<Result<(T, Object), E>, StorageError> {
        let skey = storage_key(key);
        let _guard = self.lock(&skey);
        // A corrupt record is not silently replaced here: a coordinator that lost
        // the key's history could reissue dots other replicas already saw.
        let current = self.read_object(&skey)?;
        let existed = current.is_some();
        let mut object = current.unwrap_or_default();
        match f(&mut object) {
            Ok(t) => {
                self.write_object(&skey, &object, existed)?;
                Ok(Ok((t, object)))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    fn merge(&self, key: &[u8], incoming: &Object) -> Result<MergeOutcome, StorageError> {
        let skey = storage_key(key);
        let _guard = self.lock(&skey);
        let (current, existed) = match self.read_object(&skey) {
            Ok(c) => {
                let existed = c.is_some();
                (c, existed)
            }
            Err(StorageError::Corrupt { reason, .. }) => {
                tracing::warn!(key = ?String::from_utf8_lossy(key), %reason, "replacing corrupt record with a replica's copy");
                // The lost record may have held newer dots of this incarnation
                // than the copy does: never continue those actors.
                self.incarnation
                    .retire_scope(Ring::partition_of(dynakv_ring::token(key)) as u32);
                (None, true)
            }
            Err(e) => return Err(e),
        };
        let merged = match &current {
            Some(c) => c.synced(incoming),
            None => incoming.clone(),
        };
        let changed = current.as_ref() != Some(&merged);
        if changed {
            self.write_object(&skey, &merged, existed)?;
        } else if existed && !self.has_digest(&skey)? {
            // An object without its digest (a bulk load interrupted between
            // its two ingestions): written whole again, so anti-entropy, which
            // sees keys through their digests, and the key count see it.
            self.write_object(&skey, &merged, false)?;
        }
        Ok(MergeOutcome {
            object: merged,
            changed,
        })
    }

    fn remove(&self, key: &[u8]) -> Result<(), StorageError> {
        let skey = storage_key(key);
        let _guard = self.lock(&skey);
        let existed = self
            .db
            .get_pinned_cf(self.cf(Cf::Digests), &skey)?
            .is_some();
        if let Some(bytes) = self.db.get_pinned_cf(self.cf(Cf::Objects), &skey)? {
            self.retire(&skey, &bytes);
        }
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.cf(Cf::Objects), &skey);
        batch.delete_cf(self.cf(Cf::Digests), &skey);
        self.db.write_opt(batch, &self.write_opts)?;
        if existed {
            self.keys.fetch_sub(1, Ordering::Relaxed);
        }
        self.touch(&skey);
        Ok(())
    }

    fn for_each_digest(
        &self,
        range: TokenRange,
        f: &mut DigestVisitor<'_>,
    ) -> Result<(), StorageError> {
        self.scan(Cf::Digests, range, &mut |skey, value| {
            let Some((t, key)) = split_storage_key(skey) else {
                return true;
            };
            let entry = DigestEntry::decode(value).unwrap_or_else(|| {
                // An undecodable entry: report a digest no replica has, so
                // anti-entropy repairs the key.
                tracing::warn!(key = ?skey, "corrupt digest entry");
                DigestEntry {
                    digest: 0,
                    tombstone_since: None,
                }
            });
            f(t, key, entry)
        })
    }

    fn key_count(&self) -> u64 {
        self.keys.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use dynakv_versioning::{Version, VersionVector};

    fn open(dir: &Path) -> Storage {
        Storage::open(&StorageConfig {
            path: dir.to_path_buf(),
            block_cache_mb: 8,
            sync_writes: false,
        })
        .expect("open")
    }

    #[test]
    fn corrupt_record_is_an_error_never_data_and_a_merge_repairs_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = open(dir.path());
        s.put_raw(Cf::Objects, &storage_key(b"k"), b"\x01garbage");
        assert!(matches!(s.get(b"k"), Err(StorageError::Corrupt { .. })));
        // Coordinated writes refuse to build on a corrupt record …
        let r = s.update(b"k", |o| -> Result<(), ()> {
            o.update(
                &VersionVector::new(),
                ActorId(1),
                Version::value("x", "", 1),
            );
            Ok(())
        });
        assert!(matches!(r, Err(StorageError::Corrupt { .. })));
        // … but a replica's copy replaces it.
        let mut good = Object::new();
        good.update(
            &VersionVector::new(),
            ActorId(2),
            Version::value("y", "", 2),
        );
        let out = s.merge(b"k", &good).expect("merge");
        assert!(out.changed);
        assert_eq!(s.get(b"k").expect("get"), Some(good));
    }

    #[test]
    fn range_scans_resume_where_they_stopped_and_drops_remove_only_their_range() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = open(dir.path());
        let mut o = Object::new();
        o.update(
            &VersionVector::new(),
            ActorId(1),
            Version::value(vec![7u8; 100], "", 1),
        );
        for i in 0..3000 {
            s.merge(format!("k{i}").as_bytes(), &o).expect("merge");
        }
        let p = Ring::partition_of(dynakv_ring::token(b"k0"));
        let range = Ring::range_of(p);
        let mut seen = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        for _ in 0..100 {
            let b = s.scan_objects(range, after.as_deref(), 150).expect("scan");
            seen.extend(b.items.iter().map(|(k, _, _)| k.clone()));
            after = b.resume_after.clone();
            if b.done {
                break;
            }
        }
        let expected: Vec<Vec<u8>> = (0..3000)
            .map(|i| format!("k{i}").into_bytes())
            .filter(|k| Ring::partition_of(dynakv_ring::token(k)) == p)
            .collect();
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), seen.len(), "no key twice");
        let mut want = expected.clone();
        want.sort();
        assert_eq!(sorted, want);
        assert!(
            !s.scan_objects(range, None, 1)
                .expect("scan")
                .items
                .is_empty()
        );
        let before = s.key_count();
        assert_eq!(s.drop_range(range).expect("drop"), expected.len() as u64);
        assert!(
            s.scan_objects(range, None, 1)
                .expect("scan")
                .items
                .is_empty()
        );
        assert_eq!(s.key_count(), before - expected.len() as u64);
        assert!(s.get(b"k0").expect("get").is_none());
        // The last partition's range ends at the last token.
        let last = Ring::range_of(PARTITIONS - 1);
        s.drop_range(last).expect("drop last");
        assert!(
            s.scan_objects(last, None, 1)
                .expect("scan")
                .items
                .is_empty()
        );
    }

    #[test]
    fn a_batch_merge_equals_merging_one_by_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (one, many) = (open(&dir.path().join("a")), open(&dir.path().join("b")));
        let version = |v: &str, actor: u64| {
            let mut o = Object::new();
            o.update(
                &VersionVector::new(),
                ActorId(actor),
                Version::value(v.as_bytes().to_vec(), "", 1),
            );
            o
        };
        // Both stores already hold some keys, concurrently written elsewhere.
        for i in 0..50 {
            let o = version(&format!("old{i}"), 1);
            one.merge(format!("k{i}").as_bytes(), &o).expect("merge");
            many.merge(format!("k{i}").as_bytes(), &o).expect("merge");
        }
        let mut items: Vec<(Vec<u8>, Object)> = (0..100)
            .map(|i| (format!("k{i}").into_bytes(), version(&format!("new{i}"), 2)))
            .collect();
        items.push((b"k3".to_vec(), version("again", 3)));
        for (k, o) in &items {
            one.merge(k, o).expect("merge");
        }
        assert_eq!(many.merge_batch(&items).expect("batch"), 100);
        for i in 0..100 {
            let k = format!("k{i}");
            assert_eq!(
                one.get(k.as_bytes()).expect("get"),
                many.get(k.as_bytes()).expect("get"),
                "{k}"
            );
        }
        assert_eq!(
            many.get(b"k3").expect("get").expect("k3").live().len(),
            3,
            "nothing overwritten"
        );
        assert_eq!(many.key_count(), 100);
        assert_eq!(many.merge_batch(&items).expect("again"), 0, "idempotent");
    }

    #[test]
    fn a_batch_merge_that_would_wait_for_a_busy_stripe_does_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let mut o = Object::new();
        o.update(
            &VersionVector::new(),
            ActorId(7),
            Version::value(b"v".to_vec(), "", 1),
        );
        let items = vec![(b"a".to_vec(), o.clone()), (b"b".to_vec(), o.clone())];
        {
            let _busy = store.lock(&storage_key(b"b"));
            assert!(store.try_merge_batch(&items).is_none());
            assert_eq!(store.get(b"a").expect("get"), None, "nothing written");
        }
        assert_eq!(
            store
                .try_merge_batch(&items)
                .expect("free")
                .expect("merged"),
            2
        );
        assert_eq!(store.get(b"a").expect("get"), Some(o.clone()));
        assert_eq!(store.get(b"b").expect("get"), Some(o));
    }

    /// An update of [`Storage::try_update_batch`] writing `value` with a
    /// fixed actor, or (`refuse`) scribbling on the object and then refusing.
    fn batch_update(key: &[u8], value: u8, refuse: bool) -> BatchUpdate<u8> {
        BatchUpdate {
            key: bytes::Bytes::copy_from_slice(key),
            apply: Box::new(move |o: &mut Object| {
                o.update(
                    &VersionVector::new(),
                    ActorId(9),
                    Version::value(vec![value], "", u64::from(value)),
                );
                if refuse { Err(value) } else { Ok(()) }
            }),
        }
    }

    #[test]
    fn a_batch_of_updates_is_written_whole_and_busy_keys_refusals_and_corrupt_keys_stay_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        store.put_raw(Cf::Objects, &storage_key(b"bad"), b"\x01garbage");
        let updates = vec![
            batch_update(b"a", 1, false),
            batch_update(b"bad", 2, false),
            batch_update(b"a", 3, false),
            batch_update(b"c", 4, false),
            batch_update(b"c", 5, true),
            batch_update(b"d", 6, true),
        ];
        assert!(
            ["a", "bad", "d"]
                .iter()
                .all(|k| stripe_of(&storage_key(k.as_bytes())) != stripe_of(&storage_key(b"c"))),
            "the test needs `c` alone on its stripe"
        );
        let busy = store.lock(&storage_key(b"c"));
        let answers = store.try_update_batch(updates);
        drop(busy);
        // The updates of the busy key come back untouched; the others are
        // applied without waiting for it.
        let mut outcomes = Vec::new();
        let mut back = Vec::new();
        for (i, answer) in answers.into_iter().enumerate() {
            match answer {
                Updated::Done(outcome) => outcomes.push((i, outcome)),
                Updated::Busy(update) => back.push((i, update)),
            }
        }
        assert_eq!(back.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [3, 4]);
        let (indices, updates): (Vec<usize>, Vec<_>) = back.into_iter().unzip();
        for (i, answer) in indices.into_iter().zip(store.try_update_batch(updates)) {
            let Updated::Done(outcome) = answer else {
                panic!("no stripe is busy now")
            };
            outcomes.push((i, outcome));
        }
        outcomes.sort_by_key(|(i, _)| *i);
        let outcomes: Vec<_> = outcomes.into_iter().map(|(_, o)| o).collect();
        let values = |o: &Object| -> Vec<Vec<u8>> {
            o.live()
                .iter()
                .map(|v| v.data.as_deref().unwrap_or_default().to_vec())
                .collect()
        };
        let ok = |i: usize| match &outcomes[i] {
            Ok(Ok(o)) => values(o),
            other => panic!("update {i}: {other:?}"),
        };
        assert_eq!(ok(0), vec![vec![1]]);
        assert!(matches!(outcomes[1], Err(StorageError::Corrupt { .. })));
        // The second update of `a` builds on the first (a blind write:
        // siblings), as two `update` calls would.
        assert_eq!(ok(2), vec![vec![1], vec![3]]);
        assert_eq!(ok(3), vec![vec![4]]);
        assert!(matches!(outcomes[4], Ok(Err(5))));
        assert!(matches!(outcomes[5], Ok(Err(6))));
        let stored = |k: &[u8]| store.get(k).expect("get").map(|o| values(&o));
        assert_eq!(stored(b"a"), Some(vec![vec![1], vec![3]]));
        // A refusal after scribbling keeps what came before it.
        assert_eq!(stored(b"c"), Some(vec![vec![4]]));
        assert_eq!(stored(b"d"), None);
        assert_eq!(store.key_count(), 2);
        let mut digests = 0;
        store
            .for_each_digest(TokenRange::FULL, &mut |_, _, _| {
                digests += 1;
                true
            })
            .expect("digests");
        assert_eq!(digests, 2, "each written object has its digest");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        /// A batch leaves the store, and answers each update, exactly as the
        /// same updates applied one by one.
        #[test]
        fn a_batch_of_updates_is_the_same_as_one_by_one(
            ops in proptest::collection::vec((0u8..4, proptest::bool::weighted(0.25)), 1..24)
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let batched = open(&dir.path().join("batched"));
            let single = open(&dir.path().join("single"));
            let keys = [b"k0", b"k1", b"k2", b"k3"];
            for k in [b"k1", b"k3"] {
                for s in [&batched, &single] {
                    s.update(k, |o| -> Result<(), ()> {
                        o.update(&VersionVector::new(), ActorId(1), Version::value("old", "", 0));
                        Ok(())
                    }).expect("storage").expect("seed");
                }
            }
            let updates = ops
                .iter()
                .enumerate()
                .map(|(i, &(k, refuse))| batch_update(keys[k as usize], i as u8, refuse))
                .collect();
            let outcomes: Vec<_> = batched
                .try_update_batch(updates)
                .into_iter()
                .map(|answer| match answer {
                    Updated::Done(outcome) => outcome,
                    Updated::Busy(_) => panic!("no stripe is busy"),
                })
                .collect();
            for (i, &(k, refuse)) in ops.iter().enumerate() {
                let one = batch_update(keys[k as usize], i as u8, refuse);
                let expected = single
                    .update(&one.key, |o| (one.apply)(o))
                    .expect("storage")
                    .map(|((), o)| o);
                proptest::prop_assert_eq!(outcomes[i].as_ref().expect("storage"), &expected);
            }
            for k in keys {
                proptest::prop_assert_eq!(batched.get(k).expect("get"), single.get(k).expect("get"));
            }
            proptest::prop_assert_eq!(batched.key_count(), single.key_count());
            let digests = |s: &Storage| {
                let mut all = Vec::new();
                s.for_each_digest(TokenRange::FULL, &mut |t, k, e| {
                    all.push((t, k.to_vec(), e));
                    true
                })
                .expect("digests");
                all
            };
            proptest::prop_assert_eq!(digests(&batched), digests(&single));
        }
    }

    #[test]
    fn identity_is_created_once_and_guards_the_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = {
            let s = open(dir.path());
            s.load_or_create_identity("n1").expect("identity")
        };
        let s = open(dir.path());
        assert_eq!(s.load_or_create_identity("n1").expect("identity"), first);
        assert!(matches!(
            s.load_or_create_identity("n2"),
            Err(StorageError::WrongNode { .. })
        ));
    }

    #[test]
    fn hints_are_kept_per_target_and_deleted_once_delivered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = open(dir.path());
        let o = Object::new();
        s.put_hint("n2", b"a", &o).expect("hint");
        s.put_hint("n3", b"b", &o).expect("hint");
        s.put_hint("n2", b"c", &o).expect("hint");
        assert_eq!(s.stats().hints, 3);
        assert_eq!(
            s.hint_targets().expect("targets"),
            vec!["n2".to_string(), "n3".to_string()]
        );
        let for_n2 = s.hints_for("n2", 10).expect("hints");
        let mut keys: Vec<Vec<u8>> = for_n2
            .iter()
            .map(|(_, h)| h.as_ref().expect("decodes").key.clone())
            .collect();
        keys.sort();
        assert_eq!(keys, vec![b"a".to_vec(), b"c".to_vec()]);
        for (id, h) in &for_n2 {
            let h = h.as_ref().expect("decodes");
            assert!(s.delete_hint(id, Some(&h.object)).expect("delete"));
        }
        assert!(s.hints_for("n2", 10).expect("hints").is_empty());
        drop(s);
        let s = open(dir.path());
        assert_eq!(s.stats().hints, 1, "hint count is rebuilt at open");
    }

    #[test]
    fn a_merged_hint_is_as_young_as_its_newest_write_and_a_cursor_walks_past_any_hint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = open(dir.path());
        s.put_hint("n2", b"k", &Object::new()).expect("hint");
        let first = s
            .get_hint("n2", b"k")
            .expect("get")
            .expect("hint")
            .created_ms;
        std::thread::sleep(std::time::Duration::from_millis(5));
        s.put_hint("n2", b"k", &Object::new()).expect("hint");
        let merged = s
            .get_hint("n2", b"k")
            .expect("get")
            .expect("hint")
            .created_ms;
        assert!(merged > first, "age refreshed by the merge");
        for i in 0..10 {
            s.put_hint("n2", format!("x{i}").as_bytes(), &Object::new())
                .expect("hint");
        }
        // Walking three at a time visits every hint once, in order.
        let mut seen = Vec::new();
        let mut after: Option<HintId> = None;
        loop {
            let batch = s.hints_after("n2", after.as_ref(), 3).expect("hints");
            if batch.is_empty() {
                break;
            }
            after = batch.last().map(|(id, _)| id.clone());
            seen.extend(batch.into_iter().map(|(_, h)| h.expect("decodes").key));
        }
        assert_eq!(seen.len(), 11);
        let mut dedup = seen.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), 11);
    }

    #[test]
    fn hint_targets_are_listed_once_whatever_the_tokens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = open(dir.path());
        // Enough keys that some tokens start with 0xff.
        for i in 0..2000 {
            s.put_hint("n2", format!("k{i}").as_bytes(), &Object::new())
                .expect("hint");
        }
        s.put_hint("n3", b"x", &Object::new()).expect("hint");
        assert_eq!(
            s.hint_targets().expect("targets"),
            vec!["n2".to_string(), "n3".to_string()]
        );
        assert_eq!(prefix_successor(&[1, 0xff, 0xff]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xff]), None);
    }

    #[test]
    fn hints_for_one_key_merge_and_a_changed_hint_is_not_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = open(dir.path());
        let mut a = Object::new();
        a.update(
            &VersionVector::new(),
            ActorId(1),
            Version::value("a", "", 1),
        );
        let mut b = Object::new();
        b.update(
            &VersionVector::new(),
            ActorId(2),
            Version::value("b", "", 2),
        );
        s.put_hint("n2", b"k", &a).expect("hint");
        let (id, read) = s.hints_for("n2", 10).expect("hints").remove(0);
        let read = read.expect("decodes");
        s.put_hint("n2", b"k", &b).expect("hint");
        assert_eq!(s.stats().hints, 1, "one hint per (target, key)");
        let merged = s.get_hint("n2", b"k").expect("get").expect("present");
        assert_eq!(merged.object.live().len(), 2);
        assert!(
            !s.delete_hint(&id, Some(&read.object)).expect("delete"),
            "changed since read"
        );
        assert!(s.delete_hint(&id, Some(&merged.object)).expect("delete"));
        assert_eq!(s.stats().hints, 0);
    }
}
