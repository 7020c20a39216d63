//! The request coordinator (Dynamo §4.5): turns a client read or write into
//! operations on the key's replicas and decides when a quorum has answered.
//!
//! A single node is its own only replica: R and W are capped at the number of
//! members (SPEC §3), so a lone node serves at once.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dynakv_storage::{ObjectStore, StorageError};
use dynakv_versioning::{Object, TooManySiblings, Version, VersionVector};

use crate::config::QuorumMode;
use crate::node::Node;

/// A requested quorum size, as given per request (`r=2`, `w=quorum`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quorum {
    /// One replica.
    One,
    /// A majority of N.
    Majority,
    /// All N replicas.
    All,
    /// Exactly this many (1..=N).
    Exactly(usize),
}

impl Quorum {
    /// Parses `1..n`, `one`, `quorum` or `all`; `n` is the configured replica count.
    pub fn parse(s: &str, n: usize) -> Result<Quorum, String> {
        match s {
            "one" => Ok(Quorum::One),
            "quorum" => Ok(Quorum::Majority),
            "all" => Ok(Quorum::All),
            _ => match s.parse::<usize>() {
                Ok(k) if (1..=n).contains(&k) => Ok(Quorum::Exactly(k)),
                _ => Err(format!("must be 1..{n}, one, quorum or all, not {s:?}")),
            },
        }
    }

    /// The number of replies needed with `n` replicas, capped at `members`
    /// (a cluster smaller than N keeps every key on every member).
    pub fn resolve(self, n: usize, members: usize) -> usize {
        let k = match self {
            Quorum::One => 1,
            Quorum::Majority => n / 2 + 1,
            Quorum::All => n,
            Quorum::Exactly(k) => k,
        };
        k.min(members).max(1)
    }
}

/// Per-request options, with the node's defaults filled in.
#[derive(Clone, Copy, Debug)]
pub struct RequestOptions {
    /// R for reads, W for writes.
    pub quorum: Quorum,
    /// Sloppy or strict (the same thing on a lone node).
    #[allow(dead_code)]
    pub mode: QuorumMode,
    /// How long to wait for the quorum.
    pub timeout: Duration,
}

/// Why a coordinated request failed.
#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    /// Fewer replicas than the quorum answered in time. A write may still have
    /// been stored on those that did; it is not rolled back.
    #[error("{acked} of {needed} required replicas answered in time")]
    QuorumUnavailable {
        /// Replies required.
        needed: usize,
        /// Replies received.
        acked: usize,
    },
    /// The write would leave too many live siblings.
    #[error(transparent)]
    TooManySiblings(#[from] TooManySiblings),
    /// The local record is corrupt and awaits repair from a replica.
    #[error("stored record is corrupt and awaits repair from another replica")]
    Corrupt,
    /// The storage engine failed.
    #[error("storage: {0}")]
    Storage(StorageError),
}

impl From<StorageError> for CoordError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Corrupt { .. } => CoordError::Corrupt,
            other => CoordError::Storage(other),
        }
    }
}

impl Node {
    /// Coordinates a read: the merged sibling set of the replicas that answered.
    pub async fn coordinate_get(
        self: &Arc<Self>,
        key: Bytes,
        opts: RequestOptions,
    ) -> Result<Object, CoordError> {
        let needed = opts.quorum.resolve(self.config.n, 1);
        let read = self.blocking(move |node| node.storage.get(&key));
        let object = tokio::time::timeout(opts.timeout, read)
            .await
            .map_err(|_| CoordError::QuorumUnavailable { needed, acked: 0 })?
            .inspect_err(|e| self.note_storage_error(e))?;
        Ok(object.unwrap_or_default())
    }

    /// Coordinates a write of `version` (a value or a tombstone) that supersedes
    /// what `context` covers. Returns the context covering the new write.
    pub async fn coordinate_put(
        self: &Arc<Self>,
        key: Bytes,
        context: VersionVector,
        version: Version,
        opts: RequestOptions,
    ) -> Result<VersionVector, CoordError> {
        let needed = opts.quorum.resolve(self.config.n, 1);
        let write = self.blocking(move |node| {
            let actor = node.identity.actor;
            let max = node.config.max_siblings;
            node.storage
                .update(&key, |o| o.write_capped(&context, actor, version, max))
        });
        // The write keeps running if the wait times out: it is not rolled back.
        let result = tokio::time::timeout(opts.timeout, write)
            .await
            .map_err(|_| CoordError::QuorumUnavailable { needed, acked: 0 })?
            .inspect_err(|e| self.note_storage_error(e))?;
        let (_dot, object) = result?;
        Ok(object.context())
    }

    fn note_storage_error(&self, e: &StorageError) {
        if let StorageError::Corrupt { key, reason } = e {
            self.metrics.corrupt_records.inc();
            tracing::error!(key = ?String::from_utf8_lossy(key), %reason, "corrupt record on disk");
        } else {
            tracing::error!(error = %e, "storage error");
        }
    }
}
