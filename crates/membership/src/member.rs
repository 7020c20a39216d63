//! A member as the cluster knows it: its self-description, its
//! administrative state and its row of the gossiped member table.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::ring::RingStamp;

/// What a member tells the cluster about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Unique name.
    pub name: String,
    /// Node-to-node address.
    pub rpc_addr: SocketAddr,
    /// HTTP address.
    pub http_addr: SocketAddr,
    /// Availability zone.
    pub zone: Option<String>,
    /// Ring weight.
    pub weight: f64,
}

/// A member's administrative state (gossiped, unlike liveness).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberState {
    /// A full member.
    Active,
    /// Handing its data off before leaving.
    Leaving,
    /// Left the cluster for good.
    Left,
    /// Removed by an operator (dead for good).
    Removed,
}

/// One row of the member table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The member's self-description.
    pub info: MemberInfo,
    /// Start time of the member's current process (ms): a restart increases it.
    pub generation: u64,
    /// Incremented by the member every gossip interval.
    pub heartbeat: u64,
    /// Administrative state.
    pub state: MemberState,
    /// When the state last changed (ms, the member's clock; informational).
    pub state_changed_at: u64,
    /// The cluster ring this member serves.
    pub ring: RingStamp,
    /// Partitions in transit this member holds a full copy of, each with the
    /// transit version it was copied for (see [`crate::Transit::since`]).
    pub received: BTreeMap<u16, u64>,
}

impl Entry {
    /// Ordering of entries of one member: later incarnation first, then a removal
    /// (which must win over the removed process's own heartbeats), then the
    /// higher heartbeat.
    pub(crate) fn version(&self) -> (u64, bool, u64) {
        (
            self.generation,
            self.state == MemberState::Removed,
            self.heartbeat,
        )
    }

    pub(crate) fn is_gone(&self) -> bool {
        matches!(self.state, MemberState::Left | MemberState::Removed)
    }
}
