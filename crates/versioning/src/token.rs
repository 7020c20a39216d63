//! Causal-context tokens: the opaque form of a version vector that clients carry.
//!
//! Layout before encoding: a format byte, a varint count of entries, then per
//! entry the actor id (8 bytes, little endian) and a varint counter, then a
//! CRC-32 of everything before it. The bytes are encoded as unpadded URL-safe
//! base64, so a token can travel in a header or a query string unchanged.
//!
//! Every single-character change is rejected: the base64 decoder refuses
//! characters outside the alphabet and non-zero trailing bits, and the CRC-32
//! catches any change of up to 32 consecutive bits. Tokens are checksummed, not
//! signed: a client able to forge a plausible context can only make its own write
//! supersede or not supersede versions, which it could do with a real context too.
//!
//! A forged token cannot hurt the store either: every decoded context is
//! validated by bounds — at most [`MAX_ACTORS`] actors, every counter at most
//! [`MAX_COUNTER`] (2^48: one actor would need that many writes of one key) —
//! so no counter built from a client's context can overflow.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::{ActorId, VersionVector};

const FORMAT_V1: u8 = 1;
/// Largest counter a context may carry.
pub const MAX_COUNTER: u64 = 1 << 48;
/// Most actors a context may name.
pub const MAX_ACTORS: u64 = 4096;
/// A context longer than this is refused before decoding (a clock has one entry per
/// replica actor that ever wrote the key: thousands would already be absurd).
const MAX_TOKEN_LEN: usize = 64 * 1024;

/// Why a causal-context token was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is not unpadded URL-safe base64 (or is implausibly long).
    #[error("causal context is not a valid token encoding")]
    Encoding,
    /// The token decoded, but its checksum does not match: it was altered or cut.
    #[error("causal context checksum mismatch (token altered or truncated)")]
    Checksum,
    /// The token was made by an unknown format version.
    #[error("causal context has unknown format version {0}")]
    Format(u8),
    /// The checksum matched but the contents are malformed.
    #[error("causal context is malformed")]
    Malformed,
}

/// The causal context a client received with a read or write, to hand back with
/// its next write of the key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CausalContext(pub VersionVector);

impl CausalContext {
    /// The opaque token form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.to_bytes())
    }

    /// The token's bytes before text encoding: what Riak's protocols carry as
    /// the vclock (raw in Protocol Buffers, standard base64 in HTTP).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(2 + self.0.len() * 12 + 4);
        buf.push(FORMAT_V1);
        put_varint(&mut buf, self.0.len() as u64);
        for (actor, counter) in self.0.iter() {
            buf.extend_from_slice(&actor.0.to_le_bytes());
            put_varint(&mut buf, counter);
        }
        let crc = crc32fast::hash(&buf);
        buf.extend_from_slice(&crc.to_le_bytes());
        buf
    }

    /// Parses a token produced by [`CausalContext::encode`].
    pub fn decode(token: &str) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Encoding);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token.as_bytes())
            .map_err(|_| TokenError::Encoding)?;
        Self::from_bytes(&bytes)
    }

    /// Parses the bytes of [`CausalContext::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TokenError> {
        if bytes.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Encoding);
        }
        if bytes.len() < 5 {
            return Err(TokenError::Checksum);
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32fast::hash(body) != crc {
            return Err(TokenError::Checksum);
        }
        if body[0] != FORMAT_V1 {
            return Err(TokenError::Format(body[0]));
        }
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

    #[test]
    fn forged_tokens_outside_the_bounds_are_refused() {
        let mut vv = VersionVector::new();
        vv.observe(ActorId(1), MAX_COUNTER + 1);
        let t = CausalContext(vv).encode();
        assert_eq!(CausalContext::decode(&t), Err(TokenError::Malformed));
        let mut vv = VersionVector::new();
        vv.observe(ActorId(1), MAX_COUNTER);
        let t = CausalContext(vv.clone()).encode();
        assert_eq!(CausalContext::decode(&t), Ok(CausalContext(vv)));
        let many: VersionVector = (0..=MAX_ACTORS).map(|i| (ActorId(i), 1)).collect();
        let t = CausalContext(many).encode();
        assert_eq!(CausalContext::decode(&t), Err(TokenError::Malformed));
    }

    #[test]
    fn empty_context_round_trips() {
        let t = CausalContext::default().encode();
        assert_eq!(CausalContext::decode(&t), Ok(CausalContext::default()));
    }

    #[test]
    fn garbage_is_rejected_with_a_typed_error() {
        assert_eq!(
            CausalContext::decode("not a token!"),
            Err(TokenError::Encoding)
        );
        assert_eq!(CausalContext::decode(""), Err(TokenError::Checksum));
        assert_eq!(
            CausalContext::decode("AAAAAAAAAA"),
            Err(TokenError::Checksum)
        );
    }
}
