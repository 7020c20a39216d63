//! Causal-context tokens: the opaque form of a version vector that clients carry.
//!
//! Layout before encoding: a format byte, a varint count of entries, then per
//! entry the actor id (8 bytes, little endian) and a varint counter, then the
//! first 16 bytes of an HMAC-SHA256 of everything before it, keyed with the
//! cluster's [`ContextKey`]. The bytes are encoded as unpadded URL-safe
//! base64, so a token can travel in a header or a query string unchanged.
//!
//! **Signed, so a context cannot be forged.** A context says which versions a
//! write supersedes. One that raised a known actor's counter beyond what the
//! client read would make a replica that missed that forged write discard
//! the actor's *later, acknowledged* writes when it merges (they look already
//! seen). Only a node of the cluster can make a valid token: a changed,
//! truncated or invented one, or one of another cluster, is refused
//! ([`TokenError::Signature`]) before it is used.
//!
//! Decoded contexts are also bounded: at most [`MAX_ACTORS`] actors, every
//! counter at most [`MAX_COUNTER`] (2^48), so no counter built from a context
//! can overflow.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{ActorId, VersionVector};

const FORMAT_V2: u8 = 2;
/// Bytes of the signature kept in a token.
const MAC_LEN: usize = 16;
/// Largest counter a context may carry.
pub const MAX_COUNTER: u64 = 1 << 48;
/// Most actors a context may name.
pub const MAX_ACTORS: u64 = 4096;
/// A context longer than this is refused before decoding (a clock has one entry per
/// replica actor that ever wrote the key: thousands would already be absurd).
const MAX_TOKEN_LEN: usize = 64 * 1024;

type HmacSha256 = Hmac<Sha256>;

/// Why a causal-context token was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is not unpadded URL-safe base64 (or is implausibly long).
    #[error("causal context is not a valid token encoding")]
    Encoding,
    /// The signature does not match: the token was altered, cut, forged, or
    /// made by another cluster (or before its cluster secret changed).
    #[error(
        "causal context signature mismatch (altered, forged, or from another cluster): read the key again for a fresh one"
    )]
    Signature,
    /// The token was made by an unknown format version (version 1 tokens,
    /// unsigned, came from dynakv before contexts were signed).
    #[error("causal context has unknown format version {0}: read the key again for a fresh one")]
    Format(u8),
    /// The signature matched but the contents are malformed.
    #[error("causal context is malformed")]
    Malformed,
}

/// The key a cluster signs its contexts with: derived from the cluster
/// secret and the cluster's id, so every node of one cluster has it and no
/// client can compute it.
#[derive(Clone)]
pub struct ContextKey([u8; 32]);

impl std::fmt::Debug for ContextKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContextKey(..)")
    }
}

impl ContextKey {
    /// The key of the cluster `cluster` whose nodes share `secret` (empty
    /// without one: then anyone who learns the id can sign, as anyone can
    /// join such a cluster).
    pub fn derive(secret: &[u8], cluster: u64) -> ContextKey {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(b"dynakv causal context key");
        mac.update(&cluster.to_le_bytes());
        ContextKey(mac.finalize().into_bytes().into())
    }

    fn mac(&self, object: &[u8], body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(&(object.len() as u64).to_le_bytes());
        mac.update(object);
        mac.update(body);
        mac
    }
}

/// What a context is signed for: the cluster's [`ContextKey`] and the
/// stored key of the object it was issued with. A context is valid only for
/// that object: one read from a busy key, whose counters are high, cannot be
/// sent with a write of another key to make its replicas drop that key's
/// acknowledged writes.
#[derive(Clone, Debug)]
pub struct ContextSigner {
    key: std::sync::Arc<ContextKey>,
    object: bytes::Bytes,
}

impl ContextSigner {
    /// Signs and checks contexts of the object stored under `object`.
    pub fn new(key: std::sync::Arc<ContextKey>, object: bytes::Bytes) -> ContextSigner {
        ContextSigner { key, object }
    }

    fn mac(&self, body: &[u8]) -> HmacSha256 {
        self.key.mac(&self.object, body)
    }
}

/// The causal context a client received with a read or write, to hand back with
/// its next write of the key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CausalContext(pub VersionVector);

impl CausalContext {
    /// The opaque token form, signed for `key`'s object.
    pub fn encode(&self, key: &ContextSigner) -> String {
        URL_SAFE_NO_PAD.encode(self.to_bytes(key))
    }

    /// The token's bytes before text encoding: what Riak's protocols carry as
    /// the vclock (raw in Protocol Buffers, standard base64 in HTTP).
    pub fn to_bytes(&self, key: &ContextSigner) -> Vec<u8> {
        let mut buf = Vec::with_capacity(2 + self.0.len() * 12 + MAC_LEN);
        buf.push(FORMAT_V2);
        put_varint(&mut buf, self.0.len() as u64);
        for (actor, counter) in self.0.iter() {
            buf.extend_from_slice(&actor.0.to_le_bytes());
            put_varint(&mut buf, counter);
        }
        let mac = key.mac(&buf).finalize().into_bytes();
        buf.extend_from_slice(&mac[..MAC_LEN]);
        buf
    }

    /// Parses and checks a token produced by [`CausalContext::encode`] for
    /// the same object.
    pub fn decode(token: &str, key: &ContextSigner) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Encoding);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token.as_bytes())
            .map_err(|_| TokenError::Encoding)?;
        Self::from_bytes(&bytes, key)
    }

    /// Parses and checks the bytes of [`CausalContext::to_bytes`] for the
    /// same object.
    pub fn from_bytes(bytes: &[u8], key: &ContextSigner) -> Result<Self, TokenError> {
        if bytes.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Encoding);
        }
        match bytes.first() {
            None => return Err(TokenError::Signature),
            Some(&f) if f != FORMAT_V2 => return Err(TokenError::Format(f)),
            Some(_) if bytes.len() < 2 + MAC_LEN => return Err(TokenError::Signature),
            Some(_) => {}
        }
        let (body, mac) = bytes.split_at(bytes.len() - MAC_LEN);
        key.mac(body)
            .verify_truncated_left(mac)
            .map_err(|_| TokenError::Signature)?;
        let mut rest = &body[1..];
        let count = get_varint(&mut rest)?;
        if count > MAX_ACTORS {
            return Err(TokenError::Malformed);
        }
        let mut vv = VersionVector::new();
        for _ in 0..count {
            if rest.len() < 8 {
                return Err(TokenError::Malformed);
            }
            let (actor, tail) = rest.split_at(8);
            rest = tail;
            let mut id = [0u8; 8];
            id.copy_from_slice(actor);
            let counter = get_varint(&mut rest)?;
            if counter > MAX_COUNTER {
                return Err(TokenError::Malformed);
            }
            vv.observe(ActorId(u64::from_le_bytes(id)), counter);
        }
        if !rest.is_empty() {
            return Err(TokenError::Malformed);
        }
        Ok(CausalContext(vv))
    }
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn get_varint(input: &mut &[u8]) -> Result<u64, TokenError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first().ok_or(TokenError::Malformed)?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(secret: &[u8], cluster: u64, object: &[u8]) -> ContextSigner {
        ContextSigner::new(
            std::sync::Arc::new(ContextKey::derive(secret, cluster)),
            bytes::Bytes::copy_from_slice(object),
        )
    }

    fn key() -> ContextSigner {
        signer(b"secret", 7, b"k")
    }

    #[test]
    fn forged_tokens_outside_the_bounds_are_refused() {
        let mut vv = VersionVector::new();
        vv.observe(ActorId(1), MAX_COUNTER + 1);
        let t = CausalContext(vv).encode(&key());
        assert_eq!(
            CausalContext::decode(&t, &key()),
            Err(TokenError::Malformed)
        );
        let mut vv = VersionVector::new();
        vv.observe(ActorId(1), MAX_COUNTER);
        let t = CausalContext(vv.clone()).encode(&key());
        assert_eq!(CausalContext::decode(&t, &key()), Ok(CausalContext(vv)));
        let many: VersionVector = (0..=MAX_ACTORS).map(|i| (ActorId(i), 1)).collect();
        let t = CausalContext(many).encode(&key());
        assert_eq!(
            CausalContext::decode(&t, &key()),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn empty_context_round_trips() {
        let t = CausalContext::default().encode(&key());
        assert_eq!(
            CausalContext::decode(&t, &key()),
            Ok(CausalContext::default())
        );
    }

    #[test]
    fn a_token_of_another_key_cluster_or_object_is_refused() {
        let mut vv = VersionVector::new();
        vv.observe(ActorId(9), 1000);
        let forged = CausalContext(vv.clone()).encode(&signer(b"guess", 7, b"k"));
        assert_eq!(
            CausalContext::decode(&forged, &key()),
            Err(TokenError::Signature)
        );
        let other = CausalContext::default().encode(&signer(b"secret", 8, b"k"));
        assert_eq!(
            CausalContext::decode(&other, &key()),
            Err(TokenError::Signature)
        );
        // A genuine context of another object.
        let elsewhere = CausalContext(vv).encode(&signer(b"secret", 7, b"hot"));
        assert_eq!(
            CausalContext::decode(&elsewhere, &key()),
            Err(TokenError::Signature)
        );
        // An unsigned token of the format before signing.
        let v1 = URL_SAFE_NO_PAD.encode([1u8, 0, 0, 0, 0, 0]);
        assert_eq!(
            CausalContext::decode(&v1, &key()),
            Err(TokenError::Format(1))
        );
    }

    #[test]
    fn garbage_is_rejected_with_a_typed_error() {
        assert_eq!(
            CausalContext::decode("not a token!", &key()),
            Err(TokenError::Encoding)
        );
        assert_eq!(
            CausalContext::decode("", &key()),
            Err(TokenError::Signature)
        );
        assert_eq!(
            CausalContext::decode("AgAAAAAAAAAAAAAAAAAAAA", &key()),
            Err(TokenError::Signature)
        );
    }
}
