//! Ring tokens: where a key sits on the hash ring.

use serde::{Deserialize, Serialize};

/// A position on the ring: `0..=u64::MAX`, wrapping around.
pub type Token = u64;

/// The ring token of a key: the 64-bit XXH3 hash of its bytes.
///
/// XXH3 is fast, well distributed and has a fixed specification, so every node
/// and every release computes the same token for a key. Changing this function
/// would change the on-disk order and the placement of every key: it never
/// changes for an existing data directory.
pub fn token(key: &[u8]) -> Token {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// A contiguous, inclusive range of ring tokens `start..=end` (never wrapping).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TokenRange {
    /// First token in the range.
    pub start: Token,
    /// Last token in the range (inclusive).
    pub end: Token,
}

impl TokenRange {
    /// The whole ring.
    pub const FULL: TokenRange = TokenRange {
        start: 0,
        end: u64::MAX,
    };

    /// True if `t` lies in the range.
    pub fn contains(&self, t: Token) -> bool {
        self.start <= t && t <= self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_stable_across_releases() {
        // Pinned: changing the hash would silently reorder every data directory.
        assert_eq!(token(b""), 0x2d06_8005_38d3_94c2);
        assert_ne!(token(b"a"), token(b"b"));
    }

    #[test]
    fn full_range_contains_the_extremes() {
        assert!(TokenRange::FULL.contains(0));
        assert!(TokenRange::FULL.contains(u64::MAX));
    }
}
