//! Replica actor identifiers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The identity under which a replica issues dots in causal clocks.
///
/// Minted by an [`crate::Incarnation`] (one process start), never reused by
/// another: whatever a restart finds on disk, it cannot reissue counters that
/// other replicas have already seen. [`ActorId::random`] also names a data
/// directory when it is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ActorId(pub u64);

impl ActorId {
    /// A fresh random actor id, for a new data directory.
    pub fn random() -> Self {
        ActorId(rand::random())
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for ActorId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(ActorId)
    }
}
