//! The object-store interface shared by the RocksDB engine and the in-memory one.

use bytes::Bytes;
use dynakv_ring::{Token, TokenRange};
use dynakv_versioning::Object;
use serde::{Deserialize, Serialize};
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

/// What the digest column holds for one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DigestEntry {
    /// Digest of the encoded object.
    pub digest: Digest,
    /// When every version of the object is a tombstone: the newest one's time
    /// (ms). Lets tombstone purge find candidates from the digest scan alone.
    pub tombstone_since: Option<u64>,
}

impl DigestEntry {
    /// The entry describing an object and its encoding.
    pub fn of(object: &Object, record: &[u8]) -> DigestEntry {
        DigestEntry {
            digest: digest_of(record),
            tombstone_since: (!object.is_empty() && object.is_deleted())
                .then(|| object.newest_timestamp_ms()),
        }
    }

    /// The on-disk form: the digest, then the tombstone time if any.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.digest.to_be_bytes().to_vec();
        if let Some(t) = self.tombstone_since {
            out.extend_from_slice(&t.to_be_bytes());
        }
        out
    }

    /// Parses the on-disk form; `None` if malformed.
    pub fn decode(bytes: &[u8]) -> Option<DigestEntry> {
        let word = |b: &[u8]| -> Option<u64> { Some(u64::from_be_bytes(b.try_into().ok()?)) };
        match bytes.len() {
            8 => Some(DigestEntry {
                digest: word(bytes)?,
                tombstone_since: None,
            }),
            16 => Some(DigestEntry {
                digest: word(&bytes[..8])?,
                tombstone_since: Some(word(&bytes[8..])?),
            }),
            _ => None,
        }
    }
}

/// An object encoded for bulk ingestion ([`crate::Storage::ingest`]): the
/// replica that receives a load encodes each object and its digest once, and
/// every replica stores those bytes as they are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestItem {
    /// The user's key.
    pub key: Bytes,
    /// The object, encoded by [`crate::codec`].
    pub record: Bytes,
    /// Its [`DigestEntry`], encoded.
    pub digest: Bytes,
}

impl IngestItem {
    /// Encodes `object`, stored under `key`.
    pub fn new(key: Bytes, object: &Object) -> IngestItem {
        let record = crate::codec::encode(object);
        let digest = DigestEntry::of(object, &record).encode();
        IngestItem {
            key,
            record: record.into(),
            digest: digest.into(),
        }
    }
}

/// What a merge did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeOutcome {
    /// The object now stored.
    pub object: Object,
    /// True if the stored object changed (the incoming one held something new).
    pub changed: bool,
}

/// A visitor over the digest column: `(token, key, entry)`; returns false to stop.
pub type DigestVisitor<'a> = dyn FnMut(Token, &[u8], DigestEntry) -> bool + 'a;

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

    /// Calls `f(token, key, entry)` for every key in `range`, in order, from a
    /// consistent snapshot, until `f` returns false.
    fn for_each_digest(
        &self,
        range: TokenRange,
        f: &mut DigestVisitor<'_>,
    ) -> Result<(), StorageError>;

    /// Number of keys stored.
    fn key_count(&self) -> u64;
}
