//! Storage errors.

/// What can go wrong in the storage engine.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StorageError {
    /// RocksDB failed (I/O error, corruption it detected, …). Retrying may help if
    /// the cause was transient (disk full, busy).
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A stored record failed to decode. It is never served as data; the key
    /// should be repaired from another replica.
    #[error("corrupt record for key {key:?}: {reason}")]
    Corrupt {
        /// The storage key of the record (token ++ key) or the metadata name.
        key: Vec<u8>,
        /// Why decoding failed.
        reason: String,
    },
    /// A bulk load was malformed (a key outside its partition) or its files
    /// could not be written.
    #[error("ingest: {0}")]
    Ingest(String),
    /// The data directory belongs to another node.
    #[error("data directory belongs to node {stored:?}, not {requested:?}")]
    WrongNode {
        /// The name recorded in the directory.
        stored: String,
        /// The name this process was started with.
        requested: String,
    },
}

impl StorageError {
    /// True if the same call may succeed later (I/O trouble), false if it will fail
    /// the same way until the data is repaired or the configuration fixed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StorageError::Rocks(_))
    }
}
