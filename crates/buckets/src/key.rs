//! Namespaced keys: (bucket type, bucket, key) as one byte string.
//!
//! The rest of the node (placement, storage, replication) treats a key as
//! opaque bytes; a namespaced key is encoded into such bytes here, so every
//! mechanism below the API carries the namespace without knowing of it, and
//! placement (the ring token is a hash of these bytes) hashes all three.
//!
//! Encoding: a key of bucket `default` of type `default` is its own bytes, so
//! the data of a node from before namespaces (and of the native `/kv/` API)
//! lives there. Any other key is `0x00`, the type's length (one byte), the
//! type, the bucket's length (one byte), the bucket, then the key. A plain key
//! may therefore not begin with a zero byte: the API refuses such keys, and
//! [`decode_key`] reads bytes that begin with one but do not parse as a
//! namespace as a plain key, so no stored key is ever unreadable.

/// The name of the default bucket type and of the default bucket.
pub const DEFAULT: &[u8] = b"default";

/// The marker a namespaced key starts with.
const MARK: u8 = 0;

/// A bucket of a bucket type.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Namespace {
    /// The bucket type's name (1 to 255 bytes).
    pub bucket_type: Vec<u8>,
    /// The bucket's name (1 to 255 bytes).
    pub bucket: Vec<u8>,
}

impl Namespace {
    /// Bucket `bucket` of type `bucket_type`.
    pub fn new(bucket_type: impl Into<Vec<u8>>, bucket: impl Into<Vec<u8>>) -> Namespace {
        Namespace {
            bucket_type: bucket_type.into(),
            bucket: bucket.into(),
        }
    }

    /// Bucket `default` of type `default`: the native API's namespace.
    pub fn default_bucket() -> Namespace {
        Namespace::new(DEFAULT, DEFAULT)
    }

    /// True for bucket `default` of type `default`.
    pub fn is_default_bucket(&self) -> bool {
        self.bucket_type == DEFAULT && self.bucket == DEFAULT
    }

    /// Checks the names' lengths (1 to 255 bytes each).
    pub fn validate(&self) -> Result<(), String> {
        for (what, name) in [("bucket type", &self.bucket_type), ("bucket", &self.bucket)] {
            if name.is_empty() || name.len() > 255 {
                return Err(format!(
                    "a {what} name is 1 to 255 bytes, not {}",
                    name.len()
                ));
            }
        }
        Ok(())
    }

    /// The type's name as text (lossy for names that are not UTF-8).
    pub fn type_name(&self) -> String {
        String::from_utf8_lossy(&self.bucket_type).into_owned()
    }

    /// The bucket's name as text (lossy for names that are not UTF-8).
    pub fn bucket_name(&self) -> String {
        String::from_utf8_lossy(&self.bucket).into_owned()
    }

    /// The prefix every key of this namespace starts with, once encoded
    /// (empty for the default bucket, whose keys are plain).
    pub fn key_prefix(&self) -> Vec<u8> {
        if self.is_default_bucket() {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(3 + self.bucket_type.len() + self.bucket.len());
        out.push(MARK);
        out.push(self.bucket_type.len() as u8);
        out.extend_from_slice(&self.bucket_type);
        out.push(self.bucket.len() as u8);
        out.extend_from_slice(&self.bucket);
        out
    }
}

/// The prefix every key of every bucket of type `bucket_type` starts with,
/// once encoded: empty for the default type, whose default bucket's keys
/// are plain (a listing of its buckets then reads every key).
pub fn type_prefix(bucket_type: &[u8]) -> Vec<u8> {
    if bucket_type == DEFAULT {
        return Vec::new();
    }
    let mut p = vec![MARK, bucket_type.len() as u8];
    p.extend_from_slice(bucket_type);
    p
}

/// A key with its namespace, borrowed from an encoded key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamespacedKey<'a> {
    /// The bucket type (`default` for a plain key).
    pub bucket_type: &'a [u8],
    /// The bucket (`default` for a plain key).
    pub bucket: &'a [u8],
    /// The key within the bucket.
    pub key: &'a [u8],
}

impl NamespacedKey<'_> {
    /// Its namespace, owned.
    pub fn namespace(&self) -> Namespace {
        Namespace::new(self.bucket_type, self.bucket)
    }

    /// True for bucket `default` of type `default`.
    pub fn is_default_bucket(&self) -> bool {
        self.bucket_type == DEFAULT && self.bucket == DEFAULT
    }
}

/// Encodes `key` of namespace `ns` as the bytes the node stores. The caller
/// has checked the names ([`Namespace::validate`]) and, for the default
/// bucket, that the key does not begin with a zero byte.
pub fn encode_key(ns: &Namespace, key: &[u8]) -> Vec<u8> {
    let mut out = ns.key_prefix();
    out.extend_from_slice(key);
    out
}

/// Reads the namespace and key out of stored key bytes. Never fails: bytes
/// that are not a namespaced key are a plain key of the default bucket.
pub fn decode_key(bytes: &[u8]) -> NamespacedKey<'_> {
    parse(bytes).unwrap_or(NamespacedKey {
        bucket_type: DEFAULT,
        bucket: DEFAULT,
        key: bytes,
    })
}

fn parse(bytes: &[u8]) -> Option<NamespacedKey<'_>> {
    let (&mark, rest) = bytes.split_first()?;
    if mark != MARK {
        return None;
    }
    let (&tlen, rest) = rest.split_first()?;
    let (bucket_type, rest) = split(rest, tlen as usize)?;
    let (&blen, rest) = rest.split_first()?;
    let (bucket, key) = split(rest, blen as usize)?;
    if bucket_type.is_empty() || bucket.is_empty() || key.is_empty() {
        return None;
    }
    Some(NamespacedKey {
        bucket_type,
        bucket,
        key,
    })
}

fn split(bytes: &[u8], at: usize) -> Option<(&[u8], &[u8])> {
    (bytes.len() >= at).then(|| bytes.split_at(at))
}

/// True if `key` may be stored as a plain key of the default bucket (it does
/// not begin with the zero byte that marks a namespaced key).
pub fn is_plain_key(key: &[u8]) -> bool {
    key.first() != Some(&MARK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_default_bucket_is_the_plain_key() {
        let ns = Namespace::default_bucket();
        assert_eq!(encode_key(&ns, b"k"), b"k");
        let d = decode_key(b"k");
        assert!(d.is_default_bucket());
        assert_eq!(d.key, b"k");
    }

    #[test]
    fn malformed_marked_bytes_read_as_a_plain_key() {
        for bytes in [
            &b"\x00"[..],
            b"\x00\x05ab",
            b"\x00\x01a\x00k",
            b"\x00\x01a\x01b",
        ] {
            let d = decode_key(bytes);
            assert!(d.is_default_bucket(), "{bytes:?}");
            assert_eq!(d.key, bytes);
        }
    }

    proptest! {
        #[test]
        fn namespaced_keys_round_trip(
            t in proptest::collection::vec(any::<u8>(), 1..20),
            b in proptest::collection::vec(any::<u8>(), 1..20),
            k in proptest::collection::vec(any::<u8>(), 1..40),
        ) {
            let ns = Namespace::new(t, b);
            prop_assume!(!ns.is_default_bucket() || is_plain_key(&k));
            let bytes = encode_key(&ns, &k);
            let d = decode_key(&bytes);
            prop_assert_eq!(d.namespace(), ns);
            prop_assert_eq!(d.key, &k[..]);
        }

        #[test]
        fn different_namespaces_never_share_bytes(
            k1 in proptest::collection::vec(any::<u8>(), 1..10),
            k2 in proptest::collection::vec(any::<u8>(), 1..10),
            b1 in "[a-c]{1,3}", b2 in "[a-c]{1,3}",
        ) {
            let n1 = Namespace::new("t", b1.as_bytes());
            let n2 = Namespace::new("t", b2.as_bytes());
            prop_assume!(n1 != n2 || k1 != k2);
            prop_assert_ne!(encode_key(&n1, &k1), encode_key(&n2, &k2));
        }
    }
}
