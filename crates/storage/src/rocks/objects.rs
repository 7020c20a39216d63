//! Objects and their digests: reads, the read-modify-write of one key and
//! of a batch under the stripe locks, merges from peers, token-range scans
//! and deletes, and the [`ObjectStore`] contract.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use dynakv_ring::{Ring, TokenRange};
use dynakv_versioning::Object;
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch};

use super::{BatchUpdate, Cf, Storage, UpdateOutcome, Updated, stripe_of, stripes_of};
use crate::store::{DigestEntry, DigestVisitor};
use crate::{MergeOutcome, ObjectStore, StorageError, codec, split_storage_key, storage_key};

/// One step of a key listing ([`Storage::scan_keys`]).
#[derive(Debug, Default)]
pub struct KeyBatch {
    /// The keys, in on-disk order.
    pub keys: Vec<Vec<u8>>,
    /// The storage key of the last entry read: where the next step resumes.
    pub resume_after: Option<Vec<u8>>,
    /// True if the scan reached the end of the range.
    pub done: bool,
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
        } else if existed && self.needs_rewrite(&skey)? {
            // An object without its digest (a bulk load interrupted between
            // its two ingestions): written whole again, so anti-entropy, which
            // sees keys through their digests, and the key count see it. A
            // record in the format before this one is written again too, so
            // replicas holding the same object hold the same bytes.
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
        self.delete_locked(&skey, existed)
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

impl Storage {
    pub(super) fn read_object(&self, skey: &[u8]) -> Result<Option<Object>, StorageError> {
        match self.db.get_pinned_cf(self.cf(Cf::Objects), skey)? {
            None => Ok(None),
            Some(bytes) => {
                codec::decode_object(&bytes)
                    .map(Some)
                    .map_err(|e| StorageError::Corrupt {
                        key: skey.to_vec(),
                        reason: e.to_string(),
                    })
            }
        }
    }

    /// Writes an object and its digest in one batch; counts new keys.
    pub(super) fn write_object(
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
    pub(super) fn write_objects<'a>(
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
        self.delete_locked(&skey, true)?;
        Ok(true)
    }

    /// Removes a key only if its stored object is still `expected` (a copy
    /// handed to the key's replicas: nothing arrived meanwhile). Compares
    /// objects, not record bytes, so a record of the format before this one
    /// compares equal to what was read from it.
    pub fn remove_if_same(&self, key: &[u8], expected: &Object) -> Result<bool, StorageError> {
        let skey = storage_key(key);
        let _guard = self.lock(&skey);
        match self.read_object(&skey)? {
            None => Ok(false),
            Some(current) if &current == expected => {
                self.delete_locked(&skey, true)?;
                Ok(true)
            }
            Some(_) => Ok(false),
        }
    }

    /// Deletes the object and digest of `skey` (its stripe lock held), retiring
    /// this incarnation's actors in it; `counted` if it was counted in `keys`.
    pub(super) fn delete_locked(&self, skey: &[u8], counted: bool) -> Result<(), StorageError> {
        if let Some(bytes) = self.db.get_pinned_cf(self.cf(Cf::Objects), skey)? {
            self.retire(skey, &bytes);
        }
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.cf(Cf::Objects), skey);
        batch.delete_cf(self.cf(Cf::Digests), skey);
        self.db.write_opt(batch, &self.write_opts)?;
        if counted {
            self.keys.fetch_sub(1, Ordering::Relaxed);
        }
        self.touch(skey);
        Ok(())
    }

    pub(super) fn scan(
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
        let mut it = self.range_after(Cf::Objects, range, after);
        while let (Some(skey), Some(value)) = (it.key(), it.value()) {
            if bytes >= max_bytes {
                it.status()?;
                return Ok(batch);
            }
            batch.resume_after = Some(skey.to_vec());
            if let Some((_, key)) = split_storage_key(skey) {
                match codec::decode_object(value) {
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

    /// A raw iterator over `range` of `cf`, positioned after the storage key
    /// `after` (at the range's start when `None`), not filling the block
    /// cache: the start of every resumable range scan.
    fn range_after(
        &self,
        cf: Cf,
        range: TokenRange,
        after: Option<&[u8]>,
    ) -> rocksdb::DBRawIteratorWithThreadMode<'_, rocksdb::DB> {
        let mut ro = ReadOptions::default();
        ro.fill_cache(false);
        ro.set_iterate_lower_bound(range.start.to_be_bytes().to_vec());
        if range.end < u64::MAX {
            ro.set_iterate_upper_bound((range.end + 1).to_be_bytes().to_vec());
        }
        let mut it = self.db.raw_iterator_cf_opt(self.cf(cf), ro);
        match after {
            Some(k) => {
                it.seek(k);
                if it.key() == Some(k) {
                    it.next();
                }
            }
            None => it.seek(range.start.to_be_bytes()),
        }
        it
    }

    /// Keys of `range` that start with `prefix` and hold a live version, in
    /// on-disk order after the storage key `after`, at most `limit`: one
    /// step of a key listing. Reads only the digest column family (a few
    /// bytes per key), so a listing never loads values. Returns the keys,
    /// the storage key to resume after, and whether the range is done.
    pub fn scan_keys(
        &self,
        range: TokenRange,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<KeyBatch, StorageError> {
        let mut batch = KeyBatch::default();
        let mut it = self.range_after(Cf::Digests, range, after);
        while let (Some(skey), Some(value)) = (it.key(), it.value()) {
            if batch.keys.len() >= limit {
                it.status()?;
                return Ok(batch);
            }
            batch.resume_after = Some(skey.to_vec());
            if let Some((_, key)) = split_storage_key(skey)
                && key.starts_with(prefix)
                && DigestEntry::decode(value).is_some_and(|e| e.tombstone_since.is_none())
            {
                batch.keys.push(key.to_vec());
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
    pub(super) fn update_locked<E>(
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
    pub(super) fn merge_locked(
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
            } else if existed
                && !staged.contains_key(skey.as_slice())
                && self.needs_rewrite(skey)?
            {
                // An object without its digest, or in the old format:
                // rewritten (see `merge`).
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

    /// True if the key's record must be written again although a merge
    /// changed nothing: it has no digest entry, or is in the format before
    /// this one ([`codec::is_legacy`]).
    pub(super) fn needs_rewrite(&self, skey: &[u8]) -> Result<bool, StorageError> {
        if self.db.get_pinned_cf(self.cf(Cf::Digests), skey)?.is_none() {
            return Ok(true);
        }
        Ok(self
            .db
            .get_pinned_cf(self.cf(Cf::Objects), skey)?
            .is_some_and(|record| codec::is_legacy(&record)))
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

    pub(super) fn count_range(&self, range: TokenRange) -> Result<u64, StorageError> {
        let mut n = 0u64;
        self.scan(Cf::Digests, range, &mut |_, _| {
            n += 1;
            true
        })?;
        Ok(n)
    }
}
