//! dynakv's storage engine: where a replica keeps its objects, on RocksDB.
//!
//! # Layout
//!
//! One RocksDB database per node with a fixed set of column families ([`Cf`]):
//!
//! | family    | key                         | value                                   |
//! |-----------|-----------------------------|-----------------------------------------|
//! | `objects` | ring token (8 bytes BE) ++ key | the object (DVVSet of versions), encoded by [`codec`] |
//! | `digests` | same as `objects`           | an 8-byte digest of the encoded object (+ tombstone time) |
//! | `hints`   | target node ++ sequence     | a hinted write held for a down replica   |
//! | `meta`    | a name                      | node identity, cluster state             |
//!
//! Prefixing keys with their ring token makes every range of the ring one
//! contiguous, ordered scan. The digest of every object is written in the same
//! `WriteBatch` as the object, so the anti-entropy Merkle trees are built from a
//! sequential scan of a few bytes per key instead of reading every value
//! (Dynamo §4.7).
//!
//! # Guarantees
//!
//! * Every write goes through RocksDB's write-ahead log before it is acknowledged,
//!   so a killed process loses nothing it acknowledged; with `sync_writes` the log
//!   is also fsynced, so a machine crash loses nothing either.
//! * Read-modify-write of one key ([`ObjectStore::update`], [`ObjectStore::merge`])
//!   is atomic: a striped lock serialises writers of the same key.
//! * A record that fails to decode is an error ([`StorageError::Corrupt`]), never
//!   data: the caller reports it and repairs the key from another replica.

pub mod clock;
pub mod codec;
mod error;
mod keys;
mod mem;
mod rocks;
mod store;

pub use error::StorageError;
pub use keys::{split_storage_key, storage_key};
pub use mem::MemStore;
pub use rocks::{
    ApplyUpdate, BatchUpdate, Cf, Hint, HintId, Identity, Ingested, KeyBatch, ObjectBatch, Storage,
    StorageConfig, StorageStats, StoredHint, UpdateOutcome, Updated, db_options,
};
pub use store::{
    Digest, DigestEntry, DigestVisitor, IngestItem, MergeOutcome, ObjectStore, digest_of,
};
