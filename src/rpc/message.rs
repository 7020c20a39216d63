//! The messages nodes exchange: one enum per direction, each request with its
//! response, plus the handshake. Encoded by `dynakv_storage::codec` behind a
//! format byte, so the wire format can evolve.

use bytes::Bytes;
use dynakv_antientropy::{Hash, NodeId, NodeView};
use dynakv_membership::GossipMessage;
use dynakv_versioning::{Object, Version, VersionVector};
use serde::{Deserialize, Serialize};

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

/// The mutual-authentication handshake (see [`crate::rpc::auth`]).
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
    CoordinateWrite {
        /// The user key.
        key: Bytes,
        /// What the client's context covers.
        context: VersionVector,
        /// The new value or tombstone.
        version: Version,
        /// Acknowledgements required.
        w: usize,
        /// Strict quorum (only the key's own replicas count).
        strict: bool,
        /// How long to wait for them.
        timeout_ms: u64,
    },
    /// Anti-entropy, step 1: are our trees of these partitions (runs of
    /// partition numbers, inclusive) equal to yours? `summary` hashes our roots
    /// in order. Answered with [`Response::AeSummary`], carrying the receiver's
    /// group hashes (one per 32 partitions) when they differ.
    AeCompare {
        /// Inclusive runs of partition numbers.
        partitions: Vec<(u16, u16)>,
        /// Hash of the sender's roots, in partition order.
        summary: Hash,
    },
    /// Anti-entropy, step 2: the receiver's roots of these partitions.
    /// Answered with [`Response::AeRoots`].
    AeRoots {
        /// Inclusive runs of partition numbers.
        partitions: Vec<(u16, u16)>,
    },
    /// Anti-entropy, step 3: the receiver's views of these tree nodes.
    /// Answered with [`Response::AeNodes`].
    AeNodes {
        /// (partition, node) pairs.
        nodes: Vec<(u16, NodeId)>,
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
}

/// A coordinated request's failure, as sent between nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireError {
    /// Fewer than `needed` acknowledgements.
    QuorumUnavailable {
        /// Required.
        needed: usize,
        /// Received.
        acked: usize,
    },
    /// The write would leave too many live siblings.
    TooManySiblings {
        /// Live siblings it would leave.
        live: usize,
        /// The limit.
        limit: usize,
    },
    /// The coordinator's record is corrupt.
    Corrupt,
    /// The coordinator's storage failed.
    Storage(String),
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
    Failed(WireError),
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
}
