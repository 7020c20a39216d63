//! Consistent hashing for dynakv (Dynamo §4.2).
//!
//! Every key is hashed to a 64-bit **ring token**. The token fixes where the key
//! lives on the ring, which replicas hold it, and its place in the on-disk order:
//! the storage engine prefixes every key with its big-endian token, so every
//! range of the ring is one contiguous scan of the disk.

mod token;

pub use token::{Token, TokenRange, token};
