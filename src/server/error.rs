//! The error of a coordinated request, one type from the coordinator that
//! fails it, over node-to-node RPC (a forwarded write's answer), to the HTTP
//! API that renders it.

use dynakv_storage::StorageError;
use dynakv_versioning::TooManySiblings;
use serde::{Deserialize, Serialize};

/// Why a coordinated request failed.
/// The variants' order is part of the node-to-node wire format (bincode
/// encodes a variant by its index, and a forwarded write's failure travels in
/// `Response::Failed`): a new variant goes at the end.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
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
    Storage(String),
    /// The client's context names so many replica actors that the key's clock
    /// would exceed the coordinator's `MAX_CLOCK_ACTORS` (only a crafted context can).
    #[error("the causal context would grow the key's clock to {actors} actors (at most {limit})")]
    ClockTooLarge {
        /// Actors the clock would hold.
        actors: usize,
        /// The limit.
        limit: usize,
    },
    /// This node has not joined a cluster ring yet (started with seeds, it
    /// is still finding them): it cannot place the key. Nothing was written.
    #[error(
        "this node has not joined a cluster ring yet; nothing was written; retry, or wait for GET /health/ready"
    )]
    NotReady,
    /// Every replica refused a forwarded write because it no longer (or not
    /// yet) serves the key, and this node's ring did not catch up in time.
    /// Nothing was written.
    #[error(
        "the key's replicas are changing and none accepted the write; nothing was written; retry"
    )]
    RingChanging,
    /// A broken invariant (a ring that gives a key no replica): logged and
    /// counted.
    #[error("internal error: {0}")]
    Internal(String),
    /// The key's values, siblings together, would exceed what one object
    /// may hold (`MAX_OBJECT_BYTES`): nothing was written.
    #[error(
        "the key's values would add up to {bytes} bytes, over the {limit} one key may hold; resolve its siblings (write with its context) or store less; nothing was written"
    )]
    ObjectTooLarge {
        /// Bytes the object would hold.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
}

impl From<StorageError> for CoordError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Corrupt { .. } => CoordError::Corrupt,
            other => CoordError::Storage(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each variant keeps the index nodes of earlier versions decode it by.
    #[test]
    fn every_variant_keeps_its_wire_index() {
        let cases = [
            (
                CoordError::QuorumUnavailable {
                    needed: 2,
                    acked: 1,
                },
                0,
            ),
            (
                CoordError::TooManySiblings(TooManySiblings {
                    live: 65,
                    limit: 64,
                }),
                1,
            ),
            (CoordError::Corrupt, 2),
            (CoordError::Storage("disk".into()), 3),
            (
                CoordError::ClockTooLarge {
                    actors: 2000,
                    limit: 1024,
                },
                4,
            ),
            (CoordError::NotReady, 5),
            (CoordError::RingChanging, 6),
            (CoordError::Internal("bug".into()), 7),
            (
                CoordError::ObjectTooLarge {
                    bytes: 90 << 20,
                    limit: 80 << 20,
                },
                8,
            ),
        ];
        for (error, index) in cases {
            let bytes = dynakv_storage::codec::encode(&error);
            assert_eq!(bytes[1], index, "{error:?}");
            let back: CoordError = dynakv_storage::codec::decode(&bytes).expect("decodes");
            assert_eq!(back, error);
        }
    }
}
