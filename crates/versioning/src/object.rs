//! The stored object: a DVVSet of versions, each a value or a tombstone.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{ActorId, Dot, DvvSet, VersionVector};

/// One sibling version of a key: a value with its content type, or a tombstone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The value's bytes; `None` marks a tombstone (a delete).
    pub data: Option<Bytes>,
    /// The value's content type (empty for tombstones).
    pub content_type: String,
    /// Wall-clock milliseconds at the coordinator when written. Never used for
    /// causal ordering (the clock does that): it tells when a tombstone may be
    /// purged, and which sibling a bucket without siblings (`allow_mult =
    /// false`) shows.
    pub timestamp_ms: u64,
    /// What else the client stored with the value (Riak's user metadata,
    /// links, secondary index entries, charset and encoding); `None` when
    /// nothing, so a plain value costs one byte for it.
    pub meta: Option<Box<Metadata>>,
}

/// Metadata stored with one version and returned with it, as Riak keeps it
/// beside an object's value (`X-Riak-Meta-*`, `Link`, `X-Riak-Index-*`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The value's character set (`Content-Type: ...; charset=`).
    pub charset: Option<String>,
    /// The value's content encoding (`Content-Encoding`).
    pub content_encoding: Option<String>,
    /// User metadata, name and value, in the order given.
    pub user: Vec<(String, Bytes)>,
    /// Links to other objects.
    pub links: Vec<Link>,
    /// Secondary index entries, index name (with its `_bin`/`_int` suffix) and
    /// value, in the order given.
    pub indexes: Vec<(String, Bytes)>,
}

impl Metadata {
    /// True if there is nothing to store.
    pub fn is_empty(&self) -> bool {
        self == &Metadata::default()
    }
}

/// A link from one object to another (Riak's `Link` header and `RpbLink`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The bucket of the object linked to.
    pub bucket: Bytes,
    /// Its key.
    pub key: Bytes,
    /// What the link means to the application (`riaktag`).
    pub tag: Bytes,
}

impl Version {
    /// A live value.
    pub fn value(
        data: impl Into<Bytes>,
        content_type: impl Into<String>,
        timestamp_ms: u64,
    ) -> Self {
        Version {
            data: Some(data.into()),
            content_type: content_type.into(),
            timestamp_ms,
            meta: None,
        }
    }

    /// The same version with `meta` stored beside it (nothing if it is empty).
    pub fn with_meta(mut self, meta: Metadata) -> Self {
        self.meta = (!meta.is_empty()).then(|| Box::new(meta));
        self
    }

    /// Its metadata (empty if none was stored).
    pub fn metadata(&self) -> &Metadata {
        static EMPTY: Metadata = Metadata {
            charset: None,
            content_encoding: None,
            user: Vec::new(),
            links: Vec::new(),
            indexes: Vec::new(),
        };
        self.meta.as_deref().unwrap_or(&EMPTY)
    }

    /// A tombstone: the mark a delete leaves.
    pub fn tombstone(timestamp_ms: u64) -> Self {
        Version {
            data: None,
            content_type: String::new(),
            timestamp_ms,
            meta: None,
        }
    }

    /// True for a tombstone.
    pub fn is_tombstone(&self) -> bool {
        self.data.is_none()
    }
}

/// Everything stored for one key: its causal history and sibling versions.
pub type Object = DvvSet<Version>;

/// A write would leave more live siblings than allowed (SPEC §2 sibling cap).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize,
)]
#[error("the write would leave {live} live siblings, more than the limit of {limit}")]
pub struct TooManySiblings {
    /// Live siblings the write would have left.
    pub live: usize,
    /// The configured `max_siblings`.
    pub limit: usize,
}

impl DvvSet<Version> {
    /// The live (non-tombstone) sibling values, oldest first by timestamp.
    pub fn live(&self) -> Vec<&Version> {
        let mut live: Vec<&Version> = self.values().filter(|v| !v.is_tombstone()).collect();
        live.sort_by_key(|v| v.timestamp_ms);
        live
    }

    /// True when the key has history but every remaining version is a tombstone.
    pub fn is_deleted(&self) -> bool {
        self.values().all(Version::is_tombstone)
    }

    /// The version a bucket without siblings (`allow_mult = false`) shows:
    /// the newest by timestamp, live or tombstone, ties broken by content so
    /// every replica picks the same one. `None` for an empty set.
    pub fn newest(&self) -> Option<&Version> {
        self.values().max_by(|a, b| {
            (a.timestamp_ms, &a.data, &a.content_type).cmp(&(
                b.timestamp_ms,
                &b.data,
                &b.content_type,
            ))
        })
    }

    /// The newest write time among the remaining versions (0 if none).
    pub fn newest_timestamp_ms(&self) -> u64 {
        self.values().map(|v| v.timestamp_ms).max().unwrap_or(0)
    }

    /// A coordinator's write under the sibling cap: applies [`DvvSet::update`] only
    /// if it leaves at most `max_siblings` live values. Tombstones do not count, and
    /// replica merges ([`DvvSet::sync`]) are never refused.
    pub fn write_capped(
        &mut self,
        context: &VersionVector,
        actor: ActorId,
        version: Version,
        max_siblings: usize,
    ) -> Result<Dot, TooManySiblings> {
        let mut next = self.clone();
        let dot = next.update(context, actor, version);
        let live = next.values().filter(|v| !v.is_tombstone()).count();
        if live > max_siblings {
            return Err(TooManySiblings {
                live,
                limit: max_siblings,
            });
        }
        *self = next;
        Ok(dot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_leaves_only_tombstones() {
        let mut o = Object::new();
        o.update(
            &VersionVector::new(),
            ActorId(1),
            Version::value("x", "text/plain", 1),
        );
        let ctx = o.context();
        o.update(&ctx, ActorId(1), Version::tombstone(2));
        assert!(o.is_deleted());
        assert!(o.live().is_empty());
        assert_eq!(o.len(), 1);
    }

    #[test]
    fn stale_delete_leaves_the_concurrent_value() {
        let mut o = Object::new();
        o.update(
            &VersionVector::new(),
            ActorId(1),
            Version::value("a", "", 1),
        );
        let stale = o.context();
        o.update(&stale, ActorId(1), Version::value("b", "", 2));
        o.update(&stale, ActorId(1), Version::tombstone(3));
        let live: Vec<_> = o.live().iter().map(|v| v.data.clone()).collect();
        assert_eq!(live, vec![Some(bytes::Bytes::from("b"))]);
        assert!(!o.is_deleted());
    }

    #[test]
    fn sibling_cap_refuses_and_leaves_the_object_unchanged() {
        let mut o = Object::new();
        let none = VersionVector::new();
        for i in 0..3 {
            o.write_capped(&none, ActorId(1), Version::value("v", "", i), 3)
                .expect("under the cap");
        }
        let before = o.clone();
        let err = o
            .write_capped(&none, ActorId(1), Version::value("v", "", 9), 3)
            .expect_err("over the cap");
        assert_eq!(err, TooManySiblings { live: 4, limit: 3 });
        assert_eq!(o, before);
        // A write that resolves siblings is always allowed.
        let ctx = o.context();
        o.write_capped(&ctx, ActorId(1), Version::value("r", "", 10), 3)
            .expect("resolving write");
        assert_eq!(o.live().len(), 1);
    }
}
