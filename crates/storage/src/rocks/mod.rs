//! The RocksDB engine: the `Storage` handle, its options and column
//! families, and the stripe locks every read-modify-write takes. Objects,
//! metadata, hints and bulk load live in the files of the same names.

mod hints;
mod ingest;
mod meta;
mod objects;
#[cfg(test)]
mod tests;

pub use hints::{Hint, HintId, StoredHint};
pub use ingest::Ingested;
pub use objects::{KeyBatch, ObjectBatch};

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use dynakv_ring::{PARTITIONS, Ring};
use dynakv_versioning::{ActorId, Incarnation, Object};
use parking_lot::Mutex;
use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB,
    DBCompressionType, Options, ReadOptions, WriteOptions,
};
use serde::{Deserialize, Serialize};

use crate::{StorageError, codec, split_storage_key};

/// One read-modify-write of [`Storage::try_update_batch`]: what
/// [`ObjectStore::update`](crate::ObjectStore::update) takes, boxed so updates of many callers (and
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
/// [`ObjectStore::update`](crate::ObjectStore::update) returns, the object stored after it.
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
        match codec::decode_object(bytes) {
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
