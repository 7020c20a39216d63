//! The message bodies, written by hand as prost messages.
//!
//! Each struct mirrors one message of basho/riak_pb's `riak.proto` and
//! `riak_kv.proto` (branch `develop`) field for field: same names (snake case, as
//! prost would generate them), same tags, same types. The files are proto2:
//!
//! * `required` fields are plain values (`Vec<u8>`, `u32`, a message) and are
//!   always written, even when zero or empty — Basho's Java, Python and Go
//!   clients refuse a message that lacks one;
//! * `optional` fields are `Option<T>`, written only when `Some`;
//! * `repeated` fields are `Vec<T>`;
//! * `bytes` fields are `Vec<u8>`;
//! * enum fields hold the raw `i32` (prost's convention), and prost adds typed
//!   getters and setters (`RpbBucketProps::repl()`, `set_repl(…)`).
//!
//! The Rust compiler does not check that the tags match the `.proto` files: the
//! tests in `tests/wire.rs` pin the bytes of a few messages.

// Every struct is documented; the fields are not, one by one: they are the
// fields of riak.proto and riak_kv.proto under the same names, and a doc line per
// field would mostly repeat the name. Where the meaning is not in the name, a
// field has a comment.
#![allow(missing_docs)]

// ---------------------------------------------------------------------------
// riak.proto
// ---------------------------------------------------------------------------

/// `RpbErrorResp` (code 0): the answer to any request that failed. Riak always
/// sends `errcode` 0.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbErrorResp {
    #[prost(bytes = "vec", required, tag = "1")]
    pub errmsg: Vec<u8>,
    #[prost(uint32, required, tag = "2")]
    pub errcode: u32,
}

/// `RpbGetServerInfoResp` (code 8): the node's name and version.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbGetServerInfoResp {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub node: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub server_version: Option<Vec<u8>>,
}

/// `RpbPair`: a key and an optional value — user metadata and secondary index
/// entries of an [`RpbContent`], and the results of an [`RpbIndexResp`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbPair {
    #[prost(bytes = "vec", required, tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub value: Option<Vec<u8>>,
}

/// `RpbGetBucketReq` (code 19): read a bucket's properties.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbGetBucketReq {
    #[prost(bytes = "vec", required, tag = "1")]
    pub bucket: Vec<u8>,
    /// Bucket type; the `default` type when absent.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub r#type: Option<Vec<u8>>,
}

/// `RpbGetBucketResp` (code 20): a bucket's (or bucket type's) properties.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbGetBucketResp {
    #[prost(message, required, tag = "1")]
    pub props: RpbBucketProps,
}

/// `RpbSetBucketReq` (code 21): change some of a bucket's properties (the fields
/// set in `props`). Answered with an empty `RpbSetBucketResp`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbSetBucketReq {
    #[prost(bytes = "vec", required, tag = "1")]
    pub bucket: Vec<u8>,
    #[prost(message, required, tag = "2")]
    pub props: RpbBucketProps,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub r#type: Option<Vec<u8>>,
}

/// `RpbResetBucketReq` (code 29): reset a bucket's properties to its type's.
/// Answered with an empty `RpbResetBucketResp`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbResetBucketReq {
    #[prost(bytes = "vec", required, tag = "1")]
    pub bucket: Vec<u8>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub r#type: Option<Vec<u8>>,
}

/// `RpbGetBucketTypeReq` (code 31): read a bucket type's properties. Answered
/// with an `RpbGetBucketResp`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbGetBucketTypeReq {
    #[prost(bytes = "vec", required, tag = "1")]
    pub r#type: Vec<u8>,
}

/// `RpbSetBucketTypeReq` (code 32): change a bucket type's properties. Answered
/// with an empty `RpbSetBucketResp` (there is no `RpbSetBucketTypeResp`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbSetBucketTypeReq {
    #[prost(bytes = "vec", required, tag = "1")]
    pub r#type: Vec<u8>,
    #[prost(message, required, tag = "2")]
    pub props: RpbBucketProps,
}

/// `RpbModFun`: an Erlang module and function, for hooks and key functions.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbModFun {
    #[prost(bytes = "vec", required, tag = "1")]
    pub module: Vec<u8>,
    #[prost(bytes = "vec", required, tag = "2")]
    pub function: Vec<u8>,
}

/// `RpbCommitHook`: a pre- or post-commit hook, an Erlang [`RpbModFun`] or a
/// named JavaScript function.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbCommitHook {
    #[prost(message, optional, tag = "1")]
    pub modfun: Option<RpbModFun>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub name: Option<Vec<u8>>,
}

/// `RpbBucketProps`: bucket (or bucket type) properties. Every field is
/// optional: a get returns the ones the bucket has, a set changes the ones given.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbBucketProps {
    #[prost(uint32, optional, tag = "1")]
    pub n_val: Option<u32>,
    #[prost(bool, optional, tag = "2")]
    pub allow_mult: Option<bool>,
    #[prost(bool, optional, tag = "3")]
    pub last_write_wins: Option<bool>,
    #[prost(message, repeated, tag = "4")]
    pub precommit: Vec<RpbCommitHook>,
    /// Set on a get when `precommit` is non-empty, so an empty list can be told
    /// from an absent one (proto default `false`).
    #[prost(bool, optional, tag = "5", default = "false")]
    pub has_precommit: Option<bool>,
    #[prost(message, repeated, tag = "6")]
    pub postcommit: Vec<RpbCommitHook>,
    /// As `has_precommit`, for `postcommit` (proto default `false`).
    #[prost(bool, optional, tag = "7", default = "false")]
    pub has_postcommit: Option<bool>,
    #[prost(message, optional, tag = "8")]
    pub chash_keyfun: Option<RpbModFun>,
    #[prost(message, optional, tag = "9")]
    pub linkfun: Option<RpbModFun>,
    #[prost(uint32, optional, tag = "10")]
    pub old_vclock: Option<u32>,
    #[prost(uint32, optional, tag = "11")]
    pub young_vclock: Option<u32>,
    #[prost(uint32, optional, tag = "12")]
    pub big_vclock: Option<u32>,
    #[prost(uint32, optional, tag = "13")]
    pub small_vclock: Option<u32>,
    /// Quorum fields `pr` … `rw` may hold the symbolic values of
    /// [`PbQuorum`](crate::PbQuorum).
    #[prost(uint32, optional, tag = "14")]
    pub pr: Option<u32>,
    #[prost(uint32, optional, tag = "15")]
    pub r: Option<u32>,
    #[prost(uint32, optional, tag = "16")]
    pub w: Option<u32>,
    #[prost(uint32, optional, tag = "17")]
    pub pw: Option<u32>,
    #[prost(uint32, optional, tag = "18")]
    pub dw: Option<u32>,
    #[prost(uint32, optional, tag = "19")]
    pub rw: Option<u32>,
    #[prost(bool, optional, tag = "20")]
    pub basic_quorum: Option<bool>,
    #[prost(bool, optional, tag = "21")]
    pub notfound_ok: Option<bool>,
    /// Backend name, for riak_kv's multi-backend.
    #[prost(bytes = "vec", optional, tag = "22")]
    pub backend: Option<Vec<u8>>,
    /// Legacy Riak Search indexing.
    #[prost(bool, optional, tag = "23")]
    pub search: Option<bool>,
    /// Replication mode, an [`RpbReplMode`](rpb_bucket_props::RpbReplMode).
    #[prost(enumeration = "rpb_bucket_props::RpbReplMode", optional, tag = "24")]
    pub repl: Option<i32>,
    /// Yokozuna (Solr) index name.
    #[prost(bytes = "vec", optional, tag = "25")]
    pub search_index: Option<Vec<u8>>,
    /// CRDT data type of the bucket type (`counter`, `set`, `map`, `hll`, …).
    #[prost(bytes = "vec", optional, tag = "26")]
    pub datatype: Option<Vec<u8>>,
    /// Strongly consistent bucket type.
    #[prost(bool, optional, tag = "27")]
    pub consistent: Option<bool>,
    /// Write-once bucket type (the "fast path": no read before write).
    #[prost(bool, optional, tag = "28")]
    pub write_once: Option<bool>,
    /// Precision of HyperLogLog data types.
    #[prost(uint32, optional, tag = "29")]
    pub hll_precision: Option<u32>,
}

/// Nested types of [`RpbBucketProps`].
pub mod rpb_bucket_props {
    /// `RpbBucketProps.RpbReplMode`: whether and how a bucket is replicated
    /// between clusters.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum RpbReplMode {
        /// Not replicated (`FALSE`).
        False = 0,
        /// Real-time replication only (`REALTIME`).
        Realtime = 1,
        /// Full-sync replication only (`FULLSYNC`).
        Fullsync = 2,
        /// Both (`TRUE`).
        True = 3,
    }
}

/// `RpbAuthReq` (code 253): authenticate the connection (after `RpbStartTls`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbAuthReq {
    #[prost(bytes = "vec", required, tag = "1")]
    pub user: Vec<u8>,
    #[prost(bytes = "vec", required, tag = "2")]
    pub password: Vec<u8>,
}

// ---------------------------------------------------------------------------
// riak_kv.proto
// ---------------------------------------------------------------------------

/// `RpbGetClientIdResp` (code 4): the client id of the connection.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbGetClientIdResp {
    #[prost(bytes = "vec", required, tag = "1")]
    pub client_id: Vec<u8>,
}

/// `RpbSetClientIdReq` (code 5): set the client id of the connection.
/// Answered with an empty `RpbSetClientIdResp`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbSetClientIdReq {
    #[prost(bytes = "vec", required, tag = "1")]
    pub client_id: Vec<u8>,
}

/// `RpbGetReq` (code 9): read an object.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbGetReq {
    #[prost(bytes = "vec", required, tag = "1")]
    pub bucket: Vec<u8>,
    #[prost(bytes = "vec", required, tag = "2")]
    pub key: Vec<u8>,
    /// Read quorum; may be symbolic, see [`PbQuorum`](crate::PbQuorum).
    #[prost(uint32, optional, tag = "3")]
    pub r: Option<u32>,
    /// Primary read quorum; may be symbolic.
    #[prost(uint32, optional, tag = "4")]
    pub pr: Option<u32>,
    #[prost(bool, optional, tag = "5")]
    pub basic_quorum: Option<bool>,
    #[prost(bool, optional, tag = "6")]
    pub notfound_ok: Option<bool>,
    /// A vclock: answer `unchanged` if the object's vclock still equals it.
    #[prost(bytes = "vec", optional, tag = "7")]
    pub if_modified: Option<Vec<u8>>,
    /// Return everything but the values.
    #[prost(bool, optional, tag = "8")]
    pub head: Option<bool>,
    /// Return a tombstone's vclock instead of not found.
    #[prost(bool, optional, tag = "9")]
    pub deletedvclock: Option<bool>,
    /// Milliseconds.
    #[prost(uint32, optional, tag = "10")]
    pub timeout: Option<u32>,
    #[prost(bool, optional, tag = "11")]
    pub sloppy_quorum: Option<bool>,
    #[prost(uint32, optional, tag = "12")]
    pub n_val: Option<u32>,
    /// Bucket type; the `default` type when absent.
    #[prost(bytes = "vec", optional, tag = "13")]
    pub r#type: Option<Vec<u8>>,
    /// Number of distinct physical nodes that must answer.
    #[prost(uint32, optional, tag = "14")]
    pub node_confirms: Option<u32>,
}

/// `RpbGetResp` (code 10): an object's siblings and vclock. Not found is an
/// empty message (no content, no vclock): just the code byte on the wire.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbGetResp {
    #[prost(message, repeated, tag = "1")]
    pub content: Vec<RpbContent>,
    /// The opaque causal context to send back with the next put.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub vclock: Option<Vec<u8>>,
    /// The object still has the vclock given in `if_modified`.
    #[prost(bool, optional, tag = "3")]
    pub unchanged: Option<bool>,
}

/// `RpbPutReq` (code 11): write an object. Without a key, the server makes one
/// and returns it in the [`RpbPutResp`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbPutReq {
    #[prost(bytes = "vec", required, tag = "1")]
    pub bucket: Vec<u8>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub key: Option<Vec<u8>>,
    /// The causal context from a previous get, if any.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub vclock: Option<Vec<u8>>,
    #[prost(message, required, tag = "4")]
    pub content: RpbContent,
    /// Write quorum; may be symbolic, see [`PbQuorum`](crate::PbQuorum).
    #[prost(uint32, optional, tag = "5")]
    pub w: Option<u32>,
    /// Durable write quorum; may be symbolic.
    #[prost(uint32, optional, tag = "6")]
    pub dw: Option<u32>,
    #[prost(bool, optional, tag = "7")]
    pub return_body: Option<bool>,
    /// Primary write quorum; may be symbolic.
    #[prost(uint32, optional, tag = "8")]
    pub pw: Option<u32>,
    #[prost(bool, optional, tag = "9")]
    pub if_not_modified: Option<bool>,
    #[prost(bool, optional, tag = "10")]
    pub if_none_match: Option<bool>,
    #[prost(bool, optional, tag = "11")]
    pub return_head: Option<bool>,
    /// Milliseconds.
    #[prost(uint32, optional, tag = "12")]
    pub timeout: Option<u32>,
    #[prost(bool, optional, tag = "13")]
    pub asis: Option<bool>,
    #[prost(bool, optional, tag = "14")]
    pub sloppy_quorum: Option<bool>,
    #[prost(uint32, optional, tag = "15")]
    pub n_val: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "16")]
    pub r#type: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "17")]
    pub node_confirms: Option<u32>,
}

/// `RpbPutResp` (code 12): the stored object when `return_body`/`return_head`
/// was asked for, and the generated key if the server made one; otherwise empty.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbPutResp {
    #[prost(message, repeated, tag = "1")]
    pub content: Vec<RpbContent>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub vclock: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub key: Option<Vec<u8>>,
}

/// `RpbDelReq` (code 13): delete an object. Answered with an empty `RpbDelResp`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbDelReq {
    #[prost(bytes = "vec", required, tag = "1")]
    pub bucket: Vec<u8>,
    #[prost(bytes = "vec", required, tag = "2")]
    pub key: Vec<u8>,
    /// Quorum fields `rw`, `r`, `w`, `pr`, `pw`, `dw` may be symbolic, see
    /// [`PbQuorum`](crate::PbQuorum).
    #[prost(uint32, optional, tag = "3")]
    pub rw: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub vclock: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "5")]
    pub r: Option<u32>,
    #[prost(uint32, optional, tag = "6")]
    pub w: Option<u32>,
    #[prost(uint32, optional, tag = "7")]
    pub pr: Option<u32>,
    #[prost(uint32, optional, tag = "8")]
    pub pw: Option<u32>,
    #[prost(uint32, optional, tag = "9")]
    pub dw: Option<u32>,
    /// Milliseconds.
    #[prost(uint32, optional, tag = "10")]
    pub timeout: Option<u32>,
    #[prost(bool, optional, tag = "11")]
    pub sloppy_quorum: Option<bool>,
    #[prost(uint32, optional, tag = "12")]
    pub n_val: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "13")]
    pub r#type: Option<Vec<u8>>,
}

/// `RpbListBucketsReq` (code 15): list the buckets of a bucket type.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbListBucketsReq {
    /// Milliseconds.
    #[prost(uint32, optional, tag = "1")]
    pub timeout: Option<u32>,
    /// Answer with several `RpbListBucketsResp`s, the last one with `done`.
    #[prost(bool, optional, tag = "2")]
    pub stream: Option<bool>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub r#type: Option<Vec<u8>>,
}

/// `RpbListBucketsResp` (code 16): some bucket names; the last message of a
/// stream has `done` set.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbListBucketsResp {
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub buckets: Vec<Vec<u8>>,
    #[prost(bool, optional, tag = "2")]
    pub done: Option<bool>,
}

/// `RpbListKeysReq` (code 17): list the keys of a bucket. Always streamed.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbListKeysReq {
    #[prost(bytes = "vec", required, tag = "1")]
    pub bucket: Vec<u8>,
    /// Milliseconds.
    #[prost(uint32, optional, tag = "2")]
    pub timeout: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub r#type: Option<Vec<u8>>,
}

/// `RpbListKeysResp` (code 18): some keys; the last message of the stream has
/// `done` set (and may carry no keys).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbListKeysResp {
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub keys: Vec<Vec<u8>>,
    #[prost(bool, optional, tag = "2")]
    pub done: Option<bool>,
}

/// `RpbMapRedReq` (code 23): a MapReduce job (JSON or Erlang terms).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbMapRedReq {
    #[prost(bytes = "vec", required, tag = "1")]
    pub request: Vec<u8>,
    #[prost(bytes = "vec", required, tag = "2")]
    pub content_type: Vec<u8>,
}

/// `RpbMapRedResp` (code 24): one phase's results; the last has `done` set.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbMapRedResp {
    #[prost(uint32, optional, tag = "1")]
    pub phase: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub response: Option<Vec<u8>>,
    #[prost(bool, optional, tag = "3")]
    pub done: Option<bool>,
}

/// `RpbIndexReq` (code 25): a secondary index query.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbIndexReq {
    #[prost(bytes = "vec", required, tag = "1")]
    pub bucket: Vec<u8>,
    #[prost(bytes = "vec", required, tag = "2")]
    pub index: Vec<u8>,
    /// An [`IndexQueryType`](rpb_index_req::IndexQueryType).
    #[prost(enumeration = "rpb_index_req::IndexQueryType", required, tag = "3")]
    pub qtype: i32,
    /// The index value of an equality query.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub range_min: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "6")]
    pub range_max: Option<Vec<u8>>,
    #[prost(bool, optional, tag = "7")]
    pub return_terms: Option<bool>,
    #[prost(bool, optional, tag = "8")]
    pub stream: Option<bool>,
    #[prost(uint32, optional, tag = "9")]
    pub max_results: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "10")]
    pub continuation: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "11")]
    pub timeout: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "12")]
    pub r#type: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "13")]
    pub term_regex: Option<Vec<u8>>,
    #[prost(bool, optional, tag = "14")]
    pub pagination_sort: Option<bool>,
    #[prost(bytes = "vec", optional, tag = "15")]
    pub cover_context: Option<Vec<u8>>,
    #[prost(bool, optional, tag = "16")]
    pub return_body: Option<bool>,
}

/// Nested types of [`RpbIndexReq`].
pub mod rpb_index_req {
    /// `RpbIndexReq.IndexQueryType`: equality or range query.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum IndexQueryType {
        /// Equality query on `key` (`eq`).
        Eq = 0,
        /// Range query from `range_min` to `range_max` (`range`).
        Range = 1,
    }
}

/// `RpbIndexResp` (code 26): keys (or index terms and keys) matching a query.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbIndexResp {
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub keys: Vec<Vec<u8>>,
    #[prost(message, repeated, tag = "2")]
    pub results: Vec<RpbPair>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub continuation: Option<Vec<u8>>,
    #[prost(bool, optional, tag = "4")]
    pub done: Option<bool>,
}

/// `RpbIndexBodyResp` (code 42): objects matching a `$bucket`/`$key` index
/// query with `return_body`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbIndexBodyResp {
    #[prost(message, repeated, tag = "1")]
    pub objects: Vec<RpbIndexObject>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub continuation: Option<Vec<u8>>,
    #[prost(bool, optional, tag = "3")]
    pub done: Option<bool>,
}

/// `RpbCSBucketReq` (code 40): fold over a key range of a bucket, returning
/// objects (added for Riak CS).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbCsBucketReq {
    #[prost(bytes = "vec", required, tag = "1")]
    pub bucket: Vec<u8>,
    #[prost(bytes = "vec", required, tag = "2")]
    pub start_key: Vec<u8>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub end_key: Option<Vec<u8>>,
    /// Proto default `true`.
    #[prost(bool, optional, tag = "4", default = "true")]
    pub start_incl: Option<bool>,
    /// Proto default `false`.
    #[prost(bool, optional, tag = "5", default = "false")]
    pub end_incl: Option<bool>,
    #[prost(bytes = "vec", optional, tag = "6")]
    pub continuation: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "7")]
    pub max_results: Option<u32>,
    #[prost(uint32, optional, tag = "8")]
    pub timeout: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "9")]
    pub r#type: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "10")]
    pub cover_context: Option<Vec<u8>>,
}

/// `RpbCSBucketResp` (code 41): objects of a [`RpbCsBucketReq`] fold.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbCsBucketResp {
    #[prost(message, repeated, tag = "1")]
    pub objects: Vec<RpbIndexObject>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub continuation: Option<Vec<u8>>,
    #[prost(bool, optional, tag = "3")]
    pub done: Option<bool>,
}

/// `RpbIndexObject`: a key and its object, in fold and index-body results.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbIndexObject {
    #[prost(bytes = "vec", required, tag = "1")]
    pub key: Vec<u8>,
    #[prost(message, required, tag = "2")]
    pub object: RpbGetResp,
}

/// `RpbContent`: one sibling — the value and its metadata.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbContent {
    #[prost(bytes = "vec", required, tag = "1")]
    pub value: Vec<u8>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub content_type: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub charset: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub content_encoding: Option<Vec<u8>>,
    /// Version tag, set by the server.
    #[prost(bytes = "vec", optional, tag = "5")]
    pub vtag: Option<Vec<u8>>,
    #[prost(message, repeated, tag = "6")]
    pub links: Vec<RpbLink>,
    /// Last modified, seconds since the Unix epoch.
    #[prost(uint32, optional, tag = "7")]
    pub last_mod: Option<u32>,
    /// Microseconds part of the last modified time.
    #[prost(uint32, optional, tag = "8")]
    pub last_mod_usecs: Option<u32>,
    #[prost(message, repeated, tag = "9")]
    pub usermeta: Vec<RpbPair>,
    /// Secondary index entries: index name (`…_bin`, `…_int`) and term.
    #[prost(message, repeated, tag = "10")]
    pub indexes: Vec<RpbPair>,
    /// This sibling is a tombstone.
    #[prost(bool, optional, tag = "11")]
    pub deleted: Option<bool>,
}

/// `RpbLink`: a link to another object (Riak's link walking).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbLink {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub bucket: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub tag: Option<Vec<u8>>,
}

/// `RpbCounterUpdateReq` (code 50): add `amount` to a legacy (1.4) counter.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbCounterUpdateReq {
    #[prost(bytes = "vec", required, tag = "1")]
    pub bucket: Vec<u8>,
    #[prost(bytes = "vec", required, tag = "2")]
    pub key: Vec<u8>,
    #[prost(sint64, required, tag = "3")]
    pub amount: i64,
    /// Quorum fields may be symbolic, see [`PbQuorum`](crate::PbQuorum).
    #[prost(uint32, optional, tag = "4")]
    pub w: Option<u32>,
    #[prost(uint32, optional, tag = "5")]
    pub dw: Option<u32>,
    #[prost(uint32, optional, tag = "6")]
    pub pw: Option<u32>,
    /// Return the counter's new value.
    #[prost(bool, optional, tag = "7")]
    pub returnvalue: Option<bool>,
    #[prost(uint32, optional, tag = "8")]
    pub node_confirms: Option<u32>,
}

/// `RpbCounterUpdateResp` (code 51): the new value if `returnvalue` was set;
/// otherwise empty.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbCounterUpdateResp {
    #[prost(sint64, optional, tag = "1")]
    pub value: Option<i64>,
}

/// `RpbCounterGetReq` (code 52): read a legacy (1.4) counter.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbCounterGetReq {
    #[prost(bytes = "vec", required, tag = "1")]
    pub bucket: Vec<u8>,
    #[prost(bytes = "vec", required, tag = "2")]
    pub key: Vec<u8>,
    /// Quorum fields may be symbolic, see [`PbQuorum`](crate::PbQuorum).
    #[prost(uint32, optional, tag = "3")]
    pub r: Option<u32>,
    #[prost(uint32, optional, tag = "4")]
    pub pr: Option<u32>,
    #[prost(bool, optional, tag = "5")]
    pub basic_quorum: Option<bool>,
    #[prost(bool, optional, tag = "6")]
    pub notfound_ok: Option<bool>,
    #[prost(uint32, optional, tag = "7")]
    pub node_confirms: Option<u32>,
}

/// `RpbCounterGetResp` (code 53): the counter's value (absent if not found).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbCounterGetResp {
    #[prost(sint64, optional, tag = "1")]
    pub value: Option<i64>,
}

/// `RpbGetBucketKeyPreflistReq` (code 33): which vnodes hold a key.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbGetBucketKeyPreflistReq {
    #[prost(bytes = "vec", required, tag = "1")]
    pub bucket: Vec<u8>,
    #[prost(bytes = "vec", required, tag = "2")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub r#type: Option<Vec<u8>>,
}

/// `RpbGetBucketKeyPreflistResp` (code 34): a key's preference list.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbGetBucketKeyPreflistResp {
    #[prost(message, repeated, tag = "1")]
    pub preflist: Vec<RpbBucketKeyPreflistItem>,
}

/// `RpbBucketKeyPreflistItem`: one entry of a preference list.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpbBucketKeyPreflistItem {
    /// Partition number (index on the ring, not the ring position).
    #[prost(int64, required, tag = "1")]
    pub partition: i64,
    /// Node name.
    #[prost(bytes = "vec", required, tag = "2")]
    pub node: Vec<u8>,
    /// `true` for a primary replica, `false` for a fallback.
    #[prost(bool, required, tag = "3")]
    pub primary: bool,
}
