//! An in-memory [`ObjectStore`], for tests of code above the storage engine.

use std::collections::BTreeMap;

use dynakv_ring::TokenRange;
use dynakv_versioning::Object;
use parking_lot::Mutex;

use crate::store::{DigestEntry, DigestVisitor};
use crate::{MergeOutcome, ObjectStore, StorageError, codec, split_storage_key, storage_key};

/// Objects in a `BTreeMap` keyed like the on-disk layout (token ++ key).
#[derive(Default)]
pub struct MemStore {
    objects: Mutex<BTreeMap<Vec<u8>, (Object, DigestEntry)>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn with_digest(object: Object) -> (Object, DigestEntry) {
    let d = DigestEntry::of(&object, &codec::encode(&object));
    (object, d)
}

impl ObjectStore for MemStore {
    fn get(&self, key: &[u8]) -> Result<Option<Object>, StorageError> {
        Ok(self
            .objects
            .lock()
            .get(&storage_key(key))
            .map(|(o, _)| o.clone()))
    }

    fn update<T, E>(
        &self,
        key: &[u8],
        f: impl FnOnce(&mut Object) -> Result<T, E>,
    ) -> Result<Result<(T, Object), E>, StorageError> {
        let mut map = self.objects.lock();
        let skey = storage_key(key);
        let mut object = map.get(&skey).map(|(o, _)| o.clone()).unwrap_or_default();
        match f(&mut object) {
            Ok(t) => {
                map.insert(skey, with_digest(object.clone()));
                Ok(Ok((t, object)))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    fn merge(&self, key: &[u8], incoming: &Object) -> Result<MergeOutcome, StorageError> {
        let mut map = self.objects.lock();
        let skey = storage_key(key);
        let current = map.get(&skey).map(|(o, _)| o.clone());
        let merged = match &current {
            Some(c) => c.synced(incoming),
            None => incoming.clone(),
        };
        let changed = current.as_ref() != Some(&merged);
        if changed {
            map.insert(skey, with_digest(merged.clone()));
        }
        Ok(MergeOutcome {
            object: merged,
            changed,
        })
    }

    fn remove(&self, key: &[u8]) -> Result<(), StorageError> {
        self.objects.lock().remove(&storage_key(key));
        Ok(())
    }

    fn for_each_digest(
        &self,
        range: TokenRange,
        f: &mut DigestVisitor<'_>,
    ) -> Result<(), StorageError> {
        // Copy first: the callback must not run under the lock (it may call back in).
        let snapshot: Vec<(Vec<u8>, DigestEntry)> = self
            .objects
            .lock()
            .range(range.start.to_be_bytes().to_vec()..)
            .map(|(k, (_, d))| (k.clone(), *d))
            .collect();
        for (skey, d) in snapshot {
            let Some((t, key)) = split_storage_key(&skey) else {
                continue;
            };
            if t > range.end || !f(t, key, d) {
                break;
            }
        }
        Ok(())
    }

    fn key_count(&self) -> u64 {
        self.objects.lock().len() as u64
    }
}
