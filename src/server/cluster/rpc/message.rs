//! The messages nodes exchange: one enum per direction, each request with its
//! response, plus the handshake. Encoded by `dynakv_storage::codec` behind a
//! format byte, so the wire format can evolve.

use bytes::Bytes;
use dynakv_antientropy::{Hash, NodeId, NodeView};
use dynakv_buckets::BucketMetadata;
use dynakv_membership::GossipMessage;
use dynakv_storage::IngestItem;
use dynakv_versioning::{Object, Version, VersionVector};
use serde::{Deserialize, Serialize};

use crate::server::error::CoordError;
use crate::server::security::SecurityMetadata;

/// Everything that travels in a frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Frame {
    /// Connection set-up, before any request.
    Hello(Hello),
    /// A request; the response carries the same id.
    Request {
        /// Chosen by the caller, unique per connection.
        id: u64,
        /// The request.
        body: Request,
    },
    /// The answer to request `id`.
    Response {
        /// The request's id.
        id: u64,
        /// The answer.
        body: Response,
    },
}

/// The mutual-authentication handshake (see [`crate::server::cluster::rpc::auth`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Hello {
    /// Server → client: prove you know the secret, using this nonce.
    Challenge {
        /// Random, fresh per connection.
        nonce: [u8; 32],
    },
    /// Client → server: the proof, the client's name, and its own nonce.
    Proof {
        /// The connecting node's name.
        name: String,
        /// HMAC of the server's nonce.
        proof: [u8; 32],
        /// Random nonce for the server to prove itself with.
        nonce: [u8; 32],
    },
    /// Server → client: accepted, with the server's name and proof.
    Accept {
        /// The accepting node's name.
        name: String,
        /// HMAC of the client's nonce.
        proof: [u8; 32],
    },
    /// Server → client: refused.
    Reject {
        /// Why.
        reason: String,
    },
}

/// A request from one node to another.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Liveness probe; answered with [`Response::Pong`].
    Ping,
    /// A gossip round: the sender's member table; answered with the receiver's.
    Gossip(GossipMessage),
    /// Store this version of a key: merge it into the receiver's copy, or, with
    /// `hint_for`, hold it as a hint for that replica (sloppy quorum). Merging
    /// makes redelivery harmless. Answered with [`Response::Ack`].
    ReplicaWrite {
        /// The user key.
        key: Bytes,
        /// The object to merge.
        object: Object,
        /// The replica this copy stands in for, when sent to a fallback.
        hint_for: Option<String>,
    },
    /// The receiver's copy of a key, merged with any hints it holds for it on
    /// behalf of `hints_for`. Answered with [`Response::Object`].
    ReplicaRead {
        /// The user key.
        key: Bytes,
        /// Replicas whose hints for this key to include (when asked as a fallback).
        hints_for: Vec<String>,
    },
    /// Coordinate a client write: sent by a node that is not a replica of the key
    /// to one that is, so a replica's actor advances the clock. Answered with
    /// [`Response::Written`] or [`Response::Failed`].
    CoordinateWrite(ForwardedWrite),
    /// Anti-entropy, step 1: are our trees of these partitions (runs of
    /// partition numbers, inclusive) equal to yours? `summary` hashes our roots
    /// in order. Answered with [`Response::AeSummary`], carrying the receiver's
    /// group hashes (one per 32 partitions) when they differ.
    AeCompare {
        /// Inclusive runs of partition numbers.
        partitions: Vec<(u16, u16)>,
        /// Hash of the sender's roots, in partition order.
        summary: Hash,
        /// The trees cover keys whose bucket's `n_val` exceeds this: the
        /// keys both nodes replicate (see `anti_entropy`).
        tier: u8,
    },
    /// Anti-entropy, step 2: the receiver's roots of these partitions.
    /// Answered with [`Response::AeRoots`].
    AeRoots {
        /// Inclusive runs of partition numbers.
        partitions: Vec<(u16, u16)>,
        /// As in `AeCompare`.
        tier: u8,
    },
    /// Anti-entropy, step 3: the receiver's views of these tree nodes.
    /// Answered with [`Response::AeNodes`].
    AeNodes {
        /// (partition, node) pairs.
        nodes: Vec<(u16, NodeId)>,
        /// As in `AeCompare`.
        tier: u8,
    },
    /// Anti-entropy, step 3: the receiver's objects for these keys.
    /// Answered with [`Response::AeObjects`].
    AeFetch {
        /// The keys.
        keys: Vec<Bytes>,
    },
    /// Anti-entropy, step 3: merge these objects. Answered with
    /// [`Response::AePushed`].
    AePush {
        /// (key, object) pairs.
        items: Vec<(Bytes, Object)>,
    },
    /// Keys a node hands to their replicas before it drops its own copy
    /// (keys of buckets with fewer replicas than N): merge them. Answered
    /// with [`Response::AePushed`] once every one is stored,
    /// [`Response::NotReplica`] if the receiver does not hold a key's
    /// partition, or [`Response::Error`].
    AeHandOver {
        /// (key, object) pairs.
        items: Vec<(Bytes, Object)>,
    },
    /// Tombstone purge: remove these keys if their digest is still the one
    /// given (every replica holds the same tombstones). Answered with
    /// [`Response::AePurged`].
    AePurge {
        /// (key, digest) pairs.
        items: Vec<(Bytes, u64)>,
    },
    /// Ownership handoff: the next batch of a partition's objects, in on-disk
    /// order, after storage key `after` (from the start when `None`), about
    /// `max_bytes` of records. Sent by a new replica to a serving one; answered
    /// with [`Response::TransferBatch`], [`Response::Busy`] (at its
    /// `transfer_limit`: retry later) or [`Response::NotReplica`].
    TransferFetch {
        /// The partition.
        partition: u16,
        /// The storage key the previous batch ended at.
        after: Option<Bytes>,
        /// Batch size the receiver asks for (the sender caps it).
        max_bytes: u32,
    },
    /// Bulk load (`dynakv load --sst`): objects of partitions the receiver
    /// holds, ingested as SST files where its copy of a partition is empty,
    /// merged elsewhere. Answered with [`Response::Ingested`] or
    /// [`Response::NotReplica`].
    Ingest {
        /// The objects, encoded once by the replica that received the load.
        items: Vec<IngestItem>,
    },
    /// Bucket metadata: the sender's digest, and its whole map when it
    /// pushes a change. Answered with [`Response::Buckets`]: the receiver's
    /// map when (after merging) its digest differs.
    Buckets {
        /// The sender's digest.
        digest: u64,
        /// The sender's map, when pushed.
        map: Option<BucketMetadata>,
    },
    /// Key listing: the keys of a partition that start with `prefix` and
    /// are not deleted, after storage key `after`, at most `limit`. Answered
    /// with [`Response::Keys`].
    ListKeys {
        /// The partition.
        partition: u16,
        /// The encoded namespace prefix (empty: every key).
        prefix: Bytes,
        /// The storage key the previous batch ended at.
        after: Option<Bytes>,
        /// Most keys in the answer.
        limit: u32,
    },
    /// Users and grants: as [`Request::Buckets`], for the security
    /// metadata. Answered with [`Response::Security`].
    Security {
        /// The sender's digest.
        digest: u64,
        /// The sender's metadata, when pushed.
        map: Option<SecurityMetadata>,
    },
}

/// Longest key: 1,024 bytes (SPEC §2), plus a namespace (a marker byte and
/// two length-prefixed names of at most 255 bytes).
const MAX_KEY: usize = 1024 + 3 + 2 * 255;
/// Longest node name (the configuration allows 64).
const MAX_NAME: usize = 64;
/// Most items in one batch request.
const MAX_ITEMS: usize = 65_536;
/// Most members a gossip table may list, and ring log entries.
const MAX_MEMBERS: usize = 4096;

fn key_ok(k: &[u8]) -> bool {
    !k.is_empty() && k.len() <= MAX_KEY
}

fn runs_ok(runs: &[(u16, u16)]) -> bool {
    let partitions = dynakv_ring::PARTITIONS as u16;
    runs.len() <= dynakv_ring::PARTITIONS && runs.iter().all(|&(a, b)| a <= b && b < partitions)
}

impl Request {
    /// The bytes of user data the request carries (keys and values): what
    /// applying it will copy into a storage write.
    pub fn value_bytes(&self) -> usize {
        match self {
            Request::ReplicaWrite { key, object, .. } => {
                key.len()
                    + object
                        .values()
                        .map(|v| v.data.as_ref().map_or(0, |d| d.len()))
                        .sum::<usize>()
            }
            Request::ReplicaRead { key, .. } => key.len(),
            _ => 0,
        }
    }

    /// Checks every number and length a peer sent, before the request is
    /// handled: a peer may be buggy or compromised, and no message may panic a
    /// node or make it do unbounded work. Returns what is wrong.
    pub fn validate(&self) -> Result<(), &'static str> {
        let partitions = dynakv_ring::PARTITIONS as u16;
        let ok = match self {
            Request::Ping => true,
            Request::Gossip(m) => {
                m.entries.len() <= MAX_MEMBERS
                    && m.from.len() <= MAX_NAME
                    && m.entries.iter().all(|e| e.info.name.len() <= MAX_NAME)
                    && m.ring.as_ref().is_none_or(|r| {
                        r.log.len() <= MAX_MEMBERS * 4
                            && r.moving.keys().all(|&p| p < partitions)
                            && r.moving.values().all(|t| t.from.len() <= 16)
                    })
            }
            Request::ReplicaWrite { key, hint_for, .. } => {
                key_ok(key) && hint_for.as_ref().is_none_or(|h| h.len() <= MAX_NAME)
            }
            Request::ReplicaRead { key, hints_for } => {
                key_ok(key)
                    && hints_for.len() <= 16
                    && hints_for.iter().all(|h| h.len() <= MAX_NAME)
            }
            Request::CoordinateWrite(write) => key_ok(&write.key) && (1..=16).contains(&write.w),
            Request::AeCompare { partitions, .. } | Request::AeRoots { partitions, .. } => {
                runs_ok(partitions)
            }
            Request::AeNodes { nodes, .. } => {
                nodes.len() <= MAX_ITEMS
                    && nodes.iter().all(|&(p, id)| p < partitions && id.is_valid())
            }
            Request::AeFetch { keys } => keys.len() <= MAX_ITEMS && keys.iter().all(|k| key_ok(k)),
            Request::AePush { items } | Request::AeHandOver { items } => {
                items.len() <= MAX_ITEMS && items.iter().all(|(k, _)| key_ok(k))
            }
            Request::AePurge { items } => {
                items.len() <= MAX_ITEMS && items.iter().all(|(k, _)| key_ok(k))
            }
            Request::TransferFetch {
                partition, after, ..
            } => *partition < partitions && after.as_ref().is_none_or(|a| a.len() <= MAX_KEY + 8),
            Request::Ingest { items } => {
                items.len() <= MAX_ITEMS && items.iter().all(|i| key_ok(&i.key))
            }
            Request::Buckets { .. } | Request::Security { .. } => true,
            Request::ListKeys {
                partition,
                prefix,
                after,
                limit,
            } => {
                *partition < partitions
                    && prefix.len() <= MAX_KEY
                    && after.as_ref().is_none_or(|a| a.len() <= MAX_KEY + 8)
                    && *limit as usize <= MAX_ITEMS
            }
        };
        if ok { Ok(()) } else { Err(self.kind()) }
    }

    /// The request's kind, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Ping => "ping",
            Request::Gossip(_) => "gossip",
            Request::ReplicaWrite { .. } => "replica_write",
            Request::ReplicaRead { .. } => "replica_read",
            Request::CoordinateWrite(_) => "coordinate_write",
            Request::AeCompare { .. } => "ae_compare",
            Request::AeRoots { .. } => "ae_roots",
            Request::AeNodes { .. } => "ae_nodes",
            Request::AeFetch { .. } => "ae_fetch",
            Request::AePush { .. } => "ae_push",
            Request::AeHandOver { .. } => "ae_hand_over",
            Request::AePurge { .. } => "ae_purge",
            Request::TransferFetch { .. } => "transfer_fetch",
            Request::Ingest { .. } => "ingest",
            Request::Buckets { .. } => "buckets",
            Request::Security { .. } => "security",
            Request::ListKeys { .. } => "list_keys",
        }
    }
}

/// A client write forwarded by a node that is not a replica of its key to
/// one that is, so a replica's actor advances the clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForwardedWrite {
    /// The user key.
    pub key: Bytes,
    /// What the client's context covers.
    pub context: VersionVector,
    /// The new value or tombstone.
    pub version: Version,
    /// Acknowledgements required.
    pub w: usize,
    /// Strict quorum (only the key's own replicas count).
    pub strict: bool,
    /// The write replaces every version the coordinator holds, whatever
    /// `context` says (a `last_write_wins` bucket).
    pub replace: bool,
    /// A counter increment (see `RequestOptions::increment`).
    pub increment: Option<i64>,
    /// How long to wait for them.
    pub timeout_ms: u64,
}

/// A response to a [`Request`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Answer to `Ping`.
    Pong,
    /// Answer to `Gossip`: the receiver's member table.
    Gossip(GossipMessage),
    /// Answer to `ReplicaWrite`: stored durably.
    Ack,
    /// Answer to `ReplicaRead`: the receiver's copy (none if it has none).
    Object(Option<Object>),
    /// Answer to `CoordinateWrite`: the context covering the new write.
    Written(VersionVector),
    /// Answer to `CoordinateWrite`: it failed.
    Failed(CoordError),
    /// Answer to `AeCompare`.
    AeSummary {
        /// The summaries matched: the partitions are identical.
        equal: bool,
        /// When they did not: the receiver's hash of each group of 32
        /// partitions (in request order).
        groups: Option<Vec<Hash>>,
    },
    /// Answer to `AeRoots`: one root per requested partition.
    AeRoots(Vec<Hash>),
    /// Answer to `AeNodes`: one view per requested node.
    AeNodes(Vec<NodeView>),
    /// Answer to `AeFetch`: the object per key (none if absent or corrupt).
    AeObjects(Vec<(Bytes, Option<Object>)>),
    /// Answer to `AePush`: the keys whose stored object changed.
    AePushed(Vec<Bytes>),
    /// Answer to `AePurge`: the keys removed (or already absent).
    AePurged(Vec<Bytes>),
    /// Answer to `TransferFetch`: one batch of the partition.
    TransferBatch {
        /// (user key, object) pairs, in on-disk order.
        items: Vec<(Bytes, Object)>,
        /// Where the next batch resumes.
        resume_after: Option<Bytes>,
        /// True if this batch ends the partition.
        done: bool,
    },
    /// The receiver does not hold the key's partition under its ring (it was
    /// handed off, or is not its to serve yet): ask a replica of the new ring.
    NotReplica,
    /// The receiver is at its handoff limit: retry later.
    Busy,
    /// The request failed on the receiver.
    Error(String),
    /// Answer to `Ingest`: keys ingested as SST files (their partitions were
    /// empty) and keys the merge changed (elsewhere).
    Ingested {
        /// Keys ingested as SST files.
        sst: u64,
        /// Keys merged that changed.
        merged: u64,
    },
    /// Answer to `Buckets`: the receiver's map, when it differs.
    Buckets(Option<BucketMetadata>),
    /// Answer to `ListKeys`: keys (as stored, namespace included).
    Keys {
        /// The keys, in on-disk order.
        keys: Vec<Bytes>,
        /// Where the next batch resumes.
        resume_after: Option<Bytes>,
        /// True if the partition is done.
        done: bool,
    },
    /// Answer to `Security`: the receiver's metadata, when it differs.
    Security(Option<SecurityMetadata>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynakv_antientropy::NodeId;
    use proptest::prelude::*;

    proptest! {
        /// Whatever numbers a peer puts in anti-entropy and handoff requests,
        /// validation never panics and accepts exactly the in-range ones.
        #[test]
        fn peer_numbers_are_validated(
            runs in proptest::collection::vec((any::<u16>(), any::<u16>()), 0..8),
            nodes in proptest::collection::vec((any::<u16>(), any::<u8>(), any::<u64>()), 0..8),
            partition in any::<u16>(),
        ) {
            let parts = dynakv_ring::PARTITIONS as u16;
            let compare = Request::AeRoots { partitions: runs.clone(), tier: 0 };
            let runs_fine = runs.iter().all(|&(a, b)| a <= b && b < parts);
            prop_assert_eq!(compare.validate().is_ok(), runs_fine);
            let ids: Vec<(u16, NodeId)> = nodes
                .iter()
                .map(|&(p, depth, index)| (p, NodeId { depth, index }))
                .collect();
            let fine = ids.iter().all(|(p, id)| *p < parts && id.is_valid());
            prop_assert_eq!(Request::AeNodes { nodes: ids, tier: 0 }.validate().is_ok(), fine);
            let fetch = Request::TransferFetch { partition, after: None, max_bytes: u32::MAX };
            prop_assert_eq!(fetch.validate().is_ok(), partition < parts);
        }
    }

    #[test]
    fn keys_must_have_1_to_max_key_bytes() {
        let read = |k: &[u8]| Request::ReplicaRead {
            key: Bytes::copy_from_slice(k),
            hints_for: Vec::new(),
        };
        assert!(read(b"").validate().is_err());
        assert!(read(&[7; MAX_KEY]).validate().is_ok());
        assert!(read(&[7; MAX_KEY + 1]).validate().is_err());
    }
}
