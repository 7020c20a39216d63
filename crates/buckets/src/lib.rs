//! Namespaces for dynakv, as Riak 2.x has them: every key lives in a
//! **bucket** of a **bucket type**, and buckets carry **properties** (`n_val`,
//! quorums, whether concurrent writes are kept as siblings, …) that a bucket
//! inherits from its type and may override.
//!
//! - [`key`]: a (type, bucket, key) triple as the one byte string the rest of
//!   the node stores, hashes and sends. Bucket `default` of type `default` is
//!   the plain key, so data written before namespaces existed is found there,
//!   where the native `/kv/` API looks.
//! - [`props`]: the properties with Riak's names and defaults, parsed from and
//!   shown as Riak's JSON, validated against the cluster's N.
//! - [`metadata`]: the cluster-wide map of bucket types and bucket overrides:
//!   every entry a last-writer-wins register, so nodes that exchange their
//!   maps in any order end with the same one (gossiped and persisted by the
//!   node, merged here).
//!
//! Like `dynakv-ring` and `dynakv-versioning`, this crate does no I/O: the
//! node feeds it messages and clock readings as values.

pub mod key;
pub mod metadata;
pub mod props;

pub use key::{
    DEFAULT, Namespace, NamespacedKey, decode_key, encode_key, is_plain_key, type_prefix,
};
pub use metadata::{BucketMetadata, MetadataError, Stamp, TypeStatus};
pub use props::{Props, PropsError, QuorumMode, QuorumProp};
