//! The object-store interface shared by the RocksDB engine and the in-memory one.

use dynakv_ring::{Token, TokenRange};
use dynakv_versioning::Object;
use sha2::{Digest as _, Sha256};

use crate::StorageError;

/// An 8-byte digest of an encoded object. Replicas holding the same sibling set
/// hold the same encoding, hence the same digest.
pub type Digest = u64;

/// Computes the digest of an encoded object record.
pub fn digest_of(record: &[u8]) -> Digest {
    let hash = Sha256::digest(record);
    let mut b = [0u8; 8];
    b.copy_from_slice(&hash[..8]);
    u64::from_be_bytes(b)
}

/// What a merge did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeOutcome {
    /// The object now stored.
    pub object: Object,
    /// True if the stored object changed (the incoming one held something new).
    pub changed: bool,
}

/// A replica's object storage: one DVVSet object per key, plus its digest.
///
/// The contract (tested against every implementation in `tests/contract.rs`):
/// reads see every acknowledged write; `update` and `merge` are atomic per key;
/// digests always describe the stored object; scans return keys of a token range
/// in (token, key) order.
pub trait ObjectStore: Send + Sync {
    /// The object stored for `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Object>, StorageError>;

    /// Atomically applies `f` to the key's object (empty if absent) and stores the
    /// result. If `f` fails, nothing is written and its error is returned inside.
    fn update<T, E>(
        &self,
        key: &[u8],
        f: impl FnOnce(&mut Object) -> Result<T, E>,
    ) -> Result<Result<(T, Object), E>, StorageError>;

    /// Atomically merges (DVVSet sync) `incoming` into the key's object. A stored
    /// record that fails to decode is replaced by `incoming` (and reported).
    fn merge(&self, key: &[u8], incoming: &Object) -> Result<MergeOutcome, StorageError>;

    /// Removes the key entirely (tombstone purge).
    fn remove(&self, key: &[u8]) -> Result<(), StorageError>;

    /// Calls `f(token, key, digest)` for every key in `range`, in order, from a
    /// consistent snapshot, until `f` returns false.
    fn for_each_digest(
        &self,
        range: TokenRange,
        f: &mut dyn FnMut(Token, &[u8], Digest) -> bool,
    ) -> Result<(), StorageError>;

    /// Number of keys stored.
    fn key_count(&self) -> u64;
}
