//! The on-disk key layout: ring token first, so ring ranges are contiguous.

use dynakv_ring::{Token, token};

/// The storage key of a user key: its big-endian ring token, then its bytes.
pub fn storage_key(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + key.len());
    k.extend_from_slice(&token(key).to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// Splits a storage key into its token and user key; `None` if it is too short to
/// be one (a corrupt key).
pub fn split_storage_key(skey: &[u8]) -> Option<(Token, &[u8])> {
    if skey.len() < 9 {
        return None;
    }
    let (t, key) = skey.split_at(8);
    let mut b = [0u8; 8];
    b.copy_from_slice(t);
    Some((u64::from_be_bytes(b), key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_by_token() {
        let a = storage_key(b"alpha");
        let (t, k) = split_storage_key(&a).expect("valid key");
        assert_eq!(k, b"alpha");
        assert_eq!(t, token(b"alpha"));
        let b = storage_key(b"beta");
        assert_eq!(a < b, token(b"alpha") < token(b"beta"));
    }
}
