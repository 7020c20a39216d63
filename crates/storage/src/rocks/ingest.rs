//! Bulk load: records written as SST files (objects and digests) and
//! ingested where a partition's copy is empty, merged where it is not.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use dynakv_ring::Ring;
use rocksdb::DBCompressionType;

use super::{Cf, Storage};
use crate::clock::now_ms;
use crate::store::IngestItem;
use crate::{StorageError, codec, split_storage_key, storage_key};

/// The two SST files of a bulk load, until they are ingested.
pub(super) struct SstFiles {
    objects: Vec<PathBuf>,
    digests: Vec<PathBuf>,
}

impl SstFiles {
    pub(super) fn remove(&self) {
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

impl Storage {
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
                    codec::decode_object(&item.record)
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
    pub(super) fn write_ssts(
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
    pub(super) fn ingest_files(
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
}
