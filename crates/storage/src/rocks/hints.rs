//! Hints: objects a fallback holds for a replica that was down, keyed by
//! target then storage key so one target's hints are one ordered scan.

use std::sync::atomic::Ordering;

use dynakv_versioning::Object;
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch};
use serde::{Deserialize, Serialize};

use super::{Cf, Storage, prefix_successor};
use crate::clock::now_ms;
use crate::{StorageError, codec, storage_key};

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

/// A hint as [`codec::FORMAT_V1`] stored it.
#[derive(Deserialize)]
struct HintV1 {
    target: String,
    key: Vec<u8>,
    object: dynakv_versioning::DvvSet<codec::VersionV1>,
    created_ms: u64,
}

/// Decodes a stored hint, in the current format or the one before.
fn decode_hint(bytes: &[u8]) -> Result<Hint, codec::CodecError> {
    if !codec::is_legacy(bytes) {
        return codec::decode(bytes);
    }
    let old: HintV1 = codec::decode_unchanged(bytes)?;
    Ok(Hint {
        target: old.target,
        key: old.key,
        object: old.object.map_values(dynakv_versioning::Version::from),
        created_ms: old.created_ms,
    })
}

/// A hint read back from disk: its id, and the hint or why it failed to decode.
pub type StoredHint = (HintId, Result<Hint, StorageError>);

/// The storage key of a hint, used to delete it once delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HintId(Vec<u8>);

pub(super) fn hint_prefix(target: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(target.len() + 2);
    p.extend_from_slice(&(target.len() as u16).to_be_bytes());
    p.extend_from_slice(target.as_bytes());
    p
}

/// A hint's key: the target's length-prefixed name, then the object's storage
/// key, so one target's hints are contiguous and in ring order.
pub(super) fn hint_key(target: &str, key: &[u8]) -> Vec<u8> {
    let mut k = hint_prefix(target);
    k.extend_from_slice(&storage_key(key));
    k
}

pub(super) fn hint_target(key: &[u8]) -> Option<&str> {
    let len = u16::from_be_bytes([*key.first()?, *key.get(1)?]) as usize;
    std::str::from_utf8(key.get(2..2 + len)?).ok()
}

impl Storage {
    /// Stores a hint for `target` (a replica that missed this write). Hints are
    /// kept per (target, key) and merged, so repeated hinted writes of one key
    /// hold one object, and delivering it once delivers them all.
    pub fn put_hint(&self, target: &str, key: &[u8], object: &Object) -> Result<(), StorageError> {
        let id = hint_key(target, key);
        let _guard = self.lock(&storage_key(key));
        let existing = self.db.get_pinned_cf(self.cf(Cf::Hints), &id)?;
        let fresh = existing.is_none();
        // A corrupt hint is dropped from the merge; anti-entropy repairs the key.
        let hint = match existing.as_deref().map(decode_hint) {
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

    pub(super) fn read_hint(&self, id: &[u8]) -> Result<Option<Hint>, StorageError> {
        match self.db.get_pinned_cf(self.cf(Cf::Hints), id)? {
            None => Ok(None),
            Some(bytes) => match decode_hint(&bytes) {
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
            let hint = decode_hint(&v).map_err(|e| StorageError::Corrupt {
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
            && decode_hint(&stored).is_ok_and(|h| &h.object != expected)
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
}
